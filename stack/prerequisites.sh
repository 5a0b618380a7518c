#!/usr/bin/env bash
# Installs with apt what the local stack and the tests need and this machine lacks (Debian 12,
# Ubuntu 24.04; run as root, or with sudo available). Nothing goes into the system Python:
# the Makefile creates the project virtualenv with the python3-venv installed here.
#
#   bash stack/prerequisites.sh          # python3-venv, Java 17+, Maven, redis-server
#   bash stack/prerequisites.sh test     # and what the tests use: redis-sentinel, promtool,
#                                        # chromium (headless, for the live page's test)
set -euo pipefail

log() { echo "prerequisites: $*" >&2; }

java_ok() {
    command -v java >/dev/null || return 1
    local major
    major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
    [[ "${major%%.*}" -ge 17 ]]
}

missing=()
SYSTEM_PYTHON="${SYSTEM_PYTHON:-/usr/bin/python3}"
"$SYSTEM_PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
java_ok || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
if [[ "${1:-}" == "test" ]]; then
    command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v chromium >/dev/null || missing+=(chromium)
fi
((${#missing[@]} == 0)) && exit 0

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    SUDO=(sudo)
fi
log "installing with apt: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
