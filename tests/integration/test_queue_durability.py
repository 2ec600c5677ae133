#!/usr/bin/env python3
"""Whole-cluster test of the queue promise (issues #4 and #6): every message
whose send was acknowledged survives the loss of the partition's leader.

Starts the real cluster with tools/cmq on a private directory and port range,
creates a queue, sends messages (single and batch), SIGKILLs the storage node
that leads the queue's partition, then receives every message through the
gateway (which follows the new leader), checks each arrived exactly once with
its body, deletes them, restarts the killed node, and sends/receives again.

usage: test_queue_durability.py BUILD_DIR
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402

C = Cluster('dur', port_lo=20030)
tap = C.tap


def main():
    if not C.up():
        return tap.finish()
    c = C.client()
    # Partitions exist once the three nodes registered; then each elects a
    # leader, which its node reports in its next heartbeat.
    ps = C.wait_placed()
    tap.check('6 partitions placed, each with a leader', len(ps) == 6 and
              all(p['leader'] != '-' for p in ps), ps)
    r = c.call('CreateQueue', queueName='durable', visibilityTimeout=60)
    tap.check('CreateQueue', r['code'] == 0, r)

    sent = {}
    for i in range(24):
        body = 'single-%d-%s' % (i, 'x' * i)
        r = c.call('SendMessage', queueName='durable', msgBody=body)
        if r['code'] == 0:
            sent[r['msgId']] = body
    for b in range(2):
        bodies = {'msgBody.%d' % (k + 1): 'batch-%d-%d' % (b, k) for k in range(8)}
        r = c.call('BatchSendMessage', queueName='durable', **bodies)
        if r['code'] == 0:
            for k, m in enumerate(r['msgList']):
                sent[m['msgId']] = 'batch-%d-%d' % (b, k)
    tap.check('40 sends acknowledged', len(sent) == 40, len(sent))

    part = C.queue_partition()
    leader = part['leader'] if part else ''
    tap.check('the queue has a partition with a known leader', re.match(r'storage-\d$', leader),
              part)
    os.kill(C.pid_of(leader), signal.SIGKILL)
    t0 = time.time()

    got = c.receive_all('durable', len(sent), 30, wait=2)
    took = time.time() - t0
    tap.check('every acknowledged message is received after the leader (%s) died (%.1f s)'
              % (leader, took), set(got) == set(sent), '%d of %d' % (len(got), len(sent)))
    tap.check('each exactly once', all(len(v) == 1 for v in got.values()))
    tap.check('with its body', all(v[0]['msgBody'] == sent[k] for k, v in got.items() if k in sent))
    tap.check('dequeueCount is 1', all(v[0]['dequeueCount'] == 1 for v in got.values()))
    handles = [v[0]['receiptHandle'] for v in got.values()]
    deleted = 0
    for i in range(0, len(handles), 16):
        chunk = {'receiptHandle.%d' % (k + 1): h for k, h in enumerate(handles[i:i + 16])}
        r = c.call('BatchDeleteMessage', queueName='durable', **chunk)
        deleted += len(chunk) if r['code'] == 0 else 0
    tap.check('all deleted', deleted == len(handles), deleted)
    r = c.call('GetQueueAttributes', queueName='durable')
    tap.check('queue is empty afterwards', r['code'] == 0 and r['activeMsgNum'] == 0 and
              r['inactiveMsgNum'] == 0, r)

    up = C.cmq('up')
    tap.check('the killed node comes back', up.returncode == 0, up.stderr)
    r = c.call('SendMessage', queueName='durable', msgBody='after-restart')
    tap.check('send after restart', r['code'] == 0, r)
    got = c.receive_all('durable', 1, 10, wait=2)
    tap.check('receive after restart', [v[0]['msgBody'] for v in got.values()] == ['after-restart'],
              got)
    # A full batch: 16 bodies, 1 MiB in all, ~3 MiB on the wire once
    # percent-encoded ('/' encodes as %2F) — the largest request the spec allows.
    r = c.call('CreateQueue', queueName='fullbatch', maxMsgSize=1048576)
    body = '/' * 65536
    r = c.call('BatchSendMessage', queueName='fullbatch',
               **{'msgBody.%d' % (k + 1): body for k in range(16)})
    tap.check('a full batch (16 x 64 KiB, ~3 MiB encoded) is accepted', r['code'] == 0, r)
    r = c.call('BatchReceiveMessage', queueName='fullbatch', numOfMsg=16, pollingWaitSeconds=1)
    tap.check('and received whole', r['code'] == 0 and len(r['msgInfoList']) == 16 and
              all(m['msgBody'] == body for m in r['msgInfoList']), r.get('code'))

    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    C.stopped_cleanly()
    return tap.finish()


C.run(main)
