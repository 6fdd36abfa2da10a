// Wire protocol v1 (SPEC section 4): hello, ping/pong, envelope validation, ack/error
// shapes, and Lua handler results and errors, against the real server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, assertServes, assertPingPong } = require('./lib/helpers');

// Line 3 raises: the log must name t.lua:3.
const T_LUA = `local mw = require("moonwire")
local app = mw.app()
app:on("boom", function(conn, msg) error("kaboom") end)
app:on("echo", function(conn, msg) return msg.data end)
app:on("fail", function(conn, msg) mw.fail("forbidden", "not allowed") end)
local count = 0
app:on("count", function(conn, msg) count = count + 1 return count end)
app:on("noop", function(conn, msg) end)
return app
`;

describe('protocol', () => {
  let server;

  before(async () => {
    server = await startServer({
      config: { node_id: 'node-it' },
      routes: { '/t': { script: 't.lua' } },
      scripts: { 't.lua': T_LUA },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  describe('hello', () => {
    it('sends hello with conn, node, user from ?user= and heartbeat seconds', async () => {
      const c = await connect(server.url('/chat?user=ana'));
      const h = c.hello;
      assert.equal(h.type, 'hello');
      assert.equal(typeof h.data.conn, 'string');
      assert.ok(h.data.conn.length > 0, 'conn id is not empty');
      assert.equal(h.data.node, 'node-it', 'node is the configured node_id');
      assert.equal(h.data.user, 'ana');
      assert.equal(h.data.heartbeat, 25, 'default heartbeat interval is 25 s');
      await c.close();
    });

    it('gives anonymous connections distinct generated string users and conn ids', async () => {
      const a = await connect(server.url('/chat'));
      const b = await connect(server.url('/chat'));
      for (const c of [a, b]) {
        assert.equal(typeof c.hello.data.user, 'string');
        assert.ok(c.hello.data.user.length > 0, 'generated user is not empty');
      }
      assert.notEqual(a.hello.data.user, b.hello.data.user, 'users differ');
      assert.notEqual(a.hello.data.conn, b.hello.data.conn, 'conn ids differ');
      await Promise.all([a.close(), b.close()]);
    });

    it('uses a generated user id as `from` for anonymous chat messages', async () => {
      const c = await connect(server.url('/chat'));
      const room = uid('anon');
      expectAck(await c.request('join', { room }), 1);
      c.send({ type: 'chat:message', room, data: 'hi' });
      const ev = await c.next('chat:message');
      assert.equal(ev.from, c.hello.data.user);
      await c.close();
    });
  });

  describe('ping', () => {
    it('answers ping with pong echoing data and id', async () => {
      const c = await connect(server.url('/chat?user=pinger'));
      const data = { n: 1, s: 'héllo ☃', list: [1, 'two', null, true], nested: { x: 1.5 } };
      c.send({ type: 'ping', id: 41, data });
      const pong = await c.next('pong');
      assert.deepEqual(pong, { type: 'pong', id: 41, data });

      c.send({ type: 'ping', id: 'str-id', data: 'text' });
      assert.deepEqual(await c.next('pong'), { type: 'pong', id: 'str-id', data: 'text' });

      c.send({ type: 'ping', id: 0, data: 7 });
      assert.deepEqual(await c.next('pong'), { type: 'pong', id: 0, data: 7 });
      await c.close();
    });

    it('answers ping without id with a pong without id', async () => {
      const c = await connect(server.url('/chat?user=pinger2'));
      c.send({ type: 'ping', data: [1, 2, 3] });
      const pong = await c.next('pong');
      assert.deepEqual(pong.data, [1, 2, 3]);
      assert.ok(!('id' in pong), `no id in ${JSON.stringify(pong)}`);
      await c.close();
    });
  });

  describe('bad input', () => {
    let c;
    before(async () => {
      c = await connect(server.url('/chat?user=badinput'));
    });
    after(async () => {
      if (c) await c.close();
    });

    // Each case: send, then the next error must match; the connection stays open.
    async function check(payload, code, id, what) {
      if (typeof payload === 'string') c.sendRaw(payload);
      else c.send(payload);
      const err = await c.next('error');
      expectError(err, code, id, what);
      assert.ok(c.isOpen, `${what}: connection must stay open`);
    }

    it('answers non-JSON text with bad_json', async () => {
      for (const raw of ['not json', '{"type":"ping"', '{type: "ping"}', '', '{"type":"ping"}}']) {
        await check(raw, 'bad_json', undefined, `raw ${JSON.stringify(raw)}`);
      }
      await assertPingPong(c, 'after bad_json');
    });

    it('answers JSON that is not an object with bad_message', async () => {
      for (const raw of ['[1,2]', '[]', '"hello"', '42', 'null', 'true']) {
        await check(raw, 'bad_message', undefined, `raw ${raw}`);
      }
      await assertPingPong(c, 'after non-object JSON');
    });

    it('answers a missing or invalid type with bad_message', async () => {
      const cases = [
        [{}, undefined],
        [{ data: 1 }, undefined],
        [{ id: 5 }, 5],
        [{ type: 5, id: 6 }, 6],
        [{ type: null, id: 'n' }, 'n'],
        [{ type: ['ping'], id: 61 }, 61],
        [{ type: '', id: 7 }, 7],
        [{ type: 'a'.repeat(65), id: 8 }, 8],
        [{ type: 'Ping', id: 9 }, 9],
        [{ type: 'a b', id: 10 }, 10],
        [{ type: 'a/b', id: 11 }, 11],
        [{ type: 'caf\u00e9', id: 12 }, 12],
        [{ type: 'ping\n', id: 13 }, 13],
      ];
      for (const [msg, id] of cases) {
        await check(msg, 'bad_message', id, JSON.stringify(msg).slice(0, 80));
      }
      await assertPingPong(c, 'after bad types');
    });

    it('accepts a 64-char type of every allowed character class (unknown_type, not bad_message)', async () => {
      const t64 = ('abc-xyz_09.:'.repeat(6) + 'abcd').slice(0, 64);
      assert.equal(t64.length, 64);
      await check({ type: t64, id: 'long' }, 'unknown_type', 'long', '64-char type');
      await check({ type: 'a-b_c.d:e9', id: 'classes' }, 'unknown_type', 'classes', 'all classes');
    });

    it('answers an invalid room with bad_message', async () => {
      const cases = [
        { type: 'join', id: 20, room: 5 },
        { type: 'join', id: 21, room: '' },
        { type: 'join', id: 22, room: 'r'.repeat(129) },
        { type: 'join', id: 23, room: 'a\u0001b' },
        { type: 'join', id: 24, room: 'a\nb' },
        { type: 'join', id: 25, room: 'nul\u0000' },
        { type: 'join', id: 26, room: 'del\u007f' },
        { type: 'join', id: 27, room: { name: 'x' } },
        { type: 'join', id: 28, room: ['x'] },
        { type: 'chat:message', id: 29, room: true, data: 'x' },
      ];
      for (const msg of cases) {
        await check(msg, 'bad_message', msg.id, `room ${JSON.stringify(msg.room)}`.slice(0, 80));
      }
      await assertPingPong(c, 'after bad rooms');
    });

    it('accepts a 128-char room', async () => {
      const room = ('room-' + 'x'.repeat(200)).slice(0, 128);
      const data = expectAck(await c.request('join', { room }), c.nextId - 1, '128-char room');
      assert.equal(data.room, room);
      expectAck(await c.request('leave', { room }), c.nextId - 1, 'leave 128-char room');
    });

    it('answers an invalid id with bad_message and no id', async () => {
      const cases = [
        { type: 'ping', id: { a: 1 } },
        { type: 'ping', id: true },
        { type: 'ping', id: false },
        { type: 'ping', id: 1.5 },
        { type: 'ping', id: [1] },
      ];
      for (const msg of cases) {
        await check(msg, 'bad_message', undefined, `id ${JSON.stringify(msg.id)}`);
      }
      await assertPingPong(c, 'after bad ids');
    });

    it('answers an unknown type with unknown_type, with and without id', async () => {
      await check({ type: 'no-such-type', id: 77 }, 'unknown_type', 77, 'unknown with id');
      await check({ type: 'no-such-type' }, 'unknown_type', undefined, 'unknown without id');
    });

    it('sent exactly one answer per bad input and still serves everyone', async () => {
      const id = c.nextId++;
      c.send({ type: 'ping', id });
      const { before } = await c.until((m) => m.type === 'pong' && m.id === id);
      assert.deepEqual(before, [], 'no extra messages were queued');
      assert.ok(c.isOpen);
      await assertServes(server);
    });
  });

  describe('acks and errors', () => {
    it('acks a join with the request id and reports not_in_room with it', async () => {
      const c = await connect(server.url('/chat?user=acker'));
      const room = uid('acks');
      const ack = await c.request('chat:message', { room, data: 'x', id: 'before-join' });
      expectError(ack, 'not_in_room', 'before-join', 'chat before join');
      const j = await c.request('join', { room, id: 'j1' });
      assert.deepEqual(Object.keys(j).sort(), ['data', 'id', 'type'], `ack shape ${JSON.stringify(j)}`);
      expectAck(j, 'j1');
      await c.close();
    });
  });

  describe('lua app', () => {
    it('acks with the handler return value', async () => {
      const c = await connect(server.url('/t?user=lua'));
      const data = { a: [1, 2, { b: 'c' }], s: 'ünïcode' };
      assert.deepEqual(expectAck(await c.request('echo', { data }), 1), data);
      assert.equal(expectAck(await c.request('echo', { data: 'plain' }), 2), 'plain');
      const noop = await c.request('noop', { data: 1 });
      expectAck(noop, 3, 'handler returning nothing');
      assert.ok(noop.data === undefined || noop.data === null, `no data: ${JSON.stringify(noop)}`);
      await c.close();
    });

    it('sends nothing for a handled message without id', async () => {
      const c = await connect(server.url('/t?user=lua-noid'));
      c.send({ type: 'echo', data: 'quiet' });
      c.send({ type: 'ping', id: 'barrier' });
      const { before } = await c.until((m) => m.type === 'pong' && m.id === 'barrier');
      assert.deepEqual(before, [], 'no ack without id');
      await c.close();
    });

    it('turns mw.fail into an error with its code and message', async () => {
      const c = await connect(server.url('/t?user=lua-fail'));
      const err = await c.request('fail', { id: 'f1' });
      expectError(err, 'forbidden', 'f1');
      assert.equal(err.message, 'not allowed');
      await assertPingPong(c, 'after mw.fail');
      await c.close();
    });

    it('answers unknown_type for a type the script does not handle', async () => {
      const c = await connect(server.url('/t?user=lua-unknown'));
      expectError(await c.request('nope', { id: 3 }), 'unknown_type', 3);
      await c.close();
    });

    it('turns a Lua error into internal without leaking the traceback, and logs file:line', async () => {
      const c = await connect(server.url('/t?user=lua-boom'));
      const err = await c.request('boom', { id: 'b1', data: {} });
      expectError(err, 'internal', 'b1', 'lua error');
      assert.doesNotMatch(err.message, /t\.lua/, 'no script path for the client');
      assert.doesNotMatch(err.message, /traceback|stack/i, 'no traceback for the client');
      assert.doesNotMatch(err.message, /\n/, 'no multi-line dump for the client');
      assert.doesNotMatch(err.message, new RegExp(server.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

      const line = await server.waitForLog(/lua error/i, 3000);
      assert.match(line, /t\.lua:3/, `log line names t.lua:3: ${line}`);
      assert.match(line, /traceback/i, `log line carries the traceback: ${line}`);

      // The connection and the app keep working.
      assert.ok(c.isOpen);
      assert.equal(expectAck(await c.request('echo', { id: 'after', data: 'ok' }), 'after'), 'ok');
      const again = await c.request('boom', { id: 'b2' });
      expectError(again, 'internal', 'b2', 'second lua error');
      await assertPingPong(c, 'after lua errors');
      await c.close();
      await assertServes(server);
    });

    it('acks a repeated id again without running the handler twice', async () => {
      const c = await connect(server.url('/t?user=lua-dedup'));
      const first = await c.request('count', { id: 'd1' });
      const n = expectAck(first, 'd1', 'first count');
      assert.equal(typeof n, 'number');
      const repeat = await c.request('count', { id: 'd1' });
      expectAck(repeat, 'd1', 'repeated id is acked again');
      const next = await c.request('count', { id: 'd2' });
      assert.equal(expectAck(next, 'd2'), n + 1, 'handler ran once for the repeated id');
      await c.close();
    });
  });
});
