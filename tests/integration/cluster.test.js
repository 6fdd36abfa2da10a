// Clustering over Redis (SPEC section 7): two moonwire nodes and one real
// redis-server, each started on free loopback ports. Rooms, presence and typing
// events and send_user cross nodes; a Redis outage keeps local rooms working,
// /readyz reports it, and cross-node delivery recovers after Redis returns.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, assertServes, waitFor } = require('./lib/helpers');

const KEY = 'cluster-test-key';
const NOTIFY = `
local mw = require "moonwire"
local app = mw.app()
app:on("poke", function(conn, msg)
  return mw.send_user(msg.data.user, { type = "poked", data = { by = conn.user } })
end)
return app
`;
// Not idempotent: each run adds one (the session window must keep a resend from it).
const COUNT = `
local mw = require "moonwire"
local app = mw.app()
app:on("bump", function(conn, msg)
  return (mw.store.incr(msg.data.key, 1, 0))
end)
return app
`;

describe('two nodes over one Redis', () => {
  let redis;
  let a;
  let b;
  const ready = async (node) => (await request('GET', node.httpUrl('/readyz'))).status;

  before(async () => {
    redis = await startRedis();
    const config = { redis: { url: redis.url }, api: { keys: [KEY] } };
    const routes = { '/notify': { script: 'notify.lua' }, '/count': { script: 'count.lua' } };
    const scripts = { 'notify.lua': NOTIFY, 'count.lua': COUNT };
    a = await startServer({ config: { ...config, node_id: 'node-a' }, routes, scripts });
    b = await startServer({ config: { ...config, node_id: 'node-b' }, routes, scripts });
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 5000, 'both nodes ready');
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (b) await b.stop();
    if (redis) await redis.stop();
  });

  it('delivers chat, presence and typing across nodes exactly once, in publish order', async () => {
    const room = uid('x');
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    assert.equal(ana.hello.data.node, 'node-a');
    assert.equal(bob.hello.data.node, 'node-b');
    expectAck(await ana.request('join', { room }), 1);
    expectAck(await bob.request('join', { room }), 1);
    const pj = await ana.next({ type: 'presence:join', room }, 3000);
    assert.equal(pj.data.user, bob.user);

    const N = 50;
    for (let i = 0; i < N; i++) ana.send({ type: 'chat:message', room, data: { i } });
    const got = [];
    for (let i = 0; i < N; i++) got.push((await bob.next({ type: 'chat:message', room }, 3000)).data.i);
    assert.deepEqual(got, [...Array(N).keys()], 'every message once, in order');
    const extra = await bob.collect((m) => m.type === 'chat:message', 300);
    assert.equal(extra.length, 0, 'no duplicates');
    const own = await ana.collect((m) => m.type === 'chat:message', 300);
    assert.equal(own.length, N, 'the sender gets its own messages once, not again via Redis');

    bob.send({ type: 'typing:start', room });
    const typing = await ana.next({ type: 'typing', room }, 3000);
    assert.deepEqual(typing.data, { user: bob.user, typing: true });
    const echo = await bob.collect((m) => m.type === 'typing', 300);
    assert.equal(echo.length, 0, 'the typer does not get its own typing event back');

    await bob.close();
    const left = await ana.next({ type: 'presence:leave', room }, 3000);
    assert.equal(left.data.user, bob.user);
  });

  it('reaches every connection of a user on any node with send_user', async () => {
    const target = uid('zoe');
    const t1 = await connect(a.url(`/notify?user=${target}`));
    const t2 = await connect(b.url(`/notify?user=${target}`));
    const poker = await connect(a.url(`/notify?user=${uid('pat')}`));
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:user:${target}`).endsWith('2'), 3000,
      'both nodes subscribed to the user');
    const ack = await poker.request('poke', { data: { user: target } });
    expectAck(ack, 1);
    assert.equal(ack.data, 1, 'one local connection on node a');
    assert.equal((await t1.next({ type: 'poked' }, 3000)).data.by, poker.user);
    assert.equal((await t2.next({ type: 'poked' }, 3000)).data.by, poker.user);
  });

  it('publishes from the HTTP API of one node to members on the other', async () => {
    const room = uid('news');
    const reader = await connect(b.url(`/chat?user=${uid('r')}`));
    expectAck(await reader.request('join', { room }), 1);
    // node a has no member in the room: the event still reaches node b's members.
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:room:${room}`).endsWith('1'), 3000,
      'node b subscribed to the room');
    const res = await request('POST', a.httpUrl('/api/publish'), {
      headers: { authorization: `Bearer ${KEY}` }, body: { room, type: 'news', data: { n: 1 } },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.delivered, 0, 'no local member on node a');
    const ev = await reader.next({ type: 'news' }, 3000);
    assert.deepEqual(ev.data, { n: 1 });
    assert.equal(ev.room, room);
  });

  it('closes a user\'s connections on every node with POST /api/disconnect', async () => {
    const user = uid('dee');
    const onA = await connect(a.url(`/chat?user=${user}`));
    const onB = await connect(b.url(`/chat?user=${user}`));
    const other = await connect(b.url(`/chat?user=${uid('ole')}`));
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:user:${user}`).endsWith('2'), 3000,
      'both nodes subscribed to the user');
    const res = await request('POST', a.httpUrl('/api/disconnect'), {
      headers: { authorization: `Bearer ${KEY}` }, body: { user },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.closed, 1, 'closed counts the receiving node\'s connections');
    for (const c of [onA, onB]) {
      const info = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r(null), 3000))]);
      assert.ok(info, 'closed on both nodes');
      assert.equal(info.code, 4003);
      assert.equal(info.reason, 'disconnected by server');
    }
    assert.ok(other.isOpen, 'another user keeps its connection');
    await a.waitForLog(/msg="api disconnect"/);
    const bad = await request('POST', a.httpUrl('/api/disconnect'), {
      headers: { authorization: `Bearer ${KEY}` }, body: { user: 'a\nb' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error, 'bad_message');
    assert.match(bad.json.message, /control characters/);
  });

  it('refuses user ids with control characters, and payloads that are no broker payload', async () => {
    // The old newline-separated payload head let such an id shift the fields on other
    // nodes. (libwebsockets cuts a query argument at a decoded newline: %01 gets through.)
    const c = await connect(a.url('/chat?user=a%01b'));
    const e = await c.next('error', 2000);
    expectError(e, 'bad_message', undefined);
    assert.match(e.message, /control characters/);
    assert.equal((await c.closed).code, 1008);
    await a.waitForLog(/msg="bad user id"/);

    const room = uid('garbage');
    const m = await connect(b.url(`/chat?user=${uid('mo')}`));
    expectAck(await m.request('join', { room }), 1);
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:room:${room}`).endsWith('1'), 3000,
      'node b subscribed to the room');
    for (const junk of ['node\n0\n\n{"type":"x"}', 'mw1:1:e,99:n', '']) {
      redis.cli('PUBLISH', `mw:room:${room}`, junk);
    }
    await b.waitForLog(/msg="broker payload refused"/, 3000);
    const metrics = (await request('GET', b.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_broker_bad_payloads_total [1-9]/m);
    const extra = await m.collect((x) => x.type !== 'presence:join', 300);
    assert.deepEqual(extra, [], 'nothing of it reached a member');
    await assertServes(b);
  });

  it('answers a message resent on another node in the same session once, with its first reply', async () => {
    const room = uid('move');
    const user = uid('mia');
    const session = uid('s').replace(/-/g, '_');
    const watcher = await connect(b.url(`/chat?user=${uid('wat')}`));
    expectAck(await watcher.request('join', { room }), 1);
    const first = await connect(a.url(`/chat?user=${user}&session=${session}`));
    expectAck(await first.request('join', { room }), 1);
    const sent = { type: 'chat:message', room, id: 'm-1', data: { text: 'once' } };
    first.send(sent);
    const ack = await first.next({ type: 'ack', id: 'm-1' }, 3000);
    assert.equal(typeof ack.data.seq, 'number');
    await first.close();
    // The client moves to node b (its node went away) and resends what it sent last.
    const moved = await connect(b.url(`/chat?user=${user}&session=${session}`));
    moved.nextId = 100; // ids are the session's: the first connection used 1
    expectAck(await moved.request('join', { room }), 100);
    moved.send(sent);
    const again = await moved.next({ type: 'ack', id: 'm-1' }, 3000);
    assert.deepEqual(again.data, ack.data, 'the first reply, from the cluster\'s window');
    const got = await watcher.collect((m) => m.type === 'chat:message' && m.room === room, 500);
    assert.equal(got.length, 1, 'published once');
    assert.equal(got[0].seq, ack.data.seq);
    assert.match(redis.cli('HGET', `mw:sw:{${user}\x1f${session}}`, 's:m-1'), /^d\{"type":"ack"/);
    // A new id in the same session runs.
    moved.send({ type: 'chat:message', room, id: 'm-2', data: { text: 'next' } });
    assert.equal((await moved.next({ type: 'ack', id: 'm-2' }, 3000)).data.seq, ack.data.seq + 1);

    // A handler that is not idempotent: the window alone keeps the resend from running.
    const key = uid('bumps');
    const c1 = await connect(a.url(`/count?user=${user}&session=${session}`));
    c1.send({ type: 'bump', id: 'b-1', data: { key } });
    assert.equal((await c1.next({ type: 'ack', id: 'b-1' }, 3000)).data, 1);
    await c1.close();
    const c2 = await connect(b.url(`/count?user=${user}&session=${session}`));
    c2.send({ type: 'bump', id: 'b-1', data: { key } });
    assert.equal((await c2.next({ type: 'ack', id: 'b-1' }, 3000)).data, 1, 'the first reply');
    c2.send({ type: 'bump', id: 'b-2', data: { key } });
    assert.equal((await c2.next({ type: 'ack', id: 'b-2' }, 3000)).data, 2, 'counted once, then once more');
  });

  it('keeps local rooms working while Redis is down, reports it, and recovers', async () => {
    const room = uid('outage');
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    const amy = await connect(a.url(`/chat?user=${uid('amy')}`));
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    for (const c of [ana, amy, bob]) expectAck(await c.request('join', { room }), 1);
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:room:${room}`).endsWith('2'), 3000,
      'both nodes subscribed');
    const port = redis.port;
    await redis.stop();
    await waitFor(async () => (await ready(a)) === 503, 3000, '/readyz 503 while Redis is down');
    await a.waitForLog(/msg="redis down"/);

    ana.send({ type: 'chat:message', room, data: 'local only' });
    assert.equal((await amy.next({ type: 'chat:message', room }, 2000)).data, 'local only',
      'a local room keeps working');

    redis = await startRedis(port);
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 15000,
      'both nodes back (reconnect with backoff, rooms resubscribed)');
    const metrics = (await request('GET', a.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_redis_up 1$/m);
    assert.match(metrics, /^moonwire_redis_transitions_total\{to="down"\} [1-9]/m);
    assert.match(metrics, /^moonwire_broker_dropped_total [1-9]/m, 'the message published while down was counted');

    ana.send({ type: 'chat:message', room, data: 'after' });
    const m = await bob.next((x) => x.type === 'chat:message' && x.data === 'after', 3000);
    assert.equal(m.room, room, 'cross-node delivery recovered without rejoining');
  });
});

describe('redis config errors', () => {
  it('refuses an unsupported redis URL at start with a clear message', async () => {
    await assert.rejects(
      startServer({ config: { redis: { url: 'rediss://127.0.0.1:1' } } }),
      /TLS \(rediss:\/\/\) is not supported/,
    );
  });
});

describe('presence across nodes', () => {
  let redis;
  let a;
  let b;
  const heartbeat = { interval: '1s', timeout: '1s' }; // registry refresh every 500 ms
  before(async () => {
    redis = await startRedis();
    const config = { redis: { url: redis.url }, heartbeat, api: { keys: [KEY] } };
    a = await startServer({ config: { ...config, node_id: 'pa' } });
    b = await startServer({ config: { ...config, node_id: 'pb' } });
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (b) await b.stop();
    if (redis) await redis.stop();
  });

  it('lists members of every node, and counts a user on two nodes once', async () => {
    const room = uid('p');
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    expectAck(await ana.request('join', { room, data: { name: 'Ana' } }), 1);
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    const ack = await bob.request('join', { room });
    expectAck(ack, 1);
    const users = ack.data.members.map((m) => m.user).sort();
    assert.deepEqual(users, [ana.user, bob.user].sort(), 'the join ack lists node a\'s member');
    assert.equal(ack.data.members.find((m) => m.user === ana.user).name, 'Ana', 'with metadata');

    const zoe = uid('zoe');
    const z1 = await connect(a.url(`/chat?user=${zoe}`));
    const z2 = await connect(b.url(`/chat?user=${zoe}`));
    expectAck(await z1.request('join', { room }), 1);
    expectAck(await z2.request('join', { room }), 1);
    const joins = (await ana.collect((m) => m.type === 'presence:join' && m.data.user === zoe, 500));
    assert.equal(joins.length, 1, 'one presence:join for a user on two nodes');
    const list = await ana.request('presence:list', { room });
    const zm = list.data.members.find((m) => m.user === zoe);
    assert.equal(zm.conns, 2, 'conns counts both nodes');
    assert.equal(list.data.count, 3, 'ana, bob and zoe');
    const api = await request('GET', b.httpUrl(`/api/rooms/${encodeURIComponent(room)}/presence`),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(api.status, 200, api.text);
    assert.equal(api.json.count, 3, 'the HTTP API counts every node\'s members');
    assert.deepEqual(api.json.members.map((m) => m.user).sort(), [ana.user, bob.user, zoe].sort());
    assert.equal(api.json.members.find((m) => m.user === zoe).conns, 2);
    // Answered later (after Redis), so also on a kept-alive connection, twice in a row.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 2; i++) {
        const got = await new Promise((resolve, reject) => {
          const req = http.get(b.httpUrl(`/api/rooms/${encodeURIComponent(room)}/presence`),
            { agent, timeout: 3000, headers: { authorization: `Bearer ${KEY}` } }, (res) => {
              let text = '';
              res.on('data', (d) => { text += d; });
              res.on('end', () => resolve({ status: res.statusCode, count: JSON.parse(text).count, reused: req.reusedSocket }));
            });
          req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
          req.on('error', reject);
        });
        assert.deepEqual(got, { status: 200, count: 3, reused: i === 1 });
      }
    } finally {
      agent.destroy();
    }

    await z1.close();
    const early = await ana.collect((m) => m.type === 'presence:leave' && m.data.user === zoe, 500);
    assert.equal(early.length, 0, 'still present through node b');
    await z2.close();
    const left = await ana.next((m) => m.type === 'presence:leave' && m.data.user === zoe, 3000);
    assert.equal(left.room, room);
  });

  it('removes a killed node\'s members within a few heartbeats, announced once', async () => {
    const room = uid('k');
    const c = await startServer({ config: { redis: { url: redis.url }, heartbeat, node_id: 'pc' } });
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    expectAck(await ana.request('join', { room }), 1);
    expectAck(await bob.request('join', { room }), 1);
    const carl = await connect(c.url(`/chat?user=${uid('carl')}`));
    expectAck(await carl.request('join', { room }), 1);
    await ana.next((m) => m.type === 'presence:join' && m.data.user === carl.user, 3000);
    await bob.next((m) => m.type === 'presence:join' && m.data.user === carl.user, 3000);

    const t0 = Date.now();
    c.process.kill('SIGKILL');
    const left = await ana.next((m) => m.type === 'presence:leave' && m.data.user === carl.user, 8000);
    assert.equal(left.room, room);
    await bob.next((m) => m.type === 'presence:leave' && m.data.user === carl.user, 3000);
    const took = Date.now() - t0;
    assert.ok(took < 6000, `gone within a few heartbeats (${took} ms)`);
    const dup = await ana.collect((m) => m.type === 'presence:leave' && m.data.user === carl.user, 1000);
    assert.equal(dup.length, 0, 'one cleaner: the leave is announced once');
    const list = await ana.request('presence:list', { room });
    assert.deepEqual(list.data.members.map((m) => m.user).sort(), [ana.user, bob.user].sort());
    await c.stop().catch(() => {}); // already dead: only the temp dir is left to remove
  });
});
