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
        r = http.call('GetQueueAttributes', queueName='tcpq')
        tap.check('the gateway still serves HTTP', r['code'] == 0, r)
        log = open(os.path.join(VAR, 'log', 'gateway.log')).read()
        tap.check('a bad frame is logged', 'event=tcp_bad_frame' in log)
    finally:
        cmq('down')
        subprocess.run(['rm', '-rf', VAR])


main()
sys.exit(tap.finish())
