/**
 * Ruby Dalli's ring (Dalli::Ring): floor(servers * 160 * weight / total)
 * points per server, each the first 32 bits of SHA-1("host:port:i") read
 * big-endian; the key hash is CRC-32 and the key goes to the last point at or
 * below it, wrapping to the last point.
 */
import { Continuum } from './continuum.js';
import { crc32, sha1First32 } from './hashes.js';
import { FloorRing, ONLY_SERVER, type Distribution } from './ring.js';
import type { Server } from './server.js';

const POINTS_PER_SERVER = 160;

export function dalliPointCount(weight: number, total: number, servers: number): number {
  // Ruby: ((total_servers * POINTS_PER_SERVER * server.weight) / Float(total_weight)).floor
  return Math.floor((servers * POINTS_PER_SERVER * weight) / total);
}

/** Dalli names a TCP server "hostname:port", IPv6 hosts without brackets. */
export function dalliServerName(server: Server): string {
  return `${server.host}:${server.port}`;
}

export function dalliRing(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  let total = 0;
  for (const s of servers) total += s.weight;
  const values: number[] = [];
  const owners: number[] = [];
  servers.forEach((server, index) => {
    const name = dalliServerName(server);
    const count = dalliPointCount(server.weight, total, servers.length);
    for (let i = 0; i < count; i++) {
      values.push(sha1First32(`${name}:${i}`));
      owners.push(index);
    }
  });
  return new FloorRing(crc32, new Continuum(values, owners, 'first'));
}
