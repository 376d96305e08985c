# Shell helpers shared by scripts/bench, scripts/faults and scripts/demo.

# running PID: alive and not a zombie (daemons are reaped by init, maybe late)
running() {
    [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"
}

# stop_pidfiles FILE...: TERM each process, wait until it is gone
stop_pidfiles() {
    for p in "$@"; do
        [ -f "$p" ] || continue
        pid=$(cat "$p")
        kill "$pid" 2>/dev/null || true
        i=0
        while running "$pid" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        rm -f "$p"
    done
}

# listening PORT: something accepts connections on 127.0.0.1:PORT
listening() {
    perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(
        PeerAddr => "127.0.0.1", PeerPort => shift) ? 0 : 1)' "$1"
}
