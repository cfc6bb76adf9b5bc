/*
 * sd_notify.c - see sd_notify.h.  The protocol is a single datagram on an
 * AF_UNIX socket whose path (or abstract name, after '@') systemd puts in
 * NOTIFY_SOCKET; writing it ourselves spares a dependency for 30 lines.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/sd_notify.h"
#include "util/log.h"

int sd_notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		log_debug("sd_notify: NOTIFY_SOCKET '%s' is not a socket path", path);
		return -1;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = 0; /* an abstract socket */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
	int e = errno;
	close(fd);
	if (n < 0) {
		log_debug("sd_notify: cannot send to %s: %s", path, strerror(e));
		return -1;
	}
	return 0;
}
