/**
 * Value limits through `memshift mirror`: the servers' own item_size_max (or
 * --max-value) bounds what is read; a value over it is skipped by its length,
 * never read as commands, and its key is invalidated on the target; a value a
 * target server cannot store invalidates the key there (real memcached, real
 * tcpdump on lo).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { encodeBinaryStore } from '../src/protocol/binary.js';
import { BinaryOpcode } from '../src/protocol/binary-opcodes.js';
import { assertMirrored, mirrorRig, waitForRequests, type MirrorRig } from './support/mirror.js';

async function open(rig: MirrorRig): Promise<Socket> {
  const socket = connect({ host: rig.source.host, port: rig.source.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Writes `bytes` and resolves with what came back once it holds `until` (or `replies` binary replies). */
async function exchange(socket: Socket, bytes: Buffer, until: string | number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const done = (): boolean => {
      if (typeof until === 'string') return got.includes(until);
      let at = 0;
      let n = 0;
      while (got.length >= at + 24 && got.length >= at + 24 + got.readUInt32BE(at + 8)) {
        at += 24 + got.readUInt32BE(at + 8);
        n++;
      }
      return n >= until;
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (done()) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(bytes);
  });
}

/** A value of `size` bytes that holds complete commands of both protocols. */
function forgedValue(size: number, victim: string): Buffer {
  const text = Buffer.from(`\r\nset ${victim} 0 0 6\r\nforged\r\n`);
  const binary = Buffer.concat(
    encodeBinaryStore(BinaryOpcode.Set, Buffer.from(`${victim}-bin`), Buffer.from('forged'), 0, 0),
  );
  const value = Buffer.alloc(size, 'v');
  for (let at = 0; at + 200 < size; at += 64 * 1024) {
    text.copy(value, at);
    binary.copy(value, at + 100);
  }
  return value;
}

function textSet(key: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`set ${key} 5 0 ${value.length}\r\n`), value, Buffer.from('\r\n')]);
}

describe('mirror: value limits from the servers (real memcached, real tcpdump on lo)', () => {
  it('skips a value over the source limit by its length and invalidates what the target would keep', async () => {
    // The source takes up to 2 MiB items, the new servers 1 MiB.
    const rig = await mirrorRig({
      targetArgs: [
        ['-I', '1m'],
        ['-I', '1m'],
        ['-I', '1m'],
      ],
    });
    const text = await open(rig);
    const binary = await open(rig);
    try {
      const keys = ['big:a', 'big:b', 'big:c', 'victim', 'victim-bin', 'after:1', 'after:2'];
      for (const key of ['big:a', 'big:b', 'big:c']) {
        await exchange(text, textSet(key, Buffer.from('old')), 'STORED\r\n');
      }
      // 1.5 MiB: the source stores it, the new servers could not: the key goes there.
      assert.match(
        (await exchange(text, textSet('big:a', forgedValue(1536 * 1024, 'victim')), '\r\n')).toString(),
        /^STORED/,
      );
      // 3 MiB: over the source's limit; it swallows the value and unlinks the old item.
      const refused = await exchange(text, textSet('big:b', forgedValue(3 * 1024 * 1024, 'victim')), '\r\n');
      assert.match(refused.toString(), /^SERVER_ERROR/);
      const packet = Buffer.concat(
        encodeBinaryStore(
          BinaryOpcode.Set,
          Buffer.from('big:c'),
          forgedValue(3 * 1024 * 1024, 'victim'),
          0,
          0,
        ),
      );
      const status = (await exchange(binary, packet, 1)).readUInt16BE(6);
      assert.equal(status, 0x03); // E2BIG
      await exchange(text, textSet('after:1', Buffer.from('one')), 'STORED\r\n');
      await exchange(
        binary,
        Buffer.concat(encodeBinaryStore(BinaryOpcode.Set, Buffer.from('after:2'), Buffer.from('two'), 2, 0)),
        1,
      );
      await waitForRequests(rig.job, 8);
      const summary = await rig.finish();
      assert.equal(summary.error, undefined);
      assert.equal(summary.limits?.maxValueBytes, 2 * 1024 * 1024);
      assert.deepEqual(Object.values(summary.limits?.targets ?? {}), [1024 * 1024, 1024 * 1024, 1024 * 1024]);
      assert.equal(summary.operations.oversizeValues, 2);
      assert.equal(summary.operations.resyncs, 0);
      assert.equal(summary.operations.protocolErrors, 0);
      for (const key of keys) {
        const held = await rig.targetClient.clientFor(key).get(key);
        if (key.startsWith('after:')) assert.ok(held !== undefined, `${key} missing on the target`);
        else assert.equal(held, undefined, `${key} on the target: ${held?.value.subarray(0, 20).toString()}`);
      }
      await assertMirrored(rig, ['big:b', 'big:c', 'victim', 'victim-bin', 'after:1', 'after:2']);
      const replay = summary.routes[0]!.replay;
      assert.equal(replay.invalidatedBy.target_item_size, 1, JSON.stringify(replay.invalidatedBy));
      assert.equal(replay.invalidatedBy.failed_set, 2, JSON.stringify(replay.invalidatedBy));
    } finally {
      text.destroy();
      binary.destroy();
      await rig.close();
    }
  });

  it('--max-value below the source limit: a larger stored value invalidates its key, counted', async () => {
    const rig = await mirrorRig({ maxValueBytes: 512 * 1024 });
    const text = await open(rig);
    try {
      await exchange(text, textSet('mid', Buffer.from('old')), 'STORED\r\n');
      await exchange(text, textSet('mid', forgedValue(600 * 1024, 'victim')), 'STORED\r\n');
      await exchange(text, textSet('next', Buffer.from('fine')), 'STORED\r\n');
      await waitForRequests(rig.job, 3);
      const summary = await rig.finish();
      assert.equal(summary.limits?.maxValueBytes, 512 * 1024);
      assert.equal(await rig.targetClient.clientFor('mid').get('mid'), undefined);
      assert.equal(await rig.targetClient.clientFor('victim').get('victim'), undefined);
      assert.equal((await rig.targetClient.clientFor('next').get('next'))?.value.toString(), 'fine');
      assert.equal(summary.routes[0]!.replay.invalidatedBy.too_large, 1);
    } finally {
      text.destroy();
      await rig.close();
    }
  });
});
