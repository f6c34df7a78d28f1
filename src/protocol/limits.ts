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
  /**
   * A data block over `maxValueBytes` is skipped by its declared length and
   * its frame handed out with SKIPPED_VALUE (lines.ts), instead of being a
   * protocol error. For readers that must stay in step with a stream they
   * only observe (capture); a reader that forwards values keeps the error.
   */
  readonly skipOversizeValues?: boolean;
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
