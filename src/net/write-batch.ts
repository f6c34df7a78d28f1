/**
 * One socket write for many small buffers. Every `socket.write` goes through
 * the stream's bookkeeping (a request object, a callback, and for corked
 * writes an array handed to writev), which costs more than copying a few
 * hundred bytes: small batches are joined and written once; large ones
 * (values) are written piece by piece, never copied.
 */
import type { Socket } from 'node:net';

/** Batches up to this many bytes are joined into one buffer. */
const JOIN_BYTES = 16 * 1024;

export function writeBatch(socket: Socket, parts: readonly Buffer[], bytes: number): void {
  const n = parts.length;
  if (n === 0 || socket.destroyed) return;
  if (n === 1) {
    socket.write(parts[0] as Buffer);
    return;
  }
  if (bytes <= JOIN_BYTES) {
    socket.write(Buffer.concat(parts as Buffer[], bytes));
    return;
  }
  socket.cork();
  for (let i = 0; i < n; i++) socket.write(parts[i] as Buffer);
  socket.uncork();
}
