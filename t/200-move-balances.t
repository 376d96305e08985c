# Growing and shrinking the memcached tier: scripts/move-balances moves the
# balances whose server changes, and nginx with the new list of servers
# reads every balance where the tool put it (the tool's continuum is the
# module's).  While the tier changes, credit_memcached's previous= keeps
# the accounts that move from reading as empty.  Real memcacheds on
# 19951-19953 and 19955; stand-ins on 19954 for a key that changes while
# it moves and on 19956 for a key that a first listing misses.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();
use Digest::SHA ();

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our @Ports = (19951, 19952, 19953);
our $Tool = "$ENV{TEST_NGINX_PROJECT_DIR}/scripts/move-balances";

# the accounts: plain ids, one that the key escapes, one keyed by a digest
our @Accounts = ((map { "t200-$_" } 1 .. 60), 't200 odd/%',
                 't200-long-' . ('x' x 300));

# the balance each was granted: plan, pack
sub main::granted {
    my ($i) = @_;
    return (100 + $i, $i);
}

sub main::uri_escape {
    my ($s) = @_;
    return $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ger;
}

sub main::grant_all {
    for my $i (0 .. $#main::Accounts) {
        my $a = main::uri_escape($main::Accounts[$i]);
        my ($plan, $pack) = main::granted($i);
        CreditTest::request('PUT', "/credit-admin/$a/plan", {}, $plan);
        CreditTest::request('POST', "/credit-admin/$a/pack", {}, $pack);
    }
}

# how many accounts nginx reads with the balance they were granted
sub main::intact {
    my $ok = 0;
    for my $i (0 .. $#main::Accounts) {
        my ($plan, $pack) = main::granted($i);
        my ($st, $h, $body) = CreditTest::request('GET', '/credit-admin/'
                                  . main::uri_escape($main::Accounts[$i]));
        $ok++ if $body =~ /"plan":$plan,"pack":$pack,/;
    }
    return $ok;
}

# the servers that hold t200-$i's item, joined by ","
sub main::holder {
    my ($i) = @_;
    return main::on("t200-$i");
}

# the module's key of an account: the id escaped, or its SHA-1 if too long
sub main::key_of {
    my ($account) = @_;
    my $key = 'test:' . ($account =~ s{([^A-Za-z0-9._~:\@!\$'()*+,;=/-])}
                                         {sprintf '%%%02x', ord $1}ger);
    return length $key <= 250 ? $key
           : 'test:#' . Digest::SHA::sha1_hex($account);
}

# the servers that hold the item of a plain account id, joined by ","
sub main::on {
    my ($account) = @_;
    return join ',', grep {
        (CreditTest::memcached("get test:$account\r\n", $_) // '')
            =~ /^VALUE/
    } @main::Ports;
}

# how many of the accounts' items a server holds
sub main::test_keys {
    my ($port) = @_;
    return scalar grep {
        (CreditTest::memcached('get ' . main::key_of($_) . "\r\n", $port)
         // '') =~ /^VALUE/
    } @main::Accounts;
}

# a stand-in old server on $port holding one balance, $account's $value:
# its listings show the key (only listing $only, counted from 0, if
# given), and it answers the delete with $md
sub main::stand_in {
    my ($port, $account, $value, $md, $only) = @_;
    return CreditTest::serve($port, sub {
        my ($c) = @_;
        my $dumps = 0;
        while (my $line = <$c>) {
            if ($line =~ /^lru_crawler metadump/) {
                my $n = $dumps++;
                print $c "key=test%3A$account exp=-1 la=1 cas=5 fetch=no"
                         . " cls=1 size=70\r\n"
                    if !defined $only || $n == $only;
                print $c "END\r\n";
            } elsif ($line =~ /^mg /) {
                print $c "VA " . length($value) . " c5 f0 t-1\r\n$value\r\n";
            } elsif ($line =~ /^md /) {
                print $c "$md\r\n";
            } else {
                print $c "ERROR\r\n";
            }
        }
    });
}

sub main::tool {
    my ($from, $to, @opts) = @_;
    my $list = sub { join ',', map { "127.0.0.1:$_" } @_ };
    my $out = `$main::Tool --from @{[$list->(@$from)]} --to @{[$list->(@$to)]} --prefix test: @opts 2>&1`;
    return ($? >> 8, $out);
}

END {
    CreditTest::mc_stop($_) for @Ports, 19955, 20289, 20074;
}

run_tests();

__DATA__

=== TEST 1: shrinking the tier from three servers to two: the third one's balances move to the two
The accounts are granted through nginx with three servers.  A dry run
counts what would move and moves nothing; then the tool moves every
balance off the third server (whose LRU crawler is off, as recommended:
it is switched on to list the keys and off again), and leaves a key of
another prefix alone.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952 127.0.0.1:19953')
--- init
CreditTest::mc_stop($_) for @main::Ports;
CreditTest::mc_start($_) for 19951, 19952;
CreditTest::mc_run('-l 127.0.0.1 -p 19953 -U 0 -o no_lru_crawler', 19953,
                   sub { IO::Socket::INET->new('127.0.0.1:19953') });
main::grant_all();
Test::More::is(main::intact(), 62, "62 accounts granted");
my $third = main::test_keys(19953);
Test::More::ok($third >= 8, "the third server holds $third of them");
Test::More::like(CreditTest::memcached("set other:x 0 0 1\r\n1\r\n", 19953),
                 qr/^STORED/, "a key of another application on it");

my ($rc, $out) = main::tool([19951, 19952, 19953], [19951, 19952]);
Test::More::is($rc, 0, "dry run: exit 0");
Test::More::like($out, qr/^$third to move \(dry run/m, "dry run: $third to move");
Test::More::is(main::test_keys(19953), $third, "dry run: nothing moved");

($rc, $out) = main::tool([19951, 19952, 19953], [19951, 19952], '--apply');
Test::More::is($rc, 0, "exit 0") or Test::More::diag($out);
Test::More::like($out, qr/^$third moved; \d+ stay; 0 stray$/m, "$third moved");
Test::More::is(main::test_keys(19953), 0, "none left on the third server");
Test::More::like(CreditTest::memcached("get other:x\r\n", 19953),
                 qr/^VALUE/, "the other application's key stays");
Test::More::like(CreditTest::memcached("stats settings\r\n", 19953),
                 qr/STAT lru_crawler no\r\n/, "its LRU crawler is off again");
my @two = grep { main::holder($_) =~ /,/ } 1 .. 60;
Test::More::is(scalar @two, 0, "no account on two servers");
--- request
GET /credit-admin/t200-1
--- response_body_like: "account":"t200-1"



=== TEST 2: nginx with the two servers reads every balance as granted, and charges it
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952')
--- init
Test::More::is(main::intact(), 62, "all 62 balances read as granted");
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                   { 'X-API-Key' => 't200-long-' . ('x' x 300) });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 202",
               "the account keyed by a digest is charged: 161 + 61 - 20");
--- request
GET /credit-admin/t200%20odd%2F%25
--- response_body
{"account":"t200 odd/%","plan":160,"pack":60,"total":220}



=== TEST 3: growing the tier back to three servers: only the balances that now belong to the new one move
A second run moves nothing.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952 127.0.0.1:19953')
--- init
my %before = map { $_ => main::holder($_) } 1 .. 60;
my ($rc, $out) = main::tool([19951, 19952], [19951, 19952, 19953], '--apply');
Test::More::is($rc, 0, "exit 0") or Test::More::diag($out);
my $new = main::test_keys(19953);
Test::More::like($out, qr/^$new moved; \d+ stay; 0 stray$/m, "$new moved, all into the new server");
Test::More::like($out, qr/^  moved $new into 127\.0\.0\.1:19953$/m, "into 127.0.0.1:19953");
Test::More::ok($new >= 8 && $new <= 40, "about a third moved ($new of 62)");
my @between = grep { my $h = main::holder($_); $h ne '19953' && $h ne $before{$_} } 1 .. 60;
Test::More::is(scalar @between, 0, "no account moved between the two old servers");
Test::More::is(main::intact(), 61, "61 read as granted, and the one charged");
($rc, $out) = main::tool([19951, 19952], [19951, 19952, 19953], '--apply');
my $stay = 62 - $new;
Test::More::like($out, qr/^0 moved; $stay stay; 0 stray$/m, "a second run moves nothing");
--- request eval
"GET /credit-admin/t200-long-" . ("x" x 300)
--- response_body_like: "plan":141,"pack":61,"total":202



=== TEST 4: previous=: while the tier grows, the accounts that move are refused, not empty, until their balance is moved
nginx runs with a fourth server and `previous=` naming the three before.
The accounts whose server changed get 503 (as when their server is
down), and nothing is written for them on the new server; the admin API
answers 503 for them too.  The others are charged.  Once the tool has
moved the balances, the refused accounts are charged from them.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952 127.0.0.1:19953 127.0.0.1:19955 '
    . 'previous=127.0.0.1:19951,127.0.0.1:19952,127.0.0.1:19953')
--- init
CreditTest::mc_stop(19955);
CreditTest::mc_start(19955);
my (@refused, @other);
my $charged = 0;
my $charge = sub {
    my ($i) = @_;
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                       { 'X-API-Key' => $main::Accounts[$i] });
    return $st == 200 ? "200 $h->{'x-credits-remaining'}" : $st;
};
# what each account has left once charged: its grant less 20 (the one
# charged in test 2 less 40)
my $left = sub { my ($p, $k) = main::granted($_[0]); $p + $k - ($_[0] == 61 ? 40 : 20) };
for my $i (0 .. $#main::Accounts) {
    my $r = $charge->($i);
    if ($r eq '503') { push @refused, $i }
    elsif ($r eq '200 ' . $left->($i)) { $charged++ }
    else { push @other, "$i: $r" }
}
Test::More::is("@other", '', "only 503s and exact charges");
Test::More::ok(@refused >= 5, scalar(@refused) . " accounts refused, $charged charged");
Test::More::is(main::test_keys(19955), 0, "nothing written for them on the new server");
my $a = main::uri_escape($main::Accounts[$refused[0]]);
my ($st, $h, $body) = CreditTest::request('GET', "/credit-admin/$a");
Test::More::is($st, 503, "the admin API: 503 for a moving account");
Test::More::like($body, qr/"error":"metering_unavailable".*"detail":"the account's balance is not on its new memcached server yet \(previous=\)"/, "metering_unavailable, and why");
($st) = CreditTest::request('PUT', "/credit-admin/$a/plan", {}, 5);
Test::More::is($st, 503, "a grant is refused too, and writes nothing");
Test::More::is(main::test_keys(19955), 0, "still nothing on the new server");

my ($rc, $out) = main::tool([19951, 19952, 19953], [19951, 19952, 19953, 19955], '--apply');
my $n = @refused;
Test::More::is($rc, 0, "the tool: exit 0") or Test::More::diag($out);
Test::More::like($out, qr/^  moved $n into 127\.0\.0\.1:19955$/m, "it moved exactly the $n refused accounts' balances");
my @after = grep { $charge->($_) ne '200 ' . $left->($_) } @refused;
Test::More::is("@after", '', "each refused account is charged exactly once now");
Test::More::is(main::test_keys(19955), $n, "their balances are on the new server");
--- request
GET /credit-admin/t200-1
--- response_body
{"account":"t200-1","plan":80,"pack":0,"total":80}
--- error_log
its balance is not on its new server yet (credit_memcached previous=)
balance not on its new memcached server yet (previous=), request of "t200-



=== TEST 5: a balance already on the new server is never overwritten, and one that changes while it moves stays where it was
Shrinking to two servers again, with a different balance for one
account of the third server already on its new server: the tool leaves
both, names it and exits 1, and moves the others.  Then a stand-in old
server whose key changes between the tool's read and its delete: the
copy on the new server is taken back.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952')
--- init
my ($x) = grep { main::holder($_) eq '19953' } 1 .. 60;
# nginx, with the two servers, grants t200-$x on its new server
CreditTest::request('PUT', "/credit-admin/t200-$x/plan", {}, 7);
my ($target) = grep { main::holder($x) =~ /^$_,/ } 19951, 19952;
Test::More::is(main::holder($x), "$target,19953", "t200-$x: 7 on $target, its balance on 19953");
my ($rc, $out) = main::tool([19951, 19952, 19953], [19951, 19952], '--apply');
Test::More::is($rc, 1, "exit 1");
Test::More::like($out, qr/"test:t200-$x": 127\.0\.0\.1:$target has "7 0" already, 127\.0\.0\.1:19953 has "\d+ \d+": left on both/, "the conflict is named");
Test::More::like($out, qr/FAILED/, "and the run says it failed");
Test::More::is(main::holder($x), "$target,19953", "both left");
Test::More::is(main::test_keys(19953), 1, "every other balance moved");
Test::More::is(CreditTest::memcached("delete test:t200-$x\r\n", $target),
               "DELETED\r\n", "the conflicting balance taken off by hand");

# a stand-in old server whose key changes between the read and the delete
my $fake = main::stand_in(19954, 't200-moving', '10 0', 'EX');
$out = `$main::Tool --from 127.0.0.1:19954 --to 127.0.0.1:19951 --prefix test: --apply 2>&1`;
Test::More::is($? >> 8, 1, "exit 1");
Test::More::like($out, qr/"test:t200-moving": changed on 127\.0\.0\.1:19954 while it was moved \(EX\): left there\n/, "named, and the copy taken back");
Test::More::unlike(CreditTest::memcached("get test:t200-moving\r\n", 19951), qr/^VALUE/, "no copy left on the new server");
CreditTest::stop($fake);

# a stand-in old server whose first listing misses a key (as memcached's
# crawler can miss an item written while it runs): a second look moves it
my $late = main::stand_in(19956, 't200-late', '11 0', 'HD', 1);
$out = `$main::Tool --from 127.0.0.1:19956 --to 127.0.0.1:19951 --prefix test: --apply 2>&1`;
Test::More::is($? >> 8, 0, "exit 0") or Test::More::diag($out);
Test::More::like($out, qr/^another look found 1 more that belong elsewhere\n/m, "a second look finds the key the first listing missed");
Test::More::like($out, qr/^1 moved; 0 stay; 0 stray$/m, "and moves it");
Test::More::like(CreditTest::memcached("get test:t200-late\r\n", 19951), qr/\r\n11 0\r\n/, "it is on the new server");
CreditTest::stop($late);
--- request
GET /credit-admin/t200-2
--- response_body_like: "account":"t200-2"



=== TEST 6: shrinking with previous=: accounts granted on three servers
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952 127.0.0.1:19953')
--- init
CreditTest::grant("t200s-$_", 50) for 1 .. 30;
Test::More::is(scalar(grep { main::on("t200s-$_") eq '19953' } 1 .. 30) >= 4, 1,
               "the third server holds some of them");
--- request
GET /credit-admin/t200s-1
--- response_body
{"account":"t200s-1","plan":50,"pack":0,"total":50}



=== TEST 7: shrinking with previous=: the third server's accounts are refused until the tool moves them off it
Its server is not in the new list: nginx does not talk to it, and the
accounts that move from it get 503 until their balances are on the two
others; the others are charged.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:19951 127.0.0.1:19952 '
    . 'previous=127.0.0.1:19951,127.0.0.1:19952,127.0.0.1:19953')
--- init
my @third = grep { main::on("t200s-$_") eq '19953' } 1 .. 30;
my %third = map { $_ => 1 } @third;
my $charge = sub {
    my ($st, $h) = CreditTest::request('POST', '/v1/background-removal',
                                       { 'X-API-Key' => "t200s-$_[0]" });
    return $st == 200 ? "200 $h->{'x-credits-remaining'}" : $st;
};
my @wrong = grep { $charge->($_) ne ($third{$_} ? '503' : '200 30') } 1 .. 30;
Test::More::is("@wrong", '', scalar(@third) . " accounts of the third server refused, the others charged");
my ($rc, $out) = main::tool([19951, 19952, 19953], [19951, 19952], '--apply');
Test::More::is($rc, 0, "the tool: exit 0") or Test::More::diag($out);
Test::More::is(scalar(grep { main::on("t200s-$_") eq '19953' } 1 .. 30), 0,
               "none of them left on the third server");
@wrong = grep { $charge->($_) ne '200 30' } @third;
Test::More::is("@wrong", '', "each is charged exactly once now");
--- request
GET /credit-admin/t200s-2
--- response_body
{"account":"t200s-2","plan":30,"pack":0,"total":30}
--- error_log
balance not on its new memcached server yet (previous=), request of "t200s-



=== TEST 8: two servers on one point of the continuum: the first listed takes it, in nginx and in the tool
127.0.0.1:20289 and 127.0.0.1:20074 share a point (3454571510), and
the key of "tie-2088" falls just before it.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:20289 127.0.0.1:20074')
--- init
CreditTest::mc_stop($_), CreditTest::mc_start($_) for 20289, 20074;
CreditTest::grant('tie-2088', 10);
Test::More::like(CreditTest::memcached("get test:tie-2088\r\n", 20289) // '',
                 qr/^VALUE/, "nginx put it on 127.0.0.1:20289, listed first");
my ($rc, $out) = main::tool([20289, 20074], [20289, 20074]);
Test::More::like($out, qr/^0 to move .*; 1 stay; 0 stray$/m, "the tool agrees");
--- request
GET /credit-admin/tie-2088
--- response_body
{"account":"tie-2088","plan":10,"pack":0,"total":10}



=== TEST 9: the same two servers listed the other way round: the other one takes the point
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:20074 127.0.0.1:20289')
--- init
CreditTest::grant('tie-2088', 20);
Test::More::like(CreditTest::memcached("get test:tie-2088\r\n", 20074) // '',
                 qr/\r\n20 0\r\n/, "nginx put it on 127.0.0.1:20074, now listed first");
my ($rc, $out) = main::tool([20289, 20074], [20074, 20289]);
Test::More::like($out, qr/^  would move 1 into 127\.0\.0\.1:20074$/m, "the tool agrees: the copy on 127.0.0.1:20289 belongs there now");
--- request
GET /credit-admin/tie-2088
--- response_body
{"account":"tie-2088","plan":20,"pack":0,"total":20}
