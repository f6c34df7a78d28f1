/**
 * `memshift top --keys`: the hottest keys of a live server, from the same
 * capture path the mirror uses.
 *
 *   tcpdump → CapturePipeline → OperationExtractor → HotKeyTracker
 *
 * The tracker is the space-saving algorithm over a sliding window. It holds
 * at most `capacity` keys; a key not held takes the place of the held key
 * with the fewest requests in the window and inherits that count as its
 * error bound, so any key with more than (window requests / capacity)
 * requests is always held, and below capacity every count is exact. The
 * window is a ring of time buckets: each held key keeps one count per bucket,
 * and a bucket that falls out of the window is cleared for every key at once.
 *
 * Memory is fixed when the tracker is made: keys are copied into one arena of
 * capacity × 250 bytes (the longest key, protocol.txt "Keys"), counts live in
 * typed arrays, and the key index is an open-addressed table of slot numbers.
 * Nothing is allocated per operation, and no key becomes a string except for
 * display.
 */
import type { AddressRange } from '../capture/filter.js';
import { CapturePipeline, type CaptureCounters } from '../capture/pipeline.js';
import type { CaptureProgram } from '../capture/capture-program.js';
import { startTcpdump, type TcpdumpStats } from '../capture/tcpdump.js';
import { OperationExtractor, type OperationCounters } from '../ops/extractor.js';
import type { Operation } from '../ops/operation.js';
import { MemshiftError } from '../protocol/errors.js';
import { KEY_MAX_BYTES } from '../protocol/limits.js';
import { keyHash } from '../replay/key-hash.js';
import { escapeBytes } from './dump.js';

export type HotKeyOrder = 'requests' | 'bytes';

export interface HotKeyTrackerOptions {
  /** Length of the sliding window, in seconds. */
  readonly windowSeconds: number;
  /** Most keys held at once (the hard cap on memory). */
  readonly capacity: number;
  /** Time buckets the window is cut into (default 10): expiry happens a bucket at a time. */
  readonly buckets?: number;
}

export interface HotKeyCounters {
  /** Operations counted (every keyed command). */
  operations: number;
  /** Operations with no key to count (flush_all, stats and other admin commands). */
  keyless: number;
  /** Operations older than the window when they arrived (a late capture batch), not counted. */
  late: number;
  /** Held keys that gave their place to a new key. */
  evicted: number;
}

export interface HotKeyRow {
  /** The key's bytes (a copy). */
  readonly key: Buffer;
  /** Requests in the window; at most `error` more than the true count. */
  readonly requests: number;
  readonly error: number;
  /** Value bytes of stores and of hits that carried a value, in the window. */
  readonly bytes: number;
  readonly hits: number;
  readonly misses: number;
}

export interface HotKeyTop {
  /** The time the figures are for, in microseconds. */
  readonly timeMicros: number;
  /** How much time the window's figures cover (less than the window just after start). */
  readonly spanSeconds: number;
  /** Every request and value byte in the window, held keys or not. */
  readonly requests: number;
  readonly bytes: number;
  /** Keys held now. */
  readonly tracked: number;
  readonly rows: HotKeyRow[];
}

const DEFAULT_BUCKETS = 10;

export class HotKeyTracker {
  readonly capacity: number;
  readonly windowSeconds: number;
  readonly counters: HotKeyCounters = { operations: 0, keyless: 0, late: 0, evicted: 0 };
  private readonly buckets: number;
  private readonly bucketMicros: number;
  private readonly arena: Buffer;
  private readonly keyLength: Uint8Array;
  private readonly hashes: Uint32Array;
  /** Per slot and bucket: slot * buckets + bucket. */
  private readonly requests: Uint32Array;
  private readonly inherited: Uint32Array;
  private readonly hits: Uint32Array;
  private readonly misses: Uint32Array;
  private readonly bytes: Float64Array;
  /** Per slot: requests in the window, the heap's order. */
  private readonly total: Float64Array;
  /** Min-heap of slots by `total`, and each slot's place in it. */
  private readonly heap: Int32Array;
  private readonly place: Int32Array;
  /** Open-addressed index: slot + 1, 0 for empty. */
  private readonly index: Int32Array;
  private readonly mask: number;
  /** Every operation per bucket, held key or not. */
  private readonly allRequests: Float64Array;
  private readonly allBytes: Float64Array;
  private size = 0;
  /** The newest bucket number (time / bucketMicros); -1 before the first operation. */
  private head = -1;
  private startMicros = -1;

  constructor(options: HotKeyTrackerOptions) {
    const capacity = Math.floor(options.capacity);
    if (!(capacity >= 1))
      throw new MemshiftError('MEMSHIFT_ERR_USAGE', 'hot key capacity must be at least 1');
    if (!(options.windowSeconds > 0))
      throw new MemshiftError('MEMSHIFT_ERR_USAGE', 'hot key window must be above 0 seconds');
    this.capacity = capacity;
    this.windowSeconds = options.windowSeconds;
    this.buckets = Math.max(1, Math.floor(options.buckets ?? DEFAULT_BUCKETS));
    this.bucketMicros = (options.windowSeconds * 1e6) / this.buckets;
    const cells = capacity * this.buckets;
    this.arena = Buffer.alloc(capacity * KEY_MAX_BYTES);
    this.keyLength = new Uint8Array(capacity);
    this.hashes = new Uint32Array(capacity);
    this.requests = new Uint32Array(cells);
    this.inherited = new Uint32Array(cells);
    this.hits = new Uint32Array(cells);
    this.misses = new Uint32Array(cells);
    this.bytes = new Float64Array(cells);
    this.total = new Float64Array(capacity);
    this.heap = new Int32Array(capacity);
    this.place = new Int32Array(capacity);
    let tableSize = 16;
    while (tableSize < capacity * 2) tableSize *= 2;
    this.index = new Int32Array(tableSize);
    this.mask = tableSize - 1;
    this.allRequests = new Float64Array(this.buckets);
    this.allBytes = new Float64Array(this.buckets);
  }

  /** Bytes the tracker holds, all allocated up front. */
  get memoryBytes(): number {
    return (
      this.arena.length +
      this.keyLength.byteLength +
      this.hashes.byteLength +
      this.requests.byteLength * 4 +
      this.bytes.byteLength +
      this.total.byteLength +
      this.heap.byteLength +
      this.place.byteLength +
      this.index.byteLength
    );
  }

  /** Keys held now. */
  get tracked(): number {
    return this.size;
  }

  /** Counts one operation: a request, its value bytes, and a hit or miss for reads. */
  add(op: Operation): void {
    if (op.command === 'flush_all' || op.command === 'other' || op.key.length === 0) {
      this.counters.keyless++;
      return;
    }
    const read = op.command === 'get' || op.command === 'gat';
    this.record(
      op.key,
      op.timestampMicros,
      op.value === undefined ? 0 : op.value.length,
      read && op.outcome === 'hit',
      read && op.outcome === 'miss',
    );
  }

  /** The counting step of `add`, for callers that have no Operation (benchmarks, tests). */
  record(key: Uint8Array, timestampMicros: number, valueBytes: number, hit: boolean, miss: boolean): void {
    const bucket = Math.floor(timestampMicros / this.bucketMicros);
    if (this.head < 0) {
      this.head = bucket;
      this.startMicros = timestampMicros;
    } else if (bucket > this.head) {
      this.advance(bucket);
    } else if (bucket <= this.head - this.buckets) {
      this.counters.late++;
      return;
    }
    this.counters.operations++;
    const b = bucket % this.buckets;
    this.allRequests[b]! += 1;
    this.allBytes[b]! += valueBytes;
    // Keys longer than memcached allows are cut to 250 bytes: still counted, never unbounded.
    const length = Math.min(key.length, KEY_MAX_BYTES);
    const hash = keyHash(length === key.length ? key : key.subarray(0, length));
    let slot = this.find(key, length, hash);
    if (slot < 0) slot = this.admit(key, length, hash);
    const cell = slot * this.buckets + b;
    this.requests[cell]! += 1;
    this.bytes[cell]! += valueBytes;
    if (hit) this.hits[cell]! += 1;
    if (miss) this.misses[cell]! += 1;
    this.total[slot]! += 1;
    this.siftDown(this.place[slot]!);
  }

  /**
   * The held keys with requests in the window, biggest first by `order`,
   * at most `limit` of them. `nowMicros` moves the window on first (a quiet
   * server's keys cool down too).
   */
  top(limit: number, order: HotKeyOrder = 'requests', nowMicros?: number): HotKeyTop {
    if (nowMicros !== undefined && this.head >= 0) this.advance(Math.floor(nowMicros / this.bucketMicros));
    const now = nowMicros ?? (this.head + 1) * this.bucketMicros;
    const n = this.buckets;
    const candidates: HotKeyRow[] = [];
    for (let slot = 0; slot < this.size; slot++) {
      if (this.total[slot] === 0) continue;
      let requests = 0;
      let error = 0;
      let bytes = 0;
      let hits = 0;
      let misses = 0;
      for (let cell = slot * n, end = cell + n; cell < end; cell++) {
        requests += this.requests[cell]!;
        error += this.inherited[cell]!;
        bytes += this.bytes[cell]!;
        hits += this.hits[cell]!;
        misses += this.misses[cell]!;
      }
      const at = slot * KEY_MAX_BYTES;
      const key = Buffer.from(this.arena.subarray(at, at + this.keyLength[slot]!));
      candidates.push({ key, requests, error, bytes, hits, misses });
    }
    const pick = order === 'bytes' ? (r: HotKeyRow) => r.bytes : (r: HotKeyRow) => r.requests;
    candidates.sort((x, y) => pick(y) - pick(x) || y.requests - x.requests || Buffer.compare(x.key, y.key));
    let requests = 0;
    let bytes = 0;
    for (let b = 0; b < n; b++) {
      requests += this.allRequests[b]!;
      bytes += this.allBytes[b]!;
    }
    return {
      timeMicros: now,
      spanSeconds: this.spanMicros(now) / 1e6,
      requests,
      bytes,
      tracked: this.size,
      rows: candidates.slice(0, Math.max(0, limit)),
    };
  }

  /**
   * The time the window's counts cover: the older full buckets and the
   * current one so far, and no more than the time since the first operation.
   */
  private spanMicros(now: number): number {
    if (this.head < 0) return 0;
    const full = (this.buckets - 1) * this.bucketMicros + (now - this.head * this.bucketMicros);
    return Math.max(0, Math.min(full, now - this.startMicros, this.windowSeconds * 1e6));
  }

  /** Moves the newest bucket to `bucket`, clearing those that leave the window. */
  private advance(bucket: number): void {
    if (bucket <= this.head) return;
    const steps = Math.min(bucket - this.head, this.buckets);
    for (let s = 1; s <= steps; s++) this.clearBucket((this.head + s) % this.buckets);
    this.head = bucket;
    // Totals only went down, unevenly: rebuild the heap (a bucket's worth of time apart, at most).
    for (let i = (this.size >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private clearBucket(b: number): void {
    this.allRequests[b] = 0;
    this.allBytes[b] = 0;
    for (let slot = 0, cell = b; slot < this.size; slot++, cell += this.buckets) {
      this.total[slot]! -= this.requests[cell]!;
      this.requests[cell] = 0;
      this.inherited[cell] = 0;
      this.hits[cell] = 0;
      this.misses[cell] = 0;
      this.bytes[cell] = 0;
    }
  }

  private find(key: Uint8Array, length: number, hash: number): number {
    const arena = this.arena;
    for (let i = hash & this.mask; ; i = (i + 1) & this.mask) {
      const entry = this.index[i]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.hashes[slot] !== hash || this.keyLength[slot] !== length) continue;
      const at = slot * KEY_MAX_BYTES;
      let same = true;
      for (let j = 0; j < length; j++) {
        if (arena[at + j] !== key[j]) {
          same = false;
          break;
        }
      }
      if (same) return slot;
    }
  }

  /**
   * Gives `key` a slot: a free one, or the held key with the fewest requests
   * in the window, whose counts it inherits as its error bound (space-saving).
   */
  private admit(key: Uint8Array, length: number, hash: number): number {
    let slot: number;
    const n = this.buckets;
    if (this.size < this.capacity) {
      slot = this.size++;
      this.total[slot] = 0;
      this.heap[slot] = slot;
      this.place[slot] = slot;
      this.siftUp(slot);
    } else {
      slot = this.heap[0]!;
      this.unindex(slot);
      this.counters.evicted++;
      for (let cell = slot * n, end = cell + n; cell < end; cell++) {
        this.inherited[cell] = this.requests[cell]!;
        this.hits[cell] = 0;
        this.misses[cell] = 0;
        this.bytes[cell] = 0;
      }
    }
    const at = slot * KEY_MAX_BYTES;
    for (let j = 0; j < length; j++) this.arena[at + j] = key[j]!;
    this.keyLength[slot] = length;
    this.hashes[slot] = hash;
    let i = hash & this.mask;
    while (this.index[i] !== 0) i = (i + 1) & this.mask;
    this.index[i] = slot + 1;
    return slot;
  }

  /** Removes a slot from the index, shifting later entries of its probe run back (no tombstones). */
  private unindex(slot: number): void {
    const mask = this.mask;
    let i = this.hashes[slot]! & mask;
    while (this.index[i] !== slot + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const entry = this.index[j]!;
      if (entry === 0) break;
      const home = this.hashes[entry - 1]! & mask;
      // The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      this.index[i] = entry;
      i = j;
    }
    this.index[i] = 0;
  }

  private siftUp(at: number): void {
    const heap = this.heap;
    const slot = heap[at]!;
    const value = this.total[slot]!;
    let i = at;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (this.total[above]! <= value) break;
      heap[i] = above;
      this.place[above] = i;
      i = parent;
    }
    heap[i] = slot;
    this.place[slot] = i;
  }

  private siftDown(at: number): void {
    const heap = this.heap;
    const size = this.size;
    const slot = heap[at]!;
    const value = this.total[slot]!;
    let i = at;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && this.total[heap[right]!]! < this.total[heap[child]!]!) child = right;
      const below = heap[child]!;
      if (this.total[below]! >= value) break;
      heap[i] = below;
      this.place[below] = i;
      i = child;
    }
    heap[i] = slot;
    this.place[slot] = i;
  }
}

export interface HotKeysOptions {
  /** Capture interface (`any`, `lo`, `eth0`). */
  readonly interface: string;
  /** Server ports whose traffic is counted. */
  readonly ports: readonly number[];
  readonly excludeClients?: readonly AddressRange[];
  readonly windowSeconds: number;
  /** Most keys held (default 10,000). */
  readonly capacity?: number;
  readonly tcpdumpPath?: string;
  /** memshift-capture (default when built) or tcpdump. */
  readonly captureProgram?: CaptureProgram | undefined;
}

export interface HotKeyEntry {
  /** The key, escaped for display (\xHH for bytes outside printable ASCII, \\ for a backslash). */
  readonly key: string;
  readonly requests: number;
  /** How many of `requests` may belong to keys this one displaced (0 below capacity). */
  readonly error: number;
  readonly requestsPerSec: number;
  readonly bytes: number;
  readonly bytesPerSec: number;
  readonly hits: number;
  readonly misses: number;
  /** hits / (hits + misses); undefined when the key was not read in the window. */
  readonly hitRatio: number | undefined;
  /** This key's part of every request in the window. */
  readonly share: number;
}

export interface HotKeysSnapshot {
  readonly time: number;
  readonly windowSeconds: number;
  readonly spanSeconds: number;
  readonly order: HotKeyOrder;
  readonly requests: number;
  readonly requestsPerSec: number;
  readonly bytesPerSec: number;
  readonly capacity: number;
  readonly tracked: number;
  readonly counters: HotKeyCounters;
  readonly operations: OperationCounters;
  readonly capture: CaptureCounters;
  readonly kernel: TcpdumpStats;
  readonly keys: HotKeyEntry[];
}

export interface HotKeys {
  readonly tracker: HotKeyTracker;
  snapshot(limit: number, order?: HotKeyOrder): HotKeysSnapshot;
  /** Stops capture (after the last kernel batch had time to arrive); resolves once tcpdump has exited. */
  stop(): Promise<void>;
  /** Why capture stopped by itself, if it did. */
  readonly error: MemshiftError | undefined;
}

/** From tcpdump the kernel hands packets over in batches up to a second late; memshift-capture within ms. */
const STOP_GRACE_MS = { prompt: 250, batched: 1200 } as const;

/** Starts tcpdump and counts every key it sees; resolves once capture runs. */
export async function startHotKeys(options: HotKeysOptions): Promise<HotKeys> {
  const tracker = new HotKeyTracker({
    windowSeconds: options.windowSeconds,
    capacity: options.capacity ?? 10_000,
  });
  const extractor = new OperationExtractor((op) => tracker.add(op));
  const pipeline = new CapturePipeline(extractor, {
    serverPorts: options.ports,
    excludeClients: options.excludeClients ?? [],
  });
  const tcpdump = startTcpdump({
    interface: options.interface,
    serverPorts: options.ports,
    ...(options.excludeClients ? { excludeClients: options.excludeClients } : {}),
    ...(options.tcpdumpPath === undefined ? {} : { tcpdumpPath: options.tcpdumpPath }),
    program: options.captureProgram,
  });
  let failure: MemshiftError | undefined;
  tcpdump.stdout.on('data', (chunk: Buffer) => {
    if (failure) return;
    try {
      pipeline.push(chunk);
    } catch (err) {
      // A malformed capture stream ends counting with a clear error, never the process.
      failure = err instanceof MemshiftError ? err : new MemshiftError('MEMSHIFT_ERR_CAPTURE', String(err));
      void tcpdump.stop();
    }
  });
  // A quiet capture brings no packets to sweep idle flows by capture time: sweep by the clock too.
  const sweeper = setInterval(() => pipeline.flows.sweep(Date.now() * 1000), 1000);
  sweeper.unref();
  void tcpdump.exited.then(() => clearInterval(sweeper));
  try {
    await tcpdump.ready;
  } catch (err) {
    clearInterval(sweeper);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    tracker,
    get error() {
      return failure ?? tcpdump.error;
    },
    snapshot(limit, order = 'requests') {
      const now = Date.now();
      const top = tracker.top(limit, order, now * 1000);
      const span = top.spanSeconds > 0 ? top.spanSeconds : 1;
      return {
        time: now,
        windowSeconds: tracker.windowSeconds,
        spanSeconds: top.spanSeconds,
        order,
        requests: top.requests,
        requestsPerSec: top.requests / span,
        bytesPerSec: top.bytes / span,
        capacity: tracker.capacity,
        tracked: top.tracked,
        counters: { ...tracker.counters },
        operations: { ...extractor.counters, commands: { ...extractor.counters.commands } },
        capture: pipeline.counters,
        kernel: { ...tcpdump.stats },
        keys: top.rows.map((row) => ({
          key: escapeBytes(row.key),
          requests: row.requests,
          error: row.error,
          requestsPerSec: row.requests / span,
          bytes: row.bytes,
          bytesPerSec: row.bytes / span,
          hits: row.hits,
          misses: row.misses,
          hitRatio: row.hits + row.misses > 0 ? row.hits / (row.hits + row.misses) : undefined,
          share: top.requests > 0 ? row.requests / top.requests : 0,
        })),
      };
    },
    stop() {
      stopping ??= (async () => {
        await new Promise((resolve) =>
          setTimeout(resolve, tcpdump.prompt ? STOP_GRACE_MS.prompt : STOP_GRACE_MS.batched),
        );
        clearInterval(sweeper);
        await tcpdump.stop();
        pipeline.flows.closeAll('end');
      })();
      return stopping;
    },
  };
}
