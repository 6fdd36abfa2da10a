// Room authorization (docs/security.md): a route's `rooms` patterns (a more specific
// pattern of another route claims its rooms), limits.max_rooms, and the apps'
// can_join hooks (chat: a `rooms` claim; notify: the `topics` option and claim).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { sign, now } = require('./lib/jwt');
const { uid, expectAck, expectError, assertServes, metric } = require('./lib/helpers');

const SECRET = 'authz-test-secret-of-more-than-32-bytes';

describe('room authorization', () => {
  let server;

  before(async () => {
    server = await startServer({
      routes: {
        '/chat': { script: 'app:chat' },
        '/venues': { script: 'app:chat', rooms: ['venue:*', 'lobby'] },
        '/notify': { script: 'app:notify', options: { topics: ['news', 'sport:*'] } },
        '/reservations': { script: 'app:reservations' },
      },
      config: { auth: { jwt_secret: SECRET }, limits: { rate: 1000, burst: 1000 } },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it("keeps a route's claimed rooms from the other routes' clients", async () => {
    const chat = await connect(server.url(`/chat?user=${uid('c')}`));
    const venues = await connect(server.url(`/venues?user=${uid('v')}`));
    const venue = `venue:${uid('1')}`;
    expectAck(await venues.request('join', { room: venue }), 1);
    const e = await chat.request('join', { room: venue });
    expectError(e, 'forbidden', 1);
    assert.match(e.message, /belongs to another route/);
    expectError(await chat.request('join', { room: 'lobby' }), 'forbidden', 2, 'an exact name claims too');
    expectError(await venues.request('join', { room: uid('general') }), 'forbidden', 2, "outside the route's patterns");
    expectAck(await chat.request('join', { room: uid('general') }), 3);
    await chat.close();
    await venues.close();
  });

  it('keeps venues to the reservations route by default, and that route to venues', async () => {
    const venue = `venue:${uid('v')}`;
    const r = await connect(server.url(`/reservations?user=${uid('r')}`));
    expectAck(await r.request('join', { room: venue }), 1);
    const chat = await connect(server.url(`/chat?user=${uid('c')}`));
    expectError(await chat.request('join', { room: venue }), 'forbidden', 1);
    await r.close();
    await chat.close();
  });

  it("keeps notify topics to the route's topics option, and venues away from it", async () => {
    const n = await connect(server.url(`/notify?user=${uid('n')}`));
    expectAck(await n.request('subscribe', { data: { topics: ['news', 'sport:tennis'] } }), 1);
    expectError(await n.request('subscribe', { data: { topics: ['general'] } }), 'forbidden', 2);
    expectError(await n.request('subscribe', { data: { topics: ['venue:1'] } }), 'forbidden', 3);
    await n.close();
  });

  it("lets a token's rooms claim decide in the chat app's can_join", async () => {
    const t = sign({ sub: 'ana', exp: now() + 60, rooms: ['team:*', 'general'] }, { key: SECRET });
    const c = await connect(server.url(`/chat?token=${t}`));
    expectAck(await c.request('join', { room: 'team:red' }), 1);
    expectAck(await c.request('join', { room: 'general' }), 2);
    const e = await c.request('join', { room: 'secret' });
    expectError(e, 'forbidden', 3);
    assert.match(e.message, /your token does not allow room 'secret'/);
    await c.close();
  });

  it('refuses joins over limits.max_rooms (128): 200 joins from one connection', async () => {
    const c = await connect(server.url(`/chat?user=${uid('many')}`));
    const prefix = uid('r');
    const answers = [];
    for (let i = 0; i < 200; i++) c.send({ type: 'join', id: i + 1, room: `${prefix}-${i}` });
    for (let i = 0; i < 200; i++) answers.push(await c.next((m) => m.id === i + 1, 10000));
    const acks = answers.filter((m) => m.type === 'ack').length;
    const refused = answers.filter((m) => m.type === 'error' && m.code === 'forbidden');
    assert.equal(acks, 128);
    assert.equal(refused.length, 72);
    assert.match(refused[0].message, /at most 128 rooms per connection \(limits\.max_rooms\)/);
    expectAck(await c.request('join', { room: `${prefix}-0`, id: 500 }), 500, 'a room it is in already');
    expectAck(await c.request('leave', { room: `${prefix}-0`, id: 501 }), 501);
    expectAck(await c.request('join', { room: `${prefix}-new`, id: 502 }), 502, 'room for one more');
    assert.ok(await metric(server, 'moonwire_joins_refused_total{reason="max_rooms"}') >= 72);
    assert.ok(await metric(server, 'moonwire_joins_refused_total{reason="route"}') >= 3);
    assert.ok(await metric(server, 'moonwire_joins_refused_total{reason="app"}') >= 2);
    await c.close();
    await assertServes(server);
  });
});
