// The browser client (SPEC section 9): /moonwire.js loaded by a real headless Chromium
// from a real moonwire, with the bundled chat app. States, request/ack, RTT, rooms,
// reconnect with backoff, rejoin and sync without gap or duplicate, and the outbox
// sent after a reconnect and processed once.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { launch } = require('./lib/chromium');
const { connect, closeAll } = require('./lib/client');
const { uid } = require('./lib/helpers');

const PAGE = '<!doctype html><meta charset="utf-8"><title>t</title><script src="/moonwire.js"></script>\n';

const LIMIT = { timeout: 60000 }; // a stuck browser fails the test instead of hanging CI

describe('moonwire.js in Chromium', LIMIT, () => {
  let server;
  let browser;
  before(async () => {
    const demo = fs.readFileSync(path.join(__dirname, '../../examples/web/index.html'), 'utf8');
    server = await startServer({ config: { static: 'www' }, scripts: { 'www/t.html': PAGE, 'www/demo/index.html': demo } });
    browser = await launch();
    await browser.goto(server.httpUrl('/t.html'));
  }, LIMIT);
  after(async () => {
    await closeAll();
    if (browser) await browser.close();
    if (server) await server.stop();
  }, LIMIT);

  // Runs an async function body in the page; `ws` is the chat route's URL.
  const run = (body, ms) => browser.evaluate(`(async () => {
    const ws = ${JSON.stringify(server.url('/chat'))};
    const until = async (cond, ms = 5000) => {
      const end = Date.now() + ms;
      while (!cond()) { if (Date.now() > end) throw new Error('timed out: ' + cond); await new Promise((r) => setTimeout(r, 10)); }
    };
    ${body}
  })()`, ms);

  it('is served at /moonwire.js and connects, requests and measures the round trip', LIMIT, async () => {
    const user = uid('ana');
    const got = await run(`
      const states = [];
      const mw = new Moonwire(ws + '?user=${user}', { pingInterval: 200 });
      mw.on('state', (s) => states.push(s));
      await until(() => mw.state === 'open');
      const ack = await mw.join('lobby-${user}', { name: 'Ana' });
      let err = null;
      try { await mw.request('chat:message', 'x', { room: 'elsewhere' }); } catch (e) { err = e; }
      await until(() => mw.rtt !== null);
      const out = { states, user: mw.user, members: ack.members.map((m) => m.user), epoch: ack.epoch,
                    code: err && err.code, isError: err instanceof Moonwire.MoonwireError, rtt: mw.rtt };
      mw.close();
      out.closed = mw.state;
      return out;
    `);
    assert.deepEqual(got.states.slice(0, 2), ['connecting', 'open']);
    assert.equal(got.user, user);
    assert.deepEqual(got.members, [user]);
    assert.match(got.epoch, /^[0-9a-f]{12}$/);
    assert.equal(got.code, 'not_in_room');
    assert.equal(got.isError, true);
    assert.ok(got.rtt >= 0 && got.rtt < 1000, `rtt ${got.rtt}`);
    assert.equal(got.closed, 'closed');
  });

  it('reconnects after a drop, rejoins, syncs what it missed and sends its outbox once', LIMIT, async () => {
    const room = uid('room');
    const user = uid('bea');
    const pub = await connect(server.url(`/chat?user=${uid('pub')}`));
    assert.equal((await pub.request('join', { room })).type, 'ack');
    await browser.evaluate(`(async () => {
      window.seen = [];
      window.states = [];
      window.mw = new Moonwire(${JSON.stringify(server.url(`/chat?user=${user}`))},
        { backoff: { base: 400, cap: 1000, jitter: 0.25 } });
      mw.on('chat:message', (ev) => seen.push(ev.seq + ':' + JSON.stringify(ev.data)));
      mw.on('state', (s) => states.push(s));
      await mw.join(${JSON.stringify(room)});
    })()`);
    for (let i = 0; i < 3; i++) assert.equal((await pub.request('chat:message', { room, data: i })).type, 'ack');
    await run('await until(() => seen.length === 3);');
    // The network drops; while the client is away the room goes on, and the user
    // writes a message that waits in the outbox.
    await run(`mw.ws.close(); await until(() => mw.state === 'reconnecting');
      window.sent = mw.request('chat:message', 'from the outbox', { room: ${JSON.stringify(room)} });`);
    for (let i = 3; i < 6; i++) assert.equal((await pub.request('chat:message', { room, data: i })).type, 'ack');
    const got = await run(`
      const ack = await sent;
      await until(() => seen.length === 7);
      await new Promise((r) => setTimeout(r, 200));
      return { seen, states, ack, user: mw.user };
    `);
    assert.deepEqual(got.states, ['connecting', 'open', 'reconnecting', 'open']);
    assert.equal(got.user, user);
    assert.deepEqual(got.seen, ['1:0', '2:1', '3:2', '4:3', '5:4', '6:5', '7:"from the outbox"'],
      'every message once, in seq order: the missed ones by sync, then the outbox');
    assert.equal(got.ack.seq, 7);
    const posted = await pub.collect((m) => m.type === 'chat:message' && m.data === 'from the outbox', 300);
    assert.equal(posted.length, 1, 'the outbox message was posted once');
    await run('mw.close();');
  });

  it('runs the demo page: history, live messages, members and sending', LIMIT, async () => {
    const room = uid('demo');
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    assert.equal((await bob.request('join', { room })).type, 'ack');
    assert.equal((await bob.request('chat:message', { room, data: { text: 'before' } })).type, 'ack');
    await browser.goto(server.httpUrl(`/demo/index.html?user=zed&room=${room}`));
    const text = (id) => browser.evaluate(`document.getElementById(${JSON.stringify(id)}).textContent`);
    const until = async (cond, what) => {
      for (let i = 0; i < 100; i++) { if (await cond()) return; await new Promise((r) => setTimeout(r, 50)); }
      throw new Error(`demo page: ${what}`);
    };
    await until(async () => (await text('state')) === 'online', 'online');
    await until(async () => (await text('log')).includes(': before'), 'history shown');
    await until(async () => (await text('members')).includes('zed'), 'members listed');
    assert.ok((await text('members')).includes(bob.user));
    assert.equal((await bob.request('chat:message', { room, data: { text: 'live' } })).type, 'ack');
    await until(async () => (await text('log')).includes(`${bob.user}: live`), 'live message shown');
    await browser.evaluate(`document.getElementById('text').value = 'from the page';
      document.getElementById('send').requestSubmit();`);
    const got = await bob.next((m) => m.type === 'chat:message' && m.from === 'zed', 3000);
    assert.deepEqual(got.data, { text: 'from the page' });
    await browser.goto(server.httpUrl('/t.html'));
  });

  it('backs off exponentially with jitter, capped', LIMIT, async () => {
    const delays = await run(`
      const b = { base: 1000, cap: 30000, jitter: 0.25 };
      return [0, 1, 2, 3, 4, 5, 6, 10].map((n) => [Moonwire.backoffDelay(n, b, 0), Moonwire.backoffDelay(n, b, 0.999999)]);
    `);
    const bases = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
    delays.forEach(([lo, hi], i) => {
      assert.ok(Math.abs(lo - bases[i] * 0.75) < 1, `attempt ${i}: low ${lo}`);
      assert.ok(Math.abs(hi - bases[i] * 1.25) < 1, `attempt ${i}: high ${hi}`);
    });
  });
});
