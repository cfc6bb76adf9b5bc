/*
 * test_util.h - shared helpers for the protocol unit tests.
 * Each test_*.c file defines one `void suite_<name>(void)` that adds its
 * CUnit suite; test_main.c calls them all.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <CUnit/CUnit.h>

#include "amqp.h"

void suite_table(void);
void suite_props(void);
void suite_frame(void);
void suite_methods(void);
void suite_captured(void);

/* Add a suite and its tests; aborts the run if CUnit cannot. */
#define TEST_SUITE(name, ...)                                                                      \
	do {                                                                                       \
		CU_pSuite s_ = CU_add_suite(name, NULL, NULL);                                     \
		struct {                                                                           \
			const char *n;                                                             \
			CU_TestFunc f;                                                             \
		} t_[] = {__VA_ARGS__};                                                            \
		for (size_t i_ = 0; s_ && i_ < sizeof(t_) / sizeof(t_[0]); i_++)                   \
			CU_add_test(s_, t_[i_].n, t_[i_].f);                                       \
	} while (0)
#define TEST(f)                                                                                    \
	{                                                                                          \
#f, f                                                                              \
	}

#endif
