/**
 * The tcpcopy way: every key goes to the new server paired with the old
 * server that holds it, so the new pool must mirror the old one's shape.
 * Needs the source pool's own distribution to know the old server.
 */
import type { Distribution } from './ring.js';

export class MapDistribution implements Distribution {
  constructor(
    private readonly source: Distribution,
    /** pairs[oldIndex] = newIndex */
    private readonly pairs: Uint16Array,
  ) {}

  serverFor(key: Buffer): number {
    return this.pairs[this.source.serverFor(key)]!;
  }
}
