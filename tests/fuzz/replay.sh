#!/bin/sh
# Replay every committed fuzz corpus file through the fuzz target (built
# without libFuzzer).  A crash or sanitizer report fails the test.
set -u
exec "$top_builddir/tests/fuzz/fuzz_replay" "$top_srcdir/tests/fuzz/corpus"
