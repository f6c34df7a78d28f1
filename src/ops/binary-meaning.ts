/**
 * What a binary request and its reply mean as an operation, whoever paired
 * them: capture's pairing (binary-pairing.ts) and the proxy (paired.ts).
 * reference/memcached-protocol-binary.txt, section 4.
 */
import {
  binaryArithmeticDelta,
  binaryArithmeticExpiration,
  binaryArithmeticInitial,
  BINARY_NO_AUTO_CREATE,
  binaryCounterValue,
  binaryFlushExpiration,
  BinaryOpcode,
  binaryResponseFlags,
  BinaryStatus,
  binaryStoreExpiration,
  binaryStoreFlags,
  binaryTouchExpiration,
  isQuiet,
  loudOf,
  type BinaryRequest,
  type BinaryResponse,
} from '../protocol/binary.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import type { OpOutcome } from './operation.js';
import type { PendingRequest, ReplyOutcome } from './pending.js';

/** What describeBinary found besides the fields it filled: bits. */
export const BINARY_ADMIN = 1; // an admin opcode (counted, never mirrored)
export const BINARY_NO_REPLY = 2; // QuitQ: no reply, nothing to pair

/**
 * Fills `p` with what `req` asks (command, key as a copy, flags, expiry,
 * delta, what a quiet success means) and returns BINARY_ADMIN and
 * BINARY_NO_REPLY bits. The value is not taken: see binaryRequestValue.
 */
export function describeBinary(req: BinaryRequest, p: PendingRequest): number {
  const loud = loudOf(req.opcode);
  p.protocol = 'binary';
  p.opcode = loud;
  p.opaque = req.opaque;
  p.silent = isQuiet(req.opcode);
  p.cas = req.cas !== 0n;
  switch (loud) {
    case BinaryOpcode.Get:
    case BinaryOpcode.GetK:
      p.command = 'get';
      p.key = Buffer.from(req.key);
      p.returnsKey = loud === BinaryOpcode.GetK;
      p.silentOutcome = 'miss';
      return 0;
    case BinaryOpcode.GAT:
    case BinaryOpcode.GATK:
      p.command = 'gat';
      p.key = Buffer.from(req.key);
      p.exptime = binaryTouchExpiration(req);
      p.returnsKey = loud === BinaryOpcode.GATK;
      p.silentOutcome = 'miss';
      return 0;
    case BinaryOpcode.Set:
    case BinaryOpcode.Add:
    case BinaryOpcode.Replace:
      // A store with a CAS is a compare-and-swap (section 4.3); memcached ignores it on Add.
      p.command =
        p.cas && loud !== BinaryOpcode.Add
          ? 'cas'
          : loud === BinaryOpcode.Set
            ? 'set'
            : loud === BinaryOpcode.Add
              ? 'add'
              : 'replace';
      p.key = Buffer.from(req.key);
      p.flags = binaryStoreFlags(req);
      p.exptime = binaryStoreExpiration(req);
      p.silentOutcome = 'stored';
      return 0;
    case BinaryOpcode.Append:
    case BinaryOpcode.Prepend:
      p.command = loud === BinaryOpcode.Append ? 'append' : 'prepend';
      p.key = Buffer.from(req.key);
      p.silentOutcome = 'stored';
      return 0;
    case BinaryOpcode.Delete:
      p.command = 'delete';
      p.key = Buffer.from(req.key);
      p.silentOutcome = 'deleted';
      return 0;
    case BinaryOpcode.Increment:
    case BinaryOpcode.Decrement: {
      p.command = loud === BinaryOpcode.Increment ? 'incr' : 'decr';
      p.key = Buffer.from(req.key);
      p.delta = binaryArithmeticDelta(req);
      // Any expiration but the all-ones one creates a missing counter at `initial` (section 4.5).
      const expiration = binaryArithmeticExpiration(req);
      if (expiration !== undefined && expiration !== BINARY_NO_AUTO_CREATE) {
        p.initial = binaryArithmeticInitial(req);
        p.exptime = expiration;
      }
      p.silentOutcome = 'number'; // a quiet success does not send the new value
      return 0;
    }
    case BinaryOpcode.Touch:
      p.command = 'touch';
      p.key = Buffer.from(req.key);
      p.exptime = binaryTouchExpiration(req);
      p.silentOutcome = 'touched';
      return 0;
    case BinaryOpcode.Flush:
      p.command = 'flush_all';
      p.exptime = binaryFlushExpiration(req);
      p.silentOutcome = 'ok';
      return 0;
    case BinaryOpcode.Noop:
      p.name = 'noop'; // a fence: it exists to end quiet pipelines
      return 0;
    default:
      // Version, Stat, Verbosity, Quit, SASL, opcodes memcached does not know: paired, not mirrored.
      p.name = 'binary';
      p.silentOutcome = 'ok';
      return loud === BinaryOpcode.Quit && p.silent ? BINARY_ADMIN | BINARY_NO_REPLY : BINARY_ADMIN;
  }
}

/** The value a request described in `p` stores (not copied), if it stores one. */
export function binaryRequestValue(req: BinaryRequest, p: PendingRequest): Buffer | undefined {
  switch (p.command) {
    case 'set':
    case 'add':
    case 'replace':
    case 'cas':
    case 'append':
    case 'prepend':
      return req.value;
    default:
      return undefined;
  }
}

/** Fills `out` with what the reply `res` says happened to the request in `p`: a value read is copied. */
export function binaryReplyOutcome(p: PendingRequest, res: BinaryResponse, out: ReplyOutcome): void {
  const status = res.status;
  out.value = p.value;
  out.flags = p.flags;
  out.number = undefined;
  switch (p.command) {
    case 'get':
    case 'gat':
      out.value = undefined;
      out.flags = undefined;
      if (status === BinaryStatus.NoError) {
        out.outcome = 'hit';
        // A value over the limit was skipped unread: a hit whose value is not known.
        out.value = res.value === SKIPPED_VALUE ? undefined : Buffer.from(res.value);
        out.flags = binaryResponseFlags(res);
        return;
      }
      out.outcome = status === BinaryStatus.KeyNotFound ? 'miss' : 'error';
      return;
    case 'incr':
    case 'decr':
      if (status === BinaryStatus.NoError) {
        out.outcome = 'number';
        out.value = undefined;
        out.flags = undefined;
        out.number = binaryCounterValue(res);
        return;
      }
      break;
  }
  out.outcome = statusOutcome(p, status);
}

/** What a status means for each command (memcached sends KeyExists for a refused add, KeyNotFound for a refused replace). */
function statusOutcome(p: PendingRequest, status: number): OpOutcome {
  if (status === BinaryStatus.NoError) {
    switch (p.command) {
      case 'delete':
        return 'deleted';
      case 'touch':
        return 'touched';
      case 'flush_all':
        return 'ok';
      default:
        return 'stored';
    }
  }
  switch (p.command) {
    case 'add':
      if (status === BinaryStatus.KeyExists || status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    case 'replace':
      if (status === BinaryStatus.KeyNotFound || status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    case 'append':
    case 'prepend':
      if (status === BinaryStatus.ItemNotStored || status === BinaryStatus.KeyNotFound) return 'not_stored';
      if (status === BinaryStatus.KeyExists) return 'exists';
      break;
    case 'set':
      if (status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    default:
      if (status === BinaryStatus.KeyExists) return 'exists';
      if (status === BinaryStatus.KeyNotFound) return 'not_found';
      if (status === BinaryStatus.ItemNotStored) return 'not_stored';
  }
  if (status === BinaryStatus.KeyExists) return 'exists';
  if (status === BinaryStatus.KeyNotFound) return 'not_found';
  return 'error';
}
