/**
 * IP addresses as the capture path holds them: four 32-bit words in network
 * order (IPv4 uses the first word only), so packet parsing and flow lookup
 * compare integers and never build strings. Text appears only when a flow is
 * opened or a user writes an address on the command line.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MemshiftError } from '../protocol/errors.js';

export type IpFamily = 4 | 6;

/** Parses a textual IPv4 or IPv6 address into `family` and four words; throws on anything else. */
export function parseAddress(text: string): { family: IpFamily; words: Uint32Array } {
  const words = new Uint32Array(4);
  if (isIPv4(text)) {
    words[0] = ipv4Word(text);
    return { family: 4, words };
  }
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!isIPv6(bare) || bare.includes('%')) {
    throw new MemshiftError('MEMSHIFT_ERR_ADDRESS', `not an IP address: "${text}"`);
  }
  const groups = ipv6Groups(bare);
  for (let i = 0; i < 4; i++) words[i] = (((groups[2 * i] ?? 0) << 16) | (groups[2 * i + 1] ?? 0)) >>> 0;
  return { family: 6, words };
}

function ipv4Word(text: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and a dotted IPv4 tail converted. */
function ipv6Groups(text: string): number[] {
  let body = text;
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    // A dotted IPv4 tail (::ffff:10.0.0.1) is the last two groups written differently.
    const v4 = ipv4Word(body.slice(lastColon + 1));
    body = `${body.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const split = body.indexOf('::');
  if (split < 0) return parse(body);
  const head = parse(body.slice(0, split));
  const rest = parse(body.slice(split + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/** Dotted quad for IPv4; RFC 5952 text (longest zero run as `::`) for IPv6. */
export function formatAddress(family: IpFamily, words: Uint32Array): string {
  if (family === 4) {
    const w = words[0] ?? 0;
    return `${w >>> 24}.${(w >>> 16) & 0xff}.${(w >>> 8) & 0xff}.${w & 0xff}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) {
    const w = words[i] ?? 0;
    groups.push(w >>> 16, w & 0xffff);
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** `host:port`, with the host bracketed for IPv6. */
export function formatEndpoint(family: IpFamily, address: string, port: number): string {
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}
