/**
 * What the opcodes of memcached's binary protocol mean: their numbers, names
 * and quiet twins, the response statuses (reference/memcached-protocol-binary.txt,
 * sections 3.2 and 3.3), the layout of each opcode's extras and the request
 * shapes a server accepts. Framing lives in binary.ts.
 *
 * The reference draft stops at PrependQ (0x1a). The rest of the table holds
 * the opcodes later servers and clients agreed on (verbosity, touch and
 * get-and-touch, SASL, range operations, vbuckets, TAP) so that captured
 * traffic from any of them is named, not guessed. memcached 1.6 implements
 * neither Verbosity nor the range, vbucket and TAP opcodes: it answers them
 * with UnknownCommand (0x0081). Our parsers frame them like any other packet.
 */
import type { BinaryRequest, BinaryResponse } from './binary.js';

export const BinaryOpcode = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Replace: 0x03,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Quit: 0x07,
  Flush: 0x08,
  GetQ: 0x09,
  Noop: 0x0a,
  Version: 0x0b,
  GetK: 0x0c,
  GetKQ: 0x0d,
  Append: 0x0e,
  Prepend: 0x0f,
  Stat: 0x10,
  SetQ: 0x11,
  AddQ: 0x12,
  ReplaceQ: 0x13,
  DeleteQ: 0x14,
  IncrementQ: 0x15,
  DecrementQ: 0x16,
  QuitQ: 0x17,
  FlushQ: 0x18,
  AppendQ: 0x19,
  PrependQ: 0x1a,
  Verbosity: 0x1b,
  Touch: 0x1c,
  GAT: 0x1d,
  GATQ: 0x1e,
  SASLListMechs: 0x20,
  SASLAuth: 0x21,
  SASLStep: 0x22,
  GATK: 0x23,
  GATKQ: 0x24,
  RGet: 0x30,
  RSet: 0x31,
  RSetQ: 0x32,
  RAppend: 0x33,
  RAppendQ: 0x34,
  RPrepend: 0x35,
  RPrependQ: 0x36,
  RDelete: 0x37,
  RDeleteQ: 0x38,
  RIncr: 0x39,
  RIncrQ: 0x3a,
  RDecr: 0x3b,
  RDecrQ: 0x3c,
  SetVBucket: 0x3d,
  GetVBucket: 0x3e,
  DelVBucket: 0x3f,
  TapConnect: 0x40,
  TapMutation: 0x41,
  TapDelete: 0x42,
  TapFlush: 0x43,
  TapOpaque: 0x44,
  TapVBucketSet: 0x45,
  TapCheckpointStart: 0x46,
  TapCheckpointEnd: 0x47,
} as const;

export type BinaryOpcodeName = keyof typeof BinaryOpcode;

/**
 * Response statuses. 0x0000-0x0006 and 0x0081-0x0082 are the reference's
 * (section 3.2); memcached sends 0x0020/0x0021 for SASL; 0x0007 and
 * 0x0083-0x0086 come from servers that grew out of the same protocol.
 */
export const BinaryStatus = {
  NoError: 0x0000,
  KeyNotFound: 0x0001,
  KeyExists: 0x0002,
  ValueTooLarge: 0x0003,
  InvalidArguments: 0x0004,
  ItemNotStored: 0x0005,
  NonNumeric: 0x0006,
  NotMyVBucket: 0x0007,
  AuthError: 0x0020,
  AuthContinue: 0x0021,
  UnknownCommand: 0x0081,
  OutOfMemory: 0x0082,
  NotSupported: 0x0083,
  InternalError: 0x0084,
  Busy: 0x0085,
  TemporaryFailure: 0x0086,
} as const;

export type BinaryStatusName = keyof typeof BinaryStatus;

const STATUS_TEXT: ReadonlyMap<number, string> = new Map([
  [BinaryStatus.NoError, 'No error'],
  [BinaryStatus.KeyNotFound, 'Key not found'],
  [BinaryStatus.KeyExists, 'Key exists'],
  [BinaryStatus.ValueTooLarge, 'Value too large'],
  [BinaryStatus.InvalidArguments, 'Invalid arguments'],
  [BinaryStatus.ItemNotStored, 'Item not stored'],
  [BinaryStatus.NonNumeric, 'Incr/Decr on non-numeric value'],
  [BinaryStatus.NotMyVBucket, 'VBucket belongs to another server'],
  [BinaryStatus.AuthError, 'Authentication error'],
  [BinaryStatus.AuthContinue, 'Authentication continue'],
  [BinaryStatus.UnknownCommand, 'Unknown command'],
  [BinaryStatus.OutOfMemory, 'Out of memory'],
  [BinaryStatus.NotSupported, 'Not supported'],
  [BinaryStatus.InternalError, 'Internal error'],
  [BinaryStatus.Busy, 'Busy'],
  [BinaryStatus.TemporaryFailure, 'Temporary failure'],
]);

/** The data type byte: only raw bytes are defined (section 3.4). */
export const BinaryDataType = { Raw: 0x00 } as const;

/** Header size of every packet, request or response (section 2). */
export const BINARY_HEADER_BYTES = 24;

/**
 * Loud/quiet pairs. "A quiet version of a command will omit responses that
 * are considered uninteresting" (section 3.3): misses for the quiet gets,
 * successes for the quiet mutations.
 */
const QUIET_PAIRS: ReadonlyArray<readonly [number, number]> = [
  [BinaryOpcode.Get, BinaryOpcode.GetQ],
  [BinaryOpcode.GetK, BinaryOpcode.GetKQ],
  [BinaryOpcode.Set, BinaryOpcode.SetQ],
  [BinaryOpcode.Add, BinaryOpcode.AddQ],
  [BinaryOpcode.Replace, BinaryOpcode.ReplaceQ],
  [BinaryOpcode.Delete, BinaryOpcode.DeleteQ],
  [BinaryOpcode.Increment, BinaryOpcode.IncrementQ],
  [BinaryOpcode.Decrement, BinaryOpcode.DecrementQ],
  [BinaryOpcode.Quit, BinaryOpcode.QuitQ],
  [BinaryOpcode.Flush, BinaryOpcode.FlushQ],
  [BinaryOpcode.Append, BinaryOpcode.AppendQ],
  [BinaryOpcode.Prepend, BinaryOpcode.PrependQ],
  [BinaryOpcode.GAT, BinaryOpcode.GATQ],
  [BinaryOpcode.GATK, BinaryOpcode.GATKQ],
  [BinaryOpcode.RSet, BinaryOpcode.RSetQ],
  [BinaryOpcode.RAppend, BinaryOpcode.RAppendQ],
  [BinaryOpcode.RPrepend, BinaryOpcode.RPrependQ],
  [BinaryOpcode.RDelete, BinaryOpcode.RDeleteQ],
  [BinaryOpcode.RIncr, BinaryOpcode.RIncrQ],
  [BinaryOpcode.RDecr, BinaryOpcode.RDecrQ],
];

// Lookups by opcode byte are flat 256-entry arrays: the capture path asks
// these for every packet, so no Map hashing and no allocation.
const NO_OPCODE = -1;
const QUIET_OF = new Int16Array(256).fill(NO_OPCODE);
const LOUD_OF = new Int16Array(256).fill(NO_OPCODE);
for (const [loud, quiet] of QUIET_PAIRS) {
  QUIET_OF[loud] = quiet;
  LOUD_OF[quiet] = loud;
}

const OPCODE_NAMES: ReadonlyArray<BinaryOpcodeName | undefined> = (() => {
  const names = new Array<BinaryOpcodeName | undefined>(256).fill(undefined);
  for (const name of Object.keys(BinaryOpcode) as BinaryOpcodeName[]) names[BinaryOpcode[name]] = name;
  return names;
})();

/** True for the quiet opcodes (GetQ, SetQ, ..., GATKQ and the quiet range operations). */
export function isQuiet(opcode: number): boolean {
  return (LOUD_OF[opcode] ?? NO_OPCODE) !== NO_OPCODE;
}

/** The quiet twin of a loud opcode (Get -> GetQ), or undefined when it has none. */
export function quietOf(opcode: number): number | undefined {
  const quiet = QUIET_OF[opcode] ?? NO_OPCODE;
  return quiet === NO_OPCODE ? undefined : quiet;
}

/** The loud twin of a quiet opcode (GetQ -> Get); any other opcode is returned as is. */
export function loudOf(opcode: number): number {
  const loud = LOUD_OF[opcode] ?? NO_OPCODE;
  return loud === NO_OPCODE ? opcode : loud;
}

/** The table name of an opcode (`GetKQ`), or undefined for a byte no server defines. */
export function binaryOpcodeName(opcode: number): BinaryOpcodeName | undefined {
  return OPCODE_NAMES[opcode];
}

/** The human text of a status (`Key not found`), `status 0x00NN` when it is not in the table. */
export function binaryStatusText(status: number): string {
  return STATUS_TEXT.get(status) ?? `status 0x${status.toString(16).padStart(4, '0')}`;
}

// Opcode families, so an encoder's signature says which opcodes it builds.
export type BinaryGetOpcode =
  typeof BinaryOpcode.Get | typeof BinaryOpcode.GetQ | typeof BinaryOpcode.GetK | typeof BinaryOpcode.GetKQ;
export type BinaryStoreOpcode =
  | typeof BinaryOpcode.Set
  | typeof BinaryOpcode.SetQ
  | typeof BinaryOpcode.Add
  | typeof BinaryOpcode.AddQ
  | typeof BinaryOpcode.Replace
  | typeof BinaryOpcode.ReplaceQ;
export type BinaryConcatOpcode =
  | typeof BinaryOpcode.Append
  | typeof BinaryOpcode.AppendQ
  | typeof BinaryOpcode.Prepend
  | typeof BinaryOpcode.PrependQ;
export type BinaryDeleteOpcode = typeof BinaryOpcode.Delete | typeof BinaryOpcode.DeleteQ;
export type BinaryArithmeticOpcode =
  | typeof BinaryOpcode.Increment
  | typeof BinaryOpcode.IncrementQ
  | typeof BinaryOpcode.Decrement
  | typeof BinaryOpcode.DecrementQ;
export type BinaryTouchOpcode =
  | typeof BinaryOpcode.Touch
  | typeof BinaryOpcode.GAT
  | typeof BinaryOpcode.GATQ
  | typeof BinaryOpcode.GATK
  | typeof BinaryOpcode.GATKQ;
export type BinaryFlushOpcode = typeof BinaryOpcode.Flush | typeof BinaryOpcode.FlushQ;
export type BinaryQuitOpcode = typeof BinaryOpcode.Quit | typeof BinaryOpcode.QuitQ;

/** Incr/decr with this expiration fail with KeyNotFound instead of creating the counter (section 4.5). */
export const BINARY_NO_AUTO_CREATE = 0xffffffff;

// ---------------------------------------------------------------------------
// Extras readers. Called on demand, so a parse allocates nothing for them.
// Each returns undefined when the extras do not have the length its opcode
// defines (memcached answers such a request with InvalidArguments).

/** Flags of a Set/Add/Replace(Q) request. */
export function binaryStoreFlags(req: BinaryRequest): number | undefined {
  return req.extras.length === 8 ? req.extras.readUInt32BE(0) : undefined;
}

/** Expiration of a Set/Add/Replace(Q) request. */
export function binaryStoreExpiration(req: BinaryRequest): number | undefined {
  return req.extras.length === 8 ? req.extras.readUInt32BE(4) : undefined;
}

/** Amount to add or subtract, of an Increment/Decrement(Q) request. */
export function binaryArithmeticDelta(req: BinaryRequest): bigint | undefined {
  return req.extras.length === 20 ? req.extras.readBigUInt64BE(0) : undefined;
}

/** Value a missing counter starts at, of an Increment/Decrement(Q) request. */
export function binaryArithmeticInitial(req: BinaryRequest): bigint | undefined {
  return req.extras.length === 20 ? req.extras.readBigUInt64BE(8) : undefined;
}

/** Expiration of an Increment/Decrement(Q) request; BINARY_NO_AUTO_CREATE forbids creating the counter. */
export function binaryArithmeticExpiration(req: BinaryRequest): number | undefined {
  return req.extras.length === 20 ? req.extras.readUInt32BE(16) : undefined;
}

/** Expiration of a Touch, GAT(Q) or GATK(Q) request. */
export function binaryTouchExpiration(req: BinaryRequest): number | undefined {
  return req.extras.length === 4 ? req.extras.readUInt32BE(0) : undefined;
}

/** Delay of a Flush(Q) request: 0 (now) when the optional extra is absent (section 4.7). */
export function binaryFlushExpiration(req: BinaryRequest): number | undefined {
  if (req.extras.length === 0) return 0;
  return req.extras.length === 4 ? req.extras.readUInt32BE(0) : undefined;
}

/** Level of a Verbosity request. */
export function binaryVerbosityLevel(req: BinaryRequest): number | undefined {
  return req.extras.length === 4 ? req.extras.readUInt32BE(0) : undefined;
}

/** Flags of a successful Get/GetK/GAT/GATK (or quiet) response; memcached also sends them on Touch. */
export function binaryResponseFlags(res: BinaryResponse): number | undefined {
  return res.extras.length === 4 ? res.extras.readUInt32BE(0) : undefined;
}

/** The counter after a successful Increment/Decrement: a 64-bit unsigned value (section 4.5). */
export function binaryCounterValue(res: BinaryResponse): bigint | undefined {
  return res.status === BinaryStatus.NoError && res.value.length === 8
    ? res.value.readBigUInt64BE(0)
    : undefined;
}

// ---------------------------------------------------------------------------

type Presence = 'none' | 'some' | 'any';

interface Shape {
  readonly extras: readonly number[];
  readonly key: Presence;
  readonly value: Presence;
}

const NOTHING: Shape = { extras: [0], key: 'none', value: 'none' };

/**
 * Request shapes by loud opcode, as memcached 1.6 enforces them (it replies
 * InvalidArguments and closes the connection otherwise): where the reference
 * says a field MUST be present or absent (section 4) memcached checks it,
 * except that it accepts an empty value for Set/Append and a value on Stat,
 * Touch and GAT. Verbosity's shape is the protocol's; memcached 1.6 answers
 * it with UnknownCommand. Opcodes no server defines a shape for are absent.
 */
const SHAPES: ReadonlyMap<number, Shape> = new Map<number, Shape>([
  [BinaryOpcode.Get, { extras: [0], key: 'some', value: 'none' }],
  [BinaryOpcode.GetK, { extras: [0], key: 'some', value: 'none' }],
  [BinaryOpcode.Set, { extras: [8], key: 'some', value: 'any' }],
  [BinaryOpcode.Add, { extras: [8], key: 'some', value: 'any' }],
  [BinaryOpcode.Replace, { extras: [8], key: 'some', value: 'any' }],
  [BinaryOpcode.Delete, { extras: [0], key: 'some', value: 'none' }],
  [BinaryOpcode.Increment, { extras: [20], key: 'some', value: 'none' }],
  [BinaryOpcode.Decrement, { extras: [20], key: 'some', value: 'none' }],
  [BinaryOpcode.Quit, NOTHING],
  [BinaryOpcode.Flush, { extras: [0, 4], key: 'none', value: 'none' }],
  [BinaryOpcode.Noop, NOTHING],
  [BinaryOpcode.Version, NOTHING],
  [BinaryOpcode.Append, { extras: [0], key: 'some', value: 'any' }],
  [BinaryOpcode.Prepend, { extras: [0], key: 'some', value: 'any' }],
  [BinaryOpcode.Stat, { extras: [0], key: 'any', value: 'any' }],
  [BinaryOpcode.Verbosity, { extras: [4], key: 'none', value: 'none' }],
  [BinaryOpcode.Touch, { extras: [4], key: 'some', value: 'any' }],
  [BinaryOpcode.GAT, { extras: [4], key: 'some', value: 'any' }],
  [BinaryOpcode.GATK, { extras: [4], key: 'some', value: 'any' }],
  [BinaryOpcode.SASLListMechs, NOTHING],
  [BinaryOpcode.SASLAuth, { extras: [0], key: 'some', value: 'any' }],
  [BinaryOpcode.SASLStep, { extras: [0], key: 'some', value: 'any' }],
]);

/**
 * Why a well-framed request has the wrong shape for its opcode (the reply
 * would be InvalidArguments), or undefined when it is fine or its opcode has
 * no shape we know (the reply would be UnknownCommand).
 */
export function binaryRequestProblem(req: BinaryRequest): string | undefined {
  const shape = SHAPES.get(loudOf(req.opcode));
  if (shape === undefined) return undefined;
  if (!shape.extras.includes(req.extras.length)) {
    return `${req.extras.length} bytes of extras where ${shape.extras.join(' or ')} are expected`;
  }
  const keyProblem = presenceProblem('key', shape.key, req.key.length);
  return keyProblem ?? presenceProblem('value', shape.value, req.value.length);
}

function presenceProblem(field: string, expected: Presence, length: number): string | undefined {
  if (expected === 'none' && length > 0) return `a ${field} where none is allowed`;
  if (expected === 'some' && length === 0) return `no ${field} where one is required`;
  return undefined;
}
