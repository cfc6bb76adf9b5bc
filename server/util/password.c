/*
 * password.c - see password.h.
 */
#include "util/password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#define SALT_LEN 4

static const EVP_MD *digest_of(const char *alg)
{
	if (!alg || !*alg || strcmp(alg, PASSWORD_SHA256) == 0)
		return EVP_sha256(); /* RabbitMQ's default when none is named */
	if (strcmp(alg, PASSWORD_SHA512) == 0)
		return EVP_sha512();
	if (strcmp(alg, PASSWORD_MD5) == 0)
		return EVP_md5();
	return NULL;
}

bool password_algorithm_known(const char *alg)
{
	return digest_of(alg) != NULL;
}

static int digest(const EVP_MD *md, const unsigned char *salt, const void *pw, size_t len,
                  unsigned char *out, unsigned *outlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, salt, SALT_LEN) &&
	         EVP_DigestUpdate(ctx, pw, len) && EVP_DigestFinal_ex(ctx, out, outlen);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Decode b64 into raw (at most rawcap bytes); its length, or -1. */
static int decode(const char *b64, unsigned char *raw, size_t rawcap)
{
	size_t bl = strlen(b64);
	if (bl == 0 || bl % 4 || bl / 4 * 3 > rawcap)
		return -1;
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl);
	if (n < 0)
		return -1;
	for (size_t i = bl; i > 0 && b64[i - 1] == '='; i--)
		n--; /* DecodeBlock counts padding as zero bytes */
	return n;
}

bool password_hash_valid(const char *alg, const char *b64)
{
	const EVP_MD *md = digest_of(alg);
	unsigned char raw[SALT_LEN + EVP_MAX_MD_SIZE + 3];
	int n = md && b64 ? decode(b64, raw, sizeof(raw)) : -1;
	return n == SALT_LEN + EVP_MD_get_size(md);
}

int password_hash(const char *alg, const char *password, size_t len, char *out, size_t outlen)
{
	const EVP_MD *md = digest_of(alg);
	unsigned char raw[SALT_LEN + EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	if (!md || RAND_bytes(raw, SALT_LEN) != 1 ||
	    digest(md, raw, password, len, raw + SALT_LEN, &dlen) < 0)
		return -1;
	size_t need = 4 * ((SALT_LEN + dlen + 2) / 3) + 1;
	if (outlen < need)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, raw, (int)(SALT_LEN + dlen));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

bool password_check(const char *alg, const char *b64, const void *password, size_t len)
{
	const EVP_MD *md = digest_of(alg);
	unsigned char raw[SALT_LEN + EVP_MAX_MD_SIZE + 3], mine[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	int n = md && b64 ? decode(b64, raw, sizeof(raw)) : -1;
	if (n != SALT_LEN + EVP_MD_get_size(md) ||
	    digest(md, raw, password, len, mine, &dlen) < 0 || (int)dlen != n - SALT_LEN)
		return false;
	bool ok = CRYPTO_memcmp(mine, raw + SALT_LEN, dlen) == 0;
	OPENSSL_cleanse(mine, sizeof(mine));
	return ok;
}
