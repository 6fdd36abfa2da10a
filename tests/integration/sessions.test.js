// Exactly-once across reconnects (issue 5, SPEC section 4): a client that opens its
// connections with ?session=ID and resends unacked messages after a reconnect has each
// processed once; without a session, the window is the connection's own. A bad
// session id gets a clear error and a close.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, sleep, waitFor } = require('./lib/helpers');
const { request } = require('./lib/http');

// A handler that takes a while, so that the connection can drop before its ack.
const SLOW = `
local mw = require "moonwire"
local app = mw.app()
app:on("count", function(conn, msg)
  local n = mw.store.incr("runs:" .. msg.data, 1, 0)
  mw.sleep(0.2)
  return { runs = n }
end)
app:on("runs", function(conn, msg) return mw.store.get("runs:" .. msg.data) or 0 end)
-- Fails with \`unavailable\` on its first run, \`bad_message\` on its second, then acks.
app:on("flaky", function(conn, msg)
  local n = mw.store.incr("runs:" .. msg.data, 1, 0)
  if n == 1 then mw.fail("unavailable", "try again") end
  if n == 2 then mw.fail("bad_message", "second run") end
  return { runs = n }
end)
return app
`;

function ack(msg) {
  assert.equal(msg.type, 'ack', `expected an ack, got ${JSON.stringify(msg)}`);
  return msg.data;
}

describe('sessions', () => {
  let server;
  before(async () => {
    server = await startServer({
      routes: { '/slow': { script: 'slow.lua' } },
      scripts: { 'slow.lua': SLOW },
    });
  });
  after(async () => { await closeAll(); if (server) await server.stop(); });

  // Sends `id` and drops the connection before the ack can come.
  async function sendAndDrop(url, msg) {
    const c = await connect(url);
    c.send(msg);
    await sleep(50); // the handler is running (it sleeps 200 ms)
    await c.terminate();
  }

  // Resends msg until it is acked (what a client's outbox does), at most 20 times.
  async function resendUntilAcked(url, msg) {
    for (let i = 0; i < 20; i++) {
      const c = await connect(url);
      c.send(msg);
      const got = await c.next((m) => m.id === msg.id, 400).catch(() => null);
      await c.close();
      if (got) return got;
    }
    throw new Error(`${JSON.stringify(msg)}: never acked`);
  }

  it('processes a message resent after a reconnect once, in the same session', async () => {
    const user = uid('ana');
    const key = uid('k');
    const url = server.url(`/slow?user=${user}&session=tab-${key}`);
    const msg = { type: 'count', id: 'm1', data: key };
    await sendAndDrop(url, msg);
    const a = await resendUntilAcked(url, msg);
    assert.deepEqual(ack(a), { runs: 1 }, 'the first run\'s reply');
    const again = await resendUntilAcked(url, msg);
    assert.deepEqual(ack(again), { runs: 1 }, 'acked again, not run again');
    const c = await connect(server.url(`/slow?user=${user}`));
    assert.equal(ack(await c.request('runs', { data: key })), 1, 'the handler ran once');
    const metrics = (await request('GET', server.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_sessions\{state="detached"\} [1-9]/m, 'the closed session is kept');
  });

  it('keeps sessions apart per user and per session id, and without one per connection', async () => {
    const key = uid('k');
    const msg = { type: 'count', id: 7, data: key };
    const ana = server.url(`/slow?user=${uid('ana')}&session=s1`);
    assert.deepEqual(ack(await resendUntilAcked(ana, msg)), { runs: 1 });
    const bob = server.url(`/slow?user=${uid('bob')}&session=s1`);
    assert.deepEqual(ack(await resendUntilAcked(bob, msg)), { runs: 2 }, 'another user: another window');
    const ana2 = server.url(`/slow?user=${uid('ana')}&session=s2`);
    assert.deepEqual(ack(await resendUntilAcked(ana2, msg)), { runs: 3 }, 'another session: another window');
    const none = server.url(`/slow?user=${uid('cy')}`);
    assert.deepEqual(ack(await resendUntilAcked(none, msg)), { runs: 4 });
    assert.deepEqual(ack(await resendUntilAcked(none, msg)), { runs: 5 },
      'without a session each connection has its own window');
  });

  it('posts a chat message resent after a reconnect once, with its first seq', async () => {
    const room = uid('r');
    const user = uid('ana');
    const url = server.url(`/chat?user=${user}&session=phone`);
    const reader = await connect(server.url(`/chat?user=${uid('bob')}`));
    ack(await reader.request('join', { room }));
    let c = await connect(url);
    ack(await c.request('join', { room }));
    const msg = { type: 'chat:message', room, id: 'c-1', data: 'hello' };
    c.send(msg);
    const first = await c.next((m) => m.id === 'c-1');
    await c.terminate();
    c = await connect(url);
    ack(await c.request('join', { room }));
    c.send(msg); // as if the first ack was lost
    const second = await c.next((m) => m.id === 'c-1');
    assert.deepEqual(second, first, 'the same ack, with the same seq');
    const posted = await reader.collect((m) => m.type === 'chat:message' && m.room === room, 300);
    assert.equal(posted.length, 1, 'the room got it once');
  });

  it('refuses a bad session id with an error and close 1008', async () => {
    for (const bad of ['has space', 'x'.repeat(65), 'semi;colon']) {
      const ws = new WebSocket(server.url(`/chat?user=${uid('u')}&session=${encodeURIComponent(bad)}`));
      const frames = [];
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      const [code] = await new Promise((resolve) => ws.on('close', (...args) => resolve(args)));
      assert.equal(code, 1008, `session ${JSON.stringify(bad)}`);
      const err = frames.find((f) => f.type === 'error');
      assert.equal(err && err.code, 'bad_message');
      assert.match(err.message, /session must be 1\.\.64 characters/);
    }
    await waitFor(async () => /msg="bad session id"/.test(server.logs()), 1000, 'logged');
  });

  // The id's key, the id and the session live in C with the handler's coroutine
  // (script.h, struct mw_co_rec), which is reused from one message to the next: each
  // kind of id keeps a window entry of its own, and a reused coroutine carries
  // nothing of the message before into the next.
  it('keeps string, integer, negative, 2^53 and NUL-byte ids apart, each run once', async () => {
    const key = uid('k');
    const c = await connect(server.url(`/slow?user=${uid('ids')}&session=ids`));
    const ids = [5, '5', -5, '-5', 2 ** 53, -(2 ** 53), 'a\u0000b', 'a\u0000c', 'a', 'x'.repeat(128)];
    const first = [];
    for (const id of ids) {
      const got = await c.request('count', { id, data: key });
      assert.equal(got.id, id, 'the ack carries the id as sent');
      first.push(ack(got).runs);
    }
    assert.deepEqual(first, ids.map((_, i) => i + 1), 'every id ran its handler');
    for (const [i, id] of ids.entries()) {
      const again = await c.request('count', { id, data: key });
      assert.equal(again.id, id);
      assert.deepEqual(ack(again), { runs: i + 1 }, `id ${JSON.stringify(id)}: its first reply`);
    }
    assert.equal(ack(await c.request('runs', { data: key })), ids.length, 'nothing ran twice');
  });

  it('lets an id answered `unavailable` run again, and keeps any other answer', async () => {
    const key = uid('k');
    const c = await connect(server.url(`/slow?user=${uid('fl')}&session=fl`));
    const first = await c.request('flaky', { id: 'f1', data: key });
    assert.equal(first.type, 'error');
    assert.equal(first.code, 'unavailable', 'the first run failed: the id leaves the window');
    const second = await c.request('flaky', { id: 'f1', data: key });
    assert.equal(second.code, 'bad_message', 'the retry ran the handler again');
    const third = await c.request('flaky', { id: 'f1', data: key });
    assert.deepEqual(third, second, 'an error other than unavailable is kept: the same answer');
    assert.equal(ack(await c.request('runs', { data: key })), 2, 'the handler ran twice, not three times');
    const other = await c.request('flaky', { id: 'f2', data: key });
    assert.deepEqual(ack(other), { runs: 3 }, 'another id runs');
  });

  it('answers an id once across a reload, also one whose handler runs during it', async () => {
    const script = path.join(server.dir, 'slow.lua');
    const user = uid('rl');
    const key = uid('k');
    const url = server.url(`/slow?user=${user}&session=rl`);
    const c = await connect(url);
    const done = ack(await c.request('count', { id: 'before', data: key }));
    assert.deepEqual(done, { runs: 1 });
    c.send({ type: 'count', id: 'during', data: key }); // sleeps 200 ms in the old state
    await sleep(50);
    fs.writeFileSync(script, fs.readFileSync(script, 'utf8') + '\n-- reloaded\n');
    server.process.kill('SIGHUP');
    const during = await c.next((m) => m.id === 'during', 3000);
    assert.deepEqual(ack(during), { runs: 2 }, 'the old state\'s handler answered');
    await server.waitForLog(/msg="reloaded" route=\/slow why=SIGHUP/, 3000);
    await c.terminate();
    const again = await connect(url);
    assert.deepEqual(ack(await again.request('count', { id: 'before', data: key })), { runs: 1 },
      'answered before the reload: the same reply after it');
    assert.deepEqual(ack(await again.request('count', { id: 'during', data: key })), { runs: 2 },
      'answered during the reload: the same reply after it');
    assert.deepEqual(ack(await again.request('count', { id: 'after', data: key })), { runs: 3 },
      'a new id runs in the new state');
    assert.equal(ack(await again.request('runs', { data: key })), 3, 'nothing ran twice');
  });
});
