import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemshiftError } from '../src/protocol/errors.js';
import { LINKTYPE } from '../src/capture/link.js';
import { PcapError, PcapReader, type PcapReaderOptions } from '../src/capture/pcap.js';
import { TCP_ACK, TCP_PSH } from '../src/capture/tcp.js';
import { buildTcpFrame, PcapngWriter, PcapWriter } from '../src/capture/writer.js';
import { chunkings, rng } from './support/chunks.js';

interface Seen {
  interfaceId: number;
  linkType: number;
  timestampMicros: number;
  originalLength: number;
  data: string;
}

function read(chunks: Buffer[], options: PcapReaderOptions = {}): { reader: PcapReader; records: Seen[] } {
  const reader = new PcapReader(options);
  const records: Seen[] = [];
  for (const chunk of chunks) {
    reader.push(chunk, (r) =>
      records.push({
        interfaceId: r.interfaceId,
        linkType: r.linkType,
        timestampMicros: r.timestampMicros,
        originalLength: r.originalLength,
        data: r.data.toString('hex'),
      }),
    );
  }
  reader.end();
  return { reader, records };
}

function frame(linkType: number, n: number, v6 = false): Buffer {
  return buildTcpFrame(linkType, {
    src: v6 ? '::1' : '127.0.0.1',
    dst: v6 ? '::1' : '127.0.0.1',
    srcPort: 40000 + n,
    dstPort: 11211,
    seq: 1000 * n,
    ack: 7,
    flags: TCP_ACK | TCP_PSH,
    payload: Buffer.from(`get key:${n}\r\n`),
  });
}

const T0 = 1_700_000_000_123_456;

function classic(options: { bigEndian?: boolean; nanos?: boolean; snapLength?: number }): Buffer {
  const w = new PcapWriter({ linkType: LINKTYPE.ETHERNET, ...options });
  const parts = [w.header()];
  for (let n = 0; n < 4; n++) parts.push(w.record(T0 + n * 1001, frame(LINKTYPE.ETHERNET, n)));
  return Buffer.concat(parts);
}

function pcapng(bigEndian: boolean): Buffer {
  const w = new PcapngWriter({ bigEndian });
  return Buffer.concat([
    w.section(),
    w.interface(LINKTYPE.ETHERNET),
    w.interface(LINKTYPE.LINUX_SLL2, { tsresol: 9 }),
    w.block(0x0bad, Buffer.from('an unknown block is skipped')),
    w.enhancedPacket(0, T0, frame(LINKTYPE.ETHERNET, 1)),
    w.enhancedPacket(1, T0 + 5, frame(LINKTYPE.LINUX_SLL2, 2, true)),
    w.interfaceStats(1, 42),
    w.enhancedPacket(0, T0 + 9, frame(LINKTYPE.ETHERNET, 3), 1500),
  ]);
}

describe('pcap reader: classic pcap', () => {
  for (const bigEndian of [false, true]) {
    for (const nanos of [false, true]) {
      it(`reads ${bigEndian ? 'big' : 'little'}-endian ${nanos ? 'nanosecond' : 'microsecond'} files in every chunking`, () => {
        const input = classic({ bigEndian, nanos });
        const expected = read([input]).records;
        assert.equal(expected.length, 4);
        assert.deepEqual(
          expected.map((r) => r.timestampMicros),
          [T0, T0 + 1001, T0 + 2002, T0 + 3003],
        );
        assert.equal(expected[2]!.data, frame(LINKTYPE.ETHERNET, 2).toString('hex'));
        for (const { name, chunks } of chunkings(input, 30))
          assert.deepEqual(read(chunks).records, expected, name);
      });
    }
  }

  it('honours the snap length: short data, original length kept', () => {
    const { records, reader } = read([classic({ snapLength: 60 })]);
    assert.equal(reader.interfaces[0]!.snapLength, 60);
    assert.equal(records[0]!.data.length, 120);
    assert.equal(records[0]!.originalLength, frame(LINKTYPE.ETHERNET, 0).length);
  });
});

describe('pcap reader: pcapng', () => {
  for (const bigEndian of [false, true]) {
    it(`reads ${bigEndian ? 'big' : 'little'}-endian sections with two interfaces in every chunking`, () => {
      const input = pcapng(bigEndian);
      const { records, reader } = read([input]);
      assert.equal(reader.format, 'pcapng');
      assert.deepEqual(
        records.map((r) => [r.interfaceId, r.linkType, r.timestampMicros, r.originalLength]),
        [
          [0, LINKTYPE.ETHERNET, T0, frame(LINKTYPE.ETHERNET, 1).length],
          [1, LINKTYPE.LINUX_SLL2, T0 + 5, frame(LINKTYPE.LINUX_SLL2, 2, true).length],
          [0, LINKTYPE.ETHERNET, T0 + 9, 1500],
        ],
      );
      assert.equal(records[1]!.data, frame(LINKTYPE.LINUX_SLL2, 2, true).toString('hex'));
      assert.equal(reader.interfaceDrops, 42);
      for (const { name, chunks } of chunkings(input, 30))
        assert.deepEqual(read(chunks).records, records, name);
    });
  }

  it('starts over at a second section, even in the other byte order', () => {
    const le = new PcapngWriter();
    const be = new PcapngWriter({ bigEndian: true });
    const input = Buffer.concat([
      le.section(),
      le.interface(LINKTYPE.ETHERNET),
      le.enhancedPacket(0, T0, frame(LINKTYPE.ETHERNET, 1)),
      be.section(),
      be.interface(LINKTYPE.RAW),
      be.enhancedPacket(0, T0 + 1, frame(LINKTYPE.RAW, 2)),
      be.simplePacket(frame(LINKTYPE.RAW, 3)),
    ]);
    const { records } = read([input]);
    assert.deepEqual(
      records.map((r) => [r.linkType, r.timestampMicros]),
      [
        [LINKTYPE.ETHERNET, T0],
        [LINKTYPE.RAW, T0 + 1],
        [LINKTYPE.RAW, 0],
      ],
    );
    assert.equal(records[2]!.data, frame(LINKTYPE.RAW, 3).toString('hex'));
  });
});

describe('pcap reader: bad input', () => {
  function failure(input: Buffer, options: PcapReaderOptions = {}): PcapError {
    try {
      read([input], options);
    } catch (err) {
      assert.ok(err instanceof PcapError, String(err));
      return err;
    }
    assert.fail('no error');
  }

  it('names the offset of a truncated record, for pcap and pcapng', () => {
    const input = classic({});
    const cut = input.length - 10;
    const err = failure(input.subarray(0, cut));
    const lastRecordAt = input.length - 16 - frame(LINKTYPE.ETHERNET, 3).length;
    assert.equal(err.offset, lastRecordAt);
    assert.match(
      err.message,
      new RegExp(`truncated: it ends inside a packet record at byte ${lastRecordAt}`),
    );
    const ng = pcapng(false);
    assert.match(failure(ng.subarray(0, ng.length - 1)).message, /ends inside a pcapng block at byte \d+/);
    assert.match(failure(Buffer.alloc(0)).message, /empty/);
    assert.match(failure(input.subarray(0, 10)).message, /ends inside a file header at byte 0/);
  });

  it('refuses a garbage record length without allocating it', () => {
    const input = classic({});
    input.writeUInt32LE(0xfffffff0, 24 + 8);
    const err = failure(input);
    assert.equal(err.code, 'MEMSHIFT_ERR_PCAP');
    assert.equal(err.offset, 32);
    assert.match(err.message, /record of 4294967280 bytes exceeds the 1048576-byte limit at byte 32/);
    const ng = pcapng(false);
    ng.writeUInt32LE(0x7ffffff0, 28 + 4); // the first interface block's length
    assert.match(failure(ng).message, /pcapng block of 2147483632 bytes exceeds .* at byte 32/);
  });

  it('refuses an unknown magic number and a block before its section', () => {
    assert.match(failure(Buffer.from('GET / HTTP/1.1\r\n')).message, /not a pcap or pcapng capture/);
    const w = new PcapngWriter();
    const bad = Buffer.concat([w.section(), w.enhancedPacket(3, T0, frame(LINKTYPE.ETHERNET, 1))]);
    assert.match(failure(bad).message, /undeclared interface 3/);
  });

  it('stays failed after an error', () => {
    const reader = new PcapReader();
    assert.throws(() => reader.push(Buffer.from('garbage!'), () => {}), PcapError);
    assert.throws(() => reader.push(classic({}), () => {}), PcapError);
  });

  it('never throws anything but a MemshiftError on 100,000 random and mutated inputs', () => {
    const random = rng(7);
    const seeds = [classic({}), classic({ bigEndian: true, nanos: true }), pcapng(false), pcapng(true)];
    const byte = (): number => Math.floor(random() * 256);
    for (let n = 0; n < 100_000; n++) {
      let input: Buffer;
      const kind = n % 4;
      if (kind === 0) {
        input = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, byte));
      } else {
        const seed = seeds[Math.floor(random() * seeds.length)]!;
        input = Buffer.from(seed.subarray(0, Math.floor(random() * (seed.length + 1))));
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips && input.length > 0; f++)
          input[Math.floor(random() * input.length)] = byte();
      }
      const at = Math.floor(random() * (input.length + 1));
      const reader = new PcapReader({ maxRecordBytes: 4096 });
      try {
        reader.push(input.subarray(0, at), () => {});
        reader.push(input.subarray(at), () => {});
        reader.end();
      } catch (err) {
        if (!(err instanceof MemshiftError))
          throw new Error(`input #${n} ${input.toString('hex')}: ${String(err)}`);
      }
    }
  });
});
