package CreditTest;

# Helpers for the credit module's tests: a default http{} setup (the test
# memcached, the shared matrix t/credits.yaml, a mock AI backend), and raw
# HTTP / memcached clients for the blocks whose "--- init" needs them
# (concurrency, a stalled memcached, reloads).  Works with upstream
# Test::Nginx and with the bundled runner alike.

use strict;
use warnings;

use Cwd ();
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes qw(time sleep);
use POSIX qw(:sys_wait_h);

$ENV{TEST_NGINX_MEMCACHED_PORT} ||= 11211;
$ENV{TEST_NGINX_BACKEND_PORT} ||= 1985;
$ENV{TEST_NGINX_PROJECT_DIR} ||= Cwd::cwd();

our $Port = $ENV{TEST_NGINX_SERVER_PORT} || 1984;
our @Servers;

our $DefaultHttpConfig = <<'_EOC_';
    credit_memcached 127.0.0.1:$TEST_NGINX_MEMCACHED_PORT;
    credit_matrix $TEST_NGINX_PROJECT_DIR/t/credits.yaml;
    credit_key_prefix "test:";

    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        large_client_header_buffers 4 64k;
        location / { return 200 "ok $request_method $uri\n"; }
        location /v1/fail/500 { return 500 "boom\n"; }
        location /v1/fail/503 { return 503 "busy\n"; }
        location /v1/fail/404 { return 404 "nope\n"; }
        location /v1/slow { return 200 "slow\n"; }
    }
_EOC_

our $DefaultConfig = <<'_EOC_';
    location /v1/ {
        credit on;
        credit_account $http_x_api_key;
        add_header X-Ledger "$credit_status $credit_route $credit_cost $credit_plan_charged $credit_pack_charged $credit_remaining" always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }

    location /credit-admin/ {
        credit_admin;
    }

    location = /balance {
        credit_balance;
        credit_account $http_x_api_key;
    }
_EOC_

# "--- config" defaults to a metered /v1/, the admin API and /balance.
# "--- http_config" defaults to the setup above; a block that ships its
# own credits.yaml in "--- user_files" gets that matrix instead.
sub defaults {
    my ($block) = @_;

    if (!defined $block->config && !defined $block->must_die) {
        $block->set_value('config', $DefaultConfig);
    }

    if (!defined $block->http_config) {
        my $conf = $DefaultHttpConfig;
        my $files = $block->user_files;
        if (defined $files && !ref $files && $files =~ /^>>> credits\.yaml/m)
        {
            $conf =~ s{\$TEST_NGINX_PROJECT_DIR/t/credits\.yaml}
                      {\$TEST_NGINX_SERVER_ROOT/html/credits.yaml};
        }
        $block->set_value('http_config', $conf);
    }
}

# an http{} setup ($conf, e.g. $DefaultHttpConfig) whose credit_memcached
# names $servers instead: for blocks with a memcached of their own
sub with_memcached {
    my ($conf, $servers) = @_;
    return $conf =~ s/credit_memcached [^;]*;/credit_memcached $servers;/r;
}

# the metered /v1/ of $DefaultConfig, proxied to an upstream on $port
sub upstream_config {
    my ($port) = @_;
    return $DefaultConfig =~ s/\$TEST_NGINX_BACKEND_PORT/$port/r;
}

# memcached $mc, stopped, goes on; $account's item in it $wait s later
sub resumed_item {
    my ($mc, $account, $wait) = @_;
    mc_signal('CONT', $mc);
    Time::HiRes::sleep($wait);
    return memcached("get test:$account\r\n", $mc) // '';
}

# memcached $mc is restarted empty, $account granted 100 plan credits and
# charged once (cost 20): its balance and token are in the cache
sub charged_once {
    my ($mc, $account) = @_;
    mc_stop($mc);
    mc_start($mc);
    grant($account, 100, 0, undef);
    my ($st, $h) = request('POST', '/v1/background-removal',
                           { 'X-API-Key' => $account });
    Test::More::is("$st " . ($h->{'x-credits-remaining'} // ''), "200 80",
                   "charged once: the balance is cached");
}

# one HTTP/1.0 request on a new connection: (status, \%headers, body)
sub request {
    my ($method, $uri, $headers, $body, $port) = @_;
    $port ||= $Port;
    $headers ||= {};
    $body //= '';

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 5)
        or return (0, {}, "connect: $!");

    print $sock request_bytes($method, $uri, $headers, $body);

    my $raw = '';
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(10)) {
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    close $sock;

    return parse($raw);
}

sub request_bytes {
    my ($method, $uri, $headers, $body) = @_;
    my $req = "$method $uri HTTP/1.0\r\nHost: localhost\r\n";
    for my $k (sort keys %$headers) {
        $req .= "$k: $headers->{$k}\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body;
    return "$req\r\n$body";
}

sub parse {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return (0, {}, $raw) unless defined $head && $head =~ m{^HTTP/\S+ (\d+)};
    my $status = $1;
    my %h;
    for my $l (split /\r\n/, $head) {
        my ($k, $v) = split /:\s*/, $l, 2;
        $h{lc $k} = $v if defined $v;
    }
    return ($status, \%h, $body // '');
}

# many requests at once, multiplexed on non-blocking sockets; each
# element of @reqs is [method, uri, \%headers, body, port]; returns the
# list of [status, \%headers, body] in the same order
sub concurrent {
    my @reqs = @_;
    my (@socks, @raw, %index);
    my $sel = IO::Select->new;

    for my $i (0 .. $#reqs) {
        my ($m, $u, $h, $b, $p) = @{ $reqs[$i] };
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $p || $Port,
                                      Proto => 'tcp', Timeout => 5)
            or die "connect: $!";
        print $s request_bytes($m, $u, $h || {}, $b // '');
        $s->blocking(0);
        $socks[$i] = $s;
        $raw[$i] = '';
        $index{fileno $s} = $i;
        $sel->add($s);
    }

    my $deadline = time + 30;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $i = $index{fileno $s};
            my $n = sysread($s, my $buf, 65536);
            if (defined $n && $n > 0) {
                $raw[$i] .= $buf;
                next;
            }
            next if !defined $n && $!{EAGAIN};
            $sel->remove($s);
            close $s;
        }
    }

    return map { [parse($_)] } @raw;
}

# a raw memcached command on the test server: the reply text
sub memcached {
    my ($cmd, $port) = @_;
    $port ||= $ENV{TEST_NGINX_MEMCACHED_PORT};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 2)
        or return undef;
    return memcached_on($s, $cmd);
}

# the same on a connection of the caller's (a unix socket, IPv6), or ''
sub memcached_on {
    my ($s, $cmd) = @_;
    return '' unless $s;
    print $s $cmd;
    my $out = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(1)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $out .= $buf;
        last if $out =~ /(?:END|STORED|NOT_STORED|EXISTS|NOT_FOUND|OK|DELETED|ERROR)\r\n$/;
    }
    close $s;
    return $out;
}

sub balance {
    my ($account) = @_;
    my ($st, $h, $body) = request('GET', "/credit-admin/$account");
    return $body;
}

sub grant {
    my ($account, $plan, $pack, $port) = @_;
    request('PUT', "/credit-admin/$account/plan", {}, $plan, $port);
    request('POST', "/credit-admin/$account/pack", {}, $pack, $port)
        if $pack;
}

# a TCP server on $port, in a child process, that runs $handler->($client)
# in a child of its own for every connection; returns the server's pid
sub serve {
    my ($port, $handler) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Listen => 64,
                                  ReuseAddr => 1, Proto => 'tcp')
        or die "listen $port: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) {
        close $l;
        push @Servers, $pid;
        return $pid;
    }
    local $SIG{CHLD} = 'IGNORE';
    while (my $c = $l->accept) {
        my $kid = fork;
        next if !defined $kid || $kid;
        $handler->($c);
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}

# a memcached stand-in that stalls: whatever it reads, it answers only
# $delay seconds later, with "END" for every line (an unknown account).
# Used to show that a slow memcached never blocks a worker.
sub slow_server {
    my ($port, $delay) = @_;
    return serve($port, sub {
        my ($c) = @_;
        my $buf = '';
        while (sysread($c, my $b, 65536)) {
            $buf .= $b;
            sleep $delay;
            my $out = '';
            while ($buf =~ s/^[^\n]*\n//) {
                $out .= "END\r\n";
            }
            syswrite($c, $out);
        }
    });
}

# Test memcacheds of a block's own, on other ports, for the blocks that
# kill, restart or stall one; /tmp/credit-test-mc-NAME.pid holds the pid.

# starts memcached with these options and -M (not with $evicting), waits
# until $up->() is true
sub mc_run {
    my ($opts, $name, $up, $evicting) = @_;
    my $user = $> == 0 ? '-u root' : '';
    my $pidfile = "/tmp/credit-test-mc-$name.pid";
    my $m = $evicting ? '' : '-M';      # -M: never evict, as recommended
    unlink $pidfile;
    system("memcached -d $opts $m $user -P $pidfile") == 0 or die "memcached";
    for (1 .. 100) {
        last if -s $pidfile && $up->();
        sleep(0.02);
    }
}

sub mc_start {
    my ($port) = @_;
    mc_run("-l 127.0.0.1 -p $port -U 0", $port, sub {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
    });
}

# the pid of the block's nginx master (for master_on() files)
sub master_pid {
    open my $in, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die $!;
    my $pid = <$in>;
    chomp $pid;
    return $pid;
}

# the pids of the master's children (its workers), in order
sub worker_pids {
    my $master = master_pid();
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $in, '<', $stat or next;
        my $line = <$in> // next;
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $master;
    }
    return sort { $a <=> $b } @pids;
}

# the pid of the test memcached NAME (its port, or "unix"), or undef
sub mc_pid {
    my ($name) = @_;
    open my $in, '<', "/tmp/credit-test-mc-$name.pid" or return undef;
    my $pid = <$in>;
    chomp $pid;
    return $pid;
}

sub mc_stop {
    my ($port) = @_;
    my $pid = mc_pid($port) // return;
    kill 'KILL', $pid;
    for (1 .. 100) {
        last unless IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port);
        sleep(0.02);
    }
}

# SIGSTOP / SIGCONT to a test memcached
sub mc_signal {
    my ($sig, $port) = @_;
    my $pid = mc_pid($port) // die "no memcached $port";
    kill $sig, $pid;
    return unless $sig eq 'STOP';
    # a stop takes effect thread by thread: wait until every one is stopped
    for (1 .. 200) {
        my @running = grep {
            open my $st, '<', $_;
            (<$st> // '') !~ /^\d+ \(.*\) [Tt] /;
        } glob("/proc/$pid/task/*/stat");
        last unless @running;
        sleep(0.005);
    }
}


# A refund falls due while the block's memcached (port $mc) is stalled:
# $account is charged through an upstream on port $up that fails with 500
# after 0.8 s; meanwhile memcached is stopped and a charge of $other times
# out on it, so the server is down when the refund is due.  Returns the
# upstream's pid; memcached is left stopped.
sub refund_due_while_stalled {
    my ($mc, $up, $account, $other) = @_;
    mc_stop($mc);
    mc_start($mc);
    my $slow = failing_upstream($up, 0.8);
    grant($account, 100, 0, undef);
    grant($other, 100, 0, undef);

    my $s = start_request('/v1/background-removal', $account);
    sleep(0.2);
    Test::More::like(memcached("get test:$account\r\n", $mc) // '',
                     qr/\r\n80 0\r\n/, "charged while the upstream works");

    mc_signal('STOP', $mc);
    my ($st) = request('POST', '/v1/background-removal',
                       { 'X-API-Key' => $other });
    Test::More::is($st, 503,
                   "a charge times out on the stalled memcached: it is down");

    my ($code) = finish_request($s);
    Test::More::is($code, 500,
                   "the upstream failed: the refund is due while memcached is down");
    return $slow;
}


# The client leaves while its charge waits: memcached $mc (restarted here)
# is stopped, a metered POST of $uri for $account (granted 100 plan
# credits) is sent and its connection closed 0.3 s later; memcached then
# resumes and the charge lands.  The blocks check that it was given back.
sub leave_while_charging {
    my ($mc, $uri, $account) = @_;
    mc_stop($mc);
    mc_start($mc);
    grant($account, 100, 0);
    mc_signal('STOP', $mc);
    my $s = start_request($uri, $account);
    sleep(0.3);
    close $s;
    sleep(0.3);
    mc_signal('CONT', $mc);
    sleep(0.5);
}


# The client leaves while the upstream works: an upstream on $up answers
# 200 a second after each request; $account, granted 100 plan credits,
# sends a metered POST of /v1/background-removal (cost 20), which is
# charged and proxied, and closes its connection 0.3 s later, before the
# answer.  The blocks check the balance afterwards.
sub leave_while_proxied {
    my ($up, $account) = @_;
    delayed_upstream($up, 1, '200 OK', "ok\n");
    grant($account, 100, 0);
    my $s = start_request('/v1/background-removal', $account);
    sleep(0.3);
    Test::More::like(memcached("get test:$account\r\n") // '',
                     qr/\r\n80 0\r\n/, "charged while the upstream works");
    close $s;
    sleep(0.3);
}


# a metered POST for $account on a connection of its own, not waited for:
# finish_request() reads its answer, (status, \%headers, body)
sub start_request {
    my ($uri, $account) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port,
                                  Proto => 'tcp')
        or die "connect: $!";
    print $s request_bytes('POST', $uri, { 'X-API-Key' => $account }, '');
    return $s;
}

sub finish_request {
    my ($s) = @_;
    my $raw = do { local $/; <$s> } // '';
    close $s;
    return parse($raw);
}

# an upstream on $port that answers 500 after $delay seconds; its pid
sub failing_upstream {
    my ($port, $delay) = @_;
    return delayed_upstream($port, $delay, '500 Internal Server Error',
                            "boom\n");
}

# an upstream on $port that answers "$status" with $body after $delay
# seconds; its pid
sub delayed_upstream {
    my ($port, $delay, $status, $body) = @_;
    return serve($port, sub {
        my ($c) = @_;
        sysread($c, my $req, 65536);
        sleep($delay);
        syswrite($c, "HTTP/1.0 $status\r\nContent-Length: "
                     . length($body) . "\r\n\r\n$body");
    });
}

sub stop {
    my ($pid) = @_;
    return unless $pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# An upstream that answers what it received: "LENGTH MD5\n" of the
# request body, so tests see that the body reached it byte for byte.
our %Echo;

sub echo_server {
    my ($port) = @_;
    return if $Echo{$port};
    require Digest::MD5;
    $Echo{$port} = serve($port, sub {
        my ($c) = @_;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            my $n = sysread($c, $buf, 65536, length $buf);
            return unless $n;
        }
        my ($head, $body) = split /\r\n\r\n/, $buf, 2;
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        $len //= 0;
        while (length $body < $len) {
            my $n = sysread($c, $body, 65536, length $body);
            last unless $n;
        }
        my $out = length($body) . ' ' . Digest::MD5::md5_hex($body) . "\n";
        syswrite($c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                     . "Content-Length: " . length($out) . "\r\n\r\n$out");
    });
}

# a body in chunked transfer encoding, as one chunk
sub chunked {
    my ($body) = @_;
    return sprintf("%x\r\n%s\r\n0\r\n\r\n", length $body, $body);
}

sub md5_line {
    my ($body) = @_;
    require Digest::MD5;
    return length($body) . ' ' . Digest::MD5::md5_hex($body) . "\n";
}

# helper servers started by "--- init" code are stopped at the end
# A second nginx with the module, sharing the test memcached: another
# edge server of the same deployment.  Stopped at the end.
our @Nginx2;

sub start_second_nginx {
    my ($port, $workers) = @_;
    $workers ||= 2;
    my $root = ($ENV{TEST_NGINX_SERVER_ROOT} || Cwd::cwd() . '/t/servroot')
               . "-$port";
    # started by an earlier block of this file: still running, keep it
    return $root if grep { $_ eq $root } @Nginx2;
    system("rm -rf $root; mkdir -p $root/conf $root/logs");
    my $load = join '', map { "load_module $_;\n" } grep { $_ }
               split /\s+/, ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $mc = $ENV{TEST_NGINX_MEMCACHED_PORT};
    my $dir = $ENV{TEST_NGINX_PROJECT_DIR};
    my $user = $> == 0 ? "user root;" : "";
    my $backend = $port + 1;
    open my $out, '>', "$root/conf/nginx.conf" or die $!;
    print $out <<_EOC_;
$load
$user
worker_processes $workers;
daemon on;
master_process on;
error_log $root/logs/error.log info;
pid $root/logs/nginx.pid;
events { worker_connections 1024; accept_mutex off; }
http {
    access_log off;
    credit_memcached 127.0.0.1:$mc;
    credit_matrix $dir/t/credits.yaml;
    credit_key_prefix "test:";
    server {
        listen 127.0.0.1:$port;
        location /v1/ {
            credit on;
            credit_account \$http_x_api_key;
            proxy_pass http://127.0.0.1:$backend;
        }
    }
    server {
        listen 127.0.0.1:$backend;
        location / { return 200 "edge2\n"; }
    }
}
_EOC_
    close $out;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    system("$bin -p $root/ -c $root/conf/nginx.conf") == 0
        or die "second nginx did not start";
    push @Nginx2, $root;
    for (1 .. 100) {
        last if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        sleep 0.02;
    }
    return $root;
}

END {
    local $?;
    stop($_) for @Servers;
    for my $root (@Nginx2) {
        if (open my $in, '<', "$root/logs/nginx.pid") {
            my $pid = <$in>;
            chomp $pid;
            kill 'QUIT', $pid if $pid;
        }
    }
}

# HTTP/2 over cleartext (prior knowledge) on $port: one write carrying the
# connection preface and a POST stream for every element of @$keys (its
# X-API-Key), so that nginx reads them all, and meters them all, in one
# event-loop pass.  Returns the streams' statuses in the order sent (0:
# no answer in 10 s).
sub h2_burst {
    my ($port, $path, $keys) = @_;

    my $frame = sub {
        my ($type, $flags, $id, $payload) = @_;
        my $len = length $payload;
        return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $id)
               . $payload;
    };
    my $str = sub {                 # a raw HPACK string: 7-bit prefix
        my ($s) = @_;
        my $n = length $s;
        return chr($n) . $s if $n < 127;
        my $len = chr(127);
        for ($n -= 127; $n >= 128; $n >>= 7) {
            $len .= chr(($n & 0x7f) | 0x80);
        }
        return $len . chr($n) . $s;
    };

    my $out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . $frame->(4, 0, 0, '');
    my %stream;
    my $id = 1;
    for my $key (@$keys) {
        my $block = "\x83\x86"                     # :method POST, :scheme http
                    . "\x04" . $str->($path)       # :path
                    . "\x01" . $str->('localhost') # :authority
                    . "\x00" . $str->('x-api-key') . $str->($key);
        $out .= $frame->(1, 0x5, $id, $block);     # END_STREAM, END_HEADERS
        $stream{$id} = 0;
        $id += 2;
    }

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 5)
        or return map { 0 } @$keys;
    syswrite($sock, $out) == length $out or return map { 0 } @$keys;

    # nginx sends ":status" indexed (200, 204, 206, 304, 400, 404, 500)
    # or as a raw literal with the index of its name (0x48, 3, "402")
    my %indexed = (8 => 200, 9 => 204, 10 => 206, 11 => 304, 12 => 400,
                   13 => 404, 14 => 500);
    my $in = '';
    my $left = scalar @$keys;
    my $sel = IO::Select->new($sock);
    my $end = time + 10;
    while ($left && $end > time && $sel->can_read($end - time)) {
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $in .= $buf;
        while (length $in >= 9) {
            my ($hi, $lo, $type, $flags, $sid) = unpack('CnCCN', $in);
            my $len = ($hi << 16) | $lo;
            last if length $in < 9 + $len;
            my $payload = substr($in, 9, $len);
            substr($in, 0, 9 + $len) = '';
            $sid &= 0x7fffffff;
            next unless $type == 1 && exists $stream{$sid} && !$stream{$sid};
            my $b = ord $payload;
            if ($b & 0x80) {
                $stream{$sid} = $indexed{$b & 0x7f} // -1;
            } elsif ($b == 0x48 && substr($payload, 1, 1) eq "\x03") {
                $stream{$sid} = substr($payload, 2, 3) + 0;
            } else {
                $stream{$sid} = -1;
            }
            $left--;
        }
    }
    close $sock;

    return map { $stream{2 * $_ + 1} } 0 .. $#$keys;
}

1;
