// A minimal WebSocket client over a bare net.Socket: the test controls reading (pause)
// and sees exactly when the server ends the TCP connection.
'use strict';

const crypto = require('node:crypto');
const net = require('node:net');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// Encodes one client frame (RFC 6455 5.2): masked, FIN set, no RSV bits unless told
// otherwise ({ fin, rsv: 0..7, mask }).
function encodeFrame(opcode, payload = '', { fin = true, rsv = 0, mask: masked = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = 0x80 | len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!masked) {
    header[1] &= 0x7f;
    return Buffer.concat([header, data]);
  }
  const mask = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, body]);
}

class RawClient {
  constructor(socket, rest) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.fragments = null; // { opcode, parts } while a fragmented message is open
    this.messages = []; // parsed JSON of text frames (or { $unparsed })
    this.frames = []; // every frame received, in order: { fin, rsv, opcode, payload }
    this.closeFrame = null; // { code, reason } if the server sent a close frame
    this.protocolErrors = [];
    this.bytesReceived = 0;
    this.waiters = new Set();
    this.autoPong = true;
    this.endInfo = null;
    this.ended = new Promise((resolve) => {
      socket.on('close', (hadError) => {
        this.endInfo = { hadError, error: this.error ? this.error.code || this.error.message : null };
        resolve(this.endInfo);
        this.wake();
      });
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('data', (chunk) => this.feed(chunk));
    if (rest && rest.length) this.feed(rest);
  }

  wake() {
    for (const w of this.waiters) w();
  }

  feed(chunk) {
    this.bytesReceived += chunk.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (masked) {
        this.protocolErrors.push('server frame is masked');
        off += 4;
      }
      if (b.length < off + len) break;
      let payload = b.subarray(off, off + len);
      if (masked) {
        const mask = b.subarray(off - 4, off);
        payload = Buffer.from(payload.map((x, i) => x ^ mask[i & 3]));
      }
      this.buf = b.subarray(off + len);
      this.onFrame(fin, opcode, Buffer.from(payload), (b[0] >> 4) & 7);
    }
    this.wake();
  }

  onFrame(fin, opcode, payload, rsv) {
    this.frames.push({ fin, rsv, opcode, payload });
    if (opcode === 0x8) {
      this.closeFrame = {
        code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
        reason: payload.subarray(2).toString('utf8'),
      };
      return;
    }
    if (opcode === 0x9) {
      if (this.autoPong && !this.socket.destroyed) this.socket.write(encodeFrame(0xa, payload));
      return;
    }
    if (opcode === 0xa) return;
    if (opcode === 0x0) {
      if (!this.fragments) {
        this.protocolErrors.push('continuation without a start');
        return;
      }
      this.fragments.parts.push(payload);
      if (fin) {
        const { opcode: op, parts } = this.fragments;
        this.fragments = null;
        this.onMessage(op, Buffer.concat(parts));
      }
      return;
    }
    if (!fin) {
      this.fragments = { opcode, parts: [payload] };
      return;
    }
    this.onMessage(opcode, payload);
  }

  onMessage(opcode, payload) {
    const text = payload.toString('utf8');
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      msg = { $unparsed: text, $opcode: opcode };
    }
    this.messages.push(msg);
  }

  sendText(text) {
    this.socket.write(encodeFrame(0x1, text));
  }

  // Writes one frame as encodeFrame builds it.
  sendFrame(opcode, payload, opts) {
    this.socket.write(encodeFrame(opcode, payload, opts));
  }

  // Writes raw bytes (several frames at once, a broken frame).
  write(bytes) {
    this.socket.write(bytes);
  }

  // Resolves with find()'s first defined result, checked on every arrival, or rejects
  // once the connection ended or ms passed (saying what arrived: got()).
  waitUntil(find, ms, got) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = find();
        if (v !== undefined) return done(null, v);
        if (this.endInfo) done(new Error(`raw client: connection ended before a match; got ${got()}`));
        return undefined;
      };
      const timer = setTimeout(() => done(new Error(`raw client: no match within ${ms} ms; got ${got()}`)), ms);
      const done = (err, v) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve(v);
      };
      this.waiters.add(check);
      check();
    });
  }

  // Resolves with the first frame (from index `from`) matching `pred`, waiting up to `ms`.
  waitFrame(pred, ms = 2000, from = 0) {
    return this.waitUntil(() => this.frames.slice(from).find(pred), ms, () => this.describeFrames());
  }

  describeFrames() {
    return JSON.stringify(this.frames.map((f) => ({ op: f.opcode, fin: f.fin, len: f.payload.length,
      text: f.payload.length <= 40 ? f.payload.toString('latin1') : undefined }))).slice(0, 2000);
  }

  send(obj) {
    this.sendText(JSON.stringify(obj));
  }

  // Resolves with the first received message matching `pred`, waiting up to `ms`.
  waitFor(pred, ms = 2000) {
    return this.waitUntil(() => this.messages.find(pred), ms,
      () => JSON.stringify(this.messages).slice(0, 2000));
  }

  pause() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }

  destroy() {
    this.socket.destroy();
    return this.ended;
  }
}

// Opens a TCP connection to 127.0.0.1:port and performs the upgrade handshake for
// `path` by hand (with `headers` added). Resolves with a RawClient once the server
// answered 101 with the right Sec-WebSocket-Accept; client.headers has the answer's.
function rawConnect(port, path, { timeout = 5000, headers: extra = {} } = {}) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const expectAccept = crypto.createHash('sha1').update(key + GUID).digest('base64');
    const socket = net.connect({ host: '127.0.0.1', port });
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`raw handshake: no 101 within ${timeout} ms`)), timeout);
    function fail(err) {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
    function onData(chunk) {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      clearTimeout(timer);
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = lines[0];
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`raw handshake: ${status}`));
      if (headers['sec-websocket-accept'] !== expectAccept) {
        return fail(new Error(`raw handshake: bad Sec-WebSocket-Accept ${headers['sec-websocket-accept']}`));
      }
      const client = new RawClient(socket, head.subarray(end + 4));
      client.headers = headers;
      return resolve(client);
    }
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\n` +
        `Host: 127.0.0.1:${port}\r\n` +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${key}\r\n` +
        'Sec-WebSocket-Version: 13\r\n' +
        Object.entries(extra).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
        '\r\n');
    });
  });
}

module.exports = { rawConnect, encodeFrame, RawClient };
