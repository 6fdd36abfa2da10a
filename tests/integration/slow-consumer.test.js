// Slow consumers and dead peers (SPEC sections 2 and 10): a connection the server has
// decided to close leaves its rooms and presence at once, however long its socket
// takes to die, and its socket is released within the close grace. The readers here
// never come back: nothing in these tests resumes them before the checks.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { rawConnect } = require('./lib/rawws');
const { uid, expectAck, assertServes, assertPingPong, waitFor } = require('./lib/helpers');
const { holdsSocket, socketsHeld, memory, metrics } = require('./lib/proc');

const CLOSE_GRACE_MS = 3000; // core/net/conn.h MW_CLOSE_GRACE_MS
const RELEASE_BOUND_MS = CLOSE_GRACE_MS + 7000; // the grace plus room for a loaded machine
const SANITIZE = process.env.MOONWIRE_SANITIZE === '1';

// Lines of the server log that mention conn=ID.
function linesOf(server, re, connId) {
  return server.logs().split('\n').filter((l) => re.test(l) && l.includes(`conn=${connId} `));
}

// Floods `room` through `flooder` with chat messages of `size` bytes until `stop()` or
// `max` messages, keeping `window` unacked; every message must be acked. `ready(n)`,
// when given, is polled before message n is sent (readers that must keep up). Returns
// the count sent.
async function flood(flooder, room, { size, max, window = 4, stop, ready, ms = 60000 }) {
  const pad = 'p'.repeat(size);
  const inflight = [];
  const t0 = Date.now();
  let sent = 0;
  const settle = async () => {
    const id = inflight.shift();
    const ack = await flooder.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === id, 10000);
    expectAck(ack, id, `flood message ${id}`);
  };
  while (sent < max && !stop()) {
    if (ready && !ready(sent)) await waitFor(() => stop() || ready(sent), ms, 'the readers to keep up');
    if (stop()) break;
    const id = 100000 + sent;
    flooder.send({ type: 'chat:message', room, id, data: { n: sent, pad } });
    inflight.push(id);
    sent += 1;
    if (inflight.length >= window) await settle();
    assert.ok(Date.now() - t0 < ms, 'flood bounded in time');
  }
  while (inflight.length) await settle();
  return sent;
}

describe('slow consumer', () => {
  let server;
  const raws = [];

  before(async () => {
    server = await startServer({
      config: {
        limits: { max_message: '64KiB', send_queue: '64KiB', rate: 100000, burst: 100000 },
      },
    });
  });

  after(async () => {
    for (const r of raws) await r.destroy();
    await closeAll();
    if (server) await server.stop();
  });

  it('a reader that pauses forever leaves presence at once and its socket goes within the grace', async (t) => {
    const room = uid('flood');
    const slowUser = uid('slow');

    const raw = await rawConnect(server.port, `/chat?user=${slowUser}`);
    raws.push(raw);
    const hello = await raw.waitFor((m) => m.type === 'hello');
    const connId = hello.data.conn;
    raw.send({ type: 'join', room, id: 1 });
    await raw.waitFor((m) => m.type === 'ack' && m.id === 1);

    const flooder = await connect(server.url(`/chat?user=${uid('flooder')}`));
    expectAck(await flooder.request('join', { room }), 1);
    const reader = await connect(server.url(`/chat?user=${uid('reader')}`));
    expectAck(await reader.request('join', { room }), 1);
    await flooder.next({ type: 'presence:join', room });
    await raw.waitFor((m) => m.type === 'presence:join' && m.data.user === reader.user);
    const clientPort = raw.socket.localPort;
    assert.ok(holdsSocket(server.process.pid, server.port, clientPort), 'the server holds the socket');

    raw.pause(); // for good: the kernel buffers fill, then the server's queue

    let detected = 0;
    const t0 = Date.now();
    const sent = await flood(flooder, room, {
      size: 8000,
      max: 2000, // 16 MB: far over any socket buffers
      stop: () => {
        if (!detected && /slow consumer/.test(server.logs())) detected = Date.now();
        return detected;
      },
    });
    await server.waitForLog(/slow consumer/, 3000);
    detected = detected || Date.now();

    // Everyone else sees it leave right away, with the reader still paused.
    const left = await reader.next({ type: 'presence:leave', room }, 3000);
    const leaveMs = Date.now() - detected;
    assert.deepEqual(left.data, { user: slowUser });

    // Its socket is released within the close grace, without it ever reading.
    await waitFor(() => !holdsSocket(server.process.pid, server.port, clientPort), RELEASE_BOUND_MS,
      'the server to release the slow reader\'s socket');
    const releaseMs = Date.now() - detected;
    assert.ok(raw.socket.isPaused(), 'the reader never resumed');

    const timeouts = linesOf(server, /close timed out/, connId);
    assert.ok(timeouts.length <= 1, `close timed out logged ${timeouts.length} times:\n${timeouts.join('\n')}`);
    const m = await metrics(server.port);
    assert.equal(m.moonwire_zombie_connections, 0);
    assert.equal(m['moonwire_connections_by_state{state="unlinked"}'], 0);
    assert.equal(m['moonwire_connections_by_state{state="closing"}'], 0);
    assert.ok(m.moonwire_slow_consumer_closes_total >= 1);
    t.diagnostic(`flooded ${sent} messages in ${Date.now() - t0} ms; slow consumer detected -> ` +
      `presence:leave ${leaveMs} ms, -> socket released ${releaseMs} ms; close timed out lines: ${timeouts.length}`);

    // Fast members received everything, in order, and stay connected.
    for (const [name, c] of [['reader', reader], ['flooder', flooder]]) {
      const chats = [];
      for (let i = 0; i < sent; i++) chats.push(await c.next({ type: 'chat:message', room }, 5000));
      assert.deepEqual(chats.map((x) => x.data.n), [...Array(sent).keys()], `${name} got every message in order`);
      for (let i = 1; i < chats.length; i++) {
        assert.ok(chats[i].seq > chats[i - 1].seq, `${name}: seq strictly increasing`);
      }
      assert.ok(c.isOpen, `${name} still connected`);
      await assertPingPong(c, name);
    }
    await assertServes(server);
  });
});

describe('a peer that stops answering pings with output queued', () => {
  let server;
  let raw;

  before(async () => {
    server = await startServer({
      config: {
        // The watcher must survive the heartbeat on a loaded CI machine: 2 s to answer.
        heartbeat: { interval: '500ms', timeout: '2s' },
        limits: { max_message: '64KiB', send_queue: '4MiB', rate: 100000, burst: 100000 },
      },
    });
  });

  after(async () => {
    if (raw) await raw.destroy();
    await closeAll();
    if (server) await server.stop();
  });

  it('is dropped by the heartbeat: presence:leave at once, socket released, no close timeout', async (t) => {
    const room = uid('hb');
    const deadUser = uid('dead');
    raw = await rawConnect(server.port, `/chat?user=${deadUser}`);
    const hello = await raw.waitFor((m) => m.type === 'hello');
    raw.send({ type: 'join', room, id: 1 });
    await raw.waitFor((m) => m.type === 'ack' && m.id === 1);
    const watcher = await connect(server.url(`/chat?user=${uid('watcher')}`));
    expectAck(await watcher.request('join', { room }), 1);
    await raw.waitFor((m) => m.type === 'presence:join');
    const clientPort = raw.socket.localPort;

    raw.pause(); // it stops reading, so it stops answering pings too
    // Output piles up for it (under its send-queue bound: no slow-consumer close).
    const pad = 'q'.repeat(16000);
    for (let i = 0; i < 60; i++) expectAck(await watcher.request('chat:message', { room, data: { i, pad } }), i + 2);

    const line = await server.waitForLog(new RegExp(`heartbeat timeout" conn=${hello.data.conn} `), 10000);
    const t0 = Date.now();
    const left = await watcher.next((m) => m.type === 'presence:leave' && m.data.user === deadUser, 3000);
    const leaveMs = Date.now() - t0;
    await waitFor(() => !holdsSocket(server.process.pid, server.port, clientPort), RELEASE_BOUND_MS,
      'the server to release the dead peer\'s socket');
    const releaseMs = Date.now() - t0;
    assert.deepEqual(left.data, { user: deadUser });
    assert.equal(linesOf(server, /close timed out/, hello.data.conn).length, 0, 'a dead peer is aborted, not waited for');
    assert.equal((await metrics(server.port)).moonwire_zombie_connections, 0);
    t.diagnostic(`${line.trim()}; -> presence:leave ${leaveMs} ms, -> socket released ${releaseMs} ms`);
    assert.ok(watcher.isOpen);
    await assertServes(server);
  });
});

// A room member that counts chat messages without keeping them, and remembers the
// last presence:count: 900 of them stay cheap for the test process.
function counter(url, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const st = { ws, chats: 0, outOfOrder: 0, presence: null };
    const timer = setTimeout(() => reject(new Error(`counter ${url}: no join ack in 20 s`)), 20000);
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'join', room, id: 1 })));
    ws.on('message', (data) => {
      const s = data.toString('utf8');
      if (s.includes('"type":"chat:message"')) { // only its pad is big: no JSON.parse
        const n = Number((/"n":(\d+)[,}]/.exec(s) || [])[1]);
        if (n !== st.chats) st.outOfOrder += 1;
        st.chats += 1;
        return;
      }
      const m = JSON.parse(s);
      if (m.type === 'presence:count') st.presence = m.data.count;
      else if (m.type === 'ack' && m.id === 1) {
        clearTimeout(timer);
        resolve(st);
      }
    });
  });
}

// Runs fn over items with at most `limit` at a time.
async function pool(items, limit, fn) {
  const out = [];
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

describe('1000 members, 100 never read', () => {
  let server;
  const fast = [];
  const slow = [];

  before(async () => {
    server = await startServer({
      config: {
        // A bounded kernel send buffer: without it Linux lets each paused socket take
        // ~4 MB before the send queue even counts (see docs/config.md).
        limits: {
          max_message: '64KiB', send_queue: '64KiB', socket_send_buffer: '16KiB',
          rate: 1000000, burst: 1000000,
        },
      },
    });
  });

  after(async () => {
    for (const s of slow) await s.destroy();
    for (const f of fast) f.ws.terminate();
    await closeAll();
    if (server) await server.stop();
  });

  it('the 100 are gone within the grace, the 900 lose nothing, memory stays bounded', async (t) => {
    const room = uid('big');
    const pid = server.process.pid;
    const t0 = Date.now();
    const rawOnes = await pool([...Array(100).keys()], 25, async (i) => {
      const r = await rawConnect(server.port, `/chat?user=slow-${i}`, { timeout: 20000 });
      slow.push(r);
      const hello = await r.waitFor((m) => m.type === 'hello', 20000);
      r.send({ type: 'join', room, id: 1 });
      await r.waitFor((m) => m.type === 'ack' && m.id === 1, 20000);
      r.pause(); // never to read again
      return { r, conn: hello.data.conn, port: r.socket.localPort };
    });
    fast.push(...await pool([...Array(899).keys()], 25, (i) => counter(server.url(`/chat?user=fast-${i}`), room)));
    const publisher = await connect(server.url(`/chat?user=${uid('pub')}`));
    expectAck(await publisher.request('join', { room }), 1);
    const base = memory(pid);
    const connectMs = Date.now() - t0;
    let peak = base.rss; // sampled: VmHWM alone is only updated lazily by the kernel
    const sampler = setInterval(() => { peak = Math.max(peak, memory(pid).rss); }, 20);

    const slowCount = () => (server.logs().match(/msg="slow consumer"/g) || []).length;
    let allDetected = 0;
    const t1 = Date.now();
    // The 899 read as fast as they can, but one test process reads for all of them:
    // the flood waits for them to be at most 4 messages behind (32 KB, well under the
    // send-queue bound), so that only the paused ones fall behind.
    const sent = await flood(publisher, room, {
      size: 8000,
      max: 1500,
      window: 4,
      ms: 120000,
      ready: (n) => fast.every((f) => f.chats >= n - 4),
      stop: () => {
        if (!allDetected && slowCount() >= 100) allDetected = Date.now();
        return allDetected;
      },
    });
    const floodMs = Date.now() - t1;
    clearInterval(sampler);
    assert.equal(slowCount(), 100, 'every paused reader was found slow');
    allDetected = allDetected || Date.now();

    // All 100 sockets released within the grace (counted from the last detection).
    const ports = rawOnes.map((s) => s.port);
    assert.ok(socketsHeld(pid, server.port, ports) > 0, 'the sockets outlive the detection (the grace)');
    await waitFor(() => socketsHeld(pid, server.port, ports) === 0, RELEASE_BOUND_MS,
      'the server to release all 100 paused sockets');
    const releaseMs = Date.now() - allDetected;
    for (const s of rawOnes) {
      const n = linesOf(server, /close timed out/, s.conn).length;
      assert.ok(n <= 1, `conn ${s.conn}: close timed out logged ${n} times`);
    }

    // The 900 lose nothing: every message, in order (the publisher is the 900th).
    await waitFor(() => fast.every((f) => f.chats >= sent), 60000, 'every fast member to get the whole flood');
    assert.equal(fast.filter((f) => f.chats !== sent || f.outOfOrder).length, 0, 'no loss, no reordering');
    for (let i = 0; i < sent; i++) {
      const ev = await publisher.next({ type: 'chat:message', room }, 10000);
      assert.equal(ev.data.n, i);
    }
    // Presence: the room counts 900 once the 100 left.
    await waitFor(() => fast.every((f) => f.presence === 900), 10000, 'presence:count 900 at every member');

    const mem = memory(pid);
    peak = Math.max(peak, mem.rss, mem.hwm);
    const m = await metrics(server.port);
    assert.equal(m.moonwire_zombie_connections, 0);
    assert.equal(m['moonwire_connections_by_state{state="open"}'], 900);
    t.diagnostic(`connect+join 1000: ${connectMs} ms; flood ${sent} x 8 KB in ${floodMs} ms; ` +
      `all 100 released ${releaseMs} ms after the last detection; RSS after joins ${base.rss} KiB, ` +
      `peak ${peak} KiB (+${peak - base.rss} KiB), now ${mem.rss} KiB`);
    if (!SANITIZE) { // ASan's quarantine makes RSS meaningless there
      assert.ok(peak - base.rss < 128 * 1024, `peak RSS grew by ${peak - base.rss} KiB`);
    }
    await assertServes(server);
  });
});
