/**
 * The TCP header (RFC 9293, section 3.1): ports, sequence and acknowledgment
 * numbers, flags, and the payload the capture holds.
 */
import { IpPacket } from './ip.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export const TCP_OK = 0;
export const TCP_TRUNCATED = 1;
export const TCP_MALFORMED = 2;
export type TcpStatus = typeof TCP_OK | typeof TCP_TRUNCATED | typeof TCP_MALFORMED;

const EMPTY = Buffer.alloc(0);

/**
 * One decoded TCP segment with its IP header. Reused for every packet: a
 * consumer that keeps anything past the call copies it (the payload is a view
 * into the capture's own buffer).
 */
export class TcpSegment extends IpPacket {
  /** Capture time, microseconds since the Unix epoch. */
  timestampMicros = 0;
  srcPort = 0;
  dstPort = 0;
  /** Sequence and acknowledgment numbers, unsigned 32-bit. */
  seq = 0;
  ack = 0;
  flags = 0;
  /** The payload bytes the capture holds (fewer than `payloadLength` when the snap length cut it). */
  payload: Buffer = EMPTY;
  /** Payload length by the IP header: what the sender sent. */
  payloadLength = 0;
}

/** Reads the TCP header at `seg.transportOffset` (set by parseIp) into `seg`. */
export function parseTcp(frame: Buffer, seg: TcpSegment): TcpStatus {
  const at = seg.transportOffset;
  if (seg.end < at + 20) return TCP_TRUNCATED;
  const headerLength = (frame[at + 12]! >>> 4) * 4;
  if (headerLength < 20 || headerLength > seg.transportLength) return TCP_MALFORMED;
  if (seg.end < at + headerLength) return TCP_TRUNCATED;
  seg.srcPort = frame.readUInt16BE(at);
  seg.dstPort = frame.readUInt16BE(at + 2);
  seg.seq = frame.readUInt32BE(at + 4);
  seg.ack = frame.readUInt32BE(at + 8);
  seg.flags = frame[at + 13]!;
  seg.payloadLength = seg.transportLength - headerLength;
  seg.payload = seg.payloadLength === 0 ? EMPTY : frame.subarray(at + headerLength, seg.end);
  return TCP_OK;
}
