/**
 * Client exclusion (`--exclude-client ADDR[/BITS]`): traffic of monitoring
 * hosts and other clients whose effects must not reach the new pool. The same
 * ranges become a BPF expression for tcpdump (so the kernel drops the packets
 * early) and are checked again in the flow table (pcap files have no BPF).
 */
import { MemshiftError } from '../protocol/errors.js';
import { formatAddress, parseAddress, type IpFamily } from './address.js';

export interface AddressRange {
  readonly family: IpFamily;
  /** Network address words, host bits cleared. */
  readonly words: Uint32Array;
  readonly bits: number;
  /** `address/bits` with the host bits cleared, as BPF's `net` accepts it. */
  readonly text: string;
}

/** Parses `ADDR` or `ADDR/BITS` (IPv4 or IPv6); a bare address is a single host. */
export function parseAddressRange(spec: string): AddressRange {
  const slash = spec.lastIndexOf('/');
  const addressText = slash < 0 ? spec : spec.slice(0, slash);
  const { family, words } = parseAddress(addressText);
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const bitsText = spec.slice(slash + 1);
    bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    if (!(bits >= 0 && bits <= max)) {
      throw new MemshiftError(
        'MEMSHIFT_ERR_ADDRESS',
        `bad prefix length in "${spec}": expected 0 to ${max} after the slash`,
      );
    }
  }
  const masked = new Uint32Array(4);
  for (let i = 0; i < 4; i++) masked[i] = (words[i] ?? 0) & wordMask(bits, i);
  return { family, words: masked, bits, text: `${formatAddress(family, masked)}/${bits}` };
}

/** The mask of word `i` for a prefix of `bits` bits. */
function wordMask(bits: number, i: number): number {
  const inWord = bits - 32 * i;
  if (inWord >= 32) return 0xffffffff;
  if (inWord <= 0) return 0;
  return (0xffffffff << (32 - inWord)) >>> 0;
}

export function rangeContains(range: AddressRange, family: IpFamily, words: Uint32Array): boolean {
  if (range.family !== family) return false;
  const count = family === 4 ? 1 : 4;
  for (let i = 0; i < count; i++) {
    if (((words[i] ?? 0) & wordMask(range.bits, i)) >>> 0 !== range.words[i]) return false;
  }
  return true;
}

/**
 * The tcpdump filter for traffic to and from the server ports, without the
 * excluded clients. A client is excluded by direction and port, not by host
 * alone, so that excluding a client that shares the server's address does
 * not hide the server's other conversations on unrelated ports.
 */
export function captureFilter(
  serverPorts: readonly number[],
  excluded: readonly AddressRange[] = [],
): string {
  if (serverPorts.length === 0) {
    throw new MemshiftError('MEMSHIFT_ERR_USAGE', 'capture needs at least one server port');
  }
  for (const port of serverPorts) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new MemshiftError('MEMSHIFT_ERR_USAGE', `server port ${port} is not between 1 and 65535`);
    }
  }
  const ports = (dir: 'src' | 'dst'): string => serverPorts.map((p) => `${dir} port ${p}`).join(' or ');
  let filter = `tcp and (${ports('src')} or ${ports('dst')})`;
  for (const range of excluded) {
    filter += ` and not (src net ${range.text} and (${ports('dst')}))`;
    filter += ` and not (dst net ${range.text} and (${ports('src')}))`;
  }
  return filter;
}
