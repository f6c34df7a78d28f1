<?php
// Drives php-memcached (libmemcached) for the real-client tests: a JSON job on
// stdin, one JSON result on stdout. See test/support/real-clients.ts.
$job = json_decode(stream_get_contents(STDIN), true);

function client(array $job): Memcached {
    $m = new Memcached();
    $m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
    $m->setOption(Memcached::OPT_BINARY_PROTOCOL, (bool)($job['binary'] ?? false));
    $m->setOption(Memcached::OPT_COMPRESSION, false);
    // Values as plain bytes: strings are stored as they are.
    $m->setOption(Memcached::OPT_SERIALIZER, Memcached::SERIALIZER_PHP);
    foreach ($job['servers'] as $s) {
        [$host, $port] = explode(':', $s);
        $m->addServer($host, (int)$port);
    }
    return $m;
}

function value_of($spec) {
    // {"int": n}: the client stores an integer under its own flags.
    if (is_array($spec) && isset($spec['int'])) return (int)$spec['int'];
    return is_array($spec) ? str_repeat($spec[0], $spec[1]) : $spec;
}

// Connection 0 and 1: two clients, so writes to one key come from different connections.
$clients = [client($job), client($job)];
$out = new stdClass();
foreach ($job['ops'] as $op) {
    [$name, $conn] = $op;
    $args = array_slice($op, 2);
    $c = $clients[$conn];
    $ok = true;
    switch ($name) {
        case 'set': $ok = $c->set($args[0], value_of($args[1]), $args[2]); break;
        case 'add': $ok = $c->add($args[0], value_of($args[1]), $args[2]); break;
        case 'replace': $ok = $c->replace($args[0], value_of($args[1]), $args[2]); break;
        case 'delete': $ok = $c->delete($args[0]); break;
        case 'incr': $ok = count($args) > 2 ? $c->increment($args[0], $args[1], $args[3], $args[2]) : $c->increment($args[0], $args[1]); break;
        case 'decr': $ok = count($args) > 2 ? $c->decrement($args[0], $args[1], $args[3], $args[2]) : $c->decrement($args[0], $args[1]); break;
        case 'append': $ok = $c->append($args[0], value_of($args[1])); break;
        case 'prepend': $ok = $c->prepend($args[0], value_of($args[1])); break;
        case 'touch': $ok = $c->touch($args[0], $args[1]); break;
        case 'cas':
            $got = $c->get($args[0], null, Memcached::GET_EXTENDED);
            // Another connection writes first: this cas loses.
            if (count($args) > 3) $clients[1]->set($args[0], value_of($args[3]), $args[2]);
            if ($got !== false) $ok = $c->cas($got['cas'], $args[0], value_of($args[1]), $args[2]);
            break;
        case 'get_multi': $c->getMulti($args[0]); break;
        case 'sleep': usleep((int)($args[0] * 1e6)); break;
        case 'read':
            foreach ($args[0] as $key) {
                $v = $c->get($key);
                $out->{$key} = $v === false ? null : base64_encode((string)$v);
            }
            break;
    }
    if ($ok === false) {
        // Refused on the source (part of the workload): told on stderr for the test's messages.
        fwrite(STDERR, "$name " . json_encode($args[0] ?? null) . ': ' . $c->getResultMessage() . "\n");
    }
}
echo json_encode($out);
