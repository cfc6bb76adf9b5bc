#!/usr/bin/python3
"""Interop tests: pika against the queue extensions (message TTL,
dead-lettering with x-death, priorities, length limits, x-expires, the
quorum delivery limit, CC and BCC, single
active consumer, the x-delayed-message exchange,
message deduplication).

Usage: /usr/bin/python3 test_pika_queue_ext.py HOST:PORT [unittest options]

Runs against any broker (guest/guest, vhost /): amqpd, or RabbitMQ to
check the tests themselves (AMQPD_INTEROP_EXTERNAL).  What RabbitMQ 3.10
does not do (x-last-death-* headers, expired messages leaving from the
middle of a queue) is checked only when the broker says it is amqpd.
Waits are for conditions with a deadline, never fixed sleeps.
"""

import sys
import time
import unittest
import uuid

import pika
import pika.exceptions

BROKER = None  # (host, port)


def connect():
    host, port = BROKER
    return pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))


def wait_for(cond, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


class QueueExt(unittest.TestCase):
    def setUp(self):
        self.conn = connect()
        self.ch = self.conn.channel()
        self.is_amqpd = self.conn._impl.server_properties.get("product") in (b"amqpd", "amqpd")
        self.dlx = name("dlx")
        self.dead = name("dead")
        self.ch.exchange_declare(self.dlx, "fanout", auto_delete=True)
        self.ch.queue_declare(self.dead, exclusive=True)
        self.ch.queue_bind(self.dead, self.dlx)

    def tearDown(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def count(self, q):
        return self.ch.queue_declare(q, passive=True).method.message_count

    def get_dead(self):
        def got():
            m = self.ch.basic_get(self.dead, auto_ack=True)
            return m if m[0] else None
        return wait_for(got, "a dead-lettered message")

    def test_queue_ttl_dead_letters_with_x_death(self):
        q = name("ttl")
        self.ch.queue_declare(q, exclusive=True,
                              arguments={"x-message-ttl": 50, "x-dead-letter-exchange": self.dlx})
        self.ch.basic_publish("", q, b"one")
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"one")
        self.assertEqual(meth.exchange, self.dlx)
        self.assertEqual(meth.routing_key, q)
        d = props.headers["x-death"]
        self.assertEqual(len(d), 1)
        self.assertEqual(d[0]["count"], 1)
        self.assertEqual(d[0]["reason"], "expired")
        self.assertEqual(d[0]["queue"], q)
        self.assertEqual(d[0]["exchange"], "")
        self.assertEqual(d[0]["routing-keys"], [q])
        self.assertNotIn("original-expiration", d[0])
        self.assertEqual(props.headers["x-first-death-reason"], "expired")
        self.assertEqual(props.headers["x-first-death-queue"], q)
        self.assertEqual(props.headers["x-first-death-exchange"], "")
        if self.is_amqpd:
            self.assertEqual(props.headers["x-last-death-reason"], "expired")
            self.assertEqual(props.headers["x-last-death-queue"], q)
        self.assertEqual(self.count(q), 0)

    def test_per_message_expiration(self):
        q = name("exp")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-dead-letter-exchange": self.dlx})
        self.ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="30"))
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"short")
        self.assertIsNone(props.expiration)  # removed from the dead-lettered copy
        self.assertEqual(props.headers["x-death"][0]["original-expiration"], "30")

    def test_expiry_behind_a_long_lived_head(self):
        if not self.is_amqpd:
            self.skipTest("RabbitMQ removes per-message TTL expiries at the head only")
        q = name("mid")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-dead-letter-exchange": self.dlx})
        self.ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="600000"))
        self.ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="20"))
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"short")
        self.assertEqual(self.count(q), 1)
        m = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(m[2], b"long")

    def test_ttl_zero_without_consumer(self):
        q = name("ttl0")
        self.ch.queue_declare(q, exclusive=True,
                              arguments={"x-message-ttl": 0, "x-dead-letter-exchange": self.dlx})
        self.ch.basic_publish("", q, b"now-or-never")
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"now-or-never")
        self.assertEqual(self.count(q), 0)

    def test_reject_with_routing_key_and_second_death(self):
        q1, q2 = name("r1"), name("r2")
        self.ch.queue_declare(q2, exclusive=True,
                              arguments={"x-message-ttl": 20, "x-dead-letter-exchange": self.dlx})
        self.ch.queue_declare(q1, exclusive=True,
                              arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": q2})
        self.ch.basic_publish("", q1, b"twice")
        m = wait_for(lambda: (lambda r: r if r[0] else None)(self.ch.basic_get(q1)), "the message")
        self.ch.basic_reject(m[0].delivery_tag, requeue=False)
        meth, props, body = self.get_dead()
        d = props.headers["x-death"]
        self.assertEqual([e["reason"] for e in d], ["expired", "rejected"])
        self.assertEqual([e["queue"] for e in d], [q2, q1])
        self.assertEqual(props.headers["x-first-death-reason"], "rejected")
        self.assertEqual(props.headers["x-first-death-queue"], q1)

    def test_priorities(self):
        q = name("prio")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-max-priority": 10})
        for p, body in [(1, b"p1"), (5, b"p5a"), (3, b"p3"), (10, b"p10"), (200, b"p200"),
                        (0, b"p0"), (5, b"p5b")]:
            self.ch.basic_publish("", q, body, pika.BasicProperties(priority=p))
        got = [self.ch.basic_get(q, auto_ack=True)[2] for _ in range(7)]
        self.assertEqual(got, [b"p10", b"p200", b"p5a", b"p5b", b"p3", b"p1", b"p0"])

    def test_max_length_drop_head_dead_letters(self):
        q = name("ml")
        self.ch.queue_declare(q, exclusive=True,
                              arguments={"x-max-length": 2, "x-dead-letter-exchange": self.dlx})
        for i in range(4):
            self.ch.basic_publish("", q, str(i).encode())
        bodies = []
        for _ in range(2):
            meth, props, body = self.get_dead()
            self.assertEqual(props.headers["x-death"][0]["reason"], "maxlen")
            bodies.append(body)
        self.assertEqual(bodies, [b"0", b"1"])
        self.assertEqual([self.ch.basic_get(q, auto_ack=True)[2] for _ in range(2)], [b"2", b"3"])

    def test_reject_publish_nacks(self):
        q = name("rp")
        self.ch.queue_declare(q, exclusive=True,
                              arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        self.ch.confirm_delivery()
        self.ch.basic_publish("", q, b"fits")
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", q, b"refused")
        self.assertEqual(self.count(q), 1)

    def test_reject_publish_dlx(self):
        q = name("rpd")
        self.ch.queue_declare(q, exclusive=True,
                              arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                         "x-dead-letter-exchange": self.dlx})
        self.ch.confirm_delivery()
        self.ch.basic_publish("", q, b"fits")
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", q, b"refused")
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"refused")
        self.assertEqual(props.headers["x-death"][0]["reason"], "maxlen")

    def test_queue_expires(self):
        q = name("xexp")
        self.ch.queue_declare(q, arguments={"x-expires": 100})

        # Probed with queue.bind: a declare, even a passive one, would
        # count as a use at RabbitMQ.
        def gone():
            ch = self.conn.channel()
            try:
                ch.queue_bind(q, "amq.fanout")
                ch.close()
                return False
            except pika.exceptions.ChannelClosedByBroker as e:
                return e.reply_code == 404
        wait_for(gone, "the unused queue to be deleted")

    def test_queue_expires_renewed_by_passive_declare(self):
        # As RabbitMQ: a passive declare is a use of the queue.
        q = name("xpass")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-expires": 1000})
        end = time.monotonic() + 2.5  # a use every 0.1 s: a wide margin
        while time.monotonic() < end:
            self.ch.queue_declare(q, passive=True)  # raises 404 once gone
            self.conn.sleep(0.1)

    def test_queue_expires_not_while_consumed(self):
        q = name("xkeep")
        self.ch.queue_declare(q, arguments={"x-expires": 100})
        self.ch.basic_consume(q, lambda *a: None)
        # A message published 300 ms later still arrives: the queue lives.
        self.conn.sleep(0.3)
        self.assertEqual(self.ch.queue_declare(q, passive=True).method.consumer_count, 1)
        self.ch.queue_delete(q)

    def test_quorum_delivery_limit(self):
        q = name("qq")
        self.ch.queue_declare(q, durable=True,
                              arguments={"x-queue-type": "quorum", "x-delivery-limit": 1,
                                         "x-dead-letter-exchange": self.dlx})
        self.ch.basic_publish("", q, b"poison")
        counts = []
        for _ in range(2):
            m = wait_for(lambda: (lambda r: r if r[0] else None)(self.ch.basic_get(q)),
                         "a delivery")
            counts.append((m[1].headers or {}).get("x-delivery-count"))
            self.ch.basic_nack(m[0].delivery_tag, requeue=True)
        self.assertIn(counts[0], (None, 0))
        self.assertEqual(counts[1], 1)
        meth, props, body = self.get_dead()
        self.assertEqual(body, b"poison")
        self.assertEqual(props.headers["x-death"][0]["reason"], "delivery_limit")
        self.assertEqual(self.count(q), 0)
        self.ch.queue_delete(q)

    def test_invalid_expiration_406(self):
        q = name("bad")
        self.ch.queue_declare(q, exclusive=True)
        for value, why in [("abc", "no_integer"), ("-1", "{value_negative,-1}")]:
            ch = self.conn.channel()
            ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=value))
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(q, passive=True)
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertEqual(cm.exception.reply_text,
                             "PRECONDITION_FAILED - invalid expiration '%s': %s" % (value, why))

    def drain(self, q):
        out = []
        while True:
            m = self.ch.basic_get(q, auto_ack=True)
            if not m[0]:
                return out
            out.append(m)

    def test_cc_bcc_sender_selected_distribution(self):
        x = name("ccx")
        qs = [name("cc") for _ in range(4)]
        self.ch.exchange_declare(x, "direct", auto_delete=True)
        for q in qs:
            self.ch.queue_declare(q, exclusive=True)
            self.ch.queue_bind(q, x, q)
        self.ch.confirm_delivery()
        # qs[0] by routing key, qs[1] by CC, qs[2] by BCC (and a non-string
        # element skipped); qs[3] named by nobody.
        self.ch.basic_publish(x, qs[0], b"m", pika.BasicProperties(
            headers={"CC": [qs[1], 7], "BCC": [qs[2]], "other": "kept"}))
        # CC alone through the default exchange: each key names a queue.
        self.ch.basic_publish("", qs[0], b"d", pika.BasicProperties(headers={"CC": [qs[3]]}))
        for q in qs[:3]:
            wait_for(lambda q=q: self.count(q) >= 1, "a message in " + q)
        got = {q: self.drain(q) for q in qs}
        self.assertEqual([m[2] for m in got[qs[0]]], [b"m", b"d"])
        self.assertEqual([m[2] for m in got[qs[1]]], [b"m"])
        self.assertEqual([m[2] for m in got[qs[2]]], [b"m"])
        self.assertEqual([m[2] for m in got[qs[3]]], [b"d"])
        for q in qs[:3]:
            h = got[q][0][1].headers
            self.assertEqual(h["CC"], [qs[1], 7])
            self.assertEqual(h["other"], "kept")
            self.assertNotIn("BCC", h)  # nobody sees the blind copies
            self.assertEqual(got[q][0][0].routing_key, qs[0])

    def test_cc_not_an_array_406(self):
        q = name("ccbad")
        self.ch.queue_declare(q, exclusive=True)
        for hdr, value, typ in [("CC", "x", "longstr"), ("BCC", 5, "signedint")]:
            ch = self.conn.channel()
            ch.basic_publish("", q, b"x", pika.BasicProperties(headers={hdr: value}))
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(q, passive=True)
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertEqual(cm.exception.reply_text,
                             'PRECONDITION_FAILED - invalid message: '
                             '{unacceptable_type_in_header,"%s",%s}' % (hdr, typ))
        self.assertEqual(self.count(q), 0)

    def consumer(self, q, prefetch=100, priority=None):
        """A consumer on a channel of its own: (channel, deliveries list)."""
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=prefetch)
        got = []
        args = {"x-priority": priority} if priority is not None else None
        ch.basic_consume(q, lambda c, m, p, b: got.append((m, b)), arguments=args)
        return ch, got

    def pump_until(self, cond, what):
        def step():
            self.conn.process_data_events(time_limit=0.02)
            return cond()
        return wait_for(step, what)

    def test_single_active_consumer_failover_requeues_first(self):
        q = name("sac")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-single-active-consumer": True})
        ch1, got1 = self.consumer(q, prefetch=3)
        ch2, got2 = self.consumer(q, prefetch=100)
        for i in range(10):
            self.ch.basic_publish("", q, b"%d" % i)
        self.pump_until(lambda: len(got1) == 3, "three deliveries to the active consumer")
        self.conn.process_data_events(time_limit=0.1)
        self.assertEqual(got2, [])  # only one consumer is active
        self.assertEqual([b for _, b in got1], [b"0", b"1", b"2"])
        ch1.close()  # its three unacked go back, ahead of the rest
        self.pump_until(lambda: len(got2) == 10, "all ten at the next consumer")
        self.assertEqual([b for _, b in got2], [b"%d" % i for i in range(10)])
        self.assertEqual([m.redelivered for m, _ in got2[:3]], [True] * 3)
        self.assertFalse(got2[3][0].redelivered)

    def test_single_active_consumer_cancel_hands_over(self):
        q = name("sac")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-single-active-consumer": True})
        ch1, got1 = self.consumer(q)
        ch2, got2 = self.consumer(q)
        self.ch.basic_publish("", q, b"a")
        self.pump_until(lambda: len(got1) == 1, "a delivery to the first consumer")
        ch1.basic_ack(got1[0][0].delivery_tag)
        ch1.basic_cancel(got1[0][0].consumer_tag)
        self.ch.basic_publish("", q, b"b")
        self.pump_until(lambda: len(got2) == 1, "the second consumer taking over")
        self.assertEqual(got2[0][1], b"b")
        self.assertEqual(len(got1), 1)

    def test_single_active_consumer_priority_takes_over_when_idle(self):
        if not self.is_amqpd:
            self.skipTest("consumer priorities with SAC: RabbitMQ 3.12+ quorum queues, 4.x")
        q = name("sacp")
        self.ch.queue_declare(q, exclusive=True, arguments={"x-single-active-consumer": True})
        ch1, got1 = self.consumer(q, priority=0)
        self.ch.basic_publish("", q, b"a")
        self.pump_until(lambda: len(got1) == 1, "a delivery to the first consumer")
        ch2, got2 = self.consumer(q, priority=5)
        self.ch.basic_publish("", q, b"b")
        self.conn.process_data_events(time_limit=0.1)
        # The active one still has an unacked message: nobody gets "b" yet.
        self.assertEqual((len(got1), len(got2)), (1, 0))
        ch1.basic_ack(got1[0][0].delivery_tag)
        self.pump_until(lambda: len(got2) == 1, "the higher priority consumer taking over")
        self.assertEqual(got2[0][1], b"b")
        self.assertEqual(len(got1), 1)

    def test_single_active_consumer_invalid_406(self):
        q = name("sacbad")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.queue_declare(q, arguments={"x-single-active-consumer": "yes"})
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertEqual(cm.exception.reply_text,
                         "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue "
                         "'%s' in vhost '/': {unacceptable_type,longstr}" % q)

    def delayed_exchange(self, typ="direct"):
        if not self.is_amqpd:
            self.skipTest("x-delayed-message is a plugin Debian's RabbitMQ does not ship")
        x = name("delayx")
        self.ch.exchange_declare(x, "x-delayed-message", auto_delete=True,
                                 arguments={"x-delayed-type": typ})
        q = name("delayq")
        self.ch.queue_declare(q, exclusive=True)
        return x, q

    def test_delayed_message_order_and_immediate(self):
        x, q = self.delayed_exchange("topic")
        self.ch.queue_bind(q, x, "a.*")
        self.ch.confirm_delivery()
        t0 = time.monotonic()
        for body, delay in [(b"d300", 300), (b"d100", 100), (b"now", None), (b"neg", -5)]:
            h = {"x-delay": delay} if delay is not None else None
            self.ch.basic_publish(x, "a.b", body, pika.BasicProperties(headers=h))
        got = []
        def more():
            m = self.ch.basic_get(q, auto_ack=True)
            if m[0]:
                got.append((m[2], time.monotonic() - t0, m[0].exchange))
            return len(got) == 4
        wait_for(more, "four messages")
        self.assertEqual([g[0] for g in got], [b"now", b"neg", b"d100", b"d300"])
        self.assertGreaterEqual(got[2][1], 0.1)
        self.assertGreaterEqual(got[3][1], 0.3)
        self.assertEqual(got[3][2], x)  # delivered as published to the exchange

    def test_delayed_message_count_cancel_and_purge(self):
        x, q = self.delayed_exchange()
        self.ch.queue_bind(q, x, "k")
        holding = "amq.delayed." + x
        for i in range(3):
            self.ch.basic_publish(x, "k", b"x", pika.BasicProperties(
                headers={"x-delay": 600000}, message_id="id-%d" % (i % 2)))
        self.assertEqual(self.count(holding), 3)
        # Cancel both pending messages with message id id-0.
        self.ch.basic_publish(x, "k", b"", pika.BasicProperties(
            headers={"x-delay-cancel": True}, message_id="id-0"))
        self.assertEqual(self.count(holding), 1)
        self.assertEqual(self.count(q), 0)  # the cancel request is not routed
        self.ch.queue_purge(holding)  # cancels everything
        self.assertEqual(self.count(holding), 0)

    def test_delayed_message_holding_queue_refused(self):
        x, q = self.delayed_exchange()
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_consume("amq.delayed." + x, lambda *a: None)
        self.assertEqual(cm.exception.reply_code, 403)

    def test_delayed_message_exchange_as_dead_letter_exchange(self):
        # Retry after a delay: rejected messages go to a delayed exchange.
        x, q = self.delayed_exchange()
        self.ch.queue_bind(q, x, "retry")
        work = name("work")
        self.ch.queue_declare(work, exclusive=True, arguments={
            "x-dead-letter-exchange": x, "x-dead-letter-routing-key": "retry"})
        self.ch.basic_publish("", work, b"job", pika.BasicProperties(headers={"x-delay": 200}))
        m = wait_for(lambda: (lambda r: r if r[0] else None)(self.ch.basic_get(work)),
                     "the job")
        t0 = time.monotonic()
        self.ch.basic_reject(m[0].delivery_tag, requeue=False)
        self.assertEqual(self.count("amq.delayed." + x), 1)
        got = wait_for(lambda: (lambda r: r if r[0] else None)(
            self.ch.basic_get(q, auto_ack=True)), "the retry")
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual(got[2], b"job")
        self.assertEqual(got[1].headers["x-death"][0]["reason"], "rejected")

    def test_delayed_message_needs_a_type(self):
        if not self.is_amqpd:
            self.skipTest("x-delayed-message is a plugin Debian's RabbitMQ does not ship")
        for args in [None, {"x-delayed-type": "nosuchtype"}, {"x-delayed-type": 5}]:
            ch = self.conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.exchange_declare(name("dx"), "x-delayed-message", arguments=args)
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertEqual(cm.exception.reply_text,
                             "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be "
                             "an existing exchange type")

    def test_dedup_queue_cache_size_and_confirms(self):
        if not self.is_amqpd:
            self.skipTest("message deduplication is LavinMQ's (a plugin for RabbitMQ)")
        q = name("ddq")
        self.ch.queue_declare(q, exclusive=True, arguments={
            "x-message-deduplication": True, "x-cache-size": 2})
        self.ch.confirm_delivery()
        for k in ["a", "b", "a", "c", "a", "b"]:  # a b - c a b (size 2 evicts)
            # Every publish is confirmed, duplicates too (no exception).
            self.ch.basic_publish("", q, k.encode(), pika.BasicProperties(
                headers={"x-deduplication-header": k}))
        self.ch.basic_publish("", q, b"no key")
        got = [m[2] for m in self.drain(q)]
        self.assertEqual(got, [b"a", b"b", b"c", b"a", b"b", b"no key"])

    def test_dedup_rejected_publish_is_not_a_duplicate(self):
        # A message refused by a full queue (nack) leaves no key: its retry
        # is enqueued once there is room.
        if not self.is_amqpd:
            self.skipTest("message deduplication is LavinMQ's (a plugin for RabbitMQ)")
        q = name("ddfull")
        self.ch.queue_declare(q, exclusive=True, arguments={
            "x-message-deduplication": True, "x-max-length": 1,
            "x-overflow": "reject-publish"})
        self.ch.confirm_delivery()
        p = lambda k: pika.BasicProperties(headers={"x-deduplication-header": k})
        self.ch.basic_publish("", q, b"a", p("a"))
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", q, b"b", p("b"))
        self.assertEqual([m[2] for m in self.drain(q)], [b"a"])
        self.ch.basic_publish("", q, b"b", p("b"))  # the retry
        self.assertEqual([m[2] for m in self.drain(q)], [b"b"])

    def test_dedup_exchange_custom_header_and_ttl(self):
        if not self.is_amqpd:
            self.skipTest("message deduplication is LavinMQ's (a plugin for RabbitMQ)")
        x = name("ddx")
        self.ch.exchange_declare(x, "fanout", auto_delete=True, arguments={
            "x-message-deduplication": True, "x-deduplication-header": "id",
            "x-cache-ttl": 200})
        q = name("ddxq")
        self.ch.queue_declare(q, exclusive=True)
        self.ch.queue_bind(q, x)
        for k in [1, 2, 1, "1", 2]:  # integers and strings by their text
            self.ch.basic_publish(x, "", b"%s" % str(k).encode(),
                                  pika.BasicProperties(headers={"id": k}))
        self.assertEqual([m[2] for m in self.drain(q)], [b"1", b"2"])
        # Past the TTL the key is new again (a condition, not a sleep).
        def again():
            self.ch.basic_publish(x, "", b"again", pika.BasicProperties(headers={"id": 1}))
            return self.drain(q)
        self.assertEqual(wait_for(again, "the key to expire")[0][2], b"again")

    def test_dedup_invalid_arguments_406(self):
        if not self.is_amqpd:
            self.skipTest("message deduplication is LavinMQ's (a plugin for RabbitMQ)")
        q = name("ddbad")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.queue_declare(q, arguments={"x-cache-size": -1})
        self.assertEqual(cm.exception.reply_text,
                         "PRECONDITION_FAILED - invalid arg 'x-cache-size' for queue '%s' in "
                         "vhost '/': {value_negative,-1}" % q)

    def test_requeue_dead_letters_into_a_queue_of_the_same_channel(self):
        # A multiple nack whose requeues pass the delivery limit dead-letters
        # every message into a queue this same channel consumes: the new
        # deliveries grow the channel's unacked list while it is settling.
        if not self.is_amqpd:
            self.skipTest("x-delivery-limit 0 on a quorum queue: amqpd's reading")
        q, d = name("dlq-src"), name("dlq-dst")
        self.ch.queue_declare(d, durable=True)
        self.ch.queue_declare(q, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 0,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": d})
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=0)
        got_q, got_d = [], []
        ch.basic_consume(q, lambda c, m, p, b: got_q.append(m))
        ch.basic_consume(d, lambda c, m, p, b: got_d.append(m))
        n = 300
        for i in range(n):
            self.ch.basic_publish("", q, b"%d" % i)
        self.pump_until(lambda: len(got_q) == n, "all deliveries from the source")
        ch.basic_nack(got_q[-1].delivery_tag, multiple=True, requeue=True)
        self.pump_until(lambda: len(got_d) == n, "all dead-lettered deliveries")
        ch.basic_ack(got_d[-1].delivery_tag, multiple=True)
        self.ch.queue_delete(q)
        self.ch.queue_delete(d)


if __name__ == "__main__":
    target = sys.argv.pop(1)
    host, _, port = target.rpartition(":")
    BROKER = (host or "127.0.0.1", int(port))
    unittest.main(verbosity=2)
