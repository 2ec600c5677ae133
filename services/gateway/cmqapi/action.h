/* action.h: the CMQ API actions (spec §6-§8) and their case-insensitive
 * lookup.
 *
 * The Action parameter is matched ASCII case-insensitively (§3, §13.1: the
 * Java SDK sends "ClearSUbscriptionFIlterTags"); action_name gives the
 * canonical spelling for logs and metrics.  The table is the list of actions
 * the gateway must serve; it knows nothing about how they are served.
 */
#ifndef CMQ_GWAPI_ACTION_H
#define CMQ_GWAPI_ACTION_H

#include <stddef.h>

#include "cmq_error.h"

struct params;

#define CMQ_ACTION_TABLE(X)                                      \
    X(CREATE_QUEUE, "CreateQueue")                               \
    X(LIST_QUEUE, "ListQueue")                                   \
    X(GET_QUEUE_ATTRIBUTES, "GetQueueAttributes")                \
    X(SET_QUEUE_ATTRIBUTES, "SetQueueAttributes")                \
    X(DELETE_QUEUE, "DeleteQueue")                               \
    X(REWIND_QUEUE, "RewindQueue")                               \
    X(SEND_MESSAGE, "SendMessage")                               \
    X(BATCH_SEND_MESSAGE, "BatchSendMessage")                    \
    X(RECEIVE_MESSAGE, "ReceiveMessage")                         \
    X(BATCH_RECEIVE_MESSAGE, "BatchReceiveMessage")              \
    X(DELETE_MESSAGE, "DeleteMessage")                           \
    X(BATCH_DELETE_MESSAGE, "BatchDeleteMessage")                \
    X(CREATE_TOPIC, "CreateTopic")                               \
    X(SET_TOPIC_ATTRIBUTES, "SetTopicAttributes")                \
    X(LIST_TOPIC, "ListTopic")                                   \
    X(GET_TOPIC_ATTRIBUTES, "GetTopicAttributes")                \
    X(DELETE_TOPIC, "DeleteTopic")                               \
    X(PUBLISH_MESSAGE, "PublishMessage")                         \
    X(BATCH_PUBLISH_MESSAGE, "BatchPublishMessage")              \
    X(SUBSCRIBE, "Subscribe")                                    \
    X(LIST_SUBSCRIPTION_BY_TOPIC, "ListSubscriptionByTopic")     \
    X(SET_SUBSCRIPTION_ATTRIBUTES, "SetSubscriptionAttributes")  \
    X(GET_SUBSCRIPTION_ATTRIBUTES, "GetSubscriptionAttributes")  \
    X(UNSUBSCRIBE, "Unsubscribe")                                \
    X(CLEAR_SUBSCRIPTION_FILTER_TAGS, "ClearSubscriptionFilterTags")  \
    /* the TCP SDK's name server (cmq-tcp-protocol.md §5) */     \
    X(QUERY_QUEUE_ROUTE, "QueryQueueRoute")                      \
    X(QUERY_TOPIC_ROUTE, "QueryTopicRoute")                      \
    /* extension: the message trace (docs/http-api.md) */        \
    X(DESCRIBE_MESSAGE_TRACE, "DescribeMessageTrace")

enum cmq_action {
    CMQ_ACTION_NONE = 0,
#define CMQ_ACTION_ENUM_(id, name) CMQ_ACTION_##id,
    CMQ_ACTION_TABLE(CMQ_ACTION_ENUM_)
#undef CMQ_ACTION_ENUM_
        CMQ_ACTION_COUNT_
};

/* The action named `name` (`len` bytes, borrowed), ASCII case-insensitively;
 * CMQ_ACTION_NONE when there is none. */
enum cmq_action action_lookup(const char *name, size_t len);

/* The canonical spelling ("SendMessage"); "" for CMQ_ACTION_NONE.  Static. */
const char *action_name(enum cmq_action a);

/* Reads the Action parameter.  Returns CMQ_OK with *out set,
 * CMQ_ENOTFOUND when absent or empty (fault 10390 "Action"), or
 * CMQ_EUNSUPPORTED for an unknown name (fault 4000/10430 naming it). */
int action_from_params(const struct params *p, enum cmq_action *out, struct cmq_fault *fault);

#endif
