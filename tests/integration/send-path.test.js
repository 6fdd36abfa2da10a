// The send path under a backlog (core/net/sendq.c, ws.c): frames queued for a reader
// that stopped reading go out later in big writes, small frames copied together into
// one piece, big ones written from where they lie, writes that stop inside a frame
// picked up where they stopped. The reader must get every frame whole and in order.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { rawConnect } = require('./lib/rawws');
const { uid, expectAck, waitFor } = require('./lib/helpers');

// Payload sizes that mix runs of small frames (copied into one piece) with frames over
// the 2 KiB copy limit (written where they lie), in an order that does not repeat.
function padOf(n) {
  const size = n % 7 === 3 ? 2100 + ((n * 131) % 3000) : 1 + ((n * 37) % 180);
  return String.fromCharCode(97 + (n % 26)).repeat(size);
}

describe('send path', () => {
  let server;
  const raws = [];

  before(async () => {
    server = await startServer({
      config: {
        // A small kernel send buffer: the backlog is the server's queue, not the kernel's.
        limits: { send_queue: '16MiB', socket_send_buffer: '16KiB', rate: 100000, burst: 100000 },
      },
    });
  });

  after(async () => {
    for (const r of raws) await r.destroy();
    await closeAll();
    if (server) await server.stop();
  });

  it('a reader that falls behind and comes back gets every frame whole and in order', async () => {
    const room = uid('backlog');
    const raw = await rawConnect(server.port, `/chat?user=${uid('behind')}`);
    raws.push(raw);
    await raw.waitFor((m) => m.type === 'hello');
    raw.send({ type: 'join', room, id: 1 });
    await raw.waitFor((m) => m.type === 'ack' && m.id === 1);
    const sender = await connect(server.url(`/chat?user=${uid('sender')}`));
    expectAck(await sender.request('join', { room }), 1);
    await raw.waitFor((m) => m.type === 'presence:join' && m.data.user === sender.user);

    raw.pause();
    const before = raw.messages.length;
    const total = 3000; // ~1.6 MB: far more than the reader's and the server's socket buffers
    let bytes = 0;
    const inflight = [];
    for (let n = 0; n < total; n++) {
      const id = 10 + n;
      const pad = padOf(n);
      bytes += pad.length;
      sender.send({ type: 'chat:message', room, id, data: { n, pad } });
      inflight.push(id);
      if (inflight.length >= 64) {
        const want = inflight.shift();
        expectAck(await sender.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === want, 15000), want);
      }
    }
    for (const want of inflight) {
      expectAck(await sender.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === want, 15000), want);
    }
    assert.ok(bytes > 1000000, `the backlog is big (${bytes} bytes)`);
    // Every message was handled while the reader was not reading: what did not fit in
    // the sockets' buffers waits in the server's queue.
    assert.ok(raw.messages.length - before < total, 'the reader was behind');

    raw.resume();
    await waitFor(() => raw.messages.filter((m) => m.type === 'chat:message').length >= total,
      30000, 'every message to reach the reader');
    const got = raw.messages.filter((m) => m.type === 'chat:message');
    assert.equal(got.length, total);
    for (let n = 0; n < total; n++) {
      assert.equal(got[n].data.n, n, `message ${n} in order`);
      assert.equal(got[n].data.pad, padOf(n), `message ${n} whole`);
    }
    assert.deepEqual(raw.protocolErrors, []);
    assert.equal(raw.closeFrame, null);
  });
});
