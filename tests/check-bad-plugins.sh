#!/bin/sh
# A plugin without the entry symbol, one that speaks no ABI version the
# host offers, one whose init fails or whose name cannot take options must
# be refused with a clear log line, and amqpd must not start (non-zero
# exit, no listener).  Likewise bad --plugin-opt options: malformed ones,
# ones for a plugin that is not loaded, ones the plugin refuses, and any
# for an ABI 1 plugin (which has no options).
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

mkdir -p "$tmp/noentry" "$tmp/badabi" "$tmp/initfail" "$tmp/dotname" "$tmp/withv1"
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
cat >"$tmp/initfail.c" <<'C'
#include <stdio.h>
#include <amqpd/plugin.h>
static amqpd_status init(amqpd_plugin *self, const struct amqpd_host_api *h,
			 const struct amqpd_option *o, size_t n, void **ud, char *err, size_t len)
{
	(void)self; (void)h; (void)o; (void)n; (void)ud;
	snprintf(err, len, "no licence for this host");
	return AMQPD_ERR_NOT_ALLOWED;
}
AMQPD_PLUGIN_DEFINE("initfail", "1", "init refuses", init, NULL);
C
cat >"$tmp/dotname.c" <<'C'
#include <amqpd/plugin.h>
static amqpd_status init(amqpd_plugin *self, const struct amqpd_host_api *h,
			 const struct amqpd_option *o, size_t n, void **ud, char *err, size_t len)
{
	(void)self; (void)h; (void)o; (void)n; (void)ud; (void)err; (void)len;
	return AMQPD_OK;
}
AMQPD_PLUGIN_DEFINE("has.dot", "1", "a name options cannot address", init, NULL);
C
"$cc" -shared -fPIC -o "$tmp/noentry/noentry.so" "$tmp/noentry.c" || exit 1
"$cc" -shared -fPIC -I"$inc" -o "$tmp/badabi/badabi.so" "$tmp/badabi.c" || exit 1
"$cc" -shared -fPIC -I"$inc" -o "$tmp/initfail/initfail.so" "$tmp/initfail.c" || exit 1
"$cc" -shared -fPIC -I"$inc" -o "$tmp/dotname/dotname.so" "$tmp/dotname.c" || exit 1
# The built-in plugins plus the ABI 1 test plugin (built by make check).
for so in "$top_builddir"/plugins/lib/*.so "$top_builddir"/tests/abi-v1/.libs/v1_direct.so; do
	ln -s "$so" "$tmp/withv1/" || exit 1
done
builtin="$top_builddir/plugins/lib"

check() { # dir expected-log-text [amqpd arguments...]
	dir=$1
	want=$2
	shift 2
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	timeout 20 "$amqpd" --listen "127.0.0.1:$port" --plugin-dir "$dir" --data-dir "$tmp/data" \
		"$@" >"$tmp/log" 2>&1
	rc=$?
	set -- "$dir" "$want"
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
check "$tmp/initfail" "refused: init failed: no licence for this host"
check "$tmp/dotname" "descriptor without a name (one without '.' and '=')"
# --plugin-opt
check "$builtin" "is not PLUGIN.KEY=VALUE (no '.' after the plugin name)" --plugin-opt nodot=1
check "$builtin" "is not PLUGIN.KEY=VALUE (no '=')" --plugin-opt storage-file.fail_writes
check "$builtin" "is not PLUGIN.KEY=VALUE (empty key)" --plugin-opt storage-file.=1
check "$builtin" "no plugin named 'nosuch' is loaded" --plugin-opt nosuch.key=1
check "$builtin" "option bogus=1: unknown (known: fail_writes" --plugin-opt storage-file.bogus=1
check "$builtin" "option fail_writes=maybe: want 0 or 1" --plugin-opt storage-file.fail_writes=maybe
check "$builtin" "unknown option 'x' (this plugin takes no options)" --plugin-opt exchange-direct.x=1
check "$tmp/withv1" "it speaks ABI 1, which has no options" --plugin-opt test-v1-direct.x=1
exit $status
