// Limits and liveness (SPEC sections 4 and 10): 1009 oversize, 1007 invalid UTF-8,
// heartbeat pings and the heartbeat timeout, the rate limit, against the real server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, assertServes, assertPingPong, sleep, waitFor } = require('./lib/helpers');
const { metrics } = require('./lib/proc');

const MAX_MESSAGE = 1024;

// Resolves with the close info, or rejects when the connection is still open after `ms`.
function closedWithin(client, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms; received:\n` +
      client.received())), ms);
  });
  return Promise.race([client.closed, timeout]).finally(() => clearTimeout(timer));
}

// A chat:message envelope whose JSON text is exactly `size` bytes.
function messageOfSize(room, size) {
  const base = JSON.stringify({ type: 'chat:message', room, data: '' });
  const text = JSON.stringify({ type: 'chat:message', room, data: 'x'.repeat(size - base.length) });
  assert.equal(Buffer.byteLength(text), size);
  return text;
}

describe('limits', () => {
  let server;

  before(async () => {
    server = await startServer({
      config: {
        heartbeat: { interval: '500ms', timeout: '500ms' },
        limits: { max_message: '1KiB' },
      },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  describe('max_message', () => {
    it('accepts a text frame just under limits.max_message', async () => {
      const room = uid('room');
      const c = await connect(server.url(`/chat?user=${uid('big')}`));
      expectAck(await c.request('join', { room }), 1);
      c.sendRaw(messageOfSize(room, MAX_MESSAGE - 24));
      const ev = await c.next('chat:message');
      assert.equal(ev.data.length, MAX_MESSAGE - 24 - JSON.stringify({ type: 'chat:message', room, data: '' }).length);
      assert.ok(c.isOpen);
      await c.close();
    });

    it('closes with 1009 on a text frame over limits.max_message', async () => {
      const room = uid('room');
      const c = await connect(server.url(`/chat?user=${uid('huge')}`));
      expectAck(await c.request('join', { room }), 1);
      c.sendRaw(messageOfSize(room, 2 * MAX_MESSAGE));
      const info = await closedWithin(c, 3000, 'oversize frame');
      assert.equal(info.code, 1009, `close code ${JSON.stringify(info)}`);
      assert.deepEqual(c.pending().filter((m) => m.type === 'chat:message'), [],
        'the oversize message was not delivered');
      await assertServes(server);
    });

    it('closes with 1009 on a binary frame over limits.max_message', async () => {
      const c = await connect(server.url(`/chat?user=${uid('hugebin')}`));
      c.sendRaw(Buffer.alloc(4 * MAX_MESSAGE, 0x61), { binary: true });
      const info = await closedWithin(c, 3000, 'oversize binary frame');
      assert.equal(info.code, 1009, `close code ${JSON.stringify(info)}`);
      await assertServes(server);
    });
  });

  describe('utf-8', () => {
    it('closes with 1007 on invalid UTF-8 in a text frame', async () => {
      const room = uid('room');
      const c = await connect(server.url(`/chat?user=${uid('utf')}`));
      expectAck(await c.request('join', { room }), 1);
      c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      const info = await closedWithin(c, 3000, 'invalid UTF-8');
      assert.equal(info.code, 1007, `close code ${JSON.stringify(info)}`);
      await assertServes(server);
    });

    it('closes with 1007 on a truncated multi-byte sequence inside a JSON string', async () => {
      const c = await connect(server.url(`/chat?user=${uid('utf2')}`));
      const bytes = Buffer.concat([Buffer.from('{"type":"ping","data":"'), Buffer.from([0xe2, 0x82]),
        Buffer.from('"}')]);
      c.ws.send(bytes, { binary: false });
      const info = await closedWithin(c, 3000, 'truncated UTF-8');
      assert.equal(info.code, 1007, `close code ${JSON.stringify(info)}`);
      await assertServes(server);
    });
  });

  describe('heartbeat', () => {
    it('announces the heartbeat interval in seconds in hello', async () => {
      const c = await connect(server.url(`/chat?user=${uid('hb')}`));
      assert.equal(c.hello.data.heartbeat, 0.5);
      await c.close();
    });

    it('pings every interval and keeps a client that answers them', async () => {
      const c = await connect(server.url(`/chat?user=${uid('alive')}`));
      const t0 = Date.now();
      await sleep(3000);
      assert.ok(c.isOpen, `closed after ${Date.now() - t0} ms: ${JSON.stringify(c.closeInfo)}`);
      assert.ok(c.pings >= 3, `expected WebSocket pings every 500 ms, got ${c.pings} in 3 s`);
      await assertPingPong(c, 'after 3 s of pings');
      await c.close();
    });

    // The server gives back the page of its receive buffer that each pong touched
    // (core/server/server.c, release_rx_page): the buffer must keep working afterwards, for
    // control frames and for a message that comes in fragments.
    it('still reads control frames and fragmented messages after answered pings', async () => {
      const c = await connect(server.url(`/chat?user=${uid('frag')}`));
      await sleep(1500);
      assert.ok(c.pings >= 2, `expected pings, got ${c.pings}`);
      const echoed = new Promise((resolve) => c.ws.once('pong', (data) => resolve(data.toString())));
      c.ws.ping('client-ping-payload');
      assert.equal(await echoed, 'client-ping-payload');
      const text = JSON.stringify({ type: 'ping', id: 'frag', data: 'y'.repeat(300) });
      c.ws.send(text.slice(0, 100), { fin: false });
      c.ws.send(text.slice(100, 250), { fin: false });
      c.ws.send(text.slice(250), { fin: true });
      const pong = await c.next((m) => m.type === 'pong' && m.id === 'frag');
      assert.equal(pong.data, 'y'.repeat(300));
      await assertPingPong(c, 'after fragments');
      await c.close();
    });

    it('closes a client that answers no pings, logs it, and removes its presence', async () => {
      const room = uid('room');
      const watcher = await connect(server.url(`/chat?user=${uid('watcher')}`));
      expectAck(await watcher.request('join', { room }), 1);
      const mute = uid('mute');
      const m = await connect(server.url(`/chat?user=${mute}`), { autoPong: false });
      expectAck(await m.request('join', { room }), 1);
      await watcher.next({ type: 'presence:join', room });
      const t0 = Date.now();
      await closedWithin(m, 4000, 'client without pongs');
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 500, `closed only after interval + timeout, came after ${elapsed} ms`);
      assert.ok(m.pings >= 1, 'the server pinged before giving up');
      await server.waitForLog(/heartbeat timeout/, 2000);
      const left = await watcher.next({ type: 'presence:leave', room }, 2000);
      assert.deepEqual(left.data, { user: mute });
      assert.ok(watcher.isOpen, 'the answering client stays');
      await assertPingPong(watcher, 'watcher');
      await watcher.close();
      await assertServes(server);
    });

    // The pings go by each connection's own moment in the interval (core/net/heartbeat.c):
    // opened together and quiet, every answering one is still pinged and kept, every
    // mute one still dropped once silent for interval + timeout.
    it('keeps every answering connection of many opened together and drops every mute one', async () => {
      const answering = [];
      const mute = [];
      for (let i = 0; i < 60; i++) {
        const opts = i % 3 === 0 ? { autoPong: false } : {};
        const c = await connect(server.url(`/chat?user=${uid('crowd')}`), opts);
        (i % 3 === 0 ? mute : answering).push(c);
      }
      const t0 = Date.now();
      await Promise.all(mute.map((c) => closedWithin(c, 5000, 'a mute client among many')));
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 500, `dropped only after interval + timeout, came after ${elapsed} ms`);
      for (const c of mute) assert.ok(c.pings >= 1, 'each mute client was pinged before the drop');
      await waitFor(() => answering.every((c) => c.pings >= 2), 5000, 'two pings to every answering client');
      for (const c of answering) {
        assert.ok(c.isOpen, `an answering client was closed: ${JSON.stringify(c.closeInfo)}`);
      }
      await Promise.all(answering.slice(0, 5).map((c) => assertPingPong(c, 'one of the crowd')));
      await Promise.all(answering.map((c) => c.close()));
      await assertServes(server);
    });
  });
});

describe('rate limit', () => {
  let server;

  before(async () => {
    server = await startServer({ config: { limits: { rate: 5, burst: 5 } } });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  // Every reply to ids[] (an ack or an error), waiting up to ms for the last one.
  async function replies(c, ids, ms = 5000) {
    const out = new Map();
    for (const id of ids) {
      out.set(id, await c.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === id, ms));
    }
    return out;
  }

  it('answers each of 25 requests at once with its ack or its rate_limited, and keeps the connection', async (t) => {
    const room = uid('rl');
    const c = await connect(server.url(`/chat?user=${uid('eager')}`));
    const ids = [...Array(25).keys()].map((i) => `req-${i}`);
    for (const id of ids) c.send({ type: 'join', room, id });
    const got = await replies(c, ids);
    const acks = [...got.values()].filter((m) => m.type === 'ack');
    const limited = [...got.values()].filter((m) => m.type === 'error');
    for (const m of limited) expectError(m, 'rate_limited', m.id, 'over the rate');
    assert.ok(acks.length >= 5, `the burst of 5 went through: ${acks.length} acks`);
    assert.ok(limited.length >= 10, `the rest were refused: ${limited.length} rate_limited`);
    assert.equal(acks.length + limited.length, 25);
    assert.deepEqual(c.pending().filter((m) => m.type === 'error' && m.id === undefined), [],
      'no error without an id');
    t.diagnostic(`${acks.length} acks, ${limited.length} rate_limited`);
    assert.ok(c.isOpen, 'a burst is not abuse: the connection stays');
    // Tokens come back at 5/s: the refused ones can be sent again.
    await sleep(1200);
    expectAck(await c.request('join', { room, id: 'again' }), 'again');
    const m = await metrics(server.port);
    assert.ok(m.moonwire_rate_limited_total >= limited.length);
    await c.close();
  });

  it('an integer id comes back as an integer, and a message without id gets an error without one', async () => {
    const c = await connect(server.url(`/chat?user=${uid('ints')}`));
    // 20 at once, every other one with an id: the burst of 5 goes through, most of the
    // rest is refused, of both kinds.
    for (let i = 0; i < 20; i++) c.send(i % 2 ? { type: 'ping', id: 1000 + i } : { type: 'ping', data: i });
    await waitFor(() => c.pending().filter((m) => m.type === 'pong' || m.type === 'error').length === 20, 5000,
      '20 answers');
    const errors = c.pending().filter((m) => m.type === 'error');
    const withId = errors.filter((m) => 'id' in m);
    const withoutId = errors.filter((m) => !('id' in m));
    assert.ok(withId.length >= 5 && withoutId.length >= 5, JSON.stringify(errors));
    for (const m of withId) {
      expectError(m, 'rate_limited', m.id);
      assert.ok(Number.isInteger(m.id) && m.id >= 1000, `an integer id: ${JSON.stringify(m)}`);
    }
    for (const m of withoutId) expectError(m, 'rate_limited', undefined);
    await c.close();
  });

  it('closes sustained abuse with 1008 after answering what came before', async (t) => {
    const c = await connect(server.url(`/chat?user=${uid('abuser')}`));
    const sent = 200; // the abuse count passes 10 x burst = 50 well before the end
    for (let i = 0; i < sent; i++) c.send({ type: 'ping', id: i });
    const info = await closedWithin(c, 5000, 'an abusive client');
    assert.equal(info.code, 1008, JSON.stringify(info));
    assert.equal(info.reason, 'rate limit');
    const limited = c.pending().filter((m) => m.type === 'error' && m.code === 'rate_limited');
    assert.ok(limited.length >= 50, `${limited.length} rate_limited errors before the close`);
    assert.ok(limited.every((m) => Number.isInteger(m.id)), 'every error carries its id');
    await server.waitForLog(/rate limit abuse/, 2000);
    t.diagnostic(`${limited.length} rate_limited errors, then close ${info.code} ${info.reason}`);
    await assertServes(server);
  });
});
