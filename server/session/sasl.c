/*
 * sasl.c - the built-in SASL mechanisms PLAIN, AMQPLAIN and EXTERNAL,
 * registered through the same vtable as a plugin's (amqpd/auth.h).  They
 * only parse: the user backends decide.
 */
#include "session/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "plugin/plugin_auth.h"

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. */
static amqpd_status plain_start(void *ud, const struct amqpd_auth_conn *conn, const uint8_t *r,
                                size_t len, void **state, struct amqpd_sasl_out *out, char *err,
                                size_t errlen)
{
	(void)ud;
	(void)conn;
	(void)state;
	/* As RabbitMQ: the authzid must be empty. */
	const uint8_t *nul1 = len && r[0] == 0 ? r : NULL;
	const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, 0, (size_t)(r + len - nul1 - 1)) : NULL;
	if (!nul2) {
		snprintf(err, errlen,
		         "SYNTAX_ERROR - malformed PLAIN response (\\0user\\0password expected)");
		return AMQPD_ERR_REPLY(403);
	}
	out->username = (const char *)nul1 + 1;
	out->username_len = (size_t)(nul2 - nul1 - 1);
	out->secret = nul2 + 1;
	out->secret_len = (size_t)(r + len - nul2 - 1);
	return AMQPD_OK;
}

/* AMQPLAIN: a field table without its length prefix, LOGIN and PASSWORD. */
static amqpd_status amqplain_start(void *ud, const struct amqpd_auth_conn *conn, const uint8_t *r,
                                   size_t len, void **state, struct amqpd_sasl_out *out, char *err,
                                   size_t errlen)
{
	(void)ud;
	(void)conn;
	(void)state;
	struct amqp_bytes raw = {r, len};
	struct amqp_field_value lv, pv;
	if (amqp_table_validate(raw, NULL) < 0 || !amqp_table_get(raw, "LOGIN", &lv) ||
	    !amqp_table_get(raw, "PASSWORD", &pv) || lv.type != 'S' || pv.type != 'S') {
		snprintf(err, errlen, "malformed AMQPLAIN response (LOGIN and PASSWORD expected)");
		return AMQPD_ERR_REPLY(403);
	}
	out->username = (const char *)lv.v.str.ptr;
	out->username_len = lv.v.str.len;
	out->secret = pv.v.str.ptr;
	out->secret_len = pv.v.str.len;
	return AMQPD_OK;
}

static void no_state(void *ud, void *state)
{
	(void)ud;
	(void)state;
}

/* ---- EXTERNAL: the name from the verified client certificate ----------------- */

static bool external_offer(void *ud, const struct amqpd_auth_conn *conn)
{
	(void)ud;
	return conn->tls && conn->peer_cert_verified;
}

/* The SAN of the configured type at the configured index (0-based). */
static const char *san_pick(const struct amqpd_auth_conn *conn, const char *type, unsigned index)
{
	size_t tl = strlen(type);
	unsigned seen = 0;
	for (size_t i = 0; i < conn->peer_cert_nsans; i++) {
		const char *s = conn->peer_cert_sans[i];
		if (strncasecmp(s, type, tl) == 0 && s[tl] == ':' && seen++ == index)
			return s + tl + 1;
	}
	return NULL;
}

static amqpd_status external_start(void *ud, const struct amqpd_auth_conn *conn, const uint8_t *r,
                                   size_t len, void **state, struct amqpd_sasl_out *out, char *err,
                                   size_t errlen)
{
	const struct auth_config *cfg = ud;
	(void)r;
	(void)len; /* an authzid, if any, is ignored as by RabbitMQ */
	(void)state;
	if (!external_offer(NULL, conn)) {
		snprintf(err, errlen, "EXTERNAL needs a verified client certificate");
		return AMQPD_ERR_REPLY(403);
	}
	const char *name = NULL;
	switch (cfg->cert_login_from) {
	case CERT_LOGIN_DN:
		name = conn->peer_cert_dn;
		break;
	case CERT_LOGIN_SAN:
		name = san_pick(conn, cfg->cert_san_type, cfg->cert_san_index);
		break;
	case CERT_LOGIN_CN:
	default:
		name = conn->peer_cert_cn;
		break;
	}
	if (!name || !*name) {
		snprintf(err, errlen, "the client certificate has no %s",
		         cfg->cert_login_from == CERT_LOGIN_DN ? "subject"
		         : cfg->cert_login_from == CERT_LOGIN_SAN
		             ? "subject alternative name of that type"
		             : "common name");
		return AMQPD_ERR_REPLY(403);
	}
	out->username = name;
	out->username_len = strlen(name);
	out->preauthenticated = true;
	return AMQPD_OK;
}

int auth_register_mechanisms(struct plugin_host *h, const struct auth_config *cfg)
{
	static const struct amqpd_sasl_mechanism mechs[] = {
	    {sizeof(struct amqpd_sasl_mechanism), "PLAIN", NULL, plain_start, NULL, no_state},
	    {sizeof(struct amqpd_sasl_mechanism), "AMQPLAIN", NULL, amqplain_start, NULL, no_state},
	    {sizeof(struct amqpd_sasl_mechanism), "EXTERNAL", external_offer, external_start, NULL,
	     no_state},
	};
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (!plugin_auth_mechanism(h, mechs[i].name, strlen(mechs[i].name)) &&
		    plugin_auth_add_builtin_mechanism(h, &mechs[i], (void *)cfg) < 0)
			return -1;
	return 0;
}
