/**
 * From a captured frame to a TCP segment: link layer, IP, TCP. Everything
 * that is not a whole TCP segment is counted by reason and skipped; one bad
 * packet never stops the capture.
 */
import { IP_FRAGMENT, IP_OK, IP_TRUNCATED, IP_UNREADABLE, IPPROTO_TCP, parseIp } from './ip.js';
import { LINK_NOT_IP, LINK_TRUNCATED, LINK_UNSUPPORTED, networkOffset } from './link.js';
import type { PcapRecord } from './pcap.js';
import { parseTcp, TCP_OK, TCP_TRUNCATED, TcpSegment } from './tcp.js';

export interface DecodeCounters {
  /** Frames handed to the decoder. */
  frames: number;
  /** Frames that became TCP segments. */
  segments: number;
  /** ARP, LLC and other non-IP frames. */
  notIp: number;
  /** IP datagrams carrying something other than TCP (or that cannot be read, as ESP). */
  notTcp: number;
  /** IPv4 or IPv6 fragments, skipped. */
  fragments: number;
  /** Frames that ended inside a header (snap length too small for the headers). */
  truncated: number;
  /** Headers with impossible fields. */
  malformed: number;
  /** Frames of a link type memshift does not decode. */
  unsupportedLink: number;
}

export class PacketDecoder {
  readonly counters: DecodeCounters = {
    frames: 0,
    segments: 0,
    notIp: 0,
    notTcp: 0,
    fragments: 0,
    truncated: 0,
    malformed: 0,
    unsupportedLink: 0,
  };
  private readonly segment = new TcpSegment();

  /**
   * The TCP segment in `record`, or undefined (counted). The segment object
   * is reused by the next call.
   */
  decode(record: PcapRecord): TcpSegment | undefined {
    return this.decodeAt(record.linkType, record.buffer, record.start, record.end, record.timestampMicros);
  }

  decodeFrame(linkType: number, frame: Buffer, timestampMicros: number): TcpSegment | undefined {
    return this.decodeAt(linkType, frame, 0, frame.length, timestampMicros);
  }

  /** The frame in [start, end) of `buf`, read in place. */
  decodeAt(
    linkType: number,
    buf: Buffer,
    start: number,
    end: number,
    timestampMicros: number,
  ): TcpSegment | undefined {
    const c = this.counters;
    c.frames++;
    const offset = networkOffset(linkType, buf, start, end);
    if (offset < 0) {
      if (offset === LINK_NOT_IP) c.notIp++;
      else if (offset === LINK_TRUNCATED) c.truncated++;
      else if (offset === LINK_UNSUPPORTED) c.unsupportedLink++;
      return undefined;
    }
    const seg = this.segment;
    const ip = parseIp(buf, offset, end, seg);
    if (ip !== IP_OK) {
      if (ip === IP_FRAGMENT) c.fragments++;
      else if (ip === IP_TRUNCATED) c.truncated++;
      else if (ip === IP_UNREADABLE) c.notTcp++;
      else c.malformed++;
      return undefined;
    }
    if (seg.protocol !== IPPROTO_TCP) {
      c.notTcp++;
      return undefined;
    }
    const tcp = parseTcp(buf, seg);
    if (tcp !== TCP_OK) {
      if (tcp === TCP_TRUNCATED) c.truncated++;
      else c.malformed++;
      return undefined;
    }
    seg.timestampMicros = timestampMicros;
    c.segments++;
    return seg;
  }
}
