// permessage-deflate per route (`compression: true`): negotiated with real clients
// (ws) and by hand, a broadcast compressed once for every recipient, compressed client
// messages inflated, and bad compressed input answered with a close code.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const zlib = require('node:zlib');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { rawConnect, encodeFrame } = require('./lib/rawws');
const { request } = require('./lib/http');
const { uid, expectAck, assertServes, waitFor } = require('./lib/helpers');
const { metrics } = require('./lib/proc');

const KEY = 'compression-test-key';
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// A message body that compresses well: JSON-ish text.
function compressible(n) {
  const word = '{"user":"ana","text":"hello there, general kenobi"},';
  return word.repeat(Math.ceil(n / word.length)).slice(0, n);
}

// Compresses like a permessage-deflate client (the trailer left out).
function deflate(buf) {
  const z = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.ok(z.subarray(-4).equals(TRAILER));
  return z.subarray(0, -4);
}

function inflate(payload) {
  return zlib.inflateRawSync(Buffer.concat([payload, TRAILER]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

describe('compression', () => {
  let server;
  const raws = [];

  before(async () => {
    server = await startServer({
      routes: {
        '/chat': { script: 'app:chat', compression: true },
        '/plain': { script: 'app:chat' },
        '/echo': { script: 'app:echo', protocol: 'raw', compression: true },
      },
      config: {
        api: { keys: [KEY] },
        limits: { max_message: '64KiB', rate: 100000, burst: 100000 },
      },
    });
  });

  after(async () => {
    for (const r of raws) await r.destroy();
    await closeAll();
    if (server) await server.stop();
  });

  it('is negotiated with a client that offers it, and only on routes that have it', async () => {
    const c = await connect(server.url(`/chat?user=${uid('z')}`), { perMessageDeflate: true });
    assert.equal(c.ws.extensions, 'permessage-deflate');
    const p = await connect(server.url(`/plain?user=${uid('p')}`), { perMessageDeflate: true });
    assert.equal(p.ws.extensions, '');
    const n = await connect(server.url(`/chat?user=${uid('n')}`), { perMessageDeflate: false });
    assert.equal(n.ws.extensions, '');
    for (const x of [c, p, n]) await x.close();
  });

  it('compresses a broadcast once for all its recipients', async () => {
    const room = uid('zroom');
    const members = [];
    for (let i = 0; i < 10; i++) {
      const c = await connect(server.url(`/chat?user=${uid('m')}`), { perMessageDeflate: { threshold: 0 } });
      expectAck(await c.request('join', { room }), 1);
      members.push(c);
    }
    const text = compressible(8000);
    const before = await metrics(server.port);
    const res = await request('POST', server.httpUrl('/api/publish'), {
      headers: { authorization: `Bearer ${KEY}` },
      body: { room, type: 'news', data: { text } },
    });
    assert.equal(res.status, 200, res.text);
    for (const c of members) {
      const ev = await c.next('news', 5000);
      assert.equal(ev.data.text, text);
    }
    const after = await metrics(server.port);
    const compressed = after['moonwire_deflate_frames_total{result="compressed"}'] -
      before['moonwire_deflate_frames_total{result="compressed"}'];
    assert.equal(compressed, 1, 'one compression for ten recipients');
    const bytesIn = after['moonwire_deflate_bytes_total{side="in"}'] - before['moonwire_deflate_bytes_total{side="in"}'];
    const bytesOut = after['moonwire_deflate_bytes_total{side="out"}'] - before['moonwire_deflate_bytes_total{side="out"}'];
    assert.ok(bytesOut * 4 < bytesIn, `compressed ${bytesIn} -> ${bytesOut} bytes`);
    assert.ok(after.moonwire_bytes_out_total - before.moonwire_bytes_out_total < 10 * 8000 / 2,
      'the ten recipients got the compressed frame');
    for (const c of members) await c.close();
  });

  it('inflates compressed client messages, fragmented or not, text and binary', async () => {
    const ws = new WebSocket(server.url('/echo'), { perMessageDeflate: { threshold: 0 } });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const got = [];
    ws.on('message', (data, isBinary) => got.push({ data: Buffer.from(data), isBinary }));
    const sent = [
      [Buffer.from(compressible(60000)), false],
      [Buffer.from(compressible(10)), false],
      [Buffer.alloc(0), false],
      [Buffer.from(compressible(30000)), true],
    ];
    for (const [data, binary] of sent) ws.send(binary ? data : data.toString(), { binary });
    ws.send(compressible(20000), { fin: false });
    ws.send(compressible(20000), { fin: true });
    await waitFor(() => got.length === sent.length + 1, 10000, 'every echo');
    for (let i = 0; i < sent.length; i++) {
      assert.ok(got[i].data.equals(sent[i][0]), `message ${i}`);
      assert.equal(got[i].isBinary, sent[i][1]);
    }
    assert.equal(got[sent.length].data.length, 40000);
    ws.close();
  });

  it('negotiates by hand: 13.7-style offers of more than 255 bytes, RSV1 frames both ways', async () => {
    const offer = 'permessage-deflate; client_no_context_takeover; client_max_window_bits; ' +
      'server_no_context_takeover; server_max_window_bits=9, ' +
      'permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, ' +
      'permessage-deflate; client_no_context_takeover; client_max_window_bits';
    assert.ok(offer.length > 255);
    const raw = await rawConnect(server.port, '/echo', { headers: { 'Sec-WebSocket-Extensions': offer } });
    raws.push(raw);
    assert.equal(raw.headers['sec-websocket-extensions'],
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9');
    const text = compressible(5000);
    raw.sendFrame(TEXT, deflate(Buffer.from(text)), { rsv: 4 });
    const f = await raw.waitFrame((x) => x.opcode === TEXT);
    assert.equal(f.rsv, 4, 'the echo comes compressed');
    assert.equal(inflate(f.payload).toString(), text);
    // Fragmented: RSV1 on the first frame only.
    const z = deflate(Buffer.from(text));
    raw.write(Buffer.concat([
      encodeFrame(BINARY, z.subarray(0, 100), { fin: false, rsv: 4 }),
      encodeFrame(0x0, z.subarray(100), { fin: true }),
    ]));
    const g = await raw.waitFrame((x) => x.opcode === BINARY);
    assert.equal(inflate(g.payload).toString(), text);
  });

  it('closes 1009 on a message that inflates past max_message, 1007 on bad data or bad UTF-8', async () => {
    const cases = [
      [deflate(Buffer.alloc(1024 * 1024)), BINARY, 1009], // 1 MiB of zeros in ~1 KiB
      [Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), BINARY, 1007],
      [deflate(Buffer.from([0x61, 0xed, 0xa0, 0x80])), TEXT, 1007], // a surrogate
    ];
    for (const [payload, op, code] of cases) {
      const raw = await rawConnect(server.port, '/echo', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
      raws.push(raw);
      raw.sendFrame(op, payload, { rsv: 4 });
      const f = await raw.waitFrame((x) => x.opcode === CLOSE, 5000);
      assert.equal(f.payload.readUInt16BE(0), code);
    }
    await server.waitForLog(/message too big/, 2000);
    await assertServes(server);
  });
});
