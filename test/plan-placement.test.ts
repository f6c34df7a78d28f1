/**
 * `memshift plan --sample` checks the source pool's distribution against
 * where the sampled keys are: keys stored by real pymemcache HashClients, one
 * given bytes keys and one given str keys by host name, into real memcached.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Command } from 'commander';
import type { PlacementCheck } from '../src/jobs/placement-check.js';
import { registerPlan } from '../src/ui/commands/plan.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const run = promisify(execFile);

async function runCli(args: string[]): Promise<string> {
  let text = '';
  const out = { write: (t: string) => (text += t), exitCode: 0 };
  const program = new Command('memshift').exitOverride();
  registerPlan(program, out);
  await program.parseAsync(['plan', ...args], { from: 'user' });
  return text;
}

/** Stores `count` keys through pymemcache's HashClient over `hosts`, as bytes or as str. */
async function storeWithPymemcache(hosts: string[], prefix: string, asBytes: boolean): Promise<void> {
  const script = `
import sys
from pymemcache.client.hash import HashClient
hosts = sys.argv[1].split(',')
client = HashClient([(h.rsplit(':', 1)[0], int(h.rsplit(':', 1)[1])) for h in hosts], connect_timeout=2, timeout=2)
for i in range(400):
    key = '%s:%d:%s' % (sys.argv[2], i, 'x' * (i % 17))
    client.set(key.encode('utf-8') if sys.argv[3] == 'bytes' else key, 'v', noreply=False)
`;
  await run('/usr/bin/python3', ['-c', script, hosts.join(','), prefix, asBytes ? 'bytes' : 'str']);
}

let servers: MemcachedServer[] = [];
before(async () => {
  servers = [await startMemcached(), await startMemcached(), await startMemcached()];
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function placement(pool: string, hash: string): Promise<{ check: PlacementCheck; text: string }> {
  const args = ['--from', pool, '--to', pool, '--hash', hash, '--sample', '10000'];
  const plan = JSON.parse(await runCli([...args, '--json'])) as { sourcePlacement: PlacementCheck };
  return { check: plan.sourcePlacement, text: await runCli(args) };
}

test('plan names pymemcache-bytes when an application gave pymemcache bytes keys', async () => {
  const pool = servers.map((s) => s.address);
  await storeWithPymemcache(pool, 'bytes', true);
  const wrong = await placement(pool.join(','), 'pymemcache');
  assert.equal(wrong.check.checked, 400);
  assert.ok(wrong.check.agree < 0.6, String(wrong.check.agree));
  assert.deepEqual(wrong.check.better[0], { hash: 'pymemcache-bytes', agree: 1 });
  assert.match(wrong.text, /source placement: .* of 400 sampled keys are on the server pymemcache names/);
  assert.match(
    wrong.text,
    /warning: pymemcache does not place this pool's keys where they are; closer: pymemcache-bytes \(100/,
  );

  const right = await placement(pool.join(','), 'pymemcache-bytes');
  assert.equal(right.check.agree, 1);
  assert.deepEqual(right.check.better, []);
  assert.doesNotMatch(right.text, /warning/);
});

test('a pool written by host name is checked as the client hashes that name', async () => {
  const fresh = [await startMemcached(), await startMemcached(), await startMemcached()];
  try {
    const byName = fresh.map((s) => `localhost:${s.port}`);
    await storeWithPymemcache(byName, 'named', false);
    const right = await placement(byName.join(','), 'pymemcache');
    assert.equal(right.check.agree, 1);
    // The same servers written as addresses hash other text: most keys look misplaced.
    const byAddress = await placement(fresh.map((s) => s.address).join(','), 'pymemcache');
    assert.ok(byAddress.check.agree < 0.6, String(byAddress.check.agree));
  } finally {
    await Promise.all(fresh.map((s) => s.stop()));
  }
});
