# Exactness under concurrency: across workers and across two nginx servers
# sharing memcached, the successful charges never exceed the grant (no
# overdraw) and a request is refused only when the balance really is below
# its cost (no false rejections).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

master_on();
workers(2);
worker_connections(1024);
log_level('warn');
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

# [status, ...] of $n concurrent POSTs of $uri by $account, alternating
# between the ports given
sub main::storm {
    my ($account, $uri, $n, @ports) = @_;
    @ports = ($CreditTest::Port) unless @ports;
    my @reqs = map {
        ['POST', $uri, { 'X-API-Key' => $account }, '', $ports[$_ % @ports]]
    } 0 .. $n - 1;
    return CreditTest::concurrent(@reqs);
}

sub main::count {
    my ($status, @res) = @_;
    return scalar grep { $_->[0] == $status } @res;
}

run_tests();

__DATA__

=== TEST 1: 200 concurrent requests of cost 50 on 1000 credits: exactly 20 pass
--- init
CreditTest::grant('t070-1', 600, 400);
my @res = main::storm('t070-1', '/v1/image-enhance', 200);
Test::More::is(main::count(200, @res), 20, "20 requests charged");
Test::More::is(main::count(402, @res), 180, "180 refused with 402");
--- request
GET /credit-admin/t070-1
--- response_body
{"account":"t070-1","plan":0,"pack":0,"total":0}



=== TEST 2: two nginx servers, one memcached: still exactly 20
Which server wins the 20 is a race: one may take them all (nothing is
promised across edges but exactness). TEST 3 makes both charge.
--- init
CreditTest::start_second_nginx(19870);
CreditTest::grant('t070-2', 1000, 0);
my @res = main::storm('t070-2', '/v1/image-enhance', 200,
                      $CreditTest::Port, 19870);
Test::More::is(main::count(200, @res), 20, "20 requests charged");
Test::More::is(main::count(402, @res), 180, "180 refused with 402");
--- request
GET /credit-admin/t070-2
--- response_body
{"account":"t070-2","plan":0,"pack":0,"total":0}



=== TEST 3: two nginx servers, 120 of 200 fit: both servers charge
Each server gets 100 of the requests, so the second one must charge at
least 20 of the 120 that fit, whichever wins the race.
--- init
CreditTest::start_second_nginx(19870);
CreditTest::grant('t070-2b', 6000, 0);
my @res = main::storm('t070-2b', '/v1/image-enhance', 200,
                      $CreditTest::Port, 19870);
Test::More::is(main::count(200, @res), 120, "120 requests charged");
Test::More::is(main::count(402, @res), 80, "80 refused with 402");
my $edge2 = grep { $_->[0] == 200 && $_->[2] eq "edge2\n" } @res;
Test::More::ok($edge2 >= 20 && $edge2 <= 100,
               "the second server charged 20 to 100 ($edge2)");
--- request
GET /credit-admin/t070-2b
--- response_body
{"account":"t070-2b","plan":0,"pack":0,"total":0}



=== TEST 4: mixed costs: charges add up, every refusal was real
Costs 20 and 50 race on 500 plan + 333 pack; afterwards the credits
charged plus the balance left equal the grant, and every refused request
costs more than what is left (balances only fall here).
--- init
CreditTest::grant('t070-3', 500, 333);
my @reqs = map {
    ['POST', ($_ % 3 ? '/v1/background-removal' : '/v1/image-enhance'),
     { 'X-API-Key' => 't070-3' }, '']
} 0 .. 149;
my @res = CreditTest::concurrent(@reqs);
my ($charged, $bad) = (0, 0);
for my $r (@res) {
    if ($r->[0] == 200) {
        $charged += $r->[1]{'x-credits-cost'};
    } elsif ($r->[0] != 402) {
        $bad++;
    }
}
my $left = CreditTest::balance('t070-3');
my ($total) = $left =~ /"total":(\d+)/;
Test::More::is($bad, 0, "only 200 and 402 answers");
Test::More::is($charged + $total, 833, "charged $charged + left $total = granted");
my @refused = map { $_->[1]{'x-credits-cost'} } grep { $_->[0] == 402 } @res;
my @false = grep { $_ <= $total } @refused;
Test::More::is(scalar @false, 0, "no refusal of a request that fits ($total left)");
--- request
GET /credit-admin/t070-3
--- response_body_like: "account":"t070-3"



=== TEST 5: concurrent grants and charges on one account lose nothing
--- init
CreditTest::grant('t070-4', 0, 0);
my @reqs;
for my $i (0 .. 99) {
    push @reqs, ['POST', '/credit-admin/t070-4/pack', {}, '10'];
    push @reqs, ['POST', '/v1/background-removal', { 'X-API-Key' => 't070-4' }, ''];
}
my @res = CreditTest::concurrent(@reqs);
my $charged = 20 * scalar grep { $_->[0] == 200 && exists $_->[1]{'x-credits-cost'} } @res;
my ($total) = CreditTest::balance('t070-4') =~ /"total":(\d+)/;
Test::More::is($charged + $total, 1000, "granted 1000 = charged $charged + left $total");
--- request
GET /credit-admin/t070-4
--- response_body_like: "account":"t070-4"



=== TEST 6: a balance cache far smaller than the accounts stays exact
cache=64k holds under a thousand entries (896 on x86-64): charging 1500
accounts twice, in waves of 250 concurrent requests, evicts entries all
the time, so the second round reads at least 1500 - 896 balances again.
Every account ends at exactly 100 - 2 x 20, and a grant written behind
nginx's back (a new cas) is seen by the next charge, cached or not.
--- http_config
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT cache=64k;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "ok\n"; }
    }
--- init
my @ids = map { "t070-5-$_" } 1 .. 1500;
CreditTest::memcached(join '', map { "set test:$_ 0 0 5 noreply\r\n100 0\r\n" } @ids);
my ($bad, @gets) = (0);
for my $round (1, 2) {
    for (my $i = 0; $i < @ids; $i += 250) {
        my @reqs = map { ['POST', '/v1/background-removal', { 'X-API-Key' => $_ }, ''] }
                   @ids[$i .. $i + 249];
        $bad += grep { $_->[0] != 200 } CreditTest::concurrent(@reqs);
    }
    push @gets, CreditTest::memcached("stats\r\n") =~ /STAT cmd_get (\d+)/;
}
Test::More::is($bad, 0, "3000 charges, all 200");
my $reads = $gets[1] - $gets[0];
Test::More::ok($reads >= 500, "the second round read $reads evicted balances from memcached");
my $got = CreditTest::memcached("get " . join(' ', map { "test:$_" } @ids) . "\r\n");
my %left = $got =~ /^VALUE test:(\S+) \d+ \d+\r\n(\d+ \d+)\r\n/mg;
Test::More::is(scalar(keys %left), 1500, "every account is in memcached");
Test::More::is(scalar(grep { $_ ne '60 0' } values %left), 0, "every account holds exactly 60 0");
CreditTest::memcached("set test:t070-5-1 0 0 6\r\n1000 0\r\n");
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't070-5-1' });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 980", "the outside grant was charged from");
--- request
GET /credit-admin/t070-5-1
--- response_body
{"account":"t070-5-1","plan":980,"pack":0,"total":980}



=== TEST 7: without the balance cache: exact, and every charge reads its balance
cache=off: the storm of TEST 1 still lets exactly 20 through, and ten
charges one after the other make ten reads in memcached (with the cache,
TEST 6's outside grant shows, a charge writes on the token it holds).
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:$TEST_NGINX_MEMCACHED_PORT cache=off')
--- init
CreditTest::grant('t070-7', 600, 400);
my @res = main::storm('t070-7', '/v1/image-enhance', 200);
Test::More::is(main::count(200, @res), 20, "20 requests charged");
Test::More::is(main::count(402, @res), 180, "180 refused with 402");
CreditTest::grant('t070-7b', 1000, 0);
my ($before) = CreditTest::memcached("stats\r\n") =~ /STAT cmd_get (\d+)/;
my @st = map { (CreditTest::request('POST', '/v1/image-enhance',
                                    { 'X-API-Key' => 't070-7b' }))[0] } 1 .. 10;
my ($after) = CreditTest::memcached("stats\r\n") =~ /STAT cmd_get (\d+)/;
Test::More::is("@st", join(' ', (200) x 10), "ten charges one after the other");
Test::More::is($after - $before, 10, "ten reads of the balance");
--- request
GET /credit-admin/t070-7b
--- response_body
{"account":"t070-7b","plan":500,"pack":0,"total":500}



=== TEST 8: one charge an account a round trip (max_batch=1): still exact
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
    '127.0.0.1:$TEST_NGINX_MEMCACHED_PORT max_batch=1')
--- init
CreditTest::grant('t070-8', 600, 400);
my @res = main::storm('t070-8', '/v1/image-enhance', 200);
Test::More::is(main::count(200, @res), 20, "20 requests charged");
Test::More::is(main::count(402, @res), 180, "180 refused with 402");
--- request
GET /credit-admin/t070-8
--- response_body
{"account":"t070-8","plan":0,"pack":0,"total":0}
