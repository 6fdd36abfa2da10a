// Delivery guarantees across nodes (issue 5, SPEC sections 4, 6 and 7): with Redis, a
// room's seq is cluster-wide and its history lives in a Redis Stream, so a client
// dropped on one node recovers on another with no gap and no duplicate, and history
// survives a node restart. Two real moonwire nodes and one real redis-server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectError, waitFor, sleep } = require('./lib/helpers');

// The ack's data; request() numbers the ids itself.
function expectAck(msg) {
  assert.equal(msg.type, 'ack', `expected an ack, got ${JSON.stringify(msg)}`);
  return msg.data;
}

const KEY = 'history-cluster-key';
const ROUTES = {
  '/small': { script: 'app:chat', history: { size: 5 } },
  '/brief': { script: 'app:chat', history: { size: 100, ttl: '300ms' } },
};

describe('history and sync across nodes', () => {
  let redis;
  let a;
  let b;
  const ready = async (node) => (await request('GET', node.httpUrl('/readyz'))).status;
  const startNode = async (id) => {
    const node = await startServer({ config: { redis: { url: redis.url }, node_id: id, api: { keys: [KEY] } }, routes: ROUTES });
    await waitFor(async () => (await ready(node)) === 200, 5000, `${id} ready`);
    return node;
  };

  before(async () => {
    redis = await startRedis();
    a = await startNode('node-a');
    b = await startNode('node-b');
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (b) await b.stop();
    if (redis) await redis.stop();
  });

  const publishApi = (node, body) => request('POST', node.httpUrl('/api/publish'),
    { headers: { authorization: `Bearer ${KEY}` }, body });

  // Joins `room` on `node` as a new user and waits until both nodes deliver the room.
  const member = async (node, room, path = '/chat') => {
    const c = await connect(node.url(`${path}?user=${uid('u')}`));
    const ack = expectAck(await c.request('join', { room }));
    return { c, ack };
  };
  const subscribed = (room, n) => waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:room:${room}`).endsWith(String(n)),
    3000, `${n} node(s) subscribed to ${room}`);

  it('numbers a room\'s messages once for the whole cluster, in one order everywhere', async () => {
    const room = uid('seq');
    const ana = await member(a, room);
    const bob = await member(b, room);
    await subscribed(room, 2);
    const N = 20;
    // Both nodes publish at once, interleaved.
    for (let i = 0; i < N; i++) {
      ana.c.send({ type: 'chat:message', room, data: { from: 'a', i } });
      bob.c.send({ type: 'chat:message', room, data: { from: 'b', i } });
    }
    const seen = [];
    for (const x of [ana, bob]) {
      const got = [];
      for (let i = 0; i < 2 * N; i++) got.push(await x.c.next({ type: 'chat:message', room }, 3000));
      seen.push(got);
    }
    const seqs = seen[0].map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: 2 * N }, (_, i) => i + 1), 'one gapless sequence from 1');
    assert.deepEqual(seen[1].map((m) => m.seq), seqs, 'node b delivers in the same order');
    assert.deepEqual(seen[1].map((m) => m.data), seen[0].map((m) => m.data), 'the same events');
    for (const from of ['a', 'b']) {
      assert.deepEqual(seen[0].filter((m) => m.data.from === from).map((m) => m.data.i),
        Array.from({ length: N }, (_, i) => i), `node ${from}'s messages keep their order`);
    }
    assert.ok(seen[0].every((m) => typeof m.ts === 'number' && m.ts > 0), 'every event has ts');
    // The join of a third member, on either node, returns the same history and seq.
    const carl = await member(b, room);
    assert.equal(carl.ack.seq, 2 * N);
    assert.equal(carl.ack.epoch, ana.ack.epoch, 'one epoch for the room on both nodes');
    assert.deepEqual(carl.ack.history.map((m) => m.seq), seqs);
    assert.equal(redis.cli('XLEN', `mw:h:{${room}}`), String(2 * N), 'history is a Redis Stream');
  });

  it('recovers a connection dropped mid-stream on the other node: no gap, no duplicate', async () => {
    const room = uid('drop');
    const pub = await member(a, room);
    let reader = await member(b, room);
    const user = reader.c.user;
    const epoch = reader.ack.epoch;
    await subscribed(room, 2);
    const got = [];
    for (let i = 0; i < 8; i++) pub.c.send({ type: 'chat:message', room, data: i });
    for (let i = 0; i < 5; i++) got.push(await reader.c.next({ type: 'chat:message', room }, 3000));
    reader.c.ws.terminate(); // the network drops it mid-stream
    for (let i = 8; i < 15; i++) expectAck(await pub.c.request('chat:message', { room, data: i }));
    // It comes back through the load balancer, on the other node.
    reader = { c: await connect(a.url(`/chat?user=${user}`)) };
    expectAck(await reader.c.request('join', { room }));
    const last = got[got.length - 1].seq;
    const s = expectAck(await reader.c.request('sync', { room, data: { since: last, epoch } }));
    assert.equal(s.reset, false);
    assert.equal(s.epoch, epoch);
    assert.equal(s.seq, 15);
    const all = got.concat(s.messages);
    assert.deepEqual(all.map((m) => m.data), Array.from({ length: 15 }, (_, i) => i), 'no gap, no duplicate');
    assert.deepEqual(all.map((m) => m.seq), Array.from({ length: 15 }, (_, i) => i + 1));
    // Live events go on from there.
    expectAck(await pub.c.request('chat:message', { room, data: 15 }));
    assert.equal((await reader.c.next({ type: 'chat:message', room }, 3000)).seq, 16);
    // A backend's POST /api/publish on the node without members takes the next seq too.
    const res = await publishApi(b, { room, type: 'announce', data: 'via api' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { seq: 17, delivered: 0 });
    const ev = await reader.c.next({ type: 'announce', room }, 3000);
    assert.equal(ev.seq, 17);
    assert.equal(ev.data, 'via api');
    const s2 = expectAck(await reader.c.request('sync', { room, data: { since: 15, epoch } }));
    assert.deepEqual(s2.messages.map((m) => m.seq), [16, 17], 'kept in the same history');
  });

  it('keeps history and seq across a node restart', async () => {
    const room = uid('restart');
    let reader = await member(a, room);
    const user = reader.c.user;
    const pub = await member(b, room);
    await subscribed(room, 2);
    for (let i = 0; i < 3; i++) expectAck(await pub.c.request('chat:message', { room, data: i }));
    let last = 0;
    for (let i = 0; i < 3; i++) last = (await reader.c.next({ type: 'chat:message', room }, 3000)).seq;
    assert.equal(last, 3);

    await a.stop(); // node a goes away (deploy, crash); its clients lose their connection
    for (let i = 3; i < 9; i++) expectAck(await pub.c.request('chat:message', { room, data: i }));
    a = await startNode('node-a');

    reader = { c: await connect(a.url(`/chat?user=${user}`)) };
    const j = expectAck(await reader.c.request('join', { room }));
    assert.equal(j.seq, 9);
    assert.equal(j.epoch, pub.ack.epoch, 'the same epoch: history survived');
    assert.deepEqual(j.history.map((m) => m.data), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const s = expectAck(await reader.c.request('sync', { room, data: { since: last, epoch: j.epoch } }));
    assert.equal(s.reset, false);
    assert.deepEqual(s.messages.map((m) => m.data), [3, 4, 5, 6, 7, 8]);
    // The restarted node numbers on from Redis, not from 1.
    expectAck(await reader.c.request('chat:message', { room, data: 'back' }));
    assert.equal((await pub.c.next((m) => m.type === 'chat:message' && m.data === 'back', 3000)).seq, 10);
  });

  it('says reset when the room\'s history was deleted from Redis (a new epoch)', async () => {
    const room = uid('lost');
    const x = await member(a, room);
    for (let i = 0; i < 3; i++) expectAck(await x.c.request('chat:message', { room, data: i }));
    redis.cli('DEL', `mw:hm:{${room}}`, `mw:h:{${room}}`); // as after a Redis restart without persistence
    const s = expectAck(await x.c.request('sync', { room, data: { since: 3, epoch: x.ack.epoch } }));
    assert.equal(s.reset, true, 'the epoch changed');
    assert.notEqual(s.epoch, x.ack.epoch);
    assert.equal(s.seq, 0);
    const m = expectAck(await x.c.request('chat:message', { room, data: 'new' }));
    assert.equal(m.seq, 1, 'a new epoch numbers from 1');
  });

  it('trims history to history.size and by history.ttl, in Redis', async () => {
    const room = uid('trim');
    const x = await member(a, room, '/small');
    for (let i = 0; i < 10; i++) expectAck(await x.c.request('chat:message', { room, data: i }));
    assert.equal(redis.cli('XLEN', `mw:h:{${room}}`), '5', 'the stream is trimmed to history.size');
    const trimmed = expectAck(await x.c.request('sync', { room, data: { since: 2, epoch: x.ack.epoch } }));
    assert.equal(trimmed.reset, true, 'seq 3..5 are gone');
    assert.deepEqual(trimmed.messages.map((m) => m.seq), [6, 7, 8, 9, 10]);
    const kept = expectAck(await x.c.request('sync', { room, data: { since: 5, epoch: x.ack.epoch } }));
    assert.equal(kept.reset, false);
    assert.deepEqual(kept.messages.map((m) => m.seq), [6, 7, 8, 9, 10]);
    const ttl = Number(redis.cli('PTTL', `mw:h:{${room}}`));
    assert.ok(ttl > 0 && ttl <= 24 * 3600 * 1000, `the stream expires (${ttl} ms)`);

    const room2 = uid('ttl');
    const y = await member(b, room2, '/brief');
    expectAck(await y.c.request('chat:message', { room: room2, data: 'old' }));
    await sleep(400);
    const s = expectAck(await y.c.request('sync', { room: room2, data: { since: 0, epoch: y.ack.epoch } }));
    assert.deepEqual(s.messages, [], 'older than history.ttl');
    assert.equal(s.reset, true);
    expectAck(await y.c.request('chat:message', { room: room2, data: 'new' }));
    assert.equal(redis.cli('XLEN', `mw:h:{${room2}}`), '1', 'the expired entry was trimmed by the next publish');
  });

  it('refuses a since ahead of the room, and says unavailable while Redis is down', async () => {
    const room = uid('bad');
    const x = await member(a, room);
    const y = await member(a, room);
    expectAck(await x.c.request('chat:message', { room, data: 1 }));
    const e = await x.c.request('sync', { room, data: { since: 5, epoch: x.ack.epoch } });
    expectError(e, 'bad_message', e.id);
    assert.match(e.message, /ahead of the room/);

    const port = redis.port;
    await redis.stop();
    await waitFor(async () => (await ready(a)) === 503, 3000, 'node a sees Redis down');
    const down = await x.c.request('sync', { room, data: { since: 1, epoch: x.ack.epoch } });
    expectError(down, 'unavailable', down.id);
    const refused = await publishApi(a, { room, type: 'announce', data: 'x' });
    assert.equal(refused.status, 503, 'the HTTP API publishes nothing while Redis is down');
    assert.equal(refused.json.error, 'unavailable');
    // The room still works on this node: events without seq, not kept.
    const ack = expectAck(await x.c.request('chat:message', { room, data: 'local' }));
    assert.equal(ack.seq, undefined, 'not sequenced while Redis is down');
    const ev = await y.c.next((m) => m.type === 'chat:message' && m.data === 'local', 2000);
    assert.equal(ev.seq, undefined);
    assert.equal(typeof ev.ts, 'number');

    // This Redis keeps nothing on disk: it comes back empty, the room's history is gone.
    redis = await startRedis(port);
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 15000, 'both nodes back');
    for (const c of [x.c, y.c]) {
      assert.equal((await c.next({ type: 'resync', room }, 3000)).room, room,
        'members are told they may have missed events');
    }
    const after = expectAck(await x.c.request('chat:message', { room, data: 'after' }));
    assert.equal(after.seq, 1, 'a new epoch numbers from 1');
    const s = expectAck(await x.c.request('sync', { room, data: { since: 1, epoch: x.ack.epoch } }));
    assert.equal(s.reset, true, 'the client is told its history is gone');
    assert.notEqual(s.epoch, x.ack.epoch);
    assert.deepEqual(s.messages.map((m) => m.data), ['after']);
  });
});
