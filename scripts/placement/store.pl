# Stores every key of a memshift placement job through a Perl client.
# Usage: perl store.pl JOB.json   (see produce.py for the job format)
# options.client: cache-memcached | cache-memcached-fast; options.ketama_points for Fast.
# Keys go to the client as UTF-8 byte strings, as an application reading them from a file or socket has them.
use strict;
use warnings;
use JSON::PP;

open(my $fh, '<:raw', $ARGV[0]) or die "cannot read $ARGV[0]: $!";
my $job = JSON::PP->new->utf8(1)->decode(do { local $/; <$fh> });
close($fh);
utf8::encode($_) for @{ $job->{keys} };
my $opts = $job->{options};
my $client;
if ($opts->{client} eq 'cache-memcached') {
    require Cache::Memcached;
    $client = Cache::Memcached->new({
        servers => [map { ["$_->{host}:$_->{port}", $_->{weight}] } @{ $job->{servers} }],
        connect_timeout => 2,
    });
} elsif ($opts->{client} eq 'cache-memcached-fast') {
    require Cache::Memcached::Fast;
    my %args = (
        servers => [map { { address => "$_->{host}:$_->{port}", weight => $_->{weight} } } @{ $job->{servers} }],
        connect_timeout => 2,
    );
    $args{ketama_points} = $opts->{ketama_points} if $opts->{ketama_points};
    $client = Cache::Memcached::Fast->new(\%args);
} else {
    die "unknown client $opts->{client}\n";
}
my ($stored, $failed) = (0, 0);
for my $key (@{ $job->{keys} }) {
    if ($client->set($key, 'v')) { $stored++ } else { $failed++ }
}
print encode_json({ stored => $stored, failed => $failed }), "\n";
