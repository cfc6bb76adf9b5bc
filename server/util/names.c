/*
 * names.c - see names.h.
 */
#include "util/names.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

void random_name(const char *prefix, char *out, size_t outlen)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t rnd[22];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)rand();
	}
	size_t n = (size_t)snprintf(out, outlen, "%s", prefix);
	for (size_t i = 0; i < sizeof(rnd) && n + 1 < outlen; i++)
		out[n++] = b64[rnd[i] & 63];
	out[n < outlen ? n : outlen - 1] = 0;
}
