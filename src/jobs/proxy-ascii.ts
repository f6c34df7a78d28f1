/**
 * The proxy's text and meta connections: each request is parsed, routed to
 * the primary server its key belongs to (multi-gets split per server and
 * merged back in the order the keys were asked), and answered in request
 * order.
 *
 * `noreply` and the meta `q` flag are taken off on the way to the server and
 * honoured here instead: the proxy then always knows which reply belongs to
 * which request, and shadow mode learns the outcome of every mutation, even a
 * quiet one (protocol.txt, "Commands": noreply; "Meta Get": q).
 */
import type { Socket } from 'node:net';
import type {
  AsciiRequest,
  AsciiResponse,
  MetaRequest,
  RetrievalRequest,
  ValueResponse,
} from '../protocol/ascii-frames.js';
import { encodeAsciiRequest, encodeAsciiResponse, keyNeedsBase64 } from '../protocol/ascii.js';
import { AsciiServerReader, type ServerSideFrame } from '../protocol/ascii-server.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Limits } from '../protocol/limits.js';
import type { Leg } from './proxy-upstream.js';
import { newSlot, ProxySession, type ProxyContext, type Slot } from './proxy-session.js';

const END = Buffer.from('END\r\n', 'latin1');
const MN = Buffer.from('MN\r\n', 'latin1');
const OK = Buffer.from('OK\r\n', 'latin1');
const MN_REQUEST = Buffer.from('mn\r\n', 'latin1');

function serverError(reason: string): Buffer[] {
  return [Buffer.from(`SERVER_ERROR ${reason.replace(/[\r\n]/g, ' ')}\r\n`, 'latin1')];
}

/**
 * Replies a quiet meta request does not send: only the nominal one (protocol.txt,
 * "Meta Get": q; memcached 1.6.18 skips EN for mg, HD for ms and md, and the
 * HD or VA of a successful ma; NF, EX and NS are always sent).
 */
function quietDrops(command: MetaRequest['command'], reply: AsciiResponse): boolean {
  if (reply.kind !== 'meta') return false;
  switch (command) {
    case 'mg':
      return reply.code === 'EN';
    case 'md':
    case 'ms':
      return reply.code === 'HD';
    case 'ma':
      return reply.code === 'HD' || reply.code === 'VA';
    default:
      return false;
  }
}

function line(text: string): Buffer[] {
  return [Buffer.from(text + '\r\n', 'latin1')];
}

export class AsciiProxySession extends ProxySession<AsciiResponse> {
  private readonly decoder: FrameDecoder<ServerSideFrame>;
  private readonly reader: AsciiServerReader;
  /** Where the data block being swallowed began, for the partial-request clock. */
  private swallowFrom = 0;

  constructor(ctx: ProxyContext, socket: Socket, id: number, limits: Limits) {
    super(ctx, socket, id);
    // Lines are read as memcached reads them, so that only requests it would carry out reach a
    // shared server connection and everything else gets its answer here.
    const reader = new AsciiServerReader({
      limits,
      itemSizeMax: (key) => ctx.itemSizeMax(this.serverOf(key)),
    });
    this.reader = reader;
    this.decoder = new FrameDecoder(reader);
  }

  protected readonly protocol = 'ascii';

  protected partial(): { bytes: number; offset: number } {
    // A refused value being swallowed holds no memory but is an unfinished request all the same.
    const swallowing = this.reader.swallowing;
    if (swallowing > 0) return { bytes: swallowing, offset: this.swallowFrom };
    return { bytes: this.decoder.buffered, offset: this.decoder.offset };
  }

  protected parseChunk(chunk: Buffer): void {
    try {
      this.decoder.push(chunk, (frame) => this.admit(() => this.frame(frame)));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // Only a multi-get line longer than the proxy's line limit gets here.
      this.refuseGarbage(line(`CLIENT_ERROR ${err.reason}`));
    }
  }

  private frame(frame: ServerSideFrame): void {
    switch (frame.kind) {
      case 'request':
        this.request(frame.request);
        return;
      case 'skipped':
        return;
      case 'admin':
        this.admin(frame.name, frame.noreply);
        return;
      case 'answer': {
        if (this.reader.swallowing > 0) this.swallowFrom = this.decoder.offset;
        // memcached drops the old value of a store it refused as too large; so does every pool here.
        if (frame.evict !== undefined) this.evict(frame.evict);
        this.answerHere(frame.reply === undefined ? undefined : line(frame.reply), frame.close);
        return;
      }
    }
  }

  /**
   * Admin commands change a server's settings, not its data: verbosity is
   * answered here (the proxy has no log level to change through it), the rest
   * are refused, so that no client reconfigures a production server through
   * the proxy.
   */
  private admin(name: string, noreply: boolean): void {
    const slot = newSlot();
    if (!noreply)
      slot.parts =
        name === 'verbosity' ? [OK] : line(`CLIENT_ERROR ${name} is not available through memshift proxy`);
    this.push(slot);
  }

  /** Removes `key` from its primary server (and the secondary where this mode writes both), unseen by the client. */
  private evict(key: Buffer): void {
    // A plain delete where the key can travel as a word (servers before 1.6 have no md).
    const req: AsciiRequest = keyNeedsBase64(key)
      ? {
          kind: 'meta',
          command: 'md',
          key,
          base64: true,
          flags: [],
          value: undefined,
          quiet: false,
          opaque: undefined,
        }
      : { kind: 'delete', key, noreply: false };
    const parts = encodeAsciiRequest(req);
    if (this.ctx.mode === 'warm') this.ctx.deleted(key);
    const slot = this.single(this.serverOf(key), req, parts, true, undefined);
    if (this.ctx.mode !== 'shadow') this.secondary(key, parts, slot);
    this.push(slot);
  }

  private request(req: AsciiRequest): void {
    const mode = this.ctx.mode;
    switch (req.kind) {
      case 'storage': {
        const parts = encodeAsciiRequest(req.noreply ? { ...req, noreply: false } : req);
        if (mode !== 'dual' || req.command === 'set') {
          const slot = this.single(this.serverOf(req.key), req, parts, req.noreply, undefined);
          if (mode === 'dual') this.secondary(req.key, parts, slot);
          this.push(slot);
          return;
        }
        // A conditional store may succeed on one pool and not the other (a CAS unique is per
        // server): the secondary gets what the primary ended up holding, only once it holds it.
        const slot = newSlot();
        this.forward(
          this.serverOf(req.key),
          parts,
          slot,
          (reply) => {
            if (!req.noreply) slot.parts = encodeAsciiResponse(reply);
            if (reply.kind !== 'status' || reply.status !== 'STORED') return;
            const copy =
              req.command === 'append' || req.command === 'prepend'
                ? parts
                : encodeAsciiRequest({ ...req, command: 'set', cas: undefined, noreply: false });
            this.secondary(req.key, copy, slot);
          },
          req.noreply,
        );
        this.push(slot);
        return;
      }
      case 'arithmetic':
      case 'touch': {
        const parts = encodeAsciiRequest(req.noreply ? { ...req, noreply: false } : req);
        const slot = this.single(this.serverOf(req.key), req, parts, req.noreply, undefined);
        if (mode === 'dual') this.secondary(req.key, parts, slot);
        this.push(slot);
        return;
      }
      case 'delete': {
        const parts = encodeAsciiRequest(req.noreply ? { ...req, noreply: false } : req);
        if (mode === 'warm') this.ctx.deleted(req.key);
        const slot = this.single(this.serverOf(req.key), req, parts, req.noreply, undefined);
        if (mode !== 'shadow') this.secondary(req.key, parts, slot);
        this.push(slot);
        return;
      }
      case 'retrieval':
        this.retrieval(req);
        return;
      case 'flush_all': {
        const parts = encodeAsciiRequest(req.noreply ? { ...req, noreply: false } : req);
        const slot = newSlot();
        const servers = this.ctx.primary.servers.length;
        for (let i = 0; i < servers; i++) {
          this.forward(
            i,
            parts,
            slot,
            (reply) => {
              // The first server's reply speaks for all, unless another one failed.
              if (!req.noreply && (i === 0 || reply.kind === 'error'))
                slot.parts = encodeAsciiResponse(reply);
            },
            false,
            req,
          );
        }
        if (mode !== 'shadow') {
          for (let i = 0; i < this.ctx.secondary.servers.length; i++)
            this.secondaryTo(i, Buffer.alloc(0), parts, slot);
        }
        this.push(slot);
        return;
      }
      case 'verbosity':
        this.admin('verbosity', req.noreply);
        return;
      case 'version':
        this.push(this.collect(0, encodeAsciiRequest(req), false));
        return;
      case 'stats': {
        // The proxy's own figures: a server's would describe one server of the pool, chosen arbitrarily.
        const slot = newSlot();
        if (req.args.length === 0 || (req.args.length === 1 && req.args[0] === 'proxy')) {
          const lines = this.ctx.figures().map(([name, value]) => `STAT ${name} ${value}\r\n`);
          slot.parts = [Buffer.from(lines.join('') + 'END\r\n', 'latin1')];
        } else {
          slot.parts = line(`CLIENT_ERROR stats ${req.args[0]} is not available through memshift proxy`);
        }
        this.push(slot);
        return;
      }
      case 'quit': {
        const slot = newSlot();
        slot.close = true;
        this.push(slot);
        this.stopReading();
        return;
      }
      case 'other': {
        // The reader answers every line memcached would not carry out; nothing unknown is forwarded.
        const slot = newSlot();
        slot.parts = line('ERROR');
        this.push(slot);
        return;
      }
      case 'meta':
        this.meta(req);
        return;
    }
  }

  private meta(req: MetaRequest): void {
    if (req.command === 'mn') {
      // Every earlier reply is already ordered ahead of this one: mn needs no server.
      const slot = newSlot();
      slot.parts = [MN];
      this.push(slot);
      return;
    }
    const loud = req.quiet ? { ...req, quiet: false, flags: req.flags.filter((f) => f !== 'q') } : req;
    const parts = encodeAsciiRequest(loud);
    const mode = this.ctx.mode;
    const index = this.serverOf(req.key);
    const drops = req.quiet ? (reply: AsciiResponse) => quietDrops(req.command, reply) : undefined;
    if (req.command === 'mg' && mode === 'warm') {
      const slot = newSlot();
      slot.pending++;
      this.forward(index, parts, slot, (reply) => {
        if (reply.kind === 'meta' && reply.code === 'EN') {
          // A miss: fill from the old pool, then ask again so every flag the client set is answered.
          slot.pending++;
          this.ctx.warm(req.key).then(
            (item) => {
              if (item === undefined) {
                if (!req.quiet) slot.parts = encodeAsciiResponse(reply);
                this.done(slot);
                return;
              }
              this.forward(index, parts, slot, (again) => {
                if (!drops?.(again)) slot.parts = encodeAsciiResponse(again);
              });
              this.done(slot);
            },
            () => this.done(slot),
          );
        } else if (!drops?.(reply)) slot.parts = encodeAsciiResponse(reply);
      });
      this.done(slot);
      this.push(slot);
      return;
    }
    if (req.command === 'ma' && req.quiet && req.flags.some((f) => f.charCodeAt(0) === 0x4e)) {
      this.quietVivify(req, index);
      return;
    }
    if (mode === 'dual' && (req.command === 'ms' || req.command === 'ma')) {
      // Conditions (C, modes, vivify) are the primary's to judge: once it applied the
      // command, the secondary gets the plain effect (a set of the value, or the delta).
      const keep = req.command === 'ms' ? /^[TF]/ : /^[MDNJT]/;
      const plain = encodeAsciiRequest({
        ...loud,
        flags: loud.flags.filter((f) => keep.test(f)),
        opaque: undefined,
      });
      const slot = newSlot();
      this.forward(index, parts, slot, (reply) => {
        if (!drops?.(reply)) slot.parts = encodeAsciiResponse(reply);
        if (reply.kind === 'meta' && (reply.code === 'HD' || reply.code === 'VA'))
          this.secondary(req.key, plain, slot);
      });
      this.push(slot);
      return;
    }
    const slot = this.single(index, req, parts, false, drops);
    if (req.command === 'md' && mode === 'warm') this.ctx.deleted(req.key);
    if (req.command === 'md' && mode !== 'shadow') {
      // The key goes from the secondary whatever the primary's conditions said.
      this.secondary(req.key, encodeAsciiRequest({ ...loud, flags: [], opaque: undefined }), slot);
    }
    this.push(slot);
  }

  /**
   * A quiet `ma` that may create its counter (N): memcached hides the HD of
   * an increment but shows the one of a creation, which look alike. The
   * request goes quiet as it came, an `mn` after it, and whatever comes
   * before the MN is the answer.
   */
  private quietVivify(req: MetaRequest, index: number): void {
    const slot = newSlot();
    const out: Buffer[] = [];
    let failed = false;
    const now = Date.now();
    const shadow = this.ctx.shadows[index];
    let answered = false;
    slot.pending++;
    this.upstream('primary', index).send(
      [...encodeAsciiRequest(req), MN_REQUEST],
      {
        sentAt: 0,
        ends: (reply) => reply.kind === 'meta' && reply.code === 'MN',
        frame: (reply) => {
          if (reply.kind !== 'meta' || reply.code !== 'MN') {
            // The request's own reply (a creation's HD, a failure): its outcome, for the shadow.
            if (!answered) shadow?.text(req, reply, this.id, now * 1000);
            answered = true;
            out.push(...encodeAsciiResponse(reply));
            if (reply.kind !== 'meta' || (reply.code !== 'HD' && reply.code !== 'VA')) failed = true;
            return false;
          }
          // Nothing before the fence: the increment succeeded quietly.
          if (!answered) shadow?.textQuiet(req, this.id, now * 1000);
          slot.parts = out;
          if (this.ctx.mode === 'dual' && !failed) {
            // Applied (shown or not): the secondary gets the plain delta, vivifying as the primary did.
            const keep = /^[MDNJT]/;
            this.secondary(
              req.key,
              encodeAsciiRequest({
                ...req,
                quiet: false,
                flags: req.flags.filter((f) => keep.test(f)),
                opaque: undefined,
              }),
              slot,
            );
          }
          this.done(slot);
          return true;
        },
        fail: (reason) => {
          if (!answered) shadow?.textLost(req, this.id, now * 1000);
          this.ctx.counters.primaryErrors++;
          slot.parts = serverError(reason);
          this.done(slot);
        },
      },
      now,
    );
    this.push(slot);
  }

  private retrieval(req: RetrievalRequest): void {
    const slot = newSlot();
    const keys = req.keys;
    const found = new Array<ValueResponse | undefined>(keys.length);
    const servers = this.ctx.primary.servers.length;
    const groups = new Array<number[] | undefined>(servers);
    for (let k = 0; k < keys.length; k++) {
      const index = servers === 1 ? 0 : this.serverOf(keys[k] as Buffer);
      (groups[index] ??= []).push(k);
    }
    let failure: Buffer[] | undefined;
    const warm = this.ctx.mode === 'warm';
    const now = Date.now();
    for (let index = 0; index < servers; index++) {
      const group = groups[index];
      if (group === undefined) continue;
      const sub = group.length === keys.length ? req : { ...req, keys: group.map((k) => keys[k] as Buffer) };
      const shadow = this.ctx.shadows[index];
      /** Shadow mode: the reply's frames, for the operations it makes. */
      const frames: AsciiResponse[] | undefined = shadow === undefined ? undefined : [];
      let pos = 0;
      slot.pending++;
      this.upstream('primary', index).send(
        encodeAsciiRequest(sub),
        {
          sentAt: 0,
          ends: (reply) => reply.kind !== 'value',
          frame: (reply) => {
            frames?.push(reply);
            if (reply.kind === 'value') {
              // Hits come back in the order asked, misses left out: walk the group to place each one.
              while (pos < group.length && !(keys[group[pos] as number] as Buffer).equals(reply.key)) pos++;
              if (pos < group.length) found[group[pos++] as number] = reply;
              return false;
            }
            if (frames !== undefined) shadow?.textRead(sub, frames, this.id, now * 1000);
            if (reply.kind !== 'end') failure ??= encodeAsciiResponse(reply);
            else if (warm) this.warmMisses(req, group, found, slot);
            this.done(slot);
            return true;
          },
          fail: (reason) => {
            shadow?.textLost(sub, this.id, now * 1000);
            this.ctx.counters.primaryErrors++;
            failure ??= serverError(reason);
            this.done(slot);
          },
        },
        now,
      );
    }
    slot.build = () => {
      if (failure !== undefined) {
        slot.parts = failure;
        return;
      }
      const parts: Buffer[] = [];
      for (const value of found) if (value !== undefined) parts.push(...encodeAsciiResponse(value));
      parts.push(END);
      slot.parts = parts;
    };
    this.push(slot);
  }

  /** Warm mode: every key of `group` the primary missed is looked up on the old pool. */
  private warmMisses(
    req: RetrievalRequest,
    group: number[],
    found: (ValueResponse | undefined)[],
    slot: Slot,
  ): void {
    for (const k of group) {
      if (found[k] !== undefined) continue;
      const key = req.keys[k] as Buffer;
      slot.pending++;
      this.ctx.warm(key).then(
        (item) => {
          if (item !== undefined) {
            // gets: no CAS unique is known for a value just filled; 0 makes a later cas fail safely.
            const cas = req.command === 'gets' || req.command === 'gats' ? 0n : undefined;
            found[k] = { kind: 'value', key, flags: item.flags, cas, value: item.value };
          }
          this.done(slot);
        },
        () => this.done(slot),
      );
    }
  }

  /** A request answered by one reply frame from one primary server. */
  private single(
    index: number,
    req: AsciiRequest,
    parts: Buffer[],
    noreply: boolean,
    drops: ((reply: AsciiResponse) => boolean) | undefined,
  ): Slot {
    const slot = newSlot();
    this.forward(
      index,
      parts,
      slot,
      (reply) => {
        if (!noreply && !drops?.(reply)) slot.parts = encodeAsciiResponse(reply);
      },
      noreply,
      req,
    );
    return slot;
  }

  /** A request whose reply runs to END (stats), or is one line (version, an error). */
  private collect(index: number, parts: Buffer[], noreply: boolean): Slot {
    const slot = newSlot();
    const out: Buffer[] = [];
    slot.pending++;
    this.upstream('primary', index).send(
      parts,
      {
        sentAt: 0,
        ends: (reply) => reply.kind !== 'stat' && reply.kind !== 'line',
        frame: (reply) => {
          if (!noreply) out.push(...encodeAsciiResponse(reply));
          if (reply.kind === 'stat' || reply.kind === 'line') return false;
          slot.parts = out;
          this.done(slot);
          return true;
        },
        fail: (reason) => {
          this.ctx.counters.primaryErrors++;
          if (!noreply) slot.parts = serverError(reason);
          this.done(slot);
        },
      },
      Date.now(),
    );
    return slot;
  }

  /**
   * Sends one request expecting one reply frame; `reply` sees it, a failure
   * becomes SERVER_ERROR. In shadow mode `shadowed` (the request as the
   * client sent it) goes with its reply to become an operation.
   */
  private forward(
    index: number,
    parts: Buffer[],
    slot: Slot,
    reply: (frame: AsciiResponse) => void,
    quietFailure = false,
    shadowed?: AsciiRequest,
  ): void {
    slot.pending++;
    const now = Date.now();
    const shadow = shadowed === undefined ? undefined : this.ctx.shadows[index];
    const leg: Leg<AsciiResponse> = {
      sentAt: 0,
      frame: (frame) => {
        shadow?.text(shadowed as AsciiRequest, frame, this.id, now * 1000);
        reply(frame);
        this.done(slot);
        return true;
      },
      fail: (reason) => {
        shadow?.textLost(shadowed as AsciiRequest, this.id, now * 1000);
        this.ctx.counters.primaryErrors++;
        if (!quietFailure) slot.parts = serverError(reason);
        this.done(slot);
      },
    };
    this.upstream('primary', index).send(parts, leg, now);
  }

  /** The same mutation on the secondary server of `key`; its reply is awaited but never shown. */
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
          if (frame.kind === 'error') ctx.secondaryMissed(index, key, 'error reply');
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
