# Sourced by the stack launchers (which define log()): stopping a process they started.

# stop_pid PID TIMEOUT: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL; returns once it is gone.
stop_pid() {
    local pid="$1" timeout="$2"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "no exit after ${timeout}s; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
}
