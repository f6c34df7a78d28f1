/**
 * `memshift verify --from POOL --to POOL`: how warm the new pool is, with a
 * verdict for automation: exit status 0 when key coverage reaches
 * `--min-coverage`, 1 when it does not.
 */
import type { Command } from 'commander';
import { runVerify, type VerifyOptions, type VerifyReport } from '../../jobs/verify.js';
import { COVERAGE_METRICS, CoverageTrend } from '../../jobs/coverage-trend.js';
import type { Dashboard } from '../dashboard/server.js';
import { addWebOptions, serveWeb, type WebFlags } from '../web.js';
import { formatBytes, formatTable } from '../format.js';
import { parseSize, UsageError, type Output } from '../options.js';
import { poolOptions, resolvePools, type PoolFlags } from '../pools.js';

interface VerifyFlags extends PoolFlags, WebFlags {
  watch?: string;
  rounds?: string;
  sample: string;
  minCoverage: string;
  recent: string;
  placement?: boolean;
  maxValue?: string;
  json?: boolean;
}

export function registerVerify(program: Command, out: Output): void {
  poolOptions(
    addWebOptions(
      program.command('verify').description('how warm is the new pool: coverage, equality, TTLs, placement'),
    ),
  )
    .option(
      '--watch <seconds>',
      'verify again every n seconds: coverage over time and the projected time to --min-coverage',
    )
    .option('--rounds <n>', 'with --watch: stop after n rounds (default: until interrupted)')
    .option('--sample <n>', 'compare the values of n keys spread over the pool, or "all"', '1000')
    .option('--min-coverage <ratio>', 'the verdict: pass when this share of keys is present', '0.99')
    .option('--recent <seconds>', 'a key is recently used when accessed within this many seconds', '3600')
    .option('--no-placement', 'do not list the new servers to find keys on the wrong server')
    .option('--max-value <size>', "largest value read (default: the servers' item_size_max), e.g. 2m")
    .option('--json', 'print JSON instead of tables')
    .addHelpText(
      'after',
      '\nExit status: 0 when key coverage is at least --min-coverage, 1 when it is not.\n' +
        'Example: memshift verify --pools pools.yaml --from old --to new --min-coverage 0.99 --json',
    )
    .action(async (flags: VerifyFlags) => {
      const { from, to } = resolvePools(flags);
      const sample = flags.sample === 'all' ? Infinity : Number(flags.sample);
      if (!(sample === Infinity || (Number.isInteger(sample) && sample >= 0))) {
        throw new UsageError(`--sample must be a whole number or "all", got "${flags.sample}"`);
      }
      const minCoverage = Number(flags.minCoverage);
      if (!(minCoverage >= 0 && minCoverage <= 1)) {
        throw new UsageError(`--min-coverage must be a ratio between 0 and 1, got "${flags.minCoverage}"`);
      }
      const recentSeconds = Number(flags.recent);
      if (!Number.isInteger(recentSeconds) || recentSeconds < 1) {
        throw new UsageError(`--recent must be a whole number of seconds, got "${flags.recent}"`);
      }
      const options: VerifyOptions = {
        from,
        to,
        sample,
        minCoverage,
        recentSeconds,
        checkPlacement: flags.placement !== false,
        ...(flags.maxValue === undefined ? {} : { maxValue: parseSize('--max-value', flags.maxValue)! }),
        onWarning: (w) => process.stderr.write(`memshift: warning: ${w}\n`),
      };
      if (flags.watch !== undefined) return watch(options, flags, out);
      const report = await runVerify(options);
      out.write(flags.json ? JSON.stringify(report, jsonNumbers, 2) : renderVerify(report));
      out.exitCode = report.passed ? 0 : 1;
    });
}

/**
 * `verify --watch`: one verify per interval, a line (or a JSON line) per round
 * with each coverage, its rate and the time to the target at that rate; the
 * same figures on the dashboard and /metrics. The exit status is the last
 * round's verdict.
 */
async function watch(options: VerifyOptions, flags: VerifyFlags, out: Output): Promise<void> {
  const every = Number(flags.watch);
  if (!(every > 0)) throw new UsageError(`--watch must be a number of seconds above 0, got "${flags.watch}"`);
  const rounds = flags.rounds === undefined ? Infinity : Number(flags.rounds);
  if (!(rounds === Infinity || (Number.isInteger(rounds) && rounds >= 1))) {
    throw new UsageError(`--rounds must be a whole number of at least 1, got "${flags.rounds}"`);
  }
  const trend = new CoverageTrend(options.minCoverage ?? 0.99);
  let stopped = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const gauges = (): Record<string, number> => {
    const g: Record<string, number> = {};
    for (const metric of COVERAGE_METRICS) {
      const p = trend.project(metric);
      g[`coverage/${metric}`] = p.coverage;
      // Named from the first snapshot (so /metrics declares it); not exported while unknown.
      g[`seconds to target/${metric}`] = p.secondsToTarget ?? NaN;
    }
    return g;
  };
  let dashboard: Dashboard | undefined;
  try {
    dashboard = await serveWeb(flags, 'verify', () => ({
      time: Date.now(),
      counters: { 'verify/rounds': trend.count },
      gauges: gauges(),
    }));
    for (let round = 1; round <= rounds && !stopped; round++) {
      const started = Date.now();
      const report = await runVerify(options);
      trend.add({
        at: started,
        keys: report.keys.coverage,
        bytes: report.bytes.coverage,
        recent: report.recent.coverage,
      });
      out.exitCode = report.passed ? 0 : 1;
      const projections = Object.fromEntries(COVERAGE_METRICS.map((m) => [m, trend.project(m)]));
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ round, time: new Date(started).toISOString(), target: trend.target, passed: report.passed, ...projections })}\n`,
        );
      } else {
        const part = (m: (typeof COVERAGE_METRICS)[number]): string => {
          const p = projections[m]!;
          const eta =
            p.secondsToTarget === 0
              ? 'reached'
              : p.secondsToTarget === undefined
                ? 'not rising'
                : `${percent(trend.target)} in ${duration(p.secondsToTarget)}`;
          return `${m} ${percent(p.coverage)} (${eta})`;
        };
        process.stdout.write(`${new Date(started).toISOString()} ${COVERAGE_METRICS.map(part).join(', ')}\n`);
      }
      if (round === rounds || stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, started + every * 1000 - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await dashboard?.close();
  }
}

/** 3725 s as "1h 2m", 42 s as "42s". */
function duration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const m = Math.ceil(seconds / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h ${m % 60}m` : `${Math.round(h / 24)}d`;
}

/** JSON has no Infinity; nothing here should be one, but a ratio of nothing must not print null silently. */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

/** A share as a percentage, rounded down: 99.97% must not print as 100%. */
function percent(ratio: number): string {
  return `${(Math.floor(ratio * 10000) / 100).toFixed(2)}%`;
}

export function renderVerify(r: VerifyReport): string {
  const lines: string[] = [];
  lines.push(
    `${r.passed ? 'PASS' : 'FAIL'}: ${percent(r.keys.coverage)} of ${r.keys.source} keys are on the new ` +
      `server that owns them (minimum ${percent(r.minCoverage)}); ${r.keys.missing} missing`,
  );
  lines.push(
    `bytes: ${percent(r.bytes.coverage)} of ${formatBytes(r.bytes.source)}; recently used (${r.recent.seconds}s): ` +
      `${percent(r.recent.coverage)} of ${r.recent.keys} keys`,
  );
  lines.push(
    `values: ${r.values.equal} of ${r.values.compared} compared are equal, ${r.values.different} differ` +
      (r.values.paddingOnly > 0 ? ` (${r.values.paddingOnly} equal but for decr padding)` : '') +
      `; flags differ on ${r.flags.different} of ${r.flags.compared}`,
  );
  lines.push(
    `TTL: max drift ${r.ttl.maxDriftSeconds}s, mean ${r.ttl.meanDriftSeconds.toFixed(2)}s, ${r.ttl.over2s} over 2s, ` +
      `${r.ttl.longer} outlive the source, ${r.ttl.neverVsExpiring} never expire on one side only`,
  );
  if (r.wrongServer.checked > 0 || r.wrongServer.keys > 0) {
    lines.push(`wrong server: ${r.wrongServer.keys} of ${r.wrongServer.checked} keys held by the new pool`);
    for (const e of r.wrongServer.examples) lines.push(`  ${e}`);
  }
  if (r.keys.vanished > 0) lines.push(`${r.keys.vanished} keys left the source while it was being verified`);
  if (r.keys.unsupported > 0) {
    lines.push(
      `${r.keys.unsupported} keys not verified: no meta command can name them (binary keys over 186 bytes with spaces or control bytes)`,
    );
  }
  lines.push('');
  lines.push(
    formatTable(
      ['SERVER', 'ROLE', 'KEYS', 'PRESENT', 'COVERAGE', 'BYTES', 'HELD', 'WRONG'],
      r.servers.map((s) => [
        s.address,
        s.role,
        String(s.keys),
        String(s.present),
        s.coverage === undefined ? '-' : percent(s.coverage),
        formatBytes(s.bytes),
        s.held === undefined ? '-' : String(s.held),
        s.wrongServer === undefined ? '-' : String(s.wrongServer),
      ]),
      [false, false, true, true, true, true, true, true],
    ),
  );
  for (const e of r.examples) lines.push(`  ${e}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
