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

#include "model/delayed.h"
#include "model/exchange.h"
#include "util/log.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "model/user.h"
#include "util/password.h"

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

/* ---- users, vhosts, permissions, limits <-> JSON (RabbitMQ's shapes) ---- */

/* Tags as RabbitMQ 3.9+ exports them: a list. */
static json_t *tags_to_json(const char *tags)
{
	json_t *a = json_array();
	for (const char *p = tags ? tags : ""; *p;) {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ' ')
			e++;
		if (e > p)
			json_array_append_new(a, json_stringn(p, (size_t)(e - p)));
		p = e;
	}
	return a;
}

static json_t *users_to_json(struct model *md)
{
	json_t *users = json_array();
	void *v;
	for (size_t i = 0; hmap_next(&md->users, &i, &v);) {
		const struct user *u = v;
		json_t *o = json_object(), *limits = json_object();
		json_object_set_new(o, "name", json_string(u->name));
		json_object_set_new(o, "password_hash", json_string(u->password_hash));
		json_object_set_new(o, "hashing_algorithm", json_string(u->hashing_algorithm));
		json_object_set_new(o, "tags", tags_to_json(u->tags));
		if (u->max_connections >= 0)
			json_object_set_new(limits, "max-connections",
			                    json_integer(u->max_connections));
		if (u->max_channels >= 0)
			json_object_set_new(limits, "max-channels", json_integer(u->max_channels));
		json_object_set_new(o, "limits", limits);
		json_array_append_new(users, o);
	}
	return users;
}

static json_t *vhost_to_json(const struct vhost *vh)
{
	json_t *o = json_object(), *meta = json_object();
	const char *desc = vh->description ? vh->description : "";
	json_object_set_new(o, "name", json_string(vh->name));
	json_object_set_new(meta, "description", json_string(desc));
	json_object_set_new(meta, "tags", tags_to_json(vh->tags));
	if (vh->default_queue_type)
		json_object_set_new(meta, "default_queue_type",
		                    json_string(vh->default_queue_type));
	json_object_set_new(o, "description", json_string(desc));
	json_object_set_new(o, "tags", tags_to_json(vh->tags));
	json_object_set_new(o, "metadata", meta);
	return o;
}

static void access_to_json(const struct vhost *vh, json_t *perms, json_t *topic_perms,
                           json_t *params)
{
	void *v;
	for (size_t i = 0; hmap_next(&vh->permissions, &i, &v);) {
		const struct permission *p = v;
		json_t *o = json_object();
		json_object_set_new(o, "user", json_string(p->user));
		json_object_set_new(o, "vhost", json_string(vh->name));
		json_object_set_new(o, "configure", json_string(p->pattern[PERM_CONFIGURE]));
		json_object_set_new(o, "write", json_string(p->pattern[PERM_WRITE]));
		json_object_set_new(o, "read", json_string(p->pattern[PERM_READ]));
		json_array_append_new(perms, o);
	}
	for (const struct topic_permission *t = vh->topic_permissions; t; t = t->next) {
		json_t *o = json_object();
		json_object_set_new(o, "user", json_string(t->user));
		json_object_set_new(o, "vhost", json_string(vh->name));
		json_object_set_new(o, "exchange", json_string(t->exchange));
		json_object_set_new(o, "write", json_string(t->write));
		json_object_set_new(o, "read", json_string(t->read));
		json_array_append_new(topic_perms, o);
	}
	if (vh->max_connections >= 0 || vh->max_queues >= 0) {
		json_t *o = json_object(), *val = json_object();
		if (vh->max_connections >= 0)
			json_object_set_new(val, "max-connections",
			                    json_integer(vh->max_connections));
		if (vh->max_queues >= 0)
			json_object_set_new(val, "max-queues", json_integer(vh->max_queues));
		json_object_set_new(o, "value", val);
		json_object_set_new(o, "vhost", json_string(vh->name));
		json_object_set_new(o, "component", json_string("vhost-limits"));
		json_object_set_new(o, "name", json_string("limits"));
		json_array_append_new(params, o);
	}
}

/* ---- save ------------------------------------------------------------- */

static json_t *build(struct definitions *d)
{
	json_t *root = json_object(), *vhosts = json_array(), *exchanges = json_array(),
	       *queues = json_array(), *bindings = json_array(), *perms = json_array(),
	       *topic_perms = json_array(), *params = json_array();
	json_object_set_new(root, "amqpd_version", json_string(PACKAGE_VERSION));
	void *v;
	for (size_t i = 0; hmap_next(&d->md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		json_array_append_new(vhosts, vhost_to_json(vh));
		access_to_json(vh, perms, topic_perms, params);
		void *w;
		for (size_t j = 0; hmap_next(&vh->exchanges, &j, &w);) {
			struct exchange *x = w;
			/* Oldest first: recovery rebinds in file order and
			 * binding_add puts each new binding at the head, so the
			 * list (and what types saw bound, in which order: the
			 * x-modulus-hash destination order) is the same after a
			 * restart as before. */
			struct binding *oldest = x->bindings;
			while (oldest && oldest->src_next)
				oldest = oldest->src_next;
			for (struct binding *bd = oldest; bd; bd = bd->src_prev) {
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
	json_object_set_new(root, "users", users_to_json(d->md));
	json_object_set_new(root, "vhosts", vhosts);
	json_object_set_new(root, "permissions", perms);
	json_object_set_new(root, "topic_permissions", topic_perms);
	json_object_set_new(root, "parameters", params);
	json_object_set_new(root, "global_parameters", json_array());
	json_object_set_new(root, "policies", json_array());
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

/* ---- RabbitMQ's JSON arguments -> an AMQP field table ------------------- */

struct tbuf {
	uint8_t *p;
	size_t len, cap;
	bool bad;
};

static void tput(struct tbuf *b, const void *data, size_t n)
{
	if (b->bad)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			b->bad = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void tput_be(struct tbuf *b, uint64_t v, int bytes)
{
	uint8_t x[8];
	for (int i = 0; i < bytes; i++)
		x[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	tput(b, x, (size_t)bytes);
}

static void encode_fields(struct tbuf *b, json_t *j, bool array);

static void encode_value(struct tbuf *b, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		size_t n = json_string_length(v);
		tput(b, "S", 1);
		tput_be(b, n, 4);
		tput(b, json_string_value(v), n);
		break;
	}
	case JSON_INTEGER:
		tput(b, "l", 1);
		tput_be(b, (uint64_t)json_integer_value(v), 8);
		break;
	case JSON_REAL: {
		double d = json_real_value(v);
		uint64_t u;
		memcpy(&u, &d, sizeof(u));
		tput(b, "d", 1);
		tput_be(b, u, 8);
		break;
	}
	case JSON_TRUE:
	case JSON_FALSE:
		tput(b, "t", 1);
		tput(b, json_is_true(v) ? "\1" : "\0", 1);
		break;
	case JSON_ARRAY:
	case JSON_OBJECT: {
		bool arr = json_is_array(v);
		tput(b, arr ? "A" : "F", 1);
		size_t at = b->len;
		tput_be(b, 0, 4);
		encode_fields(b, v, arr);
		if (!b->bad) {
			uint64_t n = b->len - at - 4;
			for (int i = 0; i < 4; i++)
				b->p[at + (size_t)i] = (uint8_t)(n >> (8 * (3 - i)));
		}
		break;
	}
	default:
		tput(b, "V", 1);
	}
}

static void encode_fields(struct tbuf *b, json_t *j, bool array)
{
	if (array) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) encode_value(b, v);
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		size_t kl = strlen(k);
		if (kl > 255) {
			b->bad = true;
			return;
		}
		uint8_t l = (uint8_t)kl;
		tput(b, &l, 1);
		tput(b, k, kl);
		encode_value(b, v);
	}
}

/* The arguments of an item: amqpd's exact table if it has one, else
 * RabbitMQ's JSON object encoded as RabbitMQ would (strings S, integers l,
 * booleans t, floats d, lists A, objects F).  *out is malloc'ed. */
static int item_args(json_t *o, uint8_t **out, size_t *len)
{
	if (json_object_get(o, "amqpd_arguments"))
		return get_args(o, out, len);
	*out = NULL;
	*len = 0;
	json_t *a = json_object_get(o, "arguments");
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_object(a))
		return -1;
	struct tbuf b = {0};
	encode_fields(&b, a, false);
	if (b.bad) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- users, vhosts, permissions, limits ----------------------------------- */

/* Tags given as a list or as a comma-separated string: "a b" (malloc'ed). */
static char *tags_from_json(json_t *t)
{
	if (json_is_string(t))
		return strdup(json_string_value(t));
	size_t cap = 1, i;
	json_t *v;
	json_array_foreach(t, i, v) cap += json_string_length(v) + 1;
	char *out = calloc(1, cap);
	if (!out)
		return NULL;
	json_array_foreach(t, i, v)
	{
		if (!json_is_string(v))
			continue;
		if (*out)
			strcat(out, " ");
		strcat(out, json_string_value(v));
	}
	return out;
}

static bool limit_ok(json_t *v)
{
	return !v || json_is_integer(v);
}

/* Refuse: said in the log and kept in d->error (the admin API's answer). */
#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(d->error, sizeof(d->error), __VA_ARGS__);                                 \
		log_error("%s", d->error);                                                         \
		return -1;                                                                         \
	} while (0)

static bool doc_has_vhost(json_t *root, struct model *md, const char *name)
{
	if (model_vhost(md, name, strlen(name)))
		return true;
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, "vhosts"), i,
	                   o) if (strcmp(jstr(o, "name"), name) == 0) return true;
	return false;
}

/* Everything that could make applying fail, each error naming its item. */
static int check_access(struct definitions *d, json_t *root, const char *src)
{
	struct model *md = d->md;
	size_t i;
	json_t *o;
	char err[300];
	static const char *const lists[] = {
	    "users",      "vhosts",    "permissions", "topic_permissions",
	    "parameters", "exchanges", "queues",      "bindings"};
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		json_t *l = json_object_get(root, lists[k]);
		if (l && !json_is_array(l))
			FAIL("definitions: %s: \"%s\" is not a list", src, lists[k]);
		json_array_foreach(l, i, o) if (!json_is_object(o))
		    FAIL("definitions: %s: %s[%zu] is not an object", src, lists[k], i);
	}
	json_array_foreach(json_object_get(root, "users"), i, o)
	{
		const char *name = jstr(o, "name");
		json_t *hash = json_object_get(o, "password_hash"),
		       *pw = json_object_get(o, "password");
		json_t *alg = json_object_get(o, "hashing_algorithm"),
		       *tags = json_object_get(o, "tags");
		json_t *lim = json_object_get(o, "limits");
		if (!*name)
			FAIL("definitions: %s: users[%zu] has no name", src, i);
		if (json_is_string(hash) && *json_string_value(hash) && pw)
			FAIL("definitions: %s: user '%s': give password or password_hash, not both",
			     src, name);
		if ((hash && !json_is_string(hash)) || (pw && !json_is_string(pw)))
			FAIL("definitions: %s: user '%s': password_hash and password must be "
			     "strings",
			     src, name);
		if (alg &&
		    (!json_is_string(alg) || !password_algorithm_known(json_string_value(alg))))
			FAIL("definitions: %s: user '%s': unknown hashing_algorithm '%s' "
			     "(known: " PASSWORD_SHA256 ", " PASSWORD_SHA512 ", " PASSWORD_MD5 ")",
			     src, name, json_is_string(alg) ? json_string_value(alg) : "?");
		const char *h = hash ? json_string_value(hash) : "";
		if (*h && !password_hash_valid(alg ? json_string_value(alg) : NULL, h))
			FAIL("definitions: %s: user '%s': password_hash is not a valid %s hash",
			     src, name, alg ? json_string_value(alg) : PASSWORD_SHA256);
		if (tags && !json_is_string(tags) && !json_is_array(tags))
			FAIL("definitions: %s: user '%s': tags must be a list or a string", src,
			     name);
		if (lim &&
		    (!json_is_object(lim) || !limit_ok(json_object_get(lim, "max-connections")) ||
		     !limit_ok(json_object_get(lim, "max-channels"))))
			FAIL("definitions: %s: user '%s': limits must be integers", src, name);
	}
	json_array_foreach(json_object_get(root, "vhosts"), i, o) if (!*jstr(o, "name"))
	    FAIL("definitions: %s: vhosts[%zu] has no name", src, i);
	json_array_foreach(json_object_get(root, "permissions"), i, o)
	{
		const char *user = jstr(o, "user"), *vh = jstr(o, "vhost");
		if (!*user || !doc_has_vhost(root, md, vh))
			FAIL("definitions: %s: permissions[%zu] (user '%s', vhost '%s'): %s", src,
			     i, user, vh, *user ? "no such vhost" : "no user");
		static const char *const k3[] = {"configure", "write", "read"};
		for (int k = 0; k < 3; k++) {
			json_t *p = json_object_get(o, k3[k]);
			if (!json_is_string(p) ||
			    pattern_check(json_string_value(p), err, sizeof(err)) < 0)
				FAIL("definitions: %s: permissions of user '%s' in vhost '%s': %s: "
				     "%s",
				     src, user, vh, k3[k], json_is_string(p) ? err : "missing");
		}
	}
	json_array_foreach(json_object_get(root, "topic_permissions"), i, o)
	{
		const char *user = jstr(o, "user"), *vh = jstr(o, "vhost");
		if (!*user || !*jstr(o, "exchange") || !doc_has_vhost(root, md, vh))
			FAIL("definitions: %s: topic_permissions[%zu]: needs user, an existing "
			     "vhost "
			     "and exchange",
			     src, i);
		static const char *const k2[] = {"write", "read"};
		for (int k = 0; k < 2; k++) {
			json_t *p = json_object_get(o, k2[k]);
			if (!json_is_string(p) ||
			    pattern_check(json_string_value(p), err, sizeof(err)) < 0)
				FAIL("definitions: %s: topic permissions of user '%s' in vhost "
				     "'%s': "
				     "%s: %s",
				     src, user, vh, k2[k], json_is_string(p) ? err : "missing");
		}
	}
	json_array_foreach(json_object_get(root, "parameters"), i, o)
	{
		if (strcmp(jstr(o, "component"), "vhost-limits") != 0)
			continue;
		json_t *val = json_object_get(o, "value");
		if (!doc_has_vhost(root, md, jstr(o, "vhost")) || !json_is_object(val) ||
		    !limit_ok(json_object_get(val, "max-connections")) ||
		    !limit_ok(json_object_get(val, "max-queues")))
			FAIL("definitions: %s: vhost-limits of vhost '%s': needs an existing vhost "
			     "and "
			     "integer max-connections / max-queues",
			     src, jstr(o, "vhost"));
	}
	return 0;
}

static int64_t limit_of(json_t *o, const char *key, int64_t old)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return old;
	json_int_t n = json_integer_value(v);
	return n < 0 ? -1 : (int64_t)n;
}

static char *dup_or_null(json_t *v)
{
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static struct vhost *load_vhost(struct definitions *d, const char *name)
{
	struct vhost *vh = model_vhost(d->md, name, strlen(name));
	return vh ? vh : vhost_new(d->md, name);
}

/* Apply what check_access() passed.  -1 only when out of memory. */
static int apply_access(struct definitions *d, json_t *root, const char *src, unsigned *nu)
{
	size_t i;
	json_t *o;
	char err[300];
	json_array_foreach(json_object_get(root, "vhosts"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "name"));
		if (!vh)
			return -1;
		json_t *meta = json_object_get(o, "metadata");
		json_t *desc = json_object_get(o, "description"),
		       *tags = json_object_get(o, "tags");
		json_t *dqt = json_object_get(o, "default_queue_type");
		if (json_is_object(meta)) {
			desc = desc ? desc : json_object_get(meta, "description");
			tags = tags ? tags : json_object_get(meta, "tags");
			dqt = dqt ? dqt : json_object_get(meta, "default_queue_type");
		}
		if (desc) {
			free(vh->description);
			vh->description = dup_or_null(desc);
		}
		if (tags && (json_is_array(tags) || json_is_string(tags))) {
			free(vh->tags);
			vh->tags = tags_from_json(tags);
		}
		if (dqt) {
			free(vh->default_queue_type);
			vh->default_queue_type = dup_or_null(dqt);
		}
	}
	json_array_foreach(json_object_get(root, "users"), i, o)
	{
		const char *name = jstr(o, "name");
		json_t *alg = json_object_get(o, "hashing_algorithm");
		const char *a = json_is_string(alg) ? json_string_value(alg) : PASSWORD_SHA256;
		char hashed[200];
		const char *hash = jstr(o, "password_hash");
		json_t *pw = json_object_get(o, "password");
		if (!*hash && json_is_string(pw)) {
			if (password_hash(a, json_string_value(pw), json_string_length(pw), hashed,
			                  sizeof(hashed)) < 0)
				FAIL("definitions: %s: user '%s': cannot hash the password", src,
				     name);
			hash = hashed;
		}
		json_t *tags = json_object_get(o, "tags");
		char *t = tags ? tags_from_json(tags) : strdup("");
		struct user *u =
		    t ? model_user_put(d->md, name, hash, a, t, err, sizeof(err)) : NULL;
		free(t);
		if (!u)
			FAIL("definitions: %s: user '%s': %s", src, name,
			     t ? err : "out of memory");
		json_t *lim = json_object_get(o, "limits");
		u->max_connections = limit_of(lim, "max-connections", u->max_connections);
		u->max_channels = limit_of(lim, "max-channels", u->max_channels);
		(*nu)++;
	}
	json_array_foreach(json_object_get(root, "permissions"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		if (!vh ||
		    vhost_set_permission(vh, jstr(o, "user"), jstr(o, "configure"),
		                         jstr(o, "write"), jstr(o, "read"), err, sizeof(err)) < 0)
			FAIL("definitions: %s: permissions of user '%s': %s", src, jstr(o, "user"),
			     vh ? err : "out of memory");
	}
	json_array_foreach(json_object_get(root, "topic_permissions"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		if (!vh || vhost_set_topic_permission(vh, jstr(o, "user"), jstr(o, "exchange"),
		                                      jstr(o, "write"), jstr(o, "read"), err,
		                                      sizeof(err)) < 0)
			FAIL("definitions: %s: topic permissions of user '%s': %s", src,
			     jstr(o, "user"), vh ? err : "out of memory");
	}
	json_array_foreach(json_object_get(root, "parameters"), i, o)
	{
		const char *comp = jstr(o, "component");
		if (strcmp(comp, "vhost-limits") != 0) {
			log_warning(
			    "definitions: %s: parameter '%s' of component '%s' in vhost '%s' "
			    "is not supported; ignored",
			    src, jstr(o, "name"), comp, jstr(o, "vhost"));
			continue;
		}
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		if (!vh)
			return -1;
		json_t *val = json_object_get(o, "value");
		vh->max_connections = limit_of(val, "max-connections", vh->max_connections);
		vh->max_queues = limit_of(val, "max-queues", vh->max_queues);
	}
	static const char *const unsupported[] = {"policies", "global_parameters",
	                                          "operator_policies"};
	for (size_t k = 0; k < sizeof(unsupported) / sizeof(unsupported[0]); k++) {
		size_t n = json_array_size(json_object_get(root, unsupported[k]));
		size_t shown = 0;
		json_array_foreach(json_object_get(root, unsupported[k]), i, o)
		{
			/* cluster_name and the like are harmless; say what is skipped. */
			if (shown++ < 5)
				log_warning(
				    "definitions: %s: %s '%s' is not supported yet; ignored", src,
				    unsupported[k], jstr(o, "name"));
		}
		if (n > 5)
			log_warning("definitions: %s: ... and %zu more %s ignored", src, n - 5,
			            unsupported[k]);
	}
	d->md->perm_epoch++;
	return 0;
}

/* Exchanges, queues and bindings.  strict: an item that cannot be created
 * fails the load (an import); else it is skipped, logged (recovery). */
static int load_objects(struct definitions *d, json_t *root, const char *path, bool strict,
                        unsigned *pnx, unsigned *pnq, unsigned *pnb)
{
	size_t i;
	json_t *o;
	unsigned nx = 0, nq = 0, nb = 0;
#define SKIP_OR_FAIL()                                                                             \
	do {                                                                                       \
		if (strict)                                                                        \
			return -1;                                                                 \
		continue;                                                                          \
	} while (0)
	json_array_foreach(json_object_get(root, "exchanges"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		const char *type = jstr(o, "type");
		uint8_t *targs;
		size_t talen;
		bool delayed = false;
		uint16_t tcode;
		char ttext[320];
		const struct xtype *t = NULL;
		if (item_args(o, &targs, &talen) == 0) {
			t = delayed_resolve_type(d->md, amqp_cstr(type),
			                         (struct amqp_bytes){targs, talen}, &delayed,
			                         &tcode, ttext, sizeof(ttext));
			free(targs);
		}
		if (!vh || !t) {
			log_error("definitions: %s: exchange '%s': type '%s' is not loaded%s", path,
			          jstr(o, "name"), type, strict ? "" : "; skipped");
			SKIP_OR_FAIL();
		}
		const char *xname = jstr(o, "name");
		if (!*xname || strncmp(xname, "amq.", 4) == 0) {
			if (*xname && vhost_exchange(vh, xname, strlen(xname)))
				continue; /* predeclared ones are in every export */
			log_error("definitions: %s: exchange '%s': a name is needed, not amq.*",
			          path, xname);
			SKIP_OR_FAIL();
		}
		uint8_t *args;
		size_t alen;
		if (item_args(o, &args, &alen) < 0) {
			log_error("definitions: %s: exchange '%s': bad arguments%s", path, xname,
			          strict ? "" : "; skipped");
			SKIP_OR_FAIL();
		}
		uint16_t code;
		char text[256];
		json_t *dur = json_object_get(o, "durable");
		struct exchange *nx_ =
		    exchange_new(vh, amqp_cstr(xname), t, dur ? json_is_true(dur) : true,
		                 json_is_true(json_object_get(o, "auto_delete")),
		                 json_is_true(json_object_get(o, "internal")),
		                 (struct amqp_bytes){args, alen}, &code, text, sizeof(text));
		if (nx_) {
			/* Its holding queue comes back with the queues below. */
			nx_->delayed = delayed;
			nx++;
		} else {
			log_error("definitions: %s: exchange '%s': %s", path, xname, text);
			free(args);
			SKIP_OR_FAIL();
		}
		free(args);
	}
	json_array_foreach(json_object_get(root, "queues"), i, o)
	{
		struct vhost *vh = load_vhost(d, jstr(o, "vhost"));
		const char *qname = jstr(o, "name");
		uint8_t *args;
		size_t alen;
		if (!vh || !*qname || item_args(o, &args, &alen) < 0) {
			log_error("definitions: %s: queue '%s': bad definition%s", path, qname,
			          strict ? "" : "; skipped");
			SKIP_OR_FAIL();
		}
		if (vhost_queue(vh, qname, strlen(qname))) {
			free(args);
			continue; /* there already */
		}
		json_t *dur = json_object_get(o, "durable");
		struct queue *q = queue_new(vh, amqp_cstr(qname), dur ? json_is_true(dur) : true,
		                            false, json_is_true(json_object_get(o, "auto_delete")),
		                            NULL, (struct amqp_bytes){args, alen});
		free(args);
		if (!q)
			return -1;
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
		if (!x || !to || item_args(o, &args, &alen) < 0) {
			log_error("definitions: %s: binding %s -> %s: missing end or bad "
			          "arguments%s",
			          path, src, dst, strict ? "" : "; skipped");
			SKIP_OR_FAIL();
		}
		char text[256];
		int rc = binding_add(x, to, amqp_cstr(jstr(o, "routing_key")),
		                     (struct amqp_bytes){args, alen}, text, sizeof(text));
		free(args);
		if (rc == 0) {
			nb++;
		} else {
			log_error("definitions: %s: binding %s -> %s: %s", path, src, dst, text);
			SKIP_OR_FAIL();
		}
	}
#undef SKIP_OR_FAIL
	*pnx = nx;
	*pnq = nq;
	*pnb = nb;
	return 0;
}

/* The first start: guest/guest (administrator) with full permissions on
 * "/", as RabbitMQ seeds an empty node. */
static int first_start(struct definitions *d)
{
	char hash[200], err[200];
	struct vhost *vh = load_vhost(d, "/");
	if (!vh || password_hash(PASSWORD_SHA256, "guest", 5, hash, sizeof(hash)) < 0 ||
	    !model_user_put(d->md, "guest", hash, PASSWORD_SHA256, "administrator", err,
	                    sizeof(err)) ||
	    vhost_set_permission(vh, "guest", ".*", ".*", ".*", err, sizeof(err)) < 0) {
		log_error("definitions: cannot create the default user and vhost");
		return -1;
	}
	if (!vh->description)
		vh->description = strdup("Default virtual host");
	log_info("definitions: first start: created vhost '/' and user 'guest'");
	definitions_changed(d);
	return 0;
}

int definitions_load(struct definitions *d)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", d->data_dir ? d->data_dir : ".", DEFS_FILE);
	if (!d->data_dir || access(path, F_OK) != 0) {
		if (d->no_seed) {
			/* As RabbitMQ: definitions to load, no default user. */
			log_info("definitions: first start with definitions to load: no default "
			         "user or vhost is created");
			return 0;
		}
		return first_start(d);
	}
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		log_error("definitions: %s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	unsigned nu = 0, nx = 0, nq = 0, nb = 0;
	int rc = -1;
	if (!json_is_object(root))
		log_error("definitions: %s: not a JSON object", path);
	else if (check_access(d, root, path) == 0 && apply_access(d, root, path, &nu) == 0 &&
	         load_objects(d, root, path, false, &nx, &nq, &nb) == 0)
		rc = 0;
	/* A file from before users were kept: seed guest as a first start. */
	if (rc == 0 && !json_object_get(root, "users"))
		rc = first_start(d);
	json_decref(root);
	if (rc == 0)
		log_info("definitions: recovered %u users, %u exchanges, %u queues, %u bindings "
		         "from %s",
		         nu, nx, nq, nb, path);
	return rc;
}

int definitions_import(struct definitions *d, const char *path)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		if (jerr.line > 0)
			log_error("definitions: %s:%d:%d: %s", path, jerr.line, jerr.column,
			          jerr.text);
		else
			log_error("definitions: %s",
			          jerr.text); /* cannot open: the text names it */
		return -1;
	}
	unsigned nu = 0, nx = 0, nq = 0, nb = 0;
	int rc = -1;
	if (!json_is_object(root))
		log_error("definitions: %s: not a JSON object", path);
	else if (check_access(d, root, path) == 0 && apply_access(d, root, path, &nu) == 0 &&
	         load_objects(d, root, path, true, &nx, &nq, &nb) == 0)
		rc = 0;
	json_decref(root);
	if (rc == 0) {
		log_info(
		    "definitions: imported %u users, %u exchanges, %u queues, %u bindings from "
		    "%s",
		    nu, nx, nq, nb, path);
		definitions_changed(d);
	}
	return rc;
}

/* ---- for the admin API ----------------------------------------------------- */

json_t *definitions_export(struct definitions *d)
{
	return build(d);
}

json_t *definitions_table_json(const uint8_t *raw, size_t len)
{
	return table_to_json((struct amqp_bytes){raw, len}, false);
}

int definitions_json_table(json_t *obj, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return -1;
	struct tbuf b = {0};
	encode_fields(&b, obj, false);
	if (b.bad) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* Is there an exchange of that name in vh, or in the document for vh? */
static bool doc_has(json_t *root, const char *list, struct vhost *vh, const char *vhost,
                    const char *name)
{
	if (vh && strcmp(list, "exchanges") == 0 &&
	    (!*name || vhost_exchange(vh, name, strlen(name))))
		return true;
	if (vh && strcmp(list, "queues") == 0 && vhost_queue(vh, name, strlen(name)))
		return true;
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, list), i, o)
	{
		if (strcmp(jstr(o, "vhost"), vhost) == 0 && strcmp(jstr(o, "name"), name) == 0)
			return true;
	}
	return false;
}

/* Everything load_objects() would refuse, refused first (nothing changed). */
static int check_objects(struct definitions *d, json_t *root, const char *src)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, "exchanges"), i, o)
	{
		const char *vn = jstr(o, "vhost"), *name = jstr(o, "name"), *type = jstr(o, "type");
		if (!doc_has_vhost(root, d->md, vn))
			FAIL("definitions: %s: exchange '%s': no vhost '%s'", src, name, vn);
		struct vhost *vh = model_vhost(d->md, vn, strlen(vn));
		if (!*name || strncmp(name, "amq.", 4) == 0) {
			if (*name && vh && vhost_exchange(vh, name, strlen(name)))
				continue;
			if (*name &&
			    (strcmp(name, "amq.direct") == 0 || strcmp(name, "amq.fanout") == 0 ||
			     strcmp(name, "amq.topic") == 0 || strcmp(name, "amq.headers") == 0 ||
			     strcmp(name, "amq.match") == 0 ||
			     strcmp(name, "amq.rabbitmq.trace") == 0))
				continue; /* predeclared in every new vhost */
			FAIL("definitions: %s: exchange '%s' in vhost '%s': a name is needed, not "
			     "amq.*",
			     src, name, vn);
		}
		uint8_t *args;
		size_t alen;
		if (item_args(o, &args, &alen) < 0)
			FAIL("definitions: %s: exchange '%s' in vhost '%s': bad arguments", src,
			     name, vn);
		bool delayed;
		uint16_t code;
		char text[320];
		const struct xtype *t =
		    delayed_resolve_type(d->md, amqp_cstr(type), (struct amqp_bytes){args, alen},
		                         &delayed, &code, text, sizeof(text));
		code = t ? exchange_dedup_args_check((struct amqp_bytes){args, alen}, name, vn,
		                                     text, sizeof(text))
		         : code;
		free(args);
		if (!t)
			FAIL("definitions: %s: exchange '%s' in vhost '%s': exchange type '%s' is "
			     "not "
			     "known",
			     src, name, vn, type);
		if (code)
			FAIL("definitions: %s: exchange '%s': %s", src, name, text);
	}
	json_array_foreach(json_object_get(root, "queues"), i, o)
	{
		const char *vn = jstr(o, "vhost"), *name = jstr(o, "name");
		if (!doc_has_vhost(root, d->md, vn))
			FAIL("definitions: %s: queue '%s': no vhost '%s'", src, name, vn);
		if (!*name || strlen(name) > 255)
			FAIL("definitions: %s: queues[%zu] in vhost '%s': a name is needed", src, i,
			     vn);
		uint8_t *args;
		size_t alen;
		if (item_args(o, &args, &alen) < 0)
			FAIL("definitions: %s: queue '%s' in vhost '%s': bad arguments", src, name,
			     vn);
		char text[400];
		uint16_t code =
		    queue_args_check((struct amqp_bytes){args, alen}, name, vn, text, sizeof(text));
		free(args);
		if (code)
			FAIL("definitions: %s: queue '%s': %s", src, name, text);
	}
	json_array_foreach(json_object_get(root, "bindings"), i, o)
	{
		const char *vn = jstr(o, "vhost"), *s = jstr(o, "source"),
		           *t = jstr(o, "destination");
		const char *dt = jstr(o, "destination_type");
		struct vhost *vh = model_vhost(d->md, vn, strlen(vn));
		if (!doc_has_vhost(root, d->md, vn))
			FAIL("definitions: %s: binding %s -> %s: no vhost '%s'", src, s, t, vn);
		if (!*s)
			FAIL("definitions: %s: binding -> %s in vhost '%s': the default exchange "
			     "cannot be bound",
			     src, t, vn);
		bool to_x = strcmp(dt, "exchange") == 0;
		if (!to_x && strcmp(dt, "queue") != 0)
			FAIL("definitions: %s: binding %s -> %s: destination_type must be queue or "
			     "exchange",
			     src, s, t);
		if (!doc_has(root, "exchanges", vh, vn, s))
			FAIL("definitions: %s: binding %s -> %s in vhost '%s': no exchange '%s'",
			     src, s, t, vn, s);
		if (!doc_has(root, to_x ? "exchanges" : "queues", vh, vn, t))
			FAIL("definitions: %s: binding %s -> %s in vhost '%s': no %s '%s'", src, s,
			     t, vn, dt, t);
		uint8_t *args;
		size_t alen;
		if (item_args(o, &args, &alen) < 0)
			FAIL("definitions: %s: binding %s -> %s: bad arguments", src, s, t);
		free(args);
	}
	return 0;
}

/* Policies are not imported yet (the operations issue brings them). */
static bool definitions_policy_supported(struct definitions *d, json_t *o)
{
	(void)d;
	(void)o;
	return false;
}

/* Give every item of a one-vhost document its vhost. */
static void set_vhost(json_t *root, const char *vhost)
{
	const char *lists[] = {"queues",     "exchanges",   "bindings",         "policies",
	                       "parameters", "permissions", "topic_permissions"};
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(root, lists[k]), i, o)
		    json_object_set_new(o, "vhost", json_string(vhost));
	}
}

int definitions_import_doc(struct definitions *d, json_t *doc, const char *vhost, char *err,
                           size_t errlen, json_t *warnings)
{
	json_t *root = json_deep_copy(doc);
	if (!root) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (vhost)
		set_vhost(root, vhost);
	const char *src = "import";
	d->error[0] = 0;
	unsigned nu = 0, nx = 0, nq = 0, nb = 0;
	int rc = -1;
	if (check_access(d, root, src) == 0 && check_objects(d, root, src) == 0) {
		/* Checked whole: from here only memory can fail. */
		if (apply_access(d, root, src, &nu) == 0 &&
		    load_objects(d, root, src, false, &nx, &nq, &nb) == 0)
			rc = 0;
		else
			snprintf(d->error, sizeof(d->error), "out of memory while importing");
	}
	if (rc == 0) {
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(root, "parameters"), i, o)
		{
			if (strcmp(jstr(o, "component"), "vhost-limits") == 0)
				continue;
			char w[400];
			snprintf(w, sizeof(w),
			         "parameter '%s' of component '%s' in vhost '%s' is not "
			         "supported and was not imported",
			         jstr(o, "name"), jstr(o, "component"), jstr(o, "vhost"));
			log_warning("definitions: %s", w);
			json_array_append_new(warnings, json_string(w));
		}
		json_array_foreach(json_object_get(root, "policies"), i, o)
		{
			if (definitions_policy_supported(d, o))
				continue;
			char w[400];
			snprintf(w, sizeof(w), "policy '%s' in vhost '%s' was not imported",
			         jstr(o, "name"), jstr(o, "vhost"));
			log_warning("definitions: %s", w);
			json_array_append_new(warnings, json_string(w));
		}
		log_info("definitions: imported %u users, %u exchanges, %u queues, %u bindings", nu,
		         nx, nq, nb);
		definitions_changed(d);
	} else {
		/* "definitions: import: " is for the log; the answer names the item. */
		const char *e = d->error;
		if (strncmp(e, "definitions: import: ", 21) == 0)
			e += 21;
		snprintf(err, errlen, "%s", e[0] ? e : "the document was refused");
	}
	json_decref(root);
	return rc;
}
