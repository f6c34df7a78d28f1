/**
 * The structured log of the long-running commands (`--log` of mirror and
 * proxy): one JSON object per line, appended to a private file (see
 * jobs/private-file.ts). A log that fails later (a full disk) says so once on
 * stderr and goes quiet: losing log lines must never stop a migration, let
 * alone the traffic it carries.
 */
import type { WriteStream } from 'node:fs';
import { openPrivateLog } from '../jobs/private-file.js';

export type JsonLog = ((record: Record<string, unknown>) => void) & { close(): Promise<void> };

/** Opens `file` now, so a path that cannot be a log is an error before the command starts. */
export function openJsonLog(file: string): JsonLog {
  let stream: WriteStream | undefined = openPrivateLog(file);
  stream.on('error', (err) => {
    process.stderr.write(`memshift: cannot write log ${file}: ${err.message}\n`);
    stream = undefined;
  });
  const log = ((record: Record<string, unknown>) => {
    stream?.write(`${JSON.stringify({ time: new Date().toISOString(), ...record }, bigintSafe)}\n`);
  }) as JsonLog;
  log.close = () => new Promise<void>((resolve) => (stream ? stream.end(resolve) : resolve()));
  return log;
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
