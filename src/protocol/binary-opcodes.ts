/**
 * The numbers of memcached's binary protocol: opcodes, response statuses and
 * their names (reference/memcached-protocol-binary.txt, sections 3.2 and 3.3).
 *
 * The reference draft stops at PrependQ (0x1a). The rest of the table holds
 * the opcodes later servers and clients agreed on (verbosity, touch and
 * get-and-touch, SASL, range operations, vbuckets, TAP) so that captured
 * traffic from any of them is named, not guessed. memcached 1.6 implements
 * neither Verbosity nor the range, vbucket and TAP opcodes: it answers them
 * with UnknownCommand (0x0081). Our parsers frame them like any other packet.
 */

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
