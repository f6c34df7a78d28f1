/**
 * Live capture through tcpdump: the one file of the capture layer that starts
 * a process. tcpdump does what needs privileges and the kernel's BPF (only
 * the server ports reach us, excluded clients are dropped in the kernel) and
 * writes a pcap stream to its stdout, packet-buffered (-U), which the caller
 * pushes into a PcapReader or CapturePipeline. Its stderr tells us when it
 * is listening, why it could not start, and how many packets the kernel
 * dropped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { MemshiftError } from '../protocol/errors.js';
import {
  chooseCaptureProgram,
  DEFAULT_CAPTURE_TIMEOUT_MS,
  HELPER_NAME,
  CAPTURE_HELPER_PATH,
  type CaptureProgram,
} from './capture-program.js';
import { captureFilter, type AddressRange } from './filter.js';

export interface TcpdumpOptions {
  /** Interface to capture on (`lo`, `eth0`, `any`). */
  readonly interface: string;
  /** Server ports: the filter keeps traffic to and from them. */
  readonly serverPorts: readonly number[];
  /** Clients left out by the kernel filter. */
  readonly excludeClients?: readonly AddressRange[];
  /** Kernel capture buffer in KiB (-B), default 64 MiB: bursts at 100k requests/s need room. */
  readonly bufferKiB?: number;
  /** Snap length (-s), default 0: whole packets. */
  readonly snapLength?: number;
  /**
   * Deliver each packet at once (--immediate-mode) instead of in kernel
   * batches (up to a second late). Costs CPU, and libpcap then sizes its ring
   * in snap-length slots (-B 64 MiB / 256 KiB = 256 packets with -s 0), so
   * pair it with a small snap length or expect kernel drops under load.
   */
  readonly immediate?: boolean;
  /** The tcpdump binary (default `tcpdump`, looked up on PATH); giving it chooses tcpdump. */
  readonly tcpdumpPath?: string;
  /** tcpdump, or memshift-capture (default when built, see capture-program.ts). */
  readonly program?: CaptureProgram | undefined;
  /** memshift-capture only: how long the kernel may hold a ring block (-t), default 5 ms. */
  readonly timeoutMs?: number | undefined;
  /** The memshift-capture binary (default dist/bin/memshift-capture). */
  readonly helperPath?: string | undefined;
}

/** tcpdump's own counts, from its stats lines; undefined until it has printed one. */
export interface TcpdumpStats {
  captured: number | undefined;
  receivedByFilter: number | undefined;
  droppedByKernel: number | undefined;
  droppedByInterface: number | undefined;
}

const DEFAULT_BUFFER_KIB = 64 * 1024;
/** Stderr kept for error messages: the last lines only, each cut to a bounded length. */
const KEPT_LINES = 20;
const MAX_LINE_CHARS = 1024;
const STOP_GRACE_MS = 5000;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** How live capture is sized for immediate delivery, and from what. */
export interface CaptureSizing {
  /** The interface's MTU (the largest of all for `any`), or undefined when it could not be read. */
  readonly mtu: number | undefined;
  readonly snapLength: number;
  readonly bufferKiB: number;
  /** Packets the kernel ring holds: the buffer over the snap length. */
  readonly ringPackets: number;
  /** The packet rate the ring is sized for, and how long it holds packets at that rate. */
  readonly packetsPerSecond: number;
  readonly ringMs: number;
}

/** The largest IPv4 packet: what segmentation offload may hand to capture whatever the MTU. */
const MAX_IP_PACKET = 65535;
/** Link headers in front of the IP packet (Ethernet and VLAN tags, Linux cooked v2 for `any`), with room. */
const LINK_HEADER_ROOM = 64;
/** Packets per second (both directions) the ring is sized for unless told. */
export const DEFAULT_CAPTURE_RATE = 80_000;
/** How long the ring should hold packets at that rate while tcpdump is not scheduled. */
const RING_SECONDS = 0.05;
const MIN_BUFFER_KIB = 64 * 1024;
const MAX_BUFFER_KIB = 1024 * 1024;

/**
 * Sizes capture for immediate delivery. With --immediate-mode libpcap gives
 * each packet a ring slot of the snap length, so a whole-packet snap (-s 0,
 * 256 KiB) leaves a 64 MiB ring 256 packets. The snap length comes from the
 * interface's MTU instead (never under the largest IP packet, which offload
 * can hand to capture: a shorter snap would cut requests, so their values),
 * and the ring from the packet rate expected: RING_SECONDS of packets, up to
 * 1 GiB.
 */
export function captureSizing(
  iface: string,
  options: { readonly bufferKiB?: number | undefined; readonly packetsPerSecond?: number | undefined } = {},
): CaptureSizing {
  const mtu = interfaceMtu(iface);
  const snapLength = Math.max(mtu ?? MAX_IP_PACKET, MAX_IP_PACKET) + LINK_HEADER_ROOM;
  const packetsPerSecond = options.packetsPerSecond ?? DEFAULT_CAPTURE_RATE;
  // In whole MiB: the start line reads better, and the kernel allocates the ring in large blocks anyway.
  const wanted = Math.ceil((snapLength * packetsPerSecond * RING_SECONDS) / 1024 / 1024) * 1024;
  const bufferKiB = options.bufferKiB ?? Math.min(MAX_BUFFER_KIB, Math.max(MIN_BUFFER_KIB, wanted));
  const ringPackets = Math.floor((bufferKiB * 1024) / snapLength);
  return {
    mtu,
    snapLength,
    bufferKiB,
    ringPackets,
    packetsPerSecond,
    ringMs: Math.round((ringPackets / packetsPerSecond) * 1000),
  };
}

function interfaceMtu(iface: string): number | undefined {
  const read = (name: string): number | undefined => {
    try {
      const mtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
      return Number.isInteger(mtu) && mtu > 0 ? mtu : undefined;
    } catch {
      return undefined;
    }
  };
  if (iface !== 'any') return read(iface);
  let largest: number | undefined;
  try {
    for (const name of readdirSync('/sys/class/net')) {
      const mtu = read(name);
      if (mtu !== undefined) largest = Math.max(largest ?? 0, mtu);
    }
  } catch {
    return undefined;
  }
  return largest;
}

/**
 * The command line for `options`: `-i IFACE -U -w - -s N -B KIB [-t MS] [--immediate-mode] FILTER`
 * (-t for memshift-capture only).
 */
export function tcpdumpArgs(options: TcpdumpOptions, program: CaptureProgram = 'tcpdump'): string[] {
  const args = ['-i', options.interface, '-U', '-w', '-', '-s', String(options.snapLength ?? 0)];
  args.push('-B', String(options.bufferKiB ?? DEFAULT_BUFFER_KIB));
  if (program === 'helper') args.push('-t', String(options.timeoutMs ?? DEFAULT_CAPTURE_TIMEOUT_MS));
  if (options.immediate) args.push('--immediate-mode');
  args.push(captureFilter(options.serverPorts, options.excludeClients ?? []));
  return args;
}

export class TcpdumpCapture {
  /** The pcap stream. Read it steadily: a full pipe makes tcpdump drop packets. */
  readonly stdout: Readable;
  readonly args: readonly string[];
  /** Which program captures, and (memshift-capture) its ring block timeout in ms. */
  readonly program: CaptureProgram;
  readonly timeoutMs: number | undefined;
  /** Resolves once tcpdump listens; rejects with a one-line MemshiftError when it cannot start. */
  readonly ready: Promise<void>;
  /** Resolves when tcpdump has exited, with its final counts. */
  readonly exited: Promise<TcpdumpStats>;
  readonly stats: TcpdumpStats = {
    captured: undefined,
    receivedByFilter: undefined,
    droppedByKernel: undefined,
    droppedByInterface: undefined,
  };
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private partial = '';
  private listening = false;
  private stopping = false;
  private failure: MemshiftError | undefined;
  private statsWaiters: Array<() => void> = [];

  constructor(options: TcpdumpOptions) {
    this.program =
      options.tcpdumpPath !== undefined && options.program === undefined
        ? 'tcpdump'
        : chooseCaptureProgram(options.program, options.helperPath);
    const helper = this.program === 'helper';
    this.timeoutMs = helper ? (options.timeoutMs ?? DEFAULT_CAPTURE_TIMEOUT_MS) : undefined;
    this.args = tcpdumpArgs(options, this.program);
    const path = helper ? (options.helperPath ?? CAPTURE_HELPER_PATH) : (options.tcpdumpPath ?? 'tcpdump');
    const name = helper ? HELPER_NAME : 'tcpdump';
    this.child = spawn(path, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this.child);
    installExitHook();
    this.stdout = this.child.stdout as Readable;
    let markReady: () => void = () => {};
    let failReady: (err: MemshiftError) => void = () => {};
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.ready.catch(() => {}); // a caller that never awaits `ready` still sees the error from `exited`
    const stderr = this.child.stderr as Readable;
    stderr.setEncoding('utf8');
    stderr.on('data', (text: string) => {
      for (const line of this.splitLines(text)) {
        if (!this.listening && /listening on /.test(line)) {
          this.listening = true;
          markReady();
        }
        this.parseStats(line);
      }
    });
    this.exited = new Promise<TcpdumpStats>((resolve) => {
      this.child.once('error', (err: NodeJS.ErrnoException) => {
        this.failure = spawnFailure(err, path, name);
        running.delete(this.child);
        failReady(this.failure);
        this.releaseWaiters();
        resolve(this.stats);
      });
      this.child.once('close', (code, signal) => {
        running.delete(this.child);
        if (this.partial !== '') this.parseStats(this.keep(this.partial));
        if (!this.listening) {
          this.failure ??= startFailure(this.lines, options.interface, code, signal, name, path);
          failReady(this.failure);
        } else if (!this.stopping && code !== 0) {
          // It was capturing and stopped by itself: the interface went away, the pipe broke...
          this.failure ??= new MemshiftError(
            'MEMSHIFT_ERR_TCPDUMP',
            `${name} stopped capturing on ${options.interface}: ${lastComplaint(this.lines, code, signal)}`,
          );
        }
        this.releaseWaiters();
        resolve(this.stats);
      });
    });
  }

  /** Whether packets come within milliseconds (memshift-capture, or tcpdump --immediate-mode). */
  get prompt(): boolean {
    return this.program === 'helper' || this.args.includes('--immediate-mode');
  }

  /** The tcpdump process id, once spawned. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Why tcpdump could not start, or why it stopped capturing unasked, once known. */
  get error(): MemshiftError | undefined {
    return this.failure;
  }

  /** The last lines tcpdump wrote to stderr. */
  get stderrLines(): readonly string[] {
    return this.lines;
  }

  /**
   * Asks tcpdump for its counts now (SIGUSR1 makes it print them on Linux);
   * resolves when the line has been read, or tcpdump has exited.
   */
  requestStats(): Promise<TcpdumpStats> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.failure) {
      return Promise.resolve(this.stats);
    }
    const answered = new Promise<TcpdumpStats>((resolve) =>
      this.statsWaiters.push(() => resolve(this.stats)),
    );
    this.child.kill('SIGUSR1');
    return answered;
  }

  /** Stops tcpdump (SIGINT: it flushes its output and prints its counts) and waits for it. */
  async stop(): Promise<TcpdumpStats> {
    if (this.child.exitCode === null && this.child.signalCode === null && !this.failure) {
      this.stopping = true;
      this.child.kill('SIGINT');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  private *splitLines(text: string): Generator<string> {
    let data = this.partial + text;
    let nl = data.indexOf('\n');
    while (nl >= 0) {
      yield this.keep(data.slice(0, nl));
      data = data.slice(nl + 1);
      nl = data.indexOf('\n');
    }
    this.partial = data.length > MAX_LINE_CHARS ? data.slice(0, MAX_LINE_CHARS) : data;
  }

  private keep(line: string): string {
    const cut = line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) : line;
    this.lines.push(cut);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
    return cut;
  }

  /** "N packets captured", "... received by filter", "... dropped by kernel" (one line or three). */
  private parseStats(line: string): void {
    const s = this.stats;
    const count = (what: string): number | undefined => {
      const m = new RegExp(`(\\d+) packets? ${what}`).exec(line);
      return m ? Number(m[1]) : undefined;
    };
    const captured = count('captured');
    const received = count('received by filter');
    const kernel = count('dropped by kernel');
    const iface = count('dropped by interface');
    if (captured !== undefined) s.captured = captured;
    if (received !== undefined) s.receivedByFilter = received;
    if (iface !== undefined) s.droppedByInterface = iface;
    if (kernel !== undefined) {
      s.droppedByKernel = kernel;
      this.releaseWaiters();
    }
  }

  private releaseWaiters(): void {
    const waiters = this.statsWaiters;
    this.statsWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** Starts tcpdump; await `ready` before sending the traffic you want captured. */
export function startTcpdump(options: TcpdumpOptions): TcpdumpCapture {
  return new TcpdumpCapture(options);
}

function spawnFailure(err: NodeJS.ErrnoException, path: string, name: string): MemshiftError {
  if (err.code === 'ENOENT') {
    const install =
      name === 'tcpdump'
        ? 'install tcpdump: apt-get install tcpdump'
        : 'run `npm run build` (needs gcc libc6-dev libpcap-dev), or use --capture-program tcpdump';
    return new MemshiftError('MEMSHIFT_ERR_TCPDUMP_MISSING', `${name} not found (${path}): ${install}`, {
      cause: err,
    });
  }
  if (err.code === 'EACCES') {
    return new MemshiftError(
      'MEMSHIFT_ERR_TCPDUMP_PERMISSION',
      `cannot run ${path}: run as root or grant: ${grant(name, path)}`,
      { cause: err },
    );
  }
  return new MemshiftError('MEMSHIFT_ERR_TCPDUMP', `cannot start ${path}: ${err.message}`, { cause: err });
}

function startFailure(
  lines: readonly string[],
  iface: string,
  code: number | null,
  signal: NodeJS.Signals | null,
  name: string,
  path: string,
): MemshiftError {
  const text = lines.join('\n');
  if (/permission|not permitted/i.test(text)) {
    return new MemshiftError(
      'MEMSHIFT_ERR_TCPDUMP_PERMISSION',
      `${name} may not capture on ${iface}: run as root or grant: ${grant(name, path)}`,
    );
  }
  // The first complaint is the useful one ("tcpdump: eth9: No such device exists").
  const first = lines.find((l) => l.trim() !== '' && !l.startsWith('(')) ?? '';
  const why = first !== '' ? withoutProgram(first) : exitText(code, signal);
  return new MemshiftError('MEMSHIFT_ERR_TCPDUMP', `${name} could not capture on ${iface}: ${why}`);
}

function grant(name: string, path: string): string {
  const target = name === 'tcpdump' ? '$(command -v tcpdump)' : path;
  return `setcap cap_net_raw,cap_net_admin=eip ${target}`;
}

function withoutProgram(line: string): string {
  return line.replace(/^(tcpdump|memshift-capture): /, '');
}

/** The last line that is not news of normal work (listening, counts), else how the process ended. */
function lastComplaint(lines: readonly string[], code: number | null, signal: NodeJS.Signals | null): string {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (line.trim() !== '' && !/packets? (captured|received|dropped)|listening on /.test(line)) {
      return withoutProgram(line);
    }
  }
  return exitText(code, signal);
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A capture must not outlive memshift.
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}
