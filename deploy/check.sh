#!/usr/bin/env bash
# deploy/check.sh: every offline check of deploy/ in one go.
#
#   deploy/check.sh [--build DIR] [--context DIR]
#
#   systemd-check.sh          units (systemd-analyze verify / security),
#                             ExecStartPre --check-config, example configs
#   compose-check.sh          docker-compose.yml as YAML, its shape, and the
#                             six-process cluster played locally
#   dockerfile-steps-check.sh the Dockerfile's steps run in a temp dir
#
# DIR (--build) is a meson build directory with the daemons (default: build);
# --context is the checkout the Dockerfile check builds (default: this one).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD=()
CONTEXT=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=(--build "$2"); shift 2 ;;
        --context) CONTEXT=(--context "$2"); shift 2 ;;
        *) echo "usage: $0 [--build DIR] [--context DIR]" >&2; exit 2 ;;
    esac
done
rc=0
for c in "systemd-check.sh ${BUILD[*]}" "compose-check.sh ${BUILD[*]}" \
         "dockerfile-steps-check.sh ${CONTEXT[*]}"; do
    echo "==== deploy/$c"
    # shellcheck disable=SC2086
    "$HERE"/$c || rc=1
done
[ $rc = 0 ] && echo "deploy/check.sh: all passed" || echo "deploy/check.sh: FAILED"
exit $rc
