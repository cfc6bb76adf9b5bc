#!/bin/sh
# Install what the tests need (Debian 12, as root), then build twice - a plain
# build with -Werror and an ASan+UBSan build - and run every test in both.
# This is the README's test command and what CI (.ci/run) runs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		build-essential autoconf automake libtool pkg-config \
		libevent-dev libssl-dev libjansson-dev libpcre2-dev libcunit1-dev \
		librabbitmq-dev python3 python3-pika clang-format \
		ca-certificates openssl >/dev/null
	# Node.js for the amqplib interop test; many machines already have it
	# (e.g. from NodeSource, whose nodejs package includes npm).
	if ! command -v npm >/dev/null 2>&1; then
		apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
fi

./autogen.sh >/dev/null 2>&1 || ./autogen.sh
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for variant in plain asan; do
	dir="$top/build-$variant"
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ $variant = asan ]; then
		flags="--enable-asan --enable-werror"
	else
		flags="--enable-werror"
	fi
	echo "=== $variant build ($flags)"
	(cd "$dir" && "$top/configure" $flags >configure.out &&
		make -j"$jobs" >make.out 2>&1 || { cat make.out; exit 1; }) || { status=1; continue; }
	if ! (cd "$dir" && make -j"$jobs" check); then
		echo "=== $variant: FAILED; logs:"
		for f in $(find "$dir/tests" -name '*.log' 2>/dev/null); do
			grep -q '^FAIL\|^ERROR' "$f" 2>/dev/null && { echo "--- $f"; tail -n 80 "$f"; }
		done
		status=1
	fi
done
[ $status -eq 0 ] && echo "=== all tests passed (plain and asan)"
exit $status
