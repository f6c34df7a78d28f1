/**
 * Keys the meta protocol cannot carry through `memshift mirror`: a binary
 * client's key with spaces and control bytes, over 187 bytes (its base64 form
 * is longer than memcached's 250-character key token), is written to the
 * target in the binary protocol; its value is never run as commands and no
 * other key is affected (real memcached, real tcpdump on lo).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { encodeBinaryDelete, encodeBinaryGet, encodeBinaryStore } from '../src/protocol/binary.js';
import { BinaryOpcode } from '../src/protocol/binary-opcodes.js';
import { assertMirrored, mirrorRig, waitForRequests, type MirrorRig } from './support/mirror.js';

async function open(host: string, port: number): Promise<Socket> {
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Sends one binary request and resolves with its reply: status and value. */
async function call(socket: Socket, packet: Buffer[]): Promise<{ status: number; value: Buffer }> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 24 || got.length < 24 + got.readUInt32BE(8)) return;
      socket.off('data', onData);
      const body = got.subarray(24, 24 + got.readUInt32BE(8));
      resolve({ status: got.readUInt16BE(6), value: body.subarray(got[4]! + got.readUInt16BE(2)) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(Buffer.concat(packet));
  });
}

/** What the target server the key belongs to holds for it, read in the binary protocol. */
async function onTarget(rig: MirrorRig, key: Buffer): Promise<Buffer | undefined> {
  const server = rig.targets[rig.pool.distribution.serverFor(key)]!;
  const socket = await open(server.host, server.port);
  try {
    const reply = await call(socket, encodeBinaryGet(BinaryOpcode.Get, key));
    return reply.status === 0 ? reply.value : undefined;
  } finally {
    socket.destroy();
  }
}

const spaced = (n: number, tag: string): Buffer =>
  Buffer.from(`${tag} \x01`.padEnd(n, ' x'), 'latin1').subarray(0, n);

describe('mirror: keys meta cannot carry (real memcached, real tcpdump on lo)', () => {
  it('writes long keys with spaces through the binary protocol, values never run as commands', async () => {
    const rig = await mirrorRig({});
    const app = await open(rig.source.host, rig.source.port);
    try {
      const evil = Buffer.from('set injected 0 0 4\r\nEVIL\r\nmn\r\n');
      const keys = [
        spaced(186, 'a'),
        spaced(187, 'b'),
        spaced(200, 'c'),
        spaced(250, 'd'),
        spaced(240, 'gone'),
      ];
      for (const [i, key] of keys.entries()) {
        const store = encodeBinaryStore(
          BinaryOpcode.Set,
          key,
          Buffer.concat([evil, Buffer.from(String(i))]),
          i,
          600,
        );
        assert.equal((await call(app, store)).status, 0);
      }
      assert.equal((await call(app, encodeBinaryDelete(BinaryOpcode.Delete, keys[4]!))).status, 0);
      await rig.sourceClient.set('plain', 'untouched', { exptime: 600 });
      await waitForRequests(rig.job, keys.length + 2);
      const summary = await rig.finish();
      assert.equal(summary.error, undefined);
      for (const [i, key] of keys.entries()) {
        const held = await onTarget(rig, key);
        if (i === 4) assert.equal(held, undefined);
        else assert.equal(held?.toString(), `${evil.toString()}${i}`, `key of ${key.length} bytes`);
      }
      for (const name of ['injected', 'plain']) {
        const held = await onTarget(rig, Buffer.from(name));
        assert.equal(held?.toString(), name === 'plain' ? 'untouched' : undefined);
      }
      await assertMirrored(rig, ['plain', 'injected']);
      const replay = summary.routes[0]!.replay;
      assert.equal(replay.failed, 0, JSON.stringify(replay));
      assert.equal(replay.applied, keys.length + 2, JSON.stringify(replay));
    } finally {
      app.destroy();
      await rig.close();
    }
  });
});
