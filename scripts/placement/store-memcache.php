<?php
// Stores every key of a memshift placement job through PHP's PECL memcache (the Memcache class).
// Usage: php store-memcache.php JOB.json   (see produce.py for the job format)
// options.hash_strategy: consistent | standard; options.hash_function: crc32 | fnv
$job = json_decode(file_get_contents($argv[1]), true);
$opts = $job['options'];
// The pool takes its strategy and hash function from the ini settings when its first server is added.
ini_set('memcache.hash_strategy', $opts['hash_strategy']);
ini_set('memcache.hash_function', $opts['hash_function']);
$m = new Memcache();
foreach ($job['servers'] as $s) {
    $m->addServer($s['host'], $s['port'], false, $s['weight']);
}
$stored = 0;
$failed = 0;
foreach ($job['keys'] as $key) {
    if (@$m->set($key, 'v', 0, 0)) { $stored++; } else { $failed++; }
}
echo json_encode(['stored' => $stored, 'failed' => $failed]), "\n";
