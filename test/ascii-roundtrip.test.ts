import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AsciiRequestParser,
  AsciiResponseParser,
  encodeAsciiRequest,
  encodeAsciiResponse,
  encodeLine,
  encodeMeta,
  encodeRetrieval,
  encodeStorage,
  hasMetaFlag,
  META_FLAGS,
  metaFlagProblem,
  metaToken,
  parseMetadumpLine,
} from '../src/protocol/ascii.js';
import type { AsciiRequest, AsciiResponse, MetaCommand } from '../src/protocol/ascii-frames.js';
import type { FrameParser } from '../src/protocol/decoder.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { decodeChunks, rng } from './support/chunks.js';
import {
  bigRequest,
  bigResponse,
  meta,
  requestFixtures,
  responseFixtures,
  retrieval,
  storage,
  value,
} from './fixtures-ascii/fixtures.js';

const limits = withLimits({ maxValueBytes: 2 * 1024 * 1024 });

function reparse<F>(parser: FrameParser<F>, parts: Buffer[]): F[] {
  return decodeChunks(parser, [Buffer.concat(parts)]);
}

const text = (parts: Buffer[]): string => Buffer.concat(parts).toString('latin1');

describe('ASCII encode/parse round trips', () => {
  it('every request fixture frame encodes to bytes that parse back to it', () => {
    for (const fixture of [...requestFixtures, bigRequest]) {
      for (const frame of fixture.frames) {
        assert.deepEqual(
          reparse(new AsciiRequestParser(limits), encodeAsciiRequest(frame)),
          [frame],
          fixture.name,
        );
      }
    }
  });

  it('every response fixture frame encodes to bytes that parse back to it', () => {
    for (const fixture of [...responseFixtures, bigResponse]) {
      for (const frame of fixture.frames) {
        assert.deepEqual(
          reparse(new AsciiResponseParser(limits), encodeAsciiResponse(frame)),
          [frame],
          fixture.name,
        );
      }
    }
  });

  it('random frames of every kind survive encode then parse', () => {
    const random = rng(11);
    const int = (n: number): number => Math.floor(random() * n);
    const bytes = (n: number, min = 0): Buffer =>
      Buffer.from(Array.from({ length: n }, () => min + int(256 - min)));
    const textKey = (): Buffer => bytes(1 + int(250), 0x21);
    const anyKey = (): Buffer => bytes(1 + int(250));
    const metaCommands: MetaCommand[] = ['mg', 'ms', 'md', 'ma', 'me'];
    const requests: AsciiRequest[] = [];
    const responses: AsciiResponse[] = [];
    for (let i = 0; i < 2000; i++) {
      const v = bytes(int(3) === 0 ? int(5000) : int(20));
      requests.push(
        storage('set', 'x', int(2 ** 32), int(2 ** 31) - 2 ** 30, v, random() < 0.5),
        {
          kind: 'storage',
          command: 'cas',
          key: textKey(),
          flags: 0,
          exptime: 0,
          cas: BigInt(int(2 ** 52)) * 4096n,
          noreply: false,
          value: v,
        },
        { kind: 'retrieval', command: 'gats', exptime: int(1000), keys: [textKey(), textKey()] },
        {
          kind: 'arithmetic',
          command: 'decr',
          key: textKey(),
          delta: BigInt(int(2 ** 52)) * 4095n,
          noreply: false,
        },
      );
      const command = metaCommands[int(metaCommands.length)]!;
      const key = anyKey();
      const flags = [
        'v',
        `T${int(1000)}`,
        ...(random() < 0.5 ? [`O${int(1e6)}`] : []),
        ...(random() < 0.3 ? ['q'] : []),
      ];
      const parts = encodeMeta(command, key, flags, command === 'ms' ? v : undefined);
      const [frame] = reparse(new AsciiRequestParser(limits), parts);
      assert.ok(frame?.kind === 'meta');
      assert.deepEqual(frame.key, key);
      assert.deepEqual(frame.value, command === 'ms' ? v : undefined);
      requests.push(frame);
      responses.push(
        value('k', int(2 ** 32), v, random() < 0.5 ? BigInt(int(2 ** 40)) : undefined),
        { kind: 'number', value: BigInt(int(2 ** 52)) * 1000n },
        { kind: 'meta', code: 'VA', flags: ['f1', `t${int(100)}`], value: v },
        {
          kind: 'metadump',
          entry: {
            key: random() < 0.5 ? anyKey() : textKey(),
            base64: random() < 0.3,
            exp: int(2 ** 31),
            la: int(2 ** 31),
            cas: BigInt(int(2 ** 52)),
            fetched: random() < 0.5,
            slabClass: int(64),
            size: int(1e6),
          },
        },
      );
    }
    for (const frame of requests) {
      assert.deepEqual(reparse(new AsciiRequestParser(limits), encodeAsciiRequest(frame)), [frame]);
    }
    for (const frame of responses) {
      assert.deepEqual(reparse(new AsciiResponseParser(limits), encodeAsciiResponse(frame)), [frame]);
    }
  });
});

describe('ASCII encoders', () => {
  const v = Buffer.from('hello');

  it('encodeStorage writes the header and hands the value back uncopied', () => {
    const parts = encodeStorage('cas', Buffer.from('k\xe9', 'latin1'), v, 5, -1, { cas: 9n, noreply: true });
    assert.equal(parts.length, 3);
    assert.equal(parts[1], v);
    assert.equal(text(parts), 'cas k\xe9 5 -1 5 9 noreply\r\nhello\r\n');
    assert.equal(text(encodeStorage('set', Buffer.from('a'), Buffer.alloc(0), 0, 0)), 'set a 0 0 0\r\n\r\n');
  });

  it('encodeAsciiRequest and encodeAsciiResponse keep values uncopied too', () => {
    const req = storage('append', 'k', 0, 0, v);
    assert.ok(req.kind === 'storage');
    assert.equal(encodeAsciiRequest(req)[1], req.value);
    const res = value('k', 0, v);
    assert.ok(res.kind === 'value');
    assert.equal(encodeAsciiResponse(res)[1], res.value);
    const ms = meta('ms', 'k', ['T1'], { value: v });
    assert.ok(ms.kind === 'meta');
    assert.equal(encodeAsciiRequest(ms)[1], ms.value);
  });

  it('encodeRetrieval writes one line, with the exptime for gat/gats', () => {
    assert.equal(text(encodeRetrieval('get', [Buffer.from('a')])), 'get a\r\n');
    assert.equal(text(encodeRetrieval('gats', [Buffer.from('a'), Buffer.from('b')], 30)), 'gats 30 a b\r\n');
    const keys = Array.from({ length: 100 }, (_, i) => Buffer.from(`key:${i}`));
    assert.deepEqual(reparse(new AsciiRequestParser(), encodeRetrieval('gets', keys)), [
      retrieval(
        'gets',
        keys.map((k) => k.toString()),
      ),
    ]);
  });

  it('encodeMeta sends a key memcached could not read as a word in base64 with b', () => {
    assert.equal(text(encodeMeta('mg', Buffer.from('foo'), ['v', 'f'])), 'mg foo v f\r\n');
    assert.equal(text(encodeMeta('mg', Buffer.from('foo bar'), ['v'])), 'mg Zm9vIGJhcg== v b\r\n');
    assert.equal(text(encodeMeta('md', Buffer.from('a\x01'), [])), 'md YQE= b\r\n');
    assert.equal(text(encodeMeta('mg', Buffer.from('k\xe9', 'latin1'), ['v'])), 'mg k\xe9 v\r\n');
    assert.equal(text(encodeMeta('mg', Buffer.from('plain'), ['b', 'v'])), 'mg cGxhaW4= b v\r\n');
    const parts = encodeMeta('ms', Buffer.from('k'), ['T0', 'F3'], v);
    assert.equal(parts[1], v);
    assert.equal(text(parts), 'ms k 5 T0 F3\r\nhello\r\n');
    assert.equal(text(encodeMeta('ms', Buffer.from('k'), [])), 'ms k 0\r\n\r\n');
    assert.equal(text(encodeMeta('mn', Buffer.alloc(0), [])), 'mn\r\n');
  });

  it('encodeLine joins words, writing Buffers byte for byte', () => {
    assert.equal(
      text(encodeLine(['delete', Buffer.from([0x6b, 0xff]), 'noreply'])),
      'delete k\xff noreply\r\n',
    );
    assert.equal(text(encodeLine(['lru_crawler', 'metadump', 'all'])), 'lru_crawler metadump all\r\n');
    assert.equal(text(encodeLine(['version'])), 'version\r\n');
  });
});

describe('meta flags', () => {
  it('metaToken and hasMetaFlag read flags by their first character', () => {
    const flags = ['v', 'T30', 'Oabc', 'q', 'N'];
    assert.equal(metaToken(flags, 'T'), '30');
    assert.equal(metaToken(flags, 'v'), '');
    assert.equal(metaToken(flags, 'O'), 'abc');
    assert.equal(metaToken(flags, 'N'), '');
    assert.equal(metaToken(flags, 'k'), undefined);
    assert.equal(hasMetaFlag(flags, 'q'), true);
    assert.equal(hasMetaFlag(flags, 'b'), false);
  });

  it('the flag table covers every flag protocol.txt lists for each command', () => {
    const letters = (c: keyof typeof META_FLAGS): string =>
      META_FLAGS[c]
        .map((f) => f.letter)
        .filter((l) => l !== 'P' && l !== 'L')
        .join('');
    assert.equal(letters('mg'), 'bcCEfhklNOqRstTuv');
    assert.equal(letters('ms'), 'bcCEFIkOqsTMN');
    assert.equal(letters('md'), 'bCEIkOqTx');
    assert.equal(letters('ma'), 'bCENJDTMOqtcvk');
    assert.equal(letters('me'), 'b');
  });

  it('metaFlagProblem says what memcached will reject, without making it a framing error', () => {
    assert.equal(metaFlagProblem('mg', ['v', 'T30', 'Oabc', 'q', 'b', 'Lpath']), undefined);
    assert.equal(metaFlagProblem('ms', ['MS', 'F4294967295', 'C18446744073709551615', 'I']), undefined);
    assert.equal(metaFlagProblem('ma', ['M+', 'D5', 'J10', 'N0']), undefined);
    assert.match(metaFlagProblem('mg', ['zzz']) ?? '', /invalid flag/);
    assert.match(metaFlagProblem('ms', ['MX']) ?? '', /bad token/);
    assert.match(metaFlagProblem('ma', ['MS']) ?? '', /bad token/);
    assert.match(metaFlagProblem('ms', ['F4294967296']) ?? '', /bad token/);
    assert.match(metaFlagProblem('mg', ['Tx']) ?? '', /bad token/);
    assert.match(metaFlagProblem('mg', [`O${'x'.repeat(33)}`]) ?? '', /bad token/);
    assert.match(metaFlagProblem('md', ['v']) ?? '', /invalid flag/);
    assert.match(metaFlagProblem('mn', ['v']) ?? '', /invalid flag/);
  });
});

describe('parseMetadumpLine', () => {
  it('reads a line on its own, from a string or bytes, with or without its line end', () => {
    const entry = parseMetadumpLine(
      'key=a%2Cb%E9 exp=1795466901 la=1795466801 cas=12 fetch=yes cls=3 size=80 x=y',
    );
    assert.deepEqual(entry, {
      key: Buffer.from('a,b\xe9', 'latin1'),
      base64: false,
      exp: 1795466901,
      la: 1795466801,
      cas: 12n,
      fetched: true,
      slabClass: 3,
      size: 80,
    });
    assert.deepEqual(
      parseMetadumpLine(
        Buffer.from('key=a%2Cb%E9 exp=1795466901 la=1795466801 cas=12 fetch=yes cls=3 size=80\n'),
      ),
      { ...entry },
    );
    assert.deepEqual(
      parseMetadumpLine('key=AAH/ b exp=-1 la=0 cas=1 fetch=no\r\n').key,
      Buffer.from([0, 1, 0xff]),
    );
  });

  it('throws ProtocolError for lines that are not usable metadump lines', () => {
    for (const line of [
      'ITEM a [1 b; 0 s]',
      'key=a exp=x la=0 cas=1 fetch=no',
      'key=a%2 exp=-1 la=0 cas=1 fetch=no',
      'key=a exp=-1 la=0 fetch=no',
      'key=a exp=-1 la=0 cas=1 fetch=maybe',
      'key=!!! b exp=-1 la=0 cas=1 fetch=no',
    ]) {
      assert.throws(() => parseMetadumpLine(line), ProtocolError, line);
    }
  });
});
