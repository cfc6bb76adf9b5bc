/*
 * recovery.c - rebuilding a queue's index from its segment files when the
 * queue is opened: list the segment files (dropping .tmp leftovers of an
 * interrupted compaction), replay them in name order through the
 * damage-tolerant scanner of segment.c, cut damaged tails off, and log
 * dropped records, missing segment files and unreadable files.
 *
 * Ownership: the segments it opens join the queue's list (and the fd LRU);
 * the index it fills is the queue's.  Each file is mapped only while it is
 * scanned.
 * Threading: loop thread only (from queue_open).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "sfile.h"

struct replay {
	fq *q;
	struct seg *s;
	int err;
};

static void replay_rec(void *ctx, const struct rec *r)
{
	struct replay *rp = ctx;
	fq *q = rp->q;
	ptrdiff_t i;
	bool existed;

	switch (r->type) {
	case REC_MSG: {
		struct entry *e = sf_idx_slot(q, r->seq, &existed);
		if (!e) {
			rp->err = -ENOMEM;
			return;
		}
		uint32_t flags = (r->flags & REC_F_DELIVERED) ? E_DELIVERED : 0;
		if (existed && (e->flags & E_LIVE)) { /* duplicate from a compaction */
			flags |= e->flags & E_DELIVERED;
			sf_live_remove(q, e);
		}
		e->seg = rp->s;
		e->off = r->off;
		e->len = r->len;
		e->flags = flags;
		sf_live_add(q, e);
		break;
	}
	case REC_ACK:
		if ((i = sf_idx_find(q, r->seq)) >= 0)
			sf_idx_kill(q, (size_t)i);
		break;
	case REC_DELIVERED:
		if ((i = sf_idx_find(q, r->seq)) >= 0)
			q->ents[i].flags |= E_DELIVERED;
		break;
	case REC_PURGE:
		for (size_t k = q->lo; k < q->hi && q->ents[k].seq <= r->seq; k++)
			if (q->ents[k].flags & E_LIVE)
				sf_live_remove(q, &q->ents[k]);
		while (q->lo < q->hi && !(q->ents[q->lo].flags & E_LIVE))
			q->lo++;
		break;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Read the queue's segment files and rebuild its index. */
int sf_scan_queue(fq *q)
{
	struct fstore *st = q->st;
	uint64_t *ids = NULL, dropped = 0, missing = 0;
	size_t n = 0, cap = 0;
	int rc = 0;

	int dfd = dup(q->dir->fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t id;
		bool tmp;
		if (!seg_parse_name(de->d_name, &id, &tmp))
			continue;
		if (tmp) { /* an interrupted compaction; its sources are still in place */
			unlinkat(q->dir->fd, de->d_name, 0);
			continue;
		}
		if ((rc = sf_grow(&ids, &cap, n + 1, sizeof(*ids))))
			break;
		ids[n++] = id;
	}
	closedir(d);
	if (rc)
		goto out;
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u64);

	for (size_t i = 0; i < n; i++) {
		char name[SEG_NAME_MAX];
		struct stat sb;
		seg_name(name, ids[i], false);
		if (i > 0 && (ids[i] >> SEG_ID_SHIFT) > (ids[i - 1] >> SEG_ID_SHIFT) + 1)
			missing += (ids[i] >> SEG_ID_SHIFT) - (ids[i - 1] >> SEG_ID_SHIFT) - 1;
		int fd = openat(q->dir->fd, name, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0) {
			sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
			             "storage: queue %s: segment %s: %s", q->qid, name,
			             strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct seg *s = sf_seg_new(q->dir, ids[i], fd, (uint64_t)sb.st_size);
		if (!s) {
			close(fd);
			rc = -ENOMEM;
			goto out;
		}
		sf_list_push_tail(q, s);
		if (sb.st_size > 0) {
			void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (m == MAP_FAILED) {
				sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
				             "storage: queue %s: segment %s: mmap: %s", q->qid,
				             name, strerror(errno));
				continue;
			}
			madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
			struct replay rp = {.q = q, .s = s};
			size_t end;
			dropped += seg_scan(m, (size_t)sb.st_size, replay_rec, &rp, &end);
			munmap(m, (size_t)sb.st_size);
			if ((rc = rp.err))
				goto out;
			/* Nothing valid follows: cut the damaged tail off (counted
			 * once, not again at every start).  Nothing appends here. */
			if (end < (size_t)sb.st_size && ftruncate(fd, (off_t)end) == 0) {
				q->total_size -= s->size - end;
				s->size = end;
			}
		}
		sf_lru_push(st, s);
	}
	if (n)
		q->next_id = ((ids[n - 1] >> SEG_ID_SHIFT) + 1) << SEG_ID_SHIFT;
	if (dropped)
		sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
		             "storage: queue %s: dropped %" PRIu64 " damaged records", q->qid,
		             dropped);
	if (missing)
		sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
		             "storage: queue %s: %" PRIu64 " segment files missing", q->qid,
		             missing);
	sf_idx_squeeze(q, true);
out:
	sf_host->free(sf_plugin, ids);
	return rc;
}
