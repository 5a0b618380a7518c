#!/usr/bin/env bash
# The whole pipeline on the local stack: generator, 2 worker processes and the aggregator in
# the background (logs in .stack/run/), live metric events in the foreground: a table on a
# terminal, JSON lines when piped. Ctrl-C stops all of it, even when the output is gone
# (`make run 2>&1 | tee run.log`: the same Ctrl-C ends tee). Expects the stack to be up and
# `loginmetrics` on PATH (make run does both first). RUN_DEMO_LOGS overrides the log directory,
# RUN_DEMO_HTTP_PORT the port of the live page and HTTP API (8080, on 127.0.0.1 only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGS="${RUN_DEMO_LOGS:-$ROOT/.stack/run}"
HTTP_PORT="${RUN_DEMO_HTTP_PORT:-8080}"
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

# A message on stderr that cannot fail: the reader of our output may be gone.
say() { echo "run-demo: $*" >&2 || true; }

stop_all() {
    trap - EXIT INT TERM
    # Stopping the parts must not depend on the output: with the pipe's reader gone, a write
    # would kill this script (SIGPIPE) before it stopped them, and they would run on.
    trap '' PIPE
    say "stopping"
    local pgid
    for pgid in "${groups[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
    local deadline=$((SECONDS + STOP_TIMEOUT))
    for pgid in "${groups[@]}"; do
        while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    wait || true
    say "stopped"
}
trap stop_all EXIT
# Ctrl-C is how a demo ends: a clean stop, not a failure.
trap 'exit 0' INT TERM

mkdir -p "$LOGS"
start_background worker loginmetrics worker --processes 2
start_background aggregator loginmetrics aggregate --http-port "$HTTP_PORT" --http-address 127.0.0.1
start_background generator loginmetrics generate
say "generator, 2 workers and aggregator running (logs in $LOGS)."
say "a metric event appears every emit interval (10 s by default); Ctrl-C stops."
say "live page: http://127.0.0.1:$HTTP_PORT/ (API: http://127.0.0.1:$HTTP_PORT/api/v1/status)"
if [[ -t 1 ]]; then
    loginmetrics print --topic metric-event --table
else
    loginmetrics print --topic metric-event
fi
