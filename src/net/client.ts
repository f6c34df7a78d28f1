import type {
  AsciiResponse,
  MetaCommand,
  MetaResponse,
  MetadumpEntry,
  RetrievalCommand,
  StorageCommand,
  ValueResponse,
} from '../protocol/ascii-frames.js';
import { encodeLine, encodeMeta, encodeRetrieval, encodeStorage } from '../protocol/ascii.js';
import { metaKeyFits } from '../protocol/meta.js';
import { MemshiftError } from '../protocol/errors.js';
import { parseEndpoint, type Endpoint } from './address.js';
import {
  Connection,
  DEFAULT_CONNECTION_OPTIONS,
  zeroCounters,
  type ConnectionCounters,
  type ConnectionOptions,
} from './connection.js';
import { ServerReplyError } from './errors.js';
import { Ring } from './ring.js';

export type Key = Buffer | string;

export interface ClientOptions extends ConnectionOptions {
  /** Connections to the server; requests go to the least busy one. */
  readonly connections: number;
  /** Metadump entries read ahead of the consumer before reading pauses. */
  readonly dumpReadAhead: number;
}

export interface Item {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly flags: number;
  /** Present for gets/gats. */
  readonly cas: bigint | undefined;
}

export interface StoreOptions {
  /** Client flags, 32-bit unsigned (default 0). */
  readonly flags?: number;
  /** Seconds, unix time, or 0 for never (default 0). */
  readonly exptime?: number;
}

export type StoreResult = 'STORED' | 'NOT_STORED' | 'EXISTS' | 'NOT_FOUND';

export type MetadumpMode = 'hash' | 'all';

/**
 * A client for one memcached server: a small pool of pipelined ASCII
 * connections, text and meta commands. Keys are bytes (strings are taken as
 * UTF-8). The server's error replies reject with ServerReplyError; a server
 * that cannot be reached rejects with ConnectionError, a silent one with
 * TimeoutError.
 *
 * Meta commands must not carry the `q` flag here: replies are matched to
 * requests by order, and a suppressed reply would shift them.
 */
export class MemcachedClient {
  readonly endpoint: Endpoint;
  private readonly options: ClientOptions;
  private readonly pool: Connection[];
  private next = 0;

  constructor(address: string | Endpoint, options: Partial<ClientOptions> = {}) {
    this.endpoint = typeof address === 'string' ? parseEndpoint(address) : address;
    this.options = { ...DEFAULT_CONNECTION_OPTIONS, connections: 1, dumpReadAhead: 262_144, ...options };
    const size = Math.max(1, Math.floor(this.options.connections));
    this.pool = Array.from({ length: size }, () => new Connection(this.endpoint, this.options));
  }

  get address(): string {
    return this.endpoint.address;
  }

  /** Requests queued or in flight over all connections. */
  get pending(): number {
    let n = 0;
    for (const c of this.pool) n += c.pending;
    return n;
  }

  /** Local ports of the connections now open (they change when a connection is redialled). */
  localPorts(): number[] {
    return this.pool.flatMap((c) => c.localPorts());
  }

  /** Counters summed over the pool's connections. */
  get counters(): ConnectionCounters {
    const sum = zeroCounters();
    for (const c of this.pool) {
      for (const name of Object.keys(sum) as (keyof ConnectionCounters)[]) sum[name] += c.counters[name];
    }
    return sum;
  }

  async get(key: Key): Promise<Item | undefined> {
    return (await this.retrieve('get', [key]))[0];
  }

  async gets(key: Key): Promise<Item | undefined> {
    return (await this.retrieve('gets', [key]))[0];
  }

  /** The items found, in the server's order; missing keys are simply absent. */
  getMany(keys: Key[], options: { cas?: boolean } = {}): Promise<Item[]> {
    return this.retrieve(options.cas ? 'gets' : 'get', keys);
  }

  /** Get-and-touch: fetches and sets a new expiry. */
  gat(exptime: number, keys: Key[], options: { cas?: boolean } = {}): Promise<Item[]> {
    return this.retrieve(options.cas ? 'gats' : 'gat', keys, exptime);
  }

  set(key: Key, value: Buffer | string, options: StoreOptions = {}): Promise<StoreResult> {
    return this.store('set', key, value, options);
  }

  add(key: Key, value: Buffer | string, options: StoreOptions = {}): Promise<StoreResult> {
    return this.store('add', key, value, options);
  }

  replace(key: Key, value: Buffer | string, options: StoreOptions = {}): Promise<StoreResult> {
    return this.store('replace', key, value, options);
  }

  append(key: Key, value: Buffer | string): Promise<StoreResult> {
    return this.store('append', key, value, {});
  }

  prepend(key: Key, value: Buffer | string): Promise<StoreResult> {
    return this.store('prepend', key, value, {});
  }

  /** Stores only if the item's CAS value is still `cas` (EXISTS if it changed, NOT_FOUND if gone). */
  cas(key: Key, value: Buffer | string, cas: bigint, options: StoreOptions = {}): Promise<StoreResult> {
    return this.store('cas', key, value, options, cas);
  }

  async store(
    command: StorageCommand,
    key: Key,
    value: Buffer | string,
    options: StoreOptions = {},
    cas?: bigint,
  ): Promise<StoreResult> {
    const parts = encodeStorage(
      command,
      toKey(key),
      typeof value === 'string' ? Buffer.from(value) : value,
      options.flags ?? 0,
      options.exptime ?? 0,
      cas === undefined ? {} : { cas },
    );
    const reply = await this.single(parts, command);
    if (reply.kind === 'status') {
      switch (reply.status) {
        case 'STORED':
        case 'NOT_STORED':
        case 'EXISTS':
        case 'NOT_FOUND':
          return reply.status;
      }
    }
    throw this.unexpected(command, reply);
  }

  /** True if the key was deleted, false if it was not there. */
  async delete(key: Key): Promise<boolean> {
    const reply = await this.single(encodeLine(['delete', toKey(key)]), 'delete');
    if (reply.kind === 'status' && (reply.status === 'DELETED' || reply.status === 'NOT_FOUND')) {
      return reply.status === 'DELETED';
    }
    throw this.unexpected('delete', reply);
  }

  /** The new value, or undefined when the key is missing. */
  incr(key: Key, delta: bigint | number = 1n): Promise<bigint | undefined> {
    return this.arithmetic('incr', key, delta);
  }

  decr(key: Key, delta: bigint | number = 1n): Promise<bigint | undefined> {
    return this.arithmetic('decr', key, delta);
  }

  /** True if the key exists and got the new expiry. */
  async touch(key: Key, exptime: number): Promise<boolean> {
    const reply = await this.single(encodeLine(['touch', toKey(key), String(exptime)]), 'touch');
    if (reply.kind === 'status' && (reply.status === 'TOUCHED' || reply.status === 'NOT_FOUND')) {
      return reply.status === 'TOUCHED';
    }
    throw this.unexpected('touch', reply);
  }

  /** `stats [args]` as a name → value map (`stats`, `stats settings`, `stats slabs`, ...). */
  async stats(args: string[] = []): Promise<Map<string, string>> {
    const frames = await this.list(encodeLine(['stats', ...args]), 'stats');
    const stats = new Map<string, string>();
    for (const frame of frames) if (frame.kind === 'stat') stats.set(frame.name, frame.value);
    return stats;
  }

  /** Lines of a stats reply that are not STAT lines (`stats cachedump` ITEM lines, `stats detail dump`). */
  async statsLines(args: string[]): Promise<string[]> {
    const frames = await this.list(encodeLine(['stats', ...args]), 'stats');
    return frames.flatMap((frame) => (frame.kind === 'line' ? [frame.line] : []));
  }

  async version(): Promise<string> {
    const reply = await this.single(encodeLine(['version']), 'version');
    if (reply.kind === 'version') return reply.version;
    throw this.unexpected('version', reply);
  }

  async flushAll(delay?: number): Promise<void> {
    const words = delay === undefined ? ['flush_all'] : ['flush_all', String(delay)];
    const reply = await this.single(encodeLine(words), 'flush_all');
    if (reply.kind !== 'status' || reply.status !== 'OK') throw this.unexpected('flush_all', reply);
  }

  async verbosity(level: number): Promise<void> {
    const reply = await this.single(encodeLine(['verbosity', String(level)]), 'verbosity');
    if (reply.kind !== 'status' || reply.status !== 'OK') throw this.unexpected('verbosity', reply);
  }

  /** Meta get (`mg`): flags as tokens, e.g. ['v', 'f', 't']. EN on a miss. */
  mg(key: Key, flags: string[]): Promise<MetaResponse> {
    return this.meta('mg', key, flags);
  }

  /** Meta set (`ms`): e.g. ['T60', 'F0', 'ME'] for an add with a 60 s TTL. */
  ms(key: Key, value: Buffer | string, flags: string[]): Promise<MetaResponse> {
    return this.meta('ms', key, flags, typeof value === 'string' ? Buffer.from(value) : value);
  }

  md(key: Key, flags: string[] = []): Promise<MetaResponse> {
    return this.meta('md', key, flags);
  }

  ma(key: Key, flags: string[] = []): Promise<MetaResponse> {
    return this.meta('ma', key, flags);
  }

  /** Any meta command; the reply is returned as is (HD, VA, EN, NF, NS, EX, MN, ME). */
  async meta(command: MetaCommand, key: Key, flags: string[], value?: Buffer): Promise<MetaResponse> {
    for (const flag of flags) {
      if (flag.startsWith('q')) {
        throw new MemshiftError(
          'MEMSHIFT_ERR_USAGE',
          `the "q" meta flag cannot be used here: replies are paired by order`,
        );
      }
    }
    const bytes = toKey(key);
    // A key memcached would refuse before reading the data block would make it read the value as commands.
    if (command !== 'mn' && !metaKeyFits(bytes)) {
      throw new MemshiftError(
        'MEMSHIFT_ERR_KEY',
        `${this.address}: a ${bytes.length}-byte key that no meta command can carry (over 250 bytes, or over 186 needing base64)`,
      );
    }
    const reply = await this.single(encodeMeta(command, bytes, flags, value), command);
    if (reply.kind === 'meta') return reply;
    throw this.unexpected(command, reply);
  }

  /**
   * Streams `lru_crawler metadump <mode>` on a connection of its own (the
   * server refuses other commands pipelined with a dump and ignores what
   * follows it). Reading pauses while `dumpReadAhead` entries wait for the
   * consumer, so memory stays bounded however many keys the server holds;
   * but a paused dump holds the server's LRU crawler, which can stall other
   * clients' requests on that server. Consume entries without I/O per entry
   * (collect, sample, count) and do slow work after the dump ends.
   */
  async *metadump(mode: MetadumpMode | number = 'hash'): AsyncGenerator<MetadumpEntry> {
    const conn = new Connection(this.endpoint, { ...this.options, maxPending: 1 });
    const ahead = new Ring<MetadumpEntry>(1024);
    const high = Math.max(1, this.options.dumpReadAhead);
    let finished = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const sink = (frame: AsciiResponse): boolean => {
      if (frame.kind === 'metadump') {
        ahead.push(frame.entry);
        if (ahead.length >= high) conn.pause();
        wake?.();
        return false;
      }
      if (frame.kind === 'status' && frame.status === 'OK') return false;
      if (frame.kind === 'line') {
        failure = new MemshiftError(
          'MEMSHIFT_ERR_METADUMP',
          `${this.address}: lru_crawler metadump: ${frame.line}`,
        );
        return true;
      }
      return false;
    };
    conn
      .request(encodeLine(['lru_crawler', 'metadump', String(mode)]), 'stream', 'lru_crawler metadump', sink)
      .then(
        (frames) => {
          const last = frames[0];
          if (last?.kind === 'error') failure = new ServerReplyError(this.address, last);
          finished = true;
          wake?.();
        },
        (err: Error) => {
          failure = err;
          finished = true;
          wake?.();
        },
      );
    try {
      while (true) {
        const entry = ahead.shift();
        if (entry !== undefined) {
          if (ahead.length <= high / 4) conn.resume();
          yield entry;
          continue;
        }
        if (finished) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (failure) throw failure;
    } finally {
      conn.destroy();
    }
  }

  /** Waits for requests in flight, then closes every connection. */
  async close(): Promise<void> {
    await Promise.all(this.pool.map((c) => c.close()));
  }

  /** Closes every connection now; pending requests fail. */
  destroy(): void {
    for (const c of this.pool) c.destroy();
  }

  private async retrieve(command: RetrievalCommand, keys: Key[], exptime?: number): Promise<Item[]> {
    if (keys.length === 0) return [];
    const frames = await this.list(encodeRetrieval(command, keys.map(toKey), exptime), command);
    const items: Item[] = [];
    for (const frame of frames) if (frame.kind === 'value') items.push(toItem(frame));
    return items;
  }

  private async arithmetic(
    command: 'incr' | 'decr',
    key: Key,
    delta: bigint | number,
  ): Promise<bigint | undefined> {
    const reply = await this.single(encodeLine([command, toKey(key), BigInt(delta).toString()]), command);
    if (reply.kind === 'number') return reply.value;
    if (reply.kind === 'status' && reply.status === 'NOT_FOUND') return undefined;
    throw this.unexpected(command, reply);
  }

  private async single(parts: Buffer[], doing: string): Promise<AsciiResponse> {
    const [reply] = await this.pick().request(parts, 'single', doing);
    if (!reply) throw new MemshiftError('MEMSHIFT_ERR_PROTOCOL', `${this.address}: ${doing}: empty reply`);
    if (reply.kind === 'error') throw new ServerReplyError(this.address, reply);
    return reply;
  }

  private async list(parts: Buffer[], doing: string): Promise<AsciiResponse[]> {
    const frames = await this.pick().request(parts, 'list', doing);
    const first = frames[0];
    if (frames.length === 1 && first?.kind === 'error') throw new ServerReplyError(this.address, first);
    return frames;
  }

  private pick(): Connection {
    const pool = this.pool;
    if (pool.length === 1) return pool[0] as Connection;
    let best = pool[this.next % pool.length] as Connection;
    this.next++;
    for (const c of pool) if (c.pending < best.pending) best = c;
    return best;
  }

  private unexpected(doing: string, reply: AsciiResponse): MemshiftError {
    return new MemshiftError(
      'MEMSHIFT_ERR_PROTOCOL',
      `${this.address}: unexpected reply to ${doing}: ${reply.kind}`,
    );
  }
}

function toKey(key: Key): Buffer {
  return typeof key === 'string' ? Buffer.from(key) : key;
}

function toItem(frame: ValueResponse): Item {
  return { key: frame.key, value: frame.value, flags: frame.flags, cas: frame.cas };
}
