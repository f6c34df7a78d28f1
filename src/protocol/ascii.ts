/**
 * The ASCII side of memcached: text and meta commands share one connection
 * (protocol.txt, "Meta Commands"), so one request parser and one response
 * parser read both, and the encoders write both.
 *
 * Both parsers follow the FrameParser contract: a line is read once its \n has
 * arrived (a \r before it is optional: memcached accepts a bare \n from
 * clients, and metadump lines end in one), a data block once all its bytes and
 * the \r\n after them have. Keys and values are views of the input.
 */
import type { AsciiRequest, AsciiResponse, MetaCode, TextResponse } from './ascii-frames.js';
import type { FrameParser, ParseCursor } from './decoder.js';
import { contentEnd, LineTokens, lineEnd } from './lines.js';
import { DEFAULT_LIMITS, type Limits } from './limits.js';
import { encodeMetaRequest, encodeMetaResponse, parseMetaRequest, parseMetaResponse } from './meta.js';
import { encodeMetadumpLine, readMetadump } from './metadump.js';
import { readU64 } from './numbers.js';
import {
  encodeStatusLine,
  encodeTextRequest,
  numberLineEnd,
  otherRequest,
  parseTextRequest,
  parseValueResponse,
  STATUS_RESPONSES,
} from './text.js';

export {
  decodeBase64Key,
  encodeMeta,
  flagTokenNumber,
  hasMetaFlag,
  keyNeedsBase64,
  META_FLAGS,
  metaFlagNumber,
  metaFlagProblem,
  metaToken,
} from './meta.js';
export { encodeMetadumpLine, parseMetadumpLine, uriDecode, uriEncode } from './metadump.js';
export { encodeLine, encodeRetrieval, encodeStorage } from './text.js';

const SPACE = 0x20;
const LOWER_M = 0x6d; // m

export class AsciiRequestParser implements FrameParser<AsciiRequest> {
  readonly limits: Limits;
  private readonly tokens = new LineTokens();

  constructor(limits: Limits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): AsciiRequest | undefined {
    const lf = lineEnd(buf, start, this.limits, cursor);
    if (lf < 0) return undefined;
    const next = lf + 1;
    const t = this.tokens;
    if (t.split(buf, start, contentEnd(buf, start, lf)) === 0) {
      // An empty line: memcached answers ERROR; kept so the reply pairs with something.
      cursor.end = next;
      return otherRequest(buf, t);
    }
    if (t.length(0) === 2 && buf[t.start(0)] === LOWER_M) {
      const meta = parseMetaRequest(buf, start, next, t, this.limits, cursor);
      if (meta !== null) return meta;
      cursor.end = next;
      return otherRequest(buf, t);
    }
    return parseTextRequest(buf, start, next, t, this.limits, cursor);
  }
}

/**
 * Reads server replies without knowing which request they answer: every reply
 * line says what it is (VALUE, END, STORED, a number, a meta code...).
 */
export class AsciiResponseParser implements FrameParser<AsciiResponse> {
  readonly limits: Limits;
  private readonly tokens = new LineTokens();

  constructor(limits: Limits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): AsciiResponse | undefined {
    const lf = lineEnd(buf, start, this.limits, cursor);
    if (lf < 0) return undefined;
    const next = lf + 1;
    const eol = contentEnd(buf, start, lf);
    const len = eol - start;
    const c1 = buf[start + 1];
    let meta: MetaCode | undefined;
    switch (buf[start]) {
      case 0x56: // V
        if (word(buf, start, eol, 'VALUE', true)) {
          this.tokens.split(buf, start, eol);
          return parseValueResponse(buf, start, next, this.tokens, this.limits, cursor);
        }
        if (c1 === 0x41) meta = 'VA';
        else if (word(buf, start, eol, 'VERSION', true)) {
          cursor.end = next;
          return { kind: 'version', version: buf.toString('latin1', start + 8, eol) };
        }
        break;
      case 0x45: // E
        if (len === 3 && c1 === 0x4e && buf[start + 2] === 0x44) return line(next, cursor, END); // END
        if (c1 === 0x4e) meta = 'EN';
        else if (len === 6 && word(buf, start, eol, 'EXISTS', false)) return status('EXISTS', next, cursor);
        else if (c1 === 0x58) meta = 'EX';
        else if (word(buf, start, eol, 'ERROR', true)) return error('ERROR', buf, start, eol, next, cursor);
        break;
      case 0x53: // S
        if (len === 6 && word(buf, start, eol, 'STORED', false)) return status('STORED', next, cursor);
        if (word(buf, start, eol, 'STAT', true)) return stat(buf, start, eol, next, cursor);
        if (word(buf, start, eol, 'SERVER_ERROR', true)) {
          return error('SERVER_ERROR', buf, start, eol, next, cursor);
        }
        break;
      case 0x4e: // N
        if (len === 10 && word(buf, start, eol, 'NOT_STORED', false))
          return status('NOT_STORED', next, cursor);
        if (len === 9 && word(buf, start, eol, 'NOT_FOUND', false)) return status('NOT_FOUND', next, cursor);
        if (c1 === 0x46) meta = 'NF';
        else if (c1 === 0x53) meta = 'NS';
        break;
      case 0x44: // D
        if (len === 7 && word(buf, start, eol, 'DELETED', false)) return status('DELETED', next, cursor);
        break;
      case 0x54: // T
        if (len === 7 && word(buf, start, eol, 'TOUCHED', false)) return status('TOUCHED', next, cursor);
        break;
      case 0x4f: // O
        if (len === 2 && c1 === 0x4b) return status('OK', next, cursor);
        break;
      case 0x52: // R
        if (len === 5 && word(buf, start, eol, 'RESET', false)) return status('RESET', next, cursor);
        break;
      case 0x43: // C
        if (word(buf, start, eol, 'CLIENT_ERROR', true)) {
          return error('CLIENT_ERROR', buf, start, eol, next, cursor);
        }
        break;
      case 0x48: // H
        if (c1 === 0x44) meta = 'HD';
        break;
      case 0x4d: // M
        if (c1 === 0x4e) meta = 'MN';
        else if (c1 === 0x45) meta = 'ME';
        break;
      case 0x6b: // k
        if (word(buf, start, eol, 'key=', false)) {
          const entry = readMetadump(buf, start, eol);
          if (entry !== undefined) return line(next, cursor, { kind: 'metadump', entry });
        }
        break;
      default: {
        // incr/decr results: digits, maybe space-padded (protocol.txt, "Increment/Decrement").
        const digitsEnd = numberLineEnd(buf, start, eol);
        if (digitsEnd > 0) {
          const value = readU64(buf, start, digitsEnd);
          if (value !== undefined) return line(next, cursor, { kind: 'number', value });
        }
      }
    }
    // A meta code is two letters alone or followed by a space (protocol.txt, "Meta Commands").
    if (meta !== undefined && (len === 2 || buf[start + 2] === SPACE)) {
      this.tokens.split(buf, start, eol);
      return parseMetaResponse(meta, buf, start, next, this.tokens, this.limits, cursor);
    }
    cursor.end = next;
    return { kind: 'line', line: buf.toString('latin1', start, eol) };
  }
}

const END: TextResponse = Object.freeze({ kind: 'end' });

/**
 * Whether the line `buf[start, eol)` starts with `text`; with `open`, the word
 * may also be followed by a space and more (a message, arguments).
 */
function word(buf: Buffer, start: number, eol: number, text: string, open: boolean): boolean {
  const n = text.length;
  if (eol - start < n) return false;
  for (let k = 0; k < n; k++) if (buf[start + k] !== text.charCodeAt(k)) return false;
  return !open || eol - start === n || buf[start + n] === SPACE;
}

function line(next: number, cursor: ParseCursor, frame: AsciiResponse): AsciiResponse {
  cursor.end = next;
  return frame;
}

function status(name: keyof typeof STATUS_RESPONSES, next: number, cursor: ParseCursor): AsciiResponse {
  cursor.end = next;
  return STATUS_RESPONSES[name];
}

/** ERROR, CLIENT_ERROR, SERVER_ERROR with their optional message (protocol.txt, "Error strings"). */
function error(
  kind: 'ERROR' | 'CLIENT_ERROR' | 'SERVER_ERROR',
  buf: Buffer,
  start: number,
  eol: number,
  next: number,
  cursor: ParseCursor,
): AsciiResponse {
  cursor.end = next;
  const from = start + kind.length + 1;
  return { kind: 'error', error: kind, message: from < eol ? buf.toString('latin1', from, eol) : '' };
}

/** `STAT <name> <value>`: the value is the rest of the line and may hold spaces. */
function stat(buf: Buffer, start: number, eol: number, next: number, cursor: ParseCursor): AsciiResponse {
  cursor.end = next;
  const from = start + 5;
  let sp = buf.indexOf(SPACE, from);
  if (sp < 0 || sp > eol) sp = eol;
  return {
    kind: 'stat',
    name: buf.toString('latin1', from, sp),
    value: sp < eol ? buf.toString('latin1', sp + 1, eol) : '',
  };
}

/** A request as parts: the header line, then (for storage commands) the value itself and \r\n. */
export function encodeAsciiRequest(req: AsciiRequest): Buffer[] {
  return req.kind === 'meta' ? encodeMetaRequest(req) : encodeTextRequest(req);
}

const END_LINE = Buffer.from('END\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

/** A reply as parts: the header line, then (for VALUE and VA) the value itself and \r\n. */
export function encodeAsciiResponse(res: AsciiResponse): Buffer[] {
  switch (res.kind) {
    case 'value': {
      const suffix =
        ' ' + res.flags + ' ' + res.value.length + (res.cas === undefined ? '' : ' ' + res.cas) + '\r\n';
      const head = Buffer.allocUnsafe(6 + res.key.length + suffix.length);
      head.write('VALUE ', 0, 'latin1');
      head.set(res.key, 6);
      head.write(suffix, 6 + res.key.length, 'latin1');
      return [head, res.value, CRLF];
    }
    case 'end':
      return [END_LINE];
    case 'status':
      return [encodeStatusLine(res.status)];
    case 'number':
      return [Buffer.from(res.value + '\r\n', 'latin1')];
    case 'stat':
      return [Buffer.from('STAT ' + res.name + ' ' + res.value + '\r\n', 'latin1')];
    case 'version':
      return [Buffer.from('VERSION ' + res.version + '\r\n', 'latin1')];
    case 'error':
      return [Buffer.from(res.error + (res.message === '' ? '' : ' ' + res.message) + '\r\n', 'latin1')];
    case 'metadump':
      return [encodeMetadumpLine(res.entry)];
    case 'line':
      return [Buffer.from(res.line + '\r\n', 'latin1')];
    case 'meta':
      return encodeMetaResponse(res);
  }
}
