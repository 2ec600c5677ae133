#!/usr/bin/env bash
# Starts a private cluster (its own data directory and port range, like
# tests/integration/test_cluster.sh), runs the conformance program against
# it, and stops the cluster.  The program prints "ok - ..." lines and
# "N passed, N failed"; its exit status is this script's.
#
# usage: run_conformance.sh BUILD_DIR [CONFORMANCE_BINARY]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="$(cd "$1" && pwd)"
BIN="${2:-$BUILD/tests/integration/conformance/cmq-conformance}"
export CMQ_VAR; CMQ_VAR="$(mktemp -d /tmp/cmq-conf-XXXXXX)"
export CMQ_PORT_BASE=$((21000 + (RANDOM % 400) * 100))
export CMQ_BUILD_DIR="$BUILD" CMQ_NO_INSTALL=1
CMQ="$ROOT/tools/cmq"
cleanup() { "$CMQ" down >/dev/null 2>&1; rm -rf "$CMQ_VAR" "$CMQ_VAR.up.log"; }
trap cleanup EXIT

if ! "$CMQ" up >"$CMQ_VAR.up.log" 2>&1; then
    echo "not ok - tools/cmq up"; cat "$CMQ_VAR.up.log"; echo "0 passed, 1 failed"; exit 1
fi
set -a; . "$CMQ_VAR/cluster.env"; set +a
export CMQCTL="$BUILD/tools/cmqctl"
"$BIN"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "# gateway log tail:"; tail -n 20 "$CMQ_VAR/log/gateway.log" | sed 's/^/# /'
fi
exit "$rc"
