/*
 * util.c - small helpers of the file storage backend: growing an array
 * with the host allocator, and pread/pwrite loops that finish short
 * transfers and retry EINTR.
 *
 * Ownership: sf_grow reallocates the caller's array in place (host
 * allocator); the I/O helpers own nothing.
 * Threading: sf_grow only on the loop thread (the fsync thread never calls
 * the host); sf_pwrite_all and sf_pread_all from either thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "sfile.h"

/* Grow *arr (element size sz) to hold at least need elements. */
int sf_grow(void *arrp, size_t *cap, size_t need, size_t sz)
{
	void **arr = arrp;
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < need)
		n *= 2;
	void *p = sf_host->realloc(sf_plugin, *arr, n * sz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

int sf_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int sf_pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* short file */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}
