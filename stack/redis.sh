#!/usr/bin/env bash
# Runs Debian's redis-server on 127.0.0.1:6379 and [::1]:6379 (the default URL names localhost,
# which a stock Debian or Docker /etc/hosts resolves to ::1 first) for local runs and tests:
# daemonized, durable the way production must be (AOF, fsync every second, noeviction: the
# applied offsets and the open buckets are state, not cache), pid/log/AOF in .stack/redis/.
# Installs redis-server with apt if missing. REDIS_PORT and REDIS_STATE_DIR override the port
# and that directory, so tests can run a private server of their own (and stop it) beside the
# shared one; REDIS_ARGS adds server arguments (e.g. "--replicaof 127.0.0.1 6390" for a replica).
#
#   bash stack/redis.sh start   # idempotent; returns once PING answers
#   bash stack/redis.sh stop    # stops the server this checkout started, waits for it to exit
#   bash stack/redis.sh status  # exit 0 when PING answers
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${REDIS_STATE_DIR:-$ROOT/.stack/redis}"
PID_FILE="$STATE/redis.pid"
PORT="${REDIS_PORT:-6379}"
TIMEOUT=20

log() { echo "redis: $*" >&2; }
# shellcheck source=stack/process.sh
source "$ROOT/stack/process.sh"

answers() { [[ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" == "PONG" ]]; }

our_pid() {
    # Prints the pid from the pid file if that process is still a redis-server.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]] || return 1
    echo "$pid"
}

ensure_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    log "installing redis-server with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends redis-server
}

start() {
    ensure_installed
    if answers; then
        log "already answering on 127.0.0.1:$PORT"
        return 0
    fi
    mkdir -p "$STATE"
    rm -f "$PID_FILE"
    # No RDB snapshots: the AOF alone restores every acknowledged write (but the last second's).
    # shellcheck disable=SC2086 # REDIS_ARGS is a list of arguments
    # "-::1": an optional address, skipped where IPv6 is off.
    redis-server --bind 127.0.0.1 -::1 --port "$PORT" --daemonize yes \
        --pidfile "$PID_FILE" --logfile "$STATE/redis.log" --dir "$STATE" \
        --save "" --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
        ${REDIS_ARGS:-}
    local deadline=$((SECONDS + TIMEOUT))
    until answers; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$STATE/redis.log" >&2 || true
            log "did not answer within ${TIMEOUT}s"
            exit 1
        fi
        sleep 0.2
    done
    log "ready on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        if command -v redis-cli >/dev/null && answers; then
            log "a server answers on 127.0.0.1:$PORT but this checkout did not start it; left running"
        else
            log "not running"
        fi
        return 0
    fi
    log "stopping (pid $pid)"
    stop_pid "$pid" "$TIMEOUT"
    rm -f "$PID_FILE"
    log "stopped"
}

status() {
    if command -v redis-cli >/dev/null && answers; then
        log "answering on 127.0.0.1:$PORT"
    else
        log "not running"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
