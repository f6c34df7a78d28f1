/**
 * `--from POOL --to POOL` as every migration command reads them: a pool name
 * from a `--pools` file, or an inline `host:port[:weight],...` list hashed by
 * `--hash` (the source by `--from-hash` when it differs).
 */
import type { Command } from 'commander';
import { loadPools, resolvePool, type Pool } from '../topology/pool.js';

export interface PoolFlags {
  from: string;
  to: string;
  pools?: string;
  hash: string;
  fromHash?: string;
}

/** Adds --from, --to, --pools, --hash and --from-hash to a command. */
export function poolOptions(command: Command): Command {
  return command
    .requiredOption('--from <pool>', 'source pool: a name from --pools or host:port[:weight],...')
    .requiredOption('--to <pool>', 'target pool: a name from --pools or host:port[:weight],...')
    .option('--pools <file>', 'YAML or JSON file of named pools')
    .option('--hash <name>', "distribution of an inline pool, as the application's client hashes", 'ketama')
    .option('--from-hash <name>', 'distribution of an inline --from pool (default: --hash)');
}

/** The two pools; `memoryLimit` is each inline --to server's item memory, when known. */
export function resolvePools(flags: PoolFlags, memoryLimit?: number): { from: Pool; to: Pool } {
  const pools = flags.pools ? loadPools(flags.pools) : undefined;
  const from = resolvePool(flags.from, {
    pools,
    poolsFile: flags.pools,
    hash: flags.fromHash ?? flags.hash,
    option: '--from',
  });
  const to = resolvePool(flags.to, {
    pools,
    poolsFile: flags.pools,
    hash: flags.hash,
    source: from,
    memoryLimit,
    option: '--to',
  });
  return { from, to };
}
