// Drives the npm `memcached` client (text protocol) for the real-client tests:
// a JSON job on stdin, one JSON result on stdout. See test/support/real-clients.ts.
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import Memcached from 'memcached';

const valueOf = (spec) => (Array.isArray(spec) ? spec[0].repeat(spec[1]) : spec);
const call = (fn) =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString());
const options = { retries: 0, timeout: 5000, maxValue: 2 * 1024 * 1024 };
// Connection 0 and 1: two clients, so writes to one key come from different connections.
const clients = [new Memcached(job.servers, options), new Memcached(job.servers, options)];
const out = {};
for (const [name, conn, ...args] of job.ops) {
  const c = clients[conn];
  try {
    let ok = true;
    switch (name) {
      case 'set':
        ok = await call((cb) => c.set(args[0], valueOf(args[1]), args[2], cb));
        break;
      case 'add':
        ok = await call((cb) => c.add(args[0], valueOf(args[1]), args[2], cb));
        break;
      case 'replace':
        ok = await call((cb) => c.replace(args[0], valueOf(args[1]), args[2], cb));
        break;
      case 'delete':
        ok = await call((cb) => c.del(args[0], cb));
        break;
      case 'incr':
        ok = (await call((cb) => c.incr(args[0], args[1], cb))) !== false;
        break;
      case 'decr':
        ok = (await call((cb) => c.decr(args[0], args[1], cb))) !== false;
        break;
      case 'append':
        ok = await call((cb) => c.append(args[0], valueOf(args[1]), cb));
        break;
      case 'prepend':
        ok = await call((cb) => c.prepend(args[0], valueOf(args[1]), cb));
        break;
      case 'touch':
        ok = await call((cb) => c.touch(args[0], args[1], cb));
        break;
      case 'cas': {
        const got = await call((cb) => c.gets(args[0], cb));
        // Another connection writes first: this cas loses.
        if (args.length > 3) await call((cb) => clients[1].set(args[0], valueOf(args[3]), args[2], cb));
        if (got?.cas !== undefined)
          ok = await call((cb) => c.cas(args[0], valueOf(args[1]), got.cas, args[2], cb));
        break;
      }
      case 'get_multi':
        await call((cb) => c.getMulti(args[0], cb));
        break;
      case 'sleep':
        await new Promise((resolve) => setTimeout(resolve, args[0] * 1000));
        break;
      case 'read':
        for (const key of args[0]) {
          const value = await call((cb) => c.get(key, cb));
          out[key] = value === undefined ? null : Buffer.from(String(value)).toString('base64');
        }
        break;
    }
    if (!ok) process.stderr.write(`${name} ${JSON.stringify(args[0])}: refused\n`);
  } catch (err) {
    // Refused on the source (part of the workload): told on stderr for the test's messages.
    process.stderr.write(`${name} ${JSON.stringify(args[0])}: ${err.message}\n`);
  }
}
for (const c of clients) c.end();
process.stdout.write(JSON.stringify(out));
