/*
 * fuzz_broker.c - fuzz target for the whole broker: the input is what one
 * client sends on one connection (protocol header, frames, anything).
 *
 * A broker is created once (plugins from $AMQPD_PLUGIN_DIR, else
 * $top_builddir/plugins/lib, else ./plugins/lib); each input is written into
 * one end of a socketpair whose other end amqpd accepted, the event loop
 * runs until the input is consumed, the client end closes and the
 * connection is gone.  The vhost is recreated after every input so runs do
 * not depend on each other.  Whatever the input, the broker must not
 * crash, leak or trip a sanitizer.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/broker.h"
#include "session/conn.h"
#include "util/log.h"
#include "model/vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct broker fb;
static bool ready;

static void fuzz_init(void)
{
	static char dir[4096];
	const char *d = getenv("AMQPD_PLUGIN_DIR");
	if (!d) {
		const char *top = getenv("top_builddir");
		snprintf(dir, sizeof(dir), "%s/plugins/lib", top ? top : ".");
		d = dir;
	}
	/* Quiet (errors are expected) unless AMQPD_FUZZ_LOG is set. */
	log_set_level(getenv("AMQPD_FUZZ_LOG") ? LOG_DEBUG : (enum log_level) - 1);
	memset(&fb, 0, sizeof(fb));
	broker_config_defaults(&fb.cfg);
	fb.cfg.plugin_dir = d;
	if (broker_init(&fb) < 0) {
		fprintf(stderr, "fuzz_broker: cannot start a broker with plugins from %s\n", d);
		abort();
	}
	ready = true;
}

static void drain(int fd)
{
	char buf[65536];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		fuzz_init();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	conn_accept(&fb, sv[0], (struct sockaddr *)&peer, sizeof(peer));

	size_t off = 0;
	for (int idle = 0; idle < 4 && fb.nconns;) {
		if (off < size) {
			ssize_t n = write(sv[1], data + off, size - off);
			if (n > 0)
				off += (size_t)n;
		} else {
			idle++;
		}
		event_base_loop(fb.base, EVLOOP_NONBLOCK);
		drain(sv[1]);
	}
	close(sv[1]); /* the client goes away */
	for (int i = 0; i < 8 && fb.nconns; i++)
		event_base_loop(fb.base, EVLOOP_NONBLOCK);
	while (fb.conns)
		conn_free(fb.conns);

	/* A fresh vhost for the next input. */
	struct vhost *vh = broker_vhost(&fb, "/", 1);
	if (vh) {
		hmap_del(&fb.model.vhosts, "/", 1);
		vhost_free(vh);
	}
	if (!vhost_new(&fb.model, "/"))
		abort();
	return 0;
}
