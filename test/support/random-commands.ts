/**
 * Random text and meta command streams for the differential test: mostly
 * well formed, often mutated (a word dropped, added or replaced by a bad
 * number, a data block of the wrong length, an unknown command), over a
 * small key space so that requests meet each other's keys.
 *
 * Left out on purpose, because memcached's answer depends on time or on how
 * its reads were batched, not on the bytes (or, for a verbosity above 0, because
 * a server logging every command to a pipe nobody drains stops answering): TTL and last-access flags, `me`,
 * delayed flushes, recache tokens, lines that make it hang up, and gets with
 * a key over 250 bytes (those only as a sequence's first command). Commands
 * the proxy answers otherwise on purpose (PROXY_DIFFERENCES) appear only
 * malformed.
 */

/** The seedable generator the parser tests use (mulberry32), under the name this harness gives it. */
export { rng as random } from './chunks.js';

type Rand = () => number;

const pick = <T>(r: Rand, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
const chance = (r: Rand, p: number): boolean => r() < p;
const int = (r: Rand, max: number): number => Math.floor(r() * max);

const KEYS = ['a', 'b', 'c', 'key:1', 'key:2', 'ütf', 'x'.repeat(250)];
const BAD_NUMBERS = ['', '-1', '+5', 'abc', '4294967297', '99999999999999999999', '-0', '1x', '0x10', ' 7'];

function key(r: Rand): string {
  return pick(r, KEYS);
}

function value(r: Rand): string {
  // Under 1 KiB: a value read as a command line (after a refused storage line) stays under
  // the 2 KiB memcached waits for a newline, whatever its reads.
  const n = chance(r, 0.1) ? int(r, 1000) : int(r, 12);
  let out = '';
  for (let i = 0; i < n; i++) out += chance(r, 0.02) ? '\r\n' : String.fromCharCode(0x61 + int(r, 26));
  return out.slice(0, n);
}

function number(r: Rand, good: () => string): string {
  return chance(r, 0.1) ? pick(r, BAD_NUMBERS) : good();
}

/** Mutates the words of a line: drop, duplicate, add or replace one. */
function mutate(r: Rand, words: string[]): string[] {
  if (!chance(r, 0.12) || words.length === 0) return words;
  const out = [...words];
  const at = int(r, out.length);
  switch (int(r, 5)) {
    case 0:
      out.splice(at, 1);
      break;
    case 1:
      out.splice(at, 0, out[at]!);
      break;
    case 2:
      out.push(pick(r, ['noreply', 'extra', 'q', '0']));
      break;
    case 3:
      out[at] = pick(r, BAD_NUMBERS) || 'z';
      break;
    default:
      // Admin command words stay out: well formed by chance, they would be deliberate differences.
      out[0] = pick(r, ['SET', 'gets2', 'g', 'mz', 'flush_al', 'shutdown', 'bget']);
  }
  return out;
}

function storage(r: Rand): string {
  const command = pick(r, ['set', 'set', 'add', 'replace', 'append', 'prepend', 'cas']);
  const v = value(r);
  let len = String(Buffer.byteLength(v, 'latin1'));
  // A data block of the wrong length: memcached reads it as "bad data chunk" and goes on.
  if (chance(r, 0.05)) len = String(Number(len) + pick(r, [-2, -1, 1, 2]));
  const words = [
    command,
    key(r),
    number(r, () => String(pick(r, [0, 1, 42, 4294967295]))),
    number(r, () => String(pick(r, [0, 0, 100, -1]))),
    number(r, () => len),
  ];
  if (command === 'cas') words.push(number(r, () => String(int(r, 40))));
  if (chance(r, 0.2)) words.push('noreply');
  return mutate(r, words).join(' ') + '\r\n' + v + '\r\n';
}

function metaFlags(r: Rand, pool: readonly string[], max: number): string[] {
  const flags: string[] = [];
  const n = int(r, max + 1);
  for (let i = 0; i < n; i++) flags.push(pick(r, pool));
  return flags;
}

function meta(r: Rand): string {
  switch (int(r, 5)) {
    case 0:
      return (
        mutate(r, [
          'mg',
          key(r),
          ...metaFlags(r, ['v', 'k', 'f', 'c', 's', 'q', 'Oab1', 'u', 'T30', 'N30', 'E55', 'zz', 'C1'], 4),
        ]).join(' ') + '\r\n'
      );
    case 1: {
      const v = value(r);
      let len = String(v.length);
      if (chance(r, 0.05)) len = String(v.length + pick(r, [-1, 1, 3]));
      const flags = metaFlags(
        r,
        ['F5', 'T0', 'q', 'k', 'c', 'MS', 'ME', 'MA', 'MP', 'MR', 'MX', 'I', 'C3', 'Oxy', 'b', 'F-1'],
        3,
      );
      return mutate(r, ['ms', key(r), number(r, () => len), ...flags]).join(' ') + '\r\n' + v + '\r\n';
    }
    case 2:
      return (
        mutate(r, ['md', key(r), ...metaFlags(r, ['q', 'C1', 'I', 'k', 'Oq1', 'x', 'T10'], 2)]).join(' ') +
        '\r\n'
      );
    case 3:
      return (
        mutate(r, [
          'ma',
          key(r),
          ...metaFlags(r, ['q', 'v', 'N0', 'J7', 'D3', 'MI', 'MD', 'M+', 'MX', 'k', 'c', 'Oz'], 3),
        ]).join(' ') + '\r\n'
      );
    default:
      return 'mn\r\n';
  }
}

function other(r: Rand): string {
  switch (int(r, 10)) {
    case 0:
      return mutate(r, ['get', ...Array.from({ length: 1 + int(r, 4) }, () => key(r))]).join(' ') + '\r\n';
    case 1:
      return mutate(r, ['gets', key(r), key(r)]).join(' ') + '\r\n';
    case 2:
      return mutate(r, [pick(r, ['gat', 'gats']), number(r, () => '100'), key(r)]).join(' ') + '\r\n';
    case 3:
      return mutate(r, ['delete', key(r), ...(chance(r, 0.3) ? ['noreply'] : [])]).join(' ') + '\r\n';
    case 4:
      return (
        mutate(r, [
          pick(r, ['incr', 'decr']),
          key(r),
          number(r, () => String(int(r, 1000))),
          ...(chance(r, 0.2) ? ['noreply'] : []),
        ]).join(' ') + '\r\n'
      );
    case 5:
      return mutate(r, ['touch', key(r), number(r, () => '100')]).join(' ') + '\r\n';
    case 6:
      return pick(r, [
        'flush_all\r\n',
        'flush_all 0\r\n',
        'flush_all noreply\r\n',
        'flush_all x\r\n',
        'version\r\n',
        'verbosity 0\r\n',
        'verbosity\r\n',
      ]);
    case 7:
      return pick(r, [
        '\r\n',
        'foo\r\n',
        'x\r\n',
        'get\r\n',
        'bget a\r\n',
        'shutdown\r\n',
        'slabs\r\n',
        'cache_memlimit 2\r\n',
        'lru x\r\n',
        'GET\r\n',
      ]);
    default:
      return storage(r);
  }
}

/** One command's bytes (latin1), valid or not. */
function command(r: Rand): string {
  return chance(r, 0.35) ? meta(r) : other(r);
}

/** A sequence of commands as one stream, and the points where it is split into writes. */
export function sequence(r: Rand): { bytes: Buffer; splits: number[] } {
  let text = chance(r, 0.03) ? `get a ${'k'.repeat(251)}\r\n` : '';
  const n = 1 + int(r, 12);
  for (let i = 0; i < n; i++) text += command(r);
  const bytes = Buffer.from(text, 'latin1');
  const splits: number[] = [];
  if (chance(r, 0.5)) {
    const count = 1 + int(r, 4);
    for (let i = 0; i < count; i++) splits.push(1 + int(r, Math.max(1, bytes.length - 1)));
    splits.sort((x, y) => x - y);
  }
  return { bytes, splits };
}

/** `bytes` cut at `splits`, in order. */
export function pieces(bytes: Buffer, splits: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const at of splits) {
    if (at <= from || at >= bytes.length) continue;
    out.push(bytes.subarray(from, at));
    from = at;
  }
  out.push(bytes.subarray(from));
  return out;
}
