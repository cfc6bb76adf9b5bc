/*
 * api_util.c - what the handlers share: message properties to and from
 * RabbitMQ's JSON, tags, cleanups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "amqp_props.h"
#include "store/definitions.h"

void api_on_free(struct areq *r, void (*fn)(void *), void *arg)
{
	r->cleanup = fn;
	r->cleanup_arg = arg;
}

json_t *api_tags_json(const char *tags)
{
	json_t *a = json_array();
	char *copy = strdup(tags ? tags : "");
	for (char *save = NULL, *t = copy ? strtok_r(copy, " ,", &save) : NULL; t;
	     t = strtok_r(NULL, " ,", &save))
		json_array_append_new(a, json_string(t));
	free(copy);
	return a;
}

static void put_str(json_t *o, const char *k, struct amqp_bytes b)
{
	json_t *s = json_stringn((const char *)b.ptr, b.len);
	json_object_set_new(o, k, s ? s : json_string(""));
}

json_t *api_props_json(struct amqp_bytes raw)
{
	json_t *o = json_object();
	struct amqp_basic_props p;
	if (raw.len == 0 || amqp_basic_props_decode(raw, &p, NULL) < 0)
		return o;
	if (p.flags & AMQP_PROP_CONTENT_TYPE)
		put_str(o, "content_type", p.content_type);
	if (p.flags & AMQP_PROP_CONTENT_ENCODING)
		put_str(o, "content_encoding", p.content_encoding);
	if (p.flags & AMQP_PROP_HEADERS)
		json_object_set_new(o, "headers",
		                    definitions_table_json(p.headers.ptr, p.headers.len));
	if (p.flags & AMQP_PROP_DELIVERY_MODE)
		json_object_set_new(o, "delivery_mode", json_integer(p.delivery_mode));
	if (p.flags & AMQP_PROP_PRIORITY)
		json_object_set_new(o, "priority", json_integer(p.priority));
	if (p.flags & AMQP_PROP_CORRELATION_ID)
		put_str(o, "correlation_id", p.correlation_id);
	if (p.flags & AMQP_PROP_REPLY_TO)
		put_str(o, "reply_to", p.reply_to);
	if (p.flags & AMQP_PROP_EXPIRATION)
		put_str(o, "expiration", p.expiration);
	if (p.flags & AMQP_PROP_MESSAGE_ID)
		put_str(o, "message_id", p.message_id);
	if (p.flags & AMQP_PROP_TIMESTAMP)
		json_object_set_new(o, "timestamp", json_integer((json_int_t)p.timestamp));
	if (p.flags & AMQP_PROP_TYPE)
		put_str(o, "type", p.type);
	if (p.flags & AMQP_PROP_USER_ID)
		put_str(o, "user_id", p.user_id);
	if (p.flags & AMQP_PROP_APP_ID)
		put_str(o, "app_id", p.app_id);
	if (p.flags & AMQP_PROP_CLUSTER_ID)
		put_str(o, "cluster_id", p.cluster_id);
	return o;
}

static const struct {
	const char *key;
	uint16_t flag;
	size_t off;
} str_props[] = {
    {"content_type", AMQP_PROP_CONTENT_TYPE, offsetof(struct amqp_basic_props, content_type)},
    {"content_encoding", AMQP_PROP_CONTENT_ENCODING,
     offsetof(struct amqp_basic_props, content_encoding)},
    {"correlation_id", AMQP_PROP_CORRELATION_ID, offsetof(struct amqp_basic_props, correlation_id)},
    {"reply_to", AMQP_PROP_REPLY_TO, offsetof(struct amqp_basic_props, reply_to)},
    {"expiration", AMQP_PROP_EXPIRATION, offsetof(struct amqp_basic_props, expiration)},
    {"message_id", AMQP_PROP_MESSAGE_ID, offsetof(struct amqp_basic_props, message_id)},
    {"type", AMQP_PROP_TYPE, offsetof(struct amqp_basic_props, type)},
    {"user_id", AMQP_PROP_USER_ID, offsetof(struct amqp_basic_props, user_id)},
    {"app_id", AMQP_PROP_APP_ID, offsetof(struct amqp_basic_props, app_id)},
    {"cluster_id", AMQP_PROP_CLUSTER_ID, offsetof(struct amqp_basic_props, cluster_id)},
};

static bool small_int(json_t *v, long max, long *out)
{
	if (json_is_integer(v)) {
		*out = (long)json_integer_value(v);
	} else if (json_is_string(v)) {
		char *end;
		*out = strtol(json_string_value(v), &end, 10);
		if (*end || !*json_string_value(v))
			return false;
	} else {
		return false;
	}
	return *out >= 0 && *out <= max;
}

int api_props_from_json(json_t *obj, struct amqp_basic_props *p, uint8_t **headers, char *err,
                        size_t errlen)
{
	memset(p, 0, sizeof(*p));
	*headers = NULL;
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "properties must be an object");
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool done = false;
		for (size_t i = 0; i < sizeof(str_props) / sizeof(str_props[0]); i++) {
			if (strcmp(k, str_props[i].key) != 0)
				continue;
			if (!json_is_string(v) || json_string_length(v) > 255) {
				snprintf(err, errlen, "property %s must be a short string", k);
				return -1;
			}
			struct amqp_bytes *b = (struct amqp_bytes *)((char *)p + str_props[i].off);
			*b = (struct amqp_bytes){(const uint8_t *)json_string_value(v),
			                         json_string_length(v)};
			p->flags |= str_props[i].flag;
			done = true;
		}
		if (done)
			continue;
		long n;
		if (strcmp(k, "delivery_mode") == 0) {
			if (!small_int(v, 255, &n)) {
				snprintf(err, errlen, "delivery_mode must be 1 or 2");
				return -1;
			}
			p->delivery_mode = (uint8_t)n;
			p->flags |= AMQP_PROP_DELIVERY_MODE;
		} else if (strcmp(k, "priority") == 0) {
			if (!small_int(v, 255, &n)) {
				snprintf(err, errlen, "priority must be 0 to 255");
				return -1;
			}
			p->priority = (uint8_t)n;
			p->flags |= AMQP_PROP_PRIORITY;
		} else if (strcmp(k, "timestamp") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				snprintf(err, errlen, "timestamp must be a non-negative integer");
				return -1;
			}
			p->timestamp = (uint64_t)json_integer_value(v);
			p->flags |= AMQP_PROP_TIMESTAMP;
		} else if (strcmp(k, "headers") == 0) {
			size_t len;
			if (definitions_json_table(v, headers, &len) < 0) {
				snprintf(err, errlen, "headers must be an object");
				return -1;
			}
			p->headers = (struct amqp_bytes){*headers, len};
			p->flags |= AMQP_PROP_HEADERS;
		} else {
			snprintf(err, errlen, "unknown property %s", k);
			return -1;
		}
	}
	return 0;
}
