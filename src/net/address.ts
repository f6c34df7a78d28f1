import { MemshiftError } from '../protocol/errors.js';

export const DEFAULT_PORT = 11211;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** As the user wrote it, normalised to `host:port` (`[v6]:port`). */
  readonly address: string;
}

/**
 * Reads `host`, `host:port`, `[v6]` or `[v6]:port`. A bare IPv6 address
 * without brackets is accepted when it has more than one colon.
 */
export function parseEndpoint(text: string): Endpoint {
  const input = text.trim();
  let host: string;
  let portText: string | undefined;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0) throw badAddress(text, 'missing "]"');
    host = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw badAddress(text, 'expected ":port" after "]"');
    portText = rest === '' ? undefined : rest.slice(1);
  } else if (input.indexOf(':') !== input.lastIndexOf(':')) {
    host = input;
  } else {
    const colon = input.indexOf(':');
    host = colon < 0 ? input : input.slice(0, colon);
    portText = colon < 0 ? undefined : input.slice(colon + 1);
  }
  if (host === '') throw badAddress(text, 'missing host');
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw badAddress(text, 'port must be a number from 1 to 65535');
    }
    port = Number(portText);
  }
  return { host, port, address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

function badAddress(text: string, why: string): MemshiftError {
  return new MemshiftError(
    'MEMSHIFT_ERR_ADDRESS',
    `bad server address "${text}": ${why} (write host:port, e.g. 127.0.0.1:11211 or [::1]:11211)`,
  );
}
