# credit_stats: the counters of what metering did, by $credit_status, the
# credits charged and refunded, and memcached's failures, summed over the
# workers, as JSON.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

no_shuffle();
workers(2);
master_on();
add_block_preprocessor(sub {
    my $block = shift;
    CreditTest::defaults($block);
});

run_tests();

__DATA__

=== TEST 1: every outcome is counted once, over two workers
Each request on a new connection, so the two workers share them.
--- config eval
$CreditTest::DefaultConfig . <<'_EOC_'
    location = /credit-stats { credit_stats; }
    location /free/ { proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT; }
_EOC_
--- init
CreditTest::grant('t170-1', 100);
my @res;
for my $i (1 .. 3) {      # 3 charged: 60
    push @res, (CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't170-1' }))[0];
}
push @res, (CreditTest::request('POST', '/v1/fail/500', { 'X-API-Key' => 't170-1' }))[0];          # refunded 10
push @res, (CreditTest::request('POST', '/v1/reels/4s', { 'X-API-Key' => 't170-1' }))[0];          # insufficient
push @res, (CreditTest::request('POST', '/v1/reels/5s', { 'X-API-Key' => 't170-1' }))[0];          # invalid
push @res, (CreditTest::request('POST', '/v1/nothing-here', { 'X-API-Key' => 't170-1' }))[0];      # unpriced
push @res, (CreditTest::request('POST', '/v1/background-removal', {}))[0];                         # missing_account
push @res, (CreditTest::request('GET', '/v1/preview/x', { 'X-API-Key' => 't170-1' }))[0];       # free
push @res, (CreditTest::request('GET', '/free/x', {}))[0];                                         # not metered
push @res, (CreditTest::request('GET', '/credit-admin/t170-1', {}))[0];                            # not metered
Test::More::is("@res", "200 200 200 500 402 400 403 401 200 200 200", "the answers");
--- request
GET /credit-stats
--- response_headers
Content-Type: application/json
--- response_body
{"requests":{"charged":3,"refunded":1,"free":1,"insufficient":1,"invalid":1,"unpriced":1,"missing_account":1,"unmetered":0,"error":0},"credits":{"charged":70,"refunded":10},"memcached":{"failures":0}}



=== TEST 2: memcached unreachable: errors, passes and the server's failures
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19932 timeout=200ms connect_timeout=100ms retry_timeout=1s')
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location = /v1/background-removal {
        credit on;
        credit_fail open;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location = /credit-stats { credit_stats; }
--- init
my @res;
push @res, (CreditTest::request('POST', '/v1/image-enhance', { 'X-API-Key' => 't170-2' }))[0];
push @res, (CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't170-2' }))[0];
Test::More::is("@res", "503 200", "closed, then open");
--- request
GET /credit-stats
--- response_body_like: ^\{"requests":\{"charged":0,"refunded":0,"free":0,"insufficient":0,"invalid":0,"unpriced":0,"missing_account":0,"unmetered":1,"error":1\},"credits":\{"charged":0,"refunded":0\},"memcached":\{"failures":[1-9]\d*\}\}$



=== TEST 3: only GET, and no memcached needed
--- http_config
--- config
    location = /credit-stats { credit_stats; }
--- request
POST /credit-stats
--- error_code: 405
--- response_body
{"error":"method_not_allowed","detail":"use GET"}



=== TEST 4: the counters go on across a reload
--- config eval
$CreditTest::DefaultConfig
    . "    location = /credit-stats { credit_stats; }\n"
--- init
CreditTest::grant('t170-4', 100);
my @res;
push @res, (CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't170-4' }))[0] for 1 .. 2;
kill 'HUP', CreditTest::master_pid();
Time::HiRes::sleep(1.5);        # the old workers are gone
push @res, (CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't170-4' }))[0];
Test::More::is("@res", "200 200 200", "charged twice, reloaded, charged once more");
--- request
GET /credit-stats
--- response_body
{"requests":{"charged":3,"refunded":0,"free":0,"insufficient":0,"invalid":0,"unpriced":0,"missing_account":0,"unmetered":0,"error":0},"credits":{"charged":60,"refunded":0},"memcached":{"failures":0}}
