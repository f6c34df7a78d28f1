/**
 * How warm is the new pool, as numbers: of the keys the old pool holds, how
 * many are on the server of the new pool that the application will ask
 * (keys, bytes, recently used keys), whether values, flags and TTLs agree,
 * and how many keys sit on a new server that does not own them.
 *
 * Every source key is looked up with a pipelined `mg` on both sides (size,
 * flags, TTL; the value too for the sampled keys), without bumping it in
 * either LRU. Wrong-server keys come from listing each target server and
 * asking the distribution who owns each key, which costs no lookups.
 */
import { parseEndpoint } from '../net/address.js';
import { MemcachedClient } from '../net/client.js';
import type { ConnectionOptions } from '../net/connection.js';
import { parserLimitsFor, readServerLimits, type ServerLimits } from '../net/server-limits.js';
import type { Pool } from '../topology/pool.js';
import { collectKeys, enumerateKeys, KeyList, ServerClock, type EnumerationMethod } from './enumerate.js';
import { BatchLink, type FetchedBatch } from './meta-batch.js';

export interface VerifyOptions {
  readonly from: Pool;
  readonly to: Pool;
  /** Keys whose values are compared, spread evenly over the list (default 1000; Infinity: all). */
  readonly sample?: number;
  /** A key is recently used when its last access is within this many seconds (default 3600). */
  readonly recentSeconds?: number;
  /** The verdict: key coverage at least this (default 0.99). */
  readonly minCoverage?: number;
  readonly batchKeys?: number;
  /** Batches in flight per source server (default 4). */
  readonly concurrency?: number;
  /** List the target servers to find keys on a server that does not own them (default true). */
  readonly checkPlacement?: boolean;
  readonly maxKeys?: number;
  /** The largest value read, instead of what the servers' `item_size_max` allows. */
  readonly maxValue?: number;
  readonly connection?: Partial<ConnectionOptions>;
  readonly onWarning?: (warning: string) => void;
}

export interface ServerCoverage {
  readonly address: string;
  readonly role: 'source' | 'target';
  /** Source: keys listed. Target: source keys it should hold. */
  readonly keys: number;
  readonly present: number;
  readonly coverage: number | undefined;
  readonly bytes: number;
  readonly bytesPresent: number;
  /** Target only: keys it holds in all, and keys it holds that another server owns. */
  readonly held?: number;
  readonly wrongServer?: number;
}

export interface VerifyReport {
  readonly keys: {
    readonly source: number;
    readonly present: number;
    readonly missing: number;
    /** Listed, then gone from the source before it was looked up (expired, evicted, deleted). */
    readonly vanished: number;
    /** Listed, but no meta command can name them (binary keys over 186 bytes that need base64): not looked up. */
    readonly unsupported: number;
    readonly coverage: number;
  };
  readonly bytes: { readonly source: number; readonly present: number; readonly coverage: number };
  readonly recent: {
    readonly seconds: number;
    readonly keys: number;
    readonly present: number;
    readonly coverage: number;
  };
  readonly values: {
    readonly compared: number;
    readonly equal: number;
    readonly different: number;
    /** Equal once the trailing spaces a shrinking decr leaves are ignored. */
    readonly paddingOnly: number;
  };
  readonly flags: { readonly compared: number; readonly different: number };
  readonly ttl: {
    readonly compared: number;
    readonly maxDriftSeconds: number;
    readonly meanDriftSeconds: number;
    /** Keys whose TTL differs by more than 2 s. */
    readonly over2s: number;
    /** Never expires on one side, expires on the other. */
    readonly neverVsExpiring: number;
    /** The target copy outlives the source by more than a second. */
    readonly longer: number;
  };
  readonly wrongServer: { readonly checked: number; readonly keys: number; readonly examples: string[] };
  readonly servers: ServerCoverage[];
  readonly methods: (EnumerationMethod | undefined)[];
  readonly warnings: string[];
  /** A few keys that are missing or differ, for a look by hand. */
  readonly examples: string[];
  readonly minCoverage: number;
  readonly passed: boolean;
  readonly elapsedMs: number;
  readonly keysPerSecond: number;
}

class Tally {
  source = 0;
  present = 0;
  vanished = 0;
  unsupported = 0;
  bytes = 0;
  bytesPresent = 0;
  recent = 0;
  recentPresent = 0;
  compared = 0;
  equal = 0;
  different = 0;
  paddingOnly = 0;
  flagsCompared = 0;
  flagsDifferent = 0;
  ttlCompared = 0;
  ttlMax = 0;
  ttlSum = 0;
  over2s = 0;
  neverVsExpiring = 0;
  longer = 0;
  examples: string[] = [];
}

interface Counts {
  keys: number;
  present: number;
  bytes: number;
  bytesPresent: number;
}

export async function runVerify(options: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now();
  const { from, to } = options;
  const tally = new Tally();
  const warnings: string[] = [];
  const onWarning = (w: string): void => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  const recentSeconds = options.recentSeconds ?? 3600;
  const lists: { list: KeyList; recentSeconds: number }[] = [];
  const methods: (EnumerationMethod | undefined)[] = [];
  const sourceLimits: ServerLimits[] = [];
  await Promise.all(
    from.servers.map(async (server, i) => {
      const client = new MemcachedClient(server.address, options.connection ?? {});
      try {
        sourceLimits[i] = await readServerLimits(client);
        const clock = await ServerClock.of(client);
        const expected = Number((await client.stats()).get('curr_items') ?? 0);
        const list = new KeyList({ expected, maxKeys: options.maxKeys ?? 50_000_000, now: clock.now() });
        const info = { method: undefined as EnumerationMethod | undefined, warnings: [] as string[] };
        await collectKeys(client, list, undefined, { info, onWarning });
        if (list.overflow > 0) {
          onWarning(`${server.address}: ${list.overflow} keys beyond the in-memory cap were not verified`);
        }
        methods[i] = info.method;
        lists[i] = { list, recentSeconds };
      } finally {
        await client.close();
      }
    }),
  );
  const grand = lists.reduce((n, l) => n + l.list.length, 0);
  const sample = options.sample ?? 1000;
  const targetLimits = await Promise.all(
    to.servers.map(async (s) => {
      const client = new MemcachedClient(s.address, options.connection ?? {});
      try {
        return await readServerLimits(client);
      } finally {
        await client.close();
      }
    }),
  );
  // Values are read up to the largest item either side stores, or --max-value.
  const connection = {
    ...options.connection,
    limits: parserLimitsFor([...sourceLimits, ...targetLimits], options.maxValue),
  };
  const targets = to.servers.map((s) => new BatchLink(parseEndpoint(s.address), connection));
  const perSource: Counts[] = from.servers.map(() => ({ keys: 0, present: 0, bytes: 0, bytesPresent: 0 }));
  const perTarget: Counts[] = to.servers.map(() => ({ keys: 0, present: 0, bytes: 0, bytesPresent: 0 }));
  try {
    await Promise.all(
      lists.map(async ({ list }, i) => {
        const share = grand === 0 ? 0 : Math.min(list.length, (sample * list.length) / grand);
        const stride = share <= 0 ? Infinity : list.length / share;
        const source = new BatchLink(parseEndpoint(from.servers[i]!.address), connection);
        try {
          await verifySource(
            options,
            list,
            recentSeconds,
            stride,
            source,
            targets,
            tally,
            perSource[i]!,
            perTarget,
          );
        } finally {
          await source.close();
        }
      }),
    );
  } finally {
    await Promise.all(targets.map((t) => t.close()));
  }
  const held: number[] = [];
  const wrong: number[] = [];
  const wrongExamples: string[] = [];
  if (options.checkPlacement ?? true) {
    for (const [t, server] of to.servers.entries()) {
      const client = new MemcachedClient(server.address, options.connection ?? {});
      let n = 0;
      let w = 0;
      try {
        for await (const entry of enumerateKeys(client, { onWarning })) {
          n++;
          if (to.distribution.serverFor(entry.key) !== t) {
            w++;
            if (wrongExamples.length < 5) wrongExamples.push(`${display(entry.key)} on ${server.address}`);
          }
        }
      } finally {
        await client.close();
      }
      held[t] = n;
      wrong[t] = w;
    }
  }
  const ratio = (a: number, b: number): number => (b === 0 ? 1 : a / b);
  const coverage = ratio(tally.present, tally.source);
  const minCoverage = options.minCoverage ?? 0.99;
  const elapsedMs = performance.now() - started;
  const servers: ServerCoverage[] = [
    ...from.servers.map((s, i) => breakdown(s.address, 'source', perSource[i]!)),
    ...to.servers.map((s, t) => ({
      ...breakdown(s.address, 'target', perTarget[t]!),
      ...(held[t] === undefined ? {} : { held: held[t], wrongServer: wrong[t]! }),
    })),
  ];
  return {
    keys: {
      source: tally.source,
      present: tally.present,
      missing: tally.source - tally.present,
      vanished: tally.vanished,
      unsupported: tally.unsupported,
      coverage,
    },
    bytes: {
      source: tally.bytes,
      present: tally.bytesPresent,
      coverage: ratio(tally.bytesPresent, tally.bytes),
    },
    recent: {
      seconds: recentSeconds,
      keys: tally.recent,
      present: tally.recentPresent,
      coverage: ratio(tally.recentPresent, tally.recent),
    },
    values: {
      compared: tally.compared,
      equal: tally.equal,
      different: tally.different,
      paddingOnly: tally.paddingOnly,
    },
    flags: { compared: tally.flagsCompared, different: tally.flagsDifferent },
    ttl: {
      compared: tally.ttlCompared,
      maxDriftSeconds: tally.ttlMax,
      meanDriftSeconds: tally.ttlCompared === 0 ? 0 : tally.ttlSum / tally.ttlCompared,
      over2s: tally.over2s,
      neverVsExpiring: tally.neverVsExpiring,
      longer: tally.longer,
    },
    wrongServer: {
      checked: held.reduce((a, b) => a + b, 0),
      keys: wrong.reduce((a, b) => a + b, 0),
      examples: wrongExamples,
    },
    servers,
    methods,
    warnings,
    examples: tally.examples,
    minCoverage,
    passed: coverage >= minCoverage,
    elapsedMs,
    keysPerSecond: (tally.source + tally.vanished) / Math.max(0.001, elapsedMs / 1000),
  };
}

function breakdown(address: string, role: 'source' | 'target', c: Counts): ServerCoverage {
  return {
    address,
    role,
    keys: c.keys,
    present: c.present,
    coverage: c.keys === 0 ? undefined : c.present / c.keys,
    bytes: c.bytes,
    bytesPresent: c.bytesPresent,
  };
}

async function verifySource(
  options: VerifyOptions,
  list: KeyList,
  recentSeconds: number,
  stride: number,
  source: BatchLink,
  targets: BatchLink[],
  tally: Tally,
  mine: Counts,
  perTarget: Counts[],
): Promise<void> {
  const batchKeys = Math.max(1, options.batchKeys ?? 1024);
  const window = Math.max(1, options.concurrency ?? 4);
  const to = options.to;
  let nextSample = 0;
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  for (let start = 0; start < list.length && failure === undefined; start += batchKeys) {
    while (inFlight >= window) await new Promise<void>((resolve) => (wake = resolve));
    const end = Math.min(list.length, start + batchKeys);
    const keys: Buffer[] = [];
    const sampled = new Uint8Array(end - start);
    const recent = new Uint8Array(end - start);
    for (let i = start; i < end; i++) {
      keys.push(list.key(i));
      if (i >= nextSample) {
        sampled[i - start] = 1;
        nextSample += stride;
      }
      if (list.age(i) <= recentSeconds) recent[i - start] = 1;
    }
    inFlight++;
    void (async () => {
      const src = await source.fetch(keys, sampled);
      // Group the keys found on the source by the target server that should hold them.
      const groups: number[][] = targets.map(() => []);
      for (let j = 0; j < keys.length; j++) {
        if (src.hit[j] === 1) groups[to.distribution.serverFor(keys[j]!)]!.push(j);
        else if (src.unsupported[j] === 1) tally.unsupported++;
        else tally.vanished++;
      }
      await Promise.all(
        groups.map(async (group, t) => {
          if (group.length === 0) return;
          const want = new Uint8Array(group.length);
          group.forEach((j, n) => (want[n] = sampled[j]!));
          const dst = await targets[t]!.fetch(
            group.map((j) => keys[j]!),
            want,
          );
          compare(group, keys, src, dst, recent, tally, mine, perTarget[t]!);
        }),
      );
    })()
      .catch((err: unknown) => (failure ??= err))
      .finally(() => {
        inFlight--;
        const w = wake;
        wake = undefined;
        w?.();
      });
  }
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  if (failure !== undefined) throw failure;
}

function compare(
  group: number[],
  keys: Buffer[],
  src: FetchedBatch,
  dst: FetchedBatch,
  recent: Uint8Array,
  tally: Tally,
  mine: Counts,
  theirs: Counts,
): void {
  for (let n = 0; n < group.length; n++) {
    const j = group[n]!;
    const size = src.size[j]!;
    tally.source++;
    tally.bytes += size;
    mine.keys++;
    mine.bytes += size;
    theirs.keys++;
    theirs.bytes += size;
    if (recent[j] === 1) tally.recent++;
    if (dst.hit[n] !== 1) {
      if (tally.examples.length < 10) tally.examples.push(`missing: ${display(keys[j]!)}`);
      continue;
    }
    tally.present++;
    tally.bytesPresent += size;
    mine.present++;
    mine.bytesPresent += size;
    theirs.present++;
    theirs.bytesPresent += size;
    if (recent[j] === 1) tally.recentPresent++;
    tally.flagsCompared++;
    if (src.flags[j] !== dst.flags[n]) {
      tally.flagsDifferent++;
      if (tally.examples.length < 10) tally.examples.push(`flags differ: ${display(keys[j]!)}`);
    }
    const a = src.values[j];
    const b = dst.values[n];
    if (a !== undefined && b !== undefined) {
      tally.compared++;
      if (a.equals(b)) tally.equal++;
      else if (samePaddedNumber(a, b)) {
        tally.equal++;
        tally.paddingOnly++;
      } else {
        tally.different++;
        if (tally.examples.length < 10) tally.examples.push(`value differs: ${display(keys[j]!)}`);
      }
    }
    const ts = src.ttl[j]!;
    const td = dst.ttl[n]!;
    if (ts < 0 !== td < 0) {
      tally.neverVsExpiring++;
      continue;
    }
    tally.ttlCompared++;
    if (ts < 0) continue;
    const drift = Math.abs(td - ts);
    tally.ttlSum += drift;
    if (drift > tally.ttlMax) tally.ttlMax = drift;
    if (drift > 2) tally.over2s++;
    if (td > ts + 1) tally.longer++;
  }
}

/**
 * A decr that makes a number shorter may leave it space-padded at the end
 * (reference/memcached-protocol.txt, "Increment/Decrement"), while a copy or
 * a mirrored write holds the number written fresh: "9 " and "9" are the same
 * counter.
 */
export function samePaddedNumber(a: Buffer, b: Buffer): boolean {
  const digitsEnd = (v: Buffer): number => {
    let end = v.length;
    while (end > 0 && v[end - 1] === 0x20) end--;
    for (let i = 0; i < end; i++) if (v[i]! < 0x30 || v[i]! > 0x39) return -1;
    return end;
  };
  const ea = digitsEnd(a);
  const eb = digitsEnd(b);
  return ea > 0 && ea === eb && a.compare(b, 0, eb, 0, ea) === 0;
}

function display(key: Buffer): string {
  return JSON.stringify(key.toString('latin1'));
}
