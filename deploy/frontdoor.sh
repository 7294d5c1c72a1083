#!/usr/bin/env bash
# The local stack's front door: Debian's nginx, run as a process of its own like Kafka and
# Prometheus. `./xinyong up` writes its configuration (deploy/frontdoor.py: one port per
# group of CONTRACT.md's "Where", in front of every process of the services) and calls this.
#
#   deploy/frontdoor.sh install|start|stop|status|check
#
# Environment:
#   XINYONG_HOME              state root (default: <repo>/.local)
#   XINYONG_FRONTDOOR_DIR     configuration, pid, logs (default: $XINYONG_HOME/frontdoor/stack)
#   XINYONG_FRONTDOOR_PORTS   the doors' ports, space-separated (start waits for them)
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname -- "$script_dir")
XINYONG_HOME=${XINYONG_HOME:-$repo_root/.local}

door_dir=${XINYONG_FRONTDOOR_DIR:-$XINYONG_HOME/frontdoor/stack}
ports=${XINYONG_FRONTDOOR_PORTS:-}
config=$door_dir/nginx.conf
pid_file=$door_dir/nginx.pid
start_timeout_s=20
stop_timeout_s=20

log() { printf 'frontdoor: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/processes.sh
source "$script_dir/processes.sh"

nginx_bin() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }; }

cmd_install() {
    if nginx_bin >/dev/null; then
        return
    fi
    log "installing nginx from apt"
    export DEBIAN_FRONTEND=noninteractive
    # The package would start its own server on port 80; here only this script starts
    # nginx (Debian's policy-rc.d convention: 101 = do not start services).
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx-light >/dev/null ||
        apt-get install -y -qq --no-install-recommends nginx >/dev/null || {
        [[ -n $made_policy ]] && rm -f -- "$policy"
        die "could not install nginx"
    }
    [[ -n $made_policy ]] && rm -f -- "$policy"
    nginx_bin >/dev/null || die "nginx installed but not found"
}

# The master's pid if it is alive and runs our configuration.
running_pid() { pid_naming "$pid_file" "$config"; }


# When root runs it, nginx's workers are `nobody`: they write request bodies and buffered
# answers under tmp/.
prepare() {
    [[ -f $config ]] || die "no configuration at $config (deploy/frontdoor.py writes it)"
    mkdir -p -- "$door_dir/tmp"
    if ((EUID == 0)); then
        chown -R nobody "$door_dir/tmp"
        chmod 755 "$door_dir"
    fi
}

cmd_check() {
    cmd_install
    prepare
    "$(nginx_bin)" -t -q -c "$config" -p "$door_dir" 2>&1 || die "invalid configuration $config"
}

cmd_start() {
    cmd_check
    local pid p
    if pid=$(running_pid); then
        # Another shape (replicas, ports) is read without dropping a connection.
        "$(nginx_bin)" -c "$config" -p "$door_dir" -s reload
        log "running (pid $pid), configuration reloaded"
        return 0
    fi
    for p in $ports; do
        port_open "$p" && die "port $p is already in use by another process"
    done
    "$(nginx_bin)" -c "$config" -p "$door_dir"
    local deadline=$((SECONDS + start_timeout_s))
    for p in $ports; do
        until port_open "$p"; do
            ((SECONDS < deadline)) || die "port $p not open after ${start_timeout_s}s; see $door_dir/error.log"
            sleep 0.1
        done
    done
    log "running (pid $(running_pid), ports $ports)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f -- "$pid_file"
        log "not running"
        return 0
    fi
    # QUIT: nginx finishes the requests in flight; TERM if it has not after the timeout.
    stop_processes QUIT TERM "$stop_timeout_s" "$pid"
    rm -f -- "$pid_file"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        log "running (pid $pid)"
    else
        log "not running"
        return 3
    fi
}

case ${1:-} in
install) cmd_install ;;
check) cmd_check ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) die "usage: $0 install|start|stop|status|check" ;;
esac
