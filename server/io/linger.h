/*
 * linger.h - sockets of connections we closed cleanly, draining.
 *
 * A socket closed while the peer is still sending - e.g. the publishes an
 * amqplib client flushes after its connection.close - has unread input,
 * and closing such a socket makes the kernel answer with RST instead of
 * FIN.  The RST can reach the peer before it has read our close-ok, and
 * its next write fails (EPIPE/ECONNRESET): it never sees the close
 * completed.  So a connection we close cleanly only half-closes its socket
 * (FIN after everything written) and discards input until the peer closes
 * too, or for LINGER_MS at most, as RabbitMQ reads until the client hangs
 * up.
 *
 * Ownership: the broker's lingering list owns them.  Loop thread only.
 */
#ifndef LINGER_H
#define LINGER_H

struct broker;
struct bufferevent;

#define LINGER_MS 2000

/* Takes over bev (everything written); frees it now if it cannot linger. */
void linger_socket(struct broker *b, struct bufferevent *bev);
/* Close every lingering socket. */
void linger_free_all(struct broker *b);

#endif
