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

/**
 * Sent after each case: misses no case can produce, whose `EN O<nonce>`
 * replies mark the end of the case's replies (a case that closes never gets
 * there). Several go, or with `pad` forty: a case may end in a data block that
 * claims more bytes than it has, which memcached waits for (holding back the
 * replies before it) while the proxy answers what it can; the fences complete
 * any such block, the same way on both sides. (Neither one long line, on
 * which memcached hangs up after 2 KiB without a newline, nor hundreds of
 * short ones, which overrun its response objects, would do.)
 */
function fence(count: number): { bytes: Buffer; end: Buffer } {
  let text = '';
  let last = '';
  for (let i = 0; i < count; i++) {
    last = Math.random().toString(36).slice(2, 10);
    text += `mg __memshift_fence__ O${last}\r\n`;
  }
  return { bytes: Buffer.from(text, 'latin1'), end: Buffer.from(`EN O${last}\r\n`, 'latin1') };
}

/**
 * Writes `pieces` one after the other (a case split at chosen points), then
 * the fence, and reads until the fence's MN, a close, or `timeoutMs`.
 */
export async function exchange(
  port: number,
  pieces: readonly Buffer[],
  options: { timeoutMs?: number; pad?: boolean } = {},
): Promise<Exchange> {
  const timeoutMs = options.timeoutMs ?? 5000;
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
      const { bytes, end } = fence(options.pad ? 40 : 2);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        const tail = chunks.length === 1 ? chunk : Buffer.concat(chunks, size);
        if (tail.length >= end.length && tail.subarray(tail.length - end.length).equals(end)) {
          // The fence's own replies are not part of the case.
          chunks.length = 0;
          chunks.push(stripFence(tail, end));
          size = chunks[0]!.length;
          finish(false);
        }
      });
      socket.on('error', () => undefined);
      socket.once('close', () => finish(true));
      void writeAll(socket, [...pieces, bytes]);
    });
  } finally {
    socket.destroy();
  }
}

/** The reply without the fences' own misses (those a case's data block ate into stay: both sides eat alike). */
function stripFence(reply: Buffer, end: Buffer): Buffer {
  const text = reply.toString('latin1', 0, reply.length - end.length);
  return Buffer.from(text.replace(/(EN O[a-z0-9]+\r\n)+$/, ''), 'latin1');
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
