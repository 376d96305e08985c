# The balance cache keeps, with each balance and its cas token, the
# memcached instance it learnt them from, and only uses them with that
# instance.  Two memcacheds may look alike: each the first process of its
# container (pid 1), started in the same second.  A token of one must
# still never be offered to the other, where it can name another value.
# Real memcacheds on 19961 and 19962, each behind a stand-in on 19963 and
# 19964 that passes everything on but says "pid 1" and the same start
# time in "stats" (test 1), or, as a proxy may, no pid and no start time
# at all, so that a restart behind it cannot be told: then the cache is
# not used (test 2).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

master_on();
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

# a memcached behind $port, as seen through a stand-in that gives it pid 1
# and the same start time as any other behind such a stand-in, or, with
# $none, no pid and no start time at all
sub main::look_alike {
    my ($port, $to, $none) = @_;
    return CreditTest::serve($port, sub {
        my ($c) = @_;
        my $m = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $to, Proto => 'tcp')
            or return;
        my $sel = IO::Select->new($c, $m);
        my $buf = '';
        while (1) {
            for my $h ($sel->can_read) {
                my $n = sysread($h, my $b, 65536);
                return unless $n;
                if ($h == $c) {
                    syswrite($m, $b);
                    next;
                }
                $buf .= $b;
                while ($buf =~ s/^([^\n]*\n)//) {
                    my $line = $1;
                    next if $none && $line =~ /^STAT (?:pid|uptime|time) /;
                    $line =~ s/^STAT pid \d+/STAT pid 1/;
                    $line =~ s/^STAT uptime \d+/STAT uptime 100/;
                    $line =~ s/^STAT time \d+/STAT time 1000100/;
                    syswrite($c, $line);
                }
            }
        }
    });
}

# the cas token of $key on the memcached at $port
sub main::token {
    my ($key, $port) = @_;
    my $r = CreditTest::memcached("gets $key\r\n", $port) // '';
    return $r =~ /^VALUE \S+ \d+ \d+ (\d+)\r\n/ ? $1 : 0;
}

# $account granted 100 and charged 20 through nginx, whose cache then
# keeps 80 and the item's token: the token, on the memcached at $port
sub main::charge_new {
    my ($account, $port) = @_;
    CreditTest::grant($account, 100, 0);
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                       { 'X-API-Key' => $account });
    Test::More::is("$st $h->{'x-credits-remaining'}", "200 80",
                   "$account charged: 80 left");
    my $cas = main::token("test:$account", $port);
    Test::More::ok($cas > 1, "its token: $cas");
    return $cas;
}

# $key set to $value on the memcached at $port, a fresh one, so that its
# cas token is $cas: each store takes the next token, so others go first
sub main::seed {
    my ($port, $key, $value, $cas) = @_;
    while (main::token('t210-pad', $port) < $cas - 1) {
        CreditTest::memcached("set t210-pad 0 0 1\r\nx\r\n", $port);
    }
    my $len = length $value;
    CreditTest::memcached("set $key 0 0 $len\r\n$value\r\n", $port);
}

# nginx.conf with credit_memcached $servers instead, reloaded; returns
# once the workers from before the reload are gone
sub main::reload_with {
    my ($servers) = @_;
    my $f = "$ENV{TEST_NGINX_SERVER_ROOT}/conf/nginx.conf";
    open my $in, '<', $f or die $!;
    my $conf = do { local $/; <$in> };
    close $in;
    $conf =~ s/credit_memcached [^;]*;/credit_memcached $servers;/;
    open my $out, '>', $f or die $!;
    print $out $conf;
    close $out;
    my @old = CreditTest::worker_pids();
    kill 'HUP', CreditTest::master_pid();
    for (1 .. 250) {
        my %now = map { $_ => 1 } CreditTest::worker_pids();
        last if %now && !grep { $now{$_} || kill(0, $_) } @old;
        Time::HiRes::sleep(0.02);
    }
}

our @Pids;

END {
    local $?;                           # the stand-ins' status is not ours
    CreditTest::stop($_) for @Pids;
    CreditTest::mc_stop($_) for 19961, 19962;
}

run_tests();

__DATA__

=== TEST 1: a token learnt from one memcached is not used with another that looks the same
The account is charged through the first server (100 -> 80: the cache
keeps 80 and the item's token).  Another edge charges it there (60).
Its balance moves to the second server, whose counter is brought to the
point where the item gets the very token this edge keeps; nginx is
reloaded onto the second server (previous= the first).  The next charge
must read 60 and leave 40: offered the cached 80 and the token, the
second server would take the write and 60 would be left, another edge's
charge lost.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig, '127.0.0.1:19963')
--- init
CreditTest::mc_stop($_) for 19961, 19962;
CreditTest::mc_start($_) for 19961, 19962;
push @main::Pids, main::look_alike(19963, 19961), main::look_alike(19964, 19962);
my $cas = main::charge_new('t210-x', 19961);
Test::More::like(CreditTest::memcached("cas test:t210-x 0 0 4 $cas\r\n60 0\r\n", 19961),
                 qr/^STORED/, "another edge charges 20 there: 60 left");
main::seed(19962, 'test:t210-x', '60 0', $cas);
Test::More::is(main::token('test:t210-x', 19962), $cas,
               "moved to the second server, where its token is the same");
Test::More::like(CreditTest::memcached("set test:t210-y 0 0 5\r\n100 0\r\n", 19962),
                 qr/^STORED/, "another account on the second server");
CreditTest::memcached("delete test:t210-x\r\n", 19961);
main::reload_with('127.0.0.1:19964 previous=127.0.0.1:19963');
# the worker's connection to the second server, with its "stats"
my ($st) = CreditTest::request('GET', '/credit-admin/t210-y');
Test::More::is($st, 200, "the new worker reads the second server");
--- more_headers
X-API-Key: t210-x
--- request eval
["POST /v1/background-removal", "GET /credit-admin/t210-x"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Credits-Remaining: 40", ""]
--- response_body eval
["ok POST /v1/background-removal\n",
 qq({"account":"t210-x","plan":40,"pack":0,"total":40}\n)]



=== TEST 2: a server whose "stats" names no pid or start time: the cache is not used
A proxy in front of memcached may answer "stats" without them, and then
a restart of the memcached behind it cannot be told.  The account is
charged (100 -> 80), memcached restarts behind the stand-in and is
seeded with 60 for the account, under the very token of the item before
the restart.  The next charge must read 60 and leave 40: trusting the
cache, it would write 60 with the old token and leave 60.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig, '127.0.0.1:19963')
--- init
CreditTest::stop($_) for splice @main::Pids;
CreditTest::mc_stop($_) for 19961, 19962;
CreditTest::mc_start(19961);
push @main::Pids, main::look_alike(19963, 19961, 'no pid');
my $cas = main::charge_new('t210-z', 19961);
CreditTest::mc_stop(19961);
CreditTest::mc_start(19961);
main::seed(19961, "test:t210-z", "60 0", $cas);
Test::More::is(main::token('test:t210-z', 19961), $cas,
               "memcached restarted, the account seeded with 60 under the same token");
# the worker's new connection, with its "stats"
my $st;
for (1 .. 100) {
    ($st) = CreditTest::request('GET', '/credit-admin/t210-other');
    last if $st == 200;
    Time::HiRes::sleep(0.05);
}
Test::More::is($st, 200, "nginx reads memcached again");
--- more_headers
X-API-Key: t210-z
--- request eval
["POST /v1/background-removal", "GET /credit-admin/t210-z"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Credits-Remaining: 40", ""]
--- response_body eval
["ok POST /v1/background-removal\n",
 qq({"account":"t210-z","plan":40,"pack":0,"total":40}\n)]
