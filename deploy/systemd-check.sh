#!/usr/bin/env bash
# deploy/systemd-check.sh: check deploy/systemd and deploy/config offline.
#
#   deploy/systemd-check.sh [--build DIR]
#
# Builds a throw-away root in a temp directory laid out the way README.md's
# install steps leave a host (binaries from `meson install` in /usr/local/bin,
# units in /etc/systemd/system, the example configs in /etc/cmq with
# storage-2/3 derived from storage-1 as its comment says, the cmq account
# created there by systemd-sysusers --root), then:
#   1. `systemd-analyze verify --root` on cmq.target and every unit (with
#      instances 1..3 of the template); any message at all is a failure,
#      since verify reports unknown keys and bad values only as warnings;
#   2. `systemd-analyze security --offline=true` exposure of every service
#      (must be at most 2.0 = "OK");
#   3. static rules from the brief that verify does not check (Type,
#      User, Restart, TimeoutStopSec above the 5 s grace, KillSignal,
#      hardening keys, After= metadata, PartOf/WantedBy cmq.target);
#   4. every ExecStartPre (the --check-config) and the example configs:
#      each exits 0 against the real binaries, and every key the binary
#      accepts (--help) is set and commented in the example;
#   5. the example 3-host layout played on this host: for every unit, its
#      StateDirectory= made under the temp root and its ExecStart= run on the
#      example config with the 10.0.0.x addresses moved to 127.0.0.1 and ports
#      shifted by $CMQ_CHECK_PORT_OFFSET (15000); all must answer health and
#      /healthz, then exit 0 on SIGTERM within the unit's TimeoutStopSec.
#      (Runs without the sandbox: no systemd PID 1 here.)
# Nothing outside the temp dir is changed.
# DIR is a meson build directory (default: build).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="$ROOT/build"
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD="$(cd "$2" && pwd)"; shift 2 ;;
        *) echo "usage: $0 [--build DIR]" >&2; exit 2 ;;
    esac
done
FAIL=0
ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; FAIL=1; }
command -v systemd-analyze >/dev/null ||
    { echo "systemd-check: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }

R=$(mktemp -d /tmp/cmq-systemd-check.XXXXXX)
declare -A PID CONF
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$R"
}
trap cleanup EXIT
U="$R/etc/systemd/system"
mkdir -p "$R/usr/local/bin" "$U" "$R/etc/cmq" "$R/etc/sysusers.d" "$R/usr/lib/systemd" "$R/var/lib"
# the host's own system units, so verify can resolve network-online.target etc.
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
for b in metadata scheduler storage gateway; do
    install -m 0755 "$BUILD/services/$b/cmq-$b" "$R/usr/local/bin/"
done
install -m 0755 "$BUILD/tools/cmqctl" "$R/usr/local/bin/"
install -m 0644 "$HERE"/systemd/cmq*.service "$HERE/systemd/cmq.target" "$U/"
install -m 0644 "$HERE/systemd/cmq.sysusers" "$R/etc/sysusers.d/cmq.conf"
if systemd-sysusers --root="$R" >/dev/null 2>&1 && grep -q '^cmq:' "$R/etc/passwd"; then
    ok "systemd-sysusers created the cmq account from systemd/cmq.sysusers"
else
    bad "systemd-sysusers could not create the cmq account"
fi
for f in metadata scheduler gateway storage-1; do install -m 0644 "$HERE/config/$f.ini" "$R/etc/cmq/"; done
# storage-2/3: the edits storage-1.ini's header describes
for n in 2 3; do
    sed -e "s/^id = storage-1/id = storage-$n/" -e "s/^id = 1\$/id = $n/" \
        -e "s|^listen = tcp://10.0.0.11:17120|listen = tcp://10.0.0.1$n:$((17120 + 2 * (n - 1)))|" \
        -e "s|^listen = tcp://10.0.0.11:17121|listen = tcp://10.0.0.1$n:$((17121 + 2 * (n - 1)))|" \
        -e "s|^dir = /var/lib/cmq/storage-1|dir = /var/lib/cmq/storage-$n|" \
        "$HERE/config/storage-1.ini" >"$R/etc/cmq/storage-$n.ini"
done

UNITS=(cmq.target cmq-metadata.service cmq-scheduler.service cmq-storage@1.service
       cmq-storage@2.service cmq-storage@3.service cmq-gateway.service)
SERVICES=("${UNITS[@]:1}")

# 1. verify
if out=$(cd "$U" && systemd-analyze verify --root="$R" "${UNITS[@]}" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify: ${UNITS[*]} (no messages)"
else
    bad "systemd-analyze verify:"
    printf '%s\n' "$out"
fi

# 2. security exposure
for u in cmq-metadata.service cmq-scheduler.service cmq-storage@1.service cmq-gateway.service; do
    line=$(cd "$U" && systemd-analyze security --offline=true --root="$R" "$u" 2>&1 | tail -n 1)
    score=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
        ok "systemd-analyze security $u: exposure $score"
    else
        bad "systemd-analyze security $u: $line"
    fi
done

# 3. static rules
need() { # need FILE REGEX WHAT
    grep -Eq "$2" "$1" || bad "$(basename "$1"): missing $3"
}
for f in "$HERE"/systemd/cmq*.service; do
    for k in '^Type=(exec|simple)$' '^User=cmq$' '^Restart=on-failure$' '^RestartSec=' \
             '^KillSignal=SIGTERM$' '^LimitNOFILE=[0-9]{5,}$' '^NoNewPrivileges=yes$' \
             '^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$' '^PrivateDevices=yes$' \
             '^ProtectKernelTunables=yes$' '^ProtectKernelModules=yes$' '^ProtectKernelLogs=yes$' \
             '^ProtectControlGroups=yes$' '^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$' \
             '^RestrictNamespaces=yes$' '^LockPersonality=yes$' '^MemoryDenyWriteExecute=yes$' \
             '^SystemCallArchitectures=native$' '^CapabilityBoundingSet=$' '^PartOf=cmq.target$' \
             '^WantedBy=cmq.target$' '^ExecStartPre=.* --check-config$'; do
        need "$f" "$k" "$k"
    done
    t=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$f")
    if [ -z "$t" ] || [ "$t" -le 5 ] || [ "$t" -gt 30 ]; then
        bad "$(basename "$f"): TimeoutStopSec should be a bit above the 5 s grace"
    fi
done
for f in cmq-storage@.service cmq-gateway.service; do
    need "$HERE/systemd/$f" '^After=.*cmq-metadata\.service' "After=cmq-metadata.service"
done
need "$HERE/systemd/cmq-storage@.service" '^StateDirectory=cmq/storage-%i$' "StateDirectory=cmq/storage-%i"
need "$HERE/systemd/cmq-storage@.service" '/etc/cmq/storage-%i\.ini' "config /etc/cmq/storage-%i.ini"
need "$HERE/systemd/cmq-metadata.service" '^StateDirectory=cmq/metadata$' "StateDirectory=cmq/metadata"
need "$HERE/systemd/cmq.target" '^WantedBy=multi-user.target$' "WantedBy=multi-user.target"
[ $FAIL = 0 ] && ok "static rules: Type, User, Restart, timeouts, hardening, ordering, cmq.target"

# 4. ExecStartPre against the real binaries, with paths under the temp root
for u in "${SERVICES[@]}"; do
    inst=""; file="$u"
    case "$u" in *@*.service) inst=${u#*@}; inst=${inst%.service}; file="${u%%@*}@.service" ;; esac
    while IFS= read -r cmd; do
        cmd=${cmd//%i/$inst}
        cmd=${cmd//\/usr\/local\/bin\//$R/usr/local/bin/}
        cmd=${cmd//\/etc\/cmq\//$R/etc/cmq/}
        if msg=$(bash -c "$cmd" 2>&1); then
            ok "$u ExecStartPre: ${cmd//$R/}"
        else
            bad "$u ExecStartPre: ${cmd//$R/}: $msg"
        fi
    done < <(sed -n 's/^ExecStartPre=//p' "$U/$file")
done

# 4b. the examples set (and comment) every key the binaries accept today
for f in metadata scheduler storage-1 gateway; do
    d=${f%-1}
    want=$("$BUILD/services/$d/cmq-$d" --help | awk '/^  [a-z_]+\.[a-z_.]+ /{print $1}' | sort)
    have=$(awk '/^\[/{s=substr($0,2,length($0)-2)} /^[a-z_]+ *=/{sub(/ *=.*/,""); print s"."$0}' \
           "$HERE/config/$f.ini" | sort)
    missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
    extra=$(comm -13 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
    uncommented=$(awk '/^[a-z_]+ *=/ && prev !~ /^#/ {print FILENAME": "$1} {prev=$0}' "$HERE/config/$f.ini")
    if [ -z "$missing$extra$uncommented" ]; then
        ok "config/$f.ini sets and comments all $(printf '%s\n' "$want" | wc -l) keys of cmq-$d"
    else
        [ -n "$missing" ] && bad "config/$f.ini lacks keys cmq-$d accepts: $(tr "\n" " " <<<"$missing")"
        [ -n "$extra" ] && bad "config/$f.ini sets keys cmq-$d does not list: $(tr "\n" " " <<<"$extra")"
        [ -n "$uncommented" ] && bad "keys without a comment line above: $(tr "\n" " " <<<"$uncommented")"
    fi
done

# 6. the example layout played on this host: each unit's StateDirectory made,
#    its ExecStart run (as root, without the sandbox) on the example config
#    with the 10.0.0.x / 0.0.0.0 addresses moved to 127.0.0.1 and every port
#    shifted by $OFF; then health, /healthz, and SIGTERM -> exit 0 within the
#    unit's TimeoutStopSec.
OFF=${CMQ_CHECK_PORT_OFFSET:-15000}  # ports stay below 32768, where Linux hands out ephemeral ports
L="$R/local"
mkdir -p "$L/etc/cmq/tls" "$L/var/lib" "$L/log"
localize() {
    sed -E -e 's/10\.0\.0\.1[123]/127.0.0.1/g' -e 's/(listen = )0\.0\.0\.0:/\1127.0.0.1:/' \
        -e "s|/var/lib/cmq|$L/var/lib/cmq|g" -e "s|/etc/cmq/|$L/etc/cmq/|g" "$1" |
        perl -pe "s/(?<=:)(1\d{4})\b/\$1+$OFF/ge"
}
for f in "$R"/etc/cmq/*.ini; do localize "$f" >"$L/etc/cmq/$(basename "$f")"; done
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
    -keyout "$L/etc/cmq/tls/key.pem" -out "$L/etc/cmq/tls/cert.pem" >/dev/null 2>&1
rpc_of() { # the [rpc] listen of a localized config
    awk '/^\[/{s=$0} s=="[rpc]" && /^listen *=/{sub(/^listen *= */,""); print; exit}' "$1"
}
STARTED=()
for u in "${SERVICES[@]}"; do
    inst=""; file="$u"
    case "$u" in *@*.service) inst=${u#*@}; inst=${inst%.service}; file="${u%%@*}@.service" ;; esac
    sd=$(sed -n 's/^StateDirectory=//p' "$U/$file"); sd=${sd//%i/$inst}
    [ -n "$sd" ] && install -d -m 0750 "$L/var/lib/$sd"
    wd=$(sed -n 's/^WorkingDirectory=//p' "$U/$file"); wd=${wd//%i/$inst}
    [ "$wd" = / ] || wd="$L$wd"
    cmd=$(sed -n 's/^ExecStart=//p' "$U/$file"); cmd=${cmd//%i/$inst}
    cmd=${cmd//\/usr\/local\/bin\//$R/usr/local/bin/}
    cmd=${cmd//\/etc\/cmq\//$L/etc/cmq/}
    CONF[$u]=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$cmd")
    (cd "$wd" && exec $cmd) >"$L/log/$u.log" 2>&1 &
    PID[$u]=$!
    STARTED+=("$u")
done
deadline=$((SECONDS + 30))
for u in "${STARTED[@]}"; do
    ep=$(rpc_of "${CONF[$u]}")
    until "$R/usr/local/bin/cmqctl" health --endpoint "$ep" --timeout-ms 500 >/dev/null 2>&1; do
        if ! kill -0 "${PID[$u]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            bad "$u (example config) is not healthy at $ep"; tail -n 3 "$L/log/$u.log"; break
        fi
        sleep 0.2
    done
done
http=$(sed -n 's/^listen = \(127.0.0.1:[0-9]*\)$/\1/p' "$L/etc/cmq/gateway.ini" | head -n 1)
body=$(python3 -c 'import sys,urllib.request,urllib.error
try: r = urllib.request.urlopen("http://%s/healthz" % sys.argv[1], timeout=3); print(r.status, r.read().decode())
except urllib.error.HTTPError as e: print(e.code, e.read().decode())
except Exception as e: print(0, e)' "$http")
if [[ "$body" == 200* ]] && ! grep -q down <<<"$body"; then
    ok "example layout on 127.0.0.1 (ports +$OFF): all healthy; /healthz: $body"
else
    bad "example layout: /healthz answered: $body"
fi
for ((k = ${#STARTED[@]} - 1; k >= 0; k--)); do
    u=${STARTED[$k]}; file=$u
    case "$u" in *@*.service) file="${u%%@*}@.service" ;; esac
    t=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$U/$file")
    kill -TERM "${PID[$u]}" 2>/dev/null || true
    end=$((SECONDS + t))
    while kill -0 "${PID[$u]}" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    if kill -0 "${PID[$u]}" 2>/dev/null; then
        kill -KILL "${PID[$u]}"; wait "${PID[$u]}" 2>/dev/null || true
        bad "$u: still running ${t}s after SIGTERM (systemd would SIGKILL it and mark the unit failed)"
        tail -n 2 "$L/log/$u.log"
    elif wait "${PID[$u]}"; then
        ok "$u: SIGTERM -> exit 0 within TimeoutStopSec=${t}s"
    else
        bad "$u: SIGTERM -> exit $?"
    fi
    unset "PID[$u]"   # reaped: the trap must not signal a PID that may be reused
done

[ $FAIL = 0 ] && echo "systemd-check: passed" || echo "systemd-check: FAILED"
exit $FAIL
