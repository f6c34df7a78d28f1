/**
 * Real-client conformance of `memshift mirror`: one mixed workload through a
 * real client library against the source, mirrored into a three-server pool
 * routed by that client's hashing, then read back through the same client
 * configured with the new pool. Nothing it reads there may differ from what
 * it reads on the source, no key may exist only there, every key missing
 * there must be a counted invalidation, and no TTL may be longer there (real
 * memcached with -I 2m, real tcpdump on lo).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemcachedClient } from '../src/net/client.js';
import { mirrorRig, waitForRequests } from './support/mirror.js';
import { REAL_CLIENTS, runClient, type ClientOp, type RealClient } from './support/real-clients.js';

const LONG_KEY = 'k'.repeat(246) + ':250';
const UTF8_KEY = 'ключ:日本:ü';
const COMMANDS = '\r\nset injected 0 0 4\r\nEVIL\r\nmn\r\n';

/** The workload and every key it touches; `quiet`/`initial` add what only some clients can send. */
function workload(features: { quiet: boolean; initial: boolean }): { ops: ClientOp[]; keys: string[] } {
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
  for (const op of ops) {
    if (op[0] === 'quiet') for (const inner of op[2] as ClientOp[]) keys.push(inner[2] as string);
    else if (typeof op[2] === 'string') keys.push(op[2]);
  }
  return { ops, keys: [...new Set(keys)] };
}

async function ttl(client: MemcachedClient, key: string): Promise<number | undefined> {
  const reply = await client.mg(key, ['t']);
  if (reply.code !== 'HD') return undefined;
  return Number(reply.flags.find((f) => f.startsWith('t'))?.slice(1));
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
  { client: 'pylibmc', label: 'pylibmc binary', binary: true },
  { client: 'pylibmc', label: 'pylibmc text', binary: false },
  { client: 'pylibmc', label: 'pylibmc text+noreply', binary: false, noreply: true },
  { client: 'php-memcached', label: 'php-memcached text', binary: false },
  {
    client: 'php-memcached',
    label: 'php-memcached binary, counters with initial values',
    binary: true,
    initial: true,
  },
  { client: 'pymemcache', label: 'pymemcache HashClient (text, noreply writes)' },
  { client: 'python-memcached', label: 'python-memcached (text)' },
  { client: 'node-memcached', label: 'npm memcached (text)' },
  { client: 'memjs', label: 'npm memjs (binary), counters with initial values', initial: true },
  {
    client: 'dalli',
    label: 'Dalli (default protocol), quiet blocks and counters with initial values',
    quiet: true,
    initial: true,
  },
];

describe('mirror: real-client conformance (real memcached -I 2m, real tcpdump on lo)', () => {
  for (const variant of VARIANTS) {
    it(variant.label, async () => {
      const rig = await mirrorRig({ hash: REAL_CLIENTS[variant.client].hash, targets: 3 });
      try {
        const { ops, keys } = workload({ quiet: variant.quiet ?? false, initial: variant.initial ?? false });
        const options = { binary: variant.binary ?? false, noreply: variant.noreply ?? false };
        if (variant.stall) ops.splice(ops.length >> 1, 0, ['sleep', 0, 1]);
        const stalled = variant.stall ? rig.targets[1]! : undefined;
        stalled?.process.kill('SIGSTOP');
        const resumed = stalled
          ? new Promise((resolve) => setTimeout(resolve, 3000)).then(() => stalled.process.kill('SIGCONT'))
          : undefined;
        const run = await runClient(variant.client, { servers: [rig.source.address], ...options, ops });
        await resumed;
        await waitForRequests(rig.job, ops.length);
        const summary = await rig.finish();
        assert.equal(summary.error, undefined);
        const read: ClientOp[] = [['read', 1, keys]];
        const fromSource = await runClient(variant.client, {
          servers: [rig.source.address],
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
        const replay = summary.routes[0]!.replay;
        // Keys deleted instead of written, and keys whose writes were dropped and deleted later.
        const invalidations =
          Object.values(replay.invalidatedBy).reduce((a, b) => a + b, 0) +
          replay.invalidated +
          replay.dropped;
        let missing = 0;
        for (const key of keys) {
          const [s, t] = [source[key] ?? null, target[key] ?? null];
          if (t !== null) {
            assert.notEqual(s, null, `${key}: on the new pool only`);
            assert.equal(t, s, `${key}: a different value on the new pool`);
            const [ts, tt] = [
              await ttl(rig.sourceClient, key),
              await ttl(rig.targetClient.clientFor(key), key),
            ];
            if (ts === -1) assert.equal(tt, -1, `${key}: expires on the new pool only`);
            else
              assert.ok(
                tt !== undefined && tt !== -1 && ts !== undefined && tt <= ts,
                `${key}: TTL ${tt} > ${ts}`,
              );
          } else if (s !== null) missing++;
        }
        assert.ok(
          missing <= invalidations,
          `${missing} keys missing, ${invalidations} invalidations counted`,
        );
        assert.equal(source.injected ?? null, null);
        assert.equal(replay.failed, 0, JSON.stringify(replay));
      } finally {
        await rig.close();
      }
    });
  }
});
