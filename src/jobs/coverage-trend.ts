/**
 * "When is it ready?": coverage of the new pool (keys, bytes, recently used
 * keys) measured again and again by `verify --watch`, and the time left until
 * each reaches a target at the current rate. The rate is the least-squares
 * slope of the last samples (a window of them, so an early burst of the
 * backfill does not promise too much later); no rise, no projection.
 */

export type CoverageMetric = 'keys' | 'bytes' | 'recent';
export const COVERAGE_METRICS: readonly CoverageMetric[] = ['keys', 'bytes', 'recent'];

export interface CoverageSample {
  /** Unix time, ms. */
  readonly at: number;
  readonly keys: number;
  readonly bytes: number;
  readonly recent: number;
}

export interface Projection {
  readonly coverage: number;
  /** Coverage gained per hour at the current rate (may be negative). */
  readonly perHour: number | undefined;
  /** Seconds until `target` at that rate: 0 when reached, undefined when not rising or unknown. */
  readonly secondsToTarget: number | undefined;
}

export class CoverageTrend {
  private readonly samples: CoverageSample[] = [];

  /** `window`: samples the rate is fitted on (also how many are kept). */
  constructor(
    readonly target: number,
    private readonly window = 10,
  ) {}

  add(sample: CoverageSample): void {
    this.samples.push(sample);
    if (this.samples.length > this.window) this.samples.shift();
  }

  get count(): number {
    return this.samples.length;
  }

  project(metric: CoverageMetric): Projection {
    const last = this.samples[this.samples.length - 1];
    if (!last) return { coverage: 0, perHour: undefined, secondsToTarget: undefined };
    const coverage = last[metric];
    const slope = this.slopePerMs(metric);
    const perHour = slope === undefined ? undefined : slope * 3_600_000;
    let secondsToTarget: number | undefined;
    if (coverage >= this.target) secondsToTarget = 0;
    else if (slope !== undefined && slope > 0) secondsToTarget = (this.target - coverage) / slope / 1000;
    return { coverage, perHour, secondsToTarget };
  }

  /** Least-squares slope of coverage over time (per ms), from two samples on. */
  private slopePerMs(metric: CoverageMetric): number | undefined {
    const n = this.samples.length;
    if (n < 2) return undefined;
    const t0 = this.samples[0]!.at;
    let sx = 0;
    let sy = 0;
    for (const s of this.samples) {
      sx += s.at - t0;
      sy += s[metric];
    }
    const mx = sx / n;
    const my = sy / n;
    let sxy = 0;
    let sxx = 0;
    for (const s of this.samples) {
      const dx = s.at - t0 - mx;
      sxy += dx * (s[metric] - my);
      sxx += dx * dx;
    }
    return sxx > 0 ? sxy / sxx : undefined;
  }
}
