// WebSocket conformance (RFC 6455), as the Autobahn|Testsuite probes it, reproduced with
// a raw socket against the echo route so that CI guards each case class: control frames
// in order with data, nothing after the peer's close, invalid close payloads, protocol
// errors ending the TCP connection promptly, empty and many fragments, HTTP answers to
// refused upgrades.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { startServer } = require('./lib/server');
const { rawConnect, encodeFrame, RawClient } = require('./lib/rawws');
const { assertServes } = require('./lib/helpers');

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;
const ENDS_WITHIN_MS = 2000; // libwebsockets lingered 5 s here

function closePayload(code, reason = '') {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8');
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

// Resolves when the TCP connection ended, or rejects after ms.
function endsWithin(raw, ms, what) {
  let timer;
  return Promise.race([
    raw.ended,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: TCP connection still open after ${ms} ms; ` +
        `frames ${raw.describeFrames()}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Sends an HTTP request head by hand; resolves with the whole answer once the server
// closes (or after ms).
function httpExchange(port, head, ms = 3000) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no end of answer within ${ms} ms: ${got}`)); }, ms);
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(timer); resolve(got); });
    s.on('error', () => {});
    s.on('connect', () => s.write(head));
  });
}

function upgradeHead(path, extra = {}) {
  const headers = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  return `GET ${path} HTTP/1.1\r\n` + Object.entries(headers).filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
}

describe('websocket conformance', () => {
  let server;
  const raws = [];

  before(async () => {
    server = await startServer({
      routes: { '/echo': { script: 'app:echo', protocol: 'raw' } },
      config: { limits: { max_message: '8MiB', send_queue: '16MiB', rate: 1000000, burst: 1000000 } },
    });
  });

  after(async () => {
    for (const r of raws) await r.destroy();
    if (server) await server.stop();
  });

  async function echo() {
    const raw = await rawConnect(server.port, '/echo');
    raws.push(raw);
    return raw;
  }

  it('answers every ping with a pong, in order, ten at once (2.10, 2.11)', async () => {
    const raw = await echo();
    const pings = [...Array(10).keys()].map((i) => `payload-${i}`);
    raw.write(Buffer.concat(pings.map((p) => encodeFrame(PING, p))));
    await raw.waitFrame(() => raw.frames.filter((f) => f.opcode === PONG).length === 10);
    assert.deepEqual(raw.frames.filter((f) => f.opcode === PONG).map((f) => f.payload.toString()), pings);
  });

  it('sends the pong for a ping between fragments before the message it interrupted (5.6, 5.19, 5.20)', async () => {
    const raw = await echo();
    raw.write(Buffer.concat([
      encodeFrame(TEXT, 'frag1-', { fin: false }),
      encodeFrame(PING, 'between'),
      encodeFrame(CONT, 'frag2-', { fin: false }),
      encodeFrame(PING, 'again'),
      encodeFrame(CONT, 'frag3', { fin: true }),
    ]));
    await raw.waitFrame((f) => f.opcode === TEXT);
    const seen = raw.frames.map((f) => `${f.opcode}:${f.payload.toString()}`);
    assert.deepEqual(seen, [`${PONG}:between`, `${PONG}:again`, `${TEXT}:frag1-frag2-frag3`]);
    // The same with the fragments spread over time, the echo path busy in between.
    raw.frames.length = 0;
    raw.sendFrame(TEXT, 'a'.repeat(70000));
    raw.sendFrame(TEXT, 'x-', { fin: false });
    await new Promise((r) => setTimeout(r, 50));
    raw.sendFrame(PING, 'slow');
    await new Promise((r) => setTimeout(r, 50));
    raw.sendFrame(CONT, 'y');
    await raw.waitFrame((f) => f.opcode === TEXT && f.payload.toString() === 'x-y');
    assert.deepEqual(raw.frames.map((f) => f.opcode), [TEXT, PONG, TEXT]);
  });

  it('handles nothing after the peer\'s close frame, answers it and ends TCP (7.1.4, 7.1.5)', async () => {
    const raw = await echo();
    raw.write(Buffer.concat([
      encodeFrame(TEXT, 'before'),
      encodeFrame(TEXT, 'half', { fin: false }),
      encodeFrame(CLOSE, closePayload(1000, 'bye')),
      encodeFrame(CONT, 'rest'),
      encodeFrame(TEXT, 'after'),
      encodeFrame(PING, 'late'),
    ]));
    await endsWithin(raw, ENDS_WITHIN_MS, 'after the close handshake');
    assert.deepEqual(raw.frames.map((f) => `${f.opcode}:${f.opcode === CLOSE ? f.payload.readUInt16BE(0) : f.payload}`),
      [`${TEXT}:before`, `${CLOSE}:1000`]);
  });

  it('answers invalid close payloads with 1002 or 1007 (7.3.2, 7.5.1, 7.9.*)', async () => {
    const bad = [
      [Buffer.from([0x03]), 1002], // 1 byte
      [closePayload(999), 1002],
      [closePayload(1004), 1002],
      [closePayload(1005), 1002],
      [closePayload(1006), 1002],
      [closePayload(1015), 1002],
      [closePayload(2000), 1002],
      [closePayload(5000), 1002],
      [closePayload(1000, Buffer.from([0xce, 0xba, 0xed, 0xa0, 0x80])), 1007], // a surrogate
    ];
    for (const [payload, code] of bad) {
      const raw = await echo();
      raw.sendFrame(CLOSE, payload);
      const f = await raw.waitFrame((x) => x.opcode === CLOSE);
      assert.equal(f.payload.readUInt16BE(0), code, `close payload ${payload.toString('hex')}`);
      await endsWithin(raw, ENDS_WITHIN_MS, `after close payload ${payload.toString('hex')}`);
    }
    for (const code of [1000, 1001, 1003, 1011, 3000, 4999]) { // valid ones are echoed
      const raw = await echo();
      raw.sendFrame(CLOSE, closePayload(code, 'fine'));
      const f = await raw.waitFrame((x) => x.opcode === CLOSE);
      assert.equal(f.payload.readUInt16BE(0), code);
      await endsWithin(raw, ENDS_WITHIN_MS, `after close ${code}`);
    }
    const raw = await echo(); // an empty close is answered with an empty one
    raw.sendFrame(CLOSE, '');
    assert.equal((await raw.waitFrame((x) => x.opcode === CLOSE)).payload.length, 0);
  });

  it('fails a protocol error with 1002 and ends TCP promptly, replied to or not (3.2, 3.5-3.7)', async () => {
    for (const reply of [true, false]) {
      for (const [what, bytes] of [
        ['RSV2 on a text frame', encodeFrame(TEXT, 'x', { rsv: 2 })],
        ['RSV1 without permessage-deflate', encodeFrame(TEXT, 'x', { rsv: 4 })],
        ['RSV bits on a ping', encodeFrame(PING, 'x', { rsv: 7 })],
        ['a reserved opcode', encodeFrame(0x3, 'x')],
        ['an unmasked frame', encodeFrame(TEXT, 'x', { mask: false })],
        ['a fragmented ping', encodeFrame(PING, 'x', { fin: false })],
        ['a ping over 125 bytes', encodeFrame(PING, 'p'.repeat(126))],
        ['a continuation without a message', encodeFrame(CONT, 'x')],
      ]) {
        const raw = await echo();
        raw.write(Buffer.concat([encodeFrame(TEXT, 'ok'), bytes, encodeFrame(TEXT, 'never')]));
        const f = await raw.waitFrame((x) => x.opcode === CLOSE);
        assert.equal(f.payload.readUInt16BE(0), 1002, what);
        if (reply) raw.sendFrame(CLOSE, closePayload(1002));
        await endsWithin(raw, ENDS_WITHIN_MS, what);
        assert.deepEqual(raw.frames.filter((x) => x.opcode === TEXT).map((x) => x.payload.toString()), ['ok'], what);
      }
    }
  });

  it('takes empty fragments, and a message of 4 MiB in 64-byte fragments (the rx buffer grows geometrically)', async () => {
    const raw = await echo();
    raw.write(Buffer.concat([
      encodeFrame(TEXT, '', { fin: false }),
      encodeFrame(CONT, '', { fin: false }),
      encodeFrame(CONT, '', { fin: true }),
      encodeFrame(BINARY, '', { fin: false }),
      encodeFrame(CONT, 'data', { fin: true }),
      encodeFrame(TEXT, ''),
    ]));
    await raw.waitFrame(() => raw.frames.length >= 3);
    assert.deepEqual(raw.frames.map((f) => `${f.opcode}:${f.payload}`), [`${TEXT}:`, `${BINARY}:data`, `${TEXT}:`]);

    const big = crypto.randomBytes(4 * 1024 * 1024);
    const frames = [];
    for (let at = 0; at < big.length; at += 64) {
      const last = at + 64 >= big.length;
      frames.push(encodeFrame(at === 0 ? BINARY : CONT, big.subarray(at, at + 64), { fin: last }));
    }
    raw.frames.length = 0;
    raw.write(Buffer.concat(frames));
    const f = await raw.waitFrame((x) => x.opcode === BINARY, 60000);
    assert.equal(f.payload.length, big.length);
    assert.ok(f.payload.equals(big), 'echoed unchanged');
  });

  it('fails invalid UTF-8 in a fragment with 1007 before the message ends (6.*)', async () => {
    const raw = await echo();
    raw.write(Buffer.concat([
      encodeFrame(TEXT, Buffer.from([0xce, 0xba, 0xf4, 0x90, 0x80, 0x80]), { fin: false }),
    ]));
    const f = await raw.waitFrame((x) => x.opcode === CLOSE);
    assert.equal(f.payload.readUInt16BE(0), 1007);
    await endsWithin(raw, ENDS_WITHIN_MS, 'after invalid UTF-8');
  });

  // A proxy with upstream keepalive (nginx) sends an upgrade on a connection that
  // already carried plain HTTP, which libwebsockets serves: it is taken back.
  it('takes an upgrade that comes on a kept-alive HTTP connection', async () => {
    const s = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    let got = Buffer.alloc(0);
    const until = (re, what) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: got ${got.toString('latin1')}`)), 3000);
      const check = () => {
        if (re.test(got.toString('latin1'))) { clearTimeout(timer); s.off('data', onData); resolve(); }
      };
      const onData = (d) => { got = Buffer.concat([got, d]); check(); };
      s.on('data', onData);
      check();
    });
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until(/\r\n\r\nok\n$/, 'the first answer');
    got = Buffer.alloc(0);
    s.write(upgradeHead('/chat?user=kept%20alive&x=a+b', { Connection: 'upgrade' }));
    await until(/\r\n\r\n/, 'the 101');
    const text = got.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 101 /);
    const end = got.indexOf('\r\n\r\n') + 4;
    const raw = new RawClient(s, got.subarray(end));
    raws.push(raw);
    const hello = await raw.waitFor((m) => m.type === 'hello');
    assert.equal(hello.data.user, 'kept alive', 'the query comes through decoded once');
    raw.send({ type: 'ping', id: 'ka', data: 1 });
    await raw.waitFor((m) => m.type === 'pong' && m.id === 'ka');
    raw.sendFrame(PING, 'still there');
    assert.equal((await raw.waitFrame((f) => f.opcode === PONG)).payload.toString(), 'still there');
  });

  it('answers refused upgrades with an HTTP status, never a dropped socket', async () => {
    const cases = [
      ['/nope', {}, 404, /no such route/],
      ['/echo', { 'Sec-WebSocket-Version': '8' }, 426, /version 13/],
      ['/echo', { 'Sec-WebSocket-Key': null }, 400, /Sec-WebSocket-Key/],
      ['/echo', { 'Sec-WebSocket-Key': 'c2hvcnQ=' }, 400, /Sec-WebSocket-Key/],
      ['/echo', { Connection: 'keep-alive' }, 400, /Connection: Upgrade/],
      ['/echo', { 'Sec-WebSocket-Protocol': 'graphql-ws' }, 400, /sub-protocol/],
    ];
    for (const [path, extra, status, body] of cases) {
      const answer = await httpExchange(server.port, upgradeHead(path, extra));
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), `${path} ${JSON.stringify(extra)}: ${answer}`);
      assert.match(answer, body);
      if (status === 426) assert.match(answer, /\r\nSec-WebSocket-Version: 13\r\n/);
    }
    // An extension offer of 255 bytes and more (libwebsockets dropped the socket): 101,
    // without the extension on a route that does not compress.
    const offer = Array(12).fill('permessage-deflate; client_max_window_bits; server_max_window_bits=10').join(', ');
    assert.ok(offer.length >= 255);
    const raw = await rawConnect(server.port, '/echo', { headers: { 'Sec-WebSocket-Extensions': offer } });
    raws.push(raw);
    assert.equal(raw.headers['sec-websocket-extensions'], undefined);
    raw.sendText('works');
    assert.equal((await raw.waitFrame((x) => x.opcode === TEXT)).payload.toString(), 'works');
    // A sub-protocol we speak is selected.
    const withProto = await rawConnect(server.port, '/echo', { headers: { 'Sec-WebSocket-Protocol': 'x, moonwire' } });
    raws.push(withProto);
    assert.equal(withProto.headers['sec-websocket-protocol'], 'moonwire');
    await assertServes(server);
  });
});
