/* api_publish.h: topic messages through the gateway (api_publish.c): the
 * publish actions, the storage half of topic and subscription changes, and
 * a publish encoder other front ends (the TCP protocol) reuse. */
#ifndef CMQ_GATEWAY_API_PUBLISH_H
#define CMQ_GATEWAY_API_PUBLISH_H

#include "params.h"

#include <stddef.h>
#include <stdint.h>

struct gw_call;
struct json;
struct api_call;

/* PublishMessage and BatchPublishMessage (spec §7.6, §7.7). */
void api_do_publish(struct gw_call *c);

/* After a successful Subscribe / Unsubscribe / SetSubscriptionAttributes /
 * ClearSubscriptionFilterTags in metadata: copies the topic's subscription
 * set to storage, then answers with `ok` (owned: freed here). */
void api_topic_sync_after_meta(struct gw_call *c, uint64_t appid, const char *topic_name,
                               struct json *ok);
/* After DeleteTopic in metadata (`topic_info`: the TopicInfo as it was,
 * borrowed): frees the topic's state in storage, then answers with `ok`. */
void api_topic_drop_after_meta(struct gw_call *c, const void *topic_info, struct json *ok);
/* GetSubscriptionAttributes after metadata's SubInfo (borrowed): adds
 * storage's counters, then answers through api_write_sub_attrs. */
void api_sub_stats(struct gw_call *c, const void *sub_info);

void api_publish_cleanup(struct api_call *a);

/* DescribeMessageTrace with topicName (and no queueName): metadata's
 * TopicInfo, then the trace from the topic's partition (api_trace.c). */
void api_do_topic_trace(struct gw_call *c);

/* GetTopicAttributes after metadata's TopicInfo (borrowed): asks storage
 * for msgCount, then answers through api_write_topic_attrs. */
void api_topic_stats(struct gw_call *c, const void *topic_info);
/* api_topic.c: answers GetTopicAttributes (msg_count 0 when storage did not answer). */
void api_write_topic_attrs(struct gw_call *c, const void *topic_info, uint64_t msg_count);

/* api_topic.c: answers GetSubscriptionAttributes from a SubInfo and a
 * TopicStatsReply (NULL: storage did not answer; counters are 0). */
void api_write_sub_attrs(struct gw_call *c, const void *sub_info, const void *stats);

#endif
