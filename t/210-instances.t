# The balance cache keeps, with each balance and its cas token, the
# memcached instance it learnt them from, and only uses them with that
# instance.  Two memcacheds may look alike: each the first process of its
# container (pid 1), started in the same second.  A token of one must
# still never be offered to the other, where it can name another value.
# Real memcacheds on 19961 and 19962, each behind a stand-in on 19963 and
# 19964 that passes everything on but says "pid 1" and the same start
# time in "stats".

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

master_on();
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

# a memcached behind $port, as seen through a stand-in that gives it pid 1
# and the same start time as any other behind such a stand-in
sub main::look_alike {
    my ($port, $to) = @_;
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
CreditTest::grant('t210-x', 100, 0);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                   { 'X-API-Key' => 't210-x' });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 80",
               "charged on the first server: 80 left");
my $cas = main::token('test:t210-x', 19961);
Test::More::ok($cas > 1, "its token there: $cas");
Test::More::like(CreditTest::memcached("cas test:t210-x 0 0 4 $cas\r\n60 0\r\n", 19961),
                 qr/^STORED/, "another edge charges 20 there: 60 left");
Test::More::like(CreditTest::memcached("set test:t210-y 0 0 5\r\n100 0\r\n", 19962),
                 qr/^STORED/, "another account on the second server");
# each store takes the next token: stop one short of $cas
my $last = main::token('test:t210-y', 19962);
while ($last < $cas - 1) {
    CreditTest::memcached("set t210-pad 0 0 1\r\nx\r\n", 19962);
    $last = main::token('t210-pad', 19962);
}
CreditTest::memcached("set test:t210-x 0 0 4\r\n60 0\r\n", 19962);
Test::More::is(main::token('test:t210-x', 19962), $cas,
               "moved to the second server, where its token is the same");
CreditTest::memcached("delete test:t210-x\r\n", 19961);
main::reload_with('127.0.0.1:19964 previous=127.0.0.1:19963');
# the worker's connection to the second server, with its "stats"
($st) = CreditTest::request('GET', '/credit-admin/t210-y');
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
