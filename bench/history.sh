#!/usr/bin/env bash
# History benchmark: a synthetic year of readings (1 meter at 1 s = 31.5 M
# readings, plus 100 meters at 10 s), its size on disk and load time, and the
# latency of series / daily-energy queries over it, from rollups (what the
# server does) and from raw readings (the same answer computed the slow way).
# See bench/README.md ("History benchmark").
#
#   ./bench/history.sh                          # full scale: ~350 M readings, ~36 GB, load 30-60 min
#   HIST_DAYS=7 HIST_METERS=10 ./bench/history.sh   # small scale, ~1 min
#
# Environment knobs (defaults in brackets):
#   HIST_DAYS [365] HIST_METERS [100] HIST_BIG_INTERVAL [1] HIST_SMALL_INTERVAL [10]  the data set (seconds)
#   HIST_END [2026-11-01T00:00:00Z]  fixed end of the history (same data on every run)
#   HIST_DB [bench/out/history/history-<days>d-<meters>m[-big<s>s-small<s>s].db]
#   HIST_BATCH [20000] HIST_ORDER [time]  readings per SqliteStore::write; time|meter (see the loader)
#   HIST_FRESH [0]        1: delete the DB and load it again
#   HIST_REPS [50] HIST_WARMUP [5]    timed / warm-up requests per query (HTTP and in-process)
#   HIST_RAW_REPS [3] HIST_RAW_BUDGET [60]  raw-rows computations per case, at most / seconds
#   HIST_TZ [Europe/Berlin]
#   HIST_DISK_CHECK [1]   0: load even if df says the disk may be too small
#   BENCH_BUILD_DIR [build-bench]  BENCH_SKIP_BUILD [0]  BENCH_JOBS [2]
#
# Loading is skipped when DB.done (written by meterhub-histload at the end of
# a complete load) matches the requested data set and its row count is the
# expected one; an interrupted load resumes where it stopped.
# Output: bench/out/history.md (printed at the end, and copied to
# bench/out/<DB name>.md, so reports of several scales are kept); tool output in
# bench/out/raw/history-*.txt. The server it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
OUT="$BENCH/out"
RAW="$OUT/raw"
mkdir -p "$RAW"
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build-bench}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
JOBS=${BENCH_JOBS:-2}
DAYS=${HIST_DAYS:-365}
METERS=${HIST_METERS:-100}
BIG=${HIST_BIG_INTERVAL:-1}
SMALL=${HIST_SMALL_INTERVAL:-10}
END=${HIST_END:-2026-11-01T00:00:00Z}
NAME=history-${DAYS}d-${METERS}m
[[ "$BIG" == 1 && "$SMALL" == 10 ]] || NAME+="-big${BIG}s-small${SMALL}s"
DB=${HIST_DB:-$OUT/history/$NAME.db}
[[ "$DB" = /* ]] || DB="$ROOT/$DB"
BATCH=${HIST_BATCH:-20000}
ORDER=${HIST_ORDER:-time}
REPS=${HIST_REPS:-50}
WARMUP=${HIST_WARMUP:-5}
RAW_REPS=${HIST_RAW_REPS:-3}
RAW_BUDGET=${HIST_RAW_BUDGET:-60}
TZ_NAME=${HIST_TZ:-Europe/Berlin}
METER=big; [[ "$BIG" == 0 ]] && METER=m000
PY=/usr/bin/python3

log() { printf '[history %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Build (Release, own directory, like run.sh).
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  log "building meterhub, meterhub-histload, meterhub-histquery (Release) in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETERHUB_TESTS=OFF \
    "${launcher[@]}" >"$RAW/history-cmake.log" 2>&1 || { cat "$RAW/history-cmake.log" >&2; die "cmake failed"; }
  cmake --build "$BUILD_DIR" -j "$JOBS" --target meterhub meterhub-histload meterhub-histquery \
    >"$RAW/history-build.log" 2>&1 || { tail -50 "$RAW/history-build.log" >&2; die "build failed"; }
fi
for b in meterhub meterhub-histload meterhub-histquery; do
  [[ -x "$BUILD_DIR/$b" ]] || die "$BUILD_DIR/$b missing (build it, or unset BENCH_SKIP_BUILD)"
done

# --------------------------------------------------------------------------
# Load (skipped when complete).
END_MS=$($PY -c 'import sys, datetime; print(int(datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp() * 1000))' "$END") ||
  die "HIST_END must be RFC 3339, e.g. 2026-11-01T00:00:00Z"
EXPECTED=$(awk -v d="$DAYS" -v m="$METERS" -v b="$BIG" -v s="$SMALL" \
  'BEGIN { n = m * d * 86400 / s; if (b > 0) n += d * 86400 / b; printf "%.0f", n }')
DESCRIBE="meter \`big\` every ${BIG} s + ${METERS} meters every ${SMALL} s for ${DAYS} days up to ${END} (${EXPECTED} readings expected)"
[[ "$BIG" == 0 ]] && DESCRIBE="${METERS} meters every ${SMALL} s for ${DAYS} days up to ${END} (${EXPECTED} readings expected)"
LOAD_ARGS=(--db "$DB" --days "$DAYS" --meters "$METERS" --big-interval "$BIG" --small-interval "$SMALL"
           --end "$END" --batch "$BATCH" --order "$ORDER")
if [[ "${HIST_FRESH:-0}" == 1 ]]; then
  log "HIST_FRESH=1: deleting $DB"
  rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.params" "$DB.done"
fi

loaded_rows() { sed -n 's/.* rows=\([0-9]*\).*/\1/p' "$DB.done" 2>/dev/null | tail -1; }
if [[ -f "$DB" && -f "$DB.done" && "$(loaded_rows)" == "$EXPECTED" ]] &&
   head -1 "$DB.done" | grep -q "^days=$DAYS meters=$METERS big_interval=$BIG small_interval=$SMALL end=$END_MS "; then
  log "load skipped: $DB is complete ($EXPECTED readings, marker $DB.done)"
else
  if [[ -f "$DB.done" ]]; then
    log "marker $DB.done does not match ${EXPECTED} readings of this data set: $(tail -1 "$DB.done" | cut -c1-120)"
    die "delete $DB (or run with HIST_FRESH=1)"
  fi
  # Disk: ~105 bytes per reading at the end (raw ~70, minute rollups ~20 for 10 s meters)
  # plus 64 MiB of WAL; check with a margin.
  need=$(awk -v n="$EXPECTED" 'BEGIN { printf "%.0f", n * 120 + 256 * 1048576 }')
  mkdir -p "$(dirname "$DB")"
  have=$(df -PB1 "$(dirname "$DB")" | awk 'NR == 2 { print $4 }')
  have_db=0; [[ -f "$DB" ]] && have_db=$(stat -c %s "$DB")
  log "load: $DESCRIBE into $DB; needs about $(( need / 1073741824 )) GiB, $(( (have + have_db) / 1073741824 )) GiB free"
  if [[ "${HIST_DISK_CHECK:-1}" == 1 ]] && (( need > have + have_db )); then
    die "not enough disk space for $DB (HIST_DISK_CHECK=0 to try anyway)"
  fi
  log "machine load before the load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BUILD_DIR/meterhub-histload" "${LOAD_ARGS[@]}" 2>&1 | tee "$RAW/history-load.txt" |
    grep --line-buffered -v '^\[20' >&2 || true
  [[ -f "$DB.done" ]] || die "load did not complete (see $RAW/history-load.txt); rerun to resume"
  [[ "$(loaded_rows)" == "$EXPECTED" ]] ||
    log "note: the DB holds $(loaded_rows) readings, $EXPECTED expected"
fi

# --------------------------------------------------------------------------
# Queries: in-process (rollups vs raw rows), then HTTP against the real server.
log "in-process: meterhub-histquery (server path ${REPS}x, raw rows up to ${RAW_REPS}x / ${RAW_BUDGET} s per case)"
"$BUILD_DIR/meterhub-histquery" --db "$DB" --meter "$METER" --end "$END_MS" --tz "$TZ_NAME" \
  --reps "$REPS" --warmup "$WARMUP" --raw-reps "$RAW_REPS" --raw-budget "$RAW_BUDGET" \
  --json "$RAW/history-inproc.json" 2>&1 | grep -v '^\[20' | tee "$RAW/history-inproc.txt" >&2
log "HTTP: meterhub + bench/history_query.py"
$PY "$BENCH/history_query.py" --server "$BUILD_DIR/meterhub" --db "$DB" --meter "$METER" --end "$END_MS" \
  --tz "$TZ_NAME" --reps "$REPS" --warmup "$WARMUP" --inproc "$RAW/history-inproc.json" \
  --load "$DB.done" --describe "$DESCRIBE" --server-log "$RAW/history-server.log" \
  --json "$RAW/history-http.json" --out "$OUT/history.md" >/dev/null
cp "$OUT/history.md" "$OUT/$(basename "$DB" .db).md"
cat "$OUT/history.md"
