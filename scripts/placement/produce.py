"""Records where real memcached clients put keys, as memshift's placement fixtures.

Run through produce.sh. For every client configuration below and every server
count (3, 5, 7), it starts from empty memcached servers, stores the fixture
keys through the real client library, then asks every server which keys it
holds (meta `mg` with base64 keys, pipelined) and records each key's owner as
an index into the server list the client was given. Keys the client refuses
(non-ASCII for gomemcache, for example) are recorded as not stored.

Output (test/fixtures/placement/):
  keys.json        the keys, in order, with how they were generated
  <row>.json       one file per configuration: header (client, versions,
                   options, server list in order, weights) and `owners`, a
                   string with one character per key: '0'-'9' the server
                   index, '-' not stored
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'placement')
MEMCACHED = shutil.which('memcached') or '/usr/bin/memcached'
SEED = 20261123
COUNTS = (3, 5, 7)
WEIGHTS = {3: [1, 2, 3], 5: [3, 1, 2, 1, 4], 7: [1, 1, 2, 1, 3, 1, 5]}


# ----------------------------------------------------------------- keys

def make_keys():
    """A few thousand distinct keys: short, typical, long, punctuation-heavy, non-ASCII."""
    rng = random.Random(SEED)
    lower = 'abcdefghijklmnopqrstuvwxyz0123456789'
    printable = ''.join(chr(c) for c in range(0x21, 0x7f))
    punct = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
    words = ['user', 'session', 'cart', 'feed', 'page', 'v2', 'tmpl', 'acl', 'geo', 'rate']
    unicode_bits = ['é', 'ü', 'ß', 'ø', 'ñ', '中文', '日本語', 'ключ', 'κλειδί', '😀', '🚀', 'ä', '€', '한국']
    keys = []
    seen = set()

    def add(k):
        if k not in seen and 0 < len(k.encode('utf-8')) <= 250:
            seen.add(k)
            keys.append(k)

    while len(keys) < 500:
        add(''.join(rng.choice(lower) for _ in range(rng.randint(1, 8))))
    while len(keys) < 1100:
        w = rng.choice(words)
        add(rng.choice([
            '%s:%d' % (w, rng.randint(0, 10**7)),
            '%s:%d:%s' % (w, rng.randint(0, 10**5), rng.choice(words)),
            'app/%s/%08x' % (w, rng.getrandbits(32)),
            'cache|v%d|%s|%d' % (rng.randint(1, 9), w, rng.randint(0, 10**9)),
        ]))
    while len(keys) < 1500:
        add(''.join(rng.choice(printable) for _ in range(rng.randint(100, 250))))
    while len(keys) < 1800:
        add(''.join(rng.choice(printable) for _ in range(rng.randint(240, 250))))
    while len(keys) < 2400:
        add(''.join(rng.choice(punct + lower[:6]) for _ in range(rng.randint(1, 40))))
    while len(keys) < 3000:
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(unicode_bits) if rng.random() < 0.5 else rng.choice(words))
            if rng.random() < 0.5:
                parts.append(rng.choice(':/_-.'))
        k = ''.join(parts) + str(rng.randint(0, 999))
        if not k.isascii():
            add(k)
    return keys


# ----------------------------------------------------------------- servers

def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(host, port, proc, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit('process for %s:%d exited' % (host, port))
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit('%s:%d did not start listening' % (host, port))


def start_memcached(host, port):
    args = [MEMCACHED, '-l', host, '-p', str(port), '-U', '0', '-m', '64', '-t', '2']
    if os.geteuid() == 0:
        args += ['-u', 'root']
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(host, port, proc)
    return proc


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b''

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit('connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def pipeline(self, commands):
        """Sends quiet meta commands then `mn`; returns the lines before MN."""
        self.sock.sendall(b''.join(commands) + b'mn\r\n')
        out = []
        while True:
            line = self.line()
            if line == b'MN':
                return out
            out.append(line)

    def close(self):
        self.sock.close()


def raw(key):
    # Fixture keys hold no whitespace or control bytes, so they go on the command line as is
    # (a base64 token may not exceed 250 characters either, which long keys would).
    return key.encode('utf-8')


def owners_of(servers, keys):
    """For each key, the index of the one server holding it, or -1."""
    owners = [-1] * len(keys)
    for index, (host, port) in enumerate(servers):
        conn = Conn(host, port)
        # `mg <key> O<i> q`: a hit answers "HD O<i>" (the opaque echoes the key's index), a miss
        # says nothing (q), and `mn` closes the batch.
        lines = conn.pipeline([b'mg %s O%d q\r\n' % (raw(k), i) for i, k in enumerate(keys)])
        conn.close()
        for line in lines:
            parts = line.split(b' ')
            if parts[0] != b'HD':
                raise SystemExit('unexpected reply %r from %s:%d' % (line, host, port))
            i = int(next(p for p in parts[1:] if p.startswith(b'O'))[1:])
            if owners[i] != -1:
                raise SystemExit('key %r is on two servers' % keys[i])
            owners[i] = index
    return owners


def delete_all(servers, keys):
    for host, port in servers:
        conn = Conn(host, port)
        conn.pipeline([b'md ' + raw(k) + b' q\r\n' for k in keys])
        conn.close()


# ----------------------------------------------------------------- clients

def version_of(package):
    try:
        return subprocess.run(['dpkg-query', '-W', '-f', '${Version}', package],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def npm_version(name):
    with open(os.path.join(ROOT, 'node_modules', name, 'package.json'), encoding='utf-8') as f:
        return json.load(f)['version']


PY = '/usr/bin/python3'  # Debian's python3, where python3-pylibmc and friends live
WORK = tempfile.mkdtemp(prefix='memshift-placement-')


def job_file(servers, weights, options, keys):
    path = os.path.join(WORK, 'job.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'servers': [{'host': h, 'port': p, 'weight': w}
                               for (h, p), w in zip(servers, weights)],
                   'options': options, 'keys': keys}, f, ensure_ascii=False)
    keys_path = os.path.join(WORK, 'job.keys')
    with open(keys_path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(keys) + '\n')
    return path, keys_path


def run(cmd, env=None):
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit('%s failed (%d): %s' % (' '.join(cmd[:3]), done.returncode, done.stderr[-2000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def store_php(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run(['php', os.path.join(HERE, 'store.php'), path])


def store_ruby(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run(['ruby', os.path.join(HERE, 'store.rb'), path])


def store_python(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run([PY, os.path.join(HERE, 'store.py'), path])


def store_php_memcache(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run(['php', os.path.join(HERE, 'store-memcache.php'), path])


def store_perl(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run(['perl', os.path.join(HERE, 'store.pl'), path])


def store_node(servers, weights, options, keys):
    path, _ = job_file(servers, weights, options, keys)
    return run(['node', os.path.join(ROOT, 'dist', 'scripts', 'placement', 'store-node.js'), path])


def store_java(servers, weights, options, keys):
    _, keys_path = job_file(servers, weights, options, keys)
    cp = '/usr/share/java/spymemcached.jar:' + WORK
    addrs = ['%s:%d' % s for s in servers]
    return run(['java', '-Dnet.spy.log.LoggerImpl=net.spy.memcached.compat.log.SunLogger',
                '-Djava.util.logging.config.file=' + os.path.join(WORK, 'logging.properties'),
                '-cp', cp, 'Store', keys_path, options['mode']] + addrs)


def store_go(servers, weights, options, keys):
    _, keys_path = job_file(servers, weights, options, keys)
    env = dict(os.environ, GOPATH='/usr/share/gocode', GO111MODULE='off', GOFLAGS='',
               GOCACHE=os.path.join(WORK, 'gocache'))
    return run([os.path.join(WORK, 'store-go'), keys_path] + ['%s:%d' % s for s in servers], env=env)


def store_nutcracker(servers, weights, options, keys):
    """twemproxy as a real proxy in front of the servers: keys are set through it."""
    port = free_port('127.0.0.1')
    stats = free_port('127.0.0.1')
    lines = ['pool:', '  listen: 127.0.0.1:%d' % port, '  hash: %s' % options['hash'],
             '  distribution: %s' % options['distribution'], '  auto_eject_hosts: false',
             '  timeout: 2000', '  servers:']
    for i, ((host, p), w) in enumerate(zip(servers, weights)):
        name = (' ' + options['names'][i]) if options.get('names') else ''
        lines.append('   - %s:%d:%d%s' % (host, p, w, name))
    conf = os.path.join(WORK, 'nutcracker.yml')
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    proc = subprocess.Popen(['nutcracker', '-c', conf, '-s', str(stats), '-a', '127.0.0.1',
                             '-o', os.path.join(WORK, 'nutcracker.log')],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening('127.0.0.1', port, proc)
        conn = Conn('127.0.0.1', port)
        stored = failed = 0
        batch = 200
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            conn.sock.sendall(b''.join(b'set ' + k.encode('utf-8') + b' 0 0 1\r\nv\r\n' for k in chunk))
            for _ in chunk:
                if conn.line() == b'STORED':
                    stored += 1
                else:
                    failed += 1
        conn.close()
        return {'stored': stored, 'failed': failed}
    finally:
        proc.terminate()
        proc.wait(10)


def ascii_only(keys):
    return [k for k in keys if k.isascii()]


# Each configuration: file stem, client description, store function, options, which keys,
# whether weights are exercised, and the memshift distribution it must match (for the tests).
def configurations():
    libm = version_of('libmemcached11')
    php = {'php-memcached': version_of('php-memcached'), 'libmemcached': libm}
    pylibmc = {'python3-pylibmc': version_of('python3-pylibmc'), 'libmemcached': libm}
    tw = {'nutcracker': version_of('nutcracker')}
    rows = [
        ('php-ketama', 'php-memcached, OPT_LIBKETAMA_COMPATIBLE=true', php, store_php,
         {'libketama_compatible': True}, 'all', True, 'libmemcached-ketama'),
        ('php-consistent', 'php-memcached, OPT_DISTRIBUTION=DISTRIBUTION_CONSISTENT', php, store_php,
         {'distribution': 'consistent'}, 'all', False, 'libmemcached-consistent'),
        ('php-consistent-weighted', 'php-memcached, DISTRIBUTION_CONSISTENT with weights', php, store_php,
         {'distribution': 'consistent'}, 'all', 'only', 'libmemcached-consistent'),
        ('php-modula', 'php-memcached, default options (modula)', php, store_php,
         {}, 'all', False, 'libmemcached-modula'),
        ('pylibmc-ketama-weighted', 'pylibmc, behaviors={"ketama_weighted": True}', pylibmc, store_python,
         {'client': 'pylibmc', 'behaviors': {'ketama_weighted': True}}, 'all', True, 'libmemcached-ketama'),
        ('pylibmc-ketama', 'pylibmc, behaviors={"ketama": True}', pylibmc, store_python,
         {'client': 'pylibmc', 'behaviors': {'ketama': True}}, 'all', False, 'libmemcached-consistent'),
        ('pylibmc-modula', 'pylibmc, default behaviors (modula)', pylibmc, store_python,
         {'client': 'pylibmc'}, 'all', False, 'libmemcached-modula'),
        ('dalli', 'Dalli::Client(servers "host:port:weight", failover: false)',
         {'ruby-dalli': version_of('ruby-dalli')}, store_ruby, {}, 'all', True, 'dalli'),
        ('pymemcache', 'pymemcache HashClient(allow_unicode_keys=True), str keys',
         {'python3-pymemcache': version_of('python3-pymemcache')}, store_python,
         {'client': 'pymemcache'}, 'all', False, 'pymemcache'),
        ('python-memcached', 'python-memcached memcache.Client([("host:port", weight)]), str keys',
         {'python3-memcache': version_of('python3-memcache')}, store_python,
         {'client': 'python-memcached'}, 'all', True, 'python-memcached'),
        ('node-memcached', 'npm memcached, new Memcached({"host:port": weight}) (hashring, md5, ketama compatibility)',
         {'memcached': npm_version('memcached'), 'hashring': npm_version('hashring')}, store_node,
         {'client': 'memcached'}, 'all', True, 'node-memcached'),
        ('memjs', 'npm memjs, Client.create("host:port,...")', {'memjs': npm_version('memjs')}, store_node,
         {'client': 'memjs'}, 'all', False, 'memjs'),
        ('spymemcached', 'spymemcached DefaultConnectionFactory, AddrUtil.getAddresses',
         {'libspymemcached-java': version_of('libspymemcached-java')}, store_java,
         {'mode': 'default'}, 'all', False, 'spymemcached'),
        ('spymemcached-ketama', 'spymemcached KetamaConnectionFactory, AddrUtil.getAddresses',
         {'libspymemcached-java': version_of('libspymemcached-java')}, store_java,
         {'mode': 'ketama'}, 'all', False, 'spymemcached-ketama'),
        ('pymemcache-bytes', 'pymemcache HashClient, bytes keys (key.encode("utf-8"))',
         {'python3-pymemcache': version_of('python3-pymemcache'), 'python3': version_of('python3')},
         store_python, {'client': 'pymemcache-bytes'}, 'all', False, 'pymemcache-bytes'),
        ('memcache-plus', 'npm memcache-plus, new MemcachePlus({hosts: ["host:port", ...]})',
         {'memcache-plus': npm_version('memcache-plus'), 'hashring': npm_version('hashring')}, store_node,
         {'client': 'memcache-plus'}, 'all', False, 'memcache-plus'),
        ('perl-cache-memcached', 'Cache::Memcached->new({servers => [["host:port", weight]]}), UTF-8 byte keys',
         {'libcache-memcached-perl': version_of('libcache-memcached-perl'), 'perl': version_of('perl')},
         store_perl, {'client': 'cache-memcached'}, 'all', True, 'perl-cache-memcached'),
        ('perl-cache-memcached-fast', 'Cache::Memcached::Fast->new({servers => [{address, weight}]})',
         {'libcache-memcached-fast-perl': version_of('libcache-memcached-fast-perl')},
         store_perl, {'client': 'cache-memcached-fast'}, 'all', True, 'perl-cache-memcached-fast'),
        ('perl-cache-memcached-fast-ketama-150', 'Cache::Memcached::Fast, ketama_points => 150',
         {'libcache-memcached-fast-perl': version_of('libcache-memcached-fast-perl')},
         store_perl, {'client': 'cache-memcached-fast', 'ketama_points': 150}, 'all', True,
         'perl-cache-memcached-fast-ketama:150'),
        ('gomemcache', 'gomemcache memcache.New(servers...) (rejects non-ASCII keys)',
         {'golang-github-bradfitz-gomemcache-dev': version_of('golang-github-bradfitz-gomemcache-dev'),
          'golang-go': version_of('golang-go')}, store_go, {}, 'ascii', False, 'gomemcache'),
    ]
    pecl = {'php8.2-memcache': version_of('php8.2-memcache')}
    for strategy in ('consistent', 'standard'):
        for function in ('crc32', 'fnv'):
            rows.append(('php-memcache-%s-%s' % (strategy, function),
                         'PECL memcache Memcache::addServer(host, port, false, weight), '
                         'memcache.hash_strategy=%s, memcache.hash_function=%s' % (strategy, function),
                         pecl, store_php_memcache, {'hash_strategy': strategy, 'hash_function': function},
                         'all', True, 'php-memcache-%s:%s' % (strategy, function)))
    for hash_name in ('fnv1a_64', 'md5', 'one_at_a_time', 'fnv1_64', 'fnv1_32', 'fnv1a_32', 'crc16',
                      'crc32', 'crc32a', 'hsieh', 'murmur', 'jenkins'):
        main = hash_name in ('fnv1a_64', 'md5')
        rows.append(('twemproxy-ketama-%s' % hash_name,
                     'nutcracker pool: distribution ketama, hash %s' % hash_name, tw, store_nutcracker,
                     {'distribution': 'ketama', 'hash': hash_name}, 'all', main,
                     'twemproxy-ketama:%s' % hash_name))
    for hash_name in ('fnv1a_64', 'md5', 'crc32a'):
        rows.append(('twemproxy-modula-%s' % hash_name,
                     'nutcracker pool: distribution modula, hash %s' % hash_name, tw, store_nutcracker,
                     {'distribution': 'modula', 'hash': hash_name}, 'all', hash_name == 'fnv1a_64',
                     'twemproxy-modula:%s' % hash_name))
    rows.append(('twemproxy-ketama-named', 'nutcracker pool: ketama, fnv1a_64, servers named cache-1...',
                 tw, store_nutcracker, {'distribution': 'ketama', 'hash': 'fnv1a_64', 'named': True},
                 'all', False, 'twemproxy-ketama:fnv1a_64'))
    return rows


def main():
    keys = make_keys()
    only = [a for a in sys.argv[1:] if not a.startswith('--sets=')]
    sets = [a[len('--sets='):].split(',') for a in sys.argv[1:] if a.startswith('--sets=')]
    sets = sets[-1] if sets else ['ports', '11211', 'localhost']
    os.makedirs(OUT, exist_ok=True)
    # Rows about to be recorded again are removed first; with a filter, the other rows stay.
    for name in os.listdir(OUT):
        if name.endswith('.json') and name != 'keys.json' and (
                not only or any(name.startswith(o) for o in only)) and any(
                ('-%s.' % x) in name or ('-%s-' % x) in name for x in sets):
            os.remove(os.path.join(OUT, name))
    with open(os.path.join(OUT, 'keys.json'), 'w', encoding='utf-8') as f:
        json.dump({'generated_by': 'scripts/placement/produce.py (seed %d)' % SEED,
                   'note': 'keys in order; row files index into this list', 'keys': keys},
                  f, ensure_ascii=False, indent=0)

    # Prepare the compiled clients once.
    with open(os.path.join(WORK, 'logging.properties'), 'w') as f:
        f.write('.level=SEVERE\nhandlers=java.util.logging.ConsoleHandler\n'
                'java.util.logging.ConsoleHandler.level=SEVERE\n')
    subprocess.run(['javac', '-cp', '/usr/share/java/spymemcached.jar', '-d', WORK,
                    os.path.join(HERE, 'Store.java')], check=True)
    env = dict(os.environ, GOPATH='/usr/share/gocode', GO111MODULE='off', GOFLAGS='',
               GOCACHE=os.path.join(WORK, 'gocache'))
    subprocess.run(['go', 'build', '-o', os.path.join(WORK, 'store-go'), os.path.join(HERE, 'store.go')],
                   check=True, env=env)

    procs = []
    try:
        # Server set "ports": distinct ports on 127.0.0.1 (libmemcached hashes "host:port-i").
        ports_set = []
        for _ in range(max(COUNTS)):
            port = free_port('127.0.0.1')
            procs.append(start_memcached('127.0.0.1', port))
            ports_set.append(('127.0.0.1', port))
        # Server set "11211": 127.0.0.2.. on port 11211 (libmemcached, twemproxy and hashring hash "host-i").
        default_set = []
        for i in range(max(COUNTS)):
            host = '127.0.0.%d' % (i + 2)
            procs.append(start_memcached(host, 11211))
            default_set.append((host, 11211))

        # Server set "localhost": the "ports" servers written by host name, as most configurations
        # are; clients hash the name as written (spymemcached: as Java resolves it, see below).
        localhost_set = [('localhost', port) for _, port in ports_set]
        for stem, description, versions, store, options, keyset, weighted, distribution in configurations():
            if only and not any(stem.startswith(o) for o in only):
                continue
            use_keys = keys if keyset == 'all' else ascii_only(keys)
            variants = []
            for set_name, server_set, counts in (('ports', ports_set, COUNTS), ('11211', default_set, COUNTS),
                                                 ('localhost', localhost_set, COUNTS[:1])):
                if set_name not in sets:
                    continue
                for n in counts:
                    if weighted != 'only':
                        variants.append((set_name, server_set[:n], [1] * n))
                    if weighted and set_name != '11211':
                        variants.append((set_name, server_set[:n], WEIGHTS[n]))
            for set_name, servers, weights in variants:
                opts = dict(options)
                if opts.pop('named', False):
                    opts['names'] = ['cache-%d' % (i + 1) for i in range(len(servers))]
                names = opts.get('names')
                if distribution == 'spymemcached-ketama' and set_name == 'localhost':
                    # Java hashes InetSocketAddress.toString(): "localhost/127.0.0.1:port". memshift
                    # refuses a bare host name for this distribution and takes this text as the name.
                    names = ['localhost/127.0.0.1:%d' % p for _, p in servers]
                started = time.time()
                result = store(servers, weights, opts, use_keys)
                owners = owners_of(servers, keys)
                delete_all(servers, keys)
                weighted_name = '-w' if any(w != 1 for w in weights) else ''
                row = '%s-%d-%s%s' % (stem, len(servers), set_name, weighted_name)
                header = {
                    'client': description,
                    'versions': versions,
                    'options': opts,
                    'distribution': distribution,
                    'servers': ['%s:%d' % s for s in servers],
                    'weights': weights,
                    'server_names': names,
                    'keys': 'keys.json' + ('' if keyset == 'all' else ' (ASCII keys only)'),
                    'stored': result['stored'],
                    'refused': result['failed'],
                    # Stored keys found under their own name; fewer than `stored` means the client
                    # rewrote some keys on the wire (see README.md).
                    'found': len(owners) - owners.count(-1),
                    'produced_by': 'bash scripts/placement/produce.sh',
                }
                text = ''.join('-' if o < 0 else str(o) for o in owners)
                with open(os.path.join(OUT, row + '.json'), 'w', encoding='utf-8') as f:
                    json.dump({'header': header, 'owners': text}, f, ensure_ascii=False, indent=1)
                print('%-40s stored %4d refused %4d found %4d  %.1fs' % (
                    row, result['stored'], result['failed'], len(text) - text.count('-'),
                    time.time() - started), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == '__main__':
    main()
