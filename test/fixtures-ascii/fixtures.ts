/**
 * ASCII protocol fixtures: byte streams and the frames they must parse into.
 * Shared by the chunking, round-trip and fuzz tests.
 */
import type {
  AsciiRequest,
  AsciiResponse,
  MetaCode,
  MetaCommand,
  MetadumpEntry,
  RetrievalCommand,
  StorageCommand,
  TextStatus,
} from '../../src/protocol/ascii-frames.js';

export interface Fixture<F> {
  readonly name: string;
  readonly input: Buffer;
  readonly frames: F[];
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

// ---- frame builders ----

export function retrieval(command: RetrievalCommand, keys: string[], exptime?: number): AsciiRequest {
  return { kind: 'retrieval', command, exptime, keys: keys.map(b) };
}

export function storage(
  command: StorageCommand,
  key: string,
  flags: number,
  exptime: number,
  value: Buffer | string,
  noreply = false,
  cas?: bigint,
): AsciiRequest {
  return {
    kind: 'storage',
    command,
    key: b(key),
    flags,
    exptime,
    cas,
    noreply,
    value: typeof value === 'string' ? b(value) : value,
  };
}

export function meta(
  command: MetaCommand,
  key: Buffer | string,
  flags: string[],
  options: { base64?: boolean; value?: Buffer | string } = {},
): AsciiRequest {
  const value = options.value;
  let opaque: string | undefined;
  for (const f of flags) if (f.startsWith('O') && opaque === undefined) opaque = f.slice(1);
  return {
    kind: 'meta',
    command,
    key: typeof key === 'string' ? b(key) : key,
    base64: options.base64 ?? false,
    flags,
    value: typeof value === 'string' ? b(value) : value,
    quiet: flags.some((f) => f.startsWith('q')),
    opaque,
  };
}

export function other(name: string, ...args: string[]): AsciiRequest {
  return { kind: 'other', name, args };
}

export function value(key: string, flags: number, data: Buffer | string, cas?: bigint): AsciiResponse {
  return { kind: 'value', key: b(key), flags, cas, value: typeof data === 'string' ? b(data) : data };
}

export const END: AsciiResponse = { kind: 'end' };

export function status(s: TextStatus): AsciiResponse {
  return { kind: 'status', status: s };
}

export function reply(code: MetaCode, flags: string[] = [], data?: Buffer | string): AsciiResponse {
  return { kind: 'meta', code, flags, value: typeof data === 'string' ? b(data) : data };
}

export function dump(key: Buffer | string, fields: Partial<MetadumpEntry> = {}): AsciiResponse {
  return {
    kind: 'metadump',
    entry: {
      key: typeof key === 'string' ? b(key) : key,
      base64: false,
      exp: -1,
      la: 1795466801,
      cas: 7n,
      fetched: false,
      slabClass: 1,
      size: 71,
      ...fields,
    },
  };
}

// ---- requests ----

const hundredKeys = Array.from({ length: 100 }, (_, i) => `key:${i}`);
const binaryKey = Buffer.from([0x66, 0x6f, 0x6f, 0x20, 0x62, 0x61, 0x72, 0x0a]); // "foo bar\n"
export const MIB = Buffer.alloc(1024 * 1024);
for (let i = 0; i < MIB.length; i++) MIB[i] = (i * 31 + 7) & 0xff;

export const requestFixtures: Fixture<AsciiRequest>[] = [
  { name: 'get one key', input: b('get foo\r\n'), frames: [retrieval('get', ['foo'])] },
  { name: 'gets three keys', input: b('gets a b c\r\n'), frames: [retrieval('gets', ['a', 'b', 'c'])] },
  {
    name: 'gat and gats',
    input: b('gat 100 a b\r\ngats -1 k\r\n'),
    frames: [retrieval('gat', ['a', 'b'], 100), retrieval('gats', ['k'], -1)],
  },
  {
    name: 'multi-get of 100 keys',
    input: b(`get ${hundredKeys.join(' ')}\r\n`),
    frames: [retrieval('get', hundredKeys)],
  },
  {
    name: 'storage commands',
    input: b(
      'set k 0 0 3\r\nabc\r\n' +
        'add k 5 100 0\r\n\r\n' +
        'replace k 4294967295 -1 4 noreply\r\na\r\nb\r\n' +
        'append k 0 0 1\r\nx\r\n' +
        'prepend k 0 0 1 noreply\r\ny\r\n' +
        'cas k 1 2 2 18446744073709551615\r\nhi\r\n' +
        'cas k 1 2 2 77 noreply\r\nyo\r\n',
    ),
    frames: [
      storage('set', 'k', 0, 0, 'abc'),
      storage('add', 'k', 5, 100, ''),
      storage('replace', 'k', 4294967295, -1, 'a\r\nb', true),
      storage('append', 'k', 0, 0, 'x'),
      storage('prepend', 'k', 0, 0, 'y', true),
      storage('cas', 'k', 1, 2, 'hi', false, 18446744073709551615n),
      storage('cas', 'k', 1, 2, 'yo', true, 77n),
    ],
  },
  {
    name: 'delete forms',
    input: b('delete k\r\ndelete k 0\r\ndelete k noreply\r\ndelete k 0 noreply\r\n'),
    frames: [
      { kind: 'delete', key: b('k'), noreply: false },
      { kind: 'delete', key: b('k'), noreply: false },
      { kind: 'delete', key: b('k'), noreply: true },
      { kind: 'delete', key: b('k'), noreply: true },
    ],
  },
  {
    name: 'incr, decr, touch',
    input: b('incr n 5\r\ndecr n 18446744073709551615 noreply\r\ntouch n 10\r\ntouch n -1 noreply\r\n'),
    frames: [
      { kind: 'arithmetic', command: 'incr', key: b('n'), delta: 5n, noreply: false },
      { kind: 'arithmetic', command: 'decr', key: b('n'), delta: 18446744073709551615n, noreply: true },
      { kind: 'touch', key: b('n'), exptime: 10, noreply: false },
      { kind: 'touch', key: b('n'), exptime: -1, noreply: true },
    ],
  },
  {
    name: 'flush_all, version, verbosity, stats, quit',
    input: b(
      'flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all 0 noreply\r\nversion\r\n' +
        'verbosity 1\r\nverbosity 0 noreply\r\nstats\r\nstats slabs\r\nstats cachedump 1 0\r\nquit\r\n',
    ),
    frames: [
      { kind: 'flush_all', delay: undefined, noreply: false },
      { kind: 'flush_all', delay: 10, noreply: false },
      { kind: 'flush_all', delay: undefined, noreply: true },
      { kind: 'flush_all', delay: 0, noreply: true },
      { kind: 'version' },
      { kind: 'verbosity', level: 1, noreply: false },
      { kind: 'verbosity', level: 0, noreply: true },
      { kind: 'stats', args: [] },
      { kind: 'stats', args: ['slabs'] },
      { kind: 'stats', args: ['cachedump', '1', '0'] },
      { kind: 'quit' },
    ],
  },
  {
    name: 'other single-line commands and invalid arguments',
    input: b(
      'lru_crawler metadump all\r\nwatch fetchers mutations\r\nslabs reassign 1 2\r\nbogus\r\n\r\n' +
        'get\r\nincr k abc\r\ndelete k 5\r\ntouch k x\r\nverbosity x\r\ngat x k\r\nversion 2\r\n',
    ),
    frames: [
      other('lru_crawler', 'metadump', 'all'),
      other('watch', 'fetchers', 'mutations'),
      other('slabs', 'reassign', '1', '2'),
      other('bogus'),
      other(''),
      other('get'),
      other('incr', 'k', 'abc'),
      other('delete', 'k', '5'),
      other('touch', 'k', 'x'),
      other('verbosity', 'x'),
      other('gat', 'x', 'k'),
      other('version', '2'),
    ],
  },
  {
    name: 'bare \\n line ends and runs of spaces',
    input: b('get  a   b\n  set k 1 2 1\nz\r\nversion\n'),
    frames: [retrieval('get', ['a', 'b']), storage('set', 'k', 1, 2, 'z'), { kind: 'version' }],
  },
  {
    name: 'key bytes above 127 and control bytes memcached accepts',
    input: Buffer.concat([b('get k\xe9 a\x01b\r\n')]),
    frames: [retrieval('get', ['k\xe9', 'a\x01b'])],
  },
  {
    name: 'meta get, set, delete, arithmetic, no-op, debug',
    input: b(
      'mg foo v f t\r\nms foo 2 T100 F5\r\nhi\r\nmd foo q\r\nma n D5 MI v\r\nmn\r\nme foo\r\n' +
        'ms bar 0 MA N30\r\n\r\n',
    ),
    frames: [
      meta('mg', 'foo', ['v', 'f', 't']),
      meta('ms', 'foo', ['T100', 'F5'], { value: 'hi' }),
      meta('md', 'foo', ['q']),
      meta('ma', 'n', ['D5', 'MI', 'v']),
      meta('mn', '', []),
      meta('me', 'foo', []),
      meta('ms', 'bar', ['MA', 'N30'], { value: '' }),
    ],
  },
  {
    name: 'meta base64 keys, opaque and quiet',
    input: b(
      'mg Zm9vIGJhcgo= b v k O123 q\r\nms Zm9vIGJhcgo= 2 b T100 q Oab\r\nhi\r\nme Zm9vIGJhcgo= b\r\nmg Zm9v b\r\n',
    ),
    frames: [
      meta('mg', binaryKey, ['b', 'v', 'k', 'O123', 'q'], { base64: true }),
      meta('ms', binaryKey, ['b', 'T100', 'q', 'Oab'], { base64: true, value: 'hi' }),
      meta('me', binaryKey, ['b'], { base64: true }),
      meta('mg', 'foo', ['b'], { base64: true }),
    ],
  },
  {
    name: 'meta requests memcached rejects but that stay framed',
    input: b(
      `mg foo zzz\r\nms foo 2 MX\r\nab\r\nmg\r\nmx foo\r\nmg ${'k'.repeat(251)} v\r\nmg Zm9v=== b\r\n`,
    ),
    frames: [
      meta('mg', 'foo', ['zzz']),
      meta('ms', 'foo', ['MX'], { value: 'ab' }),
      other('mg'),
      other('mx', 'foo'),
      other('mg', 'k'.repeat(251), 'v'),
      other('mg', 'Zm9v===', 'b'),
    ],
  },
  {
    name: 'a pipelined mix',
    input: b(
      'set a 0 0 1\r\n1\r\nget a b\r\nmg a v q O1\r\nmg b v q O2\r\nmn\r\nincr a 1\r\nms c 3 q\r\nxyz\r\ndelete a noreply\r\n',
    ),
    frames: [
      storage('set', 'a', 0, 0, '1'),
      retrieval('get', ['a', 'b']),
      meta('mg', 'a', ['v', 'q', 'O1']),
      meta('mg', 'b', ['v', 'q', 'O2']),
      meta('mn', '', []),
      { kind: 'arithmetic', command: 'incr', key: b('a'), delta: 1n, noreply: false },
      meta('ms', 'c', ['q'], { value: 'xyz' }),
      { kind: 'delete', key: b('a'), noreply: true },
    ],
  },
];

/** Too big for every split point; tested whole, byte by byte and at sampled splits. */
export const bigRequest: Fixture<AsciiRequest> = {
  name: '1 MiB set value',
  input: Buffer.concat([b(`set big 3 0 ${MIB.length}\r\n`), MIB, b('\r\nget big\r\n')]),
  frames: [storage('set', 'big', 3, 0, MIB), retrieval('get', ['big'])],
};

// ---- responses ----

export const responseFixtures: Fixture<AsciiResponse>[] = [
  {
    name: 'VALUE blocks and END',
    input: b(
      'VALUE a 0 3\r\nabc\r\nVALUE b 4294967295 0 18446744073709551615\r\n\r\nVALUE c 1 4 5\r\na\r\nb\r\nEND\r\n',
    ),
    frames: [
      value('a', 0, 'abc'),
      value('b', 4294967295, '', 18446744073709551615n),
      value('c', 1, 'a\r\nb', 5n),
      END,
    ],
  },
  {
    name: 'status words',
    input: b('STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\nRESET\r\n'),
    frames: (
      ['STORED', 'NOT_STORED', 'EXISTS', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'OK', 'RESET'] as const
    ).map(status),
  },
  {
    name: 'incr/decr numbers, space-padded too',
    input: b('0\r\n7  \r\n18446744073709551615\r\n'),
    frames: [
      { kind: 'number', value: 0n },
      { kind: 'number', value: 7n },
      { kind: 'number', value: 18446744073709551615n },
    ],
  },
  {
    name: 'stats output',
    input: b(
      'STAT pid 4242\r\nSTAT version 1.6.18\r\nSTAT libevent 2.1.12-stable\r\nSTAT 1:chunk_size 96\r\nSTAT empty\r\nEND\r\n',
    ),
    frames: [
      { kind: 'stat', name: 'pid', value: '4242' },
      { kind: 'stat', name: 'version', value: '1.6.18' },
      { kind: 'stat', name: 'libevent', value: '2.1.12-stable' },
      { kind: 'stat', name: '1:chunk_size', value: '96' },
      { kind: 'stat', name: 'empty', value: '' },
      END,
    ],
  },
  {
    name: 'VERSION and error replies',
    input: b(
      'VERSION 1.6.18\r\nERROR\r\nERROR cannot pipeline other commands before metadump\r\n' +
        'CLIENT_ERROR bad command line format\r\nSERVER_ERROR out of memory storing object\r\nCLIENT_ERROR\r\n',
    ),
    frames: [
      { kind: 'version', version: '1.6.18' },
      { kind: 'error', error: 'ERROR', message: '' },
      { kind: 'error', error: 'ERROR', message: 'cannot pipeline other commands before metadump' },
      { kind: 'error', error: 'CLIENT_ERROR', message: 'bad command line format' },
      { kind: 'error', error: 'SERVER_ERROR', message: 'out of memory storing object' },
      { kind: 'error', error: 'CLIENT_ERROR', message: '' },
    ],
  },
  {
    name: 'lru_crawler metadump with the OK line first',
    input: b(
      'OK\r\n' +
        'key=a%2520b exp=-1 la=1795466801 cas=7 fetch=no cls=1 size=71\n' +
        'key=foo%20bar%0A exp=1795466901 la=1795466801 cas=8 fetch=yes cls=2 size=69\n' +
        'key=Zm9vIGJhcgo%3D b exp=-1 la=1795466801 cas=7 fetch=no cls=1 size=71 future=field\n' +
        'END\r\n',
    ),
    frames: [
      status('OK'),
      dump('a%20b'),
      dump(binaryKey, { exp: 1795466901, cas: 8n, fetched: true, slabClass: 2, size: 69 }),
      dump(binaryKey, { base64: true }),
      END,
    ],
  },
  {
    name: 'meta replies',
    input: b(
      'VA 2 t30 f0 Oabc\r\nhi\r\nHD\r\nHD c5 k\r\nEN\r\nNF Oq\r\nNS\r\nEX\r\nMN\r\nVA 0 W\r\n\r\nME foo exp=-1 la=0 cas=2 fetch=no cls=1 size=63\r\n',
    ),
    frames: [
      reply('VA', ['t30', 'f0', 'Oabc'], 'hi'),
      reply('HD'),
      reply('HD', ['c5', 'k']),
      reply('EN'),
      reply('NF', ['Oq']),
      reply('NS'),
      reply('EX'),
      reply('MN'),
      reply('VA', ['W'], ''),
      reply('ME', ['foo', 'exp=-1', 'la=0', 'cas=2', 'fetch=no', 'cls=1', 'size=63']),
    ],
  },
  {
    name: 'other lines',
    input: b(
      'ITEM a%20b [3 b; 0 s]\r\nBUSY currently processing crawler request\r\nSTATS\r\nENDX\r\nHDX\r\n12a\r\n\r\nkey=broken\n',
    ),
    frames: [
      { kind: 'line', line: 'ITEM a%20b [3 b; 0 s]' },
      { kind: 'line', line: 'BUSY currently processing crawler request' },
      { kind: 'line', line: 'STATS' },
      { kind: 'line', line: 'ENDX' },
      { kind: 'line', line: 'HDX' },
      { kind: 'line', line: '12a' },
      { kind: 'line', line: '' },
      { kind: 'line', line: 'key=broken' },
    ],
  },
];

export const bigResponse: Fixture<AsciiResponse> = {
  name: '1 MiB VALUE',
  input: Buffer.concat([b(`VALUE big 3 ${MIB.length}\r\n`), MIB, b('\r\nEND\r\n')]),
  frames: [value('big', 3, MIB), END],
};
