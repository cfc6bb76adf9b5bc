#!/bin/sh
# A plugin without the entry symbol, or one that speaks no ABI version the
# host offers, must be refused with a clear log line, and amqpd must not
# start (non-zero exit, no listener).
set -u
cc=${CC:-cc}
# Scratch files (plugins, amqpd's log and data) in a temporary directory:
# removed when the checks pass, kept (and named) when one fails.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amqpd-badplugins.XXXXXX") || exit 1
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$tmp"; else echo "scratch files kept in $tmp"; fi; exit $rc' EXIT
trap 'exit 1' HUP INT TERM
amqpd="$top_builddir/server/amqpd"
inc="$top_srcdir/plugins/include"
status=0

mkdir -p "$tmp/noentry" "$tmp/badabi"
cat >"$tmp/noentry.c" <<'C'
int not_the_entry(void) { return 42; }
C
cat >"$tmp/badabi.c" <<'C'
#include <amqpd/plugin.h>
static const struct amqpd_plugin_desc d = {sizeof(d), "future", "9", "from the future", 0, 0};
AMQPD_PLUGIN_EXPORT const struct amqpd_plugin_desc *amqpd_plugin_entry(uint32_t lo, uint32_t hi,
								    uint32_t *chosen)
{
	(void)lo;
	if (hi < 99)
		return 0; /* only speaks ABI 99 */
	*chosen = 99;
	return &d;
}
C
"$cc" -shared -fPIC -o "$tmp/noentry/noentry.so" "$tmp/noentry.c" || exit 1
"$cc" -shared -fPIC -I"$inc" -o "$tmp/badabi/badabi.so" "$tmp/badabi.c" || exit 1

check() { # dir expected-log-text
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	timeout 20 "$amqpd" --listen "127.0.0.1:$port" --plugin-dir "$1" --data-dir "$tmp/data" \
		>"$tmp/log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
		echo "FAIL: amqpd started (rc=$rc) with plugin dir $1"
		status=1
	elif ! grep -q "$2" "$tmp/log"; then
		echo "FAIL: no log line matching '$2' for $1:"
		cat "$tmp/log"
		status=1
	else
		echo "ok: refused ($(grep "$2" "$tmp/log" | head -n 1 | sed 's/^.*\] //'))"
	fi
}
check "$tmp/noentry" "refused: no entry symbol 'amqpd_plugin_entry'"
check "$tmp/badabi" "refused: ABI mismatch"
check "$tmp/does-not-exist" "cannot open"
exit $status
