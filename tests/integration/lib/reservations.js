// Helpers for the reservations app's black-box tests (reservations*.test.js): its
// route config, clients that joined a venue, holds and races, and "exactly one"
// assertions on the events every client got.
'use strict';

const assert = require('node:assert/strict');
const { connect } = require('./client');
const { uid, expectAck, waitFor } = require('./helpers');

// The route: bistro is described; any other venue is not.
function route(holdTtl) {
  return {
    script: 'app:reservations',
    hold_ttl: holdTtl,
    options: {
      venues: { bistro: { tables: { t1: 2, t2: 4 }, slots: ['18:00', '19:30'] } },
    },
  };
}

// Connects one client per entry of `servers` (one may repeat) as a fresh user and
// joins room: the clients, each with its join acked (id 1).
async function joinAll(servers, room, path = '/reservations') {
  return Promise.all(servers.map(async (server) => {
    const c = await connect(server.url(`${path}?user=${uid('u')}`));
    expectAck(await c.request('join', { room }), 1, `join ${room}`);
    return c;
  }));
}

function hold(c, room, table, slot, party) {
  return c.request('reservation:hold', { room, data: { table, slot, party }, ms: 5000 });
}

function act(c, what, room, reservation) {
  return c.request(`reservation:${what}`, { room, data: { reservation }, ms: 5000 });
}

// Every client sends the same hold at once: { replies, winners } (the acks).
async function race(clients, room, data) {
  const replies = await Promise.all(clients.map((c) =>
    c.request('reservation:hold', { room, data, ms: 10000 })));
  for (const r of replies) {
    if (r.type !== 'ack') assert.equal(r.code, 'conflict', `a loser gets conflict: ${JSON.stringify(r)}`);
  }
  return { replies, winners: replies.filter((r) => r.type === 'ack') };
}

// Waits until every client got a message matching pred, then a while longer, and
// asserts each got exactly one (check(m) runs on it).
async function assertOneEach(clients, pred, check = () => {}, settleMs = 500) {
  await waitFor(() => clients.every((c) => c.messages.some(pred)), 10000,
    'every client to get the event');
  await new Promise((r) => setTimeout(r, settleMs));
  for (const c of clients) {
    const got = c.messages.filter(pred);
    assert.equal(got.length, 1, `${c.user} got ${got.length}: ${JSON.stringify(got)}`);
    check(got[0]);
  }
}

module.exports = { route, joinAll, hold, act, race, assertOneEach };
