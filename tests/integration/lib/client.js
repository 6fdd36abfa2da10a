// A recording WebSocket client over `ws` for black-box tests of the JSON protocol.
'use strict';

const { isDeepStrictEqual } = require('node:util');
const WebSocket = require('ws');

const DEFAULT_WAIT_MS = 2000;
const open = new Set(); // every client not yet closed, for closeAll()

function describe(msg) {
  const s = JSON.stringify(msg);
  return s && s.length > 300 ? s.slice(0, 300) + '...' : s;
}

// A predicate is a function, a type string, or an object whose fields must all be
// deep-equal to the message's (e.g. { type: 'ack', id: 3 }).
function toPredicate(p) {
  if (typeof p === 'function') return p;
  if (typeof p === 'string') return (m) => m && m.type === p;
  if (p && typeof p === 'object') {
    return (m) => m && Object.entries(p).every(([k, v]) => isDeepStrictEqual(m[k], v));
  }
  throw new TypeError('predicate must be a function, a type string or an object');
}

class Client {
  constructor(ws) {
    this.ws = ws;
    this.entries = []; // { msg, consumed, at } in arrival order
    this.errors = [];
    this.pings = 0; // WebSocket ping frames received
    this.nextId = 1;
    this.hello = null;
    this.closeInfo = null;
    this.waiters = new Set();
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        open.delete(this);
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
        for (const w of this.waiters) w();
      });
    });
    ws.on('error', (err) => this.errors.push(err));
    ws.on('ping', () => {
      this.pings += 1;
    });
    ws.on('message', (data, isBinary) => {
      let msg;
      const text = data.toString('utf8');
      try {
        msg = JSON.parse(text);
      } catch (e) {
        msg = { $unparsed: text, $binary: isBinary };
      }
      this.entries.push({ msg, consumed: false, at: Date.now() });
      for (const w of this.waiters) w();
    });
    open.add(this);
  }

  get user() {
    return this.hello && this.hello.data && this.hello.data.user;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  // Every message received so far, in order (consumed or not).
  get messages() {
    return this.entries.map((e) => e.msg);
  }

  // Messages not yet consumed by next()/request()/until().
  pending() {
    return this.entries.filter((e) => !e.consumed).map((e) => e.msg);
  }

  received() {
    return this.entries
      .map((e) => (e.consumed ? '  ' : '* ') + describe(e.msg))
      .join('\n') || '  (nothing)';
  }

  // Waits until some unconsumed message satisfies `pred` (or `ms` pass). `until` marks
  // everything up to and including the match consumed and returns the skipped ones too.
  waitEntry(pred, ms, what) {
    const test = toPredicate(pred);
    return new Promise((resolve, reject) => {
      const find = () => this.entries.findIndex((e) => !e.consumed && test(e.msg));
      const check = () => {
        const i = find();
        if (i >= 0) return done(null, i);
        if (this.closeInfo) {
          done(new Error(`${what}: connection closed (${JSON.stringify(this.closeInfo)}) ` +
            `before a match; received (* = unconsumed):\n${this.received()}`));
        }
        return undefined;
      };
      const timer = setTimeout(() => {
        done(new Error(`${what}: no matching message within ${ms} ms; received ` +
          `(* = unconsumed):\n${this.received()}`));
      }, ms);
      const done = (err, i) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve(i);
      };
      this.waiters.add(check);
      check();
    });
  }

  // Resolves with the first not-yet-consumed message matching `pred` and consumes it.
  async next(pred = () => true, ms = DEFAULT_WAIT_MS) {
    const i = await this.waitEntry(pred, ms, 'next()');
    this.entries[i].consumed = true;
    return this.entries[i].msg;
  }

  // Waits for a message matching `pred`; returns { match, before } where `before` holds
  // the unconsumed messages that arrived earlier. All of them become consumed. This is
  // the barrier used to prove that something was NOT sent before a later event.
  async until(pred, ms = DEFAULT_WAIT_MS) {
    const i = await this.waitEntry(pred, ms, 'until()');
    const before = [];
    for (let j = 0; j < i; j++) {
      if (!this.entries[j].consumed) {
        this.entries[j].consumed = true;
        before.push(this.entries[j].msg);
      }
    }
    this.entries[i].consumed = true;
    return { match: this.entries[i].msg, before };
  }

  // Collects every unconsumed message matching `pred` that arrives within `ms`.
  async collect(pred, ms) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const test = toPredicate(pred);
    const out = [];
    for (const e of this.entries) {
      if (!e.consumed && test(e.msg)) {
        e.consumed = true;
        out.push({ ...e.msg, $at: e.at });
      }
    }
    return out;
  }

  // Consumes everything received so far.
  drain() {
    for (const e of this.entries) e.consumed = true;
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendRaw(payload, { binary = false } = {}) {
    this.ws.send(payload, { binary });
  }

  // Sends {type, room?, id, data?} with a fresh integer id and resolves with the
  // matching `ack` or `error` message (the test asserts which).
  async request(type, { room, data, id, ms = DEFAULT_WAIT_MS } = {}) {
    const rid = id !== undefined ? id : this.nextId++;
    const msg = { type, id: rid };
    if (room !== undefined) msg.room = room;
    if (data !== undefined) msg.data = data;
    this.send(msg);
    return this.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === rid, ms);
  }

  close(code, reason) {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(code, reason);
    }
    return this.closed;
  }

  // Drops the TCP connection without a close handshake.
  terminate() {
    this.ws.terminate();
    return this.closed;
  }
}

// connect(url, opts) resolves with a Client once the server's `hello` arrived. `opts`
// goes to the ws constructor (e.g. { autoPong: false }); opts.timeout bounds the wait.
function connect(url, opts = {}) {
  const { timeout = 5000, ...wsOpts } = opts;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeout, ...wsOpts });
    const client = new Client(ws);
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`connect ${url}: no hello within ${timeout} ms; ` +
      `received:\n${client.received()}`)), timeout);
    ws.on('unexpected-response', (req, res) => {
      fail(new Error(`connect ${url}: HTTP ${res.statusCode} instead of an upgrade`));
    });
    ws.on('error', (err) => fail(new Error(`connect ${url}: ${err.message}`)));
    client.closed.then((info) => fail(new Error(`connect ${url}: closed before hello ` +
      `(${JSON.stringify(info)})`)));
    client.next('hello', timeout).then((hello) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.hello = hello;
      resolve(client);
    }, () => {});
  });
}

// Closes every client still open (call from after()).
async function closeAll() {
  const all = [...open];
  for (const c of all) c.ws.terminate();
  await Promise.all(all.map((c) => c.closed));
}

module.exports = { connect, closeAll, Client, toPredicate };
