/**
 * Where a message may start, for a flow that lost its place (a mid-stream
 * join, a gap, garbage). A guess is checked by parsing from it: a wrong
 * guess fails to parse and the hunt goes on, so these tests only need to be
 * cheap and rarely wrong, not perfect.
 */
import { binaryOpcodeName, BINARY_HEADER_BYTES } from '../protocol/binary-opcodes.js';
import type { Limits } from '../protocol/limits.js';

/** Command words memcached knows (protocol.txt, "Commands" and "Meta Commands"). */
const REQUEST_WORDS = [
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
  'mg',
  'ms',
  'md',
  'ma',
  'mn',
  'me',
  'lru_crawler',
  'watch',
  'slabs',
  'cache_memlimit',
  'shutdown',
].map((w) => Buffer.from(w, 'latin1'));

/** Reply words (protocol.txt, command replies, "Error strings", "Meta Commands"). */
const RESPONSE_WORDS = [
  'VALUE',
  'END',
  'STORED',
  'NOT_STORED',
  'EXISTS',
  'NOT_FOUND',
  'DELETED',
  'TOUCHED',
  'OK',
  'ERROR',
  'CLIENT_ERROR',
  'SERVER_ERROR',
  'STAT',
  'VERSION',
  'VA',
  'HD',
  'EN',
  'NF',
  'NS',
  'EX',
  'MN',
  'ME',
].map((w) => Buffer.from(w, 'latin1'));

function startsWithWord(buf: Buffer, at: number, words: readonly Buffer[]): boolean {
  for (const w of words) {
    const end = at + w.length;
    if (end >= buf.length) continue; // the byte after the word must be there too
    let k = 0;
    while (k < w.length && buf[at + k] === w[k]) k++;
    if (k < w.length) continue;
    const after = buf[end];
    if (after === 0x20 || after === 0x0d || after === 0x0a) return true;
  }
  return false;
}

export function isAsciiRequestStart(buf: Buffer, at: number): boolean {
  const c = buf[at];
  return c !== undefined && c >= 0x61 && c <= 0x7a && startsWithWord(buf, at, REQUEST_WORDS);
}

export function isAsciiResponseStart(buf: Buffer, at: number): boolean {
  const c = buf[at];
  return c !== undefined && c >= 0x41 && c <= 0x5a && startsWithWord(buf, at, RESPONSE_WORDS);
}

/**
 * A binary header at `at` that a server would accept or send: the magic, an
 * opcode some server defines, raw data type, lengths that fit each other and
 * the limits. A header cut off by the end of `buf` is not accepted here.
 */
export function isBinaryStart(buf: Buffer, at: number, magic: number, limits: Limits): boolean {
  if (at + BINARY_HEADER_BYTES > buf.length) return false;
  if (buf[at] !== magic || binaryOpcodeName(buf[at + 1]!) === undefined || buf[at + 5] !== 0) return false;
  const keyLength = (buf[at + 2]! << 8) | buf[at + 3]!;
  const extras = buf[at + 4]!;
  const body = buf.readUInt32BE(at + 8);
  if (keyLength > limits.maxKeyBytes || extras > 20 || extras + keyLength > body) return false;
  if (body - extras - keyLength > limits.maxValueBytes) return false;
  if (magic === 0x81) {
    const status = (buf[at + 6]! << 8) | buf[at + 7]!;
    if (status > 0x86 || (status > 0x07 && status < 0x20) || (status > 0x21 && status < 0x81)) return false;
  }
  return true;
}

/** First offset at or after `from` where a binary header plausibly starts, or -1. */
export function huntBinary(buf: Buffer, from: number, magic: number, limits: Limits): number {
  for (let at = buf.indexOf(magic, from); at >= 0; at = buf.indexOf(magic, at + 1)) {
    if (isBinaryStart(buf, at, magic, limits)) return at;
  }
  return -1;
}

/** Offset of the first line (offset 0 included) that starts with a command word, or -1. */
export function firstTextRequest(buf: Buffer): number {
  if (isAsciiRequestStart(buf, 0)) return 0;
  for (let lf = buf.indexOf(0x0a); lf >= 0 && lf + 1 < buf.length; lf = buf.indexOf(0x0a, lf + 1)) {
    if (isAsciiRequestStart(buf, lf + 1)) return lf + 1;
  }
  return -1;
}
