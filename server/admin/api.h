/*
 * api.h - the admin API's handlers (one file per group of paths) and the
 * helpers they share.  See admin_priv.h for a request's life.
 *
 * Threading: loop thread.
 */
#ifndef API_H
#define API_H

#include <jansson.h>
#include <stdbool.h>

#include "admin/admin_priv.h"

struct queue;
struct vhost;
struct dest;

/* api_overview.c */
void api_overview(struct areq *r);
void api_whoami(struct areq *r);
void api_nodes(struct areq *r);
void api_node(struct areq *r);
void api_extensions(struct areq *r);
void api_cluster_name(struct areq *r);
void api_health_alarms(struct areq *r);
void api_health_local_alarms(struct areq *r);
void api_health_port(struct areq *r);
void api_health_protocol(struct areq *r);
void api_health_ok(struct areq *r);
void api_aliveness(struct areq *r);

/* Counts of the whole broker (api_overview.c), for the API and metrics. */
struct totals {
	uint64_t queues, exchanges, consumers, connections, channels;
	uint64_t ready, unacked;
};
void admin_totals(struct admin_server *a, struct totals *t);
uint64_t admin_rss_bytes(void);
unsigned admin_open_fds(void);
uint64_t admin_disk_free(const struct broker *b);

/* api_queues.c */
void api_queues_list(struct areq *r);
void api_queue_get(struct areq *r);
void api_queue_put(struct areq *r);
void api_queue_delete(struct areq *r);
void api_queue_purge(struct areq *r);
void api_queue_get_messages(struct areq *r);
void api_queue_bindings(struct areq *r);
json_t *api_queue_json(struct areq *r, void *item);
bool api_hidden_queue(const struct queue *q);

/* api_exchanges.c */
void api_exchanges_list(struct areq *r);
void api_exchange_get(struct areq *r);
void api_exchange_put(struct areq *r);
void api_exchange_delete(struct areq *r);
void api_exchange_publish(struct areq *r);
void api_exchange_bindings_source(struct areq *r);
void api_exchange_bindings_destination(struct areq *r);
void api_exchange_delayed(struct areq *r);
void api_exchange_delayed_cancel(struct areq *r);

/* api_bindings.c */
void api_bindings_list(struct areq *r);
void api_bindings_between(struct areq *r);
void api_binding_create(struct areq *r);
void api_binding_get(struct areq *r);
void api_binding_delete(struct areq *r);
/* Append the bindings into dest (is_queue: with the default exchange's)
 * or out of an exchange (api_bindings_from) to arr. */
void api_bindings_to(json_t *arr, struct vhost *vh, struct dest *d, bool is_queue);
void api_bindings_from(json_t *arr, struct vhost *vh, const char *exchange);

/* api_conns.c */
void api_connections_list(struct areq *r);
void api_connection_get(struct areq *r);
void api_connection_delete(struct areq *r);
void api_connection_channels(struct areq *r);
void api_channels_list(struct areq *r);
void api_channel_get(struct areq *r);
void api_consumers_list(struct areq *r);

/* api_access.c */
void api_vhosts_list(struct areq *r);
void api_vhost_get(struct areq *r);
void api_vhost_put(struct areq *r);
void api_vhost_delete(struct areq *r);
void api_vhost_permissions(struct areq *r);
void api_vhost_topic_permissions(struct areq *r);
void api_users_list(struct areq *r);
void api_users_without_permissions(struct areq *r);
void api_user_get(struct areq *r);
void api_user_put(struct areq *r);
void api_user_delete(struct areq *r);
void api_users_bulk_delete(struct areq *r);
void api_user_permissions(struct areq *r);
void api_user_topic_permissions(struct areq *r);
void api_permissions_list(struct areq *r);
void api_permission_get(struct areq *r);
void api_permission_put(struct areq *r);
void api_permission_delete(struct areq *r);
void api_topic_permissions_list(struct areq *r);
void api_topic_permission_get(struct areq *r);
void api_topic_permission_put(struct areq *r);
void api_topic_permission_delete(struct areq *r);
void api_vhost_limits_list(struct areq *r);
void api_vhost_limit_put(struct areq *r);
void api_vhost_limit_delete(struct areq *r);
void api_user_limits_list(struct areq *r);
void api_user_limit_put(struct areq *r);
void api_user_limit_delete(struct areq *r);

/* api_defs.c */
void api_definitions_get(struct areq *r);
void api_definitions_post(struct areq *r);

/* api_policies.c */
void api_policies_list(struct areq *r);
void api_policy_get(struct areq *r);
void api_policy_put(struct areq *r);
void api_policy_delete(struct areq *r);
/* "policy", "operator_policy", "effective_policy_definition" of a queue
 * (is_queue) or an exchange, set into o. */
void api_policy_fields(json_t *o, struct vhost *vh, const char *name, bool is_queue);

/* shared (api_util.c) */
bool api_bool(json_t *o, const char *key, bool dflt, bool *out);
int api_args(struct areq *r, json_t *body, uint8_t **args, size_t *len);
/* Raw basic properties -> RabbitMQ's "properties" object. */
json_t *api_props_json(struct amqp_bytes raw);
/* RabbitMQ's "properties" object -> basic properties; -1 (err) on a bad
 * one.  Strings borrow from obj; headers are malloc'ed into *headers. */
int api_props_from_json(json_t *obj, struct amqp_basic_props *p, uint8_t **headers, char *err,
                        size_t errlen);
/* fn(arg) when the request ends. */
void api_on_free(struct areq *r, void (*fn)(void *), void *arg);
/* A user's tags as a JSON list / from RabbitMQ's list or "a,b" string. */
json_t *api_tags_json(const char *tags);

#endif
