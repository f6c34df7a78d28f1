import { MemshiftError } from '../protocol/errors.js';
import { parseCaptureProgram, type CaptureProgram } from '../capture/capture-program.js';

/** Where a command writes its result and the exit status it wants. */
export interface Output {
  write(text: string): void;
  exitCode: number;
}

export class UsageError extends MemshiftError {
  constructor(message: string) {
    super('MEMSHIFT_ERR_USAGE', message);
  }
}

/** A size in bytes: a whole number with an optional k, m or g suffix (powers of 1024), as memcached's -I takes. */
export function parseBytes(option: string, text: string): number {
  const match = /^(\d+)([kmg]?)b?$/i.exec(text.trim());
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match?.[2] ?? '').toLowerCase()];
  const value = match && scale !== undefined ? Number(match[1]) * scale : NaN;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${option} must be a size in bytes above 0 (e.g. 2m, 512k, 1048576), got "${text}"`);
  }
  return value;
}

export function parseMilliseconds(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new UsageError(`${option} must be a whole number of milliseconds above 0, got "${text}"`);
  }
  return value;
}

/** A size option (bytes, or 512k, 50m, 2g); undefined when not given. */
export function parseSize(option: string, text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseBytes(option, text);
}

/** `--capture-program helper|tcpdump` (a tcpdump path chooses tcpdump); undefined when not given. */
export function captureProgramFrom(text: string | undefined): CaptureProgram | undefined {
  if (text === undefined) return undefined;
  const program = parseCaptureProgram(text);
  if (program === undefined) throw new UsageError(`--capture-program: give helper or tcpdump, not ${text}`);
  return program;
}
