#!/usr/bin/env bash
# Start Debian's dockerd when no Docker engine answers. No bridge, no iptables, no forwarding:
# the test stack runs with host networking and talks to loopback only.
# With a file argument, the pid of a dockerd started here is written to it, so the caller can stop it.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    exit 0
fi
LOG=${REELFORGE_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reelforge-deploy}/dockerd.log
mkdir -p "$(dirname "$LOG")"
# setsid: its own session, so a Ctrl-C of make reaches the test, which stops the engine itself;
# images stay cached on disk (/var/lib/docker) for the next run either way.
setsid dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    >"$LOG" 2>&1 < /dev/null &
if [ -n "${1:-}" ]; then echo $! > "$1"; fi
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd started (log: $LOG)"
        exit 0
    fi
    sleep 1  # polling the engine's socket until it answers, at most a minute
done
echo "dockerd did not start; its log:" >&2
tail -30 "$LOG" >&2
exit 1
