/**
 * Two-way mirroring for the switch window (DESIGN.md invariant 10): while
 * application hosts move to the new pool one by one, both pools are written,
 * so one mirror runs on each side (old → new on the old servers, new → old on
 * the new ones) and each must neither mirror back the other's writes nor let
 * crossing writes leave the pools different.
 *
 * Both mirrors of a pair bind their target connections to local ports of one
 * agreed range (`--two-way-ports`), outside every host's ephemeral range. A
 * captured connection to our source from such a port is therefore the peer
 * mirror writing: it is parsed like any client (so we know which keys the
 * peer changed and when) but never replayed, which is what breaks the loop.
 * The range is deliberately not dropped by the kernel filter: the peer's
 * writes are the evidence for the two rules below.
 *
 * 1. Crossing writes. A write to key k on side A (captured at tA) is
 *    replayed to B; a write to k on B (tB) is replayed to A. When each
 *    replay lands after the other side's own write, A ends with B's value
 *    and B with A's. Each side then sees the peer's write to k land on its
 *    source after its own local write, within the lag of the two mirrors:
 *    a peer write landing from just before (ORDER_SLACK_MS, for servers that
 *    apply two connections' writes in another order than the capture saw)
 *    to the conflict window after a local write deletes the key on the
 *    target. Both sides see the crossing, so both pools lose k: a miss, never
 *    a wrong value. A peer write that landed earlier than that is older than
 *    ours: our replay carries the newer value to the peer, nothing to do.
 * 2. Fill on read. A hit read on A may be a value B has since deleted or
 *    replaced (the peer's replay has not landed on A yet). A fill is not
 *    queued when the peer wrote k within the window, and a peer write that
 *    lands within the window after a fill deletes k on the target (rule 1,
 *    the fill counting as a local write).
 *
 * A conflict fires once per local write: our delete lands on the peer's
 * source as a peer write, and the peer's delete on ours, and neither may start
 * another round (the two mirrors would delete the key back and forth until the
 * window passed). After a conflict, no write from either side can make the
 * pools differ again until this side writes the key anew.
 *
 * The window must cover both mirrors' lag (capture to the write landing on
 * the other side): it widens by itself to three times the longest lag this
 * side measured over the last ten seconds, so a mirror that falls behind
 * deletes more, never leaves a crossing in place, and one that caught up
 * stops deleting keys for a lag that has passed.
 *
 * Times live in two fixed tables indexed by two hashes of the key, each slot
 * holding the latest time of any key that maps there: a collision can only
 * make a time look later, so it can only add a delete, never miss a conflict.
 * The keys already resolved are held exactly, for one window, in a bounded
 * map; when it is full a key is not marked resolved (more deletes, never fewer).
 */
import { mix32 } from './key-hash.js';
import { MemshiftError } from '../protocol/errors.js';

/** Local ports both mirrors of a two-way pair bind their target connections to. */
export interface PortRange {
  readonly low: number;
  readonly high: number;
}

export function parsePortRange(text: string): PortRange {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const low = m ? Number(m[1]) : NaN;
  const high = m ? Number(m[2]) : NaN;
  if (!(low >= 1024 && high <= 65535 && low <= high)) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_USAGE',
      `port range must be LOW-HIGH between 1024 and 65535 (e.g. 20400-20499), got "${text}"`,
    );
  }
  return { low, high };
}

export function inPortRange(range: PortRange, port: number): boolean {
  return port >= range.low && port <= range.high;
}

/** Hands out the range's ports in turn (a port still in TIME_WAIT fails to bind; the next dial takes the next). */
export class PortAllocator {
  private next: number;

  constructor(readonly range: PortRange) {
    this.next = range.low;
  }

  take(): number {
    const port = this.next;
    this.next = port >= this.range.high ? this.range.low : port + 1;
    return port;
  }
}

/** A range this process shares between all its replayers (one port per connection). */
const allocators = new Map<string, PortAllocator>();

export function allocatorFor(range: PortRange): PortAllocator {
  const name = `${range.low}-${range.high}`;
  let allocator = allocators.get(name);
  if (!allocator) allocators.set(name, (allocator = new PortAllocator(range)));
  return allocator;
}

export interface TwoWayOptions {
  readonly ports: PortRange;
  /** Writes to one key from both sides this close in time (ms) are a conflict (default 5000). */
  readonly conflictWindowMs?: number;
  /** Slots per time table (default 2^18, 8 bytes each, two tables). */
  readonly slots?: number;
  /** Keys remembered as resolved within the window, at most (default 100,000). */
  readonly maxResolved?: number;
}

export const DEFAULT_CONFLICT_WINDOW_MS = 5000;
/** How much earlier than a local write a peer write may be captured and still have landed after it. */
export const ORDER_SLACK_MS = 50;
/** Seconds of measured lag the window follows. */
const LAG_SECONDS = 10;

/** The latest local and peer write time of every key, within bounded memory. */
export class WriteTimes {
  /** The configured window; `windowMs` is this or more when the mirrors lag. */
  readonly configuredMs: number;
  /** The longest lag of each of the last LAG_SECONDS seconds (ring indexed by the second). */
  private readonly lagBySecond = new Float64Array(LAG_SECONDS);
  private readonly lagSecond = new Float64Array(LAG_SECONDS).fill(-1);
  private readonly local: Float64Array;
  private readonly peer: Float64Array;
  private readonly mask: number;
  /** Key (latin1) → the local write time a conflict already answered; oldest first. */
  private readonly resolved = new Map<string, number>();
  private readonly maxResolved: number;

  constructor(options: TwoWayOptions) {
    this.maxResolved = options.maxResolved ?? 100_000;
    this.configuredMs = options.conflictWindowMs ?? DEFAULT_CONFLICT_WINDOW_MS;
    let n = 16;
    while (n < (options.slots ?? 1 << 18) && n < 1 << 24) n *= 2;
    this.local = new Float64Array(n).fill(-Infinity);
    this.peer = new Float64Array(n).fill(-Infinity);
    this.mask = n - 1;
  }

  /** The window in force: the configured one, or three times the longest lag of the last seconds. */
  get windowMs(): number {
    const now = Math.floor(Date.now() / 1000);
    let lag = 0;
    for (let i = 0; i < LAG_SECONDS; i++) {
      if (this.lagSecond[i]! > now - LAG_SECONDS && this.lagBySecond[i]! > lag) lag = this.lagBySecond[i]!;
    }
    return Math.max(this.configuredMs, 3 * lag);
  }

  /**
   * A write of ours landed on the target `ms` after its capture. Only recent
   * lags widen the window: a crossing happens between writes made now, so a
   * spike that passed (a mirror starting, a backfill's burst) no longer
   * stands for the lag of writes being made.
   */
  observeLag(ms: number, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    const slot = second % LAG_SECONDS;
    if (this.lagSecond[slot] !== second) {
      this.lagSecond[slot] = second;
      this.lagBySecond[slot] = 0;
    }
    if (ms > this.lagBySecond[slot]!) this.lagBySecond[slot] = ms;
  }

  /** Records a write replayed from this side at `ms`; true if a peer write to the key landed after it. */
  localWrite(key: Buffer, hash: number, ms: number): boolean {
    this.record(this.local, hash, ms);
    if (this.latest(this.peer, hash) < ms - Math.min(ORDER_SLACK_MS, this.windowMs)) return false;
    return this.resolve(key, this.latest(this.local, hash), ms);
  }

  /**
   * Records a peer write landing on our source at `ms`; true if we wrote the
   * key within the window and no conflict has answered that write yet.
   */
  peerWrite(key: Buffer, hash: number, ms: number): boolean {
    this.record(this.peer, hash, ms);
    const local = this.latest(this.local, hash);
    if (local < ms - this.windowMs) return false;
    return this.resolve(key, local, ms);
  }

  /** True (a conflict to act on) unless one already answered the local write at `local`. */
  private resolve(key: Buffer, local: number, ms: number): boolean {
    const text = key.toString('latin1');
    const done = this.resolved.get(text);
    if (done !== undefined && done >= local) return false;
    // Entries older than a window can no longer suppress anything that matters.
    for (const [oldKey, time] of this.resolved) {
      if (time >= ms - 2 * this.windowMs && this.resolved.size < this.maxResolved) break;
      this.resolved.delete(oldKey);
    }
    this.resolved.delete(text);
    this.resolved.set(text, local);
    return true;
  }

  /** Whether the peer wrote the key at or after `ms` minus the window. */
  peerWroteSince(hash: number, ms: number): boolean {
    return this.latest(this.peer, hash) >= ms - this.windowMs;
  }

  private record(table: Float64Array, hash: number, ms: number): void {
    const a = hash & this.mask;
    const b = mix32(hash ^ 0x9e3779b9) & this.mask;
    if (table[a]! < ms) table[a] = ms;
    if (table[b]! < ms) table[b] = ms;
  }

  /** Both slots hold at least the key's own latest time: their smaller one is the closest bound. */
  private latest(table: Float64Array, hash: number): number {
    return Math.min(table[hash & this.mask]!, table[mix32(hash ^ 0x9e3779b9) & this.mask]!);
  }
}
