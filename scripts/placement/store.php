<?php
// Stores every key of a memshift placement job through php-memcached (libmemcached).
// Usage: php store.php JOB.json   (see produce.py for the job format)
$job = json_decode(file_get_contents($argv[1]), true);
$m = new Memcached();
$opts = $job['options'];
if (!empty($opts['libketama_compatible'])) {
    $m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
}
if (($opts['distribution'] ?? '') === 'consistent') {
    $m->setOption(Memcached::OPT_DISTRIBUTION, Memcached::DISTRIBUTION_CONSISTENT);
}
$servers = [];
foreach ($job['servers'] as $s) {
    $servers[] = [$s['host'], $s['port'], $s['weight']];
}
$m->addServers($servers);
$stored = 0;
$failed = 0;
foreach ($job['keys'] as $key) {
    if ($m->set($key, 'v')) { $stored++; } else { $failed++; }
}
echo json_encode(['stored' => $stored, 'failed' => $failed]), "\n";
