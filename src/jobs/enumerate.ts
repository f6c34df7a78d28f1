/**
 * Listing the keys a memcached server holds, as completely as the server
 * allows: `lru_crawler metadump hash` (1.6.9+, walks the hash table so each
 * item is seen once), then `lru_crawler metadump all` (walks the LRUs), then
 * `stats cachedump` per slab class, which memcached caps at about 2 MB of
 * output per class, so that list is incomplete and a warning says so
 * (reference/memcached-protocol.txt, "LRU_Crawler" and "Statistics").
 *
 * One crawler command at a time per server in this process: two concurrent
 * metadumps on one memcached 1.6.18 hung a worker thread, so every
 * enumeration of an address waits for the previous one to end.
 */
import type { MetadumpEntry } from '../protocol/ascii-frames.js';
import { MemshiftError } from '../protocol/errors.js';
import type { MemcachedClient } from '../net/client.js';
import { Connection, type ConnectionOptions } from '../net/connection.js';
import { ServerReplyError } from '../net/errors.js';
import { encodeLine } from '../protocol/text.js';

export type EnumerationMethod = 'metadump-hash' | 'metadump-all' | 'cachedump';

/** What an enumeration did: the method that answered and anything the user should know. */
export interface EnumerationInfo {
  method: EnumerationMethod | undefined;
  warnings: string[];
}

export interface EnumerateOptions {
  /** Methods to try, in order (default: all three, as listed above). */
  readonly methods?: readonly EnumerationMethod[];
  /** Filled in as the enumeration goes: the method used and warnings. */
  readonly info?: EnumerationInfo;
  /** Called once per warning, as it happens. */
  readonly onWarning?: (warning: string) => void;
  /** How often a `BUSY` crawler (another tool's crawl running) is retried, half a second apart. */
  readonly busyRetries?: number;
}

/** The server forbids key dumps (memcached -X): nothing can list its keys. */
export class DumpsDisabledError extends MemshiftError {
  constructor(address: string) {
    super(
      'MEMSHIFT_ERR_DUMPS_DISABLED',
      `${address}: key dumps are disabled on this server (memcached was started with -X), ` +
        'so its keys cannot be listed; restart it without -X to copy or verify it',
    );
  }
}

/** The LRU crawler is off (memcached -o no_lru_crawler, or `lru_crawler disable`). */
export class CrawlerDisabledError extends MemshiftError {
  constructor(address: string) {
    super(
      'MEMSHIFT_ERR_CRAWLER_DISABLED',
      `${address}: the LRU crawler is disabled, so lru_crawler metadump cannot list keys; ` +
        `enable it with "lru_crawler enable" (or drop -o no_lru_crawler) and retry`,
    );
  }
}

const ALL_METHODS: readonly EnumerationMethod[] = ['metadump-hash', 'metadump-all', 'cachedump'];

const crawlerLocks = new Map<string, Promise<void>>();

/** Waits until no other crawler command of this process runs on `address`; returns the release. */
async function acquireCrawler(address: string): Promise<() => void> {
  const previous = crawlerLocks.get(address) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const chained = previous.then(() => mine);
  crawlerLocks.set(address, chained);
  await previous;
  return () => {
    release();
    if (crawlerLocks.get(address) === chained) crawlerLocks.delete(address);
  };
}

/**
 * Every key of one server, as metadump entries. A key may be a view into a
 * read buffer, valid until the next entry is asked for: copy what you keep.
 * Falls back from one method to the next only when the server refuses a
 * method before listing anything; a failure mid-list is thrown.
 */
export async function* enumerateKeys(
  client: MemcachedClient,
  options: EnumerateOptions = {},
): AsyncGenerator<MetadumpEntry> {
  const info = options.info ?? { method: undefined, warnings: [] };
  const warn = (text: string): void => {
    info.warnings.push(text);
    options.onWarning?.(text);
  };
  const address = client.address;
  const release = await acquireCrawler(address);
  try {
    const methods = options.methods ?? ALL_METHODS;
    let lastRefusal = (options as { lastRefusal?: string }).lastRefusal ?? '';
    for (const method of methods) {
      if (method === 'cachedump') {
        info.method = method;
        warn(
          `${address}: lru_crawler metadump is not available (${lastRefusal || 'not tried'}); ` +
            'listing keys with stats cachedump, which returns at most about 2 MB of keys per slab class: ' +
            'the list is incomplete',
        );
        yield* cachedump(client);
        return;
      }
      const mode = method === 'metadump-hash' ? 'hash' : 'all';
      let listed = 0;
      let busy = 0;
      while (true) {
        try {
          info.method = method;
          for await (const entry of client.metadump(mode)) {
            listed++;
            yield entry;
          }
          return;
        } catch (err) {
          if (listed > 0) throw err;
          const refusal = classify(address, err);
          if (refusal === 'busy' && busy < (options.busyRetries ?? 10)) {
            busy++;
            await new Promise((resolve) => setTimeout(resolve, 500));
            continue;
          }
          if (refusal === 'busy') throw busyError(address);
          if (refusal === undefined) throw err;
          lastRefusal = refusal;
          break;
        }
      }
    }
    info.method = undefined;
    throw new MemshiftError('MEMSHIFT_ERR_METADUMP', `${address}: cannot list keys (${lastRefusal})`);
  } finally {
    release();
  }
}

function busyError(address: string): MemshiftError {
  return new MemshiftError(
    'MEMSHIFT_ERR_CRAWLER_BUSY',
    `${address}: the LRU crawler stayed busy with another job; retry when it is done`,
  );
}

/**
 * Sorts a metadump failure: the errors no other method can get around are
 * thrown as clear errors, `busy` means retry, a string is a refusal to fall
 * back from, undefined means the failure is not the method's (a broken connection).
 */
function classify(address: string, err: unknown): 'busy' | string | undefined {
  if (err instanceof ServerReplyError) {
    const text = `${err.reply.error} ${err.reply.message}`.trim();
    if (/not allowed/i.test(err.reply.message)) throw new DumpsDisabledError(address);
    if (/crawler disabled/i.test(err.reply.message)) throw new CrawlerDisabledError(address);
    return text;
  }
  if (err instanceof MemshiftError && err.code === 'MEMSHIFT_ERR_METADUMP') {
    if (/: BUSY\b/.test(err.message)) return 'busy';
    const at = err.message.indexOf('metadump: ');
    return at >= 0 ? err.message.slice(at + 'metadump: '.length) : err.message;
  }
  return undefined;
}

/** `stats cachedump <class> 0` for every slab class that holds items. */
async function* cachedump(client: MemcachedClient): AsyncGenerator<MetadumpEntry> {
  let items: Map<string, string>;
  try {
    items = await client.stats(['items']);
  } catch (err) {
    if (err instanceof ServerReplyError && /not allowed/i.test(err.reply.message)) {
      throw new DumpsDisabledError(client.address);
    }
    throw err;
  }
  const classes: number[] = [];
  for (const name of items.keys()) {
    const m = /^items:(\d+):number$/.exec(name);
    if (m) classes.push(Number(m[1]));
  }
  for (const cls of classes) {
    let lines: string[];
    try {
      lines = await client.statsLines(['cachedump', String(cls), '0']);
    } catch (err) {
      if (err instanceof ServerReplyError && /not allowed/i.test(err.reply.message)) {
        throw new DumpsDisabledError(client.address);
      }
      throw err;
    }
    for (const line of lines) {
      const entry = parseCachedumpLine(line, cls);
      if (entry) yield entry;
    }
  }
}

/**
 * `ITEM <key> [<bytes> b; <unix expiry> s]`, the expiry 0 for never. The
 * key is sent raw, so a key with a space cannot be read back: such lines are
 * skipped (one of the reasons the list is incomplete). Last access is unknown.
 */
export function parseCachedumpLine(line: string, slabClass: number): MetadumpEntry | undefined {
  const m = /^ITEM (\S+) \[(\d+) b; (\d+) s\]$/.exec(line);
  if (!m) return undefined;
  const exp = Number(m[3]);
  return {
    key: Buffer.from(m[1]!, 'latin1'),
    base64: false,
    exp: exp === 0 ? -1 : exp,
    la: 0,
    cas: 0n,
    fetched: false,
    slabClass,
    size: Number(m[2]),
  };
}

const BLOCK_BYTES = 1 << 22;
/** Keys per group: a group's start offset is stored, a key's is summed from the group's lengths. */
const GROUP = 16;
const GROUP_BYTES_MAX = GROUP * 255;
const SIZE_UNIT = 32;
const NEVER = 0xffff;
const FAR = 0xfffe;

/**
 * Seconds since last access as 16 bits: exact for the first 32768 s (9 h),
 * then in 64 s steps up to about 24 days, older clamped. Hottest-first order
 * needs fine steps only among recent keys.
 */
function ageCode(age: number): number {
  if (age <= 0) return 0;
  if (age < 32768) return age;
  return Math.min(0xffff, 32768 + Math.floor((age - 32768) / 64));
}

function ageOf(code: number): number {
  return code < 32768 ? code : 32768 + (code - 32768) * 64;
}

/**
 * Keys held compactly while a job works through them, about key length plus
 * 7.4 bytes per key: key bytes packed in 4 MiB blocks (no copying as the list
 * grows), a start offset per 16 keys and a length per key, then 16-bit codes
 * for age (since last access), expiry and size, and a fetched bit. Ten
 * million 10-byte keys take about 175 MB. A full list refuses more keys and
 * counts them in `overflow`.
 */
export class KeyList {
  overflow = 0;
  /** The server's unix time the ages and expiries are counted from. */
  readonly now: number;
  private blocks: Buffer[] = [];
  private blockUsed = BLOCK_BYTES;
  private groupStarts: Uint32Array;
  private lengths: Uint8Array;
  private ages: Uint16Array;
  private expiries: Uint16Array;
  private sizes: Uint16Array;
  private fetchedBits: Uint8Array;
  private count = 0;
  private readonly maxKeys: number;
  private readonly maxBytes: number;

  /**
   * `expected`: how many keys are coming (the server's curr_items), to size
   * the arrays once; `now`: the server's time when listing starts.
   */
  constructor(limits: { maxKeys?: number; maxBytes?: number; expected?: number; now?: number } = {}) {
    this.maxKeys = limits.maxKeys ?? 50_000_000;
    this.maxBytes = Math.min(limits.maxBytes ?? 1024 * 1024 * 1024, 0xffffffff);
    this.now = limits.now ?? 0;
    const capacity = Math.max(1024, Math.min(this.maxKeys, Math.ceil((limits.expected ?? 0) * 1.05)));
    this.groupStarts = new Uint32Array(Math.ceil(capacity / GROUP));
    this.lengths = new Uint8Array(capacity);
    this.ages = new Uint16Array(capacity);
    this.expiries = new Uint16Array(capacity);
    this.sizes = new Uint16Array(capacity);
    this.fetchedBits = new Uint8Array(Math.ceil(capacity / 8));
  }

  get length(): number {
    return this.count;
  }

  /** Bytes held by the list. */
  get memoryBytes(): number {
    return (
      this.blocks.length * BLOCK_BYTES +
      this.groupStarts.byteLength +
      this.lengths.byteLength +
      this.ages.byteLength * 3 +
      this.fetchedBits.byteLength
    );
  }

  /**
   * Copies the key in; false (and counted) when the list is full. `lastAccess`
   * and `exp` are unix times in the server's clock, `exp` -1 for never.
   */
  push(key: Uint8Array, lastAccess: number, fetched: boolean, size = 0, exp = -1): boolean {
    const i = this.count;
    // A group never straddles two blocks, so its keys sit one after the other.
    const newBlock = i % GROUP === 0 && this.blockUsed + GROUP_BYTES_MAX > BLOCK_BYTES;
    if (
      i >= this.maxKeys ||
      key.length > 255 ||
      (newBlock && (this.blocks.length + 1) * BLOCK_BYTES > this.maxBytes)
    ) {
      this.overflow++;
      return false;
    }
    if (newBlock) {
      this.blocks.push(Buffer.allocUnsafeSlow(BLOCK_BYTES));
      this.blockUsed = 0;
    }
    if (i === this.lengths.length) this.grow(Math.ceil(i * 1.25));
    if (i % GROUP === 0)
      this.groupStarts[i / GROUP] = (this.blocks.length - 1) * BLOCK_BYTES + this.blockUsed;
    this.blocks[this.blocks.length - 1]!.set(key, this.blockUsed);
    this.blockUsed += key.length;
    this.count++;
    this.lengths[i] = key.length;
    this.ages[i] = ageCode(this.now - lastAccess);
    this.expiries[i] = exp < 0 ? NEVER : Math.max(0, Math.min(FAR, exp - this.now));
    this.sizes[i] = Math.min(0xffff, Math.ceil(size / SIZE_UNIT));
    if (fetched) this.fetchedBits[i >> 3]! |= 1 << (i & 7);
    return true;
  }

  /** The i-th key, a view into the list. */
  key(i: number): Buffer {
    const g = Math.floor(i / GROUP);
    let start = this.groupStarts[g]!;
    for (let k = g * GROUP; k < i; k++) start += this.lengths[k]!;
    const local = start % BLOCK_BYTES;
    return this.blocks[Math.floor(start / BLOCK_BYTES)]!.subarray(local, local + this.lengths[i]!);
  }

  /** Seconds from last access to `now` (exact up to 9 hours, in 64 s steps beyond). */
  age(i: number): number {
    return ageOf(this.ages[i]!);
  }

  /** Whether the key's listed expiry has passed at `serverNow` (false for never, or beyond 18 hours). */
  expiredAt(i: number, serverNow: number): boolean {
    const code = this.expiries[i]!;
    return code < FAR && this.now + code <= serverNow;
  }

  /** The item's size as listed, rounded up to 32 bytes (0 when unknown). */
  size(i: number): number {
    return this.sizes[i]! * SIZE_UNIT;
  }

  fetched(i: number): boolean {
    return (this.fetchedBits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  /**
   * Indexes hottest first: keys fetched before ahead of keys never fetched
   * (written but not read yet), each group by most recent access; ties keep
   * dump order. A counting sort over the 16-bit age codes.
   */
  hottestFirst(): Uint32Array {
    const n = this.count;
    const order = new Uint32Array(n);
    const span = 0x10000;
    const starts = new Uint32Array(2 * span + 1);
    for (let i = 0; i < n; i++) starts[(this.fetched(i) ? 0 : span) + this.ages[i]! + 1]!++;
    for (let b = 1; b < starts.length; b++) starts[b]! += starts[b - 1]!;
    for (let i = 0; i < n; i++) order[starts[(this.fetched(i) ? 0 : span) + this.ages[i]!]!++] = i;
    return order;
  }

  /** Indexes in the order the keys were listed. */
  dumpOrder(): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    return order;
  }

  private grow(capacity: number): void {
    const copy = <T extends Uint8Array | Uint16Array | Uint32Array>(from: T, to: T): T => {
      to.set(from as ArrayLike<number>);
      return to;
    };
    this.groupStarts = copy(this.groupStarts, new Uint32Array(Math.ceil(capacity / GROUP)));
    this.lengths = copy(this.lengths, new Uint8Array(capacity));
    this.ages = copy(this.ages, new Uint16Array(capacity));
    this.expiries = copy(this.expiries, new Uint16Array(capacity));
    this.sizes = copy(this.sizes, new Uint16Array(capacity));
    this.fetchedBits = copy(this.fetchedBits, new Uint8Array(Math.ceil(capacity / 8)));
  }
}

/** The clock of a server (`stats` time), in its unix seconds, and how it moves on from here. */
export class ServerClock {
  private constructor(
    private readonly base: number,
    private readonly at: number,
  ) {}

  static async of(client: MemcachedClient): Promise<ServerClock> {
    const stats = await client.stats();
    const time = Number(stats.get('time'));
    if (!Number.isFinite(time)) {
      throw new MemshiftError('MEMSHIFT_ERR_PROTOCOL', `${client.address}: stats has no time`);
    }
    return new ServerClock(time, performance.now());
  }

  /** The server's unix time now: its `stats` time plus the time elapsed here since (never the local wall clock). */
  now(): number {
    return this.base + Math.floor((performance.now() - this.at) / 1000);
  }
}

/**
 * Lists a server's keys into `list` as fast as the dump comes: each line is
 * parsed and copied in as it is read, with no hop through a generator, so
 * the crawler is held as briefly as possible. `accept` sees each entry first;
 * a refused key is not kept. Same methods and fallbacks as enumerateKeys.
 * Returns the number of keys listed.
 */
export async function collectKeys(
  client: MemcachedClient,
  list: KeyList,
  accept: (entry: MetadumpEntry) => boolean = () => true,
  options: EnumerateOptions & { readonly connection?: Partial<ConnectionOptions> } = {},
): Promise<number> {
  let seen = 0;
  const onEntry = (entry: MetadumpEntry): void => {
    seen++;
    if (accept(entry)) list.push(entry.key, entry.la, entry.fetched, entry.size, entry.exp);
  };
  const methods = options.methods ?? ALL_METHODS;
  const fast = methods.filter((m) => m !== 'cachedump');
  if (fast.length > 0) {
    const info = options.info ?? { method: undefined, warnings: [] };
    const release = await acquireCrawler(client.address);
    let refusal: string | undefined;
    try {
      refusal = await streamMetadump(client, fast, onEntry, options, () => seen, info);
    } finally {
      release();
    }
    if (refusal === undefined) return seen;
    if (!methods.includes('cachedump')) {
      throw new MemshiftError('MEMSHIFT_ERR_METADUMP', `${client.address}: cannot list keys (${refusal})`);
    }
    options = { ...options, methods: ['cachedump'], info, lastRefusal: refusal } as EnumerateOptions;
  }
  for await (const entry of enumerateKeys(client, options)) onEntry(entry);
  return seen;
}

/** Tries the metadump methods in order; undefined when one listed the keys, else the last refusal. */
async function streamMetadump(
  client: MemcachedClient,
  methods: readonly EnumerationMethod[],
  onEntry: (entry: MetadumpEntry) => void,
  options: EnumerateOptions & { readonly connection?: Partial<ConnectionOptions> },
  listed: () => number,
  info: EnumerationInfo,
): Promise<string | undefined> {
  let refusal = '';
  for (const method of methods) {
    const mode = method === 'metadump-hash' ? 'hash' : 'all';
    let busy = 0;
    while (true) {
      info.method = method;
      const conn = new Connection(client.endpoint, { ...options.connection, maxPending: 1 });
      let line: string | undefined;
      let failure: unknown;
      try {
        const [last] = await conn.request(
          encodeLine(['lru_crawler', 'metadump', mode]),
          'stream',
          `lru_crawler metadump ${mode}`,
          (frame) => {
            if (frame.kind === 'metadump') onEntry(frame.entry);
            else if (frame.kind === 'line') {
              line = frame.line;
              return true;
            }
            return false;
          },
        );
        if (last?.kind === 'error') failure = new ServerReplyError(client.address, last);
        else if (line !== undefined) {
          failure = new MemshiftError(
            'MEMSHIFT_ERR_METADUMP',
            `${client.address}: lru_crawler metadump: ${line}`,
          );
        }
      } catch (err) {
        failure = err;
      } finally {
        conn.destroy();
      }
      if (failure === undefined) return undefined;
      if (listed() > 0) throw failure;
      const why = classify(client.address, failure);
      if (why === 'busy' && busy < (options.busyRetries ?? 10)) {
        busy++;
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      if (why === 'busy') throw busyError(client.address);
      if (why === undefined) throw failure;
      refusal = why;
      break;
    }
  }
  info.method = undefined;
  return refusal;
}
