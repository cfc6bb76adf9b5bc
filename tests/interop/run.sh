#!/bin/sh
# Interop tests: drive a real amqpd with two real client libraries,
# pika (Debian's python3-pika) and amqplib (npm).  Run by `make check`
# (with top_builddir and top_srcdir exported), or by hand:
#
#   top_builddir=/path/to/build tests/interop/run.sh
#   AMQPD_INTEROP_EXTERNAL=127.0.0.1:5672 tests/interop/run.sh   # vs RabbitMQ
#
# With AMQPD_INTEROP_EXTERNAL=host:port no amqpd is started: the tests run
# against that broker (guest/guest, vhost /) instead.  A missing dependency
# (pika, node, npm, or an npm install that fails) is a failure, not a skip.
#
# Scratch files (amqpd's data directory and log, npm's log, and amqplib when
# it cannot go into the source tree) live in a temporary directory under
# $TMPDIR (or /tmp), removed when the tests pass and kept, with its path
# printed, when they fail (INTEROP_KEEP=1 keeps it).  Nothing is written into
# the source or build tree except tests/interop/node_modules in a writable
# source tree.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-$(pwd)}
amqpd="$top_builddir/server/amqpd"
run_timeout=120 # per client suite, seconds

log() { echo "interop: $*"; }
die() { echo "interop: ERROR: $*" >&2; exit 1; }

# --- scratch directory and cleanup ----------------------------------------
pid=
work=
cleanup() {
	rc=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	if [ -n "$work" ]; then
		if [ "$rc" -eq 0 ] && [ -z "${INTEROP_KEEP:-}" ]; then
			rm -rf "$work"
		else
			echo "interop: scratch files (amqpd log and data) kept in $work" >&2
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
work=$(mktemp -d "${TMPDIR:-/tmp}/amqpd-interop.XXXXXX") || die "mktemp -d failed"

with_timeout() {
	if command -v timeout >/dev/null 2>&1; then
		timeout "$@"
	else
		shift
		"$@"
	fi
}

# --- dependencies ----------------------------------------------------------
python=
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import pika' >/dev/null 2>&1; then
		python=$p
		break
	fi
done
[ -n "$python" ] || die "no python3 with pika: install Debian's python3-pika (apt-get install python3-pika)"
command -v node >/dev/null 2>&1 || die "node not found: install nodejs (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (apt-get install npm)"

# amqplib goes into tests/interop/node_modules (never committed).  If the
# source tree is read-only (as in `make distcheck`, where it is chmod a-w:
# the mode is checked too, since root may write there anyway), it goes into
# the scratch directory instead, found through NODE_PATH, and is removed
# with it.
src_writable() {
	[ -w "$1" ] && [ -n "$(find "$1" -maxdepth 0 -perm -u=w 2>/dev/null)" ]
}
moddir=$here
if [ ! -d "$moddir/node_modules/amqplib" ] && ! src_writable "$moddir"; then
	moddir="$work/npm"
	mkdir -p "$moddir" || die "cannot create $moddir"
	cp "$here/package.json" "$moddir/" || die "cannot copy package.json"
	[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$moddir/"
fi
if [ ! -d "$moddir/node_modules/amqplib" ]; then
	log "installing amqplib with npm in $moddir"
	if [ -f "$moddir/package-lock.json" ]; then
		npm_cmd=ci # exactly the locked versions; never rewrites the lock file
	else
		npm_cmd=install
	fi
	npmlog="$work/npm.log"
	if ! (cd "$moddir" && with_timeout 300 npm "$npm_cmd" --no-audit --no-fund \
		--prefer-offline --fetch-retries=2 --fetch-timeout=60000 >"$npmlog" 2>&1); then
		cat "$npmlog" >&2
		die "npm $npm_cmd failed in $moddir (no network or no registry?); the amqplib tests cannot run"
	fi
fi
NODE_PATH="$moddir/node_modules${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH

# --- broker ------------------------------------------------------------------
amqpd_log=

if [ -n "${AMQPD_INTEROP_EXTERNAL:-}" ]; then
	case $AMQPD_INTEROP_EXTERNAL in
	*:[0-9]*) target=$AMQPD_INTEROP_EXTERNAL ;;
	*) die "AMQPD_INTEROP_EXTERNAL must be host:port, not '$AMQPD_INTEROP_EXTERNAL'" ;;
	esac
	log "testing the external broker at $target"
else
	[ -x "$amqpd" ] || die "$amqpd not found (set top_builddir to the build tree)"
	port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
		die "cannot pick a free port"
	target=127.0.0.1:$port
	amqpd_log="$work/amqpd.log"
	"$amqpd" --listen "$target" --management-listen none --data-dir "$work/data" --log-level debug >"$amqpd_log" 2>&1 &
	pid=$!
	log "started amqpd (pid $pid) on $target, log $amqpd_log"
	if ! "$python" - "$port" "$pid" <<-'EOF'; then
		import os, socket, sys, time
		port, pid = int(sys.argv[1]), int(sys.argv[2])
		end = time.monotonic() + 15
		while time.monotonic() < end:
		    try:
		        os.kill(pid, 0)
		    except OSError:
		        sys.exit("amqpd exited during startup")
		    try:
		        socket.create_connection(("127.0.0.1", port), timeout=1).close()
		        sys.exit(0)
		    except OSError:
		        time.sleep(0.05)
		sys.exit("amqpd did not start listening within 15 s")
	EOF
		tail -n 50 "$amqpd_log" >&2
		die "amqpd did not come up"
	fi
fi

# --- the client suites ----------------------------------------------------------
status=0
results=
AMQPD_INTEROP_BROKER=$target
export AMQPD_INTEROP_BROKER

log "=== pika $("$python" -c 'import pika; print(pika.__version__)') ($python)"
if with_timeout "$run_timeout" "$python" "$here/test_pika.py" "$target"; then
	results="$results pika:ok"
else
	results="$results pika:FAILED"
	status=1
fi

log "=== pika queue extensions (TTL, dead-lettering, priorities, limits)"
if with_timeout "$run_timeout" "$python" "$here/test_pika_queue_ext.py" "$target"; then
	results="$results pika-queue-ext:ok"
else
	results="$results pika-queue-ext:FAILED"
	status=1
fi

# pika against users and permissions: a broker of its own, started by the
# test with a definitions file (not possible against an external broker).
if [ -z "${AMQPD_INTEROP_EXTERNAL:-}" ]; then
	log "=== pika auth (its own amqpd with --definitions, log in $work/amqpd-auth.log)"
	if with_timeout "$run_timeout" "$python" "$here/test_pika_auth.py" "$amqpd" "$work"; then
		results="$results pika-auth:ok"
	else
		results="$results pika-auth:FAILED"
		status=1
	fi
else
	log "=== pika auth: skipped (needs its own amqpd)"
fi

log "=== amqplib $(cd "$moddir" && node -p 'require("amqplib/package.json").version' 2>/dev/null) (node $(node --version))"
if with_timeout "$run_timeout" node "$here/test_amqplib.js" "$target"; then
	results="$results amqplib:ok"
else
	results="$results amqplib:FAILED"
	status=1
fi

# --- shutdown: SIGTERM must give a clean exit 0 ----------------------------
if [ -n "$pid" ]; then
	if ! kill -0 "$pid" 2>/dev/null; then
		log "amqpd died during the tests"
		results="$results amqpd:DIED"
		status=1
	fi
	kill -TERM "$pid" 2>/dev/null
	n=0
	while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "amqpd did not exit within 10 s of SIGTERM"
		kill -KILL "$pid" 2>/dev/null
		results="$results shutdown:HUNG"
		status=1
	fi
	wait "$pid"
	rc=$?
	pid=
	if [ $rc -ne 0 ]; then
		log "amqpd exited with status $rc after SIGTERM (expected 0)"
		results="$results shutdown:rc=$rc"
		status=1
	else
		results="$results shutdown:ok"
	fi
	if [ $status -ne 0 ]; then
		log "--- last lines of $amqpd_log"
		tail -n 60 "$amqpd_log"
	fi
fi

if [ $status -eq 0 ]; then
	log "PASS:$results"
else
	log "FAIL:$results"
fi
exit $status
