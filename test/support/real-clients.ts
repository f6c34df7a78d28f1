/**
 * Real client libraries driven by small scripts (test/clients/): each takes a
 * job as JSON on stdin (servers, protocol options, operations) and prints what
 * its `read` operations found, so a test can run one workload through the
 * client against the source and read it back through the same client
 * configured with the new pool, with the client's own hashing.
 *
 * An operation is `[name, connection, ...args]`; connection 0 is the client as
 * configured, 1 a second client that always waits for replies (so writes to
 * one key come from two connections). Values are a string or `[text, times]`.
 * `['cas', c, key, value, ttl, moved?]` reads the key's CAS token and writes
 * with it; with `moved`, connection 1 writes that value in between, so the cas
 * loses (EXISTS).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLIENTS = fileURLToPath(new URL('../../../test/clients/', import.meta.url));

export type ClientOp = [string, 0 | 1, ...unknown[]];

export interface ClientJob {
  readonly servers: readonly string[];
  readonly binary?: boolean;
  readonly noreply?: boolean;
  readonly ops: readonly ClientOp[];
}

/** How each client is started, and the memshift distribution its hashing matches. */
export const REAL_CLIENTS = {
  pylibmc: { command: '/usr/bin/python3', script: 'pylibmc_client.py', hash: 'libmemcached-ketama' },
  dalli: { command: 'ruby', script: 'dalli_client.rb', hash: 'dalli' },
  'python-memcached': {
    command: '/usr/bin/python3',
    script: 'python_memcached_client.py',
    hash: 'python-memcached',
  },
  'node-memcached': {
    command: process.execPath,
    script: 'node_memcached_client.mjs',
    hash: 'node-memcached',
  },
  memjs: { command: process.execPath, script: 'memjs_client.mjs', hash: 'memjs' },
  pymemcache: { command: '/usr/bin/python3', script: 'pymemcache_client.py', hash: 'pymemcache' },
  'php-memcached': { command: 'php', script: 'php_memcached_client.php', hash: 'libmemcached-ketama' },
} as const;

export type RealClient = keyof typeof REAL_CLIENTS;

export interface ClientRun {
  /** Key → base64 value (null for a miss) of the job's `read` operations. */
  readonly reads: Record<string, string | null>;
  /** What the client refused or reported, one line per operation. */
  readonly errors: string;
}

/** Runs one job through the client's script. */
export async function runClient(client: RealClient, job: ClientJob): Promise<ClientRun> {
  const spec = REAL_CLIENTS[client];
  const child = spawn(spec.command, [CLIENTS + spec.script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text.slice(0, 4000)));
  child.stdin.end(JSON.stringify(job));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve(status);
    });
  });
  if (code !== 0) throw new Error(`${client} script exited with ${code}: ${stderr.trim()}`);
  return { reads: JSON.parse(stdout) as Record<string, string | null>, errors: stderr };
}
