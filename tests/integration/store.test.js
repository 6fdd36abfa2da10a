// mw.store through real WebSocket clients: values round-trip as JSON, add/replace/incr,
// TTL expiry, lists, argument errors as `internal` with a log line, one store shared by
// every connection and route. The same cases run three times: the memory backend; the
// memory backend with MOONWIRE_STORE_DEFERRED=1, where every store call yields to the
// loop (the path the Redis backend takes); and the Redis backend against a real
// redis-server. In the last two other connections keep being served while a handler
// waits on the store. (store-redis.test.js has what only the Redis backend does.)
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, waitFor, sleep } = require('./lib/helpers');

// A route whose "store" message runs mw.store[op](args...) and acks with every result
// as an array (nil as null): {op, args} -> [r1, r2, ...].
const SCRIPT = `
local mw = require "moonwire"
local store, json = mw.store, mw.json
local app = mw.app()

local function pack(...)
  local out = json.array()
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = json.null end
    out[i] = v
  end
  return out
end

app:on("store", function(conn, msg)
  local d = msg.data
  local args = {}
  local n = d.args and #d.args or 0
  for i = 1, n do
    local v = d.args[i]
    if v == json.null then v = nil end
    args[i] = v
  end
  return pack(store[d.op](unpack(args, 1, n)))
end)

-- Values a client cannot send.
app:on("store:function", function(conn, msg) return store.set(msg.data, print) end)
app:on("store:table-key", function(conn, msg) return store.get({ msg.data }) end)

-- Many store calls in one handler: each one waits when the store is deferred.
app:on("store:many", function(conn, msg)
  local key, n = msg.data.key, msg.data.n
  store.delete(key)
  for _ = 1, n do store.incr(key, 1, 0) end
  store.rpush(key .. ":list", n)
  return { value = store.get(key), list = store.lrange(key .. ":list") }
end)

-- Read-modify-write with gets/cas, retried while another writer got there first:
-- n increments of data.key, and how many cas calls lost a race.
app:on("store:cas-incr", function(conn, msg)
  local key, lost = msg.data.key, 0
  for _ = 1, msg.data.n do
    while true do
      local v, token = store.gets(key)
      if store.cas(key, token, (v or 0) + 1) then break end
      lost = lost + 1
    end
  end
  return { lost = lost }
end)

-- Store calls until another connection sets the stop key (bounded by 5 s): it can only
-- end if other messages are handled while it runs.
app:on("store:spin", function(conn, msg)
  local key, t0, spins = msg.data, mw.now(), 0
  store.set(key .. ":spinning", true)
  while not store.get(key .. ":stop") and mw.now() - t0 < 5000 do
    store.incr(key .. ":spins", 1, 0)
    spins = spins + 1
  end
  return { spins = spins, stopped = store.get(key .. ":stop") == true }
end)

return app
`;

// mode: 'at once' | 'deferred' (memory backend) | 'redis'.
function storeSuite(mode, env) {
  describe(`mw.store (${mode})`, () => {
    let redis;
    let server;
    let c;

    before(async () => {
      // Many calls per connection: the rate limit is not what these tests are about.
      const config = { limits: { rate: 1000, burst: 1000 } };
      if (mode === 'redis') {
        redis = await startRedis();
        config.redis = { url: redis.url };
      }
      server = await startServer({
        routes: { '/store': { script: 'store.lua' }, '/store2': { script: 'store.lua' } },
        scripts: { 'store.lua': SCRIPT },
        config,
        env,
      });
      await server.waitForLog(mode === 'redis'
        ? /msg="store ready" backend=redis prefix=mw:s:/
        : new RegExp(`msg="store ready" backend=memory deferred=${mode === 'deferred' ? 1 : 0}`));
      if (mode === 'redis') await server.waitForLog(/msg="redis up"/, 5000);
      c = await connect(server.url('/store'));
    });
    after(async () => {
      await closeAll();
      if (server) await server.stop();
      if (redis) await redis.stop();
    });

    // Runs one store operation and returns its results array.
    async function call(client, op, ...args) {
      const reply = await client.request('store', { data: { op, args } });
      return expectAck(reply, reply.id, `store.${op}(${JSON.stringify(args).slice(1, -1)})`);
    }

    it('round-trips numbers, strings, booleans, objects and arrays (empty ones too)', async () => {
      const values = [
        0, 12, -7, 3.25, 1e21, 'text', '', 'ünïcode ✓', true, false,
        { a: 1, b: [1, 2, { c: 'd' }], e: {}, f: [] }, [], {}, [1, 'two', [3], {}], [[]],
      ];
      for (const [i, v] of values.entries()) {
        const k = uid(`v${i}`);
        assert.deepEqual(await call(c, 'set', k, v), [true]);
        assert.deepEqual(await call(c, 'get', k), [v], `value ${JSON.stringify(v)}`);
      }
      assert.deepEqual(await call(c, 'get', uid('absent')), [null]);
      const k = uid('del');
      await call(c, 'set', k, 1);
      assert.deepEqual(await call(c, 'set', k, null), [true], 'set(k, nil) deletes');
      assert.deepEqual(await call(c, 'get', k), [null]);
      await call(c, 'set', k, 2);
      assert.deepEqual(await call(c, 'delete', k), [true]);
      assert.deepEqual(await call(c, 'delete', k), [true]);
      assert.deepEqual(await call(c, 'get', k), [null]);
    });

    it('add sets only a missing key, replace only a present one', async () => {
      const k = uid('add');
      assert.deepEqual(await call(c, 'replace', k, 1), [false, 'not found']);
      assert.deepEqual(await call(c, 'add', k, 1), [true]);
      assert.deepEqual(await call(c, 'add', k, 2), [false, 'exists']);
      assert.deepEqual(await call(c, 'get', k), [1]);
      assert.deepEqual(await call(c, 'replace', k, { x: 3 }), [true]);
      assert.deepEqual(await call(c, 'get', k), [{ x: 3 }]);
    });

    it('incr counts, starts from init, and refuses what is not a number', async () => {
      const k = uid('n');
      assert.deepEqual(await call(c, 'incr', k, 1), [null, 'not found']);
      assert.deepEqual(await call(c, 'incr', k, 1, 10), [11]);
      assert.deepEqual(await call(c, 'incr', k, -2.5, 10), [8.5]);
      assert.deepEqual(await call(c, 'get', k), [8.5]);
      const s = uid('s');
      await call(c, 'set', s, '12');
      assert.deepEqual(await call(c, 'incr', s, 1), [null, 'not a number']);
      const l = uid('l');
      await call(c, 'rpush', l, 1);
      assert.deepEqual(await call(c, 'incr', l, 1, 0), [null, 'wrong type']);
    });

    it('expires a key after its ttl, and reports ttl and expire', async () => {
      const k = uid('ttl');
      const t0 = Date.now();
      assert.deepEqual(await call(c, 'set', k, 'brief', 0.3), [true]);
      const [left] = await call(c, 'ttl', k);
      assert.ok(left > 0 && left <= 0.3, `ttl ${left}`);
      assert.deepEqual(await call(c, 'get', k), ['brief']);
      await waitFor(async () => (await call(c, 'get', k))[0] === null, 3000, 'the key to expire');
      assert.ok(Date.now() - t0 >= 250, 'not before its ttl');
      assert.deepEqual(await call(c, 'ttl', k), [null, 'not found']);
      assert.deepEqual(await call(c, 'expire', k, 1), [false, 'not found']);

      const p = uid('persist');
      await call(c, 'set', p, 1, 0.2);
      assert.deepEqual(await call(c, 'expire', p, 0), [true]);
      assert.deepEqual(await call(c, 'ttl', p), [0]);
      await sleep(300);
      assert.deepEqual(await call(c, 'get', p), [1]);
      assert.deepEqual(await call(c, 'expire', p, 100), [true]);
      const [t] = await call(c, 'ttl', p);
      assert.ok(t > 99 && t <= 100, `ttl ${t}`);
    });

    it('keeps lists: push, pop, len and Redis-style ranges', async () => {
      const l = uid('list');
      assert.deepEqual(await call(c, 'llen', l), [0]);
      assert.deepEqual(await call(c, 'lrange', l, 0, -1), [[]]);
      assert.deepEqual(await call(c, 'lpop', l), [null]);
      assert.deepEqual(await call(c, 'rpush', l, 'a'), [1]);
      assert.deepEqual(await call(c, 'rpush', l, { b: [] }), [2]);
      assert.deepEqual(await call(c, 'lpush', l, 0), [3]);
      assert.deepEqual(await call(c, 'llen', l), [3]);
      assert.deepEqual(await call(c, 'lrange', l, 0, -1), [[0, 'a', { b: [] }]]);
      assert.deepEqual(await call(c, 'lrange', l), [[0, 'a', { b: [] }]]);
      assert.deepEqual(await call(c, 'lrange', l, 1, 1), [['a']]);
      assert.deepEqual(await call(c, 'lrange', l, -2, 100), [['a', { b: [] }]]);
      assert.deepEqual(await call(c, 'lrange', l, 2, 1), [[]]);
      assert.deepEqual(await call(c, 'lpop', l), [0]);
      assert.deepEqual(await call(c, 'rpop', l), [{ b: [] }]);
      assert.deepEqual(await call(c, 'rpop', l), ['a']);
      assert.deepEqual(await call(c, 'rpop', l), [null]);
      assert.deepEqual(await call(c, 'get', l), [null], 'an emptied list is gone');

      const s = uid('scalar');
      await call(c, 'set', s, 'x');
      for (const op of ['lpush', 'rpush']) {
        assert.deepEqual(await call(c, op, s, 1), [null, 'wrong type']);
      }
      for (const op of ['lpop', 'rpop', 'llen', 'lrange']) {
        assert.deepEqual(await call(c, op, s), [null, 'wrong type']);
      }
      await call(c, 'rpush', l, 1);
      assert.deepEqual(await call(c, 'get', l), [null, 'wrong type']);
      assert.deepEqual(await call(c, 'set', l, 'now a scalar'), [true]);
      assert.deepEqual(await call(c, 'get', l), ['now a scalar']);
    });

    it('gets and cas change a value only from what was read', async () => {
      const k = uid('cas');
      assert.deepEqual(await call(c, 'gets', k), [null]);
      assert.deepEqual(await call(c, 'cas', k, null, { status: 'held' }), [true]);
      assert.deepEqual(await call(c, 'cas', k, null, { status: 'held' }), [false, 'changed']);
      const [v, token] = await call(c, 'gets', k);
      assert.deepEqual(v, { status: 'held' });
      assert.equal(typeof token, 'string');
      assert.deepEqual(await call(c, 'cas', k, token, { status: 'confirmed' }, 60), [true]);
      assert.deepEqual(await call(c, 'cas', k, token, { status: 'expired' }), [false, 'changed']);
      assert.deepEqual(await call(c, 'get', k), [{ status: 'confirmed' }]);
      const [ttl] = await call(c, 'ttl', k);
      assert.ok(ttl > 59 && ttl <= 60, `ttl ${ttl}`);
      const [, token2] = await call(c, 'gets', k);
      assert.deepEqual(await call(c, 'cas', k, token2, null), [true], 'a nil value deletes');
      assert.deepEqual(await call(c, 'get', k), [null]);
      const l = uid('l');
      await call(c, 'rpush', l, 1);
      assert.deepEqual(await call(c, 'cas', l, null, 1), [false, 'wrong type']);
    });

    it('lets exactly one of racing cas calls win', async () => {
      const k = uid('race');
      const clients = [c];
      for (let i = 1; i < 20; i++) clients.push(await connect(server.url(i % 2 ? '/store' : '/store2')));
      const results = await Promise.all(clients.map((cl, i) => call(cl, 'cas', k, null, `writer ${i}`)));
      const winners = results.map((r, i) => (r[0] === true ? i : -1)).filter((i) => i >= 0);
      assert.equal(winners.length, 1, JSON.stringify(results));
      for (const r of results) if (r[0] !== true) assert.deepEqual(r, [false, 'changed']);
      assert.deepEqual(await call(c, 'get', k), [`writer ${winners[0]}`]);
      // Read-modify-write loops on one key from several handlers at once: no lost update.
      const n = uid('counter');
      const replies = await Promise.all(clients.slice(0, 10).map((cl) =>
        cl.request('store:cas-incr', { data: { key: n, n: 10 }, ms: 10000 })));
      for (const r of replies) expectAck(r, r.id, 'cas-incr');
      assert.deepEqual(await call(c, 'get', n), [100]);
      for (const cl of clients.slice(1)) await cl.close();
    });

    it('keeps hashes: fields, hgetall, hcas', async () => {
      const h = uid('hash');
      assert.deepEqual(await call(c, 'hgetall', h), [{}]);
      assert.deepEqual(await call(c, 'hget', h, 't1'), [null]);
      assert.deepEqual(await call(c, 'hset', h, 't1', { user: 'ana' }), [true]);
      assert.deepEqual(await call(c, 'hset', h, 't2/19:00', [1, {}]), [true]);
      assert.deepEqual(await call(c, 'hget', h, 't1'), [{ user: 'ana' }]);
      assert.deepEqual(await call(c, 'hgetall', h), [{ t1: { user: 'ana' }, 't2/19:00': [1, {}] }]);
      const [, token] = await call(c, 'hgets', h, 't1');
      assert.deepEqual(await call(c, 'hcas', h, 't1', token, { user: 'bob' }), [true]);
      assert.deepEqual(await call(c, 'hcas', h, 't1', token, { user: 'eve' }), [false, 'changed']);
      assert.deepEqual(await call(c, 'hcas', h, 't3', null, 3), [true]);
      assert.deepEqual(await call(c, 'hcas', h, 't3', null, 4), [false, 'changed']);
      assert.deepEqual(await call(c, 'hdel', h, 't3'), [true]);
      assert.deepEqual(await call(c, 'hset', h, 't2/19:00', null), [true], 'hset(k, f, nil) deletes');
      assert.deepEqual(await call(c, 'hgetall', h), [{ t1: { user: 'bob' } }]);
      assert.deepEqual(await call(c, 'get', h), [null, 'wrong type']);
      const [, t1] = await call(c, 'hgets', h, 't1');
      assert.deepEqual(await call(c, 'hcas', h, 't1', t1, null), [true]);
      assert.deepEqual(await call(c, 'get', h), [null], 'an emptied hash is gone');
    });

    it('hands each due item of a timed queue to one caller, on time', async () => {
      const q = uid('queue');
      const other = await connect(server.url('/store2'));
      assert.deepEqual(await call(c, 'due', q), [[]]);
      for (let i = 0; i < 30; i++) await call(c, 'schedule', q, ['item', i], 0.2);
      assert.deepEqual(await call(c, 'schedule', q, 'later', 3600), [true]);
      assert.deepEqual(await call(c, 'due', q), [[]], 'nothing before its time');
      const got = [];
      await waitFor(async () => {
        const [a] = await call(c, 'due', q, 7);
        const [b] = await call(other, 'due', q, 7);
        got.push(...a, ...b);
        return got.length >= 30;
      }, 5000, 'every item to come due');
      assert.deepEqual(got.map((it) => it[1]).sort((x, y) => x - y), [...Array(30).keys()],
        'each item exactly once');
      assert.deepEqual(await call(c, 'due', q), [[]]);
      // A lease hands an item out again unless its taker unschedules it.
      assert.deepEqual(await call(c, 'schedule', q, 'job', 0), [true]);
      assert.deepEqual(await call(c, 'due', q, 10, 0.2), [['job']]);
      assert.deepEqual(await call(other, 'due', q, 10, 0.2), [[]]);
      await waitFor(async () => (await call(other, 'due', q, 10, 0.2))[0].length === 1, 3000,
        'the leased item to come back');
      assert.deepEqual(await call(other, 'unschedule', q, 'job'), [true]);
      assert.deepEqual(await call(other, 'unschedule', q, 'job'), [false, 'not found']);
      assert.deepEqual(await call(c, 'unschedule', q, 'later'), [true]);
      assert.deepEqual(await call(c, 'get', q), [null], 'an emptied queue is gone');
      await other.close();
    });

    it('answers wrong arguments with internal and logs the Lua error', async () => {
      const cases = [
        [{ op: 'get', args: [1] }, /store\.lua:\d+: store\.get: key must be a string of 1\.\.256 bytes/],
        [{ op: 'set', args: ['x'.repeat(257), 1] }, /store\.set: key must be a string of 1\.\.256 bytes/],
        [{ op: 'set', args: ['k', 1, -1] }, /store\.set: ttl must be a number of seconds >= 0/],
        [{ op: 'incr', args: ['k', 'one'] }, /store\.incr: n must be a finite number/],
        [{ op: 'lrange', args: ['k', 0.5] }, /store\.lrange: start must be an integer/],
        [{ op: 'cas', args: ['k', 5, 1] }, /store\.cas: token must be nil or a string from gets\/hgets/],
        [{ op: 'hset', args: ['k', '', 1] }, /store\.hset: field must be a string of 1\.\.1024 bytes/],
        [{ op: 'schedule', args: ['q', 'x'] }, /store\.schedule: delay must be a number of seconds >= 0/],
        [{ op: 'due', args: ['q', 5000] }, /store\.due: limit must be an integer of 1\.\.1000/],
      ];
      for (const [data, log] of cases) {
        const reply = await c.request('store', { data });
        expectError(reply, 'internal', reply.id, JSON.stringify(data));
        assert.equal(reply.message, 'internal error', 'the error text stays in the log');
        await server.waitForLog(new RegExp(`lua error.*type=store .*${log.source}`));
      }
      const fn = await c.request('store:function', { data: uid('fn') });
      expectError(fn, 'internal', fn.id);
      await server.waitForLog(/lua error.*store\.set: value cannot be stored: .*function/);
      const tk = await c.request('store:table-key', { data: 'k' });
      expectError(tk, 'internal', tk.id);
      await server.waitForLog(/lua error.*type=store:table-key.*store\.get: key must be a string/);
      // The connection and the store still work.
      const k = uid('after');
      assert.deepEqual(await call(c, 'set', k, 1), [true]);
      assert.deepEqual(await call(c, 'get', k), [1]);
    });

    it('is one store for every connection and route', async () => {
      const other = await connect(server.url('/store'));
      const elsewhere = await connect(server.url('/store2'));
      const k = uid('shared');
      await call(c, 'set', k, { from: 'first' });
      assert.deepEqual(await call(other, 'get', k), [{ from: 'first' }]);
      assert.deepEqual(await call(elsewhere, 'get', k), [{ from: 'first' }]);
      await call(elsewhere, 'incr', `${k}:n`, 5, 0);
      assert.deepEqual(await call(other, 'incr', `${k}:n`, 1), [6]);
      await other.close();
      await elsewhere.close();
    });

    it('runs many store calls in one handler', async () => {
      const k = uid('many');
      const reply = await c.request('store:many', { data: { key: k, n: 500 }, ms: 10000 });
      assert.deepEqual(expectAck(reply, reply.id), { value: 500, list: [500] });
    });

    if (mode !== 'at once') {
      it('serves other connections while a handler waits on the store', async () => {
        const other = await connect(server.url('/store'));
        const k = uid('spin');
        const id = c.nextId++;
        c.send({ type: 'store:spin', id, data: k });
        // The other connection's store calls run while the spinning handler runs...
        await waitFor(async () => (await call(other, 'get', `${k}:spinning`))[0] === true, 3000,
          'the spinning handler to start');
        // ...and so does the core's ping, promptly.
        const t0 = Date.now();
        other.send({ type: 'ping', id: 'p', data: 'still there?' });
        const pong = await other.next({ type: 'pong', id: 'p' }, 2000);
        assert.equal(pong.data, 'still there?');
        const pongMs = Date.now() - t0;
        assert.ok(pongMs < 1000, `pong took ${pongMs} ms`);
        assert.deepEqual(await call(other, 'set', `${k}:stop`, true), [true]);
        const done = expectAck(await c.next({ type: 'ack', id }, 6000), id);
        assert.equal(done.stopped, true, 'the handler ended because of the other connection');
        assert.ok(done.spins > 0);
        const [spins] = await call(other, 'get', `${k}:spins`);
        assert.equal(spins, done.spins);
        await other.close();
      });
    }
  });
}

storeSuite('at once', {});
storeSuite('deferred', { MOONWIRE_STORE_DEFERRED: '1' });
storeSuite('redis', {});

after(closeAll);
