/*
 * tls.h - TLS for the amqps listeners: the options (RabbitMQ's
 * ssl_options.* in command-line form) and the OpenSSL context built from
 * them.
 *
 * A context is built whole or not at all: a bad certificate, key, CA file,
 * version or cipher list is refused with the reason, so a reload (SIGHUP)
 * that fails leaves the context in use untouched.  Connections keep the
 * context they were accepted with (OpenSSL counts its references).
 *
 * Threading: loop thread.
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;

struct tls_config {
	const char *cert;          /* PEM certificate chain (server first) */
	const char *key;           /* PEM private key */
	const char *key_password;  /* passphrase of an encrypted key, or NULL */
	const char *ca;            /* CA file to verify clients against, or NULL */
	bool verify_peer;          /* ask for a client certificate and verify it */
	bool fail_if_no_peer_cert; /* with verify_peer: refuse clients without one */
	const char *min_version;   /* "tlsv1.2" (default) or "tlsv1.3" */
	const char *ciphers;       /* TLS 1.2 cipher list (OpenSSL syntax), or NULL */
	const char *ciphersuites;  /* TLS 1.3 suites, or NULL */
};

/* A server context from cfg; NULL with the reason in err. */
SSL_CTX *tls_ctx_new(const struct tls_config *cfg, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *ctx);

#endif
