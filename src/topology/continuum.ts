/**
 * A hash ring ("continuum"): points sorted by value, each owned by a server
 * index. Built once per pool; a lookup is one binary search over a Uint32Array.
 */

/** How equal point values are ordered. C clients sort by (value, server index), so the lower
 * index answers; Java's TreeMap keeps the last point put, so the higher index answers. */
export type TieBreak = 'first' | 'last';

/** Insertion order fits in 21 bits next to a 32-bit value inside a double's 53-bit mantissa. */
const ORDER_BITS = 0x200000;

/** The most points a continuum holds. */
export const MAX_POINTS = ORDER_BITS - 1;

/** Refuses, before any point is computed, a ring whose weights ask for more than MAX_POINTS. */
export function checkPointCount(what: string, points: number): void {
  if (points > MAX_POINTS) {
    throw new RangeError(
      `${what} would put ${points} points on its ring (memshift holds at most ${MAX_POINTS}): lower the weights`,
    );
  }
}

/** The top bits of a hash pick a bucket of the ring, so a lookup searches a handful of points. */
const BUCKET_SHIFT = 20;
const BUCKETS = 1 << (32 - BUCKET_SHIFT);

export class Continuum {
  readonly values: Uint32Array;
  readonly owners: Uint16Array;
  /** starts[b]: index of the first point whose top bits are b or more (starts[BUCKETS] = size). */
  private readonly starts: Int32Array;

  /** `values[i]` is a point of server `owners[i]`, listed in the order the client adds them. */
  constructor(values: ArrayLike<number>, owners: ArrayLike<number>, tie: TieBreak = 'first') {
    const n = values.length;
    if (n >= ORDER_BITS) throw new RangeError(`a continuum of ${n} points is too large`);
    // Sorting packed doubles keeps the sort numeric and allocation-free per comparison.
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const order = tie === 'first' ? i : ORDER_BITS - 1 - i;
      packed[i] = values[i]! * ORDER_BITS + order;
    }
    packed.sort();
    this.values = new Uint32Array(n);
    this.owners = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const p = packed[i]!;
      const order = p % ORDER_BITS;
      const at = tie === 'first' ? order : ORDER_BITS - 1 - order;
      this.values[i] = (p - order) / ORDER_BITS;
      this.owners[i] = owners[at]!;
    }
    this.starts = new Int32Array(BUCKETS + 1);
    let p = 0;
    for (let b = 0; b <= BUCKETS; b++) {
      while (p < n && this.values[p]! >>> BUCKET_SHIFT < b) p++;
      this.starts[b] = p;
    }
  }

  get size(): number {
    return this.values.length;
  }

  /** The owner of the first point at or above `hash`, wrapping to the first point (ketama). */
  ceil(hash: number): number {
    const values = this.values;
    const bucket = hash >>> BUCKET_SHIFT;
    // Points of earlier buckets are below the hash and those of later ones above it.
    let lo = this.starts[bucket]!;
    let hi = this.starts[bucket + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (values[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === values.length ? 0 : lo]!;
  }

  /** The owner of the last point at or below `hash`, wrapping to the last point (Dalli). */
  floor(hash: number): number {
    const values = this.values;
    const bucket = hash >>> BUCKET_SHIFT;
    let lo = this.starts[bucket]!;
    let hi = this.starts[bucket + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (values[mid]! > hash) hi = mid;
      else lo = mid + 1;
    }
    return this.owners[lo === 0 ? values.length - 1 : lo - 1]!;
  }

  /** Points per owner, for balance reports. */
  pointsPerOwner(owners: number): Uint32Array {
    const counts = new Uint32Array(owners);
    for (const o of this.owners) counts[o]!++;
    return counts;
  }
}
