#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster (tests/pg/pg_cluster.py)
# and METERHUB_TEST_PG pointing at it; the cluster is removed afterwards,
# also when the command fails.
#   scripts/with-pg.sh build-asan/store_contract_tests --gtest_brief=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$(mktemp -d /tmp/meterhub-pg-run.XXXXXX)
trap '/usr/bin/python3 "$ROOT/tests/pg/pg_cluster.py" stop "$DIR" >/dev/null; rm -rf "$DIR"' EXIT
METERHUB_TEST_PG=$(/usr/bin/python3 "$ROOT/tests/pg/pg_cluster.py" start "$DIR")
export METERHUB_TEST_PG METERHUB_REQUIRE_PG=1
"$@"
