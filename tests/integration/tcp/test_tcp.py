#!/usr/bin/env python3
"""Whole-cluster test of the CMQ TCP protocol (issue #8).

Starts the real cluster with tools/cmq on a private directory and a random
port base below 32768, creates two queues over HTTP, then runs tcp_check
(libcmq and raw sockets: every operation, auth failures, pipelining with a
parked long poll, malformed frames closing only their connection), checks
that the gateway still serves HTTP afterwards, and takes the cluster down.

usage: test_tcp.py BUILD_DIR TCP_CHECK
"""
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from cmqhttp import Client, Tap, load_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
BUILD = os.path.abspath(sys.argv[1])
CHECK = os.path.abspath(sys.argv[2])
VAR = tempfile.mkdtemp(prefix='cmq-tcp-')
BASE = 20030 + random.randrange(120) * 100  # below the ephemeral port range
ENV = dict(os.environ, CMQ_VAR=VAR, CMQ_PORT_BASE=str(BASE), CMQ_BUILD_DIR=BUILD, CMQ_NO_INSTALL='1')
CMQ = os.path.join(ROOT, 'tools', 'cmq')
tap = Tap()


def cmq(*args):
    return subprocess.run([CMQ] + list(args), env=ENV, capture_output=True, text=True)


def restricted_key(env):
    """A key restricted to ACL grants: SendMessage on tcpq only."""
    ctl = os.path.join(BUILD, 'tools', 'cmqctl')
    meta = ['--endpoint', env['CMQ_METADATA_ENDPOINT']]
    out = subprocess.run([ctl, 'key', 'create', '--account', env['CMQ_APPID'], '--restricted',
                          '--format', 'env'] + meta, capture_output=True, text=True).stdout
    key = dict(line.split('=', 1) for line in out.split() if '=' in line)
    g = subprocess.run([ctl, 'acl', 'grant', key.get('CMQ_SECRET_ID', '?'), 'SendMessage',
                        'queue:tcpq'] + meta, capture_output=True, text=True)
    tap.check('restricted key with one grant', g.returncode == 0 and 'CMQ_SECRET_KEY' in key,
              out + g.stderr)
    creds = ['--endpoint', env['CMQ_TCP_ENDPOINT'], '--secret-id', key.get('CMQ_SECRET_ID', ''),
             '--secret-key', key.get('CMQ_SECRET_KEY', '')]
    r = subprocess.run([ctl, 'send', '--queue', 'tcpq', '--body', 'acl'] + creds,
                       capture_output=True, text=True)
    tap.check('restricted key: the granted send works over TCP', r.returncode == 0,
              r.stdout + r.stderr)
    r = subprocess.run([ctl, 'send', '--queue', 'tcpwait', '--body', 'acl'] + creds,
                       capture_output=True, text=True)
    tap.check('restricted key: a send to another queue is denied (4000)',
              r.returncode == 1 and 'code=4000' in r.stderr, r.stdout + r.stderr)
    r = subprocess.run([ctl, 'receive', '--queue', 'tcpq'] + creds, capture_output=True, text=True)
    tap.check('restricted key: a receive (not granted) is denied',
              r.returncode == 1 and 'code=4000' in r.stderr, r.stdout + r.stderr)


def second_gateway(env):
    """A second gateway with small TCP limits and an advertised address list."""
    conf = open(os.path.join(VAR, 'conf', 'gateway.ini')).read()
    http_port, tcp_port = BASE + 91, BASE + 92
    lines = []
    section = ''
    for line in conf.splitlines():
        if line.startswith('['):
            section = line
        elif line.startswith('listen ='):
            line = {'[rpc]': 'listen = tcp://127.0.0.1:%d' % (BASE + 90),
                    '[http]': 'listen = 127.0.0.1:%d' % http_port,
                    '[https]': 'listen =',
                    '[tcp]': 'listen = 127.0.0.1:%d' % tcp_port}.get(section, line)
        elif line.startswith('id ='):
            line = 'id = gateway-limits'
        lines.append(line)
        if section == '[tcp]' and line.startswith('listen'):
            lines += ['max_connections = 3', 'max_inflight = 4', 'idle_timeout_ms = 1500',
                      'advertise = 10.0.0.5:5672, gw2.example:5672']
    # One event loop: the TCP limits are per loop (tcp_server.h), so only
    # then is "a fourth connection" the fourth on the loop that counts.
    lines += ['[gateway]', 'threads = 1']
    path = os.path.join(VAR, 'conf', 'gateway-limits.ini')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    log = open(os.path.join(VAR, 'log', 'gateway-limits.log'), 'w')
    proc = subprocess.Popen([os.path.join(BUILD, 'services', 'gateway', 'cmq-gateway'),
                             '--config', path], stdout=log, stderr=log)
    try:
        import socket
        import time
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', http_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        http2 = Client('http://127.0.0.1:%d' % http_port, env['CMQ_SECRET_ID'],
                       env['CMQ_SECRET_KEY'])
        r = http2.call('QueryQueueRoute', method='GET', queueName='tcpq')
        tap.check('tcp.advertise is what QueryQueueRoute answers',
                  r.get('addr') == ['10.0.0.5:5672', 'gw2.example:5672'], r)
        run = subprocess.run([CHECK, '--limits', '127.0.0.1:%d' % tcp_port,
                              env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'], 'tcpq', 'tcpwait'],
                             capture_output=True, text=True, timeout=60)
        sys.stdout.write(''.join('  ' + line + '\n' for line in run.stdout.splitlines()))
        tap.check('tcp_check --limits: every check passed', run.returncode == 0, run.stderr[-2000:])
        run = subprocess.run([CHECK, '--drain', '127.0.0.1:%d' % tcp_port, env['CMQ_SECRET_ID'],
                              env['CMQ_SECRET_KEY'], 'tcpq', 'tcpwait', str(proc.pid)],
                             capture_output=True, text=True, timeout=60)
        sys.stdout.write(''.join('  ' + line + '\n' for line in run.stdout.splitlines()))
        tap.check('tcp_check --drain: a graceful stop answers what is in flight',
                  run.returncode == 0, run.stderr[-2000:])
    finally:
        proc.terminate()
        tap.check('the second gateway exits 0 on SIGTERM', proc.wait(timeout=15) == 0)


def main():
    up = cmq('up')
    if up.returncode != 0:
        print(up.stdout + up.stderr)
        tap.check('cluster up', False)
        return
    try:
        env = load_env(os.path.join(VAR, 'cluster.env'))
        http = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], env['CMQ_SECRET_KEY'])
        r = http.call('CreateQueue', queueName='tcpq', visibilityTimeout=2, pollingWaitSeconds=0)
        tap.check('create queue tcpq', r['code'] == 0, r)
        r = http.call('CreateQueue', queueName='tcpwait', pollingWaitSeconds=0)
        tap.check('create queue tcpwait', r['code'] == 0, r)
        r = http.call('CreateQueue', queueName='tcptx', pollingWaitSeconds=0)
        tap.check('create queue tcptx (transactions)', r['code'] == 0, r)
        r = http.call('CreateTopic', topicName='tcpt', filterType=1)
        tap.check('create topic tcpt', r['code'] == 0, r)
        http.call('CreateQueue', queueName='tcpsub', pollingWaitSeconds=0)
        r = http.call('Subscribe', topicName='tcpt', subscriptionName='tcpsub', protocol='queue',
                      endpoint='tcpsub', notifyContentFormat='SIMPLIFIED', **{'filterTag.1': 'red'})
        tap.check('subscribe tcpsub (filter tag red)', r['code'] == 0, r)
        r = http.call('CreateTopic', topicName='tcprt', filterType=2)
        http.call('CreateQueue', queueName='tcprk', pollingWaitSeconds=0)
        r = http.call('Subscribe', topicName='tcprt', subscriptionName='tcprk', protocol='queue',
                      endpoint='tcprk', notifyContentFormat='SIMPLIFIED', **{'bindingKey.1': 'a.*'})
        tap.check('subscribe tcprk (binding key a.*)', r['code'] == 0, r)
        # the TCP SDK's name server (§5): GET, HmacSHA1 (its default) and HmacSHA256
        r = http.call('QueryQueueRoute', method='GET', alg='HmacSHA1', queueName='tcpq')
        tap.check('QueryQueueRoute answers the TCP endpoint',
                  r.get('code') == 0 and r.get('addr') == [env['CMQ_TCP_ENDPOINT']], r)
        r = http.call('QueryTopicRoute', method='GET', alg='HmacSHA256', topicName='anytopic')
        tap.check('QueryTopicRoute answers the TCP endpoint',
                  r.get('code') == 0 and r.get('addr') == [env['CMQ_TCP_ENDPOINT']], r)
        r = http.call('QueryQueueRoute', method='GET')
        tap.check('QueryQueueRoute without queueName: 4000 with a message',
                  r.get('code') == 4000 and isinstance(r.get('message'), str), r)
        bad = Client(env['CMQ_HTTP_ENDPOINT'], env['CMQ_SECRET_ID'], 'wrong')
        r = bad.call('QueryQueueRoute', method='GET', alg='HmacSHA1', queueName='tcpq')
        tap.check('QueryQueueRoute with a bad signature is refused', r.get('code') == 4100, r)
        addr = http.call('QueryQueueRoute', method='GET', queueName='tcpq')['addr'][0]
        run = subprocess.run([CHECK, addr, env['CMQ_SECRET_ID'],
                              env['CMQ_SECRET_KEY'], 'tcpq', 'tcpwait'],
                             capture_output=True, text=True, timeout=120)
        sys.stdout.write(''.join('  ' + line + '\n' for line in run.stdout.splitlines()))
        tap.check('tcp_check: every check passed', run.returncode == 0, run.stderr[-2000:])
        restricted_key(env)
        r = http.call('GetQueueAttributes', queueName='tcpq')
        tap.check('the gateway still serves HTTP', r['code'] == 0, r)
        log = open(os.path.join(VAR, 'log', 'gateway.log')).read()
        tap.check('a bad frame is logged', 'event=tcp_bad_frame' in log)
        second_gateway(env)
    finally:
        cmq('down')
        subprocess.run(['rm', '-rf', VAR])


main()
sys.exit(tap.finish())
