/**
 * `memshift plan --from POOL --to POOL [--keys FILE | --sample N]`: what each
 * migration strategy costs in cold keys, how keys spread over the new
 * servers, and which keys change owner. Keys come from a file (metadump lines
 * or `key [size [last-access]]`) or are sampled live from the source pool
 * with `lru_crawler metadump hash`.
 */
import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkPlacement, type PlacementCheck } from '../../jobs/placement-check.js';
import { PlanBuilder, parseKeyLine, type Plan, type PlanKey } from '../../jobs/plan.js';
import { MemcachedClient } from '../../net/client.js';
import { MemshiftError } from '../../protocol/errors.js';
import { parseMemory, type Pool } from '../../topology/pool.js';
import { DISTRIBUTIONS } from '../../topology/distribution.js';
import { formatBytes, formatRatio, formatTable } from '../format.js';
import { UsageError, type Output } from '../options.js';
import { resolvePools } from '../pools.js';

interface PlanFlags {
  from: string;
  to: string;
  pools?: string;
  hash: string;
  fromHash?: string;
  keys?: string;
  sample?: string;
  json?: boolean;
  recent: string;
  mirrorWindow: string;
  memory?: string;
  now?: string;
}

function wholeNumber(option: string, text: string, min = 1): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`${option} must be a whole number of at least ${min}, got "${text}"`);
  }
  return value;
}

export function registerPlan(program: Command, out: Output): void {
  program
    .command('plan')
    .description('what each migration strategy costs in cold keys, and how keys spread over the new pool')
    .requiredOption('--from <pool>', 'source pool: a name from --pools or host:port[:weight],...')
    .requiredOption('--to <pool>', 'target pool: a name from --pools or host:port[:weight],...')
    .option('--pools <file>', 'YAML or JSON file of named pools')
    .option('--hash <name>', "distribution of an inline pool, as the application's client hashes", 'ketama')
    .option('--from-hash <name>', 'distribution of an inline --from pool (default: --hash)')
    .option('--keys <file>', 'keys to plan for: metadump lines or "key [size [last-access]]" per line')
    .option('--sample <n>', 'sample n keys live from the source pool (lru_crawler metadump hash)')
    .option('--json', 'print JSON instead of tables')
    .option('--recent <seconds>', 'a key is recently used when accessed within this many seconds', '3600')
    .option('--mirror-window <seconds>', 'how long mirroring runs before cut-over', '86400')
    .option('--memory <size>', 'item memory of each inline --to server, e.g. 4g (memcached -m)')
    .option('--now <unix>', 'the time recency is measured from (default: the latest access seen)')
    .addHelpText(
      'after',
      '\nDistributions (--hash, or hash: in a pools file), the clients and settings each matches, and ' +
        'whether server weights (host:port:weight) count:\n' +
        distributionHelp() +
        '\n\nServers are hashed as the application writes them: a host name is hashed as that name, as ' +
        'the clients do,\nexcept by spymemcached, which hashes Java\'s "hostname/ip:port" (write that as ' +
        "the server's name).\n--sample also checks --from's distribution against the server each sampled " +
        'key is on, and names the\ndistributions that fit better.' +
        '\n\nExample: memshift plan --pools pools.yaml --from old --to new --sample 100000',
    )
    .action(async (flags: PlanFlags) => {
      out.write(await runPlan(flags));
    });
}

/** One entry per distribution: its name, then what it matches wrapped under it. */
function distributionHelp(width = 100): string {
  const lines: string[] = [];
  for (const d of DISTRIBUTIONS) {
    const names = [d.name, ...d.aliases].join(', ');
    lines.push(`  ${names}${d.weights ? '  [weights]' : ''}`);
    let line = '     ';
    for (const word of d.matches.split(' ')) {
      if (line.length + word.length + 1 > width && line.trim() !== '') {
        lines.push(line);
        line = '     ';
      }
      line += ` ${word}`;
    }
    lines.push(line);
  }
  return lines.join('\n');
}

export async function runPlan(flags: PlanFlags): Promise<string> {
  if ((flags.keys === undefined) === (flags.sample === undefined)) {
    throw new UsageError('plan needs exactly one of --keys FILE or --sample N');
  }
  const memoryLimit = flags.memory === undefined ? undefined : parseMemory(flags.memory);
  if (flags.memory !== undefined && memoryLimit === undefined) {
    throw new UsageError(`--memory must be bytes or a size like 64m, 4g; got "${flags.memory}"`);
  }
  const { from, to } = resolvePools(flags, memoryLimit);
  const options = {
    recentSeconds: wholeNumber('--recent', flags.recent),
    mirrorSeconds: wholeNumber('--mirror-window', flags.mirrorWindow),
    ...(flags.now === undefined ? {} : { now: wholeNumber('--now', flags.now, 0) }),
  };
  let plan: Plan & { sourcePlacement?: PlacementCheck };
  if (flags.keys !== undefined) {
    const builder = new PlanBuilder(from, to, options);
    for await (const key of readKeysFile(flags.keys)) builder.add(key);
    plan = builder.finish();
  } else {
    const size = wholeNumber('--sample', flags.sample!);
    const { sample, seen } = await sampleKeys(from, size);
    const builder = new PlanBuilder(from, to, {
      ...options,
      scale: sample.length ? seen / sample.length : 1,
    });
    plan = builder.addAll(sample).finish();
    // Sampled keys say which server holds them: check the source pool's distribution against that.
    const sourcePlacement = checkPlacement(from, sample);
    if (sourcePlacement) plan = { ...plan, sourcePlacement };
  }
  return flags.json ? JSON.stringify(plan, null, 2) : renderPlan(plan);
}

async function* readKeysFile(file: string): AsyncGenerator<PlanKey> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    throw new UsageError(
      `--keys ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  let lineNo = 0;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    lineNo++;
    let key: PlanKey | undefined;
    try {
      key = parseKeyLine(line);
    } catch (err) {
      throw new UsageError(`--keys ${file}:${lineNo}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (key) yield key;
  }
}

/**
 * A uniform sample of `size` keys over every server of the pool (reservoir
 * sampling), reading each server's whole dump so the sample is not biased to
 * the slab classes dumped first; memory stays at `size` entries. The dump
 * walks the hash table (`metadump hash`), which lists each item once even
 * while the LRU maintainer moves items between LRUs; `metadump all` walks the
 * LRUs and can miss or repeat an item that moves during the walk.
 */
export async function sampleKeys(
  pool: Pool,
  size: number,
): Promise<{ sample: (PlanKey & { holder: number })[]; seen: number }> {
  const sample: (PlanKey & { holder: number })[] = [];
  let seen = 0;
  // A fixed seed keeps repeated plans of an unchanged pool comparable.
  let state = 0x2545f491;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x100000000;
  };
  for (const [holder, server] of pool.servers.entries()) {
    const client = new MemcachedClient(server.address);
    try {
      for await (const entry of client.metadump('hash')) {
        seen++;
        // Copy the key: the entry may be a view into the connection's buffer.
        const item = { key: Buffer.from(entry.key), size: entry.size, lastAccess: entry.la, holder };
        if (sample.length < size) sample.push(item);
        else {
          const j = Math.floor(random() * seen);
          if (j < size) sample[j] = item;
        }
      }
    } catch (err) {
      if (err instanceof MemshiftError) throw err;
      throw new MemshiftError('MEMSHIFT_ERR_SAMPLE', `${server.address}: cannot sample keys: ${String(err)}`);
    } finally {
      await client.close();
    }
  }
  return { sample, seen };
}

function pct(x: number): string {
  return formatRatio(x);
}

/** The source placement line, and a warning line when the distribution does not fit the pool. */
export function renderPlacement(check: PlacementCheck): string[] {
  const lines = [
    `source placement: ${pct(check.agree)} of ${check.checked} sampled keys are on the server ${check.hash} names`,
  ];
  // A client's failover or an old configuration leaves a few keys elsewhere; a wrong distribution
  // leaves most of them.
  if (check.agree < 0.99) {
    const better = check.better.map((b) => `${b.hash} (${pct(b.agree)})`).join(', ');
    lines.push(
      `warning: ${check.hash} does not place this pool's keys where they are` +
        (better ? `; closer: ${better}` : '') +
        ": set --from-hash (or hash: in the pools file) to the application's client (plan --help lists them)",
    );
  }
  return lines;
}

export function renderPlan(plan: Plan & { sourcePlacement?: PlacementCheck }): string {
  const lines: string[] = [];
  lines.push(
    `${plan.keys} keys (${formatBytes(plan.bytes)}) from ${plan.from.name} (${plan.from.hash}, ` +
      `${plan.from.servers.length} servers) to ${plan.to.name} (${plan.to.hash}, ${plan.to.servers.length} servers)` +
      (plan.scale !== 1 ? `; a sample, each key stands for ${plan.scale.toFixed(1)}` : ''),
  );
  lines.push(
    `recently used: within ${plan.recentSeconds}s (${plan.recentKeys} keys); mirror window ${plan.mirrorSeconds}s` +
      (plan.lastAccessKnown ? '' : '; last access unknown for some keys: they count as not recently used'),
  );
  if (plan.overflow > 0) lines.push(`${plan.overflow} keys beyond the in-memory cap were not analysed`);
  if (plan.sourcePlacement) lines.push(...renderPlacement(plan.sourcePlacement));
  lines.push('');
  const rows: string[][] = [];
  for (const s of plan.strategies) {
    // Step costs add up over the migration (and may pass 100%): say so beside the total.
    const label = s.steps ? `${s.strategy} (sum of ${s.steps.length} steps)` : s.strategy;
    rows.push([label, pct(s.cold.keys), pct(s.cold.bytes), pct(s.cold.recentKeys)]);
    for (const [i, step] of (s.steps ?? []).entries()) {
      rows.push([`  step ${i + 1}: ${step.change}`, pct(step.keys), pct(step.bytes), pct(step.recentKeys)]);
    }
  }
  lines.push(
    formatTable(['STRATEGY (cold right after cut-over)', 'KEYS', 'BYTES', 'RECENT'], rows, [
      false,
      true,
      true,
      true,
    ]),
  );
  lines.push('');
  lines.push(
    formatTable(
      ['NEW SERVER', 'KEYS', 'SHARE', 'BYTES', 'NEEDED', 'LIMIT', 'FILL'],
      plan.spread.servers.map((s) => [
        s.address,
        String(s.keys),
        pct(s.keyShare),
        formatBytes(s.bytes),
        formatBytes(Math.round(s.memoryNeeded)),
        s.memoryLimit === undefined ? '-' : formatBytes(s.memoryLimit),
        s.fill === undefined ? '-' : pct(s.fill),
      ]),
      [false, true, true, true, true, true, true],
    ),
  );
  lines.push(
    `skew (busiest / mean): keys ${plan.spread.keySkew.toFixed(2)}, bytes ${plan.spread.byteSkew.toFixed(2)}`,
  );
  lines.push('');
  const own = plan.ownership;
  lines.push(
    own.sharedServers.length === 0
      ? 'no server is in both pools: every key changes owner'
      : `servers in both pools: ${own.sharedServers.join(', ')}; ${pct(own.changed.keys)} of keys ` +
          `(${pct(own.changed.bytes)} of bytes) change owner`,
  );
  for (const s of own.samples.slice(0, 10)) lines.push(`  ${JSON.stringify(s.key)}: ${s.from} -> ${s.to}`);
  return lines.join('\n');
}
