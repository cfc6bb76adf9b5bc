/*
 * sd_notify.h - systemd's readiness protocol (sd_notify(3)) without
 * libsystemd: one datagram to $NOTIFY_SOCKET.  A no-op when the variable
 * is not set (not started by systemd with Type=notify).
 *
 * Threading: any thread; no state.
 */
#ifndef SD_NOTIFY_H
#define SD_NOTIFY_H

/* Send state ("READY=1", "STOPPING=1", "STATUS=..."); 0, or -1 (logged
 * at debug: a missing socket is not the broker's failure). */
int sd_notify_send(const char *state);

#endif
