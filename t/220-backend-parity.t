# The module against a real backend parser: Werkzeug (Flask's, from
# Debian's python3-werkzeug) behind nginx prices what it parsed by the
# same table as the matrix (t/helpers/parity_backend.py).  1,200
# tricky requests (encoded names, repeated fields, odd numbers, header
# spellings, multipart name forms and line breaks, JSON duplicates and
# string booleans, odd paths), made at random from a fixed seed: every
# request nginx lets through is charged exactly what the backend would do
# for it, or the backend refuses it itself; the balance ends at the sum
# of the charges.  Then the same with Python's cgi.FieldStorage parsing
# the forms, a parser that reads multipart otherwise.  PARITY_REQUESTS
# (1200) and PARITY_SEED (220) run more of them, or others.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

our $Account;                   # who the requests of parity() charge

# one request as bytes, headers in order (a name may repeat)
sub raw_request {
    my ($method, $uri, $headers, $body) = @_;
    my $req = "$method $uri HTTP/1.0\r\nHost: localhost\r\n"
              . "X-API-Key: $Account\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for @$headers;
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body;
    return "$req\r\n$body";
}

sub send_raw {
    my ($bytes) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $CreditTest::Port,
                                     Proto => 'tcp', Timeout => 5)
        or return (0, {}, "connect: $!");
    print $sock $bytes;
    my $raw = '';
    while (sysread($sock, my $buf, 65536)) {
        $raw .= $buf;
    }
    close $sock;
    return CreditTest::parse($raw);
}

sub pick { $_[int rand @_] }

# the fragments that requests are made of, tricky ones and plain ones
our @NNames = ('n', 'n', 'n', '%6E', '%6e', 'N', 'n%20', 'n+', 'n%00');
our @NValues = ('1', '3', '04', '+2', ' 4', '4_0', '1%2', '%33', '50',
                '51', '-1', '', '2', '0', '%2B2', '2%00', '%EF%BC%93');
our @SNames = ('size', 'size', 'si%7Ae', 'SIZE', 'size%20');
our @SValues = ('s', 'm', 'l', '%6C', 'x', 'L', 'm%20', '');

sub urlencoded {
    my @pairs;
    for (1 .. 1 + int rand 3) {
        push @pairs, rand() < 0.5 ? pick(@NNames) . '=' . pick(@NValues)
                                  : pick(@SNames) . '=' . pick(@SValues);
    }
    return join(pick('&', '&', '&', ';'), @pairs);
}

sub query_request {
    return raw_request('GET', '/p/q?' . urlencoded(), [], '');
}

sub header_request {
    my @h;
    for (1 .. int rand 3) {
        push @h, [pick('X-Quality', 'X-Quality', 'X_Quality', 'x-quality',
                       'X-QUALITY'),
                  pick('hd', 'standard', 'HD', 'hd ', 'hd,standard', '')];
    }
    return raw_request('GET', '/p/h', \@h, '');
}

sub form_request {
    return raw_request('POST', '/p/f',
                       [['Content-Type',
                         'application/x-www-form-urlencoded']],
                       urlencoded());
}

sub multipart_request {
    my $b = 'XyZ';
    my @parts;
    for (1 .. 1 + int rand 3) {
        my $field = pick('n', 'size');
        my $value = $field eq 'n' ? pick('2', '3', '04', '+2', '5')
                                  : pick('m', 'l', 's', 'x');
        my $pairs = join('', map { "\\$_" } split //, $field);
        my $pct = join('', map { sprintf('%%%02X', ord) } split //, $field);
        my $disp = pick(qq(name="$field"), qq(name=$field),
                        qq(name="$pairs"), qq(name*=UTF-8''$pct),
                        qq(NAME="$field"), qq(name="$field"; filename="x"),
                        qq(name="$field"; filename*=UTF-8''x),
                        qq(name="x"; name="$field"), qq(name = "$field"),
                        qq(name="$field"; filename=""),
                        qq(name="$field";filename), qq(name="$field\\"));
        my $part = pick('Content-Disposition: form-data; ',
                        'content-disposition:form-data;',
                        'Content-Disposition: form-data; x=";name=q"; ')
                   . "$disp\r\n"
                   . pick('', '', "Content-Type: text/plain\r\n")
                   . "\r\n$value";
        $part = "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                . "a\n--$b\nContent-Disposition: form-data; name=\"$field\""
                . "\n\n$value" if rand() < 0.15;
        push @parts, $part;
    }
    my $body = join('', map { "--$b\r\n$_\r\n" } @parts) . "--$b--";
    $body = "pre\n--$b\nContent-Disposition: form-data; name=\"n\"\n\n9\n"
            . "\r\n$body" if rand() < 0.1;
    $body .= "\r\n--$b\r\nContent-Disposition: form-data; name=\"n\""
             . "\r\n\r\n9\r\n--$b--" if rand() < 0.1;
    my $ct = pick("multipart/form-data; boundary=$b",
                  "multipart/form-data; boundary=\"$b\"",
                  "Multipart/Form-Data; BOUNDARY=$b",
                  "multipart/form-data;boundary=$b; charset=utf-8",
                  "multipart/form-data; boundary=A; boundary=$b",
                  "multipart/form-data; x=\"boundary=A\"; boundary=$b");
    return raw_request('POST', '/p/f', [['Content-Type', $ct]], $body);
}

sub json_request {
    my @members;
    for (1 .. 1 + int rand 3) {
        my $r = rand;
        if ($r < 0.35) {
            push @members, pick('"n"', '"\u006e"', '"N"') . ':'
                           . pick('1', '3', '"2"', '3.0', 'true', 'null',
                                  '"x"', '50', '51', '" 4"', '2e0', '-0',
                                  '"+3"', '"0x3"');
        } elsif ($r < 0.85) {
            my @o;
            for (1 .. 1 + int rand 2) {
                push @o, pick('"size":' . pick('"m"', '"l"', '"s"', '"x"',
                                               'null', '1'),
                              '"hd":' . pick('true', 'false', '"false"',
                                             '"true"', '0', '1', '""',
                                             'null', '2', '0.0', '[]',
                                             '{}'),
                              '"\u0068d":true');
            }
            push @members, pick('"options"', '"options"', '"\u006fptions"')
                           . ':' . pick('{' . join(',', @o) . '}', '{}',
                                        'null', '5');
        } else {
            push @members, '"prompt":"a fox"';
        }
    }
    return raw_request('POST', '/p/j',
                       [['Content-Type', 'application/json']],
                       '{' . join(',', @members) . '}');
}

sub path_request {
    return raw_request('POST', '/p/r/' . pick('4s', '%34s', '4S', '8s/..%2F4s',
                                               './4s', '4s;v=8', '04s',
                                               '4s/', '6s'), [], '');
}

our %Make = (query => \&query_request, header => \&header_request,
             form => \&form_request, multipart => \&multipart_request,
             json => \&json_request, path => \&path_request);

# every request the module let through is charged what the backend does
sub parity {
    my ($n) = @_;
    srand($ENV{PARITY_SEED} // 220);
    my (%seen, $charged);
    for my $i (1 .. $n) {
        my $kind = pick(sort keys %Make);
        my $bytes = $Make{$kind}->();
        my ($st, $h) = send_raw($bytes);
        if ($st == 200) {
            my $cost = $h->{'x-credits-cost'} // 'none';
            my $done = $h->{'x-backend-cost'} // 'none';
            if ($done !~ /^refused/ && $cost ne $done) {
                Test::More::fail("$kind request $i: charged $cost, the "
                                 . "backend does $done\n$bytes");
            }
            $charged += $cost;
            $seen{"$kind 200"}++;
            $seen{"$kind 200, refused by the backend"}++
                if $done =~ /^refused/;
        } else {
            $seen{"$kind $st"}++;
        }
    }
    Test::More::note(join("\n", map { "$_: $seen{$_}" } sort keys %seen));
    return ($charged, \%seen);
}

our $Matrix = <<'_EOM_';
version: 1
routes:
  - name: q
    match: { path: /p/q }
    params:
      n:    { from: query, type: integer, default: 1, min: 0, max: 50 }
      size: { from: query, default: s, values: [s, m, l] }
    cost: { by: size, table: { s: 1, m: 2, l: 4 }, times: [n] }
  - name: h
    match: { path: /p/h }
    params:
      quality: { from: header, key: X-Quality, default: standard, values: [standard, hd] }
    cost: { by: quality, table: { standard: 1, hd: 5 } }
  - name: f
    match: { path: /p/f }
    params:
      n:    { from: form, type: integer, default: 1, min: 0, max: 50 }
      size: { from: form, default: s, values: [s, m, l] }
    cost: { by: size, table: { s: 1, m: 2, l: 4 }, times: [n] }
  - name: j
    match: { path: /p/j }
    params:
      n:    { from: json, type: integer, default: 1, min: 0, max: 50 }
      size: { from: json, key: options.size, default: s, values: [s, m, l] }
      hd:   { from: json, key: options.hd, type: boolean, default: false }
    cost: { by: size, table: { s: 1, m: 2, l: 4 }, times: [n], add: { hd: 7 } }
  - name: r
    match: { regex: '^/p/r/(?<sec>[0-9]+)s$' }
    params:
      sec: { from: path, type: integer }
    cost: { base: 10, times: [sec] }
_EOM_

# the metered location in front of the backend on PORT, and the admin API
sub parity_config {
    my ($port) = @_;
    return "underscores_in_headers on;
location /p/ {
    credit on;
    credit_account \$http_x_api_key;
    proxy_pass http://127.0.0.1:$port;
}
location /credit-admin/ { credit_admin; }";
}

# the backend with PARSER on PORT, then COUNT requests through nginx
sub run_parity {
    my ($parser, $port, $count) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec '/usr/bin/python3',
             "$ENV{TEST_NGINX_PROJECT_DIR}/t/helpers/parity_backend.py",
             $port, $parser;
        POSIX::_exit(1);
    }
    push @CreditTest::Servers, $pid;
    for (1 .. 100) {
        last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
        select(undef, undef, undef, 0.1);
    }
    my $account = "t220-$parser";
    CreditTest::request('PUT', "/credit-admin/$account/plan", {}, '1000000');
    local $Account = $account;
    my ($charged, $seen) = parity($count);
    my ($through, $refused) = (0, 0);
    for (qw(query header form multipart json path)) {
        $through += $seen->{"$_ 200"} // 0;
        $refused += $seen->{"$_ 400"} // 0;
    }
    Test::More::cmp_ok($through, '>=', $count / 3,
                       "$parser: many requests went through ($through)");
    Test::More::cmp_ok($refused, '>=', $count / 12,
                       "$parser: many were refused ($refused)");
    my $left = 1000000 - $charged;
    my ($st, $h, $body) = CreditTest::request('GET',
                                              "/credit-admin/$account");
    Test::More::is($body, qq({"account":"$account","plan":$left,"pack":0,)
                          . qq("total":$left}\n),
                   "$parser: the balance is down by the sum of the "
                   . "charges ($charged)");
}

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);
run_tests();

__DATA__

=== TEST 1: Werkzeug (Flask's parser): 1200 tricky requests charged what the backend does, or refused
--- user_files eval
">>> credits.yaml\n$::Matrix"
--- config eval
main::parity_config(19990)
--- init
main::run_parity('werkzeug', 19990, $ENV{PARITY_REQUESTS} // 1200);
--- more_headers
X-API-Key: t220-werkzeug
--- request
POST /p/r/4s
--- response_headers
X-Credits-Cost: 40
X-Backend-Cost: 40



=== TEST 2: Python's cgi.FieldStorage for forms: the same
--- user_files eval
">>> credits.yaml\n$::Matrix"
--- config eval
main::parity_config(19991)
--- init
main::run_parity('cgi', 19991, $ENV{PARITY_REQUESTS} // 1200);
--- more_headers
X-API-Key: t220-cgi
--- request
POST /p/r/4s
--- response_headers
X-Credits-Cost: 40
X-Backend-Cost: 40
