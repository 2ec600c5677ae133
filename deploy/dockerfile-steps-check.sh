#!/usr/bin/env bash
# deploy/dockerfile-steps-check.sh: run deploy/Dockerfile's steps on this
# machine, without Docker.
#
#   deploy/dockerfile-steps-check.sh [--context DIR] [--apt] [--keep]
#
# Reads the Dockerfile, and for each stage in order:
#   FROM / ARG / ENV / WORKDIR   tracked (ARG defaults and ENV are exported);
#   COPY . DEST                  copies the build context (default: the
#                                repository root; --context DIR to use another
#                                checkout) minus Dockerfile.dockerignore;
#   COPY --from=STAGE SRC DEST   copies between the stages' directories;
#   RUN                          runs with /bin/sh -c, as Docker does, in the
#                                stage's WORKDIR.
# Each stage gets its own directory under a temp dir, and the image paths the
# Dockerfile uses (/cmq-src, /cmq-stage, /usr/local, /etc/cmq, /var/lib/cmq)
# map into it; nothing is written outside the temp dir.  Two kinds of RUN are
# not executed, because they would change this machine:
#   apt-get    instead, the package list must equal tools/cmq's BUILD_PKGS
#              (build stage), and every package must be installed here (so
#              the next steps run with the same packages); with --apt (root)
#              the step really runs.  The runtime stage's list must also
#              provide every library the built binaries link (readelf NEEDED).
#   useradd    (account creation): reported as skipped.
# Exit 0 when every step passed.  --keep leaves the temp dir for inspection.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CONTEXT="$ROOT"
APT=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --context) CONTEXT="$(cd "$2" && pwd)"; shift 2 ;;
        --apt) APT=1; shift ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--context DIR] [--apt] [--keep]" >&2; exit 2 ;;
    esac
done
# BUILD_PKGS exactly as tools/cmq defines it (the array assignment only)
BUILD_PKGS=$(bash -c "$(sed -n '/^BUILD_PKGS=(/,/)/p' "$CONTEXT/tools/cmq")"'; echo "${BUILD_PKGS[@]}"')
TEST_PKGS=$(bash -c "$(sed -n '/^TEST_PKGS=(/,/)/p' "$CONTEXT/tools/cmq")"'; echo "${TEST_PKGS[@]}"')
[ -n "$BUILD_PKGS" ] || { echo "dockerfile-steps-check: no BUILD_PKGS in $CONTEXT/tools/cmq" >&2; exit 1; }
exec python3 - "$HERE/Dockerfile" "$CONTEXT" "$BUILD_PKGS" "$APT" "$KEEP" "$TEST_PKGS" <<'PY'
import fnmatch, os, re, shlex, shutil, subprocess, sys, tempfile, time

dockerfile, context, build_pkgs, apt, keep = sys.argv[1], sys.argv[2], sys.argv[3].split(), \
    sys.argv[4] == "1", sys.argv[5] == "1"
test_pkgs = sys.argv[6].split()
failures = []
def ok(m): print("ok   " + m, flush=True)
def bad(m): print("FAIL " + m, flush=True); failures.append(m)
def note(m): print("skip " + m, flush=True)

# ---------------------------------------------------------------- parse
instrs, cur = [], ""
for line in open(dockerfile):
    s = line.rstrip("\n")
    if not cur and (s.strip().startswith("#") or not s.strip()):
        continue
    if cur and s.strip().startswith("#"):       # comment inside a continuation
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "; continue
    cur += s
    kw, _, rest = cur.strip().partition(" ")
    instrs.append((kw.upper(), rest.strip()))
    cur = ""

tmp = tempfile.mkdtemp(prefix="cmq-dockerfile-check.")
MAPPED = ["/cmq-src", "/cmq-stage", "/usr/local", "/etc/cmq", "/var/lib/cmq"]
def mapto(stage, path):
    for p in MAPPED:
        if path == p or path.startswith(p + "/"):
            return os.path.join(tmp, stage) + path
    raise SystemExit("dockerfile-steps-check: path %s is outside the mapped set %s" % (path, MAPPED))
def map_text(stage, text):
    return re.sub(r"(?<![\w/.-])(%s)(?=[/\s;&|)'\"]|$)" % "|".join(map(re.escape, MAPPED)),
                  lambda m: os.path.join(tmp, stage) + m.group(1), text)

def ignore_patterns():
    f = dockerfile + ".dockerignore"
    if not os.path.exists(f): return []
    return [l.strip() for l in open(f) if l.strip() and not l.startswith("#")]
def ignored(rel, pats):
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for p in pats:
            if fnmatch.fnmatch(prefix, p) or (p.startswith("**/") and fnmatch.fnmatch(parts[i - 1], p[3:])):
                return True
    return False
def copy_context(dest):
    pats = ignore_patterns()
    n = 0
    for dp, dns, fns in os.walk(context):
        rel_dir = os.path.relpath(dp, context)
        rel_dir = "" if rel_dir == "." else rel_dir
        dns[:] = [d for d in dns if not ignored(os.path.join(rel_dir, d) if rel_dir else d, pats)]
        os.makedirs(os.path.join(dest, rel_dir), exist_ok=True)
        for fn in fns:
            rel = os.path.join(rel_dir, fn) if rel_dir else fn
            if ignored(rel, pats): continue
            shutil.copy2(os.path.join(dp, fn), os.path.join(dest, rel), follow_symlinks=False)
            n += 1
    return n

def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in r.stdout
def apt_packages(cmd):
    m = re.search(r"apt-get install\s+(.*?)(?:&&|;|$)", cmd)
    return [w for w in (m.group(1).split() if m else []) if not w.startswith("-")]

# The image has BUILD_PKGS only; this machine may also have tools/cmq's
# TEST_PKGS (Criterion), which would make meson build the tests here but not
# in Docker.  Their pkg-config files are hidden from the RUN steps.
pcdir = os.path.join(tmp, "pkgconfig")
os.makedirs(pcdir)
hidden = set()
for pkg in test_pkgs:
    r = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    hidden |= {os.path.basename(l) for l in r.stdout.split() if l.endswith(".pc")}
pc_path = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"],
                         capture_output=True, text=True).stdout.strip()
for d in pc_path.split(":"):
    if os.path.isdir(d):
        for f in os.listdir(d):
            if f.endswith(".pc") and f not in hidden and not os.path.exists(os.path.join(pcdir, f)):
                os.symlink(os.path.join(d, f), os.path.join(pcdir, f))
if hidden:
    ok("hidden from pkg-config (TEST_PKGS, not in the image): " + " ".join(sorted(hidden)))

# ---------------------------------------------------------------- run
args, env, stage, stages, workdir = {}, dict(os.environ), None, [], {}
runtime_pkgs = None
t0 = time.time()
try:
    for kw, rest in instrs:
        if kw == "ARG":
            k, _, v = rest.partition("=")
            if stage: env[k] = env.get(k, v)
            else: args[k] = v
        elif kw == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(stage)
            env = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir, **{k: v for k, v in args.items()})
            os.makedirs(os.path.join(tmp, stage), exist_ok=True)
            workdir[stage] = os.path.join(tmp, stage)
            ok("stage %s FROM %s%s" % (stage, image, "" if "bookworm" in image else "  (not bookworm!)"))
            if "bookworm" not in image: bad("base image %s is not Debian bookworm" % image)
        elif kw == "ENV":
            k, _, v = rest.partition("=")
            env[k] = v
        elif kw == "WORKDIR":
            workdir[stage] = mapto(stage, rest)
            os.makedirs(workdir[stage], exist_ok=True)
        elif kw == "COPY":
            words = shlex.split(rest)
            frm = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            src, dst = [w for w in words if not w.startswith("--")]
            if frm:
                s, d = mapto(frm[0], src), mapto(stage, dst)
                shutil.copytree(s, d, dirs_exist_ok=True, symlinks=True)
                ok("COPY --from=%s %s %s" % (frm[0], src, dst))
            else:
                if src != ".": raise SystemExit("only `COPY . DEST` is handled")
                n = copy_context(mapto(stage, dst))
                ok("COPY . %s  (%d files from %s, minus Dockerfile.dockerignore)" % (dst, n, context))
        elif kw == "RUN":
            short = re.sub(r"\s+", " ", rest)[:110]
            if "apt-get" in rest:
                pkgs = apt_packages(rest)
                if stage == stages[0]:
                    if sorted(pkgs) == sorted(build_pkgs):
                        ok("[%s] apt-get list == tools/cmq BUILD_PKGS (%d packages)" % (stage, len(pkgs)))
                    else:
                        bad("[%s] apt-get list differs from tools/cmq BUILD_PKGS: only in Dockerfile %s, "
                            "only in tools/cmq %s" % (stage, sorted(set(pkgs) - set(build_pkgs)),
                                                    sorted(set(build_pkgs) - set(pkgs))))
                else:
                    runtime_pkgs = pkgs
                if apt:
                    r = subprocess.run(["/bin/sh", "-c", rest], env=env)
                    (ok if r.returncode == 0 else bad)("[%s] RUN %s -> %d" % (stage, short, r.returncode))
                missing = [p for p in pkgs if not installed(p)]
                if missing: bad("[%s] packages not installed here: %s (rerun with --apt as root)" % (stage, missing))
                else: ok("[%s] all %d packages are installed on this machine: %s" % (stage, len(pkgs), " ".join(pkgs)))
                continue
            if re.search(r"\b(useradd|groupadd|adduser)\b", rest):
                note("[%s] RUN %s  (creates accounts: not run here)" % (stage, short)); continue
            cmd = map_text(stage, rest)
            t = time.time()
            r = subprocess.run(["/bin/sh", "-c", cmd], cwd=workdir[stage], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode == 0:
                ok("[%s] RUN %s  (%.0fs)" % (stage, short, time.time() - t))
            else:
                bad("[%s] RUN %s -> exit %d" % (stage, short, r.returncode))
                print(r.stdout[-3000:])
                break
        elif kw in ("USER", "CMD", "ENTRYPOINT", "STOPSIGNAL", "EXPOSE", "LABEL", "HEALTHCHECK", "VOLUME"):
            pass
        else:
            bad("instruction %s is not handled by this check" % kw)

    # the runtime stage's packages must provide every library the binaries need
    if not failures and runtime_pkgs is not None:
        bindir = mapto(stages[-1], "/usr/local/bin")
        needed, owners = set(), {}
        for b in sorted(os.listdir(bindir)):
            out = subprocess.run(["readelf", "-d", os.path.join(bindir, b)], capture_output=True, text=True).stdout
            needed |= set(re.findall(r"\(NEEDED\).*\[(.+)\]", out))
        ldd = subprocess.run(["sh", "-c", "ldd %s/*" % bindir], capture_output=True, text=True).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
        for so in sorted(needed):
            owners[so] = "?"
            for p in (paths.get(so, so), os.path.realpath(paths.get(so, so))):
                r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
                if r.returncode == 0:
                    owners[so] = r.stdout.split(":")[0]; break
        base = {"libc6"}
        lacking = {so: p for so, p in owners.items() if p not in runtime_pkgs and p not in base}
        if lacking: bad("runtime stage lacks packages for %s" % lacking)
        else: ok("runtime packages provide every NEEDED library: " +
                 ", ".join("%s(%s)" % (so, p) for so, p in sorted(owners.items())))
finally:
    if keep: print("kept " + tmp)
    else: shutil.rmtree(tmp, ignore_errors=True)

print("dockerfile-steps-check: %s (%.0fs)" % ("FAILED" if failures else "passed", time.time() - t0))
sys.exit(1 if failures else 0)
PY
