/*
 * main.c - integration test runner: one amqpd on a free port for all suites.
 * AMQPD_TEST_EXTERNAL=host:port runs the same tests against another broker
 * (e.g. RabbitMQ) to check the tests themselves.  ITEST_SUITE=name runs one.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

int main(void)
{
	if (broker_start(&g_broker, NULL) != 0) {
		fprintf(stderr, "could not start amqpd (log: %s)\n", g_broker.log_path);
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite_connection();
	suite_channel();
	suite_badinput();
	suite_exchange();
	suite_queue();
	suite_basic();
	suite_bodies();
	suite_confirm_tx();
	suite_limits();
	suite_durability();
	suite_shutdown();
	suite_plugins();
	suite_tls();
	suite_rmq_defs();
	suite_auth();
	suite_auth_http();
	suite_oauth2();
	suite_queue_ext();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	const char *only = getenv("ITEST_SUITE");
	if (only && *only) {
		CU_pSuite s = CU_get_suite(only);
		if (s)
			CU_basic_run_suite(s);
	} else {
		CU_basic_run_tests();
	}
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();

	bool alive = broker_alive(&g_broker);
	int rc = broker_stop(&g_broker);
	if (!alive) {
		fprintf(stderr, "amqpd died during the tests (log: %s)\n", g_broker.log_path);
		return 1;
	}
	if (!broker_external() && rc != 0) {
		fprintf(stderr, "amqpd exited with %d on SIGTERM (want 0)\n", rc);
		return 1;
	}
	return failed ? 1 : 0;
}
