// The reservations app on one node (its store in memory), through real WebSocket
// clients: racing holds, expiry, the HTTP snapshot, a flood of holds, and venue
// descriptions that `moonwire check` and `serve` refuse with their YAML line. The app's
// rules are tested in Lua (apps/reservations/tests); across nodes and restarts with
// Redis in reservations-cluster.test.js.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, REPO, BIN } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, expectError, assertServes, waitFor } = require('./lib/helpers');
const resv = require('./lib/reservations');

const KEY = 'resv-test-key';

describe('reservations on one node', () => {
  let server;

  before(async () => {
    server = await startServer({
      config: { api: { keys: [KEY] }, log: { level: 'debug' } },
      routes: {
        '/reservations': resv.route('2m'),
        '/quick': resv.route('700ms'),
      },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('20 racing holds: exactly one wins, exactly one reservation:created', async () => {
    const room = `venue:${uid('race')}`;
    const clients = await resv.joinAll(Array.from({ length: 20 }, () => server), room);
    const result = await resv.race(clients, room, { table: 't1', slot: '19:00', party: 2 });
    assert.equal(result.winners.length, 1, JSON.stringify(result.replies));
    const id = result.winners[0].data.reservation;
    await resv.assertOneEach(clients, (m) => m.type === 'reservation:created' && m.room === room,
      (m) => assert.equal(m.data.reservation, id));
  });

  it('refusals are counted per route and code, and logged', async () => {
    const room = `venue:${uid('refuse')}`;
    const [ana] = await resv.joinAll([server], room);
    const metric = async (code) => {
      const text = (await request('GET', server.httpUrl('/metrics'))).text;
      const m = text.match(new RegExp(`^moonwire_errors_total\\{route="/reservations",code="${code}"\\} (\\d+)$`, 'm'));
      return m ? Number(m[1]) : 0;
    };
    const before = { bad: await metric('bad_message'), missing: await metric('not_found') };
    expectError(await resv.hold(ana, room, 't1', '19:00', 'two'), 'bad_message', 2);
    expectError(await resv.act(ana, 'confirm', room, 'nope/x'), 'not_found', 3);
    ana.send({ type: 'reservation:hold', room, data: { table: 't1' } }); // no id
    await ana.next({ type: 'error', code: 'bad_message' });
    assert.equal(await metric('bad_message'), before.bad + 2);
    assert.equal(await metric('not_found'), before.missing + 1);
    await server.waitForLog(new RegExp(`msg="message refused" route=/reservations conn=\\S+ ` +
      'type=reservation:confirm code=not_found'));
  });

  it('an expired hold is announced once to everyone, and the table frees', async () => {
    const room = `venue:${uid('exp')}`;
    const [ana, bob] = await resv.joinAll([server, server], room, '/quick');
    const ack = expectAck(await resv.hold(ana, room, 't1', '20:00', 2), 2);
    const ev = await bob.next({ type: 'reservation:updated', room }, 5000);
    assert.deepEqual(ev.data, { reservation: ack.reservation, table: 't1', slot: '20:00', status: 'expired' });
    assert.ok(Date.now() >= ack.expires_at - 50, 'not before expires_at');
    await resv.assertOneEach([ana, bob], (m) => m.type === 'reservation:updated' && m.room === room);
    expectError(await resv.act(ana, 'confirm', room, ack.reservation), 'conflict', 3);
    expectAck(await resv.hold(bob, room, 't1', '20:00', 1), 2, 'the table is free again');
  });

  it('GET /api/venues/{venue} answers the snapshot a join gets, with the API key', async () => {
    const venue = uid('http');
    const room = `venue:${venue}`;
    const [ana] = await resv.joinAll([server], room);
    const held = expectAck(await resv.hold(ana, room, 't1', '19:00', 2), 2);
    expectAck(await resv.hold(ana, room, 't2', '19:00', 2), 3);
    expectAck(await resv.act(ana, 'confirm', room, held.reservation), 4);
    const url = server.httpUrl(`/api/venues/${venue}`);
    const r = await request('GET', url, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {
      venue,
      tables: [
        { table: 't1', slots: { '19:00': 'reserved' } },
        { table: 't2', slots: { '19:00': 'held' } },
      ],
    });
    const joinAck = expectAck(await (await connect(server.url('/reservations?user=carl')))
      .request('join', { room }), 1);
    assert.deepEqual(joinAck, r.json);

    const described = await request('GET', server.httpUrl('/api/venues/bistro'),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(described.status, 200);
    assert.deepEqual(described.json.slots, ['18:00', '19:30']);
    assert.deepEqual(described.json.tables.map((t) => [t.table, t.seats]), [['t1', 2], ['t2', 4]]);
    const empty = await request('GET', server.httpUrl(`/api/venues/${uid('nobody')}`),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.json.tables, []);

    assert.equal((await request('GET', url)).status, 401, 'no key');
    assert.equal((await request('GET', url, { headers: { authorization: 'Bearer nope' } })).status, 401);
    const post = await request('POST', url, { headers: { authorization: `Bearer ${KEY}` }, body: {} });
    assert.equal(post.status, 405);
    const long = await request('GET', server.httpUrl(`/api/venues/${'v'.repeat(123)}`),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(long.status, 400);
    assert.equal(long.json.error, 'bad_message');
    const nested = await request('GET', server.httpUrl('/api/venues/a/b'),
      { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(nested.status, 404);
  });

  it('1,000 holds from one client meet the rate limit; what got through is all there is', async () => {
    const room = `venue:${uid('flood')}`;
    const [flooder] = await resv.joinAll([server], room);
    const limitedBefore = Number((await request('GET', server.httpUrl('/metrics'))).text
      .match(/^moonwire_rate_limited_total (\d+)$/m)[1]);
    for (let i = 0; i < 1000; i++) {
      flooder.send({ type: 'reservation:hold', room, id: 100 + i, data: { table: `t${i}`, slot: 's', party: 1 } });
    }
    // Every hold is answered by its id: handled (ack, or conflict), or refused unhandled.
    const answered = () => flooder.messages.filter((m) => (m.type === 'ack' || m.type === 'error') &&
      m.id >= 100 && m.id < 1100);
    await waitFor(() => answered().length === 1000, 10000, 'an answer to every hold');
    const acks = answered().filter((m) => m.type === 'ack');
    const limited = answered().filter((m) => m.type === 'error' && m.code === 'rate_limited');
    assert.equal(acks.length + limited.length, 1000, 'each hold acked or rate limited');
    // The bucket holds burst (100) tokens, less the join's; it refills while the flood
    // is read.
    assert.ok(acks.length >= 99 && acks.length < 300, `${acks.length} holds got through (burst 100)`);
    const limitedAfter = Number((await request('GET', server.httpUrl('/metrics'))).text
      .match(/^moonwire_rate_limited_total (\d+)$/m)[1]);
    assert.equal(limitedAfter - limitedBefore, limited.length);
    // Every hold that was acked is on the board, and nothing else.
    const [watcher] = await resv.joinAll([server], room);
    const snap = expectAck(await watcher.request('join', { room }), 2);
    const held = snap.tables.map((t) => t.table).sort();
    const acked = acks.map((m) => `t${m.id - 100}`).sort();
    assert.deepEqual(held, acked);
    assert.ok(flooder.isOpen, 'one flood of 1,000 is no sustained abuse (10 x burst)');
    await assertServes(server);
  });
});

describe('venue descriptions in the config', () => {
  const dirs = [];
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  function run(args) {
    return new Promise((resolve) => {
      execFile(BIN, args, { timeout: 10000, env: { ...process.env, MOONWIRE_HOME: REPO } },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
  }

  async function check(venuesYaml) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-resv-'));
    dirs.push(dir);
    const file = path.join(dir, 'm.yaml');
    fs.writeFileSync(file, 'listen: 127.0.0.1:1\nroutes:\n  /r:\n    script: "app:reservations"\n' +
      `    options:\n${venuesYaml}`);
    return { file, ...(await run(['check', '-c', file])) };
  }

  it('accepts tables with slots or hours', async () => {
    const r = await check('      venues:\n        v1:\n          tables: { t1: 2 }\n' +
      '          slots: ["18:00"]\n        v2:\n          tables: { a: 4 }\n' +
      '          hours: { open: "18:00", close: "01:00" }\n        v3:\n          tables: { x: 1 }\n');
    assert.equal(r.code, 0, r.stderr);
  });

  const bad = [
    ['an unknown option', '      venue: {}\n', 6, /routes\.\/r\.options\.venue: unknown option/],
    ['venues not a map', '      venues: [1]\n', 6, /options\.venues: venues must be a map/],
    ['no tables', '      venues:\n        v1:\n          slots: ["1"]\n', 7,
      /options\.venues\.v1\.tables: tables is required/],
    ['seats not a positive integer', '      venues:\n        v1:\n          tables:\n' +
      '            t1: 2\n            t2: two\n', 10, /venues\.v1\.tables\.t2: seats must be an integer of 1\.\.1000/],
    ['a slot twice', '      venues:\n        v1:\n          tables: { t: 1 }\n' +
      '          slots:\n            - "18:00"\n            - "18:00"\n', 11,
      /venues\.v1\.slots\[2\]: slot '18:00' is listed twice/],
    ['a bad opening time', '      venues:\n        v1:\n          tables: { t: 1 }\n' +
      '          hours:\n            open: "8am"\n            close: "16:00"\n', 10,
      /venues\.v1\.hours\.open: open must be a time HH:MM/],
    ['slots and hours', '      venues:\n        v1:\n          tables: { t: 1 }\n' +
      '          slots: ["1"]\n          hours: { open: "08:00", close: "09:00" }\n', 10,
      /venues\.v1\.hours: give slots or hours, not both/],
    ['an unknown venue key', '      venues:\n        v1:\n          tables: { t: 1 }\n' +
      '          seats: 4\n', 9, /venues\.v1\.seats: unknown key/],
  ];
  for (const [what, yaml, line, message] of bad) {
    it(`check refuses ${what} with its line`, async () => {
      const r = await check(yaml);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`m\\.yaml:${line}: `), r.stderr);
      assert.match(r.stderr, message);
    });
  }

  it('serve refuses to start with a bad venue', async () => {
    const { file } = await check('      venues:\n        v1:\n          tables: { t: 0 }\n');
    const r = await run(['serve', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /m\.yaml:8: routes\.\/r\.options\.venues\.v1\.tables\.t: seats must be/);
  });
});
