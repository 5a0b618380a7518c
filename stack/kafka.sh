#!/usr/bin/env bash
# Runs local Apache Kafka (KRaft, combined broker + controller nodes) from the jars
# stack/pom.xml pins. By default one node (id 1): PLAINTEXT on 127.0.0.1:9092 and [::1]:9092,
# controller on 127.0.0.1:9093, state (data, logs, pid, generated config) in .stack/kafka/.
# Both loopback families, because the default bootstrap is localhost:9092 and a stock Debian or
# Docker /etc/hosts resolves localhost to ::1 first: a broker on 127.0.0.1 alone makes every
# client's first connection fail (IPv6 off on this machine: 127.0.0.1 alone).
# KAFKA_NODES=3 runs a cluster of three nodes (ids 1..3, a 3-voter controller quorum): node i
# listens on KAFKA_PORT+i-1 and controller port KAFKA_CONTROLLER_PORT+i-1 (default: the ports
# right after the nodes' own, 9095..9097), with its state in $KAFKA_STATE_DIR/node-<i>/.
# KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_STATE_DIR override these, so tests can run a
# private broker or cluster of their own (and stop it) beside the shared one. A cluster's id and
# controller quorum are chosen once, in $KAFKA_STATE_DIR/quorum.env.
# KAFKA_SASL=1 makes the listener on KAFKA_PORT SASL_PLAINTEXT with SCRAM-SHA-512 users, between
# the nodes too (the controller listener stays PLAINTEXT on 127.0.0.1). The nodes log in as user
# admin, whose password is generated once into $KAFKA_STATE_DIR/sasl-admin.properties (a client
# config for Kafka's tools). KAFKA_SASL_USERS="name:password ..." adds client users (letters,
# digits, . _ -): at format time, and through the running broker when the list changes (users
# are added or given a new password, never removed).
#
#   bash stack/kafka.sh start   # idempotent; returns once every node answers requests
#   bash stack/kafka.sh stop    # stops the nodes this checkout started, waits for them to exit
#   bash stack/kafka.sh status  # exit 0 when every node answers
#   bash stack/kafka.sh stop --node 2   # one node of a cluster (start and status too)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIBS="$ROOT/stack/kafka-libs"
BASE_STATE="${KAFKA_STATE_DIR:-$ROOT/.stack/kafka}"
BASE_PORT="${KAFKA_PORT:-9092}"
QUORUM_FILE="$BASE_STATE/quorum.env"

usage() { echo "usage: [KAFKA_NODES=N] $0 {start|stop|status} [--node I]" >&2; exit 2; }
ACTION="${1:-}"
ONLY_NODE=""
if [[ "${2:-}" == --node ]]; then
    [[ "${3:-}" =~ ^[1-9]$ && $# -eq 3 ]] || usage
    ONLY_NODE="$3"
elif (($# > 1)); then
    usage
fi
if [[ -n "${KAFKA_NODES:-}" ]]; then
    NODES="$KAFKA_NODES"
elif [[ -n "$ONLY_NODE" ]]; then
    # `stop --node 2` alone: the cluster's size is what its state directory holds.
    NODES="$({ compgen -G "$BASE_STATE/node-*" || true; } | wc -l)"
    ((NODES > 0)) || NODES=1
else
    NODES=1
fi
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "kafka: KAFKA_NODES must be 1..9, not '$NODES'" >&2; exit 2; }
if [[ -n "$ONLY_NODE" ]] && ((NODES < 2 || ONLY_NODE > NODES)); then
    echo "kafka: --node $ONLY_NODE: no such node in $BASE_STATE (a cluster of KAFKA_NODES=$NODES)" >&2
    exit 2
fi
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
QUORUMLESS_STOP_TIMEOUT=5
if ((NODES == 1)); then
    BASE_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
    START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
    HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
else
    BASE_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((BASE_PORT + NODES))}"
    # Three JVMs start at once on a small machine.
    START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
    # Three nodes share a 2-core machine with the pipeline: a small heap each.
    HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms192m -Xmx384m}"
fi
SASL="${KAFKA_SASL:-0}"
[[ "$SASL" =~ ^[01]$ ]] || { echo "kafka: KAFKA_SASL must be 0 or 1, not '$SASL'" >&2; exit 2; }
SASL_ADMIN=admin
SASL_ADMIN_CONFIG="$BASE_STATE/sasl-admin.properties"
SASL_USERS_APPLIED="$BASE_STATE/sasl-users.sha256"
read -ra SASL_USERS <<<"${KAFKA_SASL_USERS:-}"
for entry in "${SASL_USERS[@]}"; do
    # The storage and config tools parse [name=...,password=...]: no ',', '=', ']' or quotes.
    name="${entry%%:*}"
    if [[ ! "$entry" =~ ^[[:alnum:]._-]+:[[:alnum:]._-]+$ || "$name" == "$SASL_ADMIN" ]]; then
        echo "kafka: KAFKA_SASL_USERS: '$name:...' is not name:password with letters," \
            "digits, . _ - (and not the nodes' own user $SASL_ADMIN)" >&2
        exit 2
    fi
done

log() { echo "kafka${NODE_LABEL:-}: $*" >&2; }
# shellcheck source=stack/process.sh
source "$ROOT/stack/process.sh"

# select_node I: points STATE, PORT, CONTROLLER_PORT and the file names at node I.
select_node() {
    NODE="$1"
    if ((NODES == 1)); then
        STATE="$BASE_STATE"
        NODE_LABEL=""
    else
        STATE="$BASE_STATE/node-$NODE"
        NODE_LABEL=" node $NODE"
    fi
    PORT=$((BASE_PORT + NODE - 1))
    CONTROLLER_PORT=$((BASE_CONTROLLER_PORT + NODE - 1))
    PID_FILE="$STATE/kafka.pid"
    CONFIG="$STATE/server.properties"
    LOG4J_CONFIG="$STATE/log4j2.xml"
}

# host:port of every node's controller listener, comma-separated.
controller_endpoints() {
    local i endpoints=()
    for ((i = 0; i < NODES; i++)); do endpoints+=("127.0.0.1:$((BASE_CONTROLLER_PORT + i))"); done
    (IFS=,; echo "${endpoints[*]}")
}

# A broker "answers" when it replies to an ApiVersions v0 request (correlation id 1): an open
# port alone does not mean the broker has caught up with its controller and serves requests.
answers() {
    local reply
    # shellcheck disable=SC2016  # expanded by the inner bash
    reply="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05probe" >&3
        head -c 8 <&3 | od -An -tx1 -w8' _ "$PORT" 2>/dev/null)" || return 1
    # Reply: int32 size, then int32 correlation id 1.
    [[ "$reply" =~ ^(\ [0-9a-f]{2}){4}\ 00\ 00\ 00\ 01$ ]]
}

our_pid() {
    # Prints the pid from the pid file if that process is still our broker.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONFIG" || return 1
    echo "$pid"
}

# (Re)fetches the jars when stack/pom.xml changed since they were fetched; a stale jar left
# beside a new one could shadow it on the wildcard classpath, so the folder starts empty.
ensure_jars() {
    command -v java >/dev/null || { log "java (17+) is required"; exit 1; }
    local pom_sum
    pom_sum="$(sha256sum "$ROOT/stack/pom.xml" | cut -d' ' -f1)"
    if [[ "$(cat "$LIBS/.pom.sha256" 2>/dev/null)" != "$pom_sum" ]]; then
        command -v mvn >/dev/null || { log "mvn is required to fetch the Kafka jars"; exit 1; }
        log "fetching the Kafka jars pinned in stack/pom.xml"
        rm -rf "$LIBS"
        (cd "$ROOT/stack" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
            -DoutputDirectory=kafka-libs -DincludeScope=runtime)
        echo "$pom_sum" >"$LIBS/.pom.sha256"
    fi
    # Kafka logs through the SLF4J 1.7 API, which needs log4j-slf4j-impl (not the 2.x binding).
    if ! compgen -G "$LIBS/log4j-slf4j-impl-*.jar" >/dev/null; then
        log "warning: no log4j-slf4j-impl jar in $LIBS; the broker will log nothing"
    fi
}

# Whether ::1 is configured on this machine (no IPv6 at all: Kafka could not bind it).
ipv6_loopback() {
    grep -qs '^0\{31\}1 ' /proc/net/if_inet6
}

write_config() {
    mkdir -p "$STATE/data" "$STATE/logs"
    local client=PLAINTEXT
    if ((SASL)); then
        client=SASL_PLAINTEXT
        : >"$CONFIG"
        chmod 600 "$CONFIG"  # it holds the admin password
    fi
    # The same port on ::1 needs a listener name of its own (Kafka allows one port twice only
    # for an IPv4 and an IPv6 listener); it advertises [::1], so a client that came in over
    # IPv6 stays on it. The nodes talk to each other over the IPv4 listener.
    local listeners="$client://127.0.0.1:$PORT" advertised="$client://127.0.0.1:$PORT"
    local protocols="CONTROLLER:PLAINTEXT,$client:$client" client6=""
    if ipv6_loopback; then
        client6="${client}_IPV6"
        listeners+=",$client6://[::1]:$PORT"
        advertised+=",$client6://[::1]:$PORT"
        protocols+=",$client6:$client"
    fi
    # Internal topics (consumer offsets, transactions) get up to 3 replicas and survive the loss
    # of one node; a single node keeps one replica, and consumer groups start at once.
    local replicas=$((NODES < 3 ? NODES : 3))
    local min_isr=$((replicas > 1 ? replicas - 1 : 1))
    cat >"$CONFIG" <<PROPS
# Generated by stack/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=$NODE
controller.quorum.bootstrap.servers=$(controller_endpoints)
listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$advertised,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=$client
listener.security.protocol.map=$protocols
log.dirs=$STATE/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=$((NODES == 1 ? 4 : 2))
log.retention.hours=24
log.segment.bytes=104857600
PROPS
    if ((SASL)); then
        local jaas
        jaas="$(scram_jaas "$SASL_ADMIN" "$SASL_ADMIN_PASSWORD")"
        cat >>"$CONFIG" <<PROPS
# KAFKA_SASL=1: clients and the other nodes log in with SCRAM-SHA-512; the users live in the
# cluster's metadata (a KRaft controller listener cannot use SCRAM, so it stays PLAINTEXT).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$jaas
PROPS
        if [[ -n "$client6" ]]; then
            echo "listener.name.${client6,,}.scram-sha-512.sasl.jaas.config=$jaas" >>"$CONFIG"
        fi
    fi
    cat >"$LOG4J_CONFIG" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by stack/kafka.sh: the broker logs to a file, never to the terminal. -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="$STATE/logs/server.log"
                 filePattern="$STATE/logs/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
XML
}

# The JVM command line shared by the storage tool and the broker.
java_cmd() {
    local heap
    read -ra heap <<<"$HEAP_OPTS"
    JAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true "-Dlog4j2.configurationFile=$LOG4J_CONFIG"
        "-Dkafka.logs.dir=$STATE/logs" -cp "$LIBS/*")
}

# A Kafka Uuid (16 random bytes, URL-safe base64 without padding); Kafka avoids a leading "-".
kafka_uuid() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$id" != -* ]] && break
    done
    echo "$id"
}

# Sets CLUSTER_ID and INITIAL_CONTROLLERS ("id@host:port:directory-id,..."), the same for every
# node of the cluster: chosen once, kept in $QUORUM_FILE for nodes formatted later.
quorum_identity() {
    if [[ ! -f "$QUORUM_FILE" ]]; then
        mkdir -p "$BASE_STATE"
        local i voters=()
        for ((i = 1; i <= NODES; i++)); do
            voters+=("$i@127.0.0.1:$((BASE_CONTROLLER_PORT + i - 1)):$(kafka_uuid)")
        done
        printf 'CLUSTER_ID=%s\nINITIAL_CONTROLLERS=%s\n' "$(kafka_uuid)" \
            "$(IFS=,; echo "${voters[*]}")" >"$QUORUM_FILE.tmp"
        mv "$QUORUM_FILE.tmp" "$QUORUM_FILE"
    fi
    # shellcheck disable=SC1090  # generated above
    source "$QUORUM_FILE"
    local voters
    voters="$(tr ',' '\n' <<<"$INITIAL_CONTROLLERS" | wc -l)"
    if ((voters != NODES)); then
        log "$BASE_STATE holds a cluster of $voters nodes, not $NODES: set KAFKA_NODES=$voters"
        exit 1
    fi
}

# The JAAS line of a SCRAM login as user $1 with password $2.
scram_jaas() {
    local module=org.apache.kafka.common.security.scram.ScramLoginModule
    echo "$module required username=\"$1\" password=\"$2\";"
}

# Sets SASL_ADMIN_PASSWORD, the nodes' own password: chosen once for the cluster and kept in
# $SASL_ADMIN_CONFIG, which Kafka's tools take as --command-config.
sasl_admin() {
    if [[ -f "$STATE/data/meta.properties" && ! -f "$SASL_USERS_APPLIED" ]]; then
        log "$STATE was formatted without KAFKA_SASL=1:" \
            "start it without, or stop it and remove $BASE_STATE"
        exit 1
    fi
    if [[ ! -f "$SASL_ADMIN_CONFIG" ]]; then
        mkdir -p "$BASE_STATE"
        (
            umask 077
            cat >"$SASL_ADMIN_CONFIG.tmp" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$(scram_jaas "$SASL_ADMIN" "$(head -c 18 /dev/urandom | base64 | tr '+/' '._')")
PROPS
        )
        mv "$SASL_ADMIN_CONFIG.tmp" "$SASL_ADMIN_CONFIG"
    fi
    SASL_ADMIN_PASSWORD="$(sed -n 's/^sasl\.jaas\.config=.* password="\(.*\)";$/\1/p' \
        "$SASL_ADMIN_CONFIG")"
}

sasl_users_sum() {
    printf '%s\n' "${SASL_USERS[@]}" | sha256sum | cut -d' ' -f1
}

# Users listed in KAFKA_SASL_USERS since the cluster was formatted (or last started): added, or
# given their new password, through the running broker as admin.
sasl_apply_users() {
    local sum entry
    sum="$(sasl_users_sum)"
    [[ -f "$SASL_ADMIN_CONFIG" ]] || return 0  # not a cluster this checkout formatted
    [[ "$(cat "$SASL_USERS_APPLIED" 2>/dev/null)" == "$sum" ]] && return 0
    # A JVM of its own: it must not write the broker's log files.
    local tool=(java -Xms64m -Xmx256m -cp "$LIBS/*")
    for entry in "${SASL_USERS[@]}"; do
        log "setting the SCRAM-SHA-512 password of user ${entry%%:*}"
        "${tool[@]}" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$BASE_PORT" \
            --command-config "$SASL_ADMIN_CONFIG" --alter --entity-type users \
            --entity-name "${entry%%:*}" --add-config "SCRAM-SHA-512=[password=${entry#*:}]" \
            >>"$STATE/kafka.out" 2>&1 ||
            { log "kafka-configs failed (see $STATE/kafka.out)"; exit 1; }
    done
    (umask 077; echo "$sum" >"$SASL_USERS_APPLIED")
}

format_storage() {
    [[ -f "$STATE/data/meta.properties" ]] && return 0
    log "formatting storage in $STATE/data"
    local quorum
    if ((NODES == 1)); then
        CLUSTER_ID="$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$STATE/kafka.out" | tail -n1)"
        # --standalone: this node alone forms the (dynamic) KRaft controller quorum.
        quorum=(--standalone)
    else
        quorum_identity
        # Every node is a voter from the start: the same list, each with its directory id.
        quorum=(--initial-controllers "$INITIAL_CONTROLLERS")
    fi
    # KAFKA_SASL=1: the users exist from the start, the nodes' own one included (KIP-900).
    local scram=() entry
    if ((SASL)); then
        for entry in "$SASL_ADMIN:$SASL_ADMIN_PASSWORD" "${SASL_USERS[@]}"; do
            scram+=(--add-scram "SCRAM-SHA-512=[name=${entry%%:*},password=${entry#*:}]")
        done
    fi
    "${JAVA[@]}" kafka.tools.StorageTool format --config "$CONFIG" --cluster-id "$CLUSTER_ID" \
        "${quorum[@]}" "${scram[@]}" >>"$STATE/kafka.out" 2>&1 ||
        { show_logs; log "storage format failed"; exit 1; }
    if ((SASL)); then (umask 077; sasl_users_sum >"$SASL_USERS_APPLIED"); fi
}

show_logs() {
    for file in "$STATE/kafka.out" "$STATE/logs/server.log"; do
        [[ -s "$file" ]] || continue
        echo "----- tail of $file" >&2
        tail -n 40 "$file" >&2
    done
}

# Starts the selected node unless it runs already; does not wait for it to answer.
launch() {
    local pid
    if pid="$(our_pid)"; then
        return 0
    fi
    if answers; then
        ((NODES == 1)) && return 0  # someone else's broker: the single-node stack uses it
        log "127.0.0.1:$PORT answers but is not this cluster's node $NODE; stop what runs there"
        exit 1
    fi
    ensure_jars
    if ((SASL)); then sasl_admin; fi
    write_config
    java_cmd
    : >"$STATE/kafka.out"
    format_storage
    log "starting broker (logs: $STATE/logs/server.log)"
    rm -f "$PID_FILE"
    # Own session: a Ctrl-C in the terminal that started the stack does not reach the broker.
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
        "${JAVA[@]}" kafka.Kafka "$CONFIG" </dev/null >>"$STATE/kafka.out" 2>&1 &
    local launcher=$!
    until [[ -s "$PID_FILE" ]]; do
        kill -0 "$launcher" 2>/dev/null || { show_logs; log "broker failed to launch"; exit 1; }
        sleep 0.1
    done
}

# Waits until the selected node answers; on failure stops the nodes being started ($@).
await() {
    local pid
    pid="$(our_pid)" || pid=""
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers; do
        if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
            show_logs
            log "broker exited during startup"
            rm -f "$PID_FILE"
            stop_nodes "$@"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            show_logs
            log "broker did not answer within ${START_TIMEOUT}s; stopping"
            stop_nodes "$@"
            exit 1
        fi
        sleep 0.5
    done
    if [[ -n "$pid" ]]; then
        log "ready on 127.0.0.1:$PORT$(ipv6_loopback && echo " and [::1]:$PORT") (pid $pid)"
    else
        log "already answering on 127.0.0.1:$PORT"
    fi
}

# A quorum needs a majority of its voters up: every node is launched before any is awaited.
start_nodes() {
    local node
    for node in "$@"; do select_node "$node"; launch; done
    for node in "$@"; do select_node "$node"; await "$@"; done
    if ((SASL)); then sasl_apply_users; fi
}

# Stops the nodes one after another, last first, each with a controlled shutdown (its leaders
# move to the nodes still up). Stopped together, a node can lose the controller quorum halfway
# through its shutdown and wait for it for minutes.
stop_nodes() {
    local index node pid
    for ((index = $#; index >= 1; index--)); do
        node="${!index}"
        select_node "$node"
        if ! pid="$(our_pid)"; then
            rm -f "$PID_FILE"
            if answers; then
                log "a broker answers on 127.0.0.1:$PORT but this checkout did not start it; left running"
            else
                log "not running"
            fi
            continue
        fi
        if ((NODES > 1 && $(running_nodes) <= NODES / 2)); then
            # Its shutdown would wait minutes for a controller that can no longer be elected;
            # what it acknowledged is in the page cache and on disk at its next start.
            log "stopping broker (pid $pid); the controller quorum is gone with the other nodes"
            stop_pid "$pid" "$QUORUMLESS_STOP_TIMEOUT"
        else
            log "stopping broker (pid $pid)"
            stop_pid "$pid" "$STOP_TIMEOUT"
        fi
        rm -f "$PID_FILE"
        log "stopped"
    done
}

# How many nodes of the cluster run (started by this checkout); leaves node $NODE selected.
running_nodes() {
    local node="$NODE" i count=0
    for ((i = 1; i <= NODES; i++)); do
        select_node "$i"
        if our_pid >/dev/null; then count=$((count + 1)); fi
    done
    select_node "$node"
    echo "$count"
}

# Exit 0 when every node answers, 1 when one runs without answering yet, 3 when one is down.
status_nodes() {
    local node pid worst=0
    for node in "$@"; do
        select_node "$node"
        pid="$(our_pid)" || pid=""
        if answers; then
            log "answering on 127.0.0.1:$PORT${pid:+ (pid $pid)}"
        elif [[ -n "$pid" ]]; then
            log "process $pid is running but not answering yet"
            ((worst == 3)) || worst=1
        else
            log "not running"
            worst=3
        fi
    done
    return "$worst"
}

if [[ -n "$ONLY_NODE" ]]; then
    SELECTED=("$ONLY_NODE")
else
    mapfile -t SELECTED < <(seq 1 "$NODES")
fi
if ((NODES > 1)) && ((BASE_CONTROLLER_PORT < BASE_PORT + NODES && BASE_PORT < BASE_CONTROLLER_PORT + NODES)); then
    echo "kafka: ports $BASE_PORT.. and controller ports $BASE_CONTROLLER_PORT.. overlap" >&2
    exit 2
fi
case "$ACTION" in
    start) start_nodes "${SELECTED[@]}" ;;
    stop) stop_nodes "${SELECTED[@]}" ;;
    status) status_nodes "${SELECTED[@]}" ;;
    *) usage ;;
esac
