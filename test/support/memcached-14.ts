/**
 * An in-process stand-in for memcached before meta commands (text protocol
 * only), for what a real server of today cannot show: a server which answers
 * `mn`, `mg` and the rest with ERROR, and reads the data block after an
 * `ms` line as one more (unknown) command line, as memcached 1.4 and 1.5
 * before 1.5.19 do (memcached.c, process_command: an unknown first word is
 * ERROR, and nothing after it is skipped). It keeps items in a Map and
 * answers get/gets/set/add/replace/append/prepend/cas/delete/incr/decr/touch,
 * flush_all, version and `stats settings` as 1.4.25 does; `version` reports
 * the release asked for (1.4.25 by default).
 */
import { createServer, type Server, type Socket } from 'node:net';

interface Item {
  value: Buffer;
  flags: string;
  cas: number;
}

export interface FakeServer {
  readonly port: number;
  readonly address: string;
  /** Every command line received, in order. */
  readonly lines: string[];
  readonly items: Map<string, Item>;
  close(): Promise<void>;
}

export async function startMemcached14(options: { version?: string } = {}): Promise<FakeServer> {
  const version = options.version ?? '1.4.25';
  const items = new Map<string, Item>();
  const lines: string[] = [];
  let cas = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const lf = buf.indexOf(0x0a);
        if (lf < 0) return;
        const line = buf.toString('latin1', 0, lf).replace(/\r$/, '');
        const w = line.split(' ').filter((x) => x.length > 0);
        const cmd = w[0] ?? '';
        let used = lf + 1;
        let reply = '';
        const noreply = w[w.length - 1] === 'noreply';
        if (['set', 'add', 'replace', 'append', 'prepend', 'cas'].includes(cmd)) {
          const len = Number(w[4]);
          if (buf.length < used + len + 2) return;
          const value = buf.subarray(used, used + len);
          used += len + 2;
          const key = w[1]!;
          const old = items.get(key);
          let status = 'STORED';
          if (cmd === 'add' && old) status = 'NOT_STORED';
          else if ((cmd === 'replace' || cmd === 'append' || cmd === 'prepend') && !old)
            status = 'NOT_STORED';
          else if (cmd === 'cas')
            status = !old ? 'NOT_FOUND' : String(old.cas) !== w[5] ? 'EXISTS' : 'STORED';
          if (status === 'STORED') {
            const v =
              cmd === 'append'
                ? Buffer.concat([old!.value, value])
                : cmd === 'prepend'
                  ? Buffer.concat([value, old!.value])
                  : Buffer.from(value);
            items.set(key, {
              value: v,
              flags: cmd === 'append' || cmd === 'prepend' ? old!.flags : w[2]!,
              cas: ++cas,
            });
          }
          reply = status + '\r\n';
        } else if (cmd === 'get' || cmd === 'gets') {
          for (const key of w.slice(1)) {
            const it = items.get(key);
            if (it)
              reply += `VALUE ${key} ${it.flags} ${it.value.length}${cmd === 'gets' ? ' ' + it.cas : ''}\r\n${it.value.toString('latin1')}\r\n`;
          }
          reply += 'END\r\n';
        } else if (cmd === 'delete') {
          reply = items.delete(w[1]!) ? 'DELETED\r\n' : 'NOT_FOUND\r\n';
        } else if (cmd === 'incr' || cmd === 'decr') {
          const it = items.get(w[1]!);
          if (!it) reply = 'NOT_FOUND\r\n';
          else {
            const n = BigInt(it.value.toString('latin1')) + (cmd === 'incr' ? BigInt(w[2]!) : -BigInt(w[2]!));
            const v = n < 0n ? 0n : n;
            it.value = Buffer.from(String(v));
            it.cas = ++cas;
            reply = `${v}\r\n`;
          }
        } else if (cmd === 'touch') {
          reply = items.has(w[1]!) ? 'TOUCHED\r\n' : 'NOT_FOUND\r\n';
        } else if (cmd === 'flush_all') {
          items.clear();
          reply = 'OK\r\n';
        } else if (cmd === 'version') {
          reply = `VERSION ${version}\r\n`;
        } else if (cmd === 'stats' && w[1] === 'settings') {
          reply = 'STAT item_size_max 1048576\r\nEND\r\n';
        } else {
          // Meta commands, mn included, do not exist before 1.5.19 (mn) and 1.6 (the rest).
          reply = 'ERROR\r\n';
        }
        lines.push(line);
        buf = buf.subarray(used);
        if (!noreply || reply === 'ERROR\r\n') socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    address: `127.0.0.1:${port}`,
    lines,
    items,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
