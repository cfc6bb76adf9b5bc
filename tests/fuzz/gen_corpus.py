#!/usr/bin/env python3
"""Write the seed corpus for tests/fuzz/fuzz_protocol.c.

usage: gen_corpus.py [OUTDIR]      (default: the corpus/ directory beside this file)

Every seed starts with the selector byte the target expects:

  0  client->server stream: [flags c0 c1 c2 c3] "AMQP\\0\\0\\9\\1" frames...
  1  server->client stream: [flags c0 c1 c2 c3] frames...
       flags & 3 picks frame_max (0: 4096, 1: 131072, 2: 1 + (flags >> 2),
       3: 1 MiB, or no limit when flags == 0xff); c0..c3 are the chunk sizes
       the stream is fed in (0: the rest at once).
  2  method frame payload     3  content header payload
  4  field table contents     5  field array contents

Seeds are named <kind>-<what>; malformed ones say so in the name (bad-, trunc-).
Only files named here are (over)written; other files in OUTDIR are left alone.
Pure standard library; deterministic output.
"""

import os
import struct
import sys

SEL_STREAM_SERVER, SEL_STREAM_CLIENT, SEL_METHOD, SEL_HEADER, SEL_TABLE, SEL_ARRAY = range(6)

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# ---- primitive encoders ---------------------------------------------------


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def shortstr(s):
    s = b(s)
    assert len(s) < 256
    return u8(len(s)) + s


def longstr(s):
    s = b(s)
    return u32(len(s)) + s


# ---- field tables -----------------------------------------------------------
# A value is (type, python value); a table is a list of (key, value) pairs
# (duplicates allowed, order kept); an array is a list of values.


def field_value(v):
    t, x = v
    body = {
        "t": lambda: u8(x),
        "b": lambda: struct.pack(">b", x),
        "B": lambda: u8(x),
        "s": lambda: struct.pack(">h", x),
        "u": lambda: u16(x),
        "I": lambda: struct.pack(">i", x),
        "i": lambda: u32(x),
        "l": lambda: struct.pack(">q", x),
        "L": lambda: u64(x),
        "f": lambda: struct.pack(">f", x),
        "d": lambda: struct.pack(">d", x),
        "D": lambda: u8(x[0]) + u32(x[1]),
        "S": lambda: longstr(x),
        "x": lambda: longstr(x),
        "A": lambda: longstr(array_contents(x)),
        "T": lambda: u64(x),
        "F": lambda: longstr(table_contents(x)),
        "V": lambda: b"",
    }[t]()
    return t.encode() + body


def table_contents(entries):
    return b"".join(shortstr(k) + field_value(v) for k, v in entries)


def array_contents(items):
    return b"".join(field_value(v) for v in items)


def table(entries):
    return longstr(table_contents(entries))


# One value of every type RabbitMQ accepts: t b B s u I i l L f d D S x A T F V.
ALL_TYPES = [
    ("bool", ("t", 1)),
    ("i8", ("b", -5)),
    ("u8", ("B", 250)),
    ("i16", ("s", -300)),
    ("u16", ("u", 65000)),
    ("i32", ("I", -70000)),
    ("u32", ("i", 4000000000)),
    ("i64", ("l", -(1 << 40))),
    ("u64", ("L", (1 << 63) + 7)),
    ("float", ("f", 1.5)),
    ("double", ("d", -2.25)),
    ("decimal", ("D", (2, 123456789))),
    ("longstr", ("S", "hello")),
    ("bytes", ("x", b"\x00\x01\xfe\xff")),
    ("array", ("A", [("I", 1), ("S", "two"), ("t", 0), ("V", None)])),
    ("timestamp", ("T", 1700000000)),
    ("table", ("F", [("inner", ("S", "v")), ("n", ("b", 1))])),
    ("void", ("V", None)),
]


def nested_table(depth):
    """A table nested `depth` levels deep in total (1 = a flat table)."""
    t = [("leaf", ("S", "bottom"))]
    for i in range(depth - 1):
        t = [("level%d" % (depth - 1 - i), ("F", t)), ("a", ("A", [("u", i)]))]
    return t


def nested_array(depth):
    a = [("S", "bottom")]
    for i in range(depth - 1):
        a = [("A", a), ("F", [("k", ("B", i & 0xFF))])]
    return a


CLIENT_PROPERTIES = [
    ("product", ("S", "amqpd-fuzz-seed")),
    ("version", ("S", "1.0.0")),
    ("platform", ("S", "Python 3")),
    (
        "capabilities",
        (
            "F",
            [
                ("publisher_confirms", ("t", 1)),
                ("exchange_exchange_bindings", ("t", 1)),
                ("basic.nack", ("t", 1)),
                ("consumer_cancel_notify", ("t", 1)),
                ("connection.blocked", ("t", 1)),
                ("consumer_priorities", ("t", 1)),
                ("authentication_failure_close", ("t", 1)),
                ("per_consumer_qos", ("t", 1)),
                ("direct_reply_to", ("t", 1)),
            ],
        ),
    ),
    ("connection_name", ("S", "seed connection")),
    ("information", ("S", "https://example.invalid/")),
]

SERVER_PROPERTIES = [
    ("capabilities", CLIENT_PROPERTIES[3][1]),
    ("cluster_name", ("S", "rabbit@seed")),
    ("copyright", ("S", "Copyright (c) amqpd")),
    ("information", ("S", "Licensed under the MPL 2.0")),
    ("platform", ("S", "C")),
    ("product", ("S", "amqpd")),
    ("version", ("S", "0.1.0")),
]

QUEUE_ARGS = [
    ("x-message-ttl", ("I", 60000)),
    ("x-expires", ("I", 1800000)),
    ("x-max-length", ("l", 1000)),
    ("x-max-length-bytes", ("l", 1 << 20)),
    ("x-overflow", ("S", "reject-publish")),
    ("x-dead-letter-exchange", ("S", "dlx")),
    ("x-dead-letter-routing-key", ("S", "dead")),
    ("x-max-priority", ("B", 10)),
    ("x-queue-type", ("S", "classic")),
    ("x-single-active-consumer", ("t", 1)),
]

# ---- methods ------------------------------------------------------------------
# name -> (class id, method id, [(argument, kind)]); kinds as in the spec.

METHODS = {
    "connection.start": (10, 10, [("version_major", "octet"), ("version_minor", "octet"), ("server_properties", "table"), ("mechanisms", "longstr"), ("locales", "longstr")]),
    "connection.start-ok": (10, 11, [("client_properties", "table"), ("mechanism", "shortstr"), ("response", "longstr"), ("locale", "shortstr")]),
    "connection.secure": (10, 20, [("challenge", "longstr")]),
    "connection.secure-ok": (10, 21, [("response", "longstr")]),
    "connection.tune": (10, 30, [("channel_max", "short"), ("frame_max", "long"), ("heartbeat", "short")]),
    "connection.tune-ok": (10, 31, [("channel_max", "short"), ("frame_max", "long"), ("heartbeat", "short")]),
    "connection.open": (10, 40, [("virtual_host", "shortstr"), ("capabilities", "shortstr"), ("insist", "bit")]),
    "connection.open-ok": (10, 41, [("known_hosts", "shortstr")]),
    "connection.close": (10, 50, [("reply_code", "short"), ("reply_text", "shortstr"), ("class_id", "short"), ("method_id", "short")]),
    "connection.close-ok": (10, 51, []),
    "connection.blocked": (10, 60, [("reason", "shortstr")]),
    "connection.unblocked": (10, 61, []),
    "connection.update-secret": (10, 70, [("new_secret", "longstr"), ("reason", "shortstr")]),
    "connection.update-secret-ok": (10, 71, []),
    "channel.open": (20, 10, [("out_of_band", "shortstr")]),
    "channel.open-ok": (20, 11, [("channel_id", "longstr")]),
    "channel.flow": (20, 20, [("active", "bit")]),
    "channel.flow-ok": (20, 21, [("active", "bit")]),
    "channel.close": (20, 40, [("reply_code", "short"), ("reply_text", "shortstr"), ("class_id", "short"), ("method_id", "short")]),
    "channel.close-ok": (20, 41, []),
    "access.request": (30, 10, [("realm", "shortstr"), ("exclusive", "bit"), ("passive", "bit"), ("active", "bit"), ("write", "bit"), ("read", "bit")]),
    "access.request-ok": (30, 11, [("ticket", "short")]),
    "exchange.declare": (40, 10, [("ticket", "short"), ("exchange", "shortstr"), ("type", "shortstr"), ("passive", "bit"), ("durable", "bit"), ("auto_delete", "bit"), ("internal", "bit"), ("nowait", "bit"), ("arguments", "table")]),
    "exchange.declare-ok": (40, 11, []),
    "exchange.delete": (40, 20, [("ticket", "short"), ("exchange", "shortstr"), ("if_unused", "bit"), ("nowait", "bit")]),
    "exchange.delete-ok": (40, 21, []),
    "exchange.bind": (40, 30, [("ticket", "short"), ("destination", "shortstr"), ("source", "shortstr"), ("routing_key", "shortstr"), ("nowait", "bit"), ("arguments", "table")]),
    "exchange.bind-ok": (40, 31, []),
    "exchange.unbind": (40, 40, [("ticket", "short"), ("destination", "shortstr"), ("source", "shortstr"), ("routing_key", "shortstr"), ("nowait", "bit"), ("arguments", "table")]),
    "exchange.unbind-ok": (40, 51, []),
    "queue.declare": (50, 10, [("ticket", "short"), ("queue", "shortstr"), ("passive", "bit"), ("durable", "bit"), ("exclusive", "bit"), ("auto_delete", "bit"), ("nowait", "bit"), ("arguments", "table")]),
    "queue.declare-ok": (50, 11, [("queue", "shortstr"), ("message_count", "long"), ("consumer_count", "long")]),
    "queue.bind": (50, 20, [("ticket", "short"), ("queue", "shortstr"), ("exchange", "shortstr"), ("routing_key", "shortstr"), ("nowait", "bit"), ("arguments", "table")]),
    "queue.bind-ok": (50, 21, []),
    "queue.purge": (50, 30, [("ticket", "short"), ("queue", "shortstr"), ("nowait", "bit")]),
    "queue.purge-ok": (50, 31, [("message_count", "long")]),
    "queue.delete": (50, 40, [("ticket", "short"), ("queue", "shortstr"), ("if_unused", "bit"), ("if_empty", "bit"), ("nowait", "bit")]),
    "queue.delete-ok": (50, 41, [("message_count", "long")]),
    "queue.unbind": (50, 50, [("ticket", "short"), ("queue", "shortstr"), ("exchange", "shortstr"), ("routing_key", "shortstr"), ("arguments", "table")]),
    "queue.unbind-ok": (50, 51, []),
    "basic.qos": (60, 10, [("prefetch_size", "long"), ("prefetch_count", "short"), ("global", "bit")]),
    "basic.qos-ok": (60, 11, []),
    "basic.consume": (60, 20, [("ticket", "short"), ("queue", "shortstr"), ("consumer_tag", "shortstr"), ("no_local", "bit"), ("no_ack", "bit"), ("exclusive", "bit"), ("nowait", "bit"), ("arguments", "table")]),
    "basic.consume-ok": (60, 21, [("consumer_tag", "shortstr")]),
    "basic.cancel": (60, 30, [("consumer_tag", "shortstr"), ("nowait", "bit")]),
    "basic.cancel-ok": (60, 31, [("consumer_tag", "shortstr")]),
    "basic.publish": (60, 40, [("ticket", "short"), ("exchange", "shortstr"), ("routing_key", "shortstr"), ("mandatory", "bit"), ("immediate", "bit")]),
    "basic.return": (60, 50, [("reply_code", "short"), ("reply_text", "shortstr"), ("exchange", "shortstr"), ("routing_key", "shortstr")]),
    "basic.deliver": (60, 60, [("consumer_tag", "shortstr"), ("delivery_tag", "longlong"), ("redelivered", "bit"), ("exchange", "shortstr"), ("routing_key", "shortstr")]),
    "basic.get": (60, 70, [("ticket", "short"), ("queue", "shortstr"), ("no_ack", "bit")]),
    "basic.get-ok": (60, 71, [("delivery_tag", "longlong"), ("redelivered", "bit"), ("exchange", "shortstr"), ("routing_key", "shortstr"), ("message_count", "long")]),
    "basic.get-empty": (60, 72, [("cluster_id", "shortstr")]),
    "basic.ack": (60, 80, [("delivery_tag", "longlong"), ("multiple", "bit")]),
    "basic.reject": (60, 90, [("delivery_tag", "longlong"), ("requeue", "bit")]),
    "basic.recover-async": (60, 100, [("requeue", "bit")]),
    "basic.recover": (60, 110, [("requeue", "bit")]),
    "basic.recover-ok": (60, 111, []),
    "basic.nack": (60, 120, [("delivery_tag", "longlong"), ("multiple", "bit"), ("requeue", "bit")]),
    "tx.select": (90, 10, []),
    "tx.select-ok": (90, 11, []),
    "tx.commit": (90, 20, []),
    "tx.commit-ok": (90, 21, []),
    "tx.rollback": (90, 30, []),
    "tx.rollback-ok": (90, 31, []),
    "confirm.select": (85, 10, [("nowait", "bit")]),
    "confirm.select-ok": (85, 11, []),
}

# Example argument values per kind (tables get a small argument table).
DEFAULTS = {
    "octet": 7,
    "short": 513,
    "long": 70000,
    "longlong": 1 << 33,
    "shortstr": "seed",
    "longstr": "seed-long",
    "table": [("x-seed", ("S", "yes")), ("x-n", ("I", 42))],
}


def method(name, **args):
    """Method payload: ids, then arguments (consecutive bits share an octet)."""
    cls, mid, spec = METHODS[name]
    out = bytearray(u16(cls) + u16(mid))
    bit_at, bit_pos, nbits = None, 8, 0
    for arg, kind in spec:
        # Default bits alternate (1, 0, 1, ...) so a misplaced bit shows.
        default = nbits % 2 == 0 if kind == "bit" else DEFAULTS[kind]
        nbits += kind == "bit"
        v = args.pop(arg, default)
        if kind != "bit":
            bit_pos = 8
        if kind == "bit":
            if bit_pos >= 8:
                bit_at, bit_pos = len(out), 0
                out.append(0)
            if v:
                out[bit_at] |= 1 << bit_pos
            bit_pos += 1
        elif kind == "octet":
            out += u8(v)
        elif kind == "short":
            out += u16(v)
        elif kind == "long":
            out += u32(v)
        elif kind in ("longlong", "timestamp"):
            out += u64(v)
        elif kind == "shortstr":
            out += shortstr(v)
        elif kind == "longstr":
            out += longstr(v)
        elif kind == "table":
            out += v if isinstance(v, (bytes, bytearray)) else table(v)
        else:
            raise ValueError(kind)
    assert not args, "unknown arguments for %s: %s" % (name, sorted(args))
    return bytes(out)


# ---- content headers ----------------------------------------------------------

PROPS = [  # (name, flag bit, kind), in wire order
    ("content_type", 15, "shortstr"),
    ("content_encoding", 14, "shortstr"),
    ("headers", 13, "table"),
    ("delivery_mode", 12, "octet"),
    ("priority", 11, "octet"),
    ("correlation_id", 10, "shortstr"),
    ("reply_to", 9, "shortstr"),
    ("expiration", 8, "shortstr"),
    ("message_id", 7, "shortstr"),
    ("timestamp", 6, "timestamp"),
    ("type", 5, "shortstr"),
    ("user_id", 4, "shortstr"),
    ("app_id", 3, "shortstr"),
    ("cluster_id", 2, "shortstr"),
]

ALL_PROPS = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "headers": [("x-trace", ("S", "abc"))] + ALL_TYPES,
    "delivery_mode": 2,
    "priority": 5,
    "correlation_id": "corr-0001",
    "reply_to": "amq.rabbitmq.reply-to",
    "expiration": "60000",
    "message_id": "msg-0001",
    "timestamp": 1700000000,
    "type": "seed.event",
    "user_id": "guest",
    "app_id": "gen_corpus",
    "cluster_id": "cluster-1",
}


def props(**values):
    flags, body = 0, b""
    for name, bit, kind in PROPS:
        if name not in values:
            continue
        flags |= 1 << bit
        v = values[name]
        if kind == "shortstr":
            body += shortstr(v)
        elif kind == "table":
            body += table(v)
        elif kind == "octet":
            body += u8(v)
        else:
            body += u64(v)
    return u16(flags) + body


def header(body_size, class_id=60, weight=0, raw_props=None, **values):
    p = raw_props if raw_props is not None else props(**values)
    return u16(class_id) + u16(weight) + u64(body_size) + p


# ---- frames and streams ---------------------------------------------------------


def frame(ftype, channel, payload, end=FRAME_END, size=None):
    n = len(payload) if size is None else size
    return u8(ftype) + u16(channel) + u32(n) + payload + u8(end)


def mframe(channel, name, **args):
    return frame(FRAME_METHOD, channel, method(name, **args))


def heartbeat():
    return frame(FRAME_HEARTBEAT, 0, b"")


def publish(channel, body, frame_max=131072, **values):
    """basic.publish + header + body frames split at frame_max - 8."""
    out = mframe(channel, "basic.publish", exchange="amq.topic", routing_key="seed.key", mandatory=True, immediate=False)
    out += frame(FRAME_HEADER, channel, header(len(body), **values))
    step = frame_max - 8
    for i in range(0, len(body), step):
        out += frame(FRAME_BODY, channel, body[i : i + step])
    return out


def stream(selector, frames, flags=1, chunks=(0, 0, 0, 0)):
    return bytes([selector, flags]) + bytes(chunks) + frames


def client_handshake(frame_max=131072):
    return (
        PROTOCOL_HEADER
        + mframe(0, "connection.start-ok", client_properties=CLIENT_PROPERTIES, mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US")
        + mframe(0, "connection.tune-ok", channel_max=2047, frame_max=frame_max, heartbeat=60)
        + mframe(0, "connection.open", virtual_host="/", capabilities="", insist=False)
        + mframe(1, "channel.open", out_of_band="")
    )


def client_close():
    return (
        mframe(1, "channel.close", reply_code=200, reply_text="Goodbye", class_id=0, method_id=0)
        + mframe(0, "connection.close", reply_code=200, reply_text="Goodbye", class_id=0, method_id=0)
        + mframe(0, "connection.close-ok")
    )


def seeds():
    s = {}

    # -- selector 0: what a client sends -------------------------------------
    session = (
        client_handshake()
        + mframe(1, "exchange.declare", exchange="seed.topic", type="topic", durable=True, arguments=[("alternate-exchange", ("S", "seed.ae"))])
        + mframe(1, "queue.declare", queue="seed.q", durable=True, arguments=QUEUE_ARGS)
        + mframe(1, "queue.bind", queue="seed.q", exchange="seed.topic", routing_key="seed.#", arguments=[])
        + mframe(1, "basic.qos", prefetch_size=0, prefetch_count=10, **{"global": False})
        + mframe(1, "confirm.select", nowait=False)
        + publish(1, b"first message body, sent in several body frames. " * 8, frame_max=136, **ALL_PROPS)
        + publish(1, bytes(range(256)) * 3, frame_max=200, content_type="application/octet-stream", delivery_mode=2)
        + heartbeat()
        + mframe(1, "basic.consume", queue="seed.q", consumer_tag="ctag-1", no_ack=False, arguments=[("x-priority", ("I", 5))])
        + mframe(1, "basic.ack", delivery_tag=1, multiple=False)
        + mframe(1, "basic.nack", delivery_tag=2, multiple=True, requeue=True)
        + mframe(1, "basic.reject", delivery_tag=3, requeue=False)
        + mframe(1, "basic.cancel", consumer_tag="ctag-1", nowait=False)
        + client_close()
    )
    s["stream-session-full"] = stream(0, session, flags=1)
    s["stream-session-chunked"] = stream(0, session, flags=1, chunks=(3, 7, 1, 200))
    s["stream-session-frame-max-4096"] = stream(0, session, flags=0, chunks=(8, 0, 5, 13))

    confirm = client_handshake() + mframe(1, "confirm.select", nowait=False)
    for i in range(4):
        confirm += publish(1, b"msg %d" % i, content_type="text/plain", delivery_mode=2, message_id="m%d" % i)
    confirm += client_close()
    s["stream-publish-confirm"] = stream(0, confirm, flags=1, chunks=(64, 1, 0, 9))

    tx = client_handshake() + mframe(1, "tx.select") + publish(1, b"in a transaction", delivery_mode=1)
    tx += mframe(1, "tx.commit") + publish(1, b"rolled back") + mframe(1, "tx.rollback") + client_close()
    s["stream-tx"] = stream(0, tx, flags=1, chunks=(2, 0, 0, 0))

    # Every method from channel 1 in one stream, after the handshake.
    every = client_handshake()
    for name in METHODS:
        every += mframe(1, name)
    s["stream-every-method"] = stream(0, every, flags=1, chunks=(11, 4, 0, 33))

    # tune-ok lowers frame_max to 4096: the big body frame after it is refused.
    small = client_handshake(frame_max=4096) + frame(FRAME_BODY, 1, b"x" * 5000)
    s["stream-bad-frame-over-tuned-max"] = stream(0, small, flags=1)
    s["stream-tiny-frame-max"] = stream(0, PROTOCOL_HEADER + heartbeat() + mframe(0, "connection.close-ok"), flags=2 | (8 << 2))
    s["stream-no-frame-max"] = stream(0, PROTOCOL_HEADER + heartbeat() + u8(3) + u16(1) + u32(1 << 24), flags=0xFF)
    s["stream-empty-frames"] = stream(0, PROTOCOL_HEADER + frame(FRAME_METHOD, 1, b"") + frame(FRAME_HEADER, 1, b"") + frame(FRAME_BODY, 1, b""), chunks=(7, 1, 1, 1))
    s["stream-small-frames"] = stream(0, PROTOCOL_HEADER + frame(FRAME_BODY, 1, b"a") + frame(FRAME_BODY, 2, b"bc") + frame(FRAME_HEADER, 1, header(1)), chunks=(1, 0, 0, 0))
    s["stream-heartbeats"] = stream(0, PROTOCOL_HEADER + heartbeat() * 5, chunks=(1, 2, 3, 4))

    hs = PROTOCOL_HEADER + mframe(0, "connection.start-ok", client_properties=CLIENT_PROPERTIES)
    s["stream-bad-frame-end"] = stream(0, hs + frame(FRAME_METHOD, 1, method("channel.open"), end=0x00))
    s["stream-bad-oversized-size"] = stream(0, hs + u8(FRAME_METHOD) + u16(1) + u32(0xFFFFFFF0) + b"\x00" * 16)
    s["stream-bad-unknown-frame-type"] = stream(0, hs + frame(4, 1, b"abc"))
    s["stream-bad-heartbeat-channel"] = stream(0, hs + frame(FRAME_HEARTBEAT, 1, b""))
    s["stream-bad-heartbeat-payload"] = stream(0, hs + frame(FRAME_HEARTBEAT, 0, b"\x00"))
    s["stream-trunc-mid-frame"] = stream(0, hs + mframe(1, "channel.open")[:-3], chunks=(5, 0, 0, 0))
    s["stream-trunc-protocol-header"] = stream(0, PROTOCOL_HEADER[:5])
    s["stream-bad-protocol-http"] = stream(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s["stream-bad-protocol-version"] = stream(0, b"AMQP\x01\x01\x00\x09" + heartbeat())
    s["stream-bad-method-in-frame"] = stream(0, hs + frame(FRAME_METHOD, 1, u16(60) + u16(999)) + frame(FRAME_METHOD, 1, method("basic.ack")[:-2]))
    s["stream-bad-header-in-frame"] = stream(0, hs + frame(FRAME_HEADER, 1, header(1, weight=1)) + frame(FRAME_HEADER, 1, header(1)[:-1]))

    # -- selector 1: what a server sends ---------------------------------------
    server = (
        mframe(0, "connection.start", version_major=0, version_minor=9, server_properties=SERVER_PROPERTIES, mechanisms="PLAIN AMQPLAIN", locales="en_US")
        + mframe(0, "connection.secure", challenge=b"challenge")
        + mframe(0, "connection.tune", channel_max=2047, frame_max=131072, heartbeat=60)
        + mframe(0, "connection.open-ok", known_hosts="")
        + mframe(1, "channel.open-ok", channel_id="")
        + mframe(1, "exchange.declare-ok")
        + mframe(1, "queue.declare-ok", queue="seed.q", message_count=3, consumer_count=1)
        + mframe(1, "queue.bind-ok")
        + mframe(1, "basic.qos-ok")
        + mframe(1, "confirm.select-ok")
        + mframe(1, "basic.ack", delivery_tag=1, multiple=True)
        + mframe(1, "basic.consume-ok", consumer_tag="amq.ctag-seed")
        + mframe(1, "basic.deliver", consumer_tag="amq.ctag-seed", delivery_tag=1, redelivered=False, exchange="seed.topic", routing_key="seed.key")
        + frame(FRAME_HEADER, 1, header(5, content_type="text/plain", delivery_mode=2))
        + frame(FRAME_BODY, 1, b"hello")
        + mframe(1, "basic.get-ok", delivery_tag=2, redelivered=True, exchange="", routing_key="seed.q", message_count=0)
        + frame(FRAME_HEADER, 1, header(0))
        + mframe(1, "basic.get-empty", cluster_id="")
        + mframe(1, "basic.return", reply_code=312, reply_text="NO_ROUTE", exchange="seed.topic", routing_key="nowhere")
        + frame(FRAME_HEADER, 1, header(3, **ALL_PROPS))
        + frame(FRAME_BODY, 1, b"abc")
        + mframe(0, "connection.blocked", reason="low on memory")
        + mframe(0, "connection.unblocked")
        + heartbeat()
        + mframe(1, "channel.close", reply_code=404, reply_text="NOT_FOUND - no queue 'x'", class_id=50, method_id=10)
        + mframe(0, "connection.close", reply_code=320, reply_text="CONNECTION_FORCED - shutdown", class_id=0, method_id=0)
    )
    s["stream-client-session"] = stream(1, server, flags=1)
    s["stream-client-chunked"] = stream(1, server, flags=1, chunks=(1, 9, 100, 2))
    s["stream-client-tune-4096"] = stream(1, mframe(0, "connection.tune", frame_max=4096) + frame(FRAME_BODY, 1, b"y" * 4100), flags=3)
    s["stream-client-protocol-header"] = stream(1, b"AMQP\x00\x00\x09\x01")

    # -- selector 2: method payloads -------------------------------------------
    for name in METHODS:
        s["method-" + name] = bytes([SEL_METHOD]) + method(name)
    s["method-queue-declare-args"] = bytes([SEL_METHOD]) + method("queue.declare", queue="q.args", durable=True, arguments=QUEUE_ARGS)
    s["method-exchange-declare-args"] = bytes([SEL_METHOD]) + method("exchange.declare", exchange="x", type="headers", arguments=[("alternate-exchange", ("S", "ae"))] + ALL_TYPES)
    s["method-start-ok-client-props"] = bytes([SEL_METHOD]) + method("connection.start-ok", client_properties=CLIENT_PROPERTIES, mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US")
    s["method-start-server-props"] = bytes([SEL_METHOD]) + method("connection.start", version_major=0, version_minor=9, server_properties=SERVER_PROPERTIES, mechanisms="PLAIN AMQPLAIN", locales="en_US")
    s["method-consume-nested-args"] = bytes([SEL_METHOD]) + method("basic.consume", arguments=nested_table(8))
    s["method-bits-all-set"] = bytes([SEL_METHOD]) + method("access.request", exclusive=True, passive=True, active=True, write=True, read=True)
    s["method-bits-unused-set"] = bytes([SEL_METHOD]) + method("basic.nack")[:-1] + b"\xff"
    s["method-publish-long-names"] = bytes([SEL_METHOD]) + method("basic.publish", exchange="e" * 255, routing_key="r" * 255)
    s["method-bad-unknown-class"] = bytes([SEL_METHOD]) + u16(70) + u16(10)
    s["method-bad-unknown-method"] = bytes([SEL_METHOD]) + u16(60) + u16(41)
    s["method-trunc-ids"] = bytes([SEL_METHOD]) + u16(60)
    s["method-trunc-args"] = bytes([SEL_METHOD]) + method("basic.publish")[:-3]
    s["method-bad-trailing"] = bytes([SEL_METHOD]) + method("basic.ack") + b"\x00"
    s["method-bad-table-type"] = bytes([SEL_METHOD]) + method("queue.declare", arguments=longstr(shortstr("k") + b"Z\x00"))
    s["method-trunc-table"] = bytes([SEL_METHOD]) + method("queue.bind", arguments=u32(50) + shortstr("k") + b"S")
    s["method-bad-table-length"] = bytes([SEL_METHOD]) + method("exchange.bind", arguments=u32(0xFFFFFFFF))

    # -- selector 3: content header payloads ---------------------------------
    s["header-all-props"] = bytes([SEL_HEADER]) + header(1 << 20, **ALL_PROPS)
    s["header-no-props"] = bytes([SEL_HEADER]) + header(0)
    s["header-delivery-mode"] = bytes([SEL_HEADER]) + header(16, content_type="application/json", delivery_mode=2)
    s["header-headers-nested"] = bytes([SEL_HEADER]) + header(3, headers=nested_table(5), priority=9)
    s["header-continuation-flag-word"] = bytes([SEL_HEADER]) + header(1, raw_props=u16(0x9001) + u16(0x0001) + u16(0x0000) + shortstr("text/plain") + u8(1))
    s["header-nonbasic-class"] = bytes([SEL_HEADER]) + header(4, class_id=50, raw_props=u16(0))
    s["header-bad-nonbasic-props"] = bytes([SEL_HEADER]) + header(4, class_id=50, raw_props=u16(0x8000) + shortstr("x"))
    s["header-bad-weight"] = bytes([SEL_HEADER]) + header(1, weight=1)
    s["header-bad-flag-bit1"] = bytes([SEL_HEADER]) + header(1, raw_props=u16(0x0002))
    s["header-bad-flag-word2"] = bytes([SEL_HEADER]) + header(1, raw_props=u16(0x0001) + u16(0x8000))
    s["header-trunc-props"] = bytes([SEL_HEADER]) + header(1, **ALL_PROPS)[:-4]
    s["header-trunc-fixed"] = bytes([SEL_HEADER]) + header(1)[:9]
    s["header-bad-trailing"] = bytes([SEL_HEADER]) + header(1, delivery_mode=1) + b"\x00"
    s["header-bad-headers-table"] = bytes([SEL_HEADER]) + header(1, raw_props=u16(0x2000) + longstr(shortstr("k") + b"Q"))

    # -- selector 4: field tables -----------------------------------------------
    s["table-all-types"] = bytes([SEL_TABLE]) + table_contents(ALL_TYPES)
    s["table-nested"] = bytes([SEL_TABLE]) + table_contents(nested_table(6) + ALL_TYPES)
    s["table-depth-32"] = bytes([SEL_TABLE]) + table_contents(nested_table(32))
    s["table-bad-depth-33"] = bytes([SEL_TABLE]) + table_contents(nested_table(33))
    s["table-client-properties"] = bytes([SEL_TABLE]) + table_contents(CLIENT_PROPERTIES)
    s["table-queue-args"] = bytes([SEL_TABLE]) + table_contents(QUEUE_ARGS)
    s["table-empty"] = bytes([SEL_TABLE])
    s["table-duplicate-keys"] = bytes([SEL_TABLE]) + table_contents([("k", ("I", 1)), ("k", ("S", "two")), ("", ("V", None))])
    s["table-bool-not-01"] = bytes([SEL_TABLE]) + shortstr("flag") + b"t\x02"
    s["table-float-nan"] = bytes([SEL_TABLE]) + shortstr("nan") + b"f\x7f\xa0\x00\x01" + shortstr("dnan") + b"d\xff\xf8\x00\x00\x00\x00\x00\x01"
    s["table-bad-unknown-type"] = bytes([SEL_TABLE]) + shortstr("k") + b"Z"
    s["table-trunc-value"] = bytes([SEL_TABLE]) + shortstr("k") + b"l\x00\x00"
    s["table-trunc-key"] = bytes([SEL_TABLE]) + b"\x09abc"
    s["table-trunc-longstr"] = bytes([SEL_TABLE]) + shortstr("k") + b"S\x00\x00\x01\x00ab"
    s["table-bad-nested"] = bytes([SEL_TABLE]) + shortstr("k") + b"F" + longstr(shortstr("j") + b"?")

    # -- selector 5: field arrays -------------------------------------------------
    s["array-all-types"] = bytes([SEL_ARRAY]) + array_contents([v for _, v in ALL_TYPES])
    s["array-nested"] = bytes([SEL_ARRAY]) + array_contents(nested_array(10))
    s["array-depth-32"] = bytes([SEL_ARRAY]) + array_contents(nested_array(32))
    s["array-empty"] = bytes([SEL_ARRAY])
    s["array-voids"] = bytes([SEL_ARRAY]) + b"V" * 64
    s["array-bad-unknown-type"] = bytes([SEL_ARRAY]) + b"I\x00\x00\x00\x01" + b"\x00"
    s["array-trunc"] = bytes([SEL_ARRAY]) + b"A\x00\x00\x00\x09I\x00"
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    all_seeds = seeds()
    for name, data in sorted(all_seeds.items()):
        assert data[0] < 6, name
        assert len(data) <= 65536, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(all_seeds), out))


if __name__ == "__main__":
    main()
