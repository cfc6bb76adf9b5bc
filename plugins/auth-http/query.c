/*
 * query.c - form encoding as RabbitMQ's http backend does it
 * (rabbit_http_util:quote_plus, parameters joined with '&'), and the
 * growing string the requests are written into.
 *
 * Ownership: the buffer is allocated through the host (ah_alloc); a
 * failed allocation sets oom and every later call is a no-op, so callers
 * check once, at ah_str_take().
 */
#include <string.h>

#include "ahttp.h"

void ah_str_init(struct ah_str *s, struct ahttp *a)
{
	(void)a;
	memset(s, 0, sizeof(*s));
}

static bool reserve(struct ah_str *s, struct ahttp *a, size_t more)
{
	if (s->oom)
		return false;
	if (s->len + more + 1 <= s->cap)
		return true;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < s->len + more + 1)
		cap *= 2;
	char *p = ah_alloc(a, cap);
	if (!p) {
		s->oom = true;
		return false;
	}
	if (s->len)
		memcpy(p, s->p, s->len);
	p[s->len] = 0;
	ah_free(a, s->p);
	s->p = p;
	s->cap = cap;
	return true;
}

void ah_str_add(struct ah_str *s, struct ahttp *a, const char *data, size_t len)
{
	if (!reserve(s, a, len))
		return;
	memcpy(s->p + s->len, data, len);
	s->len += len;
	s->p[s->len] = 0;
}

void ah_str_adds(struct ah_str *s, struct ahttp *a, const char *cstr)
{
	ah_str_add(s, a, cstr, strlen(cstr));
}

static bool qs_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '~' || c == '_';
}

void ah_quote_plus(struct ah_str *s, struct ahttp *a, const char *value, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	if (!reserve(s, a, len * 3))
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (qs_safe(c)) {
			s->p[s->len++] = (char)c;
		} else if (c == ' ') {
			s->p[s->len++] = '+';
		} else {
			s->p[s->len++] = '%';
			s->p[s->len++] = hex[c >> 4];
			s->p[s->len++] = hex[c & 15];
		}
	}
	s->p[s->len] = 0;
}

void ah_str_param(struct ah_str *s, struct ahttp *a, const char *key, const char *value, size_t len)
{
	if (s->len)
		ah_str_add(s, a, "&", 1);
	ah_str_adds(s, a, key);
	ah_str_add(s, a, "=", 1);
	ah_quote_plus(s, a, value ? value : "", value ? len : 0);
}

char *ah_str_take(struct ah_str *s, struct ahttp *a)
{
	if (!s->oom && !s->p)
		reserve(s, a, 0);
	if (s->oom) {
		ah_str_free(s, a);
		return NULL;
	}
	char *p = s->p;
	s->p = NULL;
	s->len = s->cap = 0;
	return p;
}

void ah_str_free(struct ah_str *s, struct ahttp *a)
{
	ah_free(a, s->p);
	memset(s, 0, sizeof(*s));
}
