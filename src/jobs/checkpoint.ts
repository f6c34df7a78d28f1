/**
 * The copy's checkpoint: a small JSON state file (which pools, how far each
 * source server got) and, beside it, one file per source server holding its
 * keys in the order the copy works through them. A resumed copy reads the
 * keys back instead of dumping again, so "how far" means the same list it
 * meant before the interruption, and nothing already copied is fetched again.
 *
 * Keys file: one record per key, a length byte then the key's bytes.
 */
import { createReadStream } from 'node:fs';
import { readFile, rm, type FileHandle } from 'node:fs/promises';
import { MemshiftError } from '../protocol/errors.js';
import { KeyList } from './enumerate.js';
import { writePrivateFile, writePrivateFileWith } from './private-file.js';

export interface CheckpointSource {
  readonly address: string;
  /** Keys in the list. */
  readonly total: number;
  /** Keys of the list, from the start, whose batches succeeded (copied or skipped for a reason). */
  done: number;
  /**
   * Runs of list positions [start, end) past `done` whose batches succeeded;
   * the gaps between are keys of failed batches that --resume tries again.
   */
  ahead?: [number, number][];
  /** The furthest position a batch was sent up to: keys before it not done were tried and failed. */
  reached?: number;
}

export interface CheckpointState {
  readonly version: 1;
  /** Which job wrote it; absent: a copy (written before repair existed). */
  readonly job?: 'copy' | 'repair';
  readonly from: string[];
  readonly to: string[];
  readonly order: string;
  readonly startedAt: string;
  readonly sources: CheckpointSource[];
}

export class CheckpointMismatchError extends MemshiftError {
  constructor(file: string, reason: string) {
    super('MEMSHIFT_ERR_CHECKPOINT', `${file}: ${reason}; start again without --resume`);
  }
}

export function keysFileOf(file: string, source: number): string {
  return `${file}.${source}.keys`;
}

/** Reads a checkpoint; undefined when there is none. */
export async function readCheckpoint(file: string): Promise<CheckpointState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MemshiftError(
      'MEMSHIFT_ERR_CHECKPOINT',
      `${file}: cannot read the checkpoint (${String(err)})`,
    );
  }
  let state: CheckpointState;
  try {
    state = JSON.parse(text) as CheckpointState;
  } catch {
    throw new MemshiftError('MEMSHIFT_ERR_CHECKPOINT', `${file}: not a memshift checkpoint`);
  }
  if (state.version !== 1 || !Array.isArray(state.sources)) {
    throw new MemshiftError('MEMSHIFT_ERR_CHECKPOINT', `${file}: not a memshift checkpoint`);
  }
  return state;
}

/** Writes the state atomically (a crash leaves the old state or the new one, never half of one). */
export async function writeCheckpoint(file: string, state: CheckpointState): Promise<void> {
  await writePrivateFile(file, JSON.stringify(state, null, 1));
}

export async function removeCheckpoint(file: string, sources: number): Promise<void> {
  await rm(file, { force: true });
  for (let i = 0; i < sources; i++) await rm(keysFileOf(file, i), { force: true });
}

/**
 * Writes `list`'s keys in `order` to a keys file, whole: a resumed copy never
 * finds a keys file cut short by a crash, only none or all of it.
 */
export async function writeKeys(file: string, list: KeyList, order: Uint32Array): Promise<void> {
  await writePrivateFileWith(file, async (out) => {
    // One buffer, reused: each write is awaited before the buffer is filled again.
    const chunk = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (let n = 0; n < order.length; n++) {
      const key = list.key(order[n]!);
      if (pos + 1 + key.length > chunk.length) {
        await writeAll(out, chunk.subarray(0, pos));
        pos = 0;
      }
      chunk[pos++] = key.length;
      key.copy(chunk, pos);
      pos += key.length;
    }
    await writeAll(out, chunk.subarray(0, pos));
  });
}

/** A write may take fewer bytes than offered (a nearly full disk); the rest follows. */
async function writeAll(out: FileHandle, bytes: Buffer): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += (await out.write(bytes, at)).bytesWritten;
}

/** Reads a keys file back into a list, in file order. */
export async function readKeys(file: string, expected: number): Promise<KeyList> {
  const list = new KeyList({ expected, maxKeys: Math.max(expected, 1) });
  let carry: Buffer = Buffer.alloc(0);
  try {
    for await (const piece of createReadStream(file)) {
      const buf: Buffer = carry.length ? Buffer.concat([carry, piece as Buffer]) : (piece as Buffer);
      let pos = 0;
      while (pos < buf.length && pos + 1 + buf[pos]! <= buf.length) {
        const len = buf[pos]!;
        list.push(buf.subarray(pos + 1, pos + 1 + len), 0, false);
        pos += 1 + len;
      }
      carry = buf.subarray(pos);
    }
  } catch (err) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_CHECKPOINT',
      `${file}: cannot read the checkpoint keys (${String(err)})`,
    );
  }
  if (carry.length > 0 || list.length !== expected) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_CHECKPOINT',
      `${file}: the keys file is damaged (${list.length} of ${expected} keys readable)`,
    );
  }
  return list;
}
