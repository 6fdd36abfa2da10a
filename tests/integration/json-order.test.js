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
