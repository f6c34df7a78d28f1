/**
 * `memshift demo`: a whole migration on local memcached instances, shown as
 * it happens (see src/jobs/demo.ts).
 */
import type { Command } from 'commander';
import { DEFAULT_DEMO, runDemo, type DemoReport, type DemoSample } from '../../jobs/demo.js';
import { DEFAULT_WORKLOAD } from '../../jobs/workload.js';
import { formatRatio } from '../format.js';
import { UsageError, type Output } from '../options.js';

interface DemoFlags {
  old: string;
  new: string;
  hash: string;
  warmup: string;
  duration: string;
  keys: string;
  rate: string;
  skew: string;
  json?: boolean;
}

export function registerDemo(program: Command, out: Output): void {
  program
    .command('demo')
    .description(
      'a whole migration on local memcached instances: mirror an old pool into a new one and watch it warm',
    )
    .option('--old <n>', 'memcached instances in the old pool', String(DEFAULT_DEMO.oldServers))
    .option('--new <n>', 'memcached instances in the new pool', String(DEFAULT_DEMO.newServers))
    .option('--hash <name>', "the application's client hashing", DEFAULT_DEMO.hash)
    .option(
      '--warmup <seconds>',
      'seconds the application runs before mirroring starts',
      String(DEFAULT_DEMO.warmupSeconds),
    )
    .option('--duration <seconds>', 'seconds of mirroring', String(DEFAULT_DEMO.mirrorSeconds))
    .option('--keys <n>', 'distinct keys the application uses', String(DEFAULT_WORKLOAD.keys))
    .option('--rate <n>', 'application requests per second', String(DEFAULT_WORKLOAD.rate))
    .option('--skew <s>', 'Zipf skew of key popularity', String(DEFAULT_WORKLOAD.skew))
    .option('--json', 'print the report as JSON instead of a live table')
    .addHelpText('after', '\nNeeds memcached and tcpdump, and the right to capture on lo (root).')
    .action(async (flags: DemoFlags) => {
      const options = {
        ...DEFAULT_DEMO,
        oldServers: whole('--old', flags.old, 1, 16),
        newServers: whole('--new', flags.new, 1, 16),
        hash: flags.hash,
        warmupSeconds: whole('--warmup', flags.warmup, 0, 3600),
        mirrorSeconds: whole('--duration', flags.duration, 1, 3600),
        workload: {
          ...DEFAULT_WORKLOAD,
          keys: whole('--keys', flags.keys, 1, 10_000_000),
          rate: whole('--rate', flags.rate, 1, 1_000_000),
          skew: positive('--skew', flags.skew),
        },
      };
      if (!flags.json) {
        out.write(
          `Old pool: ${options.oldServers} memcached, new pool: ${options.newServers} (${options.hash}), ` +
            `application: ${options.workload.keys} keys, ${options.workload.rate} requests/s.\n` +
            `${options.warmupSeconds} s on the old pool alone, then ${options.mirrorSeconds} s of memshift mirror.\n\n` +
            ' TIME  PHASE    APP HIT (OLD)  NEW POOL WOULD HIT             MIRRORED/S',
        );
      }
      const report = await runDemo(options, flags.json ? undefined : (s) => out.write(sampleLine(s)));
      out.write(flags.json ? JSON.stringify(report, null, 2) : conclusion(report));
    });
}

function whole(option: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

function positive(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`${option} must be a number above 0, got "${text}"`);
  return value;
}

function bar(ratio: number, width = 20): string {
  const full = Math.round(Math.max(0, Math.min(1, ratio)) * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

function sampleLine(s: DemoSample): string {
  const would =
    s.newWouldHit === undefined
      ? '-'.padEnd(30)
      : `${bar(s.newWouldHit)} ${formatRatio(s.newWouldHit).padStart(6)}   `;
  return (
    `${String(s.second).padStart(4)}s  ${s.phase.padEnd(7)}  ${formatRatio(s.oldHitRatio).padStart(13)}  ` +
    `${would}  ${s.phase === 'mirror' ? s.mirroredApplied : '-'}`
  );
}

function conclusion(report: DemoReport): string {
  const last = report.samples[report.samples.length - 1];
  const m = report.mirror;
  const lines = ['', `old pool ${report.oldPool.join(', ')} -> new pool ${report.newPool.join(', ')}`];
  if (m) {
    const applied = m.routes.reduce((n, r) => n + r.replay.applied, 0);
    const fills = m.routes.reduce((n, r) => n + r.replay.fills.applied, 0);
    const dropped = m.routes.reduce((n, r) => n + r.replay.dropped, 0);
    lines.push(
      `memshift mirror saw ${m.operations.requests} requests on ${m.capture.flows.flowsOpened} connections, ` +
        `applied ${applied} writes to the new pool (${fills} of them fills from reads), dropped ${dropped}.`,
    );
  }
  if (last?.newWouldHit !== undefined && last.oldHitRatio !== undefined) {
    lines.push(
      `After ${report.samples.filter((s) => s.phase === 'mirror').length} s of mirroring, switching now would give ` +
        `${formatRatio(last.newWouldHit)} hits on the new pool against ${formatRatio(last.oldHitRatio)} on the old one ` +
        '(big bang: 0%).',
      'Keys not requested while mirroring stay cold: `memshift copy` backfills them.',
    );
  }
  return lines.join('\n');
}
