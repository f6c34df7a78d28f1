/**
 * `memshift plan`, the pure part: given keys (with sizes and last access) and
 * the old and new pools, what each migration strategy costs in keys that are
 * cold on the new pool right after cut-over, how the keys and bytes would
 * spread over the new servers, and which keys change owner.
 *
 * Keys stream through `PlanBuilder.add()`; per key it keeps only a few
 * numbers in typed arrays (capped, with an overflow counter) so that a dump of
 * millions of keys fits in memory. A key counts as "warm" on the new pool when
 * the server that will own it is the very server (same address) that holds it
 * now, or when the strategy put it there before cut-over.
 */
import { parseMetadumpLine } from '../protocol/metadump.js';
import { createDistribution, type Distribution } from '../topology/distribution.js';
import type { Pool } from '../topology/pool.js';
import type { Server } from '../topology/server.js';

export interface PlanKey {
  readonly key: Buffer;
  /** Bytes the item takes (metadump `size`), or the value size from a keys file. */
  readonly size: number;
  /** Last access, unix seconds in the servers' clock; undefined when unknown. */
  readonly lastAccess?: number | undefined;
}

export interface PlanOptions {
  /** "Now" for recency, unix seconds (default: the latest last access seen). */
  now?: number;
  /** A key is recently used when accessed within this many seconds (default 3600). */
  recentSeconds?: number;
  /** How long mirroring runs before cut-over (default 86400: a day, the usual practice). */
  mirrorSeconds?: number;
  /** Each key stands for this many (a sample of a larger pool; default 1). */
  scale?: number;
  /** Per-item bytes added to `size` for memory estimates (0 when sizes are metadump item sizes). */
  itemOverhead?: number;
  /** Keys kept in memory at most (default 2,000,000); the rest are counted in `overflow`. */
  maxKeys?: number;
  /** How many keys that change owner are listed (default 20). */
  movedSampleLimit?: number;
}

/** Cold share right after cut-over: of keys, of bytes, and of recently used keys. */
export interface ColdShare {
  readonly keys: number;
  readonly bytes: number;
  readonly recentKeys: number;
}

export interface StepCost extends ColdShare {
  /** What the step does, e.g. "replace 10.0.0.1:11211 with 10.0.1.1:11211". */
  readonly change: string;
}

export interface StrategyCost {
  readonly strategy: 'big-bang' | 'instance-by-instance' | 'mirror' | 'mirror+backfill';
  readonly cold: ColdShare;
  readonly explanation: string;
  /** instance-by-instance: the cost of each step, the app reconfigured once per step. */
  readonly steps?: readonly StepCost[];
}

export interface ServerSpread {
  readonly address: string;
  readonly keys: number;
  readonly bytes: number;
  readonly keyShare: number;
  readonly byteShare: number;
  /** Projected bytes (scaled, with item overhead). */
  readonly memoryNeeded: number;
  readonly memoryLimit: number | undefined;
  /** memoryNeeded / memoryLimit when the limit is known. */
  readonly fill: number | undefined;
}

export interface OwnerChange {
  readonly key: string;
  readonly from: string;
  readonly to: string;
}

export interface Plan {
  readonly from: PoolSummary;
  readonly to: PoolSummary;
  /** Keys and bytes analysed (before scaling). */
  readonly keys: number;
  readonly bytes: number;
  readonly recentKeys: number;
  readonly scale: number;
  readonly now: number | undefined;
  readonly recentSeconds: number;
  readonly mirrorSeconds: number;
  /** Whether last-access times were known for every key (mirror costs depend on them). */
  readonly lastAccessKnown: boolean;
  /** Keys beyond maxKeys, not analysed. */
  readonly overflow: number;
  readonly strategies: readonly StrategyCost[];
  readonly spread: {
    readonly servers: readonly ServerSpread[];
    /** Busiest server over the mean: 1 is perfect balance. */
    readonly keySkew: number;
    readonly byteSkew: number;
  };
  readonly ownership: {
    /** Servers (by address) in both pools. */
    readonly sharedServers: readonly string[];
    /** Keys whose owner address differs between the pools: all of them unless servers are shared. */
    readonly changed: ColdShare;
    /** keysMoved[i][j]: keys from old server i to new server j. */
    readonly matrix: readonly (readonly number[])[];
    readonly samples: readonly OwnerChange[];
  };
}

export interface PoolSummary {
  readonly name: string;
  readonly hash: string;
  readonly servers: readonly string[];
}

const DEFAULTS = {
  recentSeconds: 3600,
  mirrorSeconds: 86400,
  scale: 1,
  itemOverhead: 0,
  maxKeys: 2_000_000,
  movedSampleLimit: 20,
};

function summary(pool: Pool): PoolSummary {
  return { name: pool.name, hash: pool.hash, servers: pool.servers.map((s) => s.address) };
}

/** One server list per instance-by-instance step, and what each step changes. */
function migrationSteps(from: Pool, to: Pool): { change: string; distribution: Distribution }[] {
  const steps: { change: string; distribution: Distribution }[] = [];
  const nOld = from.servers.length;
  const nNew = to.servers.length;
  for (let k = 1; k <= Math.max(nOld, nNew); k++) {
    const oldOne = from.servers[k - 1];
    const newOne = to.servers[k - 1];
    const change =
      oldOne && newOne
        ? oldOne.address === newOne.address
          ? `keep ${oldOne.address}`
          : `replace ${oldOne.address} with ${newOne.address}`
        : newOne
          ? `add ${newOne.address}`
          : `remove ${oldOne!.address}`;
    if (k === Math.max(nOld, nNew)) {
      steps.push({ change, distribution: to.distribution });
      continue;
    }
    const servers: Server[] = [...to.servers.slice(0, Math.min(k, nNew)), ...from.servers.slice(k)];
    let distribution: Distribution;
    if (to.hash === 'map') {
      // The tcpcopy way pairs positions: replaced positions read from the new server.
      const source = from.distribution;
      distribution = { serverFor: (key) => source.serverFor(key) };
    } else {
      distribution = createDistribution(to.hash, servers, { keyHash: to.hashFunction });
    }
    steps.push({ change, distribution });
  }
  return steps;
}

/** Growable typed column with a fixed cap. */
class Column<T extends Float64Array | Int32Array | Uint8Array> {
  constructor(
    public data: T,
    private readonly make: (n: number) => T,
  ) {}
  set(i: number, v: number): void {
    if (i >= this.data.length) {
      const next = this.make(Math.max(1024, this.data.length * 2));
      next.set(this.data);
      this.data = next;
    }
    this.data[i] = v;
  }
}

export class PlanBuilder {
  private readonly options: typeof DEFAULTS & { now: number | undefined };
  private readonly steps: { change: string; distribution: Distribution }[];
  private readonly oldAddressId: Int32Array;
  private readonly newAddressId: Int32Array;
  private readonly stepAddressIds: Int32Array[];
  private count = 0;
  private overflow = 0;
  private totalBytes = 0;
  private allHaveLastAccess = true;
  private maxLastAccess = -Infinity;
  private readonly size = new Column(new Float64Array(1024), (n) => new Float64Array(n));
  private readonly lastAccess = new Column(new Float64Array(1024), (n) => new Float64Array(n));
  private readonly oldOwner = new Column(new Int32Array(1024), (n) => new Int32Array(n));
  private readonly newOwner = new Column(new Int32Array(1024), (n) => new Int32Array(n));
  /** Step cold flags are only needed as sums, but "recent" depends on `now`, known at the end. */
  private readonly stepColdMask: Column<Uint8Array>[];
  private readonly matrix: number[][];
  private readonly samples: OwnerChange[] = [];

  constructor(
    private readonly from: Pool,
    private readonly to: Pool,
    options: PlanOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...stripUndefined(options), now: options.now };
    this.steps = migrationSteps(from, to);
    // Address ids shared across every list, so "same server" is an integer comparison.
    const ids = new Map<string, number>();
    const idOf = (s: Server): number => {
      let id = ids.get(s.address);
      if (id === undefined) ids.set(s.address, (id = ids.size));
      return id;
    };
    this.oldAddressId = Int32Array.from(from.servers, idOf);
    this.newAddressId = Int32Array.from(to.servers, idOf);
    this.stepAddressIds = this.steps.map((_, k) => {
      const nNew = to.servers.length;
      const list =
        k === this.steps.length - 1
          ? to.servers
          : [...to.servers.slice(0, Math.min(k + 1, nNew)), ...from.servers.slice(k + 1)];
      return Int32Array.from(list, idOf);
    });
    this.stepColdMask = this.steps.map(() => new Column(new Uint8Array(1024), (n) => new Uint8Array(n)));
    this.matrix = from.servers.map(() => to.servers.map(() => 0));
  }

  add(entry: PlanKey): void {
    if (this.count >= this.options.maxKeys) {
      this.overflow++;
      return;
    }
    const i = this.count++;
    const oldIndex = this.from.distribution.serverFor(entry.key);
    const newIndex = this.to.distribution.serverFor(entry.key);
    this.oldOwner.set(i, oldIndex);
    this.newOwner.set(i, newIndex);
    this.size.set(i, entry.size);
    this.totalBytes += entry.size;
    const la = entry.lastAccess;
    if (la === undefined) this.allHaveLastAccess = false;
    else if (la > this.maxLastAccess) this.maxLastAccess = la;
    this.lastAccess.set(i, la ?? Number.NaN);
    this.matrix[oldIndex]![newIndex]!++;
    const oldId = this.oldAddressId[oldIndex]!;
    if (oldId !== this.newAddressId[newIndex] && this.samples.length < this.options.movedSampleLimit) {
      this.samples.push({
        key: entry.key.toString('utf8'),
        from: this.from.servers[oldIndex]!.address,
        to: this.to.servers[newIndex]!.address,
      });
    }
    // Instance by instance: cold at step k when the owner there differs from the owner at step k-1.
    let previous = oldId;
    for (let k = 0; k < this.steps.length; k++) {
      const owner =
        this.to.hash === 'map' && k < this.steps.length - 1
          ? oldIndex <= k
            ? this.newAddressId[oldIndex]!
            : oldId
          : this.stepAddressIds[k]![this.steps[k]!.distribution.serverFor(entry.key)]!;
      this.stepColdMask[k]!.set(i, owner === previous ? 0 : 1);
      previous = owner;
    }
  }

  addAll(entries: Iterable<PlanKey>): this {
    for (const e of entries) this.add(e);
    return this;
  }

  finish(): Plan {
    const { recentSeconds, mirrorSeconds, scale, itemOverhead } = this.options;
    const n = this.count;
    const now = this.options.now ?? (Number.isFinite(this.maxLastAccess) ? this.maxLastAccess : undefined);
    const sizes = this.size.data;
    const las = this.lastAccess.data;
    const oldOwner = this.oldOwner.data;
    const newOwner = this.newOwner.data;
    const recent = new Uint8Array(n);
    let recentCount = 0;
    for (let i = 0; i < n; i++) {
      const la = las[i]!;
      if (now !== undefined && !Number.isNaN(la) && la >= now - recentSeconds) {
        recent[i] = 1;
        recentCount++;
      }
    }
    const share = (cold: Uint8Array): ColdShare => {
      let keys = 0;
      let bytes = 0;
      let rec = 0;
      for (let i = 0; i < n; i++) {
        if (!cold[i]) continue;
        keys++;
        bytes += sizes[i]!;
        if (recent[i]) rec++;
      }
      return {
        keys: n ? keys / n : 0,
        bytes: this.totalBytes ? bytes / this.totalBytes : 0,
        recentKeys: recentCount ? rec / recentCount : 0,
      };
    };

    // Big bang: every key whose owner is not the same server it is on now.
    const moved = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      moved[i] = this.oldAddressId[oldOwner[i]!] === this.newAddressId[newOwner[i]!] ? 0 : 1;
    }
    const changed = share(moved);

    const steps: StepCost[] = this.steps.map((step, k) => {
      return { change: step.change, ...share(this.stepColdMask[k]!.data) };
    });
    const stepTotal: ColdShare = steps.reduce(
      (a, s) => ({
        keys: a.keys + s.keys,
        bytes: a.bytes + s.bytes,
        recentKeys: a.recentKeys + s.recentKeys,
      }),
      { keys: 0, bytes: 0, recentKeys: 0 },
    );

    // Mirror only: keys touched within the mirror window (judged by last access) get there first.
    const mirrorCold = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const la = las[i]!;
      const touched = now !== undefined && !Number.isNaN(la) && la >= now - mirrorSeconds;
      mirrorCold[i] = moved[i] && !touched ? 1 : 0;
    }

    // Spread over the new servers, and what does not fit: the least recently used bytes beyond the limit.
    const nNew = this.to.servers.length;
    const keysPer = new Array<number>(nNew).fill(0);
    const bytesPer = new Array<number>(nNew).fill(0);
    for (let i = 0; i < n; i++) {
      keysPer[newOwner[i]!]!++;
      bytesPer[newOwner[i]!]! += sizes[i]!;
    }
    const backfillCold = new Uint8Array(n);
    const servers: ServerSpread[] = this.to.servers.map((server, j) => {
      const memoryNeeded = (bytesPer[j]! + keysPer[j]! * itemOverhead) * scale;
      const limit = server.memoryLimit;
      if (limit !== undefined && memoryNeeded > limit) {
        // Evict oldest first until the rest fits, as memcached's LRU would.
        const mine: number[] = [];
        for (let i = 0; i < n; i++) if (newOwner[i] === j) mine.push(i);
        mine.sort((a, b) => (las[a]! || 0) - (las[b]! || 0));
        let excess = memoryNeeded - limit;
        for (const i of mine) {
          if (excess <= 0) break;
          backfillCold[i] = 1;
          excess -= (sizes[i]! + itemOverhead) * scale;
        }
      }
      return {
        address: server.address,
        keys: keysPer[j]!,
        bytes: bytesPer[j]!,
        keyShare: n ? keysPer[j]! / n : 0,
        byteShare: this.totalBytes ? bytesPer[j]! / this.totalBytes : 0,
        memoryNeeded,
        memoryLimit: limit,
        fill: limit === undefined ? undefined : memoryNeeded / limit,
      };
    });
    const skew = (values: number[]): number => {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      return mean > 0 ? Math.max(...values) / mean : 0;
    };
    // Mirror plus backfill: also cold when mirror left it cold and it does not fit.
    for (let i = 0; i < n; i++) backfillCold[i] = backfillCold[i]! & moved[i]!;

    const sharedServers = this.from.servers
      .filter((s) => this.to.servers.some((t) => t.address === s.address))
      .map((s) => s.address);

    return {
      from: summary(this.from),
      to: summary(this.to),
      keys: n,
      bytes: this.totalBytes,
      recentKeys: recentCount,
      scale,
      now,
      recentSeconds,
      mirrorSeconds,
      lastAccessKnown: this.allHaveLastAccess && n > 0,
      overflow: this.overflow,
      strategies: [
        {
          strategy: 'big-bang',
          cold: changed,
          explanation:
            'point the application at the new pool at once: every key not already on its new server is cold',
        },
        {
          strategy: 'instance-by-instance',
          cold: stepTotal,
          steps,
          explanation:
            'swap one server per step and let the cache refill in between: each step costs the keys whose ' +
            'owner changes at that step (the total adds the steps up)',
        },
        {
          strategy: 'mirror',
          cold: share(mirrorCold),
          explanation:
            `mirror live traffic for ${mirrorSeconds}s before cut-over: keys not used in that window ` +
            '(judged by last access) stay cold',
        },
        {
          strategy: 'mirror+backfill',
          cold: share(backfillCold),
          explanation:
            'mirror and copy every existing key: only what does not fit in the new servers\u2019 memory ' +
            '(least recently used first) is cold',
        },
      ],
      spread: { servers, keySkew: skew(keysPer), byteSkew: skew(bytesPer) },
      ownership: { sharedServers, changed, matrix: this.matrix, samples: this.samples },
    };
  }
}

function stripUndefined(options: PlanOptions): Partial<typeof DEFAULTS> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(options)) if (typeof v === 'number') out[k] = v;
  return out as Partial<typeof DEFAULTS>;
}

/** Plans from an in-memory key list. */
export function computePlan(keys: Iterable<PlanKey>, from: Pool, to: Pool, options: PlanOptions = {}): Plan {
  return new PlanBuilder(from, to, options).addAll(keys).finish();
}

/**
 * One line of a keys file: a `lru_crawler metadump` line (`key=... la=... size=...`),
 * or `key [size [last-access]]` separated by whitespace. Blank lines and
 * lines starting with '#' give undefined; a malformed line throws with its reason.
 */
export function parseKeyLine(line: string): PlanKey | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  if (text.startsWith('key=')) {
    const entry = parseMetadumpLine(text);
    return { key: Buffer.from(entry.key), size: entry.size, lastAccess: entry.la };
  }
  const [key, size, la] = text.split(/\s+/);
  const sizeNumber = size === undefined ? 0 : Number(size);
  const laNumber = la === undefined ? undefined : Number(la);
  if (!Number.isFinite(sizeNumber) || sizeNumber < 0)
    throw new RangeError(`size '${size}' is not a number of bytes`);
  if (laNumber !== undefined && !Number.isFinite(laNumber))
    throw new RangeError(`last access '${la}' is not unix seconds`);
  return { key: Buffer.from(key!, 'utf8'), size: sizeNumber, lastAccess: laNumber };
}
