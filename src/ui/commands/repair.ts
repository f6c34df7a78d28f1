/**
 * `memshift repair --from POOL --to POOL`: remove from the new pool every
 * value the old pool does not hold (after a capture loss, and before the
 * switch). Progress lines on stderr, the summary on stdout (`--json` for
 * automation); Ctrl-C stops after the batches in flight and keeps the
 * checkpoint for `--resume`.
 */
import type { Command } from 'commander';
import {
  REPAIR_COUNTS,
  runRepair,
  type RepairOptions,
  type RepairProgress,
  type RepairReport,
} from '../../jobs/repair.js';
import type { DashboardSnapshot } from '../dashboard/server.js';
import { formatDuration } from '../format.js';
import { parseSize, UsageError, type Output } from '../options.js';
import { poolOptions, resolvePools, type PoolFlags } from '../pools.js';
import { addWebOptions, serveWeb, type WebFlags } from '../web.js';

interface RepairFlags extends PoolFlags, WebFlags {
  rate?: string;
  bandwidth?: string;
  concurrency?: string;
  ttlSlack: string;
  maxValue?: string;
  checkpoint: string | false;
  resume?: boolean;
  json?: boolean;
  progress?: boolean;
}

function whole(option: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`${option} must be a whole number of at least ${min}, got "${text}"`);
  }
  return value;
}

export function registerRepair(program: Command, out: Output): void {
  poolOptions(
    addWebOptions(program.command('repair')).description(
      'remove from the new pool every value the old pool does not hold (after a capture loss)',
    ),
  )
    .option('--rate <keys>', 'at most this many new-pool keys checked per second')
    .option('--bandwidth <size>', 'at most this many value bytes per second read from the old pool, e.g. 50m')
    .option('--concurrency <n>', 'batches in flight per new server at most (default 4)')
    .option('--ttl-slack <seconds>', "remove a key whose TTL outlives the old pool's by more than this", '2')
    .option('--max-value <size>', "largest value read (default: the servers' item_size_max), e.g. 2m")
    .option('--checkpoint <file>', 'where progress is saved for --resume', 'memshift-repair.checkpoint')
    .option('--no-checkpoint', 'keep no checkpoint')
    .option('--resume', 'continue an interrupted repair from its checkpoint')
    .option('--json', 'print the summary as JSON')
    .option('--no-progress', 'no progress lines')
    .addHelpText(
      'after',
      '\nWhat repair does: lists every key of the new pool, reads it (value, flags, TTL, CAS), looks it up\n' +
        "on the old server the application's hashing (--from-hash) places it on, and removes it from the\n" +
        'new pool when its value or flags differ, the old pool lacks it, or it would outlive the old\n' +
        "pool's copy. The delete is guarded by the CAS read from the new pool (md <key> C<cas>), so a\n" +
        'value a mirror or writer put there since is never removed; repair never writes a value, so it\n' +
        'never resurrects a key. A removed key is a miss: copy or the next read fills it again.\n' +
        'Run it after any capture loss mirror reports, and always just before the switch.\n' +
        '\nExit status: 0 when every key of the new pool was checked; 1 after errors, failed batches,\n' +
        'keys it could not check (no CAS on the new server, an incomplete listing) or Ctrl-C: run the\n' +
        'same command with --resume.\n' +
        '\nExample: memshift repair --pools pools.yaml --from old --to new --rate 50000',
    )
    .action(async (flags: RepairFlags) => {
      const { from, to } = resolvePools(flags);
      if (flags.resume && flags.checkpoint === false) throw new UsageError('--resume needs a checkpoint');
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once('SIGINT', onSignal);
      const rate = whole('--rate', flags.rate, 1);
      const bandwidth = parseSize('--bandwidth', flags.bandwidth);
      const concurrency = whole('--concurrency', flags.concurrency, 1);
      const maxValue = parseSize('--max-value', flags.maxValue);
      const options: RepairOptions = {
        from,
        to,
        signal: abort.signal,
        ttlSlack: whole('--ttl-slack', flags.ttlSlack, 0)!,
        ...(rate === undefined ? {} : { rate }),
        ...(bandwidth === undefined ? {} : { bandwidth }),
        ...(concurrency === undefined ? {} : { concurrency }),
        ...(maxValue === undefined ? {} : { maxValue }),
        ...(flags.checkpoint === false ? {} : { checkpoint: flags.checkpoint }),
        ...(flags.resume ? { resume: true } : {}),
      };
      let lastLine = 0;
      let latest: RepairProgress | undefined;
      const dashboard = await serveWeb(flags, 'repair', () => repairSnapshot(latest));
      let report: RepairReport;
      try {
        report = await runRepair(options, {
          onProgress: (p) => {
            latest = p;
            if (flags.progress === false || p.phase !== 'repairing') return;
            const now = performance.now();
            if (now - lastLine < 5000) return;
            lastLine = now;
            process.stderr.write(`${progressLine(p)}\n`);
          },
          onWarning: (w) => process.stderr.write(`memshift: warning: ${w}\n`),
        });
      } finally {
        await dashboard?.close();
        process.off('SIGINT', onSignal);
      }
      out.write(flags.json ? JSON.stringify(report, null, 2) : renderRepair(report, from.name, to.name));
      out.exitCode = report.complete ? 0 : 1;
    });
}

/** The repair's figures for the dashboard and /metrics (memshift_repair_keys_total{series=...}). */
function repairSnapshot(p: RepairProgress | undefined): DashboardSnapshot {
  const counters: Record<string, number> = {};
  for (const name of REPAIR_COUNTS) {
    counters[`keys/${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`] = p?.counts[name] ?? 0;
  }
  return {
    time: Date.now(),
    counters,
    gauges: { 'rate/keys per second': p?.keysPerSecond ?? 0 },
    progress: { repair: { done: p?.done ?? 0, total: p?.total ?? 0 } },
  };
}

function progressLine(p: RepairProgress): string {
  const pct = p.total === 0 ? 100 : (100 * p.done) / p.total;
  const c = p.counts;
  return (
    `repair: ${p.done}/${p.total} keys (${pct.toFixed(1)}%), ${Math.round(p.keysPerSecond)} keys/s, ` +
    `ETA ${p.etaSeconds === undefined ? '-' : formatDuration(p.etaSeconds)}, removed ` +
    `${c.removedStale + c.removedAbsentOnSource + c.removedOutlivesSource}`
  );
}

export function renderRepair(r: RepairReport, from: string, to: string): string {
  const c = r.counts;
  const lines = [
    `${r.interrupted ? 'interrupted: ' : ''}checked ${c.compared} keys of ${to} against ${from} in ` +
      `${(r.elapsedMs / 1000).toFixed(1)}s, ${Math.round(r.keysPerSecond)} keys/s: ${c.equal} equal, ` +
      `${r.removed} removed`,
    `removed: ${c.removedStale} stale (value or flags differ), ${c.removedAbsentOnSource} absent on the ` +
      `old pool, ${c.removedOutlivesSource} outliving the old pool's TTL`,
    `left alone: ${c.changedSinceRead} changed since read (a writer got there first), ${c.vanished} gone ` +
      `before read` +
      (c.unguarded > 0 ? `, ${c.unguarded} differing on a server without CAS (-C): not repaired` : ''),
  ];
  if (c.unsupported > 0) lines.push(`${c.unsupported} keys not checked: no meta command can name them`);
  if (c.overflow > 0) lines.push(`${c.overflow} keys not checked: beyond the in-memory cap of a listing`);
  if (c.failed > 0) lines.push(`${c.failed} keys not checked: their batches failed`);
  for (const t of r.targets) {
    lines.push(
      `  ${t.address}: ${t.listed} keys listed (${t.method ?? 'not listed'})` +
        (t.resumedAt > 0 ? `, resumed after ${t.resumedAt}` : ''),
    );
    for (const w of t.warnings) lines.push(`    warning: ${w}`);
  }
  for (const e of r.examples) lines.push(`  ${e}`);
  if (r.slowdowns > 0) lines.push(`slowed down ${r.slowdowns} times as the servers answered slower`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  if (!r.complete) lines.push('not every key was checked: run the same command with --resume (or again)');
  return lines.join('\n');
}
