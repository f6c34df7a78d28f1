import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { start } from './support/cli.js';
import { processesOn } from './support/processes.js';

interface Result {
  strategy: string;
  servers: string[];
  before: number;
  start: number;
  firstSecond: number;
  after: number[];
  window: number[];
  databaseReads: number;
  bytesCopied: number;
  verify?: { coverage: number };
}

describe('memshift demo (the migration scenario)', () => {
  it('runs every strategy, reports each, and leaves nothing running', async () => {
    const out = mkdtempSync(join(tmpdir(), 'memshift-demo-'));
    try {
      const demo = start([
        'demo',
        '--warmup',
        '2',
        '--window',
        '3',
        '--after',
        '3',
        '--keys',
        '4000',
        '--rate',
        '1500',
        // One application host: the first-second bound below compares the new pool's fill with the
        // old pool's. With ten hosts the application's own cache-aside races between hosts move the
        // first second by 1-2% either way (test/scenario-switch.test.ts covers several hosts).
        '--hosts',
        '1',
        '--json',
        '--out',
        out,
        '--web',
        '127.0.0.1:0',
      ]);
      // The live page follows the strategies as they run.
      const url = await demo.dashboardUrl();
      let gauges: Record<string, number> = {};
      for (let i = 0; i < 100 && gauges['hit ratio/big-bang'] === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        gauges = ((await (await fetch(`${url}snapshot.json`)).json()) as { gauges: Record<string, number> })
          .gauges;
      }
      assert.ok((gauges['hit ratio/big-bang'] ?? -1) >= 0);
      assert.equal(await demo.exited, 0, demo.stderr());
      const report = JSON.parse(demo.stdout()) as { results: Result[] };
      const by = new Map(report.results.map((r) => [r.strategy, r]));
      assert.deepEqual(
        [...by.keys()],
        ['big-bang', 'instance-by-instance', 'mirror', 'mirror+backfill', 'proxy-shadow'],
      );
      for (const r of report.results) {
        assert.equal(r.after.length, 3, r.strategy);
        assert.ok(r.before > 0.8, `${r.strategy}: warmed old pool, ${r.before}`);
      }
      const bigBang = by.get('big-bang')!;
      assert.ok(bigBang.start < 0.01, `big bang starts cold: ${bigBang.start}`);
      assert.ok(bigBang.databaseReads > 0);
      const backfill = by.get('mirror+backfill')!;
      assert.ok(
        backfill.firstSecond >= backfill.before * 0.99,
        `${backfill.firstSecond} vs ${backfill.before}`,
      );
      assert.ok(backfill.bytesCopied > 0);
      assert.ok((backfill.verify?.coverage ?? 0) > 0.99);
      assert.ok(by.get('mirror')!.start > bigBang.start);
      assert.ok(by.get('proxy-shadow')!.start > bigBang.start);
      assert.ok(existsSync(join(out, 'report.txt')));
      assert.match(readFileSync(join(out, 'hit-ratio.svg'), 'utf8'), /^<svg[^]*mirror\+backfill[^]*<\/svg>$/);
      const table = readFileSync(join(out, 'report.txt'), 'utf8').trim().split('\n');
      assert.equal(table.length, 6);
      // Every memcached and tcpdump the demo started is gone.
      const ports = report.results.flatMap((r) => r.servers.map((a) => a.split(':').pop() ?? ''));
      assert.equal(ports.length, 5 * 5);
      assert.deepEqual(processesOn(ports), []);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
