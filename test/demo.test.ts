import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

/** Processes whose command line mentions `needle`, other than this test's own. */
function processesMatching(needle: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((line) => line.includes(needle) && !line.includes('ps -eo'));
}

describe('memshift demo', () => {
  it('runs a whole migration on local instances, warms the new pool, and leaves nothing running', async () => {
    const child = spawn(
      process.execPath,
      [BIN, 'demo', '--warmup', '2', '--duration', '4', '--keys', '2000', '--rate', '1500', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as {
      oldPool: string[];
      newPool: string[];
      samples: { phase: string; newWouldHit?: number; oldHitRatio?: number }[];
      mirror: { routes: { replay: { applied: number; dropped: number } }[] };
      application: { reads: number; errors: number };
    };
    assert.equal(report.oldPool.length, 2);
    assert.equal(report.newPool.length, 3);
    assert.equal(report.samples.filter((s) => s.phase === 'warm-up').length, 2);
    const mirrored = report.samples.filter((s) => s.phase === 'mirror');
    assert.equal(mirrored.length, 4);
    assert.ok((mirrored[mirrored.length - 1]?.newWouldHit ?? 0) > 0.3, 'the new pool warmed');
    assert.ok(report.mirror.routes.every((r) => r.replay.applied > 0 && r.replay.dropped === 0));
    assert.equal(report.application.errors, 0);
    // Every memcached and tcpdump the demo started is gone.
    for (const address of [...report.oldPool, ...report.newPool]) {
      const port = address.split(':').pop() ?? '';
      assert.deepEqual(processesMatching(`-p ${port} `), [], `memcached on ${address} still running`);
    }
    for (const address of report.oldPool) {
      const port = address.split(':').pop() ?? '';
      assert.deepEqual(processesMatching(`port ${port}`), [], `tcpdump for ${address} still running`);
    }
  });
});
