#!/usr/bin/env bash
# Whole-cluster test (issue #2): drives the real processes through tools/cmq
# on a private data directory and port range, then checks that every service
# stops cleanly on SIGTERM with exit status 0.
#
# usage: test_cluster.sh BUILD_DIR
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "$1" && pwd)"
export CMQ_VAR; CMQ_VAR="$(mktemp -d /tmp/cmq-it-XXXXXX)"
# Below 32768: Linux hands out ephemeral ports above it, which could take ours.
export CMQ_PORT_BASE=$((20000 + (RANDOM % 120) * 100))
export CMQ_BUILD_DIR="$BUILD" CMQ_NO_INSTALL=1
CMQ="$ROOT/tools/cmq"
NAMES=(metadata scheduler storage-1 storage-2 storage-3 gateway)
pass=0 fail=0
cleanup() { "$CMQ" down >/dev/null 2>&1; rm -rf "$CMQ_VAR"; }
trap cleanup EXIT

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
pid_of() { cat "$CMQ_VAR/run/$1.pid" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }
env_get() { (. "$CMQ_VAR/cluster.env" && eval "echo \${$1}"); }

# 1. up starts six processes that answer health, writes cluster.env
if "$CMQ" up >"$CMQ_VAR.up.log" 2>&1; then ok "tools/cmq up exits 0"; else
    not_ok "tools/cmq up exits 0"; cat "$CMQ_VAR.up.log"; exit 1; fi
for n in "${NAMES[@]}"; do
    check "$n has a live pid file" alive "$(pid_of "$n")"
done
check "status reports every process healthy" "$CMQ" status
for k in CMQ_HTTP_ENDPOINT CMQ_HTTPS_ENDPOINT CMQ_TCP_ENDPOINT CMQ_SECRET_ID CMQ_SECRET_KEY; do
    check "cluster.env has $k" grep -q "^$k=." "$CMQ_VAR/cluster.env"
done
check "SecretId starts with AKID" grep -q '^CMQ_SECRET_ID=AKID' "$CMQ_VAR/cluster.env"
http=$(env_get CMQ_HTTP_ENDPOINT) https=$(env_get CMQ_HTTPS_ENDPOINT)
body=$(curl -sS --max-time 5 "$http/healthz")
echo "# healthz: $body"
check "healthz over HTTP says every service is up" \
    bash -c '[[ "$1" == *"\"status\":\"ok\""* && "$1" != *down* ]] && for s in metadata scheduler storage-1 storage-2 storage-3; do [[ "$1" == *"\"$s\":\"up\""* ]] || exit 1; done' _ "$body"
check "healthz over HTTPS (HTTP/2, self-signed)" \
    bash -c 'curl -sS --max-time 5 --http2 --cacert "$2" -o /dev/null -w "%{http_code} %{http_version}" "$1/healthz" | grep -q "^200 2"' _ "$https" "$CMQ_VAR/tls/cert.pem"
secret1=$(env_get CMQ_SECRET_ID)

# 2. up again changes nothing for running processes
before=$(for n in "${NAMES[@]}"; do pid_of "$n"; done)
"$CMQ" up >/dev/null 2>&1
after=$(for n in "${NAMES[@]}"; do pid_of "$n"; done)
check "second up keeps the same processes" test "$before" = "$after"

# 3. a killed node comes back with up
victim=$(pid_of storage-2)
kill -KILL "$victim"
while alive "$victim"; do sleep 0.05; done
"$CMQ" up >/dev/null 2>&1
check "killed storage-2 restarted by up" bash -c 'kill -0 "$1" && [ "$1" != "$2" ]' _ "$(pid_of storage-2)" "$victim"

# 4. a port already taken is a clear error
"$CMQ" down >/dev/null 2>&1
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$CMQ_PORT_BASE" &
blocker=$!
# Wait until the blocker really listens (python may take a while to start).
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$CMQ_PORT_BASE") 2>/dev/null && break; sleep 0.05; done
out=$("$CMQ" up 2>&1); rc=$?
kill "$blocker" 2>/dev/null; wait "$blocker" 2>/dev/null
check "up with a taken port fails" test "$rc" -ne 0
check "and says which port" grep -q "port $CMQ_PORT_BASE .*already in use" <<<"$out"
"$CMQ" down >/dev/null 2>&1

# 5. down leaves nothing running; up again brings the same account back
"$CMQ" up >/dev/null 2>&1
pids=$(for n in "${NAMES[@]}"; do pid_of "$n"; done)
"$CMQ" down >/dev/null 2>&1
left=0
for p in $pids; do alive "$p" && left=$((left + 1)); done
check "down leaves none of the six running" test "$left" -eq 0
for n in "${NAMES[@]}"; do
    check "$n logged a clean exit" grep -q "event=exit status=0" "$CMQ_VAR/log/$n.log"
done
"$CMQ" up >/dev/null 2>&1
check "up again brings the same account back" test "$(env_get CMQ_SECRET_ID)" = "$secret1"
"$CMQ" down >/dev/null 2>&1

# 6. each service, started directly, exits 0 within 5 s of SIGTERM
for n in "${NAMES[@]}"; do
    case $n in storage-*) bin="$BUILD/services/storage/cmq-storage" ;; *) bin="$BUILD/services/$n/cmq-$n" ;; esac
    "$bin" --config "$CMQ_VAR/conf/$n.ini" >>"$CMQ_VAR/log/$n.direct.log" 2>&1 &
    pid=$!
    ep=$(awk '/^\[rpc\]/{f=1;next} f&&/^listen/{print $3; exit}' "$CMQ_VAR/conf/$n.ini")
    for _ in $(seq 1 100); do
        "$BUILD/tools/cmqctl" health --endpoint "$ep" --timeout-ms 300 >/dev/null 2>&1 && break
        sleep 0.1
    done
    kill -TERM "$pid"
    t0=$SECONDS
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        not_ok "$n exits within 5 s of SIGTERM"; kill -KILL "$pid"; wait "$pid" 2>/dev/null
    else
        wait "$pid"; rc=$?
        check "$n exits 0 on SIGTERM (rc=$rc, $((SECONDS - t0)) s)" test "$rc" -eq 0
        # the cluster directory is removed at exit: show why it failed
        [ "$rc" -eq 0 ] || tail -n 40 "$CMQ_VAR/log/$n.direct.log" | sed 's/^/# /'
    fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
