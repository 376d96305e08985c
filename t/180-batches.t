# Many charges in one event-loop pass: an HTTP/2 client sends 128 streams
# in one write, nginx reads and meters them all before its next pass, and
# their memcached commands go out together.  They fill the client's 16 KB
# output buffer exactly, or overflow it, on a connection that is made for
# them (its first commands, "stats", go ahead of theirs).

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;

log_level('warn');
worker_connections(1024);
no_shuffle();

# every block: the default setup and an HTTP/2 server that meters
our $H2HttpConfig = $CreditTest::DefaultHttpConfig . <<'_EOC_';

    server {
        listen 127.0.0.1:19981 http2;

        location /v1/ {
            credit on;
            credit_account $http_x_api_key;
            proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        }
    }
_EOC_

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value('http_config', $H2HttpConfig)
        unless defined $block->http_config;
    CreditTest::defaults($block);
});

# 128 account ids of $len bytes, unique to this run and block
sub main::accounts {
    my ($tag, $len) = @_;
    my $run = sprintf "%s-%d-%d-", $tag, $$, int(rand 1e6);
    return map { my $k = $run . $_; $k . ('x' x ($len - length $k)) }
           0 .. 127;
}

sub main::tally {
    my %n;
    $n{$_}++ for @_;
    return join ' ', map { "$_:$n{$_}" } sort { $a <=> $b } keys %n;
}

run_tests();

__DATA__

=== TEST 1: 128 reads of 128 bytes fill the output buffer exactly, on a new connection
Each "mg test:ACCOUNT v c" is 14 bytes and the 114 of the account id:
128 of them are 16384 bytes, and the connection's "stats" commands must
still go ahead of them.  No credits: every stream gets 402, none a 503.
--- init
my @st = CreditTest::h2_burst(19981, '/v1/image-enhance',
                              [main::accounts('fill', 114)]);
Test::More::is(main::tally(@st), '402:128', 'every stream refused with 402');
--- request
GET /credit-admin/nobody
--- response_body
{"account":"nobody","plan":0,"pack":0,"total":0}
--- no_error_log
cannot talk to memcached
memcached server



=== TEST 2: 128 reads of 250 bytes overflow it: it grows, on a new connection
32,000 bytes of commands in one pass; no credits: every stream gets 402.
--- init
my @st = CreditTest::h2_burst(19981, '/v1/image-enhance',
                              [main::accounts('grow', 250 - 14)]);
Test::More::is(main::tally(@st), '402:128', 'every stream refused with 402');
--- request
GET /credit-admin/nobody
--- response_body
{"account":"nobody","plan":0,"pack":0,"total":0}
--- no_error_log
cannot talk to memcached
[error]



=== TEST 3: 128 charges in one pass, then their 128 writes in one pass
The accounts are granted first, over the same memcached connection; the
burst's reads go out together, their replies come back together, and the
128 writes that follow are queued in one pass as well.  Each account pays
50 of its 120 once.
--- init
my @acct = main::accounts('charge', 250 - 14);
CreditTest::grant($_, 120, 0) for @acct;
my @st = CreditTest::h2_burst(19981, '/v1/image-enhance', \@acct);
Test::More::is(main::tally(@st), '200:128', 'every stream charged');
my @left = map { CreditTest::balance($_) =~ /"total":(\d+)/ ? $1 : -1 } @acct;
Test::More::is(main::tally(@left), '70:128', 'every account has 70 left');
--- request
GET /credit-admin/nobody
--- response_body
{"account":"nobody","plan":0,"pack":0,"total":0}
--- no_error_log
[error]
