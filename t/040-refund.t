# Refunds: the exact charge goes back to the buckets it came from, once,
# when the final status is a refund status (default: every 5xx, nginx's own
# 502/504 included); never for a 4xx.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
add_block_preprocessor(\&CreditTest::defaults);
END { CreditTest::mc_stop(19925) }
run_tests();

__DATA__

=== TEST 1: an upstream 500 is refunded, once
--- init
CreditTest::grant('t040-1', 100);
--- more_headers
X-API-Key: t040-1
--- request eval
["POST /v1/fail/500",
 "GET /credit-admin/t040-1"]
--- error_code eval
[500, 200]
--- response_headers eval
["X-Credits-Cost: 10\nX-Credits-Remaining: 90\nX-Credits-Refunded: 10\nX-Ledger: refunded failing 10 10 0 90", ""]
--- response_body eval
["boom\n",
 qq({"account":"t040-1","plan":100,"pack":0,"total":100}\n)]
--- grep_error_log eval
qr/credit: refund of \d+ credits/
--- grep_error_log_out
credit: refund of 10 credits



=== TEST 2: an upstream 503 is refunded, a 404 is not
--- more_headers
X-API-Key: t040-2
--- request eval
["PUT /credit-admin/t040-2/plan\n100",
 "POST /v1/fail/503",
 "POST /v1/fail/404",
 "GET /credit-admin/t040-2"]
--- error_code eval
[200, 503, 404, 200]
--- response_headers eval
["", "X-Credits-Refunded: 10", "!X-Credits-Refunded\nX-Credits-Cost: 10", ""]
--- response_body eval
[qq({"account":"t040-2","plan":100,"pack":0,"total":100}\n),
 "busy\n",
 "nope\n",
 qq({"account":"t040-2","plan":90,"pack":0,"total":90}\n)]



=== TEST 3: a dead upstream: nginx's own 502 is refunded
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:9;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t040-3
--- request eval
["PUT /credit-admin/t040-3/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/t040-3"]
--- error_code eval
[200, 502, 200]
--- response_headers eval
["", "X-Credits-Cost: 20\nX-Credits-Refunded: 20", ""]
--- response_body_like eval
["", "502 Bad Gateway", qq("plan":100,)]



=== TEST 4: a slow upstream: nginx's own 504 is refunded
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_read_timeout 300ms;
        proxy_pass http://127.0.0.1:19851;
    }
    location /credit-admin/ { credit_admin; }
--- init
CreditTest::slow_server(19851, 3);
--- more_headers
X-API-Key: t040-4
--- request eval
["PUT /credit-admin/t040-4/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/t040-4"]
--- error_code eval
[200, 504, 200]
--- response_headers eval
["", "X-Credits-Cost: 20\nX-Credits-Refunded: 20", ""]
--- response_body_like eval
["", "504 Gateway Time-out", qq("plan":100,)]



=== TEST 5: a refund goes back to the buckets it came from
10 plan + 50 pack, a 50-credit tool fails: 10 back to plan, 40 to pack.
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        add_header X-Ledger "$credit_status $credit_cost $credit_plan_charged $credit_pack_charged" always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/v1/fail/500;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t040-5
--- request eval
["PUT /credit-admin/t040-5/plan\n10",
 "POST /credit-admin/t040-5/pack\n50",
 "POST /v1/image-enhance",
 "GET /credit-admin/t040-5"]
--- error_code eval
[200, 200, 500, 200]
--- response_headers eval
["", "", "X-Ledger: refunded 50 10 40\nX-Credits-Refunded: 50", ""]
--- response_body eval
[qq({"account":"t040-5","plan":10,"pack":0,"total":10}\n),
 qq({"account":"t040-5","plan":10,"pack":50,"total":60}\n),
 "boom\n",
 qq({"account":"t040-5","plan":10,"pack":50,"total":60}\n)]



=== TEST 6: credit_refund_status lists the refund statuses
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        credit_refund_status 500 404;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t040-6
--- request eval
["PUT /credit-admin/t040-6/plan\n100",
 "POST /v1/fail/500",
 "POST /v1/fail/503",
 "POST /v1/fail/404",
 "GET /credit-admin/t040-6"]
--- error_code eval
[200, 500, 503, 404, 200]
--- response_headers eval
["", "X-Credits-Refunded: 10", "!X-Credits-Refunded", "X-Credits-Refunded: 10", ""]
--- response_body_like eval
["", "boom", "busy", "nope", qq("plan":90,)]



=== TEST 7: error_page to another metered location: charged once, refunded once
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_intercept_errors on;
        error_page 500 502 503 /v1/sorry;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location = /v1/sorry {
        credit on;
        credit_account $http_x_api_key;
        return 503 "sorry\n";
    }
    location /credit-admin/ { credit_admin; }
--- init
CreditTest::grant('t040-7', 100);
--- more_headers
X-API-Key: t040-7
--- request eval
["POST /v1/fail/500",
 "GET /credit-admin/t040-7"]
--- error_code eval
[500, 200]
--- response_headers eval
["X-Credits-Cost: 10\nX-Credits-Refunded: 10", ""]
--- response_body eval
["sorry\n",
 qq({"account":"t040-7","plan":100,"pack":0,"total":100}\n)]
--- grep_error_log eval
qr/credit: refund of \d+ credits/
--- grep_error_log_out
credit: refund of 10 credits



=== TEST 8: proxy_next_upstream: a retry that succeeds is charged once, not refunded
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    upstream pair {
        server 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        server 127.0.0.1:19852;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 502 "first is down\n"; }
    }
    server {
        listen 127.0.0.1:19852;
        location / { return 200 "second ok\n"; }
    }
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_next_upstream error timeout http_502 non_idempotent;
        proxy_pass http://pair;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t040-8
--- request eval
["PUT /credit-admin/t040-8/plan\n100",
 "POST /v1/background-removal",
 "POST /v1/background-removal",
 "GET /credit-admin/t040-8"]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 20\n!X-Credits-Refunded", "X-Credits-Cost: 20\n!X-Credits-Refunded", ""]
--- response_body eval
[qq({"account":"t040-8","plan":100,"pack":0,"total":100}\n),
 "second ok\n", "second ok\n",
 qq({"account":"t040-8","plan":60,"pack":0,"total":60}\n)]
--- no_error_log
credit: refund of



=== TEST 9: proxy_next_upstream: every try fails: one refund
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    upstream pair {
        server 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        server 127.0.0.1:19852;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 502 "first is down\n"; }
    }
    server {
        listen 127.0.0.1:19852;
        location / { return 502 "second is down\n"; }
    }
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_next_upstream error timeout http_502 non_idempotent;
        proxy_pass http://pair;
    }
    location /credit-admin/ { credit_admin; }
--- init
CreditTest::grant('t040-9', 100);
--- more_headers
X-API-Key: t040-9
--- request eval
["POST /v1/background-removal",
 "GET /credit-admin/t040-9"]
--- error_code eval
[502, 200]
--- response_headers eval
["X-Credits-Refunded: 20", ""]
--- response_body_like eval
["is down", qq("plan":100,)]
--- grep_error_log eval
qr/credit: refund of \d+ credits/
--- grep_error_log_out
credit: refund of 20 credits



=== TEST 10: credit_refund_status off: failures are not refunded
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        credit_refund_status off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t040-10
--- request eval
["PUT /credit-admin/t040-10/plan\n100",
 "POST /v1/fail/500",
 "GET /credit-admin/t040-10"]
--- error_code eval
[200, 500, 200]
--- response_headers eval
["", "!X-Credits-Refunded", ""]
--- response_body_like eval
["", "boom", qq("plan":90,)]



=== TEST 11: a client that leaves while its charge waits on memcached gets it back
memcached is stopped (SIGSTOP) while the charge is sent; the client closes
its connection; memcached resumes, the charge lands, and the worker, which
saw the client go, gives it back at once: the balance is whole again.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19925 timeout=5s')
--- init
CreditTest::leave_while_charging(19925, '/v1/background-removal', 't040-11');
--- request
GET /credit-admin/t040-11
--- response_body
{"account":"t040-11","plan":100,"pack":0,"total":100}
--- error_log
credit: refund of 20 credits (plan 20, pack 0) to "t040-11": client closed the connection



=== TEST 12: credit_refund_status 499: a client that leaves while the upstream works gets its charge back
The charge lands and the request goes to an upstream that takes a second
to answer; the client closes its connection before that.  nginx ends the
request with 499, which is listed here, and the log phase gives the
charge back: the balance is whole again.
--- config eval
CreditTest::upstream_config(19927)
    =~ s/(credit_account \$http_x_api_key;\n)/$1        credit_refund_status 5xx 499;\n/r
--- init
CreditTest::leave_while_proxied(19927, 't040-12');
--- request
GET /credit-admin/t040-12
--- response_body
{"account":"t040-12","plan":100,"pack":0,"total":100}
--- error_log
client prematurely closed connection
credit: refund of 20 credits (plan 20, pack 0) to "t040-12": request failed



=== TEST 13: a subrequest that fails does not refund its main request
A mirror of a metered request gets a 500, and with log_subrequest on its
log phase runs too: the main request, answered 200, stays charged, and
is counted once.
--- config eval
$CreditTest::DefaultConfig . <<'_EOC_'
    location = /v1/mirrored/background-removal {
        credit on;
        credit_account $http_x_api_key;
        mirror /mirror;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/v1/background-removal;
    }
    location = /mirror {
        internal;
        log_subrequest on;
        return 500;
    }
    location = /credit-stats { credit_stats; }
_EOC_
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: mirrored
    match: { method: POST, path: /v1/mirrored/background-removal }
    cost: 20
  - name: background-removal
    match: { method: POST, path: /v1/background-removal }
    cost: 20
--- more_headers
X-API-Key: t040-13
--- request eval
["PUT /credit-admin/t040-13/plan\n100",
 "POST /v1/mirrored/background-removal",
 "GET /credit-admin/t040-13",
 "GET /credit-stats"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[qq({"account":"t040-13","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/background-removal\n",
 qq({"account":"t040-13","plan":80,"pack":0,"total":80}\n),
 qq({"requests":{"charged":1,"refunded":0,"free":0,"insufficient":0,"invalid":0,"unpriced":0,"missing_account":0,"unmetered":0,"error":0},"credits":{"charged":20,"refunded":0},"memcached":{"failures":0}}\n)]
--- no_error_log
credit: refund



=== TEST 14: by default a client that leaves while the upstream works stays charged
The same as test 12 without 499 in credit_refund_status: the request was
charged and proxied, and a client that does not wait for the answer does
not get the charge back.
--- config eval
CreditTest::upstream_config(19928)
--- init
CreditTest::leave_while_proxied(19928, 't040-14');
--- request
GET /credit-admin/t040-14
--- response_body
{"account":"t040-14","plan":80,"pack":0,"total":80}
--- error_log
client prematurely closed connection
--- no_error_log
credit: refund
