// Slow consumers (SPEC sections 2 and 10): a reader that stops reading is disconnected
// once its send queue is over limits.send_queue; fast members lose nothing.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { rawConnect } = require('./lib/rawws');
const { uid, expectAck, assertServes, assertPingPong } = require('./lib/helpers');

const MAX_FLOOD = 2000; // messages; at 8 KB each that is 16 MB, far over any socket buffers
const PAYLOAD = 8000; // chars of data per message
const WINDOW = 4; // outstanding (unacked) messages of the flooder

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('slow consumer', () => {
  let server;
  let raw;

  before(async () => {
    server = await startServer({
      config: {
        limits: { max_message: '64KiB', send_queue: '64KiB', rate: 100000, burst: 100000 },
      },
    });
  });

  after(async () => {
    if (raw) await raw.destroy();
    await closeAll();
    if (server) await server.stop();
  });

  it('disconnects a reader that stopped reading; fast members get every message', async (t) => {
    const room = uid('flood');
    const slowUser = uid('slow');

    raw = await rawConnect(server.port, `/chat?user=${slowUser}`);
    await raw.waitFor((m) => m.type === 'hello');
    raw.send({ type: 'join', room, id: 1 });
    await raw.waitFor((m) => m.type === 'ack' && m.id === 1);

    const flooder = await connect(server.url(`/chat?user=${uid('flooder')}`));
    expectAck(await flooder.request('join', { room }), 1);
    const reader = await connect(server.url(`/chat?user=${uid('reader')}`));
    expectAck(await reader.request('join', { room }), 1);
    await flooder.next({ type: 'presence:join', room });
    await raw.waitFor((m) => m.type === 'presence:join' && m.data.user === reader.user);

    raw.pause(); // from here on the kernel buffers fill and then the server's queue

    const pad = 'p'.repeat(PAYLOAD);
    let sent = 0;
    let acked = 0;
    const inflight = [];
    const t0 = Date.now();
    while (sent < MAX_FLOOD && !/slow consumer/.test(server.logs())) {
      const id = 1000 + sent;
      flooder.send({ type: 'chat:message', room, id, data: { n: sent, pad } });
      inflight.push(id);
      sent += 1;
      if (inflight.length >= WINDOW) {
        const ack = await flooder.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === inflight[0], 5000);
        expectAck(ack, inflight.shift(), `flood message ${acked}`);
        acked += 1;
      }
      assert.ok(Date.now() - t0 < 30000, 'flood bounded in time');
    }
    while (inflight.length) {
      const ack = await flooder.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === inflight[0], 5000);
      expectAck(ack, inflight.shift(), `flood message ${acked}`);
      acked += 1;
    }

    const line = await server.waitForLog(/slow consumer/, 3000);
    assert.match(line, /slow consumer/);

    // The server has closed the TCP connection: reading on, the socket must end soon
    // and the slow reader must have missed part of the flood.
    raw.resume();
    await within(raw.ended, 5000, 'server ends the slow TCP connection');
    const rawChats = raw.messages.filter((m) => m.type === 'chat:message').length;
    t.diagnostic(`flooded ${sent} messages in ${Date.now() - t0} ms; the slow reader got ${rawChats}; ` +
      `close frame ${JSON.stringify(raw.closeFrame)}; end ${JSON.stringify(raw.endInfo)}`);
    assert.ok(rawChats < sent, `slow reader got ${rawChats} of ${sent}: it was cut off`);
    if (raw.closeFrame) assert.equal(raw.closeFrame.code, 1008, `close frame ${JSON.stringify(raw.closeFrame)}`);

    // Fast members received everything, in order, and stay connected.
    for (const [name, c] of [['reader', reader], ['flooder', flooder]]) {
      const chats = [];
      for (let i = 0; i < sent; i++) chats.push(await c.next({ type: 'chat:message', room }, 5000));
      assert.deepEqual(chats.map((m) => m.data.n), [...Array(sent).keys()], `${name} got every message in order`);
      for (let i = 1; i < chats.length; i++) {
        assert.ok(chats[i].seq > chats[i - 1].seq, `${name}: seq strictly increasing`);
      }
      assert.ok(c.isOpen, `${name} still connected`);
      await assertPingPong(c, name);
    }

    // The slow reader is gone from the room.
    const left = await reader.next({ type: 'presence:leave', room }, 3000);
    assert.deepEqual(left.data, { user: slowUser });
    await assertServes(server);
  });
});
