#!/bin/sh
# Replay the broker fuzz corpus (client byte streams) through a whole amqpd
# core; a crash, leak or sanitizer report fails the test.
set -u
AMQPD_PLUGIN_DIR="$top_builddir/plugins/lib" exec "$top_builddir/tests/fuzz/fuzz_broker_replay" \
	"$top_srcdir/tests/fuzz/corpus-broker"
