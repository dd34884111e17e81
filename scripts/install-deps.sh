#!/usr/bin/env bash
# Installs the Debian packages meterhub needs to build, run and test, and
# nothing when they are all present (so `make run` stays fast). Uses sudo when
# not root. Bench-only tools are installed by bench/run.sh, not here.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libspdlog-dev libcli11-dev libssl-dev
  libhowardhinnant-date-dev tzdata
  googletest libgtest-dev libgmock-dev
  python3 python3-pytest python3-websockets
  sqlite3 curl openssl
  libmosquitto-dev mosquitto mosquitto-clients
  libpq-dev postgresql nginx
  libcurl4-openssl-dev
  chromium
)
# Node.js and npm build the dashboard (web/: `npm ci`) and run its browser
# tests; the machines come with Node.js 20 (npm included). Debian's own
# packages are the fallback where there is none.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi
# `make test-asan` / `make fuzz`: clang 16 with its sanitizer and libFuzzer
# runtimes (clang 14, Debian's default, cannot compile std::expected).
if [[ "${1:-}" == "--clang" ]]; then
  PACKAGES+=(clang-16 libclang-rt-16-dev)
fi
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(wrk libbenchmark-dev python3-fastapi python3-uvicorn python3-sqlalchemy
             python3-httptools python3-uvloop python3-psutil)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "meterhub: installing Debian packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
