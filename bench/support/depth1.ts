/**
 * A depth-1 memcached client for latency: one connection, one request at a
 * time (90% get, 10% set of a small value over a fixed key range, as
 * memcaslap's default mix), each round trip timed from the write to the last
 * byte of its reply. Bounded by a request count and a time limit, whichever
 * comes first. An error reply or a reply that does not come in time fails
 * the run: a latency figure is only given for a target that answers.
 */
import { connect, type Socket } from 'node:net';
import { parseEndpoint } from '../../src/net/address.js';

export interface LatencySample {
  readonly requests: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

const KEYS = 1000;
const VALUE = Buffer.alloc(100, 0x78);
const END = Buffer.from('END\r\n', 'latin1');
const STORED = Buffer.from('STORED\r\n', 'latin1');

function request(i: number): { bytes: Buffer; done: Buffer } {
  const key = `depth1:${i % KEYS}`;
  // Every tenth request a set, so each key is written before it is mostly read.
  if (i % 10 === 0) {
    const head = Buffer.from(`set ${key} 0 0 ${VALUE.length}\r\n`, 'latin1');
    return { bytes: Buffer.concat([head, VALUE, Buffer.from('\r\n')]), done: STORED };
  }
  return { bytes: Buffer.from(`get ${key}\r\n`, 'latin1'), done: END };
}

function endsWith(chunks: Buffer[], tail: Buffer): boolean {
  const last = chunks[chunks.length - 1];
  if (last === undefined) return false;
  const joined = last.length >= tail.length ? last : Buffer.concat(chunks);
  return joined.length >= tail.length && joined.subarray(joined.length - tail.length).equals(tail);
}

/** Runs up to `count` requests for at most `seconds`, after `warmup` untimed ones. */
export async function depth1(
  address: string,
  count: number,
  seconds: number,
  warmup = 2000,
): Promise<LatencySample> {
  const { host, port } = parseEndpoint(address);
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => undefined);
  const times = new Float64Array(count);
  let timed = 0;
  const deadline = Date.now() + seconds * 1000;
  try {
    for (let i = 0; i < warmup + count && Date.now() < deadline; i++) {
      const { bytes, done } = request(i);
      const start = process.hrtime.bigint();
      await roundTrip(socket, bytes, done, Math.max(1, deadline - Date.now()));
      if (i >= warmup) times[timed++] = Number(process.hrtime.bigint() - start) / 1000;
    }
  } finally {
    socket.destroy();
  }
  const sorted = times.subarray(0, timed).sort();
  const at = (q: number): number => sorted[Math.min(timed - 1, Math.floor(q * timed))] ?? NaN;
  return { requests: timed, p50Us: round(at(0.5)), p99Us: round(at(0.99)), maxUs: round(at(1)) };
}

/** One request's reply: done at its last line, an error line, or when `ms` pass (then it fails). */
function roundTrip(socket: Socket, bytes: Buffer, done: Buffer, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (isError(chunks)) {
        cleanup();
        reject(new Error(`error reply: ${Buffer.concat(chunks).toString('latin1').trim()}`));
        return;
      }
      if (!endsWith(chunks, done)) return;
      cleanup();
      resolve();
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('connection closed mid-reply'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no reply within ${ms} ms`));
    }, ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.once('close', onEnd);
    socket.write(bytes);
  });
}

/** ERROR, CLIENT_ERROR or SERVER_ERROR: a whole reply of one line (the run fails on it). */
function isError(chunks: Buffer[]): boolean {
  const first = chunks[0];
  if (first === undefined || !first.includes('\r\n')) return false;
  return /^(?:SERVER_|CLIENT_)?ERROR/.test(first.toString('latin1', 0, 13));
}

function round(us: number): number {
  return Math.round(us * 10) / 10;
}
