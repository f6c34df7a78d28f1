// Drives the npm memjs client (binary protocol) for the real-client tests: a
// JSON job on stdin, one JSON result on stdout. See test/support/real-clients.ts.
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import memjs from 'memjs';

const valueOf = (spec) => Buffer.from(Array.isArray(spec) ? spec[0].repeat(spec[1]) : spec);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString());
const options = { retries: 0, timeout: 5, logger: { log: () => {} } };
// Connection 0 and 1: two clients, so writes to one key come from different connections.
const clients = [
  memjs.Client.create(job.servers.join(','), options),
  memjs.Client.create(job.servers.join(','), options),
];
const out = {};
for (const [name, conn, ...args] of job.ops) {
  const c = clients[conn];
  try {
    let ok = true;
    switch (name) {
      case 'set':
        ok = await c.set(args[0], valueOf(args[1]), { expires: args[2] });
        break;
      case 'add':
        ok = await c.add(args[0], valueOf(args[1]), { expires: args[2] });
        break;
      case 'replace':
        ok = await c.replace(args[0], valueOf(args[1]), { expires: args[2] });
        break;
      case 'delete':
        ok = await c.delete(args[0]);
        break;
      case 'incr':
      case 'decr': {
        const call = name === 'incr' ? c.increment.bind(c) : c.decrement.bind(c);
        const opts = args.length > 2 ? { expires: args[2], initial: args[3] } : {};
        ok = (await call(args[0], args[1], opts)).success;
        break;
      }
      case 'append':
        ok = await c.append(args[0], valueOf(args[1]));
        break;
      case 'prepend':
        ok = await c.prepend(args[0], valueOf(args[1]));
        break;
      case 'touch':
        ok = await c.touch(args[0], args[1]);
        break;
      case 'cas':
        ok = false; // memjs has no cas
        break;
      case 'get_multi':
        for (const key of args[0]) await c.get(key); // memjs 1.3 has no multi-get
        break;
      case 'sleep':
        await new Promise((resolve) => setTimeout(resolve, args[0] * 1000));
        break;
      case 'read':
        for (const key of args[0]) {
          const { value } = await c.get(key);
          out[key] = value === null ? null : value.toString('base64');
        }
        break;
    }
    if (!ok) process.stderr.write(`${name} ${JSON.stringify(args[0])}: refused\n`);
  } catch (err) {
    // Refused on the source (part of the workload): told on stderr for the test's messages.
    process.stderr.write(`${name} ${JSON.stringify(args[0])}: ${err.message}\n`);
  }
}
for (const c of clients) c.close();
process.stdout.write(JSON.stringify(out));
