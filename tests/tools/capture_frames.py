#!/usr/bin/python3
"""capture_frames.py - record AMQP 0-9-1 traffic of real clients talking to a
real RabbitMQ and write it out as the C test fixture tests/unit/captured_frames.h.

A recording TCP proxy listens on a free local port and forwards every
connection to RabbitMQ (127.0.0.1:5672 by default), keeping the raw bytes of
each direction.  Client scenarios are run through it:

  pika        one pika (python3-pika) connection exercising most of the
              protocol: exchange/queue declare with argument tables of many
              value types, bind, confirms, a publish with all 14 basic
              properties and a body spanning several body frames, qos,
              consume, ack/nack/reject, recover, get/get-empty, return, tx,
              exchange bind/unbind, purge, delete, close.
  rabbitmq-c  one connection per amqp-tools program (amqp-declare-queue,
              amqp-publish with properties and headers, amqp-get,
              amqp-consume -c 1, amqp-delete-queue).

Every captured connection gives two streams: client->server (starting with
the protocol header) and server->client.  The scenario constants below are
also written to the fixture as #defines; tests/unit/test_captured.c checks
the decoded frames against them (and against the table contents set here).

Stdlib only, apart from the clients under test.  RabbitMQ must be running:
    rabbitmq-server -detached && rabbitmqctl await_startup
Usage:
    tests/tools/capture_frames.py [--output tests/unit/captured_frames.h]
"""

import argparse
import datetime
import decimal
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, '..', '..'))

# --- pika scenario: the values test_captured.c checks ----------------------
PIKA_FRAME_MAX = 32768  # small enough to keep the fixture small...
PIKA_BODY_SIZE = 70000  # ...while the big body still spans 3 body frames
PIKA_EXCHANGE = 'amqpd.cap.topic'
PIKA_EXCHANGE2 = 'amqpd.cap.fanout'
PIKA_QUEUE = 'amqpd.cap.pika'
PIKA_BIND_KEY = 'cap.#'
PIKA_ROUTING_KEY = 'cap.big.1'
PIKA_CONSUMER_TAG = 'amqpd-cap-ctag'
PIKA_PREFETCH = 10
PIKA_UNROUTABLE = 'amqpd.cap.nowhere'
PIKA_PROPS = dict(
    content_type='application/x-amqpd-capture',
    content_encoding='binary',
    delivery_mode=2,
    priority=5,
    correlation_id='corr-0001',
    reply_to='amqpd.cap.reply',
    expiration='3600000',
    message_id='msg-0001',
    timestamp=1700000000,
    type='amqpd.capture.big',
    user_id='guest',  # RabbitMQ checks it against the login
    app_id='capture_frames.py',
    cluster_id='amqpd-cluster',
)
UTC = datetime.timezone.utc


def pika_body(n):
    """The big body: byte i is (i * 31 + 7) & 0xff (test_captured.c knows)."""
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def pika_exchange_args():
    return {'alternate-exchange': 'amqpd.cap.ae', 'x-amqpd-int': 7}


def pika_queue_args():
    # pika 1.2.0 encodes: str 'S', bytes 'x', bool 't', int 'I' (or 'l' when
    # it does not fit 32 bits), Decimal 'D', datetime 'T', dict 'F', list
    # 'A', None 'V'.  It cannot encode a float.
    return {
        'x-message-ttl': 3600000,  # I
        'x-max-length-bytes': 10000000000,  # l (> 2^31)
        'x-max-priority': 10,  # I
        'x-queue-mode': 'lazy',  # S
        'x-amqpd-bool': True,  # t
        'x-amqpd-neg': -42,  # I, negative
        'x-amqpd-decimal': decimal.Decimal('3.14'),  # D scale 2 value 314
        'x-amqpd-ts': datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),  # T
        'x-amqpd-bytes': b'\x00\xffraw',  # x
        'x-amqpd-void': None,  # V
        'x-amqpd-table': {'k': 'v', 'n': 1, 'deep': {'list': [1, 'a']}},  # F
        'x-amqpd-list': [1, 'two', True, decimal.Decimal('-1.5'), {'in': 'list'}, []],  # A
    }


def pika_headers():
    return {
        'str': 'value',
        'int': 42,
        'long': 1 << 40,
        'neg': -7,
        'bool': False,
        'decimal': decimal.Decimal('12.5'),
        'ts': datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        'bytes': b'\x01\x02\x03',
        'void': None,
        'nested': {'a': 1, 'b': ['x', 2, {'c': True}], 'empty': {}},
        'list': [1, 'two', [3, [4]]],
    }


# --- rabbitmq-c scenario ---------------------------------------------------
RMQC_QUEUE = 'amqpd.cap.rmqc'
RMQC_BODY1 = b'{"hello":"amqpd"}'
RMQC_BODY2_SIZE = 6000


def rmqc_body2():
    return bytes(ord('a') + i % 26 for i in range(RMQC_BODY2_SIZE))


class Connection:
    def __init__(self, index):
        self.index = index
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.done = threading.Event()


class RecordingProxy:
    """Listens on a free local port; forwards each accepted connection to
    upstream and records what goes through, per direction."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while True:
            try:
                cs, _ = self.lsock.accept()
            except OSError:
                return
            try:
                us = socket.create_connection(self.upstream)
            except OSError as e:
                print('proxy: cannot reach upstream: %s' % e, file=sys.stderr)
                cs.close()
                continue
            for s in (cs, us):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = Connection(len(self.conns))
                self.conns.append(conn)
            t1 = threading.Thread(target=self._pump, args=(cs, us, conn.c2s), daemon=True)
            t2 = threading.Thread(target=self._pump, args=(us, cs, conn.s2c), daemon=True)
            t1.start()
            t2.start()
            threading.Thread(target=self._reap, args=(conn, t1, t2, cs, us), daemon=True).start()

    @staticmethod
    def _pump(src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                record += data
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def _reap(conn, t1, t2, cs, us):
        t1.join()
        t2.join()
        cs.close()
        us.close()
        conn.done.set()

    def take(self, timeout=30.0):
        """Wait for every connection so far to end; return and forget them."""
        deadline = time.monotonic() + timeout
        with self.lock:
            conns = list(self.conns)
            self.conns.clear()
        for c in conns:
            if not c.done.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError('connection %d did not finish' % c.index)
        return conns

    def close(self):
        self.lsock.close()


def run_pika(port):
    import pika

    params = pika.ConnectionParameters(
        host='127.0.0.1', port=port, virtual_host='/',
        credentials=pika.PlainCredentials('guest', 'guest'),
        frame_max=PIKA_FRAME_MAX)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.exchange_declare(PIKA_EXCHANGE, exchange_type='topic', durable=True,
                        arguments=pika_exchange_args())
    ch.exchange_declare(PIKA_EXCHANGE2, exchange_type='fanout', auto_delete=True)
    ch.exchange_bind(destination=PIKA_EXCHANGE2, source=PIKA_EXCHANGE, routing_key=PIKA_BIND_KEY)
    ch.exchange_unbind(destination=PIKA_EXCHANGE2, source=PIKA_EXCHANGE,
                       routing_key=PIKA_BIND_KEY)
    ch.queue_declare(PIKA_QUEUE, durable=True, arguments=pika_queue_args())
    ch.queue_bind(PIKA_QUEUE, PIKA_EXCHANGE, routing_key=PIKA_BIND_KEY)
    ch.confirm_delivery()

    body = pika_body(PIKA_BODY_SIZE)
    props = pika.BasicProperties(headers=pika_headers(), **PIKA_PROPS)
    ch.basic_publish(PIKA_EXCHANGE, PIKA_ROUTING_KEY, body, properties=props, mandatory=True)
    ch.basic_qos(prefetch_size=0, prefetch_count=PIKA_PREFETCH)

    got = []

    def on_message(_ch, method, properties, msg):
        got.append((method, properties, msg))

    def wait_for(n):
        deadline = time.monotonic() + 20
        while len(got) < n:
            if time.monotonic() > deadline:
                raise RuntimeError('pika: timed out waiting for deliveries')
            conn.process_data_events(time_limit=0.2)

    ch.basic_consume(PIKA_QUEUE, on_message, auto_ack=False, consumer_tag=PIKA_CONSUMER_TAG,
                     arguments={'x-priority': 3})
    wait_for(1)
    m, p, b = got.pop(0)
    if b != body or p.content_type != PIKA_PROPS['content_type']:
        raise RuntimeError('pika: big message came back different')
    ch.basic_ack(m.delivery_tag)

    small = pika.BasicProperties(content_type='text/plain')
    for text in (b'nack-requeue', b'reject'):
        ch.basic_publish(PIKA_EXCHANGE, 'cap.small', text, properties=small)
    wait_for(2)
    (m1, _, _), (m2, _, _) = got.pop(0), got.pop(0)
    ch.basic_nack(m1.delivery_tag, multiple=False, requeue=True)
    ch.basic_reject(m2.delivery_tag, requeue=False)
    wait_for(1)
    m, _, b = got.pop(0)
    if not m.redelivered or b != b'nack-requeue':
        raise RuntimeError('pika: expected the nacked message redelivered')
    ch.basic_ack(m.delivery_tag)
    for text in (b'nack-multi-1', b'nack-multi-2'):
        ch.basic_publish(PIKA_EXCHANGE, 'cap.small', text, properties=small)
    wait_for(2)
    m = got[-1][0]
    got.clear()
    ch.basic_nack(m.delivery_tag, multiple=True, requeue=False)
    ch.basic_recover(requeue=True)
    ch.basic_cancel(PIKA_CONSUMER_TAG)

    ch.basic_publish(PIKA_EXCHANGE, 'cap.get', b'get-me', properties=small)
    m, _, b = ch.basic_get(PIKA_QUEUE, auto_ack=False)
    if b != b'get-me':
        raise RuntimeError('pika: basic.get returned %r' % (b,))
    ch.basic_ack(m.delivery_tag)
    m, _, _ = ch.basic_get(PIKA_QUEUE, auto_ack=True)
    if m is not None:
        raise RuntimeError('pika: expected basic.get-empty')

    try:
        ch.basic_publish('', PIKA_UNROUTABLE, b'returned', properties=small, mandatory=True)
        raise RuntimeError('pika: expected an unroutable message to come back')
    except pika.exceptions.UnroutableError:
        pass

    # A channel in confirm mode cannot use transactions: a second channel.
    ch2 = conn.channel()
    ch2.tx_select()
    ch2.basic_publish(PIKA_EXCHANGE, 'cap.tx', b'tx-commit', properties=small)
    ch2.tx_commit()
    ch2.basic_publish(PIKA_EXCHANGE, 'cap.tx', b'tx-rollback', properties=small)
    ch2.tx_rollback()
    ch2.close()

    ch.queue_purge(PIKA_QUEUE)
    ch.queue_unbind(PIKA_QUEUE, PIKA_EXCHANGE, routing_key=PIKA_BIND_KEY)
    ch.queue_delete(PIKA_QUEUE)
    ch.exchange_delete(PIKA_EXCHANGE2)
    ch.exchange_delete(PIKA_EXCHANGE)
    ch.close()
    conn.close()


def run_rmqc(port):
    """One connection per amqp-tools program; returns [(name, argv)] run."""
    common = ['--server', '127.0.0.1', '--port', str(port), '--username', 'guest',
              '--password', 'guest']
    steps = [
        ('declare_queue', ['amqp-declare-queue', '-d', '-q', RMQC_QUEUE], None),
        ('publish_props', ['amqp-publish', '-r', RMQC_QUEUE, '-p', '-C', 'application/json',
                           '-E', 'utf-8', '-t', 'amqpd.cap.reply', '-H', 'x-trace: abc-123',
                           '-H', 'x-count: 3', '-b', RMQC_BODY1.decode()], None),
        ('publish_stdin', ['amqp-publish', '-r', RMQC_QUEUE, '-C', 'text/plain'], rmqc_body2()),
        ('get', ['amqp-get', '-q', RMQC_QUEUE], None),
        ('consume', ['amqp-consume', '-q', RMQC_QUEUE, '-c', '1', '-p', '1', 'cat'], None),
        ('delete_queue', ['amqp-delete-queue', '-q', RMQC_QUEUE], None),
    ]
    for name, argv, stdin in steps:
        r = subprocess.run(argv[:1] + common + argv[1:], input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise RuntimeError('%s failed (%d): %s' % (argv[0], r.returncode,
                                                       r.stderr.decode(errors='replace')))
        if name == 'get' and r.stdout != RMQC_BODY1:
            raise RuntimeError('amqp-get printed %r' % (r.stdout[:80],))
        if name == 'consume' and r.stdout != rmqc_body2():
            raise RuntimeError('amqp-consume printed %r' % (r.stdout[:80],))
        yield name, argv[0]


def c_string(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def c_bytes(name, data, comment):
    out = ['/* %s */' % comment, 'static const uint8_t %s[%d] = {' % (name, len(data))]
    for i in range(0, len(data), 16):
        out.append('\t' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',')
    out.append('};')
    return '\n'.join(out) + '\n'


def tool_version(cmd):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        return r.stdout.decode().strip().splitlines()[-1] if r.returncode == 0 else 'unknown'
    except (OSError, subprocess.SubprocessError, IndexError):
        return 'unknown'


def write_fixture(path, streams, versions):
    """streams: [(ident, client, scenario, conn_no, dir, bytes)]"""
    lines = [
        '/* GENERATED by tests/tools/capture_frames.py - DO NOT EDIT. */',
        '/*',
        ' * captured_frames.h - raw AMQP 0-9-1 bytes exchanged by real clients and',
        ' * RabbitMQ %s, recorded by a TCP proxy (client->server streams start with' %
        versions['rabbitmq'],
        ' * the protocol header).  Clients: pika %s, rabbitmq-c %s (amqp-tools).' %
        (versions['pika'], versions['rabbitmq-c']),
        ' * Included by test_captured.c only.',
        ' */',
        '#ifndef CAPTURED_FRAMES_H',
        '#define CAPTURED_FRAMES_H',
        '',
        '#include <stddef.h>',
        '#include <stdint.h>',
        '',
        '/* What the pika scenario set (see capture_frames.py). */',
    ]
    defs = [
        ('CAP_PIKA_FRAME_MAX', str(PIKA_FRAME_MAX)),
        ('CAP_PIKA_BODY_SIZE', str(PIKA_BODY_SIZE)),
        ('CAP_PIKA_EXCHANGE', c_string(PIKA_EXCHANGE)),
        ('CAP_PIKA_EXCHANGE2', c_string(PIKA_EXCHANGE2)),
        ('CAP_PIKA_QUEUE', c_string(PIKA_QUEUE)),
        ('CAP_PIKA_BIND_KEY', c_string(PIKA_BIND_KEY)),
        ('CAP_PIKA_ROUTING_KEY', c_string(PIKA_ROUTING_KEY)),
        ('CAP_PIKA_CONSUMER_TAG', c_string(PIKA_CONSUMER_TAG)),
        ('CAP_PIKA_PREFETCH', str(PIKA_PREFETCH)),
        ('CAP_PIKA_UNROUTABLE', c_string(PIKA_UNROUTABLE)),
    ]
    for k, v in PIKA_PROPS.items():
        defs.append(('CAP_PIKA_PROP_' + k.upper(), c_string(v) if isinstance(v, str) else str(v)))
    defs += [
        ('CAP_RMQC_QUEUE', c_string(RMQC_QUEUE)),
        ('CAP_RMQC_BODY1', c_string(RMQC_BODY1.decode())),
        ('CAP_RMQC_BODY2_SIZE', str(RMQC_BODY2_SIZE)),
    ]
    width = max(len(k) for k, _ in defs)
    lines += ['#define %-*s %s' % (width, k, v) for k, v in defs]
    lines += ['', 'enum cap_dir {', '\tCAP_CLIENT_TO_SERVER,', '\tCAP_SERVER_TO_CLIENT,', '};', '']
    body = '\n'.join(lines) + '\n'
    for ident, client, scenario, conn_no, d, data in streams:
        body += '\n' + c_bytes(ident, data, '%s %s, connection %d, %s, %d bytes' % (
            client, scenario, conn_no, 'client->server' if d == 'c2s' else 'server->client',
            len(data)))
    body += '''
struct cap_stream {
	const char *name;     /* "<client>.<scenario>.<direction>" */
	const char *client;   /* "pika" or "rabbitmq-c" */
	const char *scenario; /* what the connection did */
	unsigned conn;        /* streams with the same conn are one connection */
	enum cap_dir dir;
	const uint8_t *data;
	size_t len;
};

static const struct cap_stream cap_streams[] = {
'''
    for ident, client, scenario, conn_no, d, data in streams:
        body += '\t{%s, %s, %s, %d, %s, %s, sizeof(%s)},\n' % (
            c_string('%s.%s.%s' % (client, scenario, d)), c_string(client), c_string(scenario),
            conn_no, 'CAP_CLIENT_TO_SERVER' if d == 'c2s' else 'CAP_SERVER_TO_CLIENT', ident,
            ident)
    body += '};\n\n#define CAP_STREAM_COUNT (sizeof(cap_streams) / sizeof(cap_streams[0]))\n'
    body += '\n#endif\n'
    with open(path, 'w') as f:
        f.write(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rabbitmq', default='127.0.0.1:5672', help='host:port of RabbitMQ')
    ap.add_argument('--output', default=os.path.join(TOP, 'tests', 'unit', 'captured_frames.h'))
    ap.add_argument('--clang-format', default=os.environ.get('CLANG_FORMAT', 'clang-format'))
    args = ap.parse_args()

    host, _, port = args.rabbitmq.rpartition(':')
    upstream = (host, int(port))
    try:
        socket.create_connection(upstream, timeout=5).close()
    except OSError as e:
        sys.exit('cannot reach RabbitMQ at %s (%s); start it with\n'
                 '  rabbitmq-server -detached && rabbitmqctl await_startup' % (args.rabbitmq, e))
    import pika

    versions = {
        'pika': pika.__version__,
        'rabbitmq-c': tool_version(['dpkg-query', '-W', '-f=${Version}\n', 'librabbitmq4']),
        'rabbitmq': tool_version(['rabbitmqctl', '-q', 'version']),
    }
    proxy = RecordingProxy(upstream)
    streams = []
    conn_no = 0

    def collect(client, scenario):
        nonlocal conn_no
        conns = proxy.take()
        if len(conns) != 1:
            raise RuntimeError('%s %s: expected one connection, saw %d' %
                               (client, scenario, len(conns)))
        c = conns[0]
        ident = 'cap_%s_%s' % (client.replace('-', ''), scenario)
        streams.append((ident + '_c2s', client, scenario, conn_no, 'c2s', bytes(c.c2s)))
        streams.append((ident + '_s2c', client, scenario, conn_no, 's2c', bytes(c.s2c)))
        print('%-10s %-14s c->s %7d bytes, s->c %7d bytes' %
              (client, scenario, len(c.c2s), len(c.s2c)))
        conn_no += 1

    run_pika(proxy.port)
    collect('pika', 'full')
    for name, _ in run_rmqc(proxy.port):
        collect('rabbitmq-c', name)
    proxy.close()

    write_fixture(args.output, streams, versions)
    if shutil.which(args.clang_format):
        # The tree's style, wherever the output goes.
        style = os.path.join(TOP, '.clang-format')
        cmd = [args.clang_format, '-i', args.output]
        if os.path.exists(style):
            cmd.insert(1, '--style=file:' + style)
        subprocess.run(cmd, check=True)
    else:
        print('warning: %s not found; fixture not formatted' % args.clang_format, file=sys.stderr)
    print('wrote %s (%d streams, %d bytes)' %
          (args.output, len(streams), os.path.getsize(args.output)))


if __name__ == '__main__':
    try:
        import pika  # noqa: F401
    except ImportError:
        # python3-pika is Debian's; another python3 first in PATH lacks it.
        if os.path.exists('/usr/bin/python3') and sys.executable != '/usr/bin/python3':
            os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
        raise
    main()
