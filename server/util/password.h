/*
 * password.h - RabbitMQ-compatible password hashes.
 *
 * A hash is base64(salt || H(salt || password)) with a 4-byte random salt,
 * as rabbit_password_hashing_sha256 (the default), _sha512 and _md5 write
 * it, so users exported from RabbitMQ import with their passwords.
 * Comparison is constant-time.  Nothing here logs.  Pure (OpenSSL's
 * digests and random bytes); any thread.
 */
#ifndef PASSWORD_H
#define PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_SHA256 "rabbit_password_hashing_sha256"
#define PASSWORD_SHA512 "rabbit_password_hashing_sha512"
#define PASSWORD_MD5    "rabbit_password_hashing_md5"

/* Is alg one of the three names above? */
bool password_algorithm_known(const char *alg);
/* Is b64 a well-formed hash for alg (base64, salt plus digest length)? */
bool password_hash_valid(const char *alg, const char *b64);
/* Hash password with a fresh salt into out (NUL-terminated base64).
 * 0, or -1 (unknown algorithm, out too small, no randomness). */
int password_hash(const char *alg, const char *password, size_t len, char *out, size_t outlen);
/* Does password match the stored hash?  False for a malformed hash. */
bool password_check(const char *alg, const char *b64, const void *password, size_t len);

#endif
