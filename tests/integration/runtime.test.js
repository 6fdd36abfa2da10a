// The Lua runtime (SPEC section 5): handlers in coroutines that may wait without
// delaying anyone, timers, hot reload without dropping a connection, SIGHUP reload,
// slow-handler reporting and globals refused.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, waitFor } = require('./lib/helpers');

const V1 = `
local mw = require "moonwire"
local helper = require "helper"
local app = mw.app()
app:on("version", function(conn, msg) return { v = 1, helper = helper.name } end)
app:on("remember", function(conn, msg) conn:set("note", msg.data) return true end)
app:on("recall", function(conn, msg) return conn:get("note") end)
app:on("enter", function(conn, msg) conn:join(msg.room) return true end)
app:on("shout", function(conn, msg)
  mw.rooms.broadcast(msg.room, { type = "shout", room = msg.room, data = msg.data })
  return true
end)
function app.reload() mw.log.info("reload handler ran", { v = 1 }) end
return app
`;
const HELPER = 'return { name = "first" }\n';

async function metric(server, name) {
  const res = await request('GET', server.httpUrl('/metrics'));
  const line = res.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('hot reload', () => {
  let server;
  let appFile;
  before(async () => {
    server = await startServer({
      config: { dev: { hot_reload: true } },
      routes: { '/app': { script: 'app.lua' } },
      scripts: { 'app.lua': V1, 'helper.lua': HELPER },
    });
    appFile = path.join(server.dir, 'app.lua');
  });
  after(async () => { await closeAll(); if (server) await server.stop(); });

  it('serves the new code without dropping anyone and keeps attributes and rooms', async () => {
    const a = await connect(server.url(`/app?user=${uid('a')}`));
    const b = await connect(server.url(`/app?user=${uid('b')}`));
    expectAck(await a.request('remember', { data: { n: 7 } }), 1);
    expectAck(await a.request('enter', { room: 'hall' }), 2);
    expectAck(await b.request('enter', { room: 'hall' }), 1);
    assert.equal((await a.request('version')).data.v, 1);

    fs.writeFileSync(appFile, V1.replaceAll('v = 1', 'v = 2'));
    await waitFor(async () => (await a.request('version')).data.v === 2, 5000, 'new code serves');
    await server.waitForLog(/msg="reloaded" route=\/app why=file-change ms=\d+/);
    await server.waitForLog(/msg="reload handler ran".* v="2"/);

    assert.deepEqual((await a.request('recall')).data, { n: 7 }, 'attribute survived');
    expectAck(await b.request('shout', { room: 'hall', data: 'hi' }), 2);
    const shout = await a.next({ type: 'shout' });
    assert.equal(shout.data, 'hi', 'membership survived');
    assert.ok(a.isOpen && b.isOpen, 'nobody was disconnected');
  });

  it('keeps the old code on a broken edit and logs file:line to the log and to dev:watch clients', async () => {
    const c = await connect(server.url(`/app?user=${uid('c')}`));
    expectAck(await c.request('dev:watch'), 1);
    const before = (await c.request('version')).data.v;
    fs.writeFileSync(appFile, 'local mw = require "moonwire"\nlocal app = mw.app(\nreturn app\n');
    const line = await server.waitForLog(/msg="reload failed"/, 5000);
    assert.match(line, /app\.lua:3: /);
    const ev = await c.next({ type: 'dev:reload' }, 3000);
    assert.equal(ev.data.ok, false);
    assert.match(ev.data.error, /app\.lua:3: /);
    assert.equal((await c.request('version')).data.v, before, 'old code still serves');
    assert.ok(c.isOpen);
    // Fixing the file brings the new version in.
    fs.writeFileSync(appFile, V1.replaceAll('v = 1', 'v = 3'));
    await waitFor(async () => (await c.request('version')).data.v === 3, 5000, 'fixed code serves');
    const ok = await c.next((m) => m.type === 'dev:reload' && m.data.ok === true, 3000);
    assert.equal(ok.data.route, '/app');
  });

  it('reloads when a required module changes', async () => {
    const c = await connect(server.url(`/app?user=${uid('d')}`));
    fs.writeFileSync(path.join(server.dir, 'helper.lua'), 'return { name = "second" }\n');
    await waitFor(async () => (await c.request('version')).data.helper === 'second', 5000,
      'the changed module is loaded');
  });

  it('counts reloads in /metrics', async () => {
    const res = await request('GET', server.httpUrl('/metrics'));
    const ok = res.text.match(/^moonwire_reloads_total\{route="\/app",result="ok"\} (\d+)$/m);
    const failed = res.text.match(/^moonwire_reloads_total\{route="\/app",result="failed"\} (\d+)$/m);
    assert.ok(ok && Number(ok[1]) >= 3, res.text);
    assert.ok(failed && Number(failed[1]) >= 1);
  });
});

describe('SIGHUP', () => {
  it('reloads every route with hot reload off', async () => {
    const server = await startServer({
      routes: { '/app': { script: 'app.lua' } },
      scripts: { 'app.lua': V1, 'helper.lua': HELPER },
    });
    try {
      const c = await connect(server.url(`/app?user=${uid('h')}`));
      fs.writeFileSync(path.join(server.dir, 'app.lua'), V1.replaceAll('v = 1', 'v = 9'));
      await new Promise((r) => setTimeout(r, 300)); // no watcher: nothing may change by itself
      assert.equal((await c.request('version')).data.v, 1);
      server.process.kill('SIGHUP');
      await server.waitForLog(/msg="reloaded" route=\/app why=SIGHUP/, 3000);
      assert.equal((await c.request('version')).data.v, 9);
      assert.ok(c.isOpen);
    } finally {
      await closeAll();
      await server.stop();
    }
  });
});

describe('coroutines and timers', () => {
  const script = `
local mw = require "moonwire"
local app = mw.app()
local ticks, every_handle = 0, nil
app:on("slow", function(conn, msg) mw.sleep(msg.data) return "woke" end)
app:on("forever", function(conn, msg) mw.sleep(3600) return "never" end)
app:on("quick", function(conn, msg) return "quick" end)
app:on("later", function(conn, msg)
  mw.after(0.1, function() mw.sleep(0.05) conn:send({ type = "later", data = msg.data }) end)
  return true
end)
app:on("cancelled", function(conn, msg)
  local t = mw.after(0.1, function() conn:send({ type = "should-not-fire" }) end)
  return t:cancel() and not t:pending()
end)
app:on("tick", function(conn, msg)
  every_handle = mw.every(0.05, function()
    ticks = ticks + 1
    conn:send({ type = "tick", data = ticks })
    if ticks == 3 then every_handle:cancel() end
  end)
  return true
end)
app:on("busy", function(conn, msg)
  local t = os.clock() + 0.15
  while os.clock() < t do end
  return true
end)
app:on("global", function(conn, msg) leaked = 1 return true end)
app:on("sleep-bad", function(conn, msg) mw.sleep(-1) end)
app:on("publish-bad", function(conn, msg)
  conn:join("pb")
  return mw.rooms.publish("pb", mw.json.array({ 1, 2 }))
end)
app:on("history-bad", function(conn, msg) return mw.rooms.history("pb", -1) end)
app:on("publish-none", function(conn, msg)
  local seq, err = mw.rooms.publish("nobody-here", { type = "x" })
  return { seq = seq, err = err }
end)
return app
`;
  let server;
  before(async () => {
    server = await startServer({
      config: { limits: { slow_handler: '50ms' } },
      routes: { '/co': { script: 'co.lua' } },
      scripts: { 'co.lua': script },
    });
  });
  after(async () => { await closeAll(); if (server) await server.stop(); });

  it('a sleeping handler delays neither other connections nor the same connection', async () => {
    const a = await connect(server.url(`/co?user=${uid('a')}`));
    const b = await connect(server.url(`/co?user=${uid('b')}`));
    const t0 = Date.now();
    const slow = a.request('slow', { data: 0.8 });
    expectAck(await b.request('quick'), 1);
    expectAck(await a.request('quick'), 2);
    assert.ok(Date.now() - t0 < 500, `answers while the handler sleeps (${Date.now() - t0} ms)`);
    const woke = await slow;
    assert.equal(woke.data, 'woke');
    assert.ok(Date.now() - t0 >= 750, 'the sleep lasted');
  });

  it('closing the connection frees a handler waiting forever', async () => {
    const before = await metric(server, 'moonwire_lua_waiting');
    const c = await connect(server.url(`/co?user=${uid('f')}`));
    c.send({ type: 'forever', id: 1 });
    await waitFor(async () => (await metric(server, 'moonwire_lua_waiting')) === before + 1, 3000,
      'the handler waits');
    await c.close();
    await waitFor(async () => (await metric(server, 'moonwire_lua_waiting')) === before, 3000,
      'the wait was released');
  });

  it('runs after() callbacks in coroutines that may sleep, and cancel() stops them', async () => {
    const c = await connect(server.url(`/co?user=${uid('t')}`));
    expectAck(await c.request('later', { data: 'x' }), 1);
    assert.equal((await c.next({ type: 'later' }, 2000)).data, 'x');
    const cancelled = await c.request('cancelled');
    assert.equal(cancelled.data, true);
    const stray = await c.collect((m) => m.type === 'should-not-fire', 300);
    assert.equal(stray.length, 0);
  });

  it('repeats every() until cancelled from its own callback', async () => {
    const c = await connect(server.url(`/co?user=${uid('e')}`));
    expectAck(await c.request('tick'), 1);
    for (const n of [1, 2, 3]) assert.equal((await c.next({ type: 'tick' }, 2000)).data, n);
    const extra = await c.collect((m) => m.type === 'tick', 300);
    assert.equal(extra.length, 0, 'no tick after cancel');
  });

  it('logs a slow handler and counts it in the histogram', async () => {
    const c = await connect(server.url(`/co?user=${uid('s')}`));
    // The handler burns 150 ms of the server's CPU time: on a loaded machine that can
    // take seconds of wall time (once 4 s while a sanitizer build compiled beside it).
    expectAck(await c.request('busy', { ms: 15000 }), 1);
    const line = await server.waitForLog(/msg="slow handler" route=\/co/);
    assert.match(line, /ms=\d+/);
    const res = await request('GET', server.httpUrl('/metrics'));
    const count = res.text.match(/^moonwire_handler_seconds_count\{route="\/co"\} (\d+)$/m);
    const fast = res.text.match(/^moonwire_handler_seconds_bucket\{route="\/co",le="0\.1"\} (\d+)$/m);
    assert.ok(count && fast && Number(count[1]) > Number(fast[1]), 'the 150 ms run is above le=0.1');
  });

  it('refuses new globals and bad arguments with internal and a log line', async () => {
    const c = await connect(server.url(`/co?user=${uid('g')}`));
    expectError(await c.request('global'), 'internal', 1);
    await server.waitForLog(/lua error.*assignment to undeclared global 'leaked'/);
    expectError(await c.request('sleep-bad'), 'internal', 2);
    await server.waitForLog(/lua error.*seconds must be between 0 and one year/);
    expectError(await c.request('publish-bad'), 'internal', 3);
    await server.waitForLog(/lua error.*the event must be an object/);
    expectError(await c.request('history-bad'), 'internal', 4);
    await server.waitForLog(/lua error.*since must be a non-negative integer/);
    assert.deepEqual(expectAck(await c.request('publish-none'), 5), { err: 'no such room' });
  });
});
