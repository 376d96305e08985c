# Several memcached servers: accounts are spread by consistent hashing
# (each lives on exactly one server); when one server is down, only its
# accounts fail (credit_fail), the others keep working, and no account is
# ever moved to another server.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();
use IO::Socket::UNIX ();

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our @Ports = (19911, 19912, 19913);

# which server holds an account: the one whose memcached has its key
sub main::holder {
    my ($account) = @_;
    my @has = grep {
        (CreditTest::memcached("get test:$account\r\n", $_) // '') =~ /^VALUE/
    } @Ports;
    return join ',', @has;
}

our $Sock = '/tmp/credit-test-mc.sock';

# a memcached on a unix socket; its pid
sub main::mc_unix {
    unlink $Sock;
    CreditTest::mc_run("-s $Sock -a 0666", 'unix', sub {
        IO::Socket::UNIX->new(Peer => $Sock)
    });
}

sub main::mc_unix_cmd {
    my ($cmd) = @_;
    return CreditTest::memcached_on(IO::Socket::UNIX->new(Peer => $Sock),
                                    $cmd);
}

# the blocks whose charges go to an upstream on 19919 that fails (tests
# 5, 8, 9, 11 and 13; their locations: CreditTest::upstream_config(19919)),
# with memcached on 19918: their http{} setup with these credit_memcached
# options
sub main::failing_http {
    my ($opts) = @_;
    return CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                                      "127.0.0.1:19918 $opts");
}

# tests 5 and 9: $account's refund falls due while memcached is stalled
# (CreditTest::refund_due_while_stalled), memcached goes on $stall s
# later; $account's item in memcached 2.5 s after that
sub main::refund_after_stall {
    my ($account, $other, $stall) = @_;
    my $slow = CreditTest::refund_due_while_stalled(19918, 19919, $account,
                                                    $other);
    Time::HiRes::sleep($stall);
    my $item = CreditTest::resumed_item(19918, $account, 2.5);
    CreditTest::stop($slow);
    return $item;
}

# tests 10 and 11: another writer (another edge, say) sets $account's
# balance to 500 plan credits on 19918, behind this nginx's cache; the
# reply
sub main::other_writer {
    my ($account) = @_;
    return CreditTest::memcached("set test:$account 0 0 5\r\n500 0\r\n",
                                 19918) // '';
}

# tests 11 and 13: $account (granted 100) is charged through the upstream
# on 19919, which fails with 500 after 0.8 s; meanwhile, if $behind,
# another writer sets the balance behind this nginx (other_writer), and
# memcached is stopped, so the refund times out; memcached goes on 0.6 s
# later.  $account's item in memcached 2.5 s after that
sub main::refund_times_out {
    my ($account, $behind) = @_;
    CreditTest::mc_stop(19918);
    CreditTest::mc_start(19918);
    my $slow = CreditTest::failing_upstream(19919, 0.8);
    CreditTest::grant($account, 100, 0, undef);
    my $s = CreditTest::start_request('/v1/background-removal', $account);
    Time::HiRes::sleep(0.3);
    Test::More::like(CreditTest::memcached("get test:$account\r\n", 19918)
                     // '', qr/\r\n80 0\r\n/,
                     "charged while the upstream works");
    Test::More::is(main::other_writer($account), "STORED\r\n",
                   "another writer sets 500 behind this nginx") if $behind;
    CreditTest::mc_signal('STOP', 19918);
    my ($st) = CreditTest::finish_request($s);
    Test::More::is($st, 500,
                   "the upstream failed: the refund is sent to the stopped memcached");
    Time::HiRes::sleep(0.6);
    my $item = CreditTest::resumed_item(19918, $account, 2.5);
    CreditTest::stop($slow);
    return $item;
}

END {
    CreditTest::mc_stop($_) for @Ports, 19916, 19918;
    my $pid = CreditTest::mc_pid('unix');
    kill 'KILL', $pid if $pid;
}

run_tests();

__DATA__

=== TEST 1: accounts spread over three servers, each on exactly one
--- http_config
    credit_memcached 127.0.0.1:19911 127.0.0.1:19912 127.0.0.1:19913
                     timeout=300ms retry_timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- init
CreditTest::mc_start($_) for @main::Ports;
my %per;
for my $i (1 .. 60) {
    CreditTest::grant("t130-$i", 100);
    my $h = main::holder("t130-$i");
    $per{$h}++;
}
my @one = grep { !/,/ && length } keys %per;
Test::More::is(scalar(grep { /,/ || !length } keys %per), 0, "every account is on exactly one server");
Test::More::is(scalar @one, 3, "all three servers hold accounts");
Test::More::ok(!grep({ $_ < 8 } values %per), "spread: " . join(' ', map { "$_=$per{$_}" } sort keys %per));

# one server dies: its accounts fail, the others are charged
CreditTest::mc_stop(19912);
my ($ok, $down, $wrong) = (0, 0, 0);
for my $i (1 .. 60) {
    my ($st) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => "t130-$i" });
    my $on = main::holder("t130-$i");
    if ($st == 200) { $ok++ } elsif ($st == 503) { $down++ } else { $wrong++ }
}
Test::More::is($wrong, 0, "only 200 and 503 answers");
Test::More::is($down, $per{19912}, "exactly the dead server's accounts got 503 ($down)");
Test::More::is($ok, 60 - $per{19912}, "every other account was charged ($ok)");

# it comes back empty: its accounts are NOT moved, they read as empty
CreditTest::mc_start(19912);
Time::HiRes::sleep(2.2);
my @moved = grep { my $h = main::holder("t130-$_"); $h eq '19912' } 1 .. 60;
Test::More::is(scalar @moved, 0, "nothing was written to the restarted server while it was down");
--- request
GET /credit-admin/t130-1
--- response_body_like: "account":"t130-1"
--- error_log eval
qr/credit: (?:cannot connect to memcached|memcached closed the connection|memcached timed out) \(127\.0\.0\.1:19912\)/



=== TEST 2: a memcached on a unix socket (memcached on the same host)
--- http_config
    credit_memcached unix:/tmp/credit-test-mc.sock;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- init
main::mc_unix();
CreditTest::grant('t130-unix', 100);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-unix' });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 80", "charged through the socket");
Test::More::like(main::mc_unix_cmd("get test:t130-unix\r\n"), qr/\r\n80 0\r\n/, "the balance is on that memcached");
--- request
GET /credit-admin/t130-unix
--- response_body
{"account":"t130-unix","plan":80,"pack":0,"total":80}



=== TEST 3: one of two servers stalls: only its accounts wait, the others do not
A stand-in memcached that accepts and never answers holds about half of
the accounts.  While charges of those accounts hang on it, charges of
accounts on the healthy server are answered at once; the stalled ones
fail with 503 within the timeout.
--- http_config
    credit_memcached 127.0.0.1:19916 127.0.0.1:19917
                     timeout=400ms retry_timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- init
CreditTest::mc_start(19916);
my $stall = CreditTest::slow_server(19917, 3);
my (@good, @bad);
for my $i (1 .. 30) {
    CreditTest::request('PUT', "/credit-admin/t130-s$i/plan", {}, 100);
    my $on = CreditTest::memcached("get test:t130-s$i\r\n", 19916) // '';
    if ($on =~ /^VALUE/) { push @good, "t130-s$i" } else { push @bad, "t130-s$i" }
}
Test::More::ok(@good >= 5 && @bad >= 5, scalar(@good) . " accounts on the healthy server, " . scalar(@bad) . " on the stalled one");
Time::HiRes::sleep(1.2);    # past retry_timeout: the stalled server is tried again

# charges of stalled accounts go out first and hang
my $t0 = Time::HiRes::time();
my @hanging = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $CreditTest::Port) or die;
    print $s CreditTest::request_bytes('POST', '/v1/background-removal', { 'X-API-Key' => $_ }, '');
    $s;
} @bad[0 .. 4];
Time::HiRes::sleep(0.05);

# meanwhile every healthy account is charged at once
my ($ok, $slowest) = (0, 0);
for my $a (@good[0 .. 4]) {
    my $t = Time::HiRes::time();
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => $a });
    my $took = Time::HiRes::time() - $t;
    $slowest = $took if $took > $slowest;
    $ok++ if $st == 200 && $h->{'x-credits-remaining'} eq '80';
}
Test::More::is($ok, 5, "the healthy server's accounts were charged");
Test::More::ok($slowest < 0.2, sprintf("each in under 200 ms while the others hang (slowest %.0f ms)", $slowest * 1000));

my @st = map { my $r = do { local $/; <$_> } // ''; $r =~ m{^HTTP/\S+ (\d+)} ? $1 : 0 } @hanging;
my $waited = Time::HiRes::time() - $t0;
Test::More::is(join(' ', @st), '503 503 503 503 503', "the stalled server's accounts: 503");
Test::More::ok($waited < 1.5, sprintf("within the timeout (%.2f s)", $waited));
Test::More::is($good[0], 't130-s3', "the continuum is deterministic: t130-s3 is on the healthy server");
CreditTest::stop($stall);
--- request
GET /credit-admin/t130-s3
--- response_body
{"account":"t130-s3","plan":80,"pack":0,"total":80}
--- error_log
memcached timed out (127.0.0.1:19917)



=== TEST 4: memcached stalls with a charge in flight: 503, and the charge it applies on waking is given back
A real memcached is stopped (SIGSTOP) while a charge's compare-and-swap
is in flight.  The request fails with 503 within the timeout, as not
charged.  When memcached wakes up it runs the write it had buffered, and
the late reply tells nginx, which gives the credits back: the balance
ends where it started.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19918 timeout=300ms retry_timeout=1s')
--- init
CreditTest::charged_once(19918, 't130-st');

CreditTest::mc_signal('STOP', 19918);
my $t0 = Time::HiRes::time();
my ($st) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-st' });
my $took = Time::HiRes::time() - $t0;
Test::More::is($st, 503, "the charge in flight fails");
Test::More::ok($took < 1, sprintf("within the timeout (%.2f s)", $took));
my ($st2) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-st' });
Test::More::is($st2, 503, "then at once while the server is down");

Test::More::like(CreditTest::resumed_item(19918, 't130-st', 0.5), qr/\r\n80 0\r\n/, "in memcached: the late write was given back");
--- request
GET /credit-admin/t130-st
--- response_body
{"account":"t130-st","plan":80,"pack":0,"total":80}
--- error_log
memcached timed out (127.0.0.1:19918), 1 operation failed
a timed-out charge of plan 20, pack 0 on "test:t130-st" reached memcached late; giving it back



=== TEST 5: a refund while memcached is down is kept and sent when it is back
The upstream takes 0.8 s and fails with 500.  Meanwhile memcached stalls,
and a charge of another account times out on it, so the server is down
when the refund is due.  The refund is not lost: it is tried again every
second and lands once memcached answers.
--- http_config eval
main::failing_http('timeout=200ms retry_timeout=5s')
--- config eval
CreditTest::upstream_config(19919)
--- init
Test::More::like(main::refund_after_stall('t130-rf', 't130-other', 0.5),
                 qr/\r\n100 0\r\n/, "the refund landed once memcached was back");
--- request
GET /credit-admin/t130-other
--- response_body
{"account":"t130-other","plan":100,"pack":0,"total":100}
--- error_log
refund of plan 20, pack 0 to key "test:t130-rf" done after



=== TEST 6: a grant that times out on a stalled memcached and lands late is logged as applied
The admin API answers 503 (the outcome is not known yet); when memcached
wakes up and applies the write, the late reply is logged, and the
balance shows the grant.  A caller should read the balance before
repeating a grant that got a 503.
--- http_config
    credit_memcached 127.0.0.1:19918 timeout=300ms retry_timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
--- config
    location /credit-admin/ { credit_admin; }
--- init
CreditTest::mc_stop(19918);
CreditTest::mc_start(19918);
CreditTest::grant('t130-gr', 100, 0, undef);
CreditTest::mc_signal('STOP', 19918);
my ($st, $h, $body) = CreditTest::request('PUT', '/credit-admin/t130-gr/plan', {}, 500);
Test::More::is($st, 503, "the grant times out: 503");
CreditTest::mc_signal('CONT', 19918);
Time::HiRes::sleep(0.5);
--- request
GET /credit-admin/t130-gr
--- response_body
{"account":"t130-gr","plan":500,"pack":0,"total":500}
--- error_log
a timed-out grant (plan set) of plan 500, pack 0 on "test:t130-gr" reached memcached late and is applied




=== TEST 7: memcached dies with a charge in flight: the reset fails it at once, and metering resumes when it is back
A real memcached is stopped (SIGSTOP) while a charge's compare-and-swap
waits unread in its socket, then killed: the kernel answers the
connection with a reset.  The request gets 503 at once, long before the
5 s timeout, as not charged.  nginx cannot know whether such a write
landed, so it says so at "alert" with the key and the amounts (here it
did not: memcached died before reading it, and its balances died with
it).  Once memcached is back and the account granted again, the same
workers meter it without a restart.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19918 timeout=5s retry_timeout=1s')
--- init
CreditTest::charged_once(19918, 't130-rs');

CreditTest::mc_signal('STOP', 19918);
my $s = CreditTest::start_request('/v1/background-removal', 't130-rs');
Time::HiRes::sleep(0.3);
my $t0 = Time::HiRes::time();
CreditTest::mc_stop(19918);
my ($st) = CreditTest::finish_request($s);
my $took = Time::HiRes::time() - $t0;
Test::More::is($st, 503, "the charge in flight fails with 503");
# $took includes mc_stop()'s wait for the port to close (up to 2 s)
Test::More::ok($took < 3, sprintf("at the reset, not after the 5 s timeout (%.2f s)", $took));
my ($st2) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-rs' });
Test::More::is($st2, 503, "then at once while the server is down");

CreditTest::mc_start(19918);
Time::HiRes::sleep(1.2);
CreditTest::grant('t130-rs', 100, 0, undef);
my ($st3, $h3) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-rs' });
Test::More::is("$st3 $h3->{'x-credits-remaining'}", "200 80", "metered again after memcached is back");
--- request
GET /credit-admin/t130-rs
--- response_body
{"account":"t130-rs","plan":80,"pack":0,"total":80}
--- error_log
memcached closed the connection (127.0.0.1:19918), 1 operation failed
a charge of plan 20, pack 0 on "test:t130-rs" has an unknown outcome: memcached closed the connection
[alert]



=== TEST 8: a refund cut off by a reset is not sent again: it may have landed
The upstream fails with 500 after 0.8 s.  Meanwhile memcached is
stopped, so the refund waits unread in its socket, and then killed: the
connection is reset.  The refund may have landed before a reset (not
here: memcached died), so sending it again could give the credits back
twice; it is logged at "alert" with the amounts instead, and not retried.
--- http_config eval
main::failing_http('timeout=5s retry_timeout=1s')
--- config eval
CreditTest::upstream_config(19919)
--- init
CreditTest::mc_stop(19918);
CreditTest::mc_start(19918);
my $slow = CreditTest::failing_upstream(19919, 0.8);
CreditTest::grant('t130-rr', 100, 0, undef);
my $s = CreditTest::start_request('/v1/background-removal', 't130-rr');
Time::HiRes::sleep(0.3);
Test::More::like(CreditTest::memcached("get test:t130-rr\r\n", 19918) // '', qr/\r\n80 0\r\n/, "charged while the upstream works");
CreditTest::mc_signal('STOP', 19918);
my ($st) = CreditTest::finish_request($s);
Test::More::is($st, 500, "the upstream failed: the refund is due, memcached is stopped");
Time::HiRes::sleep(0.3);
CreditTest::mc_stop(19918);
CreditTest::mc_start(19918);
Time::HiRes::sleep(2.5);
Test::More::is(CreditTest::memcached("get test:t130-rr\r\n", 19918) // '', "END\r\n", "nothing sent again to the new memcached");
CreditTest::stop($slow);
--- request
GET /credit-admin/t130-rr
--- response_body
{"account":"t130-rr","plan":0,"pack":0,"total":0}
--- error_log
a refund of plan 20, pack 0 on "test:t130-rr" has an unknown outcome: memcached closed the connection
[alert]
--- no_error_log
[emerg]



=== TEST 9: a refund still owed after refund_retry is logged as lost
As test 5, but with refund_retry=2s while memcached stays down for 3.5 s
(retry_timeout=5s keeps it down for nginx): the refund is tried at once
and then every second, and after the last try it is given up and logged
at alert with the key and the amounts.  When memcached answers again the
balance is what the charge left.
--- http_config eval
main::failing_http('timeout=200ms retry_timeout=5s refund_retry=2s')
--- config eval
CreditTest::upstream_config(19919)
--- init
Test::More::like(main::refund_after_stall('t130-lost', 't130-other2', 3.5),
                 qr/\r\n80 0\r\n/, "the refund was given up: the charge stands");
--- request
GET /credit-admin/t130-lost
--- response_body
{"account":"t130-lost","plan":80,"pack":0,"total":80}
--- error_log eval
[qr/\[alert\] .* credit: refund of plan 20, pack 0 to key "test:t130-lost" is lost after 3 tries: /]



=== TEST 10: a charge sent with a stale token times out, and never lands: nothing is taken
The account's balance is in this nginx's cache when another writer
(another edge, or a grant through another nginx) changes it in
memcached.  memcached is then stopped, and the next charge, decided on
the cached balance, times out with 503.  When memcached wakes up it
refuses that write (its token is stale), and the late reply says so:
the charge is logged as not taken, and the balance is the other
writer's, whole.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19918 timeout=300ms retry_timeout=1s')
--- init
CreditTest::charged_once(19918, 't130-cf');
Test::More::is(main::other_writer('t130-cf'), "STORED\r\n", "another writer sets 500 behind this nginx");

CreditTest::mc_signal('STOP', 19918);
my ($st) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't130-cf' });
Test::More::is($st, 503, "the charge, sent with the cached token, times out");
Test::More::like(CreditTest::resumed_item(19918, 't130-cf', 0.5), qr/\r\n500 0\r\n/, "in memcached: the other writer's balance, nothing taken");
--- request
GET /credit-admin/t130-cf
--- response_body
{"account":"t130-cf","plan":500,"pack":0,"total":500}
--- error_log
memcached timed out (127.0.0.1:19918), 1 operation failed
a timed-out charge of plan 20, pack 0 on "test:t130-cf" did not land: nothing was taken



=== TEST 11: a refund sent with a stale token times out and does not land: it is sent again
The upstream fails with 500 after 0.8 s.  Meanwhile another writer
changes the balance behind this nginx, and memcached is stopped, so the
refund, decided on the cached balance, times out.  When memcached wakes
up it refuses that write (its token is stale); the late reply says the
refund did not land, and it is sent again, on a fresh read: the balance
is the other writer's plus the refund.
--- http_config eval
main::failing_http('timeout=300ms retry_timeout=1s')
--- config eval
CreditTest::upstream_config(19919)
--- init
Test::More::like(main::refund_times_out('t130-rc', 1), qr/\r\n520 0\r\n/,
                 "the refund was sent again and landed once");
--- request
GET /credit-admin/t130-rc
--- response_body
{"account":"t130-rc","plan":520,"pack":0,"total":520}
--- error_log
a timed-out refund of plan 20, pack 0 on "test:t130-rc" did not land; trying again
--- no_error_log
[alert]



=== TEST 12: a grant sent with a stale token times out and does not land: it is not applied
As test 10, for a grant through the admin API: its caller got a 503;
when memcached wakes up and refuses the write, the late reply is logged
at "warn" as not applied, and the balance is the other writer's.
--- http_config
    credit_memcached 127.0.0.1:19918 timeout=300ms retry_timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
--- config
    location /credit-admin/ { credit_admin; }
--- init
CreditTest::mc_stop(19918);
CreditTest::mc_start(19918);
CreditTest::grant('t130-gc', 100, 0, undef);
Test::More::is(main::other_writer('t130-gc'), "STORED\r\n", "another writer sets 500 behind this nginx");
CreditTest::mc_signal('STOP', 19918);
my ($st) = CreditTest::request('PUT', '/credit-admin/t130-gc/plan', {}, 300);
Test::More::is($st, 503, "the grant, sent with the cached token, times out: 503");
CreditTest::mc_signal('CONT', 19918);
Time::HiRes::sleep(0.5);
--- request
GET /credit-admin/t130-gc
--- response_body
{"account":"t130-gc","plan":500,"pack":0,"total":500}
--- error_log eval
[qr/\[warn\] .* a timed-out grant \(plan set\) of plan 300, pack 0 on "test:t130-gc" did not land: it is not applied/]



=== TEST 13: a refund that times out and lands late is applied, once
As test 11 without the other writer: memcached applies the refund it
had buffered when it wakes up, the late reply says so, and it is not
sent again: the balance is the grant's 100.
--- http_config eval
main::failing_http('timeout=300ms retry_timeout=1s')
--- config eval
CreditTest::upstream_config(19919)
--- init
Test::More::like(main::refund_times_out('t130-rl', 0), qr/\r\n100 0\r\n/,
                 "the refund landed late, once");
--- request
GET /credit-admin/t130-rl
--- response_body
{"account":"t130-rl","plan":100,"pack":0,"total":100}
--- error_log
a timed-out refund of plan 20, pack 0 on "test:t130-rl" reached memcached late and is applied
--- no_error_log
[alert]
