#!/bin/sh
# Replay the broker fuzz corpus (client byte streams) through a whole amqpd
# core; a crash, leak or sanitizer report fails the test.
set -u
exec "$top_builddir/tests/fuzz/fuzz_broker_replay" \
	"$top_srcdir/tests/fuzz/corpus-broker"
