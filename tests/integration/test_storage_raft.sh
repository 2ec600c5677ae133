#!/usr/bin/env bash
# Whole-cluster test of the storage nodes' replication (issue #4): three real
# cmq-storage processes register with metadata, open the partitions its
# placement creates (3 replicas each), elect one leader per partition over
# ZeroMQ, agree on it, elect a new one when the leader is killed, and take a
# restarted node back with its log (segment files) intact.
#
# usage: test_storage_raft.sh BUILD_DIR
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "$1" && pwd)"
export CMQ_VAR; CMQ_VAR="$(mktemp -d /tmp/cmq-raft-XXXXXX)"
# Below 32768: Linux hands out ephemeral ports above it, which could take ours.
export CMQ_PORT_BASE=$((20050 + (RANDOM % 120) * 100))
export CMQ_BUILD_DIR="$BUILD" CMQ_NO_INSTALL=1
CMQ="$ROOT/tools/cmq"
CTL="$BUILD/tools/cmqctl"
pass=0 fail=0
cleanup() { "$CMQ" down >/dev/null 2>&1; rm -rf "$CMQ_VAR"; }
trap cleanup EXIT
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
ep() { echo "tcp://127.0.0.1:$((CMQ_PORT_BASE + 20 + 2 * ($1 - 1)))"; }

# Prints "partition leader term" for every partition on which all `nodes`
# (default 1 2 3) report the same leader and term, and that leader is a leader.
agreed() {
    local nodes=${*:-1 2 3}
    for n in $nodes; do "$CTL" raft-status --endpoint "$(ep "$n")" --timeout-ms 500 || return 1; done |
        awk '{for(i=1;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}
              key=v["partition"]; seen[key]++; pair[key]=pair[key] " " v["leader"] "/" v["term"]
              if (v["role"]=="leader" && v["leader"]==v["node"]) lead[key]=v["leader"] " " v["term"]}
             END{for (p in seen) { n=split(pair[p], a, " "); same=1
                   for(i=2;i<=n;i++) if (a[i]!=a[1]) same=0
                   if (same && a[1] !~ /^0\// && (p in lead)) print p, lead[p] } }' | sort -n
}
wait_agreed() { # wait_agreed COUNT SECONDS [nodes]
    local want=$1 secs=$2; shift 2
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(agreed "$@" | wc -l)" -eq "$want" ] && return 0
        sleep 0.2
    done
    return 1
}

"$CMQ" up >"$CMQ_VAR.up.log" 2>&1 || { cat "$CMQ_VAR.up.log"; not_ok "cluster up"; echo "$pass passed, $fail failed"; exit 1; }
# Placement: 3 nodes x placement.partitions_per_node (2) = 6 partitions, each
# on all three nodes, created once the third node registered.
parts=0
for _ in $(seq 1 100); do
    parts=$(for n in 1 2 3; do "$CTL" raft-status --endpoint "$(ep "$n")" --timeout-ms 500; done | grep -c partition=)
    [ "$parts" -eq 18 ] && break
    sleep 0.2
done
parts=$((parts / 3))
[ "$parts" -eq 6 ] && ok "each node hosts the 6 partitions metadata placed" ||
    not_ok "each node hosts the 6 partitions metadata placed (got $parts)"
"$CTL" partitions --endpoint "tcp://127.0.0.1:$CMQ_PORT_BASE" | sed 's/^/# /'
if wait_agreed "$parts" 15; then ok "all three nodes agree on one leader per partition"; else
    not_ok "all three nodes agree on one leader per partition"; agreed; fi
agreed | sed 's/^/# partition leader term: /'

# Kill the leader of the first partition: the other two elect a new one in a later term.
read -r part1 leader term < <(agreed | head -n 1)
# Raft ids are hashes of node ids: find which storage-N is that leader.
for n in 1 2 3; do
    "$CTL" raft-status --endpoint "$(ep "$n")" | head -n 1 | grep -q "^node=$leader " && leader_n=$n
done
leader_raft=$leader
leader=$leader_n
pid=$(cat "$CMQ_VAR/run/storage-$leader.pid")
kill -KILL "$pid"
others=$(echo 1 2 3 | tr ' ' '\n' | grep -vx "$leader" | tr '\n' ' ')
if wait_agreed "$parts" 15 $others; then ok "survivors ($others) agree on leaders after node $leader died"; else
    not_ok "survivors ($others) agree on leaders after node $leader died"; fi
read -r _ leader2 term2 < <(agreed $others | awk -v p="$part1" '$1==p')
[ "${leader2:-0}" != "$leader_raft" ] && [ "${term2:-0}" -gt "$term" ] &&
    ok "partition $part1 has a new leader in a later term ($term2 > $term)" ||
    not_ok "partition $part1 has a new leader in a later term (got ${leader2:-none}/${term2:-0})"

# The killed node comes back with up, recovers its segments and rejoins.
"$CMQ" up >/dev/null 2>&1
if wait_agreed "$parts" 15; then ok "restarted node $leader rejoins and agrees"; else
    not_ok "restarted node $leader rejoins and agrees"; agreed; fi
commit_of() { "$CTL" raft-status --endpoint "$(ep "$1")" | awk -v p="partition=$part1" '$0 ~ p" " {for(i=1;i<=NF;i++) if ($i ~ /^commit=/) {sub("commit=","",$i); print $i}}'; }
[ "$(commit_of "$leader")" -ge 2 ] && ok "its partition $part1 commit index caught up ($(commit_of "$leader"))" ||
    not_ok "its partition $part1 commit index caught up"
grep -q "event=partition_open partition=$part1 .* entries=[1-9]" "$CMQ_VAR/log/storage-$leader.log" &&
    ok "it recovered entries from its segment files" || not_ok "it recovered entries from its segment files"

"$CMQ" down >/dev/null 2>&1
for n in 1 2 3; do
    tail -n 1 "$CMQ_VAR/log/storage-$n.log" | grep -q "event=exit status=0" &&
        ok "storage-$n stopped cleanly" || not_ok "storage-$n stopped cleanly"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
