/**
 * Frames of memcached's ASCII connections: the classic text commands and the
 * meta commands share one connection (protocol.txt, "Meta Commands": "These
 * work mixed with normal protocol commands on the same connection"), so one
 * request parser and one response parser read both.
 *
 * Keys and values are bytes (`Buffer`, usually views into the input); strings
 * are used only for things that are text by definition (stat names, messages).
 */

export type StorageCommand = 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas';
export type RetrievalCommand = 'get' | 'gets' | 'gat' | 'gats';
export type MetaCommand = 'mg' | 'ms' | 'md' | 'ma' | 'mn' | 'me';

/** `<command> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]` and its data block. */
export interface StorageRequest {
  readonly kind: 'storage';
  readonly command: StorageCommand;
  readonly key: Buffer;
  /** Client flags, 32-bit unsigned. */
  readonly flags: number;
  /** Relative seconds, unix time, 0 for never, negative for already expired. */
  readonly exptime: number;
  /** Only for `cas`. */
  readonly cas: bigint | undefined;
  readonly noreply: boolean;
  readonly value: Buffer;
}

/** `get|gets <key>*` and `gat|gats <exptime> <key>*`. */
export interface RetrievalRequest {
  readonly kind: 'retrieval';
  readonly command: RetrievalCommand;
  /** Only for gat/gats. */
  readonly exptime: number | undefined;
  readonly keys: Buffer[];
}

/** `delete <key> [0] [noreply]` (the legacy time argument must be 0). */
export interface DeleteRequest {
  readonly kind: 'delete';
  readonly key: Buffer;
  readonly noreply: boolean;
}

/** `incr|decr <key> <value> [noreply]`; the delta is a 64-bit unsigned integer. */
export interface ArithmeticRequest {
  readonly kind: 'arithmetic';
  readonly command: 'incr' | 'decr';
  readonly key: Buffer;
  readonly delta: bigint;
  readonly noreply: boolean;
}

/** `touch <key> <exptime> [noreply]`. */
export interface TouchRequest {
  readonly kind: 'touch';
  readonly key: Buffer;
  readonly exptime: number;
  readonly noreply: boolean;
}

/** `flush_all [delay] [noreply]`. */
export interface FlushAllRequest {
  readonly kind: 'flush_all';
  readonly delay: number | undefined;
  readonly noreply: boolean;
}

/** `version`. */
export interface VersionRequest {
  readonly kind: 'version';
}

/** `verbosity <level> [noreply]`. */
export interface VerbosityRequest {
  readonly kind: 'verbosity';
  readonly level: number;
  readonly noreply: boolean;
}

/** `stats [<args>]`: `stats`, `stats slabs`, `stats items`, `stats cachedump 1 0`, ... */
export interface StatsRequest {
  readonly kind: 'stats';
  readonly args: string[];
}

/** `quit`. */
export interface QuitRequest {
  readonly kind: 'quit';
}

/**
 * Any other single-line command (lru_crawler, watch, slabs, cache_memlimit,
 * shutdown, misbehave, or a word memcached does not know and answers with ERROR).
 * None of memcached's other commands carry a data block.
 */
export interface OtherRequest {
  readonly kind: 'other';
  readonly name: string;
  readonly args: string[];
}

/**
 * A meta command: `<cm> <key> <datalen*> <flag>*` (protocol.txt, "Meta Commands").
 * `flags` holds the flag tokens as sent, a letter followed by its optional
 * argument (`T30`, `q`, `Oabc`). `key` is the key's bytes: base64-decoded when
 * the `b` flag is present, empty for `mn`.
 */
export interface MetaRequest {
  readonly kind: 'meta';
  readonly command: MetaCommand;
  readonly key: Buffer;
  readonly base64: boolean;
  readonly flags: string[];
  /** The data block of `ms`. */
  readonly value: Buffer | undefined;
  /** The `q` flag: a success reply (HD, or EN for mg) is not sent. */
  readonly quiet: boolean;
  /** The `O` flag's token, echoed in the reply. */
  readonly opaque: string | undefined;
}

export type TextRequest =
  | StorageRequest
  | RetrievalRequest
  | DeleteRequest
  | ArithmeticRequest
  | TouchRequest
  | FlushAllRequest
  | VersionRequest
  | VerbosityRequest
  | StatsRequest
  | QuitRequest
  | OtherRequest;

export type AsciiRequest = TextRequest | MetaRequest;

/** One-word replies (protocol.txt, storage, deletion, touch and other commands). */
export type TextStatus =
  'STORED' | 'NOT_STORED' | 'EXISTS' | 'NOT_FOUND' | 'DELETED' | 'TOUCHED' | 'OK' | 'RESET';

/** `VALUE <key> <flags> <bytes> [<cas unique>]` and its data block. */
export interface ValueResponse {
  readonly kind: 'value';
  readonly key: Buffer;
  readonly flags: number;
  readonly cas: bigint | undefined;
  readonly value: Buffer;
}

/** `END`: closes a retrieval, stats or metadump reply. */
export interface EndResponse {
  readonly kind: 'end';
}

export interface StatusResponse {
  readonly kind: 'status';
  readonly status: TextStatus;
}

/** The new value after incr/decr. */
export interface NumberResponse {
  readonly kind: 'number';
  readonly value: bigint;
}

/** `STAT <name> <value>`. */
export interface StatResponse {
  readonly kind: 'stat';
  readonly name: string;
  readonly value: string;
}

/** `VERSION <version>`. */
export interface VersionResponse {
  readonly kind: 'version';
  readonly version: string;
}

/** `ERROR`, `CLIENT_ERROR <message>`, `SERVER_ERROR <message>`: the server's error replies, as values. */
export interface ErrorResponse {
  readonly kind: 'error';
  readonly error: 'ERROR' | 'CLIENT_ERROR' | 'SERVER_ERROR';
  readonly message: string;
}

/**
 * One line of `lru_crawler metadump`:
 * `key=<urlencoded> exp=<unix|-1> la=<unix> cas=<n> fetch=<yes|no> cls=<n> size=<n>`
 * (newer servers may add fields; unknown ones are ignored).
 */
export interface MetadumpEntry {
  /** Decoded key bytes (URL-decoded, or base64-decoded when the line carries `b`). */
  readonly key: Buffer;
  /** The key was reported base64-encoded (binary key). */
  readonly base64: boolean;
  /** Absolute expiry in the server's clock (unix seconds), or -1 for never. */
  readonly exp: number;
  /** Last access, absolute, in the server's clock. */
  readonly la: number;
  readonly cas: bigint;
  readonly fetched: boolean;
  readonly slabClass: number;
  readonly size: number;
}

export interface MetadumpResponse {
  readonly kind: 'metadump';
  readonly entry: MetadumpEntry;
}

/** Any other line (stats cachedump `ITEM` lines, `BUSY ...`, slabs replies). */
export interface LineResponse {
  readonly kind: 'line';
  readonly line: string;
}

export type MetaCode = 'VA' | 'HD' | 'EN' | 'NF' | 'NS' | 'EX' | 'MN' | 'ME';

/**
 * A meta reply: `<RC> <datalen*> <flag>*` (protocol.txt, "Meta Commands").
 * `flags` holds the returned flag tokens (`t30`, `f0`, `Oabc`, `W`); for `ME`
 * the first token is the key and the rest are the `name=value` fields.
 */
export interface MetaResponse {
  readonly kind: 'meta';
  readonly code: MetaCode;
  readonly flags: string[];
  /** The data block of `VA`. */
  readonly value: Buffer | undefined;
}

export type TextResponse =
  | ValueResponse
  | EndResponse
  | StatusResponse
  | NumberResponse
  | StatResponse
  | VersionResponse
  | ErrorResponse
  | MetadumpResponse
  | LineResponse;

export type AsciiResponse = TextResponse | MetaResponse;
