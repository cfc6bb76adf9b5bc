#!/bin/sh
# check-oot-plugin.sh - prove a third party can build and load a plugin.
#
# Installs the plugin SDK (headers + amqpd-plugin.pc) into a staging
# directory, builds plugins/examples/consistent-hash out of tree from a
# temporary copy using nothing but `pkg-config --cflags amqpd-plugin`,
# checks the compile line points into the staged install (never the source
# or build tree), checks that every plugin exports only its entry point,
# then runs tests/unit/test_exchanges with AMQPD_EXTRA_PLUGIN set so the
# test host loads the example and checks its routing.
#
# Run by `make check` with top_srcdir and top_builddir exported.  Any
# failure (install, build, symbols, tests) makes the script fail.
set -eu

: "${top_srcdir:?top_srcdir must be set}"
: "${top_builddir:?top_builddir must be set}"
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Scratch files (staged install, build, amqpd's log and data): removed when
# the checks pass, kept (and named) when one fails.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amqpd-oot.XXXXXX")
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$tmp"; else echo "scratch files kept in $tmp" >&2; fi; exit $rc' EXIT
trap 'exit 1' HUP INT TERM
stage=$tmp/stage
src=$tmp/consistent-hash

# 1. Staged install.  install-exec + install-data is `make install` minus
# re-running `all`, whose plugins-stage step would rewrite plugins/lib/*.so
# while a parallel `make check` may have them mapped.  MAKEFLAGS is dropped
# so the sub-make does not join the parent's jobserver or inherit -k/-n.
echo "== staged install into $stage"
if ! (unset MAKEFLAGS MFLAGS MAKELEVEL &&
	make -C "$top_builddir" install-exec install-data DESTDIR="$stage") \
	>"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	fail "make install DESTDIR=$stage"
fi

pc=$(find "$stage" -name amqpd-plugin.pc -type f | head -n 1)
[ -n "$pc" ] || fail "amqpd-plugin.pc not installed under $stage"
pcdir=$(dirname "$pc")
prefix=$(sed -n 's/^prefix=//p' "$pc")
[ -n "$prefix" ] || fail "no prefix= in $pc"
for h in plugin.h exchange.h; do
	[ -n "$(find "$stage" -path "*/amqpd/$h" -type f)" ] || fail "amqpd/$h not installed"
done

# 2. Out-of-tree build from a copy, through pkg-config only.  Redefining
# prefix relocates includedir=${prefix}/include into the staging tree.
echo "== building the consistent-hash example out of tree in $src"
mkdir -p "$src"
cp "$top_srcdir/plugins/examples/consistent-hash/consistent_hash.c" \
	"$top_srcdir/plugins/examples/consistent-hash/Makefile" \
	"$top_srcdir/plugins/examples/consistent-hash/README" "$src/"
pkgconf=${PKG_CONFIG:-pkg-config}
command -v "$pkgconf" >/dev/null 2>&1 || fail "$pkgconf not found"
cflags=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir \
	"$pkgconf" --define-variable=prefix="$stage$prefix" --cflags amqpd-plugin) ||
	fail "pkg-config --cflags amqpd-plugin"
echo "pkg-config --cflags: $cflags"
case "$cflags" in
*"-I$stage"*) ;;
*) fail "include path does not point into the staged install: $cflags" ;;
esac
if ! (unset MAKEFLAGS MFLAGS MAKELEVEL &&
	PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir &&
	export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR &&
	make -C "$src" CC="${CC:-cc}" CFLAGS="-O2 -g -Werror" \
		PKG_CONFIG="$pkgconf --define-variable=prefix=$stage$prefix") \
	>"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log" >&2
	fail "out-of-tree build of the consistent-hash example"
fi
cat "$tmp/build.log"
compile=$(grep -- '-shared' "$tmp/build.log" || true)
[ -n "$compile" ] || fail "no compile line in the build log"
case "$compile" in
*"-I$stage"*) ;;
*) fail "compile line has no -I into the staged install" ;;
esac
for dir in "$top_srcdir" "$top_builddir"; do
	case "$compile" in
	*"-I$dir"* | *"-I $dir"*) fail "compile line uses the source/build tree ($dir)" ;;
	esac
done
so=$src/consistent_hash.so
[ -f "$so" ] || fail "$so was not built"

# 3. Each plugin exports exactly one symbol: the entry point.
if command -v nm >/dev/null 2>&1; then
	for lib in "$top_builddir"/plugins/lib/*.so "$so"; do
		syms=$(nm -D --defined-only "$lib" | awk '{print $NF}' |
			grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start || true)
		[ "$syms" = amqpd_plugin_entry ] ||
			fail "$lib exports more than amqpd_plugin_entry: $(echo $syms)"
	done
	echo "exports ok: amqpd_plugin_entry only"
else
	echo "NOTE: nm not found; export check skipped"
fi

# 4. Load it into the test host and check its routing.
echo "== tests/unit/test_exchanges with AMQPD_EXTRA_PLUGIN=$so"
AMQPD_EXTRA_PLUGIN=$so "$top_builddir/tests/unit/test_exchanges" ||
	fail "test_exchanges with the out-of-tree plugin"

# 5. Load it into a real amqpd next to the built-in types and route
#    through it with a real client (pika).
py=""
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import pika' 2>/dev/null; then
		py=$p
		break
	fi
done
[ -n "$py" ] || fail "python3 with pika is needed (apt-get install python3-pika)"
mkdir -p "$tmp/plugins"
cp "$top_builddir"/plugins/lib/*.so "$so" "$tmp/plugins/"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$top_builddir/server/amqpd" --listen "127.0.0.1:$port" --plugin-dir "$tmp/plugins" \
	--data-dir "$tmp/data" >"$tmp/amqpd.log" 2>&1 &
pid=$!
"$py" - "$port" <<'PY' || { cat "$tmp/amqpd.log"; kill $pid; fail "routing through x-consistent-hash in amqpd"; }
import socket, sys, time
import pika
port = int(sys.argv[1])
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        break
    except OSError:
        time.sleep(0.05)
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
ch = c.channel()
ch.exchange_declare("oot.hash", "x-consistent-hash")
qs = []
for w in ("1", "1", "2"):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "oot.hash", routing_key=w)
    qs.append(q)
ch.confirm_delivery()
n = 4000
for i in range(n):
    ch.basic_publish("oot.hash", "key-%d" % i, b"x")
counts = [ch.queue_declare(q, passive=True).method.message_count for q in qs]
print("x-consistent-hash in amqpd: weights 1:1:2 ->", counts)
assert sum(counts) == n, counts
assert all(600 < k < 1400 for k in counts[:2]), counts
assert 1600 < counts[2] < 2400, counts
# the same key always lands on the same queue
for q in qs:
    ch.queue_purge(q)
for _ in range(20):
    ch.basic_publish("oot.hash", "sticky", b"y")
counts = [ch.queue_declare(q, passive=True).method.message_count for q in qs]
assert sorted(counts) == [0, 0, 20], counts
c.close()
PY
kill $pid
wait $pid || fail "amqpd did not exit cleanly on SIGTERM"
echo "out-of-tree plugin ok"
