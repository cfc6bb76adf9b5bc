/*
 * jwt.c - JWS compact tokens (RFC 7515 §7.1): BASE64URL(header) "."
 * BASE64URL(payload) "." BASE64URL(signature), verified with RS256
 * (RSASSA-PKCS1-v1_5 with SHA-256) or ES256 (ECDSA P-256 with SHA-256,
 * the signature being r || s, 32 bytes each, turned into DER for OpenSSL).
 * Every other alg, "none" and the HMAC ones included, is refused: the
 * keys here are public keys, and an HS256 token "signed" with one is the
 * classic confusion attack.
 *
 * Reasons never quote the token; the few header values quoted (alg, kid)
 * are cut and stripped to printable ASCII.
 */
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "oauth2.h"

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

uint8_t *b64url_decode(const char *s, size_t n, size_t *len)
{
	if (n % 4 == 1)
		return NULL;
	uint8_t *out = oa_alloc(n / 4 * 3 + 3);
	if (!out)
		return NULL;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]);
		if (v < 0) {
			oa_free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The unused low bits of the last character must be zero (canonical). */
	if (acc != 0) {
		oa_free(out);
		return NULL;
	}
	out[o] = 0;
	*len = o;
	return out;
}

/* A token-supplied string, fit for a log line. */
static void printable(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;
	for (; src && *src && o + 1 < dstlen && o < 64; src++)
		dst[o++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[o] = 0;
}

static json_t *b64url_json(const char *s, size_t n)
{
	size_t len;
	uint8_t *buf = b64url_decode(s, n, &len);
	if (!buf)
		return NULL;
	json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	oa_free(buf);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* r || s (64 bytes) as a DER ECDSA-Sig-Value; host-allocated, NULL on error. */
static uint8_t *es256_der(const uint8_t *rs, size_t *derlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
	uint8_t *der = NULL;
	if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return NULL;
	}
	int n = i2d_ECDSA_SIG(sig, NULL);
	if (n > 0 && (der = oa_alloc((size_t)n))) {
		uint8_t *p = der;
		if (i2d_ECDSA_SIG(sig, &p) != n) {
			oa_free(der);
			der = NULL;
		} else {
			*derlen = (size_t)n;
		}
	}
	ECDSA_SIG_free(sig);
	return der;
}

static bool verify_sig(const struct oa_key *k, const uint8_t *data, size_t datalen,
                       const uint8_t *sig, size_t siglen)
{
	uint8_t *der = NULL;
	if (k->type == OA_KEY_EC_P256) {
		if (siglen != 64)
			return false;
		if (!(der = es256_der(sig, &siglen)))
			return false;
		sig = der;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
	          EVP_DigestVerify(ctx, sig, siglen, data, datalen) == 1;
	EVP_MD_CTX_free(ctx);
	oa_free(der);
	return ok;
}

int jwt_verify(const struct oa_keys *ks, const char *default_kid, const char *token, size_t len,
               json_t **claims, char *err, size_t errlen)
{
	*claims = NULL;
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot1 || !dot2) {
		snprintf(err, errlen, "the token is not a JWT (JWS compact form)");
		return -1;
	}
	const char *sig_s = dot2 + 1, *end = token + len;
	if (memchr(sig_s, '.', (size_t)(end - sig_s))) {
		snprintf(err, errlen,
		         "the token is not a signed JWT (JWS compact form; JWE is not "
		         "supported)");
		return -1;
	}
	json_t *hdr = b64url_json(token, (size_t)(dot1 - token));
	if (!hdr) {
		snprintf(err, errlen, "the token's header is not base64url-encoded JSON");
		return -1;
	}
	int rc = -1;
	json_t *payload = NULL;
	uint8_t *sig = NULL;
	char shown[80];
	json_t *algv = json_object_get(hdr, "alg"), *kidv = json_object_get(hdr, "kid");
	const char *alg = json_is_string(algv) ? json_string_value(algv) : NULL;
	if (!alg) {
		snprintf(err, errlen, "the token's header has no alg");
		goto out;
	}
	if (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0) {
		printable(shown, sizeof(shown), alg);
		snprintf(err, errlen, "the token's alg '%s' is not accepted (RS256 and ES256 are)",
		         shown);
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		snprintf(err, errlen,
		         "the token's header has critical extensions (crit), none of "
		         "which is understood");
		goto out;
	}
	const char *kid;
	if (kidv) {
		if (!json_is_string(kidv) ||
		    strlen(json_string_value(kidv)) != json_string_length(kidv)) {
			snprintf(err, errlen, "the token's kid is not a string");
			goto out;
		}
		kid = json_string_value(kidv);
	} else if (default_kid) {
		kid = default_kid;
	} else {
		snprintf(err, errlen, "the token has no kid and no default_key is configured");
		goto out;
	}
	const struct oa_key *k = keys_find(ks, kid);
	if (!k) {
		printable(shown, sizeof(shown), kid);
		snprintf(err, errlen, "the token's signing key '%s' is unknown", shown);
		goto out;
	}
	bool want_ec = strcmp(alg, "ES256") == 0;
	if (want_ec != (k->type == OA_KEY_EC_P256) || (k->alg && strcmp(k->alg, alg) != 0)) {
		printable(shown, sizeof(shown), kid);
		snprintf(err, errlen, "the token's alg %s does not fit signing key '%s' (%s)", alg,
		         shown, k->type == OA_KEY_RSA ? "RSA" : "EC P-256");
		goto out;
	}
	size_t siglen;
	if (!(sig = b64url_decode(sig_s, (size_t)(end - sig_s), &siglen))) {
		snprintf(err, errlen, "the token's signature is not base64url");
		goto out;
	}
	if (!verify_sig(k, (const uint8_t *)token, (size_t)(dot2 - token), sig, siglen)) {
		snprintf(err, errlen, "the token's signature is invalid");
		goto out;
	}
	if (!(payload = b64url_json(dot1 + 1, (size_t)(dot2 - dot1 - 1)))) {
		snprintf(err, errlen, "the token's payload is not a base64url-encoded JSON object");
		goto out;
	}
	*claims = payload;
	rc = 0;
out:
	oa_free(sig);
	json_decref(hdr);
	return rc;
}
