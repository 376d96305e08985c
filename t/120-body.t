# Parameters from the request body: JSON (top-level fields, dotted paths,
# array indexes), urlencoded and multipart forms; bodies in memory, in temp
# files, chunked, after "Expect: 100-continue"; every bad body is a 400 (or
# 413) that charges nothing; the upstream gets the body byte for byte (the
# echo upstream answers "LENGTH MD5" of what it received).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

our $BodyConfig = <<'_EOC_';
    client_body_buffer_size 16k;

    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml;
        add_header X-Ledger "$credit_status $credit_cost" always;
        proxy_pass http://127.0.0.1:19900;
    }

    location ~ ^/v1/(batch|form)$ {
        credit on;
        credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits-body.yaml;
        add_header X-Ledger "$credit_status $credit_cost" always;
        proxy_pass http://127.0.0.1:19900;
    }

    location /credit-admin/ { credit_admin; }
_EOC_

our %B = (
    gen    => '{"prompt":"a red fox in snow","n":2,"quality":"hd","size":"1792x1024"}',
    big    => '{"n":3,"image":"' . ('QUJD' x 500_000) . '","size":"1024x1792"}',
    mp     => join("\r\n",
                   '--XyZ',
                   'Content-Disposition: form-data; name="image"; filename="n.png"',
                   'Content-Type: image/png',
                   '',
                   "\x89PNG\r\n\x1a\nbinary--XyZ-not-a-boundary\x00\xff",
                   '--XyZ',
                   'Content-Disposition: form-data; name="n"',
                   '',
                   '2',
                   '--XyZ',
                   'Content-Disposition: form-data; name="size"',
                   '',
                   '512x512',
                   '--XyZ--'),
);

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config', $BodyConfig) unless defined $block->config;
    $block->set_value('init', "CreditTest::echo_server(19900);\n"
                              . ($block->init // ''));
    CreditTest::defaults($block);
});

no_shuffle();
check_accum_error_log();    # each log check reads all of the block's log
run_tests();

__DATA__

=== TEST 1: JSON: quality x size times n, and the upstream gets the same bytes
hd + 1792x1024 = 12 a picture, n = 2: 24.
--- more_headers
X-API-Key: t120-1
Content-Type: application/json
--- request eval
["PUT /credit-admin/t120-1/plan\n100",
 "POST /v1/images/generations\n$::B{gen}",
 "GET /credit-admin/t120-1"]
--- response_headers eval
["", "X-Credits-Cost: 24\nX-Credits-Remaining: 76", ""]
--- response_body eval
[qq({"account":"t120-1","plan":100,"pack":0,"total":100}\n),
 CreditTest::md5_line($::B{gen}),
 qq({"account":"t120-1","plan":76,"pack":0,"total":76}\n)]



=== TEST 2: absent fields take their defaults; so does an empty body
--- more_headers eval
["X-API-Key: t120-2",
 "X-API-Key: t120-2\nContent-Type: application/json",
 "X-API-Key: t120-2",
 "X-API-Key: t120-2\nContent-Type: application/json"]
--- request eval
["PUT /credit-admin/t120-2/plan\n100",
 "POST /v1/images/generations\n{\"prompt\":\"x\"}",
 "POST /v1/images/generations",
 "POST /v1/images/generations\n{\"n\":null,\"quality\":\"standard\"}"]
--- response_headers eval
["", "X-Credits-Cost: 4", "X-Credits-Cost: 4", "X-Credits-Cost: 4\nX-Credits-Remaining: 88"]



=== TEST 3: dotted paths and array indexes
--- more_headers
X-API-Key: t120-3
Content-Type: application/json
--- request eval
["PUT /credit-admin/t120-3/plan\n1000",
 "POST /v1/batch\n{\"images\":[{\"size\":\"m\"},{\"size\":\"s\"}],\"options\":{\"hd\":true}}",
 "POST /v1/batch\n{\"options\":{\"x\":[1,{\"y\":2}]},\"images\":[{\"size\":\"s\",\"size2\":\"m\"}]}",
 "POST /v1/batch\n{\"images\":[],\"options\":{\"hd\":true}}",
 "POST /v1/videos\n{\"duration\":8,\"options\":{\"resolution\":\"1080p\"},\"prompt\":\"waves\"}",
 "POST /v1/videos\n{\"options\":{\"resolution\":\"4k\"}}",
 "GET /credit-admin/t120-3"]
--- error_code eval
[200, 200, 200, 400, 200, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 12", "X-Credits-Cost: 1", "", "X-Credits-Cost: 200", "", ""]
--- response_body_like eval
["", "", "",
 qq("param":"first","detail":"is required"),
 "",
 qq("route":"video-generation","param":"duration","detail":"is required"),
 qq("total":787)]



=== TEST 4: numbers: integers only for integer parameters
--- more_headers
X-API-Key: t120-4
Content-Type: application/json
--- request eval
["PUT /credit-admin/t120-4/plan\n100",
 "POST /v1/images/generations\n{\"n\":2.0}",
 "POST /v1/images/generations\n{\"n\":1e1}",
 "POST /v1/images/generations\n{\"n\":\"3\"}",
 "POST /v1/images/generations\n{\"n\":11}",
 "GET /credit-admin/t120-4"]
--- error_code eval
[200, 400, 400, 200, 400, 200]
--- response_body_like eval
["",
 qq("param":"n","detail":"must be an integer"),
 qq("param":"n","detail":"must be an integer"),
 "",
 qq("param":"n","detail":"must be at most 10"),
 qq("total":88)]



=== TEST 5: a field given twice, a nested object where a value belongs
--- more_headers
X-API-Key: t120-5
Content-Type: application/json
--- request eval
["PUT /credit-admin/t120-5/plan\n100",
 "POST /v1/images/generations\n{\"n\":1,\"n\":2}",
 "POST /v1/images/generations\n{\"n\":{\"value\":2}}",
 "GET /credit-admin/t120-5"]
--- error_code eval
[200, 400, 400, 200]
--- response_body eval
[qq({"account":"t120-5","plan":100,"pack":0,"total":100}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"is given more than once"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"must be a single value, not an object or an array"}\n),
 qq({"account":"t120-5","plan":100,"pack":0,"total":100}\n)]



=== TEST 6: malformed JSON, a wrong content type, a non-object body: 400, nothing charged
--- more_headers eval
["X-API-Key: t120-6",
 "X-API-Key: t120-6\nContent-Type: application/json",
 "X-API-Key: t120-6\nContent-Type: application/json",
 "X-API-Key: t120-6\nContent-Type: text/plain",
 "X-API-Key: t120-6\nContent-Type: application/json",
 "X-API-Key: t120-6\nContent-Type: application/vnd.api+json",
 "X-API-Key: t120-6"]
--- request eval
["PUT /credit-admin/t120-6/plan\n100",
 "POST /v1/images/generations\n{\"n\":2,",
 "POST /v1/images/generations\n{\"n\":2}}",
 "POST /v1/images/generations\n{\"n\":2}",
 "POST /v1/images/generations\n[{\"n\":2}]",
 "POST /v1/images/generations\n{\"n\":2}",
 "GET /credit-admin/t120-6"]
--- error_code eval
[200, 400, 400, 400, 400, 200, 200]
--- response_body eval
[qq({"account":"t120-6","plan":100,"pack":0,"total":100}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"the body is not valid JSON"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"the body is not valid JSON"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"needs a JSON body (Content-Type: application/json)"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"needs a JSON object body"}\n),
 CreditTest::md5_line('{"n":2}'),
 qq({"account":"t120-6","plan":92,"pack":0,"total":92}\n)]



=== TEST 7: urlencoded form fields
--- more_headers eval
["X-API-Key: t120-7",
 "X-API-Key: t120-7\nContent-Type: application/x-www-form-urlencoded",
 "X-API-Key: t120-7\nContent-Type: application/x-www-form-urlencoded",
 "X-API-Key: t120-7\nContent-Type: application/json",
 "X-API-Key: t120-7"]
--- request eval
["PUT /credit-admin/t120-7/plan\n100",
 "POST /v1/form\nn=3&kind=b&note=a+b%26c",
 "POST /v1/form\nn=1&n=2",
 "POST /v1/form\n{\"n\":1}",
 "GET /credit-admin/t120-7"]
--- error_code eval
[200, 200, 400, 400, 200]
--- response_body eval
[qq({"account":"t120-7","plan":100,"pack":0,"total":100}\n),
 CreditTest::md5_line("n=3&kind=b&note=a+b%26c"),
 qq({"error":"invalid_parameter","route":"form","param":"n","detail":"is given more than once"}\n),
 qq({"error":"invalid_parameter","route":"form","param":"n","detail":"needs a form body (Content-Type: application/x-www-form-urlencoded or multipart/form-data)"}\n),
 qq({"account":"t120-7","plan":85,"pack":0,"total":85}\n)]



=== TEST 8: multipart: fields beside a file; a truncated body is a 400
--- more_headers eval
["X-API-Key: t120-8",
 "X-API-Key: t120-8\nContent-Type: multipart/form-data; boundary=XyZ",
 "X-API-Key: t120-8\nContent-Type: multipart/form-data; boundary=XyZ",
 "X-API-Key: t120-8\nContent-Type: multipart/form-data; boundary=\"XyZ\"",
 "X-API-Key: t120-8"]
--- request eval
["PUT /credit-admin/t120-8/plan\n100",
 "POST /v1/images/edits\n$::B{mp}",
 "POST /v1/images/edits\n" . substr($::B{mp}, 0, -12),
 "POST /v1/images/edits\n$::B{mp}",
 "GET /credit-admin/t120-8"]
--- error_code eval
[200, 200, 400, 200, 200]
--- response_headers eval
["", "X-Credits-Cost: 4", "!X-Credits-Cost", "X-Credits-Cost: 4", ""]
--- response_body eval
[qq({"account":"t120-8","plan":100,"pack":0,"total":100}\n),
 CreditTest::md5_line($::B{mp}),
 qq({"error":"invalid_parameter","route":"image-edit","param":"n","detail":"the multipart body is malformed or truncated"}\n),
 CreditTest::md5_line($::B{mp}),
 qq({"account":"t120-8","plan":92,"pack":0,"total":92}\n)]



=== TEST 9: a 2 MB JSON body in a temp file: priced, and forwarded intact
--- init
CreditTest::grant('t120-9', 100);
--- more_headers
X-API-Key: t120-9
Content-Type: application/json
--- request eval
["POST /v1/images/generations\n$::B{big}",
 "GET /credit-admin/t120-9"]
--- response_headers eval
["X-Credits-Cost: 24", ""]
--- response_body eval
[CreditTest::md5_line($::B{big}), qq({"account":"t120-9","plan":76,"pack":0,"total":76}\n)]
--- error_log
a client request body is buffered to a temporary file



=== TEST 10: a chunked request body
--- more_headers eval
["X-API-Key: t120-10",
 "X-API-Key: t120-10\nContent-Type: application/json\nTransfer-Encoding: chunked",
 "X-API-Key: t120-10"]
--- request eval
["PUT /credit-admin/t120-10/plan\n100",
 "POST /v1/images/generations\n8\r\n{\"n\":2, \r\nf\r\n\"quality\":\"hd\"}\r\n0\r\n\r\n",
 "GET /credit-admin/t120-10"]
--- response_headers eval
["", "X-Credits-Cost: 16", ""]
--- response_body eval
[qq({"account":"t120-10","plan":100,"pack":0,"total":100}\n), CreditTest::md5_line('{"n":2, "quality":"hd"}'), qq({"account":"t120-10","plan":84,"pack":0,"total":84}\n)]



=== TEST 11: Expect: 100-continue: the client sends its body after the go-ahead
--- init
CreditTest::grant('t120-11', 100);
my $body = '{"n":3}';
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $CreditTest::Port, Proto => 'tcp') or die $!;
print $s "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nX-API-Key: t120-11\r\n"
         . "Content-Type: application/json\r\nContent-Length: " . length($body)
         . "\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
my $first = '';
sysread($s, $first, 4096);
Test::More::like($first, qr{^HTTP/1\.1 100 Continue\r\n}, "nginx asks for the body");
print $s $body;
local $/;
my $rest = <$s>;
Test::More::like($rest, qr{X-Credits-Cost: 12\r\n}, "then prices it");
Test::More::like($rest, qr{\r\n\r\n7 [0-9a-f]{32}\n$}, "and forwards it");
--- request
GET /credit-admin/t120-11
--- response_body
{"account":"t120-11","plan":88,"pack":0,"total":88}



=== TEST 12: over credit_body_limit, or client_max_body_size: 413, nothing charged
A Content-Length above client_max_body_size is refused by nginx itself
before any module runs (its own 413 page); a chunked body that grows past
it is refused while being read, and answered here in JSON.
--- config
    location /v1/images/generations {
        credit on;
        credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml;
        credit_body_limit 1k;
        proxy_pass http://127.0.0.1:19900;
    }
    location /v1/videos {
        credit on;
        credit_account $http_x_api_key;
        credit_matrix $TEST_NGINX_PROJECT_DIR/conf/matrices/openai.yaml;
        client_max_body_size 1k;
        proxy_pass http://127.0.0.1:19900;
    }
    location /credit-admin/ { credit_admin; }
--- more_headers eval
["X-API-Key: t120-12",
 "X-API-Key: t120-12\nContent-Type: application/json",
 "X-API-Key: t120-12\nContent-Type: application/json\nTransfer-Encoding: chunked",
 "X-API-Key: t120-12\nContent-Type: application/json\nTransfer-Encoding: chunked",
 "X-API-Key: t120-12\nContent-Type: application/json",
 "X-API-Key: t120-12"]
--- request eval
["PUT /credit-admin/t120-12/plan\n100",
 "POST /v1/images/generations\n{\"n\":1,\"pad\":\"" . ('x' x 2000) . "\"}",
 "POST /v1/images/generations\n" . CreditTest::chunked('{"n":1,"pad":"' . ('x' x 1984) . '"}'),
 "POST /v1/videos\n" . CreditTest::chunked('{"duration":1,"pad":"' . ('x' x 2000) . '"}'),
 "POST /v1/images/generations\n{\"n\":1}",
 "GET /credit-admin/t120-12"]
--- error_code eval
[200, 413, 413, 413, 200, 200]
--- response_body eval
[qq({"account":"t120-12","plan":100,"pack":0,"total":100}\n),
 qq({"error":"body_too_large","route":"image-generation","param":"n","detail":"the body is larger than credit_body_limit"}\n),
 qq({"error":"body_too_large","route":"image-generation","param":"n","detail":"the body is larger than credit_body_limit"}\n),
 qq({"error":"body_too_large","route":"video-generation","param":"duration","detail":"the body is larger than credit_body_limit"}\n),
 CreditTest::md5_line('{"n":1}'),
 qq({"account":"t120-12","plan":96,"pack":0,"total":96}\n)]



=== TEST 13: a JSON body that is a number, a string or null is no object
--- more_headers
X-API-Key: t120-13
Content-Type: application/json
--- request eval
["PUT /credit-admin/t120-13/plan\n100",
 "POST /v1/images/generations\n42",
 "POST /v1/images/generations\n\"n=2\"",
 "POST /v1/images/generations\nnull",
 "GET /credit-admin/t120-13"]
--- error_code eval
[200, 400, 400, 400, 200]
--- response_body eval
[qq({"account":"t120-13","plan":100,"pack":0,"total":100}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"needs a JSON object body"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"needs a JSON object body"}\n),
 qq({"error":"invalid_parameter","route":"image-generation","param":"n","detail":"needs a JSON object body"}\n),
 qq({"account":"t120-13","plan":100,"pack":0,"total":100}\n)]



=== TEST 14: field names as the upstream reads them: a form's decoded, JSON's unescaped
%6E=3 in a form is n=3 to the backend, and "\u0073ize" in JSON is
"size": each is priced as what it names (the form's once took the
default), and beside the plain name it is given twice.
--- more_headers eval
["X-API-Key: t120-14",
 "X-API-Key: t120-14\nContent-Type: application/x-www-form-urlencoded",
 "X-API-Key: t120-14\nContent-Type: application/x-www-form-urlencoded",
 "X-API-Key: t120-14\nContent-Type: application/json",
 "X-API-Key: t120-14\nContent-Type: application/json",
 "X-API-Key: t120-14"]
--- request eval
["PUT /credit-admin/t120-14/plan\n100",
 "POST /v1/form\n%6E=3&kind=b",
 "POST /v1/form\nn=1&%6e=2&kind=b",
 "POST /v1/batch\n{\"images\":[{\"si\\u007ae\":\"m\"}]}",
 "POST /v1/batch\n{\"images\":[{\"size\":\"s\",\"si\\u007ae\":\"m\"}]}",
 "GET /credit-admin/t120-14"]
--- error_code eval
[200, 200, 400, 200, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 15", "!X-Credits-Cost", "X-Credits-Cost: 2",
 "!X-Credits-Cost", ""]
--- response_body eval
[qq({"account":"t120-14","plan":100,"pack":0,"total":100}\n),
 CreditTest::md5_line("%6E=3&kind=b"),
 qq({"error":"invalid_parameter","route":"form","param":"n","detail":"is given more than once"}\n),
 CreditTest::md5_line("{\"images\":[{\"si\\u007ae\":\"m\"}]}"),
 qq({"error":"invalid_parameter","route":"batch","param":"first","detail":"is given more than once"}\n),
 qq({"account":"t120-14","plan":83,"pack":0,"total":83}\n)]



=== TEST 15: multipart: a part's name as a backend's parser reads it
A name may be a token (name=n) or have spaces around its "="; each is
priced as the field it names (the token once took n's default, 1). What
parsers read apart is a 400: RFC 5987's name* (Werkzeug and Go decode
it, Python's cgi passes over it), a filename* without a filename (a file
to the first, a field to the last; with a filename too the part is a
file to all), a name given twice in one part, two Content-Disposition
lines, an unterminated quote, a quoted pair other than \" and \\ (Go
reads name="\n" as n, Werkzeug as a backslash and an n).
--- more_headers eval
my $mp = "X-API-Key: t120-15\nContent-Type: multipart/form-data; boundary=XyZ";
["X-API-Key: t120-15", ($mp) x 9, "X-API-Key: t120-15"]
--- request eval
sub mp { join("\r\n", '--XyZ', @_, '--XyZ',
                      'Content-Disposition: form-data; name="size"', '',
                      '512x512', '--XyZ--') }
["PUT /credit-admin/t120-15/plan\n100",
 "POST /v1/images/edits\n" . mp('Content-Disposition: form-data; name=n', '', '3'),
 "POST /v1/images/edits\n" . mp('Content-Disposition: form-data; name = "n"', '', '3'),
 "POST /v1/images/edits\n" . mp("Content-Disposition: form-data; name=\"n\"; filename=\"n.png\"; filename*=UTF-8''n.png", '', '9'),
 "POST /v1/images/edits\n" . mp("Content-Disposition: form-data; NAME*=UTF-8''%6E", '', '3'),
 "POST /v1/images/edits\n" . mp("Content-Disposition: form-data; name=\"n\"; filename*=UTF-8''n.png", '', '9'),
 "POST /v1/images/edits\n" . mp("Content-Disposition: form-data; name=\"x\"; name=\"n\"", '', '3'),
 "POST /v1/images/edits\n" . mp('Content-Disposition: form-data; name="x"', 'Content-Disposition: form-data; name="n"', '', '3'),
 "POST /v1/images/edits\n" . mp('Content-Disposition: form-data; name="n', '', '3'),
 "POST /v1/images/edits\n" . mp('Content-Disposition: form-data; name="\\n"', '', '3'),
 "GET /credit-admin/t120-15"]
--- error_code eval
[200, 200, 200, 200, 400, 400, 400, 400, 400, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 6", "X-Credits-Cost: 6", "X-Credits-Cost: 2",
 ("!X-Credits-Cost") x 6, ""]
--- response_body_like eval
[qr/"total":100\b/, (qr/^\d+ [0-9a-f]{32}$/) x 3,
 (qr/^\Q{"error":"invalid_parameter","route":"image-edit","param":"n","detail":"a multipart part's Content-Disposition is malformed or ambiguous"}\E$/) x 6,
 qr/"total":86\b/]



=== TEST 16: two Content-Type headers: which the backend takes is its own choice, a 400
A body read as a form under the first could be JSON under the second, as
a backend that takes the last reads it: {"n":50} once went through at
n's default price.
--- more_headers eval
["X-API-Key: t120-16",
 "X-API-Key: t120-16\nContent-Type: application/x-www-form-urlencoded\nContent-Type: application/json",
 "X-API-Key: t120-16\nContent-Type: application/json\nContent-Type: application/json",
 "X-API-Key: t120-16"]
--- request eval
["PUT /credit-admin/t120-16/plan\n100",
 "POST /v1/form\n{\"n\":50}",
 "POST /v1/batch\n{\"images\":[{\"size\":\"m\"}]}",
 "GET /credit-admin/t120-16"]
--- error_code eval
[200, 400, 400, 200]
--- response_headers eval
["", "!X-Credits-Cost", "!X-Credits-Cost", ""]
--- response_body eval
[qq({"account":"t120-16","plan":100,"pack":0,"total":100}\n),
 qq({"error":"invalid_parameter","route":"form","param":"n","detail":"the request has more than one Content-Type header"}\n),
 qq({"error":"invalid_parameter","route":"batch","param":"first","detail":"the request has more than one Content-Type header"}\n),
 qq({"account":"t120-16","plan":100,"pack":0,"total":100}\n)]



=== TEST 17: a compressed body cannot be priced: a 400
Read as a form, gzip bytes are names with no value and every parameter
takes its default, while a backend that inflates request bodies
(Express's body-parser does) reads n=50: it once went through at n's
default price. Content-Encoding: identity is no encoding.
--- more_headers eval
["X-API-Key: t120-17",
 "X-API-Key: t120-17\nContent-Type: application/x-www-form-urlencoded\nContent-Encoding: gzip",
 "X-API-Key: t120-17\nContent-Type: application/x-www-form-urlencoded\nContent-Encoding: identity",
 "X-API-Key: t120-17"]
--- request eval
use IO::Compress::Gzip qw(gzip);
my $z; gzip(\"n=50&kind=b" => \$z);
["PUT /credit-admin/t120-17/plan\n1000",
 "POST /v1/form\n$z",
 "POST /v1/form\nn=2&kind=b",
 "GET /credit-admin/t120-17"]
--- error_code eval
[200, 400, 200, 200]
--- response_headers eval
["", "!X-Credits-Cost", "X-Credits-Cost: 10", ""]
--- response_body_like eval
[qr/"total":1000\b/,
 qr/^\Q{"error":"invalid_parameter","route":"form","param":"n","detail":"a body with a Content-Encoding cannot be priced"}\E$/,
 qr/^\d+ [0-9a-f]{32}$/,
 qr/"total":990\b/]



=== TEST 18: multipart: the boundary is the Content-Type's boundary parameter, once
Read as a backend reads the parameters: not a "boundary=" inside another
parameter's value or name (which once gave the body another boundary
than the backend's), and a second boundary is a 400, as is none.
--- more_headers eval
my $h = "X-API-Key: t120-18\nContent-Type: multipart/form-data";
["X-API-Key: t120-18", $h, "$h; boundary=A; boundary=XyZ",
 "$h; x=\"boundary=A\"; boundary=XyZ", "$h; xboundary=A; Boundary = \"XyZ\"",
 "X-API-Key: t120-18"]
--- request eval
my $mp = join("\r\n", '--XyZ', 'Content-Disposition: form-data; name="n"',
              '', '3', '--XyZ--');
["PUT /credit-admin/t120-18/plan\n100", ("POST /v1/images/edits\n$mp") x 4,
 "GET /credit-admin/t120-18"]
--- error_code eval
[200, 400, 400, 200, 200, 200]
--- response_headers eval
["", "!X-Credits-Cost", "!X-Credits-Cost", "X-Credits-Cost: 12",
 "X-Credits-Cost: 12", ""]
--- response_body_like eval
[qr/"total":100\b/,
 (qr/^\Q{"error":"invalid_parameter","route":"image-edit","param":"n","detail":"the multipart body has no boundary, or more than one"}\E$/) x 2,
 qr/^\d+ [0-9a-f]{32}$/, qr/^\d+ [0-9a-f]{32}$/, qr/"total":76\b/]



=== TEST 19: multipart: a part hidden behind a bare line break is a 400
Werkzeug (Flask) takes a bare LF or CR for CRLF: a part whose data holds
"\n--XyZ\n" and a part "n" after it is one field "note" here and two
fields, note and n=10, there; it once went through at n's default
price. A "--XyZ" after a bare LF or CR is a 400 anywhere, and so is one
that begins a line in part headers or after the end, or a bare LF or CR
in part headers; within a line "--XyZ" is data to every parser.
--- more_headers eval
my $h = "X-API-Key: t120-19\nContent-Type: multipart/form-data; boundary=XyZ";
["X-API-Key: t120-19", ($h) x 7, "X-API-Key: t120-19"]
--- request eval
my $hidden = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n"
    . "a\n--XyZ\nContent-Disposition: form-data; name=\"n\"\n\n10\r\n--XyZ--";
my $pre = "pre\n--XyZ\nContent-Disposition: form-data; name=\"n\"\n\n10\n"
    . "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nb"
    . "\r\n--XyZ--";
my $hdr = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\n"
    . "Content-Disposition: form-data; name=\"n\"\r\n\r\n10\r\n--XyZ--";
my $after = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nc"
    . "\r\n--XyZ--\r\n--XyZ\r\nContent-Disposition: form-data; name=\"n\""
    . "\r\n\r\n10\r\n--XyZ--";
my $inhdr = "--XyZ\r\nX-Note: a\r\n--XyZ\r\nContent-Disposition: form-data; "
    . "name=\"n\"\r\n\r\n2\r\n--XyZ--";
my $empty = "--XyZ\r\n\r\nno headers\r\n--XyZ\r\nContent-Disposition: "
    . "form-data; name=\"n\"\r\n\r\n2\r\n--XyZ--";
my $ok = "--XyZ\r\nX-Note: a --XyZ\r\nContent-Disposition: form-data; "
    . "name=\"note\"\r\n\r\nx --XyZ y\r\n--XyZ\r\nContent-Disposition: "
    . "form-data; name=\"n\"\r\n\r\n2\r\n--XyZ--\r\nepilogue --XyZ\n";
["PUT /credit-admin/t120-19/plan\n100",
 map({ "POST /v1/images/edits\n$_" } $hidden, $pre, $hdr, $after, $inhdr,
     $empty, $ok),
 "GET /credit-admin/t120-19"]
--- error_code eval
[200, 400, 400, 400, 400, 400, 200, 200, 200]
--- response_headers eval
["", ("!X-Credits-Cost") x 5, "X-Credits-Cost: 8", "X-Credits-Cost: 8", ""]
--- response_body_like eval
[qr/"total":100\b/,
 (qr/^\Q{"error":"invalid_parameter","route":"image-edit","param":"n","detail":"the multipart body has a boundary or a line break that parsers read apart"}\E$/) x 5,
 qr/^\d+ [0-9a-f]{32}$/, qr/^\d+ [0-9a-f]{32}$/, qr/"total":84\b/]



=== TEST 20: JSON: a key on a wanted path given twice in one object is a 400
{"options":{"hd":false},"options":{}} is hd false to a parser that keeps
the first and the backend's default to one that keeps the last (Python,
Go, JavaScript): it once went through as false. A key off every wanted
path may repeat.
--- more_headers eval
["X-API-Key: t120-20", ("X-API-Key: t120-20\nContent-Type: application/json") x 4,
 "X-API-Key: t120-20"]
--- request eval
["PUT /credit-admin/t120-20/plan\n100",
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":false},"options":{}}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"images":[]}),
 qq(POST /v1/batch\n{"images":[{"size":"m","size":null}]}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"x":{"hd":1},"x":2,"options":{"y":1,"y":2}}),
 "GET /credit-admin/t120-20"]
--- error_code eval
[200, 400, 400, 400, 200, 200]
--- response_headers eval
["", "!X-Credits-Cost", "!X-Credits-Cost", "!X-Credits-Cost", "X-Credits-Cost: 1", ""]
--- response_body_like eval
[qr/"total":100\b/,
 qr/^\Q{"error":"invalid_parameter","route":"batch","param":"hd","detail":"is given more than once"}\E$/,
 qr/^\Q{"error":"invalid_parameter","route":"batch","param":"first","detail":"is given more than once"}\E$/,
 qr/^\Q{"error":"invalid_parameter","route":"batch","param":"first","detail":"is given more than once"}\E$/,
 qr/^\d+ [0-9a-f]{32}$/, qr/"total":99\b/]



=== TEST 21: JSON: a boolean parameter takes a JSON boolean, 0, 1 or null, no string
"hd": "false" is false to a typed reader and true to a truthiness test
(JavaScript's if, Python's if): it was priced as false; now it is a 400,
and so is "true". 0 and 1 are false and true to both.
--- more_headers eval
["X-API-Key: t120-21", ("X-API-Key: t120-21\nContent-Type: application/json") x 5,
 "X-API-Key: t120-21"]
--- request eval
["PUT /credit-admin/t120-21/plan\n100",
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":"false"}}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":"true"}}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":1}}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":0}}),
 qq(POST /v1/batch\n{"images":[{"size":"s"}],"options":{"hd":null}}),
 "GET /credit-admin/t120-21"]
--- error_code eval
[200, 400, 400, 200, 200, 200, 200]
--- response_headers eval
["", "!X-Credits-Cost", "!X-Credits-Cost", "X-Credits-Cost: 11",
 "X-Credits-Cost: 1", "X-Credits-Cost: 1", ""]
--- response_body_like eval
[qr/"total":100\b/,
 (qr/^\Q{"error":"invalid_parameter","route":"batch","param":"hd","detail":"must be a JSON boolean (true or false), not a string"}\E$/) x 2,
 (qr/^\d+ [0-9a-f]{32}$/) x 3, qr/"total":87\b/]



=== TEST 22: multipart: a preamble before the first delimiter; RFC 5987 names
A preamble is no part (RFC 2046). name*, with its charset and language
or without them (name*=n is "n" to Werkzeug and nothing to Go), is a
400.
--- more_headers eval
my $h = "X-API-Key: t120-22\nContent-Type: multipart/form-data; boundary=XyZ";
["X-API-Key: t120-22", ($h) x 3, "X-API-Key: t120-22"]
--- request eval
["PUT /credit-admin/t120-22/plan\n100",
 "POST /v1/images/edits\nthe preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n2\r\n--XyZ--",
 "POST /v1/images/edits\n--XyZ\r\nContent-Disposition: form-data; name*=n\r\n\r\n2\r\n--XyZ--",
 "POST /v1/images/edits\n--XyZ\r\nContent-Disposition: form-data; name*=UTF-8''%zz\r\n\r\n2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n3\r\n--XyZ--",
 "GET /credit-admin/t120-22"]
--- error_code eval
[200, 200, 400, 400, 200]
--- response_headers eval
["", "X-Credits-Cost: 8", "!X-Credits-Cost", "!X-Credits-Cost", ""]
--- response_body_like eval
[qr/"total":100\b/, qr/^\d+ [0-9a-f]{32}$/,
 (qr/^\Q{"error":"invalid_parameter","route":"image-edit","param":"n","detail":"a multipart part's Content-Disposition is malformed or ambiguous"}\E$/) x 2,
 qr/"total":92\b/]
