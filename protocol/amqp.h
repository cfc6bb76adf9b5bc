/*
 * amqp.h - the protocol layer in one include: wire helpers, generated
 * methods and constants, field tables, content headers, framing.
 * protocol/ is a pure codec: no sockets, no libevent, no broker state.
 */
#ifndef AMQP_H
#define AMQP_H

#include "amqp_err.h"
#include "amqp_wire.h"
#include "amqp_gen.h"
#include "amqp_table.h"
#include "amqp_props.h"
#include "amqp_frame.h"

#endif
