#!/usr/bin/env python3
"""Whole-cluster test (issue 12, integration test 4): retries never duplicate.

Starts the real cluster with tools/cmq on a private directory and port range,
creates a queue, and runs senders concurrently with unique bodies: HTTP
threads (SendMessage and BatchSendMessage; concurrent singles are coalesced
by the gateway) and TCP threads (cmqctl send over the CMQ TCP protocol,
single and --batch).  During the load it SIGKILLs the storage node leading
the queue's partition, restarts it, and kills the (new) leader again, so
storage requests in flight are lost and the gateway resends them (same dedup
keys) to the other replicas.  Then it restarts the node, drains the queue
(receive with a long visibility timeout, delete) and checks:
  - no acknowledged body is stored twice (each received exactly once),
  - every acknowledged body is present, with the msgId its send answered,
  - the queue is empty after the delete cycle,
  - the gateway resent storage requests (cmq_gateway_storage_resends_total),
    so the path was exercised;
and prints how many unacknowledged bodies turned up anyway (allowed: their
send failed or timed out after the append committed).

usage: test_retry_dedup.py BUILD_DIR
"""
import http.client
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from cmqhttp import Client  # noqa: E402

QUEUE = 'dedupq'
HTTP_THREADS = 6
TCP_THREADS = 2
C = Cluster('dedup', port_lo=20030)
tap = C.tap


def queue_leader(timeout_s=20):
    end = time.time() + timeout_s
    while time.time() < end:
        part = [p for p in C.partitions() if p.get('queues') == '1']
        if part and re.match(r'storage-\d$', part[0]['leader']):
            return part[0]['leader']
        time.sleep(0.2)
    return ''


class Once(Client):
    """A Client whose call is never repeated (cmqhttp resends after a
    connection error, which would be a client-made duplicate)."""

    def call(self, action, method='POST', alg='HmacSHA256', **kw):
        p = {'Action': action, 'Nonce': str(random.randint(1, 1 << 62)),
             'Timestamp': str(int(time.time())), 'SecretId': self.secret_id,
             'SignatureMethod': alg, 'RequestClient': 'cmq-tests'}
        p.update({k: str(v) for k, v in kw.items()})
        p['Signature'] = self.sign(method, p, alg)
        try:
            self.conn.request('POST', self.path, body=urllib.parse.urlencode(p))
            r = self.conn.getresponse()
            return json.loads(r.read())
        except (http.client.HTTPException, OSError, ValueError) as e:
            self.conn.close()
            return {'code': -1, 'message': repr(e)}


class Book:
    """What the senders learned: acknowledged bodies (with their msgIds),
    unacknowledged ones, and the answers' codes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}      # body -> msgId
        self.unacked = set()
        self.codes = {}
        self.sends = 0

    def note(self, bodies, ids, code):
        with self.lock:
            self.sends += 1
            self.codes[code] = self.codes.get(code, 0) + 1
            if ids is not None and len(ids) == len(bodies):
                for b, i in zip(bodies, ids):
                    self.acked[b] = str(i)
            else:
                self.unacked.update(bodies)


def http_sender(env, t, book, stop):
    c = Once(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])
    n = 0
    while not stop.is_set():
        n += 1
        if n % 3 == 0:
            bodies = ['h%d-%d-%d' % (t, n, k) for k in range(random.randint(2, 8))]
            r = c.call('BatchSendMessage', queueName=QUEUE,
                       **{'msgBody.%d' % (k + 1): b for k, b in enumerate(bodies)})
            ids = [m['msgId'] for m in r['msgList']] if r.get('code') == 0 else None
        else:
            bodies = ['h%d-%d' % (t, n)]
            r = c.call('SendMessage', queueName=QUEUE, msgBody=bodies[0])
            ids = [r['msgId']] if r.get('code') == 0 else None
        book.note(bodies, ids, r.get('code'))


def tcp_sender(env, t, book, stop):
    creds = ['--endpoint', env['CMQ_TCP_ENDPOINT'], '--secret-id', env['CMQ_SECRET_ID'],
             '--secret-key', env['CMQ_SECRET_KEY'], '--timeout-ms', '20000']
    n = 0
    while not stop.is_set():
        n += 1
        k = random.randint(2, 6) if n % 2 == 0 else 1
        bodies = ['t%d-%d-%d' % (t, n, i) for i in range(k)]
        args = [C.ctl_path, 'send', '--queue', QUEUE] + creds
        for b in bodies:
            args += ['--body', b]
        if k > 1:
            args.append('--batch')
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            book.note(bodies, None, 'tcp-timeout')
            continue
        ids = re.findall(r'msgId=(\d+)', p.stdout)
        m = re.search(r'code=(\d+)', p.stderr)
        book.note(bodies, ids if p.returncode == 0 else None,
                  0 if p.returncode == 0 else 'tcp-%s' % (m.group(1) if m else p.returncode))


def kill_leader(what):
    leader = queue_leader()
    if not tap.check('%s: the queue partition has a leader (%s)' % (what, leader or '-'), leader):
        return ''
    pid = int(open(os.path.join(C.var, 'run', leader + '.pid')).read())
    os.kill(pid, signal.SIGKILL)
    return leader


def resends(env):
    u = urllib.parse.urlsplit(env['CMQ_HTTP_ENDPOINT'])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request('GET', '/metrics')
    text = conn.getresponse().read().decode()
    conn.close()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'cmq_gateway_storage_resends_total\{reason="(\w+)"\} (\d+)', text)}


def drain(c, deadline_s):
    got = {}  # body -> [msgId, ...]
    end = time.time() + deadline_s
    empty = 0
    while time.time() < end and empty < 3:
        r = c.call('BatchReceiveMessage', queueName=QUEUE, numOfMsg=16, pollingWaitSeconds=1)
        if r.get('code') == 7000:
            empty += 1
            continue
        if r.get('code') != 0:
            time.sleep(0.2)
            continue
        empty = 0
        handles = {}
        for m in r['msgInfoList']:
            got.setdefault(m['msgBody'], []).append(m['msgId'])
            handles['receiptHandle.%d' % (len(handles) + 1)] = m['receiptHandle']
        c.call('BatchDeleteMessage', queueName=QUEUE, **handles)
    return got


def main():
    if not C.up():
        return tap.finish()
    env = C.cluster_env()
    c = C.client()
    C.wait_placed()
    r = c.call('CreateQueue', queueName=QUEUE, visibilityTimeout=120, maxMsgHeapNum=1000000)
    tap.check('CreateQueue', r['code'] == 0, r)
    r = c.call('SendMessage', queueName=QUEUE, msgBody='warm-up')
    tap.check('a first send', r['code'] == 0, r)
    book = Book()
    book.note(['warm-up'], [r.get('msgId')], r['code'])

    stop = threading.Event()
    threads = [threading.Thread(target=http_sender, args=(env, t, book, stop))
               for t in range(HTTP_THREADS)]
    threads += [threading.Thread(target=tcp_sender, args=(env, t, book, stop))
                for t in range(TCP_THREADS)]
    for t in threads:
        t.start()
    time.sleep(3)
    first = kill_leader('first kill')
    time.sleep(7)
    if first:
        tap.check('the first killed node (%s) comes back' % first, C.cmq('up').returncode == 0)
    time.sleep(3)
    second = kill_leader('second kill')
    time.sleep(7)
    stop.set()
    for t in threads:
        t.join(60)
    if second:
        tap.check('the second killed node (%s) comes back' % second, C.cmq('up').returncode == 0)
    print('# sends: %d requests, %d bodies acknowledged, %d not; answers by code: %s'
          % (book.sends, len(book.acked), len(book.unacked), book.codes), flush=True)
    rs = resends(env)
    print('# gateway storage resends: %s' % rs, flush=True)
    tap.check('the gateway resent storage requests during the kills (the retry path ran)',
              sum(rs.values()) >= 1, rs)
    tap.check('the load kept going (some sends acknowledged after each kill)',
              len(book.acked) > 200, len(book.acked))

    got = drain(c, 60)
    twice = {b: ids for b, ids in got.items() if len(ids) > 1}
    tap.check('no body is stored twice', not twice, list(twice.items())[:10])
    missing = [b for b in book.acked if b not in got]
    tap.check('every acknowledged body is present', not missing,
              '%d missing, e.g. %s' % (len(missing), missing[:10]))
    wrong = [b for b in book.acked if b in got and got[b][0] != book.acked[b]]
    tap.check('each with the msgId its send answered', not wrong, wrong[:10])
    strangers = [b for b in got if b not in book.acked and b not in book.unacked]
    tap.check('nothing else was stored', not strangers, strangers[:10])
    surfaced = sum(1 for b in book.unacked if b in got)
    print('# unacknowledged bodies that were stored anyway: %d of %d' % (surfaced, len(book.unacked)),
          flush=True)
    r = c.call('GetQueueAttributes', queueName=QUEUE)
    tap.check('the queue is empty after the delete cycle', r['code'] == 0 and
              r['activeMsgNum'] == 0 and r['inactiveMsgNum'] == 0, r)
    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    C.stopped_cleanly()
    return tap.finish()


C.run(main)
