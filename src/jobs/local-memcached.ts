/**
 * Starts real memcached servers (the Debian package) on free loopback ports,
 * and stops them: for the quick start, the demo and the tests. Every process
 * started here is also killed when this process exits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemshiftError } from '../protocol/errors.js';

export interface MemcachedServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, bracketed for IPv6. */
  readonly address: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface MemcachedOptions {
  /** Loopback address to listen on (default 127.0.0.1; `::1` for IPv6). */
  host?: string;
  /** Memory limit in MiB (-m). */
  memoryMb?: number;
  /** Extra command-line arguments, e.g. ['-I', '2m']. */
  args?: string[];
  /** A fixed port (to restart a server where it was); default: a free one. */
  port?: number;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function memcachedPath(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v memcached || ls /usr/bin/memcached'], {
    encoding: 'utf8',
  });
  const path = found.stdout.trim().split('\n')[0];
  return path ? path : undefined;
}

/** A port nothing listens on right now, on the given loopback host. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMemcached(options: MemcachedOptions = {}): Promise<MemcachedServer> {
  const binary = memcachedPath();
  if (!binary) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_MISSING_TOOL',
      'memcached is not installed: run apt-get install memcached',
    );
  }
  const host = options.host ?? '127.0.0.1';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePort(host));
    const args = ['-l', host, '-p', String(port), '-U', '0', '-m', String(options.memoryMb ?? 64), '-t', '2'];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    args.push(...(options.args ?? []));
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
    });
    for (let i = 0; i < 200 && !exited; i++) {
      if (await canConnect(host, port)) {
        const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        return {
          host,
          port,
          address,
          process: child,
          stop: () => stopChild(child),
        };
      }
      await sleep(10);
    }
    child.kill('SIGKILL');
  }
  throw new MemshiftError(
    'MEMSHIFT_ERR_LOCAL_SERVER',
    `memcached did not start on ${host} after 5 attempts (is the address configured on this machine?)`,
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}
