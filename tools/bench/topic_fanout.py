#!/usr/bin/env python3
"""Fan-out throughput: one topic with S queue subscriptions, N published
messages (BatchPublishMessage, 16 per request); measures the time until every
queue holds all N (GetQueueAttributes activeMsgNum), i.e. S x N deliveries.

usage: topic_fanout.py CLUSTER_ENV [SUBS] [MESSAGES]   (a running cluster: tools/cmq up)
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests', 'integration'))
from cmqhttp import Client, load_env  # noqa: E402

env = load_env(sys.argv[1])
S = int(sys.argv[2]) if len(sys.argv) > 2 else 100
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1600
c = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])
tag = str(int(time.time()))
topic = 'fan' + tag
c.call('CreateTopic', topicName=topic)
queues = ['fq%s-%d' % (tag, i) for i in range(S)]
for q in queues:
    assert c.call('CreateQueue', queueName=q)['code'] == 0
    r = c.call('Subscribe', topicName=topic, subscriptionName=q, protocol='queue', endpoint=q,
               notifyContentFormat='SIMPLIFIED')
    assert r['code'] == 0, r
body = 'x' * 100
t0 = time.time()
for i in range(0, N, 16):
    r = c.call('BatchPublishMessage', topicName=topic,
               **{'msgBody.%d' % (k + 1): body for k in range(min(16, N - i))})
    assert r['code'] == 0, r
t_pub = time.time() - t0
done = set()
while len(done) < S:
    for q in queues:
        if q in done:
            continue
        r = c.call('GetQueueAttributes', queueName=q)
        if r['code'] == 0 and r['activeMsgNum'] >= N:
            done.add(q)
    if len(done) < S:
        time.sleep(0.2)
t = time.time() - t0
print('subscriptions=%d messages=%d deliveries=%d publish_s=%.2f total_s=%.2f deliveries_per_s=%.0f'
      % (S, N, S * N, t_pub, t, S * N / t))
