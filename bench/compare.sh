#!/usr/bin/env bash
# bench/compare.sh - run the same load scenarios against amqpd and against
# Debian's rabbitmq-server on this machine, one broker after the other for
# each scenario (never both at once: they would compete for the cores), and
# print a markdown table with both results (msg/s and body MB/s) and the
# ratio amqpd/RabbitMQ.
#
# usage: bench/compare.sh [BUILD_DIR]
#   BUILD_DIR (or env BUILD; default ./build-plain if it exists, else .) must
#   hold bench/loadgen and server/amqpd.  Nothing is built here.
# Environment:
#   DURATION=10    measured seconds per run        WARMUP=1   warm-up seconds
#   E_DURATION=15  at least this long for the latency scenario (e)
#   SCENARIOS="a b c d e f g h i j k l m n o" subset to run (k-o over TLS; by
#                           default only when a certificate is found)
#   SETTLE=2                idle seconds between runs
#   RABBIT_PORT=5672        RabbitMQ to use (started here if nothing answers)
#   RABBIT_TLS_PORT=5671    its amqps listener (listeners.ssl.default), for k-o
#   TLS_CERT= TLS_KEY= TLS_CA=  amqpd's TLS certificate, key and the CA loadgen
#                           verifies both brokers against; default: RabbitMQ's
#                           ssl_options.certfile/keyfile/cacertfile from
#                           /etc/rabbitmq/rabbitmq.conf (the same certificate
#                           for both)
#   CONNECT_CLIENTS=4       parallel clients in the connection-rate scenarios
#   AMQPD_ARGS=...          extra amqpd arguments  LOADGEN_ARGS=...  extra loadgen arguments
#   OUT=DIR                 where logs go (default: a new /tmp/amqpd-compare.* dir)
# Exit status: 0 all ran; 1 a run or a broker failed; 2 amqpd missing (RabbitMQ
# was still measured).
set -u

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

BUILD=${1:-${BUILD:-}}
if [ -z "$BUILD" ]; then
	if [ -x ./build-plain/bench/loadgen ]; then BUILD=./build-plain; else BUILD=.; fi
fi
LOADGEN=$BUILD/bench/loadgen
AMQPD=$BUILD/server/amqpd
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
SETTLE=${SETTLE:-2}
RABBIT_PORT=${RABBIT_PORT:-5672}
RABBIT_TLS_PORT=${RABBIT_TLS_PORT:-5671}
CONNECT_CLIENTS=${CONNECT_CLIENTS:-4}
AMQPD_ARGS=${AMQPD_ARGS:-}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/amqpd-compare.XXXXXX)}
mkdir -p "$OUT" || die "cannot create $OUT"

# TLS (scenarios k-o): amqpd gets RabbitMQ's certificate unless told otherwise.
rabbit_conf() { # the value of KEY in /etc/rabbitmq/rabbitmq.conf
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p" \
		/etc/rabbitmq/rabbitmq.conf 2>/dev/null | tail -1
}
TLS_CERT=${TLS_CERT:-$(rabbit_conf ssl_options.certfile)}
TLS_KEY=${TLS_KEY:-$(rabbit_conf ssl_options.keyfile)}
TLS_CA=${TLS_CA:-$(rabbit_conf ssl_options.cacertfile)}
have_tls=0
[ -r "$TLS_CERT" ] && [ -r "$TLS_KEY" ] && [ -r "$TLS_CA" ] && have_tls=1
if [ -z "${SCENARIOS:-}" ]; then
	SCENARIOS="a b c d e f g h i j"
	if [ "$have_tls" = 1 ]; then
		SCENARIOS="$SCENARIOS k l m n o"
	else
		echo "compare.sh: no TLS certificate (TLS_CERT/TLS_KEY/TLS_CA, or ssl_options.* in /etc/rabbitmq/rabbitmq.conf): skipping the TLS scenarios k-o" >&2
	fi
fi
is_tls() { case $1 in k | l | m | n | o) return 0 ;; esac; return 1; }
want_tls=0
for s in $SCENARIOS; do is_tls "$s" && want_tls=1; done
if [ "$want_tls" = 1 ] && [ "$have_tls" = 0 ]; then
	die "TLS scenarios asked for, but no readable TLS_CERT/TLS_KEY/TLS_CA (or ssl_options.certfile/keyfile/cacertfile in /etc/rabbitmq/rabbitmq.conf)"
fi

[ -x "$LOADGEN" ] || die "no loadgen at $LOADGEN (build it: make bench/loadgen in the build dir, or pass the build dir as argument)"

status=0
have_amqpd=1
if [ ! -x "$AMQPD" ]; then
	echo "compare.sh: ERROR: amqpd not found at $AMQPD (make server/amqpd in $BUILD)." >&2
	echo "compare.sh: measuring RabbitMQ only; the amqpd column will say 'missing'." >&2
	have_amqpd=0
	status=2
fi

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
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
RABBIT_PID=
RABBIT_STARTED=0
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	if [ -n "$AMQPD_PID" ]; then
		kill "$AMQPD_PID" 2>/dev/null
		wait "$AMQPD_PID" 2>/dev/null
		AMQPD_PID=
	fi
	if [ "$RABBIT_STARTED" = 1 ]; then
		echo "compare.sh: stopping the RabbitMQ started here" >&2
		rabbitmqctl stop >/dev/null 2>&1 || kill "$RABBIT_PID" 2>/dev/null
		wait "$RABBIT_PID" 2>/dev/null
		RABBIT_STARTED=0
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- brokers ---------------------------------------------------------------
if port_open "$RABBIT_PORT"; then
	echo "compare.sh: using the RabbitMQ already running on 127.0.0.1:$RABBIT_PORT" >&2
else
	[ "$RABBIT_PORT" = 5672 ] || die "nothing answers on RABBIT_PORT=$RABBIT_PORT"
	command -v rabbitmq-server >/dev/null || die "RabbitMQ is not running and rabbitmq-server is not installed (apt-get install rabbitmq-server)"
	[ "$(id -u)" = 0 ] || die "RabbitMQ is not running; start it (as root: rabbitmq-server &) or run this as root"
	echo "compare.sh: starting rabbitmq-server (log: $OUT/rabbitmq.log)" >&2
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
if [ "$want_tls" = 1 ] && ! port_open "$RABBIT_TLS_PORT"; then
	echo "compare.sh: ERROR: RabbitMQ has no TLS listener on 127.0.0.1:$RABBIT_TLS_PORT (listeners.ssl.default and ssl_options.* in /etc/rabbitmq/rabbitmq.conf, then restart it): its TLS runs will fail" >&2
fi

read -r LOAD _ </proc/loadavg
if awk -v l="$LOAD" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "compare.sh: WARNING: load average $LOAD on $(nproc) cores: other work will skew the numbers" >&2
fi

AMQPD_PORT=
AMQPD_TLS_PORT=
if [ "$have_amqpd" = 1 ]; then
	AMQPD_PORT=$(free_port) || die "no free TCP port for amqpd"
	tls_args=()
	if [ "$want_tls" = 1 ]; then
		AMQPD_TLS_PORT=$(free_port) || die "no free TCP port for amqpd's TLS listener"
		[ "$AMQPD_TLS_PORT" != "$AMQPD_PORT" ] || AMQPD_TLS_PORT=$(free_port)
		tls_args=(--listen-tls "127.0.0.1:$AMQPD_TLS_PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
	fi
	echo "compare.sh: starting amqpd on 127.0.0.1:$AMQPD_PORT${AMQPD_TLS_PORT:+ (TLS on $AMQPD_TLS_PORT)} (log: $OUT/amqpd.log)" >&2
	# shellcheck disable=SC2086
	"$AMQPD" --listen "127.0.0.1:$AMQPD_PORT" "${tls_args[@]}" $AMQPD_ARGS >"$OUT/amqpd.log" 2>&1 &
	AMQPD_PID=$!
	for _ in $(seq 100); do
		port_open "$AMQPD_PORT" && break
		kill -0 "$AMQPD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! port_open "$AMQPD_PORT"; then
		echo "compare.sh: ERROR: amqpd did not start listening; last lines of $OUT/amqpd.log:" >&2
		tail -5 "$OUT/amqpd.log" >&2
		kill "$AMQPD_PID" 2>/dev/null
		AMQPD_PID=
		have_amqpd=0
		status=1
	fi
fi

# --- scenarios -------------------------------------------------------------
scenario_title() {
	case $1 in
	a) echo "(a) 1 -> 1, 16 B, auto-ack" ;;
	b) echo "(b) 1 -> 1, 1 KiB, manual ack, prefetch 100" ;;
	c) echo "(c) fan-out 1 -> 10 queues, 16 B" ;;
	d) echo "(d) 50 producers -> 50 consumers (50 queues), 16 B" ;;
	e) echo "(e) latency at 1,000 msg/s, 16 B" ;;
	f) echo "(f) persistent 1 KiB, confirms, durable queue, 1 -> 1" ;;
	g) echo "(g) persistent 1 KiB, confirms, durable queues, 10 -> 10" ;;
	h) echo "(h) 1 -> 1, 16 KiB, auto-ack" ;;
	i) echo "(i) 1 -> 1, 1 MiB, auto-ack" ;;
	j) echo "(j) 50 -> 50 (50 queues), 64 B - 4 KiB mixed, confirms" ;;
	k) echo "(k) TLS: 1 -> 1, 16 B, auto-ack" ;;
	l) echo "(l) TLS: 1 -> 1, 1 KiB, manual ack, prefetch 100" ;;
	m) echo "(m) TLS connection open rate, full handshake, $CONNECT_CLIENTS clients" ;;
	n) echo "(n) TLS connection open rate, with session resumption, $CONNECT_CLIENTS clients" ;;
	o) echo "(o) TLS 1.2 connection open rate, with session resumption, $CONNECT_CLIENTS clients" ;;
	esac
}

scenario_args() {
	case $1 in
	a) echo "--producers 1 --consumers 1 --size 16" ;;
	b) echo "--producers 1 --consumers 1 --size 1024 --manual-ack --prefetch 100" ;;
	c) echo "--producers 1 --fanout --queues 10 --size 16" ;;
	d) echo "--producers 50 --consumers 50 --queues 50 --size 16" ;;
	e) echo "--producers 1 --consumers 1 --size 16 --rate 1000" ;;
	f) echo "--producers 1 --consumers 1 --size 1024 --persistent --durable --confirm --manual-ack" ;;
	g) echo "--producers 10 --consumers 10 --queues 10 --size 1024 --persistent --durable --confirm --manual-ack" ;;
	h) echo "--producers 1 --consumers 1 --size 16384" ;;
	i) echo "--producers 1 --consumers 1 --size 1048576" ;;
	j) echo "--producers 50 --consumers 50 --queues 50 --size-min 64 --size-max 4096 --confirm" ;;
	k) echo "--tls --tls-ca $TLS_CA --producers 1 --consumers 1 --size 16" ;;
	l) echo "--tls --tls-ca $TLS_CA --producers 1 --consumers 1 --size 1024 --manual-ack --prefetch 100" ;;
	# Open (TCP, TLS, AMQP to connection.open-ok) and close, over and over.
	# n offers each client's previous session; with TLS 1.3 that needs the
	# broker to issue session tickets (Erlang's ssl does not by default),
	# o pins TLS 1.2 (session ids), which both resume.  The resumed
	# percentage is reported next to the rate.
	m) echo "--tls --tls-ca $TLS_CA --connect-rate --producers $CONNECT_CLIENTS" ;;
	n) echo "--tls --tls-ca $TLS_CA --connect-rate --producers $CONNECT_CLIENTS --tls-resume" ;;
	o) echo "--tls --tls-ca $TLS_CA --connect-rate --producers $CONNECT_CLIENTS --tls-resume --tls-version tlsv1.2" ;;
	esac
}

# run SCENARIO BROKER PORT: one loadgen run; prints its RESULT line (nothing
# on failure; it runs in a subshell, so the caller sets the status).
run() {
	local log="$OUT/$1-$2.log" duration=$DURATION
	# A p99 over 5 s at 1,000 msg/s is the 50th-worst of 5,000 samples: one
	# hiccup of the machine moves it.  The latency scenario runs at least
	# E_DURATION seconds (15).
	if [ "$1" = e ] && [ "${duration%.*}" -lt "${E_DURATION:-15}" ]; then
		duration=${E_DURATION:-15}
	fi
	# shellcheck disable=SC2046,SC2086
	timeout $((${duration%.*} + ${WARMUP%.*} + 180)) "$LOADGEN" --uri "127.0.0.1:$3" \
		--duration "$duration" --warmup "$WARMUP" --quiet \
		--queue-prefix "compare-$$-$1" $(scenario_args "$1") $LOADGEN_ARGS >"$log" 2>&1
	local rc=$?
	if [ $rc -ne 0 ]; then
		echo "compare.sh: scenario $1 against $2 failed (exit $rc); last lines of $log:" >&2
		tail -3 "$log" >&2
	fi
	grep '^RESULT ' "$log" | tail -1
}

field() { # field RESULT_LINE KEY
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-";
		else printf "%.2f\n", a / b }'
}

show() { # value, or why there is none
	if [ -n "$2" ]; then echo "$2"; elif [ "$1" = missing ]; then echo missing; else echo error; fi
}

mbps() { # mbps RESULT_LINE BYTES_KEY STATE: that rate in MB/s (10^6 bytes), or why there is none
	local v
	v=$(field "$1" "$2")
	if [ -z "$v" ]; then
		show "$3" ""
		return
	fi
	awk -v b="$v" 'BEGIN {
		if (b !~ /^[0-9.]+$/) print "-";
		else if (b >= 1e6) printf "%.1f\n", b / 1e6;
		else printf "%.3f\n", b / 1e6 }'
}

# The body-bytes counterpart of a msg/s key in the RESULT line ("" if none).
bytes_key() {
	case $1 in
	publish_rate) echo publish_bytes_rate ;;
	confirm_rate) echo confirm_bytes_rate ;;
	consume_rate) echo consume_bytes_rate ;;
	esac
}

ROWS=()
COST=()
for s in $SCENARIOS; do
	title=$(scenario_title "$s")
	[ -n "$title" ] || die "unknown scenario '$s' (a b c d e f g h i j k l m n o)"
	echo "compare.sh: $title ..." >&2
	ra=""
	am_state=missing
	if [ "$have_amqpd" = 1 ]; then
		am_state=ran
		if ! kill -0 "$AMQPD_PID" 2>/dev/null; then
			echo "compare.sh: ERROR: amqpd is no longer running (see $OUT/amqpd.log)" >&2
			have_amqpd=0
			am_state=error
			status=1
		else
			ra=$(run "$s" amqpd "$(is_tls "$s" && echo "$AMQPD_TLS_PORT" || echo "$AMQPD_PORT")")
			[ -n "$ra" ] || status=1
			sleep "$SETTLE"
		fi
	fi
	rr=$(run "$s" rabbitmq "$(is_tls "$s" && echo "$RABBIT_TLS_PORT" || echo "$RABBIT_PORT")")
	[ -n "$rr" ] || status=1
	sleep "$SETTLE"

	if [ "$s" = e ]; then
		keys=(p50_us p99_us consume_rate wake_lag_p99_us)
		labels=("p50 latency (us)" "p99 latency (us)" "consumed msg/s" "p99 producer wake-up lag (us, client; not in latency)")
	elif [ "$s" = m ] || [ "$s" = n ] || [ "$s" = o ]; then
		keys=(connect_rate p50_us p99_us resumed_pct)
		labels=("connections/s" "p50 open time (us)" "p99 open time (us)" "TLS handshakes resumed (%)")
	elif [ "$s" = f ] || [ "$s" = g ] || [ "$s" = j ]; then
		keys=(confirm_rate consume_rate confirm_p99_us)
		labels=("confirmed msg/s" "consumed msg/s" "p99 confirm latency (us)")
	else
		keys=(publish_rate consume_rate)
		labels=("published msg/s" "consumed msg/s")
	fi
	for i in "${!keys[@]}"; do
		a=$(field "$ra" "${keys[$i]}")
		r=$(field "$rr" "${keys[$i]}")
		name=""
		[ "$i" = 0 ] && name=$title
		# MB/s of body bytes next to each msg/s figure ("-" for latencies)
		bk=$(bytes_key "${keys[$i]}")
		amb=-
		rmb=-
		if [ -n "$bk" ]; then
			amb=$(mbps "$ra" "$bk" "$am_state")
			rmb=$(mbps "$rr" "$bk" ran)
		fi
		ROWS+=("| $name | ${labels[$i]} | $(show "$am_state" "$a") | $amb | $(show ran "$r") | $rmb | $(ratio "$a" "$r") |")
	done
	ck=cpu_ns_per_msg
	case $s in m | n | o) ck=cpu_ns_per_conn ;; esac
	COST+=("| $title | $(show "$am_state" "$(field "$ra" $ck)") | $(show "$am_state" "$(field "$ra" cpu_pct)") | $(show ran "$(field "$rr" $ck)") | $(show ran "$(field "$rr" cpu_pct)") |")
done

# --- report ----------------------------------------------------------------
echo
echo "## amqpd vs RabbitMQ ($(date -u +%Y-%m-%d), $(nproc) cores, ${DURATION} s per run after ${WARMUP} s warm-up)"
echo
echo "amqpd: ${AMQPD}$([ "$have_amqpd" = 1 ] || echo " (not measured)"); RabbitMQ: ${RABBIT_VERSION:-unknown} on port $RABBIT_PORT${AMQPD_TLS_PORT:+ (TLS: $RABBIT_TLS_PORT)}; logs: $OUT"
echo
echo "| scenario | metric | amqpd | amqpd MB/s | RabbitMQ | RabbitMQ MB/s | amqpd/RabbitMQ |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
echo
echo "Ratio > 1: amqpd is higher (better for msg/s, worse for latency).  MB/s: message"
echo "bodies only (10^6 bytes/s, framing not counted), for the msg/s figure on that row."
echo "Connection scenarios: open time is TCP connect to connection.open-ok; a resumption"
echo "row below 100% means full handshakes were made instead (the broker did not resume)."
echo
echo "Load generator cost (to show it is not the bottleneck):"
echo
echo "| scenario | amqpd run: ns/msg (ns/connection for m-o) | amqpd run: % of a core | RabbitMQ run: ns/msg | RabbitMQ run: % of a core |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${COST[@]}"
exit $status
