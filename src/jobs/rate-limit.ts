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
 * How many batches may be in flight against one source server. The
 * batches set a baseline latency per key (the lowest seen); when a batch takes more
 * than `factor` times the baseline (plus a small floor, so loopback jitter
 * does not count) the window halves, otherwise it grows by one up to `max`.
 * Additive increase, multiplicative decrease, as TCP does for the same reason.
 */
export class LatencyGovernor {
  private baseline = Infinity;
  private allowed: number;
  slowdowns = 0;

  constructor(
    private readonly max: number,
    private readonly factor = 3,
    private readonly floorMs = 5,
  ) {
    this.allowed = max;
  }

  get window(): number {
    return Math.max(1, Math.floor(this.allowed));
  }

  /**
   * Records how long one batch of `keys` keys took, sent while `inFlight`
   * batches (itself included) were queued on the connection: a pipelined
   * batch waits for the ones ahead of it, which is not the server slowing down.
   */
  observe(ms: number, keys: number, inFlight: number): void {
    const share = Math.max(1, keys) * Math.max(1, inFlight);
    const perKey = ms / share;
    if (perKey < this.baseline) this.baseline = perKey;
    const limit = this.baseline * this.factor * share + this.floorMs;
    if (ms > limit) {
      if (this.allowed > 1) this.slowdowns++;
      this.allowed = Math.max(1, this.allowed / 2);
    } else {
      this.allowed = Math.min(this.max, this.allowed + 1 / this.window);
    }
  }
}
