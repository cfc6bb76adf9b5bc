/*
 * keys.c - the signing keys tokens are verified with: PEM public key files
 * (signing_key.<kid>=PATH) and JWKS files (jwks_file=PATH), each key an
 * OpenSSL EVP_PKEY under its key id.  Only what RS256 and ES256 need: RSA
 * keys and EC keys on P-256 (JWK "crv": "P-256").
 *
 * Ownership: struct oa_keys owns its keys (keys_free).  Loop thread (init).
 */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "oauth2.h"

const struct oa_key *keys_find(const struct oa_keys *ks, const char *kid)
{
	if (!kid)
		return NULL;
	for (size_t i = 0; i < ks->n; i++)
		if (strcmp(ks->v[i].kid, kid) == 0)
			return &ks->v[i];
	return NULL;
}

/* Take pkey (freed on failure). */
static int keys_add(struct oa_keys *ks, const char *kid, EVP_PKEY *pkey, enum oa_key_type type,
                    const char *alg, const char *what, char *err, size_t errlen)
{
	if (keys_find(ks, kid)) {
		snprintf(err, errlen, "%s: key id '%s' is already defined", what, kid);
		EVP_PKEY_free(pkey);
		return -1;
	}
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 4;
		struct oa_key *v = oa_realloc(ks->v, cap * sizeof(*v));
		if (!v)
			goto oom;
		ks->v = v;
		ks->cap = cap;
	}
	struct oa_key *k = &ks->v[ks->n];
	memset(k, 0, sizeof(*k));
	if (!(k->kid = oa_strdup(kid)) || (alg && !(k->alg = oa_strdup(alg)))) {
		oa_free(k->kid);
		goto oom;
	}
	k->type = type;
	k->pkey = pkey;
	ks->n++;
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", what);
	EVP_PKEY_free(pkey);
	return -1;
}

/* RSA, or EC on P-256; -1 for anything else. */
static int pkey_type(EVP_PKEY *pkey, enum oa_key_type *type)
{
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		*type = OA_KEY_RSA;
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64];
		size_t glen = 0;
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) == 1 &&
		    (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
			*type = OA_KEY_EC_P256;
			return 0;
		}
	}
	return -1;
}

int keys_load_pem(struct oa_keys *ks, const char *kid, const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "r");
	if (!bio) {
		snprintf(err, errlen, "signing_key.%s: cannot read %s: %s", kid, path,
		         strerror(errno ? errno : EIO));
		return -1;
	}
	EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey) {
		/* A certificate will do too: its public key. */
		(void)BIO_reset(bio);
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (x) {
			pkey = X509_get_pubkey(x);
			X509_free(x);
		}
	}
	BIO_free(bio);
	if (!pkey) {
		snprintf(err, errlen, "signing_key.%s: %s holds no PEM public key or certificate",
		         kid, path);
		return -1;
	}
	enum oa_key_type type;
	if (pkey_type(pkey, &type) < 0) {
		snprintf(err, errlen, "signing_key.%s: %s is neither an RSA nor a P-256 EC key",
		         kid, path);
		EVP_PKEY_free(pkey);
		return -1;
	}
	char what[160];
	snprintf(what, sizeof(what), "signing_key.%s", kid);
	return keys_add(ks, kid, pkey, type, NULL, what, err, errlen);
}

/* A base64url member of a JWK, decoded; NULL when absent or malformed. */
static uint8_t *jwk_bytes(json_t *jwk, const char *member, size_t *len)
{
	json_t *v = json_object_get(jwk, member);
	if (!json_is_string(v))
		return NULL;
	return b64url_decode(json_string_value(v), json_string_length(v), len);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	if (pkey) {
		/* The point is on the curve, the modulus sane. */
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		bool ok = chk && EVP_PKEY_public_check(chk) == 1;
		EVP_PKEY_CTX_free(chk);
		if (!ok) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *jwk)
{
	size_t nlen = 0, elen = 0;
	uint8_t *n = jwk_bytes(jwk, "n", &nlen), *e = jwk_bytes(jwk, "e", &elen);
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	if (!n || !e || nlen == 0 || elen == 0)
		goto out;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	pkey = pkey_fromdata("RSA", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	oa_free(n);
	oa_free(e);
	return pkey;
}

static EVP_PKEY *jwk_ec(json_t *jwk)
{
	size_t xlen = 0, ylen = 0;
	uint8_t *x = jwk_bytes(jwk, "x", &xlen), *y = jwk_bytes(jwk, "y", &ylen);
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	uint8_t pub[65];
	/* RFC 7518 §6.2.1.2: x and y are the full 32 bytes. */
	if (!x || !y || xlen != 32 || ylen != 32)
		goto out;
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
		goto out;
	pkey = pkey_fromdata("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	oa_free(x);
	oa_free(y);
	return pkey;
}

int keys_load_jwks(struct oa_keys *ks, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		snprintf(err, errlen, "jwks_file: cannot load %s: %s (line %d)", path, jerr.text,
		         jerr.line);
		return -1;
	}
	int rc = -1;
	size_t added = 0;
	json_t *arr = json_object_get(doc, "keys");
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "jwks_file: %s has no \"keys\" array", path);
		goto out;
	}
	size_t i;
	json_t *jwk;
	json_array_foreach(arr, i, jwk)
	{
		char what[512];
		snprintf(what, sizeof(what), "jwks_file: %s: key %zu", path, i);
		json_t *kidv = json_object_get(jwk, "kid"), *ktyv = json_object_get(jwk, "kty");
		if (!json_is_object(jwk) || !json_is_string(ktyv)) {
			snprintf(err, errlen, "%s has no \"kty\"", what);
			goto out;
		}
		if (!json_is_string(kidv) || json_string_length(kidv) == 0 ||
		    strlen(json_string_value(kidv)) != json_string_length(kidv)) {
			snprintf(err, errlen, "%s has no \"kid\"", what);
			goto out;
		}
		const char *kid = json_string_value(kidv), *kty = json_string_value(ktyv);
		json_t *algv = json_object_get(jwk, "alg"), *usev = json_object_get(jwk, "use");
		const char *alg = json_is_string(algv) ? json_string_value(algv) : NULL;
		if (json_is_string(usev) && strcmp(json_string_value(usev), "sig") != 0) {
			oa_log(AMQPD_LOG_INFO, "%s ('%s'): skipped, not a signing key (use %s)",
			       what, kid, json_string_value(usev));
			continue;
		}
		EVP_PKEY *pkey;
		enum oa_key_type type;
		if (strcmp(kty, "RSA") == 0) {
			if (alg && strcmp(alg, "RS256") != 0) {
				oa_log(AMQPD_LOG_INFO,
				       "%s ('%s'): skipped, alg %s is not supported", what, kid,
				       alg);
				continue;
			}
			type = OA_KEY_RSA;
			pkey = jwk_rsa(jwk);
		} else if (strcmp(kty, "EC") == 0) {
			json_t *crv = json_object_get(jwk, "crv");
			if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0 ||
			    (alg && strcmp(alg, "ES256") != 0)) {
				oa_log(
				    AMQPD_LOG_INFO,
				    "%s ('%s'): skipped, only P-256 EC keys (ES256) are supported",
				    what, kid);
				continue;
			}
			type = OA_KEY_EC_P256;
			pkey = jwk_ec(jwk);
		} else {
			oa_log(AMQPD_LOG_INFO, "%s ('%s'): skipped, key type %s is not supported",
			       what, kid, kty);
			continue;
		}
		if (!pkey) {
			snprintf(err, errlen, "%s ('%s'): malformed %s key", what, kid, kty);
			goto out;
		}
		if (keys_add(ks, kid, pkey, type, alg, what, err, errlen) < 0)
			goto out;
		added++;
	}
	if (added == 0) {
		snprintf(err, errlen, "jwks_file: %s holds no RSA or P-256 EC signing key", path);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

void keys_free(struct oa_keys *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		oa_free(ks->v[i].kid);
		oa_free(ks->v[i].alg);
		EVP_PKEY_free(ks->v[i].pkey);
	}
	oa_free(ks->v);
	memset(ks, 0, sizeof(*ks));
}
