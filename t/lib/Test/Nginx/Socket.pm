package Test::Nginx::Socket;

# A small runner for Test::Nginx::Socket's data format: the subset this
# project's suite uses, with upstream's semantics (the nginx.conf layout,
# $TEST_NGINX_* expansion, "--- init" evaluated after nginx starts, one
# nginx start per block, master_process off by default, the error log
# checked after every request of a block against what that request added
# to it, or against all of the block's log after check_accum_error_log()).
# When upstream Test::Nginx is installed, scripts/run-tests uses it
# instead of this file.

use strict;
use warnings;

use Test::More ();
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes qw(sleep time);
use POSIX qw(:sys_wait_h);
use File::Path qw(make_path remove_tree);
use File::Spec ();

our $VERSION = '0.01-credit';

our $RepeatEach = 1;
our $NoShuffle = 1;
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Workers = 1;
our $WorkerConnections = 64;
our $LogLevel = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules = $ENV{TEST_NGINX_LOAD_MODULES};
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                  || 1984;
our $ServerAddr = '127.0.0.1';
our $ServerName = 'localhost';
our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
                || File::Spec->rel2abs('t/servroot');
our $LogDir = "$ServRoot/logs";
our $HtmlDir = "$ServRoot/html";
our $ConfDir = "$ServRoot/conf";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile = "$LogDir/nginx.pid";
our $ConfigPreamble = '';
our $NoRootLocation = 0;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ErrLogFilePos = 0;
our @BlockPreprocessors;
our @CleanupHandlers;
our @Blocks;
our $BlocksParsed;

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

my @own = qw(run_tests run_test repeat_each no_shuffle master_on master_off
             master_process_enabled workers worker_connections log_level
             blocks plan timeout server_port server_addr server_name
             server_root html_dir config_preamble no_root_location
             add_block_preprocessor add_cleanup_handler no_long_string
             env_to_nginx bail_out check_accum_error_log);

my @more = qw(ok is isnt like unlike is_deeply cmp_ok diag note pass fail
              done_testing skip BAIL_OUT);

sub import {
    my ($class, @args) = @_;
    my $caller = caller;

    no strict 'refs';

    for my $f (@own) {
        *{"${caller}::$f"} = \&{"Test::Nginx::Socket::$f"};
    }

    for my $f (@more) {
        *{"${caller}::$f"} = \&{"Test::More::$f"};
    }

    if (@args) {
        if ($args[0] eq 'no_plan') {
            Test::More::plan('no_plan');

        } elsif ($args[0] eq 'tests') {
            Test::More::plan(tests => $args[1]);
        }
    }
}

sub plan { Test::More::plan(@_) }
sub repeat_each { $RepeatEach = shift if @_; $RepeatEach }
sub no_shuffle { $NoShuffle = 1 }
sub master_on { $MasterProcessEnabled = 'on' }
sub master_off { $MasterProcessEnabled = 'off' }
sub master_process_enabled {
    $MasterProcessEnabled = shift() ? 'on' : 'off' if @_;
    $MasterProcessEnabled;
}
sub workers { $Workers = shift if @_; $Workers }
sub worker_connections { $WorkerConnections = shift if @_; $WorkerConnections }
sub log_level { $LogLevel = shift if @_; $LogLevel }
sub timeout { $Timeout = shift if @_; $Timeout }
sub server_port { $ServerPort = shift if @_; $ServerPort }
sub server_addr { $ServerAddr = shift if @_; $ServerAddr }
sub server_name { $ServerName = shift if @_; $ServerName }
sub server_root { $ServRoot }
sub html_dir { $HtmlDir }
sub config_preamble { $ConfigPreamble = shift }
sub no_root_location { $NoRootLocation = 1 }
sub check_accum_error_log { $CheckAccumErrLog = 1 }
sub no_long_string { }
sub env_to_nginx { }
sub add_block_preprocessor(&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler { unshift @CleanupHandlers, shift }
sub bail_out { cleanup(); Test::More::BAIL_OUT(join '', @_) }


# ---- the data section -------------------------------------------------

sub blocks {
    parse_blocks() unless $BlocksParsed;
    return @Blocks;
}

sub parse_blocks {
    $BlocksParsed = 1;

    my $data = do { no strict 'refs'; local $/; my $fh = \*{"main::DATA"};
                    <$fh> };
    return unless defined $data;

    $data =~ s/\r\n/\n/g;
    $data =~ s/^__END__\n.*//ms;

    my @chunks = split /^(?====[ \t])/m, $data;

    for my $chunk (@chunks) {
        next unless $chunk =~ s/^===[ \t]+(.*?)[ \t]*\n//;
        my $name = $1;
        my $block = Test::Nginx::Socket::Block->new($name);

        my @parts = split /^(?=---[ \t])/m, $chunk;
        for my $part (@parts) {
            next unless $part =~ s/^---[ \t]+(\w+)//;
            my $sec = $1;
            my $value;
            my @filters;

            if ($part =~ s/^[ \t]*:[ \t]*(.*?)[ \t]*\n//) {
                $value = $1;

            } else {
                $part =~ s/^([^\n]*)\n//;
                @filters = grep { length } split /\s+/, $1;
                $value = $part;

                # Test::Base's default filters: norm and trim
                $value =~ s/\A([ \t]*\n)+//;
                $value =~ s/(?<=\n)\s*\z//g;
            }

            for my $f (@filters) {
                if ($f eq 'chomp') {
                    chomp $value;

                } elsif ($f eq 'chop') {
                    chop $value;

                } elsif ($f eq 'eval') {
                    my $v = eval "package main; no strict; $value";
                    die "$name: --- $sec eval failed: $@" if $@;
                    $value = $v;

                } elsif ($f eq 'trim') {
                    $value =~ s/^\s+|\s+$//g;

                } else {
                    die "$name: --- $sec: the filter \"$f\" is not one the"
                        . " bundled runner knows (chomp, chop, eval, trim)\n";
                }
            }

            $block->set_value($sec, $value);
        }

        push @Blocks, $block;
    }

    my @only = grep { defined $_->{ONLY} } @Blocks;
    @Blocks = @only if @only;
}


# ---- running ----------------------------------------------------------

sub run_tests {
    for my $block (blocks()) {
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }

        $block->set_value('name', "$0 " . $block->name);
        run_test($block);
    }

    cleanup();
}

sub cleanup {
    for my $hdl (@CleanupHandlers) {
        $hdl->();
    }

    stop_nginx();
}

END {
    stop_nginx() if $BlocksParsed;
}

sub expand_env {
    my ($text, $name) = @_;
    return $text unless defined $text;

    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/
        defined $ENV{$1} ? $ENV{$1}
                         : bail_out("$name - No environment $1 defined.\n")
    /eg;

    return $text;
}

sub setup_server_root {
    remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"));
    make_path($ConfDir, $HtmlDir, $LogDir);

    open my $out, '>', "$HtmlDir/index.html" or die $!;
    print $out '<html><head><title>It works!</title></head>'
               . '<body>It works!</body></html>';
    close $out;
}

sub write_user_files {
    my ($block) = @_;
    my $files = $block->user_files;
    return unless defined $files;

    my @files;
    if (ref $files eq 'ARRAY') {
        @files = @$files;

    } else {
        my ($fname, $body);
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)/) {
                push @files, [$fname, $body] if $fname;
                ($fname, $body) = ($1, '');
            } else {
                $body .= $line;
            }
        }
        push @files, [$fname, $body] if $fname;
    }

    for my $f (@files) {
        my ($fname, $body) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        $body = expand_env($body // '', $block->name);
        open my $out, '>', $path or die "cannot write $path: $!";
        binmode $out;
        print $out $body;
        close $out;
    }
}

sub write_config {
    my ($block, $config) = @_;
    my $name = $block->name;

    my $main = expand_env($block->main_config // '', $name);
    my $http = expand_env($block->http_config // '', $name);
    my $post = expand_env($block->post_main_config // '', $name);

    if ($LoadModules) {
        $main .= join ' ', map { "load_module $_;" } grep { $_ }
                           split /\s+/, $LoadModules;
    }

    my $root = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $user = $> == 0 ? "user root;\n" : '';

    open my $out, '>', "$ConfDir/nginx.conf" or die $!;
    print $out <<_EOC_;
worker_processes  $Workers;
daemon on;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
env ASAN_OPTIONS;

$main

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http

    server {
        listen          $ServerPort;
        server_name     '$ServerName';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root    }
}

$post

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

sub nginx_pid {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    close $in;
    return undef unless defined $pid;
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# alive and not a zombie (a daemon is reaped by init, maybe late)
sub is_running {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in>;
        close $in;
        return 0 if defined $stat && $stat =~ /^\d+ \(.*\) Z/;
    }
    return 1;
}

sub stop_nginx {
    my $pid = nginx_pid();
    return unless $pid && is_running($pid);

    kill 'QUIT', $pid;

    my $deadline = time + $Timeout + 2;
    while (is_running($pid) && time < $deadline) {
        sleep 0.01;
    }

    if (is_running($pid)) {
        warn "nginx $pid did not quit; killing it\n";
        kill 'KILL', $pid;
        sleep 0.1;
    }

    unlink $PidFile;
}

sub start_nginx {
    my ($block) = @_;
    my $cmd = "$NginxBinary -p $ServRoot/ -c $ConfDir/nginx.conf > /dev/null";
    system($cmd);
    return $?;
}

sub wait_for_port {
    my $deadline = time + $Timeout;
    while (time < $deadline) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                         PeerPort => $ServerPort,
                                         Proto => 'tcp');
        if ($sock) {
            close $sock;
            return 1;
        }
        sleep 0.01;
    }
    return 0;
}

sub run_test {
    my ($block) = @_;
    my $name = $block->name;

    return if defined $block->SKIP;

    stop_nginx();

    # as upstream: the first check reads the log from its start (nginx's
    # startup and the init's requests included), each later one only what
    # was added since the one before, unless check_accum_error_log()
    $ErrLogFilePos = 0;

    my $config = expand_env($block->config // '', $name);

    setup_server_root();
    write_user_files($block);
    write_config($block, $config);

    my $status = start_nginx($block);

    if (defined $block->must_die) {
        my $must_die = $block->must_die;
        if ($must_die =~ /^\d+$/ && $must_die ne '') {
            Test::More::is($status >> 8, $must_die,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block);
        stop_nginx() if $status == 0;
        return;
    }

    if ($status != 0) {
        my $log = '';
        if (open my $in, '<', $ErrLogFile) { local $/; $log = <$in> }
        Test::More::fail("$name - nginx failed to start (status $status)");
        Test::More::diag($log);
        return;
    }

    wait_for_port() or Test::More::diag("$name - nginx is not listening");

    if (defined $block->init) {
        # upstream evaluates it in Test::Nginx::Util, under "use strict"
        eval "package Test::Nginx::Util; use strict; use warnings; "
             . $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $rep (1 .. $RepeatEach) {
        run_requests($block);
    }

    check_alerts($block);
}

# Stricter than upstream, which only prints a WARNING for such lines: an
# [alert] or [crit] line in the block's whole error log fails the block
# unless one of its --- error_log patterns matches that line (a block that
# expects one says so).
sub check_alerts {
    my ($block) = @_;

    open my $in, '<', $ErrLogFile or return;
    my @alerts = grep { /\[(?:alert|crit)\]/ } <$in>;
    close $in;

    my @pats = as_list($block->error_log);
    my @unexpected = grep {
        my $line = $_;
        !grep { log_match($line, $_) } @pats;
    } @alerts;

    Test::More::ok(!@unexpected, $block->name . " - no [alert] or [crit] "
                                 . "line in error.log that the block does "
                                 . "not expect");
    Test::More::diag("unexpected: $_") for @unexpected;
}

sub pick {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub run_requests {
    my ($block) = @_;
    my $name = $block->name;

    my @reqs;
    if (defined $block->raw_request) {
        push @reqs, { raw => $block->raw_request };

    } elsif (defined $block->request) {
        my $r = $block->request;
        for my $one (ref $r eq 'ARRAY' ? @$r : ($r)) {
            push @reqs, { req => $one };
        }
    } else {
        return;
    }

    my $n = @reqs;

    for my $i (0 .. $#reqs) {
        my $req = $reqs[$i];
        my $tname = $n > 1 ? "$name - req $i" : $name;

        my $bytes = defined $req->{raw}
                    ? (ref $req->{raw} eq 'ARRAY' ? join('', @{$req->{raw}})
                                                  : $req->{raw})
                    : build_request($block, $req->{req}, $i);

        # as upstream's parse_time(): "500ms", "2s" or "2"
        my $timeout = $block->timeout // $Timeout;
        $timeout =~ s/\s+$//;
        if ($timeout =~ s/([^_a-zA-Z])ms$/$1/) {
            $timeout /= 1000;

        } else {
            $timeout =~ s/([^_a-zA-Z])s$/$1/;
        }

        my $res = send_request($bytes, $timeout);

        if (!defined $res) {
            Test::More::fail("$tname - request timed out or failed");
            next;
        }

        my $code = pick($block->error_code, $i);
        if (defined $code) {
            $code =~ s/^\s+|\s+$//g;
            Test::More::is($res->{status}, $code, "$tname - status code ok");

        } else {
            Test::More::is($res->{status}, 200, "$tname - status code ok");
        }

        my $hdrs = pick($block->response_headers, $i);
        if (defined $hdrs) {
            for my $line (split /\n/, $hdrs) {
                $line =~ s/^\s+|\s+$//g;
                next if $line eq '';

                if ($line =~ /^!\s*(.+)$/) {
                    my $key = lc $1;
                    Test::More::ok(!defined $res->{headers}{$key},
                                   "$tname - header $1 not present");
                    next;
                }

                my ($key, $val) = split /\s*:\s*/, $line, 2;
                $val //= '';
                Test::More::is($res->{headers}{lc $key}, $val,
                               "$tname - header $key ok");
            }
        }

        my $like = pick($block->response_headers_like, $i);
        if (defined $like) {
            for my $line (split /\n/, $like) {
                $line =~ s/^\s+|\s+$//g;
                next if $line eq '';
                my ($key, $val) = split /\s*:\s*/, $line, 2;
                Test::More::like($res->{headers}{lc $key} // '',
                                 qr/^(?:$val)$/s,
                                 "$tname - header $key like ok");
            }
        }

        my $body = pick($block->response_body, $i);
        if (defined $body) {
            # upstream substitutes $ServerPort in the expected text, which
            # turns a qr// into a string: compare strings here too
            Test::More::is($res->{body}, "$body",
                           "$tname - response_body - response is expected");
        }

        my $body_like = pick($block->response_body_like, $i);
        if (defined $body_like) {
            my $re = ref $body_like eq 'Regexp' ? $body_like
                                                : qr/$body_like/s;
            Test::More::like($res->{body}, $re,
                             "$tname - response_body_like - response is "
                             . "expected");
        }

        my $body_unlike = pick($block->response_body_unlike, $i);
        if (defined $body_unlike) {
            my $re = ref $body_unlike eq 'Regexp' ? $body_unlike
                                                  : qr/$body_unlike/s;
            Test::More::unlike($res->{body}, $re,
                               "$tname - response_body_unlike - ok");
        }

    } continue {
        # upstream checks the error log after every request, failed or not
        sleep $block->wait if defined $block->wait;
        check_error_log($block);
    }
}

sub build_request {
    my ($block, $request, $i) = @_;

    $request =~ s/^\s+//;

    my ($first, $content) = split /\n/, $request, 2;
    $content //= '';

    my ($meth, $url, $ver) = split ' ', $first;
    $url //= '/';
    $ver //= 'HTTP/1.1';

    my $more = pick($block->more_headers, $i) // '';
    my $headers = '';
    my $chunked = 0;

    for my $h (split /\n+/, $more) {
        next if $h =~ /^\s*#/ || $h !~ /\S/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $headers .= "$k: $v\r\n";
    }

    my $len = '';
    if (!$chunked && $content ne '' && $more !~ /(?:^|\n)Content-Length:/i) {
        $content =~ s/^\s+|\s+$//gs;
        $len = "Content-Length: " . length($content) . "\r\n";
    }

    my $pre = '';
    $pre .= "Host: $ServerName\r\n" if $more !~ /(?:^|\n)Host:/i;
    $pre .= "Connection: close\r\n" if $more !~ /(?:^|\n)Connection/i;

    return "$meth $url $ver\r\n$pre$headers$len\r\n$content";
}

sub send_request {
    my ($bytes, $timeout) = @_;

    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                     PeerPort => $ServerPort,
                                     Proto => 'tcp',
                                     Timeout => $timeout) or return undef;

    binmode $sock;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
        last unless defined $n;
        $off += $n;
    }

    my $sel = IO::Select->new($sock);
    my $raw = '';
    my $deadline = time + $timeout;

    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            close $sock;
            return undef;
        }
        last unless $sel->can_read($left);
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }

    close $sock;

    return parse_response($raw);
}

sub parse_response {
    my ($raw) = @_;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return undef unless defined $head;
    $body //= '';

    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines // '';
    my ($status) = $status_line =~ m{^HTTP/\d\.\d\s+(\d+)};
    return undef unless defined $status;

    my %headers;
    for my $l (@lines) {
        my ($k, $v) = split /:\s*/, $l, 2;
        $k = lc $k;
        $headers{$k} = defined $headers{$k} ? "$headers{$k}, $v" : $v;
    }

    if (($headers{'transfer-encoding'} // '') =~ /chunked/i) {
        my $decoded = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $size = hex $1;
            last if $size == 0;
            $decoded .= substr($body, 0, $size);
            $body = substr($body, $size + 2);
        }
        $body = $decoded;
    }

    return { status => $status, headers => \%headers, body => $body };
}

sub error_log_lines {
    sleep 0.05;
    open my $in, '<', $ErrLogFile or return ();
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    close $in;
    return @lines;
}

sub as_list {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return ($v) if ref $v;
    return grep { /\S/ } split /\n/, $v;
}

# an error_log pattern: a qr// matches, a string is found in the line
sub log_match {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub check_error_log {
    my ($block) = @_;
    my $name = $block->name;

    my @lines;
    my $loaded = 0;
    my $lines = sub {
        @lines = error_log_lines() unless $loaded++;
        return @lines;
    };

    for my $pat (as_list($block->error_log)) {
        my $found = grep { log_match($_, $pat) } $lines->();
        Test::More::ok($found, "$name - pattern \"$pat\" matches a line "
                               . "in error.log");
    }

    for my $pat (as_list($block->no_error_log)) {
        my ($hit) = grep { log_match($_, $pat) } $lines->();
        Test::More::ok(!defined $hit, "$name - pattern \"$pat\" should not "
                                      . "match any line in error.log");
        Test::More::diag("matched: $hit") if defined $hit;
    }

    if (defined $block->grep_error_log) {
        my $pat = $block->grep_error_log;
        $pat =~ s/\n$// unless ref $pat;
        my $re = ref $pat ? $pat : qr/\Q$pat\E/;
        # as upstream: the first match of each line, if it has no newline
        my $out = '';
        for my $l ($lines->()) {
            if ($l =~ /$re/ && $& !~ /\n/) {
                $out .= "$&\n";
            }
        }

        my $expected = $block->grep_error_log_out;
        if (ref $expected eq 'ARRAY') {
            $expected = $expected->[0];
        }

        if (ref $expected eq 'Regexp') {
            Test::More::like($out, $expected, "$name - grep_error_log_out");
        } else {
            Test::More::is($out, $expected // '',
                           "$name - grep_error_log_out");
        }
    }
}


package Test::Nginx::Socket::Block;

our $AUTOLOAD;

sub new {
    my ($class, $name) = @_;
    return bless { name => $name }, $class;
}

sub set_value {
    my ($self, $key, $value) = @_;
    $self->{$key} = $value;
}

sub AUTOLOAD {
    my $self = shift;
    (my $name = $AUTOLOAD) =~ s/.*:://;
    return if $name eq 'DESTROY';
    return $self->{$name};
}

1;
