import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAddress, parseAddress } from '../src/capture/address.js';
import { PacketDecoder } from '../src/capture/decode.js';
import { captureFilter, parseAddressRange, rangeContains } from '../src/capture/filter.js';
import { LINKTYPE } from '../src/capture/link.js';
import { TCP_ACK, TCP_PSH, type TcpSegment } from '../src/capture/tcp.js';
import { buildIpPacket, buildTcpFrame, type TcpFrameSpec } from '../src/capture/writer.js';
import { MemshiftError } from '../src/protocol/errors.js';
import { rng } from './support/chunks.js';

const payload = Buffer.from('set k 0 0 5\r\nhello\r\n');

function spec(v6: boolean, extra: Partial<TcpFrameSpec> = {}): TcpFrameSpec {
  return {
    src: v6 ? 'fd00::1:2' : '10.1.2.3',
    dst: v6 ? '::1' : '127.0.0.1',
    srcPort: 51234,
    dstPort: 11211,
    seq: 0xfffffff0,
    ack: 99,
    flags: TCP_ACK | TCP_PSH,
    payload,
    ...extra,
  };
}

function decoded(seg: TcpSegment | undefined): object {
  assert.ok(seg, 'no segment');
  return {
    family: seg.family,
    src: formatAddress(seg.family, seg.src),
    dst: formatAddress(seg.family, seg.dst),
    srcPort: seg.srcPort,
    dstPort: seg.dstPort,
    seq: seg.seq,
    ack: seg.ack,
    flags: seg.flags,
    payload: seg.payload.toString(),
    payloadLength: seg.payloadLength,
  };
}

const linkTypes: Array<[string, number, Partial<TcpFrameSpec>]> = [
  ['Ethernet', LINKTYPE.ETHERNET, {}],
  ['Ethernet with two 802.1Q tags', LINKTYPE.ETHERNET, { vlans: [10, 20] }],
  ['Linux cooked v1', LINKTYPE.LINUX_SLL, {}],
  ['Linux cooked v2', LINKTYPE.LINUX_SLL2, {}],
  ['null, little-endian family', LINKTYPE.NULL, {}],
  ['null, big-endian family', LINKTYPE.NULL, { bigEndianFamily: true }],
  ['OpenBSD loop', LINKTYPE.LOOP, {}],
  ['raw IP (101)', LINKTYPE.RAW, {}],
  ['raw IP (12)', LINKTYPE.RAW_DLT12, {}],
  ['raw IP (14)', LINKTYPE.RAW_DLT14, {}],
];

describe('packet decoder: link types and IP versions', () => {
  for (const [name, linkType, extra] of linkTypes) {
    for (const v6 of [false, true]) {
      it(`decodes ${name} over IPv${v6 ? 6 : 4}`, () => {
        const decoder = new PacketDecoder();
        const seg = decoder.decodeFrame(linkType, buildTcpFrame(linkType, spec(v6, extra)), 5);
        assert.deepEqual(decoded(seg), {
          family: v6 ? 6 : 4,
          src: v6 ? 'fd00::1:2' : '10.1.2.3',
          dst: v6 ? '::1' : '127.0.0.1',
          srcPort: 51234,
          dstPort: 11211,
          seq: 0xfffffff0,
          ack: 99,
          flags: TCP_ACK | TCP_PSH,
          payload: payload.toString(),
          payloadLength: payload.length,
        });
        assert.equal(seg?.timestampMicros, 5);
      });
    }
  }

  it('reads past IPv4 options and IPv6 extension headers', () => {
    const decoder = new PacketDecoder();
    const options = Buffer.from([0x01, 0x01, 0x01, 0x00]); // NOP, NOP, NOP, end of options
    const v4 = decoder.decodeFrame(LINKTYPE.RAW, buildIpPacket(spec(false, { ipv4Options: options })), 0);
    assert.equal(v4?.payload.toString(), payload.toString());
    const v6 = decoder.decodeFrame(
      LINKTYPE.RAW,
      buildIpPacket(spec(true, { ipv6ExtensionHeaders: true })),
      0,
    );
    assert.equal(v6?.payload.toString(), payload.toString());
  });

  it('ignores Ethernet padding after the IP datagram', () => {
    const frame = Buffer.concat([buildTcpFrame(LINKTYPE.ETHERNET, spec(false)), Buffer.alloc(8, 0xee)]);
    assert.equal(
      new PacketDecoder().decodeFrame(LINKTYPE.ETHERNET, frame, 0)?.payload.toString(),
      payload.toString(),
    );
  });

  it('keeps the true payload length when the snap length cut the frame', () => {
    const frame = buildTcpFrame(LINKTYPE.ETHERNET, spec(false));
    const seg = new PacketDecoder().decodeFrame(LINKTYPE.ETHERNET, frame.subarray(0, frame.length - 6), 0);
    assert.equal(seg?.payload.length, payload.length - 6);
    assert.equal(seg?.payloadLength, payload.length);
  });

  it('counts and skips fragments, non-TCP, non-IP, truncated and unsupported frames', () => {
    const decoder = new PacketDecoder();
    const eth = LINKTYPE.ETHERNET;
    const first = buildTcpFrame(eth, spec(false, { fragment: { offset: 0, more: true } }));
    const later = buildTcpFrame(eth, spec(false, { fragment: { offset: 3, more: false } }));
    const udp = buildTcpFrame(eth, spec(false));
    udp[14 + 9] = 17;
    const arp = Buffer.from(buildTcpFrame(eth, spec(false)));
    arp.writeUInt16BE(0x0806, 12);
    const short = buildTcpFrame(eth, spec(false)).subarray(0, 14 + 20 + 10);
    const badVersion = Buffer.from(buildTcpFrame(LINKTYPE.RAW, spec(false)));
    badVersion[0] = 0x55;
    const frames: Array<[number, Buffer]> = [
      [eth, first],
      [eth, later],
      [eth, udp],
      [eth, arp],
      [eth, short],
      [LINKTYPE.RAW, badVersion],
      [147, udp],
      [eth, Buffer.alloc(5)],
    ];
    for (const [linkType, frame] of frames) assert.equal(decoder.decodeFrame(linkType, frame, 0), undefined);
    assert.deepEqual(decoder.counters, {
      frames: 8,
      segments: 0,
      notIp: 1,
      notTcp: 1,
      fragments: 2,
      truncated: 2,
      malformed: 1,
      unsupportedLink: 1,
    });
  });

  it('never throws on 100,000 random and mutated frames', () => {
    const random = rng(11);
    const decoder = new PacketDecoder();
    const seeds = linkTypes.flatMap(([, linkType, extra]) =>
      [false, true].map((v6) => [linkType, buildTcpFrame(linkType, spec(v6, extra))] as const),
    );
    for (let n = 0; n < 100_000; n++) {
      const [linkType, seed] = seeds[n % seeds.length]!;
      const frame = Buffer.from(seed.subarray(0, Math.floor(random() * (seed.length + 1))));
      for (let f = 0; f < 3 && frame.length > 0; f++)
        frame[Math.floor(random() * frame.length)] = random() * 256;
      const seg = decoder.decodeFrame(linkType, frame, 0);
      if (seg) assert.ok(seg.payload.length <= seg.payloadLength, `frame #${n}`);
    }
    assert.equal(decoder.counters.frames, 100_000);
  });
});

describe('addresses and client exclusion', () => {
  it('parses and formats IPv4 and IPv6 addresses', () => {
    for (const text of [
      '127.0.0.2',
      '::1',
      'fd00::1:2',
      '2001:db8::',
      '::',
      '1:2:3:4:5:6:7:8',
      '::ffff:10.0.0.1',
    ]) {
      const { family, words } = parseAddress(text);
      const again = formatAddress(family, words);
      assert.deepEqual(parseAddress(again), { family, words }, text);
    }
    assert.equal(
      formatAddress(6, parseAddress('2001:0db8:0000:0000:0000:0000:0000:0001').words),
      '2001:db8::1',
    );
    assert.throws(() => parseAddress('10.0.0.256'), MemshiftError);
  });

  it('matches ADDR and ADDR/BITS ranges, host bits cleared', () => {
    const host = parseAddressRange('127.0.0.2');
    assert.equal(host.text, '127.0.0.2/32');
    assert.ok(rangeContains(host, 4, parseAddress('127.0.0.2').words));
    assert.ok(!rangeContains(host, 4, parseAddress('127.0.0.1').words));
    const net = parseAddressRange('10.1.2.3/16');
    assert.equal(net.text, '10.1.0.0/16');
    assert.ok(rangeContains(net, 4, parseAddress('10.1.200.9').words));
    assert.ok(!rangeContains(net, 4, parseAddress('10.2.0.1').words));
    const v6 = parseAddressRange('fd00:1::5/40');
    assert.equal(v6.text, 'fd00:1::/40');
    assert.ok(rangeContains(v6, 6, parseAddress('fd00:1:ff::1').words));
    assert.ok(!rangeContains(v6, 6, parseAddress('fd00:2::1').words));
    assert.ok(!rangeContains(v6, 4, parseAddress('10.1.2.3').words));
    assert.ok(rangeContains(parseAddressRange('0.0.0.0/0'), 4, parseAddress('8.8.8.8').words));
    assert.throws(() => parseAddressRange('10.0.0.1/33'), /bad prefix length/);
    assert.throws(() => parseAddressRange('nope/8'), /not an IP address/);
  });

  it('builds the BPF expression from ports and excluded clients', () => {
    assert.equal(
      captureFilter([11211, 11212], [parseAddressRange('127.0.0.2')]),
      'tcp and (src port 11211 or src port 11212 or dst port 11211 or dst port 11212)' +
        ' and not (src net 127.0.0.2/32 and (dst port 11211 or dst port 11212))' +
        ' and not (dst net 127.0.0.2/32 and (src port 11211 or src port 11212))',
    );
    assert.throws(() => captureFilter([]), /at least one server port/);
    assert.throws(() => captureFilter([70000]), /not between 1 and 65535/);
  });
});
