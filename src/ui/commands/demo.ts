/**
 * `memshift demo`: the migration scenario (src/jobs/scenario.ts) on local
 * memcached instances: every strategy in turn, the hit ratio after cut-over
 * for each, a table and a plot written next to it.
 */
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import {
  DEFAULT_SCENARIO,
  STRATEGIES,
  runScenario,
  type ScenarioReport,
  type Strategy,
} from '../../jobs/scenario.js';
import { makePrivateDir, writePrivateFile } from '../../jobs/private-file.js';
import { formatBytes, formatRatio, formatTable } from '../format.js';
import { UsageError, type Output } from '../options.js';
import { hitRatioSvg } from '../plot.js';
import { addWebOptions, serveWeb } from '../web.js';

interface DemoFlags {
  old: string;
  new: string;
  hash: string;
  keys: string;
  rate: string;
  skew: string;
  warmup: string;
  window: string;
  after: string;
  strategies: string;
  hosts: string;
  switch: string;
  switchWindow: string;
  rollback: string;
  out: string;
  json?: boolean;
  web?: string;
  webAllowRemote?: boolean;
}

export function registerDemo(program: Command, out: Output): void {
  const d = DEFAULT_SCENARIO;
  addWebOptions(program.command('demo'))
    .description('a whole migration on local memcached instances, every strategy side by side')
    .option('--old <n>', 'memcached instances in the old pool', String(d.oldServers))
    .option('--new <n>', 'memcached instances in the new pool', String(d.newServers))
    .option('--hash <name>', "the application's client hashing", d.hash)
    .option('--keys <n>', 'distinct keys the application uses', String(d.workload.keys))
    .option('--rate <n>', 'application requests per second', String(d.workload.rate))
    .option('--skew <s>', 'Zipf skew of key popularity', String(d.workload.skew))
    .option('--warmup <seconds>', 'seconds on the old pool before the migration', String(d.warmupSeconds))
    .option(
      '--window <seconds>',
      'seconds of migration before cut-over (mirror window, steps)',
      String(d.windowSeconds),
    )
    .option('--after <seconds>', 'seconds measured after cut-over', String(d.afterSeconds))
    .option('--strategies <list>', `comma-separated, from ${STRATEGIES.join(', ')}`, STRATEGIES.join(','))
    .option('--hosts <n>', 'application hosts (independent clients)', String(d.hosts))
    .option(
      '--switch <mode>',
      'instant (every host at once) or rolling (one by one, as a deploy)',
      d.switchMode,
    )
    .option(
      '--switch-window <seconds>',
      'with --switch rolling: seconds over which the hosts move',
      String(d.switchSeconds),
    )
    .option(
      '--rollback <seconds>',
      'after the measured time, switch every host back and measure this long (0: no rollback)',
      String(d.rollbackSeconds),
    )
    .option('--out <dir>', 'where the report (table, JSON, SVG plot) is written', 'memshift-demo')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nNeeds memcached and tcpdump, and the right to capture on lo (root).')
    .action(async (flags: DemoFlags) => {
      const options = {
        ...d,
        oldServers: whole('--old', flags.old, 1, 16),
        newServers: whole('--new', flags.new, 1, 16),
        hash: flags.hash,
        warmupSeconds: whole('--warmup', flags.warmup, 1, 3600),
        windowSeconds: whole('--window', flags.window, 1, 3600),
        afterSeconds: whole('--after', flags.after, 1, 3600),
        strategies: strategies(flags.strategies),
        hosts: whole('--hosts', flags.hosts, 1, 256),
        switchMode: switchMode(flags.switch),
        switchSeconds: whole('--switch-window', flags.switchWindow, 1, 3600),
        rollbackSeconds: whole('--rollback', flags.rollback, 0, 3600),
        workload: {
          ...d.workload,
          keys: whole('--keys', flags.keys, 1, 10_000_000),
          rate: whole('--rate', flags.rate, 1, 1_000_000),
          skew: positive('--skew', flags.skew),
        },
      };
      if (!flags.json) {
        out.write(
          `Old pool: ${options.oldServers} memcached, new pool: ${options.newServers} (${options.hash}). ` +
            `Application: ${options.workload.keys} keys (Zipf ${options.workload.skew}), ` +
            `${options.workload.rate} requests/s, cache-aside over a simulated database.\n` +
            `Each strategy: ${options.warmupSeconds} s on the old pool, ${options.windowSeconds} s of migration, ` +
            (options.switchMode === 'rolling'
              ? `a rolling switch of ${options.hosts} hosts over ${options.switchSeconds} s, `
              : `cut-over of ${options.hosts} hosts at once, `) +
            `${options.afterSeconds} s measured` +
            (options.rollbackSeconds > 0 ? `, then a rollback measured ${options.rollbackSeconds} s` : '') +
            '.\nEvery hit is checked against the database (stale hits); at the end every key of both pools (stale values left).\n',
        );
      }
      // Interrupted, the demo still stops what it started: exiting runs the
      // launchers' exit hooks, which kill their memcached and tcpdump processes.
      const interrupt = (): void => process.exit(130);
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      // The live page: each strategy's hit ratio as it runs (the new pool's
      // would-be ratio during a mirror window, the application's otherwise).
      const gauges: Record<string, number> = {};
      let finished = 0;
      const dashboard = await serveWeb(flags, 'demo', () => ({
        time: Date.now(),
        counters: {},
        gauges: { ...gauges },
        progress: { strategies: { done: finished, total: options.strategies.length } },
      }));
      const report = await runScenario(options, {
        onPhase: (strategy, phase, _second, ratio) => {
          gauges[`hit ratio/${strategy}`] = ratio;
          gauges[`phase/${strategy}`] = ['warm-up', 'window', 'switching', 'after', 'rollback'].indexOf(
            phase,
          );
        },
        onResult: (r) => {
          finished++;
          if (flags.json) return;
          const window = r.window.length ? `  before cut-over: ${r.window.map(pct).join(' ')}` : '';
          out.write(`${r.strategy.padEnd(21)} after cut-over: ${r.after.map(pct).join(' ')}${window}`);
        },
      });
      await dashboard?.close();
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
      const dir = resolve(flags.out);
      const table = renderScenario(report);
      await writeReport(dir, report, table);
      out.write(
        flags.json
          ? JSON.stringify(report, null, 2)
          : `\n${table}\n\nwritten: ${join(dir, 'report.txt')}, report.json, hit-ratio.svg`,
      );
    });
}

/** The report folder: the table, the JSON and the plot, each written whole and private. */
async function writeReport(dir: string, report: ScenarioReport, table: string): Promise<void> {
  await makePrivateDir(dir);
  await writePrivateFile(join(dir, 'report.txt'), `${table}\n`);
  await writePrivateFile(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writePrivateFile(join(dir, 'hit-ratio.svg'), plot(report));
}

function pct(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}

export function renderScenario(report: ScenarioReport): string {
  const after = report.options.afterSeconds;
  const header = [
    'STRATEGY',
    'BEFORE',
    'FIRST SECOND',
    after >= 60 ? 'FIRST MINUTE' : `FIRST ${after} S`,
    'BACK WITHIN 1%',
    'DB READS',
    'COPIED',
    'VERIFY SAID (KEYS / RECENT)',
    'STALE HITS BEFORE/DURING/AFTER',
    'STALE LEFT OLD/NEW',
  ];
  const rollback = report.options.rollbackSeconds > 0;
  if (rollback) header.push('ROLLBACK 1ST S', 'ROLLBACK STALE HITS');
  const rows = report.results.map((r) => [
    r.strategy,
    formatRatio(r.before),
    formatRatio(r.firstSecond),
    formatRatio(r.firstMinute),
    r.recoverySeconds === undefined ? `not in ${after} s` : `${r.recoverySeconds} s`,
    String(r.databaseReads),
    formatBytes(r.bytesCopied),
    r.verify ? `${formatRatio(r.verify.coverage)} / ${formatRatio(r.verify.recentCoverage)}` : '-',
    `${r.staleHits.before} / ${r.staleHits.during} / ${r.staleHits.after}`,
    `${r.staleValues.old} / ${r.staleValues.new}`,
    ...(rollback ? [formatRatio(r.rollback?.firstSecond ?? 0), String(r.staleHits.rollback)] : []),
  ]);
  const numeric = [false, true, true, true, true, true, true, false, true, true, true, true];
  return formatTable(header, rows, numeric.slice(0, header.length));
}

function plot(report: ScenarioReport): string {
  return hitRatioSvg(
    'Hit ratio around cut-over, by migration strategy',
    report.results.map((r) => ({
      name: r.strategy,
      points: [
        ...r.window.map((v, i): [number, number] => [i - r.window.length + 1 - 1, v]),
        [0, r.start],
        ...[...r.switching, ...r.after, ...(r.rollback?.after ?? [])].map((v, i): [number, number] => [
          i + 1,
          v,
        ]),
      ],
    })),
    {
      title: 'Stale hits per second (a value older than the database), from the switch on',
      label: 'stale hits / s',
      series: report.results.map((r) => ({
        name: r.strategy,
        points: r.staleBySecond.map((n, i): [number, number] => [i + 1, n]),
      })),
    },
  );
}

function switchMode(text: string): 'instant' | 'rolling' {
  if (text === 'instant' || text === 'rolling') return text;
  throw new UsageError(`--switch must be instant or rolling, got "${text}"`);
}

function strategies(text: string): Strategy[] {
  const list = text.split(',').map((s) => s.trim());
  for (const s of list) {
    if (!(STRATEGIES as readonly string[]).includes(s)) {
      throw new UsageError(`--strategies: unknown strategy "${s}" (choose from ${STRATEGIES.join(', ')})`);
    }
  }
  return list as Strategy[];
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
