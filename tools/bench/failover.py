#!/usr/bin/env python3
"""Failover benchmark: how long a queue is unwritable when its partition's
leader dies, and how many sends are refused around it.

Starts the dev cluster (tools/cmq up) on its own CMQ_VAR and port base (or
uses one already running there), creates a queue, and sends to it
continuously: every --interval-ms a send is handed to a pool of workers
(each with its own HTTP keep-alive connection to the gateway), so a send that
hangs never delays the next one.  Then, --kills times: finds the storage node
that leads the queue's partition (asking the nodes themselves: metadata's map
lags by a heartbeat), SIGKILLs it, measures the time from the kill to the
first acknowledged send that started after the kill (failover_ms: the queue
takes writes again) and, for one more client that sends one message at a
time (so a send hanging on the dead node delays it), the time from the kill
to its next acknowledged send (serial_ms), keeps the node down for
--down-s, restarts it (tools/cmq up), and waits until it is healthy, its
replica has caught up and leadership has settled before the next kill.

Prints one line per kill and a summary: failover p50/p99/max (nearest rank),
refused sends (during a failover, i.e. before the first acknowledged send
after the kill, and outside failovers, which includes the node's restart and
leadership moving back to it), and CPU (cluster processes, this script, and
the whole machine).  Standard library only.

usage: tools/cmq failover-bench [--kills N] [--interval-ms MS] [--down-s S]
                                [--port-base B] [--var DIR] [--keep]
       (or python3 tools/bench/failover.py --build BUILD_DIR ...)
"""
import argparse
import os
import queue
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
from cmqhttp import Client, load_env  # noqa: E402

NAMES = ('metadata', 'scheduler', 'storage-1', 'storage-2', 'storage-3', 'gateway')
CLK_TCK = os.sysconf('SC_CLK_TCK')


def raft_id_of(name):
    """The storage node's raft id: FNV-1a 64 of its node id, never 0, as
    raft_id_of in node.c computes it with common/base/hash.h (FROZEN there:
    the id is on disk; tests/unit/common/base/test_hash.c pins its values)."""
    h = 1469598103934665603
    for b in name.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h or 1


def pick_base():
    """A free port base below the ephemeral range, away from the lead's 17100."""
    for _ in range(50):
        base = 21070 + random.randrange(100) * 100
        free = True
        for off in (0, 1, 10, 20, 21, 22, 23, 24, 25, 50, 80, 81, 82):
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', base + off)) == 0:
                    free = False
                    break
        if free:
            return base
    raise SystemExit('failover-bench: no free port base found')


def pctl(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


class Cluster:
    def __init__(self, build, var, base):
        self.build, self.var, self.base = build, var, base
        self.env = dict(os.environ, CMQ_VAR=var, CMQ_PORT_BASE=str(base), CMQ_BUILD_DIR=build,
                        CMQ_NO_INSTALL='1')
        self.ctl = os.path.join(build, 'tools', 'cmqctl')
        self.cpu = {}  # pid -> last seen utime+stime ticks
        self.cpu0 = {}  # the same at the start of the measurement

    def cmq(self, *args):
        return subprocess.run([os.path.join(ROOT, 'tools', 'cmq')] + list(args), env=self.env,
                              capture_output=True, text=True)

    def pid(self, name):
        try:
            return int(open(os.path.join(self.var, 'run', name + '.pid')).read())
        except (OSError, ValueError):
            return 0

    def node_ep(self, name):
        return 'tcp://127.0.0.1:%d' % (self.base + 20 + 2 * (int(name.split('-')[1]) - 1))

    def partitions(self):
        out = subprocess.run([self.ctl, 'partitions', '--endpoint',
                              'tcp://127.0.0.1:%d' % self.base],
                             capture_output=True, text=True).stdout
        return [dict(kv.split('=', 1) for kv in line.split()) for line in out.splitlines()
                if line.startswith('partition=')]

    def raft_status(self, name, part):
        """The node's own view of partition `part` (dict), or None if it does not answer."""
        out = subprocess.run([self.ctl, 'raft-status', '--endpoint', self.node_ep(name),
                              '--timeout-ms', '300'], capture_output=True, text=True).stdout
        for line in out.splitlines():
            kv = dict(x.split('=', 1) for x in line.split() if '=' in x)
            if kv.get('partition') == str(part):
                return kv
        return None

    def leader_of(self, part):
        """(name, status) of the node that leads `part` in the highest term, by the nodes."""
        best = None
        for i in (1, 2, 3):
            name = 'storage-%d' % i
            st = self.raft_status(name, part)
            if st and st['role'] == 'leader' and (best is None or
                                                  int(st['term']) > int(best[1]['term'])):
                best = (name, st)
        return best

    def sample_cpu(self):
        for n in NAMES:
            p = self.pid(n)
            try:
                f = open('/proc/%d/stat' % p).read().rsplit(')', 1)[1].split()
                self.cpu[p] = int(f[11]) + int(f[12])
            except (OSError, IndexError, ValueError):
                pass

    def cpu_start(self):
        self.sample_cpu()
        self.cpu0 = dict(self.cpu)

    def cpu_s(self):
        return sum(v - self.cpu0.get(p, 0) for p, v in self.cpu.items()) / CLK_TCK


def machine_busy():
    f = open('/proc/stat').readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class Sender:
    """Hands one SendMessage to a worker every interval; records each answer."""

    def __init__(self, env, qname, interval_ms, workers):
        self.env, self.qname, self.interval = env, qname, interval_ms / 1000.0
        self.tasks = queue.Queue()
        self.idle = workers
        self.lock = threading.Lock()
        self.log = []  # (t_start, t_end, ok, code)
        self.skipped = 0
        self.stop = False
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(workers)]
        self.threads.append(threading.Thread(target=self.ticker, daemon=True))
        self.serial_log = []  # (t_start, t_end, ok) of the one-at-a-time sender
        self.threads.append(threading.Thread(target=self.serial, daemon=True))
        for t in self.threads:
            t.start()

    def ticker(self):
        nxt = time.monotonic()
        seq = 0
        while not self.stop:
            nxt += self.interval
            with self.lock:
                busy = self.idle == 0
                if not busy:
                    self.idle -= 1
            if busy:
                self.skipped += 1
            else:
                seq += 1
                self.tasks.put(seq)
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()

    def worker(self):
        c = Client(self.env['CMQ_HTTP_ENDPOINT'], self.env['CMQ_SECRET_ID'],
                   self.env['CMQ_SECRET_KEY'])
        while True:
            seq = self.tasks.get()
            if seq is None:
                return
            t0 = time.monotonic()
            try:
                r = c.call('SendMessage', queueName=self.qname, msgBody='fo-%d' % seq)
                code = r.get('code')
            except Exception as e:  # connection trouble counts as refused
                code = type(e).__name__
                c = Client(self.env['CMQ_HTTP_ENDPOINT'], self.env['CMQ_SECRET_ID'],
                           self.env['CMQ_SECRET_KEY'])
            t1 = time.monotonic()
            with self.lock:
                self.log.append((t0, t1, code == 0, code))
                self.idle += 1

    def serial(self):
        """A client that sends one message at a time, as the issue measured."""
        c = Client(self.env['CMQ_HTTP_ENDPOINT'], self.env['CMQ_SECRET_ID'],
                   self.env['CMQ_SECRET_KEY'])
        seq = 0
        while not self.stop:
            seq += 1
            t0 = time.monotonic()
            try:
                ok = c.call('SendMessage', queueName=self.qname,
                            msgBody='serial-%d' % seq).get('code') == 0
            except Exception:
                ok = False
                c = Client(self.env['CMQ_HTTP_ENDPOINT'], self.env['CMQ_SECRET_ID'],
                           self.env['CMQ_SECRET_KEY'])
            with self.lock:
                self.serial_log.append((t0, time.monotonic(), ok))
            time.sleep(self.interval)

    def serial_ack_after(self, t):
        """When the one-at-a-time client next got an acknowledgement for a send
        it began after `t` (it begins none while one hangs)."""
        with self.lock:
            ts = [e[1] for e in self.serial_log if e[2] and e[0] >= t]
        return min(ts) if ts else None

    def first_ack_after(self, t):
        with self.lock:
            ts = [e[1] for e in self.log if e[2] and e[0] >= t]
        return min(ts) if ts else None

    def refused_between(self, a, b):
        with self.lock:
            return [e[3] for e in self.log if not e[2] and a <= e[1] < b]

    def close(self):
        self.stop = True
        for _ in self.threads:
            self.tasks.put(None)


def main():
    ap = argparse.ArgumentParser(description='kill -9 a queue partition leader N times and '
                                 'measure the time to the next acknowledged send')
    ap.add_argument('--build', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--kills', type=int, default=20)
    ap.add_argument('--interval-ms', type=float, default=5.0)
    ap.add_argument('--workers', type=int, default=32)
    ap.add_argument('--down-s', type=float, default=3.0,
                    help='seconds the killed node stays down after the failover')
    ap.add_argument('--port-base', type=int, default=0)
    ap.add_argument('--var', default='')
    ap.add_argument('--keep', action='store_true', help='leave the cluster running at the end')
    a = ap.parse_args()
    var = a.var or tempfile.mkdtemp(prefix='cmq-failover-')
    base = a.port_base or pick_base()
    cl = Cluster(os.path.abspath(a.build), os.path.abspath(var), base)
    print('failover-bench: CMQ_VAR=%s CMQ_PORT_BASE=%d kills=%d interval_ms=%g down_s=%g'
          % (cl.var, base, a.kills, a.interval_ms, a.down_s), flush=True)
    up = cl.cmq('up')
    if up.returncode != 0:
        print(up.stdout + up.stderr)
        raise SystemExit('failover-bench: tools/cmq up failed')
    sender = None
    try:
        env = load_env(os.path.join(cl.var, 'cluster.env'))
        c = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])
        before = {p['partition']: int(p['queues']) for p in cl.partitions()}
        qname = 'failover%d' % int(time.time())
        r = c.call('CreateQueue', queueName=qname)
        if r['code'] != 0:
            raise SystemExit('failover-bench: CreateQueue: %r' % r)
        part = None
        for p in cl.partitions():
            if int(p['queues']) > before.get(p['partition'], 0):
                part = p['partition']
        if part is None:
            raise SystemExit('failover-bench: cannot tell the queue\'s partition')
        print('queue=%s partition=%s' % (qname, part), flush=True)
        sender = Sender(env, qname, a.interval_ms, a.workers)
        cl.cpu_start()
        busy0, total0 = machine_busy()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        t_begin = time.monotonic()
        time.sleep(1.0)
        results = []
        hangs = []
        last_end = t_begin
        for k in range(1, a.kills + 1):
            ld = None
            for _ in range(100):
                ld = cl.leader_of(part)
                if ld:
                    break
                time.sleep(0.1)
            if not ld:
                raise SystemExit('failover-bench: partition %s has no leader' % part)
            name = ld[0]
            pid = cl.pid(name)
            cl.sample_cpu()
            t_kill = time.monotonic()
            refused_between = sender.refused_between(last_end, t_kill)
            os.kill(pid, signal.SIGKILL)
            ack = None
            while ack is None and time.monotonic() < t_kill + 30:
                time.sleep(0.01)
                ack = sender.first_ack_after(t_kill)
            if ack is None:
                raise SystemExit('failover-bench: no acknowledged send 30 s after kill %d' % k)
            fo_ms = (ack - t_kill) * 1000
            during = sender.refused_between(t_kill, ack)
            time.sleep(a.down_s)
            down_refused = sender.refused_between(ack, time.monotonic())
            up = cl.cmq('up')
            if up.returncode != 0:
                print(up.stdout + up.stderr)
                raise SystemExit('failover-bench: restarting %s failed' % name)
            # Caught up: the restarted replica applied what the leader had
            # committed when we looked; settled: leader == preferred (or 15 s).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ld2 = cl.leader_of(part)
                me = cl.raft_status(name, part)
                if ld2 and me and int(me['applied']) >= int(ld2[1]['commit']):
                    break
                time.sleep(0.2)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                ps = [p for p in cl.partitions() if p['partition'] == part]
                ld2 = cl.leader_of(part)
                if ps and ld2 and ld2[0] == ps[0]['preferred']:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            results.append(fo_ms)
            sa = sender.serial_ack_after(t_kill)
            hung = (sa - t_kill) * 1000 if sa else float('nan')
            hangs.append(hung)
            last_end = time.monotonic()
            after = sender.refused_between(ack, last_end)
            print('kill=%d node=%s failover_ms=%.0f serial_ms=%.0f refused_during=%d '
                  'refused_after=%d (node down: %d) refused_before=%d'
                  % (k, name, fo_ms, hung, len(during), len(after), len(down_refused),
                     len(refused_between)), flush=True)
        cl.sample_cpu()
        t_run = time.monotonic() - t_begin
        busy1, total1 = machine_busy()
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        sender.close()
        time.sleep(0.2)
        with sender.lock:
            log = list(sender.log)
        ok = sum(1 for e in log if e[2])
        refused = [e[3] for e in log if not e[2]]
        codes = {}
        for x in refused:
            codes[x] = codes.get(x, 0) + 1
        lat = [(e[1] - e[0]) * 1000 for e in log if e[2]]
        print('failover_ms: kills=%d p50=%.0f p99=%.0f max=%.0f min=%.0f'
              % (len(results), pctl(results, 50), pctl(results, 99), max(results),
                 min(results)))
        print('serial_ms: p50=%.0f p99=%.0f max=%.0f (kill to the next acknowledged send of a '
              'client sending one at a time)' % (pctl(hangs, 50), pctl(hangs, 99), max(hangs)))
        print('sends: acknowledged=%d refused=%d (codes %s) skipped_ticks=%d '
              'ack_latency_ms p50=%.1f p99=%.1f'
              % (ok, len(refused), ' '.join('%s:%d' % kv for kv in sorted(codes.items(),
                                                                            key=str)) or '-',
                 sender.skipped, pctl(lat, 50) if lat else 0, pctl(lat, 99) if lat else 0))
        cpu_self = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
        print('cpu: run_s=%.0f cluster_cpu_s=%.1f (%.0f%% of one core; killed nodes counted '
              'up to their last sample) bench_cpu_s=%.1f machine_busy=%.0f%% of %d cores'
              % (t_run, cl.cpu_s(), 100 * cl.cpu_s() / t_run, cpu_self,
                 100.0 * (busy1 - busy0) / max(1, total1 - total0), os.cpu_count()))
    finally:
        if sender:
            sender.close()
        if not a.keep:
            cl.cmq('down')
            if not a.var:
                subprocess.run(['rm', '-rf', cl.var])
    return 0


if __name__ == '__main__':
    sys.exit(main())
