/**
 * How memshift writes files. What it writes (the copy's checkpoint and key
 * lists, logs, the demo's report) names servers and holds keys, which can be
 * user ids or session tokens, and often lands in a shared directory. So every
 * file is created for its owner only (0600), and no write goes through a
 * symbolic link someone else planted:
 * - a file written whole is written under a fresh name beside it (random
 *   suffix, O_CREAT|O_EXCL, so no existing file or link is ever opened), made
 *   durable, then renamed over the final name; rename replaces a link at the
 *   final name instead of writing through it, and a reader sees the old file
 *   or the new one, never half of one. On failure the temporary file is removed.
 * - a log is appended to, so it cannot be renamed into place: it is opened with
 *   O_NOFOLLOW, and an existing log keeps the mode its owner gave it.
 *
 * It lives in jobs/, the lowest layer that writes files (the copy's
 * checkpoint), since jobs/ may not import ui/; ui/ uses it from here, so
 * there is one way to write a file.
 */
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { MemshiftError } from '../protocol/errors.js';

const OWNER_ONLY = 0o600;
const OWNER_ONLY_DIR = 0o700;
const { O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW } = constants;
/** 'wx' with O_NOFOLLOW spelled out. */
const CREATE_NEW = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const APPEND = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW;

/**
 * Writes `file` whole: `fill` writes the content to a new private temporary
 * file, which then replaces `file`. Nothing is left behind when `fill` or
 * any step after it fails.
 */
export async function writePrivateFileWith(
  file: string,
  fill: (out: FileHandle) => Promise<void>,
): Promise<void> {
  // Beside the final name: rename only works within one file system.
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const out = await open(tmp, CREATE_NEW, OWNER_ONLY);
  let failed = false;
  let failure: unknown;
  try {
    await fill(out);
    // Durable before it replaces the old file, or a crash could leave an empty one.
    await out.sync();
  } catch (err) {
    failed = true;
    failure = err;
  }
  try {
    await out.close();
    if (!failed) await rename(tmp, file);
  } catch (err) {
    if (!failed) failure = err;
    failed = true;
  }
  if (!failed) return;
  // The first failure is the one worth reporting, not a failed clean-up after it.
  await rm(tmp, { force: true }).catch(() => undefined);
  throw failure;
}

/** Writes `data` as the whole of `file` (see writePrivateFileWith). */
export function writePrivateFile(file: string, data: string | Uint8Array): Promise<void> {
  return writePrivateFileWith(file, (out) => out.writeFile(data));
}

/** Creates `dir` (and missing parents) for private files, owner-only; an existing one is left as it is. */
export async function makePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: OWNER_ONLY_DIR });
}

/**
 * Opens `file` for appending, created private if it is new. Opened at once
 * (not on the stream's first tick) so a path that cannot be a log, such as
 * a symbolic link, is one clear error before anything starts.
 */
export function openPrivateLog(file: string): WriteStream {
  let fd: number;
  try {
    fd = openSync(file, APPEND, OWNER_ONLY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ELOOP'
        ? 'it is a symbolic link, which memshift does not write through'
        : err instanceof Error
          ? err.message
          : String(err);
    throw new MemshiftError('MEMSHIFT_ERR_FILE', `cannot open log ${file}: ${reason}`, { cause: err });
  }
  return createWriteStream(file, { fd });
}
