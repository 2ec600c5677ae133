"""cluster.py: one private, real cluster for a whole-cluster test.

Every integration script starts the real processes through tools/cmq in a
temporary directory and on a random port range below the ephemeral ports, so
tests never meet each other or a developer's cluster.  This module is that
preamble, written once:

    from cluster import Cluster
    C = Cluster('dur')                      # BUILD_DIR is sys.argv[1]
    def main(): ...  C.up() ... C.partitions() ... C.kill(leader) ...
    C.run(main)                             # down, clean up, exit status

Ports follow tools/cmq: the metadata endpoint is the base, storage node N's
request endpoint is base + 20 + 2 (N - 1).  Node names are 'storage-N'; the
helpers that take a node accept the name or N.  Standard library only.
"""
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cmqhttp import Client, Tap, load_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
STORAGE_NODES = ('storage-1', 'storage-2', 'storage-3')
PARTITIONS = 6  # tools/cmq places 6 partitions on the 3 nodes


def node_name(n):
    return n if isinstance(n, str) else 'storage-%d' % n


def kv_lines(out, start):
    """The `k=v k=v` lines of cmqctl's output that begin with `start`, as dicts."""
    return [dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
            for line in out.splitlines() if line.startswith(start)]


def wait_threads_gone(pid, deadline_s=30):
    """Until every thread of `pid` has exited.  After SIGKILL the thread-group
    leader turns zombie first while other threads (the segment writer may sit
    in fdatasync) still run their exit and hold the process's files, the data
    directory's lock among them: a node started then finds the lock held and
    exits (seen in CI under ASan).  Zombie threads have released them.
    tools/cmq's start_one waits the same way."""
    end = time.time() + deadline_s
    while pid and time.time() < end:
        try:
            tasks = os.listdir('/proc/%d/task' % pid)
        except OSError:
            return  # reaped
        states = []
        for t in tasks:
            try:
                with open('/proc/%d/task/%s/stat' % (pid, t)) as f:
                    states.append(f.read().rsplit(')', 1)[1].split()[0])
            except (OSError, IndexError):
                pass  # that thread is gone
        if all(st in ('Z', 'X') for st in states):
            return
        time.sleep(0.01)
    raise RuntimeError('pid %d still has live threads %d s after SIGKILL' % (pid, deadline_s))


class Cluster:
    """A cluster on a private CMQ_VAR and port base.  `port_lo` spreads the
    scripts' bases apart (CMQ_TEST_PORT_BASE overrides the base);
    `storage_extra` / `gateway_extra` are ini lines tools/cmq appends to each
    storage node's / the gateway's config; `env` adds environment."""

    def __init__(self, prefix, port_lo=20030, storage_extra=None, gateway_extra=None, env=None,
                 build=None):
        self.build = os.path.abspath(build or sys.argv[1])
        self.var = tempfile.mkdtemp(prefix='cmq-%s-' % prefix)
        self.base = int(os.environ.get('CMQ_TEST_PORT_BASE') or
                        port_lo + random.randrange(120) * 100)
        self.env = dict(os.environ, CMQ_VAR=self.var, CMQ_PORT_BASE=str(self.base),
                        CMQ_BUILD_DIR=self.build, CMQ_NO_INSTALL='1')
        if storage_extra:
            self.env['CMQ_STORAGE_EXTRA'] = storage_extra
        if gateway_extra:
            self.env['CMQ_GATEWAY_EXTRA'] = gateway_extra
        self.env.update(env or {})
        self.ctl_path = os.path.join(self.build, 'tools', 'cmqctl')
        self.tap = Tap()
        self.keep = bool(os.environ.get('CMQ_TEST_KEEP'))  # keep CMQ_VAR after the run
        self._cluster_env = None

    # --- tools/cmq and cmqctl ------------------------------------------------
    def cmq(self, *args):
        return subprocess.run([os.path.join(ROOT, 'tools', 'cmq')] + list(args), env=self.env,
                              capture_output=True, text=True)

    def ctl(self, *args):
        return subprocess.run([self.ctl_path] + list(args), capture_output=True, text=True).stdout

    def up(self):
        """`tools/cmq up`, checked; False (and the output shown) when it failed."""
        r = self.cmq('up')
        return self.tap.check('cluster up', r.returncode == 0, r.stdout + r.stderr)

    def cluster_env(self):
        if self._cluster_env is None:
            self._cluster_env = load_env(os.path.join(self.var, 'cluster.env'))
        return self._cluster_env

    def client(self):
        e = self.cluster_env()
        return Client(e['CMQ_HTTP_ENDPOINT'], e['CMQ_SECRET_ID'], e['CMQ_SECRET_KEY'])

    # --- placement and raft --------------------------------------------------
    def node_ep(self, n):
        return 'tcp://127.0.0.1:%d' % (self.base + 20 + 2 * (int(node_name(n).split('-')[1]) - 1))

    def partitions(self):
        return kv_lines(self.ctl('partitions', '--endpoint', 'tcp://127.0.0.1:%d' % self.base),
                        'partition=')

    def wait_placed(self, count=PARTITIONS, tries=150):
        """Until `count` partitions are placed and each has a leader (the
        nodes report leaders in their heartbeats); the last list seen."""
        ps = []
        for _ in range(tries):
            ps = self.partitions()
            if len(ps) == count and all(p['leader'] != '-' for p in ps):
                break
            time.sleep(0.2)
        return ps

    def queue_partition(self):
        """The partition that holds the (single) queue created so far, or None."""
        ps = [p for p in self.partitions() if p.get('queues') == '1']
        return ps[0] if ps else None

    def leader_of(self, part, not_node=None, tries=150):
        """The number of the node that leads partition `part` (other than
        `not_node`), waiting for one; None if none appeared."""
        for _ in range(tries):
            ps = [p for p in self.partitions() if p['partition'] == str(part)]
            if ps and re.match(r'storage-\d+$', ps[0]['leader']):
                n = int(ps[0]['leader'].split('-')[1])
                if n != not_node:
                    return n
            time.sleep(0.1)
        return None

    def raft_status(self, n, part=None, timeout_ms=500):
        """Node n's raft status: {partition: {k: v}}, or partition `part`'s dict
        (None when the node did not answer for it)."""
        out = self.ctl('raft-status', '--endpoint', self.node_ep(n), '--timeout-ms', str(timeout_ms))
        rows = {d['partition']: d for d in kv_lines(out, 'node=') if 'partition' in d}
        return rows if part is None else rows.get(str(part))

    def health(self, n):
        return self.ctl('health', '--endpoint', self.node_ep(n), '--timeout-ms', '300')

    # --- processes and files -------------------------------------------------
    def pid_of(self, name):
        try:
            with open(os.path.join(self.var, 'run', node_name(name) + '.pid')) as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def kill(self, name, sig=signal.SIGKILL):
        """Signals a service (SIGKILL by default) and, for SIGKILL, waits until
        all its threads are gone; its pid."""
        pid = self.pid_of(name)
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            wait_threads_gone(pid)
        return pid

    def log(self, name):
        with open(os.path.join(self.var, 'log', node_name(name) + '.log')) as f:
            return f.read()

    def segments(self, name, part):
        return sorted(glob.glob(os.path.join(self.var, '**', node_name(name), 'p-%s' % part,
                                             '**', '*.seg'), recursive=True))

    def logs(self, names=STORAGE_NODES + ('gateway', 'metadata')):
        out = {}
        for n in names:
            try:
                out[n] = self.log(n)
            except OSError:
                out[n] = ''
        return out

    def stopped_cleanly(self, names=STORAGE_NODES + ('gateway', 'metadata')):
        """After `down`: checks that each service's last log line says it
        exited 0 and that no sanitizer report stands in any log (sanitize
        builds write them there); the logs, by name."""
        logs = self.logs(names)
        last = {n: (l.rstrip().splitlines() or [''])[-1] for n, l in logs.items()}
        self.tap.check('every service stopped cleanly',
                       all(l.endswith('event=exit status=0') for l in last.values()), last)
        reports = ['%s: %s' % (n, '\n'.join(l.splitlines()[i:i + 40]))
                   for n, l in logs.items() for i, line in enumerate(l.splitlines())
                   if 'Sanitizer' in line or 'runtime error' in line][:3]
        self.tap.check('no sanitizer report in the service logs (sanitize builds)', not reports,
                       '\n'.join(reports))
        return logs

    # --- the run -------------------------------------------------------------
    def run(self, main):
        """Runs main() (which returns tap.finish()), always takes the cluster
        down, removes CMQ_VAR unless a check failed or keep is set (each
        cluster preallocates ~1.2 GB of segments), and exits with main's status."""
        rc = 1
        try:
            rc = main()
        finally:
            self.cmq('down')
            if self.keep or self.tap.failed or rc:
                print('# kept %s' % self.var, flush=True)
            else:
                shutil.rmtree(self.var, ignore_errors=True)
        sys.exit(rc)
