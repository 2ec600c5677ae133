"""cmqhttp.py: a small CMQ HTTP client for the whole-cluster tests.

It signs requests exactly as spec §4 says (the string to sign is METHOD +
HOST + PATH + "?" + sorted k=v pairs with '_' in names replaced by '.'),
sends them as form-encoded POST or GET over one keep-alive connection, and
returns the decoded JSON.  Standard library only.
"""
import base64
import hashlib
import hmac
import http.client
import json
import random
import time
import urllib.parse


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if '=' in line and not line.startswith('#'):
                k, v = line.split('=', 1)
                env[k] = v
    return env


class Client:
    def __init__(self, endpoint, secret_id, secret_key, path='/v2/index.php'):
        u = urllib.parse.urlsplit(endpoint)
        self.host = u.netloc
        self.path = path
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def sign(self, method, params, alg):
        text = method + self.host + self.path + '?' + '&'.join(
            '%s=%s' % (k.replace('_', '.'), params[k]) for k in sorted(params))
        digest = hashlib.sha256 if alg == 'HmacSHA256' else hashlib.sha1
        mac = hmac.new(self.secret_key.encode(), text.encode(), digest).digest()
        return base64.b64encode(mac).decode()

    def call(self, action, method='POST', alg='HmacSHA256', **kw):
        p = {'Action': action, 'Nonce': str(random.randint(1, 1 << 62)),
             'Timestamp': str(int(time.time())), 'SecretId': self.secret_id,
             'SignatureMethod': alg, 'RequestClient': 'cmq-tests'}
        p.update({k: str(v) for k, v in kw.items()})
        p['Signature'] = self.sign(method, p, alg)
        body = urllib.parse.urlencode(p)
        for attempt in range(2):
            try:
                if method == 'GET':
                    self.conn.request('GET', self.path + '?' + body)
                else:
                    self.conn.request('POST', self.path, body=body)
                r = self.conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError('HTTP %d: %r' % (r.status, data[:200]))
                return json.loads(data)
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.conn.close()


    def receive_all(self, queue, want, deadline_s, wait=1):
        """Receives (without deleting) until `want` distinct messages arrived or
        the deadline passed: {msgId: [each delivery]}.  Refusals other than
        "no message" (7000), e.g. 6000 while a new leader is elected, are
        retried after a pause."""
        got = {}
        end = time.time() + deadline_s
        while len(got) < want and time.time() < end:
            r = self.call('BatchReceiveMessage', queueName=queue, numOfMsg=16,
                          pollingWaitSeconds=wait)
            if r['code'] == 0:
                for m in r['msgInfoList']:
                    got.setdefault(m['msgId'], []).append(m)
            elif r['code'] != 7000:
                time.sleep(0.2)
        return got


class Tap:
    """Prints ok / not ok lines and the closing 'N passed, N failed'."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, cond, detail=''):
        if cond:
            self.passed += 1
            print('ok - %s' % what, flush=True)
        else:
            self.failed += 1
            print('not ok - %s %s' % (what, detail), flush=True)
        return cond

    def finish(self):
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0
