// /metrics read by a real Prometheus parser (lib/prometheus.js): HELP and TYPE on every
// family, the naming conventions, consistent histograms, and numbers that move when the
// server does something (a message, a close by code, a ping's round trip). With
// `workers: 2` over a real Redis: one page for the whole server, whichever worker
// answers, whose counters do not go back when a worker is killed and restarted.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, REPO } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { scrape } = require('./lib/prometheus');
const { clientsOnBothNodes } = require('./lib/workers');
const { uid, expectAck, sleep, waitFor } = require('./lib/helpers');

const RTT = 'moonwire_ping_rtt_seconds_count';
const OPERATIONS_MD = fs.readFileSync(path.join(REPO, 'docs', 'operations.md'), 'utf8');

// docs/operations.md's tables name every family of the page.
function assertDocumented(page) {
  for (const [, name] of page.text.matchAll(/^# TYPE (\S+) /gm)) {
    assert.ok(OPERATIONS_MD.includes(`\`${name}\``) || OPERATIONS_MD.includes(`\`${name}{`),
      `${name} is described in docs/operations.md's metrics tables`);
  }
}
const CHAT = { route: '/chat' };

describe('/metrics of one process', () => {
  let server;

  before(async () => {
    server = await startServer({
      config: { heartbeat: { interval: '200ms', timeout: '5s' }, limits: { max_message: '1KiB' } },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('counts a message, closes by who and code, and a ping round trip', async () => {
    const m0 = await scrape(server);
    const closes = (by, code) => m0.value('moonwire_closes_total', { by, code }) || 0;

    const a = await connect(server.url(`/chat?user=${uid('a')}`));
    const room = uid('room');
    expectAck(await a.request('join', { room }), 1);
    expectAck(await a.request('chat:message', { room, data: { text: 'hi' } }), 2);
    // Quiet for heartbeat.interval: the server pings, ws answers, the trip is counted.
    const m1 = await waitFor(async () => {
      const m = await scrape(server);
      return m.value(RTT, CHAT) > (m0.value(RTT, CHAT) || 0) && m;
    }, 5000, 'a ping round trip in the histogram');
    assert.equal(m1.value('moonwire_messages_in_total', CHAT) -
      m0.value('moonwire_messages_in_total', CHAT), 2, 'join and chat:message');
    assert.ok(m1.value('moonwire_handler_seconds_count', CHAT) >
      m0.value('moonwire_handler_seconds_count', CHAT), 'handler runs observed');
    assert.equal(m1.value('moonwire_connections_by_state', { state: 'open' }),
      m0.value('moonwire_connections_by_state', { state: 'open' }) + 1);
    assert.ok(m1.value('moonwire_ping_rtt_seconds_sum', CHAT) > 0, 'the trip took some time');

    await a.close(1000);
    // A frame over limits.max_message: the server closes with 1009.
    const b = await connect(server.url(`/chat?user=${uid('b')}`));
    b.sendRaw('x'.repeat(2048));
    assert.equal((await b.closed).code, 1009);
    // A peer's application code is not a label of its own (a peer cannot grow the set).
    const c = await connect(server.url(`/chat?user=${uid('c')}`));
    await c.close(4321);

    const m2 = await waitFor(async () => {
      const m = await scrape(server);
      return m.value('moonwire_connections_closed_total') ===
        m0.value('moonwire_connections_closed_total') + 3 && m;
    }, 5000, 'three connections closed and freed');
    assert.equal(m2.value('moonwire_closes_total', { by: 'peer', code: '1000' }), closes('peer', '1000') + 1);
    assert.equal(m2.value('moonwire_closes_total', { by: 'server', code: '1009' }), closes('server', '1009') + 1);
    assert.equal(m2.value('moonwire_closes_total', { by: 'peer', code: 'other' }), closes('peer', 'other') + 1);
    assert.equal(m2.series('moonwire_closes_total').filter((s) => s.labels.code === '4321').length, 0);
    assert.equal(m2.value('moonwire_connections_opened_total'),
      m0.value('moonwire_connections_opened_total') + 3);
    assert.equal(m2.value('moonwire_connections_by_state', { state: 'open' }),
      m0.value('moonwire_connections_by_state', { state: 'open' }));
    // Three upgrades and at least the scrapes in between.
    assert.ok(m2.value('moonwire_listener_accepted_total') >= m0.value('moonwire_listener_accepted_total') + 5);
    assert.ok(m2.value('moonwire_bytes_out_total') > m0.value('moonwire_bytes_out_total'));
    assert.equal(m2.value('moonwire_zombie_connections'), 0);
    assertDocumented(m2);
  });

  it('times only the pong that answers its ping', async () => {
    await closeAll();
    // Answers nothing by itself: the test decides what each pong carries.
    const c = await connect(server.url(`/chat?user=${uid('p')}`), { autoPong: false });
    const pinged = new Promise((resolve) => c.ws.once('ping', resolve));
    c.ws.pong('mw'); // no ping awaits it yet
    const payload = await pinged;
    const before = await scrape(server);
    c.ws.pong('zz'); // not the ping's payload: a client's own heartbeat
    await sleep(300);
    const still = await scrape(server);
    assert.equal(still.value(RTT, CHAT), before.value(RTT, CHAT), 'no trip counted for it');
    // The ping still awaits its answer (or the next one does: same payload).
    c.ws.pong(payload);
    await waitFor(async () => (await scrape(server)).value(RTT, CHAT) === before.value(RTT, CHAT) + 1,
      3000, 'the answer timed');
    await c.close();
  });
});

// Every counter series in `a` is at most its value in `b` (a sum that went back would
// read as a reset to Prometheus).
function assertNoCounterWentBack(a, b, what) {
  for (const f of a.families) {
    if (f.type !== 'counter' && f.type !== 'histogram') continue;
    for (const s of f.samples) {
      const later = b.value(s.name, s.labels);
      if (later === undefined) continue;
      assert.ok(later >= s.value, `${what}: ${s.name}${JSON.stringify(s.labels)} went from ${s.value} to ${later}`);
    }
  }
}

describe('/metrics with workers: 2', () => {
  let redis;
  let server;

  before(async () => {
    redis = await startRedis();
    server = await startServer({
      config: { workers: 2, node_id: 'mx', redis: { url: redis.url }, log: { level: 'info' } },
    });
    await server.waitForLog(/node=mx-w0 /, 5000);
    await server.waitForLog(/node=mx-w1 /, 5000);
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop().catch(() => {});
    if (redis) await redis.stop();
  });

  it('answers for both workers, and counts on when one is killed', async () => {
    const m0 = await scrape(server);
    const { clients, nodes } = await clientsOnBothNodes(server, 'w', { min: 4 });
    assert.equal(nodes.size, 2, 'clients on both workers');
    const room = uid('room');
    for (const c of clients) expectAck(await c.request('join', { room }), 1);
    const n = clients.length;
    // Whichever worker answers (workers publish every second), the page counts all.
    const m1 = await waitFor(async () => {
      const m = await scrape(server);
      return m.value('moonwire_messages_in_total', CHAT) ===
        (m0.value('moonwire_messages_in_total', CHAT) || 0) + n &&
        m.value('moonwire_connections_by_state', { state: 'open' }) === n && m;
    }, 5000, `${n} joins and ${n} open connections on one page`);
    for (const k of ['0', '1']) {
      assert.equal(m1.value('moonwire_worker_up', { worker: k }), 1);
      assert.equal(m1.value('moonwire_redis_up', { worker: k }), 1, 'per worker, not summed');
      assert.equal(m1.value('moonwire_worker_restarts_total', { worker: k }), 0);
    }
    assert.equal(m1.value('moonwire_redis_up'), undefined, 'no unlabelled redis_up');
    assert.ok(m1.value('moonwire_redis_command_seconds_count') >
      m0.value('moonwire_redis_command_seconds_count'), 'the joins\' Redis commands timed');
    // A chat message goes through Redis (its history script publishes it).
    expectAck(await clients[0].request('chat:message', { room, data: { text: 'hi' } }), 2);
    await waitFor(async () => (await scrape(server)).value('moonwire_broker_published_total') >
      m1.value('moonwire_broker_published_total'), 3000, 'the message counted as published');
    assertDocumented(m1);

    // A Redis that hangs: commands wait in flight, and their time shows once answered.
    const slow = (m) => m.value('moonwire_redis_command_seconds_count') -
      m.value('moonwire_redis_command_seconds_bucket', { le: '0.25' });
    const slowBefore = slow(m1);
    redis.pause();
    let joined;
    try {
      joined = clients[0].request('join', { room: uid('hang') });
      await waitFor(async () => (await scrape(server)).value('moonwire_redis_commands_in_flight') >= 1,
        3000, 'commands in flight while Redis hangs');
      await sleep(300);
    } finally {
      redis.resume();
    }
    expectAck(await joined, 3);
    await waitFor(async () => slow(await scrape(server)) > slowBefore, 3000,
      'a command slower than 0.25 s in the histogram');

    // Worker 1 dies: its clients go, it is restarted, its counts stay in the sum.
    const pid = Number(server.logs().match(/msg="worker started" worker=1 pid=(\d+)/)[1]);
    process.kill(pid, 'SIGKILL');
    let last = m1;
    const m2 = await waitFor(async () => {
      const m = await scrape(server);
      assertNoCounterWentBack(last, m, 'through a restart');
      last = m;
      return m.value('moonwire_worker_restarts_total', { worker: '1' }) === 1 &&
        m.value('moonwire_worker_up', { worker: '1' }) === 1 && m;
    }, 8000, 'worker 1 restarted and on the page');
    assert.ok(m2.value('moonwire_messages_in_total', CHAT) >= m1.value('moonwire_messages_in_total', CHAT));
    assert.ok(m2.value('moonwire_connections_by_state', { state: 'open' }) < n,
      'the dead worker\'s connections are gone from the gauges');
    await closeAll();
  });
});
