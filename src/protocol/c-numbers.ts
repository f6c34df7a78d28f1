/**
 * Numbers read the way memcached 1.6 reads them (util.c, safe_strtol and its
 * siblings on a 64-bit build), for answering malformed requests exactly as it
 * would: the C library's strtol/strtoul/strtoull on the token, then memcached's
 * own checks.
 *
 * The quirks that matter for byte-identical replies: leading white space and a
 * sign are accepted; the number may be followed by white space (a tab inside a
 * token) but nothing else; the parse is 64-bit, and the 32-bit readers keep the
 * low 32 bits of what they read, so `4294967297` as a length means 1; an
 * unsigned reader refuses a minus sign only when the 64-bit result looks
 * negative.
 *
 * A token is the bytes of one space-separated word (never holding a space or
 * a NUL: memcached's line ends at the first NUL).
 */

const U64 = 1n << 64n;
const I64_MAX = (1n << 63n) - 1n;

/** C's isspace() in the C locale, less the space itself (never inside a token). */
function isCSpace(c: number | undefined): boolean {
  return c === 0x09 || c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d || c === 0x20;
}

interface Scanned {
  /** The digits' magnitude, not yet signed. */
  readonly magnitude: bigint;
  readonly negative: boolean;
}

/**
 * What strtol-family functions see: white space, a sign, decimal digits, then
 * memcached's rule that the next byte is white space or the token's end.
 * undefined when there are no digits or something else follows.
 */
function scan(buf: Uint8Array, from: number, to: number): Scanned | undefined {
  let i = from;
  while (i < to && isCSpace(buf[i])) i++;
  let negative = false;
  if (buf[i] === 0x2b || buf[i] === 0x2d) {
    negative = buf[i] === 0x2d;
    i++;
  }
  const digits = i;
  let magnitude = 0n;
  let small = 0;
  while (i < to && buf[i]! >= 0x30 && buf[i]! <= 0x39) {
    // Most tokens are short: add up in a double while it is exact, then switch to bigint.
    if (i - digits < 15) small = small * 10 + (buf[i]! - 0x30);
    else {
      if (i - digits === 15) magnitude = BigInt(small);
      magnitude = magnitude * 10n + BigInt(buf[i]! - 0x30);
    }
    i++;
  }
  if (i === digits) return undefined;
  if (i - digits <= 15) magnitude = BigInt(small);
  if (i < to && !isCSpace(buf[i])) return undefined;
  return { magnitude, negative };
}

function hasMinus(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === 0x2d) return true;
  return false;
}

/** safe_strtol: a signed 64-bit parse kept as its low 32 bits (int32_t). */
export function cSafeStrtol(buf: Uint8Array, from: number, to: number): number | undefined {
  const s = scan(buf, from, to);
  if (s === undefined) return undefined;
  if (s.negative ? s.magnitude > I64_MAX + 1n : s.magnitude > I64_MAX) return undefined; // ERANGE
  return Number(BigInt.asIntN(32, s.negative ? -s.magnitude : s.magnitude));
}

/** safe_strtoull: unsigned 64-bit; a minus sign is refused only when the result looks negative as signed. */
export function cSafeStrtoull(buf: Uint8Array, from: number, to: number): bigint | undefined {
  const s = scan(buf, from, to);
  if (s === undefined || s.magnitude >= U64) return undefined; // ERANGE
  const value = s.negative ? (U64 - s.magnitude) % U64 : s.magnitude;
  if (BigInt.asIntN(64, value) < 0n && hasMinus(buf, from, to)) return undefined;
  return value;
}

/** safe_strtoul: strtoul is 64-bit on memcached's platforms; the result is kept as its low 32 bits. */
export function cSafeStrtoul(buf: Uint8Array, from: number, to: number): number | undefined {
  const value = cSafeStrtoull(buf, from, to);
  return value === undefined ? undefined : Number(BigInt.asUintN(32, value));
}

/** safe_strtod: whether the token reads as a C double (for the admin commands that take ratios). */
export function cSafeStrtodOk(buf: Uint8Array, from: number, to: number): boolean {
  const text = Buffer.from(buf.subarray(from, to)).toString('latin1');
  const m =
    /^[\t\n\v\f\r ]*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))/i.exec(
      text,
    );
  if (m === null) return false;
  const rest = text.slice(m[0].length);
  if (rest.length > 0 && !isCSpace(rest.charCodeAt(0))) return false;
  const n = Number(m[1]!.replace(/^([+-]?)inf(inity)?$/i, '$1Infinity'));
  // ERANGE: an overflow to infinity from digits (a literal "inf" is fine).
  return !(Number.isFinite(n) === false && /\d/.test(m[1]!));
}
