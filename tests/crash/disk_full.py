#!/usr/bin/env python3
"""disk_full.py - amqpd when message storage cannot be written.

Part 1, injected failures: amqpd runs with
--plugin-opt storage-file.fail_writes=1, which makes every sync of the
"file" storage backend fail with EIO (see
plugins/storage-file/storage_file.c).  Persistent messages to
a durable queue must then get basic.nack, never basic.ack; amqpd must log
the error and stay up: a transient publish is still acked, a new connection
still works, SIGTERM still stops it cleanly.  Restarted without the
option on the same data directory, it acks persistent messages again.

Part 2, a real full file system (needs root and permission to mount; it is
skipped with a note otherwise): the data directory is a 2 MiB tmpfs;
64 KiB persistent messages are published with confirms until the file
system is full.  Nothing may be acked that did not fit (acked bytes <= file
system size); there must be nacks; amqpd logs "No space left on device",
stays up, acks transient messages and accepts new connections; killed with
-9 it starts again on the full file system with every acked message.  Then
the file system is grown (remount, as an operator freeing space would): amqpd
must ack persistent messages again; after a kill -9 and a restart every
message that was ever acked is there.

Usage: disk_full.py --amqpd BUILD/server/amqpd [--keep]
Exit status 0 when every check passed (a skipped part 2 is not a failure).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pika
import pika.exceptions

failures = []


def say(text):
    print(text, flush=True)


def check(cond, what):
    say("  %s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        failures.append(what)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, exe, data_dir, log_path, extra_args=(), env=None):
        self.exe, self.data_dir, self.log_path = exe, data_dir, log_path
        self.extra_args, self.env = list(extra_args), env
        self.proc, self.port = None, None

    def start(self):
        self.port = free_port()
        with open(self.log_path, "a") as log:
            log.write("=== disk_full: starting amqpd on port %d\n" % self.port)
            log.flush()
            self.proc = subprocess.Popen(
                [self.exe, "--management-listen", "none", "--listen", "127.0.0.1:%d" % self.port,
                 "--data-dir", self.data_dir] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.env)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("amqpd exited with %d at start-up (log %s)"
                                   % (self.proc.returncode, self.log_path))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill9()
        raise RuntimeError("amqpd did not accept connections within 15 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.proc = None

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        self.proc = None
        return rc

    def connect(self):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, heartbeat=0, connection_attempts=1,
            socket_timeout=10, blocked_connection_timeout=30))

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def publish(ch, queue, body, persistent):
    """'ack' or 'nack' (the channel is in confirm mode)."""
    try:
        ch.basic_publish("", queue, body,
                         pika.BasicProperties(delivery_mode=2 if persistent
                                              else 1))
        return "ack"
    except pika.exceptions.NackError:
        return "nack"


def drain_ids(broker, queue):
    """The bodies' ids (text before '|') of everything in queue, acked."""
    conn = broker.connect()
    ch = conn.channel()
    ids = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        ids.append(body.split(b"|", 1)[0].decode(errors="replace"))
        ch.basic_ack(method.delivery_tag)
    conn.close()
    return ids


def peek_ids(broker, queue):
    """The ids of everything in queue, left there (fetched unacked; the
    connection's close requeues them)."""
    conn = broker.connect()
    ch = conn.channel()
    ids = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        ids.append(body.split(b"|", 1)[0].decode(errors="replace"))
    conn.close()
    return ids


def still_serving(broker, what):
    """amqpd is up: a transient publish is acked, a new connection works."""
    check(broker.alive(), "amqpd is still running " + what)
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("df.transient", durable=False)
    check(publish(ch, "df.transient", b"transient", False) == "ack",
          "a transient message is acked " + what)
    method, _p, body = ch.basic_get("df.transient", auto_ack=True)
    check(method is not None and body == b"transient",
          "and can be fetched again " + what)
    conn.close()


# ---- part 1: injected EIO -------------------------------------------------------


def part_injected(exe, work):
    say("part 1: --plugin-opt storage-file.fail_writes=1 (every storage sync "
        "fails with EIO)")
    data = os.path.join(work, "eio-data")
    log = os.path.join(work, "eio-amqpd.log")
    b = Broker(exe, data, log, ["--log-level", "debug", "--plugin-opt",
                                "storage-file.fail_writes=1"])
    b.start()
    try:
        conn = b.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("df.q", durable=True)
        results = [publish(ch, "df.q", b"p%d" % i, True) for i in range(20)]
        check(results.count("nack") == 20,
              "20 persistent messages to a durable queue: %d nacked, %d acked"
              % (results.count("nack"), results.count("ack")))
        check(publish(ch, "df.q", b"t", False) == "ack",
              "a transient message to the same durable queue is acked")
        ch.queue_declare("df.nondurable", durable=False)
        check(publish(ch, "df.nondurable", b"p", True) == "ack",
              "a persistent message to a non-durable queue is acked")
        # the same channel keeps nacking (nothing is acked by mistake later)
        check(publish(ch, "df.q", b"p-late", True) == "nack",
              "a later persistent message is nacked too")
        conn.close()
        still_serving(b, "after the failed writes")
        text = b.log_text()
        check("[error]" in text and "Input/output error" in text,
              "the log has the error ([error] ... Input/output error)")
        rc = b.stop()
        check(rc == 0, "SIGTERM: exit status %r (want 0)" % (rc,))
    finally:
        b.kill9()

    # The same data directory without the option: writes work again.
    b = Broker(exe, data, log, ["--log-level", "debug"])
    b.start()
    try:
        conn = b.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("df.q", durable=True)
        check(publish(ch, "df.q", b"ok|", True) == "ack",
              "restarted without the option: a persistent message is acked")
        conn.close()
        b.kill9()
        b.start()
        ids = drain_ids(b, "df.q")
        check("ok" in ids, "and it survives a kill -9 (queue now: %d "
              "messages)" % len(ids))
        rc = b.stop()
        check(rc == 0, "SIGTERM: exit status %r (want 0)" % (rc,))
    finally:
        b.kill9()


# ---- part 2: a real full file system ------------------------------------------


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return r.returncode, r.stdout.strip()


def part_tmpfs(exe, work):
    say("part 2: a 2 MiB tmpfs as the data directory")
    mnt = os.path.join(work, "tmpfs")
    os.makedirs(mnt, exist_ok=True)
    size = 2 * 1024 * 1024
    rc, out = run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                   mnt])
    if rc != 0:
        say("  SKIPPED: cannot mount a tmpfs here (%s); part 2 needs root "
            "and mount permission" % (out or "rc %d" % rc))
        return
    log = os.path.join(work, "tmpfs-amqpd.log")
    # No disk alarm: it would block publishers long before the disk is
    # full (its default limit is 50 MB).
    b = Broker(exe, os.path.join(mnt, "data"), log,
               ["--disk-free-limit", "0", "--log-level", "debug"])
    try:
        b.start()
        conn = b.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("df.full", durable=True)
        acked, nacked = [], []
        pad = b"x" * (64 * 1024)
        for i in range(100):  # 6.4 MB: far more than fits
            msg_id = "m%03d" % i
            r = publish(ch, "df.full", msg_id.encode() + b"|" + pad, True)
            (acked if r == "ack" else nacked).append(msg_id)
            if len(nacked) >= 10:
                break
        say("  %d acked, %d nacked" % (len(acked), len(nacked)))
        check(len(nacked) > 0, "the full file system produces basic.nack")
        check(len(acked) * len(pad) <= size,
              "nothing acked that cannot fit (%d x 64 KiB acked on a 2 MiB "
              "file system)" % len(acked))
        conn.close()
        still_serving(b, "with the disk full")
        check("No space left on device" in b.log_text(),
              "the log says 'No space left on device'")

        # A crash while the disk is full: amqpd must start again on the
        # full file system with every acked message.
        b.kill9()
        b.start()
        ids = peek_ids(b, "df.full")
        missing = [m for m in acked if m not in ids]
        check(not missing, "kill -9 and restart on the full file system: "
              "every acked message is back (%d acked, %d there, missing %s)"
              % (len(acked), len(ids), missing[:5]))

        # Space again (what an operator freeing space would do).
        rc, out = run(["mount", "-o", "remount,size=16m", mnt])
        if not check(rc == 0, "grow the tmpfs to 16 MiB (%s)" % (out or "ok")):
            return
        conn = b.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        after = None
        for i in range(50):  # up to ~5 s for amqpd to recover
            msg_id = "a%03d" % i
            if publish(ch, "df.full", msg_id.encode() + b"|", True) == "ack":
                acked.append(msg_id)
                after = msg_id
                break
            nacked.append(msg_id)
            time.sleep(0.1)
        check(after is not None,
              "with space again, persistent messages are acked again")
        conn.close()

        b.kill9()
        b.start()
        ids = drain_ids(b, "df.full")
        missing = [m for m in acked if m not in ids]
        check(not missing, "after kill -9 every acked message is back (%d "
              "acked, %d recovered, missing %s)"
              % (len(acked), len(ids), missing[:5]))
        present_nacked = [m for m in nacked if m in ids]
        say("  nacked but present after the restart (allowed): %d"
            % len(present_nacked))
        rc = b.stop()
        check(rc == 0, "SIGTERM: exit status %r (want 0)" % (rc,))
    finally:
        b.kill9()
        rc, out = run(["umount", mnt])
        if rc != 0:
            say("  note: umount %s failed: %s" % (mnt, out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--amqpd", required=True)
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="amqpd-diskfull-")
    say("disk full test: work dir %s" % work)
    try:
        part_injected(args.amqpd, work)
        part_tmpfs(args.amqpd, work)
    except Exception as e:
        failures.append("error: %r" % (e,))
        say("  FAIL: %r" % (e,))
    if failures:
        say("disk full test: FAIL (%d checks); logs kept in %s"
            % (len(failures), work))
        for name in os.listdir(work):
            if name.endswith(".log"):
                with open(os.path.join(work, name), errors="replace") as f:
                    tail = f.readlines()[-30:]
                say("--- last lines of %s:\n%s" % (name, "".join(tail)))
        return 1
    say("disk full test: PASS")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
