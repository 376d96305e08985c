# memcached work never blocks a worker: with ONE worker and a memcached
# that holds every reply for a second, another location answers at once,
# and several slow charges overlap instead of queueing behind each other.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

workers(1);
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

run_tests();

__DATA__

=== TEST 1: a slow memcached does not delay other requests on the worker
--- http_config
    credit_memcached 127.0.0.1:19880 timeout=5s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location = /ping {
        return 200 "pong\n";
    }
--- init
CreditTest::slow_server(19880, 1);
my $t0 = Time::HiRes::time();
my $slow = CreditTest::start_request('/v1/background-removal', 't080-1');
Time::HiRes::sleep(0.1);
my $t1 = Time::HiRes::time();
my ($st, $h, $body) = CreditTest::request('GET', '/ping');
my $ping = Time::HiRes::time() - $t1;
Test::More::is($body, "pong\n", "the other location answered");
Test::More::cmp_ok($ping, '<', 0.3, "at once (${ping}s) while memcached holds its reply");
my ($st2) = CreditTest::finish_request($slow);
my $charge = Time::HiRes::time() - $t0;
Test::More::is($st2, 402, "the metered request got its answer (an unknown account)");
Test::More::cmp_ok($charge, '>=', 0.9, "after memcached's delay (${charge}s)");
--- request
GET /ping
--- response_body
pong



=== TEST 2: slow charges overlap: 4 charges of 1 s each take about 1 s
--- http_config
    credit_memcached 127.0.0.1:19881 timeout=5s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- init
CreditTest::slow_server(19881, 1);
my $t0 = Time::HiRes::time();
my @s = map { CreditTest::start_request('/v1/background-removal', "t080-2-$_") } 1 .. 4;
my @st = map { (CreditTest::finish_request($_))[0] } @s;
my $took = Time::HiRes::time() - $t0;
Test::More::is("@st", "402 402 402 402", "all four answered");
Test::More::cmp_ok($took, '<', 2.5, "in parallel (${took}s), not one after another");
--- request
GET /
--- response_body_like: It works



=== TEST 3: a bounded queue: past max_pending a charge is a 503 at once, not a hang
--- http_config
    credit_memcached 127.0.0.1:19882 timeout=3s max_pending=2;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- init
CreditTest::slow_server(19882, 1);
my $t0 = Time::HiRes::time();
my @s = map { CreditTest::start_request('/v1/background-removal', "t080-3-$_") } 1 .. 5;
my @st = sort map { (CreditTest::finish_request($_))[0] } @s;
my $took = Time::HiRes::time() - $t0;
Test::More::is("@st", "402 402 503 503 503", "two waited for memcached, three were refused");
--- request
GET /
--- response_body_like: It works
--- error_log
too many memcached operations pending
