// The fault-injection harness (tests/integration/faults*.test.js): members that behave
// like the browser client (sync on a `resync` hint or a seq gap), a publisher at a
// steady rate that retries `unavailable` with the same id, /readyz watchers, and the
// figures every scenario reports:
//   acked_seq_missing        messages acked with a seq that some member never got
//                            (live or through sync)
//   acked_noseq_missing      messages acked without seq that a member on the
//                            sender's node never got
//   duplicates               a message delivered twice to a member, or published
//                            under two seqs
//   false_leaves             presence:leave of a member that was connected
//   ghosts                   members a client still lists at the end that are gone
//                            (and connected members it does not list)
//   dead_leave_ms            kill of a node -> the last survivor member told its
//                            users left
//   readyz_503_ms / _200_ms  fault -> /readyz 503, recovery -> 200, per node
'use strict';

const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer, sleep, httpStatus: status } = require('./server');
const { uid, waitFor } = require('./helpers');

const REPLY_MS = 20000; // a reply always comes: Redis replies or the watchdog gives up
const SYNC_RETRY_MS = 200;
const HEARTBEAT_MS = 1000;
const RATE = 40; // messages per second


// A chat client with its own bookkeeping (no message is ever "consumed").
class Member {
  constructor(label, user, node) {
    this.label = label;
    this.user = user;
    this.node = node; // the server it is connected to
    this.session = `s${Math.random().toString(36).slice(2, 12)}`; // its window follows it
    this.moves = [];  // { from, to } times of moves to another node
    this.nextId = 1;
    this.waiting = new Map(); // id -> resolve
    this.live = new Map();    // k -> [seq or null, ...] in arrival order
    this.synced = new Map();  // k -> seq (from sync answers)
    this.seqOfK = new Map();  // k -> Set of seqs seen anywhere
    this.leaves = [];         // { user, at }
    this.joins = [];
    this.view = new Map();    // user -> present (join ack + presence events)
    this.presence = [];       // [user, present] of every presence event, in order
    this.room = null;
    this.epoch = '';
    this.lastSeq = 0;
    this.syncing = false;
    this.syncAgain = false;
    this.resets = 0;
    this.closed = false;
    this.closeInfo = null;
  }

  static async open(node, user, label) {
    const m = new Member(label, user, node);
    running.add(m);
    await m.connect();
    return m;
  }

  // A fresh promise for whenOpen(), resolved by markOpen().
  notOpen() {
    this.opened = new Promise((resolve) => { this.markOpen = resolve; });
  }

  connect() {
    this.closed = false;
    if (!this.opened) this.notOpen();
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.node.url(`/chat?user=${encodeURIComponent(this.user)}` +
        `&session=${this.session}`));
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error(`${this.label}: no hello`)), 10000);
      ws.on('message', (data) => {
        let msg;
        try { msg = JSON.parse(data.toString('utf8')); } catch (e) { return; }
        if (msg.type === 'hello') {
          clearTimeout(timer);
          resolve();
          return;
        }
        this.onMessage(msg);
      });
      ws.on('error', () => {});
      ws.on('close', (code, reason) => {
        if (ws !== this.ws) return;
        this.closed = true;
        this.notOpen();
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        clearTimeout(timer);
        for (const [, r] of this.waiting) r({ type: 'error', code: 'closed' });
        this.waiting.clear();
        reject(new Error(`${this.label}: closed before hello`));
        if (this.onClose) this.onClose();
      });
    });
  }

  // Resolves once the member is connected and in its room again after a drop.
  whenOpen() {
    return this.opened;
  }

  // When its node closes the connection (a shutdown, a crash), go to `to` like the
  // browser client: reconnect in the same session, rejoin, sync what was missed.
  autoMove(to) {
    this.onClose = () => {
      this.onClose = null;
      const from = Date.now();
      const code = this.closeInfo.code;
      this.node = to;
      (async () => {
        await sleep(50 + Math.floor(Math.random() * 150));
        for (let i = 0; i < 50; i++) {
          try {
            await this.connect();
            break;
          } catch (e) {
            await sleep(200);
          }
        }
        await this.join(this.room, true);
        this.moves.push({ from, to: Date.now(), code });
        this.markOpen();
        await this.sync();
      })();
    };
  }

  send(obj) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  // Resolves with the ack or error of id (a fresh one unless given).
  request(type, { room, data, id } = {}) {
    const rid = id !== undefined ? id : `r${this.nextId++}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        resolve({ type: 'error', code: 'timeout' });
      }, REPLY_MS);
      this.waiting.set(rid, (reply) => { clearTimeout(timer); resolve(reply); });
      const msg = { type, id: rid };
      if (room !== undefined) msg.room = room;
      if (data !== undefined) msg.data = data;
      if (this.closed) this.waiting.get(rid)({ type: 'error', code: 'closed' });
      else this.send(msg);
    });
  }

  onMessage(msg) {
    const now = Date.now();
    if ((msg.type === 'ack' || msg.type === 'error') && msg.id !== undefined) {
      const r = this.waiting.get(msg.id);
      if (r) {
        this.waiting.delete(msg.id);
        r(msg);
      }
      return;
    }
    if (msg.type === 'chat:message' && msg.room === this.room && msg.data && msg.data.k) {
      const k = msg.data.k;
      const seq = msg.seq === undefined ? null : msg.seq;
      if (!this.live.has(k)) this.live.set(k, []);
      this.live.get(k).push(seq);
      if (seq !== null) {
        this.noteSeq(k, seq);
        if (seq > this.lastSeq + 1) this.sync(); // a gap: recover it
        if (seq > this.lastSeq) this.lastSeq = seq;
      }
    } else if (msg.type === 'resync' && msg.room === this.room) {
      this.sync();
    } else if (msg.type === 'presence:leave' && msg.room === this.room) {
      this.leaves.push({ user: msg.data.user, at: now });
      this.presence.push([msg.data.user, false]);
      this.view.delete(msg.data.user);
    } else if (msg.type === 'presence:join' && msg.room === this.room) {
      this.joins.push({ user: msg.data.user, at: now });
      this.presence.push([msg.data.user, true]);
      this.view.set(msg.data.user, true);
    }
  }

  noteSeq(k, seq) {
    if (!this.seqOfK.has(k)) this.seqOfK.set(k, new Set());
    this.seqOfK.get(k).add(`${this.epoch}/${seq}`);
  }

  // again: a rejoin after a move keeps where it was (sync continues from there) and
  // takes the room's member list as it is now. Presence events can come before the
  // join's ack (the server delivers the room's events from the moment the connection
  // is in it and reads the member list after that, clustered with a Redis round trip
  // between): they are applied again on top of the list, in order, as a client must.
  async join(room, again = false) {
    this.room = room;
    for (let i = 0; i < 50; i++) {
      const from = this.presence.length;
      const ack = await this.request('join', { room });
      if (ack.type === 'ack') {
        if (!again) {
          this.epoch = ack.data.epoch;
          this.lastSeq = Math.max(this.lastSeq, ack.data.seq);
          this.markOpen();
        } else {
          this.view = new Map();
        }
        for (const m of ack.data.members) this.view.set(m.user, true);
        for (const [user, present] of this.presence.slice(from)) {
          if (present) this.view.set(user, true);
          else this.view.delete(user);
        }
        return ack.data;
      }
      await sleep(100);
    }
    throw new Error(`${this.label}: join failed`);
  }

  // Syncs from the last seq until an answer comes (retrying `unavailable`); a request
  // made meanwhile makes it sync again once done.
  async sync() {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncDone;
    }
    this.syncing = true;
    let done;
    this.syncDone = new Promise((r) => { done = r; });
    do {
      this.syncAgain = false;
      for (let tries = 0; tries < 100 && !this.closed; tries++) {
        const since = this.lastSeq;
        const ack = await this.request('sync', { room: this.room, data: { since, epoch: this.epoch } });
        if (ack.type === 'ack') {
          const d = ack.data;
          if (d.reset) this.resets++;
          if (d.epoch !== this.epoch) this.epoch = d.epoch;
          for (const ev of d.messages) {
            if (!ev.data || !ev.data.k) continue;
            this.synced.set(ev.data.k, ev.seq);
            this.noteSeq(ev.data.k, ev.seq);
          }
          this.lastSeq = d.reset ? d.seq : Math.max(this.lastSeq, d.seq);
          break;
        }
        await sleep(SYNC_RETRY_MS);
      }
    } while (this.syncAgain && !this.closed);
    this.syncing = false;
    done();
    return undefined;
  }

  got(k) {
    return this.live.has(k) || this.synced.has(k);
  }

  close() {
    running.delete(this);
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) {
      this.ws.terminate();
    }
  }

  async stop() {
    this.close();
  }
}

// Sends chat:message {k} at `rate` per second with id k; an `unavailable` answer is
// retried with the same id (the protocol's promise: the dedup window and the publish
// token make that safe).
class Publisher {
  constructor(member, rate) {
    this.member = member;
    this.rate = rate;
    this.k = 0;
    this.acks = new Map();   // k -> { seq: number|null }
    this.errors = new Map(); // k -> last error code
    this.unavailable = 0;
    this.resent = 0;
    this.inflight = new Set();
    this.stopping = false;
    this.prefix = member.label;
  }

  start() {
    running.add(this);
    this.timer = setInterval(() => {
      if (this.stopping) return;
      const k = `${this.prefix}-${++this.k}`;
      const p = this.deliver(k);
      this.inflight.add(p);
      p.finally(() => this.inflight.delete(p));
    }, 1000 / this.rate);
  }

  async deliver(k) {
    for (let tries = 0; tries < 200; tries++) {
      const r = await this.member.request('chat:message', { room: this.member.room, data: { k }, id: k });
      if (r.type === 'ack') {
        this.acks.set(k, { seq: r.data && r.data.seq !== undefined ? r.data.seq : null, at: Date.now() });
        this.errors.delete(k);
        return;
      }
      this.errors.set(k, r.code);
      if (r.code === 'closed' || r.code === 'timeout') { // moved: resend the same id there
        this.resent++;
        await this.member.whenOpen();
        continue;
      }
      if (r.code !== 'unavailable') return;
      this.unavailable++;
      await sleep(100 + Math.floor(Math.random() * 200));
    }
  }

  async stop() {
    this.stopping = true;
    running.delete(this);
    clearInterval(this.timer);
    while (this.inflight.size) await Promise.race([...this.inflight]);
  }
}

// Everything that runs on its own until stopped: stopped by cleanup() (after()).
const running = new Set();

async function cleanup() {
  for (const x of [...running]) await x.stop();
}

// Polls /readyz of each node and remembers every change with its time.
class ReadyWatch {
  constructor(nodes) {
    running.add(this);
    this.nodes = nodes;
    this.changes = new Map(nodes.map((n) => [n, []])); // node -> [{ status, at }]
    this.stopped = false;
    this.loops = nodes.map((n) => this.poll(n));
  }

  async poll(node) {
    let last = -1;
    while (!this.stopped) {
      const s = await status(node.httpUrl('/readyz'), 500);
      if (s !== last) {
        this.changes.get(node).push({ status: s, at: Date.now() });
        last = s;
      }
      await sleep(50);
    }
  }

  // ms from `since` to the first time node answered `want` (null: never).
  after(node, want, since) {
    const c = this.changes.get(node).find((x) => x.status === want && x.at >= since);
    return c ? c.at - since : null;
  }

  now(node) {
    const c = this.changes.get(node);
    return c.length ? c[c.length - 1].status : 0;
  }

  async stop() {
    this.stopped = true;
    running.delete(this);
    await Promise.all(this.loops);
  }
}

// The figures of a run. members: every Member that stayed connected to the end;
// publisher: its Publisher; gone: { user: at } of users that left or died on purpose
// (or { user: [[from, to], ...] } for one that came back in between); present: users
// that should be listed at the end. emptyBackAt: when a Redis that was killed came
// back empty (see lost_with_redis below).
function figures({ members, publisher, gone = {}, present, emptyBackAt }) {
  const f = {
    acked_seq: 0, acked_noseq: 0, unavailable_retries: publisher.unavailable,
    resent_after_move: publisher.resent,
    acked_seq_missing: 0, acked_noseq_missing: 0, duplicates: 0, false_leaves: 0, ghosts: 0,
    not_acked: publisher.errors.size, lost_with_redis: 0,
  };
  const missing = [];
  const sender = publisher.member.node;
  for (const [k, a] of publisher.acks) {
    if (a.seq !== null) f.acked_seq++;
    else f.acked_noseq++;
    // Redis writes a script's reply before the events it published (the caller is
    // first on its list of clients to write): killed in between, the sender has a
    // seq that no member got, and without persistence no sync can bring it back. A
    // message that nobody got, acked by the Redis that was killed (before the empty
    // one answered), is counted apart: lost with Redis, not by moonwire.
    if (a.seq !== null && emptyBackAt && a.at < emptyBackAt && members.every((m) => !m.got(k))) {
      f.lost_with_redis++;
      continue;
    }
    for (const m of members) {
      if (a.seq !== null && !m.got(k)) {
        f.acked_seq_missing++;
        missing.push(`${m.label}:${k}`);
      }
      if (a.seq === null && m.node === sender && !m.live.has(k)) {
        f.acked_noseq_missing++;
        missing.push(`${m.label}:${k}(noseq)`);
      }
    }
  }
  const ghosts = []; // which member's view is wrong about whom, for the assertion
  const seqs = new Map(); // k -> Set of epoch/seq over every member
  for (const m of members) {
    for (const [, list] of m.live) if (list.length > 1) f.duplicates += list.length - 1;
    for (const [k, s] of m.seqOfK) {
      if (!seqs.has(k)) seqs.set(k, new Set());
      for (const x of s) seqs.get(k).add(x);
    }
    for (const l of m.leaves) {
      // gone[user]: when it left or died, or [[from, to], ...] when it came back between
      const spans = gone[l.user] === undefined ? [] : [].concat(gone[l.user])
        .map((x) => (Array.isArray(x) ? x : [x, Infinity]));
      if (!spans.some(([from, to]) => l.at >= from && l.at < to)) f.false_leaves++;
    }
    if (present) {
      for (const u of m.view.keys()) {
        if (!present.has(u)) { f.ghosts++; ghosts.push(`${m.label} lists ${u}, gone`); }
      }
      for (const u of present) {
        if (!m.view.has(u)) { f.ghosts++; ghosts.push(`${m.label} misses ${u}, there`); }
      }
    }
  }
  // The same message under two seqs of one epoch: published twice.
  for (const [, s] of seqs) {
    const byEpoch = new Map();
    for (const x of s) {
      const e = x.slice(0, x.indexOf('/'));
      byEpoch.set(e, (byEpoch.get(e) || 0) + 1);
    }
    for (const [, n] of byEpoch) if (n > 1) f.duplicates += n - 1;
  }
  f.missing_sample = missing.slice(0, 10).join(' ');
  f.ghost_sample = ghosts.slice(0, 10).join('; ');
  return f;
}

function format(name, f) {
  return `faults: scenario=${name} ` + Object.entries(f)
    .filter(([k]) => (k !== 'missing_sample' || f.missing_sample) && (k !== 'ghost_sample' || f.ghost_sample))
    .map(([k, v]) => `${k}=${v === null ? 'never' : v}`).join(' ');
}

// A scenario: `n` moonwire nodes (heartbeat 1 s) on one Redis or a Redis Cluster
// (redis: { url } or { cluster: [...] }), `per` members on each in one room; the
// publisher is the first member of the first node. Every server started is pushed to
// `started` so that the test file's after() stops what a failure left running.
class Scenario {
  constructor(name, redis, started) {
    this.name = name;
    this.redis = redis;
    this.started = started;
    this.nodes = [];
    this.members = [];
  }

  static async start(name, { redis, started, n = 2, per = 2, room } = {}) {
    const sc = new Scenario(name, redis, started);
    for (let i = 0; i < n; i++) sc.nodes.push(await sc.startNode(`${name}-${i}`));
    sc.watch = new ReadyWatch(sc.nodes);
    await waitFor(async () => sc.nodes.every((x) => sc.watch.now(x) === 200), 15000, 'every node ready');
    sc.room = room || uid(name);
    for (const node of sc.nodes) {
      for (let j = 0; j < per; j++) {
        const m = await Member.open(node, uid(`${name}${sc.nodes.indexOf(node)}u${j}`),
          `${node.config.node_id}/m${j}`);
        await m.join(sc.room);
        sc.members.push(m);
      }
    }
    // Everybody sees everybody before the fault: presence is settled.
    sc.users = new Set(sc.members.map((m) => m.user));
    await waitFor(async () => sc.members.every((m) => [...sc.users].every((u) => m.view.has(u))), 10000,
      'every member lists every member');
    sc.pub = new Publisher(sc.members[0], RATE);
    return sc;
  }

  async startNode(id) {
    const node = await startServer({
      config: {
        node_id: id,
        heartbeat: { interval: '1s', timeout: '2s' },
        redis: this.redis,
        limits: { rate: 1000, burst: 2000 },
      },
      routes: { '/chat': { script: 'app:chat', history: { size: 5000 } } },
    });
    this.started.push(node);
    return node;
  }

  allReady(want, nodes = this.nodes) {
    return nodes.every((x) => this.watch.now(x) === want);
  }

  // Stops publishing, lets every member sync, stops the nodes; returns the figures.
  // extra: { members (the ones to count), gone, present } as figures() takes them.
  async finish(extra = {}) {
    await this.pub.stop();
    const alive = extra.members || this.members;
    await Promise.all(alive.map((m) => m.sync()));
    await this.watch.stop();
    const f = figures({ members: alive, publisher: this.pub, gone: extra.gone,
      present: extra.present || this.users, emptyBackAt: extra.emptyBackAt });
    for (const m of this.members) m.close();
    if (process.env.FAULTS_DEBUG) { // the nodes' logs, to see which repair ran
      for (const node of this.nodes) console.log(`--- ${node.config.node_id}\n${node.logs()}`);
    }
    for (const node of this.nodes) await node.stop().catch(() => {}); // a dead one: its files
    return f;
  }

  // ms from the fault to the first /readyz 503 of every node, and from the recovery
  // to the first 200 (the worst node's).
  readyFigures(faultAt, backAt) {
    const down = this.nodes.map((x) => this.watch.after(x, 503, faultAt));
    // The first 200 after the node went 503 (it may come before we saw Redis back:
    // then 0).
    const up = this.nodes.map((x, i) => {
      const ms = down[i] === null ? null : this.watch.after(x, 200, faultAt + down[i]);
      return ms === null ? null : Math.max(0, faultAt + down[i] + ms - backAt);
    });
    return {
      readyz_503_ms: down.some((d) => d === null) ? null : Math.max(...down),
      readyz_200_ms: up.some((d) => d === null) ? null : Math.max(...up),
    };
  }
}

function report(t, name, f) {
  t.diagnostic(format(name, f));
}

function assertClean(f) {
  assert.equal(f.acked_seq_missing, 0, `acked with seq, never received: ${f.missing_sample}`);
  assert.equal(f.acked_noseq_missing, 0, `acked without seq, not received on the sender's node: ${f.missing_sample}`);
  assert.equal(f.duplicates, 0, 'duplicates');
  assert.equal(f.false_leaves, 0, 'presence:leave of a connected member');
  assert.equal(f.ghosts, 0, `members listed that are gone, or not listed that are there: ${f.ghost_sample}`);
  assert.equal(f.not_acked, 0, 'every message was acked in the end');
  assert.ok(f.acked_seq > 0, 'messages went through Redis');
}

module.exports = {
  Member, Publisher, ReadyWatch, Scenario, figures, format, report, assertClean, cleanup, sleep,
  HEARTBEAT_MS,
};
