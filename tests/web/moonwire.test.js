// Unit tests of the browser client examples/web/moonwire.js in Node: its backoff, its
// state machine and its outbox, with a fake clock and a fake WebSocket (the only place
// they are faked; tests/integration/browser-*.test.js run it in Chromium against a
// real server).
'use strict';

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const Moonwire = require('../../examples/web/moonwire.js');
const { FakeClock, fakeWebSocket, fakeHttp, settle } = require('./fakes');

const BACKOFF = { base: 1000, cap: 30000, jitter: 0.25 };

// A client on a fake network: { mw, clock, WS, warnings, events(type) }.
async function client(options = {}) {
  const clock = new FakeClock();
  const WS = fakeWebSocket();
  const warnings = [];
  const mw = new Moonwire('ws://h/chat?user=ana', {
    WebSocket: WS, clock, random: options.random || (() => 0.5),
    logger: { warn: (...a) => warnings.push(a.join(' ')) }, ...options,
  });
  const seen = [];
  for (const t of ['state', 'transport', 'request', 'retry', 'joined', 'reset', 'disconnect', 'error', 'chat:message']) {
    // Request items change as they go: keep what each event said.
    mw.on(t, (...args) => seen.push({ t, args: t === 'request' ? [{ ...args[0] }] : args }));
  }
  await settle(); // autoConnect runs after the constructor's caller
  return { mw, clock, WS, warnings, events: (t) => seen.filter((e) => e.t === t).map((e) => e.args) };
}

// Answers every frame of `type` the socket sent and not yet answered with an ack.
function ackAll(sock, type, data = (m) => ({})) {
  sock.answered = sock.answered || new Set();
  for (const m of sock.of(type)) {
    if (sock.answered.has(m.id)) continue;
    sock.answered.add(m.id);
    sock.frame({ type: 'ack', id: m.id, data: data(m) });
  }
}

describe('backoff', () => {
  it('doubles from 1 s to the 30 s cap, each delay within +-25 %', () => {
    const bases = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
    bases.forEach((b, n) => {
      assert.equal(Moonwire.backoffDelay(n, BACKOFF, 0), b * 0.75, `attempt ${n}, lowest`);
      assert.equal(Moonwire.backoffDelay(n, BACKOFF, 0.5), b, `attempt ${n}, middle`);
      assert.ok(Math.abs(Moonwire.backoffDelay(n, BACKOFF, 0.999999) - b * 1.25) < 0.1, `attempt ${n}, highest`);
    });
    assert.equal(Moonwire.backoffDelay(1000, BACKOFF, 0.5), 30000, 'huge attempt counts stay at the cap');
  });

  it('spreads clients: delays of one attempt differ with the random draw', () => {
    const d = [0.1, 0.4, 0.7, 0.95].map((r) => Moonwire.backoffDelay(3, BACKOFF, r));
    assert.equal(new Set(d).size, 4);
    for (const x of d) assert.ok(x >= 6000 && x <= 10000, `${x}`);
  });

  it('waits longer after each failed attempt, up to the cap, and counts the attempts', async () => {
    const { mw, clock, WS, events } = await client();
    for (let i = 0; i < 8; i++) {
      WS.last().drop(1006);
      await clock.advance(clock.next()); // the retry timer fires: the next attempt starts
    }
    const delays = events('retry').map(([r]) => r.delay);
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(WS.sockets.length, 9, 'one socket per attempt, no more');
    assert.equal(mw.stats.attempts, 9);
    mw.close();
  });

  it('starts over at 1 s after a connection that lasted, not after one that did not', async () => {
    const { mw, clock, WS, events } = await client({ stableAfter: 5000 });
    for (let i = 0; i < 3; i++) { WS.last().drop(); await clock.advance(clock.next()); } // 1, 2, 4 s
    WS.last().accept();
    await clock.advance(100);
    WS.last().drop(); // open for 100 ms only: a server that accepts and kicks
    await clock.advance(clock.next());
    WS.last().accept();
    await clock.advance(6000);
    WS.last().drop(); // open long enough: the backoff starts over
    const delays = events('retry').map(([r]) => r.delay);
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 1000]);
    mw.close();
  });

  it('waits what a server shutting down asks (reconnect after_ms)', async () => {
    const { mw, WS, events } = await client();
    WS.last().accept();
    WS.last().frame({ type: 'reconnect', data: { after_ms: 3132 } });
    WS.last().drop(1001, 'server shutting down');
    assert.equal(events('retry')[0][0].delay, 3132);
    mw.close();
  });
});

describe('state machine', () => {
  it('is open on hello, not on the socket open; reconnecting after a drop; closed after close()', async () => {
    const { mw, clock, WS, events } = await client();
    assert.equal(mw.state, 'connecting');
    const s = WS.last();
    s.readyState = 1;
    s.onopen();
    assert.equal(mw.state, 'connecting', 'the socket is open but the server has not said hello');
    s.frame({ type: 'hello', data: { user: 'ana', node: 'n1', conn: '3', heartbeat: 25 } });
    assert.equal(mw.state, 'open');
    assert.equal(mw.user, 'ana');
    assert.equal(mw.transport, 'websocket');
    assert.match(s.url, /^ws:\/\/h\/chat\?user=ana&session=[a-z0-9]{16}$/);
    s.drop(1006);
    assert.equal(mw.state, 'reconnecting');
    assert.deepEqual(events('disconnect'), [[1006, '']]);
    await clock.advance(clock.next());
    WS.last().accept();
    assert.equal(WS.last().url, s.url, 'the same session on every connection');
    mw.close();
    assert.equal(mw.state, 'closed');
    assert.equal(WS.last().closedWith.code, 1000);
    await clock.advance(120000);
    assert.equal(WS.sockets.length, 2, 'no attempt after close()');
    assert.deepEqual(events('state').map(([st]) => st), ['connecting', 'open', 'reconnecting', 'open', 'closed']);
  });

  it('gives up a connection that never says hello after connectTimeout, and tries again', async () => {
    const { mw, clock, WS } = await client({ connectTimeout: 10000 });
    const s = WS.last(); // the network swallows it: no open, no close, nothing
    await clock.advance(9999);
    assert.equal(WS.sockets.length, 1);
    await clock.advance(1);
    assert.equal(s.closedWith.code, 4000, 'the stuck socket is closed');
    assert.equal(mw.state, 'reconnecting');
    await clock.advance(clock.next());
    assert.equal(WS.sockets.length, 2, 'a new attempt');
    mw.close();
  });

  it('pings, measures the round trip, and reconnects when no pong comes', async () => {
    const { mw, clock, WS } = await client({ pingInterval: 20000, pongTimeout: 5000 });
    WS.last().accept();
    await clock.advance(1000);
    const ping = WS.last().of('ping')[0];
    assert.ok(ping, 'a ping went out');
    await clock.advance(40);
    WS.last().frame({ type: 'pong', data: ping.data });
    assert.equal(mw.rtt, 40);
    await clock.advance(20000); // the next ping: this time the server is gone silent
    assert.equal(WS.last().of('ping').length, 2);
    assert.equal(mw.state, 'open');
    await clock.advance(5000);
    assert.equal(mw.state, 'reconnecting', 'no pong in 5 s: the link is dead');
    assert.equal(WS.last().closedWith.code, 4000);
    mw.close();
  });

  it('counts from the oldest unanswered ping when pings come faster than the pong timeout', async () => {
    const { mw, clock, WS } = await client({ pingInterval: 1000, pongTimeout: 1500 });
    WS.last().accept();
    await clock.advance(1000 + 1499);
    assert.equal(mw.state, 'open');
    assert.equal(WS.last().of('ping').length, 2);
    await clock.advance(1);
    assert.equal(mw.state, 'reconnecting', 'the first ping went unanswered for 1.5 s');
    mw.close();
  });

  it('logs and ignores malformed frames and keeps working', async () => {
    const { mw, WS, warnings, events } = await client();
    WS.last().accept();
    mw.join('lobby');
    ackAll(WS.last(), 'join', () => ({ members: [], history: [], seq: 0, epoch: 'e1' }));
    await settle();
    for (const bad of ['{"type":', 'null', '[1,2]', '"text"', '{"no":"type"}', '{"type":7}']) WS.last().frame(bad);
    WS.last().frame({ type: 'chat:message', room: 'lobby', from: 'bob', data: { text: 'hi' }, seq: 1 });
    assert.equal(mw.stats.badFrames, 6);
    assert.equal(warnings.length, 6);
    assert.match(warnings[0], /malformed frame: \{"type":/);
    assert.equal(mw.state, 'open');
    assert.deepEqual(events('chat:message').map(([ev]) => ev.data.text), ['hi'], 'the next good frame is delivered');
    mw.close();
  });

  it('moves to the next transport after fallbackAfter failed attempts', async () => {
    const made = [];
    class Fake {
      constructor(url, env, hooks) { this.name = 'fake'; this.hooks = hooks; made.push(url); }
      send() { return true; }
      close() {}
    }
    Moonwire.transports.fake = Fake;
    try {
      const { mw, clock, WS, events } = await client({ transports: ['websocket', 'fake'], fallbackAfter: 2 });
      WS.last().drop();
      await clock.advance(clock.next());
      WS.last().drop();
      await clock.advance(clock.next());
      assert.equal(WS.sockets.length, 2);
      assert.equal(made.length, 1, 'the third attempt used the next transport');
      assert.match(made[0], /^http:\/\/h\/chat\?user=ana&session=/);
      assert.deepEqual(events('transport'), [['fake', 'fallback']]);
      mw.close();
    } finally {
      delete Moonwire.transports.fake;
    }
  });
});

describe('outbox', () => {
  it('keeps a request made offline pending, sends it once a connection opens, then once again after a drop', async () => {
    const { mw, clock, WS, events } = await client();
    const p = mw.request('chat:message', { text: 'hi' });
    assert.equal(p.item.status, 'queued');
    assert.deepEqual(mw.pending().map((i) => i.id), [p.id]);
    await clock.advance(60000); // long offline: still pending (no give-up by default)
    WS.last().drop();
    await clock.advance(clock.next());
    WS.last().accept();
    assert.deepEqual(WS.last().of('chat:message').map((m) => m.id), [p.id]);
    WS.last().drop(); // lost before the ack
    await clock.advance(clock.next());
    WS.last().accept();
    assert.deepEqual(WS.last().of('chat:message').map((m) => m.id), [p.id], 'the same id again: the server dedups');
    ackAll(WS.last(), 'chat:message', () => ({ seq: 9 }));
    assert.deepEqual(await p, { seq: 9 });
    assert.deepEqual(mw.pending(), []);
    assert.deepEqual(events('request').map(([i]) => i.status), ['queued', 'sent', 'queued', 'sent', 'acked']);
    assert.equal(p.item.attempts, 2);
    mw.close();
  });

  it("sends a room's requests only after that room is joined on the new connection", async () => {
    const { mw, clock, WS } = await client();
    WS.last().accept();
    mw.join('lobby');
    ackAll(WS.last(), 'join', () => ({ members: [], history: [], seq: 0 }));
    await settle();
    WS.last().drop();
    const p = mw.request('chat:message', 'x', { room: 'lobby' });
    const q = mw.request('other', 'y');
    await clock.advance(clock.next());
    const s = WS.last();
    s.accept();
    assert.deepEqual(s.sent.filter((m) => m.type !== 'ping').map((m) => m.type), ['join', 'other'],
      'the room request waits for the join');
    ackAll(s, 'join', () => ({ members: [], history: [], seq: 0 }));
    await settle();
    assert.deepEqual(s.sent.filter((m) => m.type !== 'ping').map((m) => m.type), ['join', 'other', 'chat:message']);
    ackAll(s, 'chat:message');
    ackAll(s, 'other');
    await Promise.all([p, q]);
    mw.close();
  });

  it('gives up after requestTimeout when one is set', async () => {
    const { mw, clock, events } = await client({ requestTimeout: 30000 });
    const p = mw.request('chat:message', 'x');
    const failed = assert.rejects(p, (e) => e.code === 'timeout' && e instanceof Moonwire.MoonwireError);
    await clock.advance(30000);
    await failed;
    assert.deepEqual(events('request').map(([i]) => i.status), ['queued', 'failed']);
    assert.deepEqual(mw.pending(), []);
    mw.close();
  });

  it('cancels: the promise rejects and nothing is sent later', async () => {
    const { mw, clock, WS } = await client();
    const p = mw.request('chat:message', 'x');
    p.cancel();
    await assert.rejects(p, (e) => e.code === 'cancelled');
    WS.last().accept();
    await clock.advance(10);
    assert.deepEqual(WS.last().of('chat:message'), []);
    mw.close();
  });

  it('resends the same id after `unavailable`, fails at once on other errors', async () => {
    const { mw, clock, WS } = await client();
    WS.last().accept();
    const p = mw.request('chat:message', 'x');
    const q = mw.request('chat:message', 'y');
    const s = WS.last();
    s.frame({ type: 'error', id: p.id, code: 'unavailable', message: 'redis down' });
    s.frame({ type: 'error', id: q.id, code: 'not_in_room', message: 'join first' });
    await assert.rejects(q, (e) => e.code === 'not_in_room');
    assert.equal(p.item.status, 'queued');
    await clock.advance(1500);
    assert.deepEqual(s.of('chat:message').map((m) => m.id), [p.id, q.id, p.id]);
    s.frame({ type: 'ack', id: p.id });
    await p;
    mw.close();
  });

  it('fails what is pending with `closed` on close()', async () => {
    const { mw } = await client();
    const p = mw.request('x', 1);
    const j = mw.join('r');
    mw.close();
    await assert.rejects(p, (e) => e.code === 'closed');
    await assert.rejects(j, (e) => e.code === 'closed');
  });
});

describe('rooms', () => {
  it('joins a room asked for before any connection opened, however late it opens', async () => {
    const { mw, clock, WS } = await client({ connectTimeout: 10000 });
    const j = mw.join('lobby', { name: 'Ana' });
    await clock.advance(10500); // the first attempt is swallowed for 10 s, the retry waits
    assert.equal(WS.sockets.length, 1);
    assert.equal(WS.last().closedWith.code, 4000);
    await clock.advance(clock.next());
    WS.last().accept();
    assert.deepEqual(WS.last().of('join').map((m) => [m.room, m.data]), [['lobby', { name: 'Ana' }]]);
    ackAll(WS.last(), 'join', () => ({ members: [{ user: 'ana' }], history: [], seq: 0, epoch: 'e' }));
    assert.deepEqual((await j).members, [{ user: 'ana' }]);
    mw.close();
  });

  it('rejoins on every connection, syncs from its last seq and delivers each event once, in order', async () => {
    const { mw, clock, WS, events } = await client();
    WS.last().accept();
    mw.join('lobby');
    const ev = (seq) => ({ type: 'chat:message', room: 'lobby', from: 'bob', data: seq, seq });
    ackAll(WS.last(), 'join', () => ({ members: [], history: [ev(1), ev(2)], seq: 2, epoch: 'e1' }));
    await settle();
    WS.last().frame(ev(3));
    WS.last().drop();
    await clock.advance(clock.next());
    const s = WS.last();
    s.accept();
    ackAll(s, 'join', () => ({ members: [], history: [], seq: 6, epoch: 'e1' }));
    await settle();
    s.frame(ev(7)); // live, while the sync is on its way: it must wait
    s.frame(ev(8));
    const sync = s.of('sync')[0];
    assert.deepEqual(sync.data, { since: 3, epoch: 'e1' });
    s.frame({ type: 'ack', id: sync.id, data: { messages: [ev(4), ev(5), ev(6), ev(7)], seq: 7, epoch: 'e1', reset: false } });
    await settle();
    assert.deepEqual(events('chat:message').map(([e]) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(events('joined').map(([room]) => room), ['lobby', 'lobby']);
    assert.deepEqual(events('reset'), []);
    mw.close();
  });

  it('on reset keeps going: tells the app where the gap is, then delivers what the room has', async () => {
    const { mw, clock, WS, events } = await client();
    WS.last().accept();
    mw.join('lobby');
    const ev = (seq) => ({ type: 'chat:message', room: 'lobby', data: seq, seq });
    ackAll(WS.last(), 'join', () => ({ members: [], history: [ev(1)], seq: 1, epoch: 'e1' }));
    await settle();
    WS.last().drop(); // the server restarts without its history
    await clock.advance(clock.next());
    const s = WS.last();
    s.accept();
    ackAll(s, 'join', () => ({ members: [], history: [], seq: 0, epoch: 'e2' }));
    await settle();
    ackAll(s, 'sync', () => ({ messages: [ev(1)], seq: 1, epoch: 'e2', reset: true }));
    await settle();
    assert.deepEqual(events('reset'), [['lobby', { since: 1, seq: 1, epoch: 'e2', epochChanged: true }]]);
    assert.deepEqual(events('chat:message').map(([e]) => e.seq), [1, 1], 'the new epoch counts from 1 again');
    s.frame(ev(2));
    assert.deepEqual(events('chat:message').map(([e]) => e.seq), [1, 1, 2]);
    mw.close();
  });

  it('stops joining a room the server refuses, and one the app left', async () => {
    const { mw, clock, WS } = await client();
    WS.last().accept();
    const bad = mw.join('x'.repeat(200));
    const m = WS.last().of('join')[0];
    WS.last().frame({ type: 'error', id: m.id, code: 'bad_message', message: 'room must be ...' });
    await assert.rejects(bad, (e) => e.code === 'bad_message');
    mw.join('gone');
    ackAll(WS.last(), 'join');
    await settle();
    const left = mw.leave('gone');
    ackAll(WS.last(), 'leave');
    await left;
    WS.last().drop();
    await clock.advance(clock.next());
    WS.last().accept();
    assert.deepEqual(WS.last().of('join'), [], 'neither room is joined again');
    mw.close();
  });
});

describe('HTTP fallback', () => {
  // A client whose WebSocket is blocked: it fails fallbackAfter times, then HTTP opens.
  async function onHttp(options = {}) {
    const http = fakeHttp();
    // No pings (nobody answers them here): the tests drive the connection themselves.
    const c = await client({ EventSource: http.EventSource, fetch: http.fetch, transports: ['websocket', 'http'],
      fallbackAfter: 2, pingInterval: 1e9, pongTimeout: 1e9, ...options });
    c.WS.last().drop();
    await c.clock.advance(c.clock.next());
    c.WS.last().drop();
    await c.clock.advance(c.clock.next());
    assert.equal(http.sources.length, 1, 'the third attempt is over HTTP');
    http.sources[0].open('n1:7:s3cret');
    assert.equal(c.mw.state, 'open');
    assert.equal(c.mw.transport, 'http');
    return { ...c, http, es: http.sources[0] };
  }

  it('falls back after repeated WebSocket failures: frames down the stream, up in one POST at a time', async () => {
    const { mw, http, es, events } = await onHttp();
    assert.match(es.url, /^http:\/\/h\/chat\?user=ana&session=[a-z0-9]{16}&transport=sse$/);
    assert.deepEqual(events('transport'), [['http', 'fallback']]);
    const joined = mw.join('lobby');
    assert.equal(http.posts.length, 1);
    assert.match(http.posts[0].url, /&transport=sse&stream=n1%3A7%3As3cret$/);
    assert.equal(http.posts[0].method, 'POST');
    const p = mw.request('other', 1);
    const q = mw.request('other', 2);
    assert.equal(http.posts.length, 1, 'one POST in flight; the others wait');
    http.posts[0].answer(204);
    await settle();
    assert.equal(http.posts.length, 2);
    assert.deepEqual(http.posts[1].frames.map((m) => m.data), [1, 2], 'what waited goes in one POST');
    const join = http.framesOf('join')[0];
    es.frame({ type: 'ack', id: join.id, data: { members: [], history: [], seq: 0, epoch: 'e' } });
    await joined;
    for (const m of http.posts[1].frames) es.frame({ type: 'ack', id: m.id, data: m.data });
    assert.deepEqual(await Promise.all([p, q]), [1, 2]);
    mw.close();
    assert.equal(es.closed, true);
  });

  it('a failed POST ends the connection; the request goes again on the next one', async () => {
    const { mw, clock, http, es, events } = await onHttp();
    const p = mw.request('other', 'x');
    http.posts[0].fail();
    await settle();
    assert.equal(mw.state, 'reconnecting');
    assert.equal(es.closed, true);
    assert.equal(p.item.status, 'queued');
    await clock.advance(clock.next());
    http.sources[1].open();
    await settle();
    assert.deepEqual(http.posts[1].frames.map((m) => [m.type, m.id]), [['other', p.id]], 'same id again');
    http.posts[1].answer();
    http.sources[1].frame({ type: 'ack', id: p.id, data: 'ok' });
    assert.equal(await p, 'ok');
    assert.deepEqual(events('disconnect').map(([code]) => code), [1006]);
    mw.close();
  });

  it('ends the connection when the stream breaks or the server closes it', async () => {
    const { mw, es, http, clock } = await onHttp();
    es.event('mw:close', { code: 1008, reason: 'slow consumer' });
    assert.equal(mw.state, 'reconnecting');
    assert.equal(es.closed, true);
    await clock.advance(clock.next());
    http.sources[1].open();
    assert.equal(mw.state, 'open');
    http.sources[1].fail();
    assert.equal(mw.state, 'reconnecting');
    assert.equal(http.sources[1].closed, true, 'EventSource does not retry by itself');
    mw.close();
  });

  it('goes back to WebSocket once it works: the room is rejoined and synced, the unacked request resent once', async () => {
    const { mw, clock, WS, http, es, events } = await onHttp({ upgradeAfter: 30000 });
    mw.join('lobby');
    http.posts[0].answer();
    const join = http.framesOf('join')[0];
    es.frame({ type: 'ack', id: join.id, data: { members: [], history: [], seq: 4, epoch: 'e' } });
    await settle();
    const p = mw.request('chat:message', 'hi', { room: 'lobby' });
    await settle();
    assert.deepEqual(http.framesOf('chat:message').map((m) => m.id), [p.id]);
    const before = WS.sockets.length;
    await clock.advance(29999);
    assert.equal(WS.sockets.length, before);
    await clock.advance(1);
    assert.equal(WS.sockets.length, before + 1, 'a WebSocket is tried');
    const ws = WS.last();
    ws.accept();
    assert.equal(mw.transport, 'websocket');
    assert.equal(es.closed, true, 'the HTTP connection is closed once the WebSocket said hello');
    assert.deepEqual(events('transport').slice(-1), [['websocket', 'upgrade']]);
    assert.deepEqual(ws.of('join').map((m) => m.room), ['lobby']);
    ackAll(ws, 'join', () => ({ members: [], history: [], seq: 4, epoch: 'e' }));
    await settle();
    assert.deepEqual(ws.of('sync').map((m) => m.data), [{ since: 4, epoch: 'e' }]);
    ackAll(ws, 'sync', () => ({ messages: [], seq: 4, epoch: 'e', reset: false }));
    await settle();
    assert.deepEqual(ws.of('chat:message').map((m) => m.id), [p.id], 'resent once, same id');
    ws.frame({ type: 'ack', id: p.id, data: { seq: 5 } });
    assert.deepEqual(await p, { seq: 5 });
    assert.deepEqual(events('state').map(([st]) => st).slice(-1), ['open'], 'no reconnecting in between');
    assert.equal(events('state').filter(([st]) => st === 'open').length, 1, 'open once: the switch is invisible');
    mw.close();
  });

  it('keeps the HTTP connection while WebSocket still fails, and tries again later', async () => {
    const { mw, clock, WS, es } = await onHttp({ upgradeAfter: 30000, connectTimeout: 10000 });
    const n = WS.sockets.length;
    await clock.advance(30000);
    WS.last().drop(); // still blocked
    assert.equal(mw.transport, 'http');
    assert.equal(es.closed, false);
    await clock.advance(30000);
    assert.equal(WS.sockets.length, n + 2, 'tried again');
    await clock.advance(10000); // this one hangs: given up after connectTimeout
    assert.equal(WS.last().closedWith.code, 1000);
    assert.equal(mw.state, 'open');
    mw.close();
  });

  it('switches when told to', async () => {
    const http = fakeHttp();
    const { mw, WS } = await client({ EventSource: http.EventSource, fetch: http.fetch, transports: ['websocket', 'http'] });
    WS.last().accept();
    mw.useTransport('http');
    assert.equal(WS.last().closedWith.code, 1000);
    assert.equal(http.sources.length, 1);
    http.sources[0].open();
    assert.equal(mw.transport, 'http');
    assert.throws(() => mw.useTransport('carrier-pigeon'), /not in use/);
    mw.close();
  });
});
