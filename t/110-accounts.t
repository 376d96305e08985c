# Account ids: any byte string a variable can produce.  Odd ids (spaces,
# "%", non-ASCII, 300+ bytes) are metered with their own balances and
# never reach memcached as a broken command: ids are escaped into the
# key, and ids too long for a memcached key are keyed by their SHA-1.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

run_tests();

__DATA__

=== TEST 1: spaces and "%" in an id: distinct balances, escaped keys
--- init
CreditTest::grant('team%20a', 100);
CreditTest::grant('team%2520a', 200);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 'team a' });
Test::More::is($st, 200, "an id with a space is charged");
Test::More::is($h->{'x-credits-remaining'}, 80, "from its own balance");
($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 'team%20a' });
Test::More::is($h->{'x-credits-remaining'}, 180, "the literal \"%20\" id is another account");
Test::More::like(CreditTest::memcached("get test:team%20a\r\n"), qr/^VALUE test:team%20a 0 \d+\r\n80 0\r\n/, "the key is escaped in memcached");
--- request
GET /credit-admin/team%20a
--- response_body
{"account":"team a","plan":80,"pack":0,"total":80}



=== TEST 2: 300-byte ids are keyed by a digest, and stay distinct
--- init
my $a = 'k' x 300;
my $b = ('k' x 299) . 'j';
CreditTest::grant($a, 100);
CreditTest::grant($b, 50);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => $a });
Test::More::is($h->{'x-credits-remaining'}, 80, "the long id is charged from its balance");
($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => $b });
Test::More::is($h->{'x-credits-remaining'}, 30, "an id that differs at byte 300 has its own");
--- request eval
"GET /credit-admin/" . ('k' x 300)
--- response_body eval
qq({"account":") . ('k' x 300) . qq(","plan":80,"pack":0,"total":80}\n)



=== TEST 3: non-ASCII and control bytes in an id
--- init
CreditTest::grant('caf%C3%A9%09%01', 100);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => "caf\xc3\xa9\t\x01" });
Test::More::is($st, 200, "charged");
Test::More::is($h->{'x-credits-remaining'}, 80, "from its own balance");
--- request
GET /credit-admin/caf%C3%A9%09%01
--- response_body
{"account":"café\t\u0001","plan":80,"pack":0,"total":80}



=== TEST 4: an id from a query argument with CR LF percent-encoded
The $arg_ variable is not decoded: the id is the literal text, which is
escaped like any other; nothing reaches memcached unescaped.
--- config
    location /v1/ {
        credit on;
        credit_account $arg_key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
    location /credit-admin/ { credit_admin; }
--- request eval
["PUT /credit-admin/x%250D%250Aset%2520y/plan\n100",
 "POST /v1/background-removal?key=x%0D%0Aset%20y",
 "GET /credit-admin/x%250D%250Aset%2520y"]
--- response_body_like eval
["", "ok", qq("plan":80,)]
