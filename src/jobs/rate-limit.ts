/**
 * Pacing for jobs that read from production servers: a token bucket for a
 * rate (keys/s, bytes/s) and a governor that narrows the work in flight
 * when the source answers more slowly than it did at first.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A token bucket: `rate` tokens per second, at most `burst` saved up. A take
 * larger than the burst is let through once the bucket is full, then owes the
 * difference, so one big value cannot stall the job forever.
 */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    readonly rate: number,
    private readonly burst: number = Math.max(1, rate / 10),
  ) {
    this.tokens = burst;
  }

  /** Milliseconds to wait before `amount` tokens are available (0: take them now). */
  delayFor(amount: number): number {
    this.refill();
    const need = Math.min(amount, this.burst);
    if (this.tokens >= need) return 0;
    return Math.ceil(((need - this.tokens) / this.rate) * 1000);
  }

  /** Waits for `amount` tokens and takes them. */
  async take(amount: number, signal?: AbortSignal): Promise<void> {
    for (let wait = this.delayFor(amount); wait > 0; wait = this.delayFor(amount)) {
      if (signal?.aborted) return;
      await sleep(wait, undefined, signal ? { signal } : undefined).catch(() => undefined);
    }
    this.tokens -= amount;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }
}

/**
 * How many batches may be in flight against one source server. Latency per
 * key (a batch's time divided by its keys and by the batches queued with it,
 * since a pipelined batch waits for the ones ahead of it) is smoothed, and
 * compared with a baseline: the lowest smoothed value seen, which creeps up
 * slowly so an early lucky batch does not set it for good. When the smoothed
 * latency passes `factor` times the baseline (and a floor, so loopback jitter
 * does not count) the window halves; otherwise it grows by one batch per
 * window's worth of batches, up to `max`. Additive increase, multiplicative
 * decrease, as TCP does for the same reason.
 */
export class LatencyGovernor {
  private baseline = Infinity;
  private smoothed = 0;
  private allowed: number;
  private calm = 0;
  slowdowns = 0;

  constructor(
    private readonly max: number,
    private readonly factor = 3,
    private readonly floorMs = 20,
  ) {
    this.allowed = max;
  }

  get window(): number {
    return Math.max(1, Math.floor(this.allowed));
  }

  /** Records how long one batch of `keys` keys took, sent while `inFlight` batches (itself included) were queued. */
  observe(ms: number, keys: number, inFlight: number): void {
    const share = Math.max(1, keys) * Math.max(1, inFlight);
    const perKey = ms / share;
    this.smoothed = this.smoothed === 0 ? perKey : this.smoothed * 0.8 + perKey * 0.2;
    this.baseline = Math.min(this.smoothed, this.baseline * 1.001);
    const slow = this.smoothed > this.baseline * this.factor && ms > this.floorMs;
    if (slow && this.calm >= this.window) {
      // One halving per window of batches: the batches already in flight were sent before it.
      if (this.allowed > 1) this.slowdowns++;
      this.allowed = Math.max(1, this.allowed / 2);
      this.calm = 0;
    } else {
      this.calm++;
      if (!slow) this.allowed = Math.min(this.max, this.allowed + 1 / this.window);
    }
  }
}
