/**
 * Lines of `lru_crawler metadump` (protocol.txt, "LRU_Crawler"): one item per
 * line, `key=value` fields separated by spaces, the key URI-encoded ("%20" for
 * a space), each line ending in a bare \n. memcached promises at least key,
 * exp, la, cas and fetch; cls and size follow in every current version, and
 * fields added later are skipped. A bare `b` word marks a key sent base64-encoded.
 */
import type { MetadumpEntry } from './ascii-frames.js';
import { protocolError } from './errors.js';
import { decodeBase64Key } from './meta.js';
import { readI32, readLength, readU64 } from './numbers.js';

const SPACE = 0x20;
const EQUALS = 0x3d; // =
const PERCENT = 0x25; // %

/**
 * Reads the metadump fields in `buf[from, to)` (a line without its line end);
 * undefined when the line is not a metadump line memshift can use.
 */
export function readMetadump(buf: Buffer, from: number, to: number): MetadumpEntry | undefined {
  let keyFrom = -1;
  let keyTo = -1;
  let base64 = false;
  let exp: number | undefined;
  let la: number | undefined;
  let cas: bigint | undefined;
  let fetched: boolean | undefined;
  let slabClass = 0;
  let size = 0;
  let i = from;
  while (i < to) {
    while (i < to && buf[i] === SPACE) i++;
    if (i === to) break;
    const s = i;
    let eq = -1;
    while (i < to && buf[i] !== SPACE) {
      if (eq < 0 && buf[i] === EQUALS) eq = i;
      i++;
    }
    if (eq < 0) {
      if (i - s === 1 && buf[s] === 0x62) base64 = true; // b
      continue;
    }
    const v = eq + 1;
    switch (eq - s) {
      case 3:
        if (buf[s] === 0x6b && buf[s + 1] === 0x65 && buf[s + 2] === 0x79) {
          // key
          keyFrom = v;
          keyTo = i;
        } else if (buf[s] === 0x65 && buf[s + 1] === 0x78 && buf[s + 2] === 0x70) {
          // exp
          exp = readI32(buf, v, i);
          if (exp === undefined) return undefined;
        } else if (buf[s] === 0x63 && buf[s + 1] === 0x61 && buf[s + 2] === 0x73) {
          // cas
          cas = readU64(buf, v, i);
          if (cas === undefined) return undefined;
        } else if (buf[s] === 0x63 && buf[s + 1] === 0x6c && buf[s + 2] === 0x73) {
          // cls
          slabClass = readLength(buf, v, i);
          if (slabClass < 0) return undefined;
        }
        break;
      case 2:
        if (buf[s] === 0x6c && buf[s + 1] === 0x61) {
          // la
          la = readI32(buf, v, i);
          if (la === undefined) return undefined;
        }
        break;
      case 4:
        if (buf[s] === 0x73 && buf[s + 1] === 0x69 && buf[s + 2] === 0x7a && buf[s + 3] === 0x65) {
          // size
          size = readLength(buf, v, i);
          if (size < 0) return undefined;
        }
        break;
      case 5:
        if (buf.toString('latin1', s, eq) === 'fetch') {
          const word = buf.toString('latin1', v, i);
          if (word !== 'yes' && word !== 'no') return undefined;
          fetched = word === 'yes';
        }
        break;
    }
  }
  if (keyFrom < 0 || exp === undefined || la === undefined || cas === undefined || fetched === undefined) {
    return undefined;
  }
  let key = uriDecode(buf, keyFrom, keyTo);
  if (key === undefined) return undefined;
  if (base64) {
    key = decodeBase64Key(key, 0, key.length);
    if (key === undefined) return undefined;
  }
  return { key, base64, exp, la, cas, fetched, slabClass, size };
}

/**
 * Parses one metadump line, with or without its line end. Throws ProtocolError
 * when the line lacks a required field or holds a malformed one.
 */
export function parseMetadumpLine(line: Buffer | string): MetadumpEntry {
  const buf = typeof line === 'string' ? Buffer.from(line, 'latin1') : line;
  let to = buf.length;
  if (to > 0 && buf[to - 1] === 0x0a) to--;
  if (to > 0 && buf[to - 1] === 0x0d) to--;
  const entry = readMetadump(buf, 0, to);
  if (entry === undefined) throw protocolError('not a metadump line', buf, 0);
  return entry;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * %XX-decodes `buf[from, to)`. When nothing is escaped (the usual key) the
 * result is a view of the input; undefined on a broken escape.
 */
export function uriDecode(buf: Buffer, from: number, to: number): Buffer | undefined {
  const first = buf.indexOf(PERCENT, from);
  if (first < 0 || first >= to) return buf.subarray(from, to);
  const out = Buffer.allocUnsafe(to - from);
  let o = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c !== PERCENT) {
      out[o++] = c;
      continue;
    }
    if (i + 2 >= to) return undefined;
    const hi = hexValue(buf[i + 1]!);
    const lo = hexValue(buf[i + 2]!);
    if (hi < 0 || lo < 0) return undefined;
    out[o++] = hi * 16 + lo;
    i += 2;
  }
  return out.subarray(0, o);
}

/** Whether memcached leaves a byte as is when URI-encoding: unreserved characters (RFC 3986). */
function unreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5f ||
    c === 0x7e
  );
}

const HEX = '0123456789ABCDEF';

export function uriEncode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    out += unreserved(c) ? String.fromCharCode(c) : '%' + HEX[c >> 4] + HEX[c & 15];
  }
  return out;
}

/** One metadump line as memcached writes it (bare \n), for fakes and round trips. */
export function encodeMetadumpLine(entry: MetadumpEntry): Buffer {
  const key = entry.base64
    ? uriEncode(Buffer.from(entry.key.toString('base64'), 'latin1')) + ' b'
    : uriEncode(entry.key);
  return Buffer.from(
    `key=${key} exp=${entry.exp} la=${entry.la} cas=${entry.cas} fetch=${entry.fetched ? 'yes' : 'no'}` +
      ` cls=${entry.slabClass} size=${entry.size}\n`,
    'latin1',
  );
}
