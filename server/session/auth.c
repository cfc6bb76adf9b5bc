/*
 * auth.c - see auth.h.
 */
#include "session/auth.h"

#include <string.h>

static bool user_ok(struct amqp_bytes user, struct amqp_bytes pass, bool loopback)
{
	/* RabbitMQ's loopback_users default: guest only over loopback. */
	return loopback && amqp_bytes_eq_cstr(user, "guest") && amqp_bytes_eq_cstr(pass, "guest");
}

static void copy_user(struct amqp_bytes u, char *user, size_t userlen)
{
	size_t n = u.len < userlen - 1 ? u.len : userlen - 1;
	memcpy(user, u.ptr, n);
	user[n] = 0;
}

/* PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616). */
static enum auth_result plain(struct amqp_bytes r, bool loopback, char *user, size_t userlen)
{
	const uint8_t *p = r.ptr, *end = r.ptr + r.len;
	const uint8_t *nul1 = memchr(p, 0, r.len);
	if (!nul1)
		return AUTH_REFUSED;
	const uint8_t *nul2 = memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1));
	if (!nul2)
		return AUTH_REFUSED;
	struct amqp_bytes u = {nul1 + 1, (size_t)(nul2 - nul1 - 1)};
	struct amqp_bytes pw = {nul2 + 1, (size_t)(end - nul2 - 1)};
	copy_user(u, user, userlen);
	return user_ok(u, pw, loopback) ? AUTH_OK : AUTH_REFUSED;
}

/* AMQPLAIN: a field table without its length prefix: LOGIN, PASSWORD. */
static enum auth_result amqplain(struct amqp_bytes r, bool loopback, char *user, size_t userlen)
{
	struct amqp_field_value lv, pv;
	if (amqp_table_validate(r, NULL) < 0 || !amqp_table_get(r, "LOGIN", &lv) ||
	    !amqp_table_get(r, "PASSWORD", &pv) || lv.type != 'S' || pv.type != 'S')
		return AUTH_REFUSED;
	copy_user(lv.v.str, user, userlen);
	return user_ok(lv.v.str, pv.v.str, loopback) ? AUTH_OK : AUTH_REFUSED;
}

enum auth_result auth_check(struct amqp_bytes mechanism, struct amqp_bytes response,
                            bool peer_loopback, char *user, size_t userlen)
{
	user[0] = 0;
	if (amqp_bytes_eq_cstr(mechanism, "PLAIN"))
		return plain(response, peer_loopback, user, userlen);
	if (amqp_bytes_eq_cstr(mechanism, "AMQPLAIN"))
		return amqplain(response, peer_loopback, user, userlen);
	return AUTH_BAD_MECHANISM;
}
