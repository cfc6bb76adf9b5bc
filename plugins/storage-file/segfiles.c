/*
 * segfiles.c - segment files and queue directories as the loop thread
 * holds them: refcounted queue directories (struct qdir) and the list of
 * those awaiting a directory fsync, segment objects (struct seg) with their
 * lifetime and I/O refs, the LRU of idle open segment fds (reopened on
 * demand), and a queue's list of segments ordered by id.  The on-disk
 * format itself is segment.c.
 *
 * Ownership: qdirs and segs come from the host allocator.  A seg lives
 * while it has refs (the queue's list, each io ref, a recover() reading
 * it); its fd stays open while io refs pin it, idle fds wait in the LRU.
 * A qdir lives while its queue, its segs, the store's list of directories
 * to fsync or a job hold a ref.
 * Threading: loop thread only.  The fsync thread never calls these; it
 * uses only the fds and directory fds its job pins.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "sfile.h"

struct qdir *sf_qdir_new(int fd)
{
	struct qdir *d = sf_host->calloc(sf_plugin, 1, sizeof(*d));
	if (!d)
		return NULL;
	d->fd = fd;
	d->refs = 1;
	return d;
}

void sf_qdir_put(struct qdir *d)
{
	if (d && --d->refs == 0) {
		close(d->fd);
		sf_host->free(sf_plugin, d);
	}
}

/* Remember that d gained an entry: fsync it with the next sync. */
void sf_dir_touch(struct fstore *st, struct qdir *d)
{
	if (d->dirty || sf_grow(&st->ddirs, &st->capddirs, st->nddirs + 1, sizeof(*st->ddirs)))
		return; /* out of memory: the fdatasync still covers the data */
	d->dirty = true;
	d->refs++;
	st->ddirs[st->nddirs++] = d;
}

void sf_lru_unlink(struct fstore *st, struct seg *s)
{
	if (!s->in_lru)
		return;
	if (s->lru_prev)
		s->lru_prev->lru_next = s->lru_next;
	else
		st->lru_head = s->lru_next;
	if (s->lru_next)
		s->lru_next->lru_prev = s->lru_prev;
	else
		st->lru_tail = s->lru_prev;
	s->lru_next = s->lru_prev = NULL;
	s->in_lru = false;
	st->nlru--;
}

/* An open fd nobody pins: keep it, most recently used first, up to LRU_MAX. */
void sf_lru_push(struct fstore *st, struct seg *s)
{
	sf_lru_unlink(st, s);
	s->lru_next = st->lru_head;
	if (st->lru_head)
		st->lru_head->lru_prev = s;
	else
		st->lru_tail = s;
	st->lru_head = s;
	s->in_lru = true;
	st->nlru++;
	while (st->nlru > LRU_MAX) {
		struct seg *t = st->lru_tail;
		sf_lru_unlink(st, t);
		close(t->fd);
		t->fd = -1;
	}
}

struct seg *sf_seg_new(struct qdir *dir, uint64_t id, int fd, uint64_t size)
{
	struct seg *s = sf_host->calloc(sf_plugin, 1, sizeof(*s));
	if (!s)
		return NULL;
	s->dir = dir;
	dir->refs++;
	s->id = id;
	s->fd = fd;
	s->size = size;
	s->refs = 1;
	return s;
}

void sf_seg_unref(struct fstore *st, struct seg *s)
{
	if (--s->refs)
		return;
	sf_lru_unlink(st, s);
	if (s->fd >= 0)
		close(s->fd);
	sf_qdir_put(s->dir);
	sf_host->free(sf_plugin, s);
}

static int seg_open_fd(struct seg *s)
{
	if (s->fd >= 0)
		return 0;
	char name[SEG_NAME_MAX];
	seg_name(name, s->id, false);
	s->fd = openat(s->dir->fd, name, O_RDWR | O_CLOEXEC);
	return s->fd < 0 ? -errno : 0;
}

/* Pin the segment's fd for I/O on the thread. */
int sf_seg_io_get(struct fstore *st, struct seg *s)
{
	int rc = seg_open_fd(s);
	if (rc)
		return rc;
	if (s->io_refs++ == 0)
		sf_lru_unlink(st, s);
	s->refs++;
	return 0;
}

void sf_seg_io_put(struct fstore *st, struct seg *s)
{
	if (--s->io_refs == 0 && s->fd >= 0 && s->refs > 1)
		sf_lru_push(st, s);
	sf_seg_unref(st, s);
}

/* An fd for a read on the loop thread. */
int sf_seg_read_fd(struct fstore *st, struct seg *s)
{
	int rc = seg_open_fd(s);
	if (rc)
		return rc;
	if (s->io_refs == 0)
		sf_lru_push(st, s);
	return s->fd;
}

void sf_list_remove(fq *q, struct seg *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		q->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		q->tail = s->prev;
	s->next = s->prev = NULL;
	s->in_list = false;
	q->total_size -= s->size;
	q->total_live -= s->live_bytes;
}

void sf_list_push_tail(fq *q, struct seg *s)
{
	s->prev = q->tail;
	s->next = NULL;
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	s->in_list = true;
	q->total_size += s->size;
	q->total_live += s->live_bytes;
}

void sf_list_push_head(fq *q, struct seg *s)
{
	s->next = q->head;
	s->prev = NULL;
	if (q->head)
		q->head->prev = s;
	else
		q->tail = s;
	q->head = s;
	s->in_list = true;
	q->total_size += s->size;
	q->total_live += s->live_bytes;
}

void sf_seg_unlink_file(struct seg *s)
{
	char name[SEG_NAME_MAX];
	if (s->unlinked)
		return;
	seg_name(name, s->id, false);
	unlinkat(s->dir->fd, name, 0); /* ENOENT (compaction got there first) is fine */
	s->unlinked = true;
}
