#!/usr/bin/env bash
# `make run DEMO=1`: the server plus six simulated meters (tools/sim), so a
# newcomer sees live meters on the dashboard at once.
#
#   tools/sim/demo.sh BUILD_DIR HOST:PORT DB [extra server flags...]
#
# An admin token for the simulator (and for signing in) is made with the CLI
# before the server starts. The server runs in its own session, so Ctrl-C in
# the terminal reaches only the simulator and this script: the simulator
# flushes its buffered readings first, then the server is stopped.
set -euo pipefail

build=$1 listen=$2 db=$3
shift 3
host=${listen%:*}
port=${listen##*:}
if [[ $port == 0 ]]; then
  echo "demo: needs a fixed port (LISTEN=HOST:PORT, not port 0)" >&2
  exit 2
fi
case $host in 0.0.0.0 | "" | "[::]") probe_host=127.0.0.1 ;; *) probe_host=$host ;; esac

token=$("$build/meterhub" token create --scope admin --name demo --db "$db" 2>/dev/null)

server="" sim="" interrupted=""
cleanup() {
  trap - INT TERM EXIT
  if [[ -n $sim ]] && kill -0 "$sim" 2>/dev/null; then
    # Ctrl-C already reached the simulator; a second signal would cut its flush short.
    [[ -n $interrupted ]] || kill -INT "$sim" 2>/dev/null || true
    wait "$sim" || true
  fi
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" || true
  fi
}
trap cleanup EXIT
trap 'interrupted=1; exit 130' INT
trap 'exit 143' TERM

setsid "$build/meterhub" --listen "$listen" --db "$db" "$@" </dev/null &
server=$!

# Wait until it accepts connections (or gave up: port in use, bad flags...).
for _ in $(seq 150); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "demo: meterhub did not start (see above)" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/$probe_host/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

cat <<MSG

  meterhub demo: 6 simulated meters (4 households, 2 small businesses), a reading every 2 s.
  Dashboard: http://$listen/   API reference: http://$listen/docs
  Sign in with this admin token, made for the demo database ($db):

      $token

  (admin may also set tariffs from the dashboard; for a read-only sign-in make
   a read token: $build/meterhub token create --scope read --name viewer --db $db)
  Delete $db to start afresh. Ctrl-C stops the simulator, then the server.

MSG

"$build/meterhub-sim" --url "http://$probe_host:$port" --key "$token" --register \
  --meters 6 --prefix demo- --profile mixed --interval 2 --batch 50 </dev/null &
sim=$!
# Until either ends: Ctrl-C, or the server stopping by itself.
wait -n "$server" "$sim" || true
