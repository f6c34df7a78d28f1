/**
 * The full-screen `memshift top` in a real terminal: tmux runs it, send-keys
 * presses keys, capture-pane reads the screen.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemcachedClient } from '../src/net/client.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const SOCKET = `memshift-top-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}

function screen(): string {
  return tmux('capture-pane', '-p', '-t', 'top');
}

/** Waits (bounded) until the screen satisfies `test`; returns the last screen either way. */
async function waitFor(test: (text: string) => boolean, what: string): Promise<string> {
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = screen();
    if (test(text)) return text;
    await sleep(100);
  }
  assert.fail(`the screen never showed ${what}; it shows:\n${text}`);
}

function rowOf(text: string, address: string): string {
  return text.split('\n').find((l) => l.startsWith(`${address} `)) ?? '';
}

function escape(text: string): string {
  return text.replace(/[.[\]]/g, '\\$&');
}

describe('memshift top in a terminal', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  let c: MemcachedServer;
  let dir: string;

  before(async () => {
    [a, b, c] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const fill = async (server: MemcachedServer, n: number): Promise<void> => {
      const client = new MemcachedClient(server.address);
      for (let i = 0; i < n; i++) await client.set(`key-${i}`, 'value');
      await client.close();
    };
    await fill(a, 30);
    await fill(b, 5);
    await fill(c, 12);
    dir = mkdtempSync(join(tmpdir(), 'memshift-top-'));
    const script = join(dir, 'top.mjs');
    writeFileSync(
      script,
      `import { Command } from '${import.meta.resolve('commander')}';\n` +
        `import { registerTop } from '${new URL('../src/ui/commands/top.js', import.meta.url).href}';\n` +
        `const out = { write: (t) => console.log(t), exitCode: 0 };\n` +
        `const program = new Command('memshift').exitOverride();\n` +
        `registerTop(program, out);\n` +
        `await program.parseAsync(process.argv.slice(2), { from: 'user' });\n` +
        `process.exitCode = out.exitCode;\n`,
    );
    const pools = join(dir, 'pools.yaml');
    writeFileSync(
      pools,
      `pools:\n  old:\n    hash: ketama\n    servers: [${a.address}]\n` +
        `  new:\n    hash: ketama\n    servers: [${b.address}, ${c.address}]\n`,
    );
    const command =
      `'${process.execPath}' '${script}' top --pools '${pools}' --interval 300 --timeout 300; ` +
      `echo TOP-EXITED $?; sleep 60`;
    tmux('new-session', '-d', '-s', 'top', '-x', '200', '-y', '40', command);
  });

  after(async () => {
    spawnSync('tmux', ['-L', SOCKET, 'kill-server']);
    await Promise.all([a.stop(), b.stop(), c.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows every instance grouped by pool, with totals and the fill bar', async () => {
    const text = await waitFor(
      (t) => [a, b, c].every((s) => / up /.test(rowOf(t, s.address))) && /GET\/s/.test(t),
      'three instances up',
    );
    assert.match(text, /^memshift top {2}every 0\.3s {2}sort INSTANCE asc/);
    assert.match(rowOf(text, a.address), /\s30\s/);
    const lines = text.split('\n');
    const oldTotal = lines.findIndex((l) => l.startsWith('old total'));
    const newTotal = lines.findIndex((l) => l.startsWith('new total'));
    assert.ok(oldTotal > lines.findIndex((l) => l.startsWith(a.address)));
    assert.ok(newTotal > lines.findIndex((l) => l.startsWith(c.address)));
    assert.ok(newTotal > oldTotal);
    assert.match(lines[newTotal] ?? '', /2\/2 up .*\s17\s/);
    // 17 items in the new pool against 30 in the old.
    assert.match(text, /fill new vs old: items \[#+\.+\]\s+56\.7%/);
  });

  it('sorts by another column and reverses with keys', async () => {
    for (let i = 0; i < 6; i++) tmux('send-keys', '-t', 'top', '>');
    let text = await waitFor((t) => /\[ITEMS\]/.test(t) && /sort ITEMS desc/.test(t), 'the ITEMS sort');
    const position = (t: string, s: MemcachedServer): number =>
      t.split('\n').findIndex((l) => l.startsWith(`${s.address} `));
    assert.ok(position(text, c) < position(text, b), 'more items first');
    tmux('send-keys', '-t', 'top', 'r');
    text = await waitFor((t) => /sort ITEMS asc/.test(t), 'the reversed sort');
    assert.ok(position(text, b) < position(text, c), 'fewer items first');
  });

  it('shows an instance that stops answering as DOWN with the reason', async () => {
    c.process.kill('SIGSTOP');
    const text = await waitFor((t) => /DOWN/.test(rowOf(t, c.address)), 'the stopped instance DOWN');
    assert.match(
      rowOf(text, c.address),
      new RegExp(
        `^${escape(c.address)}\\s+DOWN\\s+(connect \\(for stats\\) failed: )?stats timed out after 300 ms`,
      ),
    );
    assert.match(text, /new total\s+1\/2 up/);
    assert.match(rowOf(text, a.address), / up /);
  });

  it('pauses the display while polling goes on, and resumes', async () => {
    tmux('send-keys', '-t', 'top', 'p');
    await waitFor((t) => /PAUSED/.test(t), 'PAUSED');
    const client = new MemcachedClient(a.address);
    for (let i = 30; i < 40; i++) await client.set(`key-${i}`, 'value');
    await client.close();
    // Several intervals go by; the frozen screen keeps the old count.
    await sleep(1000);
    assert.match(rowOf(screen(), a.address), /\s30\s/);
    tmux('send-keys', '-t', 'top', 'p');
    const text = await waitFor((t) => /\s40\s/.test(rowOf(t, a.address)), 'the new item count');
    assert.doesNotMatch(text, /PAUSED/);
  });

  it('shows help and quits', async () => {
    tmux('send-keys', '-t', 'top', 'h');
    await waitFor((t) => /memshift top keys/.test(t) && /reverse the sort order/.test(t), 'the help');
    tmux('send-keys', '-t', 'top', 'h');
    await waitFor((t) => !/memshift top keys/.test(t) && /INSTANCE/.test(t), 'the table again');
    tmux('send-keys', '-t', 'top', 'q');
    const text = await waitFor((t) => /TOP-EXITED 0/.test(t), 'the command exit with status 0');
    assert.doesNotMatch(text, /memshift top {2}every/, 'the full screen is gone');
  });
});
