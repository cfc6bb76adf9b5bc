/*
 * fuzz_broker.c - fuzz target for the whole broker core: the input is what
 * one client sends on one connection (protocol header, frames, anything).
 *
 * The input goes straight into a connection engine (tests/engine): no
 * socket, no event loop, no waiting, so a run is deterministic.  It is fed
 * in pieces of varying size (the parser must not care where reads end),
 * then the fake clock runs past every deadline (heartbeats, the handshake
 * timeout, close-ok), the client goes away and the vhost is recreated, so
 * runs do not depend on each other.  Whatever the input, the core must not
 * crash, leak or trip a sanitizer.
 *
 * The exchange types are linked in and registered through their entry
 * functions: no plugin directory, no dlopen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_host.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct eh host;
static bool ready;

static void fuzz_init(void)
{
	/* Quiet (errors are expected) unless AMQPD_FUZZ_LOG is set. */
	log_set_level(getenv("AMQPD_FUZZ_LOG") ? LOG_DEBUG : (enum log_level) - 1);
	if (eh_init(&host) < 0)
		abort();
	ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		fuzz_init();
	struct ec *e = ec_new(&host, 0);
	if (!e)
		abort();
	static const size_t pieces[] = {4096, 1, 13, 300, 65536};
	size_t off = 0;
	for (unsigned i = 0; off < size; i++) {
		size_t n = pieces[i % 5] < size - off ? pieces[i % 5] : size - off;
		ec_send(e, data + off, n);
		off += n;
		struct amqp_frame f;
		while (ec_frame(e, &f) == 1)
			; /* the client reads what it is sent */
	}
	/* Time passes: heartbeats, then every timeout. */
	for (int64_t t = 1; t <= 4 && e->c; t++)
		ec_advance(e, t * 30000);
	if (e->c)
		conn_peer_closed(e->c);
	eh_settle(&host);
	ec_free(e);
	if (eh_reset_vhost(&host) < 0)
		abort();
	return 0;
}
