/**
 * Where a resumable job stands in a list it works through in batches, as the
 * checkpoint records it (see checkpoint.ts): `done` is the prefix of list
 * positions whose batches succeeded, `ahead` the runs past it that succeeded
 * too, so a failed batch leaves a gap that `--resume` fills, and positions a
 * previous run finished are not taken again.
 */
import type { CheckpointSource } from './checkpoint.js';

export interface Batch {
  /** List positions [start, end). */
  readonly start: number;
  readonly end: number;
  /** The sizes the list gave for its keys, summed. */
  readonly bytes: number;
}

export class BatchCursor {
  /** Runs that succeeded, by start; the prefix moves over them in order. */
  private readonly finishedRuns = new Map<number, number>();
  private cursor: number;
  private next: number;

  constructor(
    private readonly length: number,
    private readonly saved: CheckpointSource | undefined,
    resumedAt: number,
  ) {
    for (const [a, b] of saved?.ahead ?? []) this.finishedRuns.set(a, b);
    this.cursor = resumedAt;
    this.next = resumedAt;
    this.advance();
  }

  /**
   * The next batch: up to `maxKeys` positions, and fewer once `maxBytes` is
   * reached; never spanning a run finished earlier. Undefined at the end.
   */
  take(maxKeys: number, maxBytes: number, sizeAt: (position: number) => number): Batch | undefined {
    let next = Math.max(this.next, this.cursor);
    while (this.finishedRuns.has(next)) next = this.finishedRuns.get(next)!;
    if (next >= this.length) return undefined;
    const start = next;
    let bytes = 0;
    while (
      next < this.length &&
      next - start < maxKeys &&
      (next === start || (bytes < maxBytes && !this.finishedRuns.has(next)))
    ) {
      bytes += sizeAt(next);
      next++;
    }
    this.next = next;
    return { start, end: next, bytes };
  }

  /** The batch was sent: keys before its end that are not done were tried. */
  sent(batch: Batch): void {
    if (this.saved) this.saved.reached = Math.max(this.saved.reached ?? 0, batch.end);
  }

  finished(batch: Batch): void {
    this.finishedRuns.set(batch.start, batch.end);
    this.advance();
  }

  private advance(): void {
    while (this.finishedRuns.has(this.cursor)) {
      const end = this.finishedRuns.get(this.cursor)!;
      this.finishedRuns.delete(this.cursor);
      this.cursor = end;
    }
    if (this.saved) {
      this.saved.done = this.cursor;
      this.saved.ahead = [...this.finishedRuns.entries()].sort((x, y) => x[0] - y[0]);
    }
  }
}
