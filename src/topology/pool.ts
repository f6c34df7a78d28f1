/**
 * Pools: an ordered server list plus the distribution the application's
 * client uses over it. They come from a pools file (YAML or JSON, named
 * pools) or inline from the command line (`--to a:11211,b:11211 --hash ketama`).
 *
 * A pools file:
 *
 *   pools:
 *     old:
 *       hash: ketama                 # a name from `distribution.ts`
 *       servers: [10.0.0.1:11211, 10.0.0.2:11211:2]
 *     new:
 *       hash: twemproxy-ketama
 *       hash_function: fnv1a_64      # for distributions that take one
 *       memory: 4g                   # each server's item memory (memcached -m), for `plan`
 *       servers:
 *         - 10.0.1.1:11211:1 cache-a  # twemproxy-style name
 *         - { host: 10.0.1.2, port: 11211, weight: 1, name: cache-b, memory: 8g }
 *
 * The top-level `pools:` key may be left out. Server order matters: every
 * client hashes by position or by the text written here.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './config-error.js';
import { createDistribution, parseHashName, type Distribution } from './distribution.js';
import { makeServer, splitServerText, type Server } from './server.js';

export interface Pool {
  readonly name: string;
  readonly servers: readonly Server[];
  readonly distribution: Distribution;
  /** The distribution's canonical name. */
  readonly hash: string;
  /** The key hash function, for distributions that take one. */
  readonly hashFunction: string | undefined;
}

export interface PoolOptions {
  /** Pool name (default: the spec text). */
  name?: string;
  /** Key hash function, when not given as `hash:function`. */
  hashFunction?: string | undefined;
  /** For `map`: the pool whose servers pair with these by position. */
  source?: Pool | undefined;
  /** Item memory of every server, in bytes. */
  memoryLimit?: number | undefined;
  /** Where the spec came from, for error messages (default `--to`). */
  where?: string;
}

/** Builds a pool from servers already parsed. */
export function createPool(
  name: string,
  servers: readonly Server[],
  hash: string,
  options: PoolOptions = {},
): Pool {
  const where = options.where ?? name;
  const parsed = parseHashName(hash, options.hashFunction);
  if (typeof parsed === 'string') throw new ConfigError(where, 'hash', parsed);
  const distribution = createDistribution(hash, servers, {
    keyHash: options.hashFunction,
    source: options.source,
    where,
  });
  return { name, servers, distribution, hash: parsed.spec.name, hashFunction: parsed.keyHashName };
}

/**
 * An inline pool: "host:port[:weight],host:port[:weight],..." with the
 * distribution named by `hash` (e.g. the value of --hash).
 */
export function parsePoolSpec(spec: string, hash: string, options: PoolOptions = {}): Pool {
  const where = options.where ?? '--to';
  const items = spec.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === '')) {
    throw new ConfigError(
      where,
      '',
      `'${spec}' is not a server list (expected host:port[:weight],host:port...)`,
    );
  }
  const servers = items.map((text, i) => {
    const part = splitServerText(text);
    if (!part.ok) throw new ConfigError(where, `server ${i + 1}`, part.reason);
    return makeServer({ ...part, memoryLimit: options.memoryLimit });
  });
  checkDuplicates(servers, where, 'servers');
  return createPool(options.name ?? spec, servers, hash, { ...options, where });
}

function checkDuplicates(servers: readonly Server[], where: string, field: string): void {
  const seen = new Set<string>();
  for (const s of servers) {
    if (seen.has(s.address)) throw new ConfigError(where, field, `${s.address} is listed twice`);
    seen.add(s.address);
  }
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "64m", "4g", "1.5g", "65536" (bytes), or a number of bytes. */
export function parseMemory(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return bytes > 0 ? Math.floor(bytes) : undefined;
}

const POOL_FIELDS = ['hash', 'distribution', 'hash_function', 'servers', 'memory', 'source'];
const SERVER_FIELDS = ['host', 'port', 'weight', 'name', 'memory', 'address'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseServerEntry(
  entry: unknown,
  file: string,
  field: string,
  defaultMemory: number | undefined,
): Server {
  if (typeof entry === 'string') {
    const part = splitServerText(entry);
    if (!part.ok) throw new ConfigError(file, `${field}.${part.field}`, part.reason);
    return makeServer({ ...part, memoryLimit: defaultMemory });
  }
  if (!isRecord(entry)) {
    throw new ConfigError(
      file,
      field,
      'must be "host:port[:weight] [name]" or {host, port, weight, name, memory}',
    );
  }
  for (const key of Object.keys(entry)) {
    if (!SERVER_FIELDS.includes(key)) {
      throw new ConfigError(file, `${field}.${key}`, `unknown field (allowed: ${SERVER_FIELDS.join(', ')})`);
    }
  }
  let host: string | undefined;
  let port: number | undefined;
  if (entry.address !== undefined) {
    const part = typeof entry.address === 'string' ? splitServerText(entry.address) : undefined;
    if (!part || !part.ok) throw new ConfigError(file, `${field}.address`, 'must be "host:port"');
    host = part.host;
    port = part.port;
  }
  if (entry.host !== undefined) {
    if (typeof entry.host !== 'string' || entry.host === '') {
      throw new ConfigError(file, `${field}.host`, 'must be a host name or address');
    }
    host = entry.host.replace(/^\[(.*)\]$/, '$1');
  }
  if (host === undefined)
    throw new ConfigError(file, `${field}.host`, 'is required (or address: "host:port")');
  if (entry.port !== undefined) {
    const p = Number(entry.port);
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      throw new ConfigError(file, `${field}.port`, `must be an integer 1-65535, got '${String(entry.port)}'`);
    }
    port = p;
  }
  let weight: number | undefined;
  if (entry.weight !== undefined) {
    const w = Number(entry.weight);
    if (!Number.isInteger(w) || w < 1 || w > 65535) {
      throw new ConfigError(
        file,
        `${field}.weight`,
        `must be an integer 1-65535, got '${String(entry.weight)}'`,
      );
    }
    weight = w;
  }
  let name: string | undefined;
  if (entry.name !== undefined) {
    if (typeof entry.name !== 'string' || entry.name === '') {
      throw new ConfigError(file, `${field}.name`, 'must be a non-empty string');
    }
    name = entry.name;
  }
  let memoryLimit = defaultMemory;
  if (entry.memory !== undefined) {
    memoryLimit = parseMemory(entry.memory);
    if (memoryLimit === undefined) {
      throw new ConfigError(
        file,
        `${field}.memory`,
        `must be bytes or a size like 64m, 4g; got '${String(entry.memory)}'`,
      );
    }
  }
  return makeServer({ host, port, weight, name, memoryLimit });
}

/** Reads named pools from YAML or JSON text; `file` is used in error messages. */
export function parsePools(text: string, file: string): Map<string, Pool> {
  let doc: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    doc = parseYaml(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new ConfigError(file, '', `not valid YAML or JSON: ${reason}`);
  }
  const root = isRecord(doc) && isRecord(doc.pools) ? doc.pools : doc;
  const prefix = isRecord(doc) && isRecord(doc.pools) ? 'pools.' : '';
  if (!isRecord(root) || Object.keys(root).length === 0) {
    throw new ConfigError(file, 'pools', 'must map pool names to {hash, servers}');
  }
  const entries = Object.entries(root);
  const pools = new Map<string, Pool>();
  // A `map` pool needs its source built first; sources may come in any order.
  const pending = entries.slice();
  while (pending.length > 0) {
    const before = pending.length;
    for (let i = 0; i < pending.length; i++) {
      const [name, body] = pending[i]!;
      const field = `${prefix}${name}`;
      if (!isRecord(body)) throw new ConfigError(file, field, 'must be a mapping with hash and servers');
      const source = body.source;
      if (source !== undefined) {
        if (typeof source !== 'string' || !(source in root) || source === name) {
          throw new ConfigError(
            file,
            `${field}.source`,
            `must name another pool (${Object.keys(root).join(', ')})`,
          );
        }
        if (!pools.has(source)) continue;
      }
      pools.set(
        name,
        parsePoolBody(name, body, file, field, source === undefined ? undefined : pools.get(source)),
      );
      pending.splice(i, 1);
      i--;
    }
    if (pending.length === before) {
      throw new ConfigError(
        file,
        `${prefix}${pending[0]![0]}.source`,
        'pools name each other as source in a cycle',
      );
    }
  }
  return pools;
}

function parsePoolBody(
  name: string,
  body: Record<string, unknown>,
  file: string,
  field: string,
  source: Pool | undefined,
): Pool {
  for (const key of Object.keys(body)) {
    if (!POOL_FIELDS.includes(key)) {
      throw new ConfigError(file, `${field}.${key}`, `unknown field (allowed: ${POOL_FIELDS.join(', ')})`);
    }
  }
  const hash = body.hash ?? body.distribution;
  if (typeof hash !== 'string') {
    throw new ConfigError(
      file,
      `${field}.hash`,
      'is required: the distribution name, e.g. ketama, dalli, modula',
    );
  }
  let hashFunction: string | undefined;
  if (body.hash_function !== undefined) {
    if (typeof body.hash_function !== 'string') {
      throw new ConfigError(
        file,
        `${field}.hash_function`,
        'must be a hash function name such as md5, fnv1a_64',
      );
    }
    hashFunction = body.hash_function.toLowerCase();
  }
  const parsed = parseHashName(hash, hashFunction);
  if (typeof parsed === 'string') throw new ConfigError(file, `${field}.hash`, parsed);
  let memory: number | undefined;
  if (body.memory !== undefined) {
    memory = parseMemory(body.memory);
    if (memory === undefined) {
      throw new ConfigError(
        file,
        `${field}.memory`,
        `must be bytes or a size like 64m, 4g; got '${String(body.memory)}'`,
      );
    }
  }
  if (!Array.isArray(body.servers) || body.servers.length === 0) {
    throw new ConfigError(file, `${field}.servers`, 'must be a non-empty list of "host:port[:weight]"');
  }
  const servers = body.servers.map((entry: unknown, i: number) =>
    parseServerEntry(entry, file, `${field}.servers[${i}]`, memory),
  );
  checkDuplicates(servers, file, `${field}.servers`);
  if (parsed.spec.name === 'map' && !source) {
    throw new ConfigError(
      file,
      `${field}.source`,
      'is required for hash: map (the pool whose servers pair with these)',
    );
  }
  return createPool(name, servers, hash, { hashFunction, source, where: `${file}: ${field}` });
}

/** Reads a pools file (YAML or JSON). */
export function loadPools(file: string): Map<string, Pool> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(file, '', `cannot read the pools file (${code})`);
  }
  return parsePools(text, file);
}

export interface ResolveOptions {
  /** A pools file to look names up in. */
  poolsFile?: string | undefined;
  /** Pools already loaded (avoids reading the file once per pool). */
  pools?: ReadonlyMap<string, Pool> | undefined;
  /** Distribution for an inline list (default ketama). */
  hash?: string | undefined;
  hashFunction?: string | undefined;
  /** For an inline `map` pool. */
  source?: Pool | undefined;
  memoryLimit?: number | undefined;
  /** The option the value came from, e.g. '--from', for errors. */
  option?: string;
}

/**
 * What every command does with `--from X` / `--to X`: a pool name from the
 * pools file, or an inline server list.
 */
export function resolvePool(nameOrSpec: string, options: ResolveOptions = {}): Pool {
  const option = options.option ?? '--to';
  const pools = options.pools ?? (options.poolsFile ? loadPools(options.poolsFile) : undefined);
  const named = pools?.get(nameOrSpec);
  if (named) return named;
  const looksInline = nameOrSpec.includes(':') || nameOrSpec.includes(',') || nameOrSpec.includes('.');
  if (!looksInline) {
    if (!pools) {
      throw new ConfigError(option, '', `'${nameOrSpec}' is not host:port and no --pools file names it`);
    }
    throw new ConfigError(
      options.poolsFile ?? option,
      '',
      `no pool named '${nameOrSpec}' (defined: ${[...pools.keys()].join(', ')})`,
    );
  }
  return parsePoolSpec(nameOrSpec, options.hash ?? 'ketama', {
    hashFunction: options.hashFunction,
    source: options.source,
    memoryLimit: options.memoryLimit,
    where: option,
    name: nameOrSpec,
  });
}
