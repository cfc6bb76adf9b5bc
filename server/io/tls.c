/*
 * tls.c - see tls.h.
 */
#include "io/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

/* The last OpenSSL error, after what we were doing. */
static void fail(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "";
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(err, errlen, "%s%s%s%s%s", what, file ? " " : "", file ? file : "",
	         reason[0] ? ": " : "", reason);
	ERR_clear_error();
}

static int password_cb(char *buf, int size, int rwflag, void *userdata)
{
	(void)rwflag;
	const char *pw = userdata;
	if (!pw)
		return 0;
	size_t n = strlen(pw);
	if (n > (size_t)size)
		return 0;
	memcpy(buf, pw, n);
	return (int)n;
}

SSL_CTX *tls_ctx_new(const struct tls_config *cfg, char *err, size_t errlen)
{
	if (!cfg->cert || !cfg->key) {
		snprintf(err, errlen, "a TLS listener needs --tls-cert and --tls-key");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		fail(err, errlen, "cannot create a TLS context", NULL);
		return NULL;
	}
	int minv = TLS1_2_VERSION;
	if (cfg->min_version && strcmp(cfg->min_version, "tlsv1.3") == 0) {
		minv = TLS1_3_VERSION;
	} else if (cfg->min_version && strcmp(cfg->min_version, "tlsv1.2") != 0) {
		snprintf(err, errlen, "unknown TLS version '%s' (tlsv1.2 or tlsv1.3)",
		         cfg->min_version);
		goto bad;
	}
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_default_passwd_cb(ctx, password_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cfg->key_password);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
		fail(err, errlen, "cannot load the certificate chain", cfg->cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1) {
		fail(err, errlen, "cannot load the private key", cfg->key);
		goto bad;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		fail(err, errlen, "the private key does not match the certificate", cfg->key);
		goto bad;
	}
	/* The callback must not outlive cfg's strings: the key is loaded. */
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	if (cfg->ca && SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != 1) {
		fail(err, errlen, "cannot load the CA file", cfg->ca);
		goto bad;
	}
	if (cfg->ciphers && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
		fail(err, errlen, "no usable cipher in the list", cfg->ciphers);
		goto bad;
	}
	if (cfg->ciphersuites && SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1) {
		fail(err, errlen, "no usable TLS 1.3 ciphersuite in the list", cfg->ciphersuites);
		goto bad;
	}
	if (cfg->verify_peer) {
		if (!cfg->ca) {
			snprintf(err, errlen, "--tls-verify peer needs --tls-ca");
			goto bad;
		}
		int mode = SSL_VERIFY_PEER;
		if (cfg->fail_if_no_peer_cert)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(cfg->ca));
	}
	static const unsigned char sid[] = "amqpd";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}
