/**
 * The outcome rules: what the target must do so that it holds what the source
 * holds, given one operation and what the source answered. Pure; the mirror
 * and the proxy share it.
 *
 * The guiding rule is DESIGN.md invariant 4: the target never ends up with
 * data the source does not have. So the target repeats what the source
 * actually did (not what the client asked), and when that cannot be known the
 * key is deleted on the target: a miss is never wrong data.
 */
import type { Operation } from '../ops/operation.js';

/**
 * `mapped`: the target is this source's 1:1 counterpart, so a flush_all can be
 * repeated there; `all-targets`: the user asked to flush every target server;
 * `skip`: a flush on one source server has no counterpart in a resharded pool.
 */
export type FlushPolicy = 'skip' | 'all-targets' | 'mapped';

export interface OutcomeRules {
  readonly flushPolicy: FlushPolicy;
}

export type SkipReason =
  /** add/replace/cas/append... the source refused: nothing changed there. */
  | 'not_stored'
  /** cas lost on the source. */
  | 'exists'
  /** The source answered ERROR/CLIENT_ERROR/SERVER_ERROR and did not apply the command. */
  | 'source_error'
  /** A read, a read miss, or a touch/gat miss: nothing to do (fills are a separate action). */
  | 'read'
  /** flush_all on a pool that is not mapped 1:1 (see FlushPolicy). */
  | 'flush_unmapped'
  /** Admin and unknown commands. */
  | 'other'
  /** A keyed command with an empty key: the source refused it. */
  | 'no_key';

/** Why the target deletes a key. */
export type DeleteReason =
  /** The client deleted it. */
  | 'delete'
  /** The outcome on the source cannot be known (noreply on a conditional command, a lost reply). */
  | 'unknown'
  /** The source said the key is not there (replace/append/cas/incr/touch not found). */
  | 'absent'
  /** A set failed on the source, which unlinks the old item when it cannot store the new one. */
  | 'failed_set'
  /** The value was over memshift's value limit and skipped unread: what the source holds is not known. */
  | 'too_large'
  /** memshift had no room to hold the value (--max-pending-bytes) and skipped it unread. */
  | 'over_budget';

export type TargetAction =
  | {
      readonly kind: 'set';
      readonly key: Buffer;
      readonly value: Buffer;
      readonly flags: number;
      /** As the client sent it: relative seconds, unix time, 0 for never. */
      readonly exptime: number;
    }
  | { readonly kind: 'append' | 'prepend'; readonly key: Buffer; readonly value: Buffer }
  | { readonly kind: 'delete'; readonly key: Buffer; readonly reason: DeleteReason }
  | { readonly kind: 'touch'; readonly key: Buffer; readonly exptime: number }
  | {
      readonly kind: 'incr' | 'decr';
      readonly key: Buffer;
      readonly delta: bigint;
      /** What the source answered; a target that answers otherwise has diverged and loses the key. */
      readonly expected: bigint;
      /** Creates a missing counter at this value with `exptime` (binary incr/decr), as the source did. */
      readonly initial: bigint | undefined;
      readonly exptime: number;
    }
  | { readonly kind: 'flush'; readonly delay: number | undefined }
  /**
   * A read hit whose value may be written to the target in add mode (fill on
   * read), with the TTL the source still has; the replayer decides whether
   * and when.
   */
  | { readonly kind: 'fill'; readonly key: Buffer; readonly value: Buffer; readonly flags: number }
  | { readonly kind: 'skip'; readonly reason: SkipReason };

const SKIPS: { readonly [R in SkipReason]: TargetAction } = {
  not_stored: Object.freeze({ kind: 'skip', reason: 'not_stored' }),
  exists: Object.freeze({ kind: 'skip', reason: 'exists' }),
  source_error: Object.freeze({ kind: 'skip', reason: 'source_error' }),
  read: Object.freeze({ kind: 'skip', reason: 'read' }),
  flush_unmapped: Object.freeze({ kind: 'skip', reason: 'flush_unmapped' }),
  other: Object.freeze({ kind: 'skip', reason: 'other' }),
  no_key: Object.freeze({ kind: 'skip', reason: 'no_key' }),
};

function skip(reason: SkipReason): TargetAction[] {
  return [SKIPS[reason]];
}

function del(key: Buffer, reason: DeleteReason): TargetAction[] {
  return [{ kind: 'delete', key, reason }];
}

/** Why a storage operation came without its value. */
function valueMissing(op: Operation): DeleteReason {
  if (op.oversize === true) return 'too_large';
  return op.shed === true ? 'over_budget' : 'unknown';
}

function set(op: Operation): TargetAction[] {
  // A storage operation without its value cannot be repeated: unknown content.
  if (op.value === undefined) return del(op.key, valueMissing(op));
  return [{ kind: 'set', key: op.key, value: op.value, flags: op.flags ?? 0, exptime: op.exptime ?? 0 }];
}

/**
 * The actions, in order, that make the target follow the source for `op`.
 * Always at least one action; `skip` says why nothing is done.
 */
export function outcomeActions(op: Operation, rules: OutcomeRules): TargetAction[] {
  const { command, outcome, key } = op;
  if (command === 'other') return skip('other');
  if (command === 'flush_all') {
    if (outcome === 'error') return skip('source_error');
    if (rules.flushPolicy === 'skip') return skip('flush_unmapped');
    // An unknown outcome (noreply) is treated as done: flush_all cannot fail.
    return [{ kind: 'flush', delay: op.exptime }];
  }
  if (key.length === 0) return skip('no_key');
  switch (command) {
    case 'set':
      // protocol.txt "Storage commands": set always stores; a set the source
      // could not store (too large, out of memory) unlinks the old item there.
      if (outcome === 'stored' || outcome === 'unknown') return set(op);
      if (outcome === 'error') return del(key, 'failed_set');
      return skip('not_stored');
    case 'add':
    case 'replace':
    case 'cas':
      if (outcome === 'stored') return set(op); // cas values differ per server: a won cas is a set
      if (outcome === 'unknown') return del(key, 'unknown');
      if (outcome === 'error') return skip('source_error');
      if (outcome === 'exists') return skip('exists');
      // replace refused or cas on a missing key: the source does not hold the key.
      if (command === 'replace' || outcome === 'not_found') return del(key, 'absent');
      return skip('not_stored');
    case 'append':
    case 'prepend':
      if (outcome === 'stored') {
        if (op.value === undefined) return del(key, valueMissing(op));
        return [{ kind: command, key, value: op.value }];
      }
      if (outcome === 'unknown') return del(key, 'unknown');
      if (outcome === 'error') return skip('source_error');
      // protocol.txt: append/prepend are refused when the item is missing.
      return del(key, 'absent');
    case 'incr':
    case 'decr':
      if (outcome === 'number' && op.number !== undefined && op.delta !== undefined) {
        return [
          {
            kind: command,
            key,
            delta: op.delta,
            expected: op.number,
            initial: op.initial,
            exptime: op.exptime ?? 0,
          },
        ];
      }
      if (outcome === 'not_found') return del(key, 'absent');
      if (outcome === 'error') return skip('source_error');
      return del(key, 'unknown');
    case 'delete':
      // deleted, not found (nothing to keep either way), or unknown: delete.
      if (outcome === 'error') return skip('source_error');
      return del(key, outcome === 'deleted' || outcome === 'not_found' ? 'delete' : 'unknown');
    case 'touch':
      if (outcome === 'touched') return [{ kind: 'touch', key, exptime: op.exptime ?? 0 }];
      if (outcome === 'not_found') return del(key, 'absent');
      if (outcome === 'error') return skip('source_error');
      return del(key, 'unknown');
    case 'gat':
      if (outcome === 'hit') {
        const touch: TargetAction = { kind: 'touch', key, exptime: op.exptime ?? 0 };
        if (op.value === undefined) return [touch];
        return [touch, { kind: 'fill', key, value: op.value, flags: op.flags ?? 0 }];
      }
      // A gat miss changed nothing; an unknown gat may have set a new TTL there.
      if (outcome === 'unknown') return del(key, 'unknown');
      return skip('read');
    case 'get':
      if (outcome === 'hit' && op.value !== undefined) {
        return [{ kind: 'fill', key, value: op.value, flags: op.flags ?? 0 }];
      }
      return skip('read');
  }
}

/** Actions that change the key on the target (and so count as a mutation for freshness). */
export function isMutation(action: TargetAction): boolean {
  switch (action.kind) {
    case 'set':
    case 'append':
    case 'prepend':
    case 'delete':
    case 'incr':
    case 'decr':
    case 'flush':
      return true;
    default:
      return false;
  }
}
