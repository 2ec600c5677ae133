#!/usr/bin/env python3
"""Whole-cluster test of storage leaders' timers in cmq-scheduler (issue #4).

A long-polling receive waits at the partition leader and is woken only by an
applied Tick, which the leader proposes when the scheduler fires its timer (or,
as a fallback, when its own poll finds the due time passed by
scheduler.fallback_ms).  So the time a long poll returns a delayed message says
which path delivered it.  Checks, through the real cluster:
  - a delayed message is never visible early, and arrives on time (scheduler);
  - the scheduler counted fires;
  - with the scheduler killed (SIGKILL), delayed messages still arrive, never
    early, at most about fallback_ms late;
  - after it restarts (new instance, empty), a timer registered with the dead
    instance is recovered by the fallback and leaders register again, so the
    next delayed message is on time again.

usage: test_scheduler_storage.py BUILD_DIR
"""
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402

ON_TIME_S = 0.9     # a fire through the scheduler: one rpc round trip plus the raft commit
FALLBACK_S = 1.0    # scheduler.fallback_ms default
C = Cluster('sched', port_lo=20060)
tap = C.tap


def sched_fired():
    out = subprocess.run([C.ctl_path, 'health', '--endpoint', 'tcp://127.0.0.1:%d' % (C.base + 10)],
                         capture_output=True, text=True).stdout
    m = re.search(r'\bfired=(\d+)', out)
    return int(m.group(1)) if m else -1


def delayed_roundtrip(c, queue, delay):
    """Sends one message with `delay` s, long-polls for it; returns (seconds
    from before the send until the receive returned, the reply)."""
    body = 'delayed-%d' % random.randrange(1 << 30)
    t0 = time.time()
    r = c.call('SendMessage', queueName=queue, msgBody=body, delaySeconds=delay)
    if r['code'] != 0:
        return None, r
    r = c.call('ReceiveMessage', queueName=queue, pollingWaitSeconds=delay + 8)
    dt = time.time() - t0
    if r['code'] == 0:
        c.call('DeleteMessage', queueName=queue, receiptHandle=r['receiptHandle'])
        if r['msgBody'] != body:
            return None, r
    return dt, r


def main():
    if not C.up():
        return tap.finish()
    c = C.client()
    r = c.call('CreateQueue', queueName='timers', pollingWaitSeconds=0)
    tap.check('CreateQueue', r['code'] == 0, r)

    fired0 = sched_fired()
    for delay in (1, 2):
        dt, r = delayed_roundtrip(c, 'timers', delay)
        tap.check('delay %d s: received, not early, on time (%.3f s)' % (delay, dt or -1),
                  dt is not None and r['code'] == 0 and delay <= dt <= delay + ON_TIME_S, r)
    fired1 = sched_fired()
    tap.check('the scheduler fired the leader\'s timers (%d -> %d)' % (fired0, fired1),
              fired1 > fired0 >= 0)

    # A timer held by a scheduler that then dies: the fallback poll delivers.
    pid = int(open(os.path.join(C.var, 'run', 'scheduler.pid')).read())
    body = 'across-restart'
    t0 = time.time()
    r = c.call('SendMessage', queueName='timers', msgBody=body, delaySeconds=3)
    tap.check('send (delay 3 s) before the scheduler dies', r['code'] == 0, r)
    time.sleep(0.5)  # registered by now
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    r = c.call('ReceiveMessage', queueName='timers', pollingWaitSeconds=0)
    tap.check('not visible early', r['code'] == 7000, r)
    r = c.call('ReceiveMessage', queueName='timers', pollingWaitSeconds=10)
    dt = time.time() - t0
    tap.check('scheduler dead: delivered by the fallback, not early, <= fallback late (%.3f s)'
              % dt, r['code'] == 0 and r.get('msgBody') == body and
              3 <= dt <= 3 + FALLBACK_S + ON_TIME_S, r)
    if r['code'] == 0:
        c.call('DeleteMessage', queueName='timers', receiptHandle=r['receiptHandle'])
    dt, r = delayed_roundtrip(c, 'timers', 1)
    tap.check('scheduler dead: a new delayed message arrives, not early (%.3f s)' % (dt or -1),
              dt is not None and r['code'] == 0 and 1 <= dt <= 1 + FALLBACK_S + 1.5, r)

    # Restart: an empty scheduler (new instance).  A timer the old instance
    # held is recovered; then leaders register again and fires are on time.
    body = 'held-by-dead-instance'
    t0 = time.time()
    r = c.call('SendMessage', queueName='timers', msgBody=body, delaySeconds=3)
    up = C.cmq('up')
    tap.check('scheduler restarted', up.returncode == 0, up.stdout + up.stderr)
    r = c.call('ReceiveMessage', queueName='timers', pollingWaitSeconds=10)
    dt = time.time() - t0
    tap.check('after restart: the pending message arrives, not early (%.3f s)' % dt,
              r['code'] == 0 and r.get('msgBody') == body and
              3 <= dt <= 3 + FALLBACK_S + 1.5, r)
    if r['code'] == 0:
        c.call('DeleteMessage', queueName='timers', receiptHandle=r['receiptHandle'])
    fired2 = sched_fired()
    ok, dts = 0, []
    for _ in range(3):
        dt, r = delayed_roundtrip(c, 'timers', 1)
        dts.append(round(dt or -1, 3))
        ok += dt is not None and r['code'] == 0 and 1 <= dt <= 1 + ON_TIME_S
    fired3 = sched_fired()
    tap.check('after restart: on time again through the new instance (%d/3 %s; fired %d -> %d)'
              % (ok, dts, fired2, fired3), ok == 3 and fired3 > fired2 >= 0)
    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    return tap.finish()


C.run(main)
