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
--- http_config
    credit_memcached 127.0.0.1:19920 timeout=200ms retry_timeout=5s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:19921;
    }
    location /credit-admin/ { credit_admin; }
--- init
my $slow = CreditTest::refund_due_while_stalled(19920, 19921, 't100-rl', 't100-rl-other');
main::reload();                         # the old worker starts shutting down
Time::HiRes::sleep(0.5);
CreditTest::mc_signal('CONT', 19920);
Time::HiRes::sleep(2.5);
Test::More::like(CreditTest::memcached("get test:t100-rl\r\n", 19920) // '', qr/\r\n100 0\r\n/, "the refund landed, sent by the old worker");
CreditTest::stop($slow);
--- request
GET /credit-admin/t100-rl
--- response_body
{"account":"t100-rl","plan":100,"pack":0,"total":100}
--- error_log
refund of plan 20, pack 0 to key "test:t100-rl" done after
