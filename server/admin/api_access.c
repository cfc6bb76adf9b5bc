/*
 * api_access.c - /api/vhosts, /api/users (and bulk-delete),
 * /api/permissions, /api/topic-permissions, /api/vhost-limits,
 * /api/user-limits: the model's users and access rules, changed directly
 * and saved with the definitions, as RabbitMQ's management API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "io/broker.h"
#include "model/model.h"
#include "model/queue.h"
#include "model/user.h"
#include "model/vhost.h"
#include "session/session.h"
#include "util/log.h"
#include "util/password.h"

static struct model *md_of(struct areq *r)
{
	return &r->a->b->model;
}

static void changed(struct areq *r)
{
	struct model *md = md_of(r);
	md->perm_epoch++;
	model_definitions_changed(md);
	broker_schedule(r->a->b);
}

static void push(json_t *arr, json_t *o)
{
	json_array_append_new(arr, o);
}

/* ---- vhosts ---- */

static json_t *vhost_json(struct areq *r, struct vhost *vh)
{
	uint64_t ready = 0, unacked = 0, bytes = 0;
	void *w;
	for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
		struct queue *q = w;
		if (api_hidden_queue(q))
			continue;
		ready += q->count;
		unacked += q->unacked;
		bytes += q->ready_bytes;
	}
	json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:b, s:I, s:I, s:I, s:I}", "name", vh->name,
	                      "description", vh->description ? vh->description : "", "tags",
	                      api_tags_json(vh->tags), "default_queue_type",
	                      vh->default_queue_type ? vh->default_queue_type : "classic",
	                      "tracing", false, "messages", (json_int_t)(ready + unacked),
	                      "messages_ready", (json_int_t)ready, "messages_unacknowledged",
	                      (json_int_t)unacked, "message_bytes", (json_int_t)bytes);
	json_object_set_new(o, "metadata",
	                    json_pack("{s:s, s:o}", "description",
	                              vh->description ? vh->description : "", "tags",
	                              api_tags_json(vh->tags)));
	json_t *cs = json_object();
	json_object_set_new(cs, r->a->node, json_string("running"));
	json_object_set_new(o, "cluster_state", cs);
	return o;
}

void api_vhosts_list(struct areq *r)
{
	json_t *arr = json_array();
	void *v;
	for (size_t i = 0; hmap_next(&md_of(r)->vhosts, &i, &v);)
		if (areq_vhost_visible(r, v))
			push(arr, vhost_json(r, v));
	areq_reply_json(r, 200, arr);
}

void api_vhost_get(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (vh)
		areq_reply_json(r, 200, vhost_json(r, vh));
}

static char *tags_text(json_t *t)
{
	if (!t || json_is_null(t))
		return strdup("");
	if (json_is_string(t))
		return strdup(json_string_value(t));
	if (!json_is_array(t))
		return NULL;
	size_t len = 1, i;
	json_t *v;
	json_array_foreach(t, i, v)
	{
		if (!json_is_string(v))
			return NULL;
		len += json_string_length(v) + 1;
	}
	char *out = calloc(1, len);
	json_array_foreach(t, i, v)
	{
		if (out && i)
			strcat(out, ",");
		if (out)
			strcat(out, json_string_value(v));
	}
	return out;
}

void api_vhost_put(struct areq *r)
{
	json_t *body = areq_body(r);
	if (!body)
		return;
	const char *name = r->seg[2];
	if (!*name || strlen(name) > 255) {
		areq_bad_request(r, "bad vhost name");
		return;
	}
	struct model *md = md_of(r);
	struct vhost *vh = model_vhost(md, name, strlen(name));
	bool existed = vh != NULL;
	if (!vh)
		vh = vhost_new(md, name);
	if (!vh) {
		areq_error(r, 500, "internal_error", "cannot create the vhost");
		return;
	}
	const char *desc = json_string_value(json_object_get(body, "description"));
	if (desc) {
		free(vh->description);
		vh->description = strdup(desc);
	}
	json_t *tags = json_object_get(body, "tags");
	if (tags) {
		char *t = tags_text(tags);
		if (t) {
			free(vh->tags);
			vh->tags = t;
		}
	}
	const char *dqt = json_string_value(json_object_get(body, "default_queue_type"));
	if (dqt) {
		free(vh->default_queue_type);
		vh->default_queue_type = strdup(dqt);
	}
	if (!existed)
		log_info("admin: user '%s' created vhost '%s'", r->user, name);
	changed(r);
	if (existed)
		areq_no_content(r);
	else
		areq_created(r);
}

void api_vhost_delete(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	char name[256];
	snprintf(name, sizeof(name), "%s", vh->name);
	session_vhost_delete(&r->a->b->sess, name);
	log_info("admin: user '%s' deleted vhost '%s'", r->user, name);
	changed(r);
	areq_no_content(r);
}

/* ---- permissions ---- */

static json_t *perm_json(const struct vhost *vh, const struct permission *p)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", p->user, "vhost", vh->name,
	                 "configure", p->pattern[PERM_CONFIGURE], "write", p->pattern[PERM_WRITE],
	                 "read", p->pattern[PERM_READ]);
}

static json_t *topic_json(const struct vhost *vh, const struct topic_permission *t)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", t->user, "vhost", vh->name,
	                 "exchange", t->exchange, "write", t->write, "read", t->read);
}

/* Every permission (of vh, or of all; of user, or of all) into arr. */
static void perms(struct areq *r, json_t *arr, struct vhost *only, const char *user, bool topic)
{
	void *v;
	for (size_t i = 0; hmap_next(&md_of(r)->vhosts, &i, &v);) {
		struct vhost *vh = v;
		if (only && vh != only)
			continue;
		if (topic) {
			for (const struct topic_permission *t = vh->topic_permissions; t;
			     t = t->next)
				if (!user || strcmp(t->user, user) == 0)
					push(arr, topic_json(vh, t));
			continue;
		}
		void *p;
		for (size_t j = 0; hmap_next(&vh->permissions, &j, &p);) {
			const struct permission *pm = p;
			if (!user || strcmp(pm->user, user) == 0)
				push(arr, perm_json(vh, pm));
		}
	}
}

void api_permissions_list(struct areq *r)
{
	json_t *arr = json_array();
	perms(r, arr, NULL, NULL, false);
	areq_reply_json(r, 200, arr);
}

void api_topic_permissions_list(struct areq *r)
{
	json_t *arr = json_array();
	perms(r, arr, NULL, NULL, true);
	areq_reply_json(r, 200, arr);
}

void api_vhost_permissions(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	json_t *arr = json_array();
	perms(r, arr, vh, NULL, false);
	areq_reply_json(r, 200, arr);
}

void api_vhost_topic_permissions(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	json_t *arr = json_array();
	perms(r, arr, vh, NULL, true);
	areq_reply_json(r, 200, arr);
}

static struct user *find_user(struct areq *r, int seg)
{
	struct user *u = model_user(md_of(r), r->seg[seg]);
	if (!u)
		areq_not_found(r);
	return u;
}

void api_user_permissions(struct areq *r)
{
	if (!find_user(r, 2))
		return;
	json_t *arr = json_array();
	perms(r, arr, NULL, r->seg[2], false);
	areq_reply_json(r, 200, arr);
}

void api_user_topic_permissions(struct areq *r)
{
	if (!find_user(r, 2))
		return;
	json_t *arr = json_array();
	perms(r, arr, NULL, r->seg[2], true);
	areq_reply_json(r, 200, arr);
}

/* api/permissions/{vhost}/{user} */
void api_permission_get(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	const struct permission *p = vhost_permission(vh, r->seg[3]);
	if (!p)
		areq_not_found(r);
	else
		areq_reply_json(r, 200, perm_json(vh, p));
}

void api_permission_put(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	json_t *body = vh ? areq_body(r) : NULL;
	if (!body)
		return;
	if (!model_user(md_of(r), r->seg[3])) {
		areq_bad_request(r, "user not found");
		return;
	}
	const char *c = json_string_value(json_object_get(body, "configure"));
	const char *w = json_string_value(json_object_get(body, "write"));
	const char *rd = json_string_value(json_object_get(body, "read"));
	if (!c || !w || !rd) {
		areq_bad_request(r,
		                 "[{<<\"configure\">>,<<\"is required\">>},{<<\"write\">>,<<\"is "
		                 "required\">>},{<<\"read\">>,<<\"is required\">>}]");
		return;
	}
	bool existed = vhost_permission(vh, r->seg[3]) != NULL;
	char err[256];
	if (vhost_set_permission(vh, r->seg[3], c, w, rd, err, sizeof(err)) < 0) {
		areq_bad_request(r, err);
		return;
	}
	changed(r);
	if (existed)
		areq_no_content(r);
	else
		areq_created(r);
}

void api_permission_delete(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	if (!vhost_clear_permission(vh, r->seg[3])) {
		areq_not_found(r);
		return;
	}
	changed(r);
	areq_no_content(r);
}

/* api/topic-permissions/{vhost}/{user} */
void api_topic_permission_get(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	json_t *arr = json_array();
	for (const struct topic_permission *t = vh->topic_permissions; t; t = t->next)
		if (strcmp(t->user, r->seg[3]) == 0)
			push(arr, topic_json(vh, t));
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		areq_not_found(r);
		return;
	}
	areq_reply_json(r, 200, arr);
}

void api_topic_permission_put(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	json_t *body = vh ? areq_body(r) : NULL;
	if (!body)
		return;
	if (!model_user(md_of(r), r->seg[3])) {
		areq_bad_request(r, "user not found");
		return;
	}
	const char *x = json_string_value(json_object_get(body, "exchange"));
	const char *w = json_string_value(json_object_get(body, "write"));
	const char *rd = json_string_value(json_object_get(body, "read"));
	if (!x || !w || !rd) {
		areq_bad_request(r, "[{<<\"exchange\">>,<<\"is required\">>},{<<\"write\">>,<<\"is "
		                    "required\">>},{<<\"read\">>,<<\"is required\">>}]");
		return;
	}
	bool existed = vhost_topic_permission(vh, r->seg[3], x) != NULL;
	char err[256];
	if (vhost_set_topic_permission(vh, r->seg[3], x, w, rd, err, sizeof(err)) < 0) {
		areq_bad_request(r, err);
		return;
	}
	changed(r);
	if (existed)
		areq_no_content(r);
	else
		areq_created(r);
}

void api_topic_permission_delete(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	const char *x = areq_param(r, "exchange");
	if (!vhost_clear_topic_permissions(vh, r->seg[3], x)) {
		areq_not_found(r);
		return;
	}
	changed(r);
	areq_no_content(r);
}

/* ---- users ---- */

static json_t *user_json(const struct user *u)
{
	json_t *lim = json_object();
	if (u->max_connections >= 0)
		json_object_set_new(lim, "max-connections", json_integer(u->max_connections));
	if (u->max_channels >= 0)
		json_object_set_new(lim, "max-channels", json_integer(u->max_channels));
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", u->name, "password_hash",
	                 u->password_hash ? u->password_hash : "", "hashing_algorithm",
	                 u->hashing_algorithm ? u->hashing_algorithm
	                                      : "rabbit_password_hashing_sha256",
	                 "tags", api_tags_json(u->tags), "limits", lim);
}

void api_users_list(struct areq *r)
{
	json_t *arr = json_array();
	void *v;
	for (size_t i = 0; hmap_next(&md_of(r)->users, &i, &v);)
		push(arr, user_json(v));
	areq_reply_json(r, 200, arr);
}

void api_users_without_permissions(struct areq *r)
{
	json_t *arr = json_array();
	void *v;
	for (size_t i = 0; hmap_next(&md_of(r)->users, &i, &v);) {
		struct user *u = v;
		bool any = false;
		void *w;
		for (size_t j = 0; !any && hmap_next(&md_of(r)->vhosts, &j, &w);)
			any = vhost_permission(w, u->name) != NULL;
		if (!any)
			push(arr, user_json(u));
	}
	areq_reply_json(r, 200, arr);
}

void api_user_get(struct areq *r)
{
	struct user *u = find_user(r, 2);
	if (u)
		areq_reply_json(r, 200, user_json(u));
}

void api_user_put(struct areq *r)
{
	json_t *body = areq_body(r);
	if (!body)
		return;
	const char *name = r->seg[2];
	struct model *md = md_of(r);
	struct user *old = model_user(md, name);
	const char *pw = json_string_value(json_object_get(body, "password"));
	const char *hash = json_string_value(json_object_get(body, "password_hash"));
	const char *alg = json_string_value(json_object_get(body, "hashing_algorithm"));
	json_t *tags = json_object_get(body, "tags");
	if (!pw && !hash && !old) {
		areq_bad_request(r, "[{<<\"password\">>,<<\"is required\">>}]");
		return;
	}
	if (!alg)
		alg =
		    old && !pw && !hash ? old->hashing_algorithm : "rabbit_password_hashing_sha256";
	if (!password_algorithm_known(alg)) {
		areq_bad_request(r, "unknown hashing_algorithm");
		return;
	}
	char hbuf[256];
	if (pw) {
		if (!*pw) {
			areq_bad_request(r, "Password cannot be blank");
			return;
		}
		if (password_hash(alg, pw, strlen(pw), hbuf, sizeof(hbuf)) < 0) {
			areq_error(r, 500, "internal_error", "cannot hash the password");
			return;
		}
		hash = hbuf;
	} else if (hash) {
		if (*hash && !password_hash_valid(alg, hash)) {
			areq_bad_request(r, "invalid password_hash");
			return;
		}
	} else {
		hash = old->password_hash;
	}
	char *t = tags ? tags_text(tags) : strdup(old ? old->tags : "");
	if (!t) {
		areq_bad_request(r, "tags must be a list or a comma-separated string");
		return;
	}
	int64_t mc = old ? old->max_connections : -1, mch = old ? old->max_channels : -1;
	char err[256];
	struct user *u = model_user_put(md, name, hash, alg, t, err, sizeof(err));
	free(t);
	if (!u) {
		areq_bad_request(r, err);
		return;
	}
	u->max_connections = mc;
	u->max_channels = mch;
	memset(hbuf, 0, sizeof(hbuf));
	if (!old)
		log_info("admin: user '%s' created user '%s'", r->user, name);
	changed(r);
	if (old)
		areq_no_content(r);
	else
		areq_created(r);
}

void api_user_delete(struct areq *r)
{
	if (!model_user_delete(md_of(r), r->seg[2])) {
		areq_not_found(r);
		return;
	}
	log_info("admin: user '%s' deleted user '%s'", r->user, r->seg[2]);
	changed(r);
	areq_no_content(r);
}

void api_users_bulk_delete(struct areq *r)
{
	json_t *body = areq_body(r);
	if (!body)
		return;
	json_t *users = json_object_get(body, "users");
	if (!json_is_array(users)) {
		areq_bad_request(r, "[{<<\"users\">>,<<\"is required\">>}]");
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(users, i, v) if (json_is_string(v))
	    model_user_delete(md_of(r), json_string_value(v));
	changed(r);
	areq_no_content(r);
}

/* ---- limits ---- */

static json_t *vhost_limits_json(const struct vhost *vh)
{
	json_t *val = json_object();
	if (vh->max_connections >= 0)
		json_object_set_new(val, "max-connections", json_integer(vh->max_connections));
	if (vh->max_queues >= 0)
		json_object_set_new(val, "max-queues", json_integer(vh->max_queues));
	return json_pack("{s:s, s:o}", "vhost", vh->name, "value", val);
}

void api_vhost_limits_list(struct areq *r)
{
	json_t *arr = json_array();
	if (r->nseg == 3) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh) {
			json_decref(arr);
			return;
		}
		if (vh->max_connections >= 0 || vh->max_queues >= 0)
			push(arr, vhost_limits_json(vh));
	} else {
		void *v;
		for (size_t i = 0; hmap_next(&md_of(r)->vhosts, &i, &v);) {
			struct vhost *vh = v;
			if (areq_vhost_visible(r, vh) &&
			    (vh->max_connections >= 0 || vh->max_queues >= 0))
				push(arr, vhost_limits_json(vh));
		}
	}
	areq_reply_json(r, 200, arr);
}

static int64_t *vhost_limit_field(struct vhost *vh, const char *name)
{
	if (strcmp(name, "max-connections") == 0)
		return &vh->max_connections;
	if (strcmp(name, "max-queues") == 0)
		return &vh->max_queues;
	return NULL;
}

static int64_t *user_limit_field(struct user *u, const char *name)
{
	if (strcmp(name, "max-connections") == 0)
		return &u->max_connections;
	if (strcmp(name, "max-channels") == 0)
		return &u->max_channels;
	return NULL;
}

static bool limit_value(struct areq *r, int64_t *out)
{
	json_t *body = areq_body(r);
	if (!body)
		return false;
	json_t *v = json_object_get(body, "value");
	if (!json_is_integer(v)) {
		areq_bad_request(r, "[{<<\"value\">>,<<\"is required\">>}]");
		return false;
	}
	*out = json_integer_value(v) < 0 ? -1 : json_integer_value(v);
	return true;
}

/* api/vhost-limits/{vhost}/{name} */
void api_vhost_limit_put(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	int64_t *f = vhost_limit_field(vh, r->seg[3]);
	if (!f) {
		areq_bad_request(r, "Validation failed\n\nUnrecognised terms in vhost limits");
		return;
	}
	int64_t v;
	if (!limit_value(r, &v))
		return;
	*f = v;
	changed(r);
	areq_no_content(r);
}

void api_vhost_limit_delete(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	int64_t *f = vhost_limit_field(vh, r->seg[3]);
	if (!f || *f < 0) {
		areq_not_found(r);
		return;
	}
	*f = -1;
	changed(r);
	areq_no_content(r);
}

void api_user_limits_list(struct areq *r)
{
	json_t *arr = json_array();
	void *v;
	for (size_t i = 0; hmap_next(&md_of(r)->users, &i, &v);) {
		struct user *u = v;
		if (r->nseg == 3 && strcmp(u->name, r->seg[2]) != 0)
			continue;
		if (u->max_connections < 0 && u->max_channels < 0)
			continue;
		json_t *val = json_object();
		if (u->max_connections >= 0)
			json_object_set_new(val, "max-connections",
			                    json_integer(u->max_connections));
		if (u->max_channels >= 0)
			json_object_set_new(val, "max-channels", json_integer(u->max_channels));
		push(arr, json_pack("{s:s, s:o}", "user", u->name, "value", val));
	}
	areq_reply_json(r, 200, arr);
}

/* api/user-limits/{user}/{name} */
void api_user_limit_put(struct areq *r)
{
	struct user *u = find_user(r, 2);
	if (!u)
		return;
	int64_t *f = user_limit_field(u, r->seg[3]);
	if (!f) {
		areq_bad_request(r, "Validation failed\n\nUnrecognised terms in user limits");
		return;
	}
	int64_t v;
	if (!limit_value(r, &v))
		return;
	*f = v;
	changed(r);
	areq_no_content(r);
}

void api_user_limit_delete(struct areq *r)
{
	struct user *u = find_user(r, 2);
	if (!u)
		return;
	int64_t *f = user_limit_field(u, r->seg[3]);
	if (!f || *f < 0) {
		areq_not_found(r);
		return;
	}
	*f = -1;
	changed(r);
	areq_no_content(r);
}
