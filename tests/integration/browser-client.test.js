// The browser client /moonwire.js in a real headless Chromium, against a real moonwire
// (and a real Redis), with a TCP proxy in between playing the network (lib/proxy.js):
// requests, RTT and rooms; a first join while WebSocket is blocked; a message sent
// offline and one whose ack was lost; a server killed -9 and restarted, without and
// with Redis; a server down for a while (the backoff grows to its cap, attempts counted
// on the network); malformed frames from the server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { startProxy } = require('./lib/proxy');
const { startRedis } = require('./lib/redis');
const { launch } = require('./lib/browser');
const { connect, closeAll } = require('./lib/client');
const { sseConnect } = require('./lib/sse');
const { uid, expectAck, sleep, waitFor } = require('./lib/helpers');

// A bare page with the client and a recorder of what it does, with times.
const PAGE = `<!doctype html><meta charset="utf-8"><title>t</title><script src="/moonwire.js"></script>
<script>
window.rec = [];
window.track = (mw) => {
  const at = () => Date.now();
  mw.on('state', (s) => rec.push({ at: at(), what: 'state', s }));
  mw.on('joined', (room) => rec.push({ at: at(), what: 'joined', room }));
  mw.on('reset', (room, info) => rec.push({ at: at(), what: 'reset', room, info }));
  mw.on('retry', (r) => rec.push({ at: at(), what: 'retry', delay: r.delay }));
  mw.on('request', (i) => rec.push({ at: at(), what: 'request', id: i.id, status: i.status }));
  mw.on('event', (ev) => rec.push({ at: at(), what: 'event', type: ev.type, seq: ev.seq, data: ev.data }));
  return mw;
};
window.of = (what) => rec.filter((r) => r.what === what);
</script>
`;

// An app whose server sends malformed frames (a buggy app or proxy), then a good one.
const BAD_APP = `local mw = require "moonwire"
local app = mw.app()
app:on("poke", function(conn)
  conn:send("{\\"type\\":")            -- cut short
  conn:send("[1,2,3]")                 -- not an object
  conn:send("{\\"no\\":\\"type\\"}")   -- no type
  conn:send("\\"just a string\\"")
  conn:send({ type = "good", data = "after the bad ones" })
  return { poked = true }
end)
return app
`;

const LIMIT = { timeout: 90000 }; // a stuck browser fails the test instead of hanging CI
const scripts = { 'www/t.html': PAGE, 'bad.lua': BAD_APP };
const serve = (extra = {}) => startServer({ config: { static: 'www', ...extra }, routes: { '/bad': { script: 'bad.lua' } }, scripts });

describe('moonwire.js in Chromium', { ...LIMIT, concurrency: true }, () => {
  let browser;
  let redis;
  const cleanup = [];
  before(async () => {
    browser = await launch();
    redis = await startRedis();
  }, LIMIT);
  after(async () => {
    await closeAll();
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
    if (browser) await browser.close();
    if (redis) await redis.stop();
  }, LIMIT);

  // A server (opts: extra config) behind a proxy, and a page loaded through it.
  async function setup(extra) {
    const server = await serve(extra);
    const proxy = await startProxy(server.port);
    const s = { server, proxy };
    cleanup.push(async () => { await proxy.close(); await s.server.stop(); });
    s.page = await browser.newPage();
    await s.page.goto(proxy.httpUrl('/t.html'));
    return s;
  }

  it('connects, requests, joins and measures the round trip', LIMIT, async () => {
    const { page, proxy } = await setup();
    const user = uid('ana');
    const got = await page.evaluate(async ({ url, user }) => {
      const mw = track(new Moonwire(url, { pingInterval: 200 }));
      const ack = await mw.join('lobby-' + user, { name: 'Ana' });
      let err = null;
      try { await mw.request('chat:message', 'x', { room: 'elsewhere' }); } catch (e) { err = e; }
      const sent = await mw.request('chat:message', { text: 'hi' }, { room: 'lobby-' + user });
      while (mw.rtt === null) await new Promise((r) => setTimeout(r, 20));
      const out = { states: of('state').map((r) => r.s), user: mw.user, members: ack.members, epoch: ack.epoch,
        code: err && err.code, isError: err instanceof Moonwire.MoonwireError, sent, rtt: mw.rtt,
        transport: mw.transport, events: of('event').map((e) => e.type) };
      mw.close();
      out.closed = mw.state;
      return out;
    }, { url: proxy.url(`/chat?user=${user}`), user });
    assert.deepEqual(got.states, ['connecting', 'open']);
    assert.equal(got.user, user);
    assert.deepEqual(got.members, [{ user, name: 'Ana', conns: 1 }]);
    assert.match(got.epoch, /^[0-9a-f]{12}$/);
    assert.equal(got.code, 'not_in_room');
    assert.equal(got.isError, true);
    assert.deepEqual(got.sent, { seq: 1 });
    assert.deepEqual(got.events, ['chat:message']);
    assert.equal(got.transport, 'websocket');
    assert.ok(got.rtt >= 0 && got.rtt < 2000, `rtt ${got.rtt}`);
    assert.equal(got.closed, 'closed');
  });

  it('joins a room asked for while WebSocket was blocked for 12 s, once it is let through', LIMIT, async () => {
    const { page, proxy, server } = await setup();
    const room = uid('late');
    const user = uid('lea');
    proxy.setBlockWebSocket('hold'); // swallowed: no answer, no error
    const t0 = Date.now();
    await page.evaluate(({ url, room }) => {
      window.mw = track(new Moonwire(url));
      window.joined = null;
      mw.join(room, { name: 'Lea' }).then((ack) => { joined = ack; }, (e) => { joined = 'failed: ' + e.code; });
    }, { url: proxy.url(`/chat?user=${user}`), room });
    await sleep(12000);
    const during = await page.evaluate(() => ({ state: mw.state, joined }));
    assert.equal(during.joined, null, 'the join waits; it is neither done nor dropped');
    assert.notEqual(during.state, 'open');
    const held = proxy.upgrades(t0).length;
    assert.ok(held >= 2, `the swallowed attempt was given up and retried (${held} attempts)`);
    proxy.setBlockWebSocket(false);
    await page.until(() => window.joined !== null, null, 20000);
    const after = await page.evaluate(() => ({ state: mw.state, joined, rec: of('state').map((r) => r.s) }));
    assert.equal(after.state, 'open');
    assert.deepEqual(after.joined.members.map((m) => m.user), [user]);
    // In the room for real: a message from elsewhere arrives.
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    expectAck(await bob.request('chat:message', { room, data: { text: 'you made it' } }), 2);
    await page.until(() => of('event').some((e) => e.data && e.data.text === 'you made it'));
    await page.evaluate(() => mw.close());
  });

  it('keeps a message sent offline pending and sends it once; one whose ack was lost is processed once', LIMIT, async () => {
    const { page, proxy, server } = await setup();
    const room = uid('off');
    const watcher = await connect(server.url(`/chat?user=${uid('w')}`));
    expectAck(await watcher.request('join', { room }), 1);
    await page.evaluate(async ({ url, room }) => {
      window.mw = track(new Moonwire(url, { pingInterval: 1000, pongTimeout: 1500, backoff: { base: 300, cap: 1000, jitter: 0.25 } }));
      await mw.join(room);
    }, { url: proxy.url(`/chat?user=${uid('ola')}`), room });

    proxy.setMode('offline');
    await page.until(() => mw.state === 'reconnecting');
    const id = await page.evaluate(({ room }) => {
      window.offline = mw.request('chat:message', { text: 'written offline' }, { room });
      return offline.id;
    }, { room });
    await sleep(1500); // a few attempts go by
    const pending = await page.evaluate(() => mw.pending().map((i) => [i.id, i.status]));
    assert.deepEqual(pending, [[id, 'queued']], 'pending and visible while offline');
    proxy.setMode('pass');
    assert.deepEqual(await page.evaluate(() => offline), { seq: 1 });
    const statuses = await page.evaluate((id) => of('request').filter((r) => r.id === id).map((r) => r.status), id);
    assert.deepEqual(statuses, ['queued', 'sent', 'acked']);
    await watcher.next((m) => m.type === 'chat:message' && m.data.text === 'written offline', 3000);

    // Now the ack is lost on the way back: the server has the message, the page does not
    // know; it notices the dead link (no pong), reconnects and sends the same id again.
    proxy.setMode('deaf');
    const id2 = await page.evaluate(({ room }) => {
      window.lost = mw.request('chat:message', { text: 'ack lost' }, { room });
      return lost.id;
    }, { room });
    await watcher.next((m) => m.type === 'chat:message' && m.data.text === 'ack lost', 5000);
    await page.until(() => mw.state === 'reconnecting', null, 10000);
    proxy.setMode('pass');
    assert.deepEqual(await page.evaluate(() => lost), { seq: 2 }, 'the first reply, from the session window');
    const statuses2 = await page.evaluate((id) => of('request').filter((r) => r.id === id).map((r) => r.status), id2);
    assert.deepEqual(statuses2, ['queued', 'sent', 'queued', 'sent', 'acked']);
    const extra = await watcher.collect((m) => m.type === 'chat:message', 1000);
    assert.deepEqual(extra.map((m) => m.data.text), [], 'each message reached the room once');
    const texts = await page.evaluate(() => of('event').filter((e) => e.type === 'chat:message').map((e) => `${e.seq}:${e.data.text}`));
    assert.deepEqual(texts, ['1:written offline', '2:ack lost']);
    await page.evaluate(() => mw.close());
  });

  // kill -9, a new process, the page recovers without a reload. Returns the timeline.
  async function restart(withRedis) {
    const extra = withRedis ? { redis: { url: redis.url } } : {};
    const s = await setup(extra);
    const { page, proxy } = s;
    const room = uid(withRedis ? 'kr' : 'km');
    await page.evaluate(async ({ url, room }) => {
      window.mw = track(new Moonwire(url));
      await mw.join(room, { name: 'Kim' });
      for (let i = 1; i <= 3; i++) await mw.request('chat:message', { text: 'acked ' + i }, { room });
    }, { url: proxy.url(`/chat?user=${uid('kim')}`), room });

    const t0 = Date.now();
    s.server.process.kill('SIGKILL');
    await page.until(() => mw.state === 'reconnecting', null, 10000);
    const tDetected = Date.now();
    await page.evaluate(({ room }) => { window.during = mw.request('chat:message', { text: 'written while down' }, { room }); }, { room });
    const old = s.server;
    s.server = await serve(extra);
    await old.stop().catch(() => {}); // already dead: only its temp dir is left
    const tUp = Date.now();
    proxy.setTarget(s.server.port);
    // Someone else talks before the page is back: it must get that too.
    const bob = await connect(s.server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    expectAck(await bob.request('chat:message', { room, data: { text: 'while you were away' } }), 2);
    await page.until(() => mw.pending().length === 0, null, 30000);
    await page.until((n) => of('event').filter((e) => e.type === 'chat:message').length >= n, 5, 10000);
    const got = await page.evaluate(() => ({ rec, texts: of('event').filter((e) => e.type === 'chat:message').map((e) => e.data.text) }));
    const first = (what, pred = () => true) => got.rec.find((r) => r.at >= tDetected && r.what === what && pred(r));
    const timeline = {
      detected: tDetected - t0,
      serverUp: tUp - t0,
      open: first('state', (r) => r.s === 'open').at - t0,
      rejoined: first('joined').at - t0,
      pendingAcked: first('request', (r) => r.status === 'acked').at - t0,
      attempts: proxy.upgrades(t0).length,
    };
    await page.evaluate(() => mw.close());
    return { got, timeline, bob };
  }

  it('recovers without a reload from a server killed -9 and restarted (history in memory: reset, kept)', LIMIT, async (t) => {
    const { got, timeline } = await restart(false);
    t.diagnostic(`restart timeline (ms after kill -9, memory): ${JSON.stringify(timeline)}`);
    const resets = got.rec.filter((r) => r.what === 'reset');
    assert.equal(resets.length, 1, 'the new process has a new history: the app is told once');
    assert.equal(resets[0].info.since, 3);
    assert.equal(resets[0].info.epochChanged, true);
    // What the page showed stays; what the new process has comes after the gap, once.
    assert.deepEqual(got.texts, ['acked 1', 'acked 2', 'acked 3', 'while you were away', 'written while down']);
  });

  it('recovers from a server killed -9 and restarted with Redis: no reset, nothing acked lost', LIMIT, async (t) => {
    const { got, timeline } = await restart(true);
    t.diagnostic(`restart timeline (ms after kill -9, redis): ${JSON.stringify(timeline)}`);
    assert.deepEqual(got.rec.filter((r) => r.what === 'reset'), [], 'history survived in Redis');
    assert.deepEqual(got.texts, ['acked 1', 'acked 2', 'acked 3', 'while you were away', 'written while down']);
    const seqs = got.rec.filter((r) => r.what === 'event' && r.type === 'chat:message').map((r) => r.seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5], 'in order, no gap, no duplicate');
  });

  it('backs off to its cap while the server is down, without a storm, and comes back', LIMIT, async (t) => {
    // The default backoff is 1 s doubling to 30 s (a minute down = about 6 attempts);
    // the test runs it 4x faster (base 250 ms, cap 2 s) so as to fit a few attempts at
    // the cap in 12 s.
    const s = await setup();
    const { page, proxy } = s;
    await page.evaluate(async ({ url }) => {
      window.mw = track(new Moonwire(url, { backoff: { base: 250, cap: 2000, jitter: 0.25 } }));
      await mw.join('down');
    }, { url: proxy.url(`/chat?user=${uid('dan')}`) });
    const t0 = Date.now();
    const old = s.server;
    old.process.kill('SIGKILL');
    await sleep(12000);
    const attempts = proxy.log.filter((e) => e.at >= t0); // WebSocket and HTTP alike
    const delays = await page.evaluate((t0) => rec.filter((r) => r.what === 'retry' && r.at >= t0).map((r) => Math.round(r.delay)), t0);
    t.diagnostic(`down 12 s: ${attempts.length} attempts; delays ${delays.join(', ')} ms`);
    // How many attempts fit in 12 s if every delay is drawn at its lowest (-25 %) and at
    // its highest (+25 %): 0.19+0.38+0.75+1.5+1.5... s gives 10, 0.31+0.63+1.25+2.5... 6.
    const fit = (f) => { let n = 0; for (let t = 0, k = 0; (t += f * Math.min(2000, 250 * 2 ** k++)) <= 12000;) n++; return n; };
    assert.ok(attempts.length >= fit(1.25) - 2 && attempts.length <= fit(0.75),
      `${attempts.length} attempts in 12 s, expected ${fit(1.25)}..${fit(0.75)}`);
    assert.ok(attempts.every((a) => a.outcome === 'upstream refused'), JSON.stringify(attempts));
    for (let i = 0; i < 4; i++) {
      const base = 250 * 2 ** i;
      assert.ok(delays[i] >= base * 0.75 && delays[i] <= base * 1.25, `delay ${i}: ${delays[i]}`);
    }
    assert.ok(delays.slice(4).length >= 1 && delays.slice(4).every((d) => d >= 1500 && d <= 2500), `at the cap: ${delays}`);
    // Seen from the network: the gaps between attempts grow too.
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i].at);
    assert.ok(gaps[gaps.length - 1] >= 1400, `last gap ${gaps[gaps.length - 1]} ms`);
    s.server = await serve();
    await old.stop().catch(() => {});
    proxy.setTarget(s.server.port);
    await page.until(() => mw.state === 'open' && of('joined').length === 2, null, 10000);
    await page.evaluate(() => mw.close());
  });

  // The page and bob (a WebSocket client on the server itself) talk while the page's
  // transport changes under it; every message must arrive once, in order, both ways.
  async function talk(page, bob, room, label, n = 5) {
    const sent = await page.evaluate(async ({ room, label, n }) => {
      const acks = [];
      for (let i = 0; i < n; i++) acks.push(mw.request('chat:message', { text: `${label} ${i}` }, { room }));
      return (await Promise.all(acks)).map((a) => a.seq);
    }, { room, label, n });
    for (let i = 0; i < n; i++) expectAck(await bob.request('chat:message', { room, data: { text: `bob ${label} ${i}` } }), bob.nextId - 1);
    await page.until((want) => of('event').filter((e) => e.type === 'chat:message' && e.data.text.startsWith('bob ' + want.label)).length === want.n,
      { label, n }, 15000);
    return sent;
  }

  function checkOnce(texts, what) {
    assert.equal(new Set(texts).size, texts.length, `${what}: no duplicate in ${texts}`);
  }

  it('falls back to HTTP when WebSocket is blocked from the start, then goes back to WebSocket', LIMIT, async (t) => {
    const { page, proxy, server } = await setup();
    const room = uid('fb');
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    proxy.setBlockWebSocket('refuse');
    const t0 = Date.now();
    await page.evaluate(async ({ url, room }) => {
      window.mw = track(new Moonwire(url, { upgradeAfter: 3000, backoff: { base: 300, cap: 2000, jitter: 0.25 } }));
      window.transports = [];
      mw.on('transport', (name, why) => transports.push(`${name}:${why}`));
      await mw.join(room, { name: 'Fay' });
    }, { url: proxy.url(`/chat?user=${uid('fay')}`), room });
    t.diagnostic(`open over HTTP ${Date.now() - t0} ms after the first attempt`);
    assert.equal(await page.evaluate(() => mw.transport), 'http');
    const joined = await bob.next({ type: 'presence:join', room });
    assert.equal(joined.data.name, 'Fay', 'presence as usual');
    assert.deepEqual(await talk(page, bob, room, 'over http'), [1, 2, 3, 4, 5]);
    proxy.setBlockWebSocket(false);
    await page.until(() => mw.transport === 'websocket', null, 15000);
    assert.deepEqual(await talk(page, bob, room, 'back on ws'), [11, 12, 13, 14, 15]);
    const got = await page.evaluate(() => ({ transports, states: of('state').map((r) => r.s),
      texts: of('event').filter((e) => e.type === 'chat:message').map((e) => `${e.seq}:${e.data.text}`) }));
    assert.deepEqual(got.transports, ['http:fallback', 'websocket:upgrade']);
    assert.deepEqual(got.states.filter((s) => s === 'open'), ['open'], 'the switch back is not a reconnect');
    assert.equal(got.texts.length, 20);
    assert.deepEqual(got.texts.map((x) => Number(x.split(':')[0])), Array.from({ length: 20 }, (_, i) => i + 1), 'every seq once, in order');
    const atBob = (await bob.collect((m) => m.type === 'chat:message' && m.from !== bob.user, 300)).map((m) => m.data.text);
    checkOnce(atBob, 'at bob');
    assert.equal(atBob.length, 10);
    await page.evaluate(() => mw.close());
    await bob.close();
  });

  it('falls back to HTTP when WebSocket is blocked mid-session, loses nothing, and comes back', LIMIT, async () => {
    const { page, proxy, server } = await setup();
    const room = uid('mid');
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    await page.evaluate(async ({ url, room }) => {
      window.mw = track(new Moonwire(url, { upgradeAfter: 3000, backoff: { base: 300, cap: 2000, jitter: 0.25 } }));
      window.transports = [];
      mw.on('transport', (name, why) => transports.push(`${name}:${why}`));
      await mw.join(room);
    }, { url: proxy.url(`/chat?user=${uid('max')}`), room });
    await talk(page, bob, room, 'ws first');
    // The network starts blocking WebSocket and drops the connection; the page writes
    // meanwhile, bob too.
    proxy.setBlockWebSocket('refuse');
    proxy.cut();
    await page.until(() => mw.state === 'reconnecting');
    const during = await page.evaluate(({ room }) => { window.during = [0, 1, 2].map((i) => mw.request('chat:message', { text: 'during ' + i }, { room })); return mw.pending().length; }, { room });
    assert.equal(during, 3);
    for (let i = 0; i < 3; i++) expectAck(await bob.request('chat:message', { room, data: { text: `bob during ${i}` } }), bob.nextId - 1);
    await page.until(() => mw.transport === 'http', null, 15000);
    await page.evaluate(() => Promise.all(during));
    await talk(page, bob, room, 'over http');
    proxy.setBlockWebSocket(false);
    await page.until(() => mw.transport === 'websocket', null, 15000);
    await talk(page, bob, room, 'ws again');
    const got = await page.evaluate(() => ({ transports,
      seqs: of('event').filter((e) => e.type === 'chat:message').map((e) => e.seq),
      texts: of('event').filter((e) => e.type === 'chat:message').map((e) => e.data.text) }));
    assert.deepEqual(got.transports, ['http:fallback', 'websocket:upgrade']);
    assert.deepEqual(got.seqs, Array.from({ length: got.seqs.length }, (_, i) => i + 1), 'every seq once, in order');
    assert.equal(got.seqs.length, 36);
    for (const x of ['during 0', 'during 1', 'during 2', 'bob during 0', 'bob during 2', 'over http 4', 'ws again 0']) {
      assert.ok(got.texts.includes(x), `the page saw "${x}"`);
    }
    const atBob = (await bob.collect((m) => m.type === 'chat:message' && m.from !== bob.user, 300)).map((m) => m.data.text);
    checkOnce(atBob, 'at bob');
    assert.equal(atBob.length, 18);
    await page.evaluate(() => mw.close());
    await bob.close();
  });

  it('admin page: the key, then every node live: connections by route and transport, rooms, presence, errors, reloads', LIMIT, async (t) => {
    const KEY = 'admin-test-key';
    const oops = 'local mw = require "moonwire"\nlocal app = mw.app()\napp:on("boom", function() error("kaboom") end)\nreturn app\n';
    const cfg = (node) => ({ config: { api: { keys: [KEY] }, redis: { url: redis.url }, node_id: node },
      routes: { '/oops': { script: 'oops.lua' } }, scripts: { 'oops.lua': oops } });
    const a = await startServer(cfg('adm-a'));
    const b = await startServer(cfg('adm-b'));
    cleanup.push(() => a.stop(), () => b.stop());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(a.httpUrl('/admin'));
    await page.fill('#key', 'not the key');
    await page.press('#key', 'Enter');
    await page.until(() => document.getElementById('key-err').textContent === 'Wrong API key.');
    assert.equal(await page.locator('#board').isHidden(), true, 'nothing shown without the key');
    await page.fill('#key', KEY);
    await page.press('#key', 'Enter');
    await page.until(() => !document.getElementById('board').hidden);
    // Traffic on both nodes: a room with people on each, one of them over the fallback.
    const room = uid('lobby');
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    expectAck(await ana.request('join', { room }), 1);
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    const cy = await sseConnect(a.httpUrl(`/chat?user=${uid('cy')}`));
    expectAck(await cy.request('join', { room }), 1);
    const boom = await connect(a.url('/oops?user=mallory'));
    boom.send({ type: 'boom', id: 1 });
    await boom.next((m) => m.type === 'error' && m.code === 'internal');
    b.process.kill('SIGHUP');
    await page.until(() => window.admin.nodes.size === 2, null, 10000);
    await page.until((r) => document.getElementById('rooms').textContent.includes(r), room, 10000);
    await page.until(() => /kaboom/.test(document.getElementById('recent').textContent), null, 10000);
    await page.until(() => /reloaded/.test(document.getElementById('recent').textContent), null, 10000);
    const text = (id) => page.locator('#' + id).innerText();
    assert.match(await text('nodes'), /adm-a[\s\S]*adm-b/);
    const chatRow = (await text('routes')).split('\n').find((l) => l.startsWith('/chat'));
    assert.match(chatRow, /^\/chat\s+2\s+1\s+3\s+0\s+0/, `WebSocket 2, fallback 1, open 3: ${chatRow}`);
    const roomRow = (await text('rooms')).split('\n').find((l) => l.startsWith(room));
    assert.match(roomRow, new RegExp(`^${room}\\s+3\\s`), roomRow);
    for (const u of [ana.user, bob.user, cy.user]) assert.ok(roomRow.includes(u), `${u} in ${roomRow}`);
    t.diagnostic(`screenshot: ${await browser.screenshot(page, 'admin')}`);
    // Live: someone leaves, the page follows within a few seconds.
    await bob.close();
    await page.until((r) => !(document.getElementById('rooms').textContent.includes(r) &&
      [...document.querySelectorAll('#rooms tr')].some((tr) => tr.textContent.startsWith(r) && / 3 /.test(tr.textContent))), room, 10000);
    cy.close();
    await page.close();
  });

  it('logs and ignores malformed frames from the server and keeps serving the page', LIMIT, async () => {
    const { page, proxy } = await setup();
    const got = await page.evaluate(async ({ url }) => {
      window.mw = track(new Moonwire(url));
      const good = new Promise((resolve) => mw.on('good', (ev) => resolve(ev.data)));
      const ack = await mw.request('poke');
      return { ack, good: await good, state: mw.state, bad: mw.stats.badFrames };
    }, { url: proxy.url(`/bad?user=${uid('bo')}`) });
    assert.deepEqual(got.ack, { poked: true });
    assert.equal(got.good, 'after the bad ones');
    assert.equal(got.state, 'open');
    assert.equal(got.bad, 4);
    const warned = page.logs.filter((l) => l.startsWith('warning: moonwire: ignored a malformed frame'));
    assert.equal(warned.length, 4, page.logs.join('\n'));
    assert.ok(warned[0].includes('{"type":'), warned[0]);
    assert.deepEqual(await page.evaluate(() => mw.request('poke')), { poked: true }, 'still working');
    await page.evaluate(() => mw.close());
  });
});
