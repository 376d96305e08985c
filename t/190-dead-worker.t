# The balance cache's locks when their holder dies or stops.  A worker
# that dies (SIGKILL) while it holds a lock: a worker takes the lock over,
# says so in the error log, and the cache serves that account again (one
# memcached command a charge).  A worker that is stopped while it holds
# one: the other worker charges the same account meanwhile, at once and
# exactly, without the cache, and uses it again once the lock is let go.
# gdb stops a worker on the lock's release (scripts/setup installs gdb);
# where gdb cannot attach to a process (no ptrace in a container), the
# file is skipped.

use lib 't/helpers';
use Test::Nginx::Socket;
use CreditTest;
use Time::HiRes ();

# can gdb attach to a process that is not its child, as it must to a worker
sub main::can_attach {
    my $pid = fork // return 0;
    if ($pid == 0) {
        exec 'sleep', '10';
        exit 127;
    }
    my $out = `gdb -q -batch -nx -p $pid -ex detach 2>&1`;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return $out =~ /\(process $pid\) detached/;
}

if (!main::can_attach()) {
    plan skip_all => 'gdb cannot attach to a process here';

} else {
    plan 'no_plan';
}

master_on();
workers(2);
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our $Mc = 19940;
our $GdbOut = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/gdb.out";

END { CreditTest::mc_stop($Mc) }

sub main::charge {
    my ($account) = @_;
    my ($st) = CreditTest::request('POST', '/v1/background-removal',
                                   { 'X-API-Key' => $account });
    return $st;
}

# memcached's counters of reads and writes (mg and ms count there too)
sub main::commands {
    my $stats = CreditTest::memcached("stats\r\n", $Mc) // '';
    my ($get) = $stats =~ /STAT cmd_get (\d+)/;
    my ($set) = $stats =~ /STAT cmd_set (\d+)/;
    return ($get // -1, $set // -1);
}

sub main::gdb_out {
    open my $in, '<', $main::GdbOut or return '';
    local $/;
    return <$in> // '';
}

sub main::wait_for {
    my ($re) = @_;
    for (1 .. 500) {
        return 1 if main::gdb_out() =~ $re;
        Time::HiRes::sleep(0.02);
    }
    Test::More::diag(main::gdb_out());
    return 0;
}

# gdb on worker $pid: a breakpoint where a lock of the balance cache is
# let go (the holder still holds it there), then the gdb commands @then
# once it is reached; returns gdb's pid once the breakpoint is set.
# Bounded: a worker that never reaches it fails the block, not hangs it.
sub main::gdb_at_unlock {
    my ($pid, @then) = @_;
    unlink $main::GdbOut;
    my $gdb = fork // die "fork: $!";
    if ($gdb == 0) {
        open STDOUT, '>', $main::GdbOut or die $!;
        open STDERR, '>&', \*STDOUT or die $!;
        exec 'timeout', '30', 'gdb', '-q', '-batch', '-nx', '-p', $pid,
             '-ex', 'break ngx_http_credit_cache_unlock',
             '-ex', 'continue', map { ('-ex', $_) } @then;
        exit 127;
    }
    Test::More::ok(main::wait_for(qr/^Breakpoint 1 at /m),
                   "gdb is to stop worker $pid at a lock's release");
    return $gdb;
}

run_tests();

__DATA__

=== TEST 1: the lock of a worker killed while holding it is taken over
The other worker is stopped (SIGSTOP) until the end, so that the charges
go to the one gdb holds and then to the one started in its place (whose
first charge reads: a new connection's memcached is not known yet).  The
killed worker had written its charge to memcached: that charge stays
(its request died with it, as any request does when its worker is
killed), so eight charges of 20 are taken from 1000.  Without the
take-over every later charge of the account would find its cached token
stale and read afresh (a read and two writes a charge), and the entry
would never be written again.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig, '127.0.0.1:19940')
--- init
CreditTest::mc_start($main::Mc);
CreditTest::grant('t190', 1000);
Test::More::is(main::charge('t190'), 200, "charged: the account is cached");

my ($old, $other) = CreditTest::worker_pids();
kill 'STOP', $other;
my $gdb = main::gdb_at_unlock($old, 'kill');

# its charge is written to memcached, then the worker dies holding
# the lock of the account's set: the client gets no answer
my $s = CreditTest::start_request('/v1/background-removal', 't190');
waitpid $gdb, 0;
my ($st) = CreditTest::finish_request($s);
Test::More::is($st, 0, "the killed worker's request got no answer");
Test::More::ok(!kill(0, $old), "the worker is gone");

my @new;
for (1 .. 250) {
    @new = grep { $_ != $old && $_ != $other } CreditTest::worker_pids();
    last if @new;
    Time::HiRes::sleep(0.02);
}
Test::More::is(scalar @new, 1, "the master started another worker");

# the first charge to meet the dead worker's lock takes it over; from
# then on the cache serves the account: one write a charge
Test::More::is(main::charge('t190'), 200, "charged after the kill");
my ($get0, $set0) = main::commands();
my @st = map { main::charge('t190') } 1 .. 5;
my ($get1, $set1) = main::commands();
Test::More::is("@st", "200 200 200 200 200", "five more charges");
Test::More::is($get1 - $get0, 0, "no read: the balance came from the cache");
Test::More::is($set1 - $set0, 5, "one write a charge");
kill 'CONT', $other;
--- request
GET /credit-admin/t190
--- response_body
{"account":"t190","plan":840,"pack":0,"total":840}
--- error_log eval
[qr/\[alert\] .* worker process \d+ exited on signal 9/,
 qr/\[warn\] .* credit: balance cache: took over a lock left by process \d+, which is gone/]



=== TEST 2: a lock held by a stopped worker does not hold up the other
gdb stops a worker as it lets go of the account's lock, after its charge
was written, and keeps it stopped; the other worker then charges the
same account five times (it has charged before: its connection to
memcached is made).  It cannot get the lock (its holder is alive),
so it does without the cache: each charge answered at once, none
refused, every one counted; the cache's entry, which it cannot update,
goes stale, so all but the first read the balance afresh.  When the
stopped worker goes on, its own request is answered and the cache serves
the account again.  Twelve charges of 20 from 1000.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig, '127.0.0.1:19940')
--- init
CreditTest::mc_stop($main::Mc);
CreditTest::mc_start($main::Mc);
CreditTest::grant('t190-stuck', 1000);
my $release = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/release";
unlink $release;

my ($held, $other) = CreditTest::worker_pids();

# the other worker's connection to memcached first, with a charge of
# another account while this one is stopped: it knows its memcached
kill 'STOP', $held;
CreditTest::grant('t190-warm', 100);
Test::More::is(main::charge('t190-warm'), 200, "the other worker has charged");
kill 'CONT', $held;

kill 'STOP', $other;
my $gdb = main::gdb_at_unlock($held,
    "shell while [ ! -e $release ]; do sleep 0.05; done");
my $s = CreditTest::start_request('/v1/background-removal', 't190-stuck');
Test::More::ok(main::wait_for(qr/^Breakpoint 1(?:\.\d+)?, /m),
               "the worker is stopped holding the lock");
kill 'CONT', $other;

my ($get0, $set0) = main::commands();
my $t0 = Time::HiRes::time();
my @st = map { main::charge('t190-stuck') } 1 .. 5;
my $took = Time::HiRes::time() - $t0;
my ($get1, $set1) = main::commands();
Test::More::is("@st", "200 200 200 200 200", "the other worker charges meanwhile");
Test::More::cmp_ok($took, '<', 2, "at once, not waiting for the lock");
Test::More::is($get1 - $get0, 4, "four reads: the cache entry could not be updated");

open my $touch, '>', $release or die $!;
close $touch;
waitpid $gdb, 0;
my ($held_st) = CreditTest::finish_request($s);
Test::More::is($held_st, 200, "the stopped worker's request is answered when it goes on");

# the first charge after finds the entry stale and writes a fresh one
Test::More::is(main::charge('t190-stuck'), 200, "charged after the lock is let go");
my ($get2, $set2) = main::commands();
@st = map { main::charge('t190-stuck') } 1 .. 5;
my ($get3, $set3) = main::commands();
Test::More::is("@st", "200 200 200 200 200", "five more charges");
Test::More::is($get3 - $get2, 0, "no read: the cache serves the account again");
Test::More::is($set3 - $set2, 5, "one write a charge");
--- request
GET /credit-admin/t190-stuck
--- response_body
{"account":"t190-stuck","plan":760,"pack":0,"total":760}
