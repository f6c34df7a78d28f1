import { MemshiftError } from '../protocol/errors.js';

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
