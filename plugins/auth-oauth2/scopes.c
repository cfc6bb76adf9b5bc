/*
 * scopes.c - what a token's scopes allow, as RabbitMQ's oauth2 backend
 * decides it (rabbit_auth_backend_oauth2.erl, rabbit_oauth2_scope.erl,
 * wildcard.erl):
 *
 *   - the scopes: the "scope" claim (a space-separated string or an
 *     array), plus Keycloak's "authorization.permissions.scopes" and the
 *     claims named by additional_scopes_key; those starting with the scope
 *     prefix are kept with it dropped, the rest ignored;
 *   - "tag:X" scopes are tags; "configure:", "write:" and "read:" scopes
 *     are VHOST_PATTERN "/" NAME_PATTERN ["/" ROUTING_KEY_PATTERN] (split
 *     on every '/': other counts of parts are ignored); anything else is
 *     ignored;
 *   - {vhost} and {claim} in a scope are expanded at each check;
 *   - vhost access: any permission scope whose vhost pattern matches;
 *     resource access: one of the permission whose vhost and name patterns
 *     match (the resource kind does not matter); topic access: one of the
 *     permission with a routing-key part, all three matching (a scope
 *     without one grants no topic access, as rabbit_oauth2_scope:
 *     topic_access/4 requires is_binary(RoutingKeyPattern)).
 *
 * Memory: host allocator.  Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2.h"

#define MAX_SCOPE_COUNT 2048 /* RabbitMQ's ?MAX_SCOPE_COUNT */

/* ---- wildcard.erl -------------------------------------------------------- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* cow_qs:urldecode/1 of s[0..n) into out (n bytes suffice): %XX and '+'
 * for a space; -1 for a '%' not followed by two hex digits. */
static long urldecode(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3)
				return -1;
			int hi = hexval((unsigned char)s[i + 1]),
			    lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	return (long)o;
}

struct part {
	const char *p;
	size_t n;
};

bool oa_wildcard_match(const char *subject, const char *pattern)
{
	size_t plen = strlen(pattern), slen = strlen(subject);
	size_t nparts = 1;
	for (const char *c = pattern; *c; c++)
		nparts += *c == '*';
	struct part *parts = oa_alloc(nparts * sizeof(*parts));
	char *buf = oa_alloc(plen + 1);
	bool ok = false;
	if (!parts || !buf)
		goto out;
	/* Split on every '*', then decode each part (so "%2A" is a literal). */
	size_t k = 0, off = 0;
	const char *start = pattern;
	for (const char *c = pattern;; c++) {
		if (*c == '*' || *c == 0) {
			long d = urldecode(start, (size_t)(c - start), buf + off);
			if (d < 0)
				goto out; /* invalid pattern: matches nothing */
			parts[k].p = buf + off;
			parts[k].n = (size_t)d;
			off += (size_t)d;
			k++;
			if (*c == 0)
				break;
			start = c + 1;
		}
	}
	/* The first part is a prefix of the subject. */
	if (parts[0].n > slen || memcmp(subject, parts[0].p, parts[0].n) != 0)
		goto out;
	size_t pos = parts[0].n, i = 1;
	for (;;) {
		size_t left = nparts - i;
		if (left == 1 && parts[i].n == 0) {
			ok = true; /* ends with a wildcard */
			break;
		}
		if (left == 0) {
			ok = pos == slen;
			break;
		}
		if (pos == slen)
			break; /* subject done, pattern not (even "**" at the end) */
		if (parts[i].n == 0) {
			i++; /* duplicate wildcards */
			continue;
		}
		/* The leftmost occurrence after pos, no backtracking. */
		const char *hit = memmem(subject + pos, slen - pos, parts[i].p, parts[i].n);
		if (!hit)
			break;
		pos = (size_t)(hit - subject) + parts[i].n;
		i++;
	}
out:
	oa_free(parts);
	oa_free(buf);
	return ok;
}

/* ---- collecting the scopes ---------------------------------------------- */

struct strv {
	char **v;
	size_t n, cap;
	bool oom;
};

static void strv_add(struct strv *sv, const char *a, size_t alen, const char *b, size_t blen)
{
	if (sv->oom)
		return;
	if (memchr(a, 0, alen) || (b && memchr(b, 0, blen)))
		return; /* a scope with a NUL byte in it grants nothing */
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		char **v = oa_realloc(sv->v, cap * sizeof(*v));
		if (!v) {
			sv->oom = true;
			return;
		}
		sv->v = v;
		sv->cap = cap;
	}
	char *s = oa_alloc(alen + blen + 1);
	if (!s) {
		sv->oom = true;
		return;
	}
	memcpy(s, a, alen);
	if (b)
		memcpy(s + alen, b, blen);
	s[alen + blen] = 0;
	sv->v[sv->n++] = s;
}

/* binary:split(S, <<" ">>, [global, trim_all]), each with pre in front. */
static void add_split(struct strv *sv, const char *pre, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && s[i] == ' ')
			i++;
		size_t j = i;
		while (j < n && s[j] != ' ')
			j++;
		if (j > i) {
			if (pre)
				strv_add(sv, pre, strlen(pre), s + i, j - i);
			else
				strv_add(sv, s + i, j - i, NULL, 0);
		}
		i = j;
	}
}

/* Strings of a (nested) array, as lists:flatten/1 leaves them. */
static void add_flat(struct strv *sv, json_t *arr)
{
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		if (json_is_string(e))
			strv_add(sv, json_string_value(e), json_string_length(e), NULL, 0);
		else if (json_is_array(e))
			add_flat(sv, e);
	}
}

/* extract_scope_list_from_token_value/2 */
static void add_value(struct strv *sv, json_t *v, const char *rsid)
{
	if (json_is_array(v)) {
		add_flat(sv, v);
	} else if (json_is_string(v)) {
		add_split(sv, NULL, json_string_value(v), json_string_length(v));
	} else if (json_is_object(v)) {
		json_t *own = json_object_get(v, rsid);
		size_t plen = strlen(rsid) + 2;
		char *pre = oa_alloc(plen);
		if (!pre) {
			sv->oom = true;
			return;
		}
		snprintf(pre, plen, "%s.", rsid);
		if (json_is_array(own)) {
			size_t i;
			json_t *e;
			json_array_foreach(own, i, e)
			{
				if (json_is_string(e))
					strv_add(sv, pre, strlen(pre), json_string_value(e),
					         json_string_length(e));
			}
		} else if (json_is_string(own)) {
			add_split(sv, pre, json_string_value(own), json_string_length(own));
		}
		oa_free(pre);
	}
}

static void walk_list(struct strv *sv, json_t *arr, char **keys, size_t nk, const char *rsid);

/* extract_token_value_from_map/5; nk >= 1 */
static void walk_map(struct strv *sv, json_t *map, char **keys, size_t nk, const char *rsid)
{
	json_t *v = json_object_get(map, keys[0]);
	if (!v)
		return;
	if (nk == 1)
		add_value(sv, v, rsid);
	else if (json_is_object(v))
		walk_map(sv, v, keys + 1, nk - 1, rsid);
	else if (json_is_array(v))
		walk_list(sv, v, keys + 1, nk - 1, rsid);
}

/* extract_token_value_from_list/5 */
static void walk_list(struct strv *sv, json_t *arr, char **keys, size_t nk, const char *rsid)
{
	size_t i;
	json_t *h;
	json_array_foreach(arr, i, h)
	{
		if (nk == 0) {
			add_value(sv, h, rsid);
		} else if (json_is_object(h)) {
			json_t *v = json_object_get(h, keys[0]);
			if (!v)
				continue;
			if (json_is_object(v)) {
				if (nk > 1)
					walk_map(sv, v, keys + 1, nk - 1, rsid);
			} else if (json_is_array(v)) {
				walk_list(sv, v, keys + 1, nk - 1, rsid);
			} else {
				add_value(sv, v, rsid);
			}
		}
	}
}

/* One dotted path (split on '.', empty segments dropped). */
static void add_path(struct strv *sv, json_t *claims, const char *path, size_t n, const char *rsid)
{
	char *copy = oa_strndup(path, n);
	char **keys = oa_calloc(n / 2 + 1, sizeof(*keys));
	if (!copy || !keys) {
		sv->oom = true;
		goto out;
	}
	size_t nk = 0;
	for (char *save = NULL, *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save))
		keys[nk++] = t;
	if (nk > 0)
		walk_map(sv, claims, keys, nk, rsid);
out:
	oa_free(keys);
	oa_free(copy);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void oa_scopes_free(char **scopes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		oa_free(scopes[i]);
	oa_free(scopes);
}

int oa_scopes_from_claims(json_t *claims, const char *resource_server_id, const char *prefix,
                          const char *additional_keys, char ***out, size_t *nout, char *err,
                          size_t errlen)
{
	struct strv sv = {0};
	json_t *scope = json_object_get(claims, "scope");
	if (json_is_string(scope))
		add_split(&sv, NULL, json_string_value(scope), json_string_length(scope));
	else if (json_is_array(scope))
		add_flat(&sv, scope);
	/* Keycloak's requesting party token. */
	add_path(&sv, claims, "authorization.permissions.scopes", 32, resource_server_id);
	if (additional_keys) {
		/* Space-separated paths. */
		const char *s = additional_keys;
		while (*s) {
			while (*s == ' ')
				s++;
			const char *e = s;
			while (*e && *e != ' ')
				e++;
			if (e > s)
				add_path(&sv, claims, s, (size_t)(e - s), resource_server_id);
			s = e;
		}
	}
	if (sv.oom) {
		oa_scopes_free(sv.v, sv.n);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Keep those with the prefix, dropping it. */
	size_t pl = strlen(prefix), k = 0;
	for (size_t i = 0; i < sv.n; i++) {
		if (pl == 0) {
			sv.v[k++] = sv.v[i];
		} else if (strncmp(sv.v[i], prefix, pl) == 0) {
			memmove(sv.v[i], sv.v[i] + pl, strlen(sv.v[i]) - pl + 1);
			sv.v[k++] = sv.v[i];
		} else {
			oa_free(sv.v[i]);
		}
	}
	sv.n = k;
	/* lists:usort/1 */
	if (sv.n > 1)
		qsort(sv.v, sv.n, sizeof(*sv.v), cmp_str);
	k = 0;
	for (size_t i = 0; i < sv.n; i++) {
		if (k > 0 && strcmp(sv.v[k - 1], sv.v[i]) == 0)
			oa_free(sv.v[i]);
		else
			sv.v[k++] = sv.v[i];
	}
	sv.n = k;
	if (sv.n > MAX_SCOPE_COUNT) {
		oa_scopes_free(sv.v, sv.n);
		snprintf(err, errlen, "the token has too many scopes (more than %d)",
		         MAX_SCOPE_COUNT);
		return -1;
	}
	*out = sv.v;
	*nout = sv.n;
	return 0;
}

void oa_tags(char *const *scopes, size_t n, char *buf, size_t buflen)
{
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(scopes[i], "tag:", 4) != 0)
			continue;
		const char *t = scopes[i] + 4;
		size_t tl = strlen(t);
		if (tl == 0 || strchr(t, ' '))
			continue;
		if (o + (o > 0) + tl + 1 > buflen)
			break;
		if (o > 0)
			buf[o++] = ' ';
		memcpy(buf + o, t, tl + 1);
		o += tl;
	}
}

/* ---- variables: parse_scope/2 ------------------------------------------- */

static bool is_delim(char c)
{
	return c == '{' || c == '.' || c == '*' || c == '}';
}

static const char *resolve_var(const struct oa_user *u, const char *name, size_t n,
                               const char *vhost, size_t *len)
{
	if (n == 5 && memcmp(name, "vhost", 5) == 0) {
		*len = strlen(vhost);
		return vhost;
	}
	for (size_t i = 0; i < u->nclaims; i++) {
		if (strlen(u->claims[i].name) == n && memcmp(u->claims[i].name, name, n) == 0) {
			*len = strlen(u->claims[i].value);
			return u->claims[i].value;
		}
	}
	*len = n;
	return name;
}

char *oa_expand_scope(const struct oa_user *u, const char *scope, const char *vhost)
{
	if (!strchr(scope, '{'))
		return oa_strdup(scope);
	size_t cap = strlen(scope) + 64, o = 0;
	char *out = oa_alloc(cap);
	if (!out)
		return NULL;
	enum { UNDEF, CAPTURE, EXPECT } stage = UNDEF;
	const char *p = scope;
	/* re:split(Scope, "([{.*}])", [trim]): texts and single delimiters in
	 * turn, a final empty text dropped. */
	while (*p) {
		const char *piece = p;
		size_t n;
		bool delim = is_delim(*p);
		if (delim) {
			n = 1;
		} else {
			n = 0;
			while (p[n] && !is_delim(p[n]))
				n++;
		}
		const char *add = NULL;
		size_t addn = 0;
		if (stage == UNDEF) {
			if (delim && *piece == '{')
				stage = CAPTURE;
			else
				add = piece, addn = n;
		} else if (stage == CAPTURE) {
			/* A '{' is always followed by a text, maybe empty: an
			 * empty one is not a piece here, so a delimiter right
			 * after '{' is the variable "" then that delimiter. */
			if (delim) {
				add = resolve_var(u, "", 0, vhost, &addn);
				stage = EXPECT;
				n = 0; /* look at this delimiter again */
			} else {
				add = resolve_var(u, piece, n, vhost, &addn);
				stage = EXPECT;
			}
		} else {
			if (delim && *piece == '}') {
				stage = UNDEF;
			} else {
				/* a delimiter other than '}' (a text cannot follow
				 * the variable's text): the whole scope is "" */
				out[0] = 0;
				return out;
			}
		}
		if (addn) {
			if (o + addn + 1 > cap) {
				cap = (o + addn + 1) * 2;
				char *nb = oa_realloc(out, cap);
				if (!nb) {
					oa_free(out);
					return NULL;
				}
				out = nb;
			}
			memcpy(out + o, add, addn);
			o += addn;
		}
		p += n;
	}
	out[o] = 0;
	return out;
}

/* ---- access ---------------------------------------------------------------- */

struct perm_scope {
	enum amqpd_auth_permission perm;
	char *vhost, *name, *key; /* key NULL: no routing-key part */
};

/* parse_permission_pattern/1 on s (modified in place); false: ignore. */
static bool parse_perm(char *s, struct perm_scope *ps)
{
	static const struct {
		const char *p;
		enum amqpd_auth_permission perm;
	} kinds[] = {{"read:", AMQPD_PERM_READ},
	             {"write:", AMQPD_PERM_WRITE},
	             {"configure:", AMQPD_PERM_CONFIGURE}};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t kl = strlen(kinds[i].p);
		if (strncmp(s, kinds[i].p, kl) != 0)
			continue;
		char *v = s + kl, *a = strchr(v, '/');
		if (!a)
			return false;
		*a = 0;
		char *b = strchr(a + 1, '/');
		if (b) {
			*b = 0;
			if (strchr(b + 1, '/'))
				return false;
		}
		ps->perm = kinds[i].perm;
		ps->vhost = v;
		ps->name = a + 1;
		ps->key = b ? b + 1 : NULL;
		return true;
	}
	return false;
}

enum check { CHECK_VHOST, CHECK_RESOURCE, CHECK_TOPIC };

static bool any_scope(const struct oa_user *u, enum check what, const char *vhost, const char *name,
                      const char *key, enum amqpd_auth_permission perm)
{
	for (size_t i = 0; i < u->nscopes; i++) {
		char *s = oa_expand_scope(u, u->scopes[i], vhost);
		if (!s)
			return false;
		struct perm_scope ps;
		bool ok = false;
		if (parse_perm(s, &ps)) {
			switch (what) {
			case CHECK_VHOST:
				ok = oa_wildcard_match(vhost, ps.vhost);
				break;
			case CHECK_RESOURCE:
				ok = ps.perm == perm && oa_wildcard_match(vhost, ps.vhost) &&
				     oa_wildcard_match(name, ps.name);
				break;
			case CHECK_TOPIC:
				ok = ps.perm == perm && ps.key &&
				     oa_wildcard_match(vhost, ps.vhost) &&
				     oa_wildcard_match(name, ps.name) &&
				     oa_wildcard_match(key, ps.key);
				break;
			}
		}
		oa_free(s);
		if (ok)
			return true;
	}
	return false;
}

bool oa_vhost_access(const struct oa_user *u, const char *vhost)
{
	return any_scope(u, CHECK_VHOST, vhost, NULL, NULL, AMQPD_PERM_READ);
}

bool oa_resource_access(const struct oa_user *u, const char *vhost, const char *name,
                        enum amqpd_auth_permission perm)
{
	return any_scope(u, CHECK_RESOURCE, vhost, name, NULL, perm);
}

bool oa_topic_access(const struct oa_user *u, const char *vhost, const char *exchange,
                     const char *key, enum amqpd_auth_permission perm)
{
	return any_scope(u, CHECK_TOPIC, vhost, exchange, key, perm);
}

void oa_user_free(struct oa_user *u)
{
	if (!u)
		return;
	oa_free(u->username);
	oa_scopes_free(u->scopes, u->nscopes);
	for (size_t i = 0; i < u->nclaims; i++) {
		oa_free(u->claims[i].name);
		oa_free(u->claims[i].value);
	}
	oa_free(u->claims);
	oa_free(u);
}
