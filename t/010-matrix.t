# The cost matrix is validated completely at configuration time: every
# schema error fails nginx -t with "credits.yaml:LINE: reason".

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
# a block that must fail nginx -t names only the matrix or the directive
# at fault: a metered location is its default configuration
add_block_preprocessor(sub {
    my ($block) = @_;
    if (defined $block->must_die && !defined $block->config) {
        $block->set_value('config', '    location /v1/ { credit on; '
                          . 'credit_account $http_x_api_key; return 200; }');
    }
    CreditTest::defaults($block);
});
run_tests();

__DATA__

=== TEST 1: unknown top-level key
--- user_files
>>> credits.yaml
version: 1
routes: []
prices: {}
--- must_die
--- error_log
credits.yaml:3: unknown key "prices" in the matrix

=== TEST 2: missing version
--- user_files
>>> credits.yaml
routes: []
--- must_die
--- error_log
credits.yaml:1: "version" is missing

=== TEST 3: unsupported version
--- user_files
>>> credits.yaml
version: 2
routes: []
--- must_die
--- error_log
credits.yaml:1: unsupported version 2, only 1 is known

=== TEST 4: bad unmatched
--- user_files
>>> credits.yaml
version: 1
unmatched: maybe
routes: []
--- must_die
--- error_log
credits.yaml:2: "unmatched" must be "deny" or "free", not "maybe"

=== TEST 5: invalid YAML
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
   match: { path: /a }
--- must_die
--- error_log
credits.yaml:4: invalid YAML

=== TEST 6: route without match
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    cost: 1
--- must_die
--- error_log
credits.yaml:3: route without a "match" (route "a")

=== TEST 7: unknown key in route
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 1
    price: 3
--- must_die
--- error_log
credits.yaml:6: unknown key "price" in a route

=== TEST 8: duplicate route name
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 1
  - name: a
    match: { path: /b }
    cost: 2
--- must_die
--- error_log
credits.yaml:6: duplicate route name "a", first on line 3

=== TEST 9: two match kinds
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a, prefix: /b }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: "match" needs exactly one of "path", "prefix" or "regex" (route "a")

=== TEST 10: bad regex
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { regex: '^/a(' }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: invalid regex "^/a("

=== TEST 11: negative cost
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: -5
--- must_die
--- error_log
credits.yaml:5: "cost" must be a non-negative integer, not "-5" (route "a")

=== TEST 12: string cost
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: lots
--- must_die
--- error_log
credits.yaml:5: "cost" must be a non-negative integer, not "lots" (route "a")

=== TEST 13: by names an undeclared parameter
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: { by: size, table: { s: 1 } }
--- must_die
--- error_log
credits.yaml:5: "by" names "size", which is not a declared parameter (route "a")

=== TEST 14: times names an undeclared parameter
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: { base: 2, times: [n] }
--- must_die
--- error_log
credits.yaml:5: "times" names "n", which is not a declared parameter (route "a")

=== TEST 15: times needs an integer parameter
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query }
    cost: { base: 2, times: [n] }
--- must_die
--- error_log
credits.yaml:7: "times" needs parameter "n" to be "type: integer" (route "a")

=== TEST 16: add needs a boolean parameter
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      t: { from: query, type: integer }
    cost: { base: 2, add: { t: 1 } }
--- must_die
--- error_log
credits.yaml:7: "add" needs parameter "t" to be "type: boolean" (route "a")

=== TEST 17: table missing a declared value
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      res: { from: query, values: [1k, 2k, 4k] }
    cost: { by: res, table: { 1k: 1, 2k: 2 } }
--- must_die
--- error_log
credits.yaml:7: the table has no price for "4k", a value of parameter "res" (route "a")

=== TEST 18: table entry outside the values
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      res: { from: query, values: [1k] }
    cost: { by: res, table: { 1k: 1, 8k: 2 } }
--- must_die
--- error_log
credits.yaml:7: table entry "8k" is not one of the values of parameter "res" (route "a")

=== TEST 19: unknown from
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: cookie }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: unknown "from" "cookie" for parameter "n"

=== TEST 20: unknown type
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: float }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: unknown type "float", expected string, integer or boolean (route "a")

=== TEST 21: default outside values
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      res: { from: query, default: 8k, values: [1k, 2k] }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: default of parameter "res": must be one of: 1k, 2k (route "a")

=== TEST 22: default of the wrong type
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer, default: many }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: parameter "n": must be an integer (route "a")

=== TEST 23: min above max
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer, min: 5, max: 2 }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: "max" is below "min" (route "a")

=== TEST 24: min on a string
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, min: 5 }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: "min" and "max" need "type: integer" (route "a")

=== TEST 25: from path without a capture
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { regex: '^/a/(?<x>[0-9]+)$' }
    params:
      secs: { from: path, type: integer }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: the route regex has no named capture "secs" (route "a")

=== TEST 26: from path on an exact route
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      secs: { from: path }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: parameter "secs" is "from: path" but the route has no regex with named captures (route "a")

=== TEST 27: tiers need an integer parameter
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      w: { from: query }
    cost: { by: w, tiers: [ { cost: 1 } ] }
--- must_die
--- error_log
credits.yaml:7: "by" needs parameter "w" to be "type: integer" (route "a")

=== TEST 28: open tier not last
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      w: { from: query, type: integer }
    cost: { by: w, tiers: [ { cost: 1 }, { upto: 5, cost: 2 } ] }
--- must_die
--- error_log
credits.yaml:7: only the last tier may omit "upto" (route "a")

=== TEST 29: tiers out of order
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      w: { from: query, type: integer }
    cost:
      by: w
      tiers:
        - { upto: 10, cost: 1 }
        - { upto: 5, cost: 2 }
--- must_die
--- error_log
credits.yaml:11: tiers must be in increasing "upto" order (route "a")

=== TEST 30: base and by together
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: { base: 1, by: x }
--- must_die
--- error_log
credits.yaml:5: "cost" needs exactly one of "base" or "by" (route "a")

=== TEST 31: lower-case method
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { method: post, path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: invalid method "post", methods are upper case (route "a")

=== TEST 32: duplicate key
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 1
    cost: 2
--- must_die
--- error_log
credits.yaml:6: duplicate key "cost" in a route

=== TEST 33: credit on without credit_account
--- config
    location /v1/ { credit on; return 200; }
--- must_die
--- error_log
"credit_account" is required where "credit on" or "credit_balance" is used

=== TEST 34: a missing matrix file
--- config
    location /v1/ { credit_matrix /nonexistent/credits.yaml; credit on; credit_account x; return 200; }
--- must_die
--- error_log
cannot open credit matrix "/nonexistent/credits.yaml"

=== TEST 35: bad memcached address
--- http_config
    credit_memcached localhost;
--- config
    location /v1/ { return 200; }
--- must_die
--- error_log
invalid memcached server "localhost", expected host:port

=== TEST 36: bad memcached timeout
--- http_config
    credit_memcached 127.0.0.1:11211 timeout=soon;
--- config
    location /v1/ { return 200; }
--- must_die
--- error_log
invalid parameter "timeout=soon"

=== TEST 37: credit on without credit_memcached
--- http_config
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ { credit on; credit_account x; return 200; }
--- must_die
--- error_log
"credit_memcached" is required where "credit on", "credit_admin" or "credit_balance" is used

=== TEST 38: credit on without a matrix
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
--- config
    location /v1/ { credit on; credit_account x; return 200; }
--- must_die
--- error_log
"credit on" needs a "credit_matrix"

=== TEST 39: bad refund status
--- config
    location /v1/ { credit_refund_status 5xx 99; return 200; }
--- must_die
--- error_log
invalid refund status "99"

=== TEST 40: the shipped example matrices load
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
--- config
    location /ecom/ { credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/ecomvance.yaml; credit on; credit_account x; return 200; }
    location /chamevo/ { credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/chamevo.yaml; credit on; credit_account x; return 200; }
    location /openai/ { credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml; credit on; credit_account x; return 200; }
    location /t { return 200 "loaded\n"; }
--- request
GET /t
--- response_body
loaded
--- no_error_log
[emerg]

=== TEST 41: a price grid missing a combination
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: json, values: [standard, hd] }
      s: { from: json, values: [small, large] }
    cost:
      by: [q, s]
      table: { "standard,small": 1, "standard,large": 2, "hd,small": 3 }
--- must_die
--- error_log
credits.yaml:10: the table has no price for "hd,large" (route "a")



=== TEST 42: a price grid key with a value outside the parameter's values
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: json, values: [standard, hd] }
      s: { from: query, type: integer }
    cost:
      by: [q, s]
      table: { "standard,1": 1, "ultra,2": 2 }
--- must_die
--- error_log
credits.yaml:10: table key part "ultra" of parameter "q": must be one of: standard, hd (route "a")



=== TEST 43: an empty step in a JSON key
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      size: { from: json, key: options..size }
    cost: 1
--- must_die
--- error_log
invalid JSON key "options..size": empty step



=== TEST 44: tiers with a list of "by" parameters
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      w: { from: query, type: integer }
      h: { from: query, type: integer }
    cost: { by: [w, h], tiers: [ { cost: 1 } ] }
--- must_die
--- error_log
"tiers" need one "by" parameter, not a list (route "a")

=== TEST 45: a regex error in the middle of the pattern quotes the pattern's rest, and no more
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { regex: '^/a)bc' }
    cost: 1
--- must_die
--- error_log eval
qr{credits\.yaml:4: invalid regex "\^/a\)bc": pcre2?_compile\(\) failed: [^"]+ in "\^/a\)bc" at "\)bc" \(route "a"\) in }

=== TEST 46: credit_memcached: max_batch must be 1 to 1024
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT max_batch=0;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log eval
qr/invalid parameter "max_batch=0" in \S+nginx\.conf:\d+/


=== TEST 47: credit_memcached: max_batch above 1024
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT max_batch=1025;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "max_batch=1025"


=== TEST 48: credit_memcached: a cache under 64k
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT cache=32k;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "cache=32k"


=== TEST 49: credit_memcached: a cache size that is no size
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT cache=big;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "cache=big"


=== TEST 50: credit_memcached: max_pending of 0
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT max_pending=0;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "max_pending=0"


=== TEST 51: credit_memcached: a timeout of 0
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT timeout=0;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "timeout=0"


=== TEST 52: credit_memcached: a connect_timeout that is no time
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT connect_timeout=soon;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "connect_timeout=soon"


=== TEST 53: credit_memcached: a retry_timeout of 0
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT retry_timeout=0s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "retry_timeout=0s"


=== TEST 54: credit_memcached: an option it does not know
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT wait=5s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "wait=5s"


=== TEST 55: credit_memcached: the same server twice
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
duplicate memcached server "127.0.0.1:


=== TEST 56: credit_memcached: options and no server
--- http_config
    credit_memcached timeout=1s cache=off;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
"credit_memcached" directive needs at least one server


=== TEST 57: credit_memcached: credit_memcached twice
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
"credit_memcached" directive is duplicate


=== TEST 58: credit_key_prefix over 100 bytes
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ { credit on; credit_account $http_x_api_key; credit_key_prefix "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"; return 200; }
--- must_die
--- error_log
credit_key_prefix "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp" is longer than 100 bytes


=== TEST 59: credit_matrix twice in one place
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ { credit on; credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
        credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml; return 200; }
--- must_die
--- error_log
"credit_matrix" directive is duplicate


=== TEST 60: credit_refund_status twice in one place
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ { credit on; credit_account $http_x_api_key;
        credit_refund_status 502; credit_refund_status 504; return 200; }
--- must_die
--- error_log
"credit_refund_status" directive is duplicate


=== TEST 61: credit_admin and credit_balance in one location
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /credit-admin/ { credit_admin; credit_balance; credit_account $http_x_api_key; }
--- must_die
--- error_log
"credit_balance" directive is duplicate


=== TEST 62: matrix: the matrix is not a mapping
--- user_files
>>> credits.yaml
- version: 1
--- must_die
--- error_log
credits.yaml:1: the matrix must be a mapping


=== TEST 63: matrix: routes missing
--- user_files
>>> credits.yaml
version: 1
--- must_die
--- error_log
credits.yaml:1: "routes" is missing


=== TEST 64: matrix: routes not a list
--- user_files
>>> credits.yaml
version: 1
routes: { a: 1 }
--- must_die
--- error_log
credits.yaml:2: "routes" must be a list


=== TEST 65: matrix: a route without a name
--- user_files
>>> credits.yaml
version: 1
routes:
  - match: { path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:3: route without a "name"


=== TEST 66: matrix: an empty route name
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: ''
    match: { path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:3: empty route name


=== TEST 67: matrix: a name that is not a scalar
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: [a]
    match: { path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:3: "name" must be a scalar


=== TEST 68: matrix: a route without a cost
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
--- must_die
--- error_log
credits.yaml:3: route without a "cost"


=== TEST 69: matrix: params not a mapping
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params: [n]
    cost: 1
--- must_die
--- error_log
credits.yaml:5: "params" must be a mapping


=== TEST 70: matrix: an empty method list
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { method: [], path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: empty "method" list


=== TEST 71: matrix: a method that is no method
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { method: get, path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: invalid method "get"


=== TEST 72: matrix: an empty path
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: '' }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: empty match pattern


=== TEST 73: matrix: a path without its slash
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { prefix: v1/ }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: path "v1/" must start with "/"


=== TEST 74: matrix: a cost in quotes
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: '7'
--- must_die
--- error_log
credits.yaml:5: "cost" must be an integer, not the quoted string "7"


=== TEST 75: matrix: a parameter without from
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { type: integer }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: parameter "n" has no "from"


=== TEST 76: matrix: an empty key
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, key: '' }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: empty "key"


=== TEST 77: matrix: an empty values list
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, values: [] }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: "values" must be a non-empty list


=== TEST 78: matrix: a parameter twice
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query }
      n: { from: header }
    cost: 1
--- must_die
--- error_log
credits.yaml:7: duplicate parameter "n"


=== TEST 79: matrix: base with a table
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, values: [x] }
    cost: { base: 1, table: { x: 1 } }
--- must_die
--- error_log
credits.yaml:7: "table" and "tiers" go with "by", not "base"


=== TEST 80: matrix: by with both table and tiers
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer, values: [1] }
    cost: { by: n, table: { 1: 1 }, tiers: [ { cost: 1 } ] }
--- must_die
--- error_log
credits.yaml:7: "by" needs exactly one of "table" or "tiers"


=== TEST 81: matrix: an empty table
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, values: [x] }
    cost: { by: n, table: {} }
--- must_die
--- error_log
credits.yaml:7: "table" must be a non-empty mapping


=== TEST 82: matrix: a table entry twice
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query }
    cost: { by: n, table: { x: 1, 'x': 2 } }
--- must_die
--- error_log
credits.yaml:7: duplicate table entry "x"


=== TEST 83: matrix: a table without the default's price
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, default: z }
    cost: { by: n, table: { x: 1 } }
--- must_die
--- error_log
credits.yaml:7: the table has no price for "z", the default of parameter "n"


=== TEST 84: matrix: a by list of one
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, values: [x] }
    cost: { by: [n], table: { x: 1 } }
--- must_die
--- error_log
credits.yaml:7: a "by" list names 2 to 4 parameters


=== TEST 85: matrix: a by-list key with too few values
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, values: [x] }
      m: { from: query, values: [y] }
    cost: { by: [n, m], table: { x: 1 } }
--- must_die
--- error_log
credits.yaml:8: table key "x" needs 2 comma-separated values


=== TEST 86: matrix: empty tiers
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer }
    cost: { by: n, tiers: [] }
--- must_die
--- error_log
credits.yaml:7: "tiers" must be a non-empty list


=== TEST 87: matrix: a tier without a cost
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer }
    cost: { by: n, tiers: [ { upto: 5 } ] }
--- must_die
--- error_log
credits.yaml:7: tier without a "cost"


=== TEST 88: matrix: times that is not a list
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer }
    cost: { base: 1, times: n }
--- must_die
--- error_log
credits.yaml:7: "times" must be a list of parameter names


=== TEST 89: matrix: add that is not a mapping
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      hd: { from: query, type: boolean }
    cost: { base: 1, add: [hd] }
--- must_die
--- error_log
credits.yaml:7: "add" must be a mapping of boolean parameters to credits


=== TEST 90: matrix: a cost past 10^15
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 1000000000000001
--- must_die
--- error_log
credits.yaml:5: "cost" must be at most 1000000000000000, not "1000000000000001"


=== TEST 91: matrix: a cost of many digits
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 99999999999999999999999999
--- must_die
--- error_log
credits.yaml:5: "cost" must be at most 1000000000000000, not "99999999999999999999999999"


=== TEST 92: matrix: a min that is no integer
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer, min: low }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: "min" must be an integer, not "low"


=== TEST 93: matrix: a method of 33 letters
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { method: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, path: /a }
    cost: 1
--- must_die
--- error_log
credits.yaml:4: invalid method "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


=== TEST 94: matrix: an empty parameter name
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      '': { from: query }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: empty parameter name


=== TEST 95: matrix: 65 body parameters
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      b0: { from: json, type: integer, default: 0 }
      b1: { from: json, type: integer, default: 0 }
      b2: { from: json, type: integer, default: 0 }
      b3: { from: json, type: integer, default: 0 }
      b4: { from: json, type: integer, default: 0 }
      b5: { from: json, type: integer, default: 0 }
      b6: { from: json, type: integer, default: 0 }
      b7: { from: json, type: integer, default: 0 }
      b8: { from: json, type: integer, default: 0 }
      b9: { from: json, type: integer, default: 0 }
      b10: { from: json, type: integer, default: 0 }
      b11: { from: json, type: integer, default: 0 }
      b12: { from: json, type: integer, default: 0 }
      b13: { from: json, type: integer, default: 0 }
      b14: { from: json, type: integer, default: 0 }
      b15: { from: json, type: integer, default: 0 }
      b16: { from: json, type: integer, default: 0 }
      b17: { from: json, type: integer, default: 0 }
      b18: { from: json, type: integer, default: 0 }
      b19: { from: json, type: integer, default: 0 }
      b20: { from: json, type: integer, default: 0 }
      b21: { from: json, type: integer, default: 0 }
      b22: { from: json, type: integer, default: 0 }
      b23: { from: json, type: integer, default: 0 }
      b24: { from: json, type: integer, default: 0 }
      b25: { from: json, type: integer, default: 0 }
      b26: { from: json, type: integer, default: 0 }
      b27: { from: json, type: integer, default: 0 }
      b28: { from: json, type: integer, default: 0 }
      b29: { from: json, type: integer, default: 0 }
      b30: { from: json, type: integer, default: 0 }
      b31: { from: json, type: integer, default: 0 }
      b32: { from: json, type: integer, default: 0 }
      b33: { from: json, type: integer, default: 0 }
      b34: { from: json, type: integer, default: 0 }
      b35: { from: json, type: integer, default: 0 }
      b36: { from: json, type: integer, default: 0 }
      b37: { from: json, type: integer, default: 0 }
      b38: { from: json, type: integer, default: 0 }
      b39: { from: json, type: integer, default: 0 }
      b40: { from: json, type: integer, default: 0 }
      b41: { from: json, type: integer, default: 0 }
      b42: { from: json, type: integer, default: 0 }
      b43: { from: json, type: integer, default: 0 }
      b44: { from: json, type: integer, default: 0 }
      b45: { from: json, type: integer, default: 0 }
      b46: { from: json, type: integer, default: 0 }
      b47: { from: json, type: integer, default: 0 }
      b48: { from: json, type: integer, default: 0 }
      b49: { from: json, type: integer, default: 0 }
      b50: { from: json, type: integer, default: 0 }
      b51: { from: json, type: integer, default: 0 }
      b52: { from: json, type: integer, default: 0 }
      b53: { from: json, type: integer, default: 0 }
      b54: { from: json, type: integer, default: 0 }
      b55: { from: json, type: integer, default: 0 }
      b56: { from: json, type: integer, default: 0 }
      b57: { from: json, type: integer, default: 0 }
      b58: { from: json, type: integer, default: 0 }
      b59: { from: json, type: integer, default: 0 }
      b60: { from: json, type: integer, default: 0 }
      b61: { from: json, type: integer, default: 0 }
      b62: { from: json, type: integer, default: 0 }
      b63: { from: json, type: integer, default: 0 }
      b64: { from: json, type: integer, default: 0 }
    cost: 1
--- must_die
--- error_log
credits.yaml:70: a route may have at most 64 body parameters


=== TEST 96: matrix: a JSON key 65 levels deep
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: json, key: k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: JSON key "k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k" is too deep


=== TEST 97: matrix: a price grid whose table is a list
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: query, values: [a] }
      s: { from: query, values: [b] }
    cost: { by: [q, s], table: [a, b] }
--- must_die
--- error_log
credits.yaml:8: "table" must be a non-empty mapping


=== TEST 98: matrix: a price grid key over 1024 bytes (an explicit YAML key: a plain one stops at 1024)
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: query }
      s: { from: query }
    cost:
      by: [q, s]
      table:
        ? 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'
        : 1
--- must_die
--- error_log
credits.yaml:11: table key too long


=== TEST 99: matrix: a price grid entry twice, once with a leading zero
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: query, values: [a] }
      s: { from: query, type: integer }
    cost: { by: [q, s], table: { 'a,1': 1, 'a,01': 2 } }
--- must_die
--- error_log
credits.yaml:8: duplicate table entry "a,1"


=== TEST 100: matrix: a cost with a letter in it
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    cost: 12x
--- must_die
--- error_log
credits.yaml:5: "cost" must be a non-negative integer, not "12x"


=== TEST 101: matrix: a min below -10^15
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      n: { from: query, type: integer, min: -10000000000000001 }
    cost: 1
--- must_die
--- error_log
credits.yaml:6: "min" must be an integer, not "-10000000000000001"



=== TEST 102: credit_memcached: a refund_retry of 0
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT refund_retry=0s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "refund_retry=0s"



=== TEST 103: credit_memcached: a refund_retry that is no time
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT refund_retry=forever;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid parameter "refund_retry=forever"



=== TEST 104: credit_memcached: previous= with a server without a port
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT previous=127.0.0.1:11211,10.0.0.5;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid memcached server "10.0.0.5" in "previous=127.0.0.1:11211,10.0.0.5", expected host:port



=== TEST 105: credit_memcached: previous= with an empty server
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT previous=127.0.0.1:11211,;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
invalid memcached server "" in "previous=127.0.0.1:11211,", expected host:port



=== TEST 106: credit_memcached: previous= naming a server twice
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT previous=10.0.0.5:11211,unix:/run/mc.sock,10.0.0.5:11211;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
duplicate memcached server "10.0.0.5:11211" in "previous=10.0.0.5:11211,unix:/run/mc.sock,10.0.0.5:11211"



=== TEST 107: credit_memcached: previous= twice
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT previous=10.0.0.5:11211 previous=10.0.0.6:11211;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- must_die
--- error_log
"credit_memcached" directive has "previous=" twice



=== TEST 108: matrix: a price grid key with more values than parameters
A grid's values cannot hold a comma: 'x,y,z' over two parameters would
price a request with q=x,y and s=z as well as q=x and s=y,z.
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: query }
      s: { from: query }
    cost: { by: [q, s], table: { 'x,y': 1, 'x,y,z': 2 } }
--- must_die
--- error_log
credits.yaml:8: table key "x,y,z" needs 2 comma-separated values



=== TEST 109: matrix: a three-parameter grid key with two values, quoted whole
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: a
    match: { path: /a }
    params:
      q: { from: query }
      s: { from: query }
      t: { from: query }
    cost: { by: [q, s, t], table: { 'x,y,z': 1, 'x,y': 2 } }
--- must_die
--- error_log
credits.yaml:9: table key "x,y" needs 3 comma-separated values
