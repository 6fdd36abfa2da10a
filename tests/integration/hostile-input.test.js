// Hostile input (docs/security.md): what fuzzing the wire and the HTTP API found, and
// bad bytes through every input path. Each case gets a clear answer (an error code, an
// HTTP status or a close code), a log line, and the server keeps serving.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { connect, closeAll, Client } = require('./lib/client');
const { request, rawRequest, upgradeRequest } = require('./lib/http');
const { sseConnect } = require('./lib/sse');
const { uid, expectAck, expectError, assertServes } = require('./lib/helpers');

const KEY = 'hostile-api-key';

// Opens a WebSocket without waiting for hello; resolves with the client once it closed
// (or rejects after ms): what a refused connection got.
async function openUntilClosed(url, ms = 5000) {
  const client = new Client(new WebSocket(url, { handshakeTimeout: ms }));
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${url}: still open after ${ms} ms; received:\n` +
      client.received())), ms);
  });
  await Promise.race([client.closed, timeout]).finally(() => clearTimeout(timer));
  return client;
}

function post(path, headers, body) {
  const lines = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers];
  return `${lines.join('\r\n')}\r\n\r\n${body || ''}`;
}

describe('hostile input', () => {
  let server;
  const auth = `Authorization: Bearer ${KEY}`;

  before(async () => {
    server = await startServer({ config: { api: { keys: [KEY] } } });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  describe('HTTP API bodies', () => {
    it('answers an unauthenticated POST with Content-Length: 0 with 401 before reading anything', async () => {
      const res = await rawRequest(server.port, post('/api/publish', ['Content-Length: 0']));
      assert.equal(res.status, 401, res.head);
      assert.ok(res.closed, 'the connection is closed after the refusal');
    });

    it('answers an authenticated empty body with 400 bad_json', async () => {
      const res = await rawRequest(server.port, post('/api/publish', [auth, 'Content-Length: 0']), 1500);
      assert.equal(res.status, 400, res.head);
      assert.equal(JSON.parse(res.body).error, 'bad_json');
    });

    it('answers a POST without Content-Length with 411 at once, not after a timeout', async () => {
      const res = await rawRequest(server.port, post('/api/publish', [auth]));
      assert.equal(res.status, 411, res.head);
      assert.equal(JSON.parse(res.body).error, 'bad_message');
      assert.ok(res.closed);
    });

    it('answers a chunked POST with 411', async () => {
      const body = '5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n';
      const res = await rawRequest(server.port,
        post('/api/publish', [auth, 'Transfer-Encoding: chunked'], body));
      assert.equal(res.status, 411, res.head);
      assert.match(JSON.parse(res.body).message, /chunked/);
      assert.ok(res.closed);
    });

    it('answers a Content-Length that is not a number with 400, and one over 64KiB with 413', async () => {
      for (const cl of ['-5', 'abc', '1e3', '99999999999999999999999']) {
        const res = await rawRequest(server.port, post('/api/publish', [auth, `Content-Length: ${cl}`]));
        assert.equal(res.status, 400, `Content-Length: ${cl}: ${res.head}`);
      }
      const res = await rawRequest(server.port, post('/api/publish', [auth, 'Content-Length: 100000']));
      assert.equal(res.status, 413, res.head);
      assert.ok(res.closed);
    });

    it('logs the refusals and still serves the API and WebSocket clients', async () => {
      await server.waitForLog(/msg="api refused" status=411/);
      const room = uid('api-ok');
      const res = await request('POST', server.httpUrl('/api/publish'),
        { headers: { authorization: `Bearer ${KEY}` }, body: { room, type: 'news', data: 1 } });
      assert.equal(res.status, 200, res.text);
      await assertServes(server);
    });
  });

  describe('HTTP fallback (SSE) POSTs', () => {
    it('answers a POST without Content-Length or chunked with 411 at once, a bad length with 400', async () => {
      const a = await sseConnect(server.httpUrl(`/chat?user=${uid('sse')}`));
      const target = `/chat?transport=sse&stream=${a.stream}`;
      for (const [headers, body, status] of [[[], '', 411],
        [['Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n', 411],
        [['Content-Length: abc'], '', 400]]) {
        const res = await rawRequest(server.port, post(target, headers, body));
        assert.equal(res.status, status, `${headers}: ${res.head}`);
        assert.ok(res.closed, 'closed, not left waiting for a body');
      }
      await server.waitForLog(/msg="sse post rejected" stream=\S+ reason="a POST needs a Content-Length"/);
      assert.equal(await a.send({ type: 'ping', id: 'p', data: 1 }), 204);
      assert.equal((await a.next('pong')).data, 1);
      a.close();
    });
  });

  describe('oversize input', () => {
    it('closes a 16 MiB frame with 1009 from its header, and serves on', async () => {
      const c = await connect(server.url(`/chat?user=${uid('big')}`));
      c.sendRaw(Buffer.alloc(16 * 1024 * 1024, 0x61));
      assert.equal((await c.closed).code, 1009);
      await server.waitForLog(/message too big/);
      await assertServes(server);
    });

    it('drops a request line with a 100 KiB query string without upgrading it, and serves on', async () => {
      const res = await upgradeRequest(server.port, `/chat?user=a&pad=${'x'.repeat(100 * 1024)}`);
      assert.notEqual(res.status, 101, res.head);
      assert.ok(res.closed, 'the connection is closed');
      await assertServes(server);
    });
  });

  describe('message ids', () => {
    it('runs two messages whose string ids differ only after a NUL byte', async () => {
      const room = uid('nul-id');
      const c = await connect(server.url(`/chat?user=${uid('nul')}`));
      expectAck(await c.request('join', { room }), 1);
      const a = expectAck(await c.request('chat:message', { room, id: 'm\u0000a', data: 'first' }), 'm\u0000a');
      const b = expectAck(await c.request('chat:message', { room, id: 'm\u0000b', data: 'second' }), 'm\u0000b');
      assert.notEqual(a.seq, b.seq, 'the second message ran (its own seq), not answered with the first reply');
      const events = [await c.next('chat:message'), await c.next('chat:message')];
      assert.deepEqual(events.map((e) => e.data), ['first', 'second']);
      // and a real repeat is still answered from the window
      const again = expectAck(await c.request('chat:message', { room, id: 'm\u0000b', data: 'x' }), 'm\u0000b');
      assert.equal(again.seq, b.seq);
      await c.close();
    });
  });

  describe('sync', () => {
    it('answers since above 2^53 with bad_message, not internal', async () => {
      const room = uid('sync-big');
      const c = await connect(server.url(`/chat?user=${uid('sync')}`));
      expectAck(await c.request('join', { room }), 1);
      for (const since of [2 ** 53 + 2, 1e300]) {
        const id = c.nextId++;
        c.sendRaw(`{"type":"sync","id":${id},"room":"${room}","data":{"since":${since}}}`);
        expectError(await c.next((m) => m.id === id), 'bad_message', id, `since ${since}`);
      }
      await c.close();
      assert.doesNotMatch(server.logs(), /lua error[^\n]*sync/);
    });
  });

  describe('the user query parameter', () => {
    for (const [what, raw] of [['not UTF-8', '%ff%fe'], ['with a tab', 'ana%09bob'],
      ['with DEL', 'ana%7fbob'], ['with a C1 control character', 'ana%c2%85bob'],
      ['over 128 bytes', 'u'.repeat(129)]]) {
      it(`refuses a user ${what} at the handshake with HTTP 400, and the room's members stay`, async () => {
        const room = uid('user-param');
        const member = await connect(server.url(`/chat?user=${uid('member')}`));
        expectAck(await member.request('join', { room }), 1);
        const res = await upgradeRequest(server.port, `/chat?user=${raw}`);
        assert.equal(res.status, 400, res.head);
        const body = JSON.parse(res.body);
        assert.equal(body.error, 'bad_message');
        assert.match(body.message, /user must/);
        assert.ok(member.isOpen, 'the member is still connected');
        expectAck(await member.request('presence:list', { room }), 2);
        await member.close();
      });
    }

    for (const [what, raw] of [['not UTF-8', '%ff%fe'], ['with a tab', 'ana%09bob'],
      ['over 128 bytes', 'u'.repeat(129)]]) {
      it(`refuses a user ${what} on the HTTP fallback (SSE) with HTTP 400 too`, async () => {
        const res = await sseConnect(server.httpUrl(`/chat?user=${raw}`));
        assert.equal(res.status, 400, JSON.stringify(res.text));
        assert.match(res.text, /user must/);
      });
    }

    it('never lets a user with %00 in: libwebsockets refuses the request line', async () => {
      const bad = await openUntilClosed(server.url('/chat?user=ana%00bob'));
      assert.ok(!bad.messages.some((m) => m.type === 'hello'), `no hello: ${bad.received()}`);
      assert.notEqual(bad.closeInfo.code, 1000);
    });

    it('never opens a stream on the HTTP fallback for a user with %00: libwebsockets drops the request', async () => {
      const res = await sseConnect(server.httpUrl('/chat?user=ana%00bob')).catch((e) => e);
      assert.ok(res instanceof Error ? /hang up|ECONNRESET/.test(res.message) : res.status === 400,
        `refused: ${res.message || JSON.stringify(res)}`);
    });

    it('logs the refused user parameter and still serves', async () => {
      await server.waitForLog(/msg="upgrade rejected" path=\/chat remote=\S+ status=400 reason="user must/);
      await assertServes(server);
    });
  });
});
