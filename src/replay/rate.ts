/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up.
 * Bounds what memshift asks of a production server (fill TTL lookups).
 */
export class TokenBucket {
  private readonly ratePerMs: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(ratePerSecond: number, burst = Math.max(1, ratePerSecond), now = Date.now()) {
    this.ratePerMs = Math.max(0, ratePerSecond) / 1000;
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now = Date.now()): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.ratePerMs);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
