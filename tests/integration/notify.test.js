// The notify app and POST /api/notify (SPEC sections 6 and 8) against the real binary:
// the embedded mode (inbox in memory), then two nodes over one real redis-server
// (inbox in Redis: shared by the nodes, kept across a node's restart, and a clear 503
// while Redis is down).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, waitFor, sleep } = require('./lib/helpers');

const KEY = 'notify-test-key';
const auth = { authorization: `Bearer ${KEY}` };
const ROUTES = { '/notify': { script: 'app:notify' } };

function notify(server, body, headers = auth) {
  return request('POST', server.httpUrl('/api/notify'), { headers, body });
}

// POST /api/notify that must succeed: the new id.
async function pushed(server, user, data) {
  const res = await notify(server, { user, data });
  assert.equal(res.status, 200, `notify: ${res.status} ${res.text}`);
  assert.equal(typeof res.json.id, 'string');
  return res.json.id;
}

// POSTs each body to /api/notify in turn on ONE kept-alive connection (lws reuses the
// session for the next request): the statuses and whether the socket was reused.
async function notifyKeepAlive(server, bodies) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out = [];
  try {
    for (const body of bodies) {
      const payload = JSON.stringify(body);
      out.push(await new Promise((resolve, reject) => {
        const req = http.request(server.httpUrl('/api/notify'), {
          method: 'POST', agent, timeout: 3000,
          headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
        });
        req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
        req.on('error', reject);
        req.end(payload);
      }));
    }
  } finally {
    agent.destroy();
  }
  return out;
}

// Connects user to /notify and waits for the backlog: { client, items }.
async function device(server, user) {
  const client = await connect(server.url(`/notify?user=${encodeURIComponent(user)}`));
  const backlog = await client.next('notify:backlog');
  assert.ok(Array.isArray(backlog.data.items), `backlog items: ${JSON.stringify(backlog)}`);
  return { client, items: backlog.data.items };
}

describe('notify in the embedded mode', () => {
  let server;
  before(async () => {
    server = await startServer({
      routes: ROUTES,
      config: { api: { keys: [KEY] }, inbox: { size: 3 } },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('sends an empty backlog to a user without notifications', async () => {
    const { items } = await device(server, uid('empty'));
    assert.deepEqual(items, []);
  });

  it('keeps what arrives while the user is offline and sends it as the backlog', async () => {
    const user = uid('off');
    const before = Date.now();
    const id1 = await pushed(server, user, { text: 'one' });
    const id2 = await pushed(server, user, 'two');
    assert.notEqual(id1, id2);
    const { items } = await device(server, user);
    assert.deepEqual(items.map((i) => [i.id, i.data]), [[id1, { text: 'one' }], [id2, 'two']]);
    assert.ok(items[0].ts >= before && items[0].ts <= Date.now(), `ts ${items[0].ts}`);
  });

  it('delivers live to every device of the user, and read syncs them', async () => {
    const user = uid('live');
    const phone = (await device(server, user)).client;
    const laptop = (await device(server, user)).client;
    const stranger = (await device(server, uid('other'))).client;
    const id = await pushed(server, user, { n: 1 });
    for (const c of [phone, laptop]) {
      const ev = await c.next('notify');
      assert.equal(ev.data.id, id);
      assert.deepEqual(ev.data.data, { n: 1 });
      assert.equal(typeof ev.data.ts, 'number');
    }
    assert.deepEqual(await stranger.collect('notify', 200), [], 'nobody else gets it');

    // Still unread: a third device gets it in its backlog.
    assert.deepEqual((await device(server, user)).items.map((i) => i.id), [id]);

    const ack = expectAck(await phone.request('notify:read', { data: { ids: [id] } }), 1);
    assert.deepEqual(ack, { ids: [id] });
    assert.deepEqual((await laptop.next('notify:read')).data, { ids: [id] });
    assert.deepEqual((await phone.next('notify:read')).data, { ids: [id] });
    assert.deepEqual((await device(server, user)).items, [], 'read: gone from the backlog');
  });

  it('keeps the newest inbox.size items: the oldest are dropped', async () => {
    const user = uid('bound');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await pushed(server, user, i));
    const { items } = await device(server, user);
    assert.deepEqual(items.map((i) => i.id), ids.slice(2));
    assert.deepEqual(items.map((i) => i.data), [2, 3, 4]);
    const metrics = (await request('GET', server.httpUrl('/metrics'))).text;
    const trimmed = Number(/^moonwire_inbox_items_total\{event="trimmed"\} (\d+)$/m.exec(metrics)[1]);
    assert.ok(trimmed >= 2, `trimmed metric ${trimmed}`);
  });

  it('refuses bad notify:read, subscribe and unsubscribe messages with bad_message', async () => {
    const { client } = await device(server, uid('bad'));
    const bad = [
      ['notify:read', undefined], ['notify:read', { ids: 'x' }], ['notify:read', { ids: [{}] }],
      ['notify:read', { ids: [1.5] }], ['notify:read', { ids: Array(101).fill('a') }],
      ['subscribe', { topics: [] }], ['subscribe', { topics: [7] }], ['subscribe', { topics: ['x'.repeat(129)] }],
      ['unsubscribe', { topics: 'news' }],
    ];
    for (const [type, data] of bad) {
      const res = await client.request(type, { data });
      expectError(res, 'bad_message', res.id, `${type} ${JSON.stringify(data)}`.slice(0, 80));
    }
  });

  it('reaches topic subscribers from POST /api/publish, and only them', async () => {
    const topic = uid('topic');
    const sub = (await device(server, uid('sub'))).client;
    const other = (await device(server, uid('nosub'))).client;
    assert.deepEqual(expectAck(await sub.request('subscribe', { data: { topics: [topic] } }), 1),
      { topics: [topic] });
    const res = await request('POST', server.httpUrl('/api/publish'),
      { headers: auth, body: { room: topic, type: 'news', data: { headline: 'hi' } } });
    assert.equal(res.status, 200, res.text);
    const ev = await sub.next('news');
    assert.equal(ev.room, topic);
    assert.deepEqual(ev.data, { headline: 'hi' });
    assert.deepEqual(await other.collect('news', 200), []);
    expectAck(await sub.request('unsubscribe', { data: { topics: [topic] } }), 2);
    await request('POST', server.httpUrl('/api/publish'),
      { headers: auth, body: { room: topic, type: 'news', data: 2 } });
    assert.deepEqual(await sub.collect('news', 200), [], 'unsubscribed');
  });

  it('answers several calls on one kept-alive connection', async () => {
    const user = uid('ka');
    const res = await notifyKeepAlive(server, [{ user, data: 1 }, { user }, { user, data: 3 }]);
    assert.deepEqual(res.map((r) => r.status), [200, 400, 200]);
    assert.deepEqual(res.map((r) => r.reused), [false, true, true], 'one connection');
    assert.equal((await device(server, user)).items.length, 2);
  });

  it('requires the API key (401)', async () => {
    const body = { user: 'x', data: 1 };
    assert.equal((await notify(server, body, {})).status, 401);
    assert.equal((await notify(server, body, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await notify(server, body, { authorization: KEY })).status, 401);
  });

  it('answers bad input with 400 and a clear error, and stores nothing', async () => {
    const user = uid('badin');
    const cases = [
      ['{"user":', 'bad_json'],
      ['[1,2]', 'bad_message', /JSON object/],
      [{ data: 1 }, 'bad_message', /user must be a string/],
      [{ user: 42, data: 1 }, 'bad_message', /user must be a string/],
      [{ user: '', data: 1 }, 'bad_message', /user must be a string of 1..128 bytes/],
      [{ user: 'u'.repeat(129), data: 1 }, 'bad_message', /1..128 bytes/],
      [{ user: 'a\nb', data: 1 }, 'bad_message', /control characters/],
      [{ user }, 'bad_message', /data is required/],
      [{ user, data: null }, 'bad_message', /data is required/],
      [{ user, data: 'x'.repeat(5000) }, 'bad_message', /over inbox.max_item \(4096\)/],
    ];
    for (const [body, code, message] of cases) {
      const res = await notify(server, body);
      const what = JSON.stringify(body).slice(0, 60);
      assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
      assert.equal(res.json.error, code, what);
      if (message) assert.match(res.json.message, message, what);
    }
    const big = await notify(server, { user, data: 'x'.repeat(70000) });
    assert.equal(big.status, 413, 'a body over 64KiB');
    assert.match(big.json.message, /over 64KiB/);
    assert.equal((await request('GET', server.httpUrl('/api/notify'), { headers: auth })).status, 405);
    assert.deepEqual((await device(server, user)).items, [], 'nothing was stored');
    assert.ok(server.alive());
  });
});

describe('notify inbox items expire after inbox.ttl', () => {
  let server;
  before(async () => {
    server = await startServer({ routes: ROUTES, config: { api: { keys: [KEY] }, inbox: { ttl: '300ms' } } });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('does not send an expired item in the backlog', async () => {
    const user = uid('ttl');
    await pushed(server, user, 'old');
    await sleep(450);
    const fresh = await pushed(server, user, 'new');
    assert.deepEqual((await device(server, user)).items.map((i) => i.id), [fresh]);
  });
});

describe('notify over Redis with two nodes', () => {
  let redis;
  let a;
  let b;
  const config = () => ({ redis: { url: redis.url }, api: { keys: [KEY] } });
  const ready = async (node) => (await request('GET', node.httpUrl('/readyz'))).status;

  before(async () => {
    redis = await startRedis();
    a = await startServer({ routes: ROUTES, config: { ...config(), node_id: 'node-a' } });
    b = await startServer({ routes: ROUTES, config: { ...config(), node_id: 'node-b' } });
    await waitFor(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 5000, 'both nodes ready');
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (b) await b.stop();
    if (redis) await redis.stop();
  });

  it('delivers a notification posted to node A to the user on node B, once', async () => {
    const user = uid('x');
    const onB = (await device(b, user)).client;
    const onA = (await device(a, user)).client;
    const id = await pushed(a, user, { from: 'a' });
    for (const c of [onA, onB]) {
      const ev = await c.next('notify', 3000);
      assert.deepEqual([ev.data.id, ev.data.data], [id, { from: 'a' }]);
    }
    assert.deepEqual(await onB.collect('notify', 300), [], 'no duplicate');
    // One inbox for both nodes: read on B, A's device hears of it.
    expectAck(await onB.request('notify:read', { data: { ids: [id] } }), 1);
    assert.deepEqual((await onA.next('notify:read', 3000)).data, { ids: [id] });
    assert.deepEqual((await device(a, user)).items, []);
  });

  // Regression: an answer written after Redis replied completes the transaction, and
  // lws then recycles the session that held the request (a use after free).
  it('answers several Redis-backed calls on one kept-alive connection', async () => {
    const user = uid('ka');
    const res = await notifyKeepAlive(a, [{ user, data: 1 }, { user, data: 2 }, { user, data: 3 }]);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(res.map((r) => r.reused), [false, true, true], 'one connection');
    assert.equal((await device(b, user)).items.length, 3);
    assert.ok(a.alive());
  });

  it('keeps the inbox in Redis under a hash-tagged key with a TTL', async () => {
    const user = uid('key');
    const id = await pushed(b, user, 1);
    const key = `mw:inbox:{${user}}`;
    assert.equal(redis.cli('LLEN', key), '1');
    assert.match(redis.cli('LINDEX', key, '0'), new RegExp(`^\\{"id":"${id}","ts":\\d+,"data":1\\}$`));
    assert.ok(Number(redis.cli('PTTL', key)) > 0, 'the inbox expires');
  });

  it('keeps the backlog across a restart of the node', async () => {
    const user = uid('restart');
    const ids = [await pushed(b, user, 'one'), await pushed(a, user, 'two')];
    await b.stop();
    b = null;
    b = await startServer({ routes: ROUTES, config: { ...config(), node_id: 'node-b' } });
    await waitFor(async () => (await ready(b)) === 200, 5000, 'node B back');
    const { items } = await device(b, user);
    assert.deepEqual(items.map((i) => i.id), ids);
    assert.deepEqual(items.map((i) => i.data), ['one', 'two']);
  });

  it('answers 503 unavailable while Redis is down, and stores again once it is back', async () => {
    const user = uid('down');
    const port = redis.port;
    await redis.stop();
    await waitFor(async () => (await ready(a)) === 503, 5000, 'node A sees Redis down');
    const res = await notify(a, { user, data: 'lost?' });
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error, 'unavailable');
    await a.waitForLog(new RegExp(`api notify failed.*user=${user}`));
    const metrics = (await request('GET', a.httpUrl('/metrics'))).text;
    assert.match(metrics, /^moonwire_inbox_push_failures_total [1-9]/m);
    const c = await connect(a.url(`/notify?user=${user}`));
    expectError(await c.next((m) => m.type === 'error' || m.type === 'notify:backlog'),
      'unavailable', undefined, 'no backlog while Redis is down');
    assert.ok(a.alive());

    redis = await startRedis(port);
    await waitFor(async () => (await ready(a)) === 200, 10000, 'node A sees Redis back');
    const id = await pushed(a, user, 'kept');
    assert.deepEqual((await device(a, user)).items.map((i) => i.id), [id],
      'only what was answered 200 is in the inbox');
  });
});
