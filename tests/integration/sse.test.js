// The HTTP fallback transport (core/http/sse.c): a Server-Sent Events stream down and
// POSTs up make a connection that a Lua app cannot tell from a WebSocket (hello,
// rooms, presence, acks, dedup in a session, heartbeats, rate limit, max_message,
// UTF-8, slow consumers); bad requests get clear answers; a POST that reaches another
// node or worker than its stream goes there over Redis.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { sseConnect, closeAllSse } = require('./lib/sse');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, assertServes, waitFor } = require('./lib/helpers');

const metric = async (server, re) => {
  const m = (await request('GET', server.httpUrl('/metrics'))).text.match(re);
  return m ? Number(m[1]) : 0;
};

describe('the HTTP fallback (SSE + POST)', () => {
  let server;
  before(async () => {
    server = await startServer({
      config: { limits: { max_message: '4KiB', rate: 20, burst: 10 }, heartbeat: { interval: '1s', timeout: '1s' } },
      routes: { '/raw': { script: 'app:echo', protocol: 'raw' } },
    });
  });
  after(async () => { closeAllSse(); await closeAll(); if (server) await server.stop(); });

  it('is a connection like a WebSocket: hello, join, presence, chat both ways, acks, dedup', async () => {
    const room = uid('r');
    const ana = await sseConnect(server.httpUrl(`/chat?user=${uid('ana')}&session=s-${uid('x')}`));
    assert.match(ana.stream, /^node-[0-9a-f]+\.[0-9a-f]{32}$/);
    assert.equal(ana.hello.data.heartbeat, 1);
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    const j = await ana.request('join', { room, data: { name: 'Ana' } });
    assert.equal(j.type, 'ack');
    assert.deepEqual(j.data.members.map((m) => m.user).sort(), [ana.user, bob.user].sort());
    const joined = await bob.next({ type: 'presence:join', room });
    assert.deepEqual(joined.data, { user: ana.user, name: 'Ana', conns: 1 });
    // Up: several frames in one POST, in order; the same id twice is processed once.
    assert.equal(await ana.send(
      { type: 'chat:message', room, id: 'm1', data: 'one' },
      { type: 'chat:message', room, id: 'm2', data: 'two' },
      { type: 'chat:message', room, id: 'm1', data: 'one' },
    ), 204);
    for (const [id, seq] of [['m1', 1], ['m2', 2], ['m1', 1]]) {
      const ack = await ana.next((m) => m.type === 'ack' && m.id === id);
      assert.deepEqual(ack.data, { seq }, `ack of ${id}`);
    }
    const got = await bob.collect((m) => m.type === 'chat:message', 300);
    assert.deepEqual(got.map((m) => m.data), ['one', 'two'], 'processed once each');
    // Down: what bob says reaches the stream.
    expectAck(await bob.request('chat:message', { room, data: 'hi ana' }), 2);
    assert.equal((await ana.next({ type: 'chat:message', data: 'hi ana' })).from, bob.user);
    // Leaving by closing the stream: the others see it at once.
    ana.close();
    await bob.next({ type: 'presence:leave', room }, 3000);
    await assertServes(server);
  });

  it('holds many streams at once and still serves WebSockets and HTTP', async () => {
    const many = [];
    for (let i = 0; i < 60; i++) many.push(await sseConnect(server.httpUrl(`/chat?user=${uid('m')}`)));
    assert.equal((await request('GET', server.httpUrl('/healthz'))).status, 200);
    await assertServes(server);
    for (const c of many) c.close();
  });

  it('answers bad requests clearly and counts them', async () => {
    const before = await metric(server, /^moonwire_sse_rejected_total (\d+)$/m);
    const ana = await sseConnect(server.httpUrl(`/chat?user=${uid('ana')}`));
    assert.equal(await ana.post('{"type":"ping"}', { stream: `${ana.stream.split('.')[0]}.${'0'.repeat(32)}` }), 404, 'no such stream');
    assert.equal(await ana.post('{"type":"ping"}', { stream: 'elsewhere.1234' }), 404, 'a node that is not there');
    assert.equal(await ana.post('{"type":"ping"}', { url: server.httpUrl('/chat?transport=sse') }), 400, 'no stream named');
    const raw = await sseConnect(server.httpUrl('/raw'));
    assert.equal(raw.status, 400);
    assert.match(raw.text, /JSON routes only/);
    const nowhere = await sseConnect(server.httpUrl('/nowhere'));
    assert.equal(nowhere.status, 404);
    assert.equal(await metric(server, /^moonwire_sse_rejected_total (\d+)$/m), before + 4);
    assert.match(server.logs(), /msg="sse post rejected" stream=node-[^ ]+ reason="no such stream"/);
    // The stream itself is fine: a line that is not JSON is answered like on a WebSocket.
    assert.equal(await ana.post('{"type":'), 204);
    const err = await ana.next('error');
    expectError(err, 'bad_json');
    assert.equal(await ana.send({ type: 'ping', id: 'p', data: 7 }), 204);
    assert.deepEqual((await ana.next('pong')).data, 7);
    ana.close();
  });

  // The stream must end when its connection is closed, not at the close grace (3 s)
  // when the connection would be aborted: closed() waits 2 s.
  it('closes 1007 on invalid UTF-8 and 1009 on a message over max_message', async () => {
    const a = await sseConnect(server.httpUrl(`/chat?user=${uid('u8')}`));
    assert.equal(await a.post(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])), 204);
    assert.deepEqual(await a.closed(2000), { code: 1007, reason: 'bad utf8' });
    const b = await sseConnect(server.httpUrl(`/chat?user=${uid('big')}`));
    const big = JSON.stringify({ type: 'chat:message', data: 'x'.repeat(5000) });
    assert.equal(await b.post(big), 204);
    assert.deepEqual(await b.closed(2000), { code: 1009, reason: 'message too big' });
    const c = await sseConnect(server.httpUrl(`/chat?user=${uid('huge')}`));
    assert.equal(await c.post('x'.repeat(80 * 1024)), 413, 'a POST over the bound');
    assert.deepEqual(await c.closed(2000), { code: 1009, reason: 'message too big' });
    await assertServes(server);
  });

  it('rate limits like a WebSocket: errors with the ids, then 1008 for a flood', async () => {
    const a = await sseConnect(server.httpUrl(`/chat?user=${uid('fl')}`));
    const frames = (n, from) => Array.from({ length: n }, (_, i) => JSON.stringify({ type: 'ping', id: from + i })).join('\n');
    assert.equal(await a.post(frames(20, 1)), 204); // burst 10: 10 answered, 10 refused
    const pongs = await a.collect('pong', 300);
    const limited = await a.collect((m) => m.type === 'error' && m.code === 'rate_limited', 0);
    assert.equal(pongs.length + limited.length, 20);
    assert.ok(pongs.length >= 10 && limited.length >= 1, `${pongs.length} pongs, ${limited.length} refused`);
    assert.deepEqual(limited.map((m) => m.id), Array.from({ length: limited.length }, (_, i) => 21 - limited.length + i),
      'each refusal carries its request id');
    assert.equal(await a.post(frames(150, 100)), 204); // over 10 x burst at once: abuse
    assert.deepEqual(await a.closed(3000), { code: 1008, reason: 'rate limit' });
  });

  it('drops a client that stops posting, like a silent WebSocket (heartbeat)', async () => {
    const room = uid('hb');
    const bob = await connect(server.url(`/chat?user=${uid('bob')}`));
    expectAck(await bob.request('join', { room }), 1);
    const quiet = await sseConnect(server.httpUrl(`/chat?user=${uid('quiet')}`));
    expectAck(await quiet.request('join', { room }), 1);
    const t0 = Date.now();
    // bob keeps himself alive; the stream's client says nothing more.
    const keep = setInterval(() => bob.send({ type: 'ping' }), 300);
    try {
      await bob.next({ type: 'presence:leave', room }, 6000);
    } finally {
      clearInterval(keep);
    }
    assert.ok(Date.now() - t0 >= 1500, 'not before interval + timeout');
    await quiet.closed(3000);
    assert.match(server.logs(), /msg="heartbeat timeout" conn=\d+ user=quiet-/);
  });
});

describe('the HTTP fallback with a reader that never reads', () => {
  let server;
  before(async () => {
    server = await startServer({ config: { limits: { send_queue: '64KiB', rate: 100000, burst: 100000 } } });
  });
  after(async () => { await closeAll(); if (server) await server.stop(); });

  it('closes it as a slow consumer; the others see it leave, its socket is let go', async () => {
    const room = uid('slow');
    const user = uid('stuck');
    // A raw socket: the stream's GET, then never a byte read.
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /chat?user=${user}&transport=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    let head = '';
    await new Promise((r) => { const on = (d) => { head += d; if (head.includes('mw:stream')) { sock.off('data', on); r(); } }; sock.on('data', on); });
    sock.pause();
    const stream = head.match(/"stream":"([^"]+)"/)[1];
    const joinStatus = await new Promise((resolve) => {
      const req = require('node:http').request(server.httpUrl(`/chat?transport=sse&stream=${stream}`), { method: 'POST', agent: false },
        (res) => { res.resume(); resolve(res.statusCode); });
      req.end(JSON.stringify({ type: 'join', room, id: 1 }));
    });
    assert.equal(joinStatus, 204);
    const pub = await connect(server.url(`/chat?user=${uid('pub')}`));
    const j = expectAck(await pub.request('join', { room }), 1);
    assert.ok(j.members.some((m) => m.user === user), 'the stuck reader is in the room');
    // Flood with 16 KiB messages, 2 unacked at most (the publisher gets its own too,
    // and must stay under its 64 KiB queue even when slow, as under the sanitizers),
    // until the stuck reader is gone; bounded in count and time.
    const pad = 'p'.repeat(16 * 1024);
    const gone = () => pub.entries.some((e) => e.msg.type === 'presence:leave' && e.msg.data.user === user);
    const t0 = Date.now();
    const inflight = [];
    for (let i = 0; i < 3000 && !gone(); i++) {
      assert.ok(Date.now() - t0 < 60000, 'flood bounded in time');
      pub.send({ type: 'chat:message', room, id: 100 + i, data: { i, pad } });
      inflight.push(100 + i);
      if (inflight.length >= 2) {
        const id = inflight.shift();
        await pub.next((m) => m.type === 'ack' && m.id === id, 10000);
      }
    }
    await pub.next((m) => m.type === 'presence:leave' && m.data.user === user, 10000);
    await server.waitForLog(new RegExp(`msg="conn closed" conn=\\d+ user=${user} .*reason="slow consumer"`), 10000);
    sock.destroy();
    await assertServes(server);
  });
});

describe('the HTTP fallback across nodes and workers', () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    a = await startServer({ config: { redis: { url: redis.url }, node_id: 'sse-a' } });
    b = await startServer({ config: { redis: { url: redis.url }, node_id: 'sse-b' } });
  });
  after(async () => {
    closeAllSse();
    await closeAll();
    for (const s of [a, b]) if (s) await s.stop();
    if (redis) await redis.stop();
  });

  it('delivers a POST that reached another node than its stream, in order', async () => {
    const room = uid('x');
    const ana = await sseConnect(a.httpUrl(`/chat?user=${uid('ana')}`));
    assert.match(ana.stream, /^sse-a\./);
    const viaB = (body) => ana.post(body, { url: b.httpUrl(`/chat?transport=sse&stream=${encodeURIComponent(ana.stream)}`) });
    assert.equal(await viaB(JSON.stringify({ type: 'join', room, id: 1 })), 204);
    expectAck(await ana.next((m) => m.id === 1), 1);
    for (let i = 0; i < 5; i++) {
      assert.equal(await viaB(JSON.stringify({ type: 'chat:message', room, id: 2 + i, data: i })), 204);
    }
    const events = [];
    for (let i = 0; i < 5; i++) events.push((await ana.next('chat:message')).data);
    assert.deepEqual(events, [0, 1, 2, 3, 4], 'in the order they were posted');
    assert.equal(await metric(b, /^moonwire_sse_posts_total\{result="forwarded"\} (\d+)$/m), 6);
    const openOnA = () => metric(a, /^moonwire_connections_by_state\{state="open"\} (\d+)$/m);
    assert.equal(await openOnA(), 1);
    ana.close();
    await waitFor(async () => (await openOnA()) === 0, 3000, 'the stream gone on a');
    assert.equal(await viaB('{"type":"ping"}'), 204, 'b cannot know: fire and forget');
  });

  it('works through workers: POSTs that land on the other worker get to the stream', async () => {
    const w = await startServer({ config: { workers: 2, node_id: 'sw', redis: { url: redis.url } } });
    try {
      const room = uid('w');
      const ana = await sseConnect(w.httpUrl(`/chat?user=${uid('ana')}`));
      expectAck(await ana.request('join', { room }), 1);
      // Each POST on a new TCP connection: the kernel spreads them over both workers.
      for (let i = 0; i < 20; i++) expectAck(await ana.request('chat:message', { room, data: i }), 2 + i);
      // With Redis, a sequenced event comes back through the room's channel: it may
      // come after its ack.
      const events = () => ana.entries.filter((e) => e.msg.type === 'chat:message');
      await ana.until(() => events().length >= 20, 5000, '20 events');
      const seqs = events().map((e) => e.msg.data);
      assert.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i));
      ana.close();
    } finally {
      await w.stop();
    }
  });
});
