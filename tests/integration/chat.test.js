// The bundled chat app (SPEC section 6): join/leave, presence, messages, seq, history,
// typing and the presence threshold, against the real server.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, assertServes } = require('./lib/helpers');

const byUser = (a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
const sortMembers = (members) => [...members].sort(byUser);

describe('chat', () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  // Connects `user` to /chat (users are unique per test through uid()).
  const join = async (user, room, data) => {
    const c = await connect(server.url(`/chat?user=${encodeURIComponent(user)}`));
    const ack = await c.request('join', { room, data });
    return { c, ack: expectAck(ack, 1, `${user} join ${room}`) };
  };

  describe('join and presence', () => {
    it('acks join with room, members, empty history, seq 0 and an epoch', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const { c, ack } = await join(ana, room, { name: 'Ana' });
      assert.equal(ack.room, room);
      assert.deepEqual(ack.members, [{ user: ana, name: 'Ana', conns: 1 }]);
      assert.deepEqual(ack.history, []);
      assert.equal(ack.seq, 0);
      assert.equal(typeof ack.epoch, 'string');
      assert.ok(ack.epoch.length > 0, 'epoch is not empty');
      await c.close();
    });

    it('announces a new member to the others with presence:join', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const a = await join(ana, room);
      const b = await join(bob, room, { name: 'Bob' });
      const ev = await a.c.next('presence:join');
      assert.deepEqual(ev, { type: 'presence:join', room, data: { user: bob, name: 'Bob', conns: 1 } });
      assert.deepEqual(sortMembers(b.ack.members), sortMembers([
        { user: ana, conns: 1 },
        { user: bob, name: 'Bob', conns: 1 },
      ]));
      // The joiner is not told about itself.
      b.c.send({ type: 'ping', id: 'barrier' });
      const { before: early } = await b.c.until({ type: 'pong', id: 'barrier' });
      assert.deepEqual(early.filter((m) => m.type === 'presence:join'), [], 'no presence:join to the joiner');
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it("counts a user's second connection without a second presence:join", async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const a = await join(ana, room);
      const b1 = await join(bob, room);
      await a.c.next({ type: 'presence:join', room });

      const b2 = await join(bob, room);
      const bobInAck = b2.ack.members.find((m) => m.user === bob);
      assert.deepEqual(bobInAck, { user: bob, conns: 2 }, 'second connection counted');
      assert.equal(b2.ack.members.length, 2, 'two users, not three members');

      b2.c.send({ type: 'chat:message', room, data: 'from tab 2' });
      const { before: early } = await a.c.until({ type: 'chat:message', room, from: bob });
      assert.deepEqual(early, [], 'no second presence:join for the same user');

      const list = expectAck(await a.c.request('presence:list', { room }), 2, 'presence:list');
      assert.equal(list.count, 2);
      assert.deepEqual(sortMembers(list.members), sortMembers([
        { user: ana, conns: 1 },
        { user: bob, conns: 2 },
      ]));

      // One of bob's connections leaves: bob is still present.
      expectAck(await b2.c.request('leave', { room }), 2, 'leave from tab 2');
      b1.c.send({ type: 'chat:message', room, data: 'from tab 1' });
      const r = await a.c.until({ type: 'chat:message', room, from: bob });
      assert.deepEqual(r.before, [], 'no presence:leave while bob has a connection in the room');
      const list2 = expectAck(await a.c.request('presence:list', { room }), 3);
      assert.deepEqual(list2.members.find((m) => m.user === bob), { user: bob, conns: 1 });

      // The last connection goes away: now bob leaves.
      await b1.c.close();
      const leave = await a.c.next('presence:leave');
      assert.deepEqual(leave, { type: 'presence:leave', room, data: { user: bob } });
      await Promise.all([a.c.close(), b2.c.close()]);
    });

    it('acks leave, announces presence:leave, and the leaver is no longer a member', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const a = await join(ana, room);
      const b = await join(bob, room);
      await a.c.next('presence:join');

      const left = await b.c.request('leave', { room, id: 'bye' });
      expectAck(left, 'bye', 'leave');
      const ev = await a.c.next('presence:leave');
      assert.deepEqual(ev, { type: 'presence:leave', room, data: { user: bob } });

      expectError(await b.c.request('chat:message', { room, data: 'x', id: 'late' }),
        'not_in_room', 'late', 'chat after leave');
      const list = expectAck(await a.c.request('presence:list', { room }), 2);
      assert.deepEqual(list, { members: [{ user: ana, conns: 1 }], count: 1 });

      // bob gets no more room traffic.
      a.c.send({ type: 'chat:message', room, data: 'bob is gone' });
      await a.c.next('chat:message');
      b.c.send({ type: 'ping', id: 'barrier' });
      const { before: early } = await b.c.until({ type: 'pong', id: 'barrier' });
      assert.deepEqual(early.filter((m) => m.room === room), [], 'a former member gets nothing');
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it('announces presence:leave when the last connection drops without a close handshake', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const a = await join(ana, room);
      const b = await join(bob, room);
      await a.c.next('presence:join');
      await b.c.terminate();
      const ev = await a.c.next('presence:leave', 3000);
      assert.deepEqual(ev.data, { user: bob });
      const list = expectAck(await a.c.request('presence:list', { room }), 2);
      assert.equal(list.count, 1);
      await a.c.close();
    });

    it('acks presence:list with members and count', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const carl = uid('carl');
      const a = await join(ana, room, { name: 'Ana' });
      const b = await join(bob, room);
      const c = await join(carl, room, { name: 'Carl' });
      const list = expectAck(await b.c.request('presence:list', { room, id: 'pl' }), 'pl');
      assert.equal(list.count, 3);
      assert.deepEqual(sortMembers(list.members), sortMembers([
        { user: ana, name: 'Ana', conns: 1 },
        { user: bob, conns: 1 },
        { user: carl, name: 'Carl', conns: 1 },
      ]));
      await Promise.all([a.c.close(), b.c.close(), c.c.close()]);
    });
  });

  describe('messages', () => {
    it('delivers chat:message to every member including the sender, with seq and ts', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const bob = uid('bob');
      const carl = uid('carl');
      const a = await join(ana, room);
      const b = await join(bob, room);
      const c = await join(carl, room);
      const outsider = await connect(server.url(`/chat?user=${uid('dave')}`));

      const payloads = [{ text: 'one' }, 'two', { text: 'thrée ☃', n: [1, 2.5, null, true] }];
      const t0 = Date.now();
      for (let i = 0; i < payloads.length; i++) {
        expectAck(await a.c.request('chat:message', { room, data: payloads[i], id: `m${i}` }), `m${i}`);
      }
      const t1 = Date.now();
      for (const member of [a.c, b.c, c.c]) {
        for (let i = 0; i < payloads.length; i++) {
          const ev = await member.next('chat:message');
          const { ts, ...rest } = ev;
          assert.deepEqual(rest, { type: 'chat:message', room, from: ana, data: payloads[i], seq: i + 1 });
          assert.equal(typeof ts, 'number');
          assert.ok(ts >= t0 - 5000 && ts <= t1 + 5000, `ts ${ts} is ms since epoch near ${t0}`);
        }
      }

      const err = await outsider.request('chat:message', { room, data: 'let me in', id: 'x1' });
      expectError(err, 'not_in_room', 'x1', 'non-member');
      a.c.send({ type: 'chat:message', room, data: 'after outsider' });
      const ev = await b.c.next('chat:message');
      assert.equal(ev.data, 'after outsider');
      assert.equal(ev.seq, 4, 'the rejected message took no seq');
      assert.deepEqual(outsider.pending().filter((m) => m.type === 'chat:message'), []);
      await Promise.all([a.c.close(), b.c.close(), c.c.close(), outsider.close()]);
    });

    it('keeps seq strictly increasing per room, independent across rooms', async () => {
      const r1 = uid('room');
      const r2 = uid('room');
      const ana = uid('ana');
      const a = await join(ana, r1);
      expectAck(await a.c.request('join', { room: r2 }), 2);
      const seqs = { [r1]: [], [r2]: [] };
      const order = [r1, r1, r2, r1, r2, r2, r1];
      for (const room of order) a.c.send({ type: 'chat:message', room, data: room });
      for (let i = 0; i < order.length; i++) {
        const ev = await a.c.next('chat:message');
        seqs[ev.room].push(ev.seq);
      }
      assert.deepEqual(seqs[r1], [1, 2, 3, 4]);
      assert.deepEqual(seqs[r2], [1, 2, 3]);
      await a.c.close();
    });

    it('returns earlier messages as history on join, with seq = last seq and the same epoch', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const events = [];
      for (let i = 1; i <= 3; i++) {
        a.c.send({ type: 'chat:message', room, data: { i } });
        events.push(await a.c.next('chat:message'));
      }
      const e = await join(uid('eve'), room);
      assert.deepEqual(e.ack.history, events, 'history holds the chat:message events in order');
      assert.equal(e.ack.seq, 3);
      assert.equal(e.ack.epoch, a.ack.epoch, 'same room, same epoch');
      await Promise.all([a.c.close(), e.c.close()]);
    });

    it('acks a repeated chat:message id again without broadcasting twice', async () => {
      const room = uid('room');
      const a = await join(uid('ana'), room);
      const b = await join(uid('bob'), room);
      expectAck(await a.c.request('chat:message', { room, data: 'once', id: 'dup' }), 'dup');
      expectAck(await a.c.request('chat:message', { room, data: 'once', id: 'dup' }), 'dup',
        'repeated id is acked again');
      a.c.send({ type: 'chat:message', room, data: 'barrier' });
      const { before: early } = await b.c.until({ type: 'chat:message', data: 'barrier' });
      const got = early.filter((m) => m.type === 'chat:message');
      assert.equal(got.length, 1, `one broadcast for a repeated id, got ${JSON.stringify(got)}`);
      await Promise.all([a.c.close(), b.c.close()]);
    });
  });

  describe('typing', () => {
    it('sends typing:start and typing:stop to the other members only', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const b = await join(uid('bob'), room);
      a.c.send({ type: 'typing:start', room });
      assert.deepEqual(await b.c.next('typing'), { type: 'typing', room, data: { user: ana, typing: true } });
      a.c.send({ type: 'typing:stop', room });
      assert.deepEqual(await b.c.next('typing'), { type: 'typing', room, data: { user: ana, typing: false } });

      a.c.send({ type: 'chat:message', room, data: 'barrier' });
      const { before: early } = await a.c.until({ type: 'chat:message', data: 'barrier' });
      assert.deepEqual(early.filter((m) => m.type === 'typing'), [], 'the typist gets no typing events');
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it('throttles a repeated typing:start within 2 s', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const b = await join(uid('bob'), room);
      a.c.send({ type: 'typing:start', room });
      await b.c.next({ type: 'typing', room });
      a.c.send({ type: 'typing:start', room });
      a.c.send({ type: 'typing:start', room });
      a.c.send({ type: 'chat:message', room, data: 'barrier' });
      const { before: early } = await b.c.until({ type: 'chat:message', data: 'barrier' });
      assert.deepEqual(early.filter((m) => m.type === 'typing'), [], 'no second typing broadcast');
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it('sends typing:false by itself 5 s after the last typing:start', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const b = await join(uid('bob'), room);
      a.c.send({ type: 'typing:start', room });
      await b.c.next({ type: 'typing', room });
      const t0 = Date.now();
      const stop = await b.c.next({ type: 'typing', room }, 8000);
      const elapsed = Date.now() - t0;
      assert.deepEqual(stop.data, { user: ana, typing: false });
      assert.ok(elapsed >= 4500, `auto stop after ~5 s, came after ${elapsed} ms`);
      assert.ok(elapsed <= 7000, `auto stop after ~5 s, came after ${elapsed} ms`);
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it('sends typing:false when the typist leaves the room', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const b = await join(uid('bob'), room);
      a.c.send({ type: 'typing:start', room });
      await b.c.next({ type: 'typing', room });
      expectAck(await a.c.request('leave', { room }), 2);
      const stop = await b.c.next({ type: 'typing', room }, 1000);
      assert.deepEqual(stop.data, { user: ana, typing: false });
      await b.c.next({ type: 'presence:leave', room });
      await Promise.all([a.c.close(), b.c.close()]);
    });

    it('sends typing:false when the typist disconnects', async () => {
      const room = uid('room');
      const ana = uid('ana');
      const a = await join(ana, room);
      const b = await join(uid('bob'), room);
      a.c.send({ type: 'typing:start', room });
      await b.c.next({ type: 'typing', room });
      await a.c.close();
      const stop = await b.c.next({ type: 'typing', room }, 2000);
      assert.deepEqual(stop.data, { user: ana, typing: false });
      await b.c.close();
    });
  });

  it('still serves after all of the above', async () => {
    await assertServes(server);
  });
});

describe('chat presence threshold', () => {
  let server;

  before(async () => {
    server = await startServer({
      routes: { '/chat': { script: 'app:chat', presence: { threshold: 2 } } },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('sends presence:count at most once per second above the threshold instead of join/leave', async () => {
    const room = uid('big');
    const users = ['ana', 'bob', 'carl', 'dave'].map((u) => uid(u));
    const conns = [];
    for (const u of users.slice(0, 2)) {
      const c = await connect(server.url(`/chat?user=${u}`));
      expectAck(await c.request('join', { room }), 1);
      conns.push(c);
    }
    const a = conns[0];
    // Two members: not above the threshold, per-member events as usual.
    const pj = await a.next('presence:join');
    assert.equal(pj.data.user, users[1]);

    // Third and fourth member: above the threshold.
    for (const u of users.slice(2)) {
      const c = await connect(server.url(`/chat?user=${u}`));
      const ack = expectAck(await c.request('join', { room }), 1);
      conns.push(c);
      if (u === users[3]) assert.equal(ack.members.length, 4, 'join ack still lists the members');
    }
    const counted = async (n) => {
      const m = await a.next({ type: 'presence:count', room, data: { count: n } }, 3000);
      return m;
    };
    await counted(4);
    a.drain(); // an earlier count (e.g. 3 on the third join) must not satisfy the next wait

    // One leaves: a count again, no presence:leave.
    const d = conns[3];
    expectAck(await d.request('leave', { room }), 2);
    await counted(3);

    // Barrier: everything the room sent so far arrived before this message.
    conns[2].send({ type: 'chat:message', room, data: 'barrier' });
    await a.next({ type: 'chat:message', data: 'barrier' });

    const seen = a.entries.map((e) => ({ ...e.msg, at: e.at }));
    const perMember = seen.filter((m) => (m.type === 'presence:join' || m.type === 'presence:leave') &&
      m.data && (m.data.user === users[2] || m.data.user === users[3]));
    assert.deepEqual(perMember, [], 'no per-member presence events above the threshold');
    const counts = seen.filter((m) => m.type === 'presence:count');
    for (const m of counts) assert.equal(m.room, room);
    for (let i = 1; i < counts.length; i++) {
      const gap = counts[i].at - counts[i - 1].at;
      assert.ok(gap >= 900, `presence:count at most once per second, got two ${gap} ms apart: ` +
        JSON.stringify(counts));
    }
    const list = expectAck(await a.request('presence:list', { room }), 2);
    assert.equal(list.count, 3);
    assert.equal(list.members.length, 3);
  });

  it('still serves', async () => {
    await assertServes(server);
  });
});
