"""Drives python-memcached (the `memcache` module, text protocol) for the
real-client tests: a JSON job on stdin, one JSON result on stdout. See
test/support/real-clients.ts for the job format."""
import base64
import json
import sys
import time

import memcache


def value_of(spec):
    if isinstance(spec, dict):  # {"int": n}: the client stores an integer under its own flags
        return int(spec["int"])
    if isinstance(spec, list):  # [text, repeat]
        return (spec[0] * spec[1]).encode()
    return spec.encode()


def main():
    job = json.load(sys.stdin)
    # Values up to 2 MiB, as the servers take (-I 2m); connection 0 and 1: two clients.
    clients = [memcache.Client(job["servers"], server_max_value_length=2 * 1024 * 1024) for _ in range(2)]
    out = {}
    for op in job["ops"]:
        name, conn, args = op[0], op[1], op[2:]
        c = clients[conn]
        ok = True
        if name == "set":
            ok = c.set(args[0], value_of(args[1]), time=args[2])
        elif name == "add":
            ok = c.add(args[0], value_of(args[1]), time=args[2])
        elif name == "replace":
            ok = c.replace(args[0], value_of(args[1]), time=args[2])
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
            ok = c.touch(args[0], args[1])
        elif name == "cas":
            c.cache_cas = True
            if c.gets(args[0]) is not None:
                if len(args) > 3:  # another connection writes first: this cas loses
                    clients[1].set(args[0], value_of(args[3]), time=args[2])
                ok = c.cas(args[0], value_of(args[1]), time=args[2])
        elif name == "get_multi":
            c.get_multi(args[0])
        elif name == "sleep":
            time.sleep(args[0])
        elif name == "read":
            for key in args[0]:
                v = c.get(key)
                out[key] = None if v is None else base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()
        if not ok:
            # Refused on the source (part of the workload): told on stderr for the test's messages.
            print(f"{name} {args[0]!r}: refused", file=sys.stderr)
    json.dump(out, sys.stdout)


main()
