# How memcached servers are named: an IPv6 address, a host name with one
# address, and a host name with several, which nginx -t refuses (an
# account's balance lives at one address).  The names come from lines
# that scripts/nginx-for-tests adds to /etc/hosts in a mount namespace of
# nginx's own (CREDIT_TEST_HOSTS below); without root and unshare(1), or
# without that wrapper as TEST_NGINX_BINARY, the file is skipped.

use lib 't/helpers';
use Test::Nginx::Socket;
use CreditTest;
use IO::Socket::IP ();

$ENV{CREDIT_TEST_HOSTS} = join "\n",
    '127.0.0.1 credit-test-one',
    '::1 credit-test-two',
    '127.0.0.1 credit-test-two';

if (($ENV{TEST_NGINX_BINARY} // '') !~ m{/scripts/nginx-for-tests$}
    || system("unshare -m sh -c 'mount --bind /etc/hosts /etc/hosts'"
              . " >/dev/null 2>&1") != 0)
{
    plan skip_all => 'needs scripts/run-tests as root (unshare -m, mount)';

} else {
    plan 'no_plan';
}

no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our $V6Port = 19931;

# a memcached listening on ::1 only
sub main::mc_v6 {
    CreditTest::mc_run("-l ::1 -p $V6Port -U 0", 'v6', sub {
        IO::Socket::IP->new(PeerHost => '::1', PeerPort => $V6Port)
    });
}

sub main::mc_v6_cmd {
    my ($cmd) = @_;
    return CreditTest::memcached_on(
        IO::Socket::IP->new(PeerHost => '::1', PeerPort => $V6Port), $cmd);
}

END {
    my $pid = CreditTest::mc_pid('v6');
    kill 'KILL', $pid if $pid;
}

run_tests();

__DATA__

=== TEST 1: a host name with several addresses fails nginx -t
credit-test-two is ::1 and 127.0.0.1: which one a start or a reload would
use is up to the resolver, so the configuration names one address.
--- http_config
    credit_memcached credit-test-two:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
--- config
    location /v1/ { credit on; credit_account $http_x_api_key; return 200; }
--- must_die
--- error_log eval
qr/memcached server "credit-test-two:\d+" has 2 addresses \(\[::1\]:\d+, 127\.0\.0\.1:\d+\): a balance must live at one address, name one of them/



=== TEST 2: a host name with one address is that server
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           'credit-test-one:$TEST_NGINX_MEMCACHED_PORT')
--- init
CreditTest::grant('t160-one', 100);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't160-one' });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 80", "charged through credit-test-one");
Test::More::like(CreditTest::memcached("get test:t160-one\r\n"), qr/\r\n80 0\r\n/, "the balance is on the test memcached");
--- request
GET /credit-admin/t160-one
--- response_body
{"account":"t160-one","plan":80,"pack":0,"total":80}



=== TEST 3: an IPv6 address in brackets
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig,
                           '[::1]:19931 timeout=300ms')
--- init
main::mc_v6();
CreditTest::grant('t160-v6', 100);
my ($st, $h) = CreditTest::request('POST', '/v1/background-removal', { 'X-API-Key' => 't160-v6' });
Test::More::is("$st $h->{'x-credits-remaining'}", "200 80", "charged over IPv6");
Test::More::like(main::mc_v6_cmd("get test:t160-v6\r\n"), qr/\r\n80 0\r\n/, "the balance is on the memcached at ::1");
Test::More::is(CreditTest::memcached("get test:t160-v6\r\n"), "END\r\n", "and not on the one at 127.0.0.1");
--- request
GET /credit-admin/t160-v6
--- response_body
{"account":"t160-v6","plan":80,"pack":0,"total":80}
