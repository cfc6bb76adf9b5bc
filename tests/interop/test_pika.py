#!/usr/bin/python3
"""Interop tests: pika (Debian's python3-pika) against an AMQP 0-9-1 broker.

Usage: /usr/bin/python3 test_pika.py HOST:PORT [unittest options]
   or: AMQPD_INTEROP_BROKER=HOST:PORT /usr/bin/python3 test_pika.py

Set AMQPD_INTEROP_EXTERNAL=1 (or host:port) when the broker is not amqpd
(e.g. RabbitMQ) to skip the product == "amqpd" check.  Every test uses
uniquely named, auto-deleted or explicitly deleted entities, so it can run
against a shared broker.
"""

import datetime
import decimal
import os
import sys
import time
import unittest
import uuid

import pika
import pika.exceptions

BROKER = None  # (host, port), set in main


def parse_broker(arg):
    host, _, port = arg.rpartition(":")
    return host or "127.0.0.1", int(port)


def params():
    return pika.ConnectionParameters(
        host=BROKER[0], port=BROKER[1],
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=3, retry_delay=0.5, socket_timeout=10,
        blocked_connection_timeout=30, heartbeat=0)


def uniq(prefix):
    return "interop.pika.%s.%s" % (prefix, uuid.uuid4().hex[:12])


class Base(unittest.TestCase):
    def setUp(self):
        self.conn = pika.BlockingConnection(params())
        self.ch = self.conn.channel()
        self.cleanup_queues = []
        self.cleanup_exchanges = []

    def tearDown(self):
        try:
            if self.conn.is_open:
                ch = self.conn.channel()
                for q in self.cleanup_queues:
                    ch.queue_delete(q)
                for x in self.cleanup_exchanges:
                    ch.exchange_delete(x)
                self.conn.close()
        except pika.exceptions.AMQPError:
            pass

    # helpers -----------------------------------------------------------
    def queue(self, name=None, **kw):
        name = name or uniq("q")
        r = self.ch.queue_declare(name, **kw)
        self.assertEqual(r.method.queue, name)
        self.cleanup_queues.append(name)
        return name

    def exchange(self, xtype, **kw):
        name = uniq(xtype)
        self.ch.exchange_declare(name, exchange_type=xtype, **kw)
        self.cleanup_exchanges.append(name)
        return name

    def get_body(self, q):
        m, _, body = self.ch.basic_get(q, auto_ack=True)
        return None if m is None else body

    def drain(self, q):
        """All bodies currently in q (auto-ack), in order."""
        out = []
        while True:
            b = self.get_body(q)
            if b is None:
                return out
            out.append(b)

    def count(self, q):
        return self.ch.queue_declare(q, passive=True).method.message_count

    def assertCount(self, q, n, timeout=3.0):
        """queue.declare-ok's message_count may lag behind publishes that
        were not confirmed (RabbitMQ), so poll until it settles on n."""
        end = time.monotonic() + timeout
        while True:
            c = self.count(q)
            if c == n or time.monotonic() > end:
                break
            time.sleep(0.02)
        self.assertEqual(c, n, "message_count of %s" % q)

    def wait_for(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                return False
            self.conn.process_data_events(time_limit=0.05)
        return True


class TestConnection(Base):
    def test_server_properties(self):
        sp = self.conn._impl.server_properties
        self.assertIsInstance(sp, dict)
        if not os.environ.get("AMQPD_INTEROP_EXTERNAL"):
            self.assertEqual(sp.get("product"), "amqpd")
        for k in ("product", "version", "platform"):
            self.assertIn(k, sp)
        caps = sp.get("capabilities")
        self.assertIsInstance(caps, dict)
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify",
                    "exchange_exchange_bindings", "connection.blocked",
                    "per_consumer_qos", "direct_reply_to",
                    "authentication_failure_close", "consumer_priorities"):
            self.assertIs(caps.get(cap), True, cap)
        self.assertTrue(self.conn.publisher_confirms_supported)
        self.assertTrue(self.conn.basic_nack_supported)
        self.assertTrue(self.conn.consumer_cancel_notify_supported)
        self.assertTrue(self.conn.exchange_exchange_bindings_supported)

    def test_bad_credentials(self):
        p = params()
        p.credentials = pika.PlainCredentials("guest", "wrong-password")
        p.connection_attempts = 1
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as cm:
            pika.BlockingConnection(p)
        self.assertIn("ACCESS_REFUSED", str(cm.exception))

    def test_many_channels(self):
        chans = [self.conn.channel() for _ in range(20)]
        q = self.queue(exclusive=True)
        for i, c in enumerate(chans):
            c.basic_publish("", q, b"%d" % i)
        for c in chans[::2]:
            c.close()
        self.assertEqual(sorted(int(b) for b in self.drain(q)), list(range(20)))


class TestExchanges(Base):
    def test_default_exchange(self):
        q = self.queue(exclusive=True)
        self.ch.basic_publish("", q, b"hello")
        self.assertEqual(self.get_body(q), b"hello")
        self.assertIsNone(self.get_body(q))

    def test_direct(self):
        x = self.exchange("direct", auto_delete=True)
        qa, qb = self.queue(exclusive=True), self.queue(exclusive=True)
        self.ch.queue_bind(qa, x, "a")
        self.ch.queue_bind(qb, x, "b")
        self.ch.queue_bind(qb, x, "both")
        self.ch.queue_bind(qa, x, "both")
        for k in ("a", "b", "both", "none"):
            self.ch.basic_publish(x, k, k.encode())
        self.assertEqual(self.drain(qa), [b"a", b"both"])
        self.assertEqual(self.drain(qb), [b"b", b"both"])
        self.ch.queue_unbind(qa, x, "a")
        self.ch.basic_publish(x, "a", b"a2")
        self.assertEqual(self.drain(qa), [])

    def test_fanout(self):
        x = self.exchange("fanout", auto_delete=True)
        qs = [self.queue(exclusive=True) for _ in range(3)]
        for q in qs:
            self.ch.queue_bind(q, x, "ignored")
        self.ch.basic_publish(x, "anything", b"f1")
        self.ch.basic_publish(x, "", b"f2")
        for q in qs:
            self.assertEqual(self.drain(q), [b"f1", b"f2"])

    def test_topic(self):
        x = self.exchange("topic", auto_delete=True)
        star, hash_, exact, hash_only = (self.queue(exclusive=True) for _ in range(4))
        self.ch.queue_bind(star, x, "stock.*.nyse")
        self.ch.queue_bind(hash_, x, "stock.#")
        self.ch.queue_bind(exact, x, "stock.ibm.nyse")
        self.ch.queue_bind(hash_only, x, "#")
        keys = ["stock.ibm.nyse", "stock.nyse", "stock.a.b.nyse", "stock",
                "stock.x", "other.ibm.nyse", ""]
        for k in keys:
            self.ch.basic_publish(x, k, k.encode())
        self.assertEqual(self.drain(star), [b"stock.ibm.nyse"])
        self.assertEqual(self.drain(hash_), [b"stock.ibm.nyse", b"stock.nyse",
                                             b"stock.a.b.nyse", b"stock", b"stock.x"])
        self.assertEqual(self.drain(exact), [b"stock.ibm.nyse"])
        self.assertEqual(self.drain(hash_only), [k.encode() for k in keys])

    def test_topic_hash_in_middle(self):
        x = self.exchange("topic", auto_delete=True)
        q = self.queue(exclusive=True)
        self.ch.queue_bind(q, x, "a.#.z")
        for k in ("a.z", "a.b.z", "a.b.c.z", "a.b", "b.z", "a.z.z"):
            self.ch.basic_publish(x, k, k.encode())
        self.assertEqual(self.drain(q), [b"a.z", b"a.b.z", b"a.b.c.z", b"a.z.z"])

    def test_headers(self):
        x = self.exchange("headers", auto_delete=True)
        q_all, q_any = self.queue(exclusive=True), self.queue(exclusive=True)
        self.ch.queue_bind(q_all, x, "", arguments={"x-match": "all", "format": "pdf",
                                                     "type": "report"})
        self.ch.queue_bind(q_any, x, "", arguments={"x-match": "any", "format": "pdf",
                                                     "type": "report"})

        def pub(body, headers):
            self.ch.basic_publish(x, "rk", body,
                                  pika.BasicProperties(headers=headers))

        pub(b"both", {"format": "pdf", "type": "report", "extra": 1})
        pub(b"format", {"format": "pdf"})
        pub(b"type", {"type": "report"})
        pub(b"wrong", {"format": "zip", "type": "log"})
        pub(b"none", None)
        self.assertEqual(self.drain(q_all), [b"both"])
        self.assertEqual(self.drain(q_any), [b"both", b"format", b"type"])

    def test_exchange_to_exchange(self):
        # not auto-delete: unbinding the last binding would delete src
        src = self.exchange("direct")
        dst = self.exchange("fanout")
        q = self.queue(exclusive=True)
        self.ch.exchange_bind(destination=dst, source=src, routing_key="rk")
        self.ch.queue_bind(q, dst)
        self.ch.basic_publish(src, "rk", b"via-e2e")
        self.ch.basic_publish(src, "other", b"dropped")
        self.assertEqual(self.drain(q), [b"via-e2e"])
        self.ch.exchange_unbind(destination=dst, source=src, routing_key="rk")
        self.ch.basic_publish(src, "rk", b"after-unbind")
        self.assertEqual(self.drain(q), [])

    def test_exchange_declare_passive_and_redeclare(self):
        x = self.exchange("topic", durable=False)
        self.ch.exchange_declare(x, exchange_type="topic", passive=True)
        self.ch.exchange_declare(x, exchange_type="topic")  # equivalent: ok
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.exchange_declare(x, exchange_type="direct")
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertTrue(cm.exception.reply_text.startswith("PRECONDITION_FAILED"))


class TestMessages(Base):
    def test_all_properties_roundtrip(self):
        q = self.queue(exclusive=True)
        ts = 1700000000
        headers = {
            "str": "text \u00e9\u4e2d",
            "int": 42,
            "neg": -7,
            "big": 2 ** 40,
            "bool_t": True,
            "bool_f": False,
            "dec": decimal.Decimal("3.14"),
            "when": datetime.datetime(2023, 11, 14, 22, 13, 20),
            "nested": {"a": 1, "b": "two", "c": {"deep": "yes"}},
            "list": [1, "two", {"three": 3}, [4]],
            "bytes": b"\x00\x01\xffbin",
            "empty": "",
            "none": None,
        }
        props = pika.BasicProperties(
            content_type="application/json", content_encoding="gzip",
            headers=headers, delivery_mode=2, priority=5,
            correlation_id="corr-1", reply_to="reply.queue", expiration="60000",
            message_id="msg-1", timestamp=ts, type="my.type", user_id="guest",
            app_id="interop", cluster_id="cluster-x")
        body = bytes(range(256)) * 4
        self.ch.basic_publish("", q, body, props)
        m, p, b = self.ch.basic_get(q, auto_ack=True)
        self.assertIsNotNone(m)
        self.assertEqual(b, body)
        self.assertEqual(m.routing_key, q)
        self.assertEqual(m.exchange, "")
        self.assertFalse(m.redelivered)
        for attr in ("content_type", "content_encoding", "delivery_mode", "priority",
                     "correlation_id", "reply_to", "expiration", "message_id",
                     "timestamp", "type", "user_id", "app_id", "cluster_id"):
            self.assertEqual(getattr(p, attr), getattr(props, attr), attr)
        got = dict(p.headers)
        self.assertEqual(got.pop("bytes"), b"\x00\x01\xffbin")
        exp = dict(headers)
        exp.pop("bytes")
        self.assertEqual(got, exp)

    def test_no_properties_empty_body(self):
        q = self.queue(exclusive=True)
        self.ch.basic_publish("", q, b"")
        m, p, b = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(b, b"")
        self.assertIsNone(p.headers)
        self.assertIsNone(p.content_type)

    def test_user_id_mismatch_rejected(self):
        q = self.queue(exclusive=False, auto_delete=True)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="someone-else"))
            self.ch.queue_declare(q, passive=True)  # sync point
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertEqual(cm.exception.reply_text,
                         "PRECONDITION_FAILED - user_id property set to 'someone-else' "
                         "but authenticated user was 'guest'")

    def test_large_message(self):
        q = self.queue(exclusive=True)
        body = os.urandom(5 * 1024 * 1024)
        self.ch.basic_publish("", q, body)
        m, _, b = self.ch.basic_get(q, auto_ack=True)
        self.assertIsNotNone(m)
        self.assertEqual(len(b), len(body))
        self.assertEqual(b, body)
        # and through a consumer
        self.ch.basic_publish("", q, body)
        for method, _, b in self.ch.consume(q, auto_ack=True, inactivity_timeout=10):
            self.assertIsNotNone(method, "timed out waiting for 5 MB delivery")
            self.assertEqual(b, body)
            break
        self.ch.cancel()


class TestConsume(Base):
    def test_manual_ack(self):
        q = self.queue(exclusive=True)
        n = 50
        for i in range(n):
            self.ch.basic_publish("", q, b"m%d" % i)
        got = []
        for method, _, body in self.ch.consume(q, inactivity_timeout=5):
            self.assertIsNotNone(method, "timed out")
            got.append(body)
            self.assertFalse(method.redelivered)
            self.ch.basic_ack(method.delivery_tag)
            if len(got) == n:
                break
        self.assertEqual(got, [b"m%d" % i for i in range(n)])
        self.ch.cancel()
        self.assertCount(q, 0)

    def test_ack_multiple_and_unacked_requeued_on_close(self):
        q = self.queue()
        for i in range(10):
            self.ch.basic_publish("", q, b"%d" % i)
        c2 = self.conn.channel()
        tags = []
        for _ in range(10):
            m, _, _ = c2.basic_get(q)
            tags.append(m.delivery_tag)
        c2.basic_ack(tags[4], multiple=True)  # acks 0..4
        c2.close()  # 5..9 unacked -> requeued
        self.assertCount(q, 5)
        m, _, b = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(b, b"5")
        self.assertTrue(m.redelivered)

    def test_nack_requeue_sets_redelivered(self):
        q = self.queue(exclusive=True)
        self.ch.basic_publish("", q, b"again")
        deliveries = []

        def on_msg(ch, method, props, body):
            deliveries.append((method.redelivered, body))
            if len(deliveries) == 1:
                ch.basic_nack(method.delivery_tag, requeue=True)
            else:
                ch.basic_ack(method.delivery_tag)

        tag = self.ch.basic_consume(q, on_msg)
        self.assertTrue(self.wait_for(lambda: len(deliveries) >= 2))
        self.ch.basic_cancel(tag)
        self.assertEqual(deliveries, [(False, b"again"), (True, b"again")])
        self.assertCount(q, 0)

    def test_nack_without_requeue_drops(self):
        q = self.queue(exclusive=True)
        for i in range(3):
            self.ch.basic_publish("", q, b"%d" % i)
        m0, _, _ = self.ch.basic_get(q)
        self.ch.basic_nack(m0.delivery_tag, requeue=False)
        m1, _, _ = self.ch.basic_get(q)
        m2, _, _ = self.ch.basic_get(q)
        self.ch.basic_nack(m2.delivery_tag, multiple=True, requeue=False)
        self.assertCount(q, 0)
        self.assertIsNone(self.get_body(q))

    def test_nack_multiple_requeue(self):
        q = self.queue(exclusive=True)
        for i in range(3):
            self.ch.basic_publish("", q, b"%d" % i)
        tags = [self.ch.basic_get(q)[0].delivery_tag for _ in range(3)]
        self.ch.basic_nack(tags[-1], multiple=True, requeue=True)
        got = []
        for _ in range(3):
            m, _, b = self.ch.basic_get(q, auto_ack=True)
            self.assertTrue(m.redelivered)
            got.append(b)
        self.assertEqual(got, [b"0", b"1", b"2"])

    def test_reject(self):
        q = self.queue(exclusive=True)
        self.ch.basic_publish("", q, b"r1")
        self.ch.basic_publish("", q, b"r2")
        m, _, b = self.ch.basic_get(q)
        self.assertEqual(b, b"r1")
        self.ch.basic_reject(m.delivery_tag, requeue=True)
        m, _, b = self.ch.basic_get(q)
        self.assertEqual(b, b"r1")
        self.assertTrue(m.redelivered)
        self.ch.basic_reject(m.delivery_tag, requeue=False)
        m, _, b = self.ch.basic_get(q)
        self.assertEqual(b, b"r2")
        self.assertFalse(m.redelivered)
        self.ch.basic_ack(m.delivery_tag)
        self.assertIsNone(self.get_body(q))

    def test_basic_get(self):
        q = self.queue(exclusive=True)
        self.assertEqual(self.ch.basic_get(q), (None, None, None))
        for i in range(3):
            self.ch.basic_publish("", q, b"g%d" % i,
                                  pika.BasicProperties(message_id="id%d" % i))
        m, p, b = self.ch.basic_get(q)
        self.assertEqual((b, p.message_id), (b"g0", "id0"))
        self.assertEqual(m.message_count, 2)
        self.assertEqual(m.delivery_tag, 1)
        self.ch.basic_ack(m.delivery_tag)
        m, _, b = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual((b, m.message_count, m.delivery_tag), (b"g1", 1, 2))
        m, _, b = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual((b, m.message_count), (b"g2", 0))
        self.assertEqual(self.ch.basic_get(q), (None, None, None))

    def test_qos_prefetch(self):
        q = self.queue(exclusive=True)
        for i in range(10):
            self.ch.basic_publish("", q, b"%d" % i)
        self.ch.basic_qos(prefetch_count=3)
        got = []
        tag = self.ch.basic_consume(q, lambda ch, m, p, b: got.append(m))
        self.assertTrue(self.wait_for(lambda: len(got) >= 3))
        self.conn.process_data_events(time_limit=0.5)
        self.assertEqual(len(got), 3, "prefetch_count=3 not honoured")
        self.ch.basic_ack(got[0].delivery_tag)
        self.assertTrue(self.wait_for(lambda: len(got) >= 4))
        self.conn.process_data_events(time_limit=0.3)
        self.assertEqual(len(got), 4)
        self.ch.basic_ack(got[-1].delivery_tag, multiple=True)
        self.assertTrue(self.wait_for(lambda: len(got) >= 7))
        self.conn.process_data_events(time_limit=0.3)
        self.assertEqual(len(got), 7)
        self.ch.basic_cancel(tag)

    def test_two_consumers_round_robin(self):
        q = self.queue(exclusive=True)
        a, b = [], []
        self.ch.basic_consume(q, lambda ch, m, p, body: a.append(body), auto_ack=True)
        self.ch.basic_consume(q, lambda ch, m, p, body: b.append(body), auto_ack=True)
        for i in range(10):
            self.ch.basic_publish("", q, b"%d" % i)
        self.assertTrue(self.wait_for(lambda: len(a) + len(b) == 10))
        self.assertEqual(len(a), 5)
        self.assertEqual(len(b), 5)

    def test_consumer_priorities(self):
        q = self.queue(exclusive=True)
        lo, hi = [], []
        self.ch.basic_consume(q, lambda ch, m, p, b: lo.append(b), auto_ack=True,
                              arguments={"x-priority": 1})
        self.ch.basic_consume(q, lambda ch, m, p, b: hi.append(b), auto_ack=True,
                              arguments={"x-priority": 10})
        for i in range(10):
            self.ch.basic_publish("", q, b"%d" % i)
        self.assertTrue(self.wait_for(lambda: len(lo) + len(hi) == 10))
        self.assertEqual((len(lo), len(hi)), (0, 10))

    def test_per_consumer_and_global_qos(self):
        q = self.queue(exclusive=True)
        for i in range(20):
            self.ch.basic_publish("", q, b"x")
        # global=False: the limit applies to each consumer separately
        self.ch.basic_qos(prefetch_count=2, global_qos=False)
        a, b = [], []
        self.ch.basic_consume(q, lambda ch, m, p, body: a.append(m))
        self.ch.basic_consume(q, lambda ch, m, p, body: b.append(m))
        self.assertTrue(self.wait_for(lambda: len(a) + len(b) >= 4))
        self.conn.process_data_events(time_limit=0.3)
        self.assertEqual((len(a), len(b)), (2, 2))
        # global=True: one limit shared by the channel's consumers
        ch2 = self.conn.channel()
        q2 = uniq("gq")
        ch2.queue_declare(q2, exclusive=True)
        for i in range(20):
            ch2.basic_publish("", q2, b"x")
        ch2.basic_qos(prefetch_count=3, global_qos=True)
        c, d = [], []
        ch2.basic_consume(q2, lambda ch, m, p, body: c.append(m))
        ch2.basic_consume(q2, lambda ch, m, p, body: d.append(m))
        self.assertTrue(self.wait_for(lambda: len(c) + len(d) >= 3))
        self.conn.process_data_events(time_limit=0.3)
        self.assertEqual(len(c) + len(d), 3)

    def test_cancel_notification_on_queue_delete(self):
        q = self.queue(auto_delete=False)
        cancelled = []
        self.ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
        tag = self.ch.basic_consume(q, lambda *a: None)
        other = self.conn.channel()
        other.queue_delete(q)
        self.assertTrue(self.wait_for(lambda: cancelled), "no basic.cancel from broker")
        self.assertEqual(cancelled[0].method.consumer_tag, tag)
        self.assertTrue(self.ch.is_open)
        self.assertNotIn(tag, self.ch.consumer_tags)
        # the channel is still usable
        q2 = self.queue(exclusive=True)
        self.ch.basic_publish("", q2, b"still-ok")
        self.assertEqual(self.get_body(q2), b"still-ok")

    def test_exclusive_consumer(self):
        q = self.queue(exclusive=True)
        self.ch.basic_consume(q, lambda *a: None, exclusive=True)
        c2 = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            c2.basic_consume(q, lambda *a: None)
        self.assertEqual(cm.exception.reply_code, 403)
        self.assertTrue(cm.exception.reply_text.startswith("ACCESS_REFUSED"))


class TestQueues(Base):
    def test_server_named_queue_and_purge_delete(self):
        r = self.ch.queue_declare("", exclusive=True)
        q = r.method.queue
        self.assertTrue(q.startswith("amq.gen-"), q)
        for i in range(4):
            self.ch.basic_publish("", q, b"x")
        self.assertCount(q, 4)
        self.assertEqual(self.ch.queue_purge(q).method.message_count, 4)
        self.ch.basic_publish("", q, b"y")
        self.assertEqual(self.ch.queue_delete(q).method.message_count, 1)

    def test_channel_error_leaves_connection_usable(self):
        missing = uniq("missing")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.queue_declare(missing, passive=True)
        self.assertEqual(cm.exception.reply_code, 404)
        self.assertEqual(cm.exception.reply_text,
                         "NOT_FOUND - no queue '%s' in vhost '/'" % missing)
        self.assertFalse(self.ch.is_open)
        self.assertTrue(self.conn.is_open)
        ch = self.conn.channel()
        q = uniq("after")
        ch.queue_declare(q, exclusive=True)
        ch.basic_publish("", q, b"ok")
        m, _, b = ch.basic_get(q, auto_ack=True)
        self.assertEqual(b, b"ok")
        self.ch = ch

    def test_publish_to_missing_exchange(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.basic_publish(uniq("nox"), "rk", b"x")
            self.ch.basic_qos(prefetch_count=1)  # sync point
        self.assertEqual(cm.exception.reply_code, 404)
        self.assertTrue(cm.exception.reply_text.startswith("NOT_FOUND - no exchange"))
        self.assertTrue(self.conn.is_open)

    def test_exclusive_queue_locked_to_connection(self):
        q = self.queue(exclusive=True)
        other = pika.BlockingConnection(params())
        try:
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                other.channel().queue_declare(q, passive=True)
            self.assertEqual(cm.exception.reply_code, 405)
            self.assertTrue(cm.exception.reply_text.startswith("RESOURCE_LOCKED"))
        finally:
            other.close()


class TestConfirms(Base):
    def test_confirm_many(self):
        q = self.queue(exclusive=True)
        self.ch.confirm_delivery()
        n = 500
        for i in range(n):
            # BlockingChannel waits for the ack; raises NackError on nack
            self.ch.basic_publish("", q, b"c%d" % i)
        self.assertCount(q, n)

    def test_confirm_mandatory_unroutable(self):
        x = self.exchange("direct", auto_delete=True)
        self.ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError) as cm:
            self.ch.basic_publish(x, "nowhere", b"lost", mandatory=True)
        ret = cm.exception.messages[0]
        self.assertEqual(ret.method.reply_code, 312)
        self.assertEqual(ret.method.reply_text, "NO_ROUTE")
        self.assertEqual(ret.method.exchange, x)
        self.assertEqual(ret.method.routing_key, "nowhere")
        self.assertEqual(ret.body, b"lost")
        # non-mandatory unroutable is confirmed silently
        self.ch.basic_publish(x, "nowhere", b"dropped")
        self.assertTrue(self.ch.is_open)

    def test_basic_return_without_confirms(self):
        returned = []
        self.ch.add_on_return_callback(lambda ch, m, p, b: returned.append((m, p, b)))
        self.ch.basic_publish("", uniq("noqueue"), b"ret", mandatory=True,
                              properties=pika.BasicProperties(message_id="r1"))
        self.assertTrue(self.wait_for(lambda: returned))
        m, p, b = returned[0]
        self.assertEqual((m.reply_code, b, p.message_id), (312, b"ret", "r1"))


class TestTx(Base):
    def test_commit_and_rollback(self):
        q = self.queue(exclusive=True)
        self.ch.tx_select()
        self.ch.basic_publish("", q, b"rolled-back")
        self.assertCount(q, 0)
        self.ch.tx_rollback()
        self.assertCount(q, 0)
        self.ch.basic_publish("", q, b"t1")
        self.ch.basic_publish("", q, b"t2")
        self.ch.tx_commit()
        self.assertCount(q, 2)
        # acks are transactional too
        m, _, b = self.ch.basic_get(q)
        self.assertEqual(b, b"t1")
        self.ch.basic_ack(m.delivery_tag)
        self.ch.tx_rollback()
        self.ch.tx_commit()
        # the ack was rolled back: t1 is still unacked on this channel
        self.assertCount(q, 1)
        self.ch.basic_ack(m.delivery_tag)
        self.ch.tx_commit()
        m, _, b = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(b, b"t2")
        self.ch.tx_commit()

    def test_commit_without_select_is_error(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.tx_commit()
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertTrue(cm.exception.reply_text.startswith("PRECONDITION_FAILED"))


class TestDirectReplyTo(Base):
    def test_rpc(self):
        server_q = self.queue(exclusive=True)
        srv_ch = self.conn.channel()

        def serve(ch, method, props, body):
            ch.basic_publish("", props.reply_to, b"reply:" + body,
                             pika.BasicProperties(correlation_id=props.correlation_id))
            ch.basic_ack(method.delivery_tag)

        srv_ch.basic_consume(server_q, serve)
        replies = []
        self.ch.basic_consume("amq.rabbitmq.reply-to",
                              lambda ch, m, p, b: replies.append((p.correlation_id, b)),
                              auto_ack=True)
        for i in range(3):
            self.ch.basic_publish("", server_q, b"req%d" % i,
                                  pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                       correlation_id="c%d" % i))
        self.assertTrue(self.wait_for(lambda: len(replies) == 3))
        self.assertEqual(sorted(replies), [("c%d" % i, b"reply:req%d" % i) for i in range(3)])

    def test_reply_to_rewritten(self):
        q = self.queue(exclusive=True)
        self.ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        self.ch.basic_publish("", q, b"x",
                              pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        m, p, b = self.ch.basic_get(q, auto_ack=True)
        self.assertTrue(p.reply_to.startswith("amq.rabbitmq.reply-to."), p.reply_to)
        self.assertGreater(len(p.reply_to), len("amq.rabbitmq.reply-to."))

    def test_reply_to_without_consumer_is_error(self):
        q = self.queue(exclusive=True)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.basic_publish("", q, b"x",
                                  pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
            self.ch.basic_qos(prefetch_count=1)  # sync point
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertTrue(cm.exception.reply_text.startswith("PRECONDITION_FAILED"))


def main():
    global BROKER
    argv = list(sys.argv)
    target = os.environ.get("AMQPD_INTEROP_BROKER")
    if len(argv) > 1 and not argv[1].startswith("-"):
        target = argv.pop(1)
    if not target:
        sys.stderr.write("usage: test_pika.py HOST:PORT [unittest args]\n")
        return 2
    BROKER = parse_broker(target)
    prog = unittest.main(argv=argv, exit=False, verbosity=2)
    r = prog.result
    print("pika: %d passed, %d failed, %d skipped" % (
        r.testsRun - len(r.failures) - len(r.errors) - len(r.skipped),
        len(r.failures) + len(r.errors), len(r.skipped)))
    return 0 if r.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
