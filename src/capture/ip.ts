/**
 * IPv4 and IPv6 headers: addresses, the transport protocol, and where its
 * header starts. Fragments are recognised and skipped (memcached requests
 * ride on TCP, whose segments fit the path MTU; a fragmented one is rare
 * enough to count instead of reassemble).
 */
import type { IpFamily } from './address.js';

export const IP_OK = 0;
/** The frame ends inside the IP header. */
export const IP_TRUNCATED = 1;
/** A header field is impossible (version, header length, total length). */
export const IP_MALFORMED = 2;
/** A fragment (first or later): skipped and counted. */
export const IP_FRAGMENT = 3;
/** IPv6 with a jumbo payload or an ESP/no-next-header chain: nothing memshift can read. */
export const IP_UNREADABLE = 4;

export type IpStatus =
  typeof IP_OK | typeof IP_TRUNCATED | typeof IP_MALFORMED | typeof IP_FRAGMENT | typeof IP_UNREADABLE;

export const IPPROTO_TCP = 6;

const V6_HOP_BY_HOP = 0;
const V6_ROUTING = 43;
const V6_FRAGMENT = 44;
const V6_ESP = 50;
const V6_AUTH = 51;
const V6_NO_NEXT = 59;
const V6_DEST_OPTS = 60;
const V6_MOBILITY = 135;
const V6_HIP = 139;
const V6_SHIM6 = 140;

/**
 * One decoded IP header. The decoder owns one instance and overwrites it per
 * packet, so nothing is allocated on the hot path.
 */
export class IpPacket {
  family: IpFamily = 4;
  /** Source address words (IPv4 in word 0, the others 0). */
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  /** Transport protocol (IPv6: after the extension headers). */
  protocol = 0;
  /** Where the transport header starts in the frame. */
  transportOffset = 0;
  /** Transport bytes by the IP header's own length; the capture may hold fewer. */
  transportLength = 0;
  /** End of the IP datagram inside the frame: link padding and trailers excluded, snap length honoured. */
  end = 0;
}

/** Reads the IP header at `offset` into `out`; the captured frame ends at `end`. */
export function parseIp(frame: Buffer, offset: number, end: number, out: IpPacket): IpStatus {
  if (end < offset + 1) return IP_TRUNCATED;
  const version = frame[offset]! >>> 4;
  if (version === 4) return parseIpv4(frame, offset, end, out);
  if (version === 6) return parseIpv6(frame, offset, end, out);
  return IP_MALFORMED;
}

function parseIpv4(frame: Buffer, offset: number, end: number, out: IpPacket): IpStatus {
  if (end < offset + 20) return IP_TRUNCATED;
  const headerLength = (frame[offset]! & 0x0f) * 4; // options included
  const totalLength = frame.readUInt16BE(offset + 2);
  if (headerLength < 20 || totalLength < headerLength) return IP_MALFORMED;
  if (end < offset + headerLength) return IP_TRUNCATED;
  // More-fragments flag or a non-zero fragment offset: part of a fragmented datagram.
  if ((frame.readUInt16BE(offset + 6) & 0x3fff) !== 0) return IP_FRAGMENT;
  out.family = 4;
  out.protocol = frame[offset + 9]!;
  out.src[0] = frame.readUInt32BE(offset + 12);
  out.dst[0] = frame.readUInt32BE(offset + 16);
  out.src[1] = out.src[2] = out.src[3] = 0;
  out.dst[1] = out.dst[2] = out.dst[3] = 0;
  out.transportOffset = offset + headerLength;
  out.transportLength = totalLength - headerLength;
  out.end = Math.min(end, offset + totalLength);
  return IP_OK;
}

function parseIpv6(frame: Buffer, offset: number, end: number, out: IpPacket): IpStatus {
  if (end < offset + 40) return IP_TRUNCATED;
  const payloadLength = frame.readUInt16BE(offset + 4);
  // A zero payload length announces a jumbogram (RFC 2675), never seen on a TCP path to memcached.
  if (payloadLength === 0) return IP_UNREADABLE;
  let next = frame[offset + 6]!;
  let at = offset + 40;
  const datagramEnd = offset + 40 + payloadLength;
  // Walk the extension headers up to the transport header.
  for (;;) {
    if (
      next === V6_HOP_BY_HOP ||
      next === V6_ROUTING ||
      next === V6_DEST_OPTS ||
      next === V6_MOBILITY ||
      next === V6_HIP ||
      next === V6_SHIM6
    ) {
      if (end < at + 2) return IP_TRUNCATED;
      next = frame[at]!;
      at += (frame[at + 1]! + 1) * 8;
    } else if (next === V6_FRAGMENT) {
      if (end < at + 8) return IP_TRUNCATED;
      // Offset 0 with no more fragments is an "atomic fragment": the whole datagram.
      if ((frame.readUInt16BE(at + 2) & 0xfff9) !== 0) return IP_FRAGMENT;
      next = frame[at]!;
      at += 8;
    } else if (next === V6_AUTH) {
      if (end < at + 2) return IP_TRUNCATED;
      next = frame[at]!;
      at += (frame[at + 1]! + 2) * 4;
    } else if (next === V6_ESP || next === V6_NO_NEXT) {
      return IP_UNREADABLE;
    } else break;
    if (at > datagramEnd) return IP_MALFORMED;
  }
  out.family = 6;
  out.protocol = next;
  for (let i = 0; i < 4; i++) {
    out.src[i] = frame.readUInt32BE(offset + 8 + 4 * i);
    out.dst[i] = frame.readUInt32BE(offset + 24 + 4 * i);
  }
  out.transportOffset = at;
  out.transportLength = datagramEnd - at;
  out.end = Math.min(end, datagramEnd);
  return IP_OK;
}
