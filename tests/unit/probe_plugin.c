/*
 * probe_plugin.c - an ABI 2 test plugin ("test-probe") for what the
 * built-in plugins do not exercise: options and userdata, and exchange
 * types that decline.  Loaded by tests/unit/test_host_abi.c only.
 *
 * Options: greeting=TEXT (kept in the userdata), refuse=1 (init fails with
 * a reason), anything else is refused.
 *
 * Types: "x-probe" is registered twice.  The first ("picky") declines,
 * from validate, unless the exchange arguments have "x-probe-picky"; the
 * second ("fallback") takes any exchange.  Both route to every bound
 * destination; the state says which one created it.  "x-probe-never"
 * declines from create, always.
 *
 * Ownership: the userdata and each exchange's state come from the host
 * allocator (so the test can watch the accounting) and are freed in fini
 * and destroy.  Threading: loop thread only.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

struct probe {
	const struct amqpd_host_api *host;
	amqpd_plugin *self;
	char greeting[64];
	int created; /* exchanges created, both kinds */
};

struct pstate {
	char kind; /* 'p' picky, 'f' fallback */
	const amqpd_dest *dests[16];
	size_t n;
};

static amqpd_status picky_validate(void *ud, struct amqpd_table_view args, char *err, size_t errlen)
{
	struct probe *pr = ud;
	struct amqpd_value v;
	memset(&v, 0, sizeof(v));
	v.struct_size = sizeof(v);
	if (!pr->host->table_get(args, "x-probe-picky", &v))
		return AMQPD_DECLINED;
	if (v.type != AMQPD_VALUE_LONGSTR) {
		snprintf(err, errlen, "x-probe-picky must be a string");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	return AMQPD_OK;
}

static amqpd_status create_kind(struct probe *pr, amqpd_exchange_state **state, char kind)
{
	struct pstate *s = pr->host->calloc(pr->self, 1, sizeof(*s));
	if (!s)
		return AMQPD_ERR_ERRNO(ENOMEM);
	s->kind = kind;
	pr->created++;
	*state = (amqpd_exchange_state *)s;
	return AMQPD_OK;
}

static amqpd_status picky_create(void *ud, amqpd_exchange_state **state,
                                 struct amqpd_table_view args)
{
	(void)args;
	return create_kind(ud, state, 'p');
}

static amqpd_status fallback_create(void *ud, amqpd_exchange_state **state,
                                    struct amqpd_table_view args)
{
	(void)args;
	return create_kind(ud, state, 'f');
}

static amqpd_status never_create(void *ud, amqpd_exchange_state **state,
                                 struct amqpd_table_view args)
{
	(void)ud;
	(void)state;
	(void)args;
	return AMQPD_DECLINED;
}

static void p_destroy(void *ud, amqpd_exchange_state *state)
{
	struct probe *pr = ud;
	pr->host->free(pr->self, state);
}

static amqpd_status p_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	(void)ud;
	struct pstate *s = (struct pstate *)state;
	if (s->n == sizeof(s->dests) / sizeof(s->dests[0]))
		return AMQPD_ERR_REPLY(406);
	s->dests[s->n++] = b->dest;
	return AMQPD_OK;
}

static void p_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	(void)ud;
	struct pstate *s = (struct pstate *)state;
	for (size_t i = 0; i < s->n; i++) {
		if (s->dests[i] == b->dest) {
			s->dests[i] = s->dests[--s->n];
			return;
		}
	}
}

static amqpd_status p_route(void *ud, amqpd_exchange_state *state,
                            const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                            void *emit_ctx)
{
	(void)ud;
	(void)msg;
	const struct pstate *s = (const struct pstate *)state;
	for (size_t i = 0; i < s->n; i++)
		emit(emit_ctx, s->dests[i]);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type picky = {sizeof(picky), "x-probe", picky_validate,
                                                 picky_create,  p_destroy, NULL,
                                                 p_bind,        p_unbind,  p_route};
static const struct amqpd_exchange_type fallback = {
    sizeof(fallback), "x-probe", NULL, fallback_create, p_destroy, NULL, p_bind, p_unbind, p_route};
static const struct amqpd_exchange_type never = {
    sizeof(never), "x-probe-never", NULL, never_create, p_destroy, NULL, p_bind, p_unbind, p_route};

static void probe_fini(amqpd_plugin *self, void *userdata)
{
	struct probe *pr = userdata;
	if (pr)
		pr->host->free(self, pr);
}

static amqpd_status probe_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                               const struct amqpd_option *opts, size_t nopts, void **userdata,
                               char *err, size_t errlen)
{
	struct probe *pr = h->calloc(self, 1, sizeof(*pr));
	if (!pr)
		return AMQPD_ERR_ERRNO(ENOMEM);
	pr->host = h;
	pr->self = self;
	amqpd_status s = AMQPD_OK;
	for (size_t i = 0; i < nopts && s == AMQPD_OK; i++) {
		if (strcmp(opts[i].key, "greeting") == 0) {
			snprintf(pr->greeting, sizeof(pr->greeting), "%s", opts[i].value);
		} else if (strcmp(opts[i].key, "refuse") == 0) {
			snprintf(err, errlen, "refused as asked (refuse=%s)", opts[i].value);
			s = AMQPD_ERR_PRECONDITION_FAILED;
		} else {
			snprintf(err, errlen, "unknown option '%s'", opts[i].key);
			s = AMQPD_ERR_PRECONDITION_FAILED;
		}
	}
	if (s == AMQPD_OK)
		s = h->register_exchange_type(self, &picky);
	if (s == AMQPD_OK)
		s = h->register_exchange_type(self, &fallback);
	if (s == AMQPD_OK)
		s = h->register_exchange_type(self, &never);
	if (s != AMQPD_OK) {
		probe_fini(self, pr);
		return s;
	}
	*userdata = pr;
	return AMQPD_OK;
}

AMQPD_PLUGIN_DEFINE("test-probe", "1", "ABI 2 host feature probe (tests only)", probe_init,
                    probe_fini);
