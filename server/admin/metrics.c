/*
 * metrics.c - Prometheus text format (see metrics.h).
 */
#include "admin/admin_priv.h"
#include "admin/metrics.h"

void metrics_reply(struct areq *r)
{
	areq_not_found(r);
}
