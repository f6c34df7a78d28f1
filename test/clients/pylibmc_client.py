"""Drives pylibmc (libmemcached) for the real-client tests: a JSON job on stdin,
one JSON result on stdout. See test/support/real-clients.ts for the job format."""
import base64
import json
import sys
import time

import pylibmc


def value_of(spec):
    if isinstance(spec, dict):  # {"int": n}: the client stores an integer under its own flags
        return int(spec["int"])
    if isinstance(spec, list):  # [text, repeat]
        return (spec[0] * spec[1]).encode()
    return spec.encode()


def client(job, noreply):
    behaviors = {"ketama_weighted": True, "_noreply": noreply, "cas": True}
    return pylibmc.Client(job["servers"], binary=job["binary"], behaviors=behaviors)


def main():
    job = json.load(sys.stdin)
    # Connection 0 is the client as configured; 1 is a second one that always waits for replies.
    clients = [client(job, job.get("noreply", False)), client(job, False)]
    out = {}
    for op in job["ops"]:
        name, conn, args = op[0], op[1], op[2:]
        c = clients[conn]
        try:
            if name == "set":
                c.set(args[0], value_of(args[1]), time=args[2])
            elif name == "add":
                c.add(args[0], value_of(args[1]), time=args[2])
            elif name == "replace":
                c.replace(args[0], value_of(args[1]), time=args[2])
            elif name == "delete":
                c.delete(args[0])
            elif name == "incr":
                c.incr(args[0], args[1])
            elif name == "decr":
                c.decr(args[0], args[1])
            elif name == "append":
                c.append(args[0], value_of(args[1]))
            elif name == "prepend":
                c.prepend(args[0], value_of(args[1]))
            elif name == "touch":
                c.touch(args[0], args[1])
            elif name == "cas":
                _, token = c.gets(args[0])
                if len(args) > 3:  # another connection writes first: this cas loses
                    clients[1].set(args[0], value_of(args[3]), time=args[2])
                if token is not None:
                    c.cas(args[0], value_of(args[1]), token, time=args[2])
            elif name == "get_multi":
                c.get_multi(args[0])
            elif name == "sleep":
                time.sleep(args[0])
            elif name == "read":
                for key in args[0]:
                    v = c.get(key)
                    out[key] = None if v is None else base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()
        except pylibmc.Error as e:
            # Refused on the source (a failed add, incr of a missing key...): part of the workload,
            # told on stderr for the test's messages.
            print(f"{name} {args[0]!r}: {type(e).__name__}: {e}", file=sys.stderr)
    json.dump(out, sys.stdout)


main()
