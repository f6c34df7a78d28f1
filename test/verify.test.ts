import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { runCopy } from '../src/jobs/copy.js';
import { runVerify, samePaddedNumber } from '../src/jobs/verify.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import type { Output } from '../src/ui/options.js';
import { registerCopy } from '../src/ui/commands/copy.js';
import { registerVerify } from '../src/ui/commands/verify.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

/** Runs one command as the CLI would, in process; returns what it wrote and its exit status. */
async function cli(args: string[]): Promise<{ text: string; status: number }> {
  const written: string[] = [];
  const out: Output = { write: (t) => written.push(t), exitCode: 0 };
  const program = new Command('memshift').exitOverride();
  registerCopy(program, out);
  registerVerify(program, out);
  const argv = args[0] === 'copy' ? [...args, '--no-checkpoint'] : args;
  await program.parseAsync(argv, { from: 'user' });
  return { text: written.join('\n'), status: out.exitCode };
}

describe('samePaddedNumber', () => {
  it('treats the space padding decr leaves as equal, nothing else', () => {
    assert.equal(samePaddedNumber(Buffer.from('99 '), Buffer.from('99')), true);
    assert.equal(samePaddedNumber(Buffer.from('9  '), Buffer.from('9 ')), true);
    assert.equal(samePaddedNumber(Buffer.from('99 '), Buffer.from('98')), false);
    assert.equal(samePaddedNumber(Buffer.from('ab '), Buffer.from('ab')), false);
    assert.equal(samePaddedNumber(Buffer.from(' '), Buffer.from('')), false);
  });
});

describe('memshift verify (real memcached)', () => {
  let source: MemcachedServer;
  const targets: MemcachedServer[] = [];
  let noDumps: MemcachedServer;
  let from: Pool;
  let to: Pool;
  let spec: { from: string; to: string };

  before(async () => {
    source = await startMemcached({ memoryMb: 64 });
    noDumps = await startMemcached({ memoryMb: 16, args: ['-X'] });
    for (let i = 0; i < 3; i++) targets.push(await startMemcached({ memoryMb: 64 }));
    spec = { from: source.address, to: targets.map((t) => t.address).join(',') };
    from = parsePoolSpec(spec.from, 'ketama', { where: '--from' });
    to = parsePoolSpec(spec.to, 'ketama', { where: '--to' });
    const client = new MemcachedClient(source.address);
    for (let i = 0; i < 3000; i++)
      await client.set(`v:${i}`, `value-${i}`, { flags: i, exptime: i % 2 ? 0 : 600 });
    await client.set('counter', '100');
    assert.equal(await client.decr('counter', 1), 99n);
    assert.equal((await client.get('counter'))?.value.toString(), '99 ');
    await client.close();
  });

  after(async () => {
    await Promise.all([source, noDumps, ...targets].map((s) => s.stop()));
  });

  const owner = (key: string): MemcachedClient =>
    new MemcachedClient(targets[to.distribution.serverFor(Buffer.from(key))]!.address);

  it('reports full coverage after a copy, then finds a planted wrong value, a missing key and a key on the wrong server', async () => {
    const copied = await runCopy({ from, to });
    assert.equal(copied.copied, 3001);
    const clean = await runVerify({ from, to, sample: Infinity });
    assert.equal(clean.keys.coverage, 1);
    assert.equal(clean.values.different, 0);
    assert.equal(clean.wrongServer.keys, 0);
    assert.equal(clean.passed, true);

    const wrongValue = owner('v:10');
    await wrongValue.set('v:10', 'planted', { flags: 10 });
    await wrongValue.close();
    const missing = owner('v:11');
    assert.equal(await missing.delete('v:11'), true);
    await missing.close();
    // A key the source has, also stored on a target server that does not own it.
    const home = to.distribution.serverFor(Buffer.from('v:12'));
    const stray = new MemcachedClient(targets[(home + 1) % 3]!.address);
    await stray.set('v:12', 'value-12', { flags: 12 });
    await stray.close();
    // A counter written fresh on the target while the source holds it decr-padded.
    const counter = owner('counter');
    await counter.set('counter', '99');
    await counter.close();

    const r = await runVerify({ from, to, sample: Infinity, minCoverage: 0.999 });
    assert.equal(r.keys.source, 3001);
    assert.equal(r.keys.present, 3000);
    assert.equal(r.keys.missing, 1);
    assert.ok(r.examples.some((e) => e.includes('missing: "v:11"')));
    assert.equal(r.values.compared, 3000);
    assert.equal(r.values.different, 1);
    assert.ok(r.examples.some((e) => e.includes('value differs: "v:10"')));
    assert.equal(r.values.paddingOnly, 1);
    assert.equal(r.flags.different, 0);
    assert.equal(r.wrongServer.keys, 1);
    assert.equal(r.wrongServer.checked, 3001);
    assert.ok(r.wrongServer.examples[0]?.startsWith('"v:12" on '));
    assert.equal(r.passed, true);
    const perTarget = r.servers.filter((s) => s.role === 'target');
    assert.equal(
      perTarget.reduce((n, s) => n + s.keys, 0),
      3001,
    );
    assert.equal(
      perTarget.reduce((n, s) => n + (s.wrongServer ?? 0), 0),
      1,
    );

    const strict = await runVerify({ from, to, sample: 100, minCoverage: 1 });
    assert.equal(strict.passed, false);
    assert.ok(strict.values.compared >= 99 && strict.values.compared <= 101, `${strict.values.compared}`);
  });

  it('the verify command prints a verdict table, JSON, and sets the exit status by --min-coverage', async () => {
    const pass = await cli(['verify', '--from', spec.from, '--to', spec.to, '--min-coverage', '0.99']);
    assert.equal(pass.status, 0);
    assert.match(pass.text, /^PASS: 99\.96% of 3001 keys/);
    assert.match(pass.text, /SERVER\s+ROLE\s+KEYS\s+PRESENT\s+COVERAGE/);
    const fail = await cli(['verify', '--from', spec.from, '--to', spec.to, '--min-coverage', '1', '--json']);
    assert.equal(fail.status, 1);
    const json = JSON.parse(fail.text) as { passed: boolean; keys: { missing: number } };
    assert.equal(json.passed, false);
    assert.equal(json.keys.missing, 1);
  });

  it('the copy command prints a JSON summary, and a clear error for a server that forbids dumps', async () => {
    const run = await cli(['copy', '--from', spec.from, '--to', spec.to, '--json', '--no-progress']);
    assert.equal(run.status, 0);
    const json = JSON.parse(run.text) as {
      copied: number;
      skipped: { exists: number };
      pointInTime: boolean;
    };
    // Only the deleted key is missing; everything else is already there and stays as it is.
    assert.equal(json.copied, 1);
    assert.equal(json.skipped.exists, 3000);
    assert.equal(json.pointInTime, true);
    await assert.rejects(
      cli(['copy', '--from', noDumps.address, '--to', spec.to, '--no-progress']),
      /key dumps are disabled on this server \(memcached was started with -X\)/,
    );
  });
});
