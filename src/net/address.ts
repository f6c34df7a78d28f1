import { MemshiftError } from '../protocol/errors.js';
import { KETAMA_DEFAULT_PORT, splitServerText } from '../topology/server.js';

/** Where to connect: a pool's `Server` is one too. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** `host:port`, bracketed for IPv6. */
  readonly address: string;
}

/** Reads `host`, `host:port`, `[v6]` or `[v6]:port` (port 11211 when left out). */
export function parseEndpoint(text: string): Endpoint {
  const part = splitServerText(text);
  if (!part.ok) throw badAddress(text, part.reason);
  if (part.weight !== undefined || part.name !== undefined) throw badAddress(text, 'expected only host:port');
  const { host } = part;
  const port = part.port ?? KETAMA_DEFAULT_PORT;
  return { host, port, address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

function badAddress(text: string, why: string): MemshiftError {
  return new MemshiftError(
    'MEMSHIFT_ERR_ADDRESS',
    `bad server address "${text}": ${why} (write host:port, e.g. 127.0.0.1:11211 or [::1]:11211)`,
  );
}
