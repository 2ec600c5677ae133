#!/usr/bin/env python3
"""Whole-cluster test of snapshots, segment deletion and install-snapshot
(issue #4): a storage node that was down while the others snapshotted and
deleted the segments it would need catches up through a snapshot, and every
acknowledged message is still received exactly once, with its body, even
when that node leads.

Small segments (4 MiB) and a snapshot every 100 applied entries make a few
thousand 2 KiB messages enough.  Steps: stop the queue partition's leader
(also its preferred leader); send, drain, send again (so the first segments
are no longer needed); check the other two took snapshots and deleted
segments; restart the stopped node; check it installed a snapshot (log line
and raft-status); wait until leadership returns to it (placement's preferred
leader); receive the rest through it.

usage: test_snapshot_catchup.py BUILD_DIR
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402

EXTRA = '[data]\nsegment_bytes = 4194304\n[snapshot]\nentries = 100\n'
C = Cluster('snap', port_lo=20070, storage_extra=EXTRA)
tap = C.tap


def send(c, queue, count, tag, sent):
    for b in range(count // 16):
        bodies = {'msgBody.%d' % (k + 1): '%s-%d-%d-%s' % (tag, b, k, 'x' * 2000)
                  for k in range(16)}
        for _ in range(50):
            r = c.call('BatchSendMessage', queueName=queue, **bodies)
            if r['code'] == 0:
                break
            time.sleep(0.2)  # e.g. while a leader is elected
        if r['code'] == 0:
            for k, m in enumerate(r['msgList']):
                sent[m['msgId']] = bodies['msgBody.%d' % (k + 1)]


def drain(c, queue, want, deadline_s, got):
    """Receives up to `want` messages and deletes each; records them in got."""
    n = 0
    end = time.time() + deadline_s
    while n < want and time.time() < end:
        r = c.call('BatchReceiveMessage', queueName=queue, numOfMsg=16, pollingWaitSeconds=1)
        if r['code'] != 0:
            if r['code'] != 7000:
                time.sleep(0.2)
            continue
        handles = []
        for m in r['msgInfoList']:
            got.setdefault(m['msgId'], []).append(m['msgBody'])
            handles.append(m['receiptHandle'])
        n += len(handles)
        chunk = {'receiptHandle.%d' % (k + 1): h for k, h in enumerate(handles)}
        c.call('BatchDeleteMessage', queueName=queue, **chunk)
    return n


def main():
    if not C.up():
        return tap.finish()
    c = C.client()
    ps = C.wait_placed()
    r = c.call('CreateQueue', queueName='snap', visibilityTimeout=60)
    tap.check('CreateQueue', r['code'] == 0, r)
    part = [p for p in C.partitions() if p['queues'] == '1']
    tap.check('the queue has a partition with a leader', part and
              re.match(r'storage-\d$', part[0]['leader']), part)
    pid_part = int(part[0]['partition'])
    down = int(part[0]['leader'].split('-')[1])
    os.kill(C.pid_of(down), signal.SIGKILL)
    leader = None
    for _ in range(100):
        ps = [p for p in C.partitions() if p['partition'] == str(pid_part)]
        if ps and re.match(r'storage-\d$', ps[0]['leader']) and \
                ps[0]['leader'] != 'storage-%d' % down:
            leader = int(ps[0]['leader'].split('-')[1])
            break
        time.sleep(0.2)
    tap.check('a new leader after stopping storage-%d (preferred %s)'
              % (down, part[0].get('preferred')), leader is not None)
    print('# partition %d: stopped storage-%d, new leader storage-%s' % (pid_part, down, leader))

    sent, got = {}, {}
    send(c, 'snap', 4000, 'a', sent)
    tap.check('4000 sends acknowledged with one node down', len(sent) == 4000, len(sent))
    drained = drain(c, 'snap', 4000, 120, got)
    send(c, 'snap', 2400, 'b', sent)
    drained += drain(c, 'snap', 800, 60, got)
    send(c, 'snap', 160, 'c', sent)
    tap.check('drained 4800', drained == 4800, drained)
    time.sleep(1)
    up_nodes = [n for n in (1, 2, 3) if n != down]
    for n in up_nodes:
        st = C.raft_status(n, pid_part) or {}
        tap.check('storage-%d took snapshots (snapshot=%s) and deleted segments (first=%s)'
                  % (n, st.get('snapshot'), st.get('first')),
                  int(st.get('snapshot', 0)) > 0 and int(st.get('first', 0)) > 1, st)
    tap.check('the leader logged segment deletion',
              re.search(r'event=partition_snapshot partition=%d .*segments_deleted=[1-9]'
                        % pid_part, C.log(leader)))

    up = C.cmq('up')
    tap.check('the stopped node comes back', up.returncode == 0, up.stderr)
    lead_st = C.raft_status(leader, pid_part) or {}
    st = {}
    for _ in range(150):
        st = C.raft_status(down, pid_part) or {}
        if int(st.get('installed', 0)) >= 1 and \
                int(st.get('applied', 0)) >= int(lead_st.get('commit', 1 << 62)):
            break
        time.sleep(0.2)
    tap.check('storage-%d caught up through a snapshot (installed=%s applied=%s, leader commit %s)'
              % (down, st.get('installed'), st.get('applied'), lead_st.get('commit')),
              int(st.get('installed', 0)) >= 1 and
              int(st.get('applied', 0)) >= int(lead_st.get('commit', 1 << 62)), st)
    tap.check('its log says so',
              re.search(r'event=partition_snapshot_installed partition=%d ' % pid_part,
                        C.log(down)) and
              re.search(r'event=partition_install_send partition=%d ' % pid_part,
                        C.log(leader)))

    # Placement prefers the restarted node as leader: the current leader
    # hands leadership back to it (a transfer, once it is up to date), so the
    # rest is read back through the log it received.
    ps = []
    for _ in range(150):
        ps = [p for p in C.partitions() if p['partition'] == str(pid_part)]
        if ps and ps[0]['leader'] == 'storage-%d' % down:
            break
        time.sleep(0.2)
    tap.check('storage-%d leads the partition again' % down,
              ps and ps[0]['leader'] == 'storage-%d' % down, ps)
    drain(c, 'snap', len(sent) - len(got), 60, got)
    tap.check('every acknowledged message was received (%d of %d)' % (len(got), len(sent)),
              set(got) == set(sent), len(set(sent) - set(got)))
    tap.check('each exactly once', all(len(v) == 1 for v in got.values()),
              [k for k, v in got.items() if len(v) > 1][:5])
    tap.check('with its body', all(v[0] == sent.get(k) for k, v in got.items()))

    down_rc = C.cmq('down')
    tap.check('down', down_rc.returncode == 0)
    logs = [C.log(n).splitlines()[-1] for n in (1, 2, 3)]
    tap.check('every storage node stopped cleanly', all('event=exit status=0' in l for l in logs),
              logs)
    return tap.finish()


C.run(main)
