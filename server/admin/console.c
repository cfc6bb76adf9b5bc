/*
 * console.c - static files of the web console (see console.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_priv.h"
#include "admin/console.h"

#define CONSOLE_MAX_FILE (8u << 20)

static const char *content_type(const char *path)
{
	const char *dot = strrchr(path, '.');
	static const char *const map[][2] = {
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".mjs", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".ico", "image/x-icon"},
	    {".json", "application/json"},
	    {".txt", "text/plain; charset=utf-8"},
	};
	for (size_t i = 0; dot && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(dot, map[i][0]) == 0)
			return map[i][1];
	return "application/octet-stream";
}

void console_reply(struct areq *r)
{
	if (!(r->method & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))) {
		areq_error(r, 405, "method_not_allowed", "Method Not Allowed");
		return;
	}
	const char *dir = r->a->cfg.console_dir;
	if (!dir) {
		areq_not_found(r);
		return;
	}
	char path[PATH_MAX];
	size_t len = (size_t)snprintf(path, sizeof(path), "%s", dir);
	for (int i = 0; i < r->nseg; i++) {
		const char *s = r->seg[i];
		if (!*s || s[0] == '.' || strchr(s, '/') || strchr(s, '\\')) {
			areq_not_found(r);
			return;
		}
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/%s", s);
		if (len >= sizeof(path)) {
			areq_not_found(r);
			return;
		}
	}
	struct stat st;
	if (r->nseg == 0 || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/index.html");
	int fd = len < sizeof(path) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > CONSOLE_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		areq_not_found(r);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf || (st.st_size && evbuffer_add_file(buf, fd, 0, st.st_size) < 0)) {
		if (buf)
			evbuffer_free(buf);
		else
			close(fd);
		areq_error(r, 500, "internal_error", "cannot read the file");
		return;
	}
	if (!st.st_size)
		close(fd);
	areq_set_header(r, "Content-Type", content_type(path));
	areq_set_header(r, "X-Content-Type-Options", "nosniff");
	if (r->method & EVHTTP_REQ_HEAD)
		evbuffer_drain(buf, evbuffer_get_length(buf));
	r->replied = true;
	if (r->req)
		evhttp_send_reply(r->req, 200, "OK", buf);
	evbuffer_free(buf);
	areq_done(r);
}
