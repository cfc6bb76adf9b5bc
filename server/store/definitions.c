/*
 * definitions.c - see definitions.h.
 */
#include "store/definitions.h"
#include "model/model.h"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/exchange.h"
#include "util/log.h"
#include "model/queue.h"
#include "model/vhost.h"

#define DEFS_FILE "definitions.json"

static bool predeclared(const struct exchange *x)
{
	return x->name_len == 0 || (x->name_len >= 4 && memcmp(x->name, "amq.", 4) == 0);
}

static bool queue_durable(const struct queue *q)
{
	return q->durable && !q->exclusive && !q->deleted;
}

static bool dest_durable(const struct dest *d)
{
	if (d->kind == DEST_QUEUE)
		return queue_durable((const struct queue *)d);
	return ((const struct exchange *)d)->durable;
}

/* ---- field tables <-> JSON ------------------------------------------- */

static json_t *value_to_json(const struct amqp_field_value *v);

static json_t *table_to_json(struct amqp_bytes raw, bool array)
{
	json_t *out = array ? json_array() : json_object();
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;
	amqp_table_iter_init(&it, raw);
	while ((array ? amqp_array_next(&it, &v) : amqp_table_next(&it, &key, &v)) > 0) {
		json_t *j = value_to_json(&v);
		if (array) {
			json_array_append_new(out, j);
		} else {
			char k[256];
			snprintf(k, sizeof(k), "%.*s", (int)key.len, (const char *)key.ptr);
			json_object_set_new(out, k, j);
		}
	}
	return out;
}

/* A readable rendering, as RabbitMQ's export shows arguments.  The exact
 * encoding is kept next to it (amqpd_arguments) for a faithful reload. */
static json_t *value_to_json(const struct amqp_field_value *v)
{
	switch (v->type) {
	case 't':
		return json_boolean(v->v.b);
	case 'b':
		return json_integer(v->v.i8);
	case 'B':
		return json_integer(v->v.u8);
	case 's':
		return json_integer(v->v.i16);
	case 'u':
		return json_integer(v->v.u16);
	case 'I':
		return json_integer(v->v.i32);
	case 'i':
		return json_integer(v->v.u32);
	case 'l':
		return json_integer(v->v.i64);
	case 'L':
	case 'T':
		return json_integer((json_int_t)v->v.u64);
	case 'f':
		return json_real(v->v.f);
	case 'd':
		return json_real(v->v.d);
	case 'S':
	case 'x': {
		json_t *s = json_stringn((const char *)v->v.str.ptr, v->v.str.len);
		return s ? s : json_null();
	}
	case 'F':
		return table_to_json(v->v.table.raw, false);
	case 'A':
		return table_to_json(v->v.array.raw, true);
	default:
		return json_null();
	}
}

static void set_args(json_t *o, const uint8_t *args, size_t len)
{
	struct amqp_bytes raw = {args, len};
	json_object_set_new(o, "arguments", table_to_json(raw, false));
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	if (!b64)
		return;
	int n = EVP_EncodeBlock((unsigned char *)b64, args, (int)len);
	json_object_set_new(o, "amqpd_arguments", json_stringn(b64, (size_t)(n > 0 ? n : 0)));
	free(b64);
}

/* The exact argument table saved by set_args; *out is malloc'ed. */
static int get_args(json_t *o, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	const char *b64 = json_string_value(json_object_get(o, "amqpd_arguments"));
	if (!b64 || !*b64)
		return 0;
	size_t bl = strlen(b64);
	uint8_t *buf = malloc(bl);
	if (!buf || bl % 4)
		goto bad;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)bl);
	if (n < 0)
		goto bad;
	/* DecodeBlock counts '=' padding as zero bytes; take them off. */
	while (bl > 0 && b64[bl - 1] == '=' && n > 0) {
		bl--;
		n--;
	}
	struct amqp_bytes raw = {buf, (size_t)n};
	if (amqp_table_validate(raw, NULL) < 0)
		goto bad;
	*out = buf;
	*len = (size_t)n;
	return 0;
bad:
	free(buf);
	return -1;
}

/* ---- save ------------------------------------------------------------- */

static json_t *build(struct definitions *d)
{
	json_t *root = json_object(), *vhosts = json_array(), *exchanges = json_array(),
	       *queues = json_array(), *bindings = json_array();
	json_object_set_new(root, "amqpd_version", json_string(PACKAGE_VERSION));
	void *v;
	for (size_t i = 0; hmap_next(&d->md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		json_t *jv = json_object();
		json_object_set_new(jv, "name", json_string(vh->name));
		json_array_append_new(vhosts, jv);
		void *w;
		for (size_t j = 0; hmap_next(&vh->exchanges, &j, &w);) {
			struct exchange *x = w;
			for (struct binding *bd = x->bindings; bd; bd = bd->src_next) {
				if (!x->durable || !dest_durable(bd->dest))
					continue;
				json_t *jb = json_object();
				json_object_set_new(jb, "source", json_string(x->name));
				json_object_set_new(jb, "vhost", json_string(vh->name));
				bool toq = bd->dest->kind == DEST_QUEUE;
				json_object_set_new(
				    jb, "destination",
				    json_string(toq ? ((struct queue *)bd->dest)->name
				                    : ((struct exchange *)bd->dest)->name));
				json_object_set_new(jb, "destination_type",
				                    json_string(toq ? "queue" : "exchange"));
				json_object_set_new(jb, "routing_key", json_string(bd->key));
				set_args(jb, bd->args, bd->args_len);
				json_array_append_new(bindings, jb);
			}
			if (!x->durable || predeclared(x))
				continue;
			json_t *jx = json_object();
			json_object_set_new(jx, "name", json_string(x->name));
			json_object_set_new(jx, "vhost", json_string(vh->name));
			json_object_set_new(jx, "type", json_string(exchange_type_name(x)));
			json_object_set_new(jx, "durable", json_true());
			json_object_set_new(jx, "auto_delete", json_boolean(x->auto_delete));
			json_object_set_new(jx, "internal", json_boolean(x->internal));
			set_args(jx, x->args, x->args_len);
			json_array_append_new(exchanges, jx);
		}
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
			struct queue *q = w;
			if (!queue_durable(q))
				continue;
			json_t *jq = json_object();
			json_object_set_new(jq, "name", json_string(q->name));
			json_object_set_new(jq, "vhost", json_string(vh->name));
			json_object_set_new(jq, "durable", json_true());
			json_object_set_new(jq, "auto_delete", json_boolean(q->auto_delete));
			set_args(jq, q->args, q->args_len);
			if (q->store_id[0])
				json_object_set_new(jq, "amqpd_store_id", json_string(q->store_id));
			json_array_append_new(queues, jq);
		}
	}
	json_object_set_new(root, "vhosts", vhosts);
	json_object_set_new(root, "exchanges", exchanges);
	json_object_set_new(root, "queues", queues);
	json_object_set_new(root, "bindings", bindings);
	return root;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int definitions_save(struct definitions *d)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", d->data_dir, DEFS_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	json_t *root = build(d);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (!text) {
		log_error("definitions: out of memory while saving");
		return -1;
	}
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("definitions: cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)n;
	}
	if (off < len || fsync(fd) < 0) {
		log_error("definitions: cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0 || fsync_dir(d->data_dir) < 0) {
		log_error("definitions: cannot replace %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

void definitions_changed(struct definitions *d)
{
	if (!d->frozen)
		d->dirty = true;
}

void definitions_flush(struct definitions *d)
{
	if (!d->dirty || !d->data_dir)
		return;
	d->dirty = false;
	definitions_save(d);
}

/* ---- load ------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static struct vhost *load_vhost(struct definitions *d, const char *name)
{
	struct vhost *vh = model_vhost(d->md, name, strlen(name));
	return vh ? vh : vhost_new(d->md, name);
}

int definitions_load(struct definitions *d)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", d->data_dir, DEFS_FILE);
	if (access(path, F_OK) != 0)
		return 0;
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		log_error("definitions: %s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	size_t i;
	json_t *o;
	unsigned nx = 0, nq = 0, nb = 0;
	json_array_foreach(json_object_get(root, "vhosts"), i, o)
	{
		if (!load_vhost(d, jstr(o, "name"))) {
			json_decref(root);
			return -1;
		}
	}
	json_array_foreach(json_object_get(root, "exchanges"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		const char *type = jstr(o, "type");
		const struct xtype *t = plugin_host_xtype(d->md->plugins, type, strlen(type));
		if (!vh || !t) {
			log_error("definitions: exchange '%s': type '%s' is not loaded; skipped",
			          jstr(o, "name"), type);
			continue;
		}
		uint8_t *args;
		size_t alen;
		if (get_args(o, &args, &alen) < 0) {
			log_error("definitions: exchange '%s': bad arguments; skipped",
			          jstr(o, "name"));
			continue;
		}
		uint16_t code;
		char text[256];
		if (exchange_new(vh, amqp_cstr(jstr(o, "name")), t, true,
		                 json_is_true(json_object_get(o, "auto_delete")),
		                 json_is_true(json_object_get(o, "internal")),
		                 (struct amqp_bytes){args, alen}, &code, text, sizeof(text)))
			nx++;
		else
			log_error("definitions: exchange '%s': %s", jstr(o, "name"), text);
		free(args);
	}
	json_array_foreach(json_object_get(root, "queues"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		uint8_t *args;
		size_t alen;
		if (!vh || get_args(o, &args, &alen) < 0) {
			log_error("definitions: queue '%s': bad definition; skipped",
			          jstr(o, "name"));
			continue;
		}
		struct queue *q = queue_new(vh, amqp_cstr(jstr(o, "name")), true, false,
		                            json_is_true(json_object_get(o, "auto_delete")), NULL,
		                            (struct amqp_bytes){args, alen});
		free(args);
		if (!q) {
			json_decref(root);
			return -1;
		}
		snprintf(q->store_id, sizeof(q->store_id), "%s", jstr(o, "amqpd_store_id"));
		nq++;
	}
	json_array_foreach(json_object_get(root, "bindings"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		const char *src = jstr(o, "source"), *dst = jstr(o, "destination");
		struct exchange *x = vh ? vhost_exchange(vh, src, strlen(src)) : NULL;
		struct dest *to = NULL;
		if (vh && strcmp(jstr(o, "destination_type"), "exchange") == 0) {
			struct exchange *dx = vhost_exchange(vh, dst, strlen(dst));
			to = dx ? &dx->d : NULL;
		} else if (vh) {
			struct queue *dq = vhost_queue(vh, dst, strlen(dst));
			to = dq ? &dq->d : NULL;
		}
		uint8_t *args;
		size_t alen;
		if (!x || !to || get_args(o, &args, &alen) < 0) {
			log_error("definitions: binding %s -> %s: missing end; skipped", src, dst);
			continue;
		}
		char text[256];
		if (binding_add(x, to, amqp_cstr(jstr(o, "routing_key")),
		                (struct amqp_bytes){args, alen}, text, sizeof(text)) == 0)
			nb++;
		else
			log_error("definitions: binding %s -> %s: %s", src, dst, text);
		free(args);
	}
	json_decref(root);
	log_info("definitions: recovered %u exchanges, %u queues, %u bindings from %s", nx, nq, nb,
	         path);
	return 0;
}
