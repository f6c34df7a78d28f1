/**
 * The structured log (JSON lines) and the warnings of a long-running
 * command, made so that neither can take the command down or be used to fill
 * a disk:
 *   - the log is a private file (0600, never written through a symbolic link:
 *     see jobs/private-file.ts); one that cannot be opened or written (a full
 *     disk, /dev/full, a directory) becomes one warning on stderr, and logging
 *     stops there while the command carries on;
 *   - each distinct warning is printed and logged at most `burst` times per
 *     `windowMs`, the rest counted and reported in one line when the window
 *     ends (a client sending flush_all in a loop makes one line a second, not
 *     one per request).
 */
import type { WriteStream } from 'node:fs';
import { openPrivateLog } from '../jobs/private-file.js';

export interface EventLogOptions {
  /** Where warnings go besides the log (stderr by default). */
  readonly stderr?: (line: string) => void;
  readonly burst?: number;
  readonly windowMs?: number;
}

interface Window {
  started: number;
  shown: number;
  suppressed: number;
}

export class EventLog {
  private stream: WriteStream | undefined;
  private readonly path: string | undefined;
  private readonly stderr: (line: string) => void;
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly windows = new Map<string, Window>();
  private failed = false;

  constructor(path: string | undefined, options: EventLogOptions = {}) {
    this.path = path;
    this.stderr = options.stderr ?? ((line) => process.stderr.write(line + '\n'));
    this.burst = options.burst ?? 5;
    this.windowMs = options.windowMs ?? 10_000;
    if (path === undefined) return;
    let stream: WriteStream;
    try {
      stream = openPrivateLog(path);
    } catch (err) {
      // A symbolic link is refused before the command starts (it may point anywhere); any other
      // path that cannot be a log is one warning, and the command runs without it.
      const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
      if (cause?.code === 'ELOOP') throw err;
      this.broken(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    stream.on('error', (err) => this.broken(err));
    this.stream = stream;
  }

  /** One JSON line, if the log still works. */
  event(event: Record<string, unknown>): void {
    const stream = this.stream;
    if (stream === undefined || stream.destroyed) return;
    stream.write(JSON.stringify({ time: new Date().toISOString(), ...event }, bigintSafe) + '\n');
  }

  /** A warning for the user: printed and logged, rate-limited per distinct message. */
  warn(message: string, now = Date.now()): void {
    const key = message.length > 120 ? message.slice(0, 120) : message;
    let w = this.windows.get(key);
    if (w !== undefined && now - w.started >= this.windowMs) {
      if (w.suppressed > 0) this.emit(`${w.suppressed} more like: ${key}`);
      this.windows.delete(key);
      w = undefined;
    }
    if (w === undefined) {
      // Bounded: warnings are few kinds of message, but never let the table itself grow without end.
      if (this.windows.size >= 1000) this.windows.clear();
      w = { started: now, shown: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (w.shown >= this.burst) {
      w.suppressed++;
      return;
    }
    w.shown++;
    this.emit(message);
  }

  /** Flushes what the log holds; reports warnings still held back. */
  async close(): Promise<void> {
    for (const [key, w] of this.windows) if (w.suppressed > 0) this.emit(`${w.suppressed} more like: ${key}`);
    this.windows.clear();
    const stream = this.stream;
    this.stream = undefined;
    if (stream === undefined || stream.destroyed) return;
    await new Promise<void>((resolve) => stream.end(resolve));
  }

  private emit(message: string): void {
    this.stderr(`memshift: ${message}`);
    this.event({ event: 'warning', message });
  }

  private broken(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    const stream = this.stream;
    this.stream = undefined;
    stream?.destroy();
    this.stderr(`memshift: log ${this.path}: ${err.message}; logging stopped, still running`);
  }
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
