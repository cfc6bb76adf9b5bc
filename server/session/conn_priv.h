/*
 * conn_priv.h - the connection engine's internals that its own parts
 * (login.c, authz.c) use; not for channels or the layers above.
 *
 * Threading: loop thread.
 */
#ifndef CONN_PRIV_H
#define CONN_PRIV_H

#include "session/conn.h"

void conn_wake(struct conn *c);
/* Send connection.close and wait for close-ok (CONN_CLOSING). */
void conn_send_close(struct conn *c, uint16_t code, const char *text, uint32_t method_id);
void conn_close_after_flush(struct conn *c);
/* The handshake is done: connection.open-ok went out. */
void conn_opened(struct conn *c);
/* Send connection.tune (login succeeded). */
void conn_send_tune(struct conn *c);
/* The earliest of the engine's deadlines changed. */
void conn_deadlines_changed(struct conn *c);

/* An access check went pending while a channel frame was handled: keep a
 * copy of that frame; it is handled again when the answer is in.  0, or
 * -1 (no frame being handled, one held already, out of memory). */
int conn_hold_frame(struct conn *c);
/* The answer is in: handle the held frame again, then read on. */
void conn_replay_held(struct conn *c);

#endif
