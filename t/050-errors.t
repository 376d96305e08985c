# The error answers: 401 missing_account, 403 unpriced_route, unmatched
# free, and memcached down with credit_fail closed (503 + Retry-After) or
# open (passes uncharged, logged).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
add_block_preprocessor(\&CreditTest::defaults);
run_tests();

__DATA__

=== TEST 1: no account is a 401, nothing reaches the upstream
--- request
POST /v1/background-removal
--- error_code: 401
--- response_headers
Content-Type: application/json
!X-Credits-Cost
--- response_body
{"error":"missing_account","route":"background-removal","detail":"the request names no account"}



=== TEST 2: an empty account is a 401 too
--- more_headers
X-API-Key:
--- request
POST /v1/background-removal
--- error_code: 401
--- response_body_like: "error":"missing_account"



=== TEST 3: no route matches and unmatched: deny: 403
--- more_headers
X-API-Key: t050-3
--- request
POST /v1/teleport
--- error_code: 403
--- response_body
{"error":"unpriced_route","detail":"no route of the cost matrix matches this request"}



=== TEST 4: unmatched: free passes at cost 0, without an account
--- user_files
>>> credits.yaml
version: 1
unmatched: free
routes:
  - name: gen
    match: { path: /v1/gen }
    cost: 3
--- request eval
["GET /v1/docs", "GET /v1/gen"]
--- error_code eval
[200, 401]
--- response_headers eval
["X-Credits-Cost: 0\n!X-Credits-Remaining", ""]
--- response_body_like eval
["ok GET /v1/docs", "missing_account"]



=== TEST 5: memcached unreachable, credit_fail closed: 503 with Retry-After
--- http_config
    credit_memcached 127.0.0.1:19853 timeout=200ms connect_timeout=100ms;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        add_header X-Status $credit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t050-5
--- request eval
["POST /v1/background-removal", "GET /credit-admin/t050-5"]
--- error_code eval
[503, 503]
--- response_headers eval
["Retry-After: 1\nX-Status: error\nContent-Type: application/json", "Retry-After: 1"]
--- response_body eval
[qq({"error":"metering_unavailable","route":"background-removal","detail":"credit metering is unavailable, retry later"}\n),
 qq({"error":"metering_unavailable","detail":"memcached is unreachable"}\n)]
--- error_log
refused (credit_fail closed)
credit: connect() to memcached 127.0.0.1:19853 failed (111: Connection refused)
--- no_error_log
recv() failed



=== TEST 6: memcached unreachable, credit_fail open: passes uncharged, logged
--- http_config
    credit_memcached 127.0.0.1:19853 timeout=200ms connect_timeout=100ms;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- config
    location /v1/ {
        credit on;
        credit_fail open;
        credit_account $http_x_api_key;
        add_header X-Status $credit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- more_headers
X-API-Key: t050-6
--- request
POST /v1/background-removal
--- error_code: 200
--- response_headers
X-Status: unmetered
!X-Credits-Cost
--- response_body
ok
--- error_log
credit: memcached unavailable, request of "t050-6" passed uncharged (credit_fail open)



=== TEST 7: a stalled memcached fails within the timeout
--- http_config
    credit_memcached 127.0.0.1:19854 timeout=300ms;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- init
CreditTest::slow_server(19854, 5);
--- more_headers
X-API-Key: t050-7
--- request
POST /v1/background-removal
--- timeout: 2
--- error_code: 503
--- response_body_like: metering_unavailable
--- error_log
credit: memcached charge of "credit:t050-7" failed



=== TEST 8: a request to a location without credit is not metered
--- config
    location /v1/ {
        return 200 "plain\n";
    }
--- request
POST /v1/background-removal
--- response_headers
!X-Credits-Cost
--- response_body
plain



=== TEST 9: HEAD gets the error status and headers without a body
--- more_headers
X-API-Key: t050-9-nobody
--- request
HEAD /v1/upscale?width=10
--- error_code: 402
--- response_headers
X-Credits-Cost: 1
X-Credits-Remaining: 0
--- response_body:



=== TEST 10: a memcached that takes no connection fails within connect_timeout
A listener whose queue is full drops the SYN, as a host that is down or
firewalled does: the connect hangs, and connect_timeout, not timeout,
ends it; the server is then left alone for retry_timeout.
--- http_config
    credit_memcached 127.0.0.1:19855 timeout=5s connect_timeout=200ms retry_timeout=10s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- init
my $addr = Socket::pack_sockaddr_in(19855, Socket::inet_aton('127.0.0.1'));
socket($main::Full, Socket::PF_INET(), Socket::SOCK_STREAM(), 0) or die;
setsockopt($main::Full, Socket::SOL_SOCKET(), Socket::SO_REUSEADDR(), 1);
bind($main::Full, $addr) or die "bind: $!";
listen($main::Full, 0) or die "listen: $!";    # one connection, not accepted
@main::Queued = map {
    my $c = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0);
    $c->connect($addr);
    $c;
} 1 .. 2;
my $t0 = Time::HiRes::time();
my ($st) = CreditTest::request('POST', '/v1/background-removal',
                               { 'X-API-Key' => 't050-10' });
my $took = Time::HiRes::time() - $t0;
Test::More::is($st, 503, "the charge fails");
Test::More::cmp_ok($took, '>=', 0.15, "after the connect was given time");
Test::More::cmp_ok($took, '<', 1, "within connect_timeout, not timeout (took ${took}s)");
--- more_headers
X-API-Key: t050-10
--- request
POST /v1/background-removal
--- timeout: 1
--- error_code: 503
--- response_body_like: metering_unavailable
--- error_log
credit: memcached connect timed out (127.0.0.1:19855), 1 operation failed
credit: memcached operation on "credit:t050-10" not sent: memcached server is down



=== TEST 11: a route for GET prices HEAD too, as a backend serves it
A backend answers HEAD by running its GET handler (Flask, Django,
Express, Go's ServeMux do), so HEAD on a GET route is charged as GET:
it once went through free under unmatched: free (and was a 403 under
deny). nginx's limit_except treats GET the same way.
--- user_files
>>> credits.yaml
version: 1
unmatched: free
routes:
  - name: gen
    match: { method: GET, path: /v1/gen }
    cost: 3
--- more_headers
X-API-Key: t050-11
--- request eval
["PUT /credit-admin/t050-11/plan\n10", "HEAD /v1/gen", "GET /v1/gen",
 "POST /v1/gen", "GET /credit-admin/t050-11"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 3\nX-Credits-Remaining: 7",
 "X-Credits-Cost: 3\nX-Credits-Remaining: 4",
 "X-Credits-Cost: 0\n!X-Credits-Remaining", ""]
--- response_body eval
[qq({"account":"t050-11","plan":10,"pack":0,"total":10}\n), "",
 "ok GET /v1/gen\n", "ok POST /v1/gen\n",
 qq({"account":"t050-11","plan":4,"pack":0,"total":4}\n)]
