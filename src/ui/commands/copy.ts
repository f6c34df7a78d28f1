/**
 * `memshift copy --from POOL --to POOL`: backfill the new pool with the keys
 * the old pool holds, hottest first, with flags and remaining TTLs. A
 * progress bar on a terminal, plain lines otherwise (both on stderr, so
 * `--json` output stays clean); Ctrl-C stops after the batches in flight and
 * keeps the checkpoint for `--resume`.
 */
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import {
  runCopy,
  SKIP_REASONS,
  type CopyOptions,
  type CopyProgress,
  type CopyReport,
} from '../../jobs/copy.js';
import { formatBytes, formatDuration } from '../format.js';
import { parseSize, UsageError, type Output } from '../options.js';
import { poolOptions, resolvePools, type PoolFlags } from '../pools.js';
import type { DashboardSnapshot } from '../dashboard/server.js';
import { addWebOptions, serveWeb } from '../web.js';

interface CopyFlags extends PoolFlags {
  order: string;
  rate?: string;
  bandwidth?: string;
  concurrency?: string;
  match?: string;
  prefix?: string;
  minTtl?: string;
  maxTtl?: string;
  maxSize?: string;
  maxValue?: string;
  checkpoint: string | false;
  resume?: boolean;
  json?: boolean;
  progress?: boolean;
  web?: string;
  webAllowRemote?: boolean;
}

function count(option: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`${option} must be a whole number of at least ${min}, got "${text}"`);
  }
  return value;
}

export function registerCopy(program: Command, out: Output): void {
  poolOptions(
    addWebOptions(program.command('copy')).description(
      "copy the old pool's keys into the new pool, hottest first, with flags and remaining TTLs",
    ),
  )
    .option('--order <order>', 'hottest (most recently used first) or dump (as listed)', 'hottest')
    .option('--rate <keys>', 'at most this many keys per second')
    .option('--bandwidth <size>', 'at most this many value bytes per second read from the old pool, e.g. 50m')
    .option('--concurrency <n>', 'batches in flight per source server at most (default 4)')
    .option('--match <regex>', 'only keys matching this regular expression')
    .option('--prefix <text>', 'only keys starting with this text')
    .option('--min-ttl <seconds>', 'skip keys with less TTL left than this')
    .option('--max-ttl <seconds>', 'cap the TTL written (keys that never expire get it too)')
    .option('--max-size <size>', 'skip values larger than this, e.g. 512k')
    .option(
      '--max-value <size>',
      "largest value read or written (default: each server's item_size_max from stats settings), e.g. 2m",
    )
    .option('--checkpoint <file>', 'where progress is saved for --resume', 'memshift-copy.checkpoint')
    .option('--no-checkpoint', 'keep no checkpoint')
    .option('--resume', 'continue an interrupted copy from its checkpoint')
    .option('--json', 'print the summary as JSON')
    .option('--no-progress', 'no progress bar or progress lines')
    .addHelpText(
      'after',
      '\nWhat copy guarantees, whatever writes beside it (a mirror, the proxy, an application writing\n' +
        'both pools, as long as it changes the old pool before the new one): the new pool never keeps\n' +
        'a key the old pool no longer holds, nor an older value than the old pool holds. Every key is\n' +
        'read with its CAS, written in add mode (a value already there wins), then looked up on the old\n' +
        'pool again; a key deleted, rewritten or given a shorter TTL meanwhile is taken back from the\n' +
        "new pool by a delete guarded by the copy's own CAS. Values and keys follow the servers'\n" +
        'limits (item_size_max): a value the target cannot hold, or a key no meta command can name\n' +
        '(a binary key over 186 bytes with spaces or control bytes), is skipped and counted alone.\n' +
        'Without mirroring, changes after the copy are not followed: run memshift mirror beside it.\n' +
        '\nFailures: the checkpoint moves only over batches that succeeded; a source server whose\n' +
        'batches fail 3 times in a row is given up with one error line; --resume retries every key\n' +
        'not copied. Exit status: 0 when every key was copied or skipped for a reason, 1 after errors,\n' +
        'failed keys or Ctrl-C.\n' +
        '\nExample: memshift copy --pools pools.yaml --from old --to new --rate 50000',
    )
    .action(async (flags: CopyFlags) => {
      const { from, to } = resolvePools(flags);
      if (flags.order !== 'hottest' && flags.order !== 'dump') {
        throw new UsageError(`--order must be hottest or dump, got "${flags.order}"`);
      }
      let match: RegExp | undefined;
      if (flags.match !== undefined) {
        try {
          match = new RegExp(flags.match);
        } catch (err) {
          throw new UsageError(`--match: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (flags.resume && flags.checkpoint === false) throw new UsageError('--resume needs a checkpoint');
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once('SIGINT', onSignal);
      const options: CopyOptions = {
        from,
        to,
        order: flags.order,
        signal: abort.signal,
        ...defined('rate', count('--rate', flags.rate)),
        ...defined('bandwidth', parseSize('--bandwidth', flags.bandwidth)),
        ...defined('concurrency', count('--concurrency', flags.concurrency)),
        ...defined('match', match),
        ...defined('prefix', flags.prefix === undefined ? undefined : Buffer.from(flags.prefix)),
        ...defined('minTtl', count('--min-ttl', flags.minTtl)),
        ...defined('maxTtl', count('--max-ttl', flags.maxTtl)),
        ...defined('maxSize', parseSize('--max-size', flags.maxSize)),
        ...defined('maxValue', parseSize('--max-value', flags.maxValue)),
        ...defined('checkpoint', flags.checkpoint === false ? undefined : flags.checkpoint),
        ...defined('resume', flags.resume),
      };
      const view = flags.progress === false ? undefined : new ProgressView(process.stderr);
      let latest: CopyProgress | undefined;
      const dashboard = await serveWeb(flags, 'copy', () => copySnapshot(latest));
      let report: CopyReport;
      try {
        report = await runCopy(options, {
          onProgress: (p) => {
            latest = p;
            view?.update(p);
          },
          onWarning: (w) => process.stderr.write(`memshift: warning: ${w}\n`),
        });
      } finally {
        view?.stop();
        await dashboard?.close();
        process.off('SIGINT', onSignal);
      }
      out.write(flags.json ? JSON.stringify(report, null, 2) : renderCopy(report, from.name, to.name));
      out.exitCode = report.interrupted || report.errors.length > 0 || report.skipped.failed > 0 ? 1 : 0;
    });
}

/** The copy's figures for the dashboard and /metrics. */
function copySnapshot(p: CopyProgress | undefined): DashboardSnapshot {
  const counters: Record<string, number> = { 'keys/copied': p?.copied ?? 0, 'bytes/written': p?.bytes ?? 0 };
  for (const reason of SKIP_REASONS) counters[`skipped/${reason}`] = p?.skipped[reason] ?? 0;
  return {
    time: Date.now(),
    counters,
    gauges: { 'rate/keys per second': p?.keysPerSecond ?? 0 },
    progress: { copy: { done: p?.done ?? 0, total: p?.total ?? 0 } },
  };
}

function defined<K extends string, V>(name: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [name]: value }) as { [P in K]?: V };
}

function skippedText(p: CopyProgress): string {
  const parts = SKIP_REASONS.filter((r) => p.skipped[r] > 0).map((r) => `${r} ${p.skipped[r]}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** A bar on a terminal; elsewhere a plain line every 5 seconds. */
class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private lastLine = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(p: CopyProgress): void {
    if (p.phase === 'listing') return;
    const fields = {
      rate: Math.round(p.keysPerSecond),
      bytes: `${formatBytes(Math.round(p.bytesPerSecond))}/s`,
      left: p.etaSeconds === undefined ? '-' : formatDuration(p.etaSeconds),
      skipped: skippedText(p),
    };
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.stream,
            format:
              'copy [{bar}] {percentage}% {value}/{total} keys | {rate} keys/s | {bytes} | ETA {left} | skipped: {skipped}',
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(Math.max(1, p.total), p.done, fields);
      }
      this.bar.setTotal(Math.max(1, p.total));
      this.bar.update(p.done, fields);
      return;
    }
    const now = performance.now();
    if (p.phase !== 'done' && now - this.lastLine < 5000) return;
    this.lastLine = now;
    const pct = p.total === 0 ? 100 : (100 * p.done) / p.total;
    this.stream.write(
      `copy: ${p.done}/${p.total} keys (${pct.toFixed(1)}%), ${fields.rate} keys/s, ${fields.bytes}, ` +
        `ETA ${fields.left}, skipped: ${fields.skipped}\n`,
    );
  }

  stop(): void {
    this.bar?.stop();
  }
}

export function renderCopy(report: CopyReport, from: string, to: string): string {
  const lines: string[] = [];
  const seconds = report.elapsedMs / 1000;
  lines.push(
    `${report.interrupted ? 'interrupted: ' : ''}copied ${report.copied} of ${report.total} keys ` +
      `(${formatBytes(report.bytes)}) from ${from} to ${to} in ${seconds.toFixed(1)}s, ` +
      `${Math.round(report.keysPerSecond)} keys/s`,
  );
  lines.push(`skipped: ${skippedText(report)}`);
  for (const s of report.sources) {
    lines.push(
      `  ${s.address}: ${s.listed} keys listed (${s.method ?? 'not listed'})` +
        (s.resumedAt > 0 ? `, resumed after ${s.resumedAt}` : '') +
        (s.retried > 0 ? `, ${s.retried} keys of failed batches tried again` : '') +
        `, item_size_max ${formatBytes(s.itemSizeMax)}`,
    );
    for (const w of s.warnings) lines.push(`    warning: ${w}`);
  }
  if (report.slowdowns > 0) lines.push(`slowed down ${report.slowdowns} times as the source answered slower`);
  for (const e of report.errors) lines.push(`error: ${e}`);
  if (report.interrupted || report.errors.length > 0)
    lines.push('run the same command with --resume to copy what is left');
  if (report.pointInTime) {
    lines.push(
      'no live mirroring ran in this process: every key copied was checked on the old pool after it was ' +
        'written, but later changes are not followed; mirror live traffic (memshift mirror) to keep the new pool in step',
    );
  }
  return lines.join('\n');
}
