# A memcached restart is survived without restarting nginx: while it is
# down requests fail as credit_fail says; when it is back they are metered
# again (a restart loses the balances: they must be granted again).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our $Pidfile = "/tmp/credit-test-memcached-19890.pid";

sub main::listening {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 19890,
                                 Proto => 'tcp') ? 1 : 0;
}

sub main::memcached_up {
    my $user = $> == 0 ? '-u root' : '';
    system("memcached -d -l 127.0.0.1 -p 19890 -U 0 -M $user -P $Pidfile") == 0
        or die "memcached did not start";
    for (1 .. 100) { last if main::listening(); Time::HiRes::sleep(0.02) }
}

# a crash: SIGKILL, and wait until the port is closed
sub main::memcached_down {
    open my $in, '<', $Pidfile or return;
    my $pid = <$in>;
    chomp $pid;
    kill 'KILL', $pid;
    for (1 .. 100) { last unless main::listening(); Time::HiRes::sleep(0.02) }
}

END { main::memcached_down() }

sub main::charge {
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                       { 'X-API-Key' => 't090' });
    return $st;
}

run_tests();

__DATA__

=== TEST 1: down, then back
--- http_config
    credit_memcached 127.0.0.1:19890 timeout=300ms retry_timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- init
main::memcached_up();
CreditTest::grant('t090', 100);
Test::More::is(main::charge(), 200, "charged while memcached is up");
main::memcached_down();
Test::More::is(main::charge(), 503, "503 while memcached is down");
Test::More::is(main::charge(), 503, "still 503");
main::memcached_up();
my ($st, $waited) = (503, 0);
while ($st == 503 && $waited < 5) {
    Time::HiRes::sleep(0.2);
    $waited += 0.2;
    $st = main::charge();
}
Test::More::cmp_ok($waited, '<=', 3, "metered again ${waited}s after memcached is back (retry_timeout=1s)");
Test::More::is($st, 402, "back: the restart lost the balance");
CreditTest::grant('t090', 100);
Test::More::is(main::charge(), 200, "charged again after a new grant");
--- request
GET /credit-admin/t090
--- response_body
{"account":"t090","plan":80,"pack":0,"total":80}
--- error_log
credit: memcached unavailable
