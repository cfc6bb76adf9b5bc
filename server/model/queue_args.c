/*
 * queue_args.c - see queue_args.h.
 */
#include "model/queue_args.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool str_is(const struct amqp_field_value *v, const char *s)
{
	return v->type == 'S' && amqp_bytes_eq_cstr(v->v.str, s);
}

enum check {
	C_EXPIRES,
	C_TTL,
	C_DLX,
	C_DLRK,
	C_NONNEG,
	C_PRIORITY,
	C_OVERFLOW,
	C_MODE,
	C_SAC,
	C_LOCATOR,
	C_GROUP,
	C_NONE
};

/* RabbitMQ's declare_args() order, with the queue types that take each:
 * bit 0 classic, bit 1 quorum. */
static const struct {
	const char *key;
	enum check check;
	unsigned types;
} args_table[] = {
    {"x-expires", C_EXPIRES, 3},
    {"x-message-ttl", C_TTL, 3},
    {"x-dead-letter-exchange", C_DLX, 3},
    {"x-dead-letter-routing-key", C_DLRK, 3},
    {"x-max-length", C_NONNEG, 3},
    {"x-max-length-bytes", C_NONNEG, 3},
    {"x-max-in-memory-length", C_NONNEG, 2},
    {"x-max-in-memory-bytes", C_NONNEG, 2},
    {"x-max-priority", C_PRIORITY, 1},
    {"x-overflow", C_OVERFLOW, 3},
    {"x-queue-mode", C_MODE, 1},
    {"x-single-active-consumer", C_SAC, 3},
    {"x-consumer-timeout", C_NONNEG, 3},
    {"x-quorum-initial-group-size", C_GROUP, 2},
    {"x-queue-leader-locator", C_LOCATOR, 3},
    {"x-queue-master-locator", C_NONE, 1},
    {"x-delivery-limit", C_NONE, 2},
    {"x-message-deduplication", C_SAC, 3},
    {"x-cache-size", C_NONNEG, 3},
    {"x-cache-ttl", C_NONNEG, 3},
    {"x-deduplication-header", C_DLX, 3},
    {"x-dead-letter-strategy", C_NONE, 2},
};

#define MAX_EXPIRY 315360000000LL /* RabbitMQ's cap: ten years of ms */

/* The reason a value is refused, as RabbitMQ prints it; NULL if fine. */
static const char *value_error(enum check c, const struct amqp_field_value *v,
                               struct amqp_bytes args, const char *key, char *buf, size_t len)
{
	int64_t n = 0;
	switch (c) {
	case C_EXPIRES:
	case C_TTL:
	case C_NONNEG:
	case C_PRIORITY:
	case C_GROUP:
		if (!amqp_table_get_int(args, key, &n)) {
			snprintf(buf, len, "\"expected integer, got %s\"",
			         queue_arg_type_name(v->type));
			return buf;
		}
		if ((c == C_EXPIRES || c == C_GROUP) && n == 0) {
			snprintf(buf, len, "{value_zero,0}");
			return buf;
		}
		if (n < 0) {
			snprintf(buf, len, "{value_negative,%lld}", (long long)n);
			return buf;
		}
		if ((c == C_EXPIRES || c == C_TTL) && n > MAX_EXPIRY) {
			snprintf(buf, len, "{value_too_large,%lld}", (long long)n);
			return buf;
		}
		if (c == C_PRIORITY && n > 255) {
			snprintf(buf, len, "{max_value_exceeded,%lld}", (long long)n);
			return buf;
		}
		return NULL;
	case C_DLX:
		if (v->type != 'S') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		return NULL;
	case C_DLRK: {
		if (v->type != 'S') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		struct amqp_field_value x;
		if (!amqp_table_get(args, "x-dead-letter-exchange", &x)) {
			snprintf(buf, len, "routing_key_but_no_dlx_defined");
			return buf;
		}
		return NULL;
	}
	case C_OVERFLOW:
		if (v->type != 'S') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		if (!str_is(v, "drop-head") && !str_is(v, "reject-publish") &&
		    !str_is(v, "reject-publish-dlx")) {
			snprintf(buf, len, "invalid_overflow");
			return buf;
		}
		return NULL;
	case C_MODE:
		if (v->type != 'S') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		if (!str_is(v, "default") && !str_is(v, "lazy")) {
			snprintf(buf, len, "\"unsupported queue mode '%.*s'\"",
			         (int)(v->v.str.len > 64 ? 64 : v->v.str.len),
			         (const char *)v->v.str.ptr);
			return buf;
		}
		return NULL;
	case C_SAC:
		if (v->type != 't') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		return NULL;
	case C_LOCATOR:
		if (v->type != 'S') {
			snprintf(buf, len, "{unacceptable_type,%s}", queue_arg_type_name(v->type));
			return buf;
		}
		if (!str_is(v, "client-local") && !str_is(v, "balanced") && !str_is(v, "random") &&
		    !str_is(v, "least-leaders") && !str_is(v, "min-masters")) {
			snprintf(buf, len, "invalid_queue_locator_arg");
			return buf;
		}
		return NULL;
	case C_NONE:
	default:
		return NULL;
	}
}

uint16_t queue_args_check(struct amqp_bytes args, const char *queue, const char *vhost, char *err,
                          size_t errlen)
{
	char why[128];
	unsigned type = 1; /* classic */
	const char *type_mod = "rabbit_classic_queue";
	struct amqp_field_value v;
	if (amqp_table_get(args, "x-queue-type", &v)) {
		if (v.type != 'S') {
			snprintf(why, sizeof(why), "{unacceptable_type,%s}",
			         queue_arg_type_name(v.type));
			goto bad_type;
		}
		if (str_is(&v, "quorum")) {
			type = 2;
			type_mod = "rabbit_quorum_queue";
		} else if (str_is(&v, "stream")) {
			return 0; /* the streams issue; taken as before */
		} else if (v.v.str.len && !str_is(&v, "classic")) {
			snprintf(why, sizeof(why), "\"unsupported queue type '%.*s'\"",
			         (int)(v.v.str.len > 64 ? 64 : v.v.str.len),
			         (const char *)v.v.str.ptr);
			goto bad_type;
		}
	}
	for (size_t i = 0; i < sizeof(args_table) / sizeof(args_table[0]); i++) {
		if (!(args_table[i].types & type) || !amqp_table_get(args, args_table[i].key, &v))
			continue;
		const char *e =
		    value_error(args_table[i].check, &v, args, args_table[i].key, why, sizeof(why));
		if (e) {
			snprintf(err, errlen,
			         "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost "
			         "'%s': %s",
			         args_table[i].key, queue, vhost, e);
			return 406;
		}
	}
	for (size_t i = 0; i < sizeof(args_table) / sizeof(args_table[0]); i++) {
		if ((args_table[i].types & type) || !amqp_table_get(args, args_table[i].key, &v))
			continue;
		snprintf(
		    err, errlen,
		    "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '%s' of queue "
		    "type %s",
		    args_table[i].key, queue, vhost, type_mod);
		return 406;
	}
	return 0;
bad_type:
	snprintf(
	    err, errlen,
	    "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '%s' in vhost '%s': %s",
	    queue, vhost, why);
	return 406;
}

static void copy_name(char *dst, uint8_t *len, struct amqp_bytes v)
{
	size_t n = v.len > 255 ? 255 : v.len;
	memcpy(dst, v.ptr, n);
	dst[n] = 0;
	*len = (uint8_t)n;
}

void queue_conf_from_args(struct queue_conf *c, struct amqp_bytes args)
{
	memset(c, 0, sizeof(*c));
	c->message_ttl = c->expires = c->max_length = c->max_bytes = c->delivery_limit = -1;
	c->consumer_timeout = -1;
	struct amqp_field_value v;
	int64_t n;
	if (amqp_table_get(args, "x-queue-type", &v) && str_is(&v, "quorum")) {
		c->quorum = true;
		c->delivery_limit = 20; /* RabbitMQ 4's default */
	}
	if (amqp_table_get_int(args, "x-message-ttl", &n) && n >= 0)
		c->message_ttl = n;
	if (amqp_table_get_int(args, "x-expires", &n) && n > 0)
		c->expires = n;
	if (amqp_table_get_int(args, "x-max-length", &n) && n >= 0)
		c->max_length = n;
	if (amqp_table_get_int(args, "x-max-length-bytes", &n) && n >= 0)
		c->max_bytes = n;
	if (amqp_table_get_int(args, "x-max-priority", &n) && n > 0)
		c->max_priority = (uint8_t)(n > 255 ? 255 : n);
	if (amqp_table_get(args, "x-single-active-consumer", &v) && v.type == 't')
		c->single_active = v.v.b;
	if (amqp_table_get_int(args, "x-consumer-timeout", &n) && n >= 0)
		c->consumer_timeout = n;
	if (c->quorum && amqp_table_get_int(args, "x-delivery-limit", &n))
		c->delivery_limit = n < 0 ? -1 : n;
	if (amqp_table_get(args, "x-overflow", &v)) {
		if (str_is(&v, "reject-publish"))
			c->overflow = OVERFLOW_REJECT_PUBLISH;
		else if (str_is(&v, "reject-publish-dlx"))
			c->overflow = OVERFLOW_REJECT_PUBLISH_DLX;
	}
	dedup_conf_from_args(&c->dedup, args);
	if (amqp_table_get(args, "x-dead-letter-exchange", &v) && v.type == 'S') {
		c->has_dlx = true;
		copy_name(c->dlx, &c->dlx_len, v.v.str);
	}
	if (amqp_table_get(args, "x-dead-letter-routing-key", &v) && v.type == 'S') {
		c->has_dlrk = true;
		copy_name(c->dlrk, &c->dlrk_len, v.v.str);
	}
}

void dedup_conf_from_args(struct dedup_conf *c, struct amqp_bytes args)
{
	struct amqp_field_value v;
	int64_t n;
	memset(c, 0, sizeof(*c));
	c->on = amqp_table_get(args, "x-message-deduplication", &v) && v.type == 't' && v.v.b;
	c->cache_size = DEDUP_DEFAULT_SIZE;
	c->ttl = -1;
	if (amqp_table_get_int(args, "x-cache-size", &n) && n >= 0)
		c->cache_size = n;
	if (amqp_table_get_int(args, "x-cache-ttl", &n) && n > 0)
		c->ttl = n;
	if (amqp_table_get(args, "x-deduplication-header", &v) && v.type == 'S' && v.v.str.len)
		copy_name(c->header, &c->header_len, v.v.str);
	else
		copy_name(c->header, &c->header_len, amqp_cstr(DEDUP_DEFAULT_HEADER));
}

uint16_t exchange_dedup_args_check(struct amqp_bytes args, const char *exchange, const char *vhost,
                                   char *err, size_t errlen)
{
	static const struct {
		const char *key;
		enum check check;
	} keys[] = {{"x-message-deduplication", C_SAC},
	            {"x-cache-size", C_NONNEG},
	            {"x-cache-ttl", C_NONNEG},
	            {"x-deduplication-header", C_DLX}};
	char why[160];
	struct amqp_field_value v;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!amqp_table_get(args, keys[i].key, &v))
			continue;
		const char *e = value_error(keys[i].check, &v, args, keys[i].key, why, sizeof(why));
		if (e) {
			snprintf(
			    err, errlen,
			    "PRECONDITION_FAILED - invalid arg '%s' for exchange '%s' in vhost "
			    "'%s': %s",
			    keys[i].key, exchange, vhost, e);
			return 406;
		}
	}
	return 0;
}

void queue_args_unsupported(struct amqp_bytes args, char *out, size_t outlen)
{
	/* Accepted, without effect on one node or not built yet; the rest
	 * (TTLs, expiry, limits, overflow, dead-lettering, priorities, the
	 * quorum delivery limit, single active consumer, consumer timeout)
	 * act. */
	static const char *const later[] = {
	    "x-queue-leader-locator", "x-queue-master-locator",      "x-max-in-memory-length",
	    "x-max-in-memory-bytes",  "x-quorum-initial-group-size", "x-dead-letter-strategy"};
	size_t n = 0;
	out[0] = 0;
	struct amqp_field_value v;
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		if (!amqp_table_get(args, later[i], &v))
			continue;
		int w = snprintf(out + n, outlen - n, "%s%s", n ? ", " : "", later[i]);
		if (w < 0 || (size_t)w >= outlen - n)
			return;
		n += (size_t)w;
	}
}

const char *queue_arg_type_name(uint8_t t)
{
	switch (t) {
	case 't':
		return "bool";
	case 'b':
		return "byte";
	case 'B':
		return "unsignedbyte";
	case 's':
		return "short";
	case 'u':
		return "unsignedshort";
	case 'I':
		return "signedint";
	case 'i':
		return "unsignedint";
	case 'l':
		return "long";
	case 'L':
		return "unsignedlong";
	case 'f':
		return "float";
	case 'd':
		return "double";
	case 'D':
		return "decimal";
	case 'S':
		return "longstr";
	case 'x':
		return "binary";
	case 'A':
		return "array";
	case 'T':
		return "timestamp";
	case 'F':
		return "table";
	default:
		return "void";
	}
}
