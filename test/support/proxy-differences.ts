/**
 * Where memshift proxy deliberately answers otherwise than memcached, and why.
 * The differential tests read this table: a case whose command is listed
 * here is checked against `proxy` instead of memcached's reply, and the random
 * generator never produces these commands well formed (malformed, they get
 * memcached's own answer and are compared like everything else).
 */
export interface Difference {
  /** The command word. */
  readonly command: string;
  /** What the proxy answers a well-formed request with (`noreply` silences it where memcached's does). */
  readonly proxy: RegExp;
  readonly why: string;
}

export const PROXY_DIFFERENCES: readonly Difference[] = [
  ...['slabs', 'cache_memlimit', 'lru', 'lru_crawler', 'watch', 'extstore'].map((command) => ({
    command,
    proxy: new RegExp(`^CLIENT_ERROR ${command} is not available through memshift proxy\\r\\n$`),
    why: 'changes one server’s settings; through a proxy it would reach an arbitrary production server',
  })),
  {
    command: 'stats',
    proxy: /^STAT pid \d+\r\n(STAT [^\r\n]*\r\n)*STAT proxy_mode \w+\r\n(STAT [^\r\n]*\r\n)*END\r\n$/,
    why: 'a server’s figures describe one server of the pool: the proxy answers `stats` with its own, any group (`stats items`, ...) refused',
  },
  {
    command: 'verbosity',
    proxy: /^OK\r\n$/,
    why: 'answered by the proxy (the same reply), never passed to a server; binary Verbosity likewise',
  },
];

/**
 * Not a command but a moment: a get with a key over 250 bytes makes memcached
 * discard every reply of that connection it has not sent yet (proto_text.c,
 * process_get_command, conn_release_items), which depends on how its reads
 * were batched. The proxy answers the earlier requests. Cases keep such a get
 * first on their connection, where both agree.
 */
export const LONG_KEY_GET_DISCARDS_UNSENT_REPLIES = true;

export const DIFFERENT_COMMANDS: ReadonlySet<string> = new Set(PROXY_DIFFERENCES.map((d) => d.command));
