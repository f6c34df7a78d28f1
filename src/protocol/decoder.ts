import { ProtocolError, protocolError } from './errors.js';
import type { Limits } from './limits.js';

/**
 * Where a parse ended, or how much it still needs. Parsers write into one
 * cursor instead of allocating a result object per frame.
 */
export interface ParseCursor {
  /** After a frame: the offset just past it. */
  end: number;
  /**
   * After "need more": the total bytes (from the frame start) the frame needs,
   * or 0 when the parser is waiting for the end of a line.
   */
  need: number;
  /**
   * After a frame: bytes that follow `end` and belong to it but are not
   * handed out, a data block over the value limit skipped by its declared
   * length (the decoder drops them as they arrive, never buffers or scans them).
   */
  skip?: number;
}

/**
 * A pure, incremental parser: bytes in, one frame out, or `undefined` when the
 * input holds only part of a frame (a normal result, not an error). Malformed
 * input throws ProtocolError with the offset inside `buf`.
 */
export interface FrameParser<F> {
  readonly limits: Limits;
  parse(buf: Buffer, start: number, cursor: ParseCursor): F | undefined;
}

/**
 * Turns a stream of chunks into frames with any chunking giving the same frames.
 *
 * When nothing is buffered, a chunk is parsed in place and frames hold
 * `subarray` views of it. A frame that straddles chunks is collected piece by
 * piece (only as many bytes as it needs) and concatenated exactly once, so a
 * 1 MiB value arriving in 64 KiB chunks costs one copy, not sixteen.
 *
 * A ProtocolError poisons the decoder: the stream is out of sync and the
 * caller must drop the connection or resynchronise with `reset()`.
 */
export class FrameDecoder<F> {
  private readonly parser: FrameParser<F>;
  private readonly cursor: ParseCursor = { end: 0, need: 0, skip: 0 };
  /** Bytes of a skipped data block still to arrive and be dropped. */
  private skipping = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private need = 0;
  /** Stream offset of the first byte that is not yet part of an emitted frame. */
  private consumed = 0;
  private failure: ProtocolError | undefined;

  constructor(parser: FrameParser<F>) {
    this.parser = parser;
  }

  /** Bytes held for a frame that is not complete yet. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** Total bytes of the stream turned into frames so far. */
  get offset(): number {
    return this.consumed;
  }

  push(chunk: Buffer, onFrame: (frame: F) => void): void {
    if (this.failure) throw this.failure;
    try {
      this.feed(chunk, onFrame);
    } catch (err) {
      if (err instanceof ProtocolError) this.failure = err;
      throw err;
    }
  }

  /** Bytes of a skipped over-limit data block still expected. */
  get skippingBytes(): number {
    return this.skipping;
  }

  /** Forgets buffered bytes and any failure; the next byte pushed starts a frame. */
  reset(): void {
    this.skipping = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.need = 0;
    this.failure = undefined;
  }

  private feed(chunk: Buffer, onFrame: (frame: F) => void): void {
    let pos = 0;
    for (;;) {
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, chunk.length - pos);
        this.skipping -= n;
        this.consumed += n;
        pos += n;
      }
      if (pos >= chunk.length || this.pendingBytes === 0) break;
      let take: number;
      let complete: boolean;
      if (this.need > 0) {
        take = Math.min(this.need - this.pendingBytes, chunk.length - pos);
        complete = this.pendingBytes + take >= this.need;
      } else {
        const lf = chunk.indexOf(0x0a, pos);
        take = lf < 0 ? chunk.length - pos : lf + 1 - pos;
        complete = lf >= 0;
      }
      this.pending.push(chunk.subarray(pos, pos + take));
      this.pendingBytes += take;
      pos += take;
      if (!complete) {
        this.checkLineBound();
        return;
      }
      const joined = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.scan(joined, onFrame);
    }
    if (pos < chunk.length && this.skipping === 0)
      this.scan(pos === 0 ? chunk : chunk.subarray(pos), onFrame);
  }

  /** Parses every whole frame in `buf` in place; keeps the incomplete tail. */
  private scan(buf: Buffer, onFrame: (frame: F) => void): void {
    const cursor = this.cursor;
    let start = 0;
    while (start < buf.length) {
      let frame: F | undefined;
      cursor.skip = 0;
      try {
        frame = this.parser.parse(buf, start, cursor);
      } catch (err) {
        if (err instanceof ProtocolError) throw err.rebase(this.consumed - start);
        throw err;
      }
      if (frame === undefined) {
        if (cursor.need > 0 && cursor.need <= buf.length - start) {
          throw new Error(`parser asked for ${cursor.need} bytes but had ${buf.length - start}`);
        }
        this.pending.push(start === 0 ? buf : buf.subarray(start));
        this.pendingBytes = buf.length - start;
        this.need = cursor.need;
        this.checkLineBound();
        return;
      }
      this.consumed += cursor.end - start;
      start = cursor.end;
      const skip = cursor.skip ?? 0;
      onFrame(frame);
      if (skip > 0) {
        // The frame's over-limit data block: dropped by its length, whatever its bytes look like.
        const here = Math.min(skip, buf.length - start);
        this.consumed += here;
        start += here;
        this.skipping = skip - here;
        if (this.skipping > 0) return;
      }
    }
  }

  private checkLineBound(): void {
    const max = this.parser.limits.maxLineBytes;
    if (this.need === 0 && this.pendingBytes > max) {
      const head = this.pending[0] ?? Buffer.alloc(0);
      throw protocolError(`line longer than ${max} bytes`, head, 0).rebase(this.consumed);
    }
  }
}
