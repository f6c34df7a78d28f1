/**
 * memcached's classic text commands and replies (protocol.txt, "Storage
 * commands" through "Other commands").
 *
 * What frames the stream and what does not: a storage command's line says how
 * many data bytes follow, so a storage line memshift cannot read completely
 * (missing or non-numeric fields, a key over 250 bytes) is a ProtocolError:
 * memcached itself answers CLIENT_ERROR without consuming the data block,
 * after which client and server disagree about where commands start. Every
 * other command is one line; when its arguments are invalid memcached answers
 * ERROR or CLIENT_ERROR and goes on, so memshift keeps the line as an 'other'
 * request with its words unchanged, to forward it and pair it with that reply.
 */
import type {
  OtherRequest,
  RetrievalCommand,
  StorageCommand,
  TextRequest,
  TextResponse,
  TextStatus,
} from './ascii-frames.js';
import type { ParseCursor } from './decoder.js';
import { protocolError } from './errors.js';
import { dataBlock, type LineTokens } from './lines.js';
import type { Limits } from './limits.js';
import { readI32, readLength, readU32, readU64 } from './numbers.js';

const CRLF = Buffer.from('\r\n', 'latin1');

/** The request kinds a text command word selects. */
const enum Cmd {
  Other,
  Get,
  Gets,
  Gat,
  Gats,
  Set,
  Add,
  Replace,
  Append,
  Prepend,
  Cas,
  Delete,
  Incr,
  Decr,
  Touch,
  FlushAll,
  Version,
  Verbosity,
  Stats,
  Quit,
}

/** Recognises a command word by length and bytes (command names are lower case: protocol.txt, "Commands"). */
function commandOf(buf: Uint8Array, s: number, len: number): Cmd {
  const c0 = buf[s];
  switch (len) {
    case 3:
      if (c0 === 0x67 && buf[s + 1] === 0x65 && buf[s + 2] === 0x74) return Cmd.Get; // get
      if (c0 === 0x73 && buf[s + 1] === 0x65 && buf[s + 2] === 0x74) return Cmd.Set; // set
      if (c0 === 0x67 && buf[s + 1] === 0x61 && buf[s + 2] === 0x74) return Cmd.Gat; // gat
      if (c0 === 0x61 && buf[s + 1] === 0x64 && buf[s + 2] === 0x64) return Cmd.Add; // add
      if (c0 === 0x63 && buf[s + 1] === 0x61 && buf[s + 2] === 0x73) return Cmd.Cas; // cas
      return Cmd.Other;
    case 4:
      if (wordIs(buf, s, 'gets')) return Cmd.Gets;
      if (wordIs(buf, s, 'gats')) return Cmd.Gats;
      if (wordIs(buf, s, 'incr')) return Cmd.Incr;
      if (wordIs(buf, s, 'decr')) return Cmd.Decr;
      if (wordIs(buf, s, 'quit')) return Cmd.Quit;
      return Cmd.Other;
    case 5:
      if (wordIs(buf, s, 'touch')) return Cmd.Touch;
      if (wordIs(buf, s, 'stats')) return Cmd.Stats;
      return Cmd.Other;
    case 6:
      if (wordIs(buf, s, 'delete')) return Cmd.Delete;
      if (wordIs(buf, s, 'append')) return Cmd.Append;
      return Cmd.Other;
    case 7:
      if (wordIs(buf, s, 'replace')) return Cmd.Replace;
      if (wordIs(buf, s, 'prepend')) return Cmd.Prepend;
      if (wordIs(buf, s, 'version')) return Cmd.Version;
      return Cmd.Other;
    case 9:
      return wordIs(buf, s, 'flush_all')
        ? Cmd.FlushAll
        : wordIs(buf, s, 'verbosity')
          ? Cmd.Verbosity
          : Cmd.Other;
    default:
      return Cmd.Other;
  }
}

function wordIs(buf: Uint8Array, s: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (buf[s + k] !== word.charCodeAt(k)) return false;
  return true;
}

const STORAGE: Partial<Record<Cmd, StorageCommand>> = {
  [Cmd.Set]: 'set',
  [Cmd.Add]: 'add',
  [Cmd.Replace]: 'replace',
  [Cmd.Append]: 'append',
  [Cmd.Prepend]: 'prepend',
  [Cmd.Cas]: 'cas',
};

const RETRIEVAL: Partial<Record<Cmd, RetrievalCommand>> = {
  [Cmd.Get]: 'get',
  [Cmd.Gets]: 'gets',
  [Cmd.Gat]: 'gat',
  [Cmd.Gats]: 'gats',
};

/** The line's words as an 'other' request: forwarded as is, answered by memcached as it sees fit. */
export function otherRequest(buf: Buffer, t: LineTokens): OtherRequest {
  return {
    kind: 'other',
    name: t.count > 0 ? buf.toString('latin1', t.start(0), t.end(0)) : '',
    args: t.strings(buf, 1),
  };
}

/**
 * Reads a text command from a tokenized line (at least one word) that ends
 * just before `next`; storage commands go on to their data block.
 */
export function parseTextRequest(
  buf: Buffer,
  start: number,
  next: number,
  t: LineTokens,
  limits: Limits,
  cursor: ParseCursor,
): TextRequest | undefined {
  const n = t.count;
  const cmd = commandOf(buf, t.start(0), t.length(0));
  switch (cmd) {
    case Cmd.Get:
    case Cmd.Gets:
    case Cmd.Gat:
    case Cmd.Gats: {
      const timed = cmd === Cmd.Gat || cmd === Cmd.Gats;
      const first = timed ? 2 : 1;
      let exptime: number | undefined;
      if (timed && n > 1) exptime = readI32(buf, t.start(1), t.end(1));
      if (n <= first || (timed && exptime === undefined)) break;
      const keys: Buffer[] = [];
      for (let i = first; i < n; i++) {
        if (t.length(i) > limits.maxKeyBytes) return otherAt(buf, next, t, cursor);
        keys.push(buf.subarray(t.start(i), t.end(i)));
      }
      cursor.end = next;
      return { kind: 'retrieval', command: RETRIEVAL[cmd]!, exptime, keys };
    }
    case Cmd.Set:
    case Cmd.Add:
    case Cmd.Replace:
    case Cmd.Append:
    case Cmd.Prepend:
    case Cmd.Cas:
      return storageRequest(cmd, buf, start, next, t, limits, cursor);
    case Cmd.Delete: {
      // `delete <key> [0] [noreply]`: the legacy hold time is accepted only as 0 (protocol.txt, "Deletion").
      if (n < 2 || n > 4 || t.length(1) > limits.maxKeyBytes) break;
      const noreply = t.is(buf, n - 1, 'noreply');
      const zero = n > 2 && t.is(buf, 2, '0');
      if (n === 3 && !zero && !noreply) break;
      if (n === 4 && !(zero && noreply)) break;
      cursor.end = next;
      return { kind: 'delete', key: buf.subarray(t.start(1), t.end(1)), noreply };
    }
    case Cmd.Incr:
    case Cmd.Decr: {
      if (n < 3 || n > 4 || t.length(1) > limits.maxKeyBytes) break;
      const delta = readU64(buf, t.start(2), t.end(2));
      if (delta === undefined) break;
      cursor.end = next;
      return {
        kind: 'arithmetic',
        command: cmd === Cmd.Incr ? 'incr' : 'decr',
        key: buf.subarray(t.start(1), t.end(1)),
        delta,
        noreply: n === 4 && t.is(buf, 3, 'noreply'),
      };
    }
    case Cmd.Touch: {
      if (n < 3 || n > 4 || t.length(1) > limits.maxKeyBytes) break;
      const exptime = readI32(buf, t.start(2), t.end(2));
      if (exptime === undefined) break;
      cursor.end = next;
      return {
        kind: 'touch',
        key: buf.subarray(t.start(1), t.end(1)),
        exptime,
        noreply: n === 4 && t.is(buf, 3, 'noreply'),
      };
    }
    case Cmd.FlushAll: {
      if (n > 3) break;
      const noreply = n > 1 && t.is(buf, n - 1, 'noreply');
      let delay: number | undefined;
      if (n === 3 || (n === 2 && !noreply)) {
        delay = readI32(buf, t.start(1), t.end(1));
        if (delay === undefined || (n === 3 && !noreply)) break;
      }
      cursor.end = next;
      return { kind: 'flush_all', delay, noreply };
    }
    case Cmd.Verbosity: {
      if (n < 2 || n > 3) break;
      const level = readU32(buf, t.start(1), t.end(1));
      if (level < 0) break;
      cursor.end = next;
      return { kind: 'verbosity', level, noreply: n === 3 && t.is(buf, 2, 'noreply') };
    }
    case Cmd.Version:
      if (n !== 1) break;
      cursor.end = next;
      return { kind: 'version' };
    case Cmd.Quit:
      if (n !== 1) break;
      cursor.end = next;
      return { kind: 'quit' };
    case Cmd.Stats:
      cursor.end = next;
      return { kind: 'stats', args: t.strings(buf, 1) };
    case Cmd.Other:
      break;
  }
  return otherAt(buf, next, t, cursor);
}

function otherAt(buf: Buffer, next: number, t: LineTokens, cursor: ParseCursor): OtherRequest {
  cursor.end = next;
  return otherRequest(buf, t);
}

/** `<command> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]` and its data block. */
function storageRequest(
  cmd: Cmd,
  buf: Buffer,
  start: number,
  next: number,
  t: LineTokens,
  limits: Limits,
  cursor: ParseCursor,
): TextRequest | undefined {
  const n = t.count;
  const isCas = cmd === Cmd.Cas;
  const fields = isCas ? 6 : 5;
  // memcached accepts one word after the fields and treats it as noreply only when it says so.
  if (n < fields || n > fields + 1) {
    throw protocolError(`storage command with ${n} words instead of ${fields}`, buf, start);
  }
  if (t.length(1) > limits.maxKeyBytes) {
    throw protocolError(`key longer than ${limits.maxKeyBytes} bytes`, buf, t.start(1), start);
  }
  const flags = readU32(buf, t.start(2), t.end(2));
  if (flags < 0) throw protocolError('client flags are not a 32-bit unsigned number', buf, t.start(2), start);
  const exptime = readI32(buf, t.start(3), t.end(3));
  if (exptime === undefined) throw protocolError('exptime is not a number', buf, t.start(3), start);
  const len = readLength(buf, t.start(4), t.end(4));
  if (len < 0) throw protocolError('data length is not a number', buf, t.start(4), start);
  let cas: bigint | undefined;
  if (isCas) {
    cas = readU64(buf, t.start(5), t.end(5));
    if (cas === undefined) throw protocolError('cas unique is not a 64-bit number', buf, t.start(5), start);
  }
  const value = dataBlock(buf, start, next, len, limits, cursor);
  if (value === undefined) return undefined;
  return {
    kind: 'storage',
    command: STORAGE[cmd]!,
    key: buf.subarray(t.start(1), t.end(1)),
    flags,
    exptime,
    cas,
    noreply: n > fields && t.is(buf, fields, 'noreply'),
    value,
  };
}

const STATUS_LINES: Record<TextStatus, Buffer> = {
  STORED: Buffer.from('STORED\r\n'),
  NOT_STORED: Buffer.from('NOT_STORED\r\n'),
  EXISTS: Buffer.from('EXISTS\r\n'),
  NOT_FOUND: Buffer.from('NOT_FOUND\r\n'),
  DELETED: Buffer.from('DELETED\r\n'),
  TOUCHED: Buffer.from('TOUCHED\r\n'),
  OK: Buffer.from('OK\r\n'),
  RESET: Buffer.from('RESET\r\n'),
};

/** One shared, frozen frame per status word: replies carry no data, so nothing needs allocating. */
export const STATUS_RESPONSES: Readonly<Record<TextStatus, TextResponse>> = Object.freeze({
  STORED: Object.freeze({ kind: 'status', status: 'STORED' }),
  NOT_STORED: Object.freeze({ kind: 'status', status: 'NOT_STORED' }),
  EXISTS: Object.freeze({ kind: 'status', status: 'EXISTS' }),
  NOT_FOUND: Object.freeze({ kind: 'status', status: 'NOT_FOUND' }),
  DELETED: Object.freeze({ kind: 'status', status: 'DELETED' }),
  TOUCHED: Object.freeze({ kind: 'status', status: 'TOUCHED' }),
  OK: Object.freeze({ kind: 'status', status: 'OK' }),
  RESET: Object.freeze({ kind: 'status', status: 'RESET' }),
});

/**
 * `VALUE <key> <flags> <bytes> [<cas unique>]` and its data block
 * (protocol.txt, "Retrieval command"). Every field matters for framing or for
 * the typed frame, so anything malformed is a ProtocolError.
 */
export function parseValueResponse(
  buf: Buffer,
  start: number,
  next: number,
  t: LineTokens,
  limits: Limits,
  cursor: ParseCursor,
): TextResponse | undefined {
  const n = t.count;
  if (n < 4 || n > 5) throw protocolError(`VALUE line with ${n} words`, buf, start);
  if (t.length(1) > limits.maxKeyBytes) {
    throw protocolError(`key longer than ${limits.maxKeyBytes} bytes`, buf, t.start(1), start);
  }
  const flags = readU32(buf, t.start(2), t.end(2));
  if (flags < 0) throw protocolError('client flags are not a 32-bit unsigned number', buf, t.start(2), start);
  const len = readLength(buf, t.start(3), t.end(3));
  if (len < 0) throw protocolError('data length is not a number', buf, t.start(3), start);
  let cas: bigint | undefined;
  if (n === 5) {
    cas = readU64(buf, t.start(4), t.end(4));
    if (cas === undefined) throw protocolError('cas unique is not a 64-bit number', buf, t.start(4), start);
  }
  const value = dataBlock(buf, start, next, len, limits, cursor);
  if (value === undefined) return undefined;
  return { kind: 'value', key: buf.subarray(t.start(1), t.end(1)), flags, cas, value };
}

/** Whether `buf[from, to)` is an incr/decr result: digits, maybe space-padded (protocol.txt, "Increment/Decrement"). */
export function numberLineEnd(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  while (i < to && buf[i]! >= 0x30 && buf[i]! <= 0x39) i++;
  if (i === from || i - from > 20) return -1;
  for (let k = i; k < to; k++) if (buf[k] !== 0x20) return -1;
  return i;
}

// ---- encoders ----

/** A line `<prefix><key><suffix>` with the key's bytes copied in (the key is never made a string). */
function keyLine(prefix: string, key: Uint8Array, suffix: string): Buffer {
  const line = Buffer.allocUnsafe(prefix.length + key.length + suffix.length);
  line.write(prefix, 0, 'latin1');
  line.set(key, prefix.length);
  line.write(suffix, prefix.length + key.length, 'latin1');
  return line;
}

/**
 * A storage command as parts: the header line, the value itself (not copied)
 * and \r\n, for a corked socket write.
 */
export function encodeStorage(
  command: StorageCommand,
  key: Buffer,
  value: Buffer,
  flags: number,
  exptime: number,
  options?: { cas?: bigint; noreply?: boolean },
): Buffer[] {
  let suffix = ' ' + flags + ' ' + exptime + ' ' + value.length;
  if (command === 'cas') suffix += ' ' + (options?.cas ?? 0n);
  if (options?.noreply) suffix += ' noreply';
  return [keyLine(command + ' ', key, suffix + '\r\n'), value, CRLF];
}

/** `get|gets <key>*` or `gat|gats <exptime> <key>*` as one line. */
export function encodeRetrieval(
  command: RetrievalCommand,
  keys: readonly Buffer[],
  exptime?: number,
): Buffer[] {
  const prefix = command === 'gat' || command === 'gats' ? command + ' ' + (exptime ?? 0) : command;
  let size = prefix.length + 2;
  for (const key of keys) size += 1 + key.length;
  const line = Buffer.allocUnsafe(size);
  let at = line.write(prefix, 0, 'latin1');
  for (const key of keys) {
    line[at++] = 0x20;
    line.set(key, at);
    at += key.length;
  }
  line[at++] = 0x0d;
  line[at] = 0x0a;
  return [line];
}

/**
 * A single-line command from its words, joined by spaces. Strings are written
 * one byte per character (latin1, the way the parsers read them back); pass
 * keys as Buffers so their bytes go out unchanged.
 */
export function encodeLine(words: ReadonlyArray<string | Buffer>): Buffer[] {
  let size = 2;
  for (let i = 0; i < words.length; i++) size += (i > 0 ? 1 : 0) + words[i]!.length;
  const line = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < words.length; i++) {
    if (i > 0) line[at++] = 0x20;
    const w = words[i]!;
    if (typeof w === 'string') at += line.write(w, at, 'latin1');
    else {
      line.set(w, at);
      at += w.length;
    }
  }
  line[at++] = 0x0d;
  line[at] = 0x0a;
  return [line];
}

export function encodeTextRequest(req: TextRequest): Buffer[] {
  switch (req.kind) {
    case 'storage': {
      const options: { cas?: bigint; noreply?: boolean } = { noreply: req.noreply };
      if (req.cas !== undefined) options.cas = req.cas;
      return encodeStorage(req.command, req.key, req.value, req.flags, req.exptime, options);
    }
    case 'retrieval':
      return encodeRetrieval(req.command, req.keys, req.exptime);
    case 'delete':
      return [keyLine('delete ', req.key, req.noreply ? ' noreply\r\n' : '\r\n')];
    case 'arithmetic':
      return [keyLine(req.command + ' ', req.key, ' ' + req.delta + (req.noreply ? ' noreply\r\n' : '\r\n'))];
    case 'touch':
      return [keyLine('touch ', req.key, ' ' + req.exptime + (req.noreply ? ' noreply\r\n' : '\r\n'))];
    case 'flush_all': {
      const words = ['flush_all'];
      if (req.delay !== undefined) words.push(String(req.delay));
      if (req.noreply) words.push('noreply');
      return encodeLine(words);
    }
    case 'version':
      return encodeLine(['version']);
    case 'verbosity':
      return encodeLine(
        req.noreply ? ['verbosity', String(req.level), 'noreply'] : ['verbosity', String(req.level)],
      );
    case 'stats':
      return encodeLine(['stats', ...req.args]);
    case 'quit':
      return encodeLine(['quit']);
    case 'other':
      return encodeLine([req.name, ...req.args]);
  }
}

export function encodeStatusLine(status: TextStatus): Buffer {
  return STATUS_LINES[status];
}
