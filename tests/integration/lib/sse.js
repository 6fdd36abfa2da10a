// A client of the HTTP fallback transport (core/http/sse.c) for black-box tests: the
// stream is a GET read as Server-Sent Events, frames go up in POSTs. Mirrors
// lib/client.js: next(pred), request(type, {room, data}), collect(pred, ms).
'use strict';

const http = require('node:http');
const { isDeepStrictEqual } = require('node:util');

const WAIT_MS = 3000;
const open = new Set();

function toPredicate(p) {
  if (typeof p === 'function') return p;
  if (typeof p === 'string') return (m) => m && m.type === p;
  return (m) => m && Object.entries(p).every(([k, v]) => isDeepStrictEqual(m[k], v));
}

class SseClient {
  constructor(base, res, req) {
    this.base = base; // http://host:port/route?query
    this.res = res;
    this.req = req;
    this.status = res.statusCode;
    this.stream = null;
    this.entries = []; // {msg, consumed}
    this.closeEvent = null; // {code, reason} from event mw:close
    this.ended = false;
    this.waiters = new Set();
    this.nextId = 1;
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        this.onEvent(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    });
    res.on('end', () => this.onEnd());
    res.on('error', () => this.onEnd());
    res.on('close', () => this.onEnd());
    open.add(this);
  }

  onEnd() {
    if (this.ended) return;
    this.ended = true;
    open.delete(this);
    this.wake();
  }

  onEvent(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // a comment: the server's ping
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (!data.length) return;
    const text = data.join('\n');
    if (event === 'mw:stream') this.stream = JSON.parse(text).stream;
    else if (event === 'mw:close') this.closeEvent = JSON.parse(text);
    else {
      let msg;
      try { msg = JSON.parse(text); } catch (e) { msg = { $unparsed: text }; }
      this.entries.push({ msg, consumed: false });
    }
    this.wake();
  }

  wake() { for (const w of this.waiters) w(); }

  get hello() { const e = this.entries.find((x) => x.msg.type === 'hello'); return e && e.msg; }
  get user() { return this.hello && this.hello.data.user; }

  until(fn, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = fn();
        if (v !== undefined && v !== null && v !== false) return done(null, v);
        if (this.ended) done(new Error(`${what}: the stream ended; got ${JSON.stringify(this.entries.map((e) => e.msg)).slice(0, 800)}`));
        return undefined;
      };
      const timer = setTimeout(() => done(new Error(`${what}: not within ${ms} ms; got ${JSON.stringify(this.entries.map((e) => e.msg)).slice(0, 800)}`)), ms);
      const done = (err, v) => { clearTimeout(timer); this.waiters.delete(check); if (err) reject(err); else resolve(v); };
      this.waiters.add(check);
      check();
    });
  }

  async next(pred, ms = WAIT_MS) {
    const test = toPredicate(pred);
    const e = await this.until(() => this.entries.find((x) => !x.consumed && test(x.msg)), ms, 'next()');
    e.consumed = true;
    return e.msg;
  }

  async collect(pred, ms) {
    await new Promise((r) => setTimeout(r, ms));
    const test = toPredicate(pred);
    return this.entries.filter((e) => !e.consumed && test(e.msg)).map((e) => { e.consumed = true; return e.msg; });
  }

  // POSTs raw text (frames joined by newlines) to the stream (or `stream`); resolves
  // with the status.
  post(body, { stream = this.stream, url } = {}) {
    const target = url || `${this.base}${this.base.includes('?') ? '&' : '?'}transport=sse&stream=${encodeURIComponent(stream)}`;
    return new Promise((resolve, reject) => {
      const req = http.request(target, { method: 'POST', agent: false, timeout: WAIT_MS, headers: { 'content-type': 'text/plain' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('timeout', () => req.destroy(new Error('POST: no answer')));
      req.on('error', reject);
      req.end(body);
    });
  }

  send(...msgs) { return this.post(msgs.map((m) => JSON.stringify(m)).join('\n')); }

  async request(type, { room, data } = {}, ms = WAIT_MS) {
    const id = this.nextId++;
    const msg = { type, id };
    if (room !== undefined) msg.room = room;
    if (data !== undefined) msg.data = data;
    const status = await this.send(msg);
    if (status !== 204) throw new Error(`POST answered ${status}`);
    return this.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === id, ms);
  }

  // Waits for the end of the stream; returns the mw:close event (or null).
  async closed(ms = WAIT_MS) {
    await this.until(() => this.ended, ms, 'closed()');
    return this.closeEvent;
  }

  close() {
    this.req.destroy();
    this.onEnd();
  }
}

// Opens a stream on url (http://host:port/route?query); resolves once the stream is
// named and hello came (only named with hello: false: a connection that waits for its
// auth message), or with {status, text} when the server refused it.
function sseConnect(url, { timeout = WAIT_MS, hello = true } = {}) {
  const full = `${url}${url.includes('?') ? '&' : '?'}transport=sse`;
  return new Promise((resolve, reject) => {
    const req = http.get(full, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
        return;
      }
      res.socket.setTimeout(0); // the stream may be quiet for a while
      const c = new SseClient(url, res, req);
      c.until(() => c.stream && (c.hello || !hello), timeout, 'hello').then(() => resolve(c), reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error('no answer to the stream GET')));
    req.on('error', reject);
  });
}

function closeAllSse() { for (const c of [...open]) c.close(); }

module.exports = { sseConnect, closeAllSse };
