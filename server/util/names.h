/*
 * names.h - random names: server-named queues ("amq.gen-..."), consumer
 * tags ("amq.ctag-..."), direct reply-to tokens and store ids.
 *
 * Pure (reads getrandom); any thread.
 */
#ifndef NAMES_H
#define NAMES_H

#include <stddef.h>

/* prefix + 22 random base64url characters, NUL-terminated in out. */
void random_name(const char *prefix, char *out, size_t outlen);

#endif
