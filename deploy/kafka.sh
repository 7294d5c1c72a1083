#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1
# for development and CI, authenticated and authorized as in production.
#
#   deploy/kafka.sh start|stop|status
#   deploy/kafka.sh run      in the foreground, for a container (docker-compose.yml)
#
# There is no Kafka tarball to download here (only Maven Central is
# reachable), so the broker's classpath is assembled from Maven artifacts
# (deploy/kafka/pom.xml) and the JVM is launched directly.
#
# Security (CONTRACT.md, "Connecting"): no listener is PLAINTEXT.
#   CLIENT      SASL_PLAINTEXT, SCRAM-SHA-512: every client (services, parties)
#   CLIENT_TLS  SASL_SSL, SCRAM-SHA-512, certificate from deploy/tls.sh: the
#               production profile's listener, also served locally
#   BROKER      SASL_PLAINTEXT, PLAIN (static JAAS): inter-broker traffic
#   CONTROLLER  SASL_PLAINTEXT, PLAIN (static JAAS): the KRaft quorum
# StandardAuthorizer with allow.everyone.if.no.acl.found=false; the super
# users are the broker itself and the bootstrap administrator `admin`, both
# created as SCRAM users when the storage is formatted (--add-scram). Their
# passwords are generated once into $XINYONG_HOME/secrets (mode 0600).
#
# Environment:
#   XINYONG_HOME                   state root (default: <repo>/.local)
#   XINYONG_KAFKA_PORT             CLIENT listener (default 9092)
#   XINYONG_KAFKA_CONTROLLER_PORT  KRaft controller listener (default port+1)
#   XINYONG_KAFKA_BROKER_PORT      inter-broker listener (default port+2)
#   XINYONG_KAFKA_TLS_PORT         CLIENT_TLS listener (default port+3)
#   XINYONG_KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms256m -Xmx1g")
# For a container (`run`):
#   XINYONG_KAFKA_LIBS             the broker's jars already there (no Maven)
#   XINYONG_KAFKA_LISTEN_HOST      address the listeners bind (default 127.0.0.1)
#   XINYONG_KAFKA_ADVERTISED_HOST  host clients are told for CLIENT and BROKER
#   XINYONG_KAFKA_TLS_ADVERTISED   host:port clients are told for CLIENT_TLS
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname -- "$script_dir")
XINYONG_HOME=${XINYONG_HOME:-$repo_root/.local}

kafka_home=$XINYONG_HOME/kafka
libs_dir=${XINYONG_KAFKA_LIBS:-$kafka_home/libs}
conf_dir=$kafka_home/config
data_dir=$kafka_home/data
pid_file=$kafka_home/kafka.pid
log_file=$kafka_home/kafka.log
lock_file=$kafka_home/.lock
pom=$script_dir/kafka/pom.xml
# Holds the pom's checksum: editing the pom (e.g. a version bump) refetches,
# an unchanged pom never starts Maven (its startup alone costs seconds).
libs_marker=$libs_dir/.fetched

port=${XINYONG_KAFKA_PORT:-9092}
controller_port=${XINYONG_KAFKA_CONTROLLER_PORT:-$((port + 1))}
broker_port=${XINYONG_KAFKA_BROKER_PORT:-$((port + 2))}
tls_port=${XINYONG_KAFKA_TLS_PORT:-$((port + 3))}
listen_host=${XINYONG_KAFKA_LISTEN_HOST:-127.0.0.1}
advertised_host=${XINYONG_KAFKA_ADVERTISED_HOST:-127.0.0.1}
tls_advertised=${XINYONG_KAFKA_TLS_ADVERTISED:-$advertised_host:$tls_port}
secrets_dir=$XINYONG_HOME/secrets
tls_dir=$kafka_home/tls
heap_opts=${XINYONG_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}

server_props=$conf_dir/server.properties
# The configuration the running broker was started with.
running_props=$conf_dir/server.properties.running
broker_log4j=$conf_dir/log4j2.xml
tools_log4j=$conf_dir/tools-log4j2.xml

start_timeout_s=60
stop_timeout_s=30

log() { printf 'kafka: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_tools() {
    if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
        return
    fi
    log "installing java/maven from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
}

check_java() {
    # Kafka 4.x brokers need Java 17+; an older default java would fail late
    # with an opaque UnsupportedClassVersionError, so fail early instead.
    local major
    major=$(java -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
    [[ ${major:-0} -ge 17 ]] || die "java ${major:-?} found, Kafka 4 needs 17+"
}

fetch_libs() {
    local want
    want=$(sha256sum "$pom" | cut -d' ' -f1)
    if [[ -f $libs_marker && $(<"$libs_marker") == "$want" ]]; then
        return
    fi
    log "fetching broker jars with maven (one-off)"
    # Copy into a scratch dir and swap it in, so an interrupted download
    # never leaves a half-filled libs/ that looks complete.
    local tmp=$kafka_home/libs.tmp
    rm -rf -- "$tmp"
    # Maven's -q still emits colour escapes; show its output only on failure.
    local out
    if ! out=$(mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" 2>&1); then
        printf '%s\n' "$out" >&2
        die "maven could not fetch the Kafka jars"
    fi
    printf '%s\n' "$want" >"$tmp/.fetched"
    rm -rf -- "$libs_dir"
    mv -- "$tmp" "$libs_dir"
}

# A generated secret, made once (mode 0600); printed on stdout.
secret() {
    local f=$secrets_dir/$1
    mkdir -p -- "$secrets_dir"
    chmod 700 -- "$secrets_dir"
    if [[ ! -s $f ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$f.tmp" && mv -f -- "$f.tmp" "$f")
    fi
    tr -d '\n' <"$f"
}

write_config() {
    mkdir -p -- "$conf_dir" "$data_dir"
    chmod 700 -- "$conf_dir"
    bash "$script_dir/tls.sh" "$tls_dir" "${tls_advertised%:*}" 127.0.0.1 localhost
    local broker_pw plain_jaas scram_jaas
    broker_pw=$(secret kafka-broker.password)
    secret kafka-admin.password >/dev/null
    plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"$broker_pw\" user_broker=\"$broker_pw\";"
    scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
    # Regenerated every start so port changes in the environment take effect. It holds the
    # broker's password: readable by its owner only.
    (umask 077 && cat >"$server_props" <<EOF
# Generated by deploy/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller_port}
controller.listener.names=CONTROLLER
listeners=CLIENT://${listen_host}:${port},CLIENT_TLS://${listen_host}:${tls_port},BROKER://${listen_host}:${broker_port},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=CLIENT://${advertised_host}:${port},CLIENT_TLS://${tls_advertised},BROKER://${advertised_host}:${broker_port}
inter.broker.listener.name=BROKER
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CLIENT_TLS:SASL_SSL,BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT

# Clients: SCRAM-SHA-512, users kept in the cluster metadata.
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=${scram_jaas}
listener.name.client_tls.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client_tls.scram-sha-512.sasl.jaas.config=${scram_jaas}
listener.name.client_tls.ssl.keystore.type=PEM
listener.name.client_tls.ssl.keystore.location=${tls_dir}/broker.pem
listener.name.client_tls.ssl.truststore.type=PEM
listener.name.client_tls.ssl.truststore.location=${tls_dir}/ca.pem
# The broker and the controller: PLAIN with a static JAAS user, so that the quorum never
# depends on the metadata it serves (and no anonymous principal is ever a super user).
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.broker.sasl.enabled.mechanisms=PLAIN
listener.name.broker.plain.sasl.jaas.config=${plain_jaas}
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=${plain_jaas}

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:admin

log.dirs=${data_dir}

# One node: every replication factor / ISR must be 1 or internal topics
# (consumer offsets, transactions, share groups) can never be created.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

num.partitions=3
# Topics are part of the application's contract: a typo must fail, not
# silently create a new topic.
auto.create.topics.enable=false
# Tests start consumers and expect assignment immediately.
group.initial.rebalance.delay.ms=0
# The default 50 offsets partitions make the first consumer group on a fresh
# node wait several seconds; 2 cores do not need that many.
offsets.topic.num.partitions=10

log.retention.hours=168
log.retention.check.interval.ms=300000
# Sized for a 2-core machine rather than a production broker.
num.network.threads=2
num.io.threads=4
EOF
    )
    chmod 600 -- "$server_props"

    cat >"$broker_log4j" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka.sh. stdout is redirected to kafka.log. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
    <!-- Per-request logging would drown everything else. -->
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
EOF

    # CLI tools share the classpath; keep their output to real problems.
    cat >"$tools_log4j" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="STDERR"/></Root>
  </Loggers>
</Configuration>
EOF
}

run_tool() {
    java -Xmx256m -Dlog4j2.configurationFile="$tools_log4j" \
        -cp "$libs_dir/*" "$@"
}

# The first users are made with the storage: the broker itself and the bootstrap
# administrator, who then creates every other user and ACL (deploy/kafka_admin.py). A
# storage formatted before security was on has no SCRAM users: `xinyong up` adds them
# over the BROKER listener (deploy/stack.py::ensure_kafka_admin).
format_storage() {
    [[ -f $data_dir/meta.properties ]] && return
    log "formatting storage in $data_dir"
    local cluster_id
    cluster_id=$(run_tool kafka.tools.StorageTool random-uuid)
    run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$server_props" \
        --add-scram "SCRAM-SHA-512=[name=broker,password=$(secret kafka-broker.password)]" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$(secret kafka-admin.password)]" \
        >/dev/null
}

# Prints the broker pid if it is alive. The cmdline check guards against
# a stale pid file whose number now belongs to an unrelated process.
running_pid() {
    [[ -f $pid_file ]] || return 1
    local pid
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    printf '%s\n' "$pid"
}

port_open() {
    # bash's /dev/tcp needs no extra packages (no nc on a bare Debian).
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

broker_answers() {
    local props=$conf_dir/broker-client.properties
    (umask 077 && cat >"$props" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$(secret kafka-broker.password)";
EOF
    )
    timeout 20 java -Xmx128m -Dlog4j2.configurationFile="$tools_log4j" \
        -cp "$libs_dir/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "127.0.0.1:$broker_port" --command-config "$props" >/dev/null 2>&1
}

fail_with_log() {
    log "error: $*"
    if [[ -f $log_file ]]; then
        log "last lines of $log_file:"
        tail -n 40 -- "$log_file" >&2
    fi
    exit 1
}

wait_ready() {
    local pid=$1 deadline=$((SECONDS + start_timeout_s))
    # The TCP port opens before the broker serves requests, so it only
    # gates the (JVM-starting, ~1 s) API probe that proves real readiness.
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || fail_with_log "broker exited during startup"
        if port_open "$port" && broker_answers; then
            return 0
        fi
        sleep 0.5
    done
    fail_with_log "broker not answering on 127.0.0.1:$port after ${start_timeout_s}s"
}

cmd_start() {
    mkdir -p -- "$kafka_home"
    # Serialises concurrent starts (parallel test runners); fd 9 is closed
    # for the broker below so it does not hold the lock forever.
    exec 9>"$lock_file"
    flock 9

    local pid
    if pid=$(running_pid); then
        # A broker started from an older configuration (say, before its
        # listeners were authenticated) is restarted with the current one.
        write_config
        if cmp -s -- "$server_props" "$running_props"; then
            # Also covers a start racing another one still warming up.
            if port_open "$port"; then
                log "already running (pid $pid, 127.0.0.1:$port)"
                return 0
            fi
            wait_ready "$pid"
            log "running (pid $pid, 127.0.0.1:$port)"
            return 0
        fi
        log "configuration changed: restarting the broker"
        stop_pid "$pid"
    fi
    rm -f -- "$pid_file"

    ensure_tools
    check_java
    fetch_libs
    write_config
    format_storage
    cp -p -- "$server_props" "$running_props"

    local p
    for p in "$port" "$controller_port" "$broker_port" "$tls_port"; do
        if port_open "$p"; then
            die "port $p is already in use by another process"
        fi
    done

    # The log is appended across restarts; keep one old generation so a
    # long-lived dev machine does not fill its disk.
    if [[ -f $log_file ]] && (($(stat -c %s -- "$log_file") > 50 * 1024 * 1024)); then
        mv -f -- "$log_file" "$log_file.1"
    fi

    local -a heap
    read -r -a heap <<<"$heap_opts"
    log "starting broker on 127.0.0.1:$port (log: $log_file)"
    # setsid: own session, so a Ctrl-C or the caller's process group ending
    # does not take the broker down with it. The inner shell writes its own
    # pid and then execs java, so the pid file names the JVM itself.
    # shellcheck disable=SC2016 # $$/$1/$@ belong to the inner shell
    nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pid_file" \
        java "${heap[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$broker_log4j" \
        -cp "$libs_dir/*" kafka.Kafka "$server_props" \
        >>"$log_file" 2>&1 </dev/null 9>&- &

    local deadline=$((SECONDS + 5))
    until pid=$(running_pid); do
        ((SECONDS < deadline)) || fail_with_log "broker process did not start"
        sleep 0.1
    done
    wait_ready "$pid"
    log "running (pid $pid, 127.0.0.1:$port)"
}

cmd_stop() {
    mkdir -p -- "$kafka_home"
    exec 9>"$lock_file"
    flock 9

    local pid
    if ! pid=$(running_pid); then
        rm -f -- "$pid_file"
        log "not running"
        return 0
    fi
    stop_pid "$pid"
}

stop_pid() {
    local pid=$1
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout_s))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after ${stop_timeout_s}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f -- "$pid_file"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "kafka: running (pid $pid, 127.0.0.1:$port)"
        return 0
    fi
    echo "kafka: stopped"
    return 3
}

# In the foreground, for a container: the same configuration and first users as `start`.
cmd_run() {
    mkdir -p -- "$kafka_home"
    [[ -d $libs_dir ]] || fetch_libs
    write_config
    format_storage
    local -a heap
    read -r -a heap <<<"$heap_opts"
    exec java "${heap[@]}" -server -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$broker_log4j" -cp "$libs_dir/*" kafka.Kafka "$server_props"
}

case ${1:-} in
start) cmd_start ;;
run) cmd_run ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status|run" >&2
    exit 2
    ;;
esac
