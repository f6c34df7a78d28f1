/**
 * The differential harness: the same bytes to a real memcached and to memshift
 * proxy in front of another one, on fresh connections, and the replies side
 * by side. Both servers start empty, so as long as both see the same requests
 * in the same order they hold the same data (CAS uniques included).
 */
import { connect, type Socket } from 'node:net';

export interface Exchange {
  /** Everything the server wrote back. */
  readonly reply: Buffer;
  /** The server closed the connection. */
  readonly closed: boolean;
}

/** Sent after each case: its MN marks the end of the replies (a case that closes never gets there). */
export const FENCE = Buffer.from('mn\r\n', 'latin1');
const MN = Buffer.from('MN\r\n', 'latin1');

/**
 * Writes `pieces` one after the other (a case split at chosen points), then
 * the fence, and reads until the fence's MN, a close, or `timeoutMs`.
 */
export async function exchange(port: number, pieces: readonly Buffer[], timeoutMs = 5000): Promise<Exchange> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  try {
    return await new Promise<Exchange>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (closed: boolean): void => {
        clearTimeout(timer);
        resolve({ reply: Buffer.concat(chunks, size), closed });
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        const tail = chunks.length === 1 ? chunk : Buffer.concat(chunks, size);
        if (tail.length >= MN.length && tail.subarray(tail.length - MN.length).equals(MN)) finish(false);
      });
      socket.on('error', () => undefined);
      socket.once('close', () => finish(true));
      void writeAll(socket, [...pieces, FENCE]);
    });
  } finally {
    socket.destroy();
  }
}

async function writeAll(socket: Socket, pieces: readonly Buffer[]): Promise<void> {
  for (const piece of pieces) {
    if (socket.destroyed) return;
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
    // A pause lets each piece arrive as its own read, as a split stream would.
    if (pieces.length > 1) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A reply for an assertion message: printable, short. */
export function show(bytes: Buffer, max = 400): string {
  const text = JSON.stringify(bytes.subarray(0, max).toString('latin1'));
  return bytes.length > max ? `${text}... (${bytes.length} bytes)` : text;
}
