/** Replay: applying source operations to a target pool (outcome rules, per-key order, backpressure, fills). */
export type { KeyFreshness } from './freshness.js';
export {
  isMutation,
  outcomeActions,
  type DeleteReason,
  type FlushPolicy,
  type OutcomeRules,
  type SkipReason,
  type TargetAction,
} from './outcome.js';
export {
  Replayer,
  type FillSkipReason,
  type ReplayCounters,
  type ReplayerOptions,
  type ReplayStatus,
} from './replayer.js';
