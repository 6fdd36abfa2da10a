// 100,000 room names that all collide under FNV-1a, the unkeyed hash the maps used:
// through a real server they must cost what any names cost (docs/security.md has the
// figures: 1.4 ms of server CPU per join with FNV-1a, 12 us with SipHash; with FNV-1a
// this test needed about 5 minutes, now a few seconds). tests/unit/test_map.c checks
// the spread itself; tests/bench/collide.js measures the time per join.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { collidingNames, fnv1a, FNV_OFFSET } = require('./lib/collide');
const { assertServes } = require('./lib/helpers');

const ROOMS = 100000;
const CONNS = 800; // 125 rooms each: within limits.max_rooms (128)

const JOIN = `
local mw = require "moonwire"
local app = mw.app()
app:on("join", function(conn, msg) conn:join(msg.room) return true end)
app:on("members", function(conn, msg) local _, n = mw.presence.list(msg.room) return n end)
return app
`;

describe('100,000 colliding room names', () => {
  let server;
  before(async () => {
    server = await startServer({
      scripts: { 'join.lua': JOIN },
      routes: { '/j': { script: 'join.lua', presence: { events: false } } },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('joins them all from 800 connections, and every room is there', { timeout: 180000 }, async () => {
    const { names, hash } = collidingNames(ROOMS);
    assert.equal(fnv1a(FNV_OFFSET, names[ROOMS - 1]), hash, 'they do collide under FNV-1a');
    const clients = [];
    for (let i = 0; i < CONNS; i++) clients.push(await connect(server.url(`/j?user=c${i}`), { timeout: 20000 }));
    await Promise.all(clients.map(async (c, ci) => {
      for (let k = ci; k < ROOMS; k += CONNS * 25) { // 25 joins in flight per connection
        const batch = [];
        for (let j = k; j < Math.min(k + CONNS * 25, ROOMS); j += CONNS) batch.push(names[j]);
        const answers = await Promise.all(batch.map((room) => c.request('join', { room, ms: 120000 })));
        for (const a of answers) assert.equal(a.type, 'ack', JSON.stringify(a));
        c.entries.length = 0; // keep the recording small
      }
    }));
    const res = await request('GET', server.httpUrl('/metrics'));
    const rooms = Number(/^moonwire_rooms (\d+)$/m.exec(res.text)[1]);
    assert.ok(rooms >= ROOMS, `rooms: ${rooms}`);
    for (const k of [0, 4242, ROOMS - 1]) {
      const m = await clients[k % CONNS].request('members', { room: names[k], ms: 10000 });
      assert.equal(m.data, 1, `room ${k} has its member`);
    }
    await assertServes(server);
  });
});
