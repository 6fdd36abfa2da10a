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
const { startRedis } = require('./lib/redis');
const { startServer } = require('./lib/server');
const { request } = require('./lib/http');
const { uid, waitFor } = require('./lib/helpers');
const { Member, Scenario, report, assertClean, cleanup, sleep, HEARTBEAT_MS } = require('./lib/faults');

const started = [];

// One Redis (kept in ctx.redisServer, replaced when it restarts) and a Scenario on it.
async function setup(name, { n = 2, per = 2, redisOpts } = {}) {
  const redis = await startRedis(undefined, redisOpts);
  started.push(redis);
  const sc = await Scenario.start(name, { redis: { url: redis.url }, started, n, per });
  sc.redisServer = redis;
  return sc;
}

async function restartRedis(sc, opts) {
  sc.redisServer = await startRedis(sc.redisServer.port, opts);
  started.push(sc.redisServer);
}

// Stops whatever a test left running (a failed one leaves nodes and Redis behind).
async function stopAll() {
  await cleanup();
  while (started.length) {
    const x = started.pop();
    if (!x.alive || x.alive()) await x.stop().catch(() => {});
  }
}

async function finish(sc, extra) {
  const f = await sc.finish(extra);
  await sc.redisServer.stop();
  return f;
}

// Reads a store key: the reply is [value, err] (err "unavailable" when refused).
const KV = `
local mw = require "moonwire"
local app = mw.app()
app:on("get", function(conn, msg)
  local v, err = mw.store.get(msg.data.k)
  return { v = v, err = err }
end)
return app
`;

describe('faults: commands in flight to a Redis that hangs are bounded', () => {
  after(stopAll);

  it('refuses commands past redis.max_in_flight at once instead of queueing them', async () => {
    const redis = await startRedis();
    started.push(redis);
    // A long reply deadline: the bound, not the watchdog, answers these.
    const node = await startServer({
      config: { redis: { url: redis.url, timeout: '10s', max_in_flight: 4 }, limits: { rate: 1000, burst: 2000 } },
      routes: { '/kv': { script: 'kv.lua' } },
      scripts: { 'kv.lua': KV },
    });
    started.push(node);
    const c = await Member.open({ url: (p) => node.url(p.replace('/chat', '/kv')) }, uid('kv'), 'kv');
    const ok = await c.request('get', { data: { k: 'x' } });
    assert.equal(ok.type, 'ack', JSON.stringify(ok));
    redis.pause();
    const replies = [];
    for (let i = 0; i < 20; i++) c.request('get', { data: { k: `k${i}` } }).then((r) => replies.push(r));
    // Redis answers nothing now: whatever is answered was refused by the bound.
    await waitFor(async () => replies.length >= 16, 5000, '16 of 20 refused while Redis hangs');
    assert.ok(replies.every((r) => r.type === 'ack' && r.data.err === 'unavailable'), JSON.stringify(replies));
    const metrics = (await request('GET', node.httpUrl('/metrics'))).text;
    const refused = Number((metrics.match(/^moonwire_redis_refused_total (\d+)$/m) || [])[1]);
    assert.ok(refused >= 16, `moonwire_redis_refused_total ${refused}`);
    redis.resume();
    await waitFor(async () => replies.length === 20, 15000, 'the 4 in flight answered once Redis resumed');
    c.close();
    await node.stop();
    await redis.stop();
  });
});

describe('faults: one Redis', { concurrency: false }, () => {
  after(stopAll);

  it('Redis hangs (SIGSTOP) longer than the registry TTL: outage mode, no false leave, nothing acked lost', async (t) => {
    const ctx = await setup('hang');
    ctx.pub.start();
    await sleep(1000);
    const faultAt = Date.now();
    ctx.redisServer.pause();
    // Every node notices within 2 heartbeat intervals (margin for a loaded machine).
    await waitFor(async () => ctx.allReady(503), 6 * HEARTBEAT_MS,
      'every node sees the hang: /readyz 503');
    await ctx.nodes[0].waitForLog(/msg="redis connection lost".*no reply within/, 1000);
    await sleep(4000 - (Date.now() - faultAt)); // longer than the registry TTL (1.5 s)
    const backAt = Date.now();
    ctx.redisServer.resume();
    await waitFor(async () => ctx.allReady(200), 15000, 'every node back');
    await sleep(1500);
    const f = { ...await finish(ctx), ...ctx.readyFigures(faultAt, backAt) };
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
        await ctx.redisServer.stop();
    await waitFor(async () => ctx.allReady(503), 6 * HEARTBEAT_MS, '503 everywhere');
    await sleep(1000);
    await restartRedis(ctx);
    const backAt = Date.now();
    await waitFor(async () => ctx.allReady(200), 15000, 'every node back');
    // Presence is back in Redis: both nodes' members.
    await waitFor(async () => ctx.redisServer.cli('HLEN', `mw:pu:{${ctx.room}}`) === String(ctx.users.size), 5000,
      'every member is in Redis again');
    await sleep(1500);
    const f = { ...await finish(ctx, { emptyBackAt: backAt }), ...ctx.readyFigures(faultAt, backAt) };
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
            await ctx.redisServer.stop();
      await waitFor(async () => ctx.allReady(503), 6 * HEARTBEAT_MS, '503 everywhere');
      await sleep(2500); // longer than the registry TTL: every key expires on restart
      await restartRedis(ctx, { dir });
      const backAt = Date.now();
      await waitFor(async () => ctx.allReady(200), 15000, 'every node back');
      await sleep(1500);
      const epochs = new Set(ctx.members.map((m) => m.epoch));
      const f = { ...await finish(ctx), ...ctx.readyFigures(faultAt, backAt) };
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
        await ctx.redisServer.stop();
    await waitFor(async () => ctx.allReady(503), 6 * HEARTBEAT_MS, '503 everywhere');
    await restartRedis(ctx);
    const killAt = Date.now();
    const emptyBackAt = killAt;
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
    await waitFor(async () => ctx.allReady(200, ctx.nodes.slice(0, 2)), 15000, 'survivors back');

    // The same node id again, with members, killed again: cleaned up again at once
    // (the first cleanup released its lock).
    const rejoinAt = Date.now();
    const again = await ctx.startNode(victim.config.node_id);
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
    const f = await finish(ctx, { members: alive, gone, present, emptyBackAt });
    f.dead_leave_ms = first;
    f.dead_leave_again_ms = second;
    report(t, 'node-killed-after-redis-restart', f);
    assertClean(f);
    for (const ms of [first, second]) assert.ok(ms <= 6 * HEARTBEAT_MS, `leave after ${ms} ms`);
  });

  it('a node is stopped (SIGTERM) under load: its clients move to another node, resend and sync', async (t) => {
    const ctx = await setup('term');
    const [a, b] = ctx.nodes;
    const movers = ctx.members.filter((m) => m.node === a); // the publisher among them
    for (const m of movers) m.autoMove(b);
    ctx.pub.start();
    await sleep(1000);
    const termAt = Date.now();
    const stopped = a.stop(); // SIGTERM: reconnect hints, close 1001, exit
    await waitFor(async () => movers.every((m) => m.moves.length === 1), 15000,
      'every client of the stopped node moved');
    assert.deepEqual(await stopped, { code: 0, signal: null }, 'a clean exit');
    await sleep(1500);
    const gone = Object.fromEntries(movers.map((m) => [m.user, [[termAt, m.moves[0].to]]]));
    const f = await finish(ctx, { gone });
    f.close_codes = movers.map((m) => m.moves[0].code).join('/');
    report(t, 'node-sigterm-clients-move', f);
    assertClean(f);
    assert.ok(f.resent_after_move > 0, 'the publisher resent what was not acked');
    assert.ok(movers.every((m) => m.moves[0].code === 1001), `close codes ${f.close_codes}`);
  });

  it('a node is killed -9 under load: its clients move and resend, the one that does not come back leaves', async (t) => {
    const ctx = await setup('crash', { per: 3 });
    const [a, b] = ctx.nodes;
    const onA = ctx.members.filter((m) => m.node === a);
    const movers = onA.slice(0, 2); // the publisher and one more
    const lost = onA[2];            // gone with its node
    for (const m of movers) m.autoMove(b);
    ctx.pub.start();
    await sleep(1000);
    const killAt = Date.now();
    a.process.kill('SIGKILL');
    const others = ctx.members.filter((m) => m !== lost);
    await waitFor(async () => movers.every((m) => m.moves.length === 1), 15000, 'the clients moved');
    await waitFor(async () => others.every((m) => m.leaves.some((l) => l.user === lost.user)),
      20 * HEARTBEAT_MS, 'the lost member leaves everywhere');
    const leaveMs = Math.max(...others.map((m) => m.leaves.find((l) => l.user === lost.user).at - killAt));
    await sleep(1500);
    const gone = Object.fromEntries(movers.map((m) => [m.user, [[killAt, m.moves[0].to]]]));
    gone[lost.user] = killAt;
    const present = new Set(others.map((m) => m.user));
    const f = await finish(ctx, { members: others, gone, present });
    f.dead_leave_ms = leaveMs;
    report(t, 'node-killed-under-load', f);
    assertClean(f);
    assert.ok(f.resent_after_move > 0, 'the publisher resent what was not acked');
    assert.ok(leaveMs <= 6 * HEARTBEAT_MS, `leave after ${leaveMs} ms`);
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
    ctx.redisServer.pause();
    await waitFor(async () => ctx.allReady(503), 6 * HEARTBEAT_MS, '503 everywhere');
    const leftAt = Date.now();
    const ack = await leaver.request('leave', { room: room2 });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    await sleep(300);
    ctx.redisServer.resume();
    await waitFor(async () => ctx.allReady(200), 15000, 'every node back');
    await waitFor(async () => !stay.view.has(leaver.user), 10 * HEARTBEAT_MS, 'the other node tells its member the leaver left');
    const pu = ctx.redisServer.cli('HGETALL', `mw:pu:{${room2}}`);
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
