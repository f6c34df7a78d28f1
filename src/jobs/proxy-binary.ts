/**
 * The proxy's binary connections: every request carries one key, so each goes
 * whole to the primary server of its key. Quiet opcodes are sent loud and made
 * quiet again here (a GetQ miss or a SetQ success is not passed on), so every
 * server reply pairs with its request by position and shadow mode learns
 * every outcome (protocol-binary.txt, section 4.2: quiet commands).
 */
import type { Socket } from 'node:net';
import { B } from '../protocol/bytes.js';
import {
  BinaryOpcode as Op,
  BinaryStatus,
  encodeBinaryResponse,
  encodeBinaryRequest,
  loudOf,
  type BinaryRequest,
  type BinaryResponse,
} from '../protocol/binary.js';
import { BinaryServerReader, type BinaryServerFrame } from '../protocol/binary-server.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Limits } from '../protocol/limits.js';
import { newSlot, ProxySession, type ProxyContext, type Slot } from './proxy-session.js';

const EMPTY = Buffer.alloc(0);

function errorPacket(req: BinaryRequest, status: number, message: string): Buffer[] {
  return encodeBinaryResponse({
    opcode: req.opcode,
    opaque: req.opaque,
    status,
    value: Buffer.from(message),
  });
}

export class BinaryProxySession extends ProxySession<BinaryResponse> {
  private readonly decoder: FrameDecoder<BinaryServerFrame>;
  private readonly reader: BinaryServerReader;
  private swallowFrom = 0;

  constructor(ctx: ProxyContext, socket: Socket, id: number, limits: Limits) {
    super(ctx, socket, id);
    // memcached's own answers (a key over 250 bytes, a value too large) are given here; the
    // rest is forwarded.
    this.reader = new BinaryServerReader({
      limits,
      itemSizeMax: (key) => ctx.itemSizeMax(this.serverOf(key)),
    });
    this.decoder = new FrameDecoder(this.reader);
  }

  protected readonly protocol = 'binary';

  protected partial(): { bytes: number; offset: number } {
    const swallowing = this.reader.swallowing;
    if (swallowing > 0) return { bytes: swallowing, offset: this.swallowFrom };
    return { bytes: this.decoder.buffered, offset: this.decoder.offset };
  }

  protected parseChunk(chunk: Buffer): void {
    try {
      this.decoder.push(chunk, (frame) => this.admit(() => this.frame(frame)));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // memcached closes a binary connection whose bytes are not a request header, without a reply.
      this.refuseGarbage(undefined);
    }
  }

  private frame(frame: BinaryServerFrame): void {
    switch (frame.kind) {
      case 'request':
        this.request(frame.request);
        return;
      case 'skipped':
        return;
      case 'answer': {
        if (this.reader.swallowing > 0) this.swallowFrom = this.decoder.offset;
        if (frame.evict !== undefined) this.evict(frame.evict);
        this.answerHere(frame.reply, frame.close);
      }
    }
  }

  /** Removes `key` where a set of it would have landed, unseen by the client (memcached drops a set it refused). */
  private evict(key: Buffer): void {
    const req: BinaryRequest = {
      magic: B.BINARY_REQUEST,
      opcode: Op.Delete,
      dataType: 0,
      vbucket: 0,
      opaque: 0,
      cas: 0n,
      extras: EMPTY,
      key,
      value: EMPTY,
    };
    const parts = encodeBinaryRequest(req);
    if (this.ctx.mode === 'warm') this.ctx.deleted(key);
    const slot = newSlot();
    this.send(this.serverOf(key), req, parts, slot, () => undefined);
    if (this.ctx.mode !== 'shadow') this.secondary(key, parts, slot);
    // The delete's own reply is not the client's: the slot shows nothing.
    slot.build = () => (slot.parts = []);
    this.push(slot);
  }

  private request(req: BinaryRequest): void {
    const loud = loudOf(req.opcode);
    const quiet = loud !== req.opcode;
    const mode = this.ctx.mode;
    switch (loud) {
      case Op.Get:
      case Op.GetK:
      case Op.GAT:
      case Op.GATK:
        this.read(req, loud, quiet);
        return;
      case Op.Set:
      case Op.Add:
      case Op.Replace:
      case Op.Append:
      case Op.Prepend:
      case Op.Increment:
      case Op.Decrement:
      case Op.Touch:
      case Op.Delete: {
        const parts = quiet ? encodeBinaryRequest({ ...req, opcode: loud }) : encodeBinaryRequest(req);
        const deletes = loud === Op.Delete;
        if (deletes && mode === 'warm') this.ctx.deleted(req.key);
        const conditional = loud === Op.Add || loud === Op.Replace || req.cas !== 0n;
        if (mode === 'dual' && conditional && !deletes) {
          // The secondary gets what the primary ended up holding, once it holds it (a CAS is per server).
          const copy = encodeBinaryRequest({
            ...req,
            opcode: loud === Op.Add || loud === Op.Replace ? Op.Set : loud,
            cas: 0n,
          });
          const slot = this.forward(
            this.serverOf(req.key),
            req,
            parts,
            quiet ? BinaryStatus.NoError : -1,
            (ok) => {
              if (ok) this.secondary(req.key, copy, slot);
            },
          );
          this.push(slot);
          return;
        }
        const slot = this.forward(this.serverOf(req.key), req, parts, quiet ? BinaryStatus.NoError : -1);
        if (mode === 'dual' || (mode === 'warm' && deletes)) {
          this.secondary(
            req.key,
            deletes && req.cas !== 0n ? encodeBinaryRequest({ ...req, opcode: loud, cas: 0n }) : parts,
            slot,
          );
        }
        this.push(slot);
        return;
      }
      case Op.Flush: {
        const parts = encodeBinaryRequest({ ...req, opcode: loud });
        const slot = newSlot();
        for (let i = 0; i < this.ctx.primary.servers.length; i++) {
          this.send(i, req, parts, slot, (reply) => {
            if ((i === 0 || reply.status !== 0) && !(quiet && reply.status === 0)) {
              slot.parts = encodeBinaryResponse({ ...reply, opcode: req.opcode });
            }
          });
        }
        if (mode !== 'shadow') {
          for (let i = 0; i < this.ctx.secondary.servers.length; i++) this.secondaryTo(i, EMPTY, parts, slot);
        }
        this.push(slot);
        return;
      }
      case Op.Noop: {
        // Earlier replies are already ahead of this one in order: the noop needs no server.
        const slot = newSlot();
        slot.parts = encodeBinaryResponse({ opcode: Op.Noop, opaque: req.opaque });
        this.push(slot);
        return;
      }
      case Op.Version:
        this.push(this.forward(0, req, encodeBinaryRequest(req), -1));
        return;
      case Op.Verbosity: {
        // Answered here, never passed to a server: as the text protocol's verbosity.
        const slot = newSlot();
        if (!quiet) slot.parts = encodeBinaryResponse({ opcode: req.opcode, opaque: req.opaque });
        this.push(slot);
        return;
      }
      case Op.Stat:
        this.push(this.stats(req));
        return;
      case Op.Quit: {
        const slot = newSlot();
        if (!quiet) slot.parts = encodeBinaryResponse({ opcode: req.opcode, opaque: req.opaque });
        slot.close = true;
        this.push(slot);
        this.stopReading();
        return;
      }
      default: {
        const slot = newSlot();
        slot.parts = errorPacket(req, BinaryStatus.UnknownCommand, 'Unknown command');
        this.push(slot);
      }
    }
  }

  private read(req: BinaryRequest, loud: number, quiet: boolean): void {
    const parts = quiet ? encodeBinaryRequest({ ...req, opcode: loud }) : encodeBinaryRequest(req);
    const index = this.serverOf(req.key);
    const slot = newSlot();
    this.send(index, req, parts, slot, (reply) => {
      if (reply.status === BinaryStatus.KeyNotFound && this.ctx.mode === 'warm') {
        slot.pending++;
        this.ctx.warm(req.key).then(
          (item) => {
            if (item !== undefined) {
              const extras = Buffer.allocUnsafe(4);
              extras.writeUInt32BE(item.flags >>> 0, 0);
              const withKey = loud === Op.GetK || loud === Op.GATK;
              slot.parts = encodeBinaryResponse({
                opcode: req.opcode,
                opaque: req.opaque,
                extras,
                key: withKey ? req.key : EMPTY,
                value: item.value,
              });
            } else if (!quiet) slot.parts = encodeBinaryResponse({ ...reply, opcode: req.opcode });
            this.done(slot);
          },
          () => this.done(slot),
        );
        return;
      }
      if (!(quiet && reply.status === BinaryStatus.KeyNotFound)) {
        slot.parts = encodeBinaryResponse({ ...reply, opcode: req.opcode });
      }
    });
    this.push(slot);
  }

  /** One request, one reply; `quietStatus` is the status a quiet request does not pass on (-1: none). */
  private forward(
    index: number,
    req: BinaryRequest,
    parts: Buffer[],
    quietStatus: number,
    then?: (succeeded: boolean) => void,
  ): Slot {
    const slot = newSlot();
    this.send(index, req, parts, slot, (reply) => {
      if (reply.status !== quietStatus) slot.parts = encodeBinaryResponse({ ...reply, opcode: req.opcode });
      then?.(reply.status === BinaryStatus.NoError);
    });
    return slot;
  }

  /**
   * Sends one request to a primary server; `reply` sees its reply. In shadow
   * mode `req` (as the client sent it) goes with the reply to become an operation.
   */
  private send(
    index: number,
    req: BinaryRequest,
    parts: Buffer[],
    slot: Slot,
    reply: (frame: BinaryResponse) => void,
  ): void {
    slot.pending++;
    const now = Date.now();
    const shadow = this.ctx.shadows[index];
    this.upstream('primary', index).send(
      parts,
      {
        sentAt: 0,
        frame: (frame) => {
          shadow?.binary(req, frame, this.id, now * 1000);
          reply(frame);
          this.done(slot);
          return true;
        },
        fail: (reason) => {
          shadow?.binaryLost(req, this.id, now * 1000);
          this.ctx.counters.primaryErrors++;
          slot.parts = this.failure(parts, reason);
          this.done(slot);
        },
      },
      now,
    );
  }

  /** The error packet memcached clients expect when the server cannot answer. */
  private failure(parts: Buffer[], reason: string): Buffer[] {
    const head = parts[0] as Buffer;
    const opcode = head[1] ?? 0;
    const opaque = head.length >= 16 ? head.readUInt32BE(12) : 0;
    return encodeBinaryResponse({
      opcode,
      opaque,
      status: BinaryStatus.InternalError,
      value: Buffer.from(reason, 'latin1'),
    });
  }

  /** `stat`: the proxy's own figures, one packet each and an empty-key packet last; any group is refused. */
  private stats(req: BinaryRequest): Slot {
    const slot = newSlot();
    if (req.key.length > 0) {
      slot.parts = errorPacket(req, BinaryStatus.NotSupported, 'Not supported through memshift proxy');
      return slot;
    }
    const out: Buffer[] = [];
    for (const [name, value] of this.ctx.figures()) {
      out.push(
        ...encodeBinaryResponse({
          opcode: req.opcode,
          opaque: req.opaque,
          key: Buffer.from(name, 'latin1'),
          value: Buffer.from(value, 'latin1'),
        }),
      );
    }
    out.push(...encodeBinaryResponse({ opcode: req.opcode, opaque: req.opaque }));
    slot.parts = out;
    return slot;
  }

  private secondary(key: Buffer, parts: Buffer[], slot: Slot): void {
    this.secondaryTo(this.ctx.secondary.distribution.serverFor(key), key, parts, slot);
  }

  private secondaryTo(index: number, key: Buffer, parts: Buffer[], slot: Slot): void {
    const ctx = this.ctx;
    if (!ctx.secondaryUsable(index)) {
      ctx.counters.secondarySkipped++;
      ctx.secondaryMissed(index, key, undefined);
      return;
    }
    ctx.counters.secondarySent++;
    slot.pending++;
    this.upstream('secondary', index).send(
      parts,
      {
        sentAt: 0,
        frame: (frame) => {
          if (frame.status >= BinaryStatus.UnknownCommand) ctx.secondaryMissed(index, key, 'error status');
          this.done(slot);
          return true;
        },
        fail: (reason) => {
          ctx.counters.secondaryFailed++;
          ctx.secondaryMissed(index, key, reason);
          this.done(slot);
        },
      },
      Date.now(),
    );
  }

  private serverOf(key: Buffer): number {
    return this.ctx.primary.servers.length === 1 ? 0 : this.ctx.primary.distribution.serverFor(key);
  }
}

/** memcached picks a connection's protocol by its first byte (protocol-binary.txt, section 2). */
export function isBinaryStart(byte: number | undefined): boolean {
  return byte === B.BINARY_REQUEST;
}
