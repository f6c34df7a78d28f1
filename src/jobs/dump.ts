/**
 * The key dumper behind `memshift dump`: every key of one server with its
 * remaining TTL, size, last access, fetched bit and slab class, from the
 * enumeration (metadump hash, then all, then stats cachedump with a warning:
 * see enumerate.ts), held packed in a list with a memory cap.
 * Values are fetched only on request, with pipelined `mg <key> v f` in
 * bounded batches (reference/memcached-protocol.txt, "Meta Get").
 *
 * Times are the server's: metadump's exp and la are in its clock, so the
 * remaining TTL is measured against its `stats` time, not ours.
 */
import type { MetadumpEntry } from '../protocol/ascii-frames.js';
import type { MemcachedClient } from '../net/client.js';
import { metaFlagNumber, metaKeyFits } from '../protocol/meta.js';
import { ServerClock, enumerateKeys, type EnumerationInfo, type EnumerationMethod } from './enumerate.js';

export interface DumpRecord {
  /** The key's bytes (a copy: safe to keep). */
  readonly key: Buffer;
  /** Absolute expiry in the server's clock, or -1 for never. */
  readonly exp: number;
  /** Seconds left by the server's clock; undefined for a key that never expires. */
  readonly ttl: number | undefined;
  /** Last access, unix seconds in the server's clock (0 when the method cannot tell). */
  readonly lastAccess: number;
  /** Seconds since the last access (undefined when unknown). */
  readonly idle: number | undefined;
  /** Item size in memory as the server reports it (key, value and header). */
  readonly size: number;
  /** Read at least once since it was stored. */
  readonly fetched: boolean;
  readonly slabClass: number;
  /** With values on: the value, or undefined when the key went away before it was read. */
  readonly value?: Buffer | undefined;
  /** With values on: the client flags. */
  readonly flags?: number | undefined;
}

export type KeyFilter = (key: Buffer) => boolean;

export interface DumpOptions {
  /** Keep only the keys this accepts. */
  readonly match?: KeyFilter;
  /** Stop after this many matching keys. */
  readonly limit?: number;
  /** Fetch each value (off by default: values can be sensitive). */
  readonly values?: boolean;
  /** Values fetched at once (pipelined) with --values. */
  readonly valueBatch?: number;
  /** Memory for the keys listed before they are written (default 512 MiB). */
  readonly maxListBytes?: number;
  /** Enumeration methods to try, in order (default: hash, all, cachedump). */
  readonly methods?: readonly EnumerationMethod[];
  /** Filled in with the method used and warnings. */
  readonly info?: EnumerationInfo;
  readonly onWarning?: (warning: string) => void;
}

/** What a dump went through, for its summary line. */
export interface DumpCounters {
  /** Entries the server listed. */
  listed: number;
  /** Entries that passed the filter and were written. */
  written: number;
  /** Keys listed that were gone when their value was asked for. */
  gone: number;
  /** Keys whose value no meta command can ask for (binary keys over 186 bytes that need base64). */
  unreadable: number;
  /** Matching keys left out because the key list was full. */
  overflow: number;
}

/** The key list's default memory cap: about 10 million keys of 40 bytes. */
export const DEFAULT_LIST_BYTES = 512 * 1024 * 1024;

export function zeroDumpCounters(): DumpCounters {
  return { listed: 0, written: 0, gone: 0, unreadable: 0, overflow: 0 };
}

/**
 * A server's keys, listed first into a bounded packed list (about 15 bytes
 * plus the key per entry) as fast as the server sends them, then handed out
 * one by one, with values read afterwards when asked for.
 *
 * Why not straight from the dump to the output: a metadump that is not read
 * holds the server's crawler in the middle of its walk, and while it waits,
 * requests for keys under the item lock it holds do not answer, production
 * traffic included (seen on memcached 1.6.18: about one random get in 20,000
 * hung while a dump sat unread). Output can stall for any reason (a pager, a
 * slow pipe, and stdout writes to a pipe block the whole process), so the
 * crawler is never made to wait on it. Keys beyond the list's cap are
 * counted in `overflow` and reported, never waited for.
 */
export async function* dumpKeys(
  client: MemcachedClient,
  options: DumpOptions = {},
  counters: DumpCounters = zeroDumpCounters(),
): AsyncGenerator<DumpRecord> {
  const clock = await ServerClock.of(client);
  const limit = options.limit ?? Infinity;
  if (limit <= 0) return;
  const enumeration = enumerateKeys(client, {
    ...(options.methods ? { methods: options.methods } : {}),
    ...(options.info ? { info: options.info } : {}),
    ...(options.onWarning ? { onWarning: options.onWarning } : {}),
  });
  const list = new PackedEntries(options.maxListBytes ?? DEFAULT_LIST_BYTES);
  for await (const entry of enumeration) {
    counters.listed++;
    if (options.match && !options.match(entry.key)) continue;
    if (!list.push(entry)) counters.overflow++;
    // Leaving the loop ends the listing and frees the crawler.
    if (list.length >= limit) break;
  }
  if (counters.overflow > 0) {
    const warning =
      `${client.address}: ${counters.overflow} matching keys left out: the key list is full ` +
      `(${Math.round((options.maxListBytes ?? DEFAULT_LIST_BYTES) / 1048576)} MiB); ` +
      'allow more memory or narrow the dump with --match or --limit';
    options.info?.warnings.push(warning);
    options.onWarning?.(warning);
  }
  if (!options.values) {
    for (const entry of list.entries()) {
      counters.written++;
      yield toRecord(entry, clock.now());
    }
    return;
  }
  const batchSize = Math.max(1, Math.min(1024, options.valueBatch ?? 256));
  const batch: DumpRecord[] = [];
  for (const entry of list.entries()) {
    batch.push(toRecord(entry, clock.now()));
    if (batch.length >= batchSize) {
      yield* withValues(client, batch, counters);
      batch.length = 0;
    }
  }
  if (batch.length > 0) yield* withValues(client, batch, counters);
}

const BLOCK_BYTES = 1 << 20;
/** Per entry: key length (1), exp (4), last access (4), size (4), slab class (1), fetched (1). */
const ENTRY_HEADER = 15;

/**
 * Metadump entries packed back to back in 1 MiB blocks (15 bytes plus the
 * key each), up to a byte cap: millions of keys without an object apiece.
 */
class PackedEntries {
  length = 0;
  private readonly blocks: Buffer[] = [];
  /** Bytes filled in each block but the last (whose fill is `used`). */
  private readonly filled: number[] = [];
  private used = BLOCK_BYTES;
  private readonly maxBlocks: number;

  constructor(maxBytes: number) {
    this.maxBlocks = Math.max(1, Math.floor(maxBytes / BLOCK_BYTES));
  }

  push(entry: MetadumpEntry): boolean {
    const need = ENTRY_HEADER + entry.key.length;
    if (this.used + need > BLOCK_BYTES) {
      if (this.blocks.length >= this.maxBlocks) return false;
      if (this.blocks.length > 0) this.filled.push(this.used);
      this.blocks.push(Buffer.allocUnsafe(BLOCK_BYTES));
      this.used = 0;
    }
    const block = this.blocks[this.blocks.length - 1]!;
    let at = this.used;
    block[at] = entry.key.length;
    block.writeInt32LE(entry.exp, at + 1);
    block.writeInt32LE(entry.la, at + 5);
    block.writeUInt32LE(Math.min(entry.size, 0xffffffff), at + 9);
    block[at + 13] = Math.min(entry.slabClass, 255);
    block[at + 14] = entry.fetched ? 1 : 0;
    at += ENTRY_HEADER;
    entry.key.copy(block, at);
    this.used = at + entry.key.length;
    this.length++;
    return true;
  }

  /** The entries in listing order; keys are views into the blocks. */
  *entries(): Generator<MetadumpEntry> {
    for (let b = 0; b < this.blocks.length; b++) {
      const block = this.blocks[b]!;
      const end = b === this.blocks.length - 1 ? this.used : this.filled[b]!;
      let at = 0;
      while (at < end) {
        const keyLength = block[at]!;
        const key = block.subarray(at + ENTRY_HEADER, at + ENTRY_HEADER + keyLength);
        yield {
          key,
          base64: false,
          exp: block.readInt32LE(at + 1),
          la: block.readInt32LE(at + 5),
          cas: 0n,
          fetched: block[at + 14] === 1,
          slabClass: block[at + 13]!,
          size: block.readUInt32LE(at + 9),
        };
        at += ENTRY_HEADER + keyLength;
      }
    }
  }
}

function toRecord(entry: MetadumpEntry, now: number): DumpRecord {
  return {
    // The entry's key may be a view into a read buffer that the next entry reuses.
    key: Buffer.from(entry.key),
    exp: entry.exp,
    ttl: entry.exp < 0 ? undefined : Math.max(0, entry.exp - now),
    lastAccess: entry.la,
    idle: entry.la > 0 ? Math.max(0, now - entry.la) : undefined,
    size: entry.size,
    fetched: entry.fetched,
    slabClass: entry.slabClass,
  };
}

/**
 * Values for a batch, asked all at once so they share round trips. `mg`
 * without the `q` flag answers EN for a key that is gone.
 */
async function* withValues(
  client: MemcachedClient,
  batch: readonly DumpRecord[],
  counters: DumpCounters,
): AsyncGenerator<DumpRecord> {
  const replies = await Promise.all(
    batch.map((r) => (metaKeyFits(r.key) ? client.mg(r.key, ['v', 'f']) : undefined)),
  );
  for (let i = 0; i < batch.length; i++) {
    const reply = replies[i];
    const record = batch[i]!;
    counters.written++;
    if (reply === undefined) {
      counters.unreadable++;
      yield { ...record, value: undefined, flags: undefined };
      continue;
    }
    if (reply.code !== 'VA') {
      counters.gone++;
      yield { ...record, value: undefined, flags: undefined };
      continue;
    }
    yield { ...record, value: reply.value, flags: metaFlagNumber(reply.flags, 'f') ?? 0 };
  }
}

/**
 * A key filter from `--match`: a glob (`*` any bytes, `?` one byte, the rest
 * literal) over the whole key, or `/regex/` on the key read as latin1 (one
 * character per byte). A plain prefix glob compares bytes and converts nothing.
 */
export function keyFilter(pattern: string): KeyFilter {
  const regex = /^\/(.*)\/([a-z]*)$/s.exec(pattern);
  if (regex) {
    const re = new RegExp(regex[1]!, regex[2]!.replace(/[gy]/g, ''));
    return (key) => re.test(key.toString('latin1'));
  }
  const star = pattern.indexOf('*');
  if (!pattern.includes('?') && (star < 0 || star === pattern.length - 1)) {
    const literal = Buffer.from(star < 0 ? pattern : pattern.slice(0, -1), 'latin1');
    if (star < 0) return (key) => key.equals(literal);
    return (key) =>
      key.length >= literal.length && key.compare(literal, 0, literal.length, 0, literal.length) === 0;
  }
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '[\\s\\S]*' : c === '?' ? '[\\s\\S]' : c.replace(/[\\^$.|+()[\]{}/-]/g, '\\$&')))
    .join('');
  const re = new RegExp(`^${source}$`);
  return (key) => re.test(key.toString('latin1'));
}

const HEX = '0123456789abcdef';

/**
 * Bytes for display: printable ASCII as is, everything else (spaces, control
 * bytes, non-ASCII) as \xHH and a backslash as \\, so any key reads back
 * exactly and never breaks a column.
 */
export function escapeBytes(bytes: Uint8Array): string {
  let plain = true;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c <= 0x20 || c >= 0x7f || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x5c) out += '\\\\';
    else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += '\\x' + HEX[c >> 4] + HEX[c & 15];
  }
  return out;
}

/** The inverse of escapeBytes. */
export function unescapeBytes(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c && text[i + 1] === '\\') {
      out.push(0x5c);
      i++;
    } else if (c === 0x5c && text[i + 1] === 'x') {
      out.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}
