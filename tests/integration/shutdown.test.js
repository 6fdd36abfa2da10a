// Graceful shutdown (SPEC sections 4 and 10): SIGTERM sends a `reconnect` hint, closes
// every connection with 1001, and the process exits 0.
'use strict';

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck } = require('./lib/helpers');

describe('shutdown', () => {
  let server;

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('sends reconnect then closes with 1001 on SIGTERM, and exits 0', async () => {
    server = await startServer();
    const room = uid('room');
    const clients = [];
    for (let i = 0; i < 5; i++) {
      const c = await connect(server.url(`/chat?user=${uid('u')}`));
      expectAck(await c.request('join', { room }), 1);
      clients.push(c);
    }
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; log:\n${server.logs()}`);
    for (const c of clients) {
      const info = await c.closed;
      const hint = c.messages.find((m) => m.type === 'reconnect');
      assert.ok(hint, `reconnect hint before the close; got ${JSON.stringify(c.messages.slice(-3))}`);
      assert.equal(typeof hint.data.after_ms, 'number');
      assert.ok(hint.data.after_ms >= 0, `after_ms ${hint.data.after_ms}`);
      assert.equal(info.code, 1001, `close code ${JSON.stringify(info)}`);
    }
  });
});
