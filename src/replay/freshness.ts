/**
 * What a backfill asks of live mirroring before it writes a key: was this key
 * mutated on the source after the copy read it? If so the copy's value is
 * stale (or the key was deleted) and must not be written (DESIGN.md,
 * invariant 4: never overwrite fresher data, never resurrect a deleted key).
 */
export interface KeyFreshness {
  /** A mark of "now" in the mirror's order of events; take it before reading a key from the source. */
  mark(): number;
  /** True if a mutation of `key` was seen after `mark` (or if that can no longer be told: then true). */
  changedSince(key: Buffer, mark: number): boolean;
}
