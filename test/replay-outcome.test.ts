import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OpCommand, OpOutcome, Operation } from '../src/ops/operation.js';
import { outcomeActions, type FlushPolicy } from '../src/replay/outcome.js';
import { inSample, keyHash } from '../src/replay/key-hash.js';
import { LagHistogram } from '../src/replay/lag.js';
import { TokenBucket } from '../src/replay/rate.js';
import { RecentMutations } from '../src/replay/recency.js';

const KEY = Buffer.from('k');
const VALUE = Buffer.from('v1');

function op(command: OpCommand, outcome: OpOutcome, extra: Partial<Operation> = {}): Operation {
  return {
    command,
    key: command === 'flush_all' || command === 'other' ? Buffer.alloc(0) : KEY,
    value: undefined,
    flags: undefined,
    exptime: undefined,
    delta: undefined,
    number: undefined,
    outcome,
    protocol: 'text',
    connection: 1,
    timestampMicros: 0,
    name: undefined,
    ...extra,
  };
}

/** The actions as short text, e.g. "set k v1 f3 e60", "delete k unknown", "skip read". */
function describeActions(o: Operation, flushPolicy: FlushPolicy = 'skip'): string[] {
  return outcomeActions(o, { flushPolicy }).map((a) => {
    switch (a.kind) {
      case 'set':
        return `set ${a.key} ${a.value} f${a.flags} e${a.exptime}`;
      case 'append':
      case 'prepend':
        return `${a.kind} ${a.key} ${a.value}`;
      case 'delete':
        return `delete ${a.key} ${a.reason}`;
      case 'touch':
        return `touch ${a.key} e${a.exptime}`;
      case 'incr':
      case 'decr':
        return `${a.kind} ${a.key} ${a.delta} =${a.expected}`;
      case 'flush':
        return `flush ${a.delay ?? '-'}`;
      case 'fill':
        return `fill ${a.key} ${a.value} f${a.flags}`;
      case 'skip':
        return `skip ${a.reason}`;
    }
  });
}

const stored = { value: VALUE, flags: 3, exptime: 60 };

const TABLE: [string, Operation, string[]][] = [
  ['set stored', op('set', 'stored', stored), ['set k v1 f3 e60']],
  ['set noreply', op('set', 'unknown', stored), ['set k v1 f3 e60']],
  ['set refused by an error unlinks on the source', op('set', 'error', stored), ['delete k failed_set']],
  ['set without exptime', op('set', 'stored', { value: VALUE }), ['set k v1 f0 e0']],
  ['add stored', op('add', 'stored', stored), ['set k v1 f3 e60']],
  ['add not stored', op('add', 'not_stored', stored), ['skip not_stored']],
  ['add unknown', op('add', 'unknown', stored), ['delete k unknown']],
  ['add error', op('add', 'error', stored), ['skip source_error']],
  ['replace stored', op('replace', 'stored', stored), ['set k v1 f3 e60']],
  ['replace not stored', op('replace', 'not_stored', stored), ['delete k absent']],
  ['replace unknown', op('replace', 'unknown', stored), ['delete k unknown']],
  ['cas stored', op('cas', 'stored', stored), ['set k v1 f3 e60']],
  ['cas exists', op('cas', 'exists', stored), ['skip exists']],
  ['cas not found', op('cas', 'not_found', stored), ['delete k absent']],
  ['cas unknown', op('cas', 'unknown', stored), ['delete k unknown']],
  ['append stored', op('append', 'stored', { value: VALUE }), ['append k v1']],
  ['prepend stored', op('prepend', 'stored', { value: VALUE }), ['prepend k v1']],
  ['append not stored', op('append', 'not_stored', { value: VALUE }), ['delete k absent']],
  ['prepend unknown', op('prepend', 'unknown', { value: VALUE }), ['delete k unknown']],
  ['incr answered', op('incr', 'number', { delta: 2n, number: 7n }), ['incr k 2 =7']],
  ['decr answered', op('decr', 'number', { delta: 1n, number: 0n }), ['decr k 1 =0']],
  ['incr not found', op('incr', 'not_found', { delta: 2n }), ['delete k absent']],
  ['incr unknown', op('incr', 'unknown', { delta: 2n }), ['delete k unknown']],
  ['incr error (not a number)', op('incr', 'error', { delta: 2n }), ['skip source_error']],
  ['delete deleted', op('delete', 'deleted'), ['delete k delete']],
  ['delete not found', op('delete', 'not_found'), ['delete k delete']],
  ['delete unknown', op('delete', 'unknown'), ['delete k unknown']],
  ['touch touched', op('touch', 'touched', { exptime: 30 }), ['touch k e30']],
  ['touch not found', op('touch', 'not_found', { exptime: 30 }), ['delete k absent']],
  ['touch unknown', op('touch', 'unknown', { exptime: 30 }), ['delete k unknown']],
  ['gat hit', op('gat', 'hit', { exptime: 30, value: VALUE, flags: 3 }), ['touch k e30', 'fill k v1 f3']],
  ['gat miss', op('gat', 'miss', { exptime: 30 }), ['skip read']],
  ['get hit', op('get', 'hit', { value: VALUE, flags: 3 }), ['fill k v1 f3']],
  ['get hit without its value', op('get', 'hit'), ['skip read']],
  ['get miss', op('get', 'miss'), ['skip read']],
  ['other', op('other', 'ok', { name: 'stats' }), ['skip other']],
  ['keyed command without a key', op('set', 'stored', { ...stored, key: Buffer.alloc(0) }), ['skip no_key']],
  ['flush_all unmapped', op('flush_all', 'ok'), ['skip flush_unmapped']],
];

describe('outcome rules', () => {
  for (const [name, operation, expected] of TABLE) {
    it(name, () => assert.deepEqual(describeActions(operation), expected));
  }

  it('repeats flush_all only where the policy allows', () => {
    assert.deepEqual(describeActions(op('flush_all', 'ok'), 'mapped'), ['flush -']);
    assert.deepEqual(describeActions(op('flush_all', 'unknown', { exptime: 10 }), 'all-targets'), [
      'flush 10',
    ]);
    assert.deepEqual(describeActions(op('flush_all', 'ok'), 'skip'), ['skip flush_unmapped']);
    assert.deepEqual(describeActions(op('flush_all', 'error'), 'mapped'), ['skip source_error']);
  });

  it('never writes a value for a command the source refused or did not answer', () => {
    const outcomes: OpOutcome[] = ['not_stored', 'exists', 'not_found', 'error', 'unknown', 'miss'];
    for (const command of ['add', 'replace', 'cas', 'append', 'prepend'] as OpCommand[]) {
      for (const outcome of outcomes) {
        for (const action of outcomeActions(op(command, outcome, stored), { flushPolicy: 'skip' })) {
          assert.ok(
            action.kind === 'delete' || action.kind === 'skip',
            `${command} ${outcome}: ${action.kind}`,
          );
        }
      }
    }
  });
});

describe('replay helpers', () => {
  it('samples keys by hash, the same way every time, near the fraction asked', () => {
    let inTenth = 0;
    for (let i = 0; i < 20000; i++) {
      const key = Buffer.from(`user:${i}`);
      const h = keyHash(key);
      assert.equal(h, keyHash(Buffer.from(`user:${i}`)));
      if (inSample(h, 0.1)) inTenth++;
      assert.equal(inSample(h, 1), true);
      assert.equal(inSample(h, 0), false);
    }
    assert.ok(inTenth > 1800 && inTenth < 2200, `${inTenth} of 20000`);
  });

  it('tells a key changed after a mark, and answers changed when its slots were overwritten', () => {
    const recent = new RecentMutations(1 << 12);
    const a = keyHash(Buffer.from('a'));
    const b = keyHash(Buffer.from('b'));
    recent.record(a);
    const mark = recent.mark();
    assert.equal(recent.changedSince(a, mark), false);
    assert.equal(recent.changedSince(b, mark), false);
    recent.record(b);
    assert.equal(recent.changedSince(b, mark), true);
    assert.equal(recent.changedSince(a, mark), false);
    assert.equal(recent.changedSince(b, recent.mark()), false);

    // A tiny table: after many other keys, key a's slots were taken: "changed" (the safe answer).
    const tiny = new RecentMutations(16);
    tiny.record(a);
    const m2 = tiny.mark();
    for (let i = 0; i < 1000; i++) tiny.record(keyHash(Buffer.from(`other:${i}`)));
    assert.equal(tiny.changedSince(a, m2), true);

    const flushed = new RecentMutations(1 << 12);
    const m3 = flushed.mark();
    flushed.recordFlush();
    assert.equal(flushed.changedSince(a, m3), true);
  });

  it('bounds a rate with a token bucket', () => {
    const bucket = new TokenBucket(10, 2, 1000);
    assert.equal(bucket.take(1000), true);
    assert.equal(bucket.take(1000), true);
    assert.equal(bucket.take(1000), false);
    assert.equal(bucket.take(1050), false);
    assert.equal(bucket.take(1100), true);
  });

  it('reads lag quantiles from the histogram', () => {
    const h = new LagHistogram();
    assert.equal(h.quantile(0.5), 0);
    for (let i = 1; i <= 100; i++) h.record(i);
    const p50 = h.quantile(0.5);
    const p99 = h.quantile(0.99);
    assert.ok(p50 >= 45 && p50 <= 56, `p50 ${p50}`);
    assert.ok(p99 >= 90 && p99 <= 100, `p99 ${p99}`);
    assert.equal(h.max, 100);
  });
});
