#!/usr/bin/env bash
# Group-commit window sweep: how --commit-delay-us trades latency for
# throughput. For each delay, a fresh meterhub (Release, temp DB on the real
# disk) takes single-reading POSTs from wrk at 50 connections and at 1
# connection; the server's shutdown line gives commits and readings, hence
# the mean group size. Loopback only; bounded in time (~20 s per delay).
#
#   bench/commit_window.sh [DELAYS_US...]     (default: 0 250 1000 4000)
# Needs the Release build of bench/run.sh (build-bench/) and wrk.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${METERHUB_BENCH_BIN:-$ROOT/build-bench/meterhub}
LUA=$ROOT/bench/post_readings.lua
[[ -x $BIN ]] || { echo "no $BIN: run bench/run.sh (or make bench) first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
DELAYS=("$@")
[[ ${#DELAYS[@]} -gt 0 ]] || DELAYS=(0 250 1000 4000)
TMP=$(mktemp -d /tmp/meterhub-window.XXXXXX)
PID=""
cleanup() { [[ -n $PID ]] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

echo "| --commit-delay-us | conns | requests/s | p50 / p99 (ms) | commits | readings per commit |"
echo "|---|---|---|---|---|---|"
for d in "${DELAYS[@]}"; do
  for c in 50 1; do
    rm -rf "$TMP/db"; mkdir -p "$TMP/db"
    # As bench/run.sh: an admin token on every POST, meters made by their first reading.
    METERHUB_TOKEN=$("$BIN" token create --scope admin --name bench --db "$TMP/db/m.db" 2>/dev/null)
    export METERHUB_TOKEN
    "$BIN" --listen 127.0.0.1:0 --db "$TMP/db/m.db" --commit-delay-us "$d" --auto-register \
      --ip-rate 0 --device-rate 0 --max-connections-per-ip 0 >"$TMP/log" 2>&1 &
    PID=$!
    port=""
    for _ in $(seq 100); do
      port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$TMP/log" | grep -o '[0-9]*$' || true)
      [[ -n $port ]] && break
      sleep 0.1
    done
    [[ -n $port ]] || { cat "$TMP/log" >&2; exit 1; }
    threads=2; [[ $c == 1 ]] && threads=1
    wrk -t$threads -c$c -d8s --latency -s "$LUA" "http://127.0.0.1:$port" -- meterhub cw 0 100 1 \
      >"$TMP/wrk" 2>&1
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk")
    p50=$(awk '$1=="50%" {print $2}' "$TMP/wrk")
    p99=$(awk '$1=="99%" {print $2}' "$TMP/wrk")
    read -r commits readings < <(sed -n 's/.*stopped cleanly (\([0-9]*\) commits, \([0-9]*\) readings.*/\1 \2/p' "$TMP/log")
    per=$(awk -v r="$readings" -v c="$commits" 'BEGIN { printf "%.1f", (c > 0 ? r / c : 0) }')
    echo "| $d | $c | $rps | $p50 / $p99 | $commits | $per |"
  done
done
