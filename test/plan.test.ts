/**
 * `memshift plan`: the pure computation on synthetic keys, the keys file
 * format, and the command on a live pool sampled with metadump.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { computePlan, parseKeyLine, type Plan, type PlanKey } from '../src/jobs/plan.js';
import { parsePoolSpec, type Pool } from '../src/topology/index.js';
import { registerPlan } from '../src/ui/commands/plan.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { rng } from './support/chunks.js';

const NOW = 1_800_000_000;

function syntheticKeys(count: number, lastAccess: (i: number) => number | undefined = () => NOW): PlanKey[] {
  const random = rng(3);
  return Array.from({ length: count }, (_, i) => ({
    key: Buffer.from(`user:${i}:${Math.floor(random() * 1e9)}`),
    size: 100 + (i % 50),
    lastAccess: lastAccess(i),
  }));
}

function cost(plan: Plan, strategy: string): Plan['strategies'][number] {
  const found = plan.strategies.find((s) => s.strategy === strategy);
  assert.ok(found, strategy);
  return found;
}

test('resizing a ketama pool in place: only the keys that move to the new server are cold', () => {
  const from = parsePoolSpec('10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211', 'ketama');
  const to = parsePoolSpec('10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211,10.0.0.4:11211', 'ketama');
  const keys = syntheticKeys(20_000);
  const plan = computePlan(keys, from, to, { now: NOW });
  assert.equal(plan.keys, 20_000);
  assert.deepEqual(plan.ownership.sharedServers, ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211']);
  const bigBang = cost(plan, 'big-bang').cold.keys;
  assert.ok(bigBang > 0.18 && bigBang < 0.32, String(bigBang));
  assert.equal(plan.ownership.changed.keys, bigBang);
  // Every key that changed owner went to the new server: columns 0-2 of the matrix are diagonal.
  plan.ownership.matrix.forEach((row, i) => row.forEach((n, j) => j < 3 && j !== i && assert.equal(n, 0)));
  const moved = plan.ownership.matrix.reduce((a, row) => a + row[3]!, 0);
  assert.equal(moved / keys.length, bigBang);
  assert.ok(
    plan.ownership.samples.length > 0 && plan.ownership.samples.every((s) => s.to === '10.0.0.4:11211'),
  );
  // Every key was used just now, so a mirror window warms all of them.
  assert.equal(cost(plan, 'mirror').cold.keys, 0);
  assert.equal(cost(plan, 'mirror+backfill').cold.keys, 0);
});

test("moving to a disjoint pool: big bang is all cold; each instance-by-instance step loses the replaced server's keys and those the newcomer takes", () => {
  const from = parsePoolSpec('10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211', 'ketama');
  const to = parsePoolSpec('10.0.1.1:11211,10.0.1.2:11211,10.0.1.3:11211', 'ketama');
  // Half the keys were last used two days ago: a one-day mirror never sees them.
  const keys = syntheticKeys(12_000, (i) => (i % 2 ? NOW - 2 * 86400 : NOW - 60));
  const plan = computePlan(keys, from, to, { now: NOW });
  assert.equal(cost(plan, 'big-bang').cold.keys, 1);
  assert.equal(cost(plan, 'big-bang').cold.bytes, 1);
  const steps = cost(plan, 'instance-by-instance').steps!;
  assert.deepEqual(
    steps.map((s) => s.change),
    [
      'replace 10.0.0.1:11211 with 10.0.1.1:11211',
      'replace 10.0.0.2:11211 with 10.0.1.2:11211',
      'replace 10.0.0.3:11211 with 10.0.1.3:11211',
    ],
  );
  // The new server's points differ from the old one's: about 1/3 leaves with the old server and
  // the newcomer takes about 1/3 of the rest, so a step costs about 5/9 of the keys.
  for (const s of steps) assert.ok(s.keys > 0.4 && s.keys < 0.7, String(s.keys));
  assert.ok(cost(plan, 'instance-by-instance').cold.keys > 1, 'in total more than big bang');
  const mirror = cost(plan, 'mirror').cold;
  assert.ok(Math.abs(mirror.keys - 0.5) < 0.01, String(mirror.keys));
  assert.equal(mirror.recentKeys, 0, 'keys used within the hour were seen by the mirror');
  assert.equal(plan.recentKeys, 6000);
  assert.equal(cost(plan, 'mirror+backfill').cold.keys, 0);
});

test('modula pools: resizing in place moves most keys, and instance by instance costs more than one pool of keys', () => {
  const from = parsePoolSpec('a:1,b:1,c:1', 'modula');
  const to = parsePoolSpec('a:1,b:1,c:1,d:1', 'modula');
  const plan = computePlan(syntheticKeys(8000), from, to, { now: NOW });
  assert.ok(cost(plan, 'big-bang').cold.keys > 0.7);
});

test('new servers too small for the data: backfill leaves the least recently used overflow cold', () => {
  const from = parsePoolSpec('10.0.0.1:11211,10.0.0.2:11211', 'ketama');
  const keys = syntheticKeys(4000, (i) => NOW - i); // key i was used i seconds ago
  const total = keys.reduce((a, k) => a + k.size, 0);
  const to = parsePoolSpec('10.0.1.1:11211,10.0.1.2:11211', 'ketama', { memoryLimit: Math.floor(total / 4) });
  const plan = computePlan(keys, from, to, { now: NOW });
  const backfill = cost(plan, 'mirror+backfill').cold;
  assert.ok(backfill.bytes > 0.45 && backfill.bytes < 0.55, String(backfill.bytes));
  // What is evicted is old: the recent hour (keys 0-3599 used within 3600s) mostly survives.
  assert.ok(backfill.recentKeys < backfill.keys);
  for (const s of plan.spread.servers) assert.ok(s.fill! > 1.8 && s.fill! < 2.2, String(s.fill));
  assert.ok(plan.spread.keySkew >= 1 && plan.spread.keySkew < 1.2);
});

test('keys file lines: metadump lines, "key size last-access", comments', () => {
  assert.deepEqual(parseKeyLine('key=user%3A1 exp=-1 la=1700000000 cas=5 fetch=no cls=1 size=70'), {
    key: Buffer.from('user:1'),
    size: 70,
    lastAccess: 1700000000,
  });
  assert.deepEqual(parseKeyLine('session/ab 512 1700000001'), {
    key: Buffer.from('session/ab'),
    size: 512,
    lastAccess: 1700000001,
  });
  assert.deepEqual(parseKeyLine('ключ'), { key: Buffer.from('ключ'), size: 0, lastAccess: undefined });
  assert.equal(parseKeyLine('# comment'), undefined);
  assert.equal(parseKeyLine('   '), undefined);
  assert.throws(() => parseKeyLine('k abc'), /size 'abc'/);
});

// ------------------------------------------------------------------ the command

async function runCli(args: string[]): Promise<string> {
  let text = '';
  const out = { write: (t: string) => (text += t), exitCode: 0 };
  const program = new Command('memshift').exitOverride();
  registerPlan(program, out);
  await program.parseAsync(['plan', ...args], { from: 'user' });
  return text;
}

const dir = mkdtempSync(join(tmpdir(), 'memshift-plan-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('plan --keys FILE --json gives the same plan as the pure computation', async () => {
  const keys = syntheticKeys(500);
  const file = join(dir, 'keys.txt');
  writeFileSync(
    file,
    '# key size la\n' + keys.map((k) => `${k.key.toString()} ${k.size} ${k.lastAccess}`).join('\n'),
  );
  const text = await runCli([
    '--from',
    'a:1,b:2',
    '--to',
    'a:1,b:2,c:3',
    '--hash',
    'dalli',
    '--keys',
    file,
    '--json',
  ]);
  const plan = JSON.parse(text) as Plan;
  const from = parsePoolSpec('a:1,b:2', 'dalli');
  const to = parsePoolSpec('a:1,b:2,c:3', 'dalli');
  assert.deepEqual(plan, JSON.parse(JSON.stringify(computePlan(keys, from, to))));
  const human = await runCli(['--from', 'a:1,b:2', '--to', 'a:1,b:2,c:3', '--hash', 'dalli', '--keys', file]);
  assert.match(human, /big-bang/);
  assert.match(human, /step 3: add c:3/);
  assert.match(human, /servers in both pools: a:1, b:2/);
});

test('plan refuses bad input with one clear line', async () => {
  await assert.rejects(runCli(['--from', 'a:1', '--to', 'b:1']), /exactly one of --keys FILE or --sample N/);
  await assert.rejects(
    runCli(['--from', 'a:1', '--to', 'b:1', '--keys', join(dir, 'nope.txt')]),
    /--keys .*nope\.txt: cannot read \(ENOENT\)/,
  );
  await assert.rejects(
    runCli(['--from', 'a:1', '--to', 'b:1', '--hash', 'kettle', '--keys', join(dir, 'keys.txt')]),
    (err: Error) =>
      /--from: hash: unknown distribution 'kettle'/.test(err.message) && !err.message.includes('\n'),
  );
  await assert.rejects(
    runCli(['--from', 'old', '--to', 'b:1', '--keys', join(dir, 'keys.txt')]),
    /no --pools file/,
  );
});

// A live pool: keys stored where the application's ketama client would put them.
let servers: MemcachedServer[] = [];
before(async () => {
  servers = [await startMemcached(), await startMemcached(), await startMemcached()];
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function storeAll(pool: Pool, keys: string[]): Promise<void> {
  const groups = pool.servers.map(() => [] as string[]);
  for (const k of keys) groups[pool.distribution.serverFor(Buffer.from(k))]!.push(k);
  await Promise.all(
    pool.servers.map(
      (server, i) =>
        new Promise<void>((resolve, reject) => {
          const socket = connect({ host: server.host, port: server.port });
          let replies = '';
          const want = groups[i]!.length;
          socket.on('data', (d) => {
            replies += d.toString('latin1');
            if (replies.split('STORED\r\n').length - 1 >= want) {
              socket.end();
              resolve();
            }
          });
          socket.on('error', reject);
          socket.write(groups[i]!.map((k) => `set ${k} 0 0 10\r\n0123456789\r\n`).join(''));
          if (want === 0) {
            socket.end();
            resolve();
          }
        }),
    ),
  );
}

test('plan --sample on a live pool: samples every server with metadump and plans a resize in place', async () => {
  const two = servers
    .slice(0, 2)
    .map((s) => s.address)
    .join(',');
  const three = servers.map((s) => s.address).join(',');
  const keys = Array.from({ length: 600 }, (_, i) => `live:${i}:${(i * 7919) % 1000}`);
  await storeAll(parsePoolSpec(two, 'ketama'), keys);
  const plan = JSON.parse(
    await runCli(['--from', two, '--to', three, '--sample', '10000', '--json']),
  ) as Plan;
  assert.equal(plan.keys, 600, 'every stored key was sampled once');
  assert.equal(plan.scale, 1);
  assert.equal(plan.lastAccessKnown, true);
  assert.equal(plan.recentKeys, 600, 'just stored: all recently used');
  assert.ok(plan.bytes >= 600 * 10);
  assert.equal(plan.ownership.sharedServers.length, 2);
  const changed = plan.ownership.changed.keys;
  assert.ok(changed > 0.2 && changed < 0.45, String(changed));
  assert.equal(cost(plan, 'big-bang').cold.keys, changed);
  // Ask the servers: every key the plan says stays put is on that server now.
  const from = parsePoolSpec(two, 'ketama');
  const to = parsePoolSpec(three, 'ketama');
  let staying = 0;
  for (const k of keys) {
    const b = Buffer.from(k);
    if (
      from.servers[from.distribution.serverFor(b)]!.address ===
      to.servers[to.distribution.serverFor(b)]!.address
    )
      staying++;
  }
  assert.equal(Math.round(changed * keys.length), keys.length - staying);

  // A smaller sample stands for the whole pool.
  const sampled = JSON.parse(
    await runCli(['--from', two, '--to', three, '--sample', '100', '--json']),
  ) as Plan;
  assert.equal(sampled.keys, 100);
  assert.equal(sampled.scale, 6);
});

test('plan --sample names the server it cannot reach', async () => {
  const dead = `127.0.0.1:${servers[0]!.port}`;
  await servers[0]!.stop();
  await assert.rejects(runCli(['--from', dead, '--to', 'b:1', '--sample', '10']), (err: Error) =>
    err.message.includes(dead),
  );
});
