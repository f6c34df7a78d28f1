/**
 * The hash functions that memcached client libraries use to pick a server,
 * written over key bytes so that a lookup never turns a key into a string.
 *
 * Each one reproduces its client's arithmetic bit for bit, quirks included:
 * libmemcached and twemproxy read key bytes through a signed `char`, so a byte
 * of 0x80 or more is sign-extended before it is mixed in; Java and memjs hash
 * UTF-16 code units; pymemcache's pure-Python murmur3 hashes code points cut to
 * their low byte. Where a function is used only while building a ring (SHA-1 of
 * a server name), node:crypto is fast enough; per-key MD5 is hand-written
 * because a crypto.createHash object per key costs several times more.
 */
import { createHash } from 'node:crypto';

/** Sign-extends a byte the way a C `char` on x86 does before a (uint32_t) cast. */
function signedByte(b: number): number {
  return (b << 24) >> 24;
}

// ---------------------------------------------------------------- MD5 (RFC 1321)

const md5Block = new Int32Array(16);
const md5Tail = new Uint8Array(128);
const md5State = new Int32Array(4);

/**
 * One 64-byte block from md5Block into md5State: the 64 steps of RFC 1321
 * section 3.4 written out, so V8 keeps the state in registers.
 */
function md5Compress(): void {
  const x = md5Block;
  const x0 = x[0]!,
    x1 = x[1]!,
    x2 = x[2]!,
    x3 = x[3]!,
    x4 = x[4]!,
    x5 = x[5]!,
    x6 = x[6]!,
    x7 = x[7]!;
  const x8 = x[8]!,
    x9 = x[9]!,
    x10 = x[10]!,
    x11 = x[11]!,
    x12 = x[12]!,
    x13 = x[13]!,
    x14 = x[14]!;
  const x15 = x[15]!;
  let a = md5State[0]!;
  let b = md5State[1]!;
  let c = md5State[2]!;
  let d = md5State[3]!;
  a = (a + ((b & c) | (~b & d)) + x0 + -680876936) | 0;
  a = (((a << 7) | (a >>> 25)) + b) | 0;
  d = (d + ((a & b) | (~a & c)) + x1 + -389564586) | 0;
  d = (((d << 12) | (d >>> 20)) + a) | 0;
  c = (c + ((d & a) | (~d & b)) + x2 + 606105819) | 0;
  c = (((c << 17) | (c >>> 15)) + d) | 0;
  b = (b + ((c & d) | (~c & a)) + x3 + -1044525330) | 0;
  b = (((b << 22) | (b >>> 10)) + c) | 0;
  a = (a + ((b & c) | (~b & d)) + x4 + -176418897) | 0;
  a = (((a << 7) | (a >>> 25)) + b) | 0;
  d = (d + ((a & b) | (~a & c)) + x5 + 1200080426) | 0;
  d = (((d << 12) | (d >>> 20)) + a) | 0;
  c = (c + ((d & a) | (~d & b)) + x6 + -1473231341) | 0;
  c = (((c << 17) | (c >>> 15)) + d) | 0;
  b = (b + ((c & d) | (~c & a)) + x7 + -45705983) | 0;
  b = (((b << 22) | (b >>> 10)) + c) | 0;
  a = (a + ((b & c) | (~b & d)) + x8 + 1770035416) | 0;
  a = (((a << 7) | (a >>> 25)) + b) | 0;
  d = (d + ((a & b) | (~a & c)) + x9 + -1958414417) | 0;
  d = (((d << 12) | (d >>> 20)) + a) | 0;
  c = (c + ((d & a) | (~d & b)) + x10 + -42063) | 0;
  c = (((c << 17) | (c >>> 15)) + d) | 0;
  b = (b + ((c & d) | (~c & a)) + x11 + -1990404162) | 0;
  b = (((b << 22) | (b >>> 10)) + c) | 0;
  a = (a + ((b & c) | (~b & d)) + x12 + 1804603682) | 0;
  a = (((a << 7) | (a >>> 25)) + b) | 0;
  d = (d + ((a & b) | (~a & c)) + x13 + -40341101) | 0;
  d = (((d << 12) | (d >>> 20)) + a) | 0;
  c = (c + ((d & a) | (~d & b)) + x14 + -1502002290) | 0;
  c = (((c << 17) | (c >>> 15)) + d) | 0;
  b = (b + ((c & d) | (~c & a)) + x15 + 1236535329) | 0;
  b = (((b << 22) | (b >>> 10)) + c) | 0;
  a = (a + ((b & d) | (c & ~d)) + x1 + -165796510) | 0;
  a = (((a << 5) | (a >>> 27)) + b) | 0;
  d = (d + ((a & c) | (b & ~c)) + x6 + -1069501632) | 0;
  d = (((d << 9) | (d >>> 23)) + a) | 0;
  c = (c + ((d & b) | (a & ~b)) + x11 + 643717713) | 0;
  c = (((c << 14) | (c >>> 18)) + d) | 0;
  b = (b + ((c & a) | (d & ~a)) + x0 + -373897302) | 0;
  b = (((b << 20) | (b >>> 12)) + c) | 0;
  a = (a + ((b & d) | (c & ~d)) + x5 + -701558691) | 0;
  a = (((a << 5) | (a >>> 27)) + b) | 0;
  d = (d + ((a & c) | (b & ~c)) + x10 + 38016083) | 0;
  d = (((d << 9) | (d >>> 23)) + a) | 0;
  c = (c + ((d & b) | (a & ~b)) + x15 + -660478335) | 0;
  c = (((c << 14) | (c >>> 18)) + d) | 0;
  b = (b + ((c & a) | (d & ~a)) + x4 + -405537848) | 0;
  b = (((b << 20) | (b >>> 12)) + c) | 0;
  a = (a + ((b & d) | (c & ~d)) + x9 + 568446438) | 0;
  a = (((a << 5) | (a >>> 27)) + b) | 0;
  d = (d + ((a & c) | (b & ~c)) + x14 + -1019803690) | 0;
  d = (((d << 9) | (d >>> 23)) + a) | 0;
  c = (c + ((d & b) | (a & ~b)) + x3 + -187363961) | 0;
  c = (((c << 14) | (c >>> 18)) + d) | 0;
  b = (b + ((c & a) | (d & ~a)) + x8 + 1163531501) | 0;
  b = (((b << 20) | (b >>> 12)) + c) | 0;
  a = (a + ((b & d) | (c & ~d)) + x13 + -1444681467) | 0;
  a = (((a << 5) | (a >>> 27)) + b) | 0;
  d = (d + ((a & c) | (b & ~c)) + x2 + -51403784) | 0;
  d = (((d << 9) | (d >>> 23)) + a) | 0;
  c = (c + ((d & b) | (a & ~b)) + x7 + 1735328473) | 0;
  c = (((c << 14) | (c >>> 18)) + d) | 0;
  b = (b + ((c & a) | (d & ~a)) + x12 + -1926607734) | 0;
  b = (((b << 20) | (b >>> 12)) + c) | 0;
  a = (a + (b ^ c ^ d) + x5 + -378558) | 0;
  a = (((a << 4) | (a >>> 28)) + b) | 0;
  d = (d + (a ^ b ^ c) + x8 + -2022574463) | 0;
  d = (((d << 11) | (d >>> 21)) + a) | 0;
  c = (c + (d ^ a ^ b) + x11 + 1839030562) | 0;
  c = (((c << 16) | (c >>> 16)) + d) | 0;
  b = (b + (c ^ d ^ a) + x14 + -35309556) | 0;
  b = (((b << 23) | (b >>> 9)) + c) | 0;
  a = (a + (b ^ c ^ d) + x1 + -1530992060) | 0;
  a = (((a << 4) | (a >>> 28)) + b) | 0;
  d = (d + (a ^ b ^ c) + x4 + 1272893353) | 0;
  d = (((d << 11) | (d >>> 21)) + a) | 0;
  c = (c + (d ^ a ^ b) + x7 + -155497632) | 0;
  c = (((c << 16) | (c >>> 16)) + d) | 0;
  b = (b + (c ^ d ^ a) + x10 + -1094730640) | 0;
  b = (((b << 23) | (b >>> 9)) + c) | 0;
  a = (a + (b ^ c ^ d) + x13 + 681279174) | 0;
  a = (((a << 4) | (a >>> 28)) + b) | 0;
  d = (d + (a ^ b ^ c) + x0 + -358537222) | 0;
  d = (((d << 11) | (d >>> 21)) + a) | 0;
  c = (c + (d ^ a ^ b) + x3 + -722521979) | 0;
  c = (((c << 16) | (c >>> 16)) + d) | 0;
  b = (b + (c ^ d ^ a) + x6 + 76029189) | 0;
  b = (((b << 23) | (b >>> 9)) + c) | 0;
  a = (a + (b ^ c ^ d) + x9 + -640364487) | 0;
  a = (((a << 4) | (a >>> 28)) + b) | 0;
  d = (d + (a ^ b ^ c) + x12 + -421815835) | 0;
  d = (((d << 11) | (d >>> 21)) + a) | 0;
  c = (c + (d ^ a ^ b) + x15 + 530742520) | 0;
  c = (((c << 16) | (c >>> 16)) + d) | 0;
  b = (b + (c ^ d ^ a) + x2 + -995338651) | 0;
  b = (((b << 23) | (b >>> 9)) + c) | 0;
  a = (a + (c ^ (b | ~d)) + x0 + -198630844) | 0;
  a = (((a << 6) | (a >>> 26)) + b) | 0;
  d = (d + (b ^ (a | ~c)) + x7 + 1126891415) | 0;
  d = (((d << 10) | (d >>> 22)) + a) | 0;
  c = (c + (a ^ (d | ~b)) + x14 + -1416354905) | 0;
  c = (((c << 15) | (c >>> 17)) + d) | 0;
  b = (b + (d ^ (c | ~a)) + x5 + -57434055) | 0;
  b = (((b << 21) | (b >>> 11)) + c) | 0;
  a = (a + (c ^ (b | ~d)) + x12 + 1700485571) | 0;
  a = (((a << 6) | (a >>> 26)) + b) | 0;
  d = (d + (b ^ (a | ~c)) + x3 + -1894986606) | 0;
  d = (((d << 10) | (d >>> 22)) + a) | 0;
  c = (c + (a ^ (d | ~b)) + x10 + -1051523) | 0;
  c = (((c << 15) | (c >>> 17)) + d) | 0;
  b = (b + (d ^ (c | ~a)) + x1 + -2054922799) | 0;
  b = (((b << 21) | (b >>> 11)) + c) | 0;
  a = (a + (c ^ (b | ~d)) + x8 + 1873313359) | 0;
  a = (((a << 6) | (a >>> 26)) + b) | 0;
  d = (d + (b ^ (a | ~c)) + x15 + -30611744) | 0;
  d = (((d << 10) | (d >>> 22)) + a) | 0;
  c = (c + (a ^ (d | ~b)) + x6 + -1560198380) | 0;
  c = (((c << 15) | (c >>> 17)) + d) | 0;
  b = (b + (d ^ (c | ~a)) + x13 + 1309151649) | 0;
  b = (((b << 21) | (b >>> 11)) + c) | 0;
  a = (a + (c ^ (b | ~d)) + x4 + -145523070) | 0;
  a = (((a << 6) | (a >>> 26)) + b) | 0;
  d = (d + (b ^ (a | ~c)) + x11 + -1120210379) | 0;
  d = (((d << 10) | (d >>> 22)) + a) | 0;
  c = (c + (a ^ (d | ~b)) + x2 + 718787259) | 0;
  c = (((c << 15) | (c >>> 17)) + d) | 0;
  b = (b + (d ^ (c | ~a)) + x9 + -343485551) | 0;
  b = (((b << 21) | (b >>> 11)) + c) | 0;
  md5State[0] = (md5State[0]! + a) | 0;
  md5State[1] = (md5State[1]! + b) | 0;
  md5State[2] = (md5State[2]! + c) | 0;
  md5State[3] = (md5State[3]! + d) | 0;
}

function loadBlock(bytes: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++, at += 4) {
    md5Block[i] = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
  }
}

/**
 * MD5 of `bytes`, leaving the digest as four little-endian words in md5State:
 * word i holds digest bytes 4i..4i+3, which is exactly how ketama reads a point
 * ("(results[3 + 4i] << 24) | ... | results[4i]").
 */
function md5Run(bytes: Uint8Array): void {
  md5State[0] = 0x67452301;
  md5State[1] = 0xefcdab89 | 0;
  md5State[2] = 0x98badcfe | 0;
  md5State[3] = 0x10325476;
  const length = bytes.length;
  if (length < 56) {
    // The usual key: message, 0x80 and the bit length fit one block; build it in place.
    const x = md5Block;
    for (let w = (length >> 2) + 1; w < 16; w++) x[w] = 0;
    let i = 0;
    for (; i + 4 <= length; i += 4) {
      x[i >> 2] = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    }
    let last = 0;
    for (let shift = 0; i < length; i++, shift += 8) last |= bytes[i]! << shift;
    x[length >> 2] = last | (0x80 << ((length & 3) << 3));
    x[14] = length << 3;
    md5Compress();
    return;
  }
  let at = 0;
  for (; at + 64 <= length; at += 64) {
    loadBlock(bytes, at);
    md5Compress();
  }
  const rest = length - at;
  const tail = md5Tail;
  for (let i = 0; i < rest; i++) tail[i] = bytes[at + i]!;
  tail[rest] = 0x80;
  const blocks = rest < 56 ? 1 : 2;
  const end = blocks * 64;
  tail.fill(0, rest + 1, end - 8);
  // The message length in bits, little-endian, in the last 8 bytes.
  const bits = length * 8;
  tail[end - 8] = bits & 0xff;
  tail[end - 7] = (bits >>> 8) & 0xff;
  tail[end - 6] = (bits >>> 16) & 0xff;
  tail[end - 5] = (bits >>> 24) & 0xff;
  const high = Math.floor(bits / 0x100000000);
  tail[end - 4] = high & 0xff;
  tail[end - 3] = (high >>> 8) & 0xff;
  tail[end - 2] = (high >>> 16) & 0xff;
  tail[end - 1] = (high >>> 24) & 0xff;
  loadBlock(tail, 0);
  md5Compress();
  if (blocks === 2) {
    loadBlock(tail, 64);
    md5Compress();
  }
}

/** The first four digest bytes of MD5(bytes) read little-endian: libmemcached's and ketama's key hash. */
export function md5First32(bytes: Uint8Array): number {
  md5Run(bytes);
  return md5State[0]! >>> 0;
}

/** All four little-endian words of MD5(bytes) into `out` (unsigned): the four ketama points of one digest. */
export function md5Words(bytes: Uint8Array, out: Uint32Array): void {
  md5Run(bytes);
  out[0] = md5State[0]!;
  out[1] = md5State[1]!;
  out[2] = md5State[2]!;
  out[3] = md5State[3]!;
}

/** The first 32 bits of SHA-1(text) read big-endian, as Dalli's `Integer("0x" + hexdigest[0..7])`. */
export function sha1First32(text: string): number {
  return createHash('sha1').update(text, 'utf8').digest().readUInt32BE(0);
}

// ---------------------------------------------------------------- CRC

const CRC32_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zlib, Ruby's Zlib.crc32, Go's crc32.ChecksumIEEE, Python's binascii.crc32). */
export function crc32(bytes: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < bytes.length; i++) crc = CRC32_TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/** CRC-32 of the bytes that gave `crc` followed by `bytes` (zlib's crc32(crc, buf, len)). */
export function crc32Add(crc: number, bytes: Uint8Array): number {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i++) c = CRC32_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** libmemcached's and twemproxy's "crc32": the high half of CRC-32, 15 bits (not the standard value). */
export function crc32Libmemcached(bytes: Uint8Array): number {
  return (crc32(bytes) >>> 16) & 0x7fff;
}

const CRC16_TABLE = (() => {
  // CRC-16/XMODEM (polynomial 0x1021, not reflected), the table twemproxy 0.5.0 ships.
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    table[n] = c;
  }
  return table;
})();

/**
 * twemproxy 0.5.0's crc16: the XMODEM table, but the running value is a
 * uint32_t shifted left and never cut to 16 bits, so long keys give values
 * far above 0xffff (nutcracker proves it: test/fixtures/placement).
 */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = (crc << 8) ^ CRC16_TABLE[((crc >>> 8) ^ bytes[i]!) & 0xff]!;
  return crc >>> 0;
}

// ---------------------------------------------------------------- Jenkins family

/** Bob Jenkins' one-at-a-time, libmemcached's default, bytes read as signed chars. */
export function oneAtATime(bytes: Uint8Array): number {
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value + signedByte(bytes[i]!)) | 0;
    value = (value + (value << 10)) | 0;
    value ^= value >>> 6;
  }
  value = (value + (value << 3)) | 0;
  value ^= value >>> 11;
  value = (value + (value << 15)) | 0;
  return value >>> 0;
}

function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Bob Jenkins' lookup3 hashlittle with initval 13, as libmemcached and twemproxy call "jenkins". */
export function jenkins(bytes: Uint8Array): number {
  let length = bytes.length;
  let a = (0xdeadbeef + length + 13) | 0;
  let b = a;
  let c = a;
  let k = 0;
  while (length > 12) {
    a = (a + (bytes[k]! | (bytes[k + 1]! << 8) | (bytes[k + 2]! << 16) | (bytes[k + 3]! << 24))) | 0;
    b = (b + (bytes[k + 4]! | (bytes[k + 5]! << 8) | (bytes[k + 6]! << 16) | (bytes[k + 7]! << 24))) | 0;
    c = (c + (bytes[k + 8]! | (bytes[k + 9]! << 8) | (bytes[k + 10]! << 16) | (bytes[k + 11]! << 24))) | 0;
    a = (a - c) | 0;
    a ^= rot(c, 4);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rot(a, 6);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rot(b, 8);
    b = (b + a) | 0;
    a = (a - c) | 0;
    a ^= rot(c, 16);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rot(a, 19);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rot(b, 4);
    b = (b + a) | 0;
    length -= 12;
    k += 12;
  }
  if (length === 0) return c >>> 0;
  // The last block: missing bytes count as zero (the "all the case statements fall through" switch).
  for (let i = length - 1; i >= 0; i--) {
    const v = bytes[k + i]! << ((i & 3) * 8);
    if (i >= 8) c = (c + v) | 0;
    else if (i >= 4) b = (b + v) | 0;
    else a = (a + v) | 0;
  }
  c ^= b;
  c = (c - rot(b, 14)) | 0;
  a ^= c;
  a = (a - rot(c, 11)) | 0;
  b ^= a;
  b = (b - rot(a, 25)) | 0;
  c ^= b;
  c = (c - rot(b, 16)) | 0;
  a ^= c;
  a = (a - rot(c, 4)) | 0;
  b ^= a;
  b = (b - rot(a, 14)) | 0;
  c ^= b;
  c = (c - rot(b, 24)) | 0;
  return c >>> 0;
}

/** Paul Hsieh's SuperFastHash as twemproxy has it (the odd trailing byte read as a signed char). */
export function hsieh(bytes: Uint8Array): number {
  let length = bytes.length;
  if (length === 0) return 0;
  let hash = 0;
  const rem = length & 3;
  length >>>= 2;
  let k = 0;
  for (; length > 0; length--, k += 4) {
    hash = (hash + (bytes[k]! | (bytes[k + 1]! << 8))) | 0;
    const tmp = ((bytes[k + 2]! | (bytes[k + 3]! << 8)) << 11) ^ hash;
    hash = (hash << 16) ^ tmp;
    hash = (hash + (hash >>> 11)) | 0;
  }
  if (rem === 3) {
    hash = (hash + (bytes[k]! | (bytes[k + 1]! << 8))) | 0;
    hash ^= hash << 16;
    hash ^= signedByte(bytes[k + 2]!) << 18;
    hash = (hash + (hash >>> 11)) | 0;
  } else if (rem === 2) {
    hash = (hash + (bytes[k]! | (bytes[k + 1]! << 8))) | 0;
    hash ^= hash << 11;
    hash = (hash + (hash >>> 17)) | 0;
  } else if (rem === 1) {
    hash = (hash + bytes[k]!) | 0;
    hash ^= hash << 10;
    hash = (hash + (hash >>> 1)) | 0;
  }
  hash ^= hash << 3;
  hash = (hash + (hash >>> 5)) | 0;
  hash ^= hash << 4;
  hash = (hash + (hash >>> 17)) | 0;
  hash ^= hash << 25;
  hash = (hash + (hash >>> 6)) | 0;
  return hash >>> 0;
}

// ---------------------------------------------------------------- FNV

/*
 * twemproxy's (and libmemcached's) "64-bit" FNV variants keep only 32 bits of
 * state: the low half of the 64-bit offset basis and prime. Since the low 32
 * bits of a product depend only on the low 32 bits of its factors, fnv1_64
 * computed in uint64_t and truncated gives the same value.
 */
const FNV64_INIT_LOW = 0x84222325;
const FNV64_PRIME_LOW = 0x1b3;
const FNV32_INIT = 0x811c9dc5;
const FNV32_PRIME = 0x01000193;

export function fnv1_64(bytes: Uint8Array): number {
  let hash = FNV64_INIT_LOW | 0;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash, FNV64_PRIME_LOW) ^ signedByte(bytes[i]!);
  return hash >>> 0;
}

export function fnv1a_64(bytes: Uint8Array): number {
  let hash = FNV64_INIT_LOW | 0;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ signedByte(bytes[i]!), FNV64_PRIME_LOW);
  return hash >>> 0;
}

export function fnv1_32(bytes: Uint8Array): number {
  let hash = FNV32_INIT | 0;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash, FNV32_PRIME) ^ signedByte(bytes[i]!);
  return hash >>> 0;
}

export function fnv1a_32(bytes: Uint8Array): number {
  let hash = FNV32_INIT | 0;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ signedByte(bytes[i]!), FNV32_PRIME);
  return hash >>> 0;
}

// ---------------------------------------------------------------- Murmur

/** MurmurHash2 as twemproxy's "murmur" (seed = 0xdeadbeef * length). */
export function murmur2(bytes: Uint8Array): number {
  const m = 0x5bd1e995;
  let length = bytes.length;
  const seed = Math.imul(0xdeadbeef | 0, length);
  let h = seed ^ length;
  let k = 0;
  while (length >= 4) {
    let w = bytes[k]! | (bytes[k + 1]! << 8) | (bytes[k + 2]! << 16) | (bytes[k + 3]! << 24);
    w = Math.imul(w, m);
    w ^= w >>> 24;
    w = Math.imul(w, m);
    h = Math.imul(h, m) ^ w;
    k += 4;
    length -= 4;
  }
  if (length === 3) h ^= bytes[k + 2]! << 16;
  if (length >= 2) h ^= bytes[k + 1]! << 8;
  if (length >= 1) {
    h ^= bytes[k]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

const M3_C1 = 0xcc9e2d51 | 0;
const M3_C2 = 0x1b873593;

/** Mixes one 4-byte little-endian block into murmur3 state `h`. */
export function murmur3Block(h: number, block: number): number {
  let k = Math.imul(block, M3_C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, M3_C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The tail (0 to 3 bytes packed little-endian in `tail`) and the finalizer of murmur3_32. */
export function murmur3Finish(h: number, tail: number, tailLength: number, totalLength: number): number {
  if (tailLength > 0) {
    let k = Math.imul(tail, M3_C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, M3_C2);
    h ^= k;
  }
  h ^= totalLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b | 0);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35 | 0);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32. */
export function murmur3_32(bytes: Uint8Array, seed = 0): number {
  let h = seed | 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    h = murmur3Block(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  }
  let tail = 0;
  const rest = bytes.length & 3;
  for (let i = rest - 1; i >= 0; i--) tail = (tail << 8) | bytes[blocks + i]!;
  return murmur3Finish(h, tail, rest, bytes.length);
}

// ---------------------------------------------------------------- string hashes of UTF-8 keys

/**
 * Decodes the UTF-8 text in `bytes` and folds each code point into `state`
 * with `step`, as a client that holds the key as a string would see it. A
 * byte that does not start a valid sequence becomes U+FFFD, as TextDecoder
 * makes it.
 */
function foldCodePoints(
  bytes: Uint8Array,
  state: number,
  step: (state: number, cp: number) => number,
): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b0 = bytes[i]!;
    let cp = 0xfffd;
    let used = 1;
    if (b0 < 0x80) {
      cp = b0;
    } else if (b0 >= 0xc2 && b0 < 0xe0 && i + 1 < n && (bytes[i + 1]! & 0xc0) === 0x80) {
      cp = ((b0 & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
      used = 2;
    } else if (b0 >= 0xe0 && b0 < 0xf0 && i + 2 < n) {
      const b1 = bytes[i + 1]!;
      const b2 = bytes[i + 2]!;
      const v = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
      if ((b1 & 0xc0) === 0x80 && (b2 & 0xc0) === 0x80 && v >= 0x800 && (v < 0xd800 || v > 0xdfff)) {
        cp = v;
        used = 3;
      }
    } else if (b0 >= 0xf0 && b0 < 0xf5 && i + 3 < n) {
      const b1 = bytes[i + 1]!;
      const b2 = bytes[i + 2]!;
      const b3 = bytes[i + 3]!;
      const v = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
      if (
        (b1 & 0xc0) === 0x80 &&
        (b2 & 0xc0) === 0x80 &&
        (b3 & 0xc0) === 0x80 &&
        v >= 0x10000 &&
        v <= 0x10ffff
      ) {
        cp = v;
        used = 4;
      }
    }
    state = step(state, cp);
    i += used;
  }
  return state;
}

/** One code point into a Java hash: a supplementary character is two UTF-16 units. */
function javaStep(h: number, cp: number): number {
  if (cp < 0x10000) return (Math.imul(h, 31) + cp) | 0;
  const v = cp - 0x10000;
  h = (Math.imul(h, 31) + (0xd800 | (v >>> 10))) | 0;
  return (Math.imul(h, 31) + (0xdc00 | (v & 0x3ff))) | 0;
}

/** Java's String.hashCode() (and memjs' copy of it) of the UTF-8 key decoded to UTF-16, as a signed int. */
export function javaStringHash(bytes: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) return foldCodePoints(bytes, 0, javaStep);
    h = (Math.imul(h, 31) + b) | 0;
  }
  return h;
}

let lowBytesOut: Uint8Array = new Uint8Array(0);
function lowByteStep(count: number, cp: number): number {
  lowBytesOut[count] = cp & 0xff;
  return count + 1;
}

/**
 * The code points of the UTF-8 text in `bytes`, each cut to its low byte,
 * into `out` (at least bytes.length long); returns how many there are. This
 * is what pymemcache's pure-Python murmur3 reads from a str: `ord(c) & 0xff`,
 * one per character.
 */
export function codePointLowBytes(bytes: Uint8Array, out: Uint8Array): number {
  lowBytesOut = out;
  const count = foldCodePoints(bytes, 0, lowByteStep);
  lowBytesOut = new Uint8Array(0);
  return count;
}

/** The names twemproxy accepts for `hash:`, mapped to their functions. */
export const TWEMPROXY_HASHES: ReadonlyMap<string, (bytes: Uint8Array) => number> = new Map([
  ['one_at_a_time', oneAtATime],
  ['md5', md5First32],
  ['crc16', crc16],
  ['crc32', crc32Libmemcached],
  ['crc32a', crc32],
  ['fnv1_64', fnv1_64],
  ['fnv1a_64', fnv1a_64],
  ['fnv1_32', fnv1_32],
  ['fnv1a_32', fnv1a_32],
  ['hsieh', hsieh],
  ['murmur', murmur2],
  ['jenkins', jenkins],
]);
