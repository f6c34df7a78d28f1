/**
 * Quiet mutations waiting for the reply that proves their outcome.
 *
 * A quiet request (binary SetQ, DeleteQ, AddQ..., meta `q`) gets no reply
 * when it succeeds; pairing learns it succeeded only when a later request's
 * reply passes it over. A connection that sends nothing but quiet writes
 * (binary clients with noreply, pipelined quiet batches) may never get that
 * reply, and meanwhile other connections write the same keys. Holding the
 * quiet request until then would apply it late, after newer writes, and put
 * an old value back on the target.
 *
 * So a held quiet mutation is reported early, when it has been held for
 * `holdMicros` (capture time) or when another connection sends a request for
 * the same key, whichever comes first.
 *
 * Held to its bound, it is reported with the outcome the target can safely
 * follow: set and delete are unconditional, their silent outcome (stored,
 * deleted) is what almost surely happened, and a late error reply revokes it
 * (the target then loses the key: a miss, never wrong data); every
 * conditional one (add, replace, cas, append, prepend, incr, decr, touch) is
 * reported 'unknown', which deletes the key on the target.
 *
 * Overtaken by another connection's request, the order of the two on the
 * source is not known: no reply bounds when the server applied the quiet one
 * (a client may still be sending it, a busy worker thread may still hold it),
 * so either may have been applied last. The quiet one is reported 'unknown'
 * and the overtaking request is marked contested: the key is deleted on the
 * target once it has been reported, and a read of it fills nothing. The same
 * holds the other way round: a quiet write sent while another connection's
 * write to the key awaits its reply may have been applied before or after
 * it, so both are contested. (Loud writes are followed once quiet ones have
 * been seen at all, so a text-only capture pays nothing for this.)
 */
import type { OpOutcome } from './operation.js';
import type { PendingRequest } from './pending.js';

/** What a held request's session does when the hold ends early. */
export interface HoldOwner {
  readonly connection: number;
  /** Reports `p` now with `outcome`; its real outcome, when it comes, is checked against it. */
  reportEarly(p: PendingRequest, outcome: OpOutcome): void;
}

export interface HoldCounters {
  /** Quiet mutations reported before their outcome was known: held for the whole bound. */
  heldExpired: number;
  /** ... because another connection sent a request for the same key. */
  heldOvertaken: number;
  /** Quiet writes sent while another connection's write to the key awaited its reply. */
  heldContested: number;
  /** Early reports a late reply contradicted: the key was deleted on the target. */
  heldRevoked: number;
}

/** memcached's binary and meta quiet modes apply to these; reads and fences are never held. */
function holdable(p: PendingRequest): boolean {
  switch (p.command) {
    case 'get':
    case 'gat':
    case 'flush_all':
    case 'other':
      return false;
    default:
      return p.key.length > 0;
  }
}

/** The outcome the target follows when a held request must be reported before its reply. */
export function earlyOutcome(p: PendingRequest): OpOutcome {
  if (p.unsure) return 'unknown';
  if (p.command === 'set' || p.command === 'delete') return p.silentOutcome;
  return 'unknown';
}

class Entry {
  constructor(
    readonly p: PendingRequest,
    readonly owner: HoldOwner,
    readonly key: string,
    readonly deadline: number,
  ) {}
}

export class QuietHold {
  readonly holdMicros: number;
  private readonly counters: HoldCounters;
  /** Held requests by key (latin1), oldest first. */
  private readonly byKey = new Map<string, Entry[]>();
  /** Every entry in hold order, for expiry; entries already released are skipped when reached. */
  private readonly fifo: Entry[] = [];
  private fifoHead = 0;
  /** Loud writes awaiting replies, by key, once any quiet write has been seen. */
  private readonly loud = new Map<string, { p: PendingRequest; connection: number }[]>();
  private quietSeen = false;

  constructor(holdMicros: number, counters: HoldCounters) {
    this.holdMicros = holdMicros;
    this.counters = counters;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Holds `p` (queued by `owner` at capture time `p.timestampMicros`) if it is a quiet mutation. */
  hold(p: PendingRequest, owner: HoldOwner, reported = false): void {
    if ((p.noreply && !reported) || !holdable(p)) return;
    const key = p.key.toString('latin1');
    if (!p.silent) {
      if (!this.quietSeen) return;
      p.tracked = true;
      const list = this.loud.get(key);
      if (list === undefined) this.loud.set(key, [{ p, connection: owner.connection }]);
      else list.push({ p, connection: owner.connection });
      return;
    }
    this.quietSeen = true;
    for (const other of this.loud.get(key) ?? []) {
      if (other.connection === owner.connection) continue;
      other.p.contested = true;
      if (!p.contested) this.counters.heldContested++;
      p.contested = true;
    }
    const entry = new Entry(p, owner, key, p.timestampMicros + this.holdMicros);
    p.held = true;
    const list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, [entry]);
    else list.push(entry);
    this.fifo.push(entry);
  }

  /**
   * A text noreply write, already reported in its turn: no reply bounds when
   * the server applied it either, so for the bound it counts as a quiet
   * write held, for contention only (it is not reported again).
   */
  holdReported(p: PendingRequest, owner: HoldOwner): void {
    if (!holdable(p)) return;
    p.reported ??= 'unknown';
    this.hold(p, owner, true);
  }

  /** `p` got its outcome through pairing: it is no longer held (nor followed). */
  settled(p: PendingRequest): void {
    if (p.tracked) {
      p.tracked = false;
      const key = p.key.toString('latin1');
      const list = this.loud.get(key);
      const i = list?.findIndex((e) => e.p === p) ?? -1;
      if (list !== undefined && i >= 0) list.splice(i, 1);
      if (list?.length === 0) this.loud.delete(key);
    }
    if (!p.held) return;
    p.held = false;
    const key = p.key.toString('latin1');
    const list = this.byKey.get(key);
    if (list === undefined) return;
    const i = list.findIndex((e) => e.p === p);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byKey.delete(key);
  }

  /**
   * `connection` sent a request for `key`: quiet mutations of other
   * connections held on that key are reported now ('unknown'), so they reach
   * the target before it. True when there were any: the request is contested.
   */
  overtake(key: Buffer, connection: number): boolean {
    if (this.byKey.size === 0 || key.length === 0) return false;
    const text = key.toString('latin1');
    const list = this.byKey.get(text);
    if (list === undefined) return false;
    let kept = 0;
    let overtaken = false;
    for (const entry of list.slice()) {
      if (entry.owner.connection === connection) {
        list[kept++] = entry;
        continue;
      }
      this.counters.heldOvertaken++;
      overtaken = true;
      entry.p.held = false;
      if (entry.p.reported === undefined) entry.owner.reportEarly(entry.p, 'unknown');
    }
    list.length = kept;
    if (kept === 0) this.byKey.delete(text);
    return overtaken;
  }

  /** Reports every request held past its bound at capture time `nowMicros`. */
  expire(nowMicros: number): void {
    while (this.fifoHead < this.fifo.length) {
      const entry = this.fifo[this.fifoHead]!;
      if (entry.p.held && entry.deadline > nowMicros) break;
      this.fifoHead++;
      if (!entry.p.held) continue;
      if (entry.p.reported === undefined) this.counters.heldExpired++;
      this.unlink(entry);
      this.release(entry);
    }
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo.splice(0, this.fifoHead);
      this.fifoHead = 0;
    }
  }

  private unlink(entry: Entry): void {
    const list = this.byKey.get(entry.key);
    if (list === undefined) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byKey.delete(entry.key);
  }

  private release(entry: Entry): void {
    entry.p.held = false;
    if (entry.p.reported === undefined) entry.owner.reportEarly(entry.p, earlyOutcome(entry.p));
  }
}
