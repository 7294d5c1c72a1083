# shellcheck shell=bash
# Sourced by the deploy scripts that run processes of their own (kafka.sh, frontdoor.sh,
# prometheus.sh), after they define log(): whether a pid is a live process, whether a port
# answers, and how their processes stop.

# A process that exists and is not a zombie (a child that died but was not reaped yet).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${state:0:1} != Z ]]
}

# Whether something accepts connections on the local port (bash's /dev/tcp: no nc on a
# bare Debian).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_processes <signal> <last signal> <timeout s> <pid>...: the signal to each; to those
# still alive after the timeout, the last signal; then a wait of at most 10 s until they
# are gone.
stop_processes() {
    local first=$1 last=$2 timeout=$3 pid left deadline
    shift 3
    for pid in "$@"; do kill "-$first" "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do
        if alive "$pid"; then
            log "pid $pid still alive after ${timeout}s, sending SIG$last"
            kill "-$last" "$pid" 2>/dev/null || true
        fi
    done
    deadline=$((SECONDS + 10))
    for pid in "$@"; do
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    done
}

# live_pid <pid file>: the pid the file holds, if that process is alive. Callers also check
# its command line: a stale pid file whose number now belongs to another process must not
# be taken for theirs.
live_pid() {
    [[ -f $1 ]] || return 1
    local pid
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# pid_naming <pid file> <text>: `live_pid`, if the process's command line holds the text.
# A substring, because nginx rewrites its command line into one title; kafka.sh matches
# whole arguments (`pid_of`).
pid_naming() {
    local pid
    pid=$(live_pid "$1") || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    printf '%s\n' "$pid"
}
