#!/usr/bin/env python3
"""Whole-cluster test of dead-letter delivery and the message trace (issues
#4 and #7).

Trace: one message through send, receive, lease expiry, receive, delete is
listed by DescribeMessageTrace (and cmqctl trace) with its addresses and
receipt handles, in order.

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
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
C = Cluster('dlq', port_lo=20090)
tap = C.tap



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
    if not C.up():
        return tap.finish()
    c = C.client()
    # ---- the message trace ----
    r = c.call('CreateQueue', queueName='traced', visibilityTimeout=1)
    tap.check('CreateQueue traced', r['code'] == 0, r)
    r = c.call('SendMessage', queueName='traced', msgBody='follow me')
    tid = r.get('msgId')
    d1 = c.call('ReceiveMessage', queueName='traced', pollingWaitSeconds=3)
    time.sleep(1.5)  # the lease expires
    d2 = c.call('ReceiveMessage', queueName='traced', pollingWaitSeconds=3)
    dl = c.call('DeleteMessage', queueName='traced', receiptHandle=d2.get('receiptHandle'))
    tap.check('send, receive, (lease expires), receive, delete', r['code'] == 0 and
              d1['code'] == 0 and d2['code'] == 0 and dl['code'] == 0 and
              d2['dequeueCount'] == 2, (r, d1, d2, dl))
    t = c.call('DescribeMessageTrace', queueName='traced', msgId=tid)
    evs = t.get('events', [])
    names = [e['event'] for e in evs]
    tap.check('DescribeMessageTrace lists the five events in order: %s' % names,
              t['code'] == 0 and names == ['sent', 'delivered', 'leaseExpired', 'delivered',
                                            'deleted'], t)
    if len(evs) == 5:
        tap.check('with addresses, receipt handles and times',
                  evs[0]['clientAddr'].startswith('127.0.0.1:') and
                  evs[1]['consumerAddr'].startswith('127.0.0.1:') and
                  evs[1]['receiptHandle'] == d1['receiptHandle'] and
                  evs[2]['receiptHandle'] == d1['receiptHandle'] and
                  evs[3]['receiptHandle'] == d2['receiptHandle'] and
                  evs[4]['receiptHandle'] == d2['receiptHandle'] and
                  all(evs[i]['timeMs'] <= evs[i + 1]['timeMs'] for i in range(4)) and
                  evs[2]['time'] == d1['nextVisibleTime'], evs)
    eps = ','.join('tcp://127.0.0.1:%d' % (C.base + 20 + 2 * k) for k in range(3))
    out = subprocess.run([C.ctl_path, 'trace', '--endpoint', eps, '--msg-id', tid],
                         capture_output=True, text=True)
    ev_lines = [l for l in out.stdout.splitlines() if l.startswith('msg_id=')]
    tap.check('cmqctl trace shows the same %d events' % len(ev_lines), out.returncode == 0 and
              [re.search(r'event=(\S+)', l).group(1) for l in ev_lines] ==
              ['sent', 'delivered', 'lease_expired', 'delivered', 'deleted'], out.stdout + out.stderr)

    # the source first, alone: its partition is the one that gained a queue
    before = {p['partition']: int(p.get('queues', 0)) for p in C.partitions()}
    r = c.call('CreateQueue', queueName='source', visibilityTimeout=1)
    tap.check('CreateQueue source', r['code'] == 0, r)
    src_parts = []
    for _ in range(20):
        src_parts = [p['partition'] for p in C.partitions()
                     if int(p.get('queues', 0)) > before.get(p['partition'], 0)]
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
        t = c.call('DescribeMessageTrace', queueName='source', msgId=msg_id)
        names = [e['event'] for e in t.get('events', [])]
        tap.check('the source message\'s trace ends dead-lettered: %s' % names,
                  names[:1] == ['sent'] and names[-1:] == ['deadLettered'], t)
        t = c.call('DescribeMessageTrace', queueName='dead', msgId=msg_id)
        tap.check('another queue\'s message id shows no events', t['code'] == 0 and
                  t.get('events') == [], t)

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
        leader = [p['leader'] for p in C.partitions() if p['partition'] in src_parts]
        if leader:
            break
        time.sleep(0.2)
    leader = leader[0] if leader and re.match(r'storage-\d$', leader[0]) else None
    tap.check('the third receive delivers nothing (all moved); source leader %s' % leader,
              r['code'] == 7000 and leader, (r, src_parts, C.partitions()))
    if leader:
        os.kill(int(open(os.path.join(C.var, 'run', leader + '.pid')).read()), signal.SIGKILL)
    got = drain(c, 'dead', 25)
    want = {g.get('deadLetterSource', {}).get('msgId') for g in got}
    tap.check('after SIGKILL of %s: all 16 in the DLQ exactly once (%d copies)' % (leader, len(got)),
              want == ids and len(got) == 16, sorted(g.get('deadLetterSource', {}).get('msgId', '?')
                                                     for g in got))
    up = C.cmq('up')
    tap.check('the killed node comes back', up.returncode == 0, up.stderr)
    got = drain(c, 'dead', 3)
    tap.check('and nothing more arrives', len(got) == 0, got)

    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    return tap.finish()


C.run(main)
