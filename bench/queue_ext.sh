#!/usr/bin/env bash
# bench/queue_ext.sh - run the queue extension benchmarks (bench/queue_ext:
# message TTL expiry, dead-lettering, priority queues, delayed messages)
# against amqpd and against Debian's rabbitmq-server on this machine, and
# print a markdown table with both results and the ratio amqpd/RabbitMQ.
# The delayed-message scenarios run against amqpd only: Debian's RabbitMQ
# 3.10 does not ship the rabbitmq_delayed_message_exchange plugin.
#
# Every amqpd run gets a fresh amqpd (free port, new temporary data dir)
# that is stopped before the next run; all amqpd runs come first, then all
# RabbitMQ runs, so the two brokers never run at once when this script
# starts RabbitMQ itself (it then starts it after the amqpd runs and stops
# it at the end).  A RabbitMQ that was already running is used as it is and
# sits idle during the amqpd runs.
#
# usage: bench/queue_ext.sh [BUILD_DIR]
#   BUILD_DIR (or env BUILD; default ./build-plain if it exists, else .) must
#   hold bench/queue_ext and server/amqpd.  Nothing is built here.
# Environment:
#   SCENARIOS="ttl dlx dlx4k priority delayed delayed10k"  subset to run
#   TTL_COUNT=1000000  DLX_COUNT=200000  PRIO_COUNT=500000  messages
#   DELAYED_COUNT=1000000  delayed: x-delay 1000-11000 ms at random
#   DELAYED10K_COUNT=100000  delayed10k: due times spread over DELAYED10K_SPREAD_MS
#   DELAYED10K_SPREAD_MS=10000  (10,000 due per second by default)
#   DELAYED10K_RATE=50000  delayed10k: paced publishing, msg/s (0: flat out)
#   DLX_PREFETCH=1000   the rejecting consumer's prefetch
#   PRIO_PREFETCH=100   the draining consumer's prefetch
#   DELAYED_PREFETCH=1000  the delayed consumers' prefetch (manual ack)
#   DELAYED_ARGS=...    extra queue_ext arguments for delayed and delayed10k
#                       (--persistent, --no-ack)
#   CAP=120             give up waiting (for the TTL queue to empty, ...) after
#   SETTLE=2            idle seconds between runs
#   RABBIT_PORT=5672    RabbitMQ to use (started here if nothing answers)
#   AMQPD_ARGS=...      extra amqpd arguments   QE_ARGS=...  extra queue_ext arguments
#   OUT=DIR             logs (default: a new /tmp/amqpd-queue-ext.* dir)
# Exit status: 0 all ran; 1 a run or a broker failed.
set -u

die() {
	echo "queue_ext.sh: $*" >&2
	exit 1
}

BUILD=${1:-${BUILD:-}}
if [ -z "$BUILD" ]; then
	if [ -x ./build-plain/bench/queue_ext ]; then BUILD=./build-plain; else BUILD=.; fi
fi
QE=$BUILD/bench/queue_ext
AMQPD=$BUILD/server/amqpd
SCENARIOS=${SCENARIOS:-ttl dlx dlx4k priority delayed delayed10k}
TTL_COUNT=${TTL_COUNT:-1000000}
DLX_COUNT=${DLX_COUNT:-200000}
PRIO_COUNT=${PRIO_COUNT:-500000}
DELAYED_COUNT=${DELAYED_COUNT:-1000000}
DELAYED10K_COUNT=${DELAYED10K_COUNT:-100000}
DELAYED10K_SPREAD_MS=${DELAYED10K_SPREAD_MS:-10000}
DELAYED10K_RATE=${DELAYED10K_RATE:-50000}
DLX_PREFETCH=${DLX_PREFETCH:-1000}
PRIO_PREFETCH=${PRIO_PREFETCH:-100}
DELAYED_PREFETCH=${DELAYED_PREFETCH:-1000}
DELAYED_ARGS=${DELAYED_ARGS:-}
CAP=${CAP:-120}
SETTLE=${SETTLE:-2}
RABBIT_PORT=${RABBIT_PORT:-5672}
AMQPD_ARGS=${AMQPD_ARGS:-}
QE_ARGS=${QE_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/amqpd-queue-ext.XXXXXX)}
mkdir -p "$OUT" || die "cannot create $OUT"

[ -x "$QE" ] || die "no queue_ext at $QE (make bench/queue_ext in the build dir; it needs librabbitmq-dev)"
[ -x "$AMQPD" ] || die "no amqpd at $AMQPD (make server/amqpd in the build dir)"
for s in $SCENARIOS; do
	case $s in
	ttl | dlx | dlx4k | priority | delayed | delayed10k) ;;
	*) die "unknown scenario '$s' (ttl dlx dlx4k priority delayed delayed10k)" ;;
	esac
done
NO_RABBIT="amqpd only: Debian's RabbitMQ 3.10 does not ship rabbitmq_delayed_message_exchange"
amqpd_only() { # true for the scenarios RabbitMQ cannot run here
	case $1 in delayed | delayed10k) return 0 ;; *) return 1 ;; esac
}

port_open() { # true when something accepts TCP connections on 127.0.0.1:$1
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 100); do
		if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && ! port_open "$p"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

AMQPD_PID=
AMQPD_DATA=
RABBIT_PID=
RABBIT_STARTED=0
stop_amqpd() {
	if [ -n "$AMQPD_PID" ]; then
		kill "$AMQPD_PID" 2>/dev/null
		wait "$AMQPD_PID" 2>/dev/null
		AMQPD_PID=
	fi
	if [ -n "$AMQPD_DATA" ]; then
		rm -rf "$AMQPD_DATA"
		AMQPD_DATA=
	fi
}
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	stop_amqpd
	if [ "$RABBIT_STARTED" = 1 ]; then
		echo "queue_ext.sh: stopping the RabbitMQ started here" >&2
		rabbitmqctl stop >/dev/null 2>&1 || kill "$RABBIT_PID" 2>/dev/null
		wait "$RABBIT_PID" 2>/dev/null
		RABBIT_STARTED=0
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_amqpd LOG: a fresh amqpd on a free port ($AMQPD_PORT, $AMQPD_PID).
start_amqpd() {
	AMQPD_PORT=$(free_port) || die "no free TCP port for amqpd"
	AMQPD_DATA=$(mktemp -d /tmp/amqpd-queue-ext-data.XXXXXX) || die "mktemp failed"
	local plug=()
	[ -d "$BUILD/plugins/lib" ] && plug=(--plugin-dir "$BUILD/plugins/lib")
	# shellcheck disable=SC2086
	"$AMQPD" --listen "127.0.0.1:$AMQPD_PORT" --data-dir "$AMQPD_DATA" "${plug[@]}" \
		$AMQPD_ARGS >"$1" 2>&1 &
	AMQPD_PID=$!
	for _ in $(seq 100); do
		port_open "$AMQPD_PORT" && return 0
		kill -0 "$AMQPD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "queue_ext.sh: ERROR: amqpd did not start listening; last lines of $1:" >&2
	tail -5 "$1" >&2
	stop_amqpd
	return 1
}

# ensure_rabbit: a RabbitMQ on $RABBIT_PORT ($RABBIT_BEAM: its beam.smp pid).
ensure_rabbit() {
	if port_open "$RABBIT_PORT"; then
		echo "queue_ext.sh: using the RabbitMQ already running on 127.0.0.1:$RABBIT_PORT" >&2
	else
		[ "$RABBIT_PORT" = 5672 ] || die "nothing answers on RABBIT_PORT=$RABBIT_PORT"
		command -v rabbitmq-server >/dev/null || die "RabbitMQ is not running and rabbitmq-server is not installed"
		[ "$(id -u)" = 0 ] || die "RabbitMQ is not running; start it (service rabbitmq-server start) or run this as root"
		echo "queue_ext.sh: starting rabbitmq-server (log: $OUT/rabbitmq.log)" >&2
		rabbitmq-server >"$OUT/rabbitmq.log" 2>&1 &
		RABBIT_PID=$!
		RABBIT_STARTED=1
		# await_startup fails at once while the node is not registered yet: retry.
		for _ in $(seq 60); do
			timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 && break
			kill -0 "$RABBIT_PID" 2>/dev/null || die "rabbitmq-server exited; see $OUT/rabbitmq.log"
			sleep 2
		done
		port_open "$RABBIT_PORT" || die "RabbitMQ did not start; see $OUT/rabbitmq.log"
	fi
	RABBIT_VERSION=$(rabbitmqctl version 2>/dev/null | tail -1)
	RABBIT_BEAM=$(rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc 0-9)
	if [ -z "$RABBIT_BEAM" ] || [ "$(cat "/proc/$RABBIT_BEAM/comm" 2>/dev/null)" != beam.smp ]; then
		echo "queue_ext.sh: WARNING: cannot find RabbitMQ's beam.smp process: no RSS or CPU figures for it" >&2
		RABBIT_BEAM=
	fi
}

scenario_args() {
	case $1 in
	ttl) echo "--scenario ttl --count $TTL_COUNT --size 16" ;;
	dlx) echo "--scenario dlx --count $DLX_COUNT --size 16 --prefetch $DLX_PREFETCH" ;;
	dlx4k) echo "--scenario dlx --count $DLX_COUNT --size 4096 --prefetch $DLX_PREFETCH" ;;
	priority) echo "--scenario priority --count $PRIO_COUNT --size 16 --prefetch $PRIO_PREFETCH" ;;
	delayed) echo "--scenario delayed --count $DELAYED_COUNT --size 16 --delay-min 1000" \
		"--delay-max 11000 --prefetch $DELAYED_PREFETCH $DELAYED_ARGS" ;;
	delayed10k)
		# The first due time 1 s after publishing ends.
		local lead=2000
		[ "$DELAYED10K_RATE" -gt 0 ] && lead=$((DELAYED10K_COUNT * 1000 / DELAYED10K_RATE + 1000))
		echo "--scenario delayed --count $DELAYED10K_COUNT --size 16 --spread-ms $DELAYED10K_SPREAD_MS" \
			"--lead-ms $lead --publish-rate $DELAYED10K_RATE --prefetch $DELAYED_PREFETCH $DELAYED_ARGS"
		;;
	esac
}

# run SCENARIO BROKER PORT PID: one queue_ext run; prints its RESULT line
# (nothing on failure).
run() {
	local log="$OUT/$1-$2.log" pid_arg=()
	[ -n "$4" ] && pid_arg=(--pid "$4")
	# shellcheck disable=SC2046,SC2086
	timeout $((CAP + 600)) "$QE" --uri "127.0.0.1:$3" --cap "$CAP" "${pid_arg[@]}" \
		--queue-prefix "qext-$$-$1" $(scenario_args "$1") $QE_ARGS >"$log" 2>&1
	local rc=$?
	if [ $rc -ne 0 ]; then
		echo "queue_ext.sh: $1 against $2 failed (exit $rc); last lines of $log:" >&2
		tail -3 "$log" >&2
	fi
	grep '^RESULT ' "$log" | tail -1
}

read -r LOAD _ </proc/loadavg
if awk -v l="$LOAD" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "queue_ext.sh: WARNING: load average $LOAD on $(nproc) cores: other work will skew the numbers" >&2
fi

status=0
declare -A RA RR
for s in $SCENARIOS; do
	echo "queue_ext.sh: $s against amqpd ..." >&2
	RA[$s]=""
	if start_amqpd "$OUT/amqpd-$s.log"; then
		RA[$s]=$(run "$s" amqpd "$AMQPD_PORT" "$AMQPD_PID")
		kill -0 "$AMQPD_PID" 2>/dev/null || echo "queue_ext.sh: ERROR: amqpd died (see $OUT/amqpd-$s.log)" >&2
		stop_amqpd
	fi
	[ -n "${RA[$s]}" ] || status=1
	sleep "$SETTLE"
done
NEED_RABBIT=0
for s in $SCENARIOS; do amqpd_only "$s" || NEED_RABBIT=1; done
[ "$NEED_RABBIT" = 1 ] && ensure_rabbit
for s in $SCENARIOS; do
	if amqpd_only "$s"; then
		echo "queue_ext.sh: $s against RabbitMQ: skipped ($NO_RABBIT)" >&2
		RR[$s]=""
		continue
	fi
	echo "queue_ext.sh: $s against RabbitMQ ..." >&2
	RR[$s]=$(run "$s" rabbitmq "$RABBIT_PORT" "$RABBIT_BEAM")
	[ -n "${RR[$s]}" ] || status=1
	sleep "$SETTLE"
done

# --- report ----------------------------------------------------------------
field() { # field RESULT_LINE KEY
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

num() { # num VALUE: the value, or "error" when there is none
	if [ -n "$1" ]; then echo "$1"; else echo error; fi
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-";
		else printf "%.2f\n", a / b }'
}

mb() { # kB -> MB (10^6 bytes), or as is when not a number
	awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.0f\n", k * 1024 / 1e6; else print (k == "" ? "error" : "-") }'
}

us_per_msg() { # us_per_msg CPU_S COUNT
	awk -v c="$1" -v n="$2" 'BEGIN { if (c ~ /^[0-9.]+$/ && n + 0 > 0) printf "%.1f\n", c * 1e6 / n; else print "-" }'
}

ms4() { # ms4 RESULT_LINE PREFIX: "p50 / p99 / p99.9 / max" of PREFIX_p50_ms ...
	local v
	v="$(field "$1" "$2_p50_ms") / $(field "$1" "$2_p99_ms") / $(field "$1" "$2_p999_ms") / $(field "$1" "$2_max_ms")"
	if [ -z "$(field "$1" "$2_p50_ms")" ]; then echo error; else echo "$v"; fi
}

ROWS=()
row() { # row SCENARIO_TITLE METRIC AMQPD RABBITMQ [no-ratio]
	local r
	r=$(ratio "$3" "$4")
	[ "${5:-}" = no-ratio ] && r=-
	ROWS+=("| $1 | $2 | $3 | $4 | $r |")
}

empty_time() { # empty_time RESULT_LINE
	local e
	e=$(field "$1" emptied)
	if [ -z "$e" ]; then
		echo error
	elif [ "$e" = 1 ]; then
		field "$1" empty_s | awk '{ printf "%.2f\n", $1 }'
	else
		echo "did not empty in $(field "$1" empty_s | awk '{ printf "%.0f", $1 }') s ($(field "$1" left) left)"
	fi
}

for s in $SCENARIOS; do
	a=${RA[$s]}
	r=${RR[$s]}
	case $s in
	ttl)
		t="(a) TTL expiry, $TTL_COUNT x 16 B, expiration 1-10 s at random"
		row "$t" "published msg/s (publisher confirms)" "$(num "$(field "$a" publish_rate)")" "$(num "$(field "$r" publish_rate)")"
		row "" "publishing took s" "$(num "$(field "$a" publish_s)")" "$(num "$(field "$r" publish_s)")"
		row "" "in the queue at the end of publishing (last confirm)" "$(num "$(field "$a" count_at_publish_end)")" "$(num "$(field "$r" count_at_publish_end)")"
		row "" "... of them past their TTL" \
			"$(awk -v c="$(field "$a" count_at_publish_end)" -v l="$(field "$a" alive_at_publish_end)" 'BEGIN { if (c == "") print "error"; else print c - l }')" \
			"$(awk -v c="$(field "$r" count_at_publish_end)" -v l="$(field "$r" alive_at_publish_end)" 'BEGIN { if (c == "") print "error"; else print c - l }')"
		row "" "seconds until empty (the last deadline: $(field "$a" ideal_empty_s | awk '{ printf "%.2f", $1 }') / $(field "$r" ideal_empty_s | awk '{ printf "%.2f", $1 }') s)" \
			"$(empty_time "$a")" "$(empty_time "$r")"
		row "" "expired messages still held, mean while emptying" "$(num "$(field "$a" excess_mean)")" "$(num "$(field "$r" excess_mean)")"
		row "" "expired messages still held, max" "$(num "$(field "$a" excess_max)")" "$(num "$(field "$r" excess_max)")"
		row "" "broker RSS MB before publishing" "$(mb "$(field "$a" rss_start_kb)")" "$(mb "$(field "$r" rss_start_kb)")"
		row "" "broker RSS MB at the end of publishing" "$(mb "$(field "$a" rss_published_kb)")" "$(mb "$(field "$r" rss_published_kb)")"
		row "" "broker RSS MB when empty" "$(mb "$(field "$a" rss_empty_kb)")" "$(mb "$(field "$r" rss_empty_kb)")"
		row "" "broker RSS MB 2 s later" "$(mb "$(field "$a" rss_settled_kb)")" "$(mb "$(field "$r" rss_settled_kb)")"
		row "" "broker CPU us per message, publishing" \
			"$(us_per_msg "$(field "$a" broker_cpu_publish_s)" "$(field "$a" count)")" \
			"$(us_per_msg "$(field "$r" broker_cpu_publish_s)" "$(field "$r" count)")"
		row "" "broker CPU s from the end of publishing until empty (expiry, polls)" \
			"$(num "$(field "$a" broker_cpu_expire_s)")" "$(num "$(field "$r" broker_cpu_expire_s)")"
		;;
	dlx | dlx4k)
		if [ "$s" = dlx ]; then size="16 B"; else size="4 KiB"; fi
		t="(b) dead-lettering, reject requeue=false, $DLX_COUNT x $size, prefetch $DLX_PREFETCH"
		row "$t" "dead-lettered msg/s (first publish to last delivery from B)" "$(num "$(field "$a" dlx_rate)")" "$(num "$(field "$r" dlx_rate)")"
		row "" "dead-lettered MB/s (bodies)" "$(num "$(field "$a" dlx_mb_s)")" "$(num "$(field "$r" dlx_mb_s)")"
		row "" "broker CPU us per message" "$(num "$(field "$a" broker_us_per_msg)")" "$(num "$(field "$r" broker_us_per_msg)")"
		;;
	priority)
		t="(c) priority queue, x-max-priority 10, $PRIO_COUNT x 16 B, priorities 0-9 round-robin"
		row "$t" "published msg/s (until all are in the queue)" "$(num "$(field "$a" publish_rate)")" "$(num "$(field "$r" publish_rate)")"
		row "" "drained msg/s (prefetch $PRIO_PREFETCH, manual ack)" "$(num "$(field "$a" drain_rate)")" "$(num "$(field "$r" drain_rate)")"
		row "" "order violations (priority went up)" "$(num "$(field "$a" violations)")" "$(num "$(field "$r" violations)")" no-ratio
		row "" "FIFO inversions within a priority" "$(num "$(field "$a" fifo_violations)")" "$(num "$(field "$r" fifo_violations)")" no-ratio
		row "" "broker RSS MB before publishing" "$(mb "$(field "$a" rss_start_kb)")" "$(mb "$(field "$r" rss_start_kb)")"
		row "" "broker RSS MB with the queue full" "$(mb "$(field "$a" rss_full_kb)")" "$(mb "$(field "$r" rss_full_kb)")"
		row "" "broker CPU us per message, publishing" \
			"$(us_per_msg "$(field "$a" broker_cpu_publish_s)" "$(field "$a" count)")" \
			"$(us_per_msg "$(field "$r" broker_cpu_publish_s)" "$(field "$r" count)")"
		row "" "broker CPU us per message, draining" \
			"$(us_per_msg "$(field "$a" broker_cpu_drain_s)" "$(field "$a" count)")" \
			"$(us_per_msg "$(field "$r" broker_cpu_drain_s)" "$(field "$r" count)")"
		;;
	delayed | delayed10k)
		na="n/a ($NO_RABBIT)"
		if [ "$s" = delayed ]; then
			t="(d) delayed messages (x-delayed-message, x-delayed-type direct, durable), $DELAYED_COUNT x 16 B, x-delay 1-11 s at random"
			[ -n "$DELAYED_ARGS" ] && t="$t, $DELAYED_ARGS"
			row "$t" "published msg/s (publisher confirms)" "$(num "$(field "$a" publish_rate)")" "$na" no-ratio
			row "" "publishing took s" "$(num "$(field "$a" publish_s)")" - no-ratio
			row "" "pending (amq.delayed.X message_count) at the end of publishing" \
				"$(num "$(field "$a" pending_at_publish_end)")" - no-ratio
			row "" "... delivered by then" "$(num "$(field "$a" delivered_at_publish_end)")" - no-ratio
			row "" "broker RSS MB before publishing" "$(mb "$(field "$a" rss_start_kb)")" - no-ratio
			row "" "broker RSS MB at the end of publishing" "$(mb "$(field "$a" rss_published_kb)")" - no-ratio
			row "" "broker RSS MB when all are delivered" "$(mb "$(field "$a" rss_delivered_kb)")" - no-ratio
			row "" "broker CPU us per message, publishing" \
				"$(us_per_msg "$(field "$a" broker_cpu_publish_s)" "$(field "$a" count)")" - no-ratio
			row "" "broker CPU us per message, holding and delivering" \
				"$(us_per_msg "$(field "$a" broker_cpu_deliver_s)" "$(field "$a" count)")" - no-ratio
		else
			t="(e) delayed messages, $DELAYED10K_COUNT x 16 B, due times spread evenly over $DELAYED10K_SPREAD_MS ms ($(field "$a" due_per_s) due per second) in random order"
			[ -n "$DELAYED_ARGS" ] && t="$t, $DELAYED_ARGS"
			[ "$DELAYED10K_RATE" -gt 0 ] && t="$t, publisher paced at $DELAYED10K_RATE msg/s"
			row "$t" "published msg/s (publisher confirms)" "$(num "$(field "$a" publish_rate)")" "$na" no-ratio
			row "" "published after their due time" "$(num "$(field "$a" published_late)")" - no-ratio
		fi
		row "" "confirm lag ms p50 / p99 / max" \
			"$(field "$a" confirm_lag_p50_ms) / $(field "$a" confirm_lag_p99_ms) / $(field "$a" confirm_lag_max_ms)" - no-ratio
		mode="manual ack, prefetch $DELAYED_PREFETCH"
		[ "$(field "$a" no_ack)" = 1 ] && mode=no-ack
		row "" "delivered ($mode, own connection)" "$(num "$(field "$a" delivered)")" - no-ratio
		row "" "lateness ms p50 / p99 / p99.9 / max (arrival - publish time - x-delay)" "$(ms4 "$a" late)" - no-ratio
		row "" "lateness ms p50 / p99 / p99.9 / max from the confirm + x-delay" "$(ms4 "$a" late_confirm)" - no-ratio
		row "" "delivered early (lateness < 0)" "$(num "$(field "$a" early)")" - no-ratio
		;;
	esac
done

SRC=$(sed -n 's/^abs_top_srcdir = //p' "$BUILD/Makefile" 2>/dev/null)
REV=$(git -C "${SRC:-.}" rev-parse --short HEAD 2>/dev/null)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEM=$(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1e6 }' /proc/meminfo)
echo
echo "## Queue extensions: amqpd vs RabbitMQ ($(date -u +%Y-%m-%d), $(nproc) cores${CPU:+ $CPU}, $MEM)"
echo
if [ "$NEED_RABBIT" = 1 ]; then
	RABBIT_DESC="${RABBIT_VERSION:-unknown} on port $RABBIT_PORT"
else
	RABBIT_DESC="not used"
fi
echo "amqpd: ${AMQPD}${REV:+ (commit $REV)}; RabbitMQ: $RABBIT_DESC; logs: $OUT"
echo
echo "| scenario | metric | amqpd | RabbitMQ | amqpd/RabbitMQ |"
echo "| --- | --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
echo
echo "Ratio > 1: amqpd is higher (better for msg/s, worse for times, memory and CPU)."
for s in $SCENARIOS; do
	if amqpd_only "$s"; then
		echo "Delayed messages: $NO_RABBIT, so there is no RabbitMQ column for them."
		break
	fi
done
exit $status
