/**
 * pymemcache's HashClient: rendezvous (highest random weight) hashing. Each
 * server scores murmur3_32("<host>:<port>-<key>") and the highest score wins;
 * on a tie the server whose name sorts last wins (`max(str(node), str(winner))`).
 *
 * pymemcache runs murmur3 in pure Python over a str, reading `ord(c) & 0xff`
 * per character, so a non-ASCII key (allowed with allow_unicode_keys) is
 * hashed by its code points cut to one byte each, not by its UTF-8 bytes.
 * The server prefix is the same for every key, so its whole 4-byte blocks are
 * mixed once, up front.
 */
import { codePointLowBytes, murmur3Block, murmur3Finish } from './hashes.js';
import { ONLY_SERVER, type Distribution } from './ring.js';
import type { Server } from './server.js';

/** murmur3 state after the whole blocks of one server's "<host>:<port>-" prefix. */
interface Prefix {
  readonly h: number;
  /** The prefix's trailing bytes (0-3), packed little-endian. */
  readonly pending: number;
  readonly pendingLength: number;
  readonly length: number;
}

export function pymemcacheNodeName(server: Server): string {
  return `${server.host}:${server.port}`;
}

export class RendezvousDistribution implements Distribution {
  private readonly prefixes: Prefix[];
  /** Rank of each server's name in string order, for ties. */
  private readonly nameRank: Int32Array;
  private scratch = new Uint8Array(256);

  constructor(names: readonly string[]) {
    this.prefixes = names.map((name) => {
      const bytes = Buffer.from(`${name}-`, 'latin1');
      let h = 0;
      const whole = bytes.length & ~3;
      for (let i = 0; i < whole; i += 4) {
        h = murmur3Block(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
      }
      let pending = 0;
      for (let i = bytes.length - 1; i >= whole; i--) pending = (pending << 8) | bytes[i]!;
      return { h, pending, pendingLength: bytes.length - whole, length: bytes.length };
    });
    const order = names
      .map((_, i) => i)
      .sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
    this.nameRank = new Int32Array(names.length);
    order.forEach((server, rank) => (this.nameRank[server] = rank));
  }

  serverFor(key: Buffer): number {
    let units: Uint8Array = key;
    let length = key.length;
    for (let i = 0; i < key.length; i++) {
      if (key[i]! >= 0x80) {
        if (this.scratch.length < key.length) this.scratch = new Uint8Array(key.length);
        length = codePointLowBytes(key, this.scratch);
        units = this.scratch;
        break;
      }
    }
    return this.pick(units, length);
  }

  /** The winner for the first `length` bytes of `units`, the bytes murmur3 reads after the prefix. */
  pick(units: Uint8Array, length: number): number {
    let best = -1;
    let winner = 0;
    for (let s = 0; s < this.prefixes.length; s++) {
      const p = this.prefixes[s]!;
      let h = p.h;
      // The stream is the prefix's pending bytes followed by the key: the first block tops up the
      // pending bytes, every later block is four key bytes read little-endian.
      const fill = 4 - p.pendingLength;
      let acc: number;
      let accLength: number;
      let i: number;
      if (length < fill) {
        acc = p.pending;
        for (i = 0; i < length; i++) acc |= units[i]! << ((p.pendingLength + i) << 3);
        accLength = p.pendingLength + length;
      } else {
        acc = p.pending;
        for (i = 0; i < fill; i++) acc |= units[i]! << ((p.pendingLength + i) << 3);
        h = murmur3Block(h, acc);
        for (; i + 4 <= length; i += 4) {
          h = murmur3Block(
            h,
            units[i]! | (units[i + 1]! << 8) | (units[i + 2]! << 16) | (units[i + 3]! << 24),
          );
        }
        acc = 0;
        accLength = length - i;
        for (let j = 0; i < length; i++, j += 8) acc |= units[i]! << j;
      }
      const score = murmur3Finish(h, acc, accLength, p.length + length);
      if (score > best || (score === best && this.nameRank[s]! > this.nameRank[winner]!)) {
        best = score;
        winner = s;
      }
    }
    return winner;
  }
}

export function pymemcacheRendezvous(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new RendezvousDistribution(servers.map(pymemcacheNodeName));
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Python's repr() of a bytes object, as ASCII bytes: what `"%s" % key` makes of a bytes key. */
export function pythonBytesRepr(key: Uint8Array, out: Uint8Array): number {
  let single = false;
  let double = false;
  for (let i = 0; i < key.length; i++) {
    if (key[i] === 0x27) single = true;
    else if (key[i] === 0x22) double = true;
  }
  // Python quotes with ' unless the bytes hold a ' and no ".
  const quote = single && !double ? 0x22 : 0x27;
  let n = 0;
  out[n++] = 0x62; // b
  out[n++] = quote;
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === quote || c === 0x5c) {
      out[n++] = 0x5c;
      out[n++] = c;
    } else if (c === 0x09 || c === 0x0a || c === 0x0d) {
      out[n++] = 0x5c;
      out[n++] = c === 0x09 ? 0x74 : c === 0x0a ? 0x6e : 0x72; // \t \n \r
    } else if (c < 0x20 || c >= 0x7f) {
      out[n++] = 0x5c;
      out[n++] = 0x78; // x
      out[n++] = HEX[c >>> 4]!;
      out[n++] = HEX[c & 15]!;
    } else {
      out[n++] = c;
    }
  }
  out[n++] = quote;
  return n;
}

/**
 * pymemcache's HashClient given bytes keys under Python 3: the rendezvous
 * hash formats the key with "%s-%s", so it hashes "host:port-b'key'" (the
 * key's repr, with \xNN for bytes outside printable ASCII) while the server
 * stores the key itself.
 */
export class PymemcacheBytesDistribution implements Distribution {
  private readonly inner: RendezvousDistribution;
  /** Four bytes per key byte (\xNN) plus b'' at most. */
  private readonly text = new Uint8Array(4 * 1024 + 3);

  constructor(names: readonly string[]) {
    this.inner = new RendezvousDistribution(names);
  }

  serverFor(key: Buffer): number {
    const text = key.length * 4 + 3 <= this.text.length ? this.text : new Uint8Array(key.length * 4 + 3);
    return this.inner.pick(text, pythonBytesRepr(key, text));
  }
}

export function pymemcacheBytesRendezvous(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new PymemcacheBytesDistribution(servers.map(pymemcacheNodeName));
}
