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

# a memcached stand-in: answers "stats" and "stats settings" (the
# connection's first commands) as memcached does, or with $stats (both),
# or $settings (the whole answer to "stats settings"), and every other
# command with $reply
sub lying_memcached {
    my ($port, $reply, $stats, $settings) = @_;
    $stats //= "STAT pid 1\r\nSTAT uptime 5\r\nSTAT time 1700000000\r\n";
    CreditTest::serve($port, sub {
        my ($c) = @_;
        my $buf = '';
        while (sysread($c, my $b, 65536)) {
            $buf .= $b;
            while ($buf =~ s/^([^\n]*)\n//) {
                my $line = $1;
                if ($line =~ /^stats settings/ && defined $settings) {
                    syswrite($c, $settings);
                } elsif ($line =~ /^stats/) {
                    syswrite($c, "${stats}END\r\n");
                } elsif ($line =~ /^(?:mg|ms) /) {
                    $buf =~ s/^[^\n]*\n// if $line =~ /^ms /;
                    syswrite($c, $reply);
                }
            }
        }
    });
}

END {
    CreditTest::mc_stop(19863);
}

no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
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



=== TEST 6: a balance item that is not a balance fails its own account only
The charge on the 100 KB item is made in the init (a 503), so that both
items' log lines are in the log when it is first checked.
--- init
CreditTest::memcached("set test:t140-6-junk 0 0 3\r\nabc\r\n");
CreditTest::memcached("set test:t140-6-huge 0 0 100000\r\n" . ('9' x 100000) . "\r\n");
CreditTest::grant('t140-6-ok', 100);
my ($st, $h, $body) = CreditTest::request('POST', '/v1/background-removal',
                                          { 'X-API-Key' => 't140-6-huge' });
Test::More::is($st, 503, 'a charge on the 100 KB item: 503');
Test::More::like($body, qr/metering_unavailable/,
                 'a charge on the 100 KB item: metering_unavailable');
--- more_headers eval
["X-API-Key: t140-6-junk", "X-API-Key: t140-6-ok", "", ""]
--- request eval
["POST /v1/background-removal",
 "POST /v1/background-removal",
 "GET /credit-admin/t140-6-ok",
 "GET /credit-admin/t140-6-huge"]
--- error_code eval
[503, 200, 200, 503]
--- response_body_like eval
["metering_unavailable", "ok", qq("plan":80,),
 qq("error":"metering_unavailable","detail":"the account's memcached item is not a balance")]
--- error_log
the memcached item "test:t140-6-junk" is not a balance ("PLAN PACK")
the memcached item "test:t140-6-huge" is not a balance ("PLAN PACK")



=== TEST 7: an overlong item among other accounts' charges: they are read right
The overlong value's reply arrives amid the replies to the other
accounts' commands; each of those is still matched to its own request.
(10 of each: with 64 worker_connections, more proxied requests at once
would have nginx close connections to make room.)
--- init
CreditTest::memcached("set test:t140-7-huge 0 0 100000\r\n" . ('9' x 100000) . "\r\n");
CreditTest::grant("t140-7-$_", 100) for 1 .. 10;
my @reqs;
for my $i (1 .. 10) {
    push @reqs, ['POST', '/v1/background-removal', { 'X-API-Key' => 't140-7-huge' }],
                ['POST', '/v1/background-removal', { 'X-API-Key' => "t140-7-$i" }];
}
my @res = CreditTest::concurrent(@reqs);
Test::More::is(scalar(grep { $res[2 * $_]->[0] == 503 } 0 .. 9), 10,
               "the 10 requests of the overlong item: 503");
Test::More::is(scalar(grep { $res[2 * $_ + 1]->[0] == 200 } 0 .. 9), 10,
               "the 10 requests of the other accounts: 200");
Test::More::is(scalar(grep { CreditTest::balance("t140-7-$_") =~ /"plan":80,/ } 1 .. 10),
               10, "each of the other accounts charged once");
--- request
GET /credit-admin/t140-7-huge
--- error_code: 503
--- response_body_like: metering_unavailable



=== TEST 8: such an item is refused by the admin API too; set right, it works
--- init
CreditTest::memcached("set test:t140-8 0 0 3\r\nabc\r\n");
my ($st) = CreditTest::request('POST', '/v1/background-removal',
                               { 'X-API-Key' => 't140-8' });
Test::More::is($st, 503, "a charge on the item: 503");
($st) = CreditTest::request('PUT', '/credit-admin/t140-8/plan', {}, '100');
Test::More::is($st, 503, "a new plan: 503, the pack cannot be read");
($st) = CreditTest::request('POST', '/credit-admin/t140-8/pack', {}, '100');
Test::More::is($st, 503, "a top-up: 503");
Test::More::like(CreditTest::memcached("get test:t140-8\r\n"), qr/\r\nabc\r\n/,
                 "the item is untouched");
CreditTest::memcached("set test:t140-8 0 0 6\r\n100 50\r\n");
--- more_headers
X-API-Key: t140-8
--- request
POST /v1/background-removal
--- error_code: 200
--- response_headers
X-Credits-Cost: 20
X-Credits-Remaining: 130



=== TEST 9: a memcached that answers a read with an error: that request only
--- http_config
    credit_memcached 127.0.0.1:19855 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19855, "SERVER_ERROR out of memory\r\n");
--- more_headers
X-API-Key: t140-9
--- request eval
["POST /v1/background-removal", "POST /v1/background-removal"]
--- error_code eval
[503, 503]
--- response_body_like eval
["metering_unavailable", "metering_unavailable"]
--- error_log
credit: memcached 127.0.0.1:19855 answered "SERVER_ERROR out of memory" to a command on "credit:t140-9"
--- no_error_log
invalid memcached reply



=== TEST 10: a memcached that announces a value over 1 GB: the connection is dropped
--- http_config
    credit_memcached 127.0.0.1:19856 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19856, "VA 9223372036854775807 c1\r\n");
--- more_headers
X-API-Key: t140-10
--- request
POST /v1/background-removal
--- error_code: 503
--- response_body_like: metering_unavailable
--- error_log
credit: invalid memcached reply (127.0.0.1:19856)



=== TEST 11: a bucket over 10^15, the most the module writes, is no balance
--- init
CreditTest::memcached("set test:t140-11-big 0 0 21\r\n9223372036854775807 1\r\n");
CreditTest::memcached("set test:t140-11-max 0 0 18\r\n1000000000000000 0\r\n");
--- more_headers eval
["X-API-Key: t140-11-big", "X-API-Key: t140-11-max"]
--- request eval
["POST /v1/background-removal", "POST /v1/background-removal"]
--- error_code eval
[503, 200]
--- response_headers eval
["", "X-Credits-Remaining: 999999999999980"]
--- error_log
the memcached item "test:t140-11-big" is not a balance



=== TEST 12: "stats" ends at a line "END", not at a value that ends so
--- http_config
    credit_memcached 127.0.0.1:19857 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19857, "EN\r\n",
                      "STAT libevent 2.1.12-BACKEND\r\nSTAT pid 7\r\n"
                      . "STAT uptime 5\r\nSTAT time 1700000000\r\n");
--- more_headers
X-API-Key: t140-12
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body_like: "error":"insufficient_credits"
--- no_error_log
memcached 127.0.0.1:19857 answered



=== TEST 13: a "stats" with no lines at all is accepted (the balance cache then stays out)
--- http_config
    credit_memcached 127.0.0.1:19858 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19858, "EN\r\n", "");
--- more_headers
X-API-Key: t140-13
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body_like: "error":"insufficient_credits"



=== TEST 14: a memcached older than 1.6.10 is named, with its version
Its meta commands answer in an older form ("OK" for "HD", no length in
"ms"): every charge would fail with a protocol error.  The "stats" of
the connection says so first.
--- http_config
    credit_memcached 127.0.0.1:19859 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19859, "EN\r\n",
                      "STAT pid 7\r\nSTAT uptime 5\r\nSTAT time 1700000000\r\n"
                      . "STAT version 1.6.9\r\n");
--- more_headers
X-API-Key: t140-14
--- request
POST /v1/background-removal
--- error_code: 503
--- response_body_like: "error":"metering_unavailable"
--- error_log
credit: memcached 1.6.9 at 127.0.0.1:19859 is too old: the module needs memcached 1.6.10 or newer (its meta commands)
credit: memcached too old (127.0.0.1:19859), 1 operation failed



=== TEST 15: memcached 1.6.10 and a version with a suffix are new enough
--- http_config
    credit_memcached 127.0.0.1:19860 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19860, "EN\r\n",
                      "STAT pid 7\r\nSTAT uptime 5\r\nSTAT time 1700000000\r\n"
                      . "STAT version 1.6.10-rc1\r\n");
--- more_headers
X-API-Key: t140-15
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body_like: "error":"insufficient_credits"
--- no_error_log
too old



=== TEST 16: a memcached that evicts when full is warned about
"stats settings" says "evictions on" when memcached runs without -M: it
may drop a balance to make room.  The charges still work.
--- http_config
    credit_memcached 127.0.0.1:19861 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19861, "EN\r\n", undef,
                      "STAT maxbytes 67108864\r\nSTAT evictions on\r\n"
                      . "STAT growth_factor 1.25\r\nEND\r\n");
--- more_headers
X-API-Key: t140-16
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body_like: "error":"insufficient_credits"
--- error_log
credit: memcached at 127.0.0.1:19861 evicts items when it is full (it runs without -M): a balance it evicts is lost



=== TEST 17: a proxy that refuses "stats settings" is still used
--- http_config
    credit_memcached 127.0.0.1:19862 timeout=1s;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- init
main::lying_memcached(19862, "EN\r\n", undef, "ERROR\r\n");
--- more_headers
X-API-Key: t140-17
--- request
POST /v1/background-removal
--- error_code: 402
--- response_body_like: "error":"insufficient_credits"
--- no_error_log
invalid memcached reply
evicts items



=== TEST 18: a real memcached without -M is warned about, one with -M not
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '127.0.0.1:19863 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT'
                           . ' timeout=1s')
--- init
CreditTest::mc_run("-l 127.0.0.1 -p 19863 -U 0", 19863, sub {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 19863)
}, 'evicting');
for my $i (1 .. 20) {
    CreditTest::grant("t140-18-$i", 100);
    my ($st) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => "t140-18-$i" });
    Test::More::is($st, 200, "charged t140-18-$i");
}
--- request
GET /credit-admin/t140-18-1
--- response_body
{"account":"t140-18-1","plan":80,"pack":0,"total":80}
--- error_log
credit: memcached at 127.0.0.1:19863 evicts items when it is full
--- no_error_log eval
qr/memcached at 127\.0\.0\.1:$ENV{TEST_NGINX_MEMCACHED_PORT} evicts/



=== TEST 19: a path that nginx and the backend could read apart is a 400
nginx prices the normalized $uri while proxy_pass (without a URI) sends
the path as the client wrote it, so dot segments, empty segments and
encoded slashes or dots could route the backend elsewhere:
/v1/reels/8s/..%2F4s is priced as 4s here, but a backend that routes the
raw path and reads "8s/../4s" as a number makes 8 seconds (it once went
through at the 4s price); a Java server cuts ";v=8" off, some servers
take a backslash for a slash. A percent-encoded character that is no
separator is fine, and so is anything in the query string.
--- more_headers
X-API-Key: t140-19
--- request eval
["PUT /credit-admin/t140-19/plan\n2000",
 "POST /v1/reels/8s/..%2F4s", "POST /v1/reels/8s/../4s",
 "POST /v1/reels/./4s", "POST /v1//reels/4s", "POST /v1/reels/8s%2F..%2F4s",
 "POST /v1/reels/%2e%2e/reels/4s", "POST /v1/reels/4s;v=8",
 "POST /v1/reels\\4s", "POST /v1/reels/%34s",
 "POST /v1/reels/4s?next=//a/../b%2F", "GET /credit-admin/t140-19"]
--- error_code eval
[200, 400, 400, 400, 400, 400, 400, 400, 400, 200, 200, 200]
--- response_headers eval
["", ("!X-Credits-Cost") x 8, "X-Credits-Cost: 400", "X-Credits-Cost: 400",
 ""]
--- response_body eval
[qq({"account":"t140-19","plan":2000,"pack":0,"total":2000}\n),
 (qq({"error":"invalid_parameter","detail":"the path has a dot or empty segment, an encoded separator, a backslash or a semicolon: the backend could read it otherwise"}\n)) x 8,
 "ok POST /v1/reels/4s\n", "ok POST /v1/reels/4s\n",
 qq({"account":"t140-19","plan":1200,"pack":0,"total":1200}\n)]
