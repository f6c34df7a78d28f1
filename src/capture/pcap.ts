/**
 * An incremental reader for capture files and streams: classic pcap (either
 * byte order, microsecond or nanosecond timestamps) and pcapng, told apart by
 * their first four bytes. It is a push parser on the FrameDecoder contract of
 * protocol/decoder.ts: any chunking gives the same records, a record is
 * buffered only while it is incomplete, and a record length above the limit
 * is an error naming its byte offset, never an allocation.
 */
import { FrameDecoder, type FrameParser, type ParseCursor } from '../protocol/decoder.js';
import { MemshiftError, ProtocolError, protocolError } from '../protocol/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { PCAPNG_SECTION_HEADER, PcapngParser } from './pcapng.js';

/** One captured packet. The reader reuses one object: copy what you keep past the callback. */
export interface PcapRecord {
  readonly interfaceId: number;
  readonly linkType: number;
  /** Microseconds since the Unix epoch (0 for pcapng simple packet blocks, which carry no time). */
  readonly timestampMicros: number;
  /** Length on the wire; larger than the captured length when the snap length cut the packet. */
  readonly originalLength: number;
  /**
   * The captured bytes are buffer[start, end): the pushed chunk, or one buffer
   * for a record that straddled chunks. Decoding reads them in place.
   */
  readonly buffer: Buffer;
  readonly start: number;
  readonly end: number;
  /** The captured bytes as a view (made on each access). */
  readonly data: Buffer;
}

/** The reader's one mutable record. */
export class CaptureRecord implements PcapRecord {
  interfaceId = -1;
  linkType = -1;
  timestampMicros = 0;
  originalLength = 0;
  buffer: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;
  get data(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }
}

export interface PcapInterface {
  readonly linkType: number;
  /** 0 means unlimited. */
  readonly snapLength: number;
  /** Timestamp units per second (1e6 for microseconds, 1e9 for nanoseconds). */
  readonly unitsPerSecond: number;
  /** Seconds added to every timestamp (pcapng if_tsoffset). */
  readonly offsetSeconds: number;
}

export interface PcapReaderOptions {
  /** Largest record or block accepted (default 1 MiB; tcpdump's own snap length maximum is 256 KiB). */
  readonly maxRecordBytes?: number;
}

/** A capture stream that cannot be read: bad magic, impossible length, truncation. */
export class PcapError extends MemshiftError {
  readonly offset: number;
  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super('MEMSHIFT_ERR_PCAP', message, options);
    this.offset = offset;
  }
}

const MAGIC_MICROS = 0xa1b2c3d4;
const MAGIC_NANOS = 0xa1b23c4d;
const CLASSIC_HEADER_BYTES = 24;
const CLASSIC_RECORD_HEADER_BYTES = 16;
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

/** The frame the decoder hands out for headers and skipped blocks. */
const NO_PACKET = new CaptureRecord();

class CaptureFileParser implements FrameParser<PcapRecord> {
  readonly limits: Limits = DEFAULT_LIMITS;
  readonly maxRecordBytes: number;
  format: 'pcap' | 'pcapng' | undefined;
  /** What an incomplete frame is, for the truncation message. */
  waitingFor = 'file header';
  records = 0;
  private readonly record = new CaptureRecord();
  private classicInterface: PcapInterface | undefined;
  private littleEndian = true;
  private nanos = false;
  private ng: PcapngParser | undefined;

  constructor(maxRecordBytes: number) {
    this.maxRecordBytes = maxRecordBytes;
  }

  get interfaces(): readonly PcapInterface[] {
    if (this.ng) return this.ng.interfaces;
    return this.classicInterface ? [this.classicInterface] : [];
  }

  get interfaceDrops(): number {
    return this.ng ? this.ng.interfaceDrops : 0;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): PcapRecord | undefined {
    if (this.format === undefined) {
      if (buf.length - start < 4) {
        cursor.need = 4;
        return undefined;
      }
      const magic = buf.readUInt32LE(start);
      if (magic === PCAPNG_SECTION_HEADER) {
        this.format = 'pcapng';
        this.ng = new PcapngParser(this.maxRecordBytes);
      } else if (isClassicMagic(magic) || isClassicMagic(buf.readUInt32BE(start))) {
        this.format = 'pcap';
      } else {
        throw protocolError('not a pcap or pcapng capture (unknown magic number)', buf, start);
      }
    }
    if (this.ng) {
      this.waitingFor = 'pcapng block';
      const got = this.ng.parse(buf, start, cursor, this.record);
      if (got === undefined) return undefined;
      if (!got) return NO_PACKET;
      this.records++;
      return this.record;
    }
    if (this.classicInterface === undefined) return this.classicHeader(buf, start, cursor);
    return this.classicRecord(buf, start, cursor, this.classicInterface);
  }

  private classicHeader(buf: Buffer, start: number, cursor: ParseCursor): PcapRecord | undefined {
    if (buf.length - start < CLASSIC_HEADER_BYTES) {
      cursor.need = CLASSIC_HEADER_BYTES;
      return undefined;
    }
    const le = buf.readUInt32LE(start);
    this.littleEndian = isClassicMagic(le);
    this.nanos = (this.littleEndian ? le : buf.readUInt32BE(start)) === MAGIC_NANOS;
    const major = this.u16(buf, start + 4);
    if (major !== 2) throw protocolError(`pcap major version ${major} is not 2`, buf, start + 4, start);
    this.classicInterface = {
      // The upper bits hold FCS information (pcap spec, "LinkType and additional information").
      linkType: this.u32(buf, start + 20) & 0xffff,
      snapLength: this.u32(buf, start + 16),
      unitsPerSecond: this.nanos ? 1e9 : 1e6,
      offsetSeconds: 0,
    };
    this.waitingFor = 'packet record';
    cursor.end = start + CLASSIC_HEADER_BYTES;
    return NO_PACKET;
  }

  private classicRecord(
    buf: Buffer,
    start: number,
    cursor: ParseCursor,
    iface: PcapInterface,
  ): PcapRecord | undefined {
    if (buf.length - start < CLASSIC_RECORD_HEADER_BYTES) {
      cursor.need = CLASSIC_RECORD_HEADER_BYTES;
      return undefined;
    }
    const captured = this.u32(buf, start + 8);
    if (captured > this.maxRecordBytes) {
      throw protocolError(
        `pcap record of ${captured} bytes exceeds the ${this.maxRecordBytes}-byte limit`,
        buf,
        start + 8,
        start,
      );
    }
    const total = CLASSIC_RECORD_HEADER_BYTES + captured;
    if (buf.length - start < total) {
      cursor.need = total;
      return undefined;
    }
    const seconds = this.u32(buf, start);
    const fraction = this.u32(buf, start + 4);
    const record = this.record;
    record.interfaceId = 0;
    record.linkType = iface.linkType;
    record.timestampMicros = seconds * 1e6 + (this.nanos ? Math.floor(fraction / 1000) : fraction);
    record.originalLength = Math.max(captured, this.u32(buf, start + 12));
    record.buffer = buf;
    record.start = start + CLASSIC_RECORD_HEADER_BYTES;
    record.end = start + total;
    cursor.end = start + total;
    this.records++;
    return record;
  }

  private u16(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  private u32(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }
}

function isClassicMagic(magic: number): boolean {
  return magic === MAGIC_MICROS || magic === MAGIC_NANOS;
}

/**
 * Reads a capture pushed in chunks of any size (a file read in pieces, or
 * tcpdump's stdout) and calls back once per packet.
 */
export class PcapReader {
  private readonly parser: CaptureFileParser;
  private readonly decoder: FrameDecoder<PcapRecord>;

  constructor(options: PcapReaderOptions = {}) {
    this.parser = new CaptureFileParser(options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES);
    this.decoder = new FrameDecoder(this.parser);
  }

  /** 'pcap' or 'pcapng' once the first four bytes have arrived. */
  get format(): 'pcap' | 'pcapng' | undefined {
    return this.parser.format;
  }

  /** The interfaces of the current section (one for classic pcap). */
  get interfaces(): readonly PcapInterface[] {
    return this.parser.interfaces;
  }

  /** Packet records read so far. */
  get records(): number {
    return this.parser.records;
  }

  /** Drops reported by pcapng interface statistics blocks (tcpdump reports its own on exit). */
  get interfaceDrops(): number {
    return this.parser.interfaceDrops;
  }

  /** Bytes of the stream consumed by whole records and blocks. */
  get offset(): number {
    return this.decoder.offset;
  }

  /** Bytes held for an incomplete record. */
  get buffered(): number {
    return this.decoder.buffered;
  }

  /** Throws PcapError on a malformed stream; after that every push throws the same error. */
  push(chunk: Buffer, onRecord: (record: PcapRecord) => void): void {
    try {
      this.decoder.push(chunk, (record) => {
        if (record !== NO_PACKET) onRecord(record);
      });
    } catch (err) {
      if (err instanceof ProtocolError) {
        throw new PcapError(`capture file: ${err.message}`, err.offset, { cause: err });
      }
      throw err;
    }
  }

  /** Call when the stream has ended: throws PcapError when it stopped inside a record, or held nothing. */
  end(): void {
    if (this.parser.format === undefined && this.decoder.buffered === 0 && this.decoder.offset === 0) {
      throw new PcapError('capture file is empty: no pcap or pcapng header', 0);
    }
    if (this.decoder.buffered > 0) {
      throw new PcapError(
        `capture file is truncated: it ends inside a ${this.parser.waitingFor} at byte ${this.decoder.offset}` +
          ` (${this.decoder.buffered} bytes of it present)`,
        this.decoder.offset,
      );
    }
  }
}
