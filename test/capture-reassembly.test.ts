import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PacketDecoder } from '../src/capture/decode.js';
import { parseAddressRange } from '../src/capture/filter.js';
import { LINKTYPE } from '../src/capture/link.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../src/capture/tcp.js';
import {
  FlowTable,
  type CloseReason,
  type Direction,
  type Flow,
  type FlowListener,
  type FlowTableOptions,
} from '../src/capture/tcp-reassembly.js';
import { buildIpPacket, type TcpFrameSpec } from '../src/capture/writer.js';

const SERVER_PORT = 11211;

/** Records every event; each direction's stream as text with gaps written `[gap N]`. */
class Recorder implements FlowListener {
  readonly events: string[] = [];
  readonly streams = new Map<string, string>();
  readonly flows: Flow[] = [];
  open(flow: Flow): void {
    this.flows.push(flow);
    this.events.push(`open ${flow.id}${flow.midstream ? ' midstream' : ''}`);
  }
  data(flow: Flow, direction: Direction, chunk: Buffer): void {
    this.append(flow, direction, chunk.toString('latin1'));
  }
  gap(flow: Flow, direction: Direction, missing: number): void {
    this.append(flow, direction, `[gap ${missing}]`);
  }
  close(flow: Flow, reason: CloseReason): void {
    this.events.push(`close ${flow.id} ${reason}`);
  }
  stream(id: number, direction: Direction): string {
    return this.streams.get(`${id} ${direction}`) ?? '';
  }
  private append(flow: Flow, direction: Direction, text: string): void {
    const key = `${flow.id} ${direction}`;
    this.streams.set(key, (this.streams.get(key) ?? '') + text);
  }
}

interface Packet {
  /** Client to server, or back. */
  readonly up: boolean;
  readonly seq: number;
  readonly ack?: number;
  readonly flags: number;
  readonly data?: string;
  readonly clientPort?: number;
  readonly client?: string;
  readonly at?: number;
  /** Bytes of the frame cut off, as a small snap length would. */
  readonly cut?: number;
}

function frameOf(p: Packet): Buffer {
  const client = p.client ?? '10.0.0.1';
  const server = client.includes(':') ? 'fd00::9' : '10.0.0.9';
  const clientPort = p.clientPort ?? 40000;
  const spec: TcpFrameSpec = {
    src: p.up ? client : server,
    dst: p.up ? server : client,
    srcPort: p.up ? clientPort : SERVER_PORT,
    dstPort: p.up ? SERVER_PORT : clientPort,
    seq: p.seq >>> 0,
    ack: (p.ack ?? 0) >>> 0,
    flags: p.flags,
    payload: Buffer.from(p.data ?? '', 'latin1'),
  };
  const frame = buildIpPacket(spec);
  return p.cut ? frame.subarray(0, frame.length - p.cut) : frame;
}

function run(
  packets: readonly Packet[],
  options: Partial<FlowTableOptions> = {},
): { rec: Recorder; table: FlowTable } {
  const rec = new Recorder();
  const table = new FlowTable(rec, { serverPorts: [SERVER_PORT], ...options });
  const decoder = new PacketDecoder();
  for (const p of packets) {
    const seg = decoder.decodeFrame(LINKTYPE.RAW, frameOf(p), p.at ?? 0);
    assert.ok(seg, 'test packet did not decode');
    table.onPacket(seg);
  }
  return { rec, table };
}

const C_ISN = 0xfffffff8; // the client's stream crosses 2^32 after 7 bytes
const S_ISN = 5000;

function handshake(clientPort = 40000, client?: string): Packet[] {
  const base = { clientPort, ...(client === undefined ? {} : { client }) };
  return [
    { ...base, up: true, seq: C_ISN, flags: TCP_SYN },
    { ...base, up: false, seq: S_ISN, ack: C_ISN + 1, flags: TCP_SYN | TCP_ACK },
    { ...base, up: true, seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_ACK },
  ];
}

function up(offset: number, data: string, extra: Partial<Packet> = {}): Packet {
  return { up: true, seq: C_ISN + 1 + offset, ack: S_ISN + 1, flags: TCP_ACK | TCP_PSH, data, ...extra };
}

function down(offset: number, data: string, clientAck: number, extra: Partial<Packet> = {}): Packet {
  return {
    up: false,
    seq: S_ISN + 1 + offset,
    ack: C_ISN + 1 + clientAck,
    flags: TCP_ACK | TCP_PSH,
    data,
    ...extra,
  };
}

function* permutations<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const tail of permutations(rest)) yield [items[i]!, ...tail];
  }
}

const TEXT = 'get alpha beta gamma\r\n';

describe('flow table: ordering', () => {
  it('delivers the exact stream for every order of out-of-order, duplicated and overlapping segments', () => {
    const segments = [
      up(0, TEXT.slice(0, 5)),
      up(5, TEXT.slice(5, 10)),
      up(5, TEXT.slice(5, 10)), // duplicate
      up(8, TEXT.slice(8, 15)), // overlaps both neighbours
      up(12, TEXT.slice(12, 22)),
      up(3, TEXT.slice(3, 13)), // retransmission spanning three others
    ];
    let runs = 0;
    for (const order of permutations(segments)) {
      const { rec, table } = run([...handshake(), ...order]);
      assert.equal(rec.stream(1, 'request'), TEXT, order.map((p) => p.seq - C_ISN - 1).join(','));
      assert.equal(table.counters.gaps, 0);
      assert.equal(table.counters.bytes, TEXT.length);
      // Every byte offered beyond the first copy was counted as retransmitted.
      assert.equal(table.counters.retransmittedBytes, 5 + 5 + 5 + 7 + 10 + 10 - TEXT.length);
      runs++;
    }
    assert.equal(runs, 720);
  });

  it('reads across the 2^32 wrap of sequence numbers in both directions', () => {
    const { rec } = run([
      { up: true, seq: 0xfffffffe, flags: TCP_SYN },
      { up: false, seq: 0xfffffffa, ack: 0xffffffff, flags: TCP_SYN | TCP_ACK },
      { up: true, seq: 0xffffffff, ack: 0xfffffffb, flags: TCP_ACK | TCP_PSH, data: 'abc' },
      { up: true, seq: 2, ack: 0xfffffffb, flags: TCP_ACK | TCP_PSH, data: 'def' },
      { up: false, seq: 0xfffffffb, ack: 5, flags: TCP_ACK | TCP_PSH, data: 'ENDED\r\n' },
      { up: false, seq: 2, ack: 5, flags: TCP_ACK | TCP_PSH, data: 'again' },
    ]);
    assert.equal(rec.stream(1, 'request'), 'abcdef');
    assert.equal(rec.stream(1, 'response'), 'ENDED\r\nagain');
  });
});

describe('flow table: losses', () => {
  it('reports a missing segment as a gap of its size once the receiver acknowledges past it', () => {
    const { rec, table } = run([
      ...handshake(),
      up(0, 'get a\r\n'),
      up(14, 'get c\r\n'), // 'get bb\r\n' (7 bytes at offset 7) was not captured
      down(0, 'END\r\n', 21),
      up(21, 'get d\r\n'),
    ]);
    assert.equal(rec.stream(1, 'request'), 'get a\r\n[gap 7]get c\r\nget d\r\n');
    assert.equal(rec.stream(1, 'response'), 'END\r\n');
    assert.equal(table.counters.gapBytes, 7);
    assert.equal(table.counters.gaps, 1);
    assert.equal(table.counters.outOfOrderSegments, 1);
  });

  it('reports a gap for a lost segment with nothing after it, from the acknowledgment alone', () => {
    const { rec } = run([...handshake(), up(0, 'get a\r\n'), down(0, 'VALUE', 30)]);
    assert.equal(rec.stream(1, 'request'), 'get a\r\n[gap 23]');
  });

  it('declares the oldest hole lost when the out-of-order buffer is full, and counts it', () => {
    const { rec, table } = run(
      [...handshake(), up(0, 'aaaa'), up(8, 'cccc'), up(12, 'dddd'), up(16, 'eeee'), up(20, 'ffff')],
      { maxBufferedBytes: 8 },
    );
    assert.equal(rec.stream(1, 'request'), 'aaaa[gap 4]ccccddddeeeeffff');
    assert.equal(table.counters.overflows, 1);
    assert.equal(table.counters.gapBytes, 4);
  });

  it('bounds the out-of-order bytes of all flows together', () => {
    const { rec, table } = run(
      [
        ...handshake(40000),
        ...handshake(40001),
        up(0, 'aaaa'),
        up(8, 'cccc'),
        up(0, 'AAAA', { clientPort: 40001 }),
        up(8, 'CCCC', { clientPort: 40001 }),
        up(12, 'DDDD', { clientPort: 40001 }),
      ],
      { maxTotalBufferedBytes: 8 },
    );
    assert.equal(table.bufferedBytes, 4); // flow 1 still waits for its hole
    assert.equal(table.counters.overflows, 1);
    assert.equal(rec.stream(2, 'request'), 'AAAA[gap 4]CCCCDDDD');
    table.closeAll();
    assert.equal(rec.stream(1, 'request'), 'aaaa[gap 4]cccc');
    assert.equal(table.bufferedBytes, 0);
  });

  it('turns bytes cut by the snap length into a gap and reads on', () => {
    const { rec, table } = run([...handshake(), up(0, 'get a\r\n', { cut: 3 }), up(7, 'get b\r\n')]);
    assert.equal(rec.stream(1, 'request'), 'get [gap 3]get b\r\n');
    assert.equal(table.counters.gapBytes, 3);
  });

  it('hands out held data with its holes when the flow is reset', () => {
    const { rec } = run([
      ...handshake(),
      up(0, 'aa'),
      up(4, 'cc'),
      { up: false, seq: S_ISN + 1, flags: TCP_RST },
    ]);
    assert.equal(rec.stream(1, 'request'), 'aa[gap 2]cc');
    assert.deepEqual(rec.events, ['open 1', 'close 1 rst']);
  });
});

describe('flow table: lifecycle', () => {
  it('closes on FIN from both sides once every byte is delivered', () => {
    const { rec, table } = run([
      ...handshake(),
      up(0, 'get a\r\n'),
      down(0, 'END\r\n', 7),
      { up: true, seq: C_ISN + 8, ack: S_ISN + 6, flags: TCP_FIN | TCP_ACK },
      { up: false, seq: S_ISN + 6, ack: C_ISN + 9, flags: TCP_FIN | TCP_ACK },
      { up: true, seq: C_ISN + 9, ack: S_ISN + 7, flags: TCP_ACK },
    ]);
    assert.deepEqual(rec.events, ['open 1', 'close 1 fin']);
    assert.equal(rec.stream(1, 'request'), 'get a\r\n');
    assert.equal(rec.stream(1, 'response'), 'END\r\n');
    assert.equal(table.size, 0);
    assert.equal(table.counters.strayPackets, 1); // the last ACK, after the close
    assert.equal(rec.flows[0]!.client.address, '10.0.0.1');
    assert.equal(rec.flows[0]!.server.port, SERVER_PORT);
  });

  it('joins a connection mid-stream at its first payload, from either side', () => {
    const { rec } = run([
      { up: false, seq: 777, ack: 1234, flags: TCP_ACK | TCP_PSH, data: 'lue\r\nEND\r\n' },
      { up: true, seq: 1234, ack: 787, flags: TCP_ACK | TCP_PSH, data: 'get x\r\n' },
      { up: false, seq: 787, ack: 1241, flags: TCP_ACK | TCP_PSH, data: 'END\r\n' },
    ]);
    assert.deepEqual(rec.events, ['open 1 midstream']);
    assert.equal(rec.flows[0]!.client.port, 40000);
    assert.equal(rec.stream(1, 'response'), 'lue\r\nEND\r\nEND\r\n');
    assert.equal(rec.stream(1, 'request'), 'get x\r\n');
  });

  it('does not open a flow on a lone ACK, FIN or RST', () => {
    const { rec, table } = run([
      { up: true, seq: 1, ack: 2, flags: TCP_ACK },
      { up: true, seq: 1, ack: 2, flags: TCP_FIN | TCP_ACK },
      { up: false, seq: 1, flags: TCP_RST },
    ]);
    assert.deepEqual(rec.events, []);
    assert.equal(table.counters.strayPackets, 3);
  });

  it('closes idle flows on sweep, by capture time', () => {
    const { rec, table } = run(
      [
        { ...up(0, 'a'), at: 1_000_000 },
        { ...up(0, 'b', { clientPort: 40001 }), at: 2_000_000 },
        { ...up(1, 'a'), at: 3_000_000 },
      ],
      { idleTimeoutMicros: 1_500_000 },
    );
    assert.equal(table.sweep(3_600_000), 1);
    assert.deepEqual(rec.events, ['open 1 midstream', 'open 2 midstream', 'close 2 idle']);
    assert.equal(table.sweep(4_400_000), 0);
    assert.equal(table.sweep(4_600_000), 1);
    assert.equal(table.size, 0);
  });

  it('evicts the least recently active flow beyond maxFlows, and counts it', () => {
    const packets = [0, 1, 2, 3, 4].map((i) => up(0, `q${i}`, { clientPort: 41000 + i }));
    const { rec, table } = run(
      [...packets, up(2, 'again', { clientPort: 41003 }), up(0, 'new', { clientPort: 41009 })],
      {
        maxFlows: 3,
      },
    );
    assert.equal(table.size, 3);
    assert.equal(table.counters.flowsEvicted, 3);
    assert.deepEqual(
      rec.events.filter((e) => e.startsWith('close')),
      ['close 1 evicted', 'close 2 evicted', 'close 3 evicted'],
    );
    table.closeAll();
    assert.deepEqual(rec.events.slice(-3), ['close 5 end', 'close 4 end', 'close 6 end']);
  });

  it('opens a new flow when a new SYN reuses the client port, and ignores a retransmitted SYN', () => {
    const { rec } = run([
      ...handshake(),
      { up: true, seq: C_ISN, flags: TCP_SYN },
      up(0, 'one'),
      { up: true, seq: 9000, flags: TCP_SYN },
      { up: true, seq: 9001, flags: TCP_ACK | TCP_PSH, data: 'two' },
    ]);
    assert.deepEqual(rec.events, ['open 1', 'close 1 reused', 'open 2']);
    assert.equal(rec.stream(1, 'request'), 'one');
    assert.equal(rec.stream(2, 'request'), 'two');
  });

  it('keeps the flow when the SYN is retransmitted after a SYN-ACK that capture saw first', () => {
    const { rec } = run([
      { up: false, seq: S_ISN, ack: C_ISN + 1, flags: TCP_SYN | TCP_ACK },
      { up: true, seq: C_ISN, flags: TCP_SYN },
      up(0, 'get a\r\n'),
    ]);
    assert.deepEqual(rec.events, ['open 1']);
    assert.equal(rec.stream(1, 'request'), 'get a\r\n');
  });

  it('leaves out excluded clients, IPv4 and IPv6', () => {
    const { rec, table } = run(
      [
        ...handshake(40000, '10.0.0.2'),
        up(0, 'x', { client: '10.0.0.2' }),
        ...handshake(40001, 'fd00::2'),
        up(0, 'kept', { client: 'fd00::3' }),
      ],
      { excludeClients: [parseAddressRange('10.0.0.2'), parseAddressRange('fd00::/126')] },
    );
    assert.deepEqual(rec.events, []);
    assert.equal(table.counters.excludedPackets, 6); // SYNs, SYN-ACKs and payloads (lone ACKs are stray)
    const kept = run([up(0, 'kept', { client: 'fd00::4' })], {
      excludeClients: [parseAddressRange('fd00::/126')],
    });
    assert.equal(kept.rec.stream(1, 'request'), 'kept');
    assert.equal(kept.rec.flows[0]!.client.address, 'fd00::4');
  });

  it('stays within maxFlows for 20,000 connections', () => {
    const packets: Packet[] = [];
    for (let i = 0; i < 20_000; i++) {
      packets.push(
        up(0, 'get k\r\n', { client: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, at: i }),
      );
    }
    const { table } = run(packets, { maxFlows: 1000 });
    assert.equal(table.size, 1000);
    assert.equal(table.counters.flowsOpened, 20_000);
    assert.equal(table.counters.flowsEvicted, 19_000);
  });
});
