/** The lookup half shared by every ring distribution: hash the key, search the continuum. */
import type { Continuum } from './continuum.js';

/** Picks the server that owns a key: an index into the pool's server list. */
export interface Distribution {
  serverFor(key: Buffer): number;
}

export type KeyHash = (key: Uint8Array) => number;

/** First point at or above the key's hash, wrapping (libmemcached, twemproxy, spymemcached, hashring). */
export class CeilRing implements Distribution {
  constructor(
    private readonly hash: KeyHash,
    readonly continuum: Continuum,
  ) {}

  serverFor(key: Buffer): number {
    return this.continuum.ceil(this.hash(key));
  }
}

/** Last point at or below the key's hash, wrapping (Dalli). */
export class FloorRing implements Distribution {
  constructor(
    private readonly hash: KeyHash,
    readonly continuum: Continuum,
  ) {}

  serverFor(key: Buffer): number {
    return this.continuum.floor(this.hash(key));
  }
}

/** A pool of one server needs no hashing; every client short-cuts it too. */
export const ONLY_SERVER: Distribution = { serverFor: () => 0 };
