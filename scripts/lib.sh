# Shell helpers shared by the scripts in scripts/.

# memcached's options for a balance store, besides -M (README.md,
# "Operating memcached"): nothing is evicted or expires, so no LRU upkeep;
# each nginx worker pipelines a batch of commands on one connection, so
# let memcached run a whole batch per wake-up (its default is 20)
mc_balance_opts="-R 1000 -o no_lru_maintainer,no_lru_crawler"

# running PID: alive and not a zombie (daemons are reaped by init, maybe late)
running() {
    [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"
}

# on_exit COMMAND: run COMMAND when the script ends, however it ends:
# normally, on an error, or on HUP, INT, TERM or a closed output pipe
# (`scripts/bench | head`).  A trap on a signal alone would run COMMAND
# and then carry on with the script; here the signal ends it.
on_exit() {
    trap "$1" EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
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

# await_port up|down PORT: until something accepts on PORT, or nothing
# does any more; 5 s at most
await_port() {
    i=0
    while [ $i -lt 100 ]; do
        if listening "$2"; then state=up; else state=down; fi
        [ "$state" = "$1" ] && return 0
        sleep 0.05
        i=$((i + 1))
    done
}
