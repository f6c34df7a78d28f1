/**
 * The error hierarchy. Every error memshift raises carries a stable `code`
 * (MEMSHIFT_ERR_*) that callers and scripts can match on; the message is one
 * line a user can act on.
 *
 * Replies the server sent (ERROR, CLIENT_ERROR, SERVER_ERROR) are not errors
 * here: they are response values. ProtocolError means the bytes themselves
 * could not be framed, and is fatal for that connection or flow only.
 */
export class MemshiftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** How many input bytes a protocol error quotes, escaped, around its offset. */
const EXCERPT_BYTES = 32;

export class ProtocolError extends MemshiftError {
  /** Offset of the offending byte in the stream (the decoder makes it absolute). */
  offset: number;
  /** A short escaped excerpt of the input starting at the offending frame. */
  readonly excerpt: string;
  readonly reason: string;
  constructor(reason: string, offset: number, excerpt: string) {
    super('MEMSHIFT_ERR_PROTOCOL', `${reason} at byte ${offset}: "${excerpt}"`);
    this.reason = reason;
    this.offset = offset;
    this.excerpt = excerpt;
  }

  /** Moves the offset by `base` bytes (a decoder knows where its buffer began in the stream). */
  rebase(base: number): this {
    this.offset += base;
    this.message = `${this.reason} at byte ${this.offset}: "${this.excerpt}"`;
    return this;
  }
}

/** Builds a ProtocolError for `buf` at `at`, quoting the bytes from `from` (the frame start). */
export function protocolError(reason: string, buf: Uint8Array, at: number, from = at): ProtocolError {
  return new ProtocolError(reason, at, escapeBytes(buf.subarray(from, from + EXCERPT_BYTES)));
}

/** Printable ASCII stays as is; everything else becomes \r, \n, \t or \xNN. */
export function escapeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x0d) out += '\\r';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}
