// Shared assertions for the integration tests: ack/error shapes and "still serving".
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { connect } = require('./client');

function uid(prefix = 'x') {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

// Asserts `msg` is {type:"ack", id} and returns its data.
function expectAck(msg, id, what = '') {
  assert.equal(msg.type, 'ack', `${what}: expected an ack, got ${JSON.stringify(msg)}`);
  assert.deepEqual(msg.id, id, `${what}: ack id`);
  return msg.data;
}

// Asserts `msg` is {type:"error", code, message:string} with `id` present exactly when
// given (pass undefined for "no id").
function expectError(msg, code, id, what = '') {
  const shown = JSON.stringify(msg);
  assert.equal(msg.type, 'error', `${what}: expected an error, got ${shown}`);
  assert.equal(msg.code, code, `${what}: error code in ${shown}`);
  assert.equal(typeof msg.message, 'string', `${what}: error message must be a string: ${shown}`);
  assert.ok(msg.message.length > 0, `${what}: error message must not be empty: ${shown}`);
  if (id === undefined) assert.ok(!('id' in msg), `${what}: error must carry no id: ${shown}`);
  else assert.deepEqual(msg.id, id, `${what}: error id in ${shown}`);
}

// Proves the server still serves: a fresh client joins a fresh room, chats, gets the
// ack and the event, and leaves.
async function assertServes(server, path = '/chat') {
  const user = uid('probe');
  const room = uid('probe-room');
  const c = await connect(server.url(`${path}?user=${user}`));
  try {
    expectAck(await c.request('join', { room }), 1, 'probe join');
    const sent = await c.request('chat:message', { room, data: { text: 'still there?' } });
    expectAck(sent, 2, 'probe chat:message');
    const ev = await c.next({ type: 'chat:message', room });
    assert.equal(ev.from, user);
    assert.deepEqual(ev.data, { text: 'still there?' });
  } finally {
    await c.close();
  }
}

// Proves one connection still works: ping with an id gets the pong.
async function assertPingPong(client, what = '') {
  const id = client.nextId++;
  client.send({ type: 'ping', id, data: { alive: id } });
  const pong = await client.next((m) => m.type === 'pong' && m.id === id);
  assert.deepEqual(pong.data, { alive: id }, `${what}: pong data`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls `fn` until it returns a truthy value or `ms` pass (then throws with `what`).
async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

// The value of one sample of /metrics, `name` with its labels as printed
// ('moonwire_rooms', 'moonwire_auth_total{result="refused"}'), or undefined.
async function metric(server, name) {
  const { request } = require('./http');
  const res = await request('GET', server.httpUrl('/metrics'));
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : undefined;
}

module.exports = { uid, expectAck, expectError, assertServes, assertPingPong, sleep, waitFor, metric };
