#!/usr/bin/env python3
"""Whole-cluster test of dead-letter delivery (issues #4 and #7).

A queue with deadLetterPolicy {policy 0, maxReceiveCount 2} over the real
cluster: a message received twice and not deleted is moved on the third
receive, and appears exactly once in the dead-letter queue with its body and
its origin (source queue, msg id, first enqueue time, dequeue count).  Then a
batch of poison messages is moved and the source partition's leader is killed
(SIGKILL) right away: after the failover every message is in the DLQ exactly
once (the pending moves survive in the replicated state; re-deliveries are
answered from the DLQ's dedup window).

usage: test_dead_letter.py BUILD_DIR
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cmqhttp import Client, Tap, load_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.path.abspath(sys.argv[1])
VAR = tempfile.mkdtemp(prefix='cmq-dlq-')
BASE = int(os.environ.get('CMQ_TEST_PORT_BASE') or 20090 + random.randrange(120) * 100)
ENV = dict(os.environ, CMQ_VAR=VAR, CMQ_PORT_BASE=str(BASE), CMQ_BUILD_DIR=BUILD, CMQ_NO_INSTALL='1')
CMQ = os.path.join(ROOT, 'tools', 'cmq')
CTL = os.path.join(BUILD, 'tools', 'cmqctl')
tap = Tap()


def cmq(*args):
    return subprocess.run([CMQ] + list(args), env=ENV, capture_output=True, text=True)


def partitions():
    out = subprocess.run([CTL, 'partitions', '--endpoint', 'tcp://127.0.0.1:%d' % BASE],
                         capture_output=True, text=True).stdout
    return [dict(kv.split('=', 1) for kv in line.split()) for line in out.splitlines()
            if line.startswith('partition=')]


def drain(c, queue, seconds):
    got = []
    end = time.time() + seconds
    while time.time() < end:
        r = c.call('BatchReceiveMessage', queueName=queue, numOfMsg=16, pollingWaitSeconds=1)
        if r['code'] == 0:
            for m in r['msgInfoList']:
                got.append(m)
                c.call('DeleteMessage', queueName=queue, receiptHandle=m['receiptHandle'])
        elif r['code'] != 7000:
            time.sleep(0.3)  # e.g. while a new leader is elected
    return got


def main():
    up = cmq('up')
    if not tap.check('cluster up', up.returncode == 0, up.stdout + up.stderr):
        return tap.finish()
    env = load_env(os.path.join(VAR, 'cluster.env'))
    c = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])
    # the source first, alone: its partition is the one holding a queue
    r = c.call('CreateQueue', queueName='source', visibilityTimeout=1)
    tap.check('CreateQueue source', r['code'] == 0, r)
    src_parts = []
    for _ in range(20):
        src_parts = [p['partition'] for p in partitions() if p.get('queues') == '1']
        if src_parts:
            break
        time.sleep(0.3)
    tap.check('the source queue\'s partition: %s' % src_parts, len(src_parts) == 1)
    r = c.call('CreateQueue', queueName='dead')
    tap.check('CreateQueue dead', r['code'] == 0, r)
    policy = json.dumps({'deadLetterQueue': 'dead', 'policy': 0, 'maxReceiveCount': 2})
    r = c.call('SetQueueAttributes', queueName='source', deadLetterPolicy=policy)
    tap.check('deadLetterPolicy {maxReceiveCount 2} on source', r['code'] == 0, r)
    r = c.call('SendMessage', queueName='source', msgBody='poison')
    tap.check('send', r['code'] == 0, r)
    msg_id = r.get('msgId')
    first = None
    for n in (1, 2):
        r = c.call('ReceiveMessage', queueName='source', pollingWaitSeconds=3)
        tap.check('receive %d delivers it (dequeueCount %d)' % (n, n),
                  r['code'] == 0 and r['msgId'] == msg_id and r['dequeueCount'] == n, r)
        first = first or r
        time.sleep(1.3)  # the lease ends
    r = c.call('ReceiveMessage', queueName='source', pollingWaitSeconds=1)
    tap.check('the third receive does not deliver it', r['code'] == 7000, r)
    got = drain(c, 'dead', 4)
    tap.check('it is in the DLQ exactly once', len(got) == 1 and got[0]['msgBody'] == 'poison',
              got)
    if got:
        src = got[0].get('deadLetterSource', {})
        tap.check('with its origin: queue, msg id, first enqueue time, dequeue count',
                  src.get('queueName') == 'source' and src.get('msgId') == msg_id and
                  src.get('enqueueTime') == first['enqueueTime'] and
                  src.get('firstDequeueTime') == first['firstDequeueTime'] and
                  src.get('dequeueCount') == 2 and src.get('reason') == 'maxReceiveCount', got[0])
        tap.check('the copy is a new message of the DLQ', got[0]['msgId'] != msg_id and
                  got[0]['dequeueCount'] == 1, got[0])

    # Moves pending while the source partition's leader dies.
    ids = set()
    for b in range(2):
        bodies = {'msgBody.%d' % (k + 1): 'batch-%d-%d' % (b, k) for k in range(8)}
        r = c.call('BatchSendMessage', queueName='source', **bodies)
        if r['code'] == 0:
            ids.update(m['msgId'] for m in r['msgList'])
    tap.check('16 more sent', len(ids) == 16)
    for _ in range(2):
        seen = 0
        end = time.time() + 10
        while seen < 16 and time.time() < end:
            r = c.call('BatchReceiveMessage', queueName='source', numOfMsg=16, pollingWaitSeconds=1)
            seen += len(r.get('msgInfoList', []))
        time.sleep(1.3)
    r = c.call('BatchReceiveMessage', queueName='source', numOfMsg=16, pollingWaitSeconds=1)
    # that receive decided the moves: kill the source partition's leader at once
    leader = []
    for _ in range(10):
        leader = [p['leader'] for p in partitions() if p['partition'] in src_parts]
        if leader:
            break
        time.sleep(0.2)
    leader = leader[0] if leader and re.match(r'storage-\d$', leader[0]) else None
    tap.check('the third receive delivers nothing (all moved); source leader %s' % leader,
              r['code'] == 7000 and leader, (r, src_parts, partitions()))
    if leader:
        os.kill(int(open(os.path.join(VAR, 'run', leader + '.pid')).read()), signal.SIGKILL)
    got = drain(c, 'dead', 25)
    want = {g.get('deadLetterSource', {}).get('msgId') for g in got}
    tap.check('after SIGKILL of %s: all 16 in the DLQ exactly once (%d copies)' % (leader, len(got)),
              want == ids and len(got) == 16, sorted(g.get('deadLetterSource', {}).get('msgId', '?')
                                                     for g in got))
    up = cmq('up')
    tap.check('the killed node comes back', up.returncode == 0, up.stderr)
    got = drain(c, 'dead', 3)
    tap.check('and nothing more arrives', len(got) == 0, got)

    down = cmq('down')
    tap.check('down', down.returncode == 0)
    return tap.finish()


try:
    rc = main()
finally:
    cmq('down')
    subprocess.run(['rm', '-rf', VAR])
sys.exit(rc)
