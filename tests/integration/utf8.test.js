// Invalid UTF-8 through every input path (docs/security.md): a text frame that is not
// UTF-8 makes a browser drop the connection, and one stored in a room's history would
// drop every member again on each rejoin. So: nothing invalid is accepted, stored, or
// sent; each path answers clearly (1007, bad_json, HTTP 400, internal) and logs it.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, assertServes, assertPingPong, waitFor } = require('./lib/helpers');

const KEY = 'utf8-api-key';
const BAD = Buffer.from([0xff, 0xfe]);

const SCRIPT = `
local mw = require "moonwire"
local app = mw.app()
app:on("send_text", function(conn) conn:send("bad \\255 text") end)
app:on("send_table", function(conn) conn:send({ type = "x", data = "\\237\\160\\128" }) end)
app:on("reply", function() return { s = "\\192\\175" } end)
app:on("join_room", function(conn) conn:join("room\\255") end)
app:on("broadcast", function(conn, msg) mw.rooms.broadcast(msg.room, { type = "y", data = "\\255" }) end)
app:on("send_binary", function(conn) conn:send("\\255\\254", true) return true end)
return app
`;

// One command over RESP with binary-safe arguments; resolves with the raw reply.
function redisRaw(port, ...args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat(parts)));
    s.setTimeout(3000, () => { s.destroy(); reject(new Error('redis: no reply in 3 s')); });
    s.once('data', (d) => { s.end(); resolve(d.toString('latin1')); });
    s.on('error', reject);
  });
}

describe('invalid UTF-8', () => {
  let server;
  const auth = { authorization: `Bearer ${KEY}` };

  before(async () => {
    server = await startServer({
      scripts: { 'bad.lua': SCRIPT },
      routes: { '/bad': { script: 'bad.lua' } },
      config: { api: { keys: [KEY] } },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('closes a text frame that is not UTF-8 with 1007', async () => {
    const c = await connect(server.url(`/chat?user=${uid('u')}`));
    c.sendRaw(Buffer.concat([Buffer.from('{"type":"ping","data":"'), BAD, Buffer.from('"}')]));
    assert.equal((await c.closed).code, 1007);
  });

  it('answers a \\u escape of a lone surrogate with bad_json and broadcasts nothing', async () => {
    const room = uid('surrogate');
    const c = await connect(server.url(`/chat?user=${uid('u')}`));
    expectAck(await c.request('join', { room }), 1);
    c.sendRaw(`{"type":"chat:message","id":2,"room":"${room}","data":"x\\ud800y"}`);
    expectError(await c.next((m) => m.type === 'error'), 'bad_json', undefined);
    expectAck(await c.request('chat:message', { room, data: 'after', id: 3 }), 3);
    const ev = await c.next('chat:message');
    assert.equal(ev.data, 'after', 'the refused message was never broadcast');
    await c.close();
  });

  it('answers POST /api/publish and /api/notify with invalid UTF-8 with 400 and stores nothing', async () => {
    const room = uid('api-utf8');
    const user = uid('api-user');
    for (const [path, head] of [['/api/publish', `{"room":"${room}","type":"news","data":"`],
      ['/api/notify', `{"user":"${user}","data":"`]]) {
      const body = Buffer.concat([Buffer.from(head), BAD, Buffer.from('"}')]);
      const res = await request('POST', server.httpUrl(path), { headers: auth, body });
      assert.equal(res.status, 400, `${path}: ${res.text}`);
      assert.equal(res.json.error, 'bad_json');
      assert.match(res.json.message, /invalid UTF-8/);
    }
    const c = await connect(server.url(`/chat?user=${uid('u')}`));
    const joined = expectAck(await c.request('join', { room }), 1);
    assert.deepEqual(joined.history, [], 'nothing stored');
    await c.close();
  });

  it('answers a room name that is not UTF-8 in the API path with 400', async () => {
    const res = await request('GET', server.httpUrl('/api/rooms/%ff%fe/presence'), { headers: auth });
    assert.equal(res.status, 400, res.text);
    assert.match(res.json.message, /UTF-8/);
  });

  for (const [type, what] of [['send_text', 'conn:send of a text string'], ['send_table', 'conn:send of a table'],
    ['reply', 'a handler reply'], ['join_room', 'conn:join of a room name'], ['broadcast', 'rooms.broadcast']]) {
    it(`turns ${what} that is not UTF-8 into internal, sends no bad frame, and keeps the connection`, async () => {
      const c = await connect(server.url(`/bad?user=${uid('u')}`));
      expectError(await c.request(type, { room: 'r' }), 'internal', 1);
      await assertPingPong(c, type);
      assert.ok(!c.messages.some((m) => m.$unparsed !== undefined), `only valid JSON arrived: ${c.received()}`);
      await c.close();
    });
  }

  it('still sends binary frames as they are', async () => {
    const c = await connect(server.url(`/bad?user=${uid('u')}`));
    expectAck(await c.request('send_binary'), 1);
    assert.ok(c.messages.some((m) => m.$binary === true), c.received());
    await c.close();
  });

  it('logged each Lua error with file:line and still serves', async () => {
    await server.waitForLog(/lua error.*bad\.lua:\d+.*invalid UTF-8/);
    await assertServes(server);
  });
});

describe('invalid UTF-8 read back from Redis', () => {
  let redis;
  let server;

  before(async () => {
    redis = await startRedis();
    server = await startServer({ config: { redis: { url: redis.url } } });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
    if (redis) await redis.stop();
  });

  it('skips a history entry that is not UTF-8 (logged), and members stay connected', async () => {
    const room = uid('hist');
    const c = await connect(server.url(`/chat?user=${uid('u')}`));
    expectAck(await c.request('join', { room }), 1);
    expectAck(await c.request('chat:message', { room, data: 'good' }), 2);
    await c.next('chat:message');
    const bad = Buffer.concat([Buffer.from(`{"type":"chat:message","room":"${room}","data":"`), BAD,
      Buffer.from('","seq":2,"ts":1}')]);
    assert.match(await redisRaw(redis.port, 'XADD', `mw:h:{${room}}`, '2-0', 't', '1', 'e', bad), /2-0/);
    const d = expectAck(await c.request('join', { room }), 3);
    assert.deepEqual(d.history.map((e) => e.data), ['good']);
    await server.waitForLog(/corrupt history entry/);
    await assertPingPong(c, 'after the corrupt entry');
    await c.close();
  });

  it('drops a pub/sub payload that is not UTF-8 (logged), and members stay connected', async () => {
    const room = uid('pubsub');
    const c = await connect(server.url(`/chat?user=${uid('u')}`));
    expectAck(await c.request('join', { room }), 1);
    await waitFor(() => redis.cli('PUBSUB', 'NUMSUB', `mw:room:${room}`).endsWith('1'), 3000, 'the room channel');
    // broker_wire.h: "mw1:" kind node flags except subject (netstrings), then the body
    const wire = (body) => Buffer.concat([Buffer.from('mw1:1:e,10:other-node,1:0,0:,0:,'), body]);
    const good = Buffer.from(`{"type":"fine","room":"${room}","data":"ok"}`);
    assert.match(await redisRaw(redis.port, 'PUBLISH', `mw:room:${room}`, wire(good)), /:1/);
    await c.next('fine');
    const payload = wire(Buffer.concat([Buffer.from(`{"type":"evil","room":"${room}","data":"`), BAD,
      Buffer.from('"}')]));
    assert.match(await redisRaw(redis.port, 'PUBLISH', `mw:room:${room}`, payload), /:1/);
    await server.waitForLog(/invalid UTF-8 from Redis: dropped/);
    await assertPingPong(c, 'after the bad payload');
    assert.ok(!c.messages.some((m) => m.type === 'evil'), c.received());
    await c.close();
  });
});
