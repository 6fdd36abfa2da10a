/* moonwire.js - the browser client (SPEC section 9), served at /moonwire.js. No build
 * step, no dependencies:
 *
 *   <script src="/moonwire.js"></script>
 *   const mw = new Moonwire('ws://' + location.host + '/chat?user=ana');
 *   mw.on('chat:message', (ev) => show(ev));
 *   await mw.join('lobby');
 *   await mw.request('chat:message', { text: 'hi' }, { room: 'lobby' });
 *
 * It reconnects with exponential backoff and jitter, pings the server and measures the
 * round trip, rejoins its rooms after a reconnect and syncs what it missed (or emits
 * `reset`), keeps requests in an outbox until they are acked (resent after a
 * reconnect, in one server session so that each is processed once), and delivers
 * every sequenced event once, in order. docs/protocol.md describes the protocol. */
(function (global) {
  'use strict';

  const STATES = ['connecting', 'open', 'reconnecting', 'closed'];

  function randomId() {
    const c = global.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  class MoonwireError extends Error {
    constructor(code, message) {
      super(message || code);
      this.name = 'MoonwireError';
      this.code = code;
    }
  }

  class Moonwire {
    /* options: session (a window of message ids shared by every connection of this
     * client, default random), backoff {base: 1000, cap: 30000, jitter: 0.25} in ms,
     * pingInterval (ms, default 20000), pongTimeout (5000), requestTimeout (10000),
     * autoConnect (true). */
    constructor(url, options = {}) {
      this.options = {
        backoff: { base: 1000, cap: 30000, jitter: 0.25, ...(options.backoff || {}) },
        pingInterval: options.pingInterval || 20000,
        pongTimeout: options.pongTimeout || 5000,
        requestTimeout: options.requestTimeout || 10000,
      };
      this.session = options.session || randomId().replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64);
      this.url = url + (url.includes('?') ? '&' : '?') + 'session=' + encodeURIComponent(this.session);
      this.state = 'closed';
      this.rtt = null;         // ms, of the last ping
      this.user = null;        // from hello
      this.node = null;
      this.attempts = 0;       // reconnects since the last open
      this.rooms = new Map();  // room -> {data, seq, epoch}: rejoined and synced on reconnect
      this.outbox = new Map(); // id -> {msg, resolve, reject, timer}: until acked
      this.handlers = new Map();
      this.nextId = 1;
      this.ws = null;
      this.timers = {};
      // After the caller's own code: handlers it adds right away see 'connecting'.
      if (options.autoConnect !== false) Promise.resolve().then(() => this.connect());
    }

    on(type, fn) {
      if (!this.handlers.has(type)) this.handlers.set(type, new Set());
      this.handlers.get(type).add(fn);
      return () => this.off(type, fn);
    }

    off(type, fn) {
      const set = this.handlers.get(type);
      if (set) set.delete(fn);
    }

    emit(type, ...args) {
      for (const fn of this.handlers.get(type) || []) {
        try { fn(...args); } catch (err) { setTimeout(() => { throw err; }); }
      }
    }

    setState(state) {
      if (state === this.state) return;
      const prev = this.state;
      this.state = state;
      this.emit('state', state, prev);
    }

    connect() {
      if (this.ws) return;
      clearTimeout(this.timers.reconnect);
      this.stopped = false;
      this.setState(this.attempts ? 'reconnecting' : 'connecting');
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onmessage = (e) => this.onFrame(e.data);
      ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
      ws.onerror = () => {}; // onclose follows
    }

    /* Closes for good: no reconnect; pending requests fail with `closed`. */
    close() {
      this.stopped = true;
      clearTimeout(this.timers.reconnect);
      this.stopHeartbeat();
      if (this.ws) this.ws.close(1000, 'bye');
      this.ws = null;
      for (const [id, item] of this.outbox) {
        clearTimeout(item.timer);
        item.reject(new MoonwireError('closed', 'the client was closed'));
        this.outbox.delete(id);
      }
      this.setState('closed');
    }

    onClose(ws, code, reason) {
      if (ws !== this.ws) return;
      this.ws = null;
      this.stopHeartbeat();
      // Internal calls and joins sent on the lost connection are not resent: rejoin
      // makes new ones after the reconnect.
      for (const [id, item] of this.outbox) {
        if (!item.keep && item.sentOn === ws) {
          clearTimeout(item.timer);
          this.outbox.delete(id);
          item.reject(new MoonwireError('disconnected', 'the connection dropped; it will be retried'));
        }
      }
      this.emit('disconnect', code, reason);
      if (this.stopped) return this.setState('closed');
      const after = this.reconnectAfter;
      this.reconnectAfter = undefined;
      this.scheduleReconnect(after);
    }

    /* 1 s, 2 s, 4 s ... up to 30 s, each +-25 %: clients do not come back all at once.
     * A server shutting down says when to come back (`reconnect` after_ms). */
    scheduleReconnect(afterMs) {
      const delay = afterMs !== undefined ? afterMs
        : Moonwire.backoffDelay(this.attempts, this.options.backoff, Math.random());
      this.attempts++;
      this.setState('reconnecting');
      clearTimeout(this.timers.reconnect);
      this.timers.reconnect = setTimeout(() => this.connect(), delay);
    }

    /* ---- heartbeat: `ping` with a timestamp; no `pong` in time means a dead link ---- */

    startHeartbeat() {
      this.stopHeartbeat();
      const tick = () => {
        const sent = Date.now();
        this.sendRaw({ type: 'ping', data: { t: sent } });
        this.timers.pong = setTimeout(() => {
          if (this.ws) this.ws.close(4000, 'no pong'); // onclose reconnects
        }, this.options.pongTimeout);
        this.timers.ping = setTimeout(tick, this.options.pingInterval);
      };
      this.timers.ping = setTimeout(tick, Math.min(this.options.pingInterval, 1000));
    }

    stopHeartbeat() {
      clearTimeout(this.timers.ping);
      clearTimeout(this.timers.pong);
    }

    sendRaw(msg) {
      if (this.ws && this.ws.readyState === 1) {
        this.ws.send(JSON.stringify(msg));
        return true;
      }
      return false;
    }

    /* ---- incoming ---- */

    onFrame(text) {
      let msg;
      try { msg = JSON.parse(text); } catch (err) { return; }
      switch (msg.type) {
        case 'hello': return this.onHello(msg);
        case 'pong':
          clearTimeout(this.timers.pong);
          if (msg.data && typeof msg.data.t === 'number') this.rtt = Date.now() - msg.data.t;
          return this.emit('pong', this.rtt);
        case 'ack':
        case 'error':
          if (msg.id !== undefined && this.outbox.has(msg.id)) return this.settle(msg);
          if (msg.type === 'error') this.emit('error', new MoonwireError(msg.code, msg.message));
          return;
        case 'reconnect':
          this.reconnectAfter = msg.data && msg.data.after_ms;
          return;
        case 'resync': // the server's link to the other nodes was down: catch up
          if (this.rooms.has(msg.room) && !this.rooms.get(msg.room).joining) {
            this.resync(msg.room).catch((err) => this.emit('error', err));
          }
          return;
        default:
          return this.deliver(msg);
      }
    }

    /* Events of rooms we track are delivered once, in seq order: one seen already
     * (live and again in a sync) is dropped. */
    deliver(ev) {
      const room = ev.room !== undefined && this.rooms.get(ev.room);
      if (room && typeof ev.seq === 'number') {
        if (room.seq !== null && ev.seq <= room.seq) return;
        room.seq = ev.seq;
      }
      this.emit(ev.type, ev);
      this.emit('event', ev);
    }

    async onHello(msg) {
      const back = this.everOpen;
      this.user = msg.data.user;
      this.node = msg.data.node;
      this.attempts = 0;
      this.everOpen = true;
      this.setState('open');
      this.startHeartbeat();
      this.emit('hello', msg.data);
      if (back) {
        // Back after a drop: rooms first (join, then what was missed), then the outbox.
        const rooms = [...this.rooms.keys()].filter((room) => !this.rooms.get(room).joining);
        await Promise.all(rooms.map((room) => this.rejoin(room).catch((err) => this.emit('error', err))));
      }
      this.flushOutbox();
    }

    async rejoin(room) {
      const r = this.rooms.get(room);
      const ack = await this.call('join', r.data, { room });
      this.emit('joined', room, ack);
      if (r.epoch === null || r.seq === null) return this.adopt(room, ack);
      return this.resync(room);
    }

    /* Fetches what came after the last seq we have (sync), or emits reset. */
    async resync(room) {
      const r = this.rooms.get(room);
      if (r.epoch === null || r.seq === null) return;
      const s = await this.call('sync', { since: r.seq, epoch: r.epoch }, { room });
      r.epoch = s.epoch;
      if (s.reset) {
        r.seq = null;
        this.emit('reset', room, s);
      }
      for (const ev of s.messages) this.deliver(ev);
      if (s.reset && r.seq === null) r.seq = s.seq;
    }

    adopt(room, ack) {
      const r = this.rooms.get(room);
      r.epoch = ack.epoch;
      r.seq = null;
      for (const ev of ack.history || []) this.deliver(ev);
      if (r.seq === null) r.seq = ack.seq;
    }

    /* ---- requests ---- */

    /* Sends {type, room?, data} without an id: no answer, not kept when offline (for
     * what is worthless later, like typing). Returns whether it went out. */
    send(type, data, opts = {}) {
      const msg = { type };
      if (opts.room !== undefined) msg.room = opts.room;
      if (data !== undefined) msg.data = data;
      return this.state === 'open' && this.sendRaw(msg);
    }

    /* Sends {type, room?, id, data} and resolves with the ack's data, or rejects with a
     * MoonwireError (code: the server's error code, or `timeout`, `closed`). Until it
     * is answered it stays in the outbox and is sent again after a reconnect. */
    request(type, data, opts = {}) {
      return this.call(type, data, opts, true);
    }

    call(type, data, opts = {}, keep = false) {
      const id = `${this.session.slice(0, 8)}-${this.nextId++}`;
      const msg = { type, id };
      if (opts.room !== undefined) msg.room = opts.room;
      if (data !== undefined) msg.data = data;
      return new Promise((resolve, reject) => {
        const item = { msg, resolve, reject, keep, sentOn: null };
        item.timer = setTimeout(() => {
          this.outbox.delete(id);
          reject(new MoonwireError('timeout', `no answer to ${type} within ${this.options.requestTimeout} ms`));
        }, opts.timeout || this.options.requestTimeout);
        this.outbox.set(id, item);
        if (this.state === 'open' && this.sendRaw(msg)) item.sentOn = this.ws;
      });
    }

    settle(msg) {
      const item = this.outbox.get(msg.id);
      this.outbox.delete(msg.id);
      clearTimeout(item.timer);
      if (msg.type === 'ack') item.resolve(msg.data);
      else item.reject(new MoonwireError(msg.code, msg.message));
    }

    /* Once open: what was never sent goes out, and requests not acked on an earlier
     * connection go again (the server's session window answers a repeat with the
     * first reply, without processing it twice). */
    flushOutbox() {
      for (const item of this.outbox.values()) {
        if (item.sentOn === this.ws) continue;
        if (item.sentOn === null || item.keep) {
          if (this.sendRaw(item.msg)) item.sentOn = this.ws;
        }
      }
    }

    /* ---- rooms ---- */

    /* Joins a room and tracks it: resolves with the join ack ({members, history, seq,
     * epoch}); its history events are delivered like live ones. */
    async join(room, data) {
      const r = { data, seq: null, epoch: null, joining: true };
      this.rooms.set(room, r);
      try {
        const ack = await this.call('join', data, { room });
        this.emit('joined', room, ack);
        this.adopt(room, ack);
        return ack;
      } finally {
        r.joining = false;
      }
    }

    async leave(room) {
      this.rooms.delete(room);
      return this.call('leave', undefined, { room });
    }
  }

  /* The wait before reconnect attempt n (0-based): base * 2^n, at most cap, then
   * spread by +-jitter with random in [0, 1). */
  Moonwire.backoffDelay = function (n, backoff, random) {
    const base = Math.min(backoff.cap, backoff.base * 2 ** Math.min(n, 16));
    return base * (1 - backoff.jitter + random * 2 * backoff.jitter);
  };
  Moonwire.MoonwireError = MoonwireError;
  Moonwire.STATES = STATES;
  global.Moonwire = Moonwire;
  if (typeof module === 'object' && module.exports) module.exports = Moonwire;
})(typeof window !== 'undefined' ? window : globalThis);
