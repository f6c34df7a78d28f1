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
  /**
   * Input: the decoder has no room to hold this frame's data block. A parser
   * that skips over-limit blocks (`limits.skipOversizeValues`) skips this
   * one the same way, by its declared length, once the frame's head is whole.
   */
  shed?: boolean;
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
 * Room for the bytes a decoder holds across chunks (a frame that has not
 * fully arrived), shared with other holders; ops/budget.ts's ByteBudget is one.
 */
export interface HeldBytesBudget {
  take(bytes: number): boolean;
  give(bytes: number): void;
}

/** The reason of the ProtocolError a decoder throws when its budget has no room for a line or header. */
export const NO_ROOM_FOR_HEAD = 'no room in the byte budget to hold an incomplete line or header';

/**
 * Turns a stream of chunks into frames with any chunking giving the same frames.
 *
 * When nothing is buffered, a chunk is parsed in place and frames hold
 * `subarray` views of it. A frame that straddles chunks is copied once into
 * a buffer of the length it declared (a line is collected in copied pieces
 * and concatenated once), so a 1 MiB value arriving in 64 KiB chunks costs
 * one copy, not sixteen, and no chunk is kept alive by a view.
 *
 * With a budget, the bytes held for an incomplete frame are taken from it
 * first. When it has no room for a frame's data block, the frame is handed
 * out with its block skipped by the declared length (`shedFrame` says so
 * during the call), as an over-limit block is; a line or header it has no
 * room for is a ProtocolError.
 *
 * A ProtocolError poisons the decoder: the stream is out of sync and the
 * caller must drop the connection or resynchronise with `reset()`.
 */
export class FrameDecoder<F> {
  private readonly parser: FrameParser<F>;
  private readonly budget: HeldBytesBudget | undefined;
  private readonly cursor: ParseCursor = { end: 0, need: 0, skip: 0, shed: false };
  /** Bytes of a skipped data block still to arrive and be dropped. */
  private skipping = 0;
  /** A line's pieces (need 0), or the one buffer of `need` bytes a declared frame is copied into. */
  private pending: Buffer[] = [];
  private frame: Buffer | undefined;
  private pendingBytes = 0;
  private need = 0;
  /** Bytes taken from the budget for what is buffered. */
  private held = 0;
  /** Stream offset of the first byte that is not yet part of an emitted frame. */
  private consumed = 0;
  private failure: ProtocolError | undefined;
  private shedding = false;
  private lost = false;
  /** Frames handed out with their data block skipped for want of budget. */
  sheds = 0;

  constructor(parser: FrameParser<F>, budget?: HeldBytesBudget) {
    this.parser = parser;
    this.budget = budget;
  }

  /** Bytes held for a frame that is not complete yet. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** Total bytes of the stream turned into frames so far. */
  get offset(): number {
    return this.consumed;
  }

  /** During a frame's call: its data block was skipped because the budget had no room for it. */
  get shedFrame(): boolean {
    return this.shedding;
  }

  /** During a frame's call: part of its data block was lost (`skipLost`), so the block is not handed out. */
  get lostFrame(): boolean {
    return this.lost;
  }

  /**
   * `bytes` of the stream were lost. When they fall inside a data block whose
   * length is known (one being skipped, or one being held whose frame head
   * is whole), the decoder stays in step: it skips the rest of that block
   * by its declared length, handing out the held frame with its block
   * skipped (`lostFrame` during the call). Returns false when the loss may
   * cover a message boundary; the caller must then resynchronise.
   */
  skipLost(bytes: number, onFrame: (frame: F) => void): boolean {
    if (this.failure !== undefined) return false;
    if (this.skipping > 0) {
      if (bytes > this.skipping) return false;
      this.skipping -= bytes;
      this.consumed += bytes;
      return true;
    }
    const held = this.heldHead();
    if (held === undefined || bytes > held.block) return false;
    this.consumed += this.pendingBytes + bytes;
    this.dropPending();
    this.skipping = held.block - bytes;
    this.handOutLost(held.frame, onFrame);
    return true;
  }

  /**
   * Hands out the frame being held, its data block skipped (`lostFrame`
   * during the call), when its head is whole; then forgets it. For a stream
   * that lost its place in that block: its key is known, its value is not.
   */
  dropHeld(onFrame: (frame: F) => void): boolean {
    const held = this.failure === undefined ? this.heldHead() : undefined;
    this.dropPending();
    if (held === undefined) return false;
    this.handOutLost(held.frame, onFrame);
    return true;
  }

  /** The held frame parsed from its whole head with its data block skipped, and the block bytes still to come. */
  private heldHead(): { frame: F; block: number } | undefined {
    const buffer = this.frame;
    if (buffer === undefined) return undefined;
    const buf = buffer.subarray(0, this.pendingBytes);
    const cursor = this.cursor;
    cursor.skip = 0;
    cursor.shed = true;
    let frame: F | undefined;
    try {
      frame = this.parser.parse(buf, 0, cursor);
    } catch {
      frame = undefined;
    } finally {
      cursor.shed = false;
    }
    const skip = cursor.skip ?? 0;
    // The head is not whole, or the frame has no data block.
    if (frame === undefined || skip === 0) return undefined;
    return { frame, block: skip - (buf.length - cursor.end) };
  }

  private handOutLost(frame: F, onFrame: (frame: F) => void): void {
    this.lost = true;
    try {
      onFrame(frame);
    } finally {
      this.lost = false;
    }
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

  /** Forgets buffered bytes and any failure (giving back what they held); the next byte pushed starts a frame. */
  reset(): void {
    this.skipping = 0;
    this.dropPending();
    this.failure = undefined;
  }

  private dropPending(): void {
    this.pending = [];
    this.frame = undefined;
    this.pendingBytes = 0;
    this.need = 0;
    if (this.held > 0) {
      this.budget?.give(this.held);
      this.held = 0;
    }
  }

  /** Takes room for `bytes` held in all; false when the budget refuses. */
  private reserve(bytes: number): boolean {
    if (this.budget === undefined || bytes <= this.held) return true;
    if (!this.budget.take(bytes - this.held)) return false;
    this.held = bytes;
    return true;
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
      let joined: Buffer;
      const frame = this.frame;
      if (frame !== undefined) {
        const take = Math.min(this.need - this.pendingBytes, chunk.length - pos);
        chunk.copy(frame, this.pendingBytes, pos, pos + take);
        this.pendingBytes += take;
        pos += take;
        if (this.pendingBytes < this.need) return;
        joined = frame;
      } else {
        const lf = chunk.indexOf(0x0a, pos);
        const take = lf < 0 ? chunk.length - pos : lf + 1 - pos;
        const piece = chunk.subarray(pos, pos + take);
        this.pendingBytes += take;
        pos += take;
        if (lf < 0) {
          // Kept past this call: a copy, so that a short piece does not keep its whole chunk alive.
          this.pending.push(Buffer.from(piece));
          this.checkLineBound();
          this.holdOrFail(this.pendingBytes);
          return;
        }
        this.pending.push(piece);
        joined = Buffer.concat(this.pending, this.pendingBytes);
      }
      this.dropPending();
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
      cursor.skip = 0;
      let frame = this.parse(buf, start);
      if (frame === undefined) {
        if (cursor.need > 0 && cursor.need <= buf.length - start) {
          throw new Error(`parser asked for ${cursor.need} bytes but had ${buf.length - start}`);
        }
        const need = cursor.need;
        if (this.reserve(need > 0 ? need : buf.length - start)) {
          this.keep(buf, start, need);
          return;
        }
        // No room to hold it: its data block is skipped by its declared length, if it has one.
        cursor.shed = true;
        try {
          frame = this.parse(buf, start);
        } finally {
          cursor.shed = false;
        }
        if (frame === undefined) {
          // Its head (a binary header's extras and key) is not whole yet: held alone if there is room.
          const head = cursor.need;
          if (head === 0 || !this.reserve(head)) throw this.overBudget(buf, start);
          this.keep(buf, start, head);
          return;
        }
        this.sheds++;
        this.shedding = true;
      }
      this.consumed += cursor.end - start;
      start = cursor.end;
      const skip = cursor.skip ?? 0;
      try {
        onFrame(frame);
      } finally {
        this.shedding = false;
      }
      if (skip > 0) {
        // The frame's data block, over the limit or shed: dropped by its length, whatever its bytes look like.
        const here = Math.min(skip, buf.length - start);
        this.consumed += here;
        start += here;
        this.skipping = skip - here;
        if (this.skipping > 0) return;
      }
    }
  }

  private parse(buf: Buffer, start: number): F | undefined {
    try {
      return this.parser.parse(buf, start, this.cursor);
    } catch (err) {
      if (err instanceof ProtocolError) throw err.rebase(this.consumed - start);
      throw err;
    }
  }

  /** Holds the incomplete frame at `buf[start..]`: a line as a piece, a declared frame copied into its own buffer. */
  private keep(buf: Buffer, start: number, need: number): void {
    const rest = start === 0 ? buf : buf.subarray(start);
    this.need = need;
    this.pendingBytes = rest.length;
    if (need > 0) {
      this.frame = Buffer.allocUnsafe(need);
      rest.copy(this.frame, 0);
    } else {
      this.pending.push(Buffer.from(rest));
      this.checkLineBound();
    }
  }

  private holdOrFail(bytes: number): void {
    if (this.reserve(bytes)) return;
    const head = this.pending[0] ?? Buffer.alloc(0);
    throw this.overBudget(head, 0);
  }

  private overBudget(buf: Buffer, start: number): ProtocolError {
    return protocolError(NO_ROOM_FOR_HEAD, buf, start).rebase(this.consumed - start);
  }

  private checkLineBound(): void {
    const max = this.parser.limits.maxLineBytes;
    if (this.need === 0 && this.pendingBytes > max) {
      const head = this.pending[0] ?? Buffer.alloc(0);
      throw protocolError(`line longer than ${max} bytes`, head, 0).rebase(this.consumed);
    }
  }
}
