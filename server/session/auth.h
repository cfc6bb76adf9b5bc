/*
 * auth.h - SASL PLAIN and AMQPLAIN against the built-in user guest/guest.
 *
 * As in RabbitMQ, guest may only connect from a loopback address.  (Users,
 * vhosts and permissions in full, and auth plugins, come later.)  Pure.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "amqp.h"

/* The mechanisms offered in connection.start. */
#define AUTH_MECHANISMS "PLAIN AMQPLAIN"

enum auth_result { AUTH_OK, AUTH_REFUSED, AUTH_BAD_MECHANISM };

/* Check a start-ok response; on success copies the user name to user. */
enum auth_result auth_check(struct amqp_bytes mechanism, struct amqp_bytes response,
                            bool peer_loopback, char *user, size_t userlen);

#endif
