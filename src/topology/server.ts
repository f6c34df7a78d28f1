/**
 * One memcached server of a pool, as the user wrote it. The text form is
 * `host:port[:weight]` (IPv6 in brackets: `[::1]:11211`), the same form
 * libmemcached, Dalli and twemproxy take.
 */
export interface Server {
  /** Host as written, without IPv6 brackets: clients hash this text, not a resolved address. */
  readonly host: string;
  readonly port: number;
  /** Relative share of keys; 1 unless given. Only some distributions honour it. */
  readonly weight: number;
  /** twemproxy's optional server name (`host:port:weight name`), which replaces host:port on its ring. */
  readonly name: string | undefined;
  /** `host:port`, bracketed for IPv6: what memshift connects to and shows. */
  readonly address: string;
  /** Memory the server may use for items, in bytes (memcached -m), when known. */
  readonly memoryLimit: number | undefined;
}

/** memcached's registered port: libmemcached, twemproxy and hashring leave it out of ring point names. */
export const KETAMA_DEFAULT_PORT = 11211;

export interface ServerInit {
  host: string;
  port?: number | undefined;
  weight?: number | undefined;
  name?: string | undefined;
  memoryLimit?: number | undefined;
}

export function makeServer(init: ServerInit): Server {
  const port = init.port ?? KETAMA_DEFAULT_PORT;
  const host = init.host;
  return {
    host,
    port,
    weight: init.weight ?? 1,
    name: init.name,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    memoryLimit: init.memoryLimit,
  };
}

/** Why a server text is not valid, or the parts of it. */
export type ServerTextResult =
  | { ok: true; host: string; port: number | undefined; weight: number | undefined; name: string | undefined }
  | { ok: false; field: 'host' | 'port' | 'weight'; reason: string };

/**
 * Splits `host[:port[:weight]][ name]` without judging the host beyond its
 * shape: names are hashed as written, so nothing is resolved here.
 */
export function splitServerText(text: string): ServerTextResult {
  const trimmed = text.trim();
  const space = trimmed.search(/\s/);
  const spec = space < 0 ? trimmed : trimmed.slice(0, space);
  const name = space < 0 ? undefined : trimmed.slice(space).trim() || undefined;
  let host: string;
  let rest: string;
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']');
    if (close < 0) return { ok: false, field: 'host', reason: `unclosed '[' in '${spec}'` };
    host = spec.slice(1, close);
    rest = spec.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) {
      return { ok: false, field: 'host', reason: `expected ':' after ']' in '${spec}'` };
    }
    rest = rest.slice(1);
  } else {
    if (spec.split(':').length > 3) {
      return {
        ok: false,
        field: 'host',
        reason: `'${spec}' has too many ':' (IPv6 addresses go in brackets)`,
      };
    }
    const colon = spec.indexOf(':');
    host = colon < 0 ? spec : spec.slice(0, colon);
    rest = colon < 0 ? '' : spec.slice(colon + 1);
  }
  if (host === '' || /[\s,/]/.test(host)) {
    return { ok: false, field: 'host', reason: `'${spec}' has no valid host (expected host:port[:weight])` };
  }
  const parts = rest === '' ? [] : rest.split(':');
  if (parts.length > 2) {
    return { ok: false, field: 'host', reason: `'${spec}' has too many ':' (IPv6 addresses go in brackets)` };
  }
  let port: number | undefined;
  let weight: number | undefined;
  if (parts[0] !== undefined) {
    port = Number(parts[0]);
    if (!/^\d+$/.test(parts[0]) || port < 1 || port > 65535) {
      return { ok: false, field: 'port', reason: `port '${parts[0]}' in '${spec}' is not 1-65535` };
    }
  }
  if (parts[1] !== undefined) {
    weight = Number(parts[1]);
    if (!/^\d+$/.test(parts[1]) || weight < 1 || weight > 65535) {
      return {
        ok: false,
        field: 'weight',
        reason: `weight '${parts[1]}' in '${spec}' is not an integer 1-65535`,
      };
    }
  }
  return { ok: true, host, port, weight, name };
}
