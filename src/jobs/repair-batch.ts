/**
 * One batch of repair (see repair.ts): the target's items read with their
 * CAS, the same keys read on the source servers the old pool's hashing
 * places them on, each target item judged against the source's, and the
 * ones that must go deleted with `md <key> C<cas> q`, guarded by the CAS the
 * target gave, so a value written there since the read stays.
 */
import type { Pool } from '../topology/pool.js';
import { flagTokenNumber } from '../protocol/meta.js';
import { RequestBuilder, type BatchLink, type FetchedBatch } from './meta-batch.js';
import { samePaddedNumber } from './verify.js';

/** What repair found and did, key by key. */
export interface RepairCounts {
  /** Target keys read and looked up on the source. */
  compared: number;
  /** Same value (or the same number but for a decr's padding), flags and a TTL within the slack. */
  equal: number;
  /** Removed: value or flags differ from the source's. */
  removedStale: number;
  /** Removed: the source does not hold the key. */
  removedAbsentOnSource: number;
  /** Removed: the target's copy would outlive the source's. */
  removedOutlivesSource: number;
  /** Found to differ, but changed or gone on the target since it was read: left to the writer. */
  changedSinceRead: number;
  /** Found to differ on a target that keeps no CAS (-C): no guarded delete possible, left alone. */
  unguarded: number;
  /** Listed on the target, gone before it was read. */
  vanished: number;
  /** Keys no meta command can name (binary keys over 186 bytes that need base64): not checked. */
  unsupported: number;
  /** Keys beyond the in-memory cap of a listing: not checked. */
  overflow: number;
  /** Keys of batches that failed: not checked in this run (--resume tries them again). */
  failed: number;
}

export const REPAIR_COUNTS = [
  'compared',
  'equal',
  'removedStale',
  'removedAbsentOnSource',
  'removedOutlivesSource',
  'changedSinceRead',
  'unguarded',
  'vanished',
  'unsupported',
  'overflow',
  'failed',
] as const satisfies readonly (keyof RepairCounts)[];

type Verdict = 'removedStale' | 'removedAbsentOnSource' | 'removedOutlivesSource';

export interface RepairLinks {
  readonly target: BatchLink;
  /** One per server of `from`. */
  readonly sources: readonly BatchLink[];
  readonly from: Pool;
  /** Seconds a target TTL may outlive the source's before the key is removed. */
  readonly ttlSlack: number;
}

/** What one batch found and did; added to the job's counts only once the whole batch went through. */
export class BatchResult {
  constructor(
    private readonly keys: readonly Buffer[],
    private readonly dst: FetchedBatch,
    private readonly verdicts: readonly (Verdict | undefined)[],
    private readonly kept: Uint8Array,
  ) {}

  addTo(c: RepairCounts, example: (what: string, key: Buffer) => void): void {
    const { keys, dst } = this;
    c.unsupported += dst.unsupportedCount;
    c.vanished += keys.length - dst.hits - dst.unsupportedCount;
    c.compared += dst.hits;
    for (let j = 0; j < keys.length; j++) {
      if (dst.hit[j] !== 1) continue;
      const verdict = this.verdicts[j];
      if (verdict === undefined) c.equal++;
      else if (!guarded(dst, j)) {
        c.unguarded++;
        example(`left (the target keeps no CAS), ${verdict}`, keys[j]!);
      } else if (this.kept[j] === 1) c.changedSinceRead++;
      else {
        c[verdict]++;
        example(verdict, keys[j]!);
      }
    }
  }
}

/**
 * Repairs one batch of a target's keys. `onRead` is called once both sides
 * were read (the time a slow-down governor should see).
 */
export async function repairBatch(
  links: RepairLinks,
  keys: Buffer[],
  onRead: () => void,
): Promise<BatchResult> {
  // Target first, then source (repair.ts says why the order matters).
  const dst = await links.target.fetch(keys, true, true);
  const bySource: number[][] = links.sources.map(() => []);
  for (let j = 0; j < keys.length; j++) {
    if (dst.hit[j] === 1) bySource[links.from.distribution.serverFor(keys[j]!)]!.push(j);
  }
  const verdicts: (Verdict | undefined)[] = new Array(keys.length);
  await Promise.all(
    bySource.map(async (group, s) => {
      if (group.length === 0) return;
      const src = await links.sources[s]!.fetch(
        group.map((j) => keys[j]!),
        true,
      );
      for (let n = 0; n < group.length; n++) {
        verdicts[group[n]!] = judge(src, n, dst, group[n]!, links.ttlSlack);
      }
    }),
  );
  onRead();
  const md = new RequestBuilder();
  let removals = 0;
  for (let j = 0; j < keys.length; j++) {
    if (verdicts[j] === undefined || !guarded(dst, j)) continue;
    // md <key>[ b] C<cas> q O<j>: quiet, so only EX (rewritten since) and NF (gone since) answer.
    md.ascii('md ');
    const base64 = md.key(keys[j]!);
    md.ascii(`${base64 ? ' b' : ''} C${dst.cas[j]!} q O${j}\r\n`);
    removals++;
  }
  const kept = new Uint8Array(keys.length);
  if (removals > 0) {
    await links.target.send(md.finish(), 'md batch', (frame) => {
      let j = -1;
      for (const token of frame.flags) if (token.charCodeAt(0) === 0x4f) j = flagTokenNumber(token); // O
      if (j >= 0 && j < keys.length && (frame.code === 'EX' || frame.code === 'NF')) kept[j] = 1;
    });
  }
  return new BatchResult(keys, dst, verdicts, kept);
}

/** A server started with -C reports CAS 0: nothing can guard a delete there. */
function guarded(dst: FetchedBatch, j: number): boolean {
  return dst.cas[j] !== undefined && dst.cas[j] !== '0';
}

/** Why the target's item `j` must go, or undefined when it agrees with the source's item `n`. */
function judge(
  src: FetchedBatch,
  n: number,
  dst: FetchedBatch,
  j: number,
  ttlSlack: number,
): Verdict | undefined {
  if (src.hit[n] !== 1) return 'removedAbsentOnSource';
  if (src.flags[n] !== dst.flags[j]) return 'removedStale';
  const a = src.values[n]!;
  const b = dst.values[j]!;
  if (!a.equals(b) && !samePaddedNumber(a, b)) return 'removedStale';
  const ts = src.ttl[n]!;
  const td = dst.ttl[j]!;
  if (ts >= 0 && (td < 0 || td > ts + ttlSlack)) return 'removedOutlivesSource';
  return undefined;
}
