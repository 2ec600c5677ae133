#!/usr/bin/env python3
"""Whole-cluster test of topic pushes to https:// endpoints (issue #7, spec
§10): the gateway POSTs over TLS, verifying the endpoint's certificate and
host name.

Two local HTTPS endpoints in this process: one with the dev cluster's
certificate (CN/SAN localhost, trusted by the gateway through push.ca_file,
which tools/cmq sets) gets every message; one with a self-signed certificate
nobody trusts gets no request (the handshake fails, the push is retried like
any failed push).

usage: test_push_https.py BUILD_DIR
"""
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
C = Cluster('https-push', port_lo=20070, env={'CMQ_TOPIC_RETRY_SCALE_PERMILLE': '100'})
tap = C.tap


hits = {}
lock = threading.Lock()


class Endpoint(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with lock:
            hits.setdefault(self.server.name, []).append((dict(self.headers), body))
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *a):
        pass


def https_server(name, cert, key):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Endpoint)
    srv.name = name
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def wait_hits(name, n, deadline_s=20):
    end = time.time() + deadline_s
    while time.time() < end:
        with lock:
            if len(hits.get(name, [])) >= n:
                break
        time.sleep(0.1)
    with lock:
        return list(hits.get(name, []))


def main():
    if not C.up():
        return tap.finish()
    tls = os.path.join(C.var, 'tls')
    trusted = https_server('trusted', os.path.join(tls, 'cert.pem'), os.path.join(tls, 'key.pem'))
    other = os.path.join(C.var, 'untrusted')
    os.makedirs(other)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
                    '-keyout', os.path.join(other, 'key.pem'), '-out', os.path.join(other, 'cert.pem')],
                   check=True, capture_output=True)
    untrusted = https_server('untrusted', os.path.join(other, 'cert.pem'), os.path.join(other, 'key.pem'))

    c = C.client()
    r = c.call('CreateTopic', topicName='tlspush')
    tap.check('CreateTopic', r['code'] == 0, r)
    for sub, port, fmt in (('good', trusted, 'JSON'), ('bad', untrusted, 'SIMPLIFIED')):
        r = c.call('Subscribe', topicName='tlspush', subscriptionName=sub, protocol='http',
                   endpoint='https://localhost:%d/push/%s?x=1' % (port, sub),
                   notifyContentFormat=fmt)
        tap.check('Subscribe %s (https://localhost:%d)' % (sub, port), r['code'] == 0, r)
    sent = []
    for i in range(3):
        r = c.call('PublishMessage', topicName='tlspush', msgBody='tls-%d' % i)
        tap.check('publish %d' % i, r['code'] == 0, r)
        sent.append(r.get('msgId'))
    got = wait_hits('trusted', 3)
    bodies = [json.loads(b) for _, b in got]
    tap.check('the trusted endpoint got the 3 messages over TLS, in order',
              [b.get('msgBody') for b in bodies] == ['tls-0', 'tls-1', 'tls-2'], bodies)
    tap.check('... with the spec §10 JSON body and headers',
              all(b.get('topicName') == 'tlspush' and b.get('subscriptionName') == 'good' and
                  h.get('x-cmq-message-id') == b.get('msgId') for (h, _), b in zip(got, bodies)) and
              [b.get('msgId') for b in bodies] == sent, got)
    time.sleep(3)  # several retries of the untrusted endpoint (delays x 0.1)
    with lock:
        n_bad = len(hits.get('untrusted', []))
    tap.check('the endpoint with an untrusted certificate got no request', n_bad == 0, n_bad)
    r = c.call('GetSubscriptionAttributes', topicName='tlspush', subscriptionName='bad')
    tap.check('... and its subscription holds the messages for retry (msgCount 3)',
              r['code'] == 0 and r.get('msgCount') == 3, r)
    log = open(os.path.join(C.var, 'log', 'gateway.log')).read()
    tap.check('gateway log has no TLS set-up error', 'push_tls_failed' not in log)
    down = C.cmq('down')
    tap.check('down', down.returncode == 0, down.stdout + down.stderr)
    return tap.finish()


C.run(main)
