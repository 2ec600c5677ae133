#!/usr/bin/env bash
# tcp_send.sh: the CMQ TCP send benchmark of issue 13 (docs/gateway-performance.md).
#
#   tools/bench/tcp_send.sh WORKTREE CMQ_VAR PORT_BASE [CONNS...]
#
# Starts WORKTREE's dev cluster (its build/, tools/cmq up) on its own CMQ_VAR
# and port base, creates queue `tcpbench` (cmq-bench, one HTTP send), then
# for each CONNS (default: 8 32) runs CONNS `cmqctl bench` processes at once
# (one TCP connection each, --depth 1: one send in flight per connection, 1 KiB
# bodies, 10 s; each then drains what it sent) and prints their summed
# msgs/s, the median of their p50 and the worst p99, the gateway's CPU time
# per message sent (utime+stime from /proc) and, when the gateway exports
# them, the coalescing ratio (cmq_gateway_send_requests_total /
# cmq_gateway_send_storage_requests_total over the run).  Stops the cluster.
set -euo pipefail
WT=$1 VAR=$2 BASE=$3
shift 3
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(8 32)
SECS=${SECS:-10}
export CMQ_VAR=$VAR CMQ_PORT_BASE=$BASE CMQ_NO_INSTALL=1
cd "$WT"
trap 'cd "$WT" && CMQ_VAR=$VAR CMQ_PORT_BASE=$BASE tools/cmq down >/dev/null' EXIT
tools/cmq up >/dev/null
set -a
. "$VAR/cluster.env"
set +a
build/tools/cmq-bench --env "$VAR/cluster.env" --queue tcpbench --op send --connections 1 \
    --seconds 1 >/dev/null 2>&1 || true
gw=$(cat "$VAR/run/gateway.pid")
metric() { curl -s "$CMQ_HTTP_ENDPOINT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
cpu() { awk '{ print $14 + $15 }' "/proc/$gw/stat"; }
tck=$(getconf CLK_TCK)
for n in "${CONNS[@]}"; do
    out=$(mktemp -d)
    r0=$(metric cmq_gateway_send_requests_total); s0=$(metric cmq_gateway_send_storage_requests_total)
    c0=$(cpu)
    for i in $(seq 1 "$n"); do
        build/tools/cmqctl bench --queue tcpbench --size 1024 --seconds "$SECS" --depth 1 \
            >"$out/$i" 2>&1 &
    done
    wait
    c1=$(cpu)
    r1=$(metric cmq_gateway_send_requests_total); s1=$(metric cmq_gateway_send_storage_requests_total)
    python3 - "$out" "$n" "$(( c1 - c0 ))" "$tck" "${r0:+$(( r1 - r0 ))}" "${s0:+$(( s1 - s0 ))}" <<'PY'
import glob, re, statistics, sys
out, n, cpu, tck, r, s = sys.argv[1:7]
rate = msgs = errs = 0
p50s, p99s = [], []
for f in glob.glob(out + '/*'):
    t = open(f).read()
    m = re.search(r'messages=(\d+) errors=(\d+)', t)
    if m:
        msgs += int(m.group(1)); errs += int(m.group(2))
    m = re.search(r'([\d.]+) msg/s .*p50=([\d.]+) ms p99=([\d.]+) ms', t)
    if m:
        rate += float(m.group(1)); p50s.append(float(m.group(2))); p99s.append(float(m.group(3)))
line = 'connections=%s msgs/s=%.0f p50(median)=%.2f ms p99(worst)=%.2f ms errors=%d gateway_cpu=%.1f us/msg' % (
    n, rate, statistics.median(p50s) if p50s else 0, max(p99s) if p99s else 0, errs,
    int(cpu) / int(tck) * 1e6 / msgs if msgs else 0)
if s:
    line += ' coalescing=%.2f sends/storage-request (%s/%s)' % (int(r) / int(s) if int(s) else 0, r, s)
print(line)
PY
    rm -rf "$out"
done
