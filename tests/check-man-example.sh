#!/bin/sh
# check-man-example.sh - the example plugin in man/amqpd-plugin.7 is real:
# extract it (between the example-begin / example-end comments, roff
# escapes undone), compile it against the public headers with warnings as
# errors, check it exports only the entry point, and run it in a real
# amqpd with its option: the periodic report it logs must appear.  Also: an
# unknown option for it stops the start with its reason.
#
# Waits on the log line, not on time (20 s only guard against a hang).
set -u
: "${top_srcdir:?top_srcdir must be set}"
: "${top_builddir:?top_builddir must be set}"
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amqpd-manex.XXXXXX") || exit 1
trap 'rc=$?; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; if [ $rc -eq 0 ]; then rm -rf "$tmp"; else echo "scratch files kept in $tmp"; fi; exit $rc' EXIT
trap 'exit 1' HUP INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}

sed -n '/^\.\\" example-begin$/,/^\.\\" example-end$/p' "$top_srcdir/man/amqpd-plugin.7" |
	sed -e '1,2d' -e '$d' | sed -e '$d' |
	sed -e 's/^\\&//' -e 's/\\-/-/g' -e 's/\\e/\\/g' >"$tmp/example.c"
[ -s "$tmp/example.c" ] || fail "no example found in man/amqpd-plugin.7"
grep -q 'AMQPD_PLUGIN_DEFINE' "$tmp/example.c" || fail "the example has no AMQPD_PLUGIN_DEFINE"
mkdir -p "$tmp/plugins"
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic -fPIC -shared -fvisibility=hidden \
	-I"$top_srcdir/plugins/include" -o "$tmp/plugins/example.so" "$tmp/example.c" ||
	fail "the man page example does not compile"
echo "ok: the example compiles with -Wall -Wextra -Werror -pedantic"
if command -v nm >/dev/null 2>&1; then
	syms=$(nm -D --defined-only "$tmp/plugins/example.so" | awk '{print $NF}' |
		grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start)
	[ "$syms" = amqpd_plugin_entry ] || fail "the example exports: $syms"
fi
for so in "$top_builddir"/plugins/lib/*.so; do
	ln -s "$so" "$tmp/plugins/" || exit 1
done

port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1. It loads, and its timer reports through vlog.
"$top_builddir/server/amqpd" --listen "127.0.0.1:$(port)" --plugin-dir "$tmp/plugins" \
	--data-dir "$tmp/data" --log-level debug --plugin-opt example-tally.report_ms=10 \
	>"$tmp/log" 2>&1 &
pid=$!
i=0
until grep -q 'x-tally: 0 messages routed' "$tmp/log"; do
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; fail "amqpd exited"; }
	i=$((i + 1))
	[ $i -lt 400 ] || { cat "$tmp/log"; fail "no report from the example's timer in 20 s"; }
	sleep 0.05
done
grep -q "exchange type 'x-tally' registered by plugin example-tally" "$tmp/log" ||
	fail "x-tally not registered"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] || fail "amqpd exit status $rc after SIGTERM"
if grep -q 'still allocated at unload' "$tmp/log" ||
	! grep -q 'plugin example-tally: all memory given back' "$tmp/log"; then
	cat "$tmp/log"
	fail "the example did not give all its memory back"
fi
echo "ok: it loads in amqpd and its timer logs the count"

# 2. Its option check.
"$top_builddir/server/amqpd" --listen "127.0.0.1:$(port)" --plugin-dir "$tmp/plugins" \
	--data-dir "$tmp/data" --plugin-opt example-tally.colour=red >"$tmp/log2" 2>&1
rc=$?
[ $rc -ne 0 ] || fail "amqpd started with an unknown option for the example"
grep -q "unknown option 'colour' (known: report_ms)" "$tmp/log2" || { cat "$tmp/log2"; fail "no reason logged"; }
echo "ok: an unknown option is refused with its reason"
