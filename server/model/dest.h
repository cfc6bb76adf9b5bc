/*
 * dest.h - what a binding points at: a queue or an exchange.
 *
 * Both struct queue and struct exchange start with a struct dest, so the
 * opaque destination handle given to exchange-type plugins is a pointer to
 * it and the host can tell which kind it is.
 */
#ifndef DEST_H
#define DEST_H

#include <stdint.h>

enum dest_kind { DEST_QUEUE = 1, DEST_EXCHANGE = 2 };

struct dest {
	uint8_t kind;
	uint64_t route_mark; /* == broker->route_epoch once routed to */
};

#endif
