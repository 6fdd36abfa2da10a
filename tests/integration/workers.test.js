// `workers: N` (SPEC section 3, issue 6): a master process and N workers sharing the
// port with SO_REUSEPORT, each a node named <node_id>-w<k>, one room across them
// through a real redis-server; SIGTERM stops everything, a killed worker is restarted,
// and bad `workers` values are config errors.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, REPO, BIN } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { clientsOnBothNodes } = require('./lib/workers');
const { uid, expectAck, waitFor } = require('./lib/helpers');

// The workers' pids as the master logged them ("worker started worker=K pid=P").
function workerPids(server) {
  const pids = new Map();
  for (const m of server.logs().matchAll(/msg="worker started" worker=(\d+) pid=(\d+)/g)) {
    pids.set(Number(m[1]), Number(m[2]));
  }
  return pids;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('workers: 2 over one Redis', () => {
  let redis;
  let server;

  before(async () => {
    redis = await startRedis();
    server = await startServer({
      config: { workers: 2, node_id: 'wn', redis: { url: redis.url }, log: { level: 'info' } },
    });
    await server.waitForLog(/node=wn-w0 /, 5000);
    await server.waitForLog(/node=wn-w1 /, 5000);
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop().catch(() => {});
    if (redis) await redis.stop();
  });

  it('spreads clients over both workers and delivers one room to everyone', async () => {
    const { clients, nodes } = await clientsOnBothNodes(server, 'u');
    assert.deepEqual([...nodes].sort(), ['wn-w0', 'wn-w1'], 'hello.node names both workers');
    const room = uid('room');
    for (const c of clients) expectAck(await c.request('join', { room }), 1);

    // Presence is cluster-wide: every member sees every user, wherever it connected.
    const users = clients.map((c) => c.user).sort();
    await waitFor(async () => {
      const acks = await Promise.all(clients.map((c) => c.request('presence:list', { room })));
      return acks.every((a) => a.data.count === clients.length &&
        a.data.members.map((m) => m.user).sort().join() === users.join());
    }, 5000, 'every member lists every user');

    const [first] = clients;
    const other = clients.find((c) => c.hello.data.node !== first.hello.data.node);
    for (const sender of [first, other]) {
      const text = uid('hi');
      sender.send({ type: 'chat:message', room, data: { text } });
      for (const c of clients) {
        const m = await c.next((x) => x.type === 'chat:message' && x.data.text === text, 3000);
        assert.equal(m.from, sender.user);
      }
    }
    for (const c of clients) {
      const dup = await c.collect((m) => m.type === 'chat:message', 200);
      assert.equal(dup.length, 0, 'each message once');
    }

    await other.close();
    const left = await first.next({ type: 'presence:leave', room }, 3000);
    assert.equal(left.data.user, other.user);
    await closeAll();
  });

  it('restarts a worker that was killed, with a log line', async () => {
    const before = workerPids(server);
    assert.equal(before.size, 2, `two workers started; log:\n${server.logs()}`);
    const victim = before.get(1);
    process.kill(victim, 'SIGKILL');
    await server.waitForLog(new RegExp(`msg="worker died" worker=1 pid=${victim} signal=9`), 3000);
    await waitFor(() => workerPids(server).get(1) !== victim, 5000, 'worker 1 restarted');
    const again = workerPids(server).get(1);
    assert.ok(alive(again), 'the new worker runs');
    assert.ok(alive(before.get(0)), 'the other worker was left alone');
    // The restarted worker serves again (as wn-w1) and shares rooms with the other.
    await waitFor(async () => {
      const c = await connect(server.url(`/chat?user=${uid('r')}`));
      const node = c.hello.data.node;
      await c.close();
      return node === 'wn-w1';
    }, 5000, 'a client on the restarted worker');
    const { clients, nodes } = await clientsOnBothNodes(server, 'v');
    assert.equal(nodes.size, 2);
    const room = uid('again');
    for (const c of clients) expectAck(await c.request('join', { room }), 1);
    clients[0].send({ type: 'chat:message', room, data: { n: 1 } });
    for (const c of clients) await c.next({ type: 'chat:message', room }, 3000);
    await closeAll();
  });

  it('stops the master and every worker on SIGTERM, leaving no process behind', async () => {
    const c = await connect(server.url(`/chat?user=${uid('last')}`));
    const pids = [...workerPids(server).values()];
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; log:\n${server.logs()}`);
    assert.equal((await c.closed).code, 1001);
    for (const pid of pids) assert.ok(!alive(pid), `worker ${pid} is gone`);
    assert.match(server.logs(), /msg="stopped" workers=2/);
    server = null;
  });
});

describe('workers: bad input', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-workers-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  // Runs `moonwire serve` (bounded) on a config whose line 2 is `workers: <value>`.
  function serve(value, extra = '') {
    const file = path.join(dir, 'moonwire.yaml');
    fs.writeFileSync(file, `listen: 127.0.0.1:0\nworkers: ${value}\n` +
      'routes:\n  /chat: { script: "app:chat" }\n' + extra);
    return spawnSync(BIN, ['serve', '-c', file], {
      env: { ...process.env, MOONWIRE_HOME: REPO }, timeout: 10000, encoding: 'utf8',
    });
  }

  it('refuses more than one worker without Redis', () => {
    const r = serve(2);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /moonwire\.yaml:2: workers: 2 workers need `redis`/);
  });

  it('refuses 0, negative and non-numbers', () => {
    for (const [value, want] of [
      ['0', /moonwire\.yaml:2: workers: must be between 1 and 256, got '0'/],
      ['-1', /moonwire\.yaml:2: workers: expected a whole number/],
      ['two', /moonwire\.yaml:2: workers: expected a whole number, got 'two'/],
      ['1.5', /moonwire\.yaml:2: workers: expected a whole number/],
    ]) {
      const r = serve(value, 'redis: { url: redis://127.0.0.1:1 }\n');
      assert.equal(r.status, 1, `workers: ${value}: ${r.stderr}`);
      assert.match(r.stderr, want);
    }
  });
});
