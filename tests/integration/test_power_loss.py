#!/usr/bin/env python3
"""Whole-cluster power-loss test (issue 12): every acknowledged message
survives a power loss of all three storage nodes at once.

`kill -9` alone keeps the page cache, so it never tests the fsync
discipline.  Here every storage node runs with the test-only file seam
`fault.unsynced_in_memory = 1` (docs/storage-format.md, "Power-loss
testing"): a write that has not been fdatasync'ed waits in the process's
memory, so SIGKILL loses exactly what a power loss would lose.

Starts the real cluster (tools/cmq up, private directory and ports), creates
three queues (maxMsgSize 1 MiB), and runs sender threads over HTTP: single
sends of small bodies, batch sends of 16 bodies, and single sends of large
bodies, each recording the msgId and body hash of every acknowledged send.
At random points under that load it SIGKILLs all three storage nodes at
once, restarts them, waits until sends are acknowledged again, and repeats.
At the end it drains every queue and checks that each acknowledged message
is there with its exact body.  Duplicates (the same body under two msgIds)
are reported; unacknowledged extras are allowed (a send can be committed and
its answer lost in the crash).

usage: test_power_loss.py BUILD_DIR
Environment (optional): PL_ROUNDS (3), PL_SEED, PL_LARGE_MAX (bytes of the
largest body; 900000), PL_SEAM=0 (plain kill -9 without the seam, to
compare: it misses fsync bugs), CMQ_TEST_KEEP=1 (keep the cluster's directory).
"""
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_threads_gone  # noqa: E402

SEAM = os.environ.get('PL_SEAM', '1') != '0'
NODES = ['storage-1', 'storage-2', 'storage-3']
ROUNDS = int(os.environ.get('PL_ROUNDS', '3'))
SEED = int(os.environ.get('PL_SEED', str(random.randrange(1 << 30))))
# Large bodies up to 900 KB, and batches of 16 bodies up to 6 KB (entries up to
# ~96 KiB): before the raft wire carried entries without 16-bit sizes, entries
# over 65,535 bytes reached followers truncated and this test lost large
# messages (16 of 3,642 and 6 of 2,874 acknowledged in two runs).
LARGE_MAX = int(os.environ.get('PL_LARGE_MAX', '900000'))
ALNUM = b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
C = Cluster('pl', port_lo=20030, storage_extra='[fault]\nunsynced_in_memory = %d\n[data]\nsegment_bytes = 4194304\n' '[snapshot]\nentries = 200\n' % (1 if SEAM else 0))
tap = C.tap


def sha(body):
    return hashlib.sha256(body.encode()).hexdigest()


def make_body(rng, tag, size):
    """A unique, URL-safe body of `size` bytes: tag first, then filler."""
    head = tag + '|'
    n = max(0, size - len(head))
    fill = bytes(rng.choice(ALNUM) for _ in range(min(n, 4096)))
    fill = (fill * (n // max(1, len(fill)) + 1))[:n] if n else b''
    return head + fill.decode()


class Ledger:
    """Acknowledged sends: msgId -> (queue, sha256, tag), shared by threads."""

    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}
        self.attempts = 0
        self.failures = 0

    def add(self, queue, msg_id, body):
        with self.mu:
            self.acked[msg_id] = (queue, sha(body), body.split('|', 1)[0])

    def count(self):
        with self.mu:
            return len(self.acked)


def sender(env, ledger, stop, kind, queue, seed):
    rng = random.Random(seed)
    c = C.client()
    seq = 0
    while not stop.is_set():
        seq += 1
        try:
            with ledger.mu:
                ledger.attempts += 1
            if kind == 'batch':
                bodies = [make_body(rng, '%s-%d-%d' % (kind, seed, seq * 100 + k),
                                    rng.randrange(100, 6000)) for k in range(16)]
                r = c.call('BatchSendMessage', queueName=queue,
                           **{'msgBody.%d' % (k + 1): b for k, b in enumerate(bodies)})
                if r['code'] == 0:
                    for m, b in zip(r['msgList'], bodies):
                        ledger.add(queue, m['msgId'], b)
                    continue
            else:
                size = (rng.randrange(100, 6000) if kind == 'small'
                        else rng.randrange(min(70000, LARGE_MAX // 2), LARGE_MAX + 1))
                body = make_body(rng, '%s-%d-%d' % (kind, seed, seq), size)
                r = c.call('SendMessage', queueName=queue, msgBody=body)
                if r['code'] == 0:
                    ledger.add(queue, r['msgId'], body)
                    continue
        except Exception:  # the gateway may drop a connection while storage is down
            c.conn.close()
        with ledger.mu:
            ledger.failures += 1
        time.sleep(0.05)


def start_storage(node):
    """Starts one storage node as tools/cmq does: detached (not our child, so
    `cmq down` never waits on a zombie), its pid file, its log."""
    conf = os.path.join(C.var, 'conf', node + '.ini')
    log = os.path.join(C.var, 'log', node + '.log')
    out = subprocess.run(['sh', '-c', 'nohup "$0" --config "$1" >>"$2" 2>&1 </dev/null & echo $!',
                          os.path.join(C.build, 'services', 'storage', 'cmq-storage'), conf, log], capture_output=True, text=True).stdout
    with open(os.path.join(C.var, 'run', node + '.pid'), 'w') as f:
        f.write(out.strip() + '\n')


def drain(c, queue, want, deadline_s, per_call=16):
    """Receives until 3 empty polls in a row, and (up to the deadline) until
    every msgId in `want` arrived: a leader that just took over answers only
    what it has applied, so an early empty poll is not the end."""
    got = {}
    codes = {}
    end = time.time() + deadline_s
    empty = 0
    while time.time() < end and (empty < 3 or not want <= got.keys()):
        try:
            r = c.call('BatchReceiveMessage', queueName=queue, numOfMsg=per_call,
                       pollingWaitSeconds=1)
        except Exception:
            c.conn.close()
            time.sleep(0.2)
            continue
        if r['code'] == 0:
            empty = 0
            for m in r['msgInfoList']:
                got.setdefault(m['msgId'], []).append(m['msgBody'])
        elif r['code'] == 7000:
            empty += 1
        else:
            codes[r['code']] = codes.get(r['code'], 0) + 1
            time.sleep(0.2)  # e.g. no leader yet
    if codes:
        print('# drain %s: answers other than 0/7000: %s' % (queue, codes), flush=True)
    return got


def main():
    print('# seed %d, rounds %d, largest body %d bytes, seam %s' % (
        SEED, ROUNDS, LARGE_MAX, 'on' if SEAM else 'OFF (plain kill -9)'), flush=True)
    rng = random.Random(SEED)
    t_start = time.time()
    if not C.up():
        return tap.finish()
    logs = [open(os.path.join(C.var, 'log', n + '.log')).read() for n in NODES]
    tap.check('every storage node runs with the power-loss seam %s' % ('on' if SEAM else 'OFF'),
              all(('event=fault_unsynced_in_memory' in l) == SEAM for l in logs))
    env = C.cluster_env()
    c = C.client()
    queues = {'small': 'pl-small', 'batch': 'pl-batch', 'large': 'pl-large'}
    for q in queues.values():
        r = c.call('CreateQueue', queueName=q, maxMsgSize=1048576, visibilityTimeout=300)
        tap.check('CreateQueue %s' % q, r['code'] == 0, r)

    ledger = Ledger()
    stop = threading.Event()
    kinds = ['small'] * 4 + ['batch'] * 2 + ['large']
    threads = [threading.Thread(target=sender, daemon=True,
                                args=(env, ledger, stop, k, queues[k], SEED * 10 + i))
               for i, k in enumerate(kinds)]
    for t in threads:
        t.start()

    restart_ok = True
    for rnd in range(ROUNDS):
        # Run under load for a random while (at least some acks first).
        base = ledger.count()
        end = time.time() + 20
        while ledger.count() < base + 50 and time.time() < end:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.5, 4.0))
        pids = [C.pid_of(n) for n in NODES]
        before = ledger.count()
        for pid in pids:  # all three at once: the power goes out
            if pid:
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            wait_threads_gone(pid)
        print('# round %d: killed all storage nodes after %d acknowledged sends'
              % (rnd + 1, before), flush=True)
        time.sleep(rng.uniform(0.0, 0.5))
        before = ledger.count()  # answers in flight at the cut have arrived by now
        for n in NODES:
            start_storage(n)
        # Recovered when sends are acknowledged again.
        t0 = time.time()
        while ledger.count() < before + 20 and time.time() < t0 + 30:
            time.sleep(0.05)
        ok = ledger.count() >= before + 20
        restart_ok &= ok
        print('# round %d: %s %.1f s after the restart' % (
            rnd + 1, 'sends acknowledged again' if ok else 'NO acknowledged send', time.time() - t0),
            flush=True)
        if not ok:
            break
    tap.check('the cluster served sends again after each of %d whole-cluster power losses'
              % ROUNDS, restart_ok)
    time.sleep(rng.uniform(0.5, 2.0))
    stop.set()
    for t in threads:
        t.join(70)
    tap.check('senders stopped', not any(t.is_alive() for t in threads))
    # A last power loss after the load: nothing acknowledged may depend on
    # writes still held in memory.
    pids = [C.pid_of(n) for n in NODES]
    for pid in pids:
        if pid:
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_threads_gone(pid)
    for n in NODES:
        start_storage(n)

    with ledger.mu:
        acked = dict(ledger.acked)
        attempts, failures = ledger.attempts, ledger.failures
    print('# %d acknowledged messages (%d send calls, %d failed or refused)'
          % (len(acked), attempts, failures), flush=True)
    got = {}
    for q in queues.values():
        want = {m for m, v in acked.items() if v[0] == q}
        # Large bodies two at a time: a BatchReceiveMessage of 16 bodies of up
        # to 900 KB answered 6000 and left them leased (invisible for the
        # visibility timeout) when this test was written.
        for mid, bodies in drain(c, q, want, 30, 2 if q == queues['large'] else 16).items():
            got.setdefault(mid, []).extend((q, b) for b in bodies)
    missing = [m for m in acked if m not in got]
    wrong = [m for m in acked if m in got and
             any(q != acked[m][0] or sha(b) != acked[m][1] for q, b in got[m])]
    by_tag = {}
    for mid, items in got.items():
        for q, b in items:
            by_tag.setdefault(b.split('|', 1)[0], []).append(mid)
    dup_bodies = sum(1 for ids in by_tag.values() if len(ids) > 1)
    acked_tags = {v[2] for v in acked.values()}
    extras = sum(1 for t in by_tag if t not in acked_tags)
    sizes = {}
    for m, (q, _, tag) in acked.items():
        sizes[q] = sizes.get(q, 0) + 1
    print('# received %d distinct msgIds; acknowledged per queue %s; %d bodies stored more '
          'than once; %d unacknowledged extras' % (len(got), sizes, dup_bodies, extras),
          flush=True)
    tap.check('some messages of every kind were acknowledged',
              all(sizes.get(q, 0) > 0 for q in queues.values()), sizes)
    tap.check('every acknowledged message is there after %d power losses' % (ROUNDS + 1),
              not missing, '%d of %d missing, e.g. %s' % (
                  len(missing), len(acked), [(m, acked[m][0], acked[m][2]) for m in missing[:5]]))
    tap.check('with its exact body, in its queue', not wrong, wrong[:5])
    snaps = sum(open(os.path.join(C.var, 'log', n + '.log')).read().count('event=partition_snapshot ')
                for n in NODES)
    print('# %d snapshots taken during the run' % snaps, flush=True)
    print('# elapsed %.1f s' % (time.time() - t_start), flush=True)
    return tap.finish()


C.run(main)
