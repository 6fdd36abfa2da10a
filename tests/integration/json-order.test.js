// The text of replies and events, byte for byte: envelope fields in protocol order
// (type, room, from, id, code, message, data, seq, ts), a client's data passed through
// with its keys in the order the client sent them (in the live event, in history and
// in sync), other objects sorted; and the same text after a reload.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { uid, waitFor } = require('./lib/helpers');

// A client that keeps every frame as the text it came in.
function rawClient(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames = [];
    const waiters = new Set();
    ws.on('message', (d) => {
      frames.push(d.toString('utf8'));
      for (const w of waiters) w();
    });
    ws.on('error', reject);
    const c = {
      frames,
      send: (text) => ws.send(text),
      // The next frame (after index `from`) that matches `re`; resolves with its text.
      async next(re, ms = 3000) {
        let timer;
        const found = await new Promise((res) => {
          const check = () => {
            const i = frames.findIndex((f, k) => k >= c.seen && re.test(f));
            if (i >= 0) res(i);
          };
          timer = setTimeout(() => res(-1), ms);
          waiters.add(check);
          check();
          c.stop = () => waiters.delete(check);
        });
        clearTimeout(timer);
        c.stop();
        if (found < 0) throw new Error(`no frame matching ${re} within ${ms} ms; got:\n${frames.join('\n')}`);
        c.seen = found + 1;
        return frames[found];
      },
      seen: 0,
      close: () => new Promise((r) => { ws.on('close', r); ws.close(); }),
    };
    ws.on('open', () => c.next(/"type":"hello"/).then(() => resolve(c), reject));
  });
}

const DATA = '{"zeta":1,"alpha":{"y":[{"q":1,"c":2}],"b":"x"},"type":"not the envelope","mid":null}';

describe('JSON key order on the wire', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv.stop();
  });

  async function conversation(room) {
    const ana = await rawClient(srv.url('/chat?user=ana'));
    const out = {};
    ana.send(`{"data":{"name":"Ana"},"id":1,"room":"${room}","type":"join"}`);
    out.join = await ana.next(/"type":"ack","id":1/);
    ana.send(`{"id":2,"data":${DATA},"type":"chat:message","room":"${room}"}`);
    out.event = await ana.next(/"type":"chat:message"/);
    out.ack = await ana.next(/"type":"ack","id":2/);
    ana.send('{"type":"chat:message","room":"elsewhere","id":3}');
    out.error = await ana.next(/"type":"error"/);
    ana.send(`{"type":"ping","id":4,"data":${DATA}}`);
    out.pong = await ana.next(/"type":"pong"/);
    const bob = await rawClient(srv.url('/chat?user=bob'));
    bob.send(`{"type":"join","room":"${room}","id":"j"}`);
    out.history = await bob.next(/"type":"ack","id":"j"/);
    bob.send(`{"type":"sync","room":"${room}","id":"s","data":{"since":0}}`);
    out.sync = await bob.next(/"type":"ack","id":"s"/);
    await Promise.all([ana.close(), bob.close()]);
    // Variable parts out, the rest compared as text.
    for (const k of Object.keys(out)) {
      out[k] = out[k].replace(/"ts":\d+/g, '"ts":TS').replace(/"epoch":"[0-9a-f]*"/g, '"epoch":"E"')
        .split(room).join('ROOM');
    }
    return out;
  }

  it('replies and events keep the envelope order and the client\'s data as sent', async () => {
    const out = await conversation(uid('order'));
    const event = `{"type":"chat:message","room":"ROOM","from":"ana","data":${DATA},"seq":1,"ts":TS}`;
    assert.equal(out.event, event);
    assert.equal(out.ack, '{"type":"ack","id":2,"data":{"seq":1}}');
    assert.match(out.error, /^\{"type":"error","id":3,"code":"not_in_room","message":"[^"]+"\}$/);
    assert.equal(out.pong, `{"type":"pong","id":4,"data":${DATA}}`);
    // An app's own tables come out sorted; presence members keep the core's order.
    assert.equal(out.join, '{"type":"ack","id":1,"data":{"epoch":"E","history":[],' +
      '"members":[{"user":"ana","name":"Ana","conns":1}],"room":"ROOM","seq":0}}');
    assert.ok(out.history.includes(`"history":[${event}]`), out.history);
    assert.ok(out.sync.includes(`"messages":[${event}]`), out.sync);
  });

  it('says the same after a hot reload (a new Lua state)', async () => {
    const before = await conversation(uid('reload'));
    srv.process.kill('SIGHUP');
    await waitFor(() => /msg="reloaded"/.test(srv.logs()), 5000, 'the reload');
    const after = await conversation(uid('reload'));
    assert.deepEqual(after, before);
  });
});

// A client's data that Lua does not use is not decoded: it goes out as the very text
// the client sent (spacing, escapes, number spellings); once a handler reads or
// changes it, it is an ordinary table and goes out re-encoded; bad data is refused
// with the error a full decode gives.
describe('a client\'s data passed through', () => {
  const SPACED = '{ "zeta" : 1.50, "text":"caf\\u00e9 \\/ @bob", "n":[1e2, {}] }';
  const ENCODED = '{"zeta":1.5,"text":"café / @bob","n":[100,{}]}';
  const APP = `
local mw = require "moonwire"
local app = mw.app()
app:on("edit", function(conn, msg)
  msg.data.seen = true
  conn:send({ type = "edited", data = msg.data })
end)
app:on("read", function(conn, msg)
  local n = 0
  for _ in pairs(msg.data) do n = n + 1 end
  conn:send({ type = "read", data = msg.data })
  return { n = n, text = msg.data.text }
end)
app:on("meta", function(conn, msg)
  conn:join("m", msg.data)
  mw.log.info("meta", msg.data)
  return (mw.presence.list("m"))
end)
app:on("echo", function(conn, msg) conn:send({ type = "echo", data = msg.data }) end)
app:on("pub", function(conn, msg)
  conn:join("p")
  return (mw.rooms.publish("p", { type = "ev", room = "p", data = msg.data }))
end)
app:on("boom", function(conn, msg) error("boom") end)
return app
`;
  let srv;
  before(async () => {
    srv = await startServer({
      routes: { '/app': { script: 'app.lua' }, '/chatm': { script: 'app:chat', options: { mentions: true } } },
      scripts: { 'app.lua': APP },
    });
  });
  after(async () => {
    await srv.stop();
  });

  it('goes out byte for byte in the event, the history and sync, with mentions on too', async () => {
    for (const route of ['/chat', '/chatm']) {
      const room = uid('raw');
      const ana = await rawClient(srv.url(`${route}?user=ana`));
      ana.send(`{"type":"join","room":"${room}","id":1}`);
      await ana.next(/"type":"ack","id":1/);
      ana.send(`{"type":"chat:message","room":"${room}","id":2,"data":${SPACED}}`);
      const event = await ana.next(/"type":"chat:message"/);
      assert.ok(event.includes(`"from":"ana","data":${SPACED},"seq":1,`), event);
      await ana.next(/"type":"ack","id":2/);
      ana.send(`{"type":"sync","room":"${room}","id":3,"data":{"since":0}}`);
      const sync = await ana.next(/"type":"ack","id":3/);
      assert.ok(sync.includes(`"data":${SPACED},"seq":1,`), sync);
      ana.send(`{"type":"ping","id":4,"data":${SPACED}}`);
      assert.equal(await ana.next(/"type":"pong"/), `{"type":"pong","id":4,"data":${SPACED}}`);
      await ana.close();
    }
  });

  it('is an ordinary table once a handler reads or changes it', async () => {
    const c = await rawClient(srv.url('/app?user=ana'));
    c.send(`{"type":"edit","data":${SPACED}}`);
    assert.equal(await c.next(/"type":"edited"/), `{"type":"edited","data":${ENCODED.slice(0, -1)},"seen":true}}`);
    c.send(`{"type":"read","id":1,"data":${SPACED}}`);
    assert.equal(await c.next(/"type":"read"/), `{"type":"read","data":${ENCODED}}`);
    assert.equal(await c.next(/"type":"ack"/), '{"type":"ack","id":1,"data":{"n":3,"text":"café / @bob"}}');
    // Walked by C (member metadata, log fields): decoded first, so nothing is lost.
    c.send('{"type":"meta","id":2,"data":{ "name" : "Ana" }}');
    assert.equal(await c.next(/"type":"ack","id":2/), '{"type":"ack","id":2,"data":[{"user":"ana","name":"Ana","conns":1}]}');
    await c.close();
  });

  // Handlers' coroutines are reused (script.c): nothing of one message's id (its
  // publish token, its dedup record) may reach the next message on the same coroutine.
  it('keeps nothing of one message for the next on a reused coroutine', async () => {
    const c = await rawClient(srv.url('/app?user=ana'));
    const sends = ['{"type":"pub","id":1,"data":{"n":1}}', '{"type":"pub","data":{"n":2}}',
      '{"type":"boom","id":2}', '{"type":"pub","data":{"n":3}}', '{"type":"pub","id":1,"data":{"n":1}}',
      '{"type":"pub","id":3,"data":{"n":4}}', '{"type":"pub","data":{"n":5}}'];
    for (const text of sends) c.send(text);
    await c.next(/"type":"ack","id":3/);
    await c.next(/"type":"ev".*"n":5/);
    const all = c.frames.filter((f) => f.startsWith('{"type":"ev"')).map((f) => JSON.parse(f));
    assert.deepEqual(all.map((e) => [e.data.n, e.seq]), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]], c.frames.join('\n'));
    const acks = c.frames.filter((f) => f.startsWith('{"type":"ack"'));
    assert.deepEqual(acks, ['{"type":"ack","id":1,"data":1}', '{"type":"ack","id":1,"data":1}',
      '{"type":"ack","id":3,"data":4}']);
    assert.ok(c.frames.includes('{"type":"error","id":2,"code":"internal","message":"internal error"}'), c.frames.join('\n'));
    await c.close();
  });

  it('refuses bad data with the error a full decode gives, and keeps serving', async () => {
    const c = await rawClient(srv.url('/app?user=ana'));
    const cases = [
      ['{"type":"echo","data":{"a":"x\\ud800y"}}', '\\ud800', 'unpaired surrogate'],
      ['{"type":"echo","data":{"a":1e400}}', '1e400', 'number out of range'],
      ['{"type":"echo","data":{"a":01}}', '01', 'leading zero in number'],
      [`{"type":"echo","data":${'{"a":'.repeat(70)}1${'}'.repeat(71)}`, null, 'too deeply nested'],
    ];
    for (const [text, at, why] of cases) {
      c.send(text);
      const offset = at ? text.indexOf(at) : text.indexOf('{"a":') + 5 * (64 - 1);
      const err = await c.next(/"type":"error"/);
      assert.equal(err, `{"type":"error","code":"bad_json","message":"${why} at offset ${offset}"}`, text.slice(0, 60));
    }
    c.send(`{"type":"echo","data":${SPACED}}`);
    assert.equal(await c.next(/"type":"echo"/), `{"type":"echo","data":${SPACED}}`);
    assert.equal(c.frames.filter((f) => f.startsWith('{"type":"echo"')).length, 1, 'nothing bad was echoed');
    await c.close();
  });
});
