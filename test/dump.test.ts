import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dumpKeys, escapeBytes, keyFilter, unescapeBytes, type DumpRecord } from '../src/jobs/dump.js';
import type { EnumerationInfo } from '../src/jobs/enumerate.js';
import { MemcachedClient } from '../src/net/client.js';
import { rng } from './support/chunks.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT =
  `import { Command } from 'commander';` +
  `import { MemshiftError } from '${new URL('../src/protocol/errors.js', import.meta.url).href}';` +
  `import { registerDump } from '${new URL('../src/ui/commands/dump.js', import.meta.url).href}';` +
  `const out = { write: (t) => console.log(t), exitCode: 0 };` +
  `const program = new Command('memshift').exitOverride();` +
  `registerDump(program, out);` +
  `try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); process.exitCode = out.exitCode; }` +
  `catch (err) { if (!(err instanceof MemshiftError)) throw err; process.stderr.write('memshift: ' + err.message + '\\n'); process.exitCode = 2; }`;

function dump(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT, '--', 'dump', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

interface JsonRecord {
  key: string;
  ttl: number | null;
  exp: number;
  last_access: number;
  idle: number | null;
  size: number;
  fetched: boolean;
  slab_class: number;
  flags?: number | null;
  value_base64?: string | null;
}

function jsonLines(text: string): JsonRecord[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as JsonRecord);
}

/** Parses CSV as written by dump: quoted fields with doubled quotes. */
function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const cells: string[] = [];
    let i = 0;
    while (i <= line.length) {
      if (line[i] === '"') {
        let cell = '';
        i++;
        while (i < line.length) {
          if (line[i] === '"' && line[i + 1] === '"') {
            cell += '"';
            i += 2;
          } else if (line[i] === '"') {
            i++;
            break;
          } else cell += line[i++];
        }
        cells.push(cell);
        i++;
      } else {
        const end = line.indexOf(',', i);
        cells.push(line.slice(i, end < 0 ? line.length : end));
        i = end < 0 ? line.length + 1 : end + 1;
      }
    }
    rows.push(cells);
  }
  return rows;
}

/** The reader's rule documented in `dump --help` for a CSV key or value cell. */
function fromCsvCell(cell: string): Buffer {
  return unescapeBytes(cell.startsWith("'") ? cell.slice(1) : cell);
}

/** Keys a spreadsheet would run as formulas, each with the cell a CSV dump must hold for it. */
const FORMULA_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['=HYPERLINK("x")', `'=HYPERLINK("x")`],
  ['+SUM(1,1)', `'+SUM(1,1)`],
  ['-1+2', `'-1+2`],
  ['@x', `'@x`],
  ['\tx', '\\x09x'],
  ["'q", "''q"],
];

describe('memshift dump', () => {
  let server: MemcachedServer;
  /** Every key stored, as hex, with its value. */
  const stored = new Map<string, Buffer>();
  const TEXT_KEYS = 1500;

  before(async () => {
    server = await startMemcached({ memoryMb: 64 });
    const client = new MemcachedClient(server.address, { connections: 2 });
    const random = rng(7);
    const writes: Promise<unknown>[] = [];
    // Keys that metadump URL-escapes, and that a naive dumper mangles.
    const specials = [
      'a/b?c=d&e#f',
      '100%',
      'plus+sign',
      'tab\tno',
      'ключ',
      'emoji-🙂',
      'quote"and,comma',
      'back\\slash',
    ];
    for (const text of specials) {
      const key = Buffer.from(text);
      const value = Buffer.from(`value of ${text}`);
      stored.set(key.toString('hex'), value);
      writes.push(client.ms(key, value, ['T0', 'F3']));
    }
    for (let i = 0; i < TEXT_KEYS; i++) {
      const key = Buffer.from(`user:${i}:profile`);
      const value = Buffer.from(`v${i}`.repeat(1 + (i % 5)));
      stored.set(key.toString('hex'), value);
      writes.push(client.set(key, value, { flags: i, exptime: i % 2 === 0 ? 0 : 3600 }));
    }
    // Binary keys (any byte, spaces included), stored base64-encoded with the meta protocol.
    for (let i = 0; i < 200; i++) {
      const key = Buffer.alloc(1 + Math.floor(random() * 40));
      for (let j = 0; j < key.length; j++) key[j] = Math.floor(random() * 256);
      const value = Buffer.from([i & 0xff, 0, 0x0a, 0x0d, 0x22, 0x2c]);
      stored.set(key.toString('hex'), value);
      writes.push(client.ms(key, value, ['T0', 'b']));
    }
    // Formula keys hold themselves as values: value cells get the same treatment.
    for (const [text] of FORMULA_KEYS) {
      stored.set(Buffer.from(text).toString('hex'), Buffer.from(text));
      writes.push(client.ms(Buffer.from(text), text, ['T0']));
    }
    for (const text of ['with space', ' leading', 'trailing ', 'new\nline']) {
      const key = Buffer.from(text);
      stored.set(key.toString('hex'), Buffer.from('s'));
      writes.push(client.ms(key, 's', ['T0']));
    }
    await Promise.all(writes);
    for (let i = 0; i < 10; i++) await client.get(`user:${i}:profile`);
    await client.close();
  });
  after(() => server.stop());

  it('lists every stored key exactly once, binary and escaped ones included (JSON lines)', () => {
    const run = dump(server.address, '--format', 'jsonl');
    assert.equal(run.status, 0, `${run.stderr}\n${run.stdout.slice(-2000)}`);
    const records = jsonLines(run.stdout);
    const seen = new Set<string>();
    for (const r of records) {
      const hex = unescapeBytes(r.key).toString('hex');
      assert.ok(!seen.has(hex), `listed twice: ${r.key}`);
      seen.add(hex);
    }
    assert.deepEqual([...seen].sort(), [...stored.keys()].sort());
    assert.match(
      run.stderr,
      new RegExp(`${stored.size} keys written of ${stored.size} listed .*\\(metadump-hash\\)`),
    );
    const byKey = new Map(records.map((r) => [r.key, r]));
    const fetched = byKey.get('user:3:profile');
    assert.equal(fetched?.fetched, true);
    assert.equal(byKey.get('user:11:profile')?.fetched, false);
    assert.equal(byKey.get('user:2:profile')?.ttl, null, 'never expires');
    const ttl = byKey.get('user:1:profile')?.ttl ?? -1;
    assert.ok(ttl > 3500 && ttl <= 3600, `remaining TTL ${ttl}`);
    for (const r of records) {
      assert.ok(r.size > 0 && r.slab_class >= 1, r.key);
      assert.ok(r.idle !== null && r.idle >= 0 && r.last_access > 0);
      if (r.ttl !== null) assert.equal(r.exp - r.ttl - r.last_access <= r.idle + 1, true);
    }
    assert.equal(byKey.get('with\\x20space')?.size !== undefined, true);
    assert.ok(byKey.has('back\\\\slash'));
    assert.ok(byKey.has('\\xd0\\xba\\xd0\\xbb\\xd1\\x8e\\xd1\\x87'), 'UTF-8 key escaped byte by byte');
  });

  it('prints values only with --values, byte-exact, in CSV', () => {
    const run = dump(server.address, '--format', 'csv', '--values');
    assert.equal(run.status, 0, run.stderr);
    const [header, ...rows] = csvRows(run.stdout);
    assert.deepEqual(header, [
      'key',
      'ttl',
      'exp',
      'last_access',
      'idle',
      'size',
      'fetched',
      'slab_class',
      'flags',
      'value',
    ]);
    assert.equal(rows.length, stored.size);
    for (const row of rows) {
      assert.equal(row.length, 10);
      const key = fromCsvCell(row[0]!).toString('hex');
      assert.deepEqual(fromCsvCell(row[9]!), stored.get(key), row[0]);
    }
    const special = rows.find((r) => r[0] === 'quote"and,comma');
    assert.equal(special?.[8], '3', 'client flags');
    const noValues = dump(server.address, '--format', 'csv', '--limit', '5');
    assert.equal(csvRows(noValues.stdout)[0]?.length, 8, 'no value column by default');
    assert.doesNotMatch(noValues.stdout, /value/);
  });

  it('puts a quote in front of CSV cells a spreadsheet would run as formulas, and the rule reads back', () => {
    // Only keys starting a formula (random binary ones among them): reading every value
    // again would move the user:* keys out of the LRU segment cachedump lists.
    const run = dump(server.address, '--format', 'csv', '--values', '--match', "/^[-=+@\t']/");
    assert.equal(run.status, 0, run.stderr);
    const rows = csvRows(run.stdout).slice(1);
    assert.ok(rows.length >= FORMULA_KEYS.length);
    for (const [key, cell] of FORMULA_KEYS) {
      const row = rows.find((r) => r[0] === cell);
      assert.ok(row, `no row with key cell ${cell} for ${JSON.stringify(key)}`);
      assert.equal(row[9], cell, 'the value cell too');
      assert.equal(fromCsvCell(row[0]!).toString(), key);
      assert.equal(fromCsvCell(row[9]!).toString(), key);
    }
    // No key or value cell starts a formula; a leading quote is always the one the rule put there.
    for (const row of rows) {
      for (const cell of [row[0]!, row[9]!]) {
        assert.doesNotMatch(cell, /^[=+\-@\t\r]/);
        if (cell.startsWith("'")) assert.match(cell, /^'[=+\-@\t\r']/);
      }
    }
    // The raw line, as a spreadsheet receives it: CSV quoting around the quoted formula.
    assert.ok(run.stdout.split('\n').some((l) => l.startsWith(`"'=HYPERLINK(""x"")",`)));
  });

  it('filters with a glob or a regex and stops at --limit', () => {
    const glob = jsonLines(dump(server.address, '--format', 'jsonl', '--match', 'user:1?:profile').stdout);
    assert.deepEqual(
      glob.map((r) => r.key).sort(),
      Array.from({ length: 10 }, (_, i) => `user:1${i}:profile`).sort(),
    );
    const prefix = jsonLines(dump(server.address, '--format', 'jsonl', '--match', 'user:*').stdout);
    assert.equal(prefix.length, TEXT_KEYS);
    const regex = jsonLines(dump(server.address, '--format', 'jsonl', '--match', '/^user:14\\d\\d:/').stdout);
    assert.equal(regex.length, 100);
    const limited = dump(server.address, '--format', 'jsonl', '--match', 'user:*', '--limit', '7');
    assert.equal(jsonLines(limited.stdout).length, 7);
    assert.match(limited.stderr, /7 keys written/);
  });

  it('prints a table with binary keys escaped on one line each', () => {
    const run = dump(server.address, '--match', '/ /');
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^\s+TTL\s+SIZE\s+IDLE\s+FETCHED\s+CLASS\s+KEY$/);
    const keys = lines.slice(1).map((l) => l.split(/\s+/).pop());
    for (const key of ['with\\x20space', '\\x20leading', 'trailing\\x20']) assert.ok(keys.includes(key), key);
    for (const line of lines.slice(1)) assert.match(line, /^\s+never\s+\d+\s+\d+s\s+(yes|no)\s+\d+\s+\S+$/);
  });

  it('falls back to stats cachedump with a warning when metadump is not available', async () => {
    const client = new MemcachedClient(server.address);
    const info: EnumerationInfo = { method: undefined, warnings: [] };
    const records: DumpRecord[] = [];
    for await (const r of dumpKeys(client, { methods: ['cachedump'], info, match: keyFilter('user:*') })) {
      records.push(r);
    }
    await client.close();
    assert.equal(info.method, 'cachedump');
    assert.match(info.warnings[0] ?? '', /incomplete/);
    // cachedump lists one LRU segment per class: keys read since (moved to the warm
    // segment) may be missing, which is why the warning calls the list incomplete.
    assert.ok(records.length >= TEXT_KEYS - 10 && records.length <= TEXT_KEYS, `${records.length} keys`);
    for (const r of records) assert.ok(stored.has(r.key.toString('hex')), escapeBytes(r.key));
  });

  it('refuses a bad format with one line', () => {
    const run = dump(server.address, '--format', 'xml');
    assert.equal(run.status, 2);
    assert.match(run.stderr.trim(), /^memshift: --format must be table, jsonl or csv/);
  });
});

describe('memshift dump of more keys than one list block', () => {
  let server: MemcachedServer;
  const COUNT = 40_000;
  const keyOf = (i: number): string => `big:${String(i).padStart(6, '0')}:padding-to-thirty`;

  before(async () => {
    server = await startMemcached({ memoryMb: 64 });
    const client = new MemcachedClient(server.address, { connections: 2 });
    for (let i = 0; i < COUNT; i += 1000) {
      const writes: Promise<unknown>[] = [];
      for (let j = i; j < i + 1000; j++) writes.push(client.set(keyOf(j), `value-${j}`));
      await Promise.all(writes);
    }
    await client.close();
  });
  after(() => server.stop());

  it('keeps every key and value across list blocks', () => {
    const run = dump(server.address, '--format', 'jsonl', '--values');
    assert.equal(run.status, 0, run.stderr);
    const records = jsonLines(run.stdout);
    assert.equal(records.length, COUNT);
    const seen = new Set<string>();
    for (const r of records) {
      const i = Number(r.key.slice(4, 10));
      assert.equal(r.key, keyOf(i));
      assert.equal(Buffer.from(r.value_base64 ?? '', 'base64').toString(), `value-${i}`);
      seen.add(r.key);
    }
    assert.equal(seen.size, COUNT);
  });

  it('reports the keys a full list leaves out and exits 1', () => {
    // 1 MiB holds about 24,000 entries of 43 bytes (15 + a 28-byte key).
    const run = dump(server.address, '--format', 'jsonl', '--max-memory', '1m');
    assert.equal(run.status, 1);
    const written = jsonLines(run.stdout).length;
    assert.ok(written > 20_000 && written < COUNT, `${written} written`);
    assert.match(
      run.stderr,
      new RegExp(`warning: .*${COUNT - written} matching keys left out: the key list is full`),
    );
    assert.match(
      run.stderr,
      new RegExp(`${written} keys written of ${COUNT} listed .*${COUNT - written} left out`),
    );
  });
});

describe('dump helpers', () => {
  it('escapes every byte reversibly and leaves printable keys alone', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const escaped = escapeBytes(all);
    for (const c of escaped) assert.ok(c > ' ' && c < '\x7f', `printable: ${JSON.stringify(c)}`);
    assert.deepEqual(unescapeBytes(escaped), all);
    assert.equal(escapeBytes(Buffer.from('user:42')), 'user:42');
  });

  it('matches globs on bytes', () => {
    const key = (t: string): Buffer => Buffer.from(t, 'latin1');
    assert.equal(keyFilter('abc')(key('abc')), true);
    assert.equal(keyFilter('abc')(key('abcd')), false);
    assert.equal(keyFilter('ab*')(key('abcd')), true);
    assert.equal(keyFilter('ab*')(key('a')), false);
    assert.equal(keyFilter('*cd')(key('abcd')), true);
    assert.equal(keyFilter('a?c.d')(key('abc.d')), true);
    assert.equal(keyFilter('a?c.d')(key('abcxd')), false);
    assert.equal(keyFilter('/^A/i')(key('abc')), true);
  });
});

describe('memshift dump --values follows the server (-I 2m)', () => {
  let server: MemcachedServer;

  before(async () => {
    server = await startMemcached({ memoryMb: 64, args: ['-I', '2m'] });
    const c = new MemcachedClient(server.address);
    await c.set('small', 'x', { flags: 1 });
    await c.set('large', Buffer.alloc(1_500_000, 0x62), { flags: 2 });
    await c.close();
    // A binary-protocol key of 200 bytes with spaces: listed, but no meta command can ask for its value.
    const key = Buffer.from(`spaced ${'k'.repeat(193)}`);
    const extras = Buffer.alloc(8);
    const header = Buffer.alloc(24);
    header[0] = 0x80;
    header[1] = 0x01;
    header.writeUInt16BE(key.length, 2);
    header[4] = extras.length;
    header.writeUInt32BE(extras.length + key.length + 1, 8);
    const { connect } = await import('node:net');
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: server.host, port: server.port }, () =>
        socket.write(Buffer.concat([header, extras, key, Buffer.from('v')])),
      );
      socket.once('data', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
  });

  after(async () => {
    await server.stop();
  });

  it('prints a 1.5 MB value whole and counts the value it cannot ask for, exit 0', () => {
    const run = dump(server.address, '--format', 'jsonl', '--values');
    assert.equal(run.status, 0, run.stderr);
    const records = jsonLines(run.stdout);
    assert.equal(records.length, 3);
    const large = records.find((r) => r.key === 'large');
    assert.equal(Buffer.from(large!.value_base64!, 'base64').length, 1_500_000);
    assert.equal(large!.flags, 2);
    const spaced = records.find((r) => r.key.startsWith('spaced'));
    assert.equal(spaced?.value_base64, null);
    assert.match(run.stderr, /1 values not readable by meta commands/);
    const capped = dump(server.address, '--format', 'jsonl', '--values', '--max-value', '1m');
    assert.equal(capped.status, 2);
    assert.match(capped.stderr, /^memshift: .*1500000 bytes/m);
  });
});
