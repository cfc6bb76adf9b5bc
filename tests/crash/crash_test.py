#!/usr/bin/env python3
"""crash_test.py - kill -9 amqpd while publishers wait for confirms; no
confirmed message may be lost.

One data directory for the whole run.  Each round:

  1. start amqpd on a free port and wait until it accepts connections;
  2. start P publisher processes; each has its own connection and a channel
     in confirm mode, keeps up to --window unconfirmed messages in flight,
     and publishes persistent messages "p<publisher>-<round>-<n>" (plus a
     padding whose length follows from the id) to one durable queue,
     recording which ids were sent and which were acked or nacked;
  3. after a random 0.3..S seconds, kill -9 amqpd; the publishers see their
     connection break and stop;
  4. start amqpd again - in some rounds (--startup-kill) killing it once
     more 0..150 ms into the start, during recovery - and drain the queue
     (consume, manual ack, ack everything) until it is empty; in some
     rounds (--drain-kill) amqpd is killed again part way through the
     drain and restarted.  No inactivity timeout: the drain ends when a
     passive queue.declare says the queue is empty, every delivery sent
     before it has been seen and acked, and every confirmed id is back (or
     --settle seconds passed with the queue empty); --drain-deadline only
     guards against a hung broker;
  5. stop amqpd with SIGTERM (it must exit 0).

Checked every round:

  lost        confirmed ids that did not come back - must be 0
  phantom     ids that were never published, or bodies that are damaged -
              must be 0
  order       per publisher, the first time each id is seen must follow the
              publish order - must be 0
  redelivered a message never delivered before arriving with
              redelivered=true - must be 0.  The drain's first consumer
              session sees every delivery, so there any redelivered=true
              is wrong; a session that ended early (the test's kill -9)
              can have left up to --prefetch deliveries unseen, which may
              come back flagged: each such session allows that many later
  requeued    first-seen messages with redelivered=true that earlier
              consumer sessions of the drain can explain - allowed,
              reported
  duplicates  an id seen more than once (after a kill during the drain, or
              one acked just before a kill) - allowed, reported
  unconfirmed published but not confirmed (the kill came first), yet back -
              allowed, reported

Exit status 0 only when every round passed.  Usage:

  crash_test.py --amqpd BUILD/server/amqpd [--rounds 5] [--seconds 2]
                [--publishers 4] [--window 200] [--drain-kill 0.3]
                [--startup-kill 0.3] [--prefetch 500] [--settle 5]
                [--drain-deadline 120] [--amqpd-arg=ARG ...] [--seed N]
                [--work-dir DIR] [--keep]

Needs python3 with pika (Debian: python3-pika).  The work directory (data
directory and amqpd.log) is removed after a passing run unless --keep.
"""

import argparse
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import pika
import pika.exceptions

QUEUE = "crash.q"


def padding_len(msg_id):
    """0..1500 bytes; one message in 500 gets 0.2..1.2 MB (several frames,
    more than the storage backend buffers before it writes)."""
    h = zlib.crc32(msg_id.encode())
    if h % 500 == 0:
        return 200000 + h % 1000000
    return h % 1500


def make_body(msg_id):
    return (msg_id + "|" + "x" * padding_len(msg_id)).encode()


def parse_body(body):
    """The id of a well-formed body, or None."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    msg_id, sep, pad = text.partition("|")
    if not sep or pad != "x" * padding_len(msg_id):
        return None
    return msg_id


def parse_id(msg_id):
    """(publisher, round, n) of "p<publisher>-<round>-<n>", or None."""
    try:
        p, r, n = msg_id[1:].split("-")
        if msg_id[0] != "p":
            return None
        return int(p), int(r), int(n)
    except ValueError:
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """One amqpd process at a time on the run's data directory."""

    def __init__(self, exe, data_dir, log_path, extra_args=()):
        self.exe = exe
        self.extra_args = list(extra_args)
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        log = open(self.log_path, "a")
        log.write("=== crash_test: starting amqpd on port %d\n" % self.port)
        log.flush()
        self.proc = subprocess.Popen(
            [self.exe, "--management-listen", "none", "--listen", "127.0.0.1:%d" % self.port,
             "--data-dir", self.data_dir] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60  # a guard: start-up under load
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("amqpd exited with %d at start-up"
                                   % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill9()
        raise RuntimeError("amqpd did not accept connections within 60 s")

    def start_and_kill(self, delay):
        """Start amqpd and kill -9 it after delay seconds, whether or not it
        has finished starting (recovery interrupted)."""
        self.port = free_port()
        with open(self.log_path, "a") as log:
            log.write("=== crash_test: starting amqpd on port %d, to be killed "
                      "after %.3fs\n" % (self.port, delay))
            log.flush()
            self.proc = subprocess.Popen(
                [self.exe, "--management-listen", "none", "--listen", "127.0.0.1:%d" % self.port,
                 "--data-dir", self.data_dir] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        time.sleep(delay)
        self.kill9()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.proc = None

    def stop(self):
        """SIGTERM; amqpd's exit status (or None if it had to be killed)."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        self.proc = None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def params(self):
        return pika.ConnectionParameters(
            "127.0.0.1", self.port, heartbeat=0, connection_attempts=1,
            socket_timeout=5, blocked_connection_timeout=30)


# ---- publishers ------------------------------------------------------------


def publisher(idx, rnd, port, window, result):
    """Publish until the connection breaks; send what happened to result:
    {"sent": n, "acked": [n...], "nacked": [n...], "error": text}."""
    sent = 0
    in_flight = {}  # delivery tag -> n
    acked, nacked = [], []
    state = {"tag": 0, "error": None, "ch": None}

    def pump():
        nonlocal sent
        ch = state["ch"]
        while ch and ch.is_open and len(in_flight) < window:
            msg_id = "p%d-%d-%d" % (idx, rnd, sent)
            ch.basic_publish("", QUEUE, make_body(msg_id),
                             pika.BasicProperties(delivery_mode=2,
                                                  message_id=msg_id))
            state["tag"] += 1
            in_flight[state["tag"]] = sent
            sent += 1

    def on_confirm(frame):
        m = frame.method
        tags = [m.delivery_tag]
        if m.multiple:
            tags = sorted(t for t in in_flight if t <= m.delivery_tag)
        into = acked if isinstance(m, pika.spec.Basic.Ack) else nacked
        for t in tags:
            n = in_flight.pop(t, None)
            if n is not None:
                into.append(n)
        pump()

    def on_declared(_frame):
        pump()

    def on_select_ok(_frame):
        state["ch"].queue_declare(QUEUE, durable=True, callback=on_declared)

    def on_channel(ch):
        state["ch"] = ch
        ch.confirm_delivery(ack_nack_callback=on_confirm,
                            callback=on_select_ok)

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_open_error(conn, err):
        state["error"] = "connect: %r" % (err,)
        conn.ioloop.stop()

    def on_close(conn, reason):
        state["error"] = state["error"] or repr(reason)
        conn.ioloop.stop()

    params = pika.ConnectionParameters(
        "127.0.0.1", port, heartbeat=0, connection_attempts=1,
        socket_timeout=5)
    try:
        conn = pika.SelectConnection(
            params, on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close)
        conn.ioloop.start()
    except Exception as e:  # the broker was killed at a bad moment
        state["error"] = state["error"] or repr(e)
    result.send({"sent": sent, "acked": acked, "nacked": nacked,
                 "error": state["error"]})
    result.close()


# ---- draining ----------------------------------------------------------------


class Killed(Exception):
    """The test killed amqpd on purpose during the drain."""


class Drain:
    """Consume and ack everything in the queue, with no inactivity timeout:
    a consumer session ends only when the broker says the queue is empty
    and every delivery it sent has been seen and acked, or when the test
    kills amqpd (kill_at: after that many messages, then restart).

    Completion, per consumer session: a passive queue.declare (on the
    consuming channel) reports message_count 0, and the deliveries that the
    broker wrote before that declare-ok - pika has them all once the
    declare returns - have been dispatched and acked.  amqpd's message_count
    counts every ready message, paged out or not, and a message leaves it
    only when its basic.deliver is written (queue_dispatch), so then nothing
    is ready and nothing is in flight to us.  Until every confirmed id has
    come back the test keeps checking for --settle seconds (only a failing
    round waits for that); a fresh connection then confirms the queue is
    still empty.  The deadline is a guard against a hung broker only.

    Redelivered flags.  Per AMQP, redelivered=true is legitimate only for a
    message that may have been delivered before.  The app sees every
    delivery of a session except those in flight when the session ended
    without being complete (our own kill -9, or a clean close that left
    something behind): pika nacks those with requeue, or the broker
    requeues or recovers them with their delivered mark.  There are at
    most prefetch of them per such session (the broker stops at prefetch
    unacked deliveries), so each one adds prefetch to an allowance for
    first-time-seen messages with redelivered=true; the first session's
    allowance is 0, i.e. there every redelivered=true is wrong.

    messages: [(id or None, redelivered, session)] in arrival order;
    allowance[s]: unseen deliveries that sessions before s can have left."""

    def __init__(self, broker, expect, kill_at, say, prefetch=500,
                 settle=5.0, deadline=120.0):
        self.broker = broker
        self.expect = set(expect)  # confirmed ids not seen in earlier rounds
        self.kill_at = kill_at
        self.say = say
        self.prefetch = prefetch
        self.settle = settle
        self.deadline = time.monotonic() + deadline
        self.messages = []
        self.allowance = []
        self.killed = False
        self.left_after_close = 0

    def run(self):
        session = 0
        allowance = 0
        while True:
            self.check_deadline()
            self.allowance.append(allowance)
            try:
                complete = self.session(session)
            except Killed:
                complete = False
                self.broker.start()
            except (pika.exceptions.AMQPError, OSError) as e:
                if self.broker.alive():
                    raise RuntimeError("drain failed with amqpd running: %r"
                                       % (e,))
                raise RuntimeError("amqpd died during the drain (log: %s)"
                                   % self.broker.log_path)
            if complete:
                left = self.queue_count()
                if left == 0:
                    return self.messages
                # Should not happen: something was in flight that the
                # session did not see; its redelivery is our doing.
                self.left_after_close += left
                self.say("  %d messages back in the queue after the "
                         "consumer closed; draining again" % left)
            allowance += self.prefetch
            session += 1

    def check_deadline(self):
        if time.monotonic() > self.deadline:
            raise RuntimeError("the drain did not finish before its deadline "
                               "(%d messages received)" % len(self.messages))

    def queue_count(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            return ch.queue_declare(QUEUE, durable=True,
                                    passive=True).method.message_count
        finally:
            conn.close()

    def session(self, session):
        """One connection and consumer; True when the queue was drained."""
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.basic_qos(prefetch_count=self.prefetch)
        ch.queue_declare(QUEUE, durable=True)
        seen = set()

        def on_message(ch_, method, _props, body):
            msg_id = parse_body(body)
            self.messages.append((msg_id, method.redelivered, session))
            seen.add(msg_id)
            ch_.basic_ack(method.delivery_tag)
            if (self.kill_at is not None and not self.killed
                    and len(self.messages) >= self.kill_at):
                self.say("  kill -9 during the drain, after %d messages"
                         % len(self.messages))
                self.broker.kill9()
                self.killed = True
                raise Killed()

        ch.basic_consume(QUEUE, on_message)
        empty_since = None
        try:
            while True:
                self.check_deadline()
                n = len(self.messages)
                # Returns as soon as something was dispatched.
                conn.process_data_events(time_limit=0.2)
                if len(self.messages) > n:
                    continue
                # Nothing came: is the queue empty?
                count = ch.queue_declare(QUEUE, durable=True,
                                         passive=True).method.message_count
                # Everything the broker wrote before the declare-ok.
                conn.process_data_events(time_limit=0)
                if count or len(self.messages) > n:
                    empty_since = None
                    continue
                self.expect -= seen
                seen.clear()
                now = time.monotonic()
                if empty_since is None:
                    empty_since = now
                if not self.expect or now - empty_since >= self.settle:
                    break
        except Killed:
            try:
                conn.close()
            except Exception:  # the broker is gone
                pass
            raise
        conn.close()
        return True


# ---- one round -----------------------------------------------------------


class Totals:
    def __init__(self):
        self.keys = ["sent", "confirmed", "nacked", "recovered", "lost",
                     "phantom", "order", "redelivered", "requeued",
                     "duplicates", "unconfirmed", "sessions"]
        self.v = dict.fromkeys(self.keys, 0)

    def add(self, d):
        for k in self.keys:
            self.v[k] += d.get(k, 0)

    def line(self):
        return " ".join("%s=%d" % (k, self.v[k]) for k in self.keys)


def run_round(rnd, args, broker, published_ever, seen_ever, rng, say):
    broker.start()
    results = []
    procs = []
    ctx = multiprocessing.get_context("fork")
    for i in range(args.publishers):
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=publisher,
                        args=(i, rnd, broker.port, args.window, tx))
        p.start()
        tx.close()
        procs.append(p)
        results.append(rx)
    delay = rng.uniform(0.3, max(0.3, args.seconds))
    time.sleep(delay)
    broker.kill9()

    sent, acked, nacked = {}, set(), set()
    for i, (p, rx) in enumerate(zip(procs, results)):
        r = None
        if rx.poll(30):
            try:
                r = rx.recv()
            except EOFError:
                r = None
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()
        if r is None:
            raise RuntimeError("publisher %d sent no result" % i)
        sent[i] = r["sent"]
        for n in r["acked"]:
            acked.add("p%d-%d-%d" % (i, rnd, n))
        for n in r["nacked"]:
            nacked.add("p%d-%d-%d" % (i, rnd, n))
    for i in range(args.publishers):
        for n in range(sent[i]):
            published_ever.add("p%d-%d-%d" % (i, rnd, n))

    startup_kill = rng.random() < args.startup_kill
    if startup_kill:
        delay_start = rng.uniform(0.0, 0.15)
        say("  kill -9 again %.3fs into the restart" % delay_start)
        broker.start_and_kill(delay_start)
    broker.start()
    kill_at = None
    total_sent = sum(sent.values())
    if rng.random() < args.drain_kill and total_sent > 10:
        kill_at = rng.randint(1, max(1, len(acked) // 2 or 1))
    drain = Drain(broker, acked - seen_ever, kill_at, say,
                  prefetch=args.prefetch, settle=args.settle,
                  deadline=args.drain_deadline)
    got = drain.run()
    rc = broker.stop()

    st = {"sent": total_sent, "confirmed": len(acked), "nacked": len(nacked)}
    seen_round = set()
    last_n = {}
    order = redelivered = requeued = phantom = dups = unconfirmed = 0
    session = 0
    allowance = 0  # unseen deliveries earlier sessions can have left
    for msg_id, redel, sess in got:
        if sess != session:
            allowance += drain.allowance[sess] - drain.allowance[session]
            session = sess
        if msg_id is None or msg_id not in published_ever:
            phantom += 1
            if phantom <= 5:
                say("  phantom or damaged message: %r" % (msg_id,))
            continue
        if msg_id in seen_round or msg_id in seen_ever:
            dups += 1
            continue
        seen_round.add(msg_id)
        p, r, n = parse_id(msg_id)
        if r == rnd:
            if (p in last_n and n < last_n[p]):
                order += 1
                if order <= 5:
                    say("  out of order: %s after p%d-%d-%d"
                        % (msg_id, p, r, last_n[p]))
            last_n[p] = n
            # Never seen before: redelivered=true only for one of the
            # deliveries an ended session may have left unseen.
            if redel and allowance > 0:
                allowance -= 1
                requeued += 1
            elif redel:
                redelivered += 1
                if redelivered <= 5:
                    say("  %s: redelivered=true, never delivered before "
                        "(consumer session %d)" % (msg_id, sess))
        if msg_id not in acked:
            unconfirmed += 1
    lost_ids = sorted(acked - seen_round - seen_ever)
    for msg_id in lost_ids[:10]:
        say("  LOST confirmed message %s" % msg_id)
    seen_ever |= seen_round
    st.update(recovered=len(seen_round), lost=len(lost_ids), phantom=phantom,
              order=order, redelivered=redelivered, requeued=requeued,
              duplicates=dups, unconfirmed=unconfirmed,
              sessions=len(drain.allowance))
    ok = not (lost_ids or phantom or order or redelivered)
    if rc != 0:
        say("  amqpd exited with %r on SIGTERM (want 0)" % (rc,))
        ok = False
    say("round %d: killed after %.2fs%s: sent=%d confirmed=%d nacked=%d "
        "recovered=%d lost=%d phantom=%d order=%d redelivered=%d "
        "requeued=%d duplicates=%d unconfirmed-present=%d sessions=%d %s"
        % (rnd, delay, ", again during the drain" if kill_at else "",
           st["sent"], st["confirmed"], st["nacked"], st["recovered"],
           st["lost"], phantom, order, redelivered, requeued, dups,
           unconfirmed, st["sessions"], "ok" if ok else "FAILED"))
    return ok, st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--amqpd", required=True, help="path of the amqpd binary")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0,
                    help="kill after a random 0.3..SECONDS of publishing")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--window", type=int, default=200,
                    help="unconfirmed messages in flight per publisher")
    ap.add_argument("--drain-kill", type=float, default=0.3,
                    help="chance of a kill -9 during a round's drain")
    ap.add_argument("--startup-kill", type=float, default=0.3,
                    help="chance of a kill -9 while amqpd restarts (recovers)")
    ap.add_argument("--prefetch", type=int, default=500,
                    help="the drain's basic.qos prefetch_count")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="with the queue empty but confirmed messages "
                    "missing, look this long before calling them lost")
    ap.add_argument("--drain-deadline", type=float, default=120.0,
                    help="fail a drain that takes longer (a hung amqpd)")
    ap.add_argument("--amqpd-arg", action="append", default=[],
                    metavar="ARG", help="one more amqpd argument (repeatable; "
                    "e.g. --amqpd-arg=--queue-memory-budget=1000000)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--work-dir", default=None,
                    help="use (and keep) this directory")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory even after a pass")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    if args.work_dir:
        work = args.work_dir
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="amqpd-crash-")
    data_dir = os.path.join(work, "data")
    log_path = os.path.join(work, "amqpd.log")

    def say(text):
        print(text, flush=True)

    say("crash test: %d rounds, %d publishers, kill within 0.3..%.1fs, "
        "seed %d, work dir %s%s" % (args.rounds, args.publishers, args.seconds,
                                     seed, work,
                                     "".join(" " + a for a in args.amqpd_arg)))
    broker = Broker(args.amqpd, data_dir, log_path, args.amqpd_arg)
    totals = Totals()
    published_ever, seen_ever = set(), set()
    all_ok = True
    try:
        for rnd in range(args.rounds):
            ok, st = run_round(rnd, args, broker, published_ever, seen_ever,
                               rng, say)
            totals.add(st)
            all_ok = all_ok and ok
    except Exception as e:
        say("crash test: ERROR: %s" % (e,))
        all_ok = False
    finally:
        broker.kill9()
    say("totals: " + totals.line())
    if all_ok and totals.v["sent"] == 0:
        say("crash test: ERROR: nothing was published")
        all_ok = False
    if all_ok:
        say("crash test: PASS (no confirmed message lost)")
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    say("crash test: FAIL (seed %d; data and amqpd.log kept in %s)"
        % (seed, work))
    try:
        with open(log_path) as f:
            tail = f.readlines()[-40:]
        say("--- last lines of %s:\n%s" % (log_path, "".join(tail)))
    except OSError:
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
