# nginx -s reload with a new matrix applies the new prices; a broken new
# matrix fails the reload and the old configuration keeps running.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

master_on();
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

sub main::cost {
    my ($st, $h) = CreditTest::request('POST', '/v1/gen',
                                       { 'X-API-Key' => 't100' });
    return $h->{'x-credits-cost'} // "status $st";
}

sub main::write_matrix {
    my ($text) = @_;
    my $f = "$ENV{TEST_NGINX_SERVER_ROOT}/html/credits.yaml";
    open my $out, '>', $f or die $!;
    print $out $text;
    close $out;
}

sub main::reload {
    kill 'HUP', CreditTest::master_pid();
}

sub main::wait_cost {
    my ($want) = @_;
    my $got;
    for (1 .. 100) {
        $got = main::cost();
        return $got if $got eq $want;
        Time::HiRes::sleep(0.05);
    }
    return $got;
}

# tests 3 and 4: reloads, and checks that the old worker exits at
# worker_shutdown_timeout (1 s), within $late s of the reload
sub main::reload_until_exit {
    my ($late) = @_;
    my ($old) = CreditTest::worker_pids();
    main::reload();                     # the old worker starts shutting down
    my $t0 = Time::HiRes::time();
    Time::HiRes::sleep(0.05) while kill(0, $old) && Time::HiRes::time() - $t0 < 5;
    my $took = Time::HiRes::time() - $t0;
    Test::More::ok(!kill(0, $old),
                   sprintf("the old worker exited (after %.1f s)", $took));
    Test::More::ok($took >= 0.9 && $took < $late,
                   "at worker_shutdown_timeout, not at refund_retry");
}

END { CreditTest::mc_stop(19920) }

run_tests();

__DATA__

=== TEST 1: a reload applies new prices; a broken matrix keeps the old ones
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    cost: 20
--- init
CreditTest::grant('t100', 1000);
Test::More::is(main::cost(), 20, "the first price");
main::write_matrix("version: 1\nroutes:\n  - name: gen\n    match: { path: /v1/gen }\n    cost: 25\n");
main::reload();
Test::More::is(main::wait_cost(25), 25, "the new price after a reload");
main::write_matrix("version: 1\nroutes:\n  - name: gen\n    match: { path: /v1/gen }\n    cost: 30\n    surprise: 1\n");
main::reload();
Time::HiRes::sleep(1);
Test::More::is(main::cost(), 25, "a broken matrix leaves the running prices");
--- request
GET /credit-admin/t100
--- response_body_like: "account":"t100"
--- error_log
credits.yaml:6: unknown key "surprise" in a route


=== TEST 2: a worker shutting down after a reload still delivers the refund it owes
As t/130-servers.t TEST 5, but nginx is reloaded while the refund waits
for memcached: the old worker does not exit with the debt, it sends the
refund when memcached is back.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19920 timeout=200ms retry_timeout=5s')
--- config eval
CreditTest::upstream_config(19921)
--- init
my $slow = CreditTest::refund_due_while_stalled(19920, 19921, 't100-rl', 't100-rl-other');
main::reload();                         # the old worker starts shutting down
Time::HiRes::sleep(0.5);
Test::More::like(CreditTest::resumed_item(19920, 't100-rl', 2.5), qr/\r\n100 0\r\n/, "the refund landed, sent by the old worker");
CreditTest::stop($slow);
--- request
GET /credit-admin/t100-rl
--- response_body
{"account":"t100-rl","plan":100,"pack":0,"total":100}
--- error_log
refund of plan 20, pack 0 to key "test:t100-rl" done after



=== TEST 3: worker_shutdown_timeout ends a worker that waits for a late reply: its write is logged as of unknown outcome
A charge times out on a stopped memcached, so the worker keeps its
connection for the late reply (for up to 60 s).  After a reload with
worker_shutdown_timeout 1s, the old worker does not wait that long: at
the timeout nginx closes its connections, the memcached one too, the
charge is logged at "alert" as of unknown outcome with the key and the
amounts, and the worker exits.  Here the charge does land when
memcached wakes up, and nobody is left to give it back: the balance
shows it, as the log line says it may.
--- main_config
    worker_shutdown_timeout 1s;
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19920 timeout=200ms retry_timeout=5s')
--- init
CreditTest::charged_once(19920, 't100-gh');
CreditTest::mc_signal('STOP', 19920);
my ($st) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't100-gh' });
Test::More::is($st, 503, "the next charge times out: its late reply is awaited");
main::reload_until_exit(2);
Test::More::like(CreditTest::resumed_item(19920, 't100-gh', 0.5), qr/\r\n60 0\r\n/, "the write landed late, and was not given back");
--- request
GET /credit-admin/t100-gh
--- response_body
{"account":"t100-gh","plan":60,"pack":0,"total":60}
--- error_log eval
[qr/\[alert\] .* credit: a timed-out charge of plan 20, pack 0 on "test:t100-gh" has an unknown outcome: the worker is exiting/,
 "credit: worker_shutdown_timeout: closing the memcached connections"]



=== TEST 4: worker_shutdown_timeout ends a worker that owes a refund: the refund is logged as lost
As test 2, but with worker_shutdown_timeout 1s, and memcached is killed
before the reload, so the old worker has no connection to it that nginx
could close at the timeout: its retries of the refund find the time is
up (counted from the first retry that saw the worker exiting, so up to a
second late), log the refund at "alert" as lost with the key and the
amounts, and let the worker exit, where without the timeout it would
keep trying for refund_retry (5 minutes).
--- main_config
    worker_shutdown_timeout 1s;
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19920 timeout=200ms retry_timeout=5s')
--- config eval
CreditTest::upstream_config(19921)
--- init
my $slow = CreditTest::refund_due_while_stalled(19920, 19921, 't100-nc', 't100-nc-other');
CreditTest::mc_stop(19920);
main::reload_until_exit(3.5);
CreditTest::stop($slow);
CreditTest::mc_start(19920);
--- request
GET /credit-admin/t100-nc
--- response_body
{"account":"t100-nc","plan":0,"pack":0,"total":0}
--- error_log eval
[qr/\[alert\] .* credit: a timed-out charge of plan 20, pack 0 on "test:t100-nc-other" has an unknown outcome: memcached closed the connection/,
 qr/\[alert\] .* credit: refund of plan 20, pack 0 to key "test:t100-nc" is lost: the worker exits before memcached took it/]



=== TEST 5: worker_shutdown_timeout while a request waits for its charge: the request ends with the worker
memcached is stopped while a charge is in flight (with a 10 s timeout),
and nginx is reloaded with worker_shutdown_timeout 1s.  At the timeout
nginx closes the client's connection and the module its memcached one:
the waiting request is ended (its client gets no answer), the write is
logged at "alert" as of unknown outcome, and the old worker exits
cleanly.  The charge does land when memcached wakes up, as the log line
says it may.
--- main_config
    worker_shutdown_timeout 1s;
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19920 timeout=10s retry_timeout=5s')
--- init
CreditTest::charged_once(19920, 't100-wt');
CreditTest::mc_signal('STOP', 19920);
my $s = CreditTest::start_request('/v1/background-removal', 't100-wt');
Time::HiRes::sleep(0.3);
main::reload_until_exit(2);
my ($st) = CreditTest::finish_request($s);
Test::More::is($st, 0, "the waiting request ended without an answer");
Test::More::like(CreditTest::resumed_item(19920, 't100-wt', 0.5), qr/\r\n60 0\r\n/, "the charge landed late");
--- request
GET /credit-admin/t100-wt
--- response_body
{"account":"t100-wt","plan":60,"pack":0,"total":60}
--- error_log eval
[qr/\[alert\] .* credit: a charge of plan 20, pack 0 on "test:t100-wt" has an unknown outcome: the worker is exiting/]
--- no_error_log
exited on signal
