# A memcached restart is survived without restarting nginx: while it is
# down requests fail as credit_fail says; when it is back they are metered
# again (a restart loses the balances: they must be granted again; a warm
# restart, memcached's -e stopped with SIGUSR1, keeps them).

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

# $opts: more options, e.g. "-e FILE" for a restartable memcached
sub main::memcached_up {
    my ($opts) = @_;
    $opts //= '';
    my $user = $> == 0 ? '-u root' : '';
    system("memcached -d -l 127.0.0.1 -p 19890 -U 0 -M $opts $user"
           . " -P $Pidfile") == 0
        or die "memcached did not start";
    for (1 .. 100) { last if main::listening(); Time::HiRes::sleep(0.02) }
}

# a crash: SIGKILL, and wait until the port is closed; with $signal
# (USR1: a restartable memcached saves its items and exits) until the
# process is gone
sub main::memcached_down {
    my ($signal) = @_;
    open my $in, '<', $Pidfile or return;
    my $pid = <$in>;
    chomp $pid;
    kill $signal // 'KILL', $pid;
    for (1 .. 250) {
        last unless main::listening() || ($signal && kill 0, $pid);
        Time::HiRes::sleep(0.02);
    }
}

END { main::memcached_down() }

sub main::charge {
    my ($account) = @_;
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                       { 'X-API-Key' => $account // 't090' });
    return $st;
}

our $State = (-d '/dev/shm' ? '/dev/shm' : '/tmp') . '/credit-test-mc-warm';
END { unlink $State, "$State.meta" }

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



=== TEST 2: a warm restart keeps the balances
memcached started with -e FILE and stopped with SIGUSR1 writes its items
to FILE and reads them back when it starts again with the same options:
the balance is where the charges left it, and nginx goes on charging it.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19890 timeout=300ms retry_timeout=1s')
--- init
main::memcached_down();          # the one of the test before
unlink $main::State, "$main::State.meta";
main::memcached_up("-m 64 -e $main::State");
CreditTest::grant('t090-warm', 100, 30);
Test::More::is(main::charge('t090-warm'), 200, "charged before the restart");
main::memcached_down('USR1');
Test::More::ok(-s "$main::State.meta", "memcached saved its state");
Test::More::is(main::charge('t090-warm'), 503, "503 while it is down");
main::memcached_up("-m 64 -e $main::State");
my ($st, $waited) = (503, 0);
while ($st == 503 && $waited < 5) {
    Time::HiRes::sleep(0.2);
    $waited += 0.2;
    $st = main::charge('t090-warm');
}
Test::More::is($st, 200, "charged from the kept balance after the restart");
--- request
GET /credit-admin/t090-warm
--- response_body
{"account":"t090-warm","plan":60,"pack":30,"total":90}



=== TEST 3: scripts/check-memcached tells a memcached fit for balances from one that is not
One run as README.md recommends (-M, -R 1000, no LRU maintainer, -F, a
restart file), one with memcached's defaults (it evicts when full), and
an address where nothing listens.
--- init
main::memcached_down();
unlink $main::State, "$main::State.meta";
main::memcached_up("-m 64 -R 1000 -F -o no_lru_maintainer,no_lru_crawler"
                   . " -e $main::State");
CreditTest::mc_run("-l 127.0.0.1 -p 19891 -U 0", 19891, sub {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 19891)
}, 'evicting');
my $dir = $ENV{TEST_NGINX_PROJECT_DIR};
my $good = `$dir/scripts/check-memcached 127.0.0.1:19890`;
Test::More::is($? >> 8, 0, "the recommended one passes");
Test::More::like($good, qr/^127\.0\.0\.1:19890: memcached 1\.6\.\d+, up /, "its summary line");
Test::More::like($good, qr/ok    evictions off \(-M\)/, "it does not evict");
Test::More::unlike($good, qr/^  (?:FAIL|warn|note)/m, "nothing to fix");
my $stock = `$dir/scripts/check-memcached 127.0.0.1:19891 127.0.0.1:19899`;
Test::More::is($? >> 8, 1, "the stock one fails");
Test::More::like($stock, qr/FAIL  evictions on: .*start it with -M/, "it evicts");
Test::More::like($stock, qr/warn  flush_all enabled/, "flush_all is on");
Test::More::like($stock, qr/note  reqs_per_event 20: -R 1000/, "-R");
Test::More::like($stock, qr/note  no restart file/, "no -e");
Test::More::like($stock, qr/^127\.0\.0\.1:19899: cannot ask it: connect: /m, "nothing listens");
CreditTest::mc_stop(19891);
--- request
GET /credit-admin/t090-none
--- response_body
{"account":"t090-none","plan":0,"pack":0,"total":0}



=== TEST 4: a memcached at its connection limit: named, and a refund due then is sent again
memcached past its -c answers a new connection with "ERROR Too many open
connections" and closes it. nginx logs that line; the refund's command on
that connection was a read (nothing is written on a connection before its
"stats" names the memcached instance), so the refund fails without an
unknown outcome and is sent again once memcached takes connections. A
warm restart of memcached closes nginx's connection between the charge
and the refund; the upstream answers 500 only once memcached is full.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19890 timeout=300ms retry_timeout=1s')
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:19891;
    }
    location /credit-admin/ { credit_admin; }
--- init
main::memcached_down();
unlink $main::State, "$main::State.meta";
main::memcached_up("-m 64 -c 30 -e $main::State");
my $go = "/tmp/credit-test-090-4.go";
unlink $go;
my $slow = CreditTest::serve(19891, sub {
    my ($c) = @_;
    sysread($c, my $req, 65536);
    my $until = Time::HiRes::time() + 20;
    Time::HiRes::sleep(0.02) until -e $go || Time::HiRes::time() > $until;
    syswrite($c, "HTTP/1.0 500 Internal Server Error\r\n"
                 . "Content-Length: 5\r\n\r\nboom\n");
});
CreditTest::grant('t090-full', 100);
my $s = CreditTest::start_request('/v1/background-removal', 't090-full');
Time::HiRes::sleep(0.3);
Test::More::like(CreditTest::memcached("mg test:t090-full v\r\n", 19890),
                 qr/^VA 4\s*\r\n80 0\r\n/, "charged while the upstream works");
main::memcached_down('USR1');
main::memcached_up("-m 64 -c 30 -e $main::State");
my @held = grep { $_ } map {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 19890)
} 1 .. 40;
Time::HiRes::sleep(0.1);
Test::More::like(CreditTest::memcached("mn\r\n", 19890) // '',
                 qr/^ERROR Too many open connections\r\n/,
                 "memcached takes no more connections");
open my $flag, '>', $go or die "$go: $!";
close $flag;
my ($code) = CreditTest::finish_request($s);
unlink $go;
Test::More::is($code, 500, "the upstream failed: the refund is due now");
Time::HiRes::sleep(0.3);
my $mine = shift @held;
Test::More::like(CreditTest::memcached_on($mine, "mg test:t090-full v\r\n"),
                 qr/^VA 4\s*\r\n80 0\r\n/,
                 "the refund was refused with the connection");
@held = ();
my ($bal, $waited) = ('', 0);
while ($bal !~ /\r\n100 0\r\n/ && $waited < 4) {
    Time::HiRes::sleep(0.2);
    $waited += 0.2;
    $bal = CreditTest::memcached("mg test:t090-full v\r\n", 19890) // '';
}
Test::More::like($bal, qr/\r\n100 0\r\n/,
                 "the refund landed ${waited}s after memcached took connections again");
my $dir = $ENV{TEST_NGINX_PROJECT_DIR};
my $check = `$dir/scripts/check-memcached 127.0.0.1:19890`;
Test::More::like($check, qr/, [1-9]\d* connections? \(-c 30\)$/m,
                 "scripts/check-memcached counts the connections open");
Test::More::like($check, qr/warn  \d+ connections refused at its limit of 30 \(raise -c\)/,
                 "scripts/check-memcached tells of the refused connections");
CreditTest::stop($slow);
--- request
GET /credit-admin/t090-full
--- response_body
{"account":"t090-full","plan":100,"pack":0,"total":100}
--- error_log
credit: memcached 127.0.0.1:19890 refused the connection: "ERROR Too many open connections"
--- no_error_log
unknown outcome
[alert]
