/**
 * Replay jobs in memcached's binary protocol, for keys a meta command cannot
 * carry. A binary-protocol client may use any bytes in a key of up to 250
 * bytes; meta needs such a key base64-encoded, and past 187 bytes that form
 * is longer than the 250 characters memcached reads as a key token, so the
 * server answers CLIENT_ERROR before reading the data block and would run
 * the value's bytes as commands. memcached 1.6 still serves the binary
 * protocol on the same port, where the key is length-prefixed and any value
 * is framed by the body length (reference/memcached-protocol-binary.txt).
 *
 * Quiet opcodes and a Noop fence per batch mirror the meta writer: successes
 * cost no reply, failures come back with the job's opaque.
 */
import {
  encodeBinaryArithmetic,
  encodeBinaryConcat,
  encodeBinaryDelete,
  encodeBinaryFlush,
  encodeBinaryGet,
  encodeBinaryNoop,
  encodeBinaryStore,
  encodeBinaryTouch,
  type BinaryResponse,
} from '../protocol/binary.js';
import { BINARY_NO_AUTO_CREATE, BinaryOpcode, BinaryStatus } from '../protocol/binary-opcodes.js';
import type { Job, JobResult } from './target-connection.js';

/**
 * The packets for `job`, given the TTL left (undefined: none left, the key is
 * deleted instead). The opaque is the job's sequence number.
 */
export function binaryJobPackets(job: Job, ttl: number | undefined): Buffer[] {
  const o = job.seq;
  if (ttl === undefined && (job.kind === 'set' || job.kind === 'fill' || job.kind === 'touch')) {
    return encodeBinaryDelete(BinaryOpcode.DeleteQ, job.key, 0n, o);
  }
  const exptime = ttl ?? 0;
  switch (job.kind) {
    case 'set':
      return encodeBinaryStore(BinaryOpcode.SetQ, job.key, job.value!, job.flags, exptime, 0n, o);
    case 'fill':
      return encodeBinaryStore(BinaryOpcode.AddQ, job.key, job.value!, job.flags, exptime, 0n, o);
    case 'append':
      return encodeBinaryConcat(BinaryOpcode.AppendQ, job.key, job.value!, 0n, o);
    case 'prepend':
      return encodeBinaryConcat(BinaryOpcode.PrependQ, job.key, job.value!, 0n, o);
    case 'delete':
    case 'invalidate':
    case 'diverged':
      return encodeBinaryDelete(BinaryOpcode.DeleteQ, job.key, 0n, o);
    case 'touch':
      return encodeBinaryTouch(BinaryOpcode.Touch, job.key, exptime, o);
    case 'read':
      return encodeBinaryGet(BinaryOpcode.GetQ, job.key, o);
    case 'incr':
    case 'decr': {
      const opcode = job.kind === 'incr' ? BinaryOpcode.Increment : BinaryOpcode.Decrement;
      const create = job.initial !== undefined && ttl !== undefined;
      return encodeBinaryArithmetic(
        opcode,
        job.key,
        job.delta,
        job.initial ?? 0n,
        create ? exptime : BINARY_NO_AUTO_CREATE,
        0n,
        o,
      );
    }
    case 'flush':
      return encodeBinaryFlush(BinaryOpcode.Flush, job.exptime >= 0 ? job.exptime : undefined, o);
    case 'fence':
      return encodeBinaryNoop(o);
  }
}

/** What a binary reply says of its job, as the meta writer reads HD/NF/NS/VA. */
export function binaryJobResult(job: Job, res: BinaryResponse): JobResult {
  switch (res.status) {
    case BinaryStatus.NoError:
      if (job.kind === 'incr' || job.kind === 'decr') {
        const value = res.value.length === 8 ? res.value.readBigUInt64BE(0) : undefined;
        return value === job.expected ? 'ok' : 'diverged';
      }
      return 'ok';
    case BinaryStatus.KeyNotFound:
      // A delete of a missing key did what it should; anything else did nothing.
      return job.kind === 'delete' ||
        job.kind === 'invalidate' ||
        job.kind === 'diverged' ||
        job.kind === 'read'
        ? 'ok'
        : 'absent';
    case BinaryStatus.KeyExists:
    case BinaryStatus.ItemNotStored:
      return job.kind === 'fill' ? 'not_stored' : 'absent';
    default:
      return 'failed';
  }
}
