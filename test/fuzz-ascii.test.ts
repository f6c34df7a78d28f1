/**
 * Random and mutated input for the ASCII parsers: whatever the bytes, a parser
 * returns frames or throws ProtocolError (nothing else), always terminates, never
 * buffers more than one line plus one value, and gives the same outcome however
 * the input is chunked. Seeds are fixed so a failure replays.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AsciiRequestParser, AsciiResponseParser } from '../src/protocol/ascii.js';
import { FrameDecoder, type FrameParser } from '../src/protocol/decoder.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { rng } from './support/chunks.js';
import { requestFixtures, responseFixtures } from './fixtures-ascii/fixtures.js';

const CASES = 100_000;
const limits = withLimits({ maxLineBytes: 512, maxValueBytes: 256 });
/** One line, one value and the \r\n after it: the most a decoder may hold. */
const BOUND = limits.maxLineBytes + limits.maxValueBytes + 2;

interface Outcome {
  frames: unknown[];
  error: string | undefined;
}

/** Feeds `chunks`, checking the buffering bound after every push; the outcome for comparison. */
function feed<F>(parser: FrameParser<F>, chunks: Buffer[]): Outcome {
  const decoder = new FrameDecoder(parser);
  const frames: unknown[] = [];
  try {
    for (const chunk of chunks) {
      decoder.push(chunk, (f) => frames.push(f));
      assert.ok(decoder.buffered <= BOUND, `buffered ${decoder.buffered} > ${BOUND}`);
    }
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { frames, error: `${err.reason} @${err.offset}` };
  }
  return { frames, error: undefined };
}

type Random = () => number;

const WORDS = [
  'get',
  'gets',
  'gat',
  'gats',
  'set',
  'add',
  'replace',
  'append',
  'prepend',
  'cas',
  'delete',
  'incr',
  'decr',
  'touch',
  'flush_all',
  'version',
  'verbosity',
  'stats',
  'quit',
  'noreply',
  'mg',
  'ms',
  'md',
  'ma',
  'mn',
  'me',
  'VALUE',
  'END',
  'STORED',
  'NOT_STORED',
  'EXISTS',
  'NOT_FOUND',
  'DELETED',
  'TOUCHED',
  'OK',
  'RESET',
  'STAT',
  'VERSION',
  'ERROR',
  'CLIENT_ERROR',
  'SERVER_ERROR',
  'VA',
  'HD',
  'EN',
  'NF',
  'NS',
  'EX',
  'MN',
  'ME',
  'key=a',
  'exp=-1',
  'la=1',
  'cas=2',
  'fetch=no',
  'b',
  'v',
  'q',
  'O1',
  'T30',
  'MX',
  'Zm9v',
  '0',
  '1',
  '3',
  '255',
  '256',
  '-1',
  '4294967296',
  '18446744073709551616',
  '99999999999999999999999',
  'k',
  '%',
  '\r',
  '\n',
  '\r\n',
  ' ',
  '',
];

function pick<T>(random: Random, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

/** Lines built from protocol words and numbers, sometimes followed by data. */
function wordSoup(random: Random): Buffer {
  const parts: Buffer[] = [];
  const lines = 1 + Math.floor(random() * 4);
  for (let l = 0; l < lines; l++) {
    const words = 1 + Math.floor(random() * 7);
    const line: string[] = [];
    for (let w = 0; w < words; w++) line.push(pick(random, WORDS));
    parts.push(
      Buffer.from(line.join(random() < 0.9 ? ' ' : '  ') + (random() < 0.8 ? '\r\n' : '\n'), 'latin1'),
    );
    if (random() < 0.4) parts.push(Buffer.alloc(Math.floor(random() * 8), 0x78), Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

function randomBytes(random: Random): Buffer {
  const out = Buffer.alloc(Math.floor(random() * 200));
  const alphabet = Buffer.from('0123456789 \r\n\r\nabcdegkmsqvETVAHDNFSMO=-%', 'latin1');
  for (let i = 0; i < out.length; i++) {
    out[i] = random() < 0.7 ? alphabet[Math.floor(random() * alphabet.length)]! : Math.floor(random() * 256);
  }
  return out;
}

/** A fixture stream with a few byte flips, insertions, deletions, duplications or a truncation. */
function mutate(random: Random, seeds: readonly Buffer[]): Buffer {
  let buf = Buffer.from(pick(random, seeds));
  const edits = 1 + Math.floor(random() * 4);
  for (let e = 0; e < edits && buf.length > 0; e++) {
    const at = Math.floor(random() * buf.length);
    switch (Math.floor(random() * 6)) {
      case 0:
        buf[at] = Math.floor(random() * 256);
        break;
      case 1:
        buf = Buffer.concat([
          buf.subarray(0, at),
          Buffer.from(pick(random, WORDS), 'latin1'),
          buf.subarray(at),
        ]);
        break;
      case 2:
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + Math.floor(random() * 8))]);
        break;
      case 3: {
        const end = Math.min(buf.length, at + Math.floor(random() * 40));
        buf = Buffer.concat([buf.subarray(0, end), buf.subarray(at, end), buf.subarray(end)]);
        break;
      }
      case 4:
        buf = buf.subarray(0, at);
        break;
      default:
        buf[at] = pick(random, [0x0d, 0x0a, 0x20, 0x30, 0x39]);
    }
  }
  return buf;
}

function randomChunks(random: Random, input: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < input.length;) {
    const size = 1 + Math.floor(random() * Math.max(1, input.length / 2));
    chunks.push(input.subarray(pos, pos + size));
    pos += size;
  }
  return chunks;
}

function fuzz<F>(
  makeParser: () => FrameParser<F>,
  seeds: readonly Buffer[],
  seed: number,
): Record<string, number> {
  const random = rng(seed);
  const parser = makeParser();
  const tally = { inputs: 0, clean: 0, protocolErrors: 0 };
  for (let i = 0; i < CASES; i++) {
    const kind = i % 3;
    const input = kind === 0 ? mutate(random, seeds) : kind === 1 ? wordSoup(random) : randomBytes(random);
    const whole = feed(parser, [input]);
    const split = feed(parser, randomChunks(random, input));
    assert.deepEqual(split, whole, `case ${i} (seed ${seed}): ${JSON.stringify(input.toString('latin1'))}`);
    tally.inputs++;
    if (whole.error === undefined) tally.clean++;
    else tally.protocolErrors++;
  }
  return tally;
}

describe('ASCII parser fuzzing', () => {
  it(`request parser: ${CASES} random and mutated inputs`, (t) => {
    const seeds = requestFixtures.map((f) => f.input);
    const tally = fuzz(() => new AsciiRequestParser(limits), seeds, 101);
    // Both outcomes must really occur, or the generators have drifted off the interesting inputs.
    t.diagnostic(JSON.stringify(tally));
    assert.ok(tally.clean! > CASES / 10 && tally.protocolErrors! > CASES / 100, JSON.stringify(tally));
  });

  it(`response parser: ${CASES} random and mutated inputs`, (t) => {
    const seeds = responseFixtures.map((f) => f.input);
    const tally = fuzz(() => new AsciiResponseParser(limits), seeds, 202);
    t.diagnostic(JSON.stringify(tally));
    assert.ok(tally.clean! > CASES / 10 && tally.protocolErrors! > CASES / 100, JSON.stringify(tally));
  });

  it('a value as large as the limit is held, one byte more is refused before buffering', () => {
    const parser = new AsciiRequestParser(limits);
    const big = Buffer.concat([Buffer.from('set k 0 0 256\r\n'), Buffer.alloc(256), Buffer.from('\r\n')]);
    assert.equal(feed(parser, randomChunks(rng(3), big)).frames.length, 1);
    assert.match(feed(parser, [Buffer.from('set k 0 0 257\r\n')]).error ?? '', /over the 256 byte limit @0/);
  });
});
