/**
 * What a flow remembers of a request until its reply arrives, and the FIFO
 * that holds those records in the order the server will answer them.
 */
import type { OpCommand, OpOutcome, Operation } from './operation.js';

/** Reply classes a request can be answered with, as bits (see ascii-pairing.ts and binary-pairing.ts). */
export type ReplyMask = number;

/**
 * One request waiting for its reply. A single monomorphic class for every
 * protocol keeps the pairing code's property accesses fast; fields a
 * protocol does not use stay at their defaults.
 */
export class PendingRequest {
  command: OpCommand = 'other';
  protocol: Operation['protocol'] = 'text';
  /** A copy, owned by the operation this becomes. */
  key: Buffer = EMPTY;
  value: Buffer | undefined = undefined;
  /** The value was over the value limit and skipped unread (`value` is then undefined). */
  oversize = false;
  /** The value was not kept for want of room in the pending byte budget (`value` is then undefined). */
  shed = false;
  /** Bytes of the pending budget this request holds until it is reported (its value, values read for it). */
  charged = 0;
  flags: number | undefined = undefined;
  exptime: number | undefined = undefined;
  delta: bigint | undefined = undefined;
  /** Binary incr/decr that creates a missing counter: its starting value (exptime holds its expiry). */
  initial: bigint | undefined = undefined;
  timestampMicros = 0;
  /** The command's name, for admin commands (never emitted, counted). */
  name: string | undefined = undefined;
  /** Replies it can be answered with. */
  expect: ReplyMask = 0;
  /**
   * A success sends no reply (text noreply, meta q, binary quiet opcodes):
   * when a later request's reply arrives first, this one had `silentOutcome`.
   */
  silent = false;
  silentOutcome: OpOutcome = 'unknown';
  /**
   * Text noreply: reported 'unknown' as soon as every request before it has
   * been reported (per-key order), whatever the reply; the server may still
   * send an error for it (protocol.txt, "Commands": noreply).
   */
  noreply = false;
  /** Meta `O` token or binary opaque, to pair by identity. */
  opaque: string | number | undefined = undefined;
  /** Meta: the reply carries the key (`k`), so it can be paired by key. */
  returnsKey = false;
  /** Binary opcode (loud form) and whether the request carried a CAS. */
  opcode = -1;
  cas = false;
  /** The flow was out of step when this was queued: its reply may be another request's. */
  unsure = false;
  /**
   * Sent while another connection's quiet write to the key was unconfirmed:
   * which of the two the source applied last is not known (held.ts).
   */
  contested = false;
  /** Read after a request-side hunt, before the flow was back in step: its bytes may be a value's. */
  hunted = false;
  /** A quiet mutation waiting in the hold (held.ts) for its outcome. */
  held = false;
  /** A loud mutation the hold follows until its reply, for quiet writes that overlap it. */
  tracked = false;
  /** The outcome it was reported with before its reply could tell (held.ts); its real one is checked against it. */
  reported: OpOutcome | undefined = undefined;
  /** Multi-key text retrieval: one slot per key, filled as VALUE lines arrive. */
  keys: Buffer[] | undefined = undefined;
  values: (Buffer | undefined)[] | undefined = undefined;
  valueFlags: number[] | undefined = undefined;
  /** Index of the next key a VALUE line may answer (memcached answers in request order). */
  nextKey = 0;
  /** A multi-frame reply (VALUE*, STAT*, binary Stat) has begun. */
  started = false;
}

const EMPTY = Buffer.alloc(0);

/** What one reply frame (not a retrieval's) says happened to the request in `p`. */
export interface ReplyOutcome {
  outcome: OpOutcome;
  /** The value the operation carries (the stored one, or the one read). */
  value: Buffer | undefined;
  flags: number | undefined;
  number: bigint | undefined;
}

/**
 * A FIFO of pending requests on a power-of-two ring: O(1) push and shift,
 * plus indexed reads, which pairing by opaque or key needs to look past the
 * head (net/ring.ts's Ring has no indexed access).
 */
export class PendingQueue {
  private items: (PendingRequest | undefined)[] = new Array<PendingRequest | undefined>(16);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(item: PendingRequest): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) & (this.items.length - 1)] = item;
    this.count++;
  }

  /** The i-th oldest request (0 is the head). */
  at(i: number): PendingRequest | undefined {
    return i < this.count ? this.items[(this.head + i) & (this.items.length - 1)] : undefined;
  }

  peek(): PendingRequest | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  last(): PendingRequest | undefined {
    return this.count === 0 ? undefined : this.items[(this.head + this.count - 1) & (this.items.length - 1)];
  }

  shift(): PendingRequest | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.count--;
    return item;
  }

  private grow(): void {
    const old = this.items;
    const next = new Array<PendingRequest | undefined>(old.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & (old.length - 1)];
    this.items = next;
    this.head = 0;
  }
}
