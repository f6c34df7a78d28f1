import { mix32 } from './key-hash.js';

/**
 * When each key was last mutated, in the mirror's sequence of events, in fixed
 * memory: a table of slots indexed by two hashes of the key (like a Bloom
 * filter holding numbers). A mutation writes its sequence number into both of
 * the key's slots; a key counts as changed after a mark when both slots hold a
 * later number. Another key sharing both slots can only make the answer
 * "changed" where it was not, never the reverse: slots are overwritten, not
 * evicted, so memory stays bounded and the answer stays on the safe side.
 */
export class RecentMutations {
  private readonly slots: Float64Array;
  private readonly mask: number;
  private seq = 0;
  /** The last flush_all: every key changed then. */
  private flushedAt = -1;

  /** `size` is rounded up to a power of two (8 bytes per slot). */
  constructor(size: number) {
    let n = 16;
    while (n < size && n < 1 << 30) n *= 2;
    this.slots = new Float64Array(n).fill(-1);
    this.mask = n - 1;
  }

  /** The current point in the sequence; mutations recorded later compare greater. */
  mark(): number {
    return this.seq;
  }

  record(hash: number): void {
    const seq = ++this.seq;
    this.slots[hash & this.mask] = seq;
    this.slots[mix32(hash ^ 0x9e3779b9) & this.mask] = seq;
  }

  recordFlush(): void {
    this.flushedAt = ++this.seq;
  }

  changedSince(hash: number, mark: number): boolean {
    if (this.flushedAt > mark) return true;
    const a = this.slots[hash & this.mask]!;
    const b = this.slots[mix32(hash ^ 0x9e3779b9) & this.mask]!;
    return a > mark && b > mark;
  }
}
