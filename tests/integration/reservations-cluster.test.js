// The reservations app on two nodes sharing one real Redis: racing holds split over
// the nodes, expiry announced once (also when the holder's node was killed -9), confirmed
// reservations after restarting both nodes, and holds while Redis is down or refusing
// writes. Redis keeps an append-only file, so that a Redis killed and started again
// still has what it acknowledged, and "nothing half-written" can be checked in it.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, assertPingPong, sleep, waitFor } = require('./lib/helpers');
const resv = require('./lib/reservations');

const KEY = 'resv-cluster-key';

// The data of an ack, whatever its id.
const ok = (reply, what = '') => expectAck(reply, reply.id, what);

describe('reservations on two nodes over Redis', () => {
  const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-resv-redis-'));
  let redis;
  let a;
  let b;
  const extra = []; // nodes a test started, stopped in after()

  async function startNode(name) {
    const node = await startServer({
      config: { redis: { url: redis.url }, api: { keys: [KEY] }, node_id: name },
      routes: { '/reservations': resv.route('2m'), '/quick': resv.route('1500ms') },
    });
    await node.waitForLog(/msg="redis up"/, 5000);
    return node;
  }

  const ready = async (node) => (await request('GET', node.httpUrl('/readyz'))).status === 200;

  // Holds a fresh probe table from each sender until every watcher saw its
  // reservation:created: the nodes' room subscriptions are in place both ways.
  async function crossed(room, senders, watchers) {
    for (const s of senders) {
      await waitFor(async () => {
        const table = uid('probe');
        const r = await resv.hold(s, room, table, 'probe', 1);
        expectAck(r, r.id, 'probe hold');
        const seen = () => watchers.every((w) => w.messages.some((m) =>
          m.type === 'reservation:created' && m.data.table === table));
        for (let i = 0; i < 20 && !seen(); i++) await sleep(25);
        return seen();
      }, 10000, 'events to cross the nodes');
    }
  }

  before(async () => {
    redis = await startRedis(undefined, { dir: redisDir });
    a = await startNode('node-a');
    b = await startNode('node-b');
  });
  after(async () => {
    await closeAll();
    for (const n of [a, b, ...extra]) if (n) await n.stop().catch(() => {});
    if (redis) await redis.stop();
    fs.rmSync(redisDir, { recursive: true, force: true });
  });

  it('20 racing holds split over the nodes: one winner, one reservation:created everywhere', async () => {
    const room = `venue:${uid('race')}`;
    const nodes = Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a));
    const clients = await resv.joinAll(nodes, room);
    await crossed(room, [clients[0], clients[1]], clients);
    const result = await resv.race(clients, room, { table: 't1', slot: '19:00', party: 2 });
    assert.equal(result.winners.length, 1, JSON.stringify(result.replies));
    const id = result.winners[0].data.reservation;
    await resv.assertOneEach(clients,
      (m) => m.type === 'reservation:created' && m.data.table === 't1',
      (m) => assert.equal(m.data.reservation, id));
  });

  it('a hold expires once across the cluster, whichever node takes it', async () => {
    const room = `venue:${uid('exp')}`;
    const clients = await resv.joinAll([a, b, b], room, '/quick');
    await crossed(room, [clients[0], clients[1]], clients);
    const ack = ok(await resv.hold(clients[0], room, 't1', '19:00', 2));
    await resv.assertOneEach(clients,
      (m) => m.type === 'reservation:updated' && m.data.reservation === ack.reservation,
      (m) => assert.equal(m.data.status, 'expired'), 1000);
  });

  it('the holder\'s node killed -9 before expiry: the survivor announces it once', async () => {
    const holderNode = await startNode('node-holder');
    extra.push(holderNode);
    const room = `venue:${uid('kill')}`;
    const [holder, bob, carl] = await resv.joinAll([holderNode, b, b], room, '/quick');
    await crossed(room, [holder], [bob, carl]);
    const ack = ok(await resv.hold(holder, room, 't1', '19:00', 2));
    holderNode.process.kill('SIGKILL');
    await waitFor(() => !holderNode.alive(), 5000, 'the holder\'s node to die');
    assert.ok(Date.now() < ack.expires_at, 'killed before the hold expired');
    await resv.assertOneEach([bob, carl],
      (m) => m.type === 'reservation:updated' && m.data.reservation === ack.reservation,
      (m) => assert.equal(m.data.status, 'expired'), 1000);
    await bob.next({ type: 'table:status_changed', data: { table: 't1', slot: '19:00', status: 'free' } });
    ok(await resv.hold(bob, room, 't1', '19:00', 2), 'the table is free');
    assert.equal(holderNode.exitStatus().signal, 'SIGKILL');
  });

  it('confirmed reservations are still there after both nodes restart', async () => {
    const venue = uid('restart');
    const room = `venue:${venue}`;
    const user = uid('ana');
    const ana = await connect(a.url(`/reservations?user=${user}`));
    expectAck(await ana.request('join', { room }), 1);
    const held = expectAck(await resv.hold(ana, room, 't1', '19:00', 2), 2);
    expectAck(await resv.act(ana, 'confirm', room, held.reservation), 3);
    const open = expectAck(await resv.hold(ana, room, 't2', '19:00', 2), 4);
    await a.stop();
    await b.stop();
    a = await startNode('node-a');
    b = await startNode('node-b');

    const again = await connect(b.url(`/reservations?user=${user}`));
    const snap = expectAck(await again.request('join', { room }), 1);
    assert.deepEqual(snap.tables, [
      { table: 't1', slots: { '19:00': 'reserved' } },
      { table: 't2', slots: { '19:00': 'held' } },
    ]);
    const mine = expectAck(await again.request('reservation:mine', { room }), 2);
    assert.deepEqual(mine.reservations.map((r) => [r.reservation, r.status]),
      [[held.reservation, 'confirmed'], [open.reservation, 'held']]);
    const api = await request('GET', a.httpUrl(`/api/venues/${venue}`),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(api.status, 200);
    assert.deepEqual(api.json.tables, snap.tables);
    // The hold made before the restart can still be confirmed by its holder.
    const done = expectAck(await resv.act(again, 'confirm', room, open.reservation), 3);
    assert.equal(done.status, 'confirmed');
  });

  it('a hold while Redis refuses writes or is down: unavailable, nothing half-written', async () => {
    const venue = uid('down');
    const room = `venue:${venue}`;
    const [ana] = await resv.joinAll([a], room);
    const hashKey = `mw:s:resv:venue:${venue}`;
    const queued = () => redis.cli('ZRANGE', 'mw:s:resv:expiry', '0', '-1').split('\n')
      .filter((item) => item.includes(venue));

    redis.cli('CONFIG', 'SET', 'maxmemory', '1');
    try {
      expectError(await resv.hold(ana, room, 't1', '19:00', 2), 'unavailable', 2);
    } finally {
      redis.cli('CONFIG', 'SET', 'maxmemory', '0');
    }
    assert.equal(redis.cli('EXISTS', hashKey), '0');
    assert.deepEqual(queued(), []);

    const port = redis.port;
    await redis.stop();
    await waitFor(async () => !(await ready(a)), 5000, 'node a to see Redis down');
    expectError(await resv.hold(ana, room, 't1', '19:00', 2), 'unavailable', 3);
    expectError(await ana.request('reservation:mine', { room }), 'unavailable', 4);
    await assertPingPong(ana, 'the connection still works');
    redis = await startRedis(port, { dir: redisDir });
    await waitFor(async () => (await ready(a)) && (await ready(b)), 15000, 'both nodes back');
    assert.equal(redis.cli('EXISTS', hashKey), '0', 'no reservation was written');
    assert.deepEqual(queued(), [], 'no expiry was queued');
    const ack = ok(await resv.hold(ana, room, 't1', '19:00', 2));
    assert.match(ack.reservation, /^t1\/19:00\//);
  });
});
