/* forward.h: append a SendRequest to any queue, wherever its partition leader
 * is (this node or another storage node), until it is committed or refused
 * for good.  Used for dead-letter moves (queues.c) and topic -> queue fan-out.
 *
 * How: the request goes, as a STORAGE_MSG_SEND, to the storage node that last
 * led the queue's partition (a small cache by queue id), else to every known
 * storage node in turn, this one first (node peers from the partition map).
 * Not-leader answers are followed through their leader hint; "no such queue"
 * moves on to the next node; timeouts, unavailable nodes and CMQ_EBUSY back
 * off (50 ms doubling to 2 s) and try again.  No deadline: it ends on commit,
 * on a permanent refusal, or at forward_close.
 *
 * Idempotence: give every SendItem a dedup_key (proto/storage.proto).  The
 * queue's leader answers a request whose every key is in its partition's dedup
 * window with the original msg ids instead of appending again (qsm.h), and
 * appends only the other items of a request it holds in part, so a
 * retry after a lost reply or a leader change does not duplicate.  Without
 * keys a retry may append twice (at least once).  Keys are per queue; choose
 * them unique per logical message (a dead-letter move uses the source msg id;
 * a topic fan-out could use hash(subscription, topic msg id)).  The window
 * holds the last QSM_DEDUP_MAX keyed items per partition, and beyond those
 * the ones younger than QSM_DEDUP_KEEP_MS (up to QSM_DEDUP_HARD_MAX).
 */
#ifndef CMQ_STORAGE_FORWARD_H
#define CMQ_STORAGE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

struct node;
struct forward;

/* The outcome of one forward_send, called exactly once, never from inside
 * forward_send.  status:
 *   CMQ_OK         committed: msg_ids[0..n) in request order (borrowed for the call);
 *   CMQ_ENOTFOUND  no storage node knows the queue (3 rounds over all nodes);
 *   CMQ_EINVAL, CMQ_ETOOBIG, CMQ_ELIMIT (the queue's maxMsgHeapNum), CMQ_EDENIED:
 *                  refused by the queue's leader (permanent for this request);
 *   CMQ_ESHUTDOWN  forward_close ran first (the append may or may not have
 *                  happened: retry it later with the same keys). */
typedef void forward_done_fn(void *arg, int status, const uint64_t *msg_ids, size_t n);

int forward_open(struct node *n, struct forward **out);
/* Ends every pending send with CMQ_ESHUTDOWN, then frees.  Accepts NULL. */
void forward_close(struct forward *f);

/* Appends the encoded SendRequest `send_req` (copied; its queue_id must equal
 * `queue_id`) to that queue.  Returns CMQ_OK (done runs later) or CMQ_ENOMEM
 * / CMQ_EINVAL (done never runs). */
int forward_send(struct node *n, uint64_t queue_id, const uint8_t *send_req, size_t len,
                 forward_done_fn *done, void *arg);

/* Retries the sends whose backoff ended; call every raft tick. */
void forward_tick(struct forward *f);
/* Sends waiting (for tests and health detail). */
size_t forward_pending(const struct forward *f);

#endif
