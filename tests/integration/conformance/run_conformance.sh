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
# Leaks inside Debian's libraries (tests/lsan.supp) are not ours.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}"
CMQ="$ROOT/tools/cmq"
cleanup() { "$CMQ" down >/dev/null 2>&1; rm -rf "$CMQ_VAR" "$CMQ_VAR.up.log"; }
trap cleanup EXIT

# A random port range may be taken by someone else: try up to three.
up=0
for attempt in 1 2 3; do
    if "$CMQ" up >"$CMQ_VAR.up.log" 2>&1; then up=1; break; fi
    "$CMQ" down >/dev/null 2>&1
    echo "# tools/cmq up failed on port base $CMQ_PORT_BASE (attempt $attempt)"
    export CMQ_PORT_BASE=$((21000 + (RANDOM % 400) * 100))
    rm -rf "$CMQ_VAR"; mkdir -p "$CMQ_VAR"
done
if [ "$up" -ne 1 ]; then
    echo "not ok - tools/cmq up"; cat "$CMQ_VAR.up.log"; echo "0 passed, 1 failed"; exit 1
fi
set -a; . "$CMQ_VAR/cluster.env"; set +a
export CMQCTL="$BUILD/tools/cmqctl"
"$BIN"
rc=$?
"$CMQ" down >/dev/null 2>&1
# A sanitizer build reports memory errors and undefined behaviour in the
# service logs: any such report fails the run.
if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$CMQ_VAR"/log/*.log >/dev/null 2>&1; then
    echo "not ok - sanitizer reports in the service logs:"
    grep -h -A12 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$CMQ_VAR"/log/*.log | head -60 | sed 's/^/# /'
    rc=1
fi
if [ "$rc" -ne 0 ]; then
    echo "# gateway log tail:"; tail -n 20 "$CMQ_VAR/log/gateway.log" | sed 's/^/# /'
fi
exit "$rc"
