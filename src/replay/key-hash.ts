/**
 * One 32-bit hash of a key's bytes, computed once per operation and reused for
 * sampling, the connection a key is pinned to, and the recency tables. It only
 * has to spread keys well inside memshift: it is not any client's hash.
 */

/** FNV-1a over the bytes, then murmur3's finalizer so every output bit depends on every input bit. */
export function keyHash(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193);
  return mix32(h);
}

export function mix32(x: number): number {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Whether a key belongs to a `fraction` sample (0..1). Derived from the key
 * hash by a further mix so the sample is independent of connection choice;
 * the same key is always in or always out, in every run.
 */
export function inSample(hash: number, fraction: number): boolean {
  if (fraction >= 1) return true;
  if (fraction <= 0) return false;
  return mix32(hash ^ 0x5bd1e995) < fraction * 0x100000000;
}
