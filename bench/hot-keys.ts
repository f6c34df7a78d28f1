/**
 * Hot-key tracker throughput, single core: keys/s through HotKeyTracker.record
 * for a skewed workload (Zipf-like, s = 1) over a key space much larger than
 * the tracker's capacity, and for a key space that fits (no evictions).
 * Keys are prebuilt Buffers, so only the tracker is measured. Prints one JSON
 * object: per case, the median of 5 runs in keys/s, with evictions and memory.
 *
 *   npx tsc -p . && node dist/bench/hot-keys.js
 */
import { HotKeyTracker } from '../src/jobs/hot-keys.js';

const RUNS = 5;
const OPERATIONS = 2_000_000;

interface Case {
  readonly name: string;
  readonly keySpace: number;
  readonly capacity: number;
}

const cases: Case[] = [
  { name: 'zipf over 1M keys, capacity 10k', keySpace: 1_000_000, capacity: 10_000 },
  { name: 'zipf over 5k keys, capacity 10k (exact)', keySpace: 5_000, capacity: 10_000 },
  { name: 'uniform over 1M keys, capacity 1k (all churn)', keySpace: -1_000_000, capacity: 1_000 },
];

/** A deterministic sequence of key indexes: Zipf(1) by inverse transform on the harmonic CDF, or uniform. */
function sequence(keySpace: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 0x100000000;
  };
  if (keySpace < 0) {
    for (let i = 0; i < n; i++) out[i] = Math.floor(random() * -keySpace);
    return out;
  }
  const h = Math.log(keySpace) + 0.5772156649;
  for (let i = 0; i < n; i++)
    out[i] = Math.min(keySpace - 1, Math.floor(Math.exp(random() * h - 0.5772156649)));
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

const results: Record<string, unknown> = {};
for (const c of cases) {
  const space = Math.abs(c.keySpace);
  const keys = Array.from({ length: space }, (_, i) => Buffer.from(`user:profile:${i}`));
  const order = sequence(c.keySpace, OPERATIONS);
  const rates: number[] = [];
  let evicted = 0;
  let memory = 0;
  for (let run = 0; run < RUNS; run++) {
    const tracker = new HotKeyTracker({ windowSeconds: 60, capacity: c.capacity });
    const start = process.hrtime.bigint();
    // 100k operations per second of capture time: the window turns over 0.5 times a run.
    for (let i = 0; i < OPERATIONS; i++) {
      tracker.record(
        keys[order[i]!]!,
        1_700_000_000_000_000 + i * 10,
        i & 7 ? 0 : 100,
        (i & 3) !== 0,
        (i & 3) === 0,
      );
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    rates.push(OPERATIONS / seconds);
    evicted = tracker.counters.evicted;
    memory = tracker.memoryBytes;
  }
  results[c.name] = {
    keysPerSecond: Math.round(median(rates)),
    runs: rates.map(Math.round),
    evicted,
    trackerBytes: memory,
  };
}
console.log(JSON.stringify({ benchmark: 'hot-keys', operations: OPERATIONS, results }, null, 2));
