// What only the store's Redis backend and mw.redis.call do, against real redis-servers
// started on free ports (the store's semantics, shared with the memory backend, are in
// store.test.js): the stored form under mw:s: that redis-cli can read and change, data
// of other types, "no memory", a flushed script cache, two nodes sharing one store,
// "unavailable" at once while Redis is down (and for calls in flight when it goes), and
// raw commands with their replies converted to Lua.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, waitFor } = require('./lib/helpers');

// "store" {op, args} runs mw.store[op](args...), "redis" {args} runs
// mw.redis.call(args...); both ack with every result as an array (nil as null).
const SCRIPT = `
local mw = require "moonwire"
local store, redis, json = mw.store, mw.redis, mw.json
local app = mw.app()

-- At load time nothing can wait: both refuse (the memory store would not need to).
local _, load_store_err = pcall(store.get, "k")
local _, load_redis_err = pcall(redis.call, "PING")

local function pack(...)
  local out = json.array()
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = json.null end
    out[i] = v
  end
  return out
end

local function args_of(msg)
  local args, n = {}, msg.data.args and #msg.data.args or 0
  for i = 1, n do
    local v = msg.data.args[i]
    if v == json.null then v = nil end
    args[i] = v
  end
  return args, n
end

app:on("store", function(conn, msg)
  local args, n = args_of(msg)
  return pack(store[msg.data.op](unpack(args, 1, n)))
end)

app:on("redis", function(conn, msg)
  local args, n = args_of(msg)
  return pack(redis.call(unpack(args, 1, n)))
end)

-- Arguments a client cannot send.
app:on("redis:table-arg", function() return redis.call("GET", {}) end)
app:on("redis:no-command", function() return redis.call() end)
app:on("redis:boolean-arg", function() return redis.call("SET", "k", true) end)
app:on("redis:nan-arg", function() return redis.call("SET", "k", 0/0) end)

app:on("loadtime", function() return { store = load_store_err, redis = load_redis_err } end)

return app
`;

async function call(client, op, ...args) {
  const reply = await client.request('store', { data: { op, args } });
  return expectAck(reply, reply.id, `store.${op}(${JSON.stringify(args).slice(1, -1)})`);
}

async function rcall(client, ...args) {
  const reply = await client.request('redis', { data: { args } });
  return expectAck(reply, reply.id, `redis.call(${JSON.stringify(args).slice(1, -1)})`);
}

async function startNode(redis, nodeId) {
  const node = await startServer({
    // Many calls per connection: the rate limit is not what these tests are about.
    config: { redis: { url: redis.url }, node_id: nodeId, limits: { rate: 1000, burst: 1000 } },
    routes: { '/s': { script: 's.lua' } },
    scripts: { 's.lua': SCRIPT },
  });
  await node.waitForLog(/msg="redis up"/, 5000);
  return node;
}

describe('the store on Redis', () => {
  let redis;
  let a;
  let c;

  before(async () => {
    redis = await startRedis();
    a = await startNode(redis, 'node-a');
    c = await connect(a.url('/s'));
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (redis) await redis.stop();
  });

  it('keeps values as JSON text under mw:s:, which redis-cli can read and change', async () => {
    const k = uid('k');
    await call(c, 'set', k, { a: [1, 'two'] });
    assert.equal(redis.cli('GET', `mw:s:${k}`), '{"a":[1,"two"]}');
    await call(c, 'set', k, 'abc');
    assert.equal(redis.cli('GET', `mw:s:${k}`), '"abc"');
    assert.equal(redis.cli('EXISTS', k), '0', 'nothing outside the prefix');

    const n = uid('n');
    await call(c, 'set', n, 12);
    assert.equal(redis.cli('GET', `mw:s:${n}`), '12');
    assert.equal(redis.cli('INCRBY', `mw:s:${n}`, '5'), '17', 'a stored number is a Redis number');
    assert.deepEqual(await call(c, 'get', n), [17]);
    redis.cli('INCRBYFLOAT', `mw:s:${n}`, '0.5');
    assert.deepEqual(await call(c, 'incr', n, 1), [18.5]);
    assert.equal(redis.cli('GET', `mw:s:${n}`), '18.5');

    const t = uid('t');
    await call(c, 'set', t, 1, 100);
    const pttl = Number(redis.cli('PTTL', `mw:s:${t}`));
    assert.ok(pttl > 99000 && pttl <= 100000, `PTTL ${pttl}`);
    await call(c, 'incr', t, 1);
    assert.ok(Number(redis.cli('PTTL', `mw:s:${t}`)) > 99000, 'incr keeps the TTL');

    const l = uid('l');
    await call(c, 'rpush', l, { x: 1 });
    await call(c, 'rpush', l, 'y');
    assert.equal(redis.cli('LRANGE', `mw:s:${l}`, '0', '-1'), '{"x":1}\n"y"');

    const h = uid('h');
    await call(c, 'hset', h, 't1/19:00', { user: 'ana' });
    assert.equal(redis.cli('HGET', `mw:s:${h}`, 't1/19:00'), '{"user":"ana"}');
    redis.cli('HSET', `mw:s:${h}`, 't2', '7');
    assert.deepEqual(await call(c, 'hgetall', h), [{ 't1/19:00': { user: 'ana' }, t2: 7 }]);

    // A timed queue is a sorted set scored by due time in ms on Redis's clock.
    const q = uid('q');
    await call(c, 'schedule', q, ['venue:1', 'x'], 60);
    const score = Number(redis.cli('ZSCORE', `mw:s:${q}`, '["venue:1","x"]'));
    const [sec, usec] = redis.cli('TIME').split('\n').map(Number);
    const left = score - (sec * 1000 + Math.floor(usec / 1000));
    assert.ok(left > 59000 && left <= 60000, `due in ${left} ms`);
  });

  it('reads what other clients left there: other types are wrong, non-JSON is a bad value', async () => {
    const h = uid('hash');
    redis.cli('HSET', `mw:s:${h}`, 'f', 'v');
    assert.deepEqual(await call(c, 'get', h), [null, 'wrong type']);
    assert.deepEqual(await call(c, 'incr', h, 1, 0), [null, 'wrong type']);
    assert.deepEqual(await call(c, 'rpush', h, 1), [null, 'wrong type']);
    assert.deepEqual(await call(c, 'ttl', h), [0]);
    const raw = uid('raw');
    redis.cli('SET', `mw:s:${raw}`, 'not json');
    const [v, err] = await call(c, 'get', raw);
    assert.equal(v, null);
    assert.match(err, /^bad value: /);
    assert.deepEqual(await call(c, 'incr', raw, 1), [null, 'not a number']);
    const q = uid('quoted');
    redis.cli('SET', `mw:s:${q}`, '"12"');
    assert.deepEqual(await call(c, 'incr', q, 1), [null, 'not a number'],
      'a JSON string is no number, though INCRBYFLOAT would not say so');
    assert.equal(redis.cli('GET', `mw:s:${q}`), '"12"');
  });

  it('answers "no memory" when Redis is at its maxmemory', async () => {
    const k = uid('full');
    await call(c, 'set', k, 1);
    redis.cli('CONFIG', 'SET', 'maxmemory', '1');
    try {
      assert.deepEqual(await call(c, 'set', uid('new'), 1), [null, 'no memory']);
      assert.deepEqual(await call(c, 'add', uid('new'), 1), [false, 'no memory']);
      assert.deepEqual(await call(c, 'incr', k, 1), [null, 'no memory']);
      assert.deepEqual(await call(c, 'incr', uid('new'), 1, 0), [null, 'no memory']);
      assert.deepEqual(await call(c, 'rpush', uid('new'), 1), [null, 'no memory']);
      assert.deepEqual(await call(c, 'cas', uid('new'), null, 1), [false, 'no memory']);
      assert.deepEqual(await call(c, 'hset', uid('new'), 'f', 1), [null, 'no memory']);
      assert.deepEqual(await call(c, 'hcas', uid('new'), 'f', null, 1), [false, 'no memory']);
      assert.deepEqual(await call(c, 'schedule', uid('new'), 1, 0), [null, 'no memory']);
      assert.deepEqual(await call(c, 'get', k), [1], 'reads still work');
      assert.deepEqual(await call(c, 'delete', k), [true], 'and deletes');
    } finally {
      redis.cli('CONFIG', 'SET', 'maxmemory', '0');
    }
    assert.deepEqual(await call(c, 'set', k, 2), [true]);
  });

  it('runs its scripts again after Redis lost them (SCRIPT FLUSH)', async () => {
    const k = uid('n');
    assert.deepEqual(await call(c, 'incr', k, 1, 0), [1]);
    assert.deepEqual(await call(c, 'expire', k, 0), [true]);
    redis.cli('SCRIPT', 'FLUSH');
    assert.deepEqual(await call(c, 'incr', k, 1), [2]);
    assert.deepEqual(await call(c, 'expire', k, 0), [true]);
    assert.deepEqual(await call(c, 'expire', uid('absent'), 0), [false, 'not found']);
    assert.deepEqual(await call(c, 'incr', k, 1), [3]);
  });

  it('refuses to wait at load time', async () => {
    const r = await c.request('loadtime', {});
    const d = expectAck(r, r.id);
    assert.match(d.store, /cannot wait here/);
    assert.match(d.redis, /cannot wait here/);
  });

  it('is one store for two nodes', async () => {
    const b = await startNode(redis, 'node-b');
    try {
      const cb = await connect(b.url('/s'));
      const k = uid('shared');
      await call(c, 'set', k, { from: 'a' });
      assert.deepEqual(await call(cb, 'get', k), [{ from: 'a' }]);
      assert.deepEqual(await call(cb, 'add', k, 2), [false, 'exists']);
      // Increments from both nodes at once: none lost.
      const n = uid('count');
      const N = 50;
      await Promise.all([...Array(N)].flatMap(() => [call(c, 'incr', n, 1, 0), call(cb, 'incr', n, 1, 0)]));
      assert.deepEqual(await call(c, 'get', n), [2 * N]);
      await call(cb, 'rpush', `${k}:l`, 'b');
      assert.deepEqual(await call(c, 'lpop', `${k}:l`), ['b']);

      // Racing cas calls from 20 clients on both nodes: exactly one wins.
      const clients = [c, cb];
      for (let i = 2; i < 20; i++) clients.push(await connect((i % 2 ? b : a).url('/s')));
      const h = uid('seats');
      const results = await Promise.all(clients.map((cl, i) => call(cl, 'hcas', h, 't1', null, i)));
      const winners = results.filter((r) => r[0] === true);
      assert.equal(winners.length, 1, JSON.stringify(results));
      assert.equal(results.filter((r) => r[1] === 'changed').length, 19);

      // A timed queue polled from both nodes hands out every item once.
      const q = uid('q');
      for (let i = 0; i < 40; i++) await call(i % 2 ? c : cb, 'schedule', q, i, 0.1);
      const got = [];
      await waitFor(async () => {
        const polls = await Promise.all(clients.slice(0, 6).map((cl) => call(cl, 'due', q, 3)));
        for (const [items] of polls) got.push(...items);
        return got.length >= 40;
      }, 5000, 'every item to come due');
      assert.deepEqual(got.sort((x, y) => x - y), [...Array(40).keys()]);
      for (const cl of clients.slice(2)) await cl.close();
      await cb.close();
    } finally {
      await b.stop();
    }
  });
});

describe('mw.redis.call', () => {
  let redis;
  let a;
  let c;

  before(async () => {
    redis = await startRedis();
    a = await startNode(redis, 'node-a');
    c = await connect(a.url('/s'));
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (redis) await redis.stop();
  });

  it('returns status, bulk, integer and nil replies', async () => {
    const k = uid('k');
    assert.deepEqual(await rcall(c, 'PING'), ['PONG']);
    assert.deepEqual(await rcall(c, 'ping', 'hello'), ['hello']);
    assert.deepEqual(await rcall(c, 'SET', k, 'v'), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['v']);
    assert.deepEqual(await rcall(c, 'GET', uid('absent')), [null]);
    assert.deepEqual(await rcall(c, 'EXISTS', k, uid('absent')), [1]);
    assert.deepEqual(await rcall(c, 'SET', k, ''), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['']);
    assert.equal(redis.cli('EXISTS', k), '1', 'raw keys are not prefixed');
  });

  it('sends numbers as Redis reads them: integers without a fraction, others exactly', async () => {
    const k = uid('n');
    assert.deepEqual(await rcall(c, 'INCRBY', k, 3), [3]);
    assert.deepEqual(await rcall(c, 'INCRBY', k, -5), [-2]);
    assert.deepEqual(await rcall(c, 'SET', k, 1e18), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['1000000000000000000']);
    assert.deepEqual(await rcall(c, 'SET', k, 1e20), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['1e+20'], 'beyond 2^63: %.17g');
    assert.deepEqual(await rcall(c, 'SET', k, 0.1), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['0.1'], 'the shortest text that reads back');
    assert.deepEqual(await rcall(c, 'INCRBYFLOAT', k, 1.5), ['1.6']);
    assert.deepEqual(await rcall(c, 'SET', k, 1 / 3), ['OK']);
    assert.deepEqual(await rcall(c, 'GET', k), ['0.3333333333333333']);
  });

  it('returns an error reply as nil and its message, without raising', async () => {
    const k = uid('s');
    await rcall(c, 'SET', k, 'text');
    assert.deepEqual(await rcall(c, 'INCR', k), [null, 'ERR value is not an integer or out of range']);
    assert.deepEqual(await rcall(c, 'NOSUCHCOMMAND'), [null, "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "]);
    await rcall(c, 'RPUSH', `${k}:l`, 'x');
    const [v, err] = await rcall(c, 'GET', `${k}:l`);
    assert.equal(v, null);
    assert.match(err, /^WRONGTYPE /);
  });

  it('returns arrays as arrays, nested, with null and error elements', async () => {
    const l = uid('l');
    assert.deepEqual(await rcall(c, 'RPUSH', l, 'a', 'b', 3), [3]);
    assert.deepEqual(await rcall(c, 'LRANGE', l, 0, -1), [['a', 'b', '3']]);
    assert.deepEqual(await rcall(c, 'LRANGE', uid('empty'), 0, -1), [[]], 'an empty array stays an array');
    await rcall(c, 'SET', `${l}:s`, 'v');
    assert.deepEqual(await rcall(c, 'MGET', `${l}:s`, `${l}:none`), [['v', null]]);
    const h = uid('h');
    await rcall(c, 'HSET', h, 'f', 1);
    assert.deepEqual(await rcall(c, 'HGETALL', h), [['f', '1']]);
    assert.deepEqual(await rcall(c, 'EVAL', "return {1, {2, 'x', {}}, redis.error_reply('boom'), 'z'}", 0),
      [[1, [2, 'x', []], { err: 'ERR boom' }, 'z']]);
  });

  it('raises for bad arguments and commands that would disturb the shared connection', async () => {
    const cases = [
      ['redis:no-command', /redis\.call: the command must be a non-empty string/],
      ['redis:table-arg', /redis\.call: argument #2 must be a string or a number, not table/],
      ['redis:boolean-arg', /redis\.call: argument #3 must be a string or a number, not boolean/],
      ['redis:nan-arg', /redis\.call: argument #3 is NaN/],
    ];
    for (const [type, log] of cases) {
      const reply = await c.request(type, {});
      expectError(reply, 'internal', reply.id, type);
      await a.waitForLog(new RegExp(`lua error.*${log.source}`));
    }
    const refused = [
      [['SUBSCRIBE', 'ch'], /SUBSCRIBE is not available here: it would change the connection/],
      [['multi'], /multi is not available here: use EVAL/],
      [['BLPOP', 'l', 0], /BLPOP is not available here: it would hold up the connection/],
      [['SELECT', 1], /SELECT is not available here/],
      [['XREAD', 'BLOCK', 0, 'STREAMS', 's', '$'], /XREAD is not available here/],
      [['CLIENT', 'REPLY', 'OFF'], /CLIENT is not available here/],
    ];
    for (const [args, log] of refused) {
      const reply = await c.request('redis', { data: { args } });
      expectError(reply, 'internal', reply.id, args[0]);
      await a.waitForLog(new RegExp(`lua error.*redis\\.call: ${log.source}`));
    }
    const [id] = await rcall(c, 'CLIENT', 'ID');
    assert.equal(typeof id, 'number', 'CLIENT is fine otherwise');
    assert.deepEqual(await rcall(c, 'PING'), ['PONG'], 'the connection still works');
  });
});

describe('Redis down', () => {
  let redis;
  let a;

  before(async () => {
    redis = await startRedis();
    a = await startNode(redis, 'node-a');
  });
  after(async () => {
    await closeAll();
    if (a) await a.stop();
    if (redis) await redis.stop();
  });

  it('answers calls in flight when Redis goes away with "unavailable"', async () => {
    const c = await connect(a.url('/s'));
    const other = await connect(a.url('/s'));
    // Redis holds back writes (it reads them, but answers only after the pause)...
    redis.cli('CLIENT', 'PAUSE', '10000', 'WRITE');
    const k = uid('k');
    const raw = c.request('redis', { data: { args: ['SET', k, 'v'] }, ms: 5000 });
    const stored = other.request('store', { data: { op: 'set', args: [k, 1] }, ms: 5000 });
    await new Promise((r) => setTimeout(r, 200));
    // ...and goes away before it answers them.
    await redis.stop();
    const t0 = Date.now();
    const [r, s] = await Promise.all([raw, stored]);
    assert.deepEqual(expectAck(r, r.id), [null, 'unavailable']);
    assert.deepEqual(expectAck(s, s.id), [null, 'unavailable']);
    assert.ok(Date.now() - t0 < 1000, 'at once, not after a timeout');
    redis = await startRedis(redis.port);
    await waitFor(async () => (await call(other, 'set', 'k', 1))[0] === true, 15000, 'Redis back');
  });

  it('answers "unavailable" at once while Redis is down, and works again when it is back', async () => {
    const c = await connect(a.url('/s'));
    const k = uid('k');
    assert.deepEqual(await call(c, 'incr', k, 1, 0), [1]); // the scripts' SHA1s are known
    // Both links up (the subscriber reconnects on its own schedule): then losing them
    // is logged as a transition.
    await waitFor(async () => (await request('GET', a.httpUrl('/readyz'))).status === 200, 15000,
      'the node ready');
    const downs = () => (a.logs().match(/msg="redis down"/g) || []).length;
    const before = downs();
    const port = redis.port;
    await redis.stop();
    await waitFor(() => downs() > before, 3000, 'the node to see Redis go');
    const t0 = Date.now();
    assert.deepEqual(await call(c, 'get', k), [null, 'unavailable']);
    assert.deepEqual(await call(c, 'set', k, 1), [null, 'unavailable']);
    assert.deepEqual(await call(c, 'add', k, 1), [null, 'unavailable']);
    assert.deepEqual(await call(c, 'incr', k, 1, 0), [null, 'unavailable']);
    assert.deepEqual(await call(c, 'expire', k, 1), [null, 'unavailable']);
    assert.deepEqual(await call(c, 'lrange', k), [null, 'unavailable']);
    assert.deepEqual(await rcall(c, 'PING'), [null, 'unavailable']);
    assert.ok(Date.now() - t0 < 500, `answered in ${Date.now() - t0} ms`);

    redis = await startRedis(port);
    await waitFor(async () => (await call(c, 'set', k, 5))[0] === true, 15000,
      'store calls working again (reconnect with backoff)');
    // A fresh Redis has no scripts: EVALSHA gets NOSCRIPT and the script runs by EVAL.
    assert.deepEqual(await call(c, 'incr', k, 1), [6]);
    assert.deepEqual(await call(c, 'expire', k, 0), [true]);
    assert.deepEqual(await rcall(c, 'PING'), ['PONG']);
  });
});

describe('mw.redis.call without redis', () => {
  it('raises "no redis configured"', async () => {
    const server = await startServer({ routes: { '/s': { script: 's.lua' } }, scripts: { 's.lua': SCRIPT } });
    try {
      const c = await connect(server.url('/s'));
      const reply = await c.request('redis', { data: { args: ['PING'] } });
      expectError(reply, 'internal', reply.id);
      await server.waitForLog(/lua error.*redis\.call: no redis configured/);
      const lt = await c.request('loadtime', {});
      const d = expectAck(lt, lt.id);
      assert.equal(d.store, undefined, 'the memory store answers at load time');
      assert.match(d.redis, /cannot wait here/, 'at load time that comes first');
    } finally {
      await closeAll();
      await server.stop();
    }
  });
});

after(closeAll);
