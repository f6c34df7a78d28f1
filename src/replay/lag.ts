/**
 * Replay lag, from capture time to the target's reply, as a log-scale
 * histogram: fixed memory, one Math.log2 per sample, about 9% resolution
 * (8 buckets per doubling of microseconds).
 */
const PER_DOUBLING = 8;
const BUCKETS = 40 * PER_DOUBLING;

export class LagHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private maxMs = 0;

  get count(): number {
    return this.total;
  }

  record(ms: number): void {
    const lag = ms > 0 ? ms : 0;
    const i = Math.min(BUCKETS - 1, Math.floor(Math.log2(lag * 1000 + 1) * PER_DOUBLING));
    this.counts[i]!++;
    this.total++;
    if (lag > this.maxMs) this.maxMs = lag;
  }

  /** The lag (ms) below which a `q` share (0..1) of samples fall; 0 without samples. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, (2 ** ((i + 1) / PER_DOUBLING) - 1) / 1000);
    }
    return this.maxMs;
  }

  get max(): number {
    return this.maxMs;
  }
}
