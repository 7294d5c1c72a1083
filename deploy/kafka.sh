#!/usr/bin/env bash
# Apache Kafka (KRaft, broker+controller in one JVM per node) on 127.0.0.1 for
# development and CI, authenticated and authorized as in production: one node by
# default, or a cluster of several (`XINYONG_KAFKA_BROKERS=3`: three nodes, one
# controller quorum, replication factor 3, min.insync.replicas=2).
#
#   deploy/kafka.sh start    every node of the cluster not running yet (a node killed
#                            alone is started again by this)
#   deploy/kafka.sh stop     every node running from this folder
#   deploy/kafka.sh status   one line per node: its id, pid and port, or stopped
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
# Several nodes: node i (1..N) has node.id i, its CLIENT listener on port+10*(i-1) and
# the others on that +1..+3 (9092-9095, 9102-9105, 9112-9115 by default), its folder
# nodes-<N>/<i>/ (config, data, pid, log). One node keeps the folder itself. The two
# shapes are separate clusters with their own data: switching stops the other one
# (docs/decisions.md, "Three brokers").
#
# Environment:
#   XINYONG_HOME                   state root (default: <repo>/.local)
#   XINYONG_KAFKA_DIR              the cluster's folder (default: $XINYONG_HOME/kafka)
#   XINYONG_KAFKA_BROKERS          nodes (default: as last started from this folder, else 1)
#   XINYONG_KAFKA_PORT             CLIENT listener of node 1 (default 9092)
#   XINYONG_KAFKA_CONTROLLER_PORT  KRaft controller listener (default port+1; one node)
#   XINYONG_KAFKA_BROKER_PORT      inter-broker listener (default port+2; one node)
#   XINYONG_KAFKA_TLS_PORT         CLIENT_TLS listener (default port+3; one node)
#   XINYONG_KAFKA_HEAP_OPTS        JVM heap flags per node (default "-Xms256m -Xmx1g" for
#                                  one node, "-Xms256m -Xmx512m" each for several)
#   XINYONG_KAFKA_JVM_OPTS         the other JVM flags (compiler, collector) of every node
# For a container (`run`):
#   XINYONG_KAFKA_LIBS             the broker's jars already there (no Maven)
#   XINYONG_KAFKA_LISTEN_HOST      address the listeners bind (default 127.0.0.1)
#   XINYONG_KAFKA_ADVERTISED_HOST  host clients are told for CLIENT and BROKER
#   XINYONG_KAFKA_TLS_ADVERTISED   host:port clients are told for CLIENT_TLS
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname -- "$script_dir")
XINYONG_HOME=${XINYONG_HOME:-$repo_root/.local}

kafka_home=${XINYONG_KAFKA_DIR:-$XINYONG_HOME/kafka}
# The jars are the same for every cluster of the checkout: fetched once.
libs_dir=${XINYONG_KAFKA_LIBS:-$XINYONG_HOME/kafka/libs}
lock_file=$kafka_home/.lock
# How many nodes this folder's cluster had when it was last started.
brokers_file=$kafka_home/brokers
pom=$script_dir/kafka/pom.xml
# Holds the pom's checksum: editing the pom (e.g. a version bump) refetches,
# an unchanged pom never starts Maven (its startup alone costs seconds).
libs_marker=$libs_dir/.fetched

base_port=${XINYONG_KAFKA_PORT:-9092}
# Node i's ports start at base_port + node_step*(i-1): four each, room left between.
node_step=10
listen_host=${XINYONG_KAFKA_LISTEN_HOST:-127.0.0.1}
advertised_host=${XINYONG_KAFKA_ADVERTISED_HOST:-127.0.0.1}
secrets_dir=$XINYONG_HOME/secrets
tls_dir=$kafka_home/tls

stop_timeout_s=30

log() { printf 'kafka: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=deploy/processes.sh
source "$script_dir/processes.sh"

recorded_brokers() {
    local n=
    [[ -f $brokers_file ]] && n=$(<"$brokers_file")
    if [[ $n =~ ^[1-9]$ ]]; then printf '%s\n' "$n"; else printf '1\n'; fi
}

brokers=${XINYONG_KAFKA_BROKERS:-$(recorded_brokers)}
[[ $brokers =~ ^[1-9]$ ]] || die "XINYONG_KAFKA_BROKERS must be 1 to 9, not '$brokers'"
# Replication as the cluster allows: three copies, two of them in sync for a write, once
# there are three nodes (the same as deploy/k8s); one node has nothing to replicate to.
replication=$((brokers < 3 ? brokers : 3))
min_insync=$((replication >= 3 ? 2 : 1))
if ((brokers == 1)); then
    heap_opts=${XINYONG_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
    # After an unclean stop the node checks its log segments first: on a loaded 2-core
    # machine with a few hundred partitions that took more than a minute.
    start_timeout_s=180
else
    # Three JVMs beside PostgreSQL, the services and the test suite on a 2-core machine.
    heap_opts=${XINYONG_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
    # A node killed with SIGKILL checks every log segment before it serves again: minutes
    # on a loaded machine.
    start_timeout_s=300
fi

# G1 with a pause target, as the systemd unit runs it. C1 only or Serial GC were measured
# and not kept (docs/performance.md, "Kafka's share"): C1 only saves the JIT's CPU of a
# broker's first minutes and costs more per request afterwards; Serial paused 85 ms.
jvm_opts=${XINYONG_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20}

# The folder of a cluster shape: one node keeps the historical layout.
shape_dir() { # <nodes>
    if (($1 == 1)); then printf '%s\n' "$kafka_home"; else printf '%s\n' "$kafka_home/nodes-$1"; fi
}

client_port_of() { # <node>
    printf '%s\n' $((base_port + node_step * ($1 - 1)))
}

controller_port_of() { # <node>
    if ((brokers == 1)); then
        printf '%s\n' "${XINYONG_KAFKA_CONTROLLER_PORT:-$((base_port + 1))}"
    else
        printf '%s\n' $(($(client_port_of "$1") + 1))
    fi
}

# Sets the globals that describe node $1 of the current shape.
select_node() {
    node_id=$1
    port=$(client_port_of "$node_id")
    controller_port=$(controller_port_of "$node_id")
    if ((brokers == 1)); then
        node_dir=$kafka_home
        broker_port=${XINYONG_KAFKA_BROKER_PORT:-$((port + 2))}
        tls_port=${XINYONG_KAFKA_TLS_PORT:-$((port + 3))}
    else
        node_dir=$(shape_dir "$brokers")/$node_id
        broker_port=$((port + 2))
        tls_port=$((port + 3))
    fi
    tls_advertised=${XINYONG_KAFKA_TLS_ADVERTISED:-$advertised_host:$tls_port}
    conf_dir=$node_dir/config
    data_dir=$node_dir/data
    pid_file=$node_dir/kafka.pid
    log_file=$node_dir/kafka.log
    server_props=$conf_dir/server.properties
    # The configuration the running broker was started with.
    running_props=$conf_dir/server.properties.running
    broker_log4j=$conf_dir/log4j2.xml
    tools_log4j=$conf_dir/tools-log4j2.xml
}

quorum_voters() {
    local i voters=()
    for ((i = 1; i <= brokers; i++)); do
        voters+=("$i@127.0.0.1:$(controller_port_of "$i")")
    done
    local IFS=,
    printf '%s\n' "${voters[*]}"
}

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
    local tmp=$libs_dir.tmp
    mkdir -p -- "$(dirname -- "$libs_dir")"
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

# The configuration of the selected node (select_node).
write_config() {
    mkdir -p -- "$conf_dir" "$data_dir"
    chmod 700 -- "$conf_dir"
    bash "$script_dir/tls.sh" "$tls_dir" "${tls_advertised%:*}" 127.0.0.1 localhost
    local broker_pw plain_jaas scram_jaas threads
    broker_pw=$(secret kafka-broker.password)
    secret kafka-admin.password >/dev/null
    plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"$broker_pw\" user_broker=\"$broker_pw\";"
    scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
    # Sized for a 2-core machine rather than a production broker; several nodes share it.
    threads=$((brokers == 1 ? 4 : 2))
    # Regenerated every start so port changes in the environment take effect. It holds the
    # broker's password: readable by its owner only.
    (umask 077 && cat >"$server_props" <<EOF
# Generated by deploy/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=${node_id}
controller.quorum.voters=$(quorum_voters)
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

# ${brokers} node(s): replication factor ${replication}, ${min_insync} in sync for a write.
# One node: every replication factor / ISR must be 1 or internal topics (consumer
# offsets, transactions, share groups) can never be created.
default.replication.factor=${replication}
min.insync.replicas=${min_insync}
offsets.topic.replication.factor=${replication}
transaction.state.log.replication.factor=${replication}
transaction.state.log.min.isr=${min_insync}
share.coordinator.state.topic.replication.factor=${replication}
share.coordinator.state.topic.min.isr=${min_insync}
# An out-of-sync replica never becomes leader: that would lose acknowledged records.
unclean.leader.election.enable=false

num.partitions=3
# Topics are part of the application's contract: a typo must fail, not
# silently create a new topic.
auto.create.topics.enable=false
# Tests start consumers and expect assignment immediately.
group.initial.rebalance.delay.ms=0
# A node started again after a SIGKILL registers with the quorum only once the controller
# takes it (its old incarnation's session expired) and it has caught up; on a loaded 2-core
# machine that took more than Kafka's 60 s, after which the node exits by itself (seen in
# CI: "unable to register", the three-node test's restart). It may take as long as this
# script waits for it.
initial.broker.registration.timeout.ms=$((start_timeout_s * 1000))
# The default 50 offsets partitions make the first consumer group on a fresh
# node wait several seconds; 2 cores do not need that many.
offsets.topic.num.partitions=10

log.retention.hours=168
log.retention.check.interval.ms=300000
num.network.threads=2
num.io.threads=${threads}
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

# The cluster id every node of a shape is formatted with (several nodes must share one):
# the one the other nodes have, or a new one when none has any data (all wiped).
cluster_id() {
    local f id
    f=$(shape_dir "$brokers")/cluster.id
    if ((brokers > 1)) && [[ -s $f ]] &&
        compgen -G "$(shape_dir "$brokers")/*/data/meta.properties" >/dev/null; then
        tr -d '\n' <"$f"
        return
    fi
    id=$(run_tool kafka.tools.StorageTool random-uuid)
    if ((brokers > 1)); then
        mkdir -p -- "$(dirname -- "$f")"
        printf '%s\n' "$id" >"$f"
    fi
    printf '%s\n' "$id"
}

# The first users are made with the storage: the broker itself and the bootstrap
# administrator, who then creates every other user and ACL (deploy/kafka_admin.py). A
# storage formatted before security was on has no SCRAM users: `xinyong up` adds them
# over the BROKER listener (deploy/stack.py::ensure_kafka_admin).
format_storage() {
    [[ -f $data_dir/meta.properties ]] && return
    log "formatting storage of node $node_id in $data_dir"
    run_tool kafka.tools.StorageTool format -t "$(cluster_id)" -c "$server_props" \
        --add-scram "SCRAM-SHA-512=[name=broker,password=$(secret kafka-broker.password)]" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$(secret kafka-admin.password)]" \
        >/dev/null
}

# Prints the pid of the broker whose pid file is $1 if it is alive. Its command line must
# name that node's own configuration: a stale pid file whose number now belongs to another
# process (another checkout's broker included) is not taken for it.
pid_of() { # <pid file> <server.properties>
    local pid
    pid=$(live_pid "$1") || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$2" || return 1
    printf '%s\n' "$pid"
}

running_pid() { pid_of "$pid_file" "$server_props"; }


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
        # The cause is often logged long before the shutdown that fills the last lines.
        log "errors of this start in $log_file:"
        tail -c "+$((${log_start_bytes:-0} + 1))" -- "$log_file" | grep -E '(ERROR|FATAL)' |
            head -n 20 >&2 || true
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
        alive "$pid" || fail_with_log "node $node_id exited during startup"
        if port_open "$port" && broker_answers; then
            return 0
        fi
        sleep 0.5
    done
    fail_with_log "node $node_id not answering on 127.0.0.1:$port after ${start_timeout_s}s"
}

# Every node's pid file and configuration under this folder, whatever its shape:
# "<pid file> <server.properties>" lines.
every_node() {
    local f
    for f in "$kafka_home/kafka.pid" "$kafka_home"/nodes-*/*/kafka.pid; do
        [[ -e $f ]] || continue
        printf '%s %s\n' "$f" "$(dirname -- "$f")/config/server.properties"
    done
}

# Nodes of another shape than the one asked for hold its ports: stopped first.
stop_other_shapes() {
    local pid_path props pid own pids=()
    own=$(shape_dir "$brokers")
    while read -r pid_path props; do
        case $pid_path in
        "$own/kafka.pid" | "$own"/[0-9]/kafka.pid) continue ;;
        esac
        if pid=$(pid_of "$pid_path" "$props"); then
            pids+=("$pid")
        fi
    done < <(every_node)
    if ((${#pids[@]})); then
        log "the cluster of another shape in $kafka_home runs: stopping it (its data is kept)"
        stop_pid "${pids[@]}"
    fi
}

launch() {
    local -a heap jvm
    read -r -a heap <<<"$heap_opts"
    read -r -a jvm <<<"$jvm_opts"
    local p
    for p in "$port" "$controller_port" "$broker_port" "$tls_port"; do
        if port_open "$p"; then
            die "port $p (node $node_id) is already in use by another process"
        fi
    done
    # The log is appended across restarts; keep one old generation so a
    # long-lived dev machine does not fill its disk.
    if [[ -f $log_file ]] && (($(stat -c %s -- "$log_file") > 50 * 1024 * 1024)); then
        mv -f -- "$log_file" "$log_file.1"
    fi
    log "starting node $node_id on 127.0.0.1:$port (log: $log_file)"
    # Where this start's lines begin: a failure names the errors of this start only.
    log_start_bytes=$(stat -c %s -- "$log_file" 2>/dev/null || echo 0)
    rm -f -- "$pid_file"
    # setsid: own session, so a Ctrl-C or the caller's process group ending
    # does not take the broker down with it. The inner shell writes its own
    # pid and then execs java, so the pid file names the JVM itself.
    # shellcheck disable=SC2016 # $$/$1/$@ belong to the inner shell
    nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pid_file" \
        java "${heap[@]}" -server "${jvm[@]}" -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$broker_log4j" \
        -cp "$libs_dir/*" kafka.Kafka "$server_props" \
        >>"$log_file" 2>&1 </dev/null 9>&- &
    local deadline=$((SECONDS + 5))
    until running_pid >/dev/null; do
        ((SECONDS < deadline)) || fail_with_log "node $node_id did not start"
        sleep 0.1
    done
}

cmd_start() {
    mkdir -p -- "$kafka_home"
    # Serialises concurrent starts (parallel test runners); fd 9 is closed
    # for the broker below so it does not hold the lock forever.
    exec 9>"$lock_file"
    flock 9

    stop_other_shapes
    printf '%s\n' "$brokers" >"$brokers_file"

    local i pid to_start=()
    for ((i = 1; i <= brokers; i++)); do
        select_node "$i"
        if pid=$(running_pid); then
            # A broker started from an older configuration (say, before its
            # listeners were authenticated) is restarted with the current one.
            write_config
            if cmp -s -- "$server_props" "$running_props"; then
                continue
            fi
            log "configuration of node $i changed: restarting it"
            stop_pid "$pid"
        fi
        to_start+=("$i")
    done

    if ((${#to_start[@]})); then
        ensure_tools
        check_java
        fetch_libs
    fi
    # Every missing node is launched before any is waited for: a quorum of several
    # needs most of its voters up before any of them serves.
    for i in "${to_start[@]}"; do
        select_node "$i"
        write_config
        format_storage
        cp -p -- "$server_props" "$running_props"
        launch
    done
    for ((i = 1; i <= brokers; i++)); do
        select_node "$i"
        pid=$(running_pid) || fail_with_log "node $i is not running"
        # Also covers a start racing another one still warming up.
        if [[ " ${to_start[*]} " == *" $i "* ]] || ! port_open "$port"; then
            wait_ready "$pid"
            log "$(node_name) running (pid $pid, 127.0.0.1:$port)"
        else
            log "$(node_name) already running (pid $pid, 127.0.0.1:$port)"
        fi
    done
}

node_name() {
    if ((brokers == 1)); then printf 'broker\n'; else printf 'node %s\n' "$node_id"; fi
}

cmd_stop() {
    mkdir -p -- "$kafka_home"
    exec 9>"$lock_file"
    flock 9

    local pid_path props pid pids=()
    while read -r pid_path props; do
        if pid=$(pid_of "$pid_path" "$props"); then
            pids+=("$pid")
        else
            rm -f -- "$pid_path"
        fi
    done < <(every_node)
    if ((${#pids[@]} == 0)); then
        log "not running"
        return 0
    fi
    # All at once: the last node of a quorum stopped alone would wait for a controller
    # that is gone before its controlled shutdown gives up.
    stop_pid "${pids[@]}"
    while read -r pid_path props; do
        pid_of "$pid_path" "$props" >/dev/null || rm -f -- "$pid_path"
    done < <(every_node)
}

stop_pid() {
    log "stopping pid $*"
    stop_processes TERM KILL "$stop_timeout_s" "$@"
    log "stopped"
}

cmd_status() {
    local i pid up=0
    for ((i = 1; i <= brokers; i++)); do
        select_node "$i"
        if pid=$(running_pid); then
            up=$((up + 1))
            if ((brokers == 1)); then
                echo "kafka: running (pid $pid, 127.0.0.1:$port)"
            else
                echo "kafka: node $i running (pid $pid, 127.0.0.1:$port)"
            fi
        elif ((brokers == 1)); then
            echo "kafka: stopped"
        else
            echo "kafka: node $i stopped (127.0.0.1:$port)"
        fi
    done
    ((up == brokers)) && return 0
    ((up == 0)) && return 3
    return 1
}

# In the foreground, for a container: the same configuration and first users as `start`
# (one node).
cmd_run() {
    brokers=1
    replication=1
    min_insync=1
    select_node 1
    mkdir -p -- "$kafka_home"
    [[ -d $libs_dir ]] || fetch_libs
    write_config
    format_storage
    local -a heap jvm
    read -r -a heap <<<"$heap_opts"
    read -r -a jvm <<<"$jvm_opts"
    exec java "${heap[@]}" -server "${jvm[@]}" -Djava.awt.headless=true \
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
