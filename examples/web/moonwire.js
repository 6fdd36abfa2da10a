/* moonwire.js - the browser client, served by every moonwire at /moonwire.js. No build
 * step, no dependencies; docs/client.md is its manual, docs/protocol.md the protocol.
 *
 *   <script src="/moonwire.js"></script>
 *   const mw = new Moonwire('ws://' + location.host + '/chat?user=ana');
 *   mw.on('chat:message', (ev) => show(ev));
 *   mw.join('lobby', { name: 'Ana' });
 *   mw.request('chat:message', { text: 'hi' }, { room: 'lobby' });
 *
 * What it promises: a room the app joined is joined on every connection that opens
 * (the first one or any later one) and what it missed is recovered (`sync`) or
 * reported (`reset`); a request stays in the outbox, visible to the app, until it is
 * acked, fails on the server, is cancelled or gives up (when asked to); it is resent on
 * every new connection in one session, so the server processes it once; sequenced
 * events are delivered once each, in order. Connections are made by a transport
 * (WebSocket here; others register in Moonwire.transports) and retried with
 * exponential backoff and jitter. */
(function (global) {
  'use strict';

  const STATES = ['connecting', 'open', 'reconnecting', 'closed'];
  // Server errors after which a request is sent again (same id: the session's dedup
  // window makes that safe) instead of failing.
  const RETRYABLE = new Set(['unavailable', 'rate_limited']);
  // Join errors that say the room can never be joined with these arguments.
  const NOT_JOINABLE = new Set(['bad_message', 'forbidden', 'unauthorized', 'not_found', 'unknown_type']);

  function randomId(random) {
    let s = '';
    for (let i = 0; i < 16; i++) s += Math.floor(random() * 36).toString(36);
    return s;
  }

  class MoonwireError extends Error {
    constructor(code, message) {
      super(message || code);
      this.name = 'MoonwireError';
      this.code = code;
    }
  }

  /* ---- transports ----
   * A transport carries the JSON text frames of one connection. It is made with
   * (url, env, hooks) and calls hooks.open() once it can send, hooks.frame(text) for
   * each frame, hooks.close(code, reason) once at the end (never after close() was
   * called). send(text) returns whether the frame was taken; close(code, reason) ends
   * it without calling hooks.close. */
  class WebSocketTransport {
    constructor(url, env, hooks) {
      this.name = 'websocket';
      const ws = new env.WebSocket(url);
      this.ws = ws;
      let done = false;
      ws.onopen = () => { if (!done) hooks.open(); };
      ws.onmessage = (e) => { if (!done) hooks.frame(e.data); };
      ws.onerror = () => {}; // onclose follows
      ws.onclose = (e) => {
        if (done) return;
        done = true;
        hooks.close(e.code, e.reason);
      };
      this.detach = () => { done = true; };
    }

    send(text) {
      if (this.ws.readyState !== 1) return false;
      this.ws.send(text);
      return true;
    }

    close(code, reason) {
      this.detach();
      try { this.ws.close(code, reason); } catch (err) { /* already closing */ }
    }
  }

  // ws://host/path?q -> http://host/path?q (and wss -> https), for HTTP transports.
  function httpUrlOf(url) {
    return url.replace(/^ws(s?):/, 'http$1:');
  }

  /* The HTTP fallback (docs/client.md): frames come down a Server-Sent Events stream
   * (GET ROUTE?...&transport=sse), go up in POSTs to the stream it names, one POST at a
   * time, frames joined by newlines (JSON text has none). */
  class HttpTransport {
    constructor(url, env, hooks) {
      this.name = 'http';
      this.url = url;
      this.env = env;
      this.hooks = hooks;
      this.stream = null; // from the first event: where POSTs go
      this.out = [];
      this.posting = false;
      this.done = false;
      const es = new env.EventSource(url + '&transport=sse');
      this.es = es;
      es.addEventListener('mw:stream', (e) => {
        if (this.done) return;
        try {
          this.stream = JSON.parse(e.data).stream;
        } catch (err) {
          return this.end(1002, 'bad stream event');
        }
        hooks.open();
      });
      es.onmessage = (e) => { if (!this.done) hooks.frame(e.data); };
      es.addEventListener('mw:close', (e) => {
        let d = {};
        try { d = JSON.parse(e.data); } catch (err) { /* no details */ }
        this.end(d.code || 1005, d.reason || '');
      });
      // EventSource would reconnect on its own: the client decides that.
      es.onerror = () => this.end(1006, '');
    }

    // Ends from the network's side: reported once.
    end(code, reason) {
      if (this.done) return;
      this.done = true;
      this.es.close();
      this.hooks.close(code, reason);
    }

    send(text) {
      if (this.done || this.stream === null) return false;
      this.out.push(text);
      this.pump();
      return true;
    }

    pump() {
      if (this.posting || this.done || !this.out.length) return;
      const body = this.out.join('\n');
      this.out = [];
      this.posting = true;
      const url = this.url + '&transport=sse&stream=' + encodeURIComponent(this.stream);
      this.env.fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' }, cache: 'no-store' })
        .then((res) => {
          this.posting = false;
          if (res.status !== 204 && res.status !== 200) return this.end(1006, `POST answered ${res.status}`);
          this.pump();
        }, () => {
          this.posting = false;
          this.end(1006, 'POST failed');
        });
    }

    close() {
      this.done = true;
      this.es.close(); // the server sees the stream end
    }
  }

  class Moonwire {
    /* url: the route's WebSocket URL (ws:// or wss://). options (all optional):
     *   session        the dedup window shared by this client's connections (random)
     *   backoff        {base: 1000, cap: 30000, jitter: 0.25} in ms
     *   connectTimeout ms to wait for a connection's hello before trying again (10000)
     *   pingInterval   ms between client pings (20000); pongTimeout (5000)
     *   requestTimeout ms after which a request not yet acked gives up (0: never)
     *   stableAfter    ms a connection must last to reset the backoff (5000)
     *   transports     names to try, in order (['websocket', 'http'])
     *   fallbackAfter  failed attempts of a transport before the next is tried (2)
     *   upgradeAfter   ms on a fallback transport between tries of the first one (30000)
     *   autoConnect    connect at once (true)
     *   logger         {warn(...)} (console)
     * For tests: WebSocket (constructor), clock {now, setTimeout, clearTimeout}, random. */
    constructor(url, options = {}) {
      const clock = options.clock || {
        now: () => Date.now(),
        setTimeout: (fn, ms) => setTimeout(fn, ms),
        clearTimeout: (t) => clearTimeout(t),
      };
      this.env = {
        WebSocket: options.WebSocket || global.WebSocket,
        EventSource: options.EventSource || global.EventSource,
        fetch: options.fetch || (global.fetch && global.fetch.bind(global)),
        clock,
        random: options.random || Math.random,
        logger: options.logger || global.console,
      };
      this.options = {
        backoff: { base: 1000, cap: 30000, jitter: 0.25, ...(options.backoff || {}) },
        connectTimeout: options.connectTimeout || 10000,
        pingInterval: options.pingInterval || 20000,
        pongTimeout: options.pongTimeout || 5000,
        requestTimeout: options.requestTimeout || 0,
        stableAfter: options.stableAfter !== undefined ? options.stableAfter : 5000,
        fallbackAfter: options.fallbackAfter || 2,
        upgradeAfter: options.upgradeAfter || 30000,
      };
      const wanted = options.transports || ['websocket', 'http'];
      // Those this environment can run (EventSource and fetch for http).
      this.transports = wanted.filter((n) => Moonwire.transports[n] &&
        (!Moonwire.transports[n].usable || Moonwire.transports[n].usable(this.env)));
      if (!this.transports.length) throw new TypeError('no usable transport in ' + wanted.join(', '));
      this.session = options.session || randomId(this.env.random);
      this.url = url + (url.includes('?') ? '&' : '?') + 'session=' + encodeURIComponent(this.session);
      this.httpUrl = httpUrlOf(this.url);

      this.state = 'closed';
      this.rtt = null;          // ms, of the last ping
      this.user = null;         // from hello
      this.node = null;
      this.transport = null;    // name of the transport of the open connection
      this.attempts = 0;        // failed attempts since the last stable connection
      this.retryAt = null;      // when the next attempt starts (ms), while waiting
      this.stats = { attempts: 0, opens: 0, badFrames: 0 };
      this.rooms = new Map();   // room -> tracked room, see join()
      this.outbox = new Map();  // id -> entry {item, msg, resolve, reject, sentOn, timers}
      this.calls = new Map();   // id -> {resolve, reject, on}: internal join/sync/leave
      this.handlers = new Map();
      this.nextId = 1;
      this.t = null;            // the current transport object
      this.tIndex = 0;          // which of this.transports it is
      this.tFailures = 0;       // consecutive failed attempts with this.transports[tIndex]
      this.timers = {};
      this.stopped = true;
      if (global.addEventListener) {
        // The browser says the network is back: do not sit out the backoff.
        this.onOnline = () => { if (this.state === 'reconnecting') this.retryNow(); };
        global.addEventListener('online', this.onOnline);
      }
      // After the caller's own code: handlers it adds right away see 'connecting'.
      if (options.autoConnect !== false) Promise.resolve().then(() => this.connect());
    }

    /* ---- events ---- */

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
        // An app handler that throws must not break the client: report it later.
        try { fn(...args); } catch (err) { this.env.clock.setTimeout(() => { throw err; }, 0); }
      }
    }

    setState(state) {
      if (state === this.state) return;
      const prev = this.state;
      this.state = state;
      this.emit('state', state, prev);
    }

    warn(...args) {
      if (this.env.logger && this.env.logger.warn) this.env.logger.warn('moonwire:', ...args);
    }

    timer(name, ms, fn) {
      const c = this.env.clock;
      if (this.timers[name] !== undefined) c.clearTimeout(this.timers[name]);
      this.timers[name] = ms === null ? undefined : c.setTimeout(() => {
        this.timers[name] = undefined;
        fn();
      }, ms);
    }

    /* ---- the connection's state machine ----
     * closed --connect()--> connecting --hello--> open --drop--> reconnecting
     * reconnecting --(backoff)--> attempt --hello--> open; any --close()--> closed. */

    connect() {
      if (this.t) return;
      this.stopped = false;
      this.timer('retry', null);
      this.retryAt = null;
      this.setState(this.stats.opens || this.attempts ? 'reconnecting' : 'connecting');
      const name = this.transports[this.tIndex];
      const Transport = Moonwire.transports[name];
      this.stats.attempts++;
      this.helloSeen = false;
      let t = null;
      const hooks = {
        open: () => {},
        frame: (text) => { if (t === this.t) this.onFrame(text); },
        close: (code, reason) => { if (t === this.t) this.onDrop(code, reason); },
      };
      try {
        t = new Transport(name === 'websocket' ? this.url : this.httpUrl, this.env, hooks);
      } catch (err) {
        this.warn(`cannot open a ${name} connection:`, err && err.message);
        this.t = null;
        return this.scheduleRetry();
      }
      this.t = t;
      // A connection that says nothing (a proxy that swallows the upgrade, a server
      // that hangs) is given up after connectTimeout.
      this.timer('connect', this.options.connectTimeout, () => this.drop(4000, 'connect timeout'));
    }

    /* Ends the current connection from this side and goes on as after a drop. */
    drop(code, reason) {
      const t = this.t;
      if (!t) return;
      t.close(code, reason);
      this.onDrop(code, reason);
    }

    /* Closes for good: no reconnect; pending requests and joins fail with `closed`. */
    close() {
      this.stopped = true;
      for (const name of Object.keys(this.timers)) this.timer(name, null);
      this.retryAt = null;
      if (this.t) this.t.close(1000, 'bye');
      this.dropProbe();
      this.t = null;
      this.transport = null;
      const err = () => new MoonwireError('closed', 'the client was closed');
      for (const id of [...this.outbox.keys()]) this.finish(id, 'failed', err());
      this.failCalls(err());
      for (const [room, r] of this.rooms) this.rejectJoin(room, r, err());
      if (global.removeEventListener && this.onOnline) global.removeEventListener('online', this.onOnline);
      this.setState('closed');
    }

    /* Forgets the current connection: what was in flight on it goes again on the
     * next one (joins, syncs, requests not acked). */
    detach() {
      const t = this.t;
      this.t = null;
      this.transport = null;
      this.openedAt = undefined;
      this.helloSeen = false;
      for (const name of ['connect', 'ping', 'pong', 'probe']) this.timer(name, null);
      this.dropProbe();
      this.failCalls(new MoonwireError('disconnected', 'the connection dropped'), t);
      for (const r of this.rooms.values()) {
        if (r.on === t) r.on = null;
        r.syncing = false;
        r.buffer = [];
      }
      for (const e of this.outbox.values()) {
        if (e.sentOn === t) { // not acked: it goes again on the next connection
          e.sentOn = null;
          this.setStatus(e, 'queued');
        }
      }
    }

    onDrop(code, reason) {
      const lived = this.openedAt !== undefined ? this.env.clock.now() - this.openedAt : 0;
      const wasOpen = this.helloSeen;
      this.detach();
      if (wasOpen) this.emit('disconnect', code, reason);
      if (this.stopped) return this.setState('closed');
      if (wasOpen && lived >= this.options.stableAfter) this.attempts = 0;
      if (!wasOpen) this.transportFailed();
      const after = this.reconnectAfter;
      this.reconnectAfter = undefined;
      this.scheduleRetry(after);
    }

    /* A transport that failed fallbackAfter times in a row gives way to the next one;
     * after the last one, the first one again (the server itself may have been down). */
    transportFailed() {
      if (++this.tFailures < this.options.fallbackAfter || this.transports.length < 2) return;
      this.tIndex = (this.tIndex + 1) % this.transports.length;
      this.tFailures = 0;
      this.emit('transport', this.transports[this.tIndex], this.tIndex ? 'fallback' : 'retry');
    }

    /* Uses transport `name` from now on (the app knows WebSocket is blocked, say):
     * the current connection is replaced at once. */
    useTransport(name) {
      const i = this.transports.indexOf(name);
      if (i < 0) throw new TypeError(`transport ${name} is not in use`);
      if (this.t) this.drop(1000, 'switching transport');
      this.tIndex = i;
      this.tFailures = 0;
      this.emit('transport', name, 'asked');
      if (this.stopped) return;
      this.timer('retry', null);
      this.connect();
    }

    /* ---- going back to the first transport ----
     * On a fallback, the first transport is tried every upgradeAfter. Its connection
     * replaces the current one once it says hello: rooms are joined and synced on it
     * and unacked requests resent, as after any reconnect, so nothing is lost or
     * doubled; the old one is closed then. */
    scheduleProbe() {
      if (this.tIndex === 0 || this.probeT || this.stopped) return;
      this.timer('probe', this.options.upgradeAfter, () => this.startProbe());
    }

    startProbe() {
      if (this.tIndex === 0 || !this.helloSeen) return;
      const name = this.transports[0];
      let p = null;
      const hooks = { // once adopted (after its hello) it is the connection
        open: () => {},
        frame: (text) => {
          if (p === this.t) this.onFrame(text);
          else if (p === this.probeT) this.onProbeFrame(p, text);
        },
        close: (code, reason) => {
          if (p === this.t) this.onDrop(code, reason);
          else if (p === this.probeT) { this.dropProbe(); this.scheduleProbe(); }
        },
      };
      try {
        p = new Moonwire.transports[name](this.url, this.env, hooks);
      } catch (err) {
        return this.scheduleProbe();
      }
      this.probeT = p;
      this.timer('probeTimeout', this.options.connectTimeout, () => { this.dropProbe(); this.scheduleProbe(); });
    }

    dropProbe() {
      const p = this.probeT;
      this.probeT = null;
      this.timer('probeTimeout', null);
      if (p) p.close(1000, 'not needed');
    }

    onProbeFrame(p, text) {
      let msg;
      try { msg = JSON.parse(text); } catch (err) { msg = null; }
      if (!msg || msg.type !== 'hello') return; // nothing else comes before hello
      this.timer('probeTimeout', null);
      this.probeT = null;
      const old = this.t;
      this.detach();
      old.close(1000, 'upgraded');
      this.t = p;
      this.tIndex = 0;
      this.tFailures = 0;
      this.emit('transport', p.name, 'upgrade');
      this.onFrame(text);
    }

    /* 1 s, 2 s, 4 s ... up to 30 s, each +-25 %, so that clients do not come back all
     * at once. A server that shuts down says when to come back (`reconnect`). */
    scheduleRetry(afterMs) {
      const delay = afterMs !== undefined ? afterMs
        : Moonwire.backoffDelay(this.attempts, this.options.backoff, this.env.random());
      this.attempts++;
      this.setState('reconnecting');
      this.retryAt = this.env.clock.now() + delay;
      this.emit('retry', { attempt: this.attempts, delay, at: this.retryAt });
      this.timer('retry', delay, () => this.connect());
    }

    /* Tries at once instead of waiting for the backoff (a "retry now" button). */
    retryNow() {
      if (this.stopped || this.t) return;
      this.connect();
    }

    /* ---- heartbeat: `ping` with a timestamp; no `pong` in time means a dead link ---- */

    startHeartbeat() {
      const tick = () => {
        this.sendFrame({ type: 'ping', data: { t: this.env.clock.now() } });
        // The oldest unanswered ping counts: a later ping does not restart the wait.
        if (this.timers.pong === undefined) this.timer('pong', this.options.pongTimeout, () => this.drop(4000, 'no pong'));
        this.timer('ping', this.options.pingInterval, tick);
      };
      this.timer('ping', Math.min(this.options.pingInterval, 1000), tick);
    }

    sendFrame(msg) {
      return this.t !== null && this.helloSeen && this.t.send(JSON.stringify(msg));
    }

    /* ---- incoming ---- */

    onFrame(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        msg = undefined;
      }
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.type !== 'string') {
        // A proxy or a buggy app: say so and go on with the next frame.
        this.stats.badFrames++;
        this.warn('ignored a malformed frame:', String(text).slice(0, 200));
        return;
      }
      if (!this.helloSeen && msg.type !== 'hello') {
        this.warn('ignored a frame before hello:', String(text).slice(0, 200));
        return;
      }
      switch (msg.type) {
        case 'hello': return this.onHello(msg);
        case 'pong':
          this.timer('pong', null);
          if (msg.data && typeof msg.data.t === 'number') this.rtt = this.env.clock.now() - msg.data.t;
          return this.emit('pong', this.rtt);
        case 'ack':
        case 'error':
          if (msg.id !== undefined && msg.id !== null) return this.onReply(msg);
          if (msg.type === 'error') this.emit('error', new MoonwireError(msg.code, msg.message));
          return;
        case 'reconnect':
          this.reconnectAfter = msg.data && msg.data.after_ms;
          return;
        case 'resync': { // the server's link to the other nodes was down: catch up
          const r = this.rooms.get(msg.room);
          if (r && r.on === this.t && !r.syncing) this.recover(msg.room, r, this.t, null);
          return;
        }
        default:
          return this.deliver(msg);
      }
    }

    onHello(msg) {
      if (this.helloSeen) return;
      const d = msg.data || {};
      this.helloSeen = true;
      this.user = d.user;
      this.node = d.node;
      this.transport = this.t.name;
      this.openedAt = this.env.clock.now();
      this.tFailures = 0;
      this.stats.opens++;
      this.timer('connect', null);
      this.setState('open');
      this.startHeartbeat();
      this.emit('hello', d);
      // Every room the app wants, then what waits in the outbox (a room's requests
      // once that room is joined again).
      for (const [room, r] of this.rooms) this.sendJoin(room, r);
      this.flush();
      this.scheduleProbe();
    }

    /* Events of tracked rooms that carry a seq are delivered once, in order: one seen
     * already (live and again in a sync) is dropped; while a room recovers, live ones
     * wait until the missed ones are out. */
    deliver(ev) {
      const r = ev.room !== undefined ? this.rooms.get(ev.room) : undefined;
      if (r && typeof ev.seq === 'number') {
        if (r.syncing) return void r.buffer.push(ev);
        if (r.seq !== null && ev.seq <= r.seq) return;
        r.seq = ev.seq;
      }
      this.emit(ev.type, ev);
      this.emit('event', ev);
    }

    onReply(msg) {
      const call = this.calls.get(msg.id);
      if (call) {
        this.calls.delete(msg.id);
        if (msg.type === 'ack') call.resolve(msg.data);
        else call.reject(new MoonwireError(msg.code, msg.message));
        return;
      }
      const e = this.outbox.get(msg.id);
      if (!e) return; // cancelled, or answered already
      if (msg.type === 'ack') return this.finish(msg.id, 'acked', undefined, msg.data);
      const err = new MoonwireError(msg.code, msg.message);
      if (RETRYABLE.has(msg.code)) {
        // The server could not do it now: same id again later, on this connection.
        e.sentOn = null;
        e.item.error = err;
        this.setStatus(e, 'queued');
        const delay = Moonwire.backoffDelay(e.item.attempts - 1, this.options.backoff, this.env.random());
        e.retry = this.env.clock.setTimeout(() => { e.retry = undefined; this.trySend(e); }, delay);
        return;
      }
      this.finish(msg.id, 'failed', err);
    }

    /* ---- internal calls (join, sync, leave): tied to one connection ---- */

    call(type, room, data) {
      const id = `${this.session.slice(0, 8)}-${this.nextId++}`;
      const msg = { type, room, id };
      if (data !== undefined) msg.data = data;
      return new Promise((resolve, reject) => {
        if (!this.sendFrame(msg)) return reject(new MoonwireError('disconnected', 'not connected'));
        this.calls.set(id, { resolve, reject, on: this.t });
      });
    }

    failCalls(err, t) {
      for (const [id, c] of this.calls) {
        if (t !== undefined && c.on !== t) continue;
        this.calls.delete(id);
        c.reject(err);
      }
    }

    /* ---- rooms ---- */

    /* Joins a room and keeps it joined: on this connection and on every later one,
     * with what was missed in between recovered. Resolves with the first join's ack
     * ({members, history, seq, epoch} for chat); rejects only when the server refuses
     * the room (bad_message, forbidden...), the app leaves it or the client closes.
     * Every (re)join emits `joined` (room, ack). */
    join(room, data) {
      let r = this.rooms.get(room);
      if (!r) {
        r = { data, seq: null, epoch: null, on: null, syncing: false, buffer: [], waiters: [] };
        this.rooms.set(room, r);
      } else {
        r.data = data;
      }
      const p = new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
      // Joined already: join again, which updates the data (a new name, say).
      if (this.helloSeen && !r.joining) this.sendJoin(room, r);
      return p;
    }

    sendJoin(room, r) {
      const t = this.t;
      r.joining = true;
      r.syncing = r.epoch !== null; // events from now wait for the sync
      r.buffer = [];
      this.call('join', room, r.data).then((ack) => {
        r.joining = false;
        if (this.rooms.get(room) !== r || this.t !== t) return;
        r.on = t;
        this.emit('joined', room, ack);
        for (const w of r.waiters.splice(0)) w.resolve(ack);
        this.recover(room, r, t, ack || {});
        this.flush(room);
      }, (err) => {
        r.joining = false;
        r.syncing = false;
        if (this.rooms.get(room) !== r) return;
        if (NOT_JOINABLE.has(err.code)) {
          this.rooms.delete(room);
          this.rejectJoin(room, r, err);
          this.emit('error', err);
        } else if (this.t === t && t !== null && err.code !== 'disconnected') {
          // unavailable, internal...: try again on this connection after a while.
          this.env.clock.setTimeout(() => {
            if (this.rooms.get(room) === r && this.t === t && this.helloSeen && !r.joining) this.sendJoin(room, r);
          }, Moonwire.backoffDelay(0, this.options.backoff, this.env.random()));
        }
      });
    }

    rejectJoin(room, r, err) {
      for (const w of r.waiters.splice(0)) w.reject(err);
    }

    /* After a join (ack given) or a `resync` (ack null): the history of a first join is
     * delivered; a rejoin asks `sync` for what came after our last seq. */
    recover(room, r, t, ack) {
      const first = r.epoch === null;
      if (ack && first) {
        if (typeof ack.epoch === 'string') r.epoch = ack.epoch;
        r.syncing = false;
        for (const ev of Array.isArray(ack.history) ? ack.history : []) this.deliver(ev);
        if (r.seq === null && typeof ack.seq === 'number') r.seq = ack.seq;
        return this.release(r);
      }
      if (first) return;
      const since = r.seq === null ? 0 : r.seq;
      r.syncing = true;
      this.call('sync', room, { since, epoch: r.epoch }).then((s) => {
        if (this.rooms.get(room) !== r || this.t !== t) return;
        s = s || {};
        if (s.reset) {
          // Some events are gone for good: the app keeps what it shows and marks the gap.
          this.emit('reset', room, { since, seq: s.seq, epoch: s.epoch, epochChanged: s.epoch !== r.epoch });
          r.seq = null;
        }
        r.epoch = s.epoch || r.epoch;
        r.syncing = false;
        for (const ev of Array.isArray(s.messages) ? s.messages : []) this.deliver(ev);
        if (r.seq === null && typeof s.seq === 'number') r.seq = s.seq;
        this.release(r);
      }, (err) => {
        if (this.rooms.get(room) !== r || this.t !== t) return;
        r.syncing = false;
        if (err.code === 'unknown_type' && ack) {
          // An app without sync: its join history is all we get.
          for (const ev of Array.isArray(ack.history) ? ack.history : []) this.deliver(ev);
          return this.release(r);
        }
        this.release(r);
        if (err.code !== 'disconnected') {
          this.emit('error', err);
          // Try again while the connection lasts: what is missing stays missing otherwise.
          this.env.clock.setTimeout(() => {
            if (this.rooms.get(room) === r && this.t === t && !r.syncing) this.recover(room, r, t, null);
          }, Moonwire.backoffDelay(0, this.options.backoff, this.env.random()));
        }
      });
    }

    /* Delivers the live events that waited for a sync, in seq order. */
    release(r) {
      const waiting = r.buffer.sort((a, b) => a.seq - b.seq);
      r.buffer = [];
      for (const ev of waiting) this.deliver(ev);
    }

    /* Stops tracking a room and leaves it. Resolves with the leave's ack, or at once
     * when not connected (the server forgot the room with the connection). */
    leave(room) {
      const r = this.rooms.get(room);
      this.rooms.delete(room);
      if (r) this.rejectJoin(room, r, new MoonwireError('cancelled', 'left the room'));
      if (!r || r.on === null || r.on !== this.t) return Promise.resolve(undefined);
      return this.call('leave', room).catch((err) => {
        if (err.code === 'disconnected') return undefined;
        throw err;
      });
    }

    /* ---- requests and the outbox ---- */

    /* Sends {type, room?, data} without an id: no answer, not kept when offline (for
     * what is worthless later, like typing). Returns whether it went out. */
    send(type, data, opts = {}) {
      const msg = { type };
      if (opts.room !== undefined) msg.room = opts.room;
      if (data !== undefined) msg.data = data;
      return this.state === 'open' && this.sendFrame(msg);
    }

    /* Sends {type, room?, id, data} and resolves with the ack's data, or rejects with a
     * MoonwireError: the server's code (not_in_room...), `timeout` (opts.timeout or
     * requestTimeout passed, when set), `cancelled` or `closed`. Until then it waits in
     * the outbox: sent when a connection is open (and its room joined), sent again on
     * the next connection when one drops before the ack. The promise has `id`,
     * `item` (the outbox entry the events carry) and `cancel()`. */
    request(type, data, opts = {}) {
      const id = `${this.session.slice(0, 8)}-${this.nextId++}`;
      const msg = { type, id };
      if (opts.room !== undefined) msg.room = opts.room;
      if (data !== undefined) msg.data = data;
      const item = {
        id, type, room: opts.room, data, status: 'queued', attempts: 0,
        queuedAt: this.env.clock.now(), sentAt: null, error: null,
      };
      let e;
      const p = new Promise((resolve, reject) => { e = { item, msg, resolve, reject, sentOn: null }; });
      this.outbox.set(id, e);
      const giveUp = opts.timeout !== undefined ? opts.timeout : this.options.requestTimeout;
      if (giveUp > 0) {
        e.giveUp = this.env.clock.setTimeout(() => this.finish(id, 'failed',
          new MoonwireError('timeout', `no answer to ${type} within ${giveUp} ms`)), giveUp);
      }
      this.emit('request', item);
      this.trySend(e);
      p.id = id;
      p.item = item;
      p.cancel = () => this.cancel(id);
      return p;
    }

    /* Stops waiting for a request: it is not sent (again) and its promise rejects with
     * `cancelled`. One already sent may still have been processed by the server. */
    cancel(id) {
      return this.finish(id, 'cancelled', new MoonwireError('cancelled', 'the request was cancelled'));
    }

    /* The requests not settled yet, oldest first (their items: id, type, room, data,
     * status 'queued'|'sent', attempts, queuedAt, sentAt, error). */
    pending() {
      return [...this.outbox.values()].map((e) => e.item);
    }

    setStatus(e, status) {
      if (e.item.status === status) return;
      e.item.status = status;
      this.emit('request', e.item);
    }

    /* Whether a request can go now: a connection is open and its room, when it is one
     * we track, is joined on it. */
    ready(e) {
      if (!this.helloSeen || this.t === null || e.sentOn === this.t || e.retry !== undefined) return false;
      const r = e.msg.room !== undefined ? this.rooms.get(e.msg.room) : undefined;
      return !r || r.on === this.t;
    }

    trySend(e) {
      if (!this.ready(e) || !this.sendFrame(e.msg)) return false;
      e.sentOn = this.t;
      e.item.attempts++;
      e.item.sentAt = this.env.clock.now();
      this.setStatus(e, 'sent');
      return true;
    }

    /* Sends what waits, in the order it was made (only one room's when room is given). */
    flush(room) {
      for (const e of [...this.outbox.values()]) {
        if (room === undefined || e.msg.room === room) this.trySend(e);
      }
    }

    finish(id, status, err, data) {
      const e = this.outbox.get(id);
      if (!e) return false;
      this.outbox.delete(id);
      const c = this.env.clock;
      if (e.giveUp !== undefined) c.clearTimeout(e.giveUp);
      if (e.retry !== undefined) c.clearTimeout(e.retry);
      if (err) e.item.error = err;
      this.setStatus(e, status);
      if (err) e.reject(err);
      else e.resolve(data);
      return true;
    }
  }

  /* The wait before reconnect attempt n (0-based): base * 2^n, at most cap, then
   * spread by +-jitter with random in [0, 1). */
  Moonwire.backoffDelay = function (n, backoff, random) {
    const base = Math.min(backoff.cap, backoff.base * 2 ** Math.min(n, 30));
    return base * (1 - backoff.jitter + random * 2 * backoff.jitter);
  };
  WebSocketTransport.usable = (env) => typeof env.WebSocket === 'function';
  HttpTransport.usable = (env) => typeof env.EventSource === 'function' && typeof env.fetch === 'function';
  Moonwire.transports = { websocket: WebSocketTransport, http: HttpTransport };
  Moonwire.MoonwireError = MoonwireError;
  Moonwire.STATES = STATES;
  Moonwire.httpUrlOf = httpUrlOf;
  global.Moonwire = Moonwire;
  if (typeof module === 'object' && module.exports) module.exports = Moonwire;
})(typeof window !== 'undefined' ? window : globalThis);
