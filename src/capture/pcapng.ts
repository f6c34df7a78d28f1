/**
 * pcapng blocks (IETF draft-ietf-opsawg-pcapng): section headers, interface
 * descriptions with their own link types and timestamp resolutions, enhanced,
 * simple and obsolete packet blocks, and interface statistics for the drop
 * count. Every other block type is skipped whole. Each section declares its
 * own byte order, so one stream may switch endianness at a section boundary.
 */
import type { ParseCursor } from '../protocol/decoder.js';
import { protocolError } from '../protocol/errors.js';
import type { CaptureRecord, PcapInterface } from './pcap.js';

export const PCAPNG_SECTION_HEADER = 0x0a0d0d0a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const BLOCK_INTERFACE = 1;
const BLOCK_PACKET_OBSOLETE = 2;
const BLOCK_SIMPLE_PACKET = 3;
const BLOCK_INTERFACE_STATS = 5;
const BLOCK_ENHANCED_PACKET = 6;
const OPT_END = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;
const OPT_ISB_IFDROP = 5;
const TWO_32 = 4294967296;

/** Parses one block per call; `record` is filled for packet blocks. */
export class PcapngParser {
  private readonly maxBlockBytes: number;
  private littleEndian = true;
  private inSection = false;
  interfaces: PcapInterface[] = [];
  /** Latest isb_ifdrop per interface of the current section. */
  private readonly drops: number[] = [];
  private droppedBefore = 0;

  constructor(maxBlockBytes: number) {
    this.maxBlockBytes = maxBlockBytes;
  }

  /** Packets the capturing interfaces dropped, from interface statistics blocks. */
  get interfaceDrops(): number {
    let sum = this.droppedBefore;
    for (const d of this.drops) sum += d;
    return sum;
  }

  /** true: `record` holds a packet; false: a block without one; undefined: need more (cursor.need set). */
  parse(buf: Buffer, start: number, cursor: ParseCursor, record: CaptureRecord): boolean | undefined {
    if (buf.length - start < 12) {
      cursor.need = 12;
      return undefined;
    }
    const type = this.u32(buf, start);
    if (type === PCAPNG_SECTION_HEADER) {
      const magic = buf.readUInt32LE(start + 8);
      if (magic === BYTE_ORDER_MAGIC) this.littleEndian = true;
      else if (magic === 0x4d3c2b1a) this.littleEndian = false;
      else throw protocolError('pcapng section header with a bad byte-order magic', buf, start + 8, start);
    } else if (!this.inSection) {
      throw protocolError('pcapng block before any section header', buf, start);
    }
    const length = this.u32(buf, start + 4);
    if (length < 12 || length % 4 !== 0) {
      throw protocolError(
        `pcapng block length ${length} is not a multiple of 4 of at least 12`,
        buf,
        start + 4,
        start,
      );
    }
    if (length > this.maxBlockBytes) {
      throw protocolError(
        `pcapng block of ${length} bytes exceeds the ${this.maxBlockBytes}-byte limit`,
        buf,
        start + 4,
        start,
      );
    }
    if (buf.length - start < length) {
      cursor.need = length;
      return undefined;
    }
    if (this.u32(buf, start + length - 4) !== length) {
      throw protocolError('pcapng block lengths at its start and end differ', buf, start + length - 4, start);
    }
    cursor.end = start + length;
    switch (type) {
      case PCAPNG_SECTION_HEADER:
        return this.section(buf, start, length);
      case BLOCK_INTERFACE:
        return this.interfaceBlock(buf, start, length);
      case BLOCK_ENHANCED_PACKET:
        return this.packet(buf, start, length, record, this.u32(buf, start + 8), 28);
      case BLOCK_PACKET_OBSOLETE:
        return this.packet(buf, start, length, record, this.u16(buf, start + 8), 28);
      case BLOCK_SIMPLE_PACKET:
        return this.simplePacket(buf, start, length, record);
      case BLOCK_INTERFACE_STATS:
        return this.statistics(buf, start, length);
      default:
        return false;
    }
  }

  private section(buf: Buffer, start: number, length: number): false {
    if (length < 28) throw protocolError('pcapng section header shorter than 28 bytes', buf, start);
    const major = this.u16(buf, start + 12);
    if (major !== 1) throw protocolError(`pcapng major version ${major} is not 1`, buf, start + 12, start);
    this.inSection = true;
    // Interface ids restart with every section; drop counts found so far stay counted.
    this.droppedBefore = this.interfaceDrops;
    this.drops.length = 0;
    this.interfaces = [];
    return false;
  }

  private interfaceBlock(buf: Buffer, start: number, length: number): false {
    if (length < 20) throw protocolError('pcapng interface block shorter than 20 bytes', buf, start);
    let unitsPerSecond = 1e6;
    let offsetSeconds = 0;
    this.options(buf, start + 16, start + length - 4, (code, at, size) => {
      if (code === OPT_IF_TSRESOL && size >= 1) {
        // High bit set: a negative power of two; otherwise a negative power of ten.
        const v = buf[at]!;
        unitsPerSecond = v & 0x80 ? 2 ** (v & 0x7f) : 10 ** v;
      } else if (code === OPT_IF_TSOFFSET && size >= 8) {
        offsetSeconds = this.u64(buf, at);
      }
    });
    if (!Number.isFinite(unitsPerSecond) || unitsPerSecond < 1) {
      throw protocolError('pcapng interface with an impossible timestamp resolution', buf, start);
    }
    this.drops.push(0);
    this.interfaces.push({
      linkType: this.u16(buf, start + 8),
      snapLength: this.u32(buf, start + 12),
      unitsPerSecond,
      offsetSeconds,
    });
    return false;
  }

  private packet(
    buf: Buffer,
    start: number,
    length: number,
    record: CaptureRecord,
    interfaceId: number,
    dataAt: number,
  ): boolean {
    if (length < dataAt + 4) throw protocolError('pcapng packet block too short', buf, start);
    const iface = this.interfaces[interfaceId];
    if (iface === undefined) {
      throw protocolError(`pcapng packet for undeclared interface ${interfaceId}`, buf, start + 8, start);
    }
    const captured = this.u32(buf, start + 20);
    if (captured > length - dataAt - 4) {
      throw protocolError(`pcapng captured length ${captured} overruns its block`, buf, start + 20, start);
    }
    const units = this.u32(buf, start + 12) * TWO_32 + this.u32(buf, start + 16);
    record.interfaceId = interfaceId;
    record.linkType = iface.linkType;
    record.timestampMicros = toMicros(units, iface);
    record.originalLength = Math.max(captured, this.u32(buf, start + 24));
    record.buffer = buf;
    record.start = start + dataAt;
    record.end = start + dataAt + captured;
    return true;
  }

  private simplePacket(buf: Buffer, start: number, length: number, record: CaptureRecord): boolean {
    if (length < 16) throw protocolError('pcapng simple packet block too short', buf, start);
    const iface = this.interfaces[0];
    if (iface === undefined) throw protocolError('pcapng simple packet before any interface', buf, start);
    const original = this.u32(buf, start + 8);
    // The block holds no captured length: the snap length and the block size bound it.
    let captured = Math.min(original, length - 16);
    if (iface.snapLength > 0) captured = Math.min(captured, iface.snapLength);
    record.interfaceId = 0;
    record.linkType = iface.linkType;
    record.timestampMicros = 0; // simple packet blocks carry no timestamp
    record.originalLength = original;
    record.buffer = buf;
    record.start = start + 12;
    record.end = start + 12 + captured;
    return true;
  }

  private statistics(buf: Buffer, start: number, length: number): false {
    if (length < 24) return false;
    const interfaceId = this.u32(buf, start + 8);
    if (interfaceId >= this.interfaces.length) return false;
    this.options(buf, start + 20, start + length - 4, (code, at, size) => {
      if (code === OPT_ISB_IFDROP && size >= 8) this.drops[interfaceId] = this.u64(buf, at);
    });
    return false;
  }

  /** Visits options in [from, to); a malformed option list ends the walk rather than the capture. */
  private options(
    buf: Buffer,
    from: number,
    to: number,
    visit: (code: number, at: number, size: number) => void,
  ): void {
    let at = from;
    while (at + 4 <= to) {
      const code = this.u16(buf, at);
      const size = this.u16(buf, at + 2);
      if (code === OPT_END || at + 4 + size > to) return;
      visit(code, at + 4, size);
      at += 4 + ((size + 3) & ~3);
    }
  }

  private u16(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  private u32(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  private u64(buf: Buffer, at: number): number {
    return this.littleEndian
      ? buf.readUInt32LE(at + 4) * TWO_32 + buf.readUInt32LE(at)
      : buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
  }
}

function toMicros(units: number, iface: PcapInterface): number {
  const offset = iface.offsetSeconds * 1e6;
  if (iface.unitsPerSecond === 1e6) return units + offset;
  // Above 2^53 the division is inexact by a few units, far below a microsecond.
  return Math.floor((units * 1e6) / iface.unitsPerSecond) + offset;
}
