/**
 * What the capture lost, interval by interval: packets the kernel dropped
 * before tcpdump read them, and holes in the TCP streams (bytes the
 * reassembly knows were sent and never saw). A write lost this way was never
 * seen, so its key cannot be named: the new pool may keep an older value of
 * it. Mirror says so loudly (a warning when loss starts, the status line, the
 * summary, the exit status) and points to the repair pass.
 */

/** Cumulative counts, as read from tcpdump and the flow table. */
export interface CaptureLossCounts {
  readonly kernelDrops: number;
  readonly streamGaps: number;
  readonly streamGapBytes: number;
  /** Gap bytes in the client-to-server direction: requests never seen. */
  readonly requestGapBytes: number;
  /** Request bytes seen, and requests parsed from them: the average request size. */
  readonly requestBytes: number;
  readonly requests: number;
}

export interface CaptureLossReport {
  readonly kernelDrops: number;
  readonly streamGaps: number;
  readonly streamGapBytes: number;
  readonly requestGapBytes: number;
  /** Requests the lost request bytes held, at the average request size seen (an estimate). */
  readonly estimatedLostRequests: number;
  /** The last interval's new losses. */
  readonly lastInterval: { readonly kernelDrops: number; readonly streamGaps: number };
  /** Intervals in which anything was lost. */
  readonly intervalsWithLoss: number;
  /** When the first loss was noticed (ISO time), if any. */
  readonly firstLossAt: string | undefined;
  /** How far behind the traffic capture was when it had to stop (ms; 0 when it had caught up). */
  readonly stoppedBehindMs: number;
}

const ZERO: CaptureLossCounts = {
  kernelDrops: 0,
  streamGaps: 0,
  streamGapBytes: 0,
  requestGapBytes: 0,
  requestBytes: 0,
  requests: 0,
};

export class CaptureLoss {
  private last: CaptureLossCounts = ZERO;
  private interval = { kernelDrops: 0, streamGaps: 0 };
  private intervalsWithLoss = 0;
  private firstLossAt: number | undefined;
  private losing = false;
  private behindMs = 0;

  constructor(
    private readonly warn: (message: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes the counts at the end of an interval; warns when loss starts after an interval without. */
  observe(counts: CaptureLossCounts): void {
    const kernelDrops = Math.max(0, counts.kernelDrops - this.last.kernelDrops);
    const streamGaps = Math.max(0, counts.streamGaps - this.last.streamGaps);
    this.last = {
      ...counts,
      // tcpdump's count is undefined until its first stats line: never let it go backwards.
      kernelDrops: Math.max(counts.kernelDrops, this.last.kernelDrops),
    };
    this.interval = { kernelDrops, streamGaps };
    const lost = kernelDrops > 0 || streamGaps > 0;
    if (lost) {
      this.intervalsWithLoss++;
      this.firstLossAt ??= this.now();
      if (!this.losing) {
        this.warn(
          `capture is losing traffic: ${kernelDrops} packets dropped by the kernel, ${streamGaps} stream gaps; ` +
            'writes in them were never seen, so keys may be stale on the new pool: run `memshift repair` before the switch',
        );
      }
    }
    this.losing = lost;
  }

  /** Capture stopped before reading the packets of the last `ms`: they were never seen. */
  stoppedBehind(ms: number): void {
    this.behindMs = Math.max(this.behindMs, ms);
    this.firstLossAt ??= this.now();
  }

  /** Anything lost so far. */
  get lost(): boolean {
    return this.last.kernelDrops > 0 || this.last.streamGaps > 0 || this.behindMs > 0;
  }

  report(): CaptureLossReport {
    const c = this.last;
    const perRequest = c.requests > 0 ? c.requestBytes / c.requests : 0;
    return {
      kernelDrops: c.kernelDrops,
      streamGaps: c.streamGaps,
      streamGapBytes: c.streamGapBytes,
      requestGapBytes: c.requestGapBytes,
      estimatedLostRequests: perRequest > 0 ? Math.ceil(c.requestGapBytes / perRequest) : 0,
      lastInterval: { ...this.interval },
      intervalsWithLoss: this.intervalsWithLoss,
      firstLossAt: this.firstLossAt === undefined ? undefined : new Date(this.firstLossAt).toISOString(),
      stoppedBehindMs: this.behindMs,
    };
  }
}
