"""Stores every key of a memshift placement job through a Python client.

Usage: python3 store.py JOB.json   (see produce.py for the job format)
options.client: pylibmc | pymemcache | pymemcache-bytes | python-memcached
"""
import json
import sys

job = json.load(open(sys.argv[1], encoding='utf-8'))
opts = job['options']
servers = job['servers']
keys = job['keys']
stored = failed = 0

if opts['client'] == 'pylibmc':
    import pylibmc
    behaviors = opts.get('behaviors', {})
    # pylibmc takes "host:port:weight"? No: weights go as (host, port, weight) tuples via
    # the "host:port" string list only; it reads a weight from a trailing ":weight" too.
    spec = ['%s:%d:%d' % (s['host'], s['port'], s['weight']) for s in servers]
    client = pylibmc.Client(spec, behaviors=behaviors)
    for key in keys:
        try:
            if client.set(key, 'v'):
                stored += 1
            else:
                failed += 1
        except pylibmc.Error:
            failed += 1
elif opts['client'] == 'pymemcache':
    from pymemcache.client.hash import HashClient
    client = HashClient([(s['host'], s['port']) for s in servers],
                        allow_unicode_keys=True, connect_timeout=2, timeout=2)
    for key in keys:
        try:
            client.set(key, 'v', noreply=False)
            stored += 1
        except Exception:
            failed += 1
elif opts['client'] == 'pymemcache-bytes':
    # The application hands HashClient bytes: the server stores the bytes, the hash sees their repr.
    from pymemcache.client.hash import HashClient
    client = HashClient([(s['host'], s['port']) for s in servers], connect_timeout=2, timeout=2)
    for key in keys:
        try:
            client.set(key.encode('utf-8'), 'v', noreply=False)
            stored += 1
        except Exception:
            failed += 1
elif opts['client'] == 'python-memcached':
    import memcache
    client = memcache.Client([('%s:%d' % (s['host'], s['port']), s['weight']) for s in servers])
    for key in keys:
        try:
            if client.set(key, 'v'):
                stored += 1
            else:
                failed += 1
        except memcache.Client.MemcachedKeyError:
            failed += 1
else:
    raise SystemExit('unknown client %r' % opts['client'])

print(json.dumps({'stored': stored, 'failed': failed}))
