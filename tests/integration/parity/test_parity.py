#!/usr/bin/env python3
"""HTTP/TCP code parity on the real cluster (issue 13).

One table of states (missing queue, missing topic, topic without
subscriptions, none matching, stale receipt handle, oversize body, empty
queue, the delay cap); each row runs the same operations over the signed HTTP API
(cmqhttp.py) and over the CMQ TCP protocol (parity_tcp, libcmq) and asserts
the CMQ code and the module code (the "(NNNNN)" both protocols put before the
row's text) are the spec's, on both.  The one documented difference: TCP
answers "no message" with result 10200 (the module code; the SDK knows only
that one, tcp-protocol spec §8), where HTTP answers 7000/10200.

Starts its own cluster (tools/cmq, temp CMQ_VAR, random port base).
usage: test_parity.py BUILD_DIR PARITY_TCP
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from cluster import Cluster  # noqa: E402
from cmqhttp import Client  # noqa: E402

PARITY_TCP = os.path.abspath(sys.argv[2])
C = Cluster('parity', port_lo=20030)
MAX_MSG = 1024  # maxMsgSize of the queue and topics below; OVER is above it
OVER = 2000
tap = C.tap

# The table.  {p} is the protocol's name ("http" / "tcp"): rows that change
# state use a queue of their own per protocol.  $h is the receipt handle of
# the last pull.  Every step but the last must succeed; the last one's code
# and module code are checked.
ROWS = [
    ('missing queue: send', (4440, 10100), [('send', 'parnone', 1)]),
    ('missing queue: receive', (4440, 10100), [('pull', 'parnone', 0)]),
    ('missing queue: delete', (4440, 10100), [('delete', 'parnone', '4503599627370576')]),
    ('missing topic: publish', (4440, 10600), [('publish', 'parnotopic', 1, '-')]),
    ('topic without subscriptions: publish', (6030, 10650), [('publish', 'parnosub-{p}', 1, '-')]),
    ('topic without subscriptions (the last one removed): publish', (6030, 10650),
     [('publish', 'parunsub-{p}', 1, '-')]),
    ('none matching: publish with a tag no subscription has', (6030, 10730),
     [('publish', 'partag', 1, 'blue')]),
    ('stale receipt handle: delete after delete', (4430, 10260),
     [('send', 'parq-{p}', 1), ('pull', 'parq-{p}', 0), ('delete', 'parq-{p}', '$h'),
      ('delete', 'parq-{p}', '$h')]),
    ('oversize body: send', (4400, 10230), [('send', 'parq-{p}', OVER)]),
    ('oversize body: publish', (4400, 10230), [('publish', 'partag', OVER, 'red')]),
    ('empty queue: receive, no wait', (7000, 10200), [('pull', 'parempty-{p}', 0)]),
    # the delay cap: gateway.max_delay_seconds (default 3600), one check for both
    ('delay at the cap: send', (0, None), [('send', 'parempty-{p}', 1, 3600)]),
    ('delay above the cap: send', (4000, 10692), [('send', 'parempty-{p}', 1, 3601)]),
]


def module_of(text):
    m = re.match(r'\((\d+)\)', text or '')
    return int(m.group(1)) if m else None


class Http:
    name = 'http'

    def __init__(self, env):
        self.c = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])

    def run(self, op):
        """-> (code, module, handle, raw)"""
        kind, name = op[0], op[1]
        if kind == 'send':
            kw = {'delaySeconds': op[3]} if len(op) > 3 else {}
            r = self.c.call('SendMessage', queueName=name, msgBody='x' * op[2], **kw)
        elif kind == 'pull':
            r = self.c.call('ReceiveMessage', queueName=name, pollingWaitSeconds=op[2])
        elif kind == 'delete':
            r = self.c.call('DeleteMessage', queueName=name, receiptHandle=op[2])
        else:
            kw = {} if op[3] == '-' else {'msgTag.1': op[3]}
            r = self.c.call('PublishMessage', topicName=name, msgBody='x' * op[2], **kw)
        return r.get('code'), module_of(r.get('message')), r.get('receiptHandle'), r


class Tcp:
    name = 'tcp'

    def __init__(self, env):
        self.p = subprocess.Popen([PARITY_TCP, env['CMQ_TCP_ENDPOINT'], env['CMQ_SECRET_ID'],
                                   env['CMQ_SECRET_KEY']], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def run(self, op):
        self.p.stdin.write(' '.join(str(x) for x in op) + '\n')
        self.p.stdin.flush()
        line = self.p.stdout.readline().rstrip('\n')
        parts = line.split('\t', 2)
        if len(parts) != 3:
            return None, None, None, line
        code, handle, error = int(parts[0]), parts[1], parts[2]
        return code, module_of(error), handle if handle != '0' else None, line

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=15)


def delay_cap_refused_at_start():
    """A gateway whose delay cap is above what storage supports does not start."""
    conf = os.path.join(C.var, 'gateway-bad-delay.ini')
    with open(conf, 'w') as f:
        f.write('[gateway]\nmax_delay_seconds = 604801\n')
    r = subprocess.run([os.path.join(C.build, 'services', 'gateway', 'cmq-gateway'), '--config',
                        conf], capture_output=True, text=True, timeout=30)
    tap.check('gateway.max_delay_seconds = 604801 is refused at start-up (exit 2)',
              r.returncode == 2 and 'max_delay_seconds' in r.stderr, (r.returncode, r.stderr))


def raised_delay_cap(env):
    """A second gateway with gateway.max_delay_seconds = 7200: both protocols
    accept 7200 and refuse 7201 there (the same check, the configured cap)."""
    import socket
    import time
    conf = open(os.path.join(C.var, 'conf', 'gateway.ini')).read()
    http_port, tcp_port = C.base + 91, C.base + 92
    lines, section = [], ''
    for line in conf.splitlines():
        if line.startswith('['):
            section = line
        elif line.startswith('listen ='):
            line = {'[rpc]': 'listen = tcp://127.0.0.1:%d' % (C.base + 90),
                    '[http]': 'listen = 127.0.0.1:%d' % http_port,
                    '[https]': 'listen =',
                    '[tcp]': 'listen = 127.0.0.1:%d' % tcp_port}.get(section, line)
        elif line.startswith('id ='):
            line = 'id = gateway-delay'
        lines.append(line)
    lines += ['[gateway]', 'max_delay_seconds = 7200']
    path = os.path.join(C.var, 'conf', 'gateway-delay.ini')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    log = open(os.path.join(C.var, 'log', 'gateway-delay.log'), 'w')
    proc = subprocess.Popen([os.path.join(C.build, 'services', 'gateway', 'cmq-gateway'),
                             '--config', path], stdout=log, stderr=log)
    tcp = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', tcp_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        env2 = dict(env, CMQ_HTTP_ENDPOINT='http://127.0.0.1:%d' % http_port,
                    CMQ_TCP_ENDPOINT='127.0.0.1:%d' % tcp_port)
        http, tcp = Http(env2), Tcp(env2)
        for proto in (http, tcp):
            q = 'parempty-%s' % proto.name
            got = proto.run(('send', q, 1, 7200))
            tap.check('cap 7200: a 7200 s delay is accepted over %s' % proto.name, got[0] == 0,
                      got[3])
            got = proto.run(('send', q, 1, 7201))
            want = (4000, 10692)
            tap.check('cap 7200: a 7201 s delay is refused over %s (4000/10692)' % proto.name,
                      (got[0], got[1]) == want, got[3])
    finally:
        if tcp:
            tcp.close()
        proc.terminate()
        proc.wait(timeout=15)


def expected_for(proto, code, module):
    """The spec's answer on this protocol (TCP: 'no message' is 10200)."""
    if proto == 'tcp' and (code, module) == (7000, 10200):
        return 10200, 10200
    return code, module


def run_row(proto, steps):
    handle = None
    got = None
    for i, step in enumerate(steps):
        op = tuple(s.format(p=proto.name) if isinstance(s, str) else s for s in step)
        op = tuple(handle if s == '$h' else s for s in op)
        got = proto.run(op)
        if i < len(steps) - 1 and got[0] != 0:
            return None, 'setup step %r answered %r' % (op, got[3])
        if got[2]:
            handle = got[2]
    return got, ''


def setup(http):
    calls = [('CreateQueue', dict(queueName=q, pollingWaitSeconds=0, visibilityTimeout=30,
                                  maxMsgSize=MAX_MSG)) for q in ('parq-http', 'parq-tcp')]
    calls += [('CreateQueue', dict(queueName=q, pollingWaitSeconds=0))
              for q in ('parempty-http', 'parempty-tcp', 'parsub')]
    # a fresh topic per protocol: an HTTP publish tells storage about the
    # topic, which would hide what TCP answers for a topic storage never saw
    calls += [('CreateTopic', dict(topicName=t, maxMsgSize=MAX_MSG))
              for t in ('parnosub-http', 'parnosub-tcp')]
    # a topic per protocol whose only subscription was removed again
    for t in ('parunsub-http', 'parunsub-tcp'):
        calls += [('CreateTopic', dict(topicName=t)),
                  ('Subscribe', {'topicName': t, 'subscriptionName': 'gone', 'protocol': 'queue',
                                 'endpoint': 'parsub'}),
                  ('Unsubscribe', {'topicName': t, 'subscriptionName': 'gone'})]
    calls += [('CreateTopic', dict(topicName='partag', filterType=1, maxMsgSize=MAX_MSG)),
              ('Subscribe', {'topicName': 'partag', 'subscriptionName': 'parsub',
                             'protocol': 'queue', 'endpoint': 'parsub',
                             'notifyContentFormat': 'SIMPLIFIED', 'filterTag.1': 'red'})]
    for action, kw in calls:
        r = http.c.call(action, **kw)
        if not tap.check('setup: %s %s' % (action, kw.get('queueName') or kw.get('topicName')),
                         r.get('code') == 0, r):
            return False
    return True


def main():
    if not C.up():
        return tap.finish()
    tcp = None
    try:
        env = C.cluster_env()
        http = Http(env)
        if not setup(http):
            return tap.finish()
        tcp = Tcp(env)
        got = tcp.run(('publish', 'partag', 1, 'red'))
        tap.check('tcp: a matching publish succeeds', got[0] == 0, got[3])
        got = http.run(('publish', 'partag', 1, 'red'))
        tap.check('http: a matching publish succeeds', got[0] == 0, got[3])
        for what, (code, module), steps in ROWS:
            answers = {}
            for proto in (http, tcp):
                got, why = run_row(proto, steps)
                if got is None:
                    tap.check('%s over %s' % (what, proto.name), False, why)
                    continue
                answers[proto.name] = got
                want = expected_for(proto.name, code, module)
                tap.check('%s over %s: %s/%s' % (what, proto.name, want[0], want[1]),
                          (got[0], got[1]) == want, 'got %s/%s: %r' % (got[0], got[1], got[3]))
            if len(answers) == 2:
                h, t = answers['http'], answers['tcp']
                same = h[1] == t[1] and (h[0] == t[0] or (h[0], t[0]) == (7000, 10200))
                tap.check('%s: HTTP and TCP agree' % what, same,
                          'HTTP %s/%s, TCP %s/%s' % (h[0], h[1], t[0], t[1]))
        delay_cap_refused_at_start()
        raised_delay_cap(env)
    finally:
        if tcp:
            tcp.close()
    return tap.finish()


C.run(main)
