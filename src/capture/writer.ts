/**
 * Writes captures: classic pcap and pcapng records, and synthetic TCP frames
 * on every link type the reader knows. memshift uses it to build test and
 * benchmark captures, and it can save traffic for a later replay. Not a hot
 * path: clarity over speed, one Buffer per record.
 */
import { parseAddress } from './address.js';
import { LINKTYPE } from './link.js';

export interface TcpFrameSpec {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack?: number;
  /** TCP_* flags. */
  readonly flags: number;
  readonly payload?: Buffer;
  /** IPv4 header options (padded to a multiple of 4 bytes). */
  readonly ipv4Options?: Buffer;
  /** IPv6: put a hop-by-hop and a destination options header before TCP. */
  readonly ipv6ExtensionHeaders?: boolean;
  /** IPv4 fragment offset in 8-byte units and more-fragments flag, to build fragments. */
  readonly fragment?: { readonly offset: number; readonly more: boolean };
  /** Ethernet only: 802.1Q tags, outermost first. */
  readonly vlans?: readonly number[];
  /** NULL link type only: write the address family big-endian. */
  readonly bigEndianFamily?: boolean;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

/** IP header(s) and TCP header and payload, checksums left zero (nothing here verifies them). */
export function buildIpPacket(spec: TcpFrameSpec): Buffer {
  const src = parseAddress(spec.src);
  const dst = parseAddress(spec.dst);
  if (src.family !== dst.family) throw new Error('source and destination families differ');
  const payload = spec.payload ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(spec.srcPort, 0);
  tcp.writeUInt16BE(spec.dstPort, 2);
  tcp.writeUInt32BE(spec.seq >>> 0, 4);
  tcp.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = spec.flags;
  tcp.writeUInt16BE(65535, 14);
  if (src.family === 4) {
    const options = spec.ipv4Options ?? Buffer.alloc(0);
    const header = Buffer.alloc(20 + options.length);
    header[0] = 0x40 | (header.length / 4);
    header.writeUInt16BE(header.length + tcp.length + payload.length, 2);
    if (spec.fragment) header.writeUInt16BE((spec.fragment.more ? 0x2000 : 0) | spec.fragment.offset, 6);
    else header.writeUInt16BE(0x4000, 6); // don't fragment
    header[8] = 64;
    header[9] = 6;
    header.writeUInt32BE(src.words[0]!, 12);
    header.writeUInt32BE(dst.words[0]!, 16);
    options.copy(header, 20);
    return Buffer.concat([header, tcp, payload]);
  }
  const extensions = spec.ipv6ExtensionHeaders
    ? Buffer.from([60, 0, 1, 4, 0, 0, 0, 0, 6, 1, 1, 12, ...new Array<number>(12).fill(0)])
    : Buffer.alloc(0);
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(extensions.length + tcp.length + payload.length, 4);
  header[6] = spec.ipv6ExtensionHeaders ? 0 : 6; // hop-by-hop first, then destination options, then TCP
  header[7] = 64;
  for (let i = 0; i < 4; i++) {
    header.writeUInt32BE(src.words[i]!, 8 + 4 * i);
    header.writeUInt32BE(dst.words[i]!, 24 + 4 * i);
  }
  return Buffer.concat([header, extensions, tcp, payload]);
}

/** A whole frame of `linkType` carrying the segment. */
export function buildTcpFrame(linkType: number, spec: TcpFrameSpec): Buffer {
  const ip = buildIpPacket(spec);
  const v6 = ip[0]! >>> 4 === 6;
  const etherType = v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      const tags = spec.vlans ?? [];
      const header = Buffer.alloc(14 + 4 * tags.length);
      header.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
      let at = 12;
      for (const vlan of tags) {
        header.writeUInt16BE(0x8100, at);
        header.writeUInt16BE(vlan & 0x0fff, at + 2);
        at += 4;
      }
      header.writeUInt16BE(etherType, at);
      return Buffer.concat([header, ip]);
    }
    case LINKTYPE.LINUX_SLL: {
      const header = Buffer.alloc(16);
      header.writeUInt16BE(0, 0); // sent to us
      header.writeUInt16BE(772, 2); // ARPHRD_LOOPBACK
      header.writeUInt16BE(6, 4);
      header.writeUInt16BE(etherType, 14);
      return Buffer.concat([header, ip]);
    }
    case LINKTYPE.LINUX_SLL2: {
      const header = Buffer.alloc(20);
      header.writeUInt16BE(etherType, 0);
      header.writeUInt32BE(1, 4); // interface index
      header.writeUInt16BE(772, 8);
      header[11] = 6;
      return Buffer.concat([header, ip]);
    }
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP: {
      const header = Buffer.alloc(4);
      const family = v6 ? 30 : 2;
      if (linkType === LINKTYPE.LOOP || spec.bigEndianFamily) header.writeUInt32BE(family, 0);
      else header.writeUInt32LE(family, 0);
      return Buffer.concat([header, ip]);
    }
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_DLT12:
    case LINKTYPE.RAW_DLT14:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return ip;
    default:
      throw new Error(`no frame builder for link type ${linkType}`);
  }
}

export interface PcapWriterOptions {
  readonly linkType: number;
  readonly snapLength?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d). */
  readonly nanos?: boolean;
  readonly bigEndian?: boolean;
}

/** Classic pcap: `header()` once, then `record()` per packet. */
export class PcapWriter {
  private readonly options: PcapWriterOptions;

  constructor(options: PcapWriterOptions) {
    this.options = options;
  }

  header(): Buffer {
    const b = Buffer.alloc(24);
    const le = !this.options.bigEndian;
    const u32 = (v: number, at: number): number => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
    const u16 = (v: number, at: number): number => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
    u32(this.options.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    u16(2, 4);
    u16(4, 6);
    u32(this.options.snapLength ?? 262144, 16);
    u32(this.options.linkType, 20);
    return b;
  }

  /** A record; `frame` is cut to the snap length, `originalLength` defaults to the frame's. */
  record(timestampMicros: number, frame: Buffer, originalLength = frame.length): Buffer {
    const snap = this.options.snapLength ?? 262144;
    const data = frame.length > snap ? frame.subarray(0, snap) : frame;
    const b = Buffer.alloc(16);
    const le = !this.options.bigEndian;
    const u32 = (v: number, at: number): number => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
    const seconds = Math.floor(timestampMicros / 1e6);
    const micros = timestampMicros - seconds * 1e6;
    u32(seconds, 0);
    u32(this.options.nanos ? micros * 1000 : micros, 4);
    u32(data.length, 8);
    u32(originalLength, 12);
    return Buffer.concat([b, data]);
  }
}

export interface PcapngInterfaceOptions {
  readonly snapLength?: number;
  /** if_tsresol byte: 6 for microseconds (the default), 9 for nanoseconds, 0x80|n for 2^-n. */
  readonly tsresol?: number;
}

/** pcapng: `section()`, `interface()` per interface, then packet blocks. */
export class PcapngWriter {
  private readonly le: boolean;
  private readonly resolutions: bigint[] = [];
  private readonly snapLengths: number[] = [];

  constructor(options: { readonly bigEndian?: boolean } = {}) {
    this.le = !options.bigEndian;
  }

  /** Any block: type, body (padded here), the length at both ends. */
  block(type: number, body: Buffer): Buffer {
    const padded = (body.length + 3) & ~3;
    const b = Buffer.alloc(12 + padded);
    this.u32(b, type, 0);
    this.u32(b, b.length, 4);
    body.copy(b, 8);
    this.u32(b, b.length, b.length - 4);
    return b;
  }

  section(): Buffer {
    const body = Buffer.alloc(16);
    this.u32(body, 0x1a2b3c4d, 0);
    this.u16(body, 1, 4);
    this.u16(body, 0, 6);
    body.fill(0xff, 8, 16); // section length unknown
    this.resolutions.length = 0;
    this.snapLengths.length = 0;
    return this.block(0x0a0d0d0a, body);
  }

  interface(linkType: number, options: PcapngInterfaceOptions = {}): Buffer {
    const tsresol = options.tsresol ?? 6;
    const snap = options.snapLength ?? 262144;
    const hasOption = options.tsresol !== undefined;
    const body = Buffer.alloc(8 + (hasOption ? 12 : 0));
    this.u16(body, linkType, 0);
    this.u32(body, snap, 4);
    if (hasOption) {
      this.u16(body, 9, 8); // if_tsresol
      this.u16(body, 1, 10);
      body[12] = tsresol;
      // then opt_endofopt: four zero bytes, already there
    }
    this.resolutions.push(tsresol & 0x80 ? 2n ** BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol));
    this.snapLengths.push(snap);
    return this.block(1, body);
  }

  enhancedPacket(
    interfaceId: number,
    timestampMicros: number,
    frame: Buffer,
    originalLength = frame.length,
  ): Buffer {
    const units = ((this.resolutions[interfaceId] ?? 1_000_000n) * BigInt(timestampMicros)) / 1_000_000n;
    const snap = this.snapLengths[interfaceId] ?? 262144;
    const data = snap > 0 && frame.length > snap ? frame.subarray(0, snap) : frame;
    const body = Buffer.alloc(20 + data.length);
    this.u32(body, interfaceId, 0);
    this.u32(body, Number(units >> 32n), 4);
    this.u32(body, Number(units & 0xffffffffn), 8);
    this.u32(body, data.length, 12);
    this.u32(body, originalLength, 16);
    data.copy(body, 20);
    return this.block(6, body);
  }

  simplePacket(frame: Buffer, originalLength = frame.length): Buffer {
    const body = Buffer.alloc(4 + frame.length);
    this.u32(body, originalLength, 0);
    frame.copy(body, 4);
    return this.block(3, body);
  }

  /** An interface statistics block with the isb_ifdrop option. */
  interfaceStats(interfaceId: number, drops: number): Buffer {
    const body = Buffer.alloc(12 + 12 + 4);
    this.u32(body, interfaceId, 0);
    this.u16(body, 5, 12); // isb_ifdrop
    this.u16(body, 8, 14);
    const high = Math.floor(drops / 4294967296);
    const low = drops >>> 0;
    if (this.le) {
      body.writeUInt32LE(low, 16);
      body.writeUInt32LE(high, 20);
    } else {
      body.writeUInt32BE(high, 16);
      body.writeUInt32BE(low, 20);
    }
    return this.block(5, body);
  }

  private u16(b: Buffer, v: number, at: number): void {
    if (this.le) b.writeUInt16LE(v, at);
    else b.writeUInt16BE(v, at);
  }

  private u32(b: Buffer, v: number, at: number): void {
    if (this.le) b.writeUInt32LE(v, at);
    else b.writeUInt32BE(v, at);
  }
}
