/*
 * test_plugins.c - plugin ABI 2 in a real amqpd: a plugin built against
 * the frozen ABI 1 headers (tests/abi-v1/v1_direct.c, exchange type
 * "x-v1-direct") is loaded next to the built-in ones and routes real
 * messages; and a plugin option given on the command line
 * (--plugin-opt storage-file.fail_writes=1) reaches the storage plugin,
 * whose syncs then fail, so persistent messages to a durable queue are
 * nacked while transient ones are acked; and a data directory written by
 * amqpd before ABI 2 (tests/fixtures/abi-v1-data) recovers message for
 * message: the storage append became a gather list, the bytes on disk
 * did not change.
 *
 * Each test starts its own broker (with its own plugin directory or
 * options) and waits on protocol answers, never on time; the timeouts only
 * guard against hangs.  Skipped against an external broker.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"

static const char *top_builddir(void)
{
	const char *t = getenv("top_builddir");
	return t && *t ? t : ".";
}

/* A plugin directory: the built-in plugins plus the ABI 1 test plugin. */
static bool make_plugin_dir(char *dir, size_t n)
{
	const char *scratch = itest_scratch_dir();
	if (!scratch)
		return false;
	snprintf(dir, n, "%s/plugins-v1", scratch);
	if (mkdir(dir, 0700) < 0 && access(dir, F_OK) < 0)
		return false;
	char src[1024], dst[2048];
	snprintf(src, sizeof(src), "%s/plugins/lib", top_builddir());
	DIR *d = opendir(src);
	if (!d)
		return false;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
			continue;
		char from[2048];
		snprintf(from, sizeof(from), "%s/%s", src, e->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", dir, e->d_name);
		unlink(dst);
		if (symlink(from, dst) < 0) {
			closedir(d);
			return false;
		}
	}
	closedir(d);
	snprintf(src, sizeof(src), "%s/tests/abi-v1/.libs/v1_direct.so", top_builddir());
	snprintf(dst, sizeof(dst), "%s/v1_direct.so", dir);
	unlink(dst);
	return symlink(src, dst) == 0;
}

static bool log_contains(const struct broker *b, const char *s)
{
	FILE *f = fopen(b->log_path, "r");
	if (!f)
		return false;
	char line[2048];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, s) != NULL;
	fclose(f);
	return found;
}

static void test_v1_plugin_routes(void)
{
	if (broker_external())
		return;
	char dir[700];
	CU_ASSERT_FATAL(make_plugin_dir(dir, sizeof(dir)));
	const char *args[] = {"--plugin-dir", dir, NULL};
	struct broker b;
	CU_ASSERT_EQUAL_FATAL(broker_start(&b, args), 0);
	CU_ASSERT(log_contains(&b, "plugin test-v1-direct 1.0 loaded"));
	CU_ASSERT(log_contains(&b, "(ABI 1)"));
	amqp_connection_state_t c = broker_connect(&b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_exchange_declare(c, 1, amqp_cstring_bytes("itest.v1"),
	                      amqp_cstring_bytes("x-v1-direct"), false, false, false, false,
	                      amqp_empty_table);
	CU_ASSERT_FATAL(rpc_ok(c));
	CU_ASSERT_FATAL(qdecl(c, "itest.v1.q"));
	amqp_queue_bind(c, 1, amqp_cstring_bytes("itest.v1.q"), amqp_cstring_bytes("itest.v1"),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	CU_ASSERT_FATAL(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, "itest.v1", "k", "through v1"), 0);
	CU_ASSERT_EQUAL(publish(c, "itest.v1", "other", "nowhere"), 0);
	struct got g = get1(c, "itest.v1.q", true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "through v1");
	g = get1(c, "itest.v1.q", true);
	CU_ASSERT_EQUAL(g.status, 0); /* "other" matched no binding */
	/* The v1 validate's 406 reaches the client with its reason. */
	amqp_table_entry_t e = {
	    amqp_cstring_bytes("x-v1-refuse"),
	    {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("1")}};
	amqp_table_t t = {1, &e};
	amqp_exchange_declare(c, 1, amqp_cstring_bytes("itest.v1.bad"),
	                      amqp_cstring_bytes("x-v1-direct"), false, false, false, false, t);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - x-v1-refuse given");
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* Publish one message in confirm mode and read its answer: 'a', 'n', or 0
 * when none came within ms. */
static char publish_confirmed(amqp_connection_state_t c, const char *q, bool persistent)
{
	amqp_basic_properties_t p = {0};
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	p.delivery_mode = persistent ? 2 : 1;
	if (publish_full(c, 1, "", q, false, &p, amqp_cstring_bytes("m")) != 0)
		return 0;
	for (;;) {
		amqp_frame_t f;
		struct timeval tv = {20, 0};
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return 0;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD)
			return 'a';
		if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
			return 'n';
	}
}

static void test_option_reaches_storage(void)
{
	if (broker_external())
		return;
	const char *args[] = {"--plugin-opt", "storage-file.fail_writes=1", NULL};
	struct broker b;
	CU_ASSERT_EQUAL_FATAL(broker_start(&b, args), 0);
	amqp_connection_state_t c = broker_connect(&b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	amqp_queue_declare(c, 1, amqp_cstring_bytes("itest.opt.q"), false, true, false, false,
	                   amqp_empty_table);
	CU_ASSERT_FATAL(rpc_ok(c));
	CU_ASSERT_EQUAL(publish_confirmed(c, "itest.opt.q", true), 'n');
	CU_ASSERT_EQUAL(publish_confirmed(c, "itest.opt.q", false), 'a');
	CU_ASSERT(log_contains(&b, "injected write failure (option fail_writes)"));
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* The fixture's messages, in order. */
static const struct {
	const char *exchange, *rk, *body;
	int header;
} fixture[] = {
    {"", "fixture.q", "written before ABI 2, message 0", 40},
    {"amq.direct", "fixture.rk", "written before ABI 2, message 1", 41},
    {"", "fixture.q", "written before ABI 2, message 2", 42},
};

static void test_pre_v2_data_recovers(void)
{
	if (broker_external())
		return;
	const char *src = getenv("top_srcdir");
	const char *scratch = itest_scratch_dir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(scratch);
	char dir[700], cmd[2200];
	snprintf(dir, sizeof(dir), "%s/abi-v1-data", scratch);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -R '%s/tests/fixtures/abi-v1-data' '%s'", dir,
	         src && *src ? src : ".", dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	const char *args[] = {"--data-dir", dir, NULL};
	struct broker b;
	CU_ASSERT_EQUAL_FATAL(broker_start(&b, args), 0);
	CU_ASSERT(log_contains(&b, "recovered 3 messages"));
	amqp_connection_state_t c = broker_connect(&b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (size_t i = 0; i < sizeof(fixture) / sizeof(fixture[0]); i++) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes("fixture.q"), true);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
		                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
		amqp_basic_get_ok_t *ok = r.reply.decoded;
		CU_ASSERT(bytes_eq(ok->exchange, fixture[i].exchange));
		CU_ASSERT(bytes_eq(ok->routing_key, fixture[i].rk));
		amqp_message_t m;
		CU_ASSERT_FATAL(amqp_read_message(c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
		CU_ASSERT(bytes_eq(m.body, fixture[i].body));
		CU_ASSERT(m.properties.delivery_mode == 2);
		CU_ASSERT((m.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
		          bytes_eq(m.properties.content_type, "text/plain"));
		CU_ASSERT_FATAL(m.properties.headers.num_entries == 1);
		amqp_table_entry_t *e = &m.properties.headers.entries[0];
		CU_ASSERT(bytes_eq(e->key, "x-fixture"));
		CU_ASSERT(e->value.kind == AMQP_FIELD_KIND_I32 &&
		          e->value.value.i32 == fixture[i].header);
		amqp_destroy_message(&m);
	}
	struct got g = get1(c, "fixture.q", true);
	CU_ASSERT_EQUAL(g.status, 0); /* exactly those three */
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

void suite_plugins(void)
{
	CU_pSuite s = CU_add_suite("plugins", NULL, NULL);
	CU_add_test(s, "an ABI 1 plugin routes in an ABI 2 broker", test_v1_plugin_routes);
	CU_add_test(s, "--plugin-opt reaches the storage plugin", test_option_reaches_storage);
	CU_add_test(s, "a data directory written before ABI 2 recovers", test_pre_v2_data_recovers);
}
