/*
 * test_main.c - runs every protocol unit-test suite; exit status is the
 * number of failures (0 = all passed), as automake's test driver expects.
 */
#include <CUnit/Basic.h>

#include "test_util.h"

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite_table();
	suite_props();
	suite_frame();
	suite_methods();
	suite_captured();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
