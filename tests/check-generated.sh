#!/bin/sh
# Check that the committed protocol/amqp_gen.{c,h} match what the generator
# produces from the spec today.  Skips (exit 77) when the spec or a tool is
# not available, saying so.
set -u
spec=${SPEC_JSON:-$top_srcdir/../shared/spec/amqp-rabbitmq-0.9.1.json}
if [ ! -f "$spec" ]; then
	echo "SKIP: spec not found at $spec; cannot check generated code"
	exit 77
fi
py=${PYTHON3:-python3}
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$py" >/dev/null 2>&1 || ! command -v "$cf" >/dev/null 2>&1; then
	echo "SKIP: python3 or clang-format missing"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$top_srcdir/protocol/gen_amqp.py" "$spec" "$tmp" || exit 1
cp "$top_srcdir/.clang-format" "$tmp/"
(cd "$tmp" && "$cf" -i amqp_gen.c amqp_gen.h) || exit 1
status=0
for f in amqp_gen.c amqp_gen.h; do
	if ! diff -u "$top_srcdir/protocol/$f" "$tmp/$f"; then
		echo "FAIL: protocol/$f is out of date: run 'make regen' and commit"
		status=1
	fi
done
[ $status -eq 0 ] && echo "generated code is current"
exit $status
