#!/usr/bin/env bash
# The project's own PostgreSQL cluster for development and CI, managed with
# Debian's postgresql-common tools (pg_createcluster / pg_ctlcluster).
#
#   deploy/postgres.sh start|stop|status
#
# The server runs as the postgres user (PostgreSQL refuses root), so its
# data lives where Debian puts it (/var/lib/postgresql/<ver>/<cluster>), not
# in the repo: CI clones under /root, which postgres cannot traverse.
# $XINYONG_HOME/postgres.cluster records where everything is.
#
# Environment:
#   XINYONG_HOME                 state root (default: <repo>/.local)
#   XINYONG_PG_CLUSTER           cluster name (default xinyong)
#   XINYONG_PG_PORT              TCP port on 127.0.0.1 (default 5433)
#   XINYONG_PG_ADMIN_PASSWORD    password of superuser xinyong_admin
#                                (default xinyong)
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname -- "$script_dir")
XINYONG_HOME=${XINYONG_HOME:-$repo_root/.local}

cluster=${XINYONG_PG_CLUSTER:-xinyong}
port=${XINYONG_PG_PORT:-5433}
admin_role=xinyong_admin
admin_password=${XINYONG_PG_ADMIN_PASSWORD:-xinyong}
locale_name=C.UTF-8
info_file=$XINYONG_HOME/postgres.cluster
start_timeout_s=60

# Commands run as postgres would warn "could not change directory" when
# started from a folder it cannot enter (e.g. a clone under /root).
cd /

log() { printf 'postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

ensure_packages() {
    if have_server && command -v pg_createcluster >/dev/null 2>&1; then
        return
    fi
    log "installing postgresql from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    have_server || die "postgresql installed but no initdb found"
}

# Text search on Chinese content relies on a UTF-8 ctype; the C.UTF-8
# locale ships with Debian's libc-bin, but minimal images may lack it.
ensure_locale() {
    if locale -a 2>/dev/null | grep -qixE 'c\.utf-?8'; then
        return
    fi
    log "generating locale $locale_name"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq locales >/dev/null
    localedef -i C -f UTF-8 "$locale_name" ||
        die "cannot create locale $locale_name"
}

# An existing cluster keeps its major version (its data is tied to it);
# a new one gets the highest installed server.
pick_version() {
    local existing
    existing=$(pg_lsclusters -h 2>/dev/null |
        awk -v c="$cluster" '$2 == c { print $1 }' | sort -V | tail -n 1)
    if [[ -n $existing ]]; then
        printf '%s\n' "$existing"
        return
    fi
    local d versions=()
    for d in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x $d ]] && versions+=("$(basename -- "$(dirname -- "$(dirname -- "$d")")")")
    done
    ((${#versions[@]})) || die "no PostgreSQL server installed"
    printf '%s\n' "${versions[@]}" | sort -V | tail -n 1
}

cluster_exists() {
    [[ -f /etc/postgresql/$ver/$cluster/postgresql.conf ]]
}

is_running() {
    cluster_exists && pg_ctlcluster "$ver" "$cluster" status >/dev/null 2>&1
}

create_cluster() {
    log "creating cluster $ver/$cluster on port $port"
    # manual: only this script starts it, not the distro's boot scripts
    # (which would also start it on machines that never asked for it).
    pg_createcluster "$ver" "$cluster" -p "$port" \
        --locale "$locale_name" --encoding UTF8 --start-conf manual \
        -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
}

# Writes $2 to $1 (owned by postgres) only when the content differs, so a
# no-change start leaves mtimes alone.
install_if_changed() {
    local dest=$1 content=$2
    if [[ -f $dest && $(<"$dest") == "$content" ]]; then
        return
    fi
    printf '%s\n' "$content" >"$dest.tmp"
    chown postgres:postgres -- "$dest.tmp"
    chmod 640 -- "$dest.tmp"
    mv -f -- "$dest.tmp" "$dest"
}

configure_cluster() {
    local conf_dir=/etc/postgresql/$ver/$cluster
    # The port lives in postgresql.conf itself because postgresql-common's
    # tools (pg_lsclusters, pg_ctlcluster, pg_wrapper) read it from there.
    if [[ $(pg_conftool -s "$ver" "$cluster" show port) != "$port" ]]; then
        pg_conftool "$ver" "$cluster" set port "$port"
    fi
    mkdir -p -- "$conf_dir/conf.d"
    install_if_changed "$conf_dir/conf.d/50-xinyong.conf" "# Written by deploy/postgres.sh; overwritten on start.
# Loopback only: this is a dev/CI database with a known password.
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
# Durability matters for this project even in dev: never trade it for speed.
fsync = on
synchronous_commit = on"
    install_if_changed "$conf_dir/pg_hba.conf" "# Written by deploy/postgres.sh; overwritten on start.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
host    all       all       127.0.0.1/32   scram-sha-256"
}

write_info() {
    mkdir -p -- "$XINYONG_HOME"
    local data_dir
    data_dir=$(pg_conftool -s "$ver" "$cluster" show data_directory)
    cat >"$info_file" <<EOF
# Written by deploy/postgres.sh: where the project's PostgreSQL cluster lives.
version=$ver
cluster=$cluster
port=$port
data_directory=$data_dir
config_directory=/etc/postgresql/$ver/$cluster
log_file=/var/log/postgresql/postgresql-$ver-$cluster.log
dsn=postgresql://$admin_role@127.0.0.1:$port/postgres
EOF
}

fail_with_log() {
    log "error: $*"
    local f=/var/log/postgresql/postgresql-$ver-$cluster.log
    if [[ -f $f ]]; then
        log "last lines of $f:"
        tail -n 30 -- "$f" >&2
    fi
    exit 1
}

wait_ready() {
    local deadline=$((SECONDS + start_timeout_s))
    until "/usr/lib/postgresql/$ver/bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do
        ((SECONDS < deadline)) ||
            fail_with_log "not accepting connections on 127.0.0.1:$port after ${start_timeout_s}s"
        sleep 0.5
    done
}

# Logs in exactly as the application will (TCP + scram); when that already
# works the role is left untouched, so a repeated start writes nothing.
admin_login_works() {
    PGPASSWORD=$admin_password PGCONNECT_TIMEOUT=5 \
        "/usr/lib/postgresql/$ver/bin/psql" -X -qAt -h 127.0.0.1 -p "$port" \
        -U "$admin_role" -d postgres \
        -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' \
        2>/dev/null | grep -qx t
}

ensure_admin_role() {
    admin_login_works && return
    log "creating/updating superuser $admin_role"
    # SQL comes in on stdin rather than argv so the password never shows up
    # in ps; standard_conforming_strings makes doubling quotes sufficient.
    local pw_sql=${admin_password//\'/\'\'}
    runuser -u postgres -- "/usr/lib/postgresql/$ver/bin/psql" -X -q \
        -v ON_ERROR_STOP=1 -p "$port" -d postgres <<SQL
SELECT 'CREATE ROLE $admin_role' WHERE NOT EXISTS
    (SELECT 1 FROM pg_roles WHERE rolname = '$admin_role') \gexec
ALTER ROLE $admin_role WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD '$pw_sql';
SQL
    admin_login_works || die "cannot log in as $admin_role on 127.0.0.1:$port"
}

cmd_start() {
    ensure_packages
    # Not PostgreSQL's, but every path that runs the stack or its tests passes here: the CJK
    # font of the credit reports (deploy/fonts.sh; installed only when missing).
    bash "$script_dir/fonts.sh"
    ver=$(pick_version)

    if is_running; then
        local running_port
        running_port=$(pg_conftool -s "$ver" "$cluster" show port)
        [[ $running_port == "$port" ]] ||
            die "cluster $ver/$cluster runs on port $running_port, not $port; stop it first"
        wait_ready
        ensure_admin_role
        write_info
        log "already running ($ver/$cluster, 127.0.0.1:$port)"
        return 0
    fi

    ensure_locale
    cluster_exists || create_cluster
    configure_cluster
    write_info
    log "starting $ver/$cluster on 127.0.0.1:$port"
    pg_ctlcluster "$ver" "$cluster" start || fail_with_log "pg_ctlcluster start failed"
    wait_ready
    ensure_admin_role
    log "running ($ver/$cluster, 127.0.0.1:$port, data $(pg_conftool -s "$ver" "$cluster" show data_directory))"
}

cmd_stop() {
    if ! have_server; then
        log "not running (not installed)"
        return 0
    fi
    ver=$(pick_version)
    if ! is_running; then
        log "not running"
        return 0
    fi
    pg_ctlcluster "$ver" "$cluster" stop
    log "stopped"
}

cmd_status() {
    if ! have_server; then
        echo "postgres: stopped (not installed)"
        return 3
    fi
    ver=$(pick_version)
    if is_running; then
        echo "postgres: running ($ver/$cluster, 127.0.0.1:$(pg_conftool -s "$ver" "$cluster" show port))"
        return 0
    fi
    if cluster_exists; then
        echo "postgres: stopped ($ver/$cluster)"
    else
        echo "postgres: stopped (cluster $cluster not created)"
    fi
    return 3
}

ver=
case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
