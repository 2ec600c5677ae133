#!/usr/bin/env bash
# deploy/compose-check.sh: check deploy/docker-compose.yml without Docker.
#
#   deploy/compose-check.sh [--build DIR] [--port-offset N] [--parse-only]
#
# 1. Parses the compose file as YAML (PyYAML: apt-get install python3-yaml)
#    and checks its shape: the six services of `tools/cmq up`, each with a
#    cmqctl health check, its config mounted from deploy/compose/, named
#    volumes declared, gateway ports published, depends_on targets that exist.
# 2. Runs every mounted config through its daemon's --check-config.
# 3. Plays the cluster on this machine the way compose would: each service's
#    entrypoint + command (compose's $$ unescaped, ${VAR:-default} expanded)
#    runs as a local process, in depends_on order, waiting on each health
#    check (the compose `test` command itself) for `service_healthy`; then
#    GET /healthz must answer 200 with every service up; then every process
#    gets SIGTERM and must exit 0 within its stop_grace_period.
#    What differs from Docker, and only that: container paths (/etc/cmq/...,
#    volume mount points) map to a temporary directory, service host names
#    map to 127.0.0.1, '*' and 0.0.0.0 binds map to 127.0.0.1, and every port
#    is shifted by --port-offset (default 14000) so a running dev cluster on
#    the same machine is not disturbed.
#
# DIR is a meson build directory with the daemons and cmqctl (default: build).
# Exit 0 when everything passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="$ROOT/build"
OFFSET=14000  # ports stay below 32768, where Linux hands out ephemeral ports
PARSE_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD="$(cd "$2" && pwd)"; shift 2 ;;
        --port-offset) OFFSET="$2"; shift 2 ;;
        --parse-only) PARSE_ONLY=1; shift ;;
        *) echo "usage: $0 [--build DIR] [--port-offset N] [--parse-only]" >&2; exit 2 ;;
    esac
done
python3 -c 'import yaml' 2>/dev/null ||
    { echo "compose-check: PyYAML is missing (apt-get install python3-yaml)" >&2; exit 1; }
exec python3 - "$HERE/docker-compose.yml" "$BUILD" "$OFFSET" "$PARSE_ONLY" <<'PY'
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request, ssl

compose_path, build, offset, parse_only = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
deploy = os.path.dirname(compose_path)
failures = []

def ok(msg): print("ok   " + msg)
def bad(msg): print("FAIL " + msg); failures.append(msg)

import yaml
with open(compose_path) as f:
    doc = yaml.safe_load(f)           # resolves anchors and << merge keys
ok("%s parses as YAML" % os.path.relpath(compose_path))

# ---------------------------------------------------------------- shape
SIX = ["metadata", "scheduler", "storage-1", "storage-2", "storage-3", "gateway"]
services = doc.get("services") or {}
for n in SIX:
    if n not in services: bad("service %s missing" % n)
started = [n for n, s in services.items() if not s.get("profiles")]
if sorted(started) != sorted(SIX):
    bad("services started by `up` are %s, expected the six of tools/cmq" % sorted(started))
else:
    ok("`up` starts exactly: " + " ".join(SIX))
declared_vols = set((doc.get("volumes") or {}).keys())
used_vols = set()

def interpolate(s):
    """Compose variable interpolation: ${VAR:-default}, ${VAR}, $VAR, $$."""
    def rep(m):
        if m.group(0) == "$$": return "$"
        name = m.group(1) or m.group(3)
        default = m.group(2)
        v = os.environ.get(name)
        if v is None or (v == "" and default is not None):
            return default if default is not None else ""
        return v
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", rep, s)

def as_list(v):
    if v is None: return []
    return [v] if isinstance(v, str) else list(v)

def dur(s):
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(s))
    return int(m.group(1)) / {"ms": 1000, "s": 1, "m": 1 / 60}[m.group(2)] if m else None

plan = {}
for n in SIX:
    s = services.get(n)
    if not s: continue
    if s.get("image") != "cmq:dev" or "build" not in s:
        bad("%s: expected image cmq:dev with a build section" % n)
    b = s.get("build") or {}
    if os.path.normpath(os.path.join(deploy, b.get("context", ""), b.get("dockerfile", ""))) != \
            os.path.join(deploy, "Dockerfile"):
        bad("%s: build does not point at deploy/Dockerfile" % n)
    mounts = {}
    for v in as_list(s.get("volumes")):
        src, dst = v.split(":")[0], v.split(":")[1]
        if src.startswith("."):
            p = os.path.normpath(os.path.join(deploy, src))
            if not os.path.isfile(p): bad("%s: mounted file %s does not exist" % (n, src))
            mounts[dst] = ("file", p)
        else:
            used_vols.add(src)
            if src not in declared_vols: bad("%s: volume %s is not declared" % (n, src))
            mounts[dst] = ("volume", src)
    cmd = [interpolate(x) for x in as_list(s.get("entrypoint")) + as_list(s.get("command"))]
    conf = [cmd[i + 1] for i, x in enumerate(cmd[:-1]) if x == "--config"]
    if len(conf) != 1 or conf[0] not in mounts or mounts[conf[0]][0] != "file":
        bad("%s: --config must name a mounted config file" % n); continue
    hc = s.get("healthcheck") or {}
    test = [interpolate(x) for x in as_list(hc.get("test"))]
    if test[:4] != ["CMD", "cmqctl", "health", "--endpoint"]:
        bad("%s: healthcheck is not `cmqctl health --endpoint ...`" % n)
    grace = dur(s.get("stop_grace_period", "10s"))
    if s.get("stop_signal", "SIGTERM") != "SIGTERM" or not grace or grace <= 5:
        bad("%s: needs SIGTERM and a stop_grace_period above 5 s" % n)
    deps = s.get("depends_on") or {}
    deps = {d: (c or {}).get("condition", "service_started") for d, c in
            (deps.items() if isinstance(deps, dict) else ((d, None) for d in deps))}
    for d in deps:
        if d not in services: bad("%s depends on unknown service %s" % (n, d))
    plan[n] = dict(cmd=cmd, conf=conf[0], mounts=mounts, test=test[1:], deps=deps, grace=grace,
                   ports=[interpolate(p) for p in as_list(s.get("ports"))])
unused = declared_vols - used_vols
if unused: bad("declared volumes never used: %s" % sorted(unused))
gw_ports = plan.get("gateway", {}).get("ports", [])
if len(gw_ports) < 2: bad("gateway: HTTP and HTTPS ports are not published")
else: ok("gateway publishes " + ", ".join(gw_ports))
if not failures: ok("shape: configs mounted, named volumes declared, health checks use cmqctl")

# the endpoints in the configs must be what the health checks and depends_on use
def ini_values(path):
    sec, out = "", {}
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;": continue
        if line.startswith("["): sec = line[1:-1].strip(); continue
        k, _, v = line.partition("=")
        out[sec + "." + k.strip()] = v.strip()
    return out
for n, p in plan.items():
    vals = ini_values(p["mounts"][p["conf"]][1])
    port = vals.get("rpc.listen", "").rsplit(":", 1)[-1]
    hc_ep = p["test"][p["test"].index("--endpoint") + 1] if "--endpoint" in p["test"] else ""
    if not hc_ep.endswith(":" + port): bad("%s: health check %s is not its rpc.listen port %s" % (n, hc_ep, port))
    for k, v in vals.items():
        if k in ("cluster.advertise_rpc", "cluster.advertise_raft"):
            continue   # a node's own name, as peers and gateways should dial it
        for host in re.findall(r"tcp://([A-Za-z][A-Za-z0-9-]*):", v):
            if host not in services: bad("%s: %s names host %s, not a compose service" % (n, k, host))
            elif host not in p["deps"]: bad("%s: %s uses %s but does not depend on it" % (n, k, host))
    if n == "gateway":
        pub = {x.rsplit(":", 1)[-1] for x in p["ports"]}
        for k in ("http.listen", "https.listen", "tcp.listen"):
            if vals.get(k) and vals[k].rsplit(":", 1)[-1] not in pub:
                bad("gateway: %s %s is not published" % (k, vals[k]))
if not failures: ok("configs, health checks, depends_on and published ports agree")

# ---------------------------------------------------------------- --check-config
bindir = None
def binary(name): return os.path.join(build, "services", name[4:], name) if name.startswith("cmq-") \
    else os.path.join(build, "tools", name)
for n, p in plan.items():
    daemon = "cmq-" + re.sub(r"-\d+$", "", n)
    r = subprocess.run([binary(daemon), "--config", p["mounts"][p["conf"]][1], "--check-config"],
                       capture_output=True, text=True)
    (ok if r.returncode == 0 else bad)("%s --check-config %s%s" % (daemon, os.path.relpath(
        p["mounts"][p["conf"]][1]), "" if r.returncode == 0 else ": " + r.stderr.strip()))

if parse_only or failures:
    print("compose-check: %s" % ("FAILED" if failures else "passed (parse only)"))
    sys.exit(1 if failures else 0)

# ---------------------------------------------------------------- play the cluster locally
tmp = tempfile.mkdtemp(prefix="cmq-compose-check.")
bindir = os.path.join(tmp, "bin"); os.makedirs(bindir)
for b in ("cmq-metadata", "cmq-scheduler", "cmq-storage", "cmq-gateway", "cmqctl"):
    os.symlink(binary(b), os.path.join(bindir, b))
env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
hosts = "|".join(re.escape(h) for h in services)

def shift_ports(s):
    return re.sub(r"(?<=:)(1\d{4})\b", lambda m: str(int(m.group(1)) + offset), s)
def localize(s, mapping):
    for cpath in sorted(mapping, key=len, reverse=True):
        s = s.replace(cpath, mapping[cpath])
    s = re.sub(r"tcp://(\*|0\.0\.0\.0|%s):" % hosts, "tcp://127.0.0.1:", s)
    s = re.sub(r"(?m)^(\s*listen\s*=\s*)0\.0\.0\.0:", r"\g<1>127.0.0.1:", s)
    return shift_ports(s)

procs, logs = {}, {}
def healthy(n):
    return subprocess.run(plan[n]["hc"], env=env, capture_output=True).returncode == 0

def stop_all():
    for n in reversed(list(procs)):
        pr = procs[n]
        if pr.poll() is None:
            pr.send_signal(signal.SIGTERM)
            try:
                rc = pr.wait(timeout=plan[n]["grace"])
                (ok if rc == 0 else bad)("%s: SIGTERM -> exit %d" % (n, rc))
            except subprocess.TimeoutExpired:
                pr.kill(); pr.wait(); bad("%s did not exit within %ss of SIGTERM" % (n, plan[n]["grace"]))
        else:
            bad("%s had already exited with %s" % (n, pr.returncode))

try:
    for n, p in plan.items():
        mapping = {}
        for dst, (kind, src) in p["mounts"].items():
            local = os.path.join(tmp, "vol", src if kind == "volume" else n + dst.replace("/", "_"))
            if kind == "volume": os.makedirs(local, exist_ok=True)
            mapping[dst] = local
        for dst, (kind, src) in p["mounts"].items():
            if kind == "file":
                with open(src) as f, open(mapping[dst], "w") as g:
                    g.write(localize(f.read(), mapping))
        p["run"] = [localize(x, mapping) for x in p["cmd"]]
        p["hc"] = [localize(x, mapping) for x in p["test"]]
        for port in re.findall(r":(\d{5})\b", open(mapping[p["conf"]]).read()):
            if subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + port],
                              capture_output=True).returncode == 0:
                raise SystemExit("compose-check: port %s is taken; use --port-offset" % port)
    order, left = [], dict(plan)
    while left:
        ready = [n for n in left if all(d in order for d in plan[n]["deps"])]
        if not ready: raise SystemExit("compose-check: depends_on has a cycle")
        for n in ready: order.append(n); del left[n]
    for n in order:
        p = plan[n]
        deadline = time.time() + 30
        for d, cond in p["deps"].items():
            if cond == "service_healthy":
                while not healthy(d):
                    if time.time() > deadline or procs[d].poll() is not None:
                        raise SystemExit("compose-check: %s never became healthy for %s" % (d, n))
                    time.sleep(0.2)
        logs[n] = open(os.path.join(tmp, n + ".log"), "w")
        procs[n] = subprocess.Popen(p["run"], env=env, stdout=logs[n], stderr=subprocess.STDOUT,
                                    cwd=tmp, start_new_session=True)
        ok("started %s: %s" % (n, " ".join(os.path.basename(x) if x.startswith(bindir) else
                                             x.replace(tmp, "$TMP") for x in p["run"][-3:])))
    deadline = time.time() + 30
    for n in order:
        while not healthy(n):
            if time.time() > deadline or procs[n].poll() is not None:
                raise SystemExit("compose-check: %s is not healthy" % n)
            time.sleep(0.2)
        ok("%s healthy (its compose healthcheck command)" % n)
    port = 17180 + offset
    body, code = None, None
    for _ in range(50):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=3) as r:
                code, body = r.status, json.loads(r.read())
                break
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read()
        time.sleep(0.2)
    if code == 200 and body.get("status") == "ok" and all(v == "up" for v in body["services"].values()) \
            and len(body["services"]) == 6:
        ok("GET /healthz -> 200 %s" % json.dumps(body["services"], sort_keys=True))
    else:
        bad("GET /healthz -> %s %s" % (code, body))
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % (17181 + offset), timeout=3,
                                    context=ctx) as r:
            ok("GET https /healthz -> %d (certificate made by the gateway entrypoint)" % r.status)
    except Exception as e:
        bad("GET https /healthz: %s" % e)
finally:
    stop_all()
    for f in logs.values(): f.close()
    if failures:
        for n in logs:
            print("---- %s log (tail)" % n)
            print("".join(open(os.path.join(tmp, n + ".log")).readlines()[-5:]), end="")
    shutil.rmtree(tmp, ignore_errors=True)

print("compose-check: %s" % ("FAILED" if failures else "passed"))
sys.exit(1 if failures else 0)
PY
