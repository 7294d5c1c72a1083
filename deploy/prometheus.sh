#!/usr/bin/env bash
# Prometheus for the local stack (Debian's `prometheus` package, which also brings promtool),
# run as a process of its own like Kafka and PostgreSQL; `./xinyong up --observe` writes its
# configuration (deploy/observe.py: the services' metrics ports, deploy/prometheus/alerts.yml)
# and calls this.
#
#   deploy/prometheus.sh install|start|stop|status
#
# Environment:
#   XINYONG_HOME               state root (default: <repo>/.local)
#   XINYONG_PROMETHEUS_DIR     configuration, data and log (default: $XINYONG_HOME/prometheus)
#   XINYONG_PROMETHEUS_PORT    HTTP port on 127.0.0.1 (default 9090)
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname -- "$script_dir")
XINYONG_HOME=${XINYONG_HOME:-$repo_root/.local}

prom_dir=${XINYONG_PROMETHEUS_DIR:-$XINYONG_HOME/prometheus}
port=${XINYONG_PROMETHEUS_PORT:-9090}
config=$prom_dir/prometheus.yml
data_dir=$prom_dir/data
pid_file=$prom_dir/prometheus.pid
log_file=$prom_dir/prometheus.log
start_timeout_s=60
stop_timeout_s=30

log() { printf 'prometheus: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/processes.sh
source "$script_dir/processes.sh"

cmd_install() {
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        return
    fi
    log "installing prometheus from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's own service is never started here (no systemd in containers, and the
    # stack's Prometheus is this script's).
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null 2>&1 || die "prometheus installed but no promtool found"
}

# The pid if it is alive and is our Prometheus (its command line names our configuration).
running_pid() { pid_naming "$pid_file" "--config.file=$config"; }

# GET a path on the local port; true on a 200 (bash's /dev/tcp: no curl on a bare Debian).
http_ok() {
    local status
    status=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3 &&
        head -n 1 <&3) 2>/dev/null) || return 1
    [[ $status == *" 200 "* ]]
}

cmd_start() {
    [[ -f $config ]] || die "no configuration at $config (deploy/observe.py writes it)"
    cmd_install
    mkdir -p -- "$data_dir"
    local pid
    if pid=$(running_pid); then
        # A configuration written again (other ports, other rules) is read without a restart.
        kill -HUP "$pid"
        log "running (pid $pid, http://127.0.0.1:$port), configuration reloaded"
        return 0
    fi
    promtool check config "$config" >/dev/null || die "invalid configuration $config"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use by another process"
    fi
    log "starting on http://127.0.0.1:$port (log: $log_file)"
    # shellcheck disable=SC2016 # $$/$1/$@ belong to the inner shell
    nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pid_file" \
        prometheus --config.file="$config" --storage.tsdb.path="$data_dir" \
        --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$port" \
        --web.enable-lifecycle >>"$log_file" 2>&1 </dev/null &
    local deadline=$((SECONDS + start_timeout_s))
    until http_ok /-/ready; do
        if [[ -f $pid_file ]] && ! alive "$(<"$pid_file")"; then
            tail -n 20 -- "$log_file" >&2 || true
            die "prometheus exited during startup"
        fi
        ((SECONDS < deadline)) || die "not ready after ${start_timeout_s}s; see $log_file"
        sleep 0.3
    done
    log "running (pid $(running_pid), http://127.0.0.1:$port)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f -- "$pid_file"
        log "not running"
        return 0
    fi
    stop_processes TERM KILL "$stop_timeout_s" "$pid"
    rm -f -- "$pid_file"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        log "running (pid $pid, http://127.0.0.1:$port)"
    else
        log "not running"
        return 3
    fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
