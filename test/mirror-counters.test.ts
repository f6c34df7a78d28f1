/**
 * Counters through `memshift mirror`: binary incr/decr that create a missing
 * counter with an initial value and an expiry, and target replies that show
 * a command had no effect (real memcached, real tcpdump on lo).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { encodeBinaryArithmetic } from '../src/protocol/binary.js';
import { BINARY_NO_AUTO_CREATE, BinaryOpcode } from '../src/protocol/binary-opcodes.js';
import { assertMirrored, mirrorRig, waitForRequests } from './support/mirror.js';

/** Writes one binary request and resolves with its reply's status once the whole reply is in. */
async function call(socket: Socket, packet: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 24 && got.length >= 24 + got.readUInt32BE(8)) {
        socket.off('data', onData);
        resolve(got.readUInt16BE(6));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(Buffer.concat(packet));
  });
}

describe('mirror: counters (real memcached, real tcpdump on lo)', () => {
  it('creates a counter on the target with the initial value and expiry the source used', async () => {
    const rig = await mirrorRig({
      beforeCapture: async (source) => {
        // Exists on the source only: the target's NF must not count as applied.
        const client = new MemcachedClient(source.address);
        await client.set('c:old', '41');
        await client.close();
      },
    });
    const socket = connect({ host: rig.source.host, port: rig.source.port });
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      const incr = BinaryOpcode.Increment;
      const decr = BinaryOpcode.Decrement;
      assert.equal(await call(socket, encodeBinaryArithmetic(incr, Buffer.from('c:1'), 1n, 5n, 300)), 0);
      assert.equal(await call(socket, encodeBinaryArithmetic(incr, Buffer.from('c:1'), 2n, 5n, 300)), 0);
      assert.equal(await call(socket, encodeBinaryArithmetic(decr, Buffer.from('c:2'), 3n, 10n, 0)), 0);
      // No auto-create: a missing counter stays missing (KeyNotFound) on both sides.
      const none = encodeBinaryArithmetic(incr, Buffer.from('c:3'), 1n, 0n, BINARY_NO_AUTO_CREATE);
      assert.equal(await call(socket, none), 1);
      const old = encodeBinaryArithmetic(incr, Buffer.from('c:old'), 1n, 0n, BINARY_NO_AUTO_CREATE);
      assert.equal(await call(socket, old), 0);
      await waitForRequests(rig.job, 5);
      const summary = await rig.finish();
      assert.equal((await rig.sourceClient.get('c:1'))?.value.toString(), '7');
      assert.equal(await assertMirrored(rig, ['c:1', 'c:2', 'c:3']), 2);
      assert.equal((await rig.targetClient.clientFor('c:1').get('c:1'))?.value.toString(), '7');
      assert.equal((await rig.targetClient.clientFor('c:2').get('c:2'))?.value.toString(), '10');
      const replay = summary.routes[0]!.replay;
      assert.equal(replay.skipped.target_absent, 1, JSON.stringify(replay));
      assert.equal(replay.applied, 4, JSON.stringify(replay)); // two incr, the decr, c:3's delete
      assert.equal(await rig.targetClient.clientFor('c:old').get('c:old'), undefined);
    } finally {
      socket.destroy();
      await rig.close();
    }
  });
});
