// Fault injection against a real 6-node Redis Cluster (3 masters, 3 replicas; issue
// 11): the master serving the room's slot, and the node registry's, is killed -9 and
// its replica takes over, while a publisher sends at a steady rate and members on both
// moonwire nodes listen. The figures of lib/faults.js must be 0.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRedisCluster, keySlot } = require('./lib/redis-cluster');
const { uid, waitFor } = require('./lib/helpers');
const { Scenario, report, assertClean, cleanup, sleep, HEARTBEAT_MS } = require('./lib/faults');

describe('faults: a Redis Cluster fails over', { concurrency: false }, () => {
  let rc;
  const started = [];

  before(async () => {
    rc = await startRedisCluster({ masters: 3, replicas: 1 });
  });
  after(async () => {
    await cleanup();
    for (const x of started.reverse()) if (x.alive()) await x.stop().catch(() => {});
    if (rc) await rc.stop();
  });

  it('the master of the room\'s slot and of the registry dies: its replica takes over', async (t) => {
    // A room on the master that also holds the node registry ({mw}): the worst case.
    const victim = await rc.portOfSlot(keySlot('{mw}:nodes'));
    let room;
    for (let i = 0; i < 10000 && !room; i++) {
      const r = uid('fo');
      if ((await rc.portOfSlot(keySlot(r))) === victim) room = r;
    }
    assert.ok(room, 'a room on the registry\'s master');
    const sc = await Scenario.start('failover', { redis: { cluster: rc.urls }, started, room });
    sc.pub.start();
    await sleep(1000);
    const faultAt = Date.now();
    await rc.kill(victim);
    await waitFor(async () => sc.allReady(503), 6 * HEARTBEAT_MS, 'every node sees the master gone');
    const promoted = await rc.waitFailover(keySlot(room), victim);
    const backAt = Date.now();
    await waitFor(async () => sc.allReady(200), 20000, 'every node back on the promoted replica');
    await sleep(1500);
    const f = { ...await sc.finish(), ...sc.readyFigures(faultAt, backAt) };
    f.failover_ms = backAt - faultAt;
    report(t, 'redis-cluster-failover', f);
    assertClean(f);
    assert.notEqual(promoted, victim);
  });
});
