/*
 * user.c - see user.h.
 */
#include "model/user.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/vhost.h"

/* ---- patterns ------------------------------------------------------------- */

static pcre2_code *compile(const char *pattern, char *err, size_t errlen)
{
	/* RabbitMQ: an empty pattern is "^$" (matches only ""). */
	const char *p = *pattern ? pattern : "^$";
	int code;
	PCRE2_SIZE off;
	pcre2_code *re =
	    pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[128];
		pcre2_get_error_message(code, msg, sizeof(msg));
		if (err)
			snprintf(err, errlen, "invalid regular expression '%s': %s at offset %zu",
			         pattern, (const char *)msg, (size_t)off);
		return NULL;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* faster when available */
	return re;
}

/* Unanchored, as re:run.  Bounded: a pattern that backtracks without end
 * (an operator's mistake) fails the match instead of stalling the loop. */
static bool match(pcre2_code *re, const char *s, size_t len)
{
	static pcre2_match_context *mctx;
	if (!mctx && (mctx = pcre2_match_context_create(NULL)) != NULL) {
		pcre2_set_match_limit(mctx, 100000);
		pcre2_set_depth_limit(mctx, 10000);
	}
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!md)
		return false;
	int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, mctx);
	pcre2_match_data_free(md);
	return rc >= 0;
}

int pattern_check(const char *pattern, char *err, size_t errlen)
{
	pcre2_code *re = compile(pattern, err, errlen);
	pcre2_code_free(re);
	return re ? 0 : -1;
}

/* ---- users ---------------------------------------------------------------------- */

struct user *model_user(struct model *md, const char *name)
{
	return hmap_get(&md->users, name, strlen(name));
}

static void user_free(struct user *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->password_hash);
	free(u->hashing_algorithm);
	free(u->tags);
	free(u);
}

/* "a, b c" -> "a b c" (RabbitMQ takes tags as a comma list or a JSON list;
 * amqpd keeps them space-separated). */
static char *normalise_tags(const char *tags)
{
	size_t n = strlen(tags);
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = tags; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		if (o != out)
			*o++ = ' ';
		while (*p && *p != ',' && *p != ' ')
			*o++ = *p++;
	}
	*o = 0;
	return out;
}

bool user_has_tag(const char *tags, const char *tag)
{
	size_t n = strlen(tag);
	for (const char *p = tags; p && *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ' ' && *e != ',')
			e++;
		if ((size_t)(e - p) == n && memcmp(p, tag, n) == 0)
			return true;
		p = e;
	}
	return false;
}

struct user *model_user_put(struct model *md, const char *name, const char *hash,
                            const char *algorithm, const char *tags, char *err, size_t errlen)
{
	if (!*name || strlen(name) > 255) {
		snprintf(err, errlen, "user name must be 1 to 255 bytes");
		return NULL;
	}
	struct user *u = calloc(1, sizeof(*u));
	if (!u || !(u->name = strdup(name)) || !(u->password_hash = strdup(hash ? hash : "")) ||
	    !(u->hashing_algorithm =
	          strdup(algorithm && *algorithm ? algorithm : "rabbit_password_hashing_sha256")) ||
	    !(u->tags = normalise_tags(tags ? tags : ""))) {
		user_free(u);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->max_connections = u->max_channels = -1;
	struct user *old = model_user(md, name);
	if (old) {
		u->max_connections = old->max_connections;
		u->max_channels = old->max_channels;
		hmap_del(&md->users, name, strlen(name));
		user_free(old);
	}
	if (hmap_put(&md->users, u->name, strlen(u->name), u) < 0) {
		user_free(u);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	md->perm_epoch++;
	return u;
}

bool model_user_delete(struct model *md, const char *name)
{
	struct user *u = model_user(md, name);
	if (!u)
		return false;
	hmap_del(&md->users, name, strlen(name));
	void *v;
	for (size_t i = 0; hmap_next(&md->vhosts, &i, &v);) {
		vhost_clear_permission(v, name);
		vhost_clear_topic_permissions(v, name, NULL);
	}
	user_free(u);
	md->perm_epoch++;
	return true;
}

void model_free_users(struct model *md)
{
	void *v;
	for (size_t i = 0; hmap_next(&md->users, &i, &v);)
		user_free(v);
	hmap_free(&md->users);
}

/* ---- permissions ------------------------------------------------------------------ */

static void permission_free(struct permission *p)
{
	if (!p)
		return;
	for (int k = 0; k < 3; k++) {
		free(p->pattern[k]);
		pcre2_code_free(p->re[k]);
	}
	free(p->user);
	free(p);
}

const struct permission *vhost_permission(const struct vhost *vh, const char *user)
{
	return hmap_get(&vh->permissions, user, strlen(user));
}

int vhost_set_permission(struct vhost *vh, const char *user, const char *configure,
                         const char *write, const char *read, char *err, size_t errlen)
{
	struct permission *p = calloc(1, sizeof(*p));
	const char *src[3] = {configure, write, read};
	if (!p || !(p->user = strdup(user)))
		goto oom;
	for (int k = 0; k < 3; k++) {
		if (!(p->re[k] = compile(src[k], err, errlen))) {
			permission_free(p);
			return -1;
		}
		if (!(p->pattern[k] = strdup(src[k])))
			goto oom;
	}
	struct permission *old = hmap_get(&vh->permissions, user, strlen(user));
	if (old) {
		hmap_del(&vh->permissions, user, strlen(user));
		permission_free(old);
	}
	if (hmap_put(&vh->permissions, p->user, strlen(p->user), p) < 0)
		goto oom;
	vh->md->perm_epoch++;
	return 0;
oom:
	permission_free(p);
	snprintf(err, errlen, "out of memory");
	return -1;
}

bool vhost_clear_permission(struct vhost *vh, const char *user)
{
	struct permission *p = hmap_get(&vh->permissions, user, strlen(user));
	if (!p)
		return false;
	hmap_del(&vh->permissions, user, strlen(user));
	permission_free(p);
	vh->md->perm_epoch++;
	return true;
}

bool permission_allows(const struct permission *p, enum perm_kind kind, const char *name,
                       size_t len)
{
	return p && match(p->re[kind], name, len);
}

/* ---- topic permissions ------------------------------------------------------------ */

static void topic_free(struct topic_permission *t)
{
	free(t->user);
	free(t->exchange);
	free(t->write);
	free(t->read);
	free(t);
}

int vhost_set_topic_permission(struct vhost *vh, const char *user, const char *exchange,
                               const char *write, const char *read, char *err, size_t errlen)
{
	/* Check the patterns with their variables as they are: a pattern that
	 * compiles only after expansion is unusual enough to refuse. */
	if (pattern_check(write, err, errlen) < 0 || pattern_check(read, err, errlen) < 0)
		return -1;
	struct topic_permission *t = calloc(1, sizeof(*t));
	if (!t || !(t->user = strdup(user)) || !(t->exchange = strdup(exchange)) ||
	    !(t->write = strdup(write)) || !(t->read = strdup(read))) {
		if (t)
			topic_free(t);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	vhost_clear_topic_permissions(vh, user, exchange);
	t->next = vh->topic_permissions;
	vh->topic_permissions = t;
	vh->md->perm_epoch++;
	return 0;
}

bool vhost_clear_topic_permissions(struct vhost *vh, const char *user, const char *exchange)
{
	bool any = false;
	for (struct topic_permission **pp = &vh->topic_permissions; *pp;) {
		struct topic_permission *t = *pp;
		if (strcmp(t->user, user) == 0 &&
		    (!exchange || strcmp(t->exchange, exchange) == 0)) {
			*pp = t->next;
			topic_free(t);
			any = true;
		} else {
			pp = &t->next;
		}
	}
	if (any)
		vh->md->perm_epoch++;
	return any;
}

const struct topic_permission *vhost_topic_permission(const struct vhost *vh, const char *user,
                                                      const char *exchange)
{
	for (const struct topic_permission *t = vh->topic_permissions; t; t = t->next)
		if (strcmp(t->user, user) == 0 && strcmp(t->exchange, exchange) == 0)
			return t;
	return NULL;
}

/* Append s to the buffer; false when it does not fit. */
static bool put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + len >= cap)
		return false;
	memcpy(buf + *n, s, len);
	*n += len;
	return true;
}

/* Append a value to a pattern as a literal (\Q...\E, a \E inside it
 * split), so a name chosen by a client cannot change the pattern. */
static bool put_literal(char *buf, size_t cap, size_t *n, const char *v)
{
	if (!put(buf, cap, n, "\\Q", 2))
		return false;
	for (const char *p = v; *p; p++) {
		if (p[0] == '\\' && p[1] == 'E') {
			if (!put(buf, cap, n, "\\E\\\\E\\Q", 7))
				return false;
			p++;
			continue;
		}
		if (!put(buf, cap, n, p, 1))
			return false;
	}
	return put(buf, cap, n, "\\E", 2);
}

bool topic_pattern_allows(const char *pattern, const char *user, const char *vhost,
                          const char *client_id, const char *key)
{
	static const char *const names[] = {"{username}", "{vhost}", "{client_id}"};
	const char *vals[] = {user, vhost, client_id};
	char buf[4096];
	size_t n = 0;
	for (const char *p = pattern; *p;) {
		bool done = false;
		for (int i = 0; i < 3 && !done; i++) {
			size_t l = strlen(names[i]);
			if (vals[i] && strncmp(p, names[i], l) == 0) {
				if (!put_literal(buf, sizeof(buf), &n, vals[i]))
					return false;
				p += l;
				done = true;
			}
		}
		if (!done && !put(buf, sizeof(buf), &n, p++, 1))
			return false;
	}
	buf[n] = 0;
	pcre2_code *re = compile(buf, NULL, 0);
	bool ok = re && match(re, key, strlen(key));
	pcre2_code_free(re);
	return ok;
}

void vhost_free_permissions(struct vhost *vh)
{
	void *v;
	for (size_t i = 0; hmap_next(&vh->permissions, &i, &v);)
		permission_free(v);
	hmap_free(&vh->permissions);
	while (vh->topic_permissions) {
		struct topic_permission *t = vh->topic_permissions;
		vh->topic_permissions = t->next;
		topic_free(t);
	}
}
