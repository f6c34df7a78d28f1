/**
 * One connection to one target server, written for replay volume: meta
 * commands with the `q` flag (protocol.txt, "Meta Set": "a response that would
 * start with HD will not be sent") so successes cost the server no reply, an
 * `O<seq>` opaque token on each command to pair the replies that do come, and
 * one `mn` fence per written batch (protocol.txt, "Meta No-Op": MN means every
 * earlier command was processed) so quiet successes are confirmed in bulk.
 *
 * Per-key order comes from the FIFO: a key always goes to the same connection,
 * and the connection writes in the order it was given. There is deliberately
 * no request timeout: dropping a slow connection would leave its unprocessed
 * writes in the server's socket buffer, to be applied after writes sent on a
 * new connection, out of order. A slow server fills the bounded queue instead,
 * and what cannot be queued is remembered and deleted once it catches up.
 */
import { Socket, connect } from 'node:net';
import type { AsciiResponse } from '../protocol/ascii-frames.js';
import { AsciiResponseParser, keyNeedsBase64, metaFlagNumber } from '../protocol/ascii.js';
import { FrameDecoder } from '../protocol/decoder.js';
import type { Limits } from '../protocol/limits.js';
import type { Endpoint } from '../net/address.js';
import { Ring } from '../net/ring.js';
import type { ByteBudget } from '../ops/budget.js';
import { BinaryResponseParser, type BinaryResponse } from '../protocol/binary.js';
import { BinaryOpcode } from '../protocol/binary-opcodes.js';
import { binaryJobPackets, binaryJobResult } from './target-binary.js';

export type JobKind =
  | 'set'
  | 'append'
  | 'prepend'
  | 'delete'
  | 'touch'
  | 'incr'
  | 'decr'
  | 'flush'
  | 'fill'
  | 'read'
  /** A delete for a key whose writes were dropped or failed. */
  | 'invalidate'
  /** An extra delete after incr/decr diverged from the source. */
  | 'diverged'
  | 'fence';

/** One command for the target, queued until written and then until its outcome is known. */
export interface Job {
  readonly kind: JobKind;
  readonly key: Buffer;
  readonly value: Buffer | undefined;
  readonly flags: number;
  /** Exptime, flush delay (-1: none), or the fill's remaining TTL. */
  readonly exptime: number;
  readonly delta: bigint;
  readonly expected: bigint;
  /** incr/decr: create a missing counter at this value (with `exptime` as its TTL); undefined: do not. */
  readonly initial: bigint | undefined;
  /**
   * When the item runs out on the source, in capture-clock ms (0: write
   * `exptime` as it is): the TTL written is what is left of it then.
   */
  readonly expiresAtMs: number;
  /** Capture time in ms for lag, or -1 when this job does not stand for an operation. */
  readonly capturedMs: number;
  /** The opaque token once written. */
  seq: number;
}

/**
 * How a job ended:
 * - `ok`: applied (or nothing to apply: delete/touch of a missing key);
 * - `not_stored`: an add-mode fill found the key there;
 * - `absent`: the target does not hold the key and the job did not create it
 *   (incr/decr, append/prepend, touch): it had no effect, and the key stays a miss;
 * - `diverged`: incr/decr answered otherwise than the source; a delete follows;
 * - `failed`: the target answered with an error;
 * - `lost`: the connection went away before the outcome was known.
 */
export type JobResult = 'ok' | 'not_stored' | 'absent' | 'diverged' | 'failed' | 'lost';

export interface TargetConnectionOptions {
  readonly maxQueued: number;
  readonly connectTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly limits: Limits;
  /** The capture clock now (ms), to count relative TTLs down from the capture time. */
  readonly now: () => number;
  /**
   * `binary` for the connection that carries keys meta cannot (target-binary.ts);
   * default `meta`.
   */
  readonly protocol?: 'meta' | 'binary';
  /** A local port to connect from, asked at every dial (two-way mirroring: see two-way.ts). */
  readonly localPort?: () => number;
}

/** The remembered-keys budget shared by all connections of a replayer. */
export interface MemoryBudget {
  remembered: number;
  readonly maxRemembered: number;
  /** Keys that could not be remembered: their target copy may be stale and nothing will fix it. */
  unrecoverable: number;
  /** Bytes of every queued job (key, value, bookkeeping), over all connections of all replayers. */
  readonly queued: ByteBudget;
}

/** What a queued job costs beyond its key and value: the job object and its ring slot, roughly. */
const JOB_OVERHEAD_BYTES = 160;

function cost(job: Job): number {
  return JOB_OVERHEAD_BYTES + job.key.length + (job.value?.length ?? 0);
}

export interface TargetEvents {
  settled(job: Job, result: JobResult): void;
  /** A remembered key's delete was confirmed. */
  invalidated(): void;
  connectionChange(up: boolean): void;
}

type State = 'connecting' | 'open' | 'down' | 'closed';

const BATCH_BYTES = 64 * 1024;
/** Seconds taken off a relative TTL for the servers' coarse clocks (see ttl()). */
const CLOCK_MARGIN_S = 2;
/** Values this large are written as their own part rather than copied into the batch. */
const BIG_VALUE = 8 * 1024;
/** Bytes written per flush before the socket gets a chance to drain. */
const FLUSH_BYTES = 256 * 1024;

/** Whether the server always answers this job (so its reply confirms what came before). */
function loud(kind: JobKind): boolean {
  return kind === 'incr' || kind === 'decr' || kind === 'touch' || kind === 'flush' || kind === 'fence';
}

/** Whether a job carries a key whose target copy may be stale if the job is lost. */
function guards(kind: JobKind): boolean {
  return kind !== 'fill' && kind !== 'read' && kind !== 'fence' && kind !== 'flush';
}

export class TargetConnection {
  readonly endpoint: Endpoint;
  /** Bytes written to the server. */
  bytes = 0;
  connects = 0;
  disconnects = 0;
  private readonly options: TargetConnectionOptions;
  private readonly events: TargetEvents;
  private readonly budget: MemoryBudget;
  private readonly unsent = new Ring<Job>(64);
  private readonly inflight = new Ring<Job>(64);
  /** Keys (latin1) whose last writes were dropped or failed, to delete on the target. */
  private readonly remembered = new Set<string>();
  private socket: Socket | undefined;
  private decoder: FrameDecoder<AsciiResponse>;
  private binaryDecoder: FrameDecoder<BinaryResponse> | undefined;
  private readonly binary: boolean;
  private state: State = 'connecting';
  private failures = 0;
  private nextSeq = 1;
  private flushScheduled = false;
  private quietUnconfirmed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private batch: Buffer = Buffer.allocUnsafe(BATCH_BYTES);
  private batchAt = 0;

  constructor(
    endpoint: Endpoint,
    options: TargetConnectionOptions,
    budget: MemoryBudget,
    events: TargetEvents,
  ) {
    this.endpoint = endpoint;
    this.options = options;
    this.budget = budget;
    this.events = events;
    this.binary = options.protocol === 'binary';
    this.decoder = new FrameDecoder(new AsciiResponseParser(options.limits));
    this.dial();
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /** Jobs queued or awaiting their outcome. */
  get pending(): number {
    return this.unsent.length + this.inflight.length;
  }

  get rememberedKeys(): number {
    return this.remembered.size;
  }

  /** Whether the server is reachable and the queue has room for `n` more jobs. */
  hasRoom(n: number): boolean {
    return (
      (this.state === 'open' || this.state === 'connecting') && this.pending + n <= this.options.maxQueued
    );
  }

  /**
   * Queues a job if the server is reachable and the queue has room; false
   * otherwise (the caller counts the drop and remembers the key). A key that
   * is remembered gets its delete queued first, so the delete cannot land
   * after this newer write.
   */
  offer(job: Job): boolean {
    if (this.remembered.size > 0 && job.key.length > 0) {
      const text = job.key.toString('latin1');
      if (this.remembered.has(text)) {
        if (!this.hasRoom(2)) return false;
        this.forget(text);
        this.push(invalidation(job.key));
      }
    }
    if (!this.hasRoom(1)) return false;
    // Out of bytes: dropped like a full queue (the caller remembers the key for deletion).
    if (!this.budget.queued.take(cost(job))) return false;
    this.push(job, true);
    return true;
  }

  /** Remembers a key to delete on the target when it can take writes again. */
  remember(key: Buffer): void {
    const text = key.toString('latin1');
    if (this.remembered.has(text)) return;
    if (this.budget.remembered >= this.budget.maxRemembered) {
      this.budget.unrecoverable++;
      return;
    }
    this.remembered.add(text);
    this.budget.remembered++;
  }

  /** Stops reconnecting and drops the socket; everything still queued is lost. */
  destroy(): void {
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    this.socket?.destroy();
    this.socket = undefined;
    this.failAll(false);
  }

  private forget(text: string): void {
    if (this.remembered.delete(text)) this.budget.remembered--;
  }

  /** Queues a job; its bytes are charged here unless `taken` already. */
  private push(job: Job, taken = false): void {
    if (!taken) this.budget.queued.charge(cost(job));
    this.unsent.push(job);
    if (this.state === 'open') this.scheduleFlush();
  }

  private dial(): void {
    const socket = connect({
      host: this.endpoint.host,
      port: this.endpoint.port,
      noDelay: true,
      ...(this.options.localPort === undefined ? {} : { localPort: this.options.localPort() }),
    });
    this.socket = socket;
    this.decoder = new FrameDecoder(new AsciiResponseParser(this.options.limits));
    if (this.binary) this.binaryDecoder = new FrameDecoder(new BinaryResponseParser(this.options.limits));
    const timer = setTimeout(() => socket.destroy(), this.options.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      if (this.socket !== socket || this.state === 'closed') return;
      this.state = 'open';
      this.failures = 0;
      this.connects++;
      this.events.connectionChange(true);
      this.queueInvalidations();
      this.scheduleFlush();
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => this.flush());
    socket.on('error', () => {
      // The close that follows does the work; the reason is the same for every job.
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (this.socket === socket) this.onClose();
    });
  }

  private onClose(): void {
    this.socket = undefined;
    if (this.state === 'closed') return;
    if (this.state === 'open') {
      this.disconnects++;
      this.events.connectionChange(false);
    }
    this.failures++;
    this.state = 'down';
    this.failAll(true);
    const base = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffInitialMs * 2 ** Math.max(0, this.failures - 1),
    );
    this.reconnectTimer = setTimeout(
      () => {
        if (this.state !== 'down') return;
        this.state = 'connecting';
        this.dial();
      },
      Math.round(base * (0.8 + Math.random() * 0.4)),
    );
    this.reconnectTimer.unref();
  }

  /** Settles every queued job as lost; with `remember`, their keys are kept for invalidation. */
  private failAll(remember: boolean): void {
    for (const queue of [this.inflight, this.unsent]) {
      for (let job = queue.shift(); job; job = queue.shift()) {
        this.budget.queued.give(cost(job));
        if (job.kind === 'fence') continue;
        if (remember && guards(job.kind)) this.remember(job.key);
        this.events.settled(job, 'lost');
      }
    }
    this.quietUnconfirmed = false;
  }

  /** Queues deletes for remembered keys while the queue is at most half full. */
  private queueInvalidations(): void {
    if (this.remembered.size === 0 || this.state !== 'open') return;
    const room = (this.options.maxQueued >> 1) - this.pending;
    if (room <= 0) return;
    let n = 0;
    for (const text of this.remembered) {
      if (n >= room) break;
      this.forget(text);
      this.push(invalidation(Buffer.from(text, 'latin1')));
      n++;
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes queued jobs as one corked batch, up to the socket's backpressure, then a fence. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || this.state !== 'open' || this.unsent.length === 0 || socket.writableNeedDrain) return;
    socket.cork();
    const until = this.bytes + FLUSH_BYTES;
    while (this.unsent.length > 0 && this.bytes + this.batchAt < until) {
      const job = this.unsent.shift() as Job;
      job.seq = this.nextSeq++;
      this.encode(job);
      this.inflight.push(job);
      if (loud(job.kind)) this.quietUnconfirmed = false;
      else this.quietUnconfirmed = true;
      if (this.batchAt >= BATCH_BYTES - 512) this.sendBatch(socket);
    }
    if (this.quietUnconfirmed) {
      const f = fence();
      this.budget.queued.charge(cost(f));
      this.inflight.push(f);
      this.encode(f);
      this.quietUnconfirmed = false;
    }
    this.sendBatch(socket);
    socket.uncork();
    // More to write: continue once the socket drains, or on the next tick if it did not fill.
    if (this.unsent.length > 0 && !socket.writableNeedDrain) this.scheduleFlush();
  }

  private sendBatch(socket: Socket): void {
    if (this.batchAt === 0) return;
    const chunk = this.batch.subarray(0, this.batchAt);
    this.bytes += this.batchAt;
    socket.write(chunk);
    // The socket holds the written chunk until it is sent: start a new buffer.
    this.batch = Buffer.allocUnsafe(BATCH_BYTES);
    this.batchAt = 0;
  }

  private room(n: number): void {
    if (this.batchAt + n <= this.batch.length) return;
    const socket = this.socket;
    if (socket) this.sendBatch(socket);
    if (n > this.batch.length) this.batch = Buffer.allocUnsafe(n);
  }

  private ascii(text: string): void {
    this.room(text.length);
    this.batchAt += this.batch.write(text, this.batchAt, 'latin1');
  }

  private bytesOf(buf: Buffer): void {
    if (buf.length >= BIG_VALUE && this.socket) {
      this.sendBatch(this.socket);
      this.bytes += buf.length;
      this.socket.write(buf);
      return;
    }
    this.room(buf.length);
    this.batchAt += buf.copy(this.batch, this.batchAt);
  }

  /** `<cm> <key>`, base64 with the b flag when the key is not a plain word (binary-protocol keys). */
  private head(command: string, key: Buffer): string {
    if (keyNeedsBase64(key)) {
      this.ascii(command + key.toString('base64'));
      return ' b';
    }
    this.ascii(command);
    this.bytesOf(key);
    return '';
  }

  /**
   * The TTL to write: what is left of the source's, or undefined when
   * nothing is. memcached's clock is a whole-second counter moved by a timer,
   * which a busy server runs late: the source may have stamped the item up to
   * a second early on top of the tick phase, so two seconds less keep the
   * target's item from outliving the source's (and its reported TTL from
   * being longer).
   */
  private ttl(job: Job): number | undefined {
    if (job.expiresAtMs <= 0) return job.exptime;
    const left = Math.floor((job.expiresAtMs - this.options.now()) / 1000) - CLOCK_MARGIN_S;
    return left >= 1 ? left : undefined;
  }

  /** The meta command for a job (protocol.txt, "Meta Commands"). */
  private encode(job: Job): void {
    const ttl = this.ttl(job);
    if (this.binary) {
      for (const part of binaryJobPackets(job, ttl)) this.bytesOf(part);
      return;
    }
    const o = ' O' + job.seq;
    if (ttl === undefined && (job.kind === 'set' || job.kind === 'fill' || job.kind === 'touch')) {
      // Expired on the source by now (or within a second): the target must not hold it either.
      this.ascii(this.head('md ', job.key) + ' q' + o + '\r\n');
      return;
    }
    switch (job.kind) {
      case 'set':
      case 'append':
      case 'prepend':
      case 'fill': {
        const value = job.value as Buffer;
        const b = this.head('ms ', job.key);
        let line = ' ' + value.length + b;
        if (job.kind === 'set') line += ' T' + ttl + ' F' + job.flags;
        else if (job.kind === 'fill') line += ' ME T' + ttl + ' F' + job.flags;
        else line += job.kind === 'append' ? ' MA' : ' MP';
        this.ascii(line + ' q' + o + '\r\n');
        this.bytesOf(value);
        this.ascii('\r\n');
        return;
      }
      case 'delete':
      case 'invalidate':
      case 'diverged':
        this.ascii(this.head('md ', job.key) + ' q' + o + '\r\n');
        return;
      case 'touch':
        // Not quiet: a miss (EN, which q would hide) shows the touch had no effect.
        this.ascii(this.head('mg ', job.key) + ' T' + ttl + o + '\r\n');
        return;
      case 'read':
        this.ascii(this.head('mg ', job.key) + ' v q' + o + '\r\n');
        return;
      case 'incr':
      case 'decr':
        this.ascii(
          this.head('ma ', job.key) +
            (job.kind === 'decr' ? ' MD' : '') +
            ' D' +
            job.delta +
            // No TTL left: the counter is not created, so the target answers NF (a miss, counted).
            (job.initial === undefined || ttl === undefined ? '' : ' N' + ttl + ' J' + job.initial) +
            ' v' +
            o +
            '\r\n',
        );
        return;
      case 'flush':
        this.ascii(job.exptime >= 0 ? 'flush_all ' + job.exptime + '\r\n' : 'flush_all\r\n');
        return;
      case 'fence':
        this.ascii('mn\r\n');
        return;
    }
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    try {
      if (this.binaryDecoder) this.binaryDecoder.push(chunk, (res) => this.onBinaryReply(res));
      else this.decoder.push(chunk, (frame) => this.onReply(frame));
    } catch {
      // Unreadable replies: pairing is lost, so is the connection; its jobs are remembered.
      socket.destroy();
      return;
    }
    this.queueInvalidations();
    if (this.unsent.length > 0) this.scheduleFlush();
  }

  /**
   * Pairs one reply with its job. Replies come in request order; quiet jobs
   * before the one answered succeeded silently (a loud one among them did
   * not get its answer and counts as failed).
   */
  private onReply(frame: AsciiResponse): void {
    if (frame.kind === 'meta') {
      if (frame.code === 'MN') {
        this.settleUntil((job) => job.kind === 'fence', frame);
        return;
      }
      const seq = metaFlagNumber(frame.flags, 'O');
      if (seq !== undefined) {
        this.settleUntil((job) => job.seq === seq, frame);
        return;
      }
    } else if (frame.kind === 'status' && frame.status === 'OK') {
      this.settleUntil((job) => job.kind === 'flush', frame);
      return;
    } else if (frame.kind === 'error') {
      this.onError();
      return;
    }
    // A reply memshift cannot place: the stream is out of step.
    this.socket?.destroy();
  }

  /** A binary reply names its job by opaque (every job's is its sequence number), a fence by opcode. */
  private onBinaryReply(res: BinaryResponse): void {
    if (res.opcode === BinaryOpcode.Noop) {
      this.settleUntil(
        (job) => job.kind === 'fence',
        () => 'ok',
      );
      return;
    }
    const seq = res.opaque;
    this.settleUntil(
      (job) => job.seq === seq,
      (job) => binaryJobResult(job, res),
    );
  }

  private settleUntil(isIt: (job: Job) => boolean, frame: AsciiResponse | ((job: Job) => JobResult)): void {
    for (let job = this.inflight.shift(); job; job = this.inflight.shift()) {
      if (isIt(job)) {
        this.finish(job, typeof frame === 'function' ? frame(job) : this.resultOf(job, frame));
        return;
      }
      this.finish(job, loud(job.kind) ? 'failed' : 'ok');
    }
    // Nothing waited for this reply.
    this.socket?.destroy();
  }

  /**
   * Error replies carry no opaque token (protocol.txt, "Error strings"). It
   * answers the first loud job unless quiet jobs precede it; then it is one of
   * those, and since which cannot be told, all of them count as failed.
   */
  private onError(): void {
    const head = this.inflight.peek();
    if (!head) {
      this.socket?.destroy();
      return;
    }
    if (loud(head.kind) && head.kind !== 'fence') {
      this.inflight.shift();
      this.finish(head, 'failed');
      return;
    }
    let settled = 0;
    for (let job = this.inflight.peek(); job && !loud(job.kind); job = this.inflight.peek()) {
      this.inflight.shift();
      this.finish(job, 'failed');
      settled++;
    }
    if (settled === 0) this.socket?.destroy();
  }

  private resultOf(job: Job, frame: AsciiResponse): JobResult {
    if (frame.kind !== 'meta') return 'ok';
    switch (frame.code) {
      case 'HD':
      case 'MN':
        return 'ok';
      case 'NF':
      case 'EN':
        // A delete of a missing key did what it should; anything else did nothing.
        return job.kind === 'delete' || job.kind === 'invalidate' || job.kind === 'diverged'
          ? 'ok'
          : 'absent';
      case 'NS':
        return job.kind === 'fill' ? 'not_stored' : 'absent';
      case 'VA':
        if ((job.kind === 'incr' || job.kind === 'decr') && !sameNumber(frame.value, job.expected)) {
          return 'diverged';
        }
        return 'ok';
      default:
        return 'failed';
    }
  }

  private finish(job: Job, result: JobResult): void {
    this.budget.queued.give(cost(job));
    if (job.kind === 'fence') return;
    if (result === 'failed' && (job.kind === 'invalidate' || job.kind === 'diverged')) {
      // The delete itself was refused (a key the server cannot take): retrying would loop.
      this.budget.unrecoverable++;
    } else if (result === 'failed' && guards(job.kind)) this.remember(job.key);
    else if (result === 'diverged') {
      // Behind everything already queued for this key; a later write then loses the key too: still a miss.
      this.push(divergedDelete(job.key));
    } else if (result === 'ok' && job.kind === 'invalidate') this.events.invalidated();
    this.events.settled(job, result);
  }
}

function sameNumber(value: Buffer | undefined, expected: bigint): boolean {
  if (value === undefined) return false;
  const text = value.toString('latin1').trim();
  return /^\d+$/.test(text) && BigInt(text) === expected;
}

const NO_KEY = Buffer.alloc(0);

export function makeJob(
  kind: JobKind,
  key: Buffer,
  capturedMs: number,
  fields: {
    value?: Buffer;
    flags?: number;
    exptime?: number;
    delta?: bigint;
    expected?: bigint;
    initial?: bigint;
    expiresAtMs?: number;
  } = {},
): Job {
  return {
    kind,
    key,
    value: fields.value,
    flags: fields.flags ?? 0,
    exptime: fields.exptime ?? 0,
    delta: fields.delta ?? 0n,
    expected: fields.expected ?? 0n,
    initial: fields.initial,
    expiresAtMs: fields.expiresAtMs ?? 0,
    capturedMs,
    seq: 0,
  };
}

function invalidation(key: Buffer): Job {
  return makeJob('invalidate', key, -1);
}

function divergedDelete(key: Buffer): Job {
  return makeJob('diverged', key, -1);
}

function fence(): Job {
  return makeJob('fence', NO_KEY, -1);
}
