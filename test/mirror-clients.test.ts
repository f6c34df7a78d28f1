/**
 * Real-client conformance of `memshift mirror`: one mixed workload through a
 * real client library against the source, mirrored into a three-server pool
 * routed by that client's hashing, then read back through the same client
 * configured with the new pool. Nothing it reads there may differ from what
 * it reads on the source, no key may exist only there, every key missing
 * there must be a counted invalidation, and no TTL may be longer there (real
 * memcached with -I 2m, real tcpdump on lo). With --backfill, keys the client
 * wrote before mirroring started are held to the same rules. Each variant
 * reports its counts as a test diagnostic (one line).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemcachedClient } from '../src/net/client.js';
import { PoolClient } from '../src/net/pool-client.js';
import { metaKeyFits } from '../src/protocol/meta.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { mirrorRig, waitForRequests } from './support/mirror.js';
import { REAL_CLIENTS, runClient, type ClientOp, type RealClient } from './support/real-clients.js';

const LONG_KEY = 'k'.repeat(246) + ':250';
const UTF8_KEY = 'ключ:日本:ü';
const COMMANDS = '\r\nset injected 0 0 4\r\nEVIL\r\nmn\r\n';
/** Keys with spaces (binary protocol only): one meta can carry in base64, one only the binary protocol can (198 bytes). */
const SPACE_KEY = 'space key: a b';
const LONG_SPACE_KEY = 'long space key ' + 'x y '.repeat(45) + 'end';

/** Written before mirroring starts (--backfill variants), then changed by the workload. */
const BEFORE: ClientOp[] = [
  ['set', 0, 'pre:kept', 'kept', 0],
  ['set', 0, 'pre:ttl', 'ttl', 500],
  ['set', 0, 'pre:big', ['0123456789', 150_000], 400],
  ['set', 0, 'pre:deleted', 'deleted later', 0],
  ['set', 0, 'pre:rewritten', 'old', 0],
  ['set', 0, 'pre:appended', 'a', 0],
  ['set', 0, 'pre:counter', '5', 0],
  ['set', 0, 'pre:commands', COMMANDS, 0],
];
const AFTER_BEFORE: ClientOp[] = [
  ['delete', 0, 'pre:deleted'],
  ['set', 1, 'pre:rewritten', 'new', 300],
  ['append', 0, 'pre:appended', 'b'],
  ['incr', 0, 'pre:counter', 2],
  ['touch', 0, 'pre:ttl', 100],
];

interface Features {
  readonly quiet: boolean;
  readonly initial: boolean;
  readonly spaces: boolean;
  readonly cas: boolean;
  readonly backfill: boolean;
  readonly typed: boolean;
}

/** The workload and every key it touches; the features add what only some clients can send. */
function workload(features: Features): { ops: ClientOp[]; keys: string[] } {
  const ops: ClientOp[] = [
    ['set', 0, 's:empty', '', 0],
    ['set', 0, 's:small', 'x'.repeat(10), 0],
    ['set', 0, 's:100k', ['0123456789', 10_000], 300],
    ['set', 0, 's:1.5m', ['abcdefgh', 196_608], 0],
    ['set', 0, 's:commands', COMMANDS, 600],
    ['set', 0, LONG_KEY, 'long key', 0],
    ['set', 0, UTF8_KEY, 'utf-8 key', 0],
    // The same keys from two connections: the later write wins on the source, so it must on the target.
    ['set', 0, 'o:1', 'v2', 0],
    ['set', 1, 'o:1', 'v3', 0],
    ['set', 0, 'o:2', 'back', 0],
    ['delete', 1, 'o:2'],
    ['add', 0, 's:small', 'add lost', 0],
    ['add', 0, 'a:new', 'added', 0],
    ['replace', 0, 'r:none', 'replace lost', 0],
    ['set', 0, 'r:some', 'before', 0],
    ['replace', 0, 'r:some', 'replaced', 120],
    ['cas', 0, 's:100k', 'cas won', 300],
    ['set', 0, 'd:1', 'doomed', 0],
    ['delete', 0, 'd:1'],
    ['set', 0, 'c:1', '10', 0],
    ['incr', 0, 'c:1', 5],
    ['decr', 0, 'c:1', 3],
    ['incr', 0, 'c:none', 1],
    ['touch', 0, 's:small', 120],
    ['append', 0, 's:small', '>'],
    ['prepend', 0, 's:small', '<'],
    ['get_multi', 0, ['s:small', 's:100k', 'missing']],
  ];
  const keys = ['injected', 'missing'];
  if (features.cas) {
    // A write between this cas's read and its write: the cas loses on the source. On the client that
    // waits for replies (libmemcached cannot read a CAS token on a noreply connection).
    ops.push(['set', 1, 'cas:lost', 'first', 0], ['cas', 1, 'cas:lost', 'cas lost', 0, 'moved']);
  }
  if (features.spaces) {
    ops.push(['set', 0, SPACE_KEY, 'spaces', 300], ['set', 0, LONG_SPACE_KEY, 'long with spaces', 0]);
    ops.push(['append', 0, LONG_SPACE_KEY, '!']);
  }
  if (features.backfill) ops.push(...AFTER_BEFORE);
  // An integer, stored under the client's own flags for its type.
  if (features.typed) ops.push(['set', 0, 'flags:int', { int: 42 }, 300]);
  if (features.initial) {
    ops.push(['incr', 0, 'c:init', 1, 300, 42], ['decr', 0, 'c:init2', 2, 0, 7]);
  }
  if (features.quiet) {
    ops.push(
      ['set', 1, 'q:2', 'there', 0],
      [
        'quiet',
        0,
        [
          ['set', 0, 'q:1', 'quiet', 0],
          ['delete', 0, 'q:2'],
          ['set', 0, 'q:3', 'quiet 3', 60],
        ],
      ],
      ['set', 1, 'q:1', 'after', 0],
    );
  }
  for (const op of features.backfill ? [...BEFORE, ...ops] : ops) {
    if (op[0] === 'quiet') for (const inner of op[2] as ClientOp[]) keys.push(inner[2] as string);
    else if (typeof op[2] === 'string') keys.push(op[2]);
  }
  return { ops, keys: [...new Set(keys)] };
}

/** A key's client flags and remaining TTL (-1: never) read with meta, or undefined when absent. */
async function item(
  client: MemcachedClient,
  key: string,
): Promise<{ flags: number; ttl: number } | undefined> {
  const reply = await client.mg(key, ['f', 't']);
  if (reply.code !== 'HD') return undefined;
  const flag = (f: string): number => Number(reply.flags.find((t) => t.startsWith(f))?.slice(1));
  return { flags: flag('f'), ttl: flag('t') };
}

/** What reading every key back through the client found on the new pool. */
interface Counts {
  touched: number;
  equal: number;
  missingInvalidated: number;
  wrong: number;
  resurrected: number;
  ttlLonger: number;
}

interface Variant {
  readonly client: RealClient;
  readonly label: string;
  readonly binary?: boolean;
  readonly noreply?: boolean;
  readonly quiet?: boolean;
  readonly initial?: boolean;
  /** SIGSTOP one target server for 3 s while the workload runs (it pauses 1 s halfway). */
  readonly stall?: boolean;
  /** Keys with spaces, 198 bytes long among them (binary clients that allow them). */
  readonly spaces?: boolean;
  /** Keys written before mirroring starts, then `mirror --backfill`. */
  readonly backfill?: boolean;
  /** Source servers the client spreads its keys over (default 1), each mirrored into the one new pool. */
  readonly sources?: number;
}

const VARIANTS: Variant[] = [
  { client: 'pylibmc', label: 'pylibmc binary+noreply', binary: true, noreply: true },
  {
    client: 'pylibmc',
    label: 'pylibmc binary+noreply, one target SIGSTOPped for 3 s mid-run',
    binary: true,
    noreply: true,
    stall: true,
  },
  { client: 'pylibmc', label: 'pylibmc binary, keys with spaces', binary: true, spaces: true },
  {
    client: 'pylibmc',
    label: 'pylibmc binary, --backfill of keys written before mirroring',
    binary: true,
    backfill: true,
  },
  { client: 'pylibmc', label: 'pylibmc text', binary: false },
  { client: 'pylibmc', label: 'pylibmc text+noreply', binary: false, noreply: true },
  { client: 'php-memcached', label: 'php-memcached text', binary: false },
  {
    client: 'php-memcached',
    label: 'php-memcached binary, counters with initial values, keys with spaces',
    binary: true,
    initial: true,
    spaces: true,
  },
  { client: 'pymemcache', label: 'pymemcache HashClient (text, noreply writes)' },
  { client: 'python-memcached', label: 'python-memcached (text)' },
  { client: 'node-memcached', label: 'npm memcached (text)' },
  {
    client: 'memjs',
    label: 'npm memjs (binary), counters with initial values, keys with spaces',
    initial: true,
    spaces: true,
  },
  {
    client: 'dalli',
    label: 'Dalli (default protocol), quiet blocks and counters with initial values',
    quiet: true,
    initial: true,
  },
  {
    client: 'dalli',
    label: 'Dalli (default protocol), --backfill of keys written before mirroring, 2 source servers into 3',
    backfill: true,
    sources: 2,
  },
  { client: 'pylibmc', label: 'pylibmc binary, 2 source servers into 3', binary: true, sources: 2 },
];

/** Clients whose scripts store integers under their own flags (test/clients). */
const TYPED = new Set<RealClient>(['pylibmc', 'php-memcached', 'python-memcached', 'dalli']);

/** Clients with a cas call (memjs 1.3 has none). */
const HAS_CAS = new Set<RealClient>([
  'pylibmc',
  'php-memcached',
  'pymemcache',
  'python-memcached',
  'node-memcached',
  'dalli',
]);

describe('mirror: real-client conformance (real memcached -I 2m, real tcpdump on lo)', () => {
  for (const variant of VARIANTS) {
    it(variant.label, async (t) => {
      const options = { binary: variant.binary ?? false, noreply: variant.noreply ?? false };
      const backfill = variant.backfill ?? false;
      const hash = REAL_CLIENTS[variant.client].hash;
      const rig = await mirrorRig({
        hash,
        sources: variant.sources ?? 1,
        targets: 3,
        ...(backfill
          ? {
              backfill: { rate: 5000, batchKeys: 100 },
              beforeCapture: async (_, sources) => {
                const servers = sources.map((s) => s.address);
                await runClient(variant.client, { servers, ...options, ops: BEFORE });
              },
            }
          : {}),
      });
      const sourceServers = rig.sources.map((s) => s.address);
      // The source pool as the client places keys on it, for reading a key's raw flags and TTL.
      const sourcePool = new PoolClient(parsePoolSpec(sourceServers.join(','), hash, { name: 'old' }));
      try {
        const { ops, keys } = workload({
          quiet: variant.quiet ?? false,
          initial: variant.initial ?? false,
          spaces: variant.spaces ?? false,
          cas: HAS_CAS.has(variant.client),
          backfill,
          typed: TYPED.has(variant.client),
        });
        if (variant.stall) ops.splice(ops.length >> 1, 0, ['sleep', 0, 1]);
        const stalled = variant.stall ? rig.targets[1]! : undefined;
        stalled?.process.kill('SIGSTOP');
        const resumed = stalled
          ? new Promise((resolve) => setTimeout(resolve, 3000)).then(() => stalled.process.kill('SIGCONT'))
          : undefined;
        const run = await runClient(variant.client, { servers: sourceServers, ...options, ops });
        await resumed;
        await waitForRequests(rig.job, ops.length);
        if (backfill) {
          // The copies (one per source) finish by themselves (bounded wait).
          for (let i = 0; i < 300; i++) {
            const states = rig.job.summary().backfill ?? [];
            if (states.every((state) => state.report || state.error)) break;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        const summary = await rig.finish();
        assert.equal(summary.error, undefined);
        const read: ClientOp[] = [['read', 1, keys]];
        const fromSource = await runClient(variant.client, {
          servers: sourceServers,
          ...options,
          ops: read,
        });
        const fromTarget = await runClient(variant.client, {
          servers: rig.targets.map((t) => t.address),
          ...options,
          ops: read,
        });
        const [source, target] = [fromSource.reads, fromTarget.reads];
        const said = `workload said: ${run.errors}\nreads said: ${fromSource.errors} ${fromTarget.errors}`;
        // The workload really ran: what each step left on the source, read through the client.
        const b64 = (text: string): string => Buffer.from(text).toString('base64');
        // memjs 1.3's prepend sends the Append opcode (0x0e): the source holds what the client did.
        const small = variant.client === 'memjs' ? 'xxxxxxxxxx><' : '<xxxxxxxxxx>';
        assert.equal(source['s:small'], b64(small), said);
        assert.equal(source['c:1'], b64('12'), said);
        assert.equal(source[LONG_KEY], b64('long key'), said);
        if (variant.initial) assert.equal(source['c:init'], b64('42'), said);
        if (variant.quiet) assert.equal(source['q:1'], b64('after'), said);
        if (HAS_CAS.has(variant.client)) assert.equal(source['cas:lost'], b64('moved'), said);
        if (variant.spaces) assert.equal(source[LONG_SPACE_KEY], b64('long with spaces!'), said);
        if (TYPED.has(variant.client)) {
          // Stored with the client's flags for an integer: the flags compared below are not all 0.
          const flags = (await item(sourcePool.clientFor('flags:int'), 'flags:int'))?.flags;
          assert.ok(flags !== undefined && flags !== 0, `flags:int has flags ${flags}`);
        }
        if (backfill) {
          assert.equal(source['pre:kept'], b64('kept'), said);
          assert.equal(source['pre:appended'], b64('ab'), said);
          assert.equal(source['pre:counter'], b64('7'), said);
          // Written before mirroring and never touched since: only the backfill can have copied them.
          assert.equal(target['pre:kept'], source['pre:kept'], 'pre:kept copied');
          assert.equal(target['pre:big'], source['pre:big'], 'pre:big copied');
        }
        const copies = summary.backfill ?? [];
        if (backfill) {
          assert.equal(copies.length, rig.sources.length);
          for (const copy of copies) {
            assert.equal(copy.error, undefined);
            assert.ok(copy.report, 'the backfill finished');
          }
        }
        const sum = (values: Iterable<number>): number => [...values].reduce((a, b) => a + b, 0);
        // Over every route: keys deleted instead of written, keys whose writes were dropped and
        // deleted later, and keys the backfill did not copy (each counted by reason).
        const invalidations =
          sum(
            summary.routes.map(
              ({ replay }) => sum(Object.values(replay.invalidatedBy)) + replay.invalidated + replay.dropped,
            ),
          ) + sum(copies.map((copy) => sum(Object.values(copy.report?.skipped ?? {}))));
        const counts: Counts = {
          touched: keys.length,
          equal: 0,
          missingInvalidated: 0,
          wrong: 0,
          resurrected: 0,
          ttlLonger: 0,
        };
        const problems: string[] = [];
        for (const key of keys) {
          const [s, t] = [source[key] ?? null, target[key] ?? null];
          if (t === null) {
            if (s !== null) counts.missingInvalidated++;
            continue;
          }
          if (s === null) {
            counts.resurrected++;
            problems.push(`${key}: on the new pool only`);
            continue;
          }
          // Meta reads the raw flags and TTL of every key it can carry (the 198-byte spaced one it cannot).
          const raw = metaKeyFits(Buffer.from(key))
            ? await Promise.all([
                item(sourcePool.clientFor(key), key),
                item(rig.targetClient.clientFor(key), key),
              ])
            : undefined;
          if (t !== s || (raw !== undefined && raw[0]?.flags !== raw[1]?.flags)) {
            counts.wrong++;
            problems.push(`${key}: a different value or flags on the new pool`);
            continue;
          }
          counts.equal++;
          const [ts, tt] = [raw?.[0]?.ttl, raw?.[1]?.ttl];
          if (
            raw !== undefined &&
            (ts === -1 ? tt !== -1 : tt === undefined || tt === -1 || ts === undefined || tt > ts)
          ) {
            counts.ttlLonger++;
            problems.push(`${key}: TTL ${tt} on the new pool, ${ts} on the source`);
          }
        }
        t.diagnostic(
          `${variant.label}: keys touched ${counts.touched}, equal ${counts.equal}, ` +
            `missing-and-invalidated ${counts.missingInvalidated} (invalidations counted ${invalidations}), ` +
            `wrong ${counts.wrong}, resurrected ${counts.resurrected}, TTL-longer ${counts.ttlLonger}`,
        );
        assert.deepEqual(problems, [], said);
        assert.ok(
          counts.missingInvalidated <= invalidations,
          `${counts.missingInvalidated} keys missing, ${invalidations} invalidations counted`,
        );
        assert.equal(source.injected ?? null, null);
        for (const { replay } of summary.routes) assert.equal(replay.failed, 0, JSON.stringify(replay));
        if (rig.sources.length > 1) {
          // The client spread its keys over every source, and each route mirrored some.
          for (const { replay } of summary.routes) assert.ok(replay.applied > 0, JSON.stringify(replay));
        }
      } finally {
        sourcePool.destroy();
        await rig.close();
      }
    });
  }
});
