/**
 * copy's promise, whatever writes beside it: the new pool never keeps a key
 * the old pool no longer holds, nor an older value. Writers here change the
 * source first and the target second, as a mirror, the proxy's dual mode or
 * an application writing both pools does.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { runCopy, type CopyProgress } from '../src/jobs/copy.js';
import { runVerify } from '../src/jobs/verify.js';
import { MemcachedClient } from '../src/net/client.js';
import { withLimits } from '../src/protocol/limits.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { audit, ketamaPool, load, PoolClients } from './support/pool-audit.js';
import { HoldingRelay } from './support/relay.js';

const pool = ketamaPool;

describe('copy never resurrects a key or leaves an older value (real memcached)', () => {
  const servers: MemcachedServer[] = [];
  let relay: HoldingRelay;

  before(async () => {
    for (let i = 0; i < 4; i++) servers.push(await startMemcached({ memoryMb: 64 }));
    relay = await HoldingRelay.start(servers[1]!.host, servers[1]!.port);
  });

  after(async () => {
    await relay.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  /**
   * Runs copies whose write of one batch is held at the relay while three keys
   * of that batch change on source then target: one deleted on both, one
   * rewritten on both, one rewritten on the source and invalidated (deleted)
   * on the target, as cache-aside writers do. Returns the totals over the runs.
   */
  async function heldRuns(source: MemcachedServer, runs: number): Promise<Record<string, number>> {
    const from = pool([source.address]);
    // Copy writes through the relay; the test's writer reaches the target directly.
    const to = pool([relay.address]);
    const src = new PoolClients(from);
    const direct = new MemcachedClient(servers[1]!.address);
    const totals = { runs: 0, resurrected: 0, older: 0, takenBack: 0 };
    try {
      for (let run = 0; run < runs; run++) {
        // The source is not flushed between runs: without CAS (-C) memcached's flush_all works by the
        // clock and also hides what is stored within the same second. Each run has keys of its own.
        await direct.flushAll();
        const keys = Array.from({ length: 400 }, (_, i) => `held${run}:${i}`);
        await load(src, keys, (k) => `v1 ${k}`);
        const victim = keys[137 + run]!;
        const held = relay.holdWhen(Buffer.from(`ms ${victim} `));
        const copy = runCopy({ from, to, batchKeys: 40, concurrency: 1 });
        let timer: NodeJS.Timeout | undefined;
        const chunk = await Promise.race([
          held,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no write of ${victim} reached the relay`)), 20_000);
          }),
        ]).finally(() => clearTimeout(timer));
        const mine = new RegExp(`ms (held${run}:\\d+) `, 'g');
        const names = [...chunk.toString('latin1').matchAll(mine)].map((m) => m[1]!);
        const [rewritten, invalidated] = names.filter((k) => k !== victim);
        assert.ok(rewritten && invalidated, 'the held batch carries three keys or more');
        await src.owner(victim).delete(victim);
        await direct.delete(victim);
        await src.owner(rewritten).set(rewritten, 'v2', { flags: 5, exptime: 3600 });
        await direct.set(rewritten, 'v2', { flags: 5, exptime: 3600 });
        await src.owner(invalidated).set(invalidated, 'v2', { flags: 5, exptime: 3600 });
        await direct.delete(invalidated);
        relay.release();
        const report = await copy;
        assert.deepEqual(report.errors, []);
        const dst = new PoolClients(pool([servers[1]!.address]));
        const result = await audit(src, dst, keys);
        await dst.close();
        totals.runs++;
        totals.resurrected += result.resurrected.length;
        totals.older += result.older.length;
        totals.takenBack += report.skipped['changed-during-copy'];
        assert.deepEqual(result.resurrected, [], `run ${run}: resurrected`);
        assert.deepEqual(result.older, [], `run ${run}: older values`);
        // The invalidated key is a miss on the target: a cold miss, never the old value.
        assert.equal(result.missing, 1, `run ${run}: keys missing`);
        assert.equal(result.same, keys.length - 2);
        assert.equal((await direct.get(rewritten))?.value.toString(), 'v2');
        assert.ok(
          report.skipped['changed-during-copy'] >= 2,
          `run ${run}: victim and invalidated taken back`,
        );
      }
    } finally {
      await src.close();
      await direct.close();
    }
    return totals;
  }

  it("deletes and rewrites that reach source and target while copy's write is held in flight: taken back, every run", async () => {
    const totals = await heldRuns(servers[0]!, 5);
    assert.deepEqual(totals, { runs: 5, resurrected: 0, older: 0, takenBack: totals.takenBack });
  });

  it('the same from a source started with -C (no CAS): values and flags are compared instead', async () => {
    const noCas = await startMemcached({ memoryMb: 64, args: ['-C'] });
    try {
      const totals = await heldRuns(noCas, 3);
      assert.deepEqual(totals, { runs: 3, resurrected: 0, older: 0, takenBack: totals.takenBack });
    } finally {
      await noCas.stop();
    }
  });

  it('a writer deleting and rewriting keys on source then target during three copies: 0 resurrected, 0 older', async () => {
    const from = pool([servers[0]!.address, servers[3]!.address]);
    const to = pool([servers[1]!.address, servers[2]!.address]);
    const src = new PoolClients(from);
    const dst = new PoolClients(to);
    try {
      for (let run = 0; run < 3; run++) {
        await src.flush();
        await dst.flush();
        const keys = Array.from({ length: 12_000 }, (_, i) => `w${run}:${i}`);
        await load(src, keys, (k) => `v1 ${k}`);
        let round = 0;
        let writing: Promise<void> = Promise.resolve();
        const write = async (r: number): Promise<void> => {
          for (let n = 0; n < 150; n++) {
            const k = keys[(r * 7919 + n * 104_729) % keys.length]!;
            if (n % 2 === 0) {
              await src.owner(k).delete(k);
              await dst.owner(k).delete(k);
            } else {
              await src.owner(k).set(k, `v2 ${r}`, { flags: 6, exptime: 3600 });
              await dst.owner(k).set(k, `v2 ${r}`, { flags: 6, exptime: 3600 });
            }
          }
        };
        const report = await runCopy(
          { from, to, batchKeys: 100, concurrency: 4, rate: 60_000 },
          {
            progressEveryMs: 0,
            onProgress: (p: CopyProgress) => {
              if (p.phase !== 'copying' || round >= 8 || p.done < round * 1_200) return;
              const r = round++;
              writing = writing.then(() => write(r));
            },
          },
        );
        await writing;
        assert.deepEqual(report.errors, []);
        assert.ok(round > 0);
        const result = await audit(src, dst, keys);
        assert.deepEqual(result.resurrected, [], `run ${run}: resurrected`);
        assert.deepEqual(result.older, [], `run ${run}: older values`);
      }
    } finally {
      await src.close();
      await dst.close();
    }
  });
});

describe('copy follows the servers: values up to item_size_max, keys meta cannot name (real memcached)', () => {
  let source: MemcachedServer;
  let big: MemcachedServer;
  let small: MemcachedServer;

  before(async () => {
    source = await startMemcached({ memoryMb: 64, args: ['-I', '2m'] });
    big = await startMemcached({ memoryMb: 64, args: ['-I', '2m'] });
    small = await startMemcached({ memoryMb: 64 });
  });

  after(async () => {
    await Promise.all([source, big, small].map((s) => s.stop()));
  });

  /** Keys of every kind: plain, 250 bytes, UTF-8, binary needing base64 under and over 187 bytes. */
  async function plant(): Promise<{ keys: Buffer[]; large: Buffer[]; unsupported: Buffer[] }> {
    const c = new MemcachedClient(source.address);
    await c.flushAll();
    const keys: Buffer[] = [];
    for (let i = 0; i < 200; i++) keys.push(Buffer.from(`plain:${i}`));
    keys.push(Buffer.from('k'.repeat(250)));
    keys.push(Buffer.from('clé:ünïcödé:日本'));
    keys.push(Buffer.concat([Buffer.from('bin key '), Buffer.alloc(178, 0x01)])); // 186 bytes: 248 in base64
    const unsupported = [
      Buffer.concat([Buffer.from('bin key '), Buffer.alloc(179, 0x02)]), // 187 bytes: 252 in base64
      Buffer.concat([Buffer.from('with spaces '), Buffer.alloc(230, 0x20)]), // 242 bytes
    ];
    const large = [Buffer.from('large:1'), Buffer.from('large:2')];
    const mb15 = Buffer.alloc(1_500_000, 0x61);
    // The meta protocol cannot name the unsupported keys; the binary protocol can.
    for (const k of unsupported) await binarySet(source, k, Buffer.from('unsupported'), 3);
    for (const k of keys) {
      const value = Buffer.from(`value of ${k.toString('hex')}`);
      if (k.includes(0x20)) await binarySet(source, k, value, 3);
      else await c.set(k, value, { flags: 3 });
    }
    for (const [i, k] of large.entries()) {
      mb15.write(`large value ${i}`);
      await c.set(k, mb15, { flags: 4 });
    }
    await c.close();
    return { keys, large, unsupported };
  }

  it('copies 1.5 MB values to a target with -I 2m; counts them one by one where the target cannot hold them', async () => {
    const planted = await plant();
    const toBig = await runCopy({ from: pool([source.address]), to: pool([big.address]), batchKeys: 64 });
    assert.deepEqual(toBig.errors, []);
    assert.equal(toBig.copied, planted.keys.length + planted.large.length);
    assert.equal(toBig.skipped['unsupported-key'], planted.unsupported.length);
    assert.equal(toBig.sources[0]!.itemSizeMax, 2 * 1024 * 1024);
    const b = new MemcachedClient(big.address, { limits: withLimits({ maxValueBytes: 2 * 1024 * 1024 }) });
    for (const k of planted.large) {
      const got = await b.mg(k, ['v', 'f']);
      assert.equal(got.value?.length, 1_500_000);
      assert.deepEqual(got.flags, ['f4']);
    }
    for (const k of planted.keys) {
      const got = await b.mg(k, ['v', 'f']);
      assert.equal(got.value?.toString(), `value of ${k.toString('hex')}`, `key ${k.toString('hex')}`);
    }
    await b.close();

    // A 1 MiB target: the two large values are skipped alone, every other key of their batch is copied.
    const toSmall = await runCopy({
      from: pool([source.address]),
      to: pool([small.address]),
      batchKeys: 1024,
    });
    assert.deepEqual(toSmall.errors, []);
    assert.equal(toSmall.skipped['too-large'], planted.large.length);
    assert.equal(toSmall.copied, planted.keys.length);

    // verify on the same footing: exact counts over every key, values compared.
    const check = await runVerify({
      from: pool([source.address]),
      to: pool([big.address]),
      sample: Infinity,
    });
    assert.equal(check.keys.unsupported, planted.unsupported.length);
    assert.equal(check.keys.source, planted.keys.length + planted.large.length);
    assert.equal(check.keys.present, check.keys.source);
    assert.equal(check.values.compared, check.keys.source);
    assert.equal(check.values.different, 0);
    const small1 = await runVerify({
      from: pool([source.address]),
      to: pool([small.address]),
      sample: Infinity,
    });
    assert.equal(small1.keys.missing, planted.large.length);
  });
});

/** A binary-protocol set (opcode 0x01), for keys the text and meta protocols cannot carry. */
async function binarySet(server: MemcachedServer, key: Buffer, value: Buffer, flags: number): Promise<void> {
  const extras = Buffer.alloc(8); // flags, then expiry 0
  extras.writeUInt32BE(flags, 0);
  const header = Buffer.alloc(24);
  header[0] = 0x80;
  header[1] = 0x01;
  header.writeUInt16BE(key.length, 2);
  header[4] = extras.length;
  header.writeUInt32BE(extras.length + key.length + value.length, 8);
  const socket = connect({ host: server.host, port: server.port });
  const reply = await new Promise<Buffer>((resolve, reject) => {
    let got = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 24 && got.length >= 24 + got.readUInt32BE(8)) resolve(got);
    });
    socket.on('error', reject);
    socket.write(Buffer.concat([header, extras, key, value]));
  });
  socket.destroy();
  assert.equal(reply.readUInt16BE(6), 0, `binary set of a ${key.length}-byte key`);
}
