// Recovery after a reconnect (SPEC sections 4 and 6, `sync`), single node: history
// with seq and epoch, sync with no gap and no duplicate, reset when history was
// trimmed or the epoch changed, history.ttl, and bad `since` values.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, sleep } = require('./lib/helpers');

describe('sync', () => {
  let server;
  before(async () => {
    server = await startServer({
      routes: {
        '/chat': { script: 'app:chat' },
        '/small': { script: 'app:chat', history: { size: 5 } },
        '/brief': { script: 'app:chat', history: { size: 100, ttl: '300ms' } },
      },
    });
  });
  after(async () => { await closeAll(); if (server) await server.stop(); });

  it('returns exactly the missed messages after a dropped connection', async () => {
    const room = uid('r');
    const pub = await connect(server.url(`/chat?user=${uid('pub')}`));
    expectAck(await pub.request('join', { room }), 1);
    let reader = await connect(server.url(`/chat?user=${uid('reader')}`));
    const user = reader.user;
    const joined = await reader.request('join', { room });
    const epoch = joined.data.epoch;
    for (let i = 0; i < 5; i++) pub.send({ type: 'chat:message', room, data: i });
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await reader.next({ type: 'chat:message', room })).seq;
    reader.ws.terminate(); // the network drops it mid-stream
    for (let i = 5; i < 12; i++) pub.send({ type: 'chat:message', room, data: i });
    reader = await connect(server.url(`/chat?user=${user}`));
    expectAck(await reader.request('join', { room }), 1);
    const s = await reader.request('sync', { room, data: { since: last, epoch } });
    expectAck(s, 2);
    assert.equal(s.data.reset, false);
    assert.equal(s.data.epoch, epoch);
    assert.deepEqual(s.data.messages.map((m) => m.data), [5, 6, 7, 8, 9, 10, 11], 'no gap, no duplicate');
    assert.deepEqual(s.data.messages.map((m) => m.seq), [6, 7, 8, 9, 10, 11, 12]);
    assert.equal(s.data.seq, 12);
    const none = await reader.request('sync', { room, data: { since: 12, epoch } });
    assert.deepEqual(none.data.messages, [], 'nothing after the last seq');
    assert.equal(none.data.reset, false);
  });

  it('says reset when history was trimmed or the epoch changed', async () => {
    const room = uid('t');
    const pub = await connect(server.url(`/small?user=${uid('pub')}`));
    const j = await pub.request('join', { room });
    for (let i = 0; i < 10; i++) expectAck(await pub.request('chat:message', { room, data: i }), i + 2);
    const trimmed = await pub.request('sync', { room, data: { since: 2, epoch: j.data.epoch } });
    assert.equal(trimmed.data.reset, true, 'seq 3..5 are gone');
    assert.deepEqual(trimmed.data.messages.map((m) => m.seq), [6, 7, 8, 9, 10], 'what is kept');
    const kept = await pub.request('sync', { room, data: { since: 5, epoch: j.data.epoch } });
    assert.equal(kept.data.reset, false, 'since 5: nothing missing');
    const other = await pub.request('sync', { room, data: { since: 5, epoch: 'another-epoch' } });
    assert.equal(other.data.reset, true, 'a different epoch means reset');
  });

  it('forgets history older than history.ttl', async () => {
    const room = uid('ttl');
    const pub = await connect(server.url(`/brief?user=${uid('pub')}`));
    expectAck(await pub.request('join', { room }), 1);
    expectAck(await pub.request('chat:message', { room, data: 'old' }), 2);
    await sleep(450);
    const late = await connect(server.url(`/brief?user=${uid('late')}`));
    const j = await late.request('join', { room });
    assert.deepEqual(j.data.history, [], 'expired');
    assert.equal(j.data.seq, 1);
    const s = await late.request('sync', { room, data: { since: 0 } });
    assert.equal(s.data.reset, true, 'seq 1 is gone');
  });

  it('refuses bad since values and rooms not joined', async () => {
    const room = uid('bad');
    const c = await connect(server.url(`/chat?user=${uid('c')}`));
    expectAck(await c.request('join', { room }), 1);
    expectAck(await c.request('chat:message', { room, data: 'x' }), 2);
    const cases = [
      [{ since: 99 }, /ahead of the room/],
      [{ since: -1 }, /non-negative integer/],
      [{ since: 'zero' }, /non-negative integer/],
      [{ since: 1.5 }, /non-negative integer/],
      [{}, /non-negative integer/],
      [{ since: 0, epoch: 7 }, /epoch must be a string/],
    ];
    let id = 3;
    for (const [data, re] of cases) {
      const e = await c.request('sync', { room, data });
      expectError(e, 'bad_message', id++);
      assert.match(e.message, re);
    }
    expectError(await c.request('sync', { room, data: 'since 0' }), 'bad_message', id++);
    expectError(await c.request('sync', { room: uid('other'), data: { since: 0 } }), 'not_in_room', id++);
    expectAck(await c.request('chat:message', { room, data: 'still serving' }), id++);
  });
});
