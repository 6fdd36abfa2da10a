// Redis Cluster (SPEC section 7): a real 3-master cluster and two moonwire nodes with
// `redis: { cluster: [...] }` (one of them given a single seed), all on free loopback
// ports. Rooms whose slots are on different masters carry chat across the nodes
// (sharded pub/sub), presence works across nodes, send_user reaches the other node, a
// room's slot moved to another master mid-test (ASK while its keys are migrating, then
// the resubscription) keeps its messages flowing both ways, a third node with a stale
// table follows a MOVED, and a master killed and restarted empty takes only its own
// slots down and comes back with presence and registry rebuilt.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { startRedisCluster, keySlot } = require('./lib/redis-cluster');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, waitFor } = require('./lib/helpers');

const KEY = 'redis-cluster-test-key';

const NOTIFY = `
local mw = require "moonwire"
local app = mw.app()
app:on("poke", function(conn, msg)
  return mw.send_user(msg.data.user, { type = "poked", data = { by = conn.user } })
end)
app:on("store", function(conn, msg)
  local d = msg.data
  if d.op == "set" then return mw.store.set(d.key, d.value) end
  if d.op == "get" then return mw.store.get(d.key) end
  if d.op == "incr" then return mw.store.incr(d.key, 1, 0) end
  if d.op == "raw" then return mw.redis.call("GET", "mw:s:" .. d.key) end
  if d.op == "hcas" then return (mw.store.hcas(d.key, "f", nil, d.value)) end
  if d.op == "schedule" then return mw.store.schedule(d.key, d.value, 0) end
  if d.op == "due" then return mw.store.due(d.key) end
end)
return app
`;
const SANITIZER_REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;

// A fresh room name whose slot (its channel is mw:room:{room}) is in [start, end].
function roomIn(range, prefix) {
  for (;;) {
    const room = uid(prefix);
    const slot = keySlot(room);
    if (slot >= range.start && slot <= range.end) return { room, slot };
  }
}

// The line `msg="redis ..."` with key=value fields of node's log, e.g. ('moved', {slot: 5}).
function logged(node, msg, fields = {}) {
  const want = Object.entries(fields).map(([k, v]) => ` ${k}=${v}( |$)`);
  return node.logs().split('\n').some((l) => l.includes(`msg="redis ${msg}"`) &&
    want.every((re) => new RegExp(re).test(l)));
}

describe('two nodes over a 3-master Redis Cluster', () => {
  let rc;
  let a;
  let b;
  let c;
  const ready = async (node) => (await request('GET', node.httpUrl('/readyz'))).status;
  const shardSubscribers = async (port, channel) =>
    Number((await rc.cli(port, 'PUBSUB', 'SHARDNUMSUB', channel)).split('\n')[1]);
  const topologyLines = (node) => node.logs().split('\n').filter((l) => /msg="redis cluster topology"/.test(l));

  // Ana on node a and Bob on node b in `room`, each seeing the other's presence.
  async function pair(room, meta) {
    const ana = await connect(a.url(`/chat?user=${uid('ana')}`));
    const bob = await connect(b.url(`/chat?user=${uid('bob')}`));
    expectAck(await ana.request('join', { room, data: meta }), 1);
    const ack = expectAck(await bob.request('join', { room }), 1);
    await ana.next({ type: 'presence:join', room }, 3000);
    return { ana, bob, ack };
  }

  // n messages each way, every one once and in order on the other node.
  async function exchange(room, ana, bob, n, tag) {
    for (let i = 0; i < n; i++) ana.send({ type: 'chat:message', room, data: { tag, i } });
    for (let i = 0; i < n; i++) bob.send({ type: 'chat:message', room, data: { tag, j: i } });
    const got = [];
    for (let i = 0; i < n; i++) got.push((await bob.next((m) => m.type === 'chat:message' && m.data.tag === tag && 'i' in m.data, 3000)).data.i);
    const back = [];
    for (let i = 0; i < n; i++) back.push((await ana.next((m) => m.type === 'chat:message' && m.data.tag === tag && 'j' in m.data, 3000)).data.j);
    assert.deepEqual(got, [...Array(n).keys()], `${room}: a -> b, every message once, in order`);
    assert.deepEqual(back, [...Array(n).keys()], `${room}: b -> a, every message once, in order`);
  }

  before(async () => {
    rc = await startRedisCluster({ masters: 3 });
    const routes = { '/notify': { script: 'notify.lua' }, '/inbox': { script: 'app:notify' } };
    const scripts = { 'notify.lua': NOTIFY };
    // Node a knows every master; node b one seed only and must discover the others.
    const config = { api: { keys: [KEY] }, log: { level: 'debug' } };
    a = await startServer({ config: { ...config, node_id: 'rca', redis: { cluster: rc.urls } }, routes, scripts });
    b = await startServer({ config: { ...config, node_id: 'rcb', redis: { cluster: [rc.urls[1]] } }, routes, scripts });
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 10000, 'both nodes ready');
  });
  after(async () => {
    await closeAll();
    const logs = [];
    for (const node of [a, b, c]) {
      if (!node) continue;
      const exit = await node.stop();
      logs.push(node.logs());
      assert.deepEqual(exit, { code: 0, signal: null }, `clean exit; log:\n${node.logs().slice(-3000)}`);
    }
    if (rc) await rc.stop();
    for (const text of logs) assert.doesNotMatch(text, SANITIZER_REPORT);
  });

  it('finds every master from a single seed', async () => {
    for (const node of [a, b]) {
      const line = await node.waitForLog(/msg="redis cluster topology"/, 3000);
      assert.match(line, /masters=3 covered_slots=16384/);
      await node.waitForLog(/msg="redis up" masters=3/, 3000);
    }
    const metrics = (await request('GET', b.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_redis_up 1$/m);
    // The test's own CRC16 agrees with Redis (it picks the rooms below).
    for (const key of ['123456789', 'mw:room:{lobby}', uid('k')]) {
      assert.equal(Number(await rc.cli(rc.ports[0], 'CLUSTER', 'KEYSLOT', key)), keySlot(key), key);
    }
    assert.equal(keySlot('123456789'), 12739);
  });

  it('delivers chat across nodes in rooms on every master, once and in order', async () => {
    const ranges = await rc.slots();
    assert.equal(new Set(ranges.map((r) => r.port)).size, 3, 'three masters serve slots');
    for (const range of ranges) {
      const { room } = roomIn(range, 'm');
      const { ana, bob } = await pair(room);
      const channel = `mw:room:{${room}}`;
      // Sharded: both nodes subscribed on the master of the room's slot, nowhere else.
      await waitFor(async () => (await shardSubscribers(range.port, channel)) === 2, 3000,
        `both nodes SSUBSCRIBEd on port ${range.port}`);
      for (const port of rc.ports.filter((p) => p !== range.port)) {
        assert.equal((await rc.cli(port, 'PUBSUB', 'SHARDCHANNELS', channel)), '', `not on port ${port}`);
      }
      await exchange(room, ana, bob, 20, room);
      const extra = await bob.collect((m) => m.type === 'chat:message', 300);
      assert.equal(extra.filter((m) => 'i' in m.data).length, 0, 'no duplicates');
      await ana.close();
      await bob.close();
    }
  });

  it('lists the members of both nodes in the join ack, keys on the room\'s master', async () => {
    const ranges = await rc.slots();
    const { room, slot } = roomIn(ranges[2], 'p');
    const { ana, bob, ack } = await pair(room, { name: 'Ana' });
    assert.deepEqual(ack.members.map((m) => m.user).sort(), [ana.user, bob.user].sort(),
      'the join ack on node b lists node a\'s member');
    assert.equal(ack.members.find((m) => m.user === ana.user).name, 'Ana', 'with metadata');
    const owner = ranges.find((r) => slot >= r.start && slot <= r.end).port;
    assert.equal(await rc.cli(owner, 'HGET', `mw:pu:{${room}}`, ana.user), '1', 'presence keys share the room\'s slot');
    await bob.close();
    const left = await ana.next({ type: 'presence:leave', room }, 3000);
    assert.equal(left.data.user, bob.user);
  });

  it('reaches a user\'s connections on both nodes with send_user', async () => {
    const target = uid('zoe');
    const t1 = await connect(a.url(`/notify?user=${target}`));
    const t2 = await connect(b.url(`/notify?user=${target}`));
    const poker = await connect(b.url(`/notify?user=${uid('pat')}`));
    const channel = `mw:user:{${target}}`;
    const port = await rc.portOfSlot(keySlot(channel));
    await waitFor(async () => (await shardSubscribers(port, channel)) === 2, 3000, 'both nodes subscribed to the user');
    expectAck(await poker.request('poke', { data: { user: target } }), 1);
    assert.equal((await t1.next({ type: 'poked' }, 3000)).data.by, poker.user);
    assert.equal((await t2.next({ type: 'poked' }, 3000)).data.by, poker.user);
  });

  it('keeps a user\'s inbox on the master of the user\'s slot, shared by both nodes', async () => {
    const user = uid('ivy');
    const key = `mw:inbox:{${user}}`;
    const port = await rc.portOfSlot(keySlot(key));
    const onB = await connect(b.url(`/inbox?user=${user}`));
    assert.deepEqual((await onB.next({ type: 'notify:backlog' }, 3000)).data.items, []);
    const channel = `mw:user:{${user}}`;
    await waitFor(async () => (await shardSubscribers(await rc.portOfSlot(keySlot(channel)), channel)) === 1,
      3000, 'node b subscribed to the user');
    const res = await request('POST', a.httpUrl('/api/notify'), {
      headers: { authorization: `Bearer ${KEY}` }, body: { user, data: { text: 'hi' } },
    });
    assert.equal(res.status, 200, res.text);
    const live = await onB.next({ type: 'notify' }, 3000);
    assert.equal(live.data.id, res.json.id, 'pushed through node a, delivered on node b');
    assert.equal(await rc.cli(port, 'LLEN', key), '1', 'stored on the master of the user\'s slot');
    const onA = await connect(a.url(`/inbox?user=${user}`));
    const backlog = await onA.next({ type: 'notify:backlog' }, 3000);
    assert.deepEqual(backlog.data.items.map((i) => i.id), [res.json.id], 'node a reads the same inbox');
    const read = await onA.request('notify:read', { data: { ids: [res.json.id] } });
    assert.deepEqual(expectAck(read, 1).ids, [res.json.id]);
    assert.deepEqual((await onB.next({ type: 'notify:read' }, 3000)).data.ids, [res.json.id]);
    assert.equal(await rc.cli(port, 'LLEN', key), '0');
  });

  it('shares the store across nodes through the cluster', async () => {
    const ca = await connect(a.url(`/notify?user=${uid('s')}`));
    const cb = await connect(b.url(`/notify?user=${uid('s')}`));
    const keys = [uid('k1'), uid('k2'), uid('k3')]; // spread over slots, so masters
    let id = 1;
    for (const key of keys) {
      expectAck(await ca.request('store', { data: { op: 'set', key, value: { v: key } } }), id++);
    }
    let idb = 1;
    for (const key of keys) {
      const got = await cb.request('store', { data: { op: 'get', key } });
      expectAck(got, idb++);
      assert.deepEqual(got.data, { v: key }, 'node b reads what node a wrote');
    }
    for (let i = 0; i < 5; i++) await ca.request('store', { data: { op: 'incr', key: keys[0] + 'n' } });
    const n = await cb.request('store', { data: { op: 'incr', key: keys[0] + 'n' } });
    assert.equal(n.data, 6, 'increments from both nodes add up');
    const raw = await cb.request('store', { data: { op: 'raw', key: keys[1] } });
    assert.equal(raw.data, JSON.stringify({ v: keys[1] }), 'mw.redis.call routes by key in the cluster');
    // The compare-and-set and timed-queue scripts run on their key's master too.
    for (const key of keys) {
      const won = await ca.request('store', { data: { op: 'hcas', key: `${key}h`, value: 'a' } });
      assert.equal(expectAck(won, won.id), true, 'the first hcas wins');
      const lost = await cb.request('store', { data: { op: 'hcas', key: `${key}h`, value: 'b' } });
      assert.equal(expectAck(lost, lost.id), false, 'the second finds the field taken');
      const s = await ca.request('store', { data: { op: 'schedule', key: `${key}q`, value: key } });
      expectAck(s, s.id);
      const due = await cb.request('store', { data: { op: 'due', key: `${key}q` } });
      assert.deepEqual(expectAck(due, due.id), [key], 'due on the other node hands it out');
    }
  });

  it('follows a room\'s slot to another master: ASK, MOVED, resubscription', async () => {
    const ranges = await rc.slots();
    const { room, slot } = roomIn(ranges[0], 'mv');
    const from = ranges[0].port;
    const to = ranges[1].port;
    const { ana, bob } = await pair(room);
    await exchange(room, ana, bob, 5, 'before');
    const topologyBefore = [topologyLines(a).length, topologyLines(b).length];

    let carl;
    await rc.moveSlot(slot, to, async () => {
      // The room's keys are on the target, the source still owns the slot: it answers
      // ASK for them, and node a must follow with ASKING.
      assert.equal(await rc.cli(to, 'CLUSTER', 'COUNTKEYSINSLOT', String(slot)), '5',
        'the room\'s 5 keys moved: 3 of presence, 2 of history');
      carl = await connect(a.url(`/chat?user=${uid('carl')}`));
      const ack = expectAck(await carl.request('join', { room }), 1);
      assert.deepEqual(ack.members.map((m) => m.user).sort(), [ana.user, bob.user, carl.user].sort(),
        'presence read and written through ASK');
      await bob.next((m) => m.type === 'presence:join' && m.data.user === carl.user, 3000);
      // A sequenced event published through ASK (the script runs on the target, whose
      // shard has no subscribers yet) still reaches the channel's subscribers.
      const sent = expectAck(await carl.request('chat:message', { room, data: 'during the move' }), 2);
      const ev = await bob.next((m) => m.type === 'chat:message' && m.data === 'during the move', 3000);
      assert.equal(ev.seq, sent.seq);
    });
    assert.equal(await rc.portOfSlot(slot), to);

    // The source dropped the shard channel's subscribers; both nodes subscribe again on
    // the new master (after a MOVED), then every message flows both ways.
    const channel = `mw:room:{${room}}`;
    await waitFor(async () => (await shardSubscribers(to, channel)) === 2, 5000, 'both nodes resubscribed on the new master');
    await exchange(room, ana, bob, 10, 'after');
    await carl.next((m) => m.type === 'chat:message' && m.data.tag === 'after' && m.data.j === 9, 3000);
    assert.ok(logged(a, 'ask', { slot }), 'node a followed an ASK for the slot');

    // Commands follow the MOVED too: a join on node b reads and writes the moved keys.
    const dave = await connect(b.url(`/chat?user=${uid('dave')}`));
    const ack = expectAck(await dave.request('join', { room }), 1);
    assert.equal(ack.members.length, 4, 'ana, bob, carl and dave');
    assert.equal(await rc.cli(to, 'HLEN', `mw:pu:{${room}}`), '4', 'presence written on the new master');
    await ana.next((m) => m.type === 'presence:join' && m.data.user === dave.user, 3000);

    // Each node saw the change and logged the new table.
    for (const [i, node] of [a, b].entries()) {
      await waitFor(async () => topologyLines(node).length > topologyBefore[i], 7000, `${node.config.node_id} refreshed its table`);
    }
    for (const node of [a, b]) {
      assert.equal(await ready(node), 200);
    }
  });

  it('follows a MOVED on a node that did not see the slot move', async () => {
    // Node c only publishes (HTTP API): it subscribes nothing in the room's slot, so no
    // unsubscribe push tells it of the move, and its stale table sends the first
    // SPUBLISH to the old master, which answers MOVED. Were c's periodic refresh to
    // learn the move first (a few ms window every 5 s), the slot moves again.
    c = await startServer({ config: { node_id: 'rcc', api: { keys: [KEY] }, log: { level: 'debug' },
      redis: { cluster: [rc.urls[2]] } } });
    await waitFor(async () => (await ready(c)) === 200, 10000, 'node c ready');
    const ranges = await rc.slots();
    const { room, slot } = roomIn(ranges[1], 'api');
    const channel = `mw:room:{${room}}`;
    const reader = await connect(b.url(`/chat?user=${uid('r')}`));
    expectAck(await reader.request('join', { room }), 1);
    let followed = false;
    let linesBefore = 0;
    for (let attempt = 0; attempt < 3 && !followed; attempt++) {
      const from = await rc.portOfSlot(slot);
      const to = rc.ports.find((p) => p !== from);
      const before = topologyLines(c).length;
      await rc.moveSlot(slot, to);
      await waitFor(async () => (await shardSubscribers(to, channel)) === 1, 5000, 'node b resubscribed');
      const stale = topologyLines(c).length === before;
      const res = await request('POST', c.httpUrl('/api/publish'), {
        headers: { authorization: `Bearer ${KEY}` }, body: { room, type: 'news', data: { attempt } },
      });
      assert.equal(res.status, 200, res.text);
      const ev = await reader.next({ type: 'news' }, 3000);
      assert.deepEqual(ev.data, { attempt }, 'delivered through the new master');
      if (stale) {
        // c's periodic refresh may still have won the race between the check above and
        // the publish (then the table changed without a MOVED): move the slot again.
        const moved = () => logged(c, 'moved', { slot, link: 'command' });
        await waitFor(async () => moved() || topologyLines(c).length > before, 2000,
          'node c followed the MOVED, or refreshed its table first');
        followed = moved();
        linesBefore = before;
      }
    }
    assert.ok(followed, 'a publish with a stale table was redirected');
    // The MOVED also asks for a refresh of the whole table: c logs the topology it now knows.
    await waitFor(async () => topologyLines(c).length > linesBefore, 2000, 'node c refreshed its table');
    assert.equal(await ready(c), 200);
  });

  it('keeps local rooms and the other masters\' rooms working while a master is down', async () => {
    // The master of the node registry (one slot: {mw}) goes, with a room's presence:
    // it comes back empty, and nobody takes the other node for dead.
    const down = await rc.portOfSlot(keySlot('{mw}:nodes'));
    const ranges = await rc.slots();
    const widest = (port) => ranges.filter((r) => r.port === port).sort((x, y) => (y.end - y.start) - (x.end - x.start))[0];
    const onDown = roomIn(widest(down), 'dn').room;
    const onUp = roomIn(widest(rc.ports.find((p) => p !== down)), 'up').room;
    const x = await pair(onDown);
    const y = await pair(onUp);
    const l1 = await connect(a.url(`/chat?user=${uid('l1')}`));
    const l2 = await connect(a.url(`/chat?user=${uid('l2')}`));
    expectAck(await l1.request('join', { room: onDown }), 1);
    expectAck(await l2.request('join', { room: onDown }), 1);

    await rc.kill(down);
    await waitFor(async () => (await ready(a)) === 503 && (await ready(b)) === 503, 5000, '/readyz 503 on both nodes');
    await a.waitForLog(/msg="redis down" masters=3/, 1000);
    l1.send({ type: 'chat:message', room: onDown, data: 'local only' });
    assert.equal((await l2.next({ type: 'chat:message', room: onDown }, 3000)).data, 'local only',
      'a local room keeps working');
    // Sharded pub/sub of the masters still up goes on (cluster-allow-pubsubshard-when-down).
    await exchange(onUp, y.ana, y.bob, 5, 'during');

    await rc.restart(down, 20000);
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 20000,
      'both nodes back: reconnected with backoff, channels resubscribed');
    await exchange(onDown, x.ana, x.bob, 5, 'back');
    // The master came back empty: each node rewrote its presence there once it served.
    const eve = await connect(b.url(`/chat?user=${uid('eve')}`));
    const ack = expectAck(await eve.request('join', { room: onDown }), 1);
    assert.deepEqual(ack.members.map((m) => m.user).sort(),
      [x.ana.user, x.bob.user, l1.user, l2.user, eve.user].sort(), 'presence rebuilt on the restarted master');
    await waitFor(async () => (await rc.cli(down, 'SMEMBERS', '{mw}:nodes')).split('\n').sort().join() === 'rca,rcb,rcc',
      3000, 'every node registered again');
    for (const node of [a, b, c]) assert.ok(!/msg="node is gone/.test(node.logs()), `${node.config.node_id}: no node taken for dead`);
    const metrics = (await request('GET', a.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_redis_transitions_total\{to="down"\} [1-9]/m);
    assert.match(metrics, /^moonwire_redis_up 1$/m);
  });
});

describe('redis.cluster config errors', () => {
  it('refuses a database number with a Redis Cluster', async () => {
    await assert.rejects(
      startServer({ config: { redis: { cluster: ['redis://127.0.0.1:7000/2'] } } }),
      /Redis Cluster has database 0 only/,
    );
  });
});
