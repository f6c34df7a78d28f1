"""Drives pymemcache's HashClient (text protocol; its writes default to noreply)
for the real-client tests: a JSON job on stdin, one JSON result on stdout.
See test/support/real-clients.ts for the job format."""
import base64
import json
import sys
import time

from pymemcache.client.hash import HashClient


def value_of(spec):
    if isinstance(spec, list):  # [text, repeat]
        return (spec[0] * spec[1]).encode()
    return spec.encode()


def client(job):
    servers = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in job["servers"]]
    return HashClient(servers, allow_unicode_keys=True, connect_timeout=5, timeout=5)


def main():
    job = json.load(sys.stdin)
    # Connection 0 and 1: two clients, so writes to one key come from different connections.
    clients = [client(job), client(job)]
    out = {}
    for op in job["ops"]:
        name, conn, args = op[0], op[1], op[2:]
        c = clients[conn]
        try:
            ok = True
            if name == "set":
                ok = c.set(args[0], value_of(args[1]), expire=args[2])
            elif name == "add":
                ok = c.add(args[0], value_of(args[1]), expire=args[2], noreply=False)
            elif name == "replace":
                ok = c.replace(args[0], value_of(args[1]), expire=args[2], noreply=False)
            elif name == "delete":
                ok = c.delete(args[0])
            elif name == "incr":
                ok = c.incr(args[0], args[1]) is not None
            elif name == "decr":
                ok = c.decr(args[0], args[1]) is not None
            elif name == "append":
                ok = c.append(args[0], value_of(args[1]))
            elif name == "prepend":
                ok = c.prepend(args[0], value_of(args[1]))
            elif name == "touch":
                ok = c.touch(args[0], args[1], noreply=False)
            elif name == "cas":
                _, token = c.gets(args[0])
                if len(args) > 3:  # another connection writes first: this cas loses
                    clients[1].set(args[0], value_of(args[3]), expire=args[2], noreply=False)
                if token is not None:
                    ok = c.cas(args[0], value_of(args[1]), token, expire=args[2], noreply=False)
            elif name == "get_multi":
                c.get_many(args[0])
            elif name == "sleep":
                time.sleep(args[0])
            elif name == "read":
                for key in args[0]:
                    v = c.get(key)
                    out[key] = None if v is None else base64.b64encode(v).decode()
            if not ok:
                print(f"{name} {args[0]!r}: refused", file=sys.stderr)
        except Exception as e:  # pymemcache raises per cause; any refusal is part of the workload
            print(f"{name} {args[0]!r}: {type(e).__name__}: {e}", file=sys.stderr)
    json.dump(out, sys.stdout)


main()
