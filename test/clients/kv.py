"""Writes or reads items through a real Python memcached client, for memshift's tests.

Usage: /usr/bin/python3 kv.py < JOB.json
JOB: {"client": "pylibmc", "binary": bool, "behaviors": {...}, "servers": [{"host", "port", "weight"}],
      "op": "set" | "get", "items": [{"key": base64, "kind": "bytes" | "text" | "int" | "dict",
      "value": base64 | text | number, "repeat": n (optional: the value repeated n times)}]}
Prints {"stored": n, "failed": [keys]} for set, {"ok": n, "wrong": [keys], "missing": [keys]} for get
(keys in base64).
"""
import base64
import json
import sys

job = json.load(sys.stdin)
if job['client'] != 'pylibmc':
    raise SystemExit('unknown client %r' % job['client'])
import pylibmc

spec = ['%s:%d:%d' % (s['host'], s['port'], s.get('weight', 1)) for s in job['servers']]
client = pylibmc.Client(spec, binary=bool(job.get('binary')), behaviors=job.get('behaviors', {}))


def value_of(item):
    kind = item['kind']
    if kind == 'bytes':
        raw = base64.b64decode(item['value'])
        return raw * item.get('repeat', 1)
    if kind == 'text':
        return item['value'] * item.get('repeat', 1)
    if kind == 'int':
        return int(item['value'])
    if kind == 'dict':
        return {'v': item['value'], 'n': [1, 2, 3]}
    raise SystemExit('unknown kind %r' % kind)


out = {}
if job['op'] == 'set':
    stored, failed = 0, []
    for item in job['items']:
        key = base64.b64decode(item['key'])
        try:
            if client.set(key, value_of(item)):
                stored += 1
            else:
                failed.append(item['key'])
        except pylibmc.Error:
            failed.append(item['key'])
    out = {'stored': stored, 'failed': failed}
else:
    ok, wrong, missing = 0, [], []
    for item in job['items']:
        key = base64.b64decode(item['key'])
        got = client.get(key)
        if got is None:
            missing.append(item['key'])
        elif got == value_of(item) and type(got) is type(value_of(item)):
            ok += 1
        else:
            wrong.append(item['key'])
    out = {'ok': ok, 'wrong': wrong, 'missing': missing}
print(json.dumps(out))
