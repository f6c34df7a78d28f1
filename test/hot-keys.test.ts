/**
 * Hot keys: the space-saving tracker over a sliding window on its own, and
 * `memshift top --keys` live on a real memcached with tcpdump on lo.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HotKeyTracker, type HotKeyRow } from '../src/jobs/hot-keys.js';
import { MemcachedClient } from '../src/net/client.js';
import type { OpCommand, OpOutcome, Operation } from '../src/ops/operation.js';
import { rng } from './support/chunks.js';
import { startMemcached } from './support/memcached.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

const SECOND = 1_000_000;
/** A fixed capture clock: ten minutes into some day. */
const T0 = 1_700_000_000 * SECOND;

function op(
  command: OpCommand,
  key: string | Buffer,
  outcome: OpOutcome,
  at: number,
  value?: Buffer,
): Operation {
  return {
    command,
    key: typeof key === 'string' ? Buffer.from(key) : key,
    value,
    flags: undefined,
    exptime: undefined,
    delta: undefined,
    number: undefined,
    outcome,
    protocol: 'text',
    connection: 1,
    timestampMicros: at,
    name: undefined,
  };
}

function byKey(rows: HotKeyRow[]): Map<string, HotKeyRow> {
  return new Map(rows.map((r) => [r.key.toString('latin1'), r]));
}

describe('HotKeyTracker', () => {
  it('counts exactly below capacity: requests, value bytes, hits and misses per key', () => {
    const tracker = new HotKeyTracker({ windowSeconds: 10, capacity: 100 });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 50; i++) {
      tracker.add(op('set', `k${i}`, 'stored', T0 + i * 1000, value));
      for (let j = 0; j <= i % 7; j++)
        tracker.add(
          op(
            'get',
            `k${i}`,
            j % 3 === 0 ? 'miss' : 'hit',
            T0 + i * 1000 + j,
            j % 3 === 0 ? undefined : value,
          ),
        );
    }
    tracker.add(op('flush_all', Buffer.alloc(0), 'ok', T0 + 60_000));
    const top = tracker.top(1000, 'requests', T0 + SECOND);
    assert.equal(top.rows.length, 50);
    assert.equal(top.tracked, 50);
    assert.equal(tracker.counters.evicted, 0);
    assert.equal(tracker.counters.keyless, 1);
    const rows = byKey(top.rows);
    let all = 0;
    for (let i = 0; i < 50; i++) {
      const gets = (i % 7) + 1;
      const misses = Math.ceil(gets / 3);
      const row = rows.get(`k${i}`)!;
      assert.deepEqual(
        { requests: row.requests, error: row.error, hits: row.hits, misses: row.misses, bytes: row.bytes },
        { requests: gets + 1, error: 0, hits: gets - misses, misses, bytes: 100 * (1 + gets - misses) },
        `k${i}`,
      );
      all += gets + 1;
    }
    assert.equal(top.requests, all);
    // Biggest first, and by bytes too.
    for (let i = 1; i < top.rows.length; i++) assert.ok(top.rows[i - 1]!.requests >= top.rows[i]!.requests);
    const byBytes = tracker.top(5, 'bytes', T0 + SECOND).rows;
    assert.equal(byBytes.length, 5);
    for (let i = 1; i < byBytes.length; i++) assert.ok(byBytes[i - 1]!.bytes >= byBytes[i]!.bytes);
  });

  it('finds the heavy hitters of a long tail far above its capacity, and counts its evictions', () => {
    const capacity = 64;
    const tracker = new HotKeyTracker({ windowSeconds: 60, capacity });
    const random = rng(7);
    const hot = ['hot:a', 'hot:b', 'hot:c', 'hot:d'];
    const weights = [0.1, 0.07, 0.05, 0.03];
    const truth = new Map<string, number>();
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const r = random();
      let key: string | undefined;
      let acc = 0;
      for (let h = 0; h < hot.length && key === undefined; h++) {
        acc += weights[h]!;
        if (r < acc) key = hot[h];
      }
      key ??= `cold:${Math.floor(random() * 50_000)}`;
      truth.set(key, (truth.get(key) ?? 0) + 1);
      tracker.add(op('get', key, 'hit', T0 + i * 100));
    }
    const top = tracker.top(4, 'requests', T0 + n * 100);
    assert.deepEqual(
      top.rows.map((r) => r.key.toString()),
      hot,
    );
    for (const row of top.rows) {
      const real = truth.get(row.key.toString())!;
      // Space-saving: never under, over by at most the inherited error, which is at most N / capacity.
      assert.ok(row.requests >= real && row.requests - row.error <= real, `${row.key.toString()}`);
      assert.ok(row.error <= n / capacity);
    }
    assert.equal(top.requests, n);
    assert.equal(tracker.tracked, capacity);
    assert.ok(tracker.counters.evicted > n / 2);
    // The memory was fixed when the tracker was made: 64 keys, whatever came through.
    assert.ok(tracker.memoryBytes < capacity * 1000);
  });

  it('forgets what left the window, bucket by bucket', () => {
    const tracker = new HotKeyTracker({ windowSeconds: 10, capacity: 10, buckets: 10 });
    for (let i = 0; i < 30; i++) tracker.add(op('get', 'early', 'miss', T0 + i * 1000));
    for (let s = 0; s < 10; s++) tracker.add(op('get', 'steady', 'hit', T0 + s * SECOND + 500_000));
    let top = tracker.top(10, 'requests', T0 + 9 * SECOND + 900_000);
    assert.deepEqual(
      top.rows.map((r) => [r.key.toString(), r.requests]),
      [
        ['early', 30],
        ['steady', 10],
      ],
    );
    // One bucket later the first second is gone: `early` and one of `steady`.
    top = tracker.top(10, 'requests', T0 + 10 * SECOND + 100_000);
    assert.deepEqual(
      top.rows.map((r) => [r.key.toString(), r.requests]),
      [['steady', 9]],
    );
    assert.equal(top.requests, 9);
    // An operation from before the window is not counted.
    tracker.add(op('get', 'stale', 'hit', T0 + 100));
    assert.equal(tracker.counters.late, 1);
    // A long quiet spell empties everything.
    top = tracker.top(10, 'requests', T0 + 100 * SECOND);
    assert.deepEqual(top.rows, []);
    assert.equal(top.requests, 0);
    // The slots of expired keys are taken first by new ones: nothing hot is evicted for them.
    for (let i = 0; i < 10; i++) tracker.add(op('get', `new${i}`, 'hit', T0 + 100 * SECOND + i));
    top = tracker.top(20, 'requests', T0 + 100 * SECOND + 10);
    assert.equal(top.rows.length, 10);
    assert.ok(top.rows.every((r) => r.requests === 1 && r.error === 0));
  });

  it('keeps binary keys apart and holds long keys in bounded space', () => {
    const tracker = new HotKeyTracker({ windowSeconds: 5, capacity: 4 });
    const a = Buffer.from([0, 1, 2, 0xff]);
    const b = Buffer.from([0, 1, 2, 0xfe]);
    tracker.add(op('get', a, 'hit', T0));
    tracker.add(op('get', a, 'hit', T0 + 1));
    tracker.add(op('get', b, 'miss', T0 + 2));
    tracker.add(op('set', Buffer.alloc(300, 0x6b), 'stored', T0 + 3, Buffer.alloc(10)));
    const rows = tracker.top(10, 'requests', T0 + 10).rows;
    assert.deepEqual(rows[0]!.key, a);
    assert.equal(rows[0]!.requests, 2);
    const long = rows.find((r) => r.bytes === 10)!;
    assert.equal(long.key.length, 250);
  });

  it('stays consistent through heavy churn at a tiny capacity (index and heap)', () => {
    const tracker = new HotKeyTracker({ windowSeconds: 1, capacity: 8, buckets: 4 });
    const random = rng(11);
    for (let i = 0; i < 20_000; i++) {
      const key = i % 3 === 0 ? 'anchor' : `churn:${Math.floor(random() * 1000)}`;
      tracker.add(op('get', key, 'hit', T0 + i * 20));
    }
    const top = tracker.top(100, 'requests', T0 + 20_000 * 20);
    const keys = top.rows.map((r) => r.key.toString());
    assert.equal(new Set(keys).size, keys.length, 'a key held twice');
    assert.equal(keys[0], 'anchor');
    assert.ok(top.rows.length <= 8);
  });
});

interface KeysJson {
  requests: number;
  keys: {
    key: string;
    requests: number;
    error: number;
    hits: number;
    misses: number;
    hitRatio?: number;
    share: number;
    bytes: number;
  }[];
}

/** Runs `memshift top --keys` with `args`; `during` runs once capture is listening. */
async function topKeys(
  args: string[],
  during: () => Promise<void>,
  interrupt: boolean,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'top', '--keys', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    for (let i = 0; i < 100 && !/counting keys/.test(stderr); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr, /counting keys on lo port/);
    await during();
    if (interrupt) child.kill('SIGINT');
    return { code: await exited, stdout, stderr };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

describe('memshift top --keys, live', () => {
  it('lists the hot keys of a skewed workload in order, with their hit ratios', async () => {
    const server = await startMemcached();
    try {
      const workload = async (): Promise<void> => {
        const client = new MemcachedClient(server.address);
        // hot:a 1 set + 120 hits; hot:b 1 set + 30 hits, delete, 20 misses; hot:c 40 misses; 60 cold keys once.
        await client.set('hot:a', Buffer.alloc(1000, 0x61));
        await client.set('hot:b', 'bee');
        const reads: Promise<unknown>[] = [];
        for (let i = 0; i < 120; i++) reads.push(client.get('hot:a'));
        for (let i = 0; i < 30; i++) reads.push(client.get('hot:b'));
        await Promise.all(reads);
        await client.delete('hot:b');
        const more: Promise<unknown>[] = [];
        for (let i = 0; i < 20; i++) more.push(client.get('hot:b'));
        for (let i = 0; i < 40; i++) more.push(client.get('hot:c'));
        for (let i = 0; i < 60; i++) more.push(client.get(`cold:${i}`));
        await Promise.all(more);
        await client.close();
      };
      const { code, stdout, stderr } = await topKeys(
        [
          '--once',
          '--json',
          '-i',
          'lo',
          '--port',
          String(server.port),
          '--window',
          '5',
          '--interval',
          '60000',
        ],
        workload,
        true,
      );
      assert.equal(code, 0, stderr);
      const snapshot = JSON.parse(stdout) as KeysJson;
      assert.deepEqual(
        snapshot.keys.slice(0, 3).map((k) => [k.key, k.requests, k.hits, k.misses, k.hitRatio]),
        [
          ['hot:a', 121, 120, 0, 1],
          ['hot:b', 52, 30, 20, 0.6],
          ['hot:c', 40, 0, 40, 0],
        ],
      );
      assert.equal(snapshot.requests, 121 + 52 + 40 + 60);
      assert.equal(snapshot.keys.length, 30, 'the default limit of plain output');
      assert.ok(snapshot.keys.every((k) => k.error === 0));
      assert.equal(snapshot.keys[0]!.share, 121 / 273);
      // 1000 bytes stored and 120 read back.
      assert.equal(snapshot.keys[0]!.bytes, 121_000);
    } finally {
      await server.stop();
    }
  });

  it('ranks by bytes with --sort bytes and stops by itself after one interval', async () => {
    const server = await startMemcached();
    try {
      const { code, stdout, stderr } = await topKeys(
        [
          '--once',
          '-i',
          'lo',
          '--port',
          String(server.port),
          '--window',
          '5',
          '--interval',
          '3000',
          '--sort',
          'bytes',
          '--limit',
          '2',
        ],
        async () => {
          const client = new MemcachedClient(server.address);
          await client.set('big', Buffer.alloc(5000));
          for (let i = 0; i < 10; i++) await client.get(`small:${i % 2}`);
          await client.close();
        },
        false,
      );
      assert.equal(code, 0, stderr);
      const lines = stdout.trim().split('\n');
      assert.match(lines[0]!, /^memshift top --keys {2}\d{4}-/);
      assert.match(lines[1]!, /^window 5s .* keys held 3\/10000 {2}evicted 0/);
      assert.match(lines[2]!, /REQ\/s\s+\[BYTES\/s\]\s+HIT\s+SHARE\s+REQS\s+KEY/);
      // big: one store of 5000 bytes, never read (no hit ratio), 1 of 11 requests.
      assert.match(lines[3]!, /^\s*[\d.]+\s+[\d.]+ KiB\s+-\s+9\.1%\s+1\s+big$/);
      // Then the busier of the byte-less keys (a tie: the first by key): 5 misses.
      assert.match(lines[4]!, /\s0 B\s+0\.0%\s+45\.5%\s+5\s+small:0$/);
      assert.equal(lines.length, 5);
    } finally {
      await server.stop();
    }
  });

  it('refuses pools and a bad window with a usage error', async () => {
    const bad = spawn(process.execPath, [BIN, 'top', '--keys', '--window', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    bad.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => bad.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /^memshift: --window must be a number of seconds above 0/);
  });
});

describe('memshift top --keys in a terminal', () => {
  it('shows the hot keys full screen, sorts by bytes, pauses, and quits', async () => {
    const server = await startMemcached();
    const socket = `memshift-keys-${process.pid}`;
    const tmux = (...args: string[]): string =>
      execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
    const waitFor = async (test: (text: string) => boolean, what: string): Promise<string> => {
      let text = '';
      for (let i = 0; i < 100; i++) {
        text = tmux('capture-pane', '-p', '-t', 'keys');
        if (test(text)) return text;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail(`the screen never showed ${what}; it shows:\n${text}`);
    };
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        'keys',
        '-x',
        '160',
        '-y',
        '30',
        `'${process.execPath}' '${BIN}' top --keys -i lo --port ${server.port} --window 30 --interval 300; ` +
          'echo KEYS-EXITED $?; sleep 60',
      );
      await waitFor((t) => /memshift top --keys {2}every 0\.3s {2}sort REQ\/s desc/.test(t), 'the title');
      const client = new MemcachedClient(server.address);
      await client.set('wide', Buffer.alloc(4000));
      for (let i = 0; i < 30; i++) await client.get('busy');
      await client.close();
      let text = await waitFor((t) => /\s30\s+busy$/m.test(t) && /\s1\s+wide$/m.test(t), 'both keys');
      const position = (t: string, key: string): number =>
        t.split('\n').findIndex((l) => l.endsWith(` ${key}`));
      assert.ok(position(text, 'busy') < position(text, 'wide'), 'more requests first');
      tmux('send-keys', '-t', 'keys', '>');
      text = await waitFor((t) => /sort BYTES\/s desc/.test(t) && /\[BYTES\/s\]/.test(t), 'the bytes sort');
      assert.ok(position(text, 'wide') < position(text, 'busy'), 'more bytes first');
      tmux('send-keys', '-t', 'keys', 'p');
      await waitFor((t) => /PAUSED/.test(t), 'PAUSED');
      tmux('send-keys', '-t', 'keys', 'q');
      text = await waitFor((t) => /KEYS-EXITED 0/.test(t), 'the command exit with status 0');
      assert.doesNotMatch(text, /memshift top --keys {2}every/, 'the full screen is gone');
    } finally {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
      await server.stop();
    }
  });
});
