# Charging: fixed costs, plan first then pack, mixed deduction, 402 with
# nothing deducted, the X-Credits-* headers and the $credit_* variables.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);
run_tests();

__DATA__

=== TEST 1: a fixed-cost route is charged from plan credits
--- more_headers
X-API-Key: t020-1
--- request eval
["PUT /credit-admin/t020-1/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/t020-1"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["!X-Credits-Cost",
 "X-Credits-Cost: 20\nX-Credits-Remaining: 80\n!X-Credits-Refunded\nX-Ledger: charged background-removal 20 20 0 80",
 "!X-Credits-Cost"]
--- response_body eval
[qq({"account":"t020-1","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/background-removal\n",
 qq({"account":"t020-1","plan":80,"pack":0,"total":80}\n)]



=== TEST 2: mixed deduction takes the plan rest, then pack
10 plan + 50 pack, a 50-credit tool: 10 from plan, 40 from pack.
--- more_headers
X-API-Key: t020-2
--- request eval
["PUT /credit-admin/t020-2/plan\n10",
 "POST /credit-admin/t020-2/pack\n50",
 "POST /v1/image-enhance",
 "GET /credit-admin/t020-2"]
--- response_headers eval
["", "",
 "X-Credits-Cost: 50\nX-Credits-Remaining: 10\nX-Ledger: charged image-enhance 50 10 40 10",
 ""]
--- response_body eval
[qq({"account":"t020-2","plan":10,"pack":0,"total":10}\n),
 qq({"account":"t020-2","plan":10,"pack":50,"total":60}\n),
 "ok POST /v1/image-enhance\n",
 qq({"account":"t020-2","plan":0,"pack":10,"total":10}\n)]



=== TEST 3: plan covers the whole cost: pack is untouched
--- more_headers
X-API-Key: t020-3
--- request eval
["PUT /credit-admin/t020-3/plan\n100",
 "POST /credit-admin/t020-3/pack\n50",
 "POST /v1/background-removal",
 "GET /credit-admin/t020-3"]
--- response_body eval
[qq({"account":"t020-3","plan":100,"pack":0,"total":100}\n),
 qq({"account":"t020-3","plan":100,"pack":50,"total":150}\n),
 "ok POST /v1/background-removal\n",
 qq({"account":"t020-3","plan":80,"pack":50,"total":130}\n)]



=== TEST 4: pack only
--- more_headers
X-API-Key: t020-4
--- request eval
["POST /credit-admin/t020-4/pack\n100",
 "POST /v1/image-enhance",
 "GET /credit-admin/t020-4"]
--- response_headers eval
["", "X-Ledger: charged image-enhance 50 0 50 50", ""]
--- response_body eval
[qq({"account":"t020-4","plan":0,"pack":100,"total":100}\n),
 "ok POST /v1/image-enhance\n",
 qq({"account":"t020-4","plan":0,"pack":50,"total":50}\n)]



=== TEST 5: a short balance is a 402 and nothing is deducted
--- more_headers
X-API-Key: t020-5
--- request eval
["PUT /credit-admin/t020-5/plan\n10",
 "POST /credit-admin/t020-5/pack\n5",
 "POST /v1/image-enhance",
 "GET /credit-admin/t020-5"]
--- error_code eval
[200, 200, 402, 200]
--- response_headers eval
["", "",
 "Content-Type: application/json\nX-Credits-Cost: 50\nX-Credits-Remaining: 15\nX-Ledger: insufficient image-enhance 50 0 0 15",
 ""]
--- response_body eval
[qq({"account":"t020-5","plan":10,"pack":0,"total":10}\n),
 qq({"account":"t020-5","plan":10,"pack":5,"total":15}\n),
 qq({"error":"insufficient_credits","route":"image-enhance","cost":50,"remaining":15,"detail":"the balance is below the cost of this request"}\n),
 qq({"account":"t020-5","plan":10,"pack":5,"total":15}\n)]



=== TEST 6: a balance equal to the cost is drained to 0, then 402
--- more_headers
X-API-Key: t020-6
--- request eval
["PUT /credit-admin/t020-6/plan\n50",
 "POST /v1/image-enhance",
 "POST /v1/image-enhance",
 "GET /credit-admin/t020-6"]
--- error_code eval
[200, 200, 402, 200]
--- response_headers eval
["", "X-Credits-Remaining: 0", "X-Credits-Remaining: 0", ""]
--- response_body eval
[qq({"account":"t020-6","plan":50,"pack":0,"total":50}\n),
 "ok POST /v1/image-enhance\n",
 qq({"error":"insufficient_credits","route":"image-enhance","cost":50,"remaining":0,"detail":"the balance is below the cost of this request"}\n),
 qq({"account":"t020-6","plan":0,"pack":0,"total":0}\n)]



=== TEST 7: an unknown account has nothing: 402
--- more_headers
X-API-Key: t020-7-nobody
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body
{"error":"insufficient_credits","route":"background-removal","cost":20,"remaining":0,"detail":"the balance is below the cost of this request"}



=== TEST 8: a cost-0 route passes, reports the balance, charges nothing
--- more_headers
X-API-Key: t020-8
--- request eval
["PUT /credit-admin/t020-8/plan\n7",
 "GET /v1/preview/abc",
 "GET /credit-admin/t020-8"]
--- response_headers eval
["", "X-Credits-Cost: 0\nX-Credits-Remaining: 7\nX-Ledger: free free-preview 0 0 0 7", ""]
--- response_body eval
[qq({"account":"t020-8","plan":7,"pack":0,"total":7}\n),
 "ok GET /v1/preview/abc\n",
 qq({"account":"t020-8","plan":7,"pack":0,"total":7}\n)]



=== TEST 9: credit_headers off hides the headers but still charges
--- config
    location /v1/ {
        credit on;
        credit_headers off;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t020-9
--- request eval
["PUT /credit-admin/t020-9/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/t020-9"]
--- response_headers eval
["", "!X-Credits-Cost\n!X-Credits-Remaining", ""]
--- response_body eval
[qq({"account":"t020-9","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/background-removal\n",
 qq({"account":"t020-9","plan":80,"pack":0,"total":80}\n)]



=== TEST 10: the access log is a ledger: one line per request
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    log_format ledger '$credit_status|$credit_account|$credit_route|$credit_cost|$credit_plan_charged|$credit_pack_charged|$credit_remaining|$status';
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- config
    access_log logs/ledger.log ledger;
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; access_log off; }
    location = /ledger { access_log off; alias $TEST_NGINX_SERVER_ROOT/logs/ledger.log; }
--- more_headers
X-API-Key: t020-10
--- request eval
["PUT /credit-admin/t020-10/plan\n30",
 "POST /credit-admin/t020-10/pack\n5",
 "POST /v1/background-removal",
 "POST /v1/background-removal",
 "POST /v1/object-removal?resolution=9k",
 "GET /ledger"]
--- error_code eval
[200, 200, 200, 402, 400, 200]
--- response_body eval
[qq({"account":"t020-10","plan":30,"pack":0,"total":30}\n),
 qq({"account":"t020-10","plan":30,"pack":5,"total":35}\n),
 "ok\n",
 qq({"error":"insufficient_credits","route":"background-removal","cost":20,"remaining":15,"detail":"the balance is below the cost of this request"}\n),
 qq({"error":"invalid_parameter","route":"object-removal","param":"resolution","detail":"must be one of: 1k, 2k, 4k"}\n),
 "charged|t020-10|background-removal|20|20|0|15|200
insufficient|t020-10|background-removal|20|0|0|15|402
invalid|t020-10|object-removal|-|0|0|-|400
"]



=== TEST 11: the balance cache: an account charged before is charged with one write and no read
Its balance and cas token are in the shared cache, so the next charge
sends the compare-and-swap at once.  An id of any length takes one entry
(the second one's key is the SHA-1 form).
--- init
my @ids = ('t020-11', 't020-11-' . ('x' x 240));
my $stats = sub {
    my $s = CreditTest::memcached("stats\r\n");
    return ($s =~ /STAT cmd_get (\d+)/, $s =~ /STAT cmd_set (\d+)/);
};
my @res;
for my $id (@ids) {
    CreditTest::grant($id, 100);
    push @res, (CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => $id }))[0];
}
my ($get0, $set0) = $stats->();
for my $id (@ids) {
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => $id });
    push @res, "$st $h->{'x-credits-remaining'}";
}
my ($get1, $set1) = $stats->();
Test::More::is("@res", "200 200 200 60 200 60", "both accounts charged twice");
Test::More::is($get1 - $get0, 0, "the second charges read nothing");
Test::More::is($set1 - $set0, 2, "the second charges wrote once each");
--- request
GET /credit-admin/t020-11
--- response_body
{"account":"t020-11","plan":60,"pack":0,"total":60}



=== TEST 12: a low-balance flag from $credit_remaining with map
The recipe in README.md: under 100 credits left, an X-Credits-Low header
for the client and a line in a log of its own for the operator's alerts.
--- http_config eval
$CreditTest::DefaultHttpConfig . <<'_EOC_'
    map $credit_remaining $credit_low {
        "~^[0-9]{1,2}$"  1;
        default          "";
    }
    log_format credit_low '$credit_account $credit_remaining';
_EOC_
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        add_header X-Credits-Low $credit_low always;
        access_log logs/credit-low.log credit_low if=$credit_low;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
    location = /low-log { alias logs/credit-low.log; }
--- more_headers
X-API-Key: t020-12
--- request eval
["PUT /credit-admin/t020-12/plan\n130",
 "POST /v1/background-removal",
 "POST /v1/background-removal",
 "POST /v1/reels/4s",
 "GET /low-log"]
--- error_code eval
[200, 200, 200, 402, 200]
--- response_headers eval
["", "X-Credits-Remaining: 110\n!X-Credits-Low",
 "X-Credits-Remaining: 90\nX-Credits-Low: 1",
 "X-Credits-Low: 1", ""]
--- response_body eval
[qq({"account":"t020-12","plan":130,"pack":0,"total":130}\n), "ok POST /v1/background-removal\n",
 "ok POST /v1/background-removal\n",
 qq({"error":"insufficient_credits","route":"product-reels","cost":400,"remaining":90,"detail":"the balance is below the cost of this request"}\n),
 "t020-12 90\nt020-12 90\n"]



=== TEST 13: a subrequest into a metered location is not charged
The request is charged once, not again for its mirror into a metered
location; an SSI include of a metered location is not charged either
(without the module's test for a subrequest it was: 75 left, not 80).
--- config eval
$CreditTest::DefaultConfig . <<'_EOC_'
    location = /v1/mirrored {
        credit on;
        credit_account $http_x_api_key;
        mirror /v1/background-removal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/v1/background-removal;
    }
    location = /page {
        ssi on;
        default_type text/html;
        return 200 '[<!--# include virtual="/v1/background-removal" -->]';
    }
    location = /credit-stats { credit_stats; }
_EOC_
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: mirrored
    match: { path: /v1/mirrored }
    cost: 20
  - name: background-removal
    match: { path: /v1/background-removal }
    cost: 5
--- more_headers
X-API-Key: t020-13
--- request eval
["PUT /credit-admin/t020-13/plan\n100",
 "POST /v1/mirrored",
 "GET /page",
 "GET /credit-admin/t020-13",
 "GET /credit-stats"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body eval
[qq({"account":"t020-13","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/background-removal\n",
 "[ok GET /v1/background-removal\n]",
 qq({"account":"t020-13","plan":80,"pack":0,"total":80}\n),
 qq({"requests":{"charged":1,"refunded":0,"free":0,"insufficient":0,"invalid":0,"unpriced":0,"missing_account":0,"unmetered":0,"error":0},"credits":{"charged":20,"refunded":0},"memcached":{"failures":0}}\n)]



=== TEST 14: the $credit_* variables are empty where nothing is metered
A location without `credit on` (a health check, a static page) has no
account, route, cost or status: in an access log line they are "-".
--- config eval
$CreditTest::DefaultConfig . <<'_EOC_'
    location = /health {
        add_header X-Ledger "[$credit_status|$credit_account|$credit_route|$credit_cost|$credit_remaining]";
        return 200 "up\n";
    }
_EOC_
--- more_headers
X-API-Key: t020-14
--- request
GET /health
--- response_headers
X-Ledger: [||||]
--- response_body
up
