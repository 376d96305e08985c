# Parameters from the query, headers, path captures and variables; types,
# defaults, values, min/max; table, tiers, base, times and add costs; and
# the 400 answers that name the parameter and charge nothing.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);
run_tests();

__DATA__

=== TEST 1: table by a query parameter, default when absent
--- more_headers
X-API-Key: t030-1
--- request eval
["PUT /credit-admin/t030-1/plan\n1000",
 "POST /v1/object-removal",
 "POST /v1/object-removal?resolution=1k",
 "POST /v1/object-removal?resolution=4k",
 "POST /v1/object-removal/batch?x=1&resolution=4k&y=2",
 "GET /credit-admin/t030-1"]
--- response_headers eval
["", "X-Credits-Cost: 30", "X-Credits-Cost: 30", "X-Credits-Cost: 60",
 "X-Credits-Cost: 60", ""]
--- response_body_like eval
["", "ok", "ok", "ok", "ok", qq("total":820)]



=== TEST 2: a value outside "values" is a 400 naming the parameter
--- more_headers
X-API-Key: t030-2
--- request eval
["PUT /credit-admin/t030-2/plan\n1000",
 "POST /v1/object-removal?resolution=8k",
 "POST /v1/object-removal?resolution=4k&resolution=1k",
 "GET /credit-admin/t030-2"]
--- error_code eval
[200, 400, 400, 200]
--- response_headers eval
["", "Content-Type: application/json\n!X-Credits-Cost", "", ""]
--- response_body eval
[qq({"account":"t030-2","plan":1000,"pack":0,"total":1000}\n),
 qq({"error":"invalid_parameter","route":"object-removal","param":"resolution","detail":"must be one of: 1k, 2k, 4k"}\n),
 qq({"error":"invalid_parameter","route":"object-removal","param":"resolution","detail":"is given more than once"}\n),
 qq({"account":"t030-2","plan":1000,"pack":0,"total":1000}\n)]



=== TEST 3: a path capture times a base: 100 credits a second
--- more_headers
X-API-Key: t030-3
--- request eval
["PUT /credit-admin/t030-3/plan\n2000",
 "POST /v1/reels/4s",
 "POST /v1/reels/8s",
 "POST /v1/reels/5s",
 "GET /credit-admin/t030-3"]
--- error_code eval
[200, 200, 200, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 400", "X-Credits-Cost: 800\nX-Credits-Remaining: 800", "", ""]
--- response_body_like eval
["", "ok", "ok", qq("param":"seconds","detail":"must be one of: 4, 6, 8"), qq("total":800)]



=== TEST 4: table times n plus add: header and query parameters
quality hd = 2 a picture, n = 3, transparent adds 1: 2 * 3 + 1 = 7.
--- more_headers eval
["X-API-Key: t030-4",
 "X-API-Key: t030-4",
 "X-API-Key: t030-4\nX-Quality: hd",
 "X-API-Key: t030-4\nX-Quality: hd\nX-Transparent: true",
 "X-API-Key: t030-4\nX-Quality: ultra",
 "X-API-Key: t030-4\nX-Transparent: maybe",
 "X-API-Key: t030-4"]
--- request eval
["PUT /credit-admin/t030-4/plan\n100",
 "POST /v1/images/generations",
 "POST /v1/images/generations?n=3",
 "POST /v1/images/generations?n=3",
 "POST /v1/images/generations",
 "POST /v1/images/generations",
 "GET /credit-admin/t030-4"]
--- error_code eval
[200, 200, 200, 200, 400, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 1", "X-Credits-Cost: 6", "X-Credits-Cost: 7", "", "", ""]
--- response_body_like eval
["", "ok", "ok", "ok",
 qq("param":"quality","detail":"must be one of: standard, hd"),
 qq("param":"transparent","detail":"must be a boolean),
 qq("total":86)]



=== TEST 5: integer type, min and max
--- more_headers
X-API-Key: t030-5
--- request eval
["PUT /credit-admin/t030-5/plan\n100",
 "POST /v1/images/generations?n=0",
 "POST /v1/images/generations?n=11",
 "POST /v1/images/generations?n=two",
 "POST /v1/images/generations?n=10",
 "GET /credit-admin/t030-5"]
--- error_code eval
[200, 400, 400, 400, 200, 200]
--- response_body_like eval
["",
 qq("param":"n","detail":"must be at least 1"),
 qq("param":"n","detail":"must be at most 10"),
 qq("param":"n","detail":"must be an integer"),
 "ok",
 qq("total":90)]



=== TEST 6: tiers: the first tier whose upto is at least the value
--- more_headers
X-API-Key: t030-6
--- request eval
["PUT /credit-admin/t030-6/plan\n100",
 "GET /v1/upscale?width=1024",
 "GET /v1/upscale?width=1025",
 "GET /v1/upscale?width=2048",
 "GET /v1/upscale?width=16384",
 "GET /v1/upscale",
 "GET /v1/upscale?width=16385",
 "GET /credit-admin/t030-6"]
--- error_code eval
[200, 200, 200, 200, 200, 400, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 1", "X-Credits-Cost: 4", "X-Credits-Cost: 4", "X-Credits-Cost: 9", "", "", ""]
--- response_body_like eval
["", "ok", "ok", "ok", "ok",
 qq("param":"width","detail":"is required"),
 qq("param":"width","detail":"must be at most 16384"),
 qq("total":82)]



=== TEST 7: a parameter from an nginx variable
--- more_headers eval
["X-API-Key: t030-7", "X-API-Key: t030-7", "X-API-Key: t030-7\nCookie: tier=pro", "X-API-Key: t030-7\nCookie: tier=gold"]
--- request eval
["PUT /credit-admin/t030-7/plan\n100",
 "GET /v1/by-var",
 "GET /v1/by-var",
 "GET /v1/by-var"]
--- error_code eval
[200, 200, 200, 400]
--- response_headers eval
["", "X-Credits-Cost: 3", "X-Credits-Cost: 7\nX-Credits-Remaining: 90", ""]



=== TEST 8: percent-encoded query values are decoded, "+" is a space
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: styles
    match: { path: /v1/style }
    params:
      style: { from: query, values: ["oil paint", "pencil/ink"] }
    cost: { by: style, table: { "oil paint": 3, "pencil/ink": 4 } }
--- more_headers
X-API-Key: t030-8
--- request eval
["PUT /credit-admin/t030-8/plan\n100",
 "GET /v1/style?style=oil+paint",
 "GET /v1/style?style=oil%20paint",
 "GET /v1/style?style=pencil%2Fink",
 "GET /v1/style?style=oil"]
--- error_code eval
[200, 200, 200, 200, 400]
--- response_headers eval
["", "X-Credits-Cost: 3", "X-Credits-Cost: 3", "X-Credits-Cost: 4", ""]



=== TEST 9: a method outside the route's list does not match it
--- user_files
>>> credits.yaml
version: 1
unmatched: deny
routes:
  - name: gen
    match: { method: [POST, PUT], path: /v1/gen }
    cost: 2
--- more_headers
X-API-Key: t030-9
--- request eval
["PUT /credit-admin/t030-9/plan\n100", "POST /v1/gen", "PUT /v1/gen", "GET /v1/gen"]
--- error_code eval
[200, 200, 200, 403]
--- response_body_like eval
["", "ok POST", "ok PUT", qq({"error":"unpriced_route")]



=== TEST 10: first match wins, in file order
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: special
    match: { path: /v1/gen/special }
    cost: 9
  - name: any-gen
    match: { prefix: /v1/gen }
    cost: 2
  - name: never
    match: { path: /v1/gen/special }
    cost: 100
--- more_headers
X-API-Key: t030-10
--- request eval
["PUT /credit-admin/t030-10/plan\n100", "POST /v1/gen/special", "POST /v1/gen/other"]
--- response_headers eval
["", "X-Credits-Cost: 9\nX-Ledger: charged special 9 9 0 91", "X-Credits-Cost: 2\nX-Ledger: charged any-gen 2 2 0 89"]



=== TEST 11: boolean spellings
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    params:
      hd: { from: query, type: boolean, default: false }
    cost: { base: 1, add: { hd: 5 } }
--- more_headers
X-API-Key: t030-11
--- request eval
["PUT /credit-admin/t030-11/plan\n100",
 "GET /v1/gen?hd=true", "GET /v1/gen?hd=1", "GET /v1/gen?hd=yes",
 "GET /v1/gen?hd=false", "GET /v1/gen?hd=0", "GET /v1/gen", "GET /v1/gen?hd=2"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 400]
--- response_headers eval
["", "X-Credits-Cost: 6", "X-Credits-Cost: 6", "X-Credits-Cost: 6",
 "X-Credits-Cost: 1", "X-Credits-Cost: 1", "X-Credits-Cost: 1", ""]



=== TEST 12: integer signs, costs past the limit, the other boolean spellings
An integer may carry a sign (a "+" in a query string is a space, so
%2B); a negative count in `times` is refused, as is a count or an `add`
that takes the cost past 10^15 (the most a charge may be; exactly 10^15
is a cost like any other). "on", "off", "no" and any case of the words
are booleans too.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    params:
      n:  { from: query, type: integer, default: 1 }
      hd: { from: query, type: boolean, default: false }
    cost: { base: 100, times: [n], add: { hd: 5 } }
--- more_headers
X-API-Key: t030-12
--- request eval
["PUT /credit-admin/t030-12/plan\n100000",
 "GET /v1/gen?n=%2B3", "GET /v1/gen?n=-3", "GET /v1/gen?n=-0",
 "GET /v1/gen?n=10000000000000", "GET /v1/gen?n=10000000000001",
 "GET /v1/gen?n=10000000000000&hd=on",
 "GET /v1/gen?hd=ON", "GET /v1/gen?hd=Off", "GET /v1/gen?hd=no",
 "GET /v1/gen?hd=nope",
 "GET /credit-admin/t030-12"]
--- error_code eval
[200, 200, 400, 200, 402, 400, 400, 200, 200, 200, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 300", "", "X-Credits-Cost: 0", "", "", "",
 "X-Credits-Cost: 105", "X-Credits-Cost: 100", "X-Credits-Cost: 100",
 "", ""]
--- response_body eval
[qq({"account":"t030-12","plan":100000,"pack":0,"total":100000}\n),
 "ok GET /v1/gen\n",
 qq({"error":"invalid_parameter","route":"gen","param":"n","detail":"must not be negative"}\n),
 "ok GET /v1/gen\n",
 qq({"error":"insufficient_credits","route":"gen","cost":1000000000000000,"remaining":99700,"detail":"the balance is below the cost of this request"}\n),
 qq({"error":"invalid_parameter","route":"gen","param":"n","detail":"makes the cost too large"}\n),
 qq({"error":"invalid_parameter","route":"gen","param":"hd","detail":"makes the cost too large"}\n),
 "ok GET /v1/gen\n", "ok GET /v1/gen\n", "ok GET /v1/gen\n",
 qq({"error":"invalid_parameter","route":"gen","param":"hd","detail":"must be a boolean (true or false)"}\n),
 qq({"account":"t030-12","plan":99395,"pack":0,"total":99395}\n)]



=== TEST 13: a header parameter among many headers, and given twice
nginx keeps a request's headers in blocks of 20: the parameter is found
in a later block, and a second one there is refused like any repeat.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    params:
      quality: { from: header, key: X-Quality, values: [standard, hd] }
    cost: { by: quality, table: { standard: 1, hd: 2 } }
--- more_headers eval
CORE::join('', map({ "X-Filler-$_: $_\n" } 1 .. 30),
           "X-API-Key: t030-13\nX-Quality: hd\n")
--- request eval
["PUT /credit-admin/t030-13/plan\n100",
 "GET /v1/gen",
 "GET /credit-admin/t030-13"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 2", ""]
--- response_body eval
[qq({"account":"t030-13","plan":100,"pack":0,"total":100}\n),
 "ok GET /v1/gen\n",
 qq({"account":"t030-13","plan":98,"pack":0,"total":98}\n)]



=== TEST 14: the same header twice, the second past the first 20
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    params:
      quality: { from: header, key: X-Quality, values: [standard, hd] }
    cost: { by: quality, table: { standard: 1, hd: 2 } }
--- more_headers eval
"X-API-Key: t030-14\nX-Quality: hd\n"
. CORE::join('', map({ "X-Filler-$_: $_\n" } 1 .. 30)) . "X-Quality: standard\n"
--- request
GET /v1/gen
--- error_code: 400
--- response_body
{"error":"invalid_parameter","route":"gen","param":"quality","detail":"is given more than once"}



=== TEST 15: a value the table or the tiers do not price is a 400
A parameter without `values` may take any value; one that its `table`
has no entry for, or that is above the last `upto` of tiers without an
open last tier, has no price.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: sized
    match: { path: /v1/sized }
    params:
      size: { from: query }
    cost: { by: size, table: { s: 1, m: 2 } }
  - name: tiered
    match: { path: /v1/tiered }
    params:
      w: { from: query, type: integer }
    cost: { by: w, tiers: [ { upto: 10, cost: 1 } ] }
--- more_headers
X-API-Key: t030-15
--- request eval
["PUT /credit-admin/t030-15/plan\n100",
 "GET /v1/sized?size=m", "GET /v1/sized?size=xl",
 "GET /v1/tiered?w=10", "GET /v1/tiered?w=11",
 "GET /credit-admin/t030-15"]
--- error_code eval
[200, 200, 400, 200, 400, 200]
--- response_body eval
[qq({"account":"t030-15","plan":100,"pack":0,"total":100}\n),
 "ok GET /v1/sized\n",
 qq({"error":"invalid_parameter","route":"sized","param":"size","detail":"has no price for \\"xl\\""}\n),
 "ok GET /v1/tiered\n",
 qq({"error":"invalid_parameter","route":"tiered","param":"w","detail":"has no price for \\"11\\""}\n),
 qq({"account":"t030-15","plan":97,"pack":0,"total":97}\n)]



=== TEST 16: a price grid over a parameter without values; a variable named with its $
A grid whose parameter may take any value prices only the combinations
its table names: another is a 400. `key: $name` and `key: name` both
name the variable.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: grid
    match: { path: /v1/grid }
    params:
      q: { from: query, values: [sd, hd] }
      s: { from: query, type: integer }
    cost: { by: [q, s], table: { 'sd,1': 1, 'hd,1': 2, 'hd,02': 4 } }
  - name: tier
    match: { path: /v1/tier }
    params:
      t: { from: var, key: $http_x_tier, values: [free, pro] }
    cost: { by: t, table: { free: 0, pro: 3 } }
--- more_headers
X-API-Key: t030-16
X-Tier: pro
--- request eval
["PUT /credit-admin/t030-16/plan\n100",
 "GET /v1/grid?q=hd&s=2", "GET /v1/grid?q=sd&s=2", "GET /v1/tier",
 "GET /credit-admin/t030-16"]
--- error_code eval
[200, 200, 400, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 4", "", "X-Credits-Cost: 3", ""]
--- response_body eval
[qq({"account":"t030-16","plan":100,"pack":0,"total":100}\n),
 "ok GET /v1/grid\n",
 qq({"error":"invalid_parameter","route":"grid","param":"q","detail":"has no price for \\"sd,2\\""}\n),
 "ok GET /v1/tier\n",
 qq({"account":"t030-16","plan":93,"pack":0,"total":93}\n)]



=== TEST 17: a price grid prices only whole combinations
Table keys join one value of each parameter with commas, so a value with
a comma in it, or a combination too long for any key, is priced by no
entry: "x,y" with a long second value once took the price of "x,y"
(x and y), and q=x,y with s=z that of the key 'x,y,z'.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: grid
    match: { path: /v1/grid }
    params:
      q: { from: query }
      s: { from: query }
    cost: { by: [q, s], table: { 'x,y': 1, 'x,w': 2 } }
--- more_headers
X-API-Key: t030-17
--- request eval
["PUT /credit-admin/t030-17/plan\n100",
 "GET /v1/grid?q=x&s=y",
 "GET /v1/grid?q=x,y&s=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
 "GET /v1/grid?q=x,w&s=",
 "GET /credit-admin/t030-17"]
--- error_code eval
[200, 200, 400, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 1", "!X-Credits-Cost", "!X-Credits-Cost", ""]
--- response_body eval
[qq({"account":"t030-17","plan":100,"pack":0,"total":100}\n),
 "ok GET /v1/grid\n",
 qq({"error":"invalid_parameter","route":"grid","param":"q","detail":"has no price for \\"x,y,zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\\""}\n),
 qq({"error":"invalid_parameter","route":"grid","param":"q","detail":"has no price for \\"x,w,\\""}\n),
 qq({"account":"t030-17","plan":99,"pack":0,"total":99}\n)]



=== TEST 18: a query parameter's name is read as the upstream reads it, decoded
A backend decodes the names in a query string as well as the values:
resol%75tion=4k is resolution=4k there, so it is here too (it once took
the default's price), and with resolution=1k it is given twice.
--- more_headers
X-API-Key: t030-18
--- request eval
["PUT /credit-admin/t030-18/plan\n1000",
 "POST /v1/object-removal?resol%75tion=4k",
 "POST /v1/object-removal?resolution=1k&resol%75tion=4k",
 "POST /v1/object-removal?%72%65%73%6F%6C%75%74%69%6F%6E=4k",
 "POST /v1/object-removal?resolution+=4k&resolution%3D4k&resolutio=4k",
 "GET /credit-admin/t030-18"]
--- error_code eval
[200, 200, 400, 200, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 60", "!X-Credits-Cost", "X-Credits-Cost: 60",
 "X-Credits-Cost: 30", ""]
--- response_body eval
[qq({"account":"t030-18","plan":1000,"pack":0,"total":1000}\n),
 "ok POST /v1/object-removal\n",
 qq({"error":"invalid_parameter","route":"object-removal","param":"resolution","detail":"is given more than once"}\n),
 "ok POST /v1/object-removal\n",
 "ok POST /v1/object-removal\n",
 qq({"account":"t030-18","plan":850,"pack":0,"total":850}\n)]



=== TEST 19: with underscores_in_headers on, X_Quality is X-Quality
A backend that reads headers as CGI variables sees both as HTTP_X_QUALITY:
X_Quality: hd alone is hd (it once took the default's price), and beside
X-Quality it is given twice.
--- config eval
"underscores_in_headers on;\n" . $CreditTest::DefaultConfig
--- more_headers eval
["X-API-Key: t030-19",
 "X-API-Key: t030-19\nX_Quality: hd",
 "X-API-Key: t030-19\nX-Quality: standard\nX_QUALITY: hd",
 "X-API-Key: t030-19\nx-QUALITY: hd",
 "X-API-Key: t030-19"]
--- request eval
["PUT /credit-admin/t030-19/plan\n100",
 "POST /v1/images/generations", "POST /v1/images/generations",
 "POST /v1/images/generations", "GET /credit-admin/t030-19"]
--- error_code eval
[200, 200, 400, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 2", "!X-Credits-Cost", "X-Credits-Cost: 2", ""]
--- response_body eval
[qq({"account":"t030-19","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/images/generations\n",
 qq({"error":"invalid_parameter","route":"image-generation","param":"quality","detail":"is given more than once"}\n),
 "ok POST /v1/images/generations\n",
 qq({"account":"t030-19","plan":96,"pack":0,"total":96}\n)]



=== TEST 20: a "%" that starts no %XX pair stays itself in a value
"n=1%2" is no number to a backend that keeps the "%" (Python, Go): it
is a 400 here too (it was read as 1). "%31%30" is 10.
--- more_headers
X-API-Key: t030-20
--- request eval
["PUT /credit-admin/t030-20/plan\n100",
 "POST /v1/images/generations?n=1%2", "POST /v1/images/generations?n=%31%30",
 "GET /credit-admin/t030-20"]
--- error_code eval
[200, 400, 200, 200]
--- response_headers eval
["", "!X-Credits-Cost", "X-Credits-Cost: 10", ""]
--- response_body eval
[qq({"account":"t030-20","plan":100,"pack":0,"total":100}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"must be an integer"}\n),
 "ok POST /v1/images/generations\n",
 qq({"account":"t030-20","plan":90,"pack":0,"total":90}\n)]



=== TEST 21: a case-insensitive regex route, for a backend that routes so
--- user_files
>>> credits.yaml
version: 1
unmatched: free
routes:
  - name: reels
    match: { regex: '(?i)^/v1/reels/(?<seconds>[0-9]+)s$' }
    params:
      seconds: { from: path, type: integer }
    cost: { base: 10, times: [seconds] }
--- more_headers
X-API-Key: t030-21
--- request eval
["PUT /credit-admin/t030-21/plan\n100", "POST /v1/REELS/3S", "POST /v1/reels/2s",
 "GET /credit-admin/t030-21"]
--- response_headers eval
["", "X-Credits-Cost: 30", "X-Credits-Cost: 20", ""]
--- response_body eval
[qq({"account":"t030-21","plan":100,"pack":0,"total":100}\n),
 "ok POST /v1/REELS/3S\n", "ok POST /v1/reels/2s\n",
 qq({"account":"t030-21","plan":50,"pack":0,"total":50}\n)]
