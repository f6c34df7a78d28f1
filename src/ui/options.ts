import { MemshiftError } from '../protocol/errors.js';
import { parseMemory } from '../topology/pool.js';

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

export function parseMilliseconds(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new UsageError(`${option} must be a whole number of milliseconds above 0, got "${text}"`);
  }
  return value;
}

/** A size option (bytes, or 512k, 50m, 2g); undefined when not given. */
export function parseSize(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = parseMemory(text);
  if (value === undefined)
    throw new UsageError(`${option} must be bytes or a size like 512k, 50m; got "${text}"`);
  return value;
}
