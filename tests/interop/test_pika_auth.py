#!/usr/bin/python3
"""Interop tests: pika against amqpd's users and permissions.

Usage: /usr/bin/python3 test_pika_auth.py AMQPD WORKDIR [unittest options]

Starts its own amqpd (the binary AMQPD) on a free port with a RabbitMQ
definitions file written into WORKDIR (also its data directory and log),
runs the tests, then stops it with SIGTERM, which must give exit 0.  Users:
  u      password "pu" (plain text in the file), permissions on "/" of
         configure "^c-", write ".*", read ".*"
  s256   password "test12" (RabbitMQ's sha256 hash from its docs)
  v1only password "pv", permissions on vhost "v1" only
  alice  no password: logs in with EXTERNAL over TLS, the name from the
         CN of a client certificate (made here with the openssl command)
"""

import json
import ssl
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import uuid

import pika
import pika.exceptions

BROKER = None  # (host, port)
TLS_PORT = None
CERTS = None  # the directory of ca.pem, alice.pem, alice.key

DEFINITIONS = {
    "rabbit_version": "3.12.0",
    "users": [
        {"name": "u", "password": "pu", "tags": []},
        {"name": "s256",
         "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
         "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
        {"name": "v1only", "password": "pv", "tags": []},
        {"name": "alice", "password_hash": "", "tags": []},
        {"name": "p", "password": "pp", "tags": []},
    ],
    "vhosts": [{"name": "/"}, {"name": "v1"}],
    "permissions": [
        {"user": "u", "vhost": "/", "configure": "^c-", "write": ".*", "read": ".*"},
        {"user": "s256", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "v1only", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "alice", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "p", "vhost": "/", "configure": ".*", "write": "^w-|^amq\\.topic$",
         "read": "^r-|^amq\\.topic$"},
    ],
    "topic_permissions": [
        {"user": "p", "vhost": "/", "exchange": "amq.topic", "write": "^p\\.",
         "read": "^p\\."},
    ],
}


def params(user, password, vhost="/"):
    return pika.ConnectionParameters(
        host=BROKER[0], port=BROKER[1], virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=10, heartbeat=0)


class Auth(unittest.TestCase):
    def test_wrong_password_is_an_authentication_error(self):
        with self.assertRaises(pika.exceptions.AMQPConnectionError) as cm:
            pika.BlockingConnection(params("u", "wrong"))
        self.assertIsInstance(cm.exception, (pika.exceptions.ProbableAuthenticationError,
                                             pika.exceptions.AuthenticationError))
        self.assertIn("ACCESS_REFUSED - Login was refused using authentication mechanism "
                      "PLAIN", repr(cm.exception))

    def test_unknown_user_is_an_authentication_error(self):
        with self.assertRaises((pika.exceptions.ProbableAuthenticationError,
                                pika.exceptions.AuthenticationError)):
            pika.BlockingConnection(params("nobody", "pu"))

    def test_definitions_users_log_in(self):
        for user, password in (("u", "pu"), ("s256", "test12")):
            conn = pika.BlockingConnection(params(user, password))
            try:
                ch = conn.channel()
                q = "c-" + uuid.uuid4().hex[:12]
                ch.queue_declare(q, auto_delete=True)
                ch.basic_publish("", q, b"hello",
                                 pika.BasicProperties(user_id=user))
                m, props, body = None, None, None
                for _ in range(100):  # the publish is asynchronous
                    m, props, body = ch.basic_get(q, auto_ack=True)
                    if m is not None:
                        break
                self.assertEqual(body, b"hello")
                self.assertEqual(props.user_id, user)
                ch.queue_delete(q)
            finally:
                conn.close()

    def test_queue_declare_refused_403(self):
        conn = pika.BlockingConnection(params("u", "pu"))
        try:
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare("x-not-mine")
            self.assertEqual(cm.exception.reply_code, 403)
            self.assertEqual(cm.exception.reply_text,
                             "ACCESS_REFUSED - configure access to queue 'x-not-mine' in "
                             "vhost '/' refused for user 'u'")
            # The connection is fine; a new channel works.
            ch2 = conn.channel()
            ch2.queue_declare("c-" + uuid.uuid4().hex[:12], auto_delete=True)
        finally:
            conn.close()

    def test_user_id_mismatch_406(self):
        conn = pika.BlockingConnection(params("u", "pu"))
        try:
            ch = conn.channel()
            q = "c-" + uuid.uuid4().hex[:12]
            ch.queue_declare(q, auto_delete=True)
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="someone"))
                ch.queue_declare(q, passive=True)  # sync point
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertEqual(cm.exception.reply_text,
                             "PRECONDITION_FAILED - user_id property set to 'someone' but "
                             "authenticated user was 'u'")
        finally:
            conn.close()

    def test_vhost_refused_530(self):
        with self.assertRaises(pika.exceptions.AMQPConnectionError) as cm:
            pika.BlockingConnection(params("v1only", "pv", "/"))
        self.assertIsInstance(cm.exception, pika.exceptions.ProbableAccessDeniedError)
        said = repr(cm.exception).replace("\\", "")  # pika nests reprs: unescape
        self.assertIn("(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'v1only'\"",
                      said)
        conn = pika.BlockingConnection(params("v1only", "pv", "v1"))
        conn.close()


class PermissionPaths(unittest.TestCase):
    """Each place RabbitMQ checks a permission, allowed and refused, as pika
    sees it.  User p: configure .*, write ^w-, read ^r- (and amq.topic,
    whose topic permissions allow p.* keys only)."""

    def setUp(self):
        self.conn = pika.BlockingConnection(params("p", "pp"))
        self.ch = self.conn.channel()
        self.tag = uuid.uuid4().hex[:8]

    def tearDown(self):
        if self.conn.is_open:
            self.conn.close()

    def refused(self, fn, text):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            fn()
            self.ch.queue_declare("w-sync-" + self.tag, auto_delete=True)  # sync point
        self.assertEqual(cm.exception.reply_code, 403)
        self.assertEqual(cm.exception.reply_text, "ACCESS_REFUSED - " + text)
        self.ch = self.conn.channel()

    def test_publish_needs_write_on_the_exchange(self):
        t = self.tag
        self.ch.exchange_declare("w-x" + t, "fanout", auto_delete=True)
        self.ch.exchange_declare("n-x" + t, "fanout", auto_delete=True)
        self.ch.basic_publish("w-x" + t, "", b"ok")
        self.refused(lambda: self.ch.basic_publish("n-x" + t, "", b"no"),
                     "write access to exchange 'n-x%s' in vhost '/' refused for user 'p'" % t)
        self.refused(lambda: self.ch.basic_publish("", "any", b"no"),
                     "write access to exchange 'amq.default' in vhost '/' refused for user 'p'")

    def test_bind_needs_write_on_the_queue_and_read_on_the_exchange(self):
        t = self.tag
        for q in ("w-q", "n-q"):
            self.ch.queue_declare(q + t, auto_delete=True)
        for x in ("r-x", "n-x"):
            self.ch.exchange_declare(x + t, "direct", auto_delete=True)
        self.ch.queue_bind("w-q" + t, "r-x" + t, "k")
        self.ch.queue_unbind("w-q" + t, "r-x" + t, "k")
        self.refused(lambda: self.ch.queue_bind("n-q" + t, "r-x" + t, "k"),
                     "write access to queue 'n-q%s' in vhost '/' refused for user 'p'" % t)
        self.refused(lambda: self.ch.queue_bind("w-q" + t, "n-x" + t, "k"),
                     "read access to exchange 'n-x%s' in vhost '/' refused for user 'p'" % t)

    def test_get_consume_purge_need_read_on_the_queue(self):
        t = self.tag
        for q in ("r-q", "n-q"):
            self.ch.queue_declare(q + t, auto_delete=True)
        self.ch.basic_get("r-q" + t, auto_ack=True)
        self.ch.queue_purge("r-q" + t)
        self.ch.basic_consume("r-q" + t, lambda *a: None, auto_ack=True)
        text = "read access to queue 'n-q%s' in vhost '/' refused for user 'p'" % t
        self.refused(lambda: self.ch.basic_get("n-q" + t, auto_ack=True), text)
        self.refused(lambda: self.ch.queue_purge("n-q" + t), text)
        self.refused(lambda: self.ch.basic_consume("n-q" + t, lambda *a: None), text)

    def test_declare_and_delete_need_configure(self):
        conn = pika.BlockingConnection(params("u", "pu"))  # configure ^c- only
        try:
            ch = conn.channel()
            ch.exchange_declare("c-x" + self.tag, "fanout", auto_delete=True)
            ch.exchange_delete("c-x" + self.tag)
            for fn, what in ((lambda: ch.exchange_declare("e" + self.tag, "fanout"),
                              "exchange 'e%s'" % self.tag),
                             (lambda: ch.exchange_delete("d" + self.tag),
                              "exchange 'd%s'" % self.tag),
                             (lambda: ch.queue_delete("q" + self.tag),
                              "queue 'q%s'" % self.tag)):
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                    fn()
                self.assertEqual(cm.exception.reply_code, 403)
                self.assertEqual(cm.exception.reply_text,
                                 "ACCESS_REFUSED - configure access to %s in vhost '/' "
                                 "refused for user 'u'" % what)
                ch = conn.channel()
        finally:
            conn.close()

    def test_topic_permissions(self):
        t = self.tag
        q = "w-" + t  # writable (^w-): bindable
        self.ch.queue_declare(q, auto_delete=True)
        self.ch.basic_publish("amq.topic", "p.news", b"ok")
        self.refused(lambda: self.ch.basic_publish("amq.topic", "q.news", b"no"),
                     "write access to topic 'q.news' in exchange 'amq.topic' in vhost '/' "
                     "refused for user 'p'")
        self.ch.queue_bind(q, "amq.topic", "p.#")
        self.refused(lambda: self.ch.queue_bind(q, "amq.topic", "#"),
                     "read access to topic '#' in exchange 'amq.topic' in vhost '/' refused "
                     "for user 'p'")


class External(unittest.TestCase):
    def tls_params(self, credentials, with_cert=True):
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
        ctx.check_hostname = False
        if with_cert:
            ctx.load_cert_chain(os.path.join(CERTS, "alice.pem"),
                                os.path.join(CERTS, "alice.key"))
        return pika.ConnectionParameters(
            host="127.0.0.1", port=TLS_PORT, credentials=credentials,
            ssl_options=pika.SSLOptions(ctx, "localhost"),
            connection_attempts=1, socket_timeout=10, heartbeat=0)

    def test_external_login_with_a_client_certificate(self):
        conn = pika.BlockingConnection(
            self.tls_params(pika.credentials.ExternalCredentials()))
        try:
            ch = conn.channel()
            q = "ext-" + uuid.uuid4().hex[:12]
            ch.queue_declare(q, auto_delete=True)
            # The broker knows her as the certificate's CN.
            ch.basic_publish("", q, b"hi", pika.BasicProperties(user_id="alice"))
            body = None
            for _ in range(100):
                m, props, body = ch.basic_get(q, auto_ack=True)
                if m is not None:
                    break
            self.assertEqual(body, b"hi")
        finally:
            conn.close()

    def test_no_password_means_no_plain_login(self):
        with self.assertRaises((pika.exceptions.ProbableAuthenticationError,
                                pika.exceptions.AuthenticationError)):
            pika.BlockingConnection(self.tls_params(pika.PlainCredentials("alice", "")))


def make_certs(work):
    d = os.path.join(work, "certs")
    os.makedirs(d, exist_ok=True)
    def sh(*args):
        subprocess.run(args, cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
       "-out", "ca.pem", "-days", "2", "-subj", "/CN=interop test CA")
    for name, subj in (("server", "/CN=localhost"), ("alice", "/O=Example/CN=alice")):
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
           "-out", name + ".csr", "-subj", subj)
        sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
           "ca.key", "-CAcreateserial", "-out", name + ".pem", "-days", "2")
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_amqpd(amqpd, work):
    defs = os.path.join(work, "auth-definitions.json")
    with open(defs, "w") as f:
        json.dump(DEFINITIONS, f)
    global TLS_PORT, CERTS
    CERTS = make_certs(work)
    port = free_port()
    TLS_PORT = free_port()
    log = open(os.path.join(work, "amqpd-auth.log"), "w")
    proc = subprocess.Popen(
        [amqpd, "--management-listen", "none", "--listen", "127.0.0.1:%d" % port,
         "--listen-tls", "127.0.0.1:%d" % TLS_PORT,
         "--tls-cert", os.path.join(CERTS, "server.pem"),
         "--tls-key", os.path.join(CERTS, "server.key"),
         "--tls-ca", os.path.join(CERTS, "ca.pem"), "--tls-verify", "peer",
         "--data-dir", os.path.join(work, "data-auth"), "--log-level", "debug",
         "--definitions", defs, "--login-failure-delay", "50"],
        stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit("amqpd exited during startup (log %s)" % log.name)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            socket.create_connection(("127.0.0.1", TLS_PORT), timeout=1).close()
            return proc, port, log.name
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("amqpd did not start listening within 15 s")


def main():
    global BROKER
    argv = list(sys.argv)
    if len(argv) < 3:
        sys.stderr.write("usage: test_pika_auth.py AMQPD WORKDIR [unittest args]\n")
        return 2
    amqpd, work = argv.pop(1), argv.pop(1)
    proc, port, log = start_amqpd(amqpd, work)
    BROKER = ("127.0.0.1", port)
    try:
        prog = unittest.main(argv=argv, exit=False, verbosity=2)
    finally:
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "hung"
    r = prog.result
    print("pika auth: %d passed, %d failed, %d skipped" % (
        r.testsRun - len(r.failures) - len(r.errors) - len(r.skipped),
        len(r.failures) + len(r.errors), len(r.skipped)))
    ok = r.wasSuccessful()
    if not alive:
        print("pika auth: amqpd died during the tests (log %s)" % log)
        ok = False
    elif rc != 0:
        print("pika auth: amqpd exited with %s after SIGTERM (expected 0; log %s)" % (rc, log))
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
