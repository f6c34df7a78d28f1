/**
 * The normalized operation: one request a client made of a source server,
 * paired with what the source answered, independent of the protocol (text,
 * meta or binary) it was spoken in. Capture and the proxy produce these; the
 * replay layer turns them into writes on the new pool by the outcome rules.
 *
 * A multi-key request (get a b c, pipelined getkq) becomes one operation per
 * key. Keys and values are copies owned by the operation (capture buffers are
 * reused), so an operation may be queued.
 */

export type OpCommand =
  // storage (protocol.txt "Storage commands"; meta `ms` maps here by its mode and C flag)
  | 'set'
  | 'add'
  | 'replace'
  | 'append'
  | 'prepend'
  | 'cas'
  // reads, one operation per key; `gat` also set a new expiry on a hit (mg with T too)
  | 'get'
  | 'gat'
  | 'touch'
  | 'delete'
  | 'incr'
  | 'decr'
  | 'flush_all'
  // admin and unknown commands (stats, lru_crawler, verbosity, version, watch, ...): never mirrored
  | 'other';

export type OpOutcome =
  | 'stored' // STORED, HD after ms, binary status 0 on a store
  | 'not_stored' // NOT_STORED, NS
  | 'exists' // EXISTS, EX: a cas lost
  | 'not_found' // NOT_FOUND, NF: delete/touch/incr/cas on a missing key
  | 'deleted'
  | 'touched'
  | 'hit'
  | 'miss'
  | 'number' // incr/decr answered with the new value (in `number`)
  | 'ok' // flush_all
  | 'error' // the source answered ERROR/CLIENT_ERROR/SERVER_ERROR: it did not apply the command
  | 'unknown'; // no reply to learn from (noreply on a conditional command, a quiet success that cannot be told apart, a lost reply)

export interface Operation {
  readonly command: OpCommand;
  /** The key's bytes (base64 meta keys decoded). Empty for flush_all and other. */
  readonly key: Buffer;
  /** Stored value (storage commands), or the value read (get/gat hits, when the reply carried it). */
  readonly value: Buffer | undefined;
  /** A storage request whose value was over memshift's value limit, skipped unread (`value` undefined). */
  readonly oversize?: boolean | undefined;
  /** A storage request whose value memshift had no room to hold (the pending byte budget), skipped unread. */
  readonly shed?: boolean | undefined;
  /** Client flags sent (storage) or read (hits, when known). */
  readonly flags: number | undefined;
  /**
   * Expiry as the client sent it (storage, touch, gat, flush_all delay): seconds
   * if up to 30 days, else unix time in the source's clock; 0 is never.
   * Undefined when the command carried none.
   */
  readonly exptime: number | undefined;
  /** incr/decr delta. */
  readonly delta: bigint | undefined;
  /**
   * Binary incr/decr: the value a missing counter starts at, created with
   * `exptime` (section 4.5). Undefined: a missing counter is not created.
   */
  readonly initial?: bigint | undefined;
  /** incr/decr result the source answered, when it did. */
  readonly number: bigint | undefined;
  readonly outcome: OpOutcome;
  readonly protocol: 'text' | 'meta' | 'binary';
  /** The connection it came from (capture flow id or proxy connection id). */
  readonly connection: number;
  /** When the request was seen (capture time or arrival time), in microseconds. */
  readonly timestampMicros: number;
  /** For `other`: the command's name (stats, lru_crawler, ...), for counting. */
  readonly name: string | undefined;
}
