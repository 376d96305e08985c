# nginx -s reload with a new matrix applies the new prices; a broken new
# matrix fails the reload and the old configuration keeps running.

use lib 't/helpers';
use Test::Nginx::Socket 'no_plan';
use CreditTest;
use Time::HiRes ();

master_on();
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

sub main::cost {
    my ($st, $h) = CreditTest::request('POST', '/v1/gen',
                                       { 'X-API-Key' => 't100' });
    return $h->{'x-credits-cost'} // "status $st";
}

sub main::write_matrix {
    my ($text) = @_;
    my $f = "$ENV{TEST_NGINX_SERVER_ROOT}/html/credits.yaml";
    open my $out, '>', $f or die $!;
    print $out $text;
    close $out;
}

sub main::reload {
    open my $in, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die $!;
    my $pid = <$in>;
    chomp $pid;
    kill 'HUP', $pid;
}

sub main::wait_cost {
    my ($want) = @_;
    my $got;
    for (1 .. 100) {
        $got = main::cost();
        return $got if $got eq $want;
        Time::HiRes::sleep(0.05);
    }
    return $got;
}

run_tests();

__DATA__

=== TEST 1: a reload applies new prices; a broken matrix keeps the old ones
--- user_files
>>> credits.yaml
version: 1
routes:
  - name: gen
    match: { path: /v1/gen }
    cost: 20
--- init
CreditTest::grant('t100', 1000);
Test::More::is(main::cost(), 20, "the first price");
main::write_matrix("version: 1\nroutes:\n  - name: gen\n    match: { path: /v1/gen }\n    cost: 25\n");
main::reload();
Test::More::is(main::wait_cost(25), 25, "the new price after a reload");
main::write_matrix("version: 1\nroutes:\n  - name: gen\n    match: { path: /v1/gen }\n    cost: 30\n    surprise: 1\n");
main::reload();
Time::HiRes::sleep(1);
Test::More::is(main::cost(), 25, "a broken matrix leaves the running prices");
--- request
GET /credit-admin/t100
--- response_body_like: "account":"t100"
--- error_log
credits.yaml:6: unknown key "surprise" in a route
