/**
 * Live warnings for a long-running command: one line on stderr and one log
 * record each, at most one line per kind of warning per interval (a dead
 * target warns on every dropped write), the rest counted into the next line
 * of that kind.
 */
export class Warnings {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly log: ((record: Record<string, unknown>) => void) | undefined,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(message: string): void {
    // Warnings that differ only in their numbers (ports, counts) are one kind.
    const kind = message.replace(/\d+/g, '#');
    const t = this.now();
    const seen = this.last.get(kind);
    if (seen !== undefined && t - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const more = seen?.suppressed ? ` (and ${seen.suppressed} more like it)` : '';
    this.last.set(kind, { at: t, suppressed: 0 });
    this.write(`memshift: warning: ${message}${more}\n`);
    this.log?.({ event: 'warning', message, suppressed: seen?.suppressed ?? 0 });
  }
}
