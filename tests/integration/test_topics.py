#!/usr/bin/env python3
"""Whole-cluster test of topics (issue #7): publish, tag and routing-key
filters, fan-out to queues and to HTTP endpoints (spec §10 format), retries
on schedule (a shortened time scale), giving up after BACKOFF_RETRY's three
retries, and no loss when the topic's partition leader is killed mid-fan-out.

Starts the real cluster with tools/cmq (CMQ_TOPIC_RETRY_SCALE_PERMILLE=100:
retry delays x 0.1) and local HTTP endpoints in this process.

usage: test_topics.py BUILD_DIR
"""
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402

SCALE = 100  # retry delays x 100/1000
C = Cluster('topics', port_lo=20030, storage_extra='[snapshot]\nentries = 50\n', env={'CMQ_TOPIC_RETRY_SCALE_PERMILLE': str(SCALE)})
tap = C.tap
# Snapshots every 50 applied entries: the topic state must survive them and restarts.

# ---- HTTP endpoints: path -> list of (time, headers, body); /fail-N fails N times

hits = {}
fail_left = {}
lock = threading.Lock()


class Endpoint(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0))
        body = self.rfile.read(n)
        path = self.path.split('?')[0]
        with lock:
            hits.setdefault(path, []).append((time.time(), dict(self.headers), body))
            m = re.match(r'/fail-(\d+)', path)
            if m and path not in fail_left:
                fail_left[path] = int(m.group(1))
            status = 200
            if path.startswith('/never'):
                status = 503
            elif fail_left.get(path, 0) > 0:
                fail_left[path] -= 1
                status = 500
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *a):
        pass


def drain(c, queue, want, deadline_s=15):
    """Receives and deletes until `want` messages came (or the deadline);
    returns [(queue msgId, body)] in queue order (msg ids grow with the log)."""
    got = []
    end = time.time() + deadline_s
    while time.time() < end:
        r = c.call('BatchReceiveMessage', queueName=queue, numOfMsg=16, pollingWaitSeconds=1)
        if r['code'] == 0:
            hs = {}
            for k, m in enumerate(r['msgInfoList']):
                got.append((int(m['msgId']), m['msgBody']))
                hs['receiptHandle.%d' % (k + 1)] = m['receiptHandle']
            c.call('BatchDeleteMessage', queueName=queue, **hs)
        elif len(got) >= want:
            break
        elif r['code'] != 7000:
            time.sleep(0.2)
    return [b for _, b in sorted(got)]


def tags(*t):
    return {'msgTag.%d' % (i + 1): v for i, v in enumerate(t)}


def main():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Endpoint)  # any free port
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d' % srv.server_address[1]
    if not C.up():
        return tap.finish()
    env = C.cluster_env()
    c = C.client()

    # ---- tag filters (spec §9.4)
    c.call('CreateTopic', topicName='tags', filterType=1)
    subs = {'t-all': [], 't-red': ['red'], 't-rb': ['red', 'blue']}
    for q, ft in subs.items():
        c.call('CreateQueue', queueName=q)
        kw = {'filterTag.%d' % (i + 1): v for i, v in enumerate(ft)}
        r = c.call('Subscribe', topicName='tags', subscriptionName=q, protocol='queue', endpoint=q,
                   notifyContentFormat='SIMPLIFIED', **kw)
        tap.check('subscribe %s' % q, r['code'] == 0, r)
    pubs = [('m-red', ['red']), ('m-blue', ['blue']), ('m-none', []), ('m-green', ['green']),
            ('m-rg', ['green', 'red'])]
    for body, t in pubs:
        r = c.call('PublishMessage', topicName='tags', msgBody=body, **tags(*t))
        tap.check('publish %s' % body, r['code'] == 0 and r['msgId'].isdigit(), r)
    want = {'t-all': ['m-red', 'm-blue', 'm-none', 'm-green', 'm-rg'],
            't-red': ['m-red', 'm-rg'], 't-rb': ['m-red', 'm-blue', 'm-rg']}
    for q, w in want.items():
        got = drain(c, q, len(w))
        tap.check('tag filter: %s receives %s in publish order' % (q, w), got == w, got)
    c.call('CreateTopic', topicName='tags2', filterType=1)
    r = c.call('PublishMessage', topicName='tags2', msgBody='x')
    tap.check('no subscription: 6030/10650', r['code'] == 6030 and '10650' in r['message'], r)
    c.call('Subscribe', topicName='tags2', subscriptionName='only-red', protocol='queue',
           endpoint='t-red', notifyContentFormat='SIMPLIFIED', **{'filterTag.1': 'red'})
    r = c.call('PublishMessage', topicName='tags2', msgBody='x', **tags('blue'))
    tap.check('no match: 6030/10730', r['code'] == 6030 and '10730' in r['message'], r)
    r = c.call('PublishMessage', topicName='tags2', msgBody='x')
    tap.check('a message without tags matches no tagged subscription', r['code'] == 6030, r)
    r = c.call('ClearSubscriptionFilterTags', topicName='tags2', subscriptionName='only-red')
    r = c.call('PublishMessage', topicName='tags2', msgBody='after-clear')
    tap.check('after ClearSubscriptionFilterTags the subscription takes everything at once',
              r['code'] == 0, r)
    tap.check('... and receives it', drain(c, 't-red', 1) == ['after-clear'])
    r = c.call('PublishMessage', topicName='tags', msgBody='x', **tags('1', '2', '3', '4', '5', '6'))
    tap.check('6 tags: 4000/10720', r['code'] == 4000 and '10720' in r['message'], r)

    # ---- routing keys
    c.call('CreateTopic', topicName='route', filterType=2)
    keys = {'r-endc': '#.c', 'r-ac': 'a.#.c', 'r-a': 'a.#', 'r-star': '*.b.*'}
    for q, k in keys.items():
        c.call('CreateQueue', queueName=q)
        r = c.call('Subscribe', topicName='route', subscriptionName=q, protocol='queue', endpoint=q,
                   notifyContentFormat='SIMPLIFIED', **{'bindingKey.1': k})
        tap.check('subscribe %s with %s' % (q, k), r['code'] == 0, r)
    table = [('c', ['r-endc']), ('a.c', ['r-endc', 'r-ac', 'r-a']),
             ('a.b.c', ['r-endc', 'r-ac', 'r-a', 'r-star']), ('a.b', ['r-a']),
             ('x.b.y', ['r-star']), ('a', ['r-a']), ('x.y', [])]
    for rk, match in table:
        r = c.call('PublishMessage', topicName='route', msgBody='rk:' + rk, routingKey=rk)
        if match:
            tap.check('publish routingKey %s' % rk, r['code'] == 0, r)
        else:
            tap.check('routingKey %s matches nothing: 6030/10730' % rk,
                      r['code'] == 6030 and '10730' in r['message'], r)
    for q in keys:
        w = ['rk:' + rk for rk, match in table if q in match]
        got = drain(c, q, len(w))
        tap.check('routing: %s (%s) receives %s' % (q, keys[q], w), got == w, got)
    r = c.call('PublishMessage', topicName='route', msgBody='x')
    tap.check('routing topic without routingKey: 4000/10700', r['code'] == 4000 and
              '10700' in r['message'], r)
    r = c.call('PublishMessage', topicName='route', msgBody='x', routingKey='.'.join('a' * 17))
    tap.check('16 dots: 4000/10691', r['code'] == 4000 and '10691' in r['message'], r)

    # ---- fan-out: 3 queues + 2 HTTP endpoints
    c.call('CreateTopic', topicName='fan')
    for i in range(3):
        c.call('CreateQueue', queueName='fan-q%d' % i)
        r = c.call('Subscribe', topicName='fan', subscriptionName='fq%d' % i, protocol='queue',
                   endpoint='fan-q%d' % i, notifyContentFormat='SIMPLIFIED')
        tap.check('subscribe fan-q%d' % i, r['code'] == 0, r)
    r = c.call('Subscribe', topicName='fan', subscriptionName='fjson', protocol='http',
               endpoint=url + '/json?k=v')
    tap.check('subscribe http JSON', r['code'] == 0, r)
    r = c.call('Subscribe', topicName='fan', subscriptionName='fsimple', protocol='http',
               endpoint=url + '/simple', notifyContentFormat='SIMPLIFIED')
    tap.check('subscribe http SIMPLIFIED', r['code'] == 0, r)
    ids = []
    for i in range(10):
        r = c.call('PublishMessage', topicName='fan', msgBody='fan-%d' % i, **tags('t1', 't2'))
        ids.append(r.get('msgId'))
    r = c.call('BatchPublishMessage', topicName='fan',
               **{'msgBody.%d' % (k + 1): 'fan-%d' % (10 + k) for k in range(6)})
    tap.check('BatchPublishMessage answers msgList', r['code'] == 0 and len(r['msgList']) == 6, r)
    ids += [m['msgId'] for m in r.get('msgList', [])]
    bodies = ['fan-%d' % i for i in range(16)]
    for i in range(3):
        got = drain(c, 'fan-q%d' % i, 16)
        tap.check('fan-q%d got all 16 once, in publish order' % i, got == bodies, got)
    end = time.time() + 10
    while time.time() < end and (len(hits.get('/json', [])) < 16 or len(hits.get('/simple', [])) < 16):
        time.sleep(0.1)
    js, sm = hits.get('/json', []), hits.get('/simple', [])
    tap.check('JSON endpoint got 16 pushes', len(js) == 16, len(js))
    tap.check('SIMPLIFIED endpoint got 16 pushes', len(sm) == 16, len(sm))
    if js and sm:
        t, h, b = js[0]
        doc = json.loads(b)
        tap.check('JSON body keys and values (§10)',
                  doc == {'TopicOwner': int(env['CMQ_APPID']), 'topicName': 'fan',
                          'subscriptionName': 'fjson', 'msgId': ids[0], 'msgBody': 'fan-0',
                          'publishTime': doc.get('publishTime')} and
                  abs(doc['publishTime'] - time.time()) < 120, doc)
        tap.check('headers (§10)', h.get('Content-Type') == 'text/plain' and
                  h.get('User-Agent') == 'Qcloud Notification Service Agent' and
                  h.get('x-cmq-message-id') == ids[0] and h.get('x-cmq-message-tag') == 't1, t2' and
                  h.get('x-cmq-request-id') and int(h.get('Content-Length')) == len(b), h)
        t, h, b = sm[0]
        tap.check('SIMPLIFIED body is the raw message', b == b'fan-0' and
                  h.get('x-cmq-message-id') == ids[0], (h, b))
        tap.check('HTTP pushes in publish order',
                  [json.loads(x[2])['msgBody'] for x in js] == bodies and
                  [x[2].decode() for x in sm] == bodies)
    r = c.call('GetSubscriptionAttributes', topicName='fan', subscriptionName='fjson')
    tap.check('GetSubscriptionAttributes: delivered 16, nothing pending', r['code'] == 0 and
              r['deliveredMsgNum'] == 16 and r['retryingMsgNum'] == 0 and r['msgCount'] == 0, r)
    r = c.call('GetTopicAttributes', topicName='fan')
    tap.check('GetTopicAttributes msgCount 0 once every subscription has everything',
              r['code'] == 0 and r['msgCount'] == 0, r)

    # ---- retries on schedule
    c.call('CreateTopic', topicName='retry')
    c.call('Subscribe', topicName='retry', subscriptionName='exp', protocol='http',
           endpoint=url + '/fail-4', notifyStrategy='EXPONENTIAL_DECAY_RETRY')
    c.call('Subscribe', topicName='retry', subscriptionName='back', protocol='http',
           endpoint=url + '/never', notifyStrategy='BACKOFF_RETRY')
    c.call('Subscribe', topicName='retry', subscriptionName='ok', protocol='http',
           endpoint=url + '/healthy')
    c.call('CreateQueue', queueName='sub-dlq')
    r = c.call('Subscribe', topicName='retry', subscriptionName='withdlq', protocol='http',
               endpoint=url + '/never-dlq', notifyStrategy='BACKOFF_RETRY',
               deadLetterQueueName='sub-dlq')
    tap.check('Subscribe with the deadLetterQueueName extension', r['code'] == 0, r)
    r = c.call('GetSubscriptionAttributes', topicName='retry', subscriptionName='withdlq')
    tap.check('... shown by GetSubscriptionAttributes', r.get('deadLetterQueueName') == 'sub-dlq', r)
    r = c.call('PublishMessage', topicName='retry', msgBody='r1')
    tap.check('publish to a failing endpoint', r['code'] == 0, r)
    r1_id = r.get('msgId')
    time.sleep(0.6)
    r = c.call('GetSubscriptionAttributes', topicName='retry', subscriptionName='back')
    tap.check('a failing subscription shows its retry (attempts, next attempt)', r['code'] == 0 and
              r['retryingMsgNum'] == 1 and r['maxAttempts'] >= 1 and r['nextAttemptTime'] > 0, r)
    tap.check('... and msgCount 1', r.get('msgCount') == 1, r)
    r = c.call('GetTopicAttributes', topicName='retry')
    tap.check('the topic\'s msgCount counts the message not yet through every subscription',
              r['code'] == 0 and r['msgCount'] == 1, r)
    end = time.time() + 20
    while time.time() < end and (len(hits.get('/fail-4', [])) < 5 or len(hits.get('/never', [])) < 4):
        time.sleep(0.1)
    time.sleep(1.0)
    ex = [x[0] for x in hits.get('/fail-4', [])]
    gaps = [b - a for a, b in zip(ex, ex[1:])]
    # EXPONENTIAL_DECAY_RETRY: 1, 2, 4, 8 s x 0.1 (plus up to one 100 ms raft tick)
    tap.check('EXPONENTIAL_DECAY_RETRY: 4 failures then success, 5 attempts', len(ex) == 5, ex)
    tap.check('... gaps follow 0.1/0.2/0.4/0.8 s', len(gaps) == 4 and all(
        g >= w * 0.9 and g <= w + 0.6 for g, w in zip(gaps, [0.1, 0.2, 0.4, 0.8])), gaps)
    bk = [x[0] for x in hits.get('/never', [])]
    bgaps = [b - a for a, b in zip(bk, bk[1:])]
    tap.check('BACKOFF_RETRY: 1 attempt + 3 retries, then given up', len(bk) == 4, bk)
    tap.check('... each retry after 1-2 s (10-20 s x 0.1)', len(bgaps) == 3 and all(
        0.95 <= g <= 2.7 for g in bgaps), bgaps)
    r = c.call('GetSubscriptionAttributes', topicName='retry', subscriptionName='back')
    tap.check('the exhausted message is dropped (spec §9.5)', r['code'] == 0 and
              r['droppedMsgNum'] == 1 and r['retryingMsgNum'] == 0, r)
    r = c.call('GetSubscriptionAttributes', topicName='retry', subscriptionName='exp')
    tap.check('the retried message is delivered', r['deliveredMsgNum'] == 1 and
              r['retryingMsgNum'] == 0, r)
    end = time.time() + 10
    dl = []
    while time.time() < end and not dl:
        dl = drain(c, 'sub-dlq', 1, 1)
    tap.check('exhausted retries go to the subscription\'s dead-letter queue', dl == ['r1'], dl)
    r = c.call('GetSubscriptionAttributes', topicName='retry', subscriptionName='withdlq')
    tap.check('... counted as dead-lettered, not dropped', r['deadLetteredMsgNum'] == 1 and
              r['droppedMsgNum'] == 0 and r['retryingMsgNum'] == 0, r)
    tap.check('... after 1 + 3 attempts', len(hits.get('/never-dlq', [])) == 4,
              len(hits.get('/never-dlq', [])))
    tap.check('a failing endpoint did not hold back another subscription',
              len(hits.get('/healthy', [])) == 1 and hits['/healthy'][0][0] < ex[1])

    # ---- the message trace of r1: published, then per subscription every
    # push attempt with its HTTP status (failed then delivered, dropped,
    # dead-lettered)
    t = c.call('DescribeMessageTrace', topicName='retry', msgId=r1_id)
    evs = t.get('events', [])
    tap.check('DescribeMessageTrace with topicName starts with published (client address)',
              t['code'] == 0 and evs[:1] and evs[0]['event'] == 'published' and
              evs[0]['clientAddr'].startswith('127.0.0.1:'), t)

    def of(sub):
        return [(e['event'], e['attempt'], e.get('httpStatus')) for e in evs
                if e.get('subscriptionId') == sub_ids.get(sub)]
    ls = c.call('ListSubscriptionByTopic', topicName='retry', limit=50)
    sub_ids = {x['subscriptionName']: x['subscriptionId'] for x in ls.get('subscriptionList', [])}
    tap.check('... exp: 4 failed pushes (HTTP 500), then delivered (HTTP 200) on attempt 5',
              of('exp') == [('attemptFailed', i, 500) for i in range(1, 5)] +
              [('delivered', 5, 200)], of('exp'))
    tap.check('... ok: delivered on attempt 1 (HTTP 200)', of('ok') == [('delivered', 1, 200)],
              of('ok'))
    tap.check('... back: 4 failed (HTTP 503), then dropped',
              of('back') == [('attemptFailed', i, 503) for i in range(1, 5)] +
              [('dropped', 4, None)], of('back'))
    tap.check('... withdlq: 4 failed, then dead-lettered with the copy\'s msg id',
              of('withdlq')[:4] == [('attemptFailed', i, 503) for i in range(1, 5)] and
              of('withdlq')[4:5] and of('withdlq')[4][0] == 'deadLettered' and
              [e for e in evs if e['event'] == 'deadLettered'][0].get('targetMsgId'), evs)
    fails = [e for e in evs if e['event'] == 'attemptFailed' and e['subscriptionId'] == sub_ids['exp']]
    tap.check('... a failed attempt names its next attempt time, times in order',
              all(e['nextAttemptTime'] >= e['time'] for e in fails) and
              all(evs[i]['timeMs'] <= evs[i + 1]['timeMs'] for i in range(len(evs) - 1)), evs)
    t = c.call('DescribeMessageTrace', topicName='fan', msgId=r1_id)
    tap.check('another topic\'s message id shows no events', t['code'] == 0 and
              t.get('events') == [], t)
    eps = ','.join('tcp://127.0.0.1:%d' % (C.base + 20 + 2 * k) for k in range(3))
    out = subprocess.run([C.ctl_path, 'trace', '--endpoint', eps, '--msg-id', r1_id],
                         capture_output=True, text=True)
    ev_lines = [l for l in out.stdout.splitlines() if l.startswith('msg_id=')]
    tap.check('cmqctl trace shows the same %d events' % len(ev_lines), out.returncode == 0 and
              len(ev_lines) == len(evs) and 'event=published' in ev_lines[0] and
              any('http_status=500' in l for l in ev_lines), out.stdout + out.stderr)

    # ---- the topic's leader dies mid-fan-out: nothing is lost
    c.call('CreateTopic', topicName='kill')
    for i in range(3):
        c.call('CreateQueue', queueName='kill-q%d' % i)
        c.call('Subscribe', topicName='kill', subscriptionName='kq%d' % i, protocol='queue',
               endpoint='kill-q%d' % i, notifyContentFormat='SIMPLIFIED')
    first = None
    n_kill = 0
    for b in range(20):  # batches: the fan-out is still running when the leader dies
        r = c.call('BatchPublishMessage', topicName='kill',
                   **{'msgBody.%d' % (k + 1): 'k-%d' % (b * 16 + k) for k in range(16)})
        if r['code'] == 0:
            first = first or r['msgList'][0]['msgId']
            n_kill += 16
    tap.check('320 messages published in batches', n_kill == 320, n_kill)
    part = int(first) >> 52
    leader = [p['leader'] for p in C.partitions() if p['partition'] == str(part)]
    tap.check('the topic partition %d has a leader' % part, leader and re.match(r'storage-\d$', leader[0]),
              leader)
    if leader:
        pid = int(open(os.path.join(C.var, 'run', leader[0] + '.pid')).read())
        os.kill(pid, signal.SIGKILL)
    for i in range(3):
        got = drain(c, 'kill-q%d' % i, n_kill, 40)
        tap.check('after killing %s every published message reached kill-q%d'
                  % ((leader or ['?'])[0], i),
                  set(got) == set('k-%d' % k for k in range(n_kill)), '%d distinct' % len(set(got)))
        tap.check('... exactly once (idempotent appends) and in publish order',
                  got == ['k-%d' % k for k in range(n_kill)],
                  '%d received, %d distinct' % (len(got), len(set(got))))
    C.cmq('up')

    # ---- DeleteTopic frees the topic in storage
    for s in ('exp', 'back', 'ok', 'withdlq'):
        c.call('Unsubscribe', topicName='retry', subscriptionName=s)
    r = c.call('DeleteTopic', topicName='retry')
    tap.check('DeleteTopic after unsubscribing', r['code'] == 0, r)

    # ---- snapshots and a whole-cluster restart keep the topic state
    logs = ''.join(open(os.path.join(C.var, 'log', 'storage-%d.log' % i)).read() for i in (1, 2, 3))
    tap.check('partitions took snapshots during the test', 'event=partition_snapshot ' in logs)
    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    up = C.cmq('up')
    tap.check('up again', up.returncode == 0, up.stderr)
    r = c.call('GetSubscriptionAttributes', topicName='fan', subscriptionName='fjson')
    tap.check('after the restart the subscription still counts 16 delivered', r.get('code') == 0 and
              r['deliveredMsgNum'] == 16 and r['msgCount'] == 0, r)
    r = c.call('PublishMessage', topicName='fan', msgBody='after-restart')
    tap.check('publish after the restart', r.get('code') == 0, r)
    for i in range(3):
        got = drain(c, 'fan-q%d' % i, 1, 15)
        tap.check('fan-q%d gets only the new message (no re-delivery from a lost cursor)' % i,
                  got == ['after-restart'], got)
    down = C.cmq('down')
    tap.check('down', down.returncode == 0)
    C.stopped_cleanly()
    return tap.finish()


C.run(main)
