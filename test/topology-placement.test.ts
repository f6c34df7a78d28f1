/**
 * memshift's placement against rows recorded from the real client libraries
 * (test/fixtures/placement, produced by scripts/placement/produce.sh): every
 * key a client stored must map to the server the client stored it on.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createDistribution, makeServer, splitServerText, type Server } from '../src/topology/index.js';

const dir = new URL('../../test/fixtures/placement/', import.meta.url);

interface Row {
  header: {
    client: string;
    distribution: string;
    servers: string[];
    weights: number[];
    server_names: string[] | null;
    stored: number;
    found: number;
  };
  owners: string;
}

const keys = (JSON.parse(readFileSync(new URL('keys.json', dir), 'utf8')) as { keys: string[] }).keys.map(
  (k) => Buffer.from(k, 'utf8'),
);
const rows = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'keys.json')
  .sort()
  .map((file) => ({ file, row: JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as Row }));

function serversOf(row: Row): Server[] {
  return row.header.servers.map((text, i) => {
    const part = splitServerText(text);
    assert.ok(part.ok, text);
    return makeServer({ ...part, weight: row.header.weights[i], name: row.header.server_names?.[i] });
  });
}

test('the fixtures hold a few thousand keys and rows for every client distribution at 3, 5 and 7 servers', () => {
  assert.ok(keys.length >= 2000);
  const seen = new Map<string, Set<number>>();
  for (const { row } of rows) {
    const name = row.header.distribution.split(':')[0]!;
    const counts = seen.get(name) ?? new Set<number>();
    counts.add(row.header.servers.length);
    seen.set(name, counts);
  }
  for (const name of [
    'libmemcached-ketama',
    'libmemcached-consistent',
    'libmemcached-modula',
    'dalli',
    'pymemcache',
    'node-memcached',
    'memjs',
    'spymemcached',
    'spymemcached-ketama',
    'gomemcache',
    'python-memcached',
    'twemproxy-ketama',
    'twemproxy-modula',
  ]) {
    assert.deepEqual([...(seen.get(name) ?? [])].sort(), [3, 5, 7], `rows for ${name}`);
  }
});

for (const { file, row } of rows) {
  test(`placement matches ${file} (${row.header.client})`, () => {
    assert.equal(row.owners.length, keys.length);
    const distribution = createDistribution(row.header.distribution, serversOf(row));
    let checked = 0;
    const wrong: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      const c = row.owners.charCodeAt(i);
      if (c === 0x2d) continue; // '-': the client refused this key
      checked++;
      const got = distribution.serverFor(keys[i]!);
      if (got !== c - 0x30 && wrong.length < 5)
        wrong.push(`${JSON.stringify(keys[i]!.toString())}: ${got} != ${c - 0x30}`);
    }
    assert.equal(checked, row.header.found);
    // Only a client that rewrites keys on the wire (npm memcached with '$' patterns) loses a few.
    assert.ok(checked >= row.header.stored * 0.95, `${checked} of ${row.header.stored} stored keys found`);
    assert.deepEqual(wrong, []);
  });
}
