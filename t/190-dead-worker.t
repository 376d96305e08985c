# A worker that dies (SIGKILL) while it holds a lock of the balance
# cache: the worker the master starts in its place takes the lock over,
# says so in the error log, and the cache serves that account again (one
# memcached command a charge).  gdb stops the worker on the lock's release
# and kills it there (scripts/setup installs gdb); where gdb cannot attach
# to a process (no ptrace in a container), the file is skipped.

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
no_shuffle();
add_block_preprocessor(\&CreditTest::defaults);

our $Mc = 19940;

END { CreditTest::mc_stop($Mc) }

sub main::master {
    open my $in, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die $!;
    my $pid = <$in>;
    chomp $pid;
    return $pid;
}

# the pids of the master's children
sub main::worker_pids {
    my $master = main::master();
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $in, '<', $stat or next;
        my $line = <$in> // next;
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $master;
    }
    return @pids;
}

sub main::charge {
    my ($st) = CreditTest::request('POST', '/v1/background-removal',
                                   { 'X-API-Key' => 't190' });
    return $st;
}

# memcached's counters of reads and writes (mg and ms count there too)
sub main::commands {
    my $stats = CreditTest::memcached("stats\r\n", $Mc) // '';
    my ($get) = $stats =~ /STAT cmd_get (\d+)/;
    my ($set) = $stats =~ /STAT cmd_set (\d+)/;
    return ($get // -1, $set // -1);
}

run_tests();

__DATA__

=== TEST 1: the lock of a worker killed while holding it is taken over
The killed worker had written its charge to memcached: that charge stays
(its request died with it, as any request does when its worker is
killed), so eight charges of 20 are taken from 1000.  Without the take-over
every later charge of the account would find its cached token stale and
read afresh (a read and two writes a charge), and the entry would never
be written again.
--- http_config eval
CreditTest::with_memcached($CreditTest::DefaultHttpConfig, '127.0.0.1:19940')
--- init
CreditTest::mc_start($main::Mc);
CreditTest::grant('t190', 1000);
Test::More::is(main::charge(), 200, "charged: the account is cached");

my ($old) = main::worker_pids();
my $out = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/gdb.out";
my $gdb = fork // die "fork: $!";
if ($gdb == 0) {
    open STDOUT, '>', $out or die $!;
    open STDERR, '>&', \*STDOUT or die $!;
    # bounded: a worker that never reaches the breakpoint fails the
    # block instead of hanging it
    exec 'timeout', '30', 'gdb', '-q', '-batch', '-nx', '-p', $old,
         '-ex', 'break ngx_http_credit_cache_unlock',
         '-ex', 'continue', '-ex', 'kill';
    exit 127;
}

my $ready = 0;
for (1 .. 500) {
    if (open my $in, '<', $out) {
        local $/;
        $ready = 1, last if (<$in> // '') =~ /^Breakpoint 1 at /m;
    }
    Time::HiRes::sleep(0.02);
}
Test::More::ok($ready, "gdb is to stop the worker at the lock's release")
    or Test::More::diag(do { local (@ARGV, $/) = $out; <> });

# its charge is written to memcached, then the worker dies holding
# the lock of the account's set: the client gets no answer
my $s = CreditTest::start_request('/v1/background-removal', 't190');
waitpid $gdb, 0;
my ($st) = CreditTest::finish_request($s);
Test::More::is($st, 0, "the killed worker's request got no answer");
Test::More::ok(!kill(0, $old), "the worker is gone");

my @new;
for (1 .. 250) {
    @new = grep { $_ != $old } main::worker_pids();
    last if @new;
    Time::HiRes::sleep(0.02);
}
Test::More::is(scalar @new, 1, "the master started another worker");

# the first charge meets the dead worker's lock and takes it over;
# from then on the cache serves the account: one write a charge
Test::More::is(main::charge(), 200, "charged by the new worker");
my ($get0, $set0) = main::commands();
my @st = map { main::charge() } 1 .. 5;
my ($get1, $set1) = main::commands();
Test::More::is("@st", "200 200 200 200 200", "five more charges");
Test::More::is($get1 - $get0, 0, "no read: the balance came from the cache");
Test::More::is($set1 - $set0, 5, "one write a charge");
--- request
GET /credit-admin/t190
--- response_body
{"account":"t190","plan":840,"pack":0,"total":840}
--- error_log eval
[qr/\[alert\] .* worker process \d+ exited on signal 9/,
 qr/\[warn\] .* credit: balance cache: took over a lock left by process \d+, which is gone/]
