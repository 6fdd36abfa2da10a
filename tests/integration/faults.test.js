// Fault injection against one real redis-server (issue 11): moonwire nodes on free
// ports, members on every node, a publisher at a steady rate with ids, then Redis
// hangs, restarts empty or with its data, a node dies right after a restart, a member
// leaves during a blip. Each scenario computes the figures of lib/faults.js and
// prints them ("faults: scenario=..."); the correctness ones must be 0.
'use strict';

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { uid, waitFor } = require('./lib/helpers');
const { Member, Publisher, ReadyWatch, figures, format, sleep } = require('./lib/faults');

const HEARTBEAT_MS = 1000;
const RATE = 40; // messages per second
const started = [];

function nodeConfig(id, redis) {
  return {
    config: {
      node_id: id,
      heartbeat: { interval: '1s', timeout: '2s' },
      redis: { url: redis.url },
      limits: { rate: 1000, burst: 2000 },
    },
    routes: { '/chat': { script: 'app:chat', history: { size: 5000 } } },
  };
}

async function startNode(id, redis) {
  const node = await startServer(nodeConfig(id, redis));
  started.push(node);
  return node;
}

// Redis, `n` nodes, `per` members on each in one room; the publisher is the first
// member of the first node.
async function setup(name, { n = 2, per = 2, redisOpts } = {}) {
  const redis = await startRedis(undefined, redisOpts);
  started.push(redis);
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(`${name}-${i}`, redis));
  const watch = new ReadyWatch(nodes);
  await waitFor(async () => nodes.every((x) => watch.now(x) === 200), 10000, 'every node ready');
  const room = uid(name);
  const members = [];
  for (const node of nodes) {
    for (let j = 0; j < per; j++) {
      const m = await Member.open(node, uid(`${name}${nodes.indexOf(node)}u${j}`), `${node.config.node_id}/m${j}`);
      await m.join(room);
      members.push(m);
    }
  }
  // Everybody sees everybody before the fault: presence is settled.
  const users = new Set(members.map((m) => m.user));
  await waitFor(async () => members.every((m) => [...users].every((u) => m.view.has(u))), 10000,
    'every member lists every member');
  const pub = new Publisher(members[0], RATE);
  return { redis, nodes, watch, room, members, pub, users };
}

async function finish(ctx, extra = {}) {
  await ctx.pub.stop();
  const alive = extra.members || ctx.members;
  await Promise.all(alive.map((m) => m.sync()));
  await ctx.watch.stop();
  const f = figures({ members: alive, publisher: ctx.pub, gone: extra.gone, present: extra.present || ctx.users });
  for (const m of ctx.members) m.close();
  if (process.env.FAULTS_DEBUG) { // the nodes' logs, to see which repair ran
    for (const node of ctx.nodes) console.log(`--- ${node.config.node_id}\n${node.logs()}`);
  }
  for (const node of ctx.nodes) if (node.alive()) await node.stop();
  await ctx.redis.stop();
  return f;
}

function report(t, name, f) {
  const line = format(name, f);
  t.diagnostic(line);
}

function assertClean(f) {
  assert.equal(f.acked_seq_missing, 0, `acked with seq, never received: ${f.missing_sample}`);
  assert.equal(f.acked_noseq_missing, 0, `acked without seq, not received on the sender's node: ${f.missing_sample}`);
  assert.equal(f.duplicates, 0, 'duplicates');
  assert.equal(f.false_leaves, 0, 'presence:leave of a connected member');
  assert.equal(f.ghosts, 0, 'members listed that are gone, or not listed that are there');
  assert.equal(f.not_acked, 0, 'every message was acked in the end');
  assert.ok(f.acked_seq > 0, 'messages went through Redis');
}

// ms from t to the first /readyz 503 (fault) of every node, and the worst.
function readyFigures(ctx, faultAt, backAt) {
  const down = ctx.nodes.map((x) => ctx.watch.after(x, 503, faultAt));
  const up = ctx.nodes.map((x) => ctx.watch.after(x, 200, backAt));
  return {
    readyz_503_ms: down.some((d) => d === null) ? null : Math.max(...down),
    readyz_200_ms: up.some((d) => d === null) ? null : Math.max(...up),
  };
}

describe('faults: one Redis', { concurrency: false }, () => {
  after(async () => {
    for (const x of started.reverse()) await (x.alive ? (x.alive() ? x.stop().catch(() => {}) : null) : x.stop());
  });

  it('Redis hangs (SIGSTOP) longer than the registry TTL: outage mode, no false leave, nothing acked lost', async (t) => {
    const ctx = await setup('hang');
    ctx.pub.start();
    await sleep(1000);
    const faultAt = Date.now();
    ctx.redis.pause();
    // Every node notices within 2 heartbeat intervals (margin for a loaded machine).
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 503), 6 * HEARTBEAT_MS,
      'every node sees the hang: /readyz 503');
    await ctx.nodes[0].waitForLog(/msg="redis connection lost".*no reply within/, 1000);
    await sleep(4000 - (Date.now() - faultAt)); // longer than the registry TTL (1.5 s)
    const backAt = Date.now();
    ctx.redis.resume();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 200), 15000, 'every node back');
    await sleep(1500);
    const f = { ...await finish(ctx), ...readyFigures(ctx, faultAt, backAt) };
    report(t, 'redis-hang', f);
    assertClean(f);
    assert.ok(f.readyz_503_ms !== null && f.readyz_503_ms <= 6 * HEARTBEAT_MS, `503 after ${f.readyz_503_ms} ms`);
    assert.ok(f.readyz_200_ms !== null && f.readyz_200_ms <= 10000, `200 after ${f.readyz_200_ms} ms`);
  });

  it('Redis is killed and restarts empty: presence and the registry are rebuilt', async (t) => {
    const ctx = await setup('empty');
    ctx.pub.start();
    await sleep(1000);
    const faultAt = Date.now();
    const port = ctx.redis.port;
    await ctx.redis.stop();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 503), 6 * HEARTBEAT_MS, '503 everywhere');
    await sleep(1000);
    ctx.redis = await startRedis(port);
    started.push(ctx.redis);
    const backAt = Date.now();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 200), 15000, 'every node back');
    // Presence is back in Redis: both nodes' members.
    await waitFor(async () => ctx.redis.cli('HLEN', `mw:pu:{${ctx.room}}`) === String(ctx.users.size), 5000,
      'every member is in Redis again');
    await sleep(1500);
    const f = { ...await finish(ctx), ...readyFigures(ctx, faultAt, backAt) };
    report(t, 'redis-restart-empty', f);
    assertClean(f);
  });

  it('Redis restarts with its data (AOF): no epoch change, nothing lost', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-aof-'));
    try {
      const ctx = await setup('aof', { redisOpts: { dir } });
      ctx.pub.start();
      await sleep(1000);
      const faultAt = Date.now();
      const port = ctx.redis.port;
      await ctx.redis.stop();
      await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 503), 6 * HEARTBEAT_MS, '503 everywhere');
      await sleep(2500); // longer than the registry TTL: every key expires on restart
      ctx.redis = await startRedis(port, { dir });
      started.push(ctx.redis);
      const backAt = Date.now();
      await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 200), 15000, 'every node back');
      await sleep(1500);
      const epochs = new Set(ctx.members.map((m) => m.epoch));
      const f = { ...await finish(ctx), ...readyFigures(ctx, faultAt, backAt) };
      f.resets = ctx.members.reduce((n, m) => n + m.resets, 0);
      report(t, 'redis-restart-with-data', f);
      assertClean(f);
      assert.equal(epochs.size, 1, 'the room kept its epoch');
      assert.equal(f.resets, 0, 'no client was told to reset');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a node is killed -9 right after Redis restarted empty, and again after it came back', async (t) => {
    const ctx = await setup('kill', { n: 3 });
    ctx.pub.start();
    await sleep(1000);
    const victim = ctx.nodes[2];
    const port = ctx.redis.port;
    await ctx.redis.stop();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 503), 6 * HEARTBEAT_MS, '503 everywhere');
    ctx.redis = await startRedis(port);
    started.push(ctx.redis);
    const killAt = Date.now();
    victim.process.kill('SIGKILL');
    const dead = ctx.members.filter((m) => m.node === victim);
    const alive = ctx.members.filter((m) => m.node !== victim);
    const gone = Object.fromEntries(dead.map((m) => [m.user, killAt]));
    const leaveMs = async (since) => {
      await waitFor(async () => alive.every((m) => dead.every((d) => m.leaves.some((l) => l.user === d.user && l.at >= since))),
        20 * HEARTBEAT_MS, 'the dead node\'s members leave on every survivor');
      return Math.max(...alive.flatMap((m) => dead.map((d) => m.leaves.find((l) => l.user === d.user && l.at >= since).at - since)));
    };
    const first = await leaveMs(killAt);
    await waitFor(async () => ctx.nodes.slice(0, 2).every((x) => ctx.watch.now(x) === 200), 15000, 'survivors back');

    // The same node id again, with members, killed again: cleaned up again at once
    // (the first cleanup released its lock).
    const rejoinAt = Date.now();
    const again = await startNode(victim.config.node_id, ctx.redis);
    ctx.watch.stop();
    const back = [];
    for (const d of dead) {
      const m = await Member.open(again, d.user, `${d.label}'`);
      await m.join(ctx.room);
      back.push(m);
    }
    await waitFor(async () => alive.every((m) => back.every((b) => m.view.has(b.user))), 10000, 'the new members are seen');
    const killAgain = Date.now();
    again.process.kill('SIGKILL');
    for (const d of dead) gone[d.user] = [[killAt, rejoinAt], [killAgain, Infinity]];
    const second = await leaveMs(killAgain);
    await sleep(500);
    const present = new Set(alive.map((m) => m.user));
    ctx.nodes.push(again);
    const f = await finish(ctx, { members: alive, gone, present });
    f.dead_leave_ms = first;
    f.dead_leave_again_ms = second;
    report(t, 'node-killed-after-redis-restart', f);
    assertClean(f);
    for (const ms of [first, second]) assert.ok(ms <= 6 * HEARTBEAT_MS, `leave after ${ms} ms`);
  });

  it('a member leaves during a short outage: no ghost in Redis or on the other node', async (t) => {
    const ctx = await setup('blip');
    // A second room where node 1 has one member only: its leave cannot be written.
    const room2 = uid('blip2');
    const stay = await Member.open(ctx.nodes[0], uid('stay'), 'stay');
    await stay.join(room2);
    const leaver = await Member.open(ctx.nodes[1], uid('leaver'), 'leaver');
    await leaver.join(room2);
    await waitFor(async () => stay.view.has(leaver.user), 5000, 'the leaver is seen');
    ctx.pub.start();
    await sleep(500);
    // A blip that keeps Redis's data: the process stops for a moment.
    ctx.redis.pause();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 503), 6 * HEARTBEAT_MS, '503 everywhere');
    const leftAt = Date.now();
    const ack = await leaver.request('leave', { room: room2 });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    await sleep(300);
    ctx.redis.resume();
    await waitFor(async () => ctx.nodes.every((x) => ctx.watch.now(x) === 200), 15000, 'every node back');
    await waitFor(async () => !stay.view.has(leaver.user), 10 * HEARTBEAT_MS, 'the other node tells its member the leaver left');
    const pu = ctx.redis.cli('HGETALL', `mw:pu:{${room2}}`);
    assert.ok(!pu.includes(leaver.user), `no ghost in Redis: ${pu}`);
    await sleep(1000);
    const f = await finish(ctx, { gone: { [leaver.user]: leftAt } });
    f.leaver_gone_ms = stay.leaves.find((l) => l.user === leaver.user).at - leftAt;
    f.ghosts += stay.view.has(leaver.user) ? 1 : 0;
    report(t, 'leave-during-outage', f);
    assertClean(f);
    stay.close();
    leaver.close();
  });
});
