import { spawnSync } from 'node:child_process';

/** memcached and tcpdump processes running now whose command line names one of these ports. */
export function processesOn(ports: string[]): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return ps.stdout
    .split('\n')
    .filter(
      (line) =>
        /\b(memcached|tcpdump)\b/.test(line) && ports.some((p) => new RegExp(`\\b${p}\\b`).test(line)),
    );
}
