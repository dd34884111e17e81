#!/usr/bin/env bash
# Runs every libFuzzer target of a METERHUB_FUZZ build for FUZZ_SECONDS each
# (default 60), one after the other, starting from the seed corpus in
# fuzz/corpus/<target>/. New inputs go to <build>/fuzz-out/corpus/<target>/
# (the source tree is never written), crashes to <build>/fuzz-out/crashes/,
# one log per target to <build>/fuzz-out/logs/. Exits non-zero when a target
# crashed, with the input to reproduce it:  <build>/fuzz_<target> <crash file>
#
#   fuzz/run.sh [build-dir] [target...]      (make fuzz; FUZZ_SEED=N for a fixed seed)
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build-asan}" && pwd)
shift || true
seconds=${FUZZ_SECONDS:-60}
# FUZZ_SEED fixes libFuzzer's mutations (CI: a run that fails there fails
# again on a re-run); unset, every run explores differently.
seed=${FUZZ_SEED:-}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(readings thingsboard emoncms tasmota shelly time tariff registry ws_command http)
fi
out=$build/fuzz-out
mkdir -p "$out/logs"
# Any sanitizer report fails the input; leaks too. Reports name functions
# and lines when a symbolizer is found (clang-16 alone finds none).
sym=$(command -v llvm-symbolizer-16 llvm-symbolizer addr2line 2>/dev/null | head -1 || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1${sym:+:external_symbolizer_path=$sym}}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1${sym:+:external_symbolizer_path=$sym}}

failed=()
printf '%-12s %10s %8s %8s %8s\n' target execs exec/s cov corpus
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  [[ -x $bin ]] || { echo "missing $bin (cmake --build $build --target fuzz_targets)" >&2; exit 2; }
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  dict=$src/dict/json.dict
  [[ $t == http ]] && dict=$src/dict/http.dict
  [[ $t == time ]] && dict=""
  log=$out/logs/$t.log
  status=0
  "$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 ${seed:+-seed="$seed"} \
    -artifact_prefix="$out/crashes/$t/" ${dict:+-dict="$dict"} \
    "$out/corpus/$t" "$src/corpus/$t" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  corpus=$(find "$out/corpus/$t" -type f | wc -l)
  printf '%-12s %10s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus"
  if [[ $status -ne 0 ]]; then
    failed+=("$t")
    echo "---- fuzz_$t failed (exit $status); end of $log:" >&2
    tail -n 40 "$log" >&2
    ls "$out/crashes/$t" >&2
  fi
done
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $out/crashes/)" >&2
  exit 1
fi
