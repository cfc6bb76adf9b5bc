'use strict';
// Interop tests: the npm amqplib client against an AMQP 0-9-1 broker.
//
// Usage: node test_amqplib.js HOST:PORT
//    or: AMQPD_INTEROP_BROKER=HOST:PORT node --test test_amqplib.js
// Set AMQPD_INTEROP_EXTERNAL (to anything) when the broker is not amqpd (e.g.
// RabbitMQ) to skip the product == "amqpd" check.  Every test uses uniquely
// named, exclusive / auto-delete or explicitly deleted entities.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const amqp = require('amqplib');

const target = (process.argv[2] && !process.argv[2].startsWith('-'))
  ? process.argv[2] : process.env.AMQPD_INTEROP_BROKER;
if (!target) {
  console.error('usage: node test_amqplib.js HOST:PORT (or AMQPD_INTEROP_BROKER)');
  process.exit(2);
}
const URL = `amqp://guest:guest@${target}/`;
const TEST_TIMEOUT = 20000;

function uniq(prefix) {
  return `interop.amqplib.${prefix}.${crypto.randomBytes(6).toString('hex')}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, what, timeout = 5000) {
  const end = Date.now() + timeout;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// A connection plus bookkeeping; channel errors are recorded, never thrown
// as unhandled 'error' events.
class Session {
  static async open() {
    const s = new Session();
    s.conn = await amqp.connect(URL);
    s.conn.on('error', (e) => s.errors.push(e));
    s.ch = await s.channel();
    return s;
  }
  constructor() { this.errors = []; this.queues = []; this.exchanges = []; }
  async channel(confirm = false) {
    const ch = confirm ? await this.conn.createConfirmChannel()
      : await this.conn.createChannel();
    ch.on('error', (e) => this.errors.push(e));
    return ch;
  }
  async queue(opts = { exclusive: true }) {
    const name = uniq('q');
    const ok = await this.ch.assertQueue(name, opts);
    assert.equal(ok.queue, name);
    this.queues.push(name);
    return name;
  }
  async exchange(type, opts = { autoDelete: false, durable: false }) {
    const name = uniq(type);
    await this.ch.assertExchange(name, type, opts);
    this.exchanges.push(name);
    return name;
  }
  async drain(q) {
    const out = [];
    for (;;) {
      const m = await this.ch.get(q, { noAck: true });
      if (m === false) return out;
      out.push(m.content.toString());
    }
  }
  async count(q, expect, timeout = 3000) {
    // queue.declare-ok's message_count can lag behind unconfirmed publishes
    // (RabbitMQ), so poll until it settles on the expected value.
    const end = Date.now() + timeout;
    let n;
    for (;;) {
      n = (await this.ch.checkQueue(q)).messageCount;
      if (n === expect || Date.now() > end) return n;
      await sleep(20);
    }
  }
  async close() {
    try {
      const ch = await this.channel();
      for (const q of this.queues) await ch.deleteQueue(q);
      for (const x of this.exchanges) await ch.deleteExchange(x);
      await this.conn.close();
    } catch (e) { if (process.env.DEBUG_CLOSE) console.error("close:", e); }
  }
}

// Run fn with a fresh Session, always cleaning up.
function t(name, fn) {
  test(name, { timeout: TEST_TIMEOUT }, async () => {
    const s = await Session.open();
    try { await fn(s); } finally { await s.close(); }
  });
}

t('connect: server properties and capabilities', async (s) => {
  const sp = s.conn.connection.serverProperties;
  assert.ok(sp && typeof sp === 'object');
  if (!process.env.AMQPD_INTEROP_EXTERNAL) assert.equal(sp.product, 'amqpd');
  for (const k of ['product', 'version', 'platform']) assert.ok(k in sp, k);
  const caps = sp.capabilities;
  for (const c of ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify',
    'exchange_exchange_bindings', 'connection.blocked', 'per_consumer_qos',
    'direct_reply_to', 'authentication_failure_close', 'consumer_priorities']) {
    assert.equal(caps[c], true, c);
  }
});

t('connect: wrong password is refused', async () => {
  await assert.rejects(amqp.connect(`amqp://guest:nope@${target}/`),
    (e) => /ACCESS_REFUSED|403/.test(String(e.message)));
});

t('default exchange', async (s) => {
  const q = await s.queue();
  assert.equal(s.ch.sendToQueue(q, Buffer.from('hello')), true);
  assert.deepEqual(await s.drain(q), ['hello']);
});

t('direct exchange routing', async (s) => {
  const x = await s.exchange('direct');
  const qa = await s.queue();
  const qb = await s.queue();
  await s.ch.bindQueue(qa, x, 'a');
  await s.ch.bindQueue(qb, x, 'b');
  await s.ch.bindQueue(qa, x, 'both');
  await s.ch.bindQueue(qb, x, 'both');
  for (const k of ['a', 'b', 'both', 'none']) s.ch.publish(x, k, Buffer.from(k));
  assert.deepEqual(await s.drain(qa), ['a', 'both']);
  assert.deepEqual(await s.drain(qb), ['b', 'both']);
  await s.ch.unbindQueue(qa, x, 'a');
  s.ch.publish(x, 'a', Buffer.from('a2'));
  assert.deepEqual(await s.drain(qa), []);
});

t('fanout exchange routing', async (s) => {
  const x = await s.exchange('fanout');
  const qs = [await s.queue(), await s.queue(), await s.queue()];
  for (const q of qs) await s.ch.bindQueue(q, x, 'ignored');
  s.ch.publish(x, 'any', Buffer.from('f1'));
  s.ch.publish(x, '', Buffer.from('f2'));
  for (const q of qs) assert.deepEqual(await s.drain(q), ['f1', 'f2']);
});

t('topic exchange routing with * and #', async (s) => {
  const x = await s.exchange('topic');
  const star = await s.queue();
  const hash = await s.queue();
  const mid = await s.queue();
  await s.ch.bindQueue(star, x, '*.orange.*');
  await s.ch.bindQueue(hash, x, 'lazy.#');
  await s.ch.bindQueue(mid, x, 'a.#.z');
  const keys = ['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy', 'lazy.a.b.c',
    'orange', 'quick.orange.male.rabbit', 'a.z', 'a.b.c.z', 'a.b'];
  for (const k of keys) s.ch.publish(x, k, Buffer.from(k));
  assert.deepEqual(await s.drain(star), ['quick.orange.rabbit', 'lazy.orange.elephant']);
  assert.deepEqual(await s.drain(hash), ['lazy.orange.elephant', 'lazy', 'lazy.a.b.c']);
  assert.deepEqual(await s.drain(mid), ['a.z', 'a.b.c.z']);
});

t('headers exchange routing (x-match all / any)', async (s) => {
  const x = await s.exchange('headers');
  const qAll = await s.queue();
  const qAny = await s.queue();
  await s.ch.bindQueue(qAll, x, '', { 'x-match': 'all', format: 'pdf', n: 7 });
  await s.ch.bindQueue(qAny, x, '', { 'x-match': 'any', format: 'pdf', n: 7 });
  const pub = (body, headers) => s.ch.publish(x, '', Buffer.from(body), { headers });
  pub('both', { format: 'pdf', n: 7, other: true });
  pub('format', { format: 'pdf' });
  pub('n', { n: 7 });
  pub('wrong', { format: 'zip', n: 8 });
  pub('none', undefined);
  assert.deepEqual(await s.drain(qAll), ['both']);
  assert.deepEqual(await s.drain(qAny), ['both', 'format', 'n']);
});

t('exchange-to-exchange binding', async (s) => {
  const src = await s.exchange('topic');
  const dst = await s.exchange('fanout');
  const q = await s.queue();
  await s.ch.bindExchange(dst, src, 'e2e.#');
  await s.ch.bindQueue(q, dst, '');
  s.ch.publish(src, 'e2e.yes', Buffer.from('routed'));
  s.ch.publish(src, 'other', Buffer.from('dropped'));
  assert.deepEqual(await s.drain(q), ['routed']);
  await s.ch.unbindExchange(dst, src, 'e2e.#');
  s.ch.publish(src, 'e2e.yes', Buffer.from('after'));
  assert.deepEqual(await s.drain(q), []);
});

t('publish with all properties and headers', async (s) => {
  const q = await s.queue();
  const body = crypto.randomBytes(3000);
  const headers = {
    str: 'text \u00e9\u4e2d', byte: 5, short: 1000, int: 100000, long: 2 ** 40,
    neg: -12345, dbl: 2.5, t: true, f: false, nil: null,
    buf: Buffer.from([0, 1, 255]), arr: [1, 'two', { three: 3 }, [4]],
    nested: { a: 'b', c: { d: 1 } }, empty: '',
    ts: { '!': 'timestamp', value: 1700000000 },
    dec: { '!': 'decimal', value: { places: 2, digits: 314 } },
  };
  s.ch.sendToQueue(q, body, {
    contentType: 'application/octet-stream', contentEncoding: 'identity',
    headers, deliveryMode: 2, priority: 3, correlationId: 'corr-1',
    replyTo: 'reply.here', expiration: '60000', messageId: 'mid-1',
    timestamp: 1700000001, type: 'my.type', userId: 'guest', appId: 'interop',
  });
  const m = await s.ch.get(q, { noAck: true });
  assert.ok(m, 'no message');
  assert.ok(m.content.equals(body));
  assert.equal(m.fields.routingKey, q);
  assert.equal(m.fields.exchange, '');
  assert.equal(m.fields.redelivered, false);
  const p = m.properties;
  assert.equal(p.contentType, 'application/octet-stream');
  assert.equal(p.contentEncoding, 'identity');
  assert.equal(p.deliveryMode, 2);
  assert.equal(p.priority, 3);
  assert.equal(p.correlationId, 'corr-1');
  assert.equal(p.replyTo, 'reply.here');
  assert.equal(p.expiration, '60000');
  assert.equal(p.messageId, 'mid-1');
  assert.equal(p.timestamp, 1700000001);
  assert.equal(p.type, 'my.type');
  assert.equal(p.userId, 'guest');
  assert.equal(p.appId, 'interop');
  const h = p.headers;
  for (const k of ['str', 'byte', 'short', 'int', 'long', 'neg', 'dbl', 't', 'f',
    'empty']) assert.equal(h[k], headers[k], k);
  assert.equal(h.nil, null);
  assert.ok(Buffer.isBuffer(h.buf) && h.buf.equals(headers.buf));
  assert.deepEqual(h.arr, headers.arr);
  assert.deepEqual(h.nested, headers.nested);
  assert.deepEqual(h.ts, headers.ts); // amqplib decodes 'T' and 'D' tagged
  assert.deepEqual(h.dec, headers.dec);
});

t('large message (5 MB) round trip', async (s) => {
  const q = await s.queue();
  const body = crypto.randomBytes(5 * 1024 * 1024);
  s.ch.sendToQueue(q, body);
  const m = await s.ch.get(q, { noAck: true });
  assert.ok(m && m.content.equals(body), '5 MB body via basic.get');
  s.ch.sendToQueue(q, body);
  const got = await new Promise((resolve) => {
    s.ch.consume(q, (msg) => { if (msg) resolve(msg); }, { noAck: true });
  });
  assert.ok(got.content.equals(body), '5 MB body via basic.consume');
});

t('consume with manual ack', async (s) => {
  const q = await s.queue();
  const n = 50;
  for (let i = 0; i < n; i++) s.ch.sendToQueue(q, Buffer.from(`m${i}`));
  const got = [];
  const { consumerTag } = await s.ch.consume(q, (m) => {
    assert.equal(m.fields.redelivered, false);
    got.push(m.content.toString());
    s.ch.ack(m);
  });
  await waitFor(() => got.length === n, `${n} deliveries`);
  await s.ch.cancel(consumerTag);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => `m${i}`));
  assert.equal(await s.count(q, 0), 0);
});

t('nack with requeue redelivers with redelivered flag', async (s) => {
  const q = await s.queue();
  s.ch.sendToQueue(q, Buffer.from('again'));
  const seen = [];
  const { consumerTag } = await s.ch.consume(q, (m) => {
    seen.push([m.fields.redelivered, m.content.toString()]);
    if (seen.length === 1) s.ch.nack(m, false, true);
    else s.ch.ack(m);
  });
  await waitFor(() => seen.length >= 2, 'redelivery');
  await s.ch.cancel(consumerTag);
  assert.deepEqual(seen, [[false, 'again'], [true, 'again']]);
  assert.equal(await s.count(q, 0), 0);
});

t('nack without requeue, nackAll and allUpTo', async (s) => {
  const q = await s.queue();
  for (let i = 0; i < 5; i++) s.ch.sendToQueue(q, Buffer.from(`${i}`));
  const m0 = await s.ch.get(q);
  s.ch.nack(m0, false, false); // dropped
  const m1 = await s.ch.get(q);
  const m2 = await s.ch.get(q);
  s.ch.nack(m2, true, true); // m1 and m2 requeued
  const again = [await s.ch.get(q), await s.ch.get(q)];
  assert.deepEqual(again.map((m) => [m.content.toString(), m.fields.redelivered]),
    [['1', true], ['2', true]]);
  assert.equal(m1.content.toString(), '1');
  s.ch.nackAll(false); // drops 1 and 2 (unacked on this channel)
  assert.deepEqual(await s.drain(q), ['3', '4']);
});

t('reject with and without requeue', async (s) => {
  const q = await s.queue();
  s.ch.sendToQueue(q, Buffer.from('r1'));
  s.ch.sendToQueue(q, Buffer.from('r2'));
  let m = await s.ch.get(q);
  assert.equal(m.content.toString(), 'r1');
  s.ch.reject(m, true);
  m = await s.ch.get(q);
  assert.equal(m.content.toString(), 'r1');
  assert.equal(m.fields.redelivered, true);
  s.ch.reject(m, false);
  m = await s.ch.get(q);
  assert.equal(m.content.toString(), 'r2');
  assert.equal(m.fields.redelivered, false);
  s.ch.ack(m);
  assert.equal(await s.ch.get(q), false);
});

t('basic.get and message counts', async (s) => {
  const q = await s.queue();
  assert.equal(await s.ch.get(q), false);
  for (let i = 0; i < 3; i++) s.ch.sendToQueue(q, Buffer.from(`g${i}`));
  let m = await s.ch.get(q);
  assert.equal(m.content.toString(), 'g0');
  assert.equal(m.fields.messageCount, 2);
  assert.equal(m.fields.deliveryTag, 1);
  s.ch.ack(m);
  m = await s.ch.get(q, { noAck: true });
  assert.deepEqual([m.content.toString(), m.fields.messageCount, m.fields.deliveryTag],
    ['g1', 1, 2]);
  assert.equal(await s.count(q, 1), 1);
  const purged = await s.ch.purgeQueue(q);
  assert.equal(purged.messageCount, 1);
  assert.equal(await s.ch.get(q), false);
});

t('recover requeues unacked messages', async (s) => {
  const q = await s.queue();
  s.ch.sendToQueue(q, Buffer.from('x'));
  const got = [];
  await s.ch.consume(q, (m) => { if (m) got.push(m); });
  await waitFor(() => got.length === 1, 'first delivery');
  await s.ch.recover();
  await waitFor(() => got.length === 2, 'redelivery after basic.recover');
  assert.equal(got[1].fields.redelivered, true);
  s.ch.ack(got[1]);
});

t('prefetch (basic.qos) is honoured', async (s) => {
  const q = await s.queue();
  for (let i = 0; i < 10; i++) s.ch.sendToQueue(q, Buffer.from(`${i}`));
  await s.ch.prefetch(3);
  const got = [];
  const { consumerTag } = await s.ch.consume(q, (m) => got.push(m));
  await waitFor(() => got.length >= 3, '3 deliveries');
  await sleep(300);
  assert.equal(got.length, 3, 'prefetch 3 exceeded');
  s.ch.ack(got[0]);
  await waitFor(() => got.length >= 4, '4th delivery');
  await sleep(200);
  assert.equal(got.length, 4);
  s.ch.ack(got[3], true);
  await waitFor(() => got.length >= 7, '7 deliveries');
  await sleep(200);
  assert.equal(got.length, 7);
  await s.ch.cancel(consumerTag);
});

t('confirm channel: many publishes all confirmed', async (s) => {
  const q = await s.queue();
  const cc = await s.channel(true);
  const n = 1000;
  let acked = 0;
  for (let i = 0; i < n; i++) {
    cc.sendToQueue(q, Buffer.from(`c${i}`), {}, (err) => { if (!err) acked++; });
  }
  await cc.waitForConfirms();
  assert.equal(acked, n);
  assert.equal(await s.count(q, n), n);
  // promise-style single publish
  await new Promise((resolve, reject) => cc.publish('', q, Buffer.from('one'), {},
    (err) => (err ? reject(err) : resolve())));
  await cc.close();
});

t('confirm channel: mandatory unroutable is returned then confirmed', async (s) => {
  const x = await s.exchange('direct');
  const cc = await s.channel(true);
  const returned = [];
  cc.on('return', (m) => returned.push(m));
  let confirmed = null;
  cc.publish(x, 'nowhere', Buffer.from('lost'), { mandatory: true, messageId: 'r1' },
    (err) => { confirmed = err ? 'nack' : 'ack'; });
  await cc.waitForConfirms();
  assert.equal(confirmed, 'ack');
  assert.equal(returned.length, 1);
  const r = returned[0];
  assert.equal(r.fields.replyCode, 312);
  assert.equal(r.fields.replyText, 'NO_ROUTE');
  assert.equal(r.fields.exchange, x);
  assert.equal(r.fields.routingKey, 'nowhere');
  assert.equal(r.properties.messageId, 'r1');
  assert.equal(r.content.toString(), 'lost');
  await cc.close();
});

t('consumer cancel notification when the queue is deleted', async (s) => {
  const q = await s.queue({ exclusive: false, autoDelete: false });
  let cancelled = false;
  await s.ch.consume(q, (m) => { if (m === null) cancelled = true; });
  const other = await s.channel();
  await other.deleteQueue(q);
  await waitFor(() => cancelled, 'consume callback(null)');
  // the channel survives
  const q2 = await s.queue();
  s.ch.sendToQueue(q2, Buffer.from('still-ok'));
  assert.deepEqual(await s.drain(q2), ['still-ok']);
  assert.equal(s.errors.length, 0);
});

t('channel error (404) leaves the connection usable', async (s) => {
  const missing = uniq('missing');
  await assert.rejects(s.ch.checkQueue(missing), (e) => {
    assert.equal(e.code, 404);
    assert.ok(e.message.includes(`NOT_FOUND - no queue '${missing}' in vhost '/'`), e.message);
    return true;
  });
  await waitFor(() => s.errors.length === 1, 'channel error event');
  s.errors.length = 0;
  s.ch = await s.channel();
  const q = await s.queue();
  s.ch.sendToQueue(q, Buffer.from('ok'));
  assert.deepEqual(await s.drain(q), ['ok']);
  // an error raised by an async publish (missing exchange) also just closes
  // the channel
  const ch2 = await s.channel();
  const closed = new Promise((resolve) => ch2.on('close', resolve));
  ch2.publish(uniq('nox'), 'rk', Buffer.from('x'));
  await closed;
  assert.equal(s.errors.length, 1);
  assert.equal(s.errors[0].code, 404);
  assert.match(s.errors[0].message, /NOT_FOUND - no exchange/);
  s.ch = await s.channel();
  await s.ch.checkQueue(q);
});

t('direct reply-to RPC', async (s) => {
  const serverQ = await s.queue();
  const srv = await s.channel();
  await srv.consume(serverQ, (m) => {
    if (m === null) return; // cancelled by the cleanup's queue.delete
    srv.sendToQueue(m.properties.replyTo, Buffer.from(`reply:${m.content}`),
      { correlationId: m.properties.correlationId });
    srv.ack(m);
  });
  const replies = [];
  await s.ch.consume('amq.rabbitmq.reply-to',
    (m) => replies.push([m.properties.correlationId, m.content.toString()]),
    { noAck: true });
  for (let i = 0; i < 3; i++) {
    s.ch.sendToQueue(serverQ, Buffer.from(`req${i}`),
      { replyTo: 'amq.rabbitmq.reply-to', correlationId: `c${i}` });
  }
  await waitFor(() => replies.length === 3, '3 replies');
  replies.sort();
  assert.deepEqual(replies, [0, 1, 2].map((i) => [`c${i}`, `reply:req${i}`]));
});

t('direct reply-to: reply_to property is rewritten', async (s) => {
  const q = await s.queue();
  await s.ch.consume('amq.rabbitmq.reply-to', () => {}, { noAck: true });
  s.ch.sendToQueue(q, Buffer.from('x'), { replyTo: 'amq.rabbitmq.reply-to' });
  const m = await s.ch.get(q, { noAck: true });
  assert.match(m.properties.replyTo, /^amq\.rabbitmq\.reply-to\..+/);
});

// amqplib's own suite ("find high watermark"): publish until the client's
// buffer is full, then close at once.  The client keeps writing buffered
// publishes after its connection.close; the broker must half-close and drain
// (not reset the socket), or the client never reads close-ok.
test('close right after filling the write buffer completes', { timeout: TEST_TIMEOUT }, async () => {
  for (let round = 0; round < 5; round++) {
    const conn = await amqp.connect(URL);
    conn.on('error', () => {});
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    let n = 0;
    while (ch.sendToQueue(queue, Buffer.from('x'.repeat(10)))) n++;
    assert.ok(n > 0);
    await conn.close(); // rejects (or never settles) if the socket was reset
  }
});
