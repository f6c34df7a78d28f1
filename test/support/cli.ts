/** Running the built `memshift` command from tests. */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/memshift.js', import.meta.url));

export interface Finished {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs memshift to the end (bounded by `timeoutMs`). */
export function memshift(
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Finished {
  const run = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    ...(options.env ? { env: options.env } : {}),
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A memshift process running in the background, its output collected as it comes. */
export interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** The dashboard address it announced on stderr (waits, bounded, for the line). */
  dashboardUrl(timeoutMs?: number): Promise<string>;
}

export function start(args: string[]): Running {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    async dashboardUrl(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const url = /dashboard on (http:\/\/\S+\/)/.exec(err)?.[1];
        if (url) return url;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`no dashboard address announced; stderr: ${err}`);
    },
  };
}
