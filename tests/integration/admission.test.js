// Limits on who gets in and what stays (docs/security.md): the Origin allowlist,
// connections per IP and per user, and the byte budgets of idle history and of
// detached sessions. Each: a clear answer, a metric, and the server serves on.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { upgradeRequest } = require('./lib/http');
const { uid, expectAck, assertServes, waitFor, metric } = require('./lib/helpers');

describe('admission: origins and connections per IP and per user', () => {
  let server;
  before(async () => {
    server = await startServer({
      config: {
        origins: ['https://app.example.com', 'https://*.example.org'],
        limits: { max_connections_per_ip: 6, max_connections_per_user: 3 },
      },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('refuses a browser handshake from an Origin not on the list with 403', async () => {
    for (const origin of ['https://evil.example', 'https://example.org', 'http://app.example.com', 'null']) {
      const res = await upgradeRequest(server.port, `/chat?user=${uid('o')}`, [`Origin: ${origin}`]);
      assert.equal(res.status, 403, `${origin}: ${res.head}`);
      assert.equal(JSON.parse(res.body).error, 'forbidden');
    }
    for (const origin of ['https://app.example.com', 'https://a.example.org', 'https://b.c.example.org']) {
      const c = await connect(server.url(`/chat?user=${uid('o')}`), { origin });
      await c.close();
    }
    const noOrigin = await connect(server.url(`/chat?user=${uid('o')}`)); // not a browser
    await noOrigin.close();
    await server.waitForLog(/upgrade rejected" path=\/chat remote=\S+ status=403 reason="origin not allowed/);
    assert.equal(await metric(server, 'moonwire_connections_refused_total{reason="origin"}'), 4);
  });

  it('refuses the connections of one user over the limit with 429', async () => {
    const user = uid('tabs');
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(await connect(server.url(`/chat?user=${user}`)));
    const res = await upgradeRequest(server.port, `/chat?user=${user}`);
    assert.equal(res.status, 429, res.head);
    assert.match(JSON.parse(res.body).message, /max_connections_per_user/);
    await tabs.pop().close();
    await waitFor(async () => (await upgradeRequest(server.port, `/chat?user=${uid('x')}`)).status === 101,
      3000, 'another user still gets in');
    for (const t of tabs) await t.close();
  });

  it('refuses twice the per-IP limit: the first 6 in, the next 6 refused with 429', async () => {
    await waitFor(async () => await metric(server, 'moonwire_connections') === 0, 5000, 'no connections left');
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      try {
        await connect(server.url(`/chat?user=${uid('ip')}`)); // kept open: counted
        statuses.push(101);
      } catch (err) {
        statuses.push(Number((/HTTP (\d+)/.exec(err.message) || [])[1]) || err.message);
      }
    }
    assert.deepEqual(statuses, [...Array(6).fill(101), ...Array(6).fill(429)]);
    assert.equal(await metric(server, 'moonwire_connections_refused_total{reason="per_ip"}'), 6);
    await server.waitForLog(/status=429 reason="too many connections from this address/);
  });

  it('lets the address in again once its connections are gone', async () => {
    await closeAll();
    await waitFor(async () => await metric(server, 'moonwire_connections') === 0, 10000, 'closed');
    await assertServes(server);
  });
});

describe('admission: byte budgets of idle history and detached sessions', () => {
  let server;
  before(async () => {
    server = await startServer({
      config: {
        limits: { history_memory: '64KiB', sessions_memory: '16KiB', rate: 1000, burst: 1000 },
        heartbeat: { interval: '200ms', timeout: '5s' },
      },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('drops the history of the rooms idle the longest beyond limits.history_memory', async () => {
    const pad = 'x'.repeat(2000);
    const rooms = [];
    for (let r = 0; r < 10; r++) { // 10 rooms x 10 x ~2 KB = ~200 KB > 64 KiB, all left idle
      const room = uid(`hist${r}`);
      rooms.push(room);
      const c = await connect(server.url(`/chat?user=${uid('h')}`));
      expectAck(await c.request('join', { room }), 1);
      for (let i = 0; i < 10; i++) expectAck(await c.request('chat:message', { room, data: pad }), i + 2);
      await c.close();
    }
    await waitFor(async () => {
      return await metric(server, 'moonwire_history_idle_bytes') <= 64 * 1024 &&
        await metric(server, 'moonwire_history_evicted_total') > 0;
    }, 5000, 'idle history within the budget');
    const c = await connect(server.url(`/chat?user=${uid('back')}`));
    const first = expectAck(await c.request('join', { room: rooms[0] }), 1);
    assert.equal(first.history.length, 0, 'the oldest idle room lost its history');
    const last = expectAck(await c.request('join', { room: rooms[9] }), 2);
    assert.equal(last.history.length, 10, 'the newest idle room kept it');
    await c.close();
  });

  it('drops the oldest detached sessions beyond limits.sessions_memory', async () => {
    for (let s = 0; s < 20; s++) {
      const c = await connect(server.url(`/chat?user=${uid('s')}&session=${uid('sess')}`));
      for (let i = 0; i < 20; i++) { // each id (and its answer) stays in the session's window
        const id = `id-${i}-${'p'.repeat(60)}`;
        assert.equal((await c.request('presence:list', { room: 'none', id })).id, id);
      }
      await c.close();
    }
    await waitFor(async () => {
      return await metric(server, 'moonwire_sessions_detached_bytes') <= 16 * 1024 &&
        await metric(server, 'moonwire_sessions_evicted_total') > 0;
    }, 5000, 'detached sessions within the budget');
    await assertServes(server);
  });
});
