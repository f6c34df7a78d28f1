/**
 * `memshift dump HOST:PORT`: every key of one server with its remaining TTL,
 * size, last access, fetched bit and slab class, as a table, JSON lines or
 * CSV. Keys stream through (bounded memory for millions of keys); values
 * only with --values. Keys and values that are not printable ASCII are shown
 * escaped (\xHH, and \\ for a backslash).
 */
import type { Command } from 'commander';
import {
  dumpKeys,
  escapeBytes,
  keyFilter,
  zeroDumpCounters,
  type DumpCounters,
  type DumpRecord,
} from '../../jobs/dump.js';
import type { EnumerationInfo } from '../../jobs/enumerate.js';
import { MemcachedClient } from '../../net/client.js';
import { parseEndpoint } from '../../net/address.js';
import { parserLimitsFor, readServerLimits, type ServerLimits } from '../../net/server-limits.js';
import { parseMemory } from '../../topology/pool.js';
import { UsageError, parseMilliseconds, parseSize, type Output } from '../options.js';

type Format = 'table' | 'jsonl' | 'csv';

interface DumpFlags {
  match?: string;
  limit?: string;
  values?: boolean;
  format: string;
  timeout: string;
  maxMemory: string;
  maxValue?: string;
}

export function registerDump(program: Command, out: Output): void {
  program
    .command('dump')
    .description('list every key of a server with TTL, size, last access and slab class')
    .argument('<server>', 'the instance, host:port')
    .option('--match <pattern>', 'keys matching a glob (* and ?) or /regex/')
    .option('--limit <n>', 'stop after n matching keys')
    .option(
      '--values',
      'also fetch and print each value (off by default: values can be sensitive; reading counts as an access)',
    )
    .option('--format <format>', 'table, jsonl or csv', 'table')
    .option('--timeout <ms>', 'connect and reply timeout', '5000')
    .option('--max-value <size>', "largest value read with --values (default: the server's item_size_max)")
    .option(
      '--max-memory <size>',
      'memory for the key list, e.g. 512m, 2g (about 15 bytes + key per key)',
      '512m',
    )
    .addHelpText(
      'after',
      '\nKeys are listed with lru_crawler metadump hash (each item once), falling back to\n' +
        'metadump all, then to stats cachedump (incomplete: a warning says so).\n' +
        "TTL and idle times are measured by the server's clock. A summary goes to stderr.\n" +
        'Keys are listed in full before anything is written, so a slow reader of the output\n' +
        "never holds the server's crawler (which would hold up requests for some keys).\n" +
        'Exit status is 1 when keys were left out because the key list was full.\n' +
        '\nKeys and values are printed escaped: bytes that are not printable ASCII as \\xHH,\n' +
        'a backslash as \\\\. In CSV, a key or value cell that would start with = + - @ or a\n' +
        "quote (') gets a quote put in front, so a spreadsheet shows it as text instead of\n" +
        'running it as a formula (a tab or CR is already \\x09 or \\x0d). To get the bytes\n' +
        'back: drop one leading quote if the cell starts with one, then turn \\xHH into that\n' +
        'byte and \\\\ into a backslash.\n\n' +
        "Example: memshift dump 127.0.0.1:11211 --match 'session:*' --format jsonl --limit 1000",
    )
    .action(async (server: string, flags: DumpFlags) => {
      out.exitCode = await runDump(server, flags, out);
    });
}

function parseFormat(text: string): Format {
  if (text === 'table' || text === 'jsonl' || text === 'csv') return text;
  if (text === 'json') return 'jsonl';
  throw new UsageError(`--format must be table, jsonl or csv; got "${text}"`);
}

function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--limit must be a whole number above 0, got "${text}"`);
  return n;
}

const TABLE_HEADER = `${'TTL'.padStart(10)}  ${'SIZE'.padStart(8)}  ${'IDLE'.padStart(10)}  FETCHED  ${'CLASS'.padStart(5)}  KEY`;

function tableLine(r: DumpRecord, values: boolean): string {
  const ttl = r.ttl === undefined ? 'never' : `${r.ttl}s`;
  const idle = r.idle === undefined ? '-' : `${r.idle}s`;
  let line =
    `${ttl.padStart(10)}  ${String(r.size).padStart(8)}  ${idle.padStart(10)}  ` +
    `${(r.fetched ? 'yes' : 'no').padEnd(7)}  ${String(r.slabClass).padStart(5)}  ${escapeBytes(r.key)}`;
  if (values)
    line += r.value === undefined ? '  (gone)' : `  flags=${r.flags ?? 0} value=${escapeBytes(r.value)}`;
  return line;
}

const CSV_HEADER = 'key,ttl,exp,last_access,idle,size,fetched,slab_class';

/**
 * A spreadsheet runs a cell that starts with one of these as a formula
 * (OWASP, CSV injection); a quote in front makes it text. The quote itself is
 * on the list so the rule can be undone: a cell that starts with a quote
 * always had one put there. Tab and CR never arrive raw (escapeBytes writes
 * \x09 and \x0d); they are listed so the rule does not hang on that.
 */
const FORMULA_START = /^[=+\-@\t\r']/;

/**
 * A key or value as a CSV cell: bytes escaped (escapeBytes), a quote put in
 * front of a formula start, then CSV quoting. Only these text cells: the
 * numeric columns are numbers (exp is -1 for "never"), never formulas.
 */
function csvText(bytes: Uint8Array): string {
  let text = escapeBytes(bytes);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvLine(r: DumpRecord, values: boolean): string {
  let line =
    `${csvText(r.key)},${r.ttl ?? ''},${r.exp},${r.lastAccess},${r.idle ?? ''},` +
    `${r.size},${r.fetched ? 1 : 0},${r.slabClass}`;
  if (values) line += r.value === undefined ? ',,' : `,${r.flags ?? 0},${csvText(r.value)}`;
  return line;
}

function jsonLine(r: DumpRecord, values: boolean): string {
  const base = {
    key: escapeBytes(r.key),
    ttl: r.ttl ?? null,
    exp: r.exp,
    last_access: r.lastAccess,
    idle: r.idle ?? null,
    size: r.size,
    fetched: r.fetched,
    slab_class: r.slabClass,
  };
  if (!values) return JSON.stringify(base);
  return JSON.stringify({
    ...base,
    flags: r.flags ?? null,
    // Values are bytes: base64 keeps any of them intact.
    value_base64: r.value === undefined ? null : r.value.toString('base64'),
  });
}

/** Lines are written in chunks, not one call per key, and never collected beyond one chunk. */
const CHUNK_LINES = 512;

async function runDump(server: string, flags: DumpFlags, out: Output): Promise<number> {
  const format = parseFormat(flags.format);
  const limit = parseLimit(flags.limit);
  const timeoutMs = parseMilliseconds('--timeout', flags.timeout);
  const match = flags.match === undefined ? undefined : keyFilter(flags.match);
  const values = flags.values === true;
  const maxListBytes = parseMemory(flags.maxMemory);
  if (maxListBytes === undefined) {
    throw new UsageError(`--max-memory must be bytes or a size like 512m, 2g; got "${flags.maxMemory}"`);
  }
  const endpoint = parseEndpoint(server);
  const timeouts = { connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs };
  // Values are read up to the server's own item_size_max (or --max-value).
  const probe = new MemcachedClient(endpoint, timeouts);
  let itemLimits: ServerLimits;
  try {
    itemLimits = await readServerLimits(probe);
  } finally {
    probe.destroy();
  }
  const client = new MemcachedClient(endpoint, {
    ...timeouts,
    limits: parserLimitsFor([itemLimits], parseSize('--max-value', flags.maxValue)),
  });
  const info: EnumerationInfo = { method: undefined, warnings: [] };
  const counters: DumpCounters = zeroDumpCounters();
  const render = format === 'table' ? tableLine : format === 'csv' ? csvLine : jsonLine;
  const chunk: string[] = [];
  if (format === 'table') chunk.push(values ? `${TABLE_HEADER}  VALUE` : TABLE_HEADER);
  if (format === 'csv') chunk.push(values ? `${CSV_HEADER},flags,value` : CSV_HEADER);
  try {
    const records = dumpKeys(
      client,
      {
        values,
        info,
        maxListBytes,
        onWarning: (w) => process.stderr.write(`memshift dump: warning: ${w}\n`),
        ...(match ? { match } : {}),
        ...(limit === undefined ? {} : { limit }),
      },
      counters,
    );
    for await (const record of records) {
      chunk.push(render(record, values));
      if (chunk.length >= CHUNK_LINES) {
        out.write(chunk.join('\n'));
        chunk.length = 0;
      }
    }
    if (chunk.length > 0) out.write(chunk.join('\n'));
  } finally {
    client.destroy();
  }
  process.stderr.write(
    `memshift dump: ${counters.written} keys written of ${counters.listed} listed from ${client.address}` +
      ` (${info.method ?? 'no method'})${values && counters.gone > 0 ? `, ${counters.gone} gone before their value was read` : ''}` +
      `${values && counters.unreadable > 0 ? `, ${counters.unreadable} values not readable by meta commands (binary keys over 186 bytes)` : ''}` +
      `${counters.overflow > 0 ? `, ${counters.overflow} left out (key list full)` : ''}\n`,
  );
  return counters.overflow > 0 ? 1 : 0;
}
