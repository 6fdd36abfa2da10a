// Test doubles for the unit tests of examples/web/moonwire.js: a clock whose time
// moves only when the test says so, and a WebSocket whose network is the test.
// Integration tests (tests/integration/browser-*.test.js) use the real things.
'use strict';

// Lets every pending promise callback run (one macrotask turn).
const settle = () => new Promise((resolve) => setImmediate(resolve));

class FakeClock {
  constructor(start = 1000000) {
    this.t = start;
    this.timers = new Map(); // id -> {at, fn, seq}
    this.nextId = 1;
  }

  now() { return this.t; }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn, seq: id });
    return id;
  }

  clearTimeout(id) { this.timers.delete(id); }

  // The earliest timer due at or before `until`, or null.
  due(until) {
    let best = null;
    for (const [id, tm] of this.timers) {
      if (tm.at > until) continue;
      if (!best || tm.at < best.at || (tm.at === best.at && tm.seq < best.seq)) best = { id, ...tm };
    }
    return best;
  }

  // Moves time forward by ms, running each timer at its time, promises in between.
  async advance(ms) {
    const until = this.t + ms;
    await settle();
    for (let tm = this.due(until); tm; tm = this.due(until)) {
      this.timers.delete(tm.id);
      this.t = Math.max(this.t, tm.at);
      tm.fn();
      await settle();
    }
    this.t = until;
  }

  // Time until the next timer (Infinity when none).
  next() {
    let at = Infinity;
    for (const tm of this.timers.values()) at = Math.min(at, tm.at);
    return at - this.t;
  }
}

// A WebSocket class whose instances the test drives: accept(), frame(), drop().
function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(text));
    }

    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }

    // The server side: open, then say hello.
    accept(hello = {}) {
      this.readyState = 1;
      this.onopen();
      this.frame({ type: 'hello', data: { conn: '1', node: 'node-t', user: 'ana', heartbeat: 25, ...hello } });
    }

    frame(msg) { this.onmessage({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) }); }

    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose({ code, reason });
    }

    // The frames of one type sent so far.
    of(type) { return this.sent.filter((m) => m.type === type); }
  }
  FakeWebSocket.sockets = sockets;
  FakeWebSocket.last = () => sockets[sockets.length - 1];
  return FakeWebSocket;
}

// EventSource and fetch for the HTTP transport, driven by the test: sources[i].open()
// names the stream, .frame() sends a frame down, .fail() breaks it; posts[i] is a POST
// waiting for .answer(status) or .fail().
function fakeHttp() {
  const sources = [];
  const posts = [];
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.listeners = {};
      this.closed = false;
      sources.push(this);
    }

    addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }

    close() { this.closed = true; }

    event(type, data) {
      const e = { data: typeof data === 'string' ? data : JSON.stringify(data) };
      if (type === 'message') this.onmessage(e);
      else for (const fn of this.listeners[type] || []) fn(e);
    }

    open(stream = 'n1:1:secret') {
      this.event('mw:stream', { stream });
      this.frame({ type: 'hello', data: { conn: '1', node: 'n1', user: 'ana', heartbeat: 25 } });
    }

    frame(msg) { this.event('message', msg); }

    fail() { this.onerror({}); }
  }
  const fetch = (url, opts) => new Promise((resolve, reject) => {
    posts.push({
      url, method: opts.method, frames: opts.body.split('\n').map((t) => JSON.parse(t)),
      answer: (status = 204) => resolve({ status }),
      fail: () => reject(new TypeError('network error')),
    });
  });
  const framesOf = (type) => posts.flatMap((p) => p.frames).filter((m) => m.type === type);
  return { EventSource: FakeEventSource, fetch, sources, posts, framesOf };
}

module.exports = { FakeClock, fakeWebSocket, fakeHttp, settle };
