#!/usr/bin/env bash
# The whole pipeline on the local stack: generator, 2 worker processes and the aggregator in
# the background (logs in .stack/run/), live metric events in the foreground: a table on a
# terminal, JSON lines when piped. Ctrl-C stops all of it. Expects the stack to be up and
# `loginmetrics` on PATH (make run does both first).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGS="$ROOT/.stack/run"
STOP_TIMEOUT=20
groups=()

# Each background part gets its own session (setsid), so its process group id is its pid,
# a Ctrl-C in the terminal does not interrupt it mid-batch, and stopping the group reaches
# every process it forked (the worker's children too).
start_background() {
    local name="$1"
    shift
    setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
    groups+=("$!")
}

stop_all() {
    trap - EXIT INT TERM
    echo "run-demo: stopping" >&2
    local pgid
    for pgid in "${groups[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
    local deadline=$((SECONDS + STOP_TIMEOUT))
    for pgid in "${groups[@]}"; do
        while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    wait || true
    echo "run-demo: stopped" >&2
}
trap stop_all EXIT
# Ctrl-C is how a demo ends: a clean stop, not a failure.
trap 'exit 0' INT TERM

mkdir -p "$LOGS"
start_background worker loginmetrics worker --processes 2
start_background aggregator loginmetrics aggregate
start_background generator loginmetrics generate
echo "run-demo: generator, 2 workers and aggregator running (logs in $LOGS)." >&2
echo "run-demo: a metric event appears every emit interval (10 s by default); Ctrl-C stops." >&2
if [[ -t 1 ]]; then
    loginmetrics print --topic metric-event --table
else
    loginmetrics print --topic metric-event
fi
