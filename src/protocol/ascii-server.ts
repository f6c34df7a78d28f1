/**
 * A client's text stream read the way memcached 1.6.18 reads it (proto_text.c,
 * try_read_command_ascii and process_command_ascii), for a proxy that must
 * answer exactly as memcached would.
 *
 * Each line becomes one of:
 *   - a request memcached would carry out: typed, ready to forward;
 *   - an answer memcached gives by itself without touching its data (ERROR,
 *     CLIENT_ERROR ..., SERVER_ERROR object too large for cache), or no answer
 *     where `noreply` silences it, or a close (an HTTP request line, an
 *     endless line); a storage command's data block is swallowed where
 *     memcached swallows it and read as commands where memcached does;
 *   - an admin command (slabs, lru, verbosity, ...) that is well formed, whose
 *     effect is the caller's policy.
 * Bytes swallowed after an error come out as `skipped` frames, never buffered.
 *
 * memcached reads a line up to its first NUL, splits it on spaces into at
 * most 23 words plus the unread rest, and checks word counts per command on
 * that; the same is done here, then the shared meta parser types the meta
 * requests that pass.
 */
import type { AsciiRequest, RetrievalCommand, StorageCommand } from './ascii-frames.js';
import { cSafeStrtodOk, cSafeStrtol, cSafeStrtoul, cSafeStrtoull } from './c-numbers.js';
import type { FrameParser, ParseCursor } from './decoder.js';
import { LineTokens } from './lines.js';
import { metaRequest } from './meta.js';
import type { Limits } from './limits.js';

/** What memcached does with one line of a client's text stream. */
export type ServerSideFrame =
  | { readonly kind: 'request'; readonly request: AsciiRequest }
  | {
      readonly kind: 'answer';
      /** The reply line without \r\n, or undefined when memcached stays silent. */
      readonly reply: string | undefined;
      /** memcached closes the connection after this (no reply is written). */
      readonly close: boolean;
      /** A store too large for the server: memcached removes the key's old value. */
      readonly evict: Buffer | undefined;
    }
  | {
      readonly kind: 'admin';
      /** The command word: verbosity, slabs, cache_memlimit, lru, lru_crawler, watch, extstore, refresh_certs. */
      readonly name: string;
      readonly args: readonly string[];
      /** memcached would not answer (the last word is `noreply` where the command honours it). */
      readonly noreply: boolean;
    }
  | { readonly kind: 'skipped'; readonly bytes: number };

export interface AsciiServerOptions {
  readonly limits: Limits;
  /** `item_size_max` of the server that would store `key` (its `stats settings`). */
  itemSizeMax(key: Buffer): number;
  /**
   * Whether meta commands exist (default: yes). Without them a meta line is
   * an unknown command, as on memcached before 1.5.19: ERROR, and a data
   * block after it is read as more lines.
   */
  meta?(): boolean;
}

const KEY_MAX = 250;
/** memcached's tokenizer keeps at most 23 words and the unread rest (MAX_TOKENS 24, terminal included). */
const MAX_WORDS = 23;
/** try_read_command_ascii: no \n in this many bytes is garbage, unless it is a long multi-get. */
const LINE_PATIENCE = 2048;
/** Meta commands refuse more tokens than this (MFLAG_MAX_OPT_LENGTH, terminal token included). */
const META_MAX_TOKENS = 20;
const OPAQUE_MAX = 32;
/** memcached's item header on 64-bit builds, and the CAS it stores (items.c, item_make_header). */
const ITEM_HEADER = 48;
const ITEM_CAS = 8;
const INT_MAX = 0x7fffffff;

const FORMAT = 'CLIENT_ERROR bad command line format';

const STORAGE: Readonly<Record<string, StorageCommand>> = {
  set: 'set',
  add: 'add',
  replace: 'replace',
  append: 'append',
  prepend: 'prepend',
  cas: 'cas',
};
const RETRIEVAL: Readonly<Record<string, RetrievalCommand>> = {
  get: 'get',
  gets: 'gets',
  gat: 'gat',
  gats: 'gats',
  bget: 'get',
};

/** Whether a store of `vlen` bytes (the \r\n included) fits an item (items.c, item_size_ok). */
export function itemTooLarge(itemSizeMax: number, nkey: number, flags: number, vlen: number): boolean {
  const total = ITEM_HEADER + nkey + 1 + (flags === 0 ? 0 : 4) + vlen + ITEM_CAS;
  return total > itemSizeMax;
}

export class AsciiServerReader implements FrameParser<ServerSideFrame> {
  readonly limits: Limits;
  private readonly options: AsciiServerOptions;
  /** Words of the current line as memcached splits them. */
  private readonly t = new LineTokens();
  /** Bytes still to throw away after a refused store. */
  private swallow = 0;

  constructor(options: AsciiServerOptions) {
    this.options = options;
    this.limits = options.limits;
  }

  /** Bytes of a refused data block still to come and be thrown away. */
  get swallowing(): number {
    return this.swallow;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): ServerSideFrame | undefined {
    if (this.swallow > 0) {
      const bytes = Math.min(this.swallow, buf.length - start);
      this.swallow -= bytes;
      cursor.end = start + bytes;
      return { kind: 'skipped', bytes };
    }
    const lf = buf.indexOf(0x0a, start);
    if (lf < 0) return this.waitForLine(buf, start, cursor);
    const next = lf + 1;
    let eol = lf > start + 1 && buf[lf - 1] === 0x0d ? lf - 1 : lf;
    // The line is a C string: it ends at its first NUL.
    const nul = buf.indexOf(0, start);
    if (nul >= 0 && nul < eol) eol = nul;
    const t = this.t;
    const words = split(t, buf, start, eol);
    if (words === 0 || t.length(0) < 2) return answer(next, cursor, 'ERROR');
    const ntokens = Math.min(words, MAX_WORDS) + 1;
    const name = buf.toString('latin1', t.start(0), t.end(0));
    if (name.length === 2 && name.charCodeAt(0) === 0x6d) {
      if (this.options.meta?.() === false) return answer(next, cursor, 'ERROR');
      return this.meta(name, buf, start, next, ntokens, cursor);
    }
    const storage = STORAGE[name];
    if (storage !== undefined) return this.storage(storage, buf, start, next, ntokens, cursor);
    const retrieval = RETRIEVAL[name];
    if (retrieval !== undefined) return this.retrieval(retrieval, name, buf, next, ntokens, cursor);
    switch (name) {
      case 'delete':
        return this.delete(buf, next, ntokens, cursor);
      case 'incr':
      case 'decr':
        return this.arithmetic(name, buf, next, ntokens, cursor);
      case 'touch':
        return this.touch(buf, next, ntokens, cursor);
      case 'flush_all':
        return this.flushAll(buf, next, ntokens, cursor);
      case 'version':
        return request(next, cursor, { kind: 'version' });
      case 'quit':
        return request(next, cursor, { kind: 'quit' });
      case 'stats':
        return request(next, cursor, { kind: 'stats', args: t.strings(buf, 1).slice(0, ntokens - 2) });
      case 'shutdown':
        // A server started without -A (the default) answers this; the proxy never passes it on.
        return answer(next, cursor, 'ERROR: shutdown not enabled');
      case 'verbosity':
        if (ntokens !== 3 && ntokens !== 4) return answer(next, cursor, 'ERROR');
        if (cSafeStrtoul(buf, t.start(1), t.end(1)) === undefined)
          return answer(next, cursor, this.quiet(buf, ntokens, FORMAT));
        return this.admin(name, buf, next, ntokens, cursor, true);
      default:
        return this.admins(name, buf, next, ntokens, cursor);
    }
  }

  /** No \n yet: memcached waits, or closes once 2 KiB hold no line that could be a long multi-get. */
  private waitForLine(buf: Buffer, start: number, cursor: ParseCursor): ServerSideFrame | undefined {
    const held = buf.length - start;
    if (held <= LINE_PATIENCE) {
      // Asked again with the next byte, so the patience is checked as the line grows.
      cursor.need = held + 1;
      return undefined;
    }
    let p = start;
    while (buf[p] === 0x20) p++;
    const multiget = p - start <= 100 && (startsWith(buf, p, 'get ') || startsWith(buf, p, 'gets '));
    if (multiget) {
      cursor.need = 0;
      return undefined;
    }
    cursor.end = buf.length;
    return { kind: 'answer', reply: undefined, close: true, evict: undefined };
  }

  /** `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]`, `cas ... <unique> [noreply]`. */
  private storage(
    command: StorageCommand,
    buf: Buffer,
    start: number,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame | undefined {
    const t = this.t;
    const isCas = command === 'cas';
    if (isCas ? ntokens !== 7 && ntokens !== 8 : ntokens !== 6 && ntokens !== 7)
      return answer(next, cursor, 'ERROR');
    const noreply = t.is(buf, ntokens - 2, 'noreply');
    const silent = (reply: string): ServerSideFrame => answer(next, cursor, noreply ? undefined : reply);
    if (t.length(1) > KEY_MAX) return silent(FORMAT);
    const flags = cSafeStrtoul(buf, t.start(2), t.end(2));
    const exptime = cSafeStrtol(buf, t.start(3), t.end(3));
    const vlen = cSafeStrtol(buf, t.start(4), t.end(4));
    if (flags === undefined || exptime === undefined || vlen === undefined) return silent(FORMAT);
    let cas: bigint | undefined;
    if (isCas) {
      cas = cSafeStrtoull(buf, t.start(5), t.end(5));
      if (cas === undefined) return silent(FORMAT);
    }
    if (vlen < 0 || vlen > INT_MAX - 2) return silent(FORMAT);
    const key = buf.subarray(t.start(1), t.end(1));
    if (itemTooLarge(this.options.itemSizeMax(key), key.length, flags, vlen + 2)) {
      // memcached swallows the data and, for set only, drops the old value so it cannot be read stale.
      this.swallow = vlen + 2;
      cursor.end = next;
      return {
        kind: 'answer',
        reply: noreply ? undefined : 'SERVER_ERROR object too large for cache',
        close: false,
        evict: command === 'set' ? Buffer.from(key) : undefined,
      };
    }
    const value = this.dataBlock(buf, start, next, vlen, cursor);
    if (value === undefined) return undefined;
    if (value === false)
      return {
        kind: 'answer',
        reply: noreply ? undefined : 'CLIENT_ERROR bad data chunk',
        close: false,
        evict: undefined,
      };
    return {
      kind: 'request',
      request: { kind: 'storage', command, key, flags, exptime, cas, noreply, value },
    };
  }

  /**
   * The `vlen` bytes after the line and the \r\n after them: a view, or
   * undefined (need more), or false when the two bytes after the value are
   * not \r\n (memcached's "bad data chunk"; the bytes are consumed either way).
   */
  private dataBlock(
    buf: Buffer,
    start: number,
    next: number,
    vlen: number,
    cursor: ParseCursor,
  ): Buffer | false | undefined {
    const end = next + vlen + 2;
    if (buf.length < end) {
      cursor.need = end - start;
      return undefined;
    }
    cursor.end = end;
    if (buf[end - 2] !== 0x0d || buf[end - 1] !== 0x0a) return false;
    return buf.subarray(next, end - 2);
  }

  /** `get|gets|bget <key>*`, `gat|gats <exptime> <key>*`. */
  private retrieval(
    command: RetrievalCommand,
    name: string,
    buf: Buffer,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame {
    if (ntokens < 3) return answer(next, cursor, 'ERROR');
    const t = this.t;
    const touching = name === 'gat' || name === 'gats';
    let exptime: number | undefined;
    let first = 1;
    if (touching) {
      exptime = cSafeStrtol(buf, t.start(1), t.end(1));
      if (exptime === undefined) return answer(next, cursor, 'CLIENT_ERROR invalid exptime argument');
      first = 2;
    }
    // Keys past the 23rd word are read on from the rest of the line, as memcached does.
    const keys: Buffer[] = [];
    for (let i = first; i < t.count; i++) {
      if (t.length(i) > KEY_MAX) return answer(next, cursor, FORMAT);
      keys.push(buf.subarray(t.start(i), t.end(i)));
    }
    // `gat <exptime>` with no key is a retrieval of nothing: just END.
    if (keys.length === 0) return answer(next, cursor, 'END');
    return request(next, cursor, { kind: 'retrieval', command, exptime, keys });
  }

  /** `delete <key> [0] [noreply]`. */
  private delete(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    if (ntokens < 3 || ntokens > 5) return answer(next, cursor, 'ERROR');
    let noreply = false;
    if (ntokens > 3) {
      const zero = t.is(buf, 2, '0');
      noreply = t.is(buf, ntokens - 2, 'noreply');
      const valid = (ntokens === 4 && (zero || noreply)) || (ntokens === 5 && zero && noreply);
      if (!valid) {
        return answer(next, cursor, noreply ? undefined : FORMAT + '.  Usage: delete <key> [noreply]');
      }
    }
    if (t.length(1) > KEY_MAX) return answer(next, cursor, noreply ? undefined : FORMAT);
    return request(next, cursor, { kind: 'delete', key: buf.subarray(t.start(1), t.end(1)), noreply });
  }

  private arithmetic(
    command: 'incr' | 'decr',
    buf: Buffer,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame {
    const t = this.t;
    if (ntokens !== 4 && ntokens !== 5) return answer(next, cursor, 'ERROR');
    const noreply = t.is(buf, ntokens - 2, 'noreply');
    if (t.length(1) > KEY_MAX) return answer(next, cursor, noreply ? undefined : FORMAT);
    const delta = cSafeStrtoull(buf, t.start(2), t.end(2));
    if (delta === undefined) {
      return answer(next, cursor, noreply ? undefined : 'CLIENT_ERROR invalid numeric delta argument');
    }
    const key = buf.subarray(t.start(1), t.end(1));
    return request(next, cursor, { kind: 'arithmetic', command, key, delta, noreply });
  }

  private touch(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    if (ntokens !== 4 && ntokens !== 5) return answer(next, cursor, 'ERROR');
    const noreply = t.is(buf, ntokens - 2, 'noreply');
    if (t.length(1) > KEY_MAX) return answer(next, cursor, noreply ? undefined : FORMAT);
    const exptime = cSafeStrtol(buf, t.start(2), t.end(2));
    if (exptime === undefined) {
      return answer(next, cursor, noreply ? undefined : 'CLIENT_ERROR invalid exptime argument');
    }
    return request(next, cursor, {
      kind: 'touch',
      key: buf.subarray(t.start(1), t.end(1)),
      exptime,
      noreply,
    });
  }

  private flushAll(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    if (ntokens < 2 || ntokens > 4) return answer(next, cursor, 'ERROR');
    const noreply = t.is(buf, ntokens - 2, 'noreply');
    let delay: number | undefined;
    if (ntokens !== (noreply ? 3 : 2)) {
      delay = cSafeStrtol(buf, t.start(1), t.end(1));
      if (delay === undefined) {
        return answer(next, cursor, noreply ? undefined : 'CLIENT_ERROR invalid exptime argument');
      }
    }
    return request(next, cursor, { kind: 'flush_all', delay, noreply });
  }

  /** The meta commands: their early checks here, the typing by the shared meta parser. */
  private meta(
    name: string,
    buf: Buffer,
    start: number,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame | undefined {
    const t = this.t;
    const code = name.charAt(1);
    if (code === 'n')
      return request(next, cursor, {
        kind: 'meta',
        command: 'mn',
        key: Buffer.alloc(0),
        base64: false,
        flags: [],
        value: undefined,
        quiet: false,
        opaque: undefined,
      });
    if (code === 's') return this.metaSet(buf, start, next, ntokens, cursor);
    if (code !== 'g' && code !== 'd' && code !== 'a' && code !== 'e') return answer(next, cursor, 'ERROR');
    if (code === 'e') {
      if (ntokens < 3 || t.length(1) > KEY_MAX) return answer(next, cursor, FORMAT);
    } else {
      if (ntokens < 3) return answer(next, cursor, 'ERROR');
      if (t.length(1) > KEY_MAX) return answer(next, cursor, FORMAT);
      if (ntokens > META_MAX_TOKENS) {
        return answer(
          next,
          cursor,
          code === 'g' ? 'CLIENT_ERROR options flags are too long' : 'CLIENT_ERROR options flags too long',
        );
      }
      const problem = preparse(buf, t, 2, ntokens);
      if (problem !== undefined) {
        // md and ma name no particular flag (proto_text.c, process_mdelete_command).
        return answer(next, cursor, code === 'g' ? problem : 'CLIENT_ERROR invalid or duplicate flag');
      }
      if (code === 'd' || code === 'a') {
        for (let i = 2; i < ntokens - 1; i++) {
          if (buf[t.start(i)] === 0x4f && t.length(i) > OPAQUE_MAX)
            return answer(next, cursor, 'CLIENT_ERROR opaque token too long');
        }
      }
    }
    const base64 = code === 'e' ? ntokens >= 4 && t.is(buf, 2, 'b') : hasFlag(buf, t, 2, ntokens, 0x62);
    const raw = buf.subarray(t.start(1), t.end(1));
    const key = base64 ? base64Decode(raw) : raw;
    if (key === undefined) return answer(next, cursor, FORMAT);
    const flags = t.strings(buf, 2).slice(0, ntokens - 3);
    const command = code === 'g' ? 'mg' : code === 'd' ? 'md' : code === 'a' ? 'ma' : 'me';
    return request(next, cursor, metaRequest(command, key, base64, flags, undefined));
  }

  /** `ms <key> <datalen> <flag>*` and its data block (proto_text.c, process_mset_command). */
  private metaSet(
    buf: Buffer,
    start: number,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame | undefined {
    const t = this.t;
    if (ntokens < 3) return answer(next, cursor, 'ERROR');
    if (t.length(1) > KEY_MAX || ntokens === 3) return answer(next, cursor, FORMAT);
    if (ntokens > META_MAX_TOKENS) return answer(next, cursor, 'CLIENT_ERROR options flags too long');
    const vlen = cSafeStrtol(buf, t.start(2), t.end(2));
    if (vlen === undefined || vlen < 0 || vlen > INT_MAX - 2) return answer(next, cursor, FORMAT);
    // From here on an error swallows the data block, as memcached does.
    const refuse = (reply: string, evict?: Buffer): ServerSideFrame => {
      this.swallow = vlen + 2;
      cursor.end = next;
      return { kind: 'answer', reply, close: false, evict };
    };
    const problem = preparse(buf, t, 3, ntokens);
    if (problem !== undefined) return refuse(problem);
    let key = buf.subarray(t.start(1), t.end(1));
    const flags: string[] = [];
    let base64 = false;
    let clientFlags = 0;
    let mode = '';
    let opaqueTooLong = false;
    for (let i = 3; i < ntokens - 1; i++) {
      const token = buf.toString('latin1', t.start(i), t.end(i));
      flags.push(token);
      switch (token.charAt(0)) {
        case 'b':
          base64 = true;
          break;
        case 'O':
          if (token.length > OPAQUE_MAX) opaqueTooLong = true;
          break;
        case 'F':
          clientFlags = cSafeStrtoul(buf, t.start(i) + 1, t.end(i)) ?? 0;
          break;
        case 'M':
          mode = token.charAt(1);
          break;
      }
    }
    // memcached judges the mode before a long opaque token.
    if (mode !== '' && !'EAPRS'.includes(mode)) return refuse('CLIENT_ERROR invalid mode for ms M token');
    if (opaqueTooLong) return refuse('CLIENT_ERROR opaque token too long');
    if (base64) key = base64Decode(key) ?? key;
    if (itemTooLarge(this.options.itemSizeMax(key), key.length, clientFlags, vlen + 2)) {
      // Every mode drops the old value here (proto_text.c: "Avoid stale data persisting").
      return refuse('SERVER_ERROR object too large for cache', Buffer.from(key));
    }
    const value = this.dataBlock(buf, start, next, vlen, cursor);
    if (value === undefined) return undefined;
    // A bad chunk is an error meta commands always show, quiet or not.
    if (value === false)
      return { kind: 'answer', reply: 'CLIENT_ERROR bad data chunk', close: false, evict: undefined };
    return { kind: 'request', request: metaRequest('ms', key, base64, flags, value) };
  }

  /** Well-formed admin commands go to the caller's policy; malformed ones get memcached's own answer. */
  private admins(
    name: string,
    buf: Buffer,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
  ): ServerSideFrame {
    const t = this.t;
    const word = (i: number, text: string): boolean => i < ntokens - 1 && t.is(buf, i, text);
    switch (name) {
      case 'slabs':
        if (ntokens === 5 && word(1, 'reassign')) {
          if (
            cSafeStrtol(buf, t.start(2), t.end(2)) === undefined ||
            cSafeStrtol(buf, t.start(3), t.end(3)) === undefined
          ) {
            return answer(next, cursor, FORMAT);
          }
          return this.admin(name, buf, next, ntokens, cursor, false);
        }
        if (ntokens >= 4 && word(1, 'automove')) {
          if (word(2, 'ratio')) {
            if (ntokens < 5 || !cSafeStrtodOk(buf, t.start(3), t.end(3)))
              return answer(next, cursor, this.quiet(buf, ntokens, 'ERROR'));
          } else {
            const level = cSafeStrtoul(buf, t.start(2), t.end(2));
            if (level === undefined) return answer(next, cursor, this.quiet(buf, ntokens, FORMAT));
            if (level > 2) return answer(next, cursor, this.quiet(buf, ntokens, 'ERROR'));
          }
          return this.admin(name, buf, next, ntokens, cursor, true);
        }
        return answer(next, cursor, 'ERROR');
      case 'cache_memlimit': {
        if (ntokens !== 3 && ntokens !== 4) return answer(next, cursor, 'ERROR');
        const limit = cSafeStrtoul(buf, t.start(1), t.end(1));
        if (limit === undefined) return answer(next, cursor, this.quiet(buf, ntokens, 'ERROR'));
        if (limit < 8)
          return answer(
            next,
            cursor,
            this.quiet(buf, ntokens, 'MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m'),
          );
        if (limit > 1_000_000_000) {
          return answer(
            next,
            cursor,
            this.quiet(buf, ntokens, 'MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes'),
          );
        }
        return this.admin(name, buf, next, ntokens, cursor, true);
      }
      case 'lru':
        return this.lru(buf, next, ntokens, cursor);
      case 'lru_crawler':
        return this.lruCrawler(buf, next, ntokens, cursor);
      case 'watch':
        return this.admin(name, buf, next, ntokens, cursor, true);
      case 'extstore':
        return this.extstore(buf, next, ntokens, cursor);
      case 'refresh_certs':
        // What a memcached built with TLS but started without it answers; the proxy has no certificates.
        return answer(next, cursor, 'Error TLS not enabled');
      default: {
        // An HTTP request line makes memcached hang up without a word, unless its first letter
        // already chose a family of commands (process_command_ascii answers those ERROR).
        if (!'gsacidt'.includes(name.charAt(0)) && startsWith(buf, t.start(ntokens - 2), 'HTTP/')) {
          cursor.end = next;
          return { kind: 'answer', reply: undefined, close: true, evict: undefined };
        }
        return answer(next, cursor, 'ERROR');
      }
    }
  }

  private lru(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    if (ntokens < 3) return answer(next, cursor, 'ERROR');
    const quiet = (reply: string): ServerSideFrame => answer(next, cursor, this.quiet(buf, ntokens, reply));
    if (t.is(buf, 1, 'tune') && ntokens >= 7) {
      const hot = cSafeStrtoul(buf, t.start(2), t.end(2));
      const warm = cSafeStrtoul(buf, t.start(3), t.end(3));
      if (
        hot === undefined ||
        warm === undefined ||
        !cSafeStrtodOk(buf, t.start(4), t.end(4)) ||
        !cSafeStrtodOk(buf, t.start(5), t.end(5))
      ) {
        return quiet('ERROR');
      }
      if ((hot + warm) >>> 0 > 80) return quiet('ERROR hot and warm pcts must not exceed 80');
      const hotFactor = Number(buf.toString('latin1', t.start(4), t.end(4)));
      const factor = Number(buf.toString('latin1', t.start(5), t.end(5)));
      if (factor <= 0 || hotFactor <= 0) return quiet('ERROR hot/warm age factors must be greater than 0');
      return this.admin('lru', buf, next, ntokens, cursor, true);
    }
    if (t.is(buf, 1, 'mode') && ntokens >= 4) {
      if (t.is(buf, 2, 'flat') || t.is(buf, 2, 'segmented'))
        return this.admin('lru', buf, next, ntokens, cursor, true);
      return quiet('ERROR');
    }
    if (t.is(buf, 1, 'temp_ttl') && ntokens >= 4) {
      if (cSafeStrtol(buf, t.start(2), t.end(2)) === undefined) return quiet('ERROR');
      return this.admin('lru', buf, next, ntokens, cursor, true);
    }
    return quiet('ERROR');
  }

  private lruCrawler(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    const sub = (text: string): boolean => ntokens > 2 && t.is(buf, 1, text);
    if (ntokens === 4 && (sub('crawl') || sub('metadump')))
      return this.admin('lru_crawler', buf, next, ntokens, cursor, false);
    if (ntokens === 4 && (sub('tocrawl') || sub('sleep'))) {
      const n = cSafeStrtoul(buf, t.start(2), t.end(2));
      if (n === undefined) return answer(next, cursor, FORMAT);
      if (sub('sleep') && n > 1_000_000)
        return answer(next, cursor, 'CLIENT_ERROR sleep must be one second or less');
      return this.admin('lru_crawler', buf, next, ntokens, cursor, false);
    }
    if (ntokens === 3 && (sub('enable') || sub('disable')))
      return this.admin('lru_crawler', buf, next, ntokens, cursor, false);
    return answer(next, cursor, 'ERROR');
  }

  private extstore(buf: Buffer, next: number, ntokens: number, cursor: ParseCursor): ServerSideFrame {
    const t = this.t;
    if (ntokens < 3) return answer(next, cursor, 'ERROR');
    let ok = ntokens >= 4;
    if (ok) {
      const arg = (i: number): boolean => cSafeStrtoul(buf, t.start(i), t.end(i)) !== undefined;
      if (t.is(buf, 1, 'free_memchunks') && ntokens > 4) {
        const clsid = cSafeStrtoul(buf, t.start(2), t.end(2));
        ok = clsid !== undefined && arg(3) && clsid < 64;
      } else if (t.is(buf, 1, 'max_frag')) {
        ok = cSafeStrtodOk(buf, t.start(2), t.end(2));
      } else {
        const numeric = [
          'item_size',
          'item_age',
          'low_ttl',
          'recache_rate',
          'compact_under',
          'drop_under',
          'max_sleep',
          'drop_unread',
        ];
        ok = numeric.some((w) => t.is(buf, 1, w)) && arg(2);
      }
    }
    if (!ok) return answer(next, cursor, this.quiet(buf, ntokens, 'ERROR'));
    return this.admin('extstore', buf, next, ntokens, cursor, true);
  }

  private admin(
    name: string,
    buf: Buffer,
    next: number,
    ntokens: number,
    cursor: ParseCursor,
    honoursNoreply: boolean,
  ): ServerSideFrame {
    cursor.end = next;
    const noreply = honoursNoreply && this.t.is(buf, ntokens - 2, 'noreply');
    return { kind: 'admin', name, args: this.t.strings(buf, 1).slice(0, ntokens - 2), noreply };
  }

  /** `reply`, unless the command's last word is noreply (set_noreply_maybe), which silences it. */
  private quiet(buf: Buffer, ntokens: number, reply: string): string | undefined {
    return this.t.is(buf, ntokens - 2, 'noreply') ? undefined : reply;
  }
}

/**
 * memcached's preparse of meta flags (proto_text.c, _meta_flag_preparse): the
 * error it reports, or undefined. Flags are judged by their first byte, the
 * same for every meta command.
 */
function preparse(buf: Buffer, t: LineTokens, from: number, ntokens: number): string | undefined {
  const seen = new Uint8Array(128);
  let error: string | undefined;
  let failed = false;
  for (let i = from; i < ntokens - 1; i++) {
    const s = t.start(i);
    const e = t.end(i);
    const o = buf[s]!;
    if (o >= 127 || seen[o] !== 0) return 'CLIENT_ERROR duplicate flag';
    seen[o] = 1;
    switch (String.fromCharCode(o)) {
      case 'b':
        if (base64Decode(buf.subarray(t.start(1), t.end(1))) === undefined) {
          error = 'CLIENT_ERROR error decoding key';
          failed = true;
        }
        break;
      case 'N':
      case 'T':
      case 'R':
        if (cSafeStrtol(buf, s + 1, e) === undefined) {
          error = 'CLIENT_ERROR bad token in command line format';
          failed = true;
        }
        break;
      case 'F':
        if (cSafeStrtoul(buf, s + 1, e) === undefined) failed = true;
        break;
      case 'C':
        if (cSafeStrtoull(buf, s + 1, e) === undefined) {
          error = 'CLIENT_ERROR bad token in command line format';
          failed = true;
        }
        break;
      case 'M':
        if (e - s !== 2) {
          error = 'CLIENT_ERROR incorrect length for M token';
          failed = true;
        }
        break;
      case 'J':
        if (cSafeStrtoull(buf, s + 1, e) === undefined) {
          error = 'CLIENT_ERROR invalid numeric initial value';
          failed = true;
        }
        break;
      case 'D':
        if (cSafeStrtoull(buf, s + 1, e) === undefined) {
          error = 'CLIENT_ERROR invalid numeric delta value';
          failed = true;
        }
        break;
      case 'l':
      case 'O':
      case 'P':
      case 'L':
      case 'k':
      case 's':
      case 't':
      case 'c':
      case 'f':
      case 'v':
      case 'h':
      case 'u':
      case 'q':
      case 'I':
        break;
      default:
        return 'CLIENT_ERROR invalid flag';
    }
  }
  return failed ? (error ?? FORMAT) : undefined;
}

/** Splits like memcached: on spaces only, with up to 23 words kept apart (the rest stays in `t` for multi-gets). */
function split(t: LineTokens, buf: Buffer, start: number, eol: number): number {
  return t.split(buf, start, eol);
}

/** Whether a flag word (from word `from` on) starts with byte `letter`. */
function hasFlag(buf: Buffer, t: LineTokens, from: number, ntokens: number, letter: number): boolean {
  for (let i = from; i < ntokens - 1; i++) if (buf[t.start(i)] === letter) return true;
  return false;
}

/** The base64 alphabet's values; 0x80 for bytes memcached's decoder skips. '=' counts as 0. */
const BASE64 = (() => {
  const table = new Uint8Array(256).fill(0x80);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  table[0x3d] = 0;
  return table;
})();

/**
 * memcached's base64 decoder (base64.c): bytes outside the alphabet are
 * skipped, the rest must come in fours, and decoding stops after the first
 * padded block. undefined where it fails (it returns 0).
 */
export function base64Decode(src: Uint8Array): Buffer | undefined {
  let count = 0;
  for (const c of src) if (BASE64[c] !== 0x80) count++;
  if (count === 0 || count % 4 !== 0) return undefined;
  const out = Buffer.allocUnsafe((count / 4) * 3);
  const block = [0, 0, 0, 0];
  let pos = 0;
  let n = 0;
  let pad = 0;
  for (const c of src) {
    const v = BASE64[c]!;
    if (v === 0x80) continue;
    if (c === 0x3d) pad++;
    block[n++] = v;
    if (n === 4) {
      out[pos++] = ((block[0]! << 2) | (block[1]! >> 4)) & 0xff;
      out[pos++] = ((block[1]! << 4) | (block[2]! >> 2)) & 0xff;
      out[pos++] = ((block[2]! << 6) | block[3]!) & 0xff;
      n = 0;
      if (pad > 0) {
        if (pad > 2) return undefined;
        pos -= pad;
        break;
      }
    }
  }
  return pos === 0 ? undefined : out.subarray(0, pos);
}

function startsWith(buf: Buffer, at: number, text: string): boolean {
  if (at + text.length > buf.length) return false;
  for (let k = 0; k < text.length; k++) if (buf[at + k] !== text.charCodeAt(k)) return false;
  return true;
}

function answer(next: number, cursor: ParseCursor, reply: string | undefined): ServerSideFrame {
  cursor.end = next;
  return { kind: 'answer', reply, close: false, evict: undefined };
}

function request(next: number, cursor: ParseCursor, req: AsciiRequest): ServerSideFrame {
  cursor.end = next;
  return { kind: 'request', request: req };
}
