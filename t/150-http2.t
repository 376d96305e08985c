# Clients on HTTP/2: the same charge, body parameters, refund and JSON
# errors on HTTP/2 streams.  The tests' client speaks HTTP/1, so the test
# server hands /h2/ to a second server of the same nginx over HTTP/2
# (grpc_pass speaks HTTP/2 to its upstream, one stream per request); that
# server meters.  X-Proto shows the protocol the metered request came in.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

our $H2HttpConfig = $CreditTest::DefaultHttpConfig . <<'_EOC_';

    server {
        listen 127.0.0.1:19911 http2;
        client_body_buffer_size 16k;

        location /v1/ {
            credit on;
            credit_account $http_x_api_key;
            add_header X-Proto $server_protocol always;
            add_header X-Ledger "$credit_status $credit_route $credit_cost $credit_plan_charged $credit_pack_charged $credit_remaining" always;
            proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        }

        location /v1/images/ {
            credit on;
            credit_account $http_x_api_key;
            credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml;
            add_header X-Proto $server_protocol always;
            proxy_pass http://127.0.0.1:19910;
        }
    }
_EOC_

# the same with a memcached of its own, which TEST 6 stops
our $H2StallHttpConfig = CreditTest::with_memcached($H2HttpConfig,
                                                  '127.0.0.1:19926 timeout=5s');

our $H2Config = <<'_EOC_';
    location /h2/ {
        rewrite ^/h2(/.*)$ $1 break;
        grpc_pass grpc://127.0.0.1:19911;
    }

    location /credit-admin/ { credit_admin; }
_EOC_

our %B = (
    gen => '{"prompt":"a red fox in snow","n":2,"quality":"hd",'
           . '"size":"1792x1024"}',
    big => '{"n":3,"image":"' . ('QUJD' x 50_000) . '","size":"1024x1792"}',
);

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config', $H2Config) unless defined $block->config;
    $block->set_value('http_config', $H2HttpConfig)
        unless defined $block->http_config;
    $block->set_value('init', "CreditTest::echo_server(19910);\n"
                              . ($block->init // ''));
});

# TEST 5 has up to 180 streams in flight, each with its upstream connection
worker_connections(1024);
no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
END { CreditTest::mc_stop(19926) }
run_tests();

__DATA__

=== TEST 1: a fixed-cost route is charged on an HTTP/2 stream
--- more_headers
X-API-Key: t150-1
--- request eval
["PUT /credit-admin/t150-1/plan\n100",
 "POST /h2/v1/background-removal",
 "GET /credit-admin/t150-1"]
--- response_headers eval
["",
 "X-Proto: HTTP/2.0\nX-Credits-Cost: 20\nX-Credits-Remaining: 80\nX-Ledger: charged background-removal 20 20 0 80",
 ""]
--- response_body eval
[qq({"account":"t150-1","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/background-removal\n",
 qq({"account":"t150-1","plan":80,"pack":0,"total":80}\n)]



=== TEST 2: JSON body parameters arrive in DATA frames; the upstream gets the same bytes
The first body (200 KB) goes to a temp file (client_body_buffer_size
16k): 8 a picture, n = 3: 24; the second, hd + 1792x1024 = 12 a picture,
n = 2: 24.
--- init
CreditTest::grant('t150-2', 100);
--- more_headers
X-API-Key: t150-2
Content-Type: application/json
--- request eval
["POST /h2/v1/images/generations\n$::B{big}",
 "POST /h2/v1/images/generations\n$::B{gen}",
 "GET /credit-admin/t150-2"]
--- response_headers eval
["X-Proto: HTTP/2.0\nX-Credits-Cost: 24\nX-Credits-Remaining: 76",
 "X-Proto: HTTP/2.0\nX-Credits-Cost: 24\nX-Credits-Remaining: 52",
 ""]
--- response_body eval
[CreditTest::md5_line($::B{big}),
 CreditTest::md5_line($::B{gen}),
 qq({"account":"t150-2","plan":52,"pack":0,"total":52}\n)]
--- error_log eval
qr{a client request body is buffered to a temporary file .*"POST /v1/images/generations HTTP/2\.0"}



=== TEST 3: an upstream 500 on an HTTP/2 stream is refunded, once
--- init
CreditTest::grant('t150-3', 100);
--- more_headers
X-API-Key: t150-3
--- request eval
["GET /h2/v1/fail/500",
 "GET /credit-admin/t150-3"]
--- error_code eval
[500, 200]
--- response_headers eval
["X-Proto: HTTP/2.0\nX-Credits-Cost: 10\nX-Credits-Refunded: 10\nX-Ledger: refunded failing 10 10 0 90",
 ""]
--- response_body eval
["boom\n",
 qq({"account":"t150-3","plan":100,"pack":0,"total":100}\n)]
--- grep_error_log eval
qr/credit: refund of \d+ credits/
--- grep_error_log_out
credit: refund of 10 credits



=== TEST 4: 402 and 400 answer in JSON on HTTP/2 streams and charge nothing
--- more_headers eval
["X-API-Key: t150-4",
 "X-API-Key: t150-4",
 "X-API-Key: t150-4\nContent-Type: application/json",
 "X-API-Key: t150-4"]
--- request eval
["PUT /credit-admin/t150-4/plan\n15",
 "POST /h2/v1/background-removal",
 "POST /h2/v1/images/generations\n{\"n\":\"two\"}",
 "GET /credit-admin/t150-4"]
--- error_code eval
[200, 402, 400, 200]
--- response_headers eval
["",
 "X-Proto: HTTP/2.0\nContent-Type: application/json\nX-Credits-Cost: 20\nX-Credits-Remaining: 15",
 "X-Proto: HTTP/2.0\nContent-Type: application/json\n!X-Credits-Cost",
 ""]
--- response_body eval
[qq({"account":"t150-4","plan":15,"pack":0,"total":15}\n),
 qq({"error":"insufficient_credits","route":"background-removal","cost":20,"remaining":15,"detail":"the balance is below the cost of this request"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"must be an integer"}\n),
 qq({"account":"t150-4","plan":15,"pack":0,"total":15}\n)]



=== TEST 5: 300 requests on multiplexed HTTP/2 streams: exactly what fits is charged
h2load (nghttp2-client; make test installs it) sends 300 requests of cost
4 on 6 connections of 30 streams each, straight to the HTTP/2 server:
501 credits pay for 125 of them and leave 1.
--- init
CreditTest::grant('t150-5', 501, 0);
my $out = `h2load -n 300 -c 6 -m 30 -H 'X-API-Key: t150-5' 'http://127.0.0.1:19911/v1/upscale?width=1500' 2>&1`;
Test::More::like($out, qr/requests: 300 total, 300 started, 300 done/,
                 "h2load sent 300 requests")
    or Test::More::diag($out);
Test::More::like($out, qr/status codes: 125 2xx, 0 3xx, 175 4xx, 0 5xx/,
                 "125 charged, 175 refused with 402")
    or Test::More::diag($out);
--- request
GET /credit-admin/t150-5
--- response_body
{"account":"t150-5","plan":1,"pack":0,"total":1}



=== TEST 6: a client that leaves while its HTTP/2 stream's charge waits on memcached gets it back
The client closes its connection to the test server, which closes its
HTTP/2 connection to the metered server while memcached is stopped; when
memcached resumes the charge lands and is given back at once.
--- http_config eval
$::H2StallHttpConfig
--- init
CreditTest::leave_while_charging(19926, '/h2/v1/background-removal', 't150-6');
--- request
GET /credit-admin/t150-6
--- response_body
{"account":"t150-6","plan":100,"pack":0,"total":100}
--- error_log eval
qr{credit: refund of 20 credits \(plan 20, pack 0\) to "t150-6": client closed the connection, .*"POST /v1/background-removal HTTP/2\.0"}
