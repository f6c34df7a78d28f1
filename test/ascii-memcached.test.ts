/**
 * The ASCII codecs against a real memcached: requests written by the encoders
 * (or raw), replies read by AsciiResponseParser exactly as the server sent
 * them, and the request bytes read back by AsciiRequestParser.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AsciiRequestParser,
  AsciiResponseParser,
  encodeLine,
  encodeMeta,
  encodeRetrieval,
  encodeStorage,
} from '../src/protocol/ascii.js';
import type { AsciiRequest, AsciiResponse, MetadumpEntry } from '../src/protocol/ascii-frames.js';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { withLimits } from '../src/protocol/limits.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const limits = withLimits({ maxValueBytes: 2 * 1024 * 1024 });
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** One connection: what was sent, and every reply frame parsed from what came back. */
class Conversation {
  readonly sent: Buffer[] = [];
  readonly frames: AsciiResponse[] = [];
  private readonly decoder = new FrameDecoder(new AsciiResponseParser(limits));
  private failure: unknown;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (f) => this.frames.push(f));
      } catch (err) {
        this.failure = err;
      }
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
  }

  static async open(server: MemcachedServer): Promise<Conversation> {
    const socket = connect({ host: server.host, port: server.port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new Conversation(socket);
  }

  /** Sends the parts and resolves with the frames that arrive until `done` says the reply is complete. */
  async exchange(parts: Buffer[], done: (frames: AsciiResponse[]) => boolean): Promise<AsciiResponse[]> {
    const from = this.frames.length;
    this.sent.push(...parts);
    this.socket.write(Buffer.concat(parts));
    // A bound on waiting so a missing reply fails the test instead of hanging it.
    for (let spins = 0; spins < 500; spins++) {
      if (this.failure !== undefined) throw this.failure;
      if (done(this.frames.slice(from))) return this.frames.slice(from);
      await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), sleep(20)]);
    }
    throw new Error(`no complete reply; got ${JSON.stringify(this.frames.slice(from))}`);
  }

  /** Sends the parts followed by `mn`, and returns the replies before its MN. */
  async untilNoop(parts: Buffer[]): Promise<AsciiResponse[]> {
    const isNoop = (f: AsciiResponse | undefined): boolean => f?.kind === 'meta' && f.code === 'MN';
    const frames = await this.exchange([...parts, ...encodeMeta('mn', Buffer.alloc(0), [])], (fs) =>
      isNoop(fs[fs.length - 1]),
    );
    return frames.slice(0, -1);
  }

  close(): void {
    this.socket.destroy();
  }
}

const status = (s: string): AsciiResponse => ({ kind: 'status', status: s }) as AsciiResponse;
const END: AsciiResponse = { kind: 'end' };
const meta = (code: string, flags: string[] = [], value?: string): AsciiResponse =>
  ({ kind: 'meta', code, flags, value: value === undefined ? undefined : b(value) }) as AsciiResponse;

function requestsIn(conv: Conversation): AsciiRequest[] {
  const frames: AsciiRequest[] = [];
  new FrameDecoder(new AsciiRequestParser(limits)).push(Buffer.concat(conv.sent), (f) => frames.push(f));
  return frames;
}

describe('ASCII codecs against memcached', () => {
  let server: MemcachedServer;
  before(async () => {
    server = await startMemcached({ args: ['-I', '2m'] });
  });
  after(async () => {
    await server.stop();
  });

  it('storage, retrieval, delete, touch and arithmetic replies', async () => {
    const conv = await Conversation.open(server);
    try {
      const k = b('text:k');
      const frames = await conv.untilNoop([
        ...encodeStorage('set', k, b('hello'), 42, 0),
        ...encodeStorage('add', k, b('x'), 0, 0),
        ...encodeStorage('replace', b('text:missing'), b('x'), 0, 0),
        ...encodeStorage('append', k, b('!'), 0, 0),
        ...encodeStorage('prepend', k, b('>'), 0, 0),
        ...encodeStorage('cas', k, b('x'), 0, 0, { cas: 999_999n }),
        ...encodeStorage('cas', b('text:missing'), b('x'), 0, 0, { cas: 1n }),
        ...encodeRetrieval('get', [k, b('text:missing'), k]),
        ...encodeLine(['touch', k, '100']),
        ...encodeLine(['touch', 'text:missing', '100']),
        ...encodeStorage('set', b('text:n'), b('10'), 0, 0),
        ...encodeLine(['incr', 'text:n', '18446744073709551610']),
        ...encodeLine(['decr', 'text:n', '3']),
        ...encodeLine(['incr', 'text:missing', '1']),
        ...encodeLine(['delete', k]),
        ...encodeLine(['delete', k]),
        ...encodeStorage('set', k, b('quiet'), 0, 0, { noreply: true }),
        ...encodeRetrieval('gat', [k], 300),
      ]);
      assert.deepEqual(frames, [
        status('STORED'),
        status('NOT_STORED'),
        status('NOT_STORED'),
        status('STORED'),
        status('STORED'),
        status('EXISTS'),
        status('NOT_FOUND'),
        { kind: 'value', key: k, flags: 42, cas: undefined, value: b('>hello!') },
        { kind: 'value', key: k, flags: 42, cas: undefined, value: b('>hello!') },
        END,
        status('TOUCHED'),
        status('NOT_FOUND'),
        status('STORED'),
        // 10 + 18446744073709551610 wraps around 2^64 (protocol.txt, "Increment/Decrement").
        { kind: 'number', value: 4n },
        { kind: 'number', value: 1n },
        status('NOT_FOUND'),
        status('DELETED'),
        status('NOT_FOUND'),
        { kind: 'value', key: k, flags: 0, cas: undefined, value: b('quiet') },
        END,
      ]);

      // gets shows the cas unique; a cas with it succeeds.
      const [got] = await conv.exchange(encodeRetrieval('gets', [k]), (fs) => fs.length === 2);
      assert.ok(got?.kind === 'value' && typeof got.cas === 'bigint' && got.cas > 0n);
      const [stored] = await conv.untilNoop(encodeStorage('cas', k, b('v2'), 1, 0, { cas: got.cas }));
      assert.deepEqual(stored, status('STORED'));
      // Every request sent parses back: one frame per command (18 + mn, gets, cas + mn).
      assert.equal(requestsIn(conv).length, 22);
    } finally {
      conv.close();
    }
  });

  it('version, verbosity, stats, flush_all, and error replies', async () => {
    const conv = await Conversation.open(server);
    try {
      const frames = await conv.untilNoop([
        ...encodeLine(['version']),
        ...encodeLine(['verbosity', '0']),
        // Delayed by an hour so the other tests' keys stay; the reply is what matters here.
        ...encodeLine(['flush_all', '3600']),
        ...encodeLine(['bogus_command']),
        ...encodeLine(['incr', 'k', 'abc']),
        ...encodeLine(['get']),
      ]);
      assert.equal(frames.length, 6);
      assert.ok(frames[0]?.kind === 'version' && /^\d+\.\d+\.\d+/.test(frames[0].version));
      assert.deepEqual(frames.slice(1), [
        status('OK'),
        status('OK'),
        { kind: 'error', error: 'ERROR', message: '' },
        { kind: 'error', error: 'CLIENT_ERROR', message: 'invalid numeric delta argument' },
        { kind: 'error', error: 'ERROR', message: '' },
      ]);
      const stats = await conv.exchange(encodeLine(['stats']), (fs) => fs[fs.length - 1]?.kind === 'end');
      const byName = new Map(stats.flatMap((f) => (f.kind === 'stat' ? [[f.name, f.value] as const] : [])));
      assert.equal(stats.length, byName.size + 1);
      assert.equal(byName.get('pid'), String(server.process.pid));
      assert.match(byName.get('version') ?? '', /^\d+\.\d+\.\d+/);
      const settings = await conv.exchange(
        encodeLine(['stats', 'settings']),
        (fs) => fs[fs.length - 1]?.kind === 'end',
      );
      assert.ok(
        settings.some((f) => f.kind === 'stat' && f.name === 'item_size_max' && f.value === '2097152'),
      );
      const requests = requestsIn(conv);
      assert.deepEqual(
        requests.map((r) => r.kind),
        ['version', 'verbosity', 'flush_all', 'other', 'other', 'other', 'meta', 'stats', 'stats'],
      );
    } finally {
      conv.close();
    }
  });

  it('meta replies: VA, HD, EN, NF, NS, EX, MN, ME, opaque and quiet', async () => {
    const conv = await Conversation.open(server);
    try {
      const k = b('meta:k');
      const frames = await conv.untilNoop([
        ...encodeMeta('ms', k, ['T0', 'F7'], b('data')),
        ...encodeMeta('mg', k, ['v', 'f', 'k', 's', 'Oabc']),
        ...encodeMeta('mg', k, []),
        ...encodeMeta('mg', b('meta:missing'), ['v']),
        ...encodeMeta('mg', b('meta:missing'), ['v', 'q']),
        ...encodeMeta('ms', k, ['ME'], b('x')),
        ...encodeMeta('ms', k, ['C1'], b('x')),
        ...encodeMeta('md', b('meta:missing'), []),
        ...encodeMeta('ms', k, ['q', 'O5'], b('silent')),
        ...encodeMeta('ms', b('meta:n'), [], b('5')),
        ...encodeMeta('ma', b('meta:n'), ['D10', 'v']),
        ...encodeMeta('ma', b('meta:n'), ['MD', 'D100']),
        ...encodeMeta('ma', b('meta:missing'), []),
        ...encodeMeta('ms', k, ['MX'], b('x')),
        ...encodeMeta('mg', k, ['zzz']),
        ...encodeMeta('md', k, ['q']),
        ...encodeMeta('mg', k, ['v']),
      ]);
      assert.deepEqual(frames, [
        meta('HD'),
        meta('VA', ['f7', 'kmeta:k', 's4', 'Oabc'], 'data'),
        meta('HD'),
        meta('EN'),
        meta('NS'),
        meta('EX'),
        meta('NF'),
        meta('HD'),
        meta('VA', [], '15'),
        meta('HD'),
        meta('NF'),
        { kind: 'error', error: 'CLIENT_ERROR', message: 'invalid mode for ms M token' },
        { kind: 'error', error: 'CLIENT_ERROR', message: 'invalid flag' },
        meta('EN'),
      ]);
      const [debug] = await conv
        .untilNoop([
          ...encodeMeta('ms', b('meta:dbg'), ['T100'], b('abc')),
          ...encodeMeta('me', b('meta:dbg'), []),
        ])
        .then((fs) => fs.slice(1));
      assert.ok(debug?.kind === 'meta' && debug.code === 'ME', JSON.stringify(debug));
      assert.equal(debug.flags[0], 'meta:dbg');
      assert.ok(debug.flags.includes('fetch=no') && debug.flags.some((f) => f.startsWith('exp=')));
      // The requests read back as meta frames with their quiet and opaque flags.
      const requests = requestsIn(conv).filter((r) => r.kind === 'meta');
      assert.equal(requests.length, 21);
      const quiet = requests.find((r) => r.kind === 'meta' && r.opaque === '5');
      assert.ok(quiet?.kind === 'meta' && quiet.quiet && quiet.command === 'ms');
      assert.deepEqual(quiet.value, b('silent'));
    } finally {
      conv.close();
    }
  });

  it('lru_crawler metadump lines, with URL-escaped and binary keys', async () => {
    const conv = await Conversation.open(server);
    const binary = Buffer.from([0x62, 0x69, 0x6e, 0x20, 0x00, 0x0a, 0xff]);
    const escaped = b('dump:a%b,c/é');
    try {
      const set = await conv.untilNoop([
        ...encodeStorage('set', b('dump:plain'), b('1'), 0, 0),
        ...encodeStorage('set', escaped, b('22'), 0, 3600),
        ...encodeMeta('ms', binary, ['T0'], b('333')),
      ]);
      assert.deepEqual(set, [status('STORED'), status('STORED'), meta('HD')]);
      // The binary key really went out base64-encoded with b.
      assert.match(Buffer.concat(conv.sent).toString('latin1'), /ms YmluIAAK\/w== 3 T0 b\r\n/);
    } finally {
      conv.close();
    }
    // memcached refuses to pipeline anything before a metadump, so it gets its own connection;
    // a crawler still busy with an earlier request answers BUSY, so retry a bounded number of times.
    let entries: MetadumpEntry[] = [];
    for (let attempt = 0; attempt < 50 && entries.length === 0; attempt++) {
      const dump = await Conversation.open(server);
      try {
        const frames = await dump.exchange(encodeLine(['lru_crawler', 'metadump', 'all']), (fs) => {
          const last = fs[fs.length - 1];
          return last?.kind === 'end' || last?.kind === 'line' || last?.kind === 'error';
        });
        if (frames[frames.length - 1]?.kind === 'end') {
          entries = frames.flatMap((f) => (f.kind === 'metadump' ? [f.entry] : []));
          // Anything before the entries is the OK line newer versions print.
          assert.ok(frames.every((f) => f.kind === 'metadump' || f.kind === 'end' || f.kind === 'status'));
        } else await sleep(50);
      } finally {
        dump.close();
      }
    }
    const find = (key: Buffer): MetadumpEntry | undefined => entries.find((e) => e.key.equals(key));
    const plain = find(b('dump:plain'));
    const withEscapes = find(escaped);
    const bin = find(binary);
    assert.ok(
      plain && withEscapes && bin,
      `keys in metadump: ${entries.map((e) => e.key.toString('latin1'))}`,
    );
    assert.equal(plain.exp, -1);
    assert.ok(withEscapes.exp > plain.la && withEscapes.exp <= withEscapes.la + 3601);
    assert.ok(plain.cas > 0n && plain.size > 0 && plain.slabClass > 0 && plain.fetched === false);
  });

  it('a 1 MiB value in and out, through both parsers', async () => {
    const conv = await Conversation.open(server);
    try {
      const big = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 131) & 0xff;
      const frames = await conv.untilNoop([
        ...encodeStorage('set', b('big'), big, 9, 0),
        ...encodeRetrieval('get', [b('big')]),
        ...encodeMeta('mg', b('big'), ['v', 's']),
      ]);
      assert.equal(frames.length, 4);
      assert.deepEqual(frames[0], status('STORED'));
      assert.ok(frames[1]?.kind === 'value' && frames[1].flags === 9 && frames[1].value.equals(big));
      assert.deepEqual(frames[2], END);
      assert.ok(frames[3]?.kind === 'meta' && frames[3].value?.equals(big));
      assert.deepEqual(frames[3].flags, [`s${big.length}`]);
      const [set] = requestsIn(conv);
      assert.ok(set?.kind === 'storage' && set.value.equals(big));
    } finally {
      conv.close();
    }
  });
});
