import type { Command } from 'commander';
import { collectStats, type InstanceReport } from '../../jobs/stats.js';
import { formatBytes, formatDuration, formatRatio, formatTable } from '../format.js';
import { parseMilliseconds, type Output } from '../options.js';

interface StatsFlags {
  json?: boolean;
  timeout: string;
}

export function registerStats(program: Command, out: Output): void {
  program
    .command('stats')
    .description('one-shot stats of one or many memcached instances')
    .argument('<servers...>', 'instances as host:port')
    .option('--json', 'print JSON instead of a table')
    .option('--timeout <ms>', 'connect and reply timeout per instance', '2000')
    .addHelpText(
      'after',
      '\nExit status is 0 when every instance answered, 1 when any is down.\n' +
        'Example: memshift stats 127.0.0.1:11211 10.0.0.5:11211 --json',
    )
    .action(async (servers: string[], flags: StatsFlags) => {
      const reports = await collectStats(servers, {
        timeoutMs: parseMilliseconds('--timeout', flags.timeout),
      });
      out.write(flags.json ? JSON.stringify(reports.map(withoutRaw), null, 2) : renderStats(reports));
      out.exitCode = reports.every((r) => r.up) ? 0 : 1;
    });
}

function withoutRaw(report: InstanceReport): object {
  if (!report.up) return report;
  const { raw: _raw, ...rest } = report;
  return rest;
}

export function renderStats(reports: InstanceReport[]): string {
  const header = [
    'INSTANCE',
    'STATE',
    'VERSION',
    'UPTIME',
    'ITEMS',
    'USED',
    'LIMIT',
    'HIT',
    'CONNS',
    'EVICTIONS',
  ];
  const numeric = [false, false, false, true, true, true, true, true, true, true];
  const rows = reports.map((r) =>
    r.up
      ? [
          r.address,
          'up',
          r.version,
          formatDuration(r.uptimeSeconds),
          String(r.items),
          formatBytes(r.bytes),
          formatBytes(r.limitBytes),
          formatRatio(r.hitRatio),
          String(r.connections),
          String(r.evictions),
        ]
      : [`${r.address}  DOWN  ${r.error}`],
  );
  return formatTable(header, rows, numeric);
}
