# Hostile input: thousands of query arguments, large headers, very long
# account ids, deeply nested and very wide JSON.  Each gets a clear
# answer, and memcached never sees a broken command.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

our $ManyArgs = join('&', map { "a$_=$_" } 1 .. 5000) . '&resolution=4k';
our $Deep = ('{"a":' x 100) . '1' . ('}' x 100);
our $Wide = '{' . join(',', map { "\"k$_\":$_" } 1 .. 50000) . ',"n":3}';
our $LongId = 'x' x 4000;

add_block_preprocessor(sub {
    my $block = shift;
    CreditTest::defaults($block);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 5000 query arguments: the right one is found
--- config
    large_client_header_buffers 4 64k;
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t140-1
--- request eval
["PUT /credit-admin/t140-1/plan\n100",
 "POST /v1/object-removal?$::ManyArgs",
 "POST /v1/object-removal?$::ManyArgs&resolution=1k"]
--- error_code eval
[200, 200, 400]
--- response_headers eval
["", "X-Credits-Cost: 60", ""]
--- response_body_like eval
["", "ok", qq("param":"resolution","detail":"is given more than once")]



=== TEST 2: a 6 KB header value is a 400 for its parameter
--- more_headers eval
["X-API-Key: t140-2", "X-API-Key: t140-2\nX-Quality: " . ('h' x 6000)]
--- request eval
["PUT /credit-admin/t140-2/plan\n100", "POST /v1/images/generations"]
--- error_code eval
[200, 400]
--- response_body_like eval
["", qq("param":"quality","detail":"must be one of: standard, hd")]



=== TEST 3: a 4000-byte account id is metered, keyed by its digest
--- more_headers eval
["", "X-API-Key: $::LongId", ""]
--- request eval
["PUT /credit-admin/$::LongId/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/$::LongId"]
--- response_headers eval
["", "X-Credits-Cost: 20\nX-Credits-Remaining: 80", ""]
--- response_body_like eval
["", "ok", qq("plan":80,)]



=== TEST 4: JSON nested 100 deep is a 400; 50000 fields are fine
--- config
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers
X-API-Key: t140-4
Content-Type: application/json
--- request eval
["PUT /credit-admin/t140-4/plan\n100",
 "POST /v1/images/generations\n$::Deep",
 "POST /v1/images/generations\n$::Wide",
 "GET /credit-admin/t140-4"]
--- error_code eval
[200, 400, 200, 200]
--- response_body_like eval
["", qq("detail":"the JSON body is nested too deeply"), "ok", qq("plan":88,)]



=== TEST 5: a request line of odd bytes in the account: escaped, never a command
--- more_headers eval
["", "X-API-Key: a b\tc\x01d\x7fe%f#g", ""]
--- request eval
["PUT /credit-admin/a%20b%09c%01d%7Fe%25f%23g/plan\n100",
 "POST /v1/background-removal",
 "GET /credit-admin/a%20b%09c%01d%7Fe%25f%23g"]
--- response_body_like eval
["", "ok", qq("plan":80,)]
--- no_error_log
memcached refused
