// Limits and liveness (SPEC sections 4 and 10): 1009 oversize, 1007 invalid UTF-8,
// heartbeat pings and the heartbeat timeout, against the real server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, assertServes, assertPingPong, sleep } = require('./lib/helpers');

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
    // (core/server.c, release_rx_page): the buffer must keep working afterwards, for
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
  });
});
