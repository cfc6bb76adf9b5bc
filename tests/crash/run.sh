#!/bin/sh
# Crash and disk-full tests against the amqpd of the build tree: run by
# `make check` (with top_builddir and top_srcdir exported), or by hand:
#
#   top_builddir=/path/to/build tests/crash/run.sh
#   CRASH_ROUNDS=50 CRASH_SECONDS=5 top_builddir=... tests/crash/run.sh
#
# crash_test.py kills amqpd with SIGKILL while publishers wait for
# confirms and checks that no confirmed message is lost; disk_full.py
# checks that failed writes give basic.nack (and, as root, fills a real
# tmpfs).  See tests/crash/README.  A missing python3-pika is a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-$(pwd)}
amqpd="$top_builddir/server/amqpd"
rounds=${CRASH_ROUNDS:-5}
seconds=${CRASH_SECONDS:-1.5}
publishers=${CRASH_PUBLISHERS:-3}

log() { echo "crash: $*"; }
die() { echo "crash: ERROR: $*" >&2; exit 1; }

# Niced: publishers, drain and amqpd keep the CPUs busy for half a minute,
# which must not starve timing-sensitive tests running next to this one
# under `make -j check`.
with_timeout() {
	nice=
	command -v nice >/dev/null 2>&1 && nice="nice -n 10"
	if command -v timeout >/dev/null 2>&1; then
		$nice timeout "$@"
	else
		shift
		$nice "$@"
	fi
}

python=
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import pika' >/dev/null 2>&1; then
		python=$p
		break
	fi
done
[ -n "$python" ] || die "no python3 with pika: install Debian's python3-pika (apt-get install python3-pika)"
[ -x "$amqpd" ] || die "$amqpd not found (build first, or set top_builddir)"

status=0
log "crash_test.py: $rounds rounds, $publishers publishers, kill within 0.3..${seconds}s"
with_timeout 300 "$python" "$here/crash_test.py" --amqpd "$amqpd" --rounds "$rounds" \
	--seconds "$seconds" --publishers "$publishers" --window 100 || status=1
# Again with most of the queue paged out to disk (read back for delivery).
log "crash_test.py with --queue-memory-budget=1000000: 3 rounds"
with_timeout 300 "$python" "$here/crash_test.py" --amqpd "$amqpd" --rounds 3 \
	--seconds "$seconds" --publishers "$publishers" --window 100 \
	--amqpd-arg=--queue-memory-budget=1000000 || status=1
log "disk_full.py"
with_timeout 120 "$python" "$here/disk_full.py" --amqpd "$amqpd" || status=1
[ $status -eq 0 ] && log "all passed"
exit $status
