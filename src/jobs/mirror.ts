/**
 * `memshift mirror`: passive capture on a source server, every request paired
 * with its response, and the outcome applied to the new pool.
 *
 *   tcpdump | pcap file → CapturePipeline → OperationExtractor → Replayer (one per route)
 *
 * The production path is never touched: memshift only reads a copy of the
 * packets. A slow or dead new pool costs the replayer's bounded queues and
 * counters, never the source's clients.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CaptureProgram } from '../capture/capture-program.js';
import type { AddressRange } from '../capture/filter.js';
import { CapturePipeline, type CaptureCounters } from '../capture/pipeline.js';
import type { CloseReason, Direction, Flow, FlowListener } from '../capture/tcp-reassembly.js';
import {
  captureSizing,
  startTcpdump,
  type CaptureSizing,
  type TcpdumpCapture,
  type TcpdumpStats,
} from '../capture/tcpdump.js';
import { MemcachedClient } from '../net/client.js';
import { parserLimitsFor, readServerLimits, type ServerLimits } from '../net/server-limits.js';
import { OperationExtractor } from '../ops/extractor.js';
import { runCopy, type CopyOptions, type CopyProgress, type CopyReport } from './copy.js';
import type { Operation } from '../ops/operation.js';
import { MemshiftError } from '../protocol/errors.js';
import { DEFAULT_QUEUE_BYTES, Replayer, type ReplayerOptions } from '../replay/replayer.js';
import { ByteBudget } from '../ops/budget.js';
import { CaptureLoss, type CaptureLossReport } from './capture-loss.js';
import { inPortRange, type TwoWayOptions } from '../replay/two-way.js';
import { parsePoolSpec, type Pool } from '../topology/pool.js';

/**
 * How far behind the clock capture time is assumed complete when no packet
 * says so (quiet writes expire by it), and how long the last packets are
 * waited for at stop: with memshift-capture or immediate delivery packets
 * come within milliseconds; from tcpdump in kernel batches up to a second late.
 */
const CAPTURE_DELAY_MS = { immediate: 250, batched: 1200 } as const;
/** How often a quiet live capture moves capture time on by the clock (held quiet writes expire). */
const TICK_MS = 50;
/** How often capture loss (kernel drops, stream gaps) is read and compared with the interval before. */
const LOSS_INTERVAL_MS = 1000;
/** How often a stopping capture looks whether it has caught up with the traffic. */
const CATCH_UP_POLL_MS = 20;

/** One source port and the pool its traffic goes to. */
export interface MirrorRoute {
  readonly sourcePort: number;
  readonly target: Pool;
  /** A 1:1 map (one old server to one new server): flush_all may be replicated. */
  readonly mapped: boolean;
}

export type ReplayTuning = Omit<ReplayerOptions, 'target' | 'mapped' | 'source'>;

/** Copy settings for `--backfill` (source, target and freshness come from the route). */
export type BackfillOptions = Omit<CopyOptions, 'from' | 'to' | 'freshness' | 'signal'>;

export interface BackfillState {
  readonly sourcePort: number;
  progress: CopyProgress | undefined;
  report: CopyReport | undefined;
  error: string | undefined;
}

export interface MirrorOptions {
  readonly routes: readonly MirrorRoute[];
  /** Where the source server answers memshift's own lookups (fill TTLs): usually this host. */
  readonly sourceHost: string;
  /** Live capture interface (`any`, `eth0`, `lo`); ignored with `pcapFile`. */
  readonly interface: string;
  readonly pcapFile?: string | undefined;
  /** Replay a pcap file at this multiple of its recorded pace; 0 = as fast as possible. */
  readonly speed?: number | undefined;
  /** Replay the pcap file again and again until stopped. */
  readonly loop?: boolean | undefined;
  readonly excludeClients: readonly AddressRange[];
  readonly replay: ReplayTuning;
  /** Stop by itself after this long (ms). */
  readonly durationMs?: number | undefined;
  /** How long, after capture stops, queued writes may still drain (ms). */
  readonly drainMs: number;
  readonly tcpdumpPath?: string | undefined;
  /** memshift-capture (default when built) or tcpdump. */
  readonly captureProgram?: CaptureProgram | undefined;
  /** memshift-capture's ring block timeout (ms). */
  readonly captureTimeoutMs?: number | undefined;
  readonly tcpdumpBufferKiB?: number | undefined;
  /** Packets per second (both directions) the immediate-delivery ring is sized for. */
  readonly capturePacketsPerSecond?: number | undefined;
  /**
   * Have the kernel deliver each packet at once (tcpdump --immediate-mode,
   * snap length and ring sized from the interface's MTU and the expected
   * packet rate) rather than in batches up to a second late: replay lag in
   * milliseconds, but the ring holds one packet per 64 KiB slot, so a
   * consumer held up by a busy host drops sooner (see bench/mirror.ts).
   */
  readonly immediate?: boolean | undefined;
  /**
   * Copy what each source already holds while mirroring runs (live capture
   * only). Mirroring guards the copy: a key mutated after the copy read it is
   * not written, so nothing stale lands and nothing deleted comes back.
   */
  readonly backfill?: BackfillOptions | undefined;
  /**
   * Largest value memshift reads from the capture (`--max-value`); default:
   * the largest `item_size_max` of the source servers, read from them at start.
   * A larger value is skipped by its length and its key invalidated.
   */
  readonly maxValueBytes?: number | undefined;
  /** Bytes all routes' queued writes may hold together (default 256 MiB). */
  readonly maxQueueBytes?: number | undefined;
  /** Bytes the values of captured requests awaiting replies may hold (default 128 MiB). */
  readonly maxPendingBytes?: number | undefined;
  /** Live events worth a line (a server whose limits could not be read, a target going down, ...). */
  readonly onWarning?: ((message: string) => void) | undefined;
  /**
   * One side of a two-way pair (src/replay/two-way.ts): target connections
   * bind ports of `ports`; connections to the source from that range are the
   * peer mirror's, observed and never replayed.
   */
  readonly twoWay?: TwoWayOptions | undefined;
}

/** The servers' limits memshift follows, as read at start. */
export interface MirrorLimits {
  /** The value bound of the capture parsers (bytes). */
  readonly maxValueBytes: number;
  /** `item_size_max` by server address; servers that did not answer are missing. */
  readonly sources: Record<string, number>;
  readonly targets: Record<string, number>;
}

export interface MirrorSummary {
  readonly seconds: number;
  readonly source: 'live' | 'pcap';
  readonly capture: CaptureCounters;
  readonly kernel: TcpdumpStats | undefined;
  /** Traffic the capture lost (kernel drops, stream gaps): keys it wrote may be stale on the new pool. */
  readonly loss: CaptureLossReport;
  readonly operations: OperationExtractor['counters'];
  /** Bytes held by captured values awaiting their replies, and the budget. */
  readonly pendingBytes: { used: number; max: number };
  /** Flows of memshift's own connections to the source, left out. */
  readonly ownFlowsSkipped: number;
  /** Two-way: flows of the peer mirror to the source (observed, never replayed). */
  readonly peerFlows: number;
  readonly routes: { sourcePort: number; target: string; replay: ReturnType<Replayer['status']> }[];
  readonly backfill: BackfillState[] | undefined;
  readonly limits: MirrorLimits | undefined;
  readonly drained: boolean;
  readonly error: string | undefined;
}

/**
 * Runs one mirror: start(), then stop() (or wait for `done` when a duration or
 * the end of a pcap file ends it), then summary().
 */
export class MirrorJob {
  readonly options: MirrorOptions;
  readonly replayers: Map<number, Replayer>;
  readonly extractor: OperationExtractor;
  private pipeline: CapturePipeline;
  /** Counters of earlier passes over a looped pcap file. */
  private readonly pastPasses: CaptureCounters[] = [];
  private readonly localAddresses = localAddressSet();
  /** Resolves when capture has stopped and the replay queues drained (or the drain time ran out). */
  readonly done: Promise<MirrorSummary>;
  private tcpdump: TcpdumpCapture | undefined;
  private readonly flowReplayer = new Map<number, Replayer>();
  private readonly ignoredFlows = new Set<number>();
  private readonly peerFlowIds = new Set<number>();
  private ownFlowsSkipped = 0;
  private peerFlows = 0;
  private started = 0;
  private finishedAt = 0;
  /** Values, partial values and lines the pending byte budget had turned away at the last warning check. */
  private shedSeen = 0;
  private stopRequested = false;
  private stopCapture: (() => void) | undefined;
  private lastCaptureMicros = 0;
  /** When tcpdump last handed over bytes (ms). */
  private lastChunkAt = 0;
  private drained = false;
  private failure: MemshiftError | undefined;
  private resolveDone: (summary: MirrorSummary) => void = () => {};
  private readonly backfills: BackfillState[] = [];
  private backfillRuns: Promise<unknown>[] = [];
  private readonly backfillAbort = new AbortController();
  private limits: MirrorLimits | undefined;
  private sizing: CaptureSizing | undefined;
  private readonly warn: (message: string) => void;
  private readonly loss: CaptureLoss;
  private lossTimer: NodeJS.Timeout | undefined;

  constructor(options: MirrorOptions) {
    if (options.routes.length === 0)
      throw new MemshiftError('MEMSHIFT_ERR_USAGE', 'mirror needs at least one route');
    this.options = options;
    this.warn = options.onWarning ?? (() => {});
    this.loss = new CaptureLoss(this.warn);
    // One budget for every route's queues: the process's memory is what is bounded.
    const queueBudget = new ByteBudget(options.maxQueueBytes ?? DEFAULT_QUEUE_BYTES);
    this.replayers = new Map(
      options.routes.map((route) => [
        route.sourcePort,
        new Replayer({
          ...options.replay,
          target: route.target,
          mapped: route.mapped,
          queueBudget,
          ...(options.replay.onWarning === undefined && options.onWarning !== undefined
            ? { onWarning: options.onWarning }
            : {}),
          ...(options.twoWay === undefined ? {} : { twoWay: options.twoWay }),
          // A recorded capture has no live source to ask for remaining TTLs: no fills then; and its
          // clock is the packets' own, so TTLs count down from the time of the packet reached.
          ...(options.pcapFile === undefined
            ? { source: formatHostPort(options.sourceHost, route.sourcePort) }
            : { fill: false, now: () => this.lastCaptureMicros / 1000 }),
        }),
      ]),
    );
    this.extractor = new OperationExtractor(
      (op) => this.onOperation(op),
      options.maxPendingBytes === undefined ? {} : { maxPendingBytes: options.maxPendingBytes },
    );
    this.pipeline = this.newPipeline();
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Starts capturing; resolves once capture is running (tcpdump listening, or the file opened). */
  async start(): Promise<void> {
    this.started = Date.now();
    const unread = await this.readLimits();
    if (this.options.pcapFile !== undefined) {
      await stat(this.options.pcapFile).catch((err: NodeJS.ErrnoException) => {
        throw new MemshiftError(
          'MEMSHIFT_ERR_PCAP',
          `cannot read ${this.options.pcapFile}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`,
        );
      });
      void this.readFile(this.options.pcapFile).then(
        () => this.finish(),
        (err: unknown) => this.finish(err),
      );
    } else {
      await this.startLive();
      if (this.options.backfill) this.startBackfill(this.options.backfill);
    }
    // Told once capture runs, so a capture that cannot start says only why.
    if (unread.length > 0) {
      this.warn(
        `could not read item_size_max from ${unread.join(', ')}; assuming memcached's default (1 MiB)`,
      );
    }
    this.lossTimer = setInterval(() => void this.observeLoss(), LOSS_INTERVAL_MS);
    this.lossTimer.unref();
    if (this.options.durationMs !== undefined) {
      const timer = setTimeout(() => void this.stop(), this.options.durationMs);
      void this.done.then(() => clearTimeout(timer));
    }
  }

  /** Stops capture, drains the replay queues within `drainMs`, and resolves with the summary. */
  async stop(): Promise<MirrorSummary> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.stopCapture?.();
    }
    return this.done;
  }

  /** A snapshot of every counter, for the status line, `--json` and the dashboard. */
  summary(): MirrorSummary {
    const end = this.finishedAt || Date.now();
    return {
      seconds: Math.max(0, (end - this.started) / 1000),
      source: this.options.pcapFile === undefined ? 'live' : 'pcap',
      capture: [...this.pastPasses, this.pipeline.counters].reduce(sumCounters),
      kernel: this.tcpdump ? { ...this.tcpdump.stats } : undefined,
      loss: this.loss.report(),
      operations: { ...this.extractor.counters },
      pendingBytes: this.extractor.pendingBytes,
      ownFlowsSkipped: this.ownFlowsSkipped,
      peerFlows: this.peerFlows,
      backfill: this.options.backfill ? this.backfills : undefined,
      limits: this.limits,
      routes: [...this.replayers].map(([port, replayer]) => ({
        sourcePort: port,
        target: replayer.targetName,
        replay: replayer.status(),
      })),
      drained: this.drained,
      error: this.failure?.message,
    };
  }

  /** Asks tcpdump for its kernel drop count now (live capture only). */
  async refreshKernelStats(): Promise<void> {
    await this.tcpdump?.requestStats();
  }

  /** Reads what the capture lost since the last interval (kernel drops need a fresh count from tcpdump). */
  private async observeLoss(): Promise<void> {
    if (!this.finishedAt) await this.tcpdump?.requestStats();
    const capture = [...this.pastPasses, this.pipeline.counters].reduce(sumCounters);
    this.loss.observe({
      kernelDrops: this.tcpdump?.stats.droppedByKernel ?? 0,
      streamGaps: capture.flows.gaps,
      streamGapBytes: capture.flows.gapBytes,
      requestGapBytes: capture.flows.requestGapBytes,
      requestBytes: capture.flows.requestBytes,
      requests: this.extractor.counters.requests,
    });
  }

  /**
   * Reads `item_size_max` of every source and target server (DESIGN.md
   * invariant 8): the capture parsers take any value a source can store, and
   * each replayer turns a write its target server could not store into a
   * delete of the key. A server that does not answer keeps memcached's default.
   */
  private async readLimits(): Promise<string[]> {
    const unread: string[] = [];
    const read = async (address: string): Promise<ServerLimits | undefined> => {
      const client = new MemcachedClient(address, {
        connections: 1,
        requestTimeoutMs: 2000,
        connectTimeoutMs: 2000,
      });
      try {
        return { ...(await readServerLimits(client)), address };
      } catch {
        unread.push(address);
        return undefined;
      } finally {
        client.destroy();
      }
    };
    const live = this.options.pcapFile === undefined;
    const sourceAddresses = live
      ? this.options.routes.map((r) => formatHostPort(this.options.sourceHost, r.sourcePort))
      : [];
    const [sources, targets] = await Promise.all([
      Promise.all(sourceAddresses.map(read)),
      Promise.all(
        this.options.routes.map((route) => Promise.all(route.target.servers.map((s) => read(s.address)))),
      ),
    ]);
    const known = (list: (ServerLimits | undefined)[]): ServerLimits[] =>
      list.filter((l): l is ServerLimits => l !== undefined);
    const allTargets = targets.flatMap(known);
    for (const [i, route] of this.options.routes.entries()) {
      this.replayers.get(route.sourcePort)?.useTargetLimits(known(targets[i] ?? []));
    }
    // A recorded capture has no source to ask: values as large as the targets take are read.
    const bounding = live ? known(sources) : allTargets;
    const limits = parserLimitsFor(bounding, this.options.maxValueBytes);
    this.extractor.useLimits(limits);
    const byAddress = (list: ServerLimits[]): Record<string, number> =>
      Object.fromEntries(list.map((l) => [l.address, l.itemSizeMax]));
    this.limits = {
      maxValueBytes: limits.maxValueBytes,
      sources: byAddress(known(sources)),
      targets: byAddress(allTargets),
    };
    return unread;
  }

  /** What is being captured, for the line that says capture is running. */
  captureInfo(): {
    readonly interface: string;
    readonly filter: string | undefined;
    readonly file: string | undefined;
    readonly sizing: CaptureSizing | undefined;
    readonly program: CaptureProgram | undefined;
    readonly timeoutMs: number | undefined;
  } {
    return {
      interface: this.options.interface,
      filter: this.tcpdump?.args.at(-1),
      file: this.options.pcapFile,
      sizing: this.sizing,
      program: this.tcpdump?.program,
      timeoutMs: this.tcpdump?.timeoutMs,
    };
  }

  private async startLive(): Promise<void> {
    const immediate = this.options.immediate === true;
    const bufferKiB = this.options.tcpdumpBufferKiB;
    const sizing = immediate
      ? captureSizing(this.options.interface, {
          bufferKiB,
          packetsPerSecond: this.options.capturePacketsPerSecond,
        })
      : undefined;
    this.sizing = sizing;
    const tcpdump = startTcpdump({
      program: this.options.captureProgram,
      timeoutMs: this.options.captureTimeoutMs,
      interface: this.options.interface,
      immediate,
      ...(sizing === undefined ? {} : { snapLength: sizing.snapLength, bufferKiB: sizing.bufferKiB }),
      ...(sizing === undefined && bufferKiB !== undefined ? { bufferKiB } : {}),
      serverPorts: this.options.routes.map((r) => r.sourcePort),
      excludeClients: this.options.excludeClients,
      ...(this.options.tcpdumpPath === undefined ? {} : { tcpdumpPath: this.options.tcpdumpPath }),
    });
    this.tcpdump = tcpdump;
    const delay = tcpdump.prompt ? CAPTURE_DELAY_MS.immediate : CAPTURE_DELAY_MS.batched;
    tcpdump.stdout.on('data', (chunk: Buffer) => this.push(chunk));
    // A quiet live capture brings no packets to sweep idle flows by capture time: sweep by the clock too.
    const sweeper = setInterval(() => {
      this.pipeline.flows.sweep(Date.now() * 1000);
      this.warnIfShedding();
    }, 1000);
    sweeper.unref();
    const ticker = setInterval(() => this.extractor.tick((Date.now() - delay) * 1000), TICK_MS);
    ticker.unref();
    this.stopCapture = () => {
      // Packets still in the kernel ring are lost when tcpdump stops: read up to now first.
      void this.catchUp(Date.now(), delay).then((behindMs) => {
        clearInterval(sweeper);
        clearInterval(ticker);
        if (behindMs > 0) {
          this.loss.stoppedBehind(behindMs);
          this.warn(
            `capture stopped ${behindMs} ms behind the traffic: packets still queued in the kernel were not read; ` +
              'keys may be stale on the new pool: run `memshift repair` before the switch',
          );
        }
        void tcpdump.stop();
      });
    };
    void tcpdump.exited.then(() => {
      clearInterval(sweeper);
      clearInterval(ticker);
      return this.finish(tcpdump.error);
    });
    await tcpdump.ready;
  }

  /** Says when the pending byte budget began to turn values away (Warnings rate-limits the repeats). */
  private warnIfShedding(): void {
    const c = this.extractor.counters;
    const shed = c.shedValues + c.shedPartialValues + c.shedLines;
    if (shed === this.shedSeen) return;
    this.shedSeen = shed;
    this.warn(
      `the pending byte budget (--max-pending-bytes ${this.extractor.pendingBytes.max}) is full: ` +
        `values are not held and their keys are invalidated on the target (${shed} so far)`,
    );
  }

  /** One copy per route, from its source server into its pool, guarded by that route's replayer. */
  private startBackfill(options: BackfillOptions): void {
    for (const route of this.options.routes) {
      const state: BackfillState = {
        sourcePort: route.sourcePort,
        progress: undefined,
        report: undefined,
        error: undefined,
      };
      this.backfills.push(state);
      const address = formatHostPort(this.options.sourceHost, route.sourcePort);
      const run = runCopy(
        {
          ...options,
          from: parsePoolSpec(address, 'modula', { name: address, where: '--backfill' }),
          to: route.target,
          freshness: this.replayers.get(route.sourcePort) as Replayer,
          signal: this.backfillAbort.signal,
        },
        { onProgress: (progress) => (state.progress = progress) },
      ).then(
        (report) => (state.report = report),
        (err: unknown) => (state.error = err instanceof Error ? err.message : String(err)),
      );
      this.backfillRuns.push(run);
    }
  }

  private async readFile(file: string): Promise<void> {
    const speed = this.options.speed ?? 0;
    do {
      const stream = createReadStream(file, { highWaterMark: speed > 0 ? 16 * 1024 : 256 * 1024 });
      this.stopCapture = () => stream.destroy();
      let firstMicros = 0;
      const wallStart = Date.now();
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          this.push(chunk);
          if (this.stopRequested) break;
          if (speed > 0 && this.lastCaptureMicros > 0) {
            firstMicros ||= this.lastCaptureMicros;
            const ahead = (this.lastCaptureMicros - firstMicros) / 1000 / speed - (Date.now() - wallStart);
            if (ahead > 1) await sleep(Math.min(ahead, 1000));
          }
        }
      } catch (err) {
        // Stopping destroys the stream under the reader: that is no error.
        if (!this.stopRequested && !this.failure) throw err;
      }
      if (this.failure) return;
      if (this.stopRequested) break;
      this.pipeline.end();
      if (!this.options.loop) break;
      this.pastPasses.push(this.pipeline.counters);
      this.pipeline = this.newPipeline();
    } while (!this.stopRequested);
  }

  private newPipeline(): CapturePipeline {
    return new CapturePipeline(this.listener(), {
      serverPorts: this.options.routes.map((r) => r.sourcePort),
      excludeClients: this.options.excludeClients,
    });
  }

  /**
   * Waits until capture has read the packets sent before `stopAt` (a packet
   * stamped later has come through), or tcpdump has handed over nothing for
   * `quietMs` (nothing is left), at most the drain time. Resolves with how
   * far behind `stopAt` the capture stayed, 0 when it caught up.
   */
  private async catchUp(stopAt: number, quietMs: number): Promise<number> {
    const deadline = stopAt + Math.max(this.options.drainMs, quietMs);
    for (;;) {
      const now = Date.now();
      const caughtUp = this.lastCaptureMicros / 1000 >= stopAt;
      const quiet = now - Math.max(this.lastChunkAt, stopAt) >= quietMs;
      if (this.failure || caughtUp || quiet) return 0;
      if (now >= deadline) return Math.max(1, Math.round(stopAt - this.lastCaptureMicros / 1000));
      await sleep(CATCH_UP_POLL_MS);
    }
  }

  private push(chunk: Buffer): void {
    this.lastChunkAt = Date.now();
    if (this.failure) return;
    try {
      this.pipeline.push(chunk);
    } catch (err) {
      // A malformed capture stream ends the capture (clear error), never the process.
      this.failure =
        err instanceof MemshiftError ? err : new MemshiftError('MEMSHIFT_ERR_CAPTURE', String(err));
      this.stopCapture?.();
    }
  }

  private async finish(err?: unknown): Promise<void> {
    if (this.finishedAt) return;
    this.finishedAt = Date.now();
    if (err !== undefined && !this.failure) {
      this.failure =
        err instanceof MemshiftError ? err : new MemshiftError('MEMSHIFT_ERR_CAPTURE', String(err));
    }
    this.backfillAbort.abort();
    await Promise.all(this.backfillRuns);
    this.pipeline.flows.closeAll('end');
    clearInterval(this.lossTimer);
    // tcpdump's last counts came with its exit; holes of flows closed just now are gaps too.
    await this.observeLoss();
    const drains = await Promise.all([...this.replayers.values()].map((r) => r.drain(this.options.drainMs)));
    this.drained = drains.every(Boolean);
    await Promise.all([...this.replayers.values()].map((r) => r.close()));
    this.resolveDone(this.summary());
  }

  private onOperation(op: Operation): void {
    const replayer = this.flowReplayer.get(op.connection);
    if (this.peerFlowIds.has(op.connection)) replayer?.observePeer(op);
    else replayer?.apply(op);
  }

  /** Routes flows to their replayer and leaves memshift's own connections to the source out. */
  private listener(): FlowListener {
    const extractor = this.extractor;
    return {
      open: (flow: Flow) => {
        const replayer = this.replayers.get(flow.server.port);
        if (!replayer || this.isOwn(flow)) {
          this.ignoredFlows.add(flow.id);
          if (replayer) this.ownFlowsSkipped++;
          return;
        }
        if (this.options.twoWay !== undefined && inPortRange(this.options.twoWay.ports, flow.client.port)) {
          if (this.options.pcapFile === undefined && !this.localAddresses.has(flow.server.address)) {
            // Our own write to a target server that listens on a captured port number.
            this.ignoredFlows.add(flow.id);
            this.ownFlowsSkipped++;
            return;
          }
          // The peer mirror writing to our source: parsed to learn its keys, never replayed (two-way.ts).
          this.peerFlowIds.add(flow.id);
          this.peerFlows++;
        }
        this.flowReplayer.set(flow.id, replayer);
        extractor.open(flow);
      },
      data: (flow: Flow, direction: Direction, chunk: Buffer, timestampMicros: number) => {
        this.lastCaptureMicros = timestampMicros;
        if (!this.ignoredFlows.has(flow.id)) extractor.data(flow, direction, chunk, timestampMicros);
      },
      gap: (flow: Flow, direction: Direction, missing: number) => {
        if (!this.ignoredFlows.has(flow.id)) extractor.gap(flow, direction, missing);
      },
      close: (flow: Flow, reason: CloseReason) => {
        if (this.ignoredFlows.delete(flow.id)) return;
        extractor.close(flow, reason);
        this.flowReplayer.delete(flow.id);
        this.peerFlowIds.delete(flow.id);
      },
    };
  }

  /** A connection memshift itself opened to the source: from this host, from one of our ports. */
  private isOwn(flow: Flow): boolean {
    if (this.options.pcapFile !== undefined || !this.localAddresses.has(flow.client.address)) return false;
    for (const replayer of this.replayers.values()) {
      if (replayer.ownClientPorts().includes(flow.client.port)) return true;
    }
    return false;
  }
}

function localAddressSet(): Set<string> {
  const addresses = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) addresses.add(info.address);
  }
  return addresses;
}

/** Adds two counter records field by field (numbers summed, nested records recursed). */
function sumCounters<T>(a: T, b: T): T {
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [key, value] of Object.entries(b as Record<string, unknown>)) {
      out[key] = key in out ? sumCounters(out[key], value) : value;
    }
    return out as T;
  }
  return b;
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
