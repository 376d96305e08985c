# The admin API (credit_admin) and the caller's balance (credit_balance).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
add_block_preprocessor(\&CreditTest::defaults);
run_tests();

__DATA__

=== TEST 1: an unknown account has zeros
--- request
GET /credit-admin/t060-nobody
--- response_headers
Content-Type: application/json
--- response_body
{"account":"t060-nobody","plan":0,"pack":0,"total":0}



=== TEST 2: PUT plan replaces (no rollover), POST pack adds
--- request eval
["PUT /credit-admin/t060-2/plan\n2100",
 "POST /credit-admin/t060-2/pack\n300",
 "POST /credit-admin/t060-2/pack\n50",
 "PUT /credit-admin/t060-2/plan\n500",
 "GET /credit-admin/t060-2"]
--- response_body eval
[qq({"account":"t060-2","plan":2100,"pack":0,"total":2100}\n),
 qq({"account":"t060-2","plan":2100,"pack":300,"total":2400}\n),
 qq({"account":"t060-2","plan":2100,"pack":350,"total":2450}\n),
 qq({"account":"t060-2","plan":500,"pack":350,"total":850}\n),
 qq({"account":"t060-2","plan":500,"pack":350,"total":850}\n)]
--- error_log
credit: balance of "t060-2" is now plan 2100, pack 0



=== TEST 3: a body that is not a non-negative integer is a 400
--- request eval
["PUT /credit-admin/t060-3/plan\n-5",
 "PUT /credit-admin/t060-3/plan\nten",
 "POST /credit-admin/t060-3/pack\n1.5",
 "POST /credit-admin/t060-3/pack",
 "PUT /credit-admin/t060-3/plan\n99999999999999999999",
 "GET /credit-admin/t060-3"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body eval
[qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"account":"t060-3","plan":0,"pack":0,"total":0}\n)]



=== TEST 4: another method is a 405
--- request eval
["DELETE /credit-admin/t060-4",
 "POST /credit-admin/t060-4/plan\n5",
 "PUT /credit-admin/t060-4/pack\n5",
 "GET /credit-admin/t060-4/plan"]
--- error_code eval
[405, 405, 405, 405]
--- response_body_like eval
["method_not_allowed", "method_not_allowed", "method_not_allowed", "method_not_allowed"]
--- no_error_log
[alert]



=== TEST 5: unknown paths are a 404
--- request eval
["GET /credit-admin/", "PUT /credit-admin/t060-5/bonus\n5"]
--- error_code eval
[404, 404]
--- response_body_like eval
["not_found", "not_found"]
--- no_error_log
[alert]



=== TEST 6: ACCOUNT is percent-decoded; odd ids keep distinct balances
--- request eval
["PUT /credit-admin/team%20a/plan\n10",
 "PUT /credit-admin/team%2Fa/plan\n20",
 "PUT /credit-admin/team%0D%0Aa/plan\n30",
 "GET /credit-admin/team%20a",
 "GET /credit-admin/team%2Fa",
 "GET /credit-admin/team%0d%0aa",
 "GET /credit-admin/team%25a"]
--- response_body eval
[qq({"account":"team a","plan":10,"pack":0,"total":10}\n),
 qq({"account":"team/a","plan":20,"pack":0,"total":20}\n),
 qq({"account":"team\\r\\na","plan":30,"pack":0,"total":30}\n),
 qq({"account":"team a","plan":10,"pack":0,"total":10}\n),
 qq({"account":"team/a","plan":20,"pack":0,"total":20}\n),
 qq({"account":"team\\r\\na","plan":30,"pack":0,"total":30}\n),
 qq({"account":"team%a","plan":0,"pack":0,"total":0}\n)]



=== TEST 7: credit_balance answers the caller's own balance
--- more_headers
X-API-Key: t060-7
--- request eval
["PUT /credit-admin/t060-7/plan\n70",
 "POST /credit-admin/t060-7/pack\n5",
 "GET /balance"]
--- response_body eval
[qq({"account":"t060-7","plan":70,"pack":0,"total":70}\n),
 qq({"account":"t060-7","plan":70,"pack":5,"total":75}\n),
 qq({"account":"t060-7","plan":70,"pack":5,"total":75}\n)]



=== TEST 8: credit_balance without an account is a 401; POST is a 405
--- request eval
["GET /balance", "POST /balance\nx"]
--- error_code eval
[401, 405]
--- response_body_like eval
["missing_account", "method_not_allowed"]



=== TEST 9: the admin location honours allow/deny
--- config
    location /credit-admin/ {
        deny all;
        credit_admin;
    }
--- request
GET /credit-admin/t060-9
--- error_code: 403



=== TEST 10: a grant while charges run is never lost (cas)
--- more_headers
X-API-Key: t060-10
--- request eval
["PUT /credit-admin/t060-10/plan\n100",
 "POST /v1/background-removal",
 "POST /credit-admin/t060-10/pack\n1000",
 "POST /v1/image-enhance",
 "GET /credit-admin/t060-10"]
--- response_body_like eval
["", "ok", qq("plan":80,"pack":1000,), "ok", qq("plan":30,"pack":1000,"total":1030)]



=== TEST 11: amounts are capped at 10^15 a bucket
--- request eval
["PUT /credit-admin/t060-11/plan\n1000000000000001",
 "PUT /credit-admin/t060-11/plan\n1000000000000000",
 "POST /credit-admin/t060-11/pack\n999999999999999",
 "POST /credit-admin/t060-11/pack\n2",
 "GET /credit-admin/t060-11"]
--- error_code eval
[400, 200, 200, 400, 200]
--- response_body_like eval
[qq("error":"invalid_amount"), qq("plan":1000000000000000,"pack":0,),
 qq("pack":999999999999999,),
 qq("error":"invalid_amount","detail":"the balance would be too large"),
 qq("plan":1000000000000000,"pack":999999999999999,"total":1999999999999999})]



=== TEST 12: every admin write is logged with the balance it leaves
TEST 2 checks the first write's line (a block's log is checked after each
of its requests); this is the last one's, after a plan and two packs.
--- init
CreditTest::grant('t060-12', 2100, 300);
CreditTest::request('POST', '/credit-admin/t060-12/pack', {}, 50);
--- request
PUT /credit-admin/t060-12/plan
500
--- response_body
{"account":"t060-12","plan":500,"pack":350,"total":850}
--- error_log
credit: balance of "t060-12" is now plan 500, pack 350



=== TEST 13: spaces and newlines around the amount, a query string, the prefix verbatim
What `echo 250 | curl --data-binary @-` sends (a newline after the
number) is an amount like any other (sent raw here: the test runners
trim a request body); the query string is no part of the account; a
body longer than any amount is refused unread; and the location's
prefix must be written as it is, not percent-encoded.
--- init
my ($st, $h, $body) = CreditTest::request('PUT',
    '/credit-admin/t060-13/plan', {}, " 250\r\n");
Test::More::is("$st $body",
    qq(200 {"account":"t060-13","plan":250,"pack":0,"total":250}\n),
    'spaces and CRLF around the amount');
($st, $h, $body) = CreditTest::request('POST',
    '/credit-admin/t060-13/pack?source=billing', {}, "\t50\n");
Test::More::is("$st $body",
    qq(200 {"account":"t060-13","plan":250,"pack":50,"total":300}\n),
    'a tab, a newline and a query string');
--- request eval
["POST /credit-admin/t060-13/pack\n" . ('0' x 70) . "1",
 "GET /credit%2Dadmin/t060-13",
 "GET /credit-admin/t060-13?pretty=1"]
--- error_code eval
[400, 404, 200]
--- response_body eval
[qq({"error":"invalid_amount","detail":"the body must be a non-negative integer"}\n),
 qq({"error":"not_found","detail":"use the location prefix verbatim"}\n),
 qq({"account":"t060-13","plan":250,"pack":50,"total":300}\n)]
--- no_error_log
[alert]
