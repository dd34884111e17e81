#!/usr/bin/env bash
# meterhub benchmark suite: meterhub and the seed (FastAPI prototype) side by
# side, in one run, on this machine, 127.0.0.1 only. See bench/README.md.
#
#   ./bench/run.sh                # everything: ~5 min of phases + 1-2 min Release build
#
# Environment knobs (defaults in brackets; keep phases short on shared machines):
#   BENCH_BUILD_DIR [build-bench]  Release build dir (meterhub + meterhub-wsprobe)
#   BENCH_SKIP_BUILD [0]           1: use the binaries already in BENCH_BUILD_DIR
#   BENCH_SEED_DIR [/work/shared/peers/seed-fastapi]  the seed (its app/ is copied to a temp dir)
#   BENCH_NO_SEED [0]              1: meterhub only
#   SINGLE_SECS [15]  BATCH_SECS [10]  WS_SECS [10]  IDLE_CONNS [10000]  IDLE_HOLD [3]
#   WS_RATES ["50 200"] (both servers)   WS_RATES_MH_ONLY ["1000"] (meterhub only)
#   BENCH_PERF [0]                 1: perf-profile meterhub during the single-POST phase
#   BENCH_TMPFS [1]                0: skip the diagnostic rerun with meterhub's DB on /dev/shm
#   BENCH_QUIET_PCT [15] BENCH_QUIET_WAIT [60] BENCH_QUIET_BUDGET [240]: wait for a quiet machine
#
# Writes a markdown report to stdout and bench/out/latest.md; raw tool output
# goes to bench/out/raw/. Every server it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
OUT="$BENCH/out"
RAW="$OUT/raw"
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build-bench}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
SEED_DIR=${BENCH_SEED_DIR:-/work/shared/peers/seed-fastapi}
SINGLE_SECS=${SINGLE_SECS:-15}
BATCH_SECS=${BATCH_SECS:-10}
WS_SECS=${WS_SECS:-10}
WS_RATES=${WS_RATES:-50 200}
WS_RATES_MH_ONLY=${WS_RATES_MH_ONLY:-1000}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-3}
NO_SEED=${BENCH_NO_SEED:-0}
PY=/usr/bin/python3

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --------------------------------------------------------------------------
# Cleanup: stop only what this script started, remove temp dirs.
PIDS=()
TMP=$(mktemp -d /tmp/meterhub-bench.XXXXXX)
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  rm -rf "$TMP"
  [[ -z "${TMPFS_DIR:-}" ]] || rm -rf "$TMPFS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Packages (installs only what is missing).
ensure_packages() {
  local pkgs=(wrk sqlite3 python3-fastapi python3-uvicorn python3-sqlalchemy python3-websockets
              python3-httptools python3-uvloop)
  local missing=() p st
  for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$st" == "install ok installed" ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  if [[ "${BENCH_SKIP_BUILD:-0}" == 1 ]]; then
    [[ -x "$BUILD_DIR/meterhub" && -x "$BUILD_DIR/meterhub-wsprobe" ]] ||
      die "BENCH_SKIP_BUILD=1 but $BUILD_DIR has no meterhub / meterhub-wsprobe"
    return
  fi
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  log "building meterhub + meterhub-wsprobe (Release) in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETERHUB_TESTS=OFF \
    "${launcher[@]}" >"$RAW/cmake.log" 2>&1 || { cat "$RAW/cmake.log" >&2; die "cmake failed"; }
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target meterhub meterhub-wsprobe \
    >"$RAW/build.log" 2>&1 || { tail -50 "$RAW/build.log" >&2; die "build failed"; }
  local nwarn
  nwarn=$(grep -c 'warning:' "$RAW/build.log" || true)
  [[ "$nwarn" == 0 ]] || log "note: $nwarn compiler warning(s) in the Release build (see $RAW/build.log)"
}

# --------------------------------------------------------------------------
# Helpers
cpu_s() {  # user+system CPU seconds of a process (all threads)
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
kv() {  # kv FILE PREFIX KEY: value of KEY= on the last line starting with PREFIX
  { grep "^$2" "$1" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$3=//p" | head -1; } || true
}
n0() { [[ "${1:-}" =~ ^[0-9]+$ ]] && echo "$1" || echo 0; }  # integer or 0
fmt() { [[ -n "${1:-}" ]] && printf '%s' "$1" || printf 'n/a'; }
calc() {  # calc EXPR FORMAT: n/a when EXPR has no numbers to work with
  [[ "$1" == *n/a* ]] && { echo n/a; return; }
  awk "BEGIN { v = $1; printf \"$2\", v }" 2>/dev/null || echo n/a
}
free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
now_ms() { $PY -c 'import time; print(int(time.time()*1000))'; }

MH_PID="" MH_PORT=""
start_meterhub() {  # start_meterhub NAME: fresh DB in $TMP/NAME
  local dir="$TMP/$1"
  mkdir -p "$dir"
  # Every POST carries an admin token (checked per request, as in production);
  # the many meters of the load are created by their first reading, and the
  # per-IP/device limits are off (all load comes from one loopback address).
  METERHUB_TOKEN=$("$BUILD_DIR/meterhub" token create --scope admin --name bench --db "$dir/m.db" 2>/dev/null)
  export METERHUB_TOKEN
  "$BUILD_DIR/meterhub" --listen 127.0.0.1:0 --db "$dir/m.db" --log-level info \
    --auto-register --public-read --ip-rate 0 --device-rate 0 --max-connections-per-ip 0 \
    2>"$dir/server.log" &
  MH_PID=$!
  PIDS+=("$MH_PID")
  MH_PORT=""
  for _ in $(seq 1 100); do
    MH_PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$dir/server.log" | sed 's/.*://' || true)
    [[ -n "$MH_PORT" ]] && break
    kill -0 "$MH_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "meterhub exited"; }
    sleep 0.1
  done
  [[ -n "$MH_PORT" ]] || die "meterhub did not report its port"
  log "meterhub ($1) pid $MH_PID on 127.0.0.1:$MH_PORT"
}

SEED_PID="" SEED_PORT=""
start_seed() {  # start_seed NAME: fresh copy of the seed app (and its data.db) in $TMP/NAME
  local dir="$TMP/$1"
  rm -rf "$dir"
  cp -r "$SEED_DIR/app" "$dir"
  chmod -R u+w "$dir"  # shared/ is read-only; the seed writes data.db next to itself
  SEED_PORT=$(free_port)
  (cd "$dir" && exec "$PY" -m uvicorn main:app --host 127.0.0.1 --port "$SEED_PORT" \
      --log-level warning >"$dir/server.log" 2>&1) &
  SEED_PID=$!
  PIDS+=("$SEED_PID")
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$SEED_PORT/docs" && break
    kill -0 "$SEED_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "seed exited"; }
    sleep 0.1
  done
  curl -s -o /dev/null "http://127.0.0.1:$SEED_PORT/docs" || die "seed did not come up"
  log "seed ($1) pid $SEED_PID on 127.0.0.1:$SEED_PORT"
}

stop_pid() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# The machine is shared: before each measured phase (our servers idle then),
# sample the whole machine's CPU for 1 s, wait (bounded) while it is busy, and
# record it next to the phase in the report.
QUIET_PCT=${BENCH_QUIET_PCT:-15}      # busy % of all CPUs that counts as quiet
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}    # longest wait before one phase (s)
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-240}  # longest total wait in one run (s)
QUIET_WAITED=0
sample_load() {  # prints "BUSY% FOREIGN% ours:N% names...": whole machine (iowait excluded), processes not ours
  top -b -n 2 -d 1 -w 256 2>/dev/null | awk -v ours=" ${PIDS[*]:-} " -v ncpu="$(nproc)" '
    /^top -/ { blk++; next }
    blk < 2 { next }
    /^%Cpu/ { for (i = 2; i < NF; i++) { if ($(i + 1) ~ /^id/) idle = $i; if ($(i + 1) ~ /^wa/) wa = $i }; next }
    $1 == "PID" { procs = 1; next }
    procs && $9 + 0 > 0 && $12 != "top" {
      if (index(ours, " " $1 " ")) { own += $9; next }
      foreign += $9
      if (n++ < 3) names = names sprintf("%s:%s%% ", $12, $9)
    }
    END { printf "%.0f %.0f ours:%.0f%% %s\n", 100 - idle - wa, foreign / ncpu, own / ncpu, names }'
}
await_quiet() {  # await_quiet LABEL
  local label=$1 busy foreign names waited=0 s
  sync  # flush the previous phase's dirty pages so they don't land on this one's fsyncs
  read -r busy foreign names < <(sample_load)
  while (( busy > QUIET_PCT && waited < QUIET_WAIT && QUIET_WAITED < QUIET_BUDGET )); do
    (( waited == 0 )) && log "machine busy before $label (${busy}% CPU; other processes ${foreign}%, ${names:-none}): waiting up to ${QUIET_WAIT} s"
    sleep 2
    waited=$((waited + 3)); QUIET_WAITED=$((QUIET_WAITED + 3))
    read -r busy foreign names < <(sample_load)
  done
  s="$label $busy $foreign"
  if (( busy > QUIET_PCT )); then
    log "WARNING: $label runs with ${busy}% CPU busy before it (other processes ${foreign}%, ${names:-none})"
  fi
  echo "$s" >>"$RAW/background.txt"
  return 0
}
# Other processes' CPU while a phase runs: whole-machine busy time minus the
# server's (from /proc/PID/stat) minus the client's (bash `times`, children).
machine_busy_s() {  # user+nice+system+irq+softirq of all CPUs, in seconds (steal excluded)
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}
children_s() {  # CPU seconds of this shell's reaped children; sets CHILDREN_S
  # `times` must run in this shell, not in a $(...) subshell (a fork starts at 0).
  times >"$TMP/times.txt"
  CHILDREN_S=$(tail -1 "$TMP/times.txt" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }; printf "%.2f", t }')
}
PH_T0="" PH_M0="" PH_S0="" PH_C0=""
phase_begin() {  # phase_begin SERVER_PID
  children_s; PH_C0=$CHILDREN_S
  PH_T0=$(date +%s.%N); PH_M0=$(machine_busy_s); PH_S0=$(cpu_s "$1")
}
phase_end() {  # phase_end LABEL SERVER_PID: appends "LABEL other% server_s client_s" to during.txt
  local t1 m1 s1 c1
  t1=$(date +%s.%N); m1=$(machine_busy_s); s1=$(cpu_s "$2")
  children_s; c1=$CHILDREN_S
  awk -v l="$1" -v t0="$PH_T0" -v t1="$t1" -v m0="$PH_M0" -v m1="$m1" -v s0="$PH_S0" -v s1="$s1" \
      -v c0="$PH_C0" -v c1="$c1" -v n="$(nproc)" 'BEGIN {
    other = (m1 - m0) - (s1 - s0) - (c1 - c0); if (other < 0) other = 0
    printf "%s %.0f %.2f %.2f\n", l, 100 * other / ((t1 - t0) * n), s1 - s0, c1 - c0 }' >>"$RAW/during.txt"
}
during() { awk -v l="$1" -v q="$QUIET_PCT" '$1 == l { d = $2 } END { if (d == "") print "n/a"; else if (d > q) print "⚠ " d "%"; else print d "%" }' "$RAW/during.txt" 2>/dev/null; }

bg() {  # bg LABEL: the busy % recorded before that phase, flagged when over the threshold
  local before
  before=$(awk -v l="$1" -v q="$QUIET_PCT" '$1 == l { b = $2 } END { if (b == "") print "n/a"; else if (b > q) print "⚠ " b "%"; else print b "%" }' \
    "$RAW/background.txt" 2>/dev/null)
  echo "$before / $(during "$1")"
}

mh_rows() {  # mh_rows NAME PREFIX: readings stored for meters PREFIX*
  sqlite3 -cmd ".timeout 5000" "$TMP/$1/m.db" "SELECT count(*) FROM meter_readings r JOIN smart_meter m ON m.id = r.meter_id WHERE m.access_id LIKE '$2%';" 2>/dev/null || echo "?"
}

# run_wrk LABEL PID URL THREADS CONNS SECS LUA-ARGS...: raw output in $RAW/LABEL.txt,
# server CPU seconds used in $RAW/LABEL.cpu
run_wrk() {
  local label=$1 pid=$2 url=$3 t=$4 c=$5 d=$6
  shift 6
  local c0 c1
  [[ "${NO_AWAIT:-0}" == 1 ]] || await_quiet "$label"
  phase_begin "$pid"
  c0=$(cpu_s "$pid")
  timeout $((d + 30)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 10s --latency \
    -s "$BENCH/post_readings.lua" "$url" -- "$@" >"$RAW/$label.txt" 2>&1 ||
    log "wrk $label exited with an error (see $RAW/$label.txt)"
  c1=$(cpu_s "$pid")
  phase_end "$label" "$pid"
  calc "$c1 - $c0" "%.2f" >"$RAW/$label.cpu"
  log "$label: $(grep -E '^(Requests/sec|WRKRESULT)' "$RAW/$label.txt" | tail -1) [other processes during: $(during "$label")]"
}

# --------------------------------------------------------------------------
mkdir -p "$OUT" "$RAW"
rm -f "$RAW"/*.txt "$RAW"/*.cpu "$RAW"/*.data "$RAW"/*.log 2>/dev/null || true
START=$(date +%s)
ensure_packages
build
command -v wrk >/dev/null || die "wrk is missing"
PROBE="$BUILD_DIR/meterhub-wsprobe"

# File descriptors: servers and probe each need one per WebSocket.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ "$NOFILE" != unlimited ]] && (( IDLE_CONNS + 200 > NOFILE )); then
  log "ulimit -n is $NOFILE: idle test reduced to $((NOFILE - 200)) connections"
  IDLE_CONNS=$((NOFILE - 200))
fi
[[ -d "$SEED_DIR/app" ]] || { log "seed not found at $SEED_DIR: meterhub only"; NO_SEED=1; }

# Fresh ts values: every phase uses its own meter prefix and ts a few hours back.
BASE_TS=$(( $(now_ms) - 6 * 3600 * 1000 ))

# --- Context: machine and SQLite commit (fsync) latency ---------------------
CPU_MODEL=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
NCPU=$(nproc)
MEM=$(free -h | awk '/^Mem:/ { print $2 }')
KERNEL=$(uname -r)
FS=$(df -T "$TMP" | awk 'NR==2 { print $2 " on " $1 }')
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || GIT_REV="$GIT_REV (src/ modified)"
SQLITE_VER=$(sqlite3 --version | awk '{ print $1 }')
log "machine: $CPU_MODEL, $NCPU CPUs, $MEM RAM, $KERNEL, $FS"

await_quiet commit
$PY - "$TMP/commit.db" >"$RAW/commit.txt" <<'EOF'
# Single-row commit latency in WAL mode with synchronous=FULL (one fsync of the WAL each).
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=FULL")
c.execute("CREATE TABLE t(a INTEGER PRIMARY KEY, b)")
def run(n, pause):
    lat = []
    for i in range(n):
        t = time.perf_counter()
        c.execute("BEGIN"); c.execute("INSERT INTO t(b) VALUES(?)", (i,)); c.execute("COMMIT")
        lat.append((time.perf_counter() - t) * 1000)
        if pause: time.sleep(pause)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], lat[-1], len(lat)
print("COMMIT p50_ms=%.3f p99_ms=%.3f max_ms=%.3f n=%d" % run(300, 0))
# Paced like the 50/s WebSocket phase: the disk and CPUs idle between commits.
print("PACED p50_ms=%.3f p99_ms=%.3f max_ms=%.3f n=%d" % run(150, 0.02))
EOF
COMMIT_P50=$(kv "$RAW/commit.txt" COMMIT p50_ms); COMMIT_P99=$(kv "$RAW/commit.txt" COMMIT p99_ms)
PACED_P50=$(kv "$RAW/commit.txt" PACED p50_ms); PACED_P99=$(kv "$RAW/commit.txt" PACED p99_ms)
PACED_MAX=$(kv "$RAW/commit.txt" PACED max_ms)
log "SQLite single-row commit (WAL, synchronous=FULL): back to back p50 $COMMIT_P50 / p99 $COMMIT_P99 ms; at 50/s p50 $PACED_P50 / p99 $PACED_P99 ms"

# --- Servers for the throughput and latency phases --------------------------
start_meterhub mh
MH_MAIN_PID=$MH_PID MH_MAIN_PORT=$MH_PORT
if [[ "$NO_SEED" != 1 ]]; then
  start_seed seed
  SEED_MAIN_PID=$SEED_PID SEED_MAIN_PORT=$SEED_PORT
fi
MH_URL="http://127.0.0.1:$MH_MAIN_PORT"

# --- 1. single-reading POSTs, keep-alive ------------------------------------
# One connection first (latency floor = one commit), then the headline -t2 -c50.
run_wrk mh_single_c1 "$MH_MAIN_PID" "$MH_URL" 1 1 5 meterhub s1-m "$BASE_TS" 100 1
PERF_PID=""
await_quiet mh_single
if [[ "${BENCH_PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
  perf record -F 499 -g -p "$MH_MAIN_PID" -o "$RAW/perf-single.data" -- sleep $((SINGLE_SECS - 3)) \
    >/dev/null 2>&1 &
  PERF_PID=$!
  PIDS+=("$PERF_PID")
fi
NO_AWAIT=1 run_wrk mh_single "$MH_MAIN_PID" "$MH_URL" 2 50 "$SINGLE_SECS" meterhub s50-m "$BASE_TS" 100 1
if [[ -n "$PERF_PID" ]]; then
  wait "$PERF_PID" 2>/dev/null || true
  {
    echo "# by DSO"
    perf report -i "$RAW/perf-single.data" --no-children -g none --sort dso --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -10
    echo "# by symbol (self)"
    perf report -i "$RAW/perf-single.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | cut -c1-160 | head -40
  } >"$RAW/perf-single.txt" || true
  log "perf top symbols in $RAW/perf-single.txt"
fi
MH_SINGLE_ROWS=$(mh_rows mh s50-m)
if [[ "$NO_SEED" != 1 ]]; then
  SEED_URL="http://127.0.0.1:$SEED_MAIN_PORT"
  run_wrk seed_single_c1 "$SEED_MAIN_PID" "$SEED_URL" 1 1 5 seed s1-m "$BASE_TS" 100 1
  run_wrk seed_single "$SEED_MAIN_PID" "$SEED_URL" 2 50 "$SINGLE_SECS" seed s50-m "$BASE_TS" 100 1
  SEED_ROWS=$(sqlite3 -cmd ".timeout 5000" "$TMP/seed/data.db" "SELECT count(*) FROM meter_readings;" 2>/dev/null || echo "?")
fi

# --- 2. batched ingest (meterhub only: the seed has no batch endpoint) ------
for b in 100 1000; do
  run_wrk "mh_batch$b" "$MH_MAIN_PID" "$MH_URL" 2 8 "$BATCH_SECS" meterhub "b$b-m" "$BASE_TS" 100 "$b"
  eval "MH_BATCH${b}_ROWS=\$(mh_rows mh b$b-m)"
done
# More POSTs in flight -> bigger group commits: the same 1000-reading batches from 32 connections.
run_wrk mh_batch1000_c32 "$MH_MAIN_PID" "$MH_URL" 2 32 "$BATCH_SECS" meterhub b1000c32-m "$BASE_TS" 100 1000
MH_BATCH1000C32_ROWS=$(mh_rows mh b1000c32-m)

# --- 3. POST -> WebSocket latency, 1000 subscribers over 100 meters ---------
run_probe_latency() {  # LABEL PORT RATE EXTRA-ARGS...
  local label=$1 port=$2 rate=$3
  shift 3
  await_quiet "$label"
  phase_begin "$PROBE_SERVER_PID"
  timeout $((WS_SECS + 150)) "$PROBE" --port "$port" --subs 1000 --meters 100 --rate "$rate" \
    --duration "$WS_SECS" --grace 2 --post-conns 8 --connect-parallel 100 --connect-timeout 90 \
    --prefix "$label-m" --ts-base-ms "$BASE_TS" "$@" >"$RAW/$label.txt" 2>&1 ||
    log "probe $label exited with an error (see $RAW/$label.txt)"
  phase_end "$label" "$PROBE_SERVER_PID"
  log "$label: $(grep '^latency' "$RAW/$label.txt" || tail -1 "$RAW/$label.txt") [other processes during: $(during "$label")]"
}
for r in $WS_RATES; do
  PROBE_SERVER_PID=$MH_MAIN_PID run_probe_latency "mh_ws$r" "$MH_MAIN_PORT" "$r"
  [[ "$NO_SEED" == 1 ]] ||
    PROBE_SERVER_PID=$SEED_MAIN_PID run_probe_latency "seed_ws$r" "$SEED_MAIN_PORT" "$r" --seed
done
for r in $WS_RATES_MH_ONLY; do
  PROBE_SERVER_PID=$MH_MAIN_PID run_probe_latency "mh_ws$r" "$MH_MAIN_PORT" "$r"
done

stop_pid "$MH_MAIN_PID"
[[ "$NO_SEED" == 1 ]] || stop_pid "$SEED_MAIN_PID"

# --- Diagnostic: meterhub with its DB on tmpfs (no disk flush) ----------------
# Not a target measurement (that needs a real disk): it shows what the disk's
# fdatasync costs, by rerunning three phases with the same binary and options.
TMPFS_DIR=""
if [[ "${BENCH_TMPFS:-1}" == 1 && -d /dev/shm && -w /dev/shm ]]; then
  TMPFS_DIR=$(mktemp -d /dev/shm/meterhub-bench.XXXXXX)
  ORIG_TMP=$TMP; TMP=$TMPFS_DIR
  start_meterhub shm
  TMP=$ORIG_TMP
  run_wrk shm_single "$MH_PID" "http://127.0.0.1:$MH_PORT" 2 50 10 meterhub s50-m "$BASE_TS" 100 1
  run_wrk shm_batch1000 "$MH_PID" "http://127.0.0.1:$MH_PORT" 2 8 10 meterhub b1000-m "$BASE_TS" 100 1000
  PROBE_SERVER_PID=$MH_PID run_probe_latency shm_ws50 "$MH_PORT" 50
  stop_pid "$MH_PID"
  rm -rf "$TMPFS_DIR"
  TMPFS_DIR=""
fi

# --- 4. RSS with idle WebSockets (fresh server per variant) -----------------
# cold: meters without data, so nothing is ever sent on the connections.
# warm: each of the 100 meters has one reading, so every connection has
#       received its latest-on-connect message (a subscriber's normal state).
prime_meters() {  # prime_meters URL MODE PREFIX: one reading for each of 100 meters
  $PY - "$@" "$BASE_TS" <<'EOF'
import json, sys, urllib.request
url, mode, prefix, ts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert 200 <= r.status < 300, r.status
if mode == "seed":
    for i in range(100):
        post("/esp32/data", {"meter_id": f"{prefix}{i}", "voltage": 230.1, "current": 1.5,
                             "power": 345.2, "energy": 12.5})
else:
    post("/api/v1/readings", [{"meter_id": f"{prefix}{i}", "voltage": 230.1, "current": 1.5,
                               "power": 345.2, "energy": 12.5, "ts": ts} for i in range(100)])
EOF
}
run_idle() {  # LABEL SERVER(meterhub|seed) VARIANT(cold|warm)
  local label=$1 server=$2 variant=$3 pid port extra=()
  if [[ "$server" == meterhub ]]; then
    start_meterhub "$label"; pid=$MH_PID; port=$MH_PORT
  else
    start_seed "$label"; pid=$SEED_PID; port=$SEED_PORT; extra=(--seed)
  fi
  # One request first, so lazily initialised state is not counted per connection.
  if [[ "$variant" == warm ]]; then
    prime_meters "http://127.0.0.1:$port" "$server" idle-m
  else
    prime_meters "http://127.0.0.1:$port" "$server" other-m
  fi
  await_quiet "$label"
  phase_begin "$pid"
  timeout 200 "$PROBE" --port "$port" --idle "$IDLE_CONNS" --hold "$IDLE_HOLD" --meters 100 \
    --prefix idle-m --server-pid "$pid" --connect-parallel 100 --connect-timeout 120 \
    "${extra[@]}" >"$RAW/$label.txt" 2>&1 || log "probe $label exited with an error (see $RAW/$label.txt)"
  phase_end "$label" "$pid"
  log "$label: $(grep '^idle' "$RAW/$label.txt" || tail -1 "$RAW/$label.txt")"
  stop_pid "$pid"
}
run_idle mh_idle_cold meterhub cold
run_idle mh_idle_warm meterhub warm
if [[ "$NO_SEED" != 1 ]]; then
  run_idle seed_idle_cold seed cold
  run_idle seed_idle_warm seed warm
fi
ELAPSED=$(( $(date +%s) - START ))

# --------------------------------------------------------------------------
# Report
W() { kv "$RAW/$1.txt" WRKRESULT "$2"; }
P() { kv "$RAW/$1.txt" RESULT "$2"; }
yesno() { awk "BEGIN { exit !($1) }" 2>/dev/null && echo "**yes**" || echo "**no**"; }

MH_RPS=$(W mh_single rps); SEED_RPS=$(W seed_single rps)
RATIO=n/a; [[ -n "$MH_RPS" && -n "$SEED_RPS" ]] && RATIO=$(calc "$MH_RPS / $SEED_RPS" "%.1f")
B100_RPS=$(W mh_batch100 rps); B1000_RPS=$(W mh_batch1000 rps)
B1000C32_RPS=$(W mh_batch1000_c32 rps)
B100=$(calc "${B100_RPS:-0} * 100" "%.0f"); B1000=$(calc "${B1000_RPS:-0} * 1000" "%.0f")
B1000C32=$(calc "${B1000C32_RPS:-0} * 1000" "%.0f")
BEST_BATCH=$(calc "($B100 > $B1000) ? ($B100 > $B1000C32 ? $B100 : $B1000C32) : ($B1000 > $B1000C32 ? $B1000 : $B1000C32)" "%.0f")
first_rate=${WS_RATES%% *}
MH_WS_P99=$(P "mh_ws$first_rate" p99_ms)
MH_IDLE_B=$(P mh_idle_cold bytes_per_conn); MH_IDLE_WB=$(P mh_idle_warm bytes_per_conn)

cpu_per_req() {  # LABEL: server CPU microseconds per request
  local c r
  c=$(cat "$RAW/$1.cpu" 2>/dev/null || echo 0); r=$(W "$1" requests)
  [[ -n "$r" && "$r" != 0 ]] && calc "$c * 1e6 / $r" "%.0f" || echo n/a
}
wrk_row() {  # LABEL: "rps | p50 / p99 ms | non-2xx | CPU us/req"
  local l=$1
  if [[ ! -f "$RAW/$l.txt" ]]; then echo "n/a | n/a | n/a | n/a"; return; fi
  echo "$(fmt "$(W "$l" rps)") | $(fmt "$(W "$l" p50_ms)") / $(fmt "$(W "$l" p99_ms)") | $(fmt "$(W "$l" non2xx)") (socket errors: $(( $(n0 "$(W "$l" connect_err)") + $(n0 "$(W "$l" read_err)") + $(n0 "$(W "$l" write_err)") + $(n0 "$(W "$l" timeout_err)") ))) | $(cpu_per_req "$l")"
}
ws_row() {  # LABEL
  local l=$1
  if [[ ! -f "$RAW/$l.txt" ]] || [[ -z "$(P "$l" p50_ms)" ]]; then echo "n/a | n/a | n/a | n/a | n/a | n/a | n/a"; return; fi
  echo "$(P "$l" connected)/1000 | $(P "$l" achieved_rate) | $(P "$l" p50_ms) / $(P "$l" p90_ms) / $(P "$l" p99_ms) / $(P "$l" max_ms) | $(P "$l" post_p50_ms) / $(P "$l" post_p99_ms) | $(P "$l" after_ack_p50_ms) / $(P "$l" after_ack_p99_ms) | $(P "$l" delivery) ($(P "$l" delivered)/$(P "$l" expected)), non-2xx $(P "$l" posts_bad)"
}
idle_row() {  # LABEL
  local l=$1
  if [[ ! -f "$RAW/$l.txt" ]] || [[ -z "$(P "$l" bytes_per_conn)" ]]; then
    echo "n/a | n/a | n/a | $(tail -1 "$RAW/$l.txt" 2>/dev/null || echo 'not run')"; return
  fi
  echo "$(P "$l" connected)/$(P "$l" target) in $(P "$l" connect_s) s | $(P "$l" rss_before_kib) → $(P "$l" rss_after_kib) KiB | $(P "$l" bytes_per_conn) B ($(calc "$(P "$l" bytes_per_conn) / 1024" "%.1f") KiB) | open after ${IDLE_HOLD} s hold: $(P "$l" open_after_hold)"
}

{
  echo "# meterhub benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- machine: $CPU_MODEL, $NCPU CPUs, $MEM RAM, Linux $KERNEL, temp DBs on $FS"
  echo "- meterhub $GIT_REV, Release build ($BUILD_DIR); seed: $SEED_DIR (FastAPI/uvicorn, 1 worker); SQLite $SQLITE_VER"
  echo "- command: \`./bench/run.sh\` (or \`make bench\`); total ${ELAPSED} s; all traffic on 127.0.0.1; clients share the 2 cores with the server"
  echo "- SQLite single-row commit (Python sqlite3), WAL + synchronous=FULL, same disk: back to back p50 $(fmt "$COMMIT_P50") / p99 $(fmt "$COMMIT_P99") ms (300 commits); paced at 50/s p50 $(fmt "$PACED_P50") / p99 $(fmt "$PACED_P99") / max $(fmt "$PACED_MAX") ms (150 commits)"
  echo "- the machine is shared: \"other CPU before / during\" = whole-machine CPU busy in the 1 s before a phase (each phase waits up to ${QUIET_WAIT} s for < ${QUIET_PCT}%) / CPU used during the phase by processes other than that server and its client, in % of all ${NCPU} CPUs; ⚠ = over ${QUIET_PCT}%, treat that row as disturbed"
  echo
  echo "## 1. Single-reading POSTs (keep-alive, 100 meters, unique ts)"
  echo
  echo "| run | requests/s | latency p50 / p99 (ms) | non-2xx | server CPU µs/request | other CPU before / during |"
  echo "|---|---|---|---|---|---|"
  echo "| meterhub, wrk -t2 -c50 -d${SINGLE_SECS}s | $(wrk_row mh_single) | $(bg mh_single) |"
  echo "| seed, wrk -t2 -c50 -d${SINGLE_SECS}s | $(wrk_row seed_single) | $(bg seed_single) |"
  echo "| meterhub, wrk -t1 -c1 -d5s | $(wrk_row mh_single_c1) | $(bg mh_single_c1) |"
  echo "| seed, wrk -t1 -c1 -d5s | $(wrk_row seed_single_c1) | $(bg seed_single_c1) |"
  echo
  echo "meterhub / seed throughput ratio (c50): **${RATIO}×**. Rows stored by meterhub for the c50 run: $(fmt "$MH_SINGLE_ROWS") (wrk counted $(fmt "$(W mh_single requests)") answered requests; in-flight ones at the end are stored too); seed table rows after its runs: $(fmt "${SEED_ROWS:-}")."
  echo
  echo "## 2. Batched ingest (meterhub only — the seed has no batch endpoint)"
  echo
  echo "| readings per POST | wrk | POSTs/s | readings/s | latency p50 / p99 (ms) | non-2xx | rows stored | server CPU µs/reading | other CPU before / during |"
  echo "|---|---|---|---|---|---|---|---|---|"
  echo "| 100 | -t2 -c8 -d${BATCH_SECS}s | $(fmt "$B100_RPS") | $B100 | $(fmt "$(W mh_batch100 p50_ms)") / $(fmt "$(W mh_batch100 p99_ms)") | $(fmt "$(W mh_batch100 non2xx)") | $(fmt "${MH_BATCH100_ROWS:-}") | $(calc "$(cat "$RAW/mh_batch100.cpu" 2>/dev/null || echo n/a) * 1e6 / ($(n0 "$(W mh_batch100 requests)") * 100)" "%.2f") | $(bg mh_batch100) |"
  echo "| 1000 | -t2 -c8 -d${BATCH_SECS}s | $(fmt "$B1000_RPS") | $B1000 | $(fmt "$(W mh_batch1000 p50_ms)") / $(fmt "$(W mh_batch1000 p99_ms)") | $(fmt "$(W mh_batch1000 non2xx)") | $(fmt "${MH_BATCH1000_ROWS:-}") | $(calc "$(cat "$RAW/mh_batch1000.cpu" 2>/dev/null || echo n/a) * 1e6 / ($(n0 "$(W mh_batch1000 requests)") * 1000)" "%.2f") | $(bg mh_batch1000) |"
  echo "| 1000 | -t2 -c32 -d${BATCH_SECS}s | $(fmt "$B1000C32_RPS") | $B1000C32 | $(fmt "$(W mh_batch1000_c32 p50_ms)") / $(fmt "$(W mh_batch1000_c32 p99_ms)") | $(fmt "$(W mh_batch1000_c32 non2xx)") | $(fmt "${MH_BATCH1000C32_ROWS:-}") | $(calc "$(cat "$RAW/mh_batch1000_c32.cpu" 2>/dev/null || echo n/a) * 1e6 / ($(n0 "$(W mh_batch1000_c32 requests)") * 1000)" "%.2f") | $(bg mh_batch1000_c32) |"
  echo
  echo "## 3. POST → WebSocket delivery, 1000 subscribers over 100 meters (10 per meter), no permessage-deflate"
  echo
  echo "| server | rate (POST/s) | subscribers | achieved POST/s | POST→WS p50 / p90 / p99 / max (ms) | POST answer p50 / p99 (ms) | WS after answer p50 / p99 (ms) | delivery | other CPU before / during |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in $WS_RATES; do
    echo "| meterhub | $r | $(ws_row "mh_ws$r") | $(bg "mh_ws$r") |"
    [[ "$NO_SEED" == 1 ]] || echo "| seed | $r | $(ws_row "seed_ws$r") | $(bg "seed_ws$r") |"
  done
  for r in $WS_RATES_MH_ONLY; do echo "| meterhub | $r | $(ws_row "mh_ws$r") | $(bg "mh_ws$r") |"; done
  echo
  echo "POST→WS = from just before the POST is written until each subscriber has read the message. POST answer = the POST's own round trip (meterhub answers after COMMIT, i.e. after fdatasync). WS after answer = message arrival minus the POST answer's arrival (the fan-out's own share; negative when the message came first)."
  echo
  echo "## 4. Server RSS with $IDLE_CONNS idle WebSockets (fresh server each)"
  echo
  echo "| server | variant | connected | VmRSS before → after | per connection | note | other CPU before / during |"
  echo "|---|---|---|---|---|---|---|"
  echo "| meterhub | cold (no message sent) | $(idle_row mh_idle_cold) | $(bg mh_idle_cold) |"
  echo "| meterhub | warm (each got its latest reading) | $(idle_row mh_idle_warm) | $(bg mh_idle_warm) |"
  if [[ "$NO_SEED" != 1 ]]; then
    echo "| seed | cold (no message sent) | $(idle_row seed_idle_cold) | $(bg seed_idle_cold) |"
    echo "| seed | warm (each got its latest reading) | $(idle_row seed_idle_warm) | $(bg seed_idle_warm) |"
  fi
  echo
  if [[ -f "$RAW/shm_single.txt" ]]; then
    echo "## Diagnostic: meterhub with its database on tmpfs (/dev/shm)"
    echo
    echo "Same binary and options, DB in RAM so fdatasync costs nothing. Not a target figure: it shows how much of each result is the disk."
    echo
    echo "| phase | disk (above) | tmpfs | other CPU before / during (tmpfs run) |"
    echo "|---|---|---|---|"
    echo "| single POSTs c50: requests/s, p50 / p99 ms | $(fmt "$(W mh_single rps)"), $(fmt "$(W mh_single p50_ms)") / $(fmt "$(W mh_single p99_ms)") | $(fmt "$(W shm_single rps)"), $(fmt "$(W shm_single p50_ms)") / $(fmt "$(W shm_single p99_ms)") | $(bg shm_single) |"
    echo "| batch 1000: readings/s | $B1000 | $(calc "$(n0 "$(W shm_batch1000 requests)") * 1000 / $(W shm_batch1000 duration_s)" "%.0f") | $(bg shm_batch1000) |"
    echo "| POST→WS at 50/s: p50 / p99 ms (POST answer p99) | $(fmt "$(P mh_ws$first_rate p50_ms)") / $(fmt "$(P mh_ws$first_rate p99_ms)") ($(fmt "$(P mh_ws$first_rate post_p99_ms)")) | $(fmt "$(P shm_ws50 p50_ms)") / $(fmt "$(P shm_ws50 p99_ms)") ($(fmt "$(P shm_ws50 post_p99_ms)")) | $(bg shm_ws50) |"
    echo
  fi
  echo "## Targets"
  echo
  echo "| target | measured | met |"
  echo "|---|---|---|"
  echo "| (1) single POSTs ≥ 100× the seed | ${RATIO}× ($(fmt "$MH_RPS") vs $(fmt "$SEED_RPS") req/s) | $( [[ "$RATIO" != n/a ]] && yesno "$RATIO >= 100" || echo n/a) |"
  echo "| (2) batched ingest > 500 000 readings/s | $BEST_BATCH readings/s (best of the three batch runs) | $(yesno "$BEST_BATCH > 500000") |"
  echo "| (3) POST→WS p99 < 5 ms (1000 subs, ${first_rate}/s) | $(fmt "$MH_WS_P99") ms | $( [[ -n "$MH_WS_P99" ]] && yesno "$MH_WS_P99 < 5" || echo n/a) |"
  echo "| (4) < 8 KiB per idle WebSocket | cold $(fmt "$MH_IDLE_B") B, warm $(fmt "$MH_IDLE_WB") B | cold $( [[ -n "$MH_IDLE_B" ]] && yesno "$MH_IDLE_B < 8192" || echo n/a), warm $( [[ -n "$MH_IDLE_WB" ]] && yesno "$MH_IDLE_WB < 8192" || echo n/a) |"
  echo
  echo "Raw tool output: bench/out/raw/."
} | tee "$OUT/latest.md"
