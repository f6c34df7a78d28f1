/**
 * Size bounds every parser enforces, so that no input can make memshift
 * buffer without limit.
 */
export interface Limits {
  /** Longest command or response line, \r\n included. Multi-gets with many keys are long lines. */
  readonly maxLineBytes: number;
  /** Longest key: 250 bytes (protocol.txt, "Keys"). Base64 keys are bounded after decoding. */
  readonly maxKeyBytes: number;
  /** Largest value: memcached's default item max (-I) is 1 MiB. */
  readonly maxValueBytes: number;
}

export const KEY_MAX_BYTES = 250;

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxLineBytes: 1024 * 1024,
  maxKeyBytes: KEY_MAX_BYTES,
  maxValueBytes: 1024 * 1024,
});

export function withLimits(overrides: Partial<Limits> = {}): Limits {
  return Object.freeze({ ...DEFAULT_LIMITS, ...overrides });
}
