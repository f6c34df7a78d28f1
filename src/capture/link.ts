/**
 * Link layers: where the IP header starts inside a captured frame. Values are
 * the LINKTYPE_* numbers written in pcap and pcapng files (tcpdump.org,
 * "Link-layer header types"); IPv4 and IPv6 both carry their version in the
 * first nibble, so the IP layer needs nothing from here but the offset.
 */

export const LINKTYPE = {
  NULL: 0, // BSD loopback: 4-byte address family in the capturing host's byte order
  ETHERNET: 1,
  RAW_DLT12: 12, // DLT_RAW as most systems number it, found in old files
  RAW_DLT14: 14, // DLT_RAW as OpenBSD numbers it
  RAW: 101,
  LOOP: 108, // OpenBSD loopback: address family in network byte order
  LINUX_SLL: 113, // Linux cooked capture v1 (tcpdump -i any, older libpcap)
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276, // Linux cooked capture v2 (tcpdump -i any, libpcap >= 1.10)
} as const;

/** The frame carries something other than IPv4 or IPv6 (ARP, LLC, ...). */
export const LINK_NOT_IP = -1;
/** The frame ends inside the link header. */
export const LINK_TRUNCATED = -2;
/** A link type memshift does not decode. */
export const LINK_UNSUPPORTED = -3;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100; // 802.1Q
const ETHERTYPE_QINQ = 0x88a8; // 802.1ad outer tag
const ETHERTYPE_QINQ_OLD = 0x9100;
/** Address family values for IPv6 on the systems that write NULL/LOOP captures (Linux, BSDs, macOS). */
const AF_INET = 2;
const AF_INET6 = new Set([10, 23, 24, 26, 28, 30]);

export function isSupportedLinkType(linkType: number): boolean {
  return (
    linkType === LINKTYPE.NULL ||
    linkType === LINKTYPE.ETHERNET ||
    linkType === LINKTYPE.RAW_DLT12 ||
    linkType === LINKTYPE.RAW_DLT14 ||
    linkType === LINKTYPE.RAW ||
    linkType === LINKTYPE.LOOP ||
    linkType === LINKTYPE.LINUX_SLL ||
    linkType === LINKTYPE.IPV4 ||
    linkType === LINKTYPE.IPV6 ||
    linkType === LINKTYPE.LINUX_SLL2
  );
}

/**
 * Offset in `buf` of the IP header of the frame in [start, end), or
 * LINK_NOT_IP, LINK_TRUNCATED, LINK_UNSUPPORTED. Pure: reads the frame in
 * place (no view is made of it), allocates nothing.
 */
export function networkOffset(linkType: number, buf: Buffer, start = 0, end = buf.length): number {
  const length = end - start;
  switch (linkType) {
    case LINKTYPE.ETHERNET:
      return ethernet(buf, start, end);
    case LINKTYPE.LINUX_SLL:
      // 16-byte header; the protocol type (an EtherType) is the last field.
      if (length < 16) return LINK_TRUNCATED;
      return isIpEtherType(buf.readUInt16BE(start + 14)) ? start + 16 : LINK_NOT_IP;
    case LINKTYPE.LINUX_SLL2:
      // 20-byte header; the protocol type comes first.
      if (length < 20) return LINK_TRUNCATED;
      return isIpEtherType(buf.readUInt16BE(start)) ? start + 20 : LINK_NOT_IP;
    case LINKTYPE.NULL: {
      if (length < 4) return LINK_TRUNCATED;
      // Host byte order of the machine that captured: a little-endian value
      // above 0xffff means the writer was big-endian.
      let family = buf.readUInt32LE(start);
      if (family > 0xffff) family = buf.readUInt32BE(start);
      return isIpFamily(family) ? start + 4 : LINK_NOT_IP;
    }
    case LINKTYPE.LOOP:
      if (length < 4) return LINK_TRUNCATED;
      return isIpFamily(buf.readUInt32BE(start)) ? start + 4 : LINK_NOT_IP;
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_DLT12:
    case LINKTYPE.RAW_DLT14:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return start;
    default:
      return LINK_UNSUPPORTED;
  }
}

function ethernet(buf: Buffer, start: number, end: number): number {
  let offset = start + 12;
  for (;;) {
    if (end < offset + 2) return LINK_TRUNCATED;
    const type = buf.readUInt16BE(offset);
    if (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD) {
      offset += 4; // tag control information, then the next EtherType
      continue;
    }
    return isIpEtherType(type) ? offset + 2 : LINK_NOT_IP;
  }
}

function isIpEtherType(type: number): boolean {
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6;
}

function isIpFamily(family: number): boolean {
  return family === AF_INET || AF_INET6.has(family);
}
