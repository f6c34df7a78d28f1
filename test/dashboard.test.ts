/**
 * The dashboard served by long-running commands: its HTTP surface, and the
 * page itself in headless Chromium (Debian's chromium driven by
 * playwright-core): it loads, draws its charts and shows the command's figures.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { MemcachedClient } from '../src/net/client.js';
import { MemshiftError } from '../src/protocol/errors.js';
import { startDashboard, type Dashboard, type DashboardSnapshot } from '../src/ui/dashboard/server.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function launch(profile: string): Promise<BrowserContext> {
  // Debian's chromium is installed by apt alongside the tests; wait for it rather than skip.
  for (let i = 0; i < 600 && !existsSync(CHROMIUM); i++) await sleep(1000);
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The figures in the page's table: name -> [kind, exact value]. */
async function pageValues(page: Page): Promise<Map<string, [string, number]>> {
  const rows = await page.$$eval('#values tbody tr', (trs) =>
    trs.map((tr) => [
      tr.getAttribute('data-name') ?? '',
      tr.getAttribute('data-kind') ?? '',
      tr.querySelector('td.value')?.getAttribute('data-value') ?? '',
      tr.querySelector('td.value')?.textContent ?? '',
    ]),
  );
  const values = new Map<string, [string, number]>();
  for (const [name, kind, exact, shown] of rows) {
    const value = Number(exact);
    // What the reader sees is the same number: whole numbers as is, others to 3 places.
    assert.equal(shown, Number.isInteger(value) ? String(value) : value.toFixed(3), name);
    values.set(name!, [kind!, value]);
  }
  return values;
}

/** Counts canvases that have something drawn on them. */
async function drawnCanvases(page: Page): Promise<number> {
  return page.$$eval(
    'canvas',
    (canvases) =>
      canvases.filter((c) => {
        const ctx = c.getContext('2d');
        if (!ctx || c.width === 0 || c.height === 0) return false;
        const pixels = ctx.getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
        return false;
      }).length,
  );
}

function checkMatches(values: Map<string, [string, number]>, snapshot: DashboardSnapshot): void {
  const expected = new Map<string, [string, number]>();
  for (const [name, v] of Object.entries(snapshot.counters)) expected.set(name, ['counter', v]);
  for (const [name, v] of Object.entries(snapshot.gauges)) expected.set(name, ['gauge', v]);
  assert.deepEqual(new Map([...values].sort()), new Map([...expected].sort()));
}

describe('dashboard', () => {
  let state: DashboardSnapshot;
  let dashboard: Dashboard;
  let profile: string;
  let context: BrowserContext;

  before(async () => {
    state = {
      time: 1_700_000_000_000,
      counters: { mirrored: 1000, applied: 990, 'dropped/queue full': 3, 'dropped/closed': 7 },
      gauges: { 'lag seconds': 0.25, 'coverage/new-a': 0.5, 'coverage/new-b': 0.625 },
      progress: { copy: { done: 250, total: 1000 } },
    };
    dashboard = await startDashboard({
      listen: '127.0.0.1:0',
      title: 'mirror <test>',
      snapshot: () => state,
    });
    profile = mkdtempSync(join(tmpdir(), 'memshift-chromium-'));
    context = await launch(profile);
  });
  after(async () => {
    await context?.close();
    await dashboard?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('serves the snapshot, the page and uPlot from its package', async () => {
    assert.match(dashboard.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.deepEqual(await (await fetch(`${dashboard.url}snapshot.json`)).json(), state);
    const html = await (await fetch(dashboard.url)).text();
    assert.match(html, /<title>mirror &#60;test&#62;<\/title>/);
    assert.match(html, /<h1>mirror &#60;test&#62;<\/h1>/);
    assert.doesNotMatch(html, /%TITLE%/);
    const js = await fetch(`${dashboard.url}uPlot.iife.min.js`);
    assert.equal(js.status, 200);
    assert.match(await js.text(), /uPlot/);
    assert.equal((await fetch(`${dashboard.url}uPlot.min.css`)).status, 200);
    assert.equal((await fetch(`${dashboard.url}metrics`)).status, 404, 'no registry, no metrics');
    assert.equal((await fetch(`${dashboard.url}nothing`)).status, 404);
    assert.equal((await fetch(dashboard.url, { method: 'POST' })).status, 405);
  });

  it('listens on loopback only unless told otherwise, and refuses foreign Host headers', async () => {
    await assert.rejects(
      startDashboard({ listen: '0.0.0.0:0', title: 't', snapshot: () => state }),
      (err: unknown) => err instanceof MemshiftError && /not a loopback address/.test(err.message),
    );
    await assert.rejects(
      startDashboard({ listen: 'nonsense', title: 't', snapshot: () => state }),
      /--web must be host:port/,
    );
    const v6 = await startDashboard({ listen: '[::1]:0', title: 't', snapshot: () => state });
    try {
      assert.match(v6.url, /^http:\/\/\[::1\]:\d+\/$/);
      assert.equal((await fetch(`${v6.url}snapshot.json`)).status, 200);
    } finally {
      await v6.close();
    }
    const port = new URL(dashboard.url).port;
    const rebound = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ get }) => {
        get(
          { host: '127.0.0.1', port, path: '/snapshot.json', headers: { host: `evil.example:${port}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        ).on('error', reject);
      }, reject);
    });
    assert.equal(rebound, 403);
  });

  it('draws one chart per group in Chromium and shows the same figures as the snapshot', async () => {
    const page = await context.newPage();
    await page.goto(dashboard.url);
    await page.waitForSelector('#status.live', { timeout: 10_000 });
    const charts = await page.$$eval('[data-chart]', (els) =>
      els.map((e) => e.getAttribute('data-chart')).sort(),
    );
    assert.deepEqual(charts, [
      'rate:applied',
      'rate:dropped',
      'rate:mirrored',
      'value:coverage',
      'value:lag seconds',
    ]);
    const legend = await page.$$eval('[data-chart="rate:dropped"] .u-legend .u-label', (els) =>
      els.map((e) => e.textContent),
    );
    assert.ok(legend.includes('queue full') && legend.includes('closed'), `legend: ${legend.join(', ')}`);
    assert.ok((await drawnCanvases(page)) >= 5, 'every chart canvas has pixels on it');
    checkMatches(await pageValues(page), state);
    assert.match((await page.textContent('[data-progress="copy"]')) ?? '', /copy: 250 of 1000 \(25\.0%\)/);

    // The command's counters move on; the page follows within a push or two.
    state = {
      ...state,
      time: state.time + 2000,
      counters: { ...state.counters, mirrored: 1500, applied: 1480 },
      gauges: { ...state.gauges, 'lag seconds': 1.5 },
      progress: { copy: { done: 600, total: 1000 } },
    };
    await page.waitForSelector(`body[data-time="${state.time}"]`, { timeout: 10_000 });
    checkMatches(await pageValues(page), state);
    const rate = await page.textContent('tr[data-name="mirrored"] td.rate');
    assert.equal(rate, '250', '500 more over 2 s');
    assert.match((await page.textContent('[data-progress="copy"]')) ?? '', /600 of 1000 \(60\.0%\)/);
    await page.close();
  });

  describe('memshift top --web', () => {
    let a: MemcachedServer;
    let b: MemcachedServer;
    let child: ChildProcess;
    let url: string;

    before(async () => {
      [a, b] = await Promise.all([startMemcached(), startMemcached()]);
      const client = new MemcachedClient(a.address);
      for (let i = 0; i < 25; i++) await client.set(`k${i}`, 'value');
      for (let i = 0; i < 10; i++) await client.get(`k${i}`);
      await client.close();
      const script =
        `import { Command } from 'commander';` +
        `import { registerTop } from '${new URL('../src/ui/commands/top.js', import.meta.url).href}';` +
        `const out = { write: (t) => console.log(t), exitCode: 0 };` +
        `const program = new Command('memshift');` +
        `registerTop(program, out);` +
        `await program.parseAsync(process.argv.slice(1), { from: 'user' });`;
      child = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          script,
          '--',
          'top',
          '--json',
          '--interval',
          '300',
          '--count',
          '400',
          '--web',
          '127.0.0.1:0',
          a.address,
          b.address,
        ],
        { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      url = await new Promise<string>((resolve, reject) => {
        child.stderr?.setEncoding('utf8');
        child.stderr?.on('data', (text: string) => {
          stderr += text;
          const m = /dashboard on (http:\S+\/) /.exec(stderr);
          if (m) resolve(m[1]!);
        });
        child.once('exit', () => reject(new Error(`top exited: ${stderr}`)));
      });
    });
    after(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await Promise.all([a?.stop(), b?.stop()]);
    });

    it("shows the instances' figures on the page, in /snapshot.json and in /metrics", async () => {
      const check = new MemcachedClient(a.address);
      const stats = await check.stats();
      await check.close();
      const page = await context.newPage();
      await page.goto(url);
      await page.waitForSelector(`tr[data-name="items/${a.address}"]`, { timeout: 10_000 });
      const values = await pageValues(page);
      assert.deepEqual(values.get(`items/${a.address}`), ['gauge', 25]);
      assert.deepEqual(values.get(`items/${b.address}`), ['gauge', 0]);
      assert.deepEqual(values.get(`gets/${a.address}`), ['counter', Number(stats.get('cmd_get'))]);
      assert.deepEqual(values.get(`sets/${a.address}`), ['counter', Number(stats.get('cmd_set'))]);
      assert.deepEqual(values.get('fill/items'), ['gauge', 0]);
      const snapshot = (await (await fetch(`${url}snapshot.json`)).json()) as DashboardSnapshot;
      assert.equal(snapshot.gauges[`items/${a.address}`], 25);
      assert.equal(snapshot.counters[`gets/${a.address}`], values.get(`gets/${a.address}`)?.[1]);
      await page.waitForSelector('[data-chart="value:items"] canvas', { timeout: 10_000 });
      assert.ok((await drawnCanvases(page)) >= 4);
      const metrics = await (await fetch(`${url}metrics`)).text();
      assert.match(
        metrics,
        new RegExp(`^memcached_current_items\\{server="${a.address}",pool="${a.address}"\\} 25$`, 'm'),
      );
      await page.close();
    });
  });
});
