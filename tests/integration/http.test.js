// HTTP endpoints (SPEC section 8): health, readiness, metrics and the key-protected API.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, assertServes } = require('./lib/helpers');

const KEY = 'it-api-key-7f3a';

describe('http', () => {
  let server;
  const auth = { authorization: `Bearer ${KEY}` };

  before(async () => {
    server = await startServer({ config: { api: { keys: [KEY] } } });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('answers /healthz and /readyz with 200 (no Redis configured)', async () => {
    assert.equal((await request('GET', server.httpUrl('/healthz'))).status, 200);
    assert.equal((await request('GET', server.httpUrl('/readyz'))).status, 200);
  });

  it('serves Prometheus text on /metrics', async () => {
    const res = await request('GET', server.httpUrl('/metrics'));
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] || '', /^text\/plain/);
    assert.match(res.text, /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary)$/m);
    assert.match(res.text, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$/m, 'at least one sample');
  });

  it('answers a plain GET on a WebSocket route with 426 Upgrade Required and a hint', async () => {
    const res = await request('GET', server.httpUrl('/chat?user=ana'));
    assert.equal(res.status, 426);
    assert.equal(res.headers.upgrade, 'websocket');
    assert.match(res.text, /^\/chat is a WebSocket endpoint: connect with a WebSocket client/);
    assert.equal(res.text.trim().split('\n').length, 1, 'one line');
    await server.waitForLog(/msg="upgrade required" path=\/chat/, 2000);
    assert.equal((await request('GET', server.httpUrl('/no-such-route'))).status, 404);
    await assertServes(server);
  });

  it('rejects /api/* without the right bearer key with 401', async () => {
    const body = { room: 'r', type: 'news', data: 1 };
    assert.equal((await request('POST', server.httpUrl('/api/publish'), { body })).status, 401);
    assert.equal((await request('POST', server.httpUrl('/api/publish'),
      { body, headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await request('POST', server.httpUrl('/api/publish'),
      { body, headers: { authorization: KEY } })).status, 401, 'the key without "Bearer"');
    assert.equal((await request('GET', server.httpUrl('/api/rooms/r/presence'))).status, 401);
    assert.equal((await request('POST', server.httpUrl('/api/disconnect'), { body: { user: 'x' } })).status, 401);
  });

  it('publishes to a room with POST /api/publish', async () => {
    const room = uid('pub');
    const c = await connect(server.url(`/chat?user=${uid('sub')}`));
    expectAck(await c.request('join', { room }), 1);
    const res = await request('POST', server.httpUrl('/api/publish'),
      { headers: auth, body: { room, type: 'news', data: { headline: 'hi' } } });
    assert.ok(res.status >= 200 && res.status < 300, `publish status ${res.status}: ${res.text}`);
    const ev = await c.next('news');
    assert.equal(ev.room, room);
    assert.deepEqual(ev.data, { headline: 'hi' });
    await c.close();
  });

  it('lists room presence with GET /api/rooms/{room}/presence', async () => {
    const room = uid('pres');
    const user = uid('present');
    const c = await connect(server.url(`/chat?user=${user}`));
    expectAck(await c.request('join', { room }), 1);
    const res = await request('GET', server.httpUrl(`/api/rooms/${encodeURIComponent(room)}/presence`),
      { headers: auth });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json !== undefined, `JSON body: ${res.text}`);
    assert.ok(res.text.includes(user), `presence lists ${user}: ${res.text}`);
    await c.close();
  });

  it("closes every connection of a user with POST /api/disconnect, and only that user's", async () => {
    const victim = uid('victim');
    const room = uid('disc');
    const v1 = await connect(server.url(`/chat?user=${victim}`));
    const v2 = await connect(server.url(`/chat?user=${victim}`));
    const other = await connect(server.url(`/chat?user=${uid('other')}`));
    expectAck(await v1.request('join', { room }), 1);
    expectAck(await other.request('join', { room }), 1);
    const res = await request('POST', server.httpUrl('/api/disconnect'), { headers: auth, body: { user: victim } });
    assert.ok(res.status >= 200 && res.status < 300, `disconnect status ${res.status}: ${res.text}`);
    for (const v of [v1, v2]) {
      let timer;
      await Promise.race([v.closed, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('victim still connected after 2 s')), 2000);
      })]).finally(() => clearTimeout(timer));
    }
    const left = await other.next({ type: 'presence:leave', room });
    assert.deepEqual(left.data, { user: victim });
    assert.ok(other.isOpen, 'other users stay');
    await other.close();
    await assertServes(server);
  });
});
