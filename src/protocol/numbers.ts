/**
 * Decimal numbers read straight from the bytes of a line, without building a
 * string first. Each reader returns a sentinel (-1 or undefined) instead of
 * throwing: whether a bad number is a framing error or a request memcached
 * answers with CLIENT_ERROR is the caller's decision.
 */

const ZERO = 0x30; // 0
const NINE = 0x39; // 9
const MINUS = 0x2d; // -

const U32_MAX = 0xffffffff;
const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;
const U64_MAX = 0xffffffffffffffffn;
/** Up to 15 digits fit a double exactly, so the bigint is built from one number. */
const SAFE_DIGITS = 15;

/** Unsigned decimal in `buf[from, to)` no larger than `max`; -1 when empty, not digits, or too large. */
export function readUint(buf: Uint8Array, from: number, to: number, max: number): number {
  if (from >= to || to - from > SAFE_DIGITS) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c < ZERO || c > NINE) return -1;
    n = n * 10 + (c - ZERO);
  }
  return n <= max ? n : -1;
}

/** Client flags: 32-bit unsigned (protocol.txt, "Storage commands": flags may be 32 bits). */
export function readU32(buf: Uint8Array, from: number, to: number): number {
  return readUint(buf, from, to, U32_MAX);
}

/** A data length, bounded by the caller's value limit plus one so "too large" is distinguishable. */
export function readLength(buf: Uint8Array, from: number, to: number): number {
  return readUint(buf, from, to, Number.MAX_SAFE_INTEGER);
}

/**
 * Signed 32-bit decimal (exptime, delays, TTL tokens). Returns undefined when
 * malformed: -1 is a legal exptime ("already expired").
 */
export function readI32(buf: Uint8Array, from: number, to: number): number | undefined {
  if (from < to && buf[from] === MINUS) {
    const n = readUint(buf, from + 1, to, -I32_MIN);
    return n < 0 ? undefined : n === 0 ? 0 : -n;
  }
  const n = readUint(buf, from, to, I32_MAX);
  return n < 0 ? undefined : n;
}

/** Unsigned 64-bit decimal (cas unique, incr/decr delta) as bigint; undefined when malformed or too large. */
export function readU64(buf: Uint8Array, from: number, to: number): bigint | undefined {
  const len = to - from;
  if (len <= 0 || len > 20) return undefined;
  if (len <= SAFE_DIGITS) {
    const n = readUint(buf, from, to, Number.MAX_SAFE_INTEGER);
    return n < 0 ? undefined : BigInt(n);
  }
  let text = '';
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c < ZERO || c > NINE) return undefined;
    text += String.fromCharCode(c);
  }
  const n = BigInt(text);
  return n <= U64_MAX ? n : undefined;
}

/** Same checks on a string token (meta flag tokens are kept as strings). */
export function isU64Text(text: string): boolean {
  if (text.length === 0 || text.length > 20) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return false;
  }
  return BigInt(text) <= U64_MAX;
}

export function isI32Text(text: string): boolean {
  const digits = text.charCodeAt(0) === MINUS ? text.slice(1) : text;
  if (digits.length === 0 || digits.length > 10) return false;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    if (c < ZERO || c > NINE) return false;
  }
  const n = Number(text);
  return n >= I32_MIN && n <= I32_MAX;
}

export function isU32Text(text: string): boolean {
  return isU64Text(text) && Number(text) <= U32_MAX;
}
