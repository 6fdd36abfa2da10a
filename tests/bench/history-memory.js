#!/usr/bin/env node
// Memory one room's history takes (issue 5): fills ROOMS rooms with history.size (100)
// chat messages of ~100 bytes of data each (the benchmark's message), then reports
// per room: the server's RSS growth on one node (history in memory), and on a node
// over Redis the stream's MEMORY USAGE and Redis's used_memory growth.
// Real processes on free loopback ports; everything is stopped at the end.
// Usage: node tests/bench/history-memory.js [ROOMS=200]
'use strict';

const fs = require('node:fs');
const { startServer } = require('../integration/lib/server');
const { startRedis } = require('../integration/lib/redis');
const { connect, closeAll } = require('../integration/lib/client');

const ROOMS = Math.min(Number(process.argv[2]) || 200, 2000);
const PER_ROOM = 100;
const LIMITS = { rate: 1000000, burst: 1000000, send_queue: '64MiB' };

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// Joins every room and publishes PER_ROOM messages into each (pipelined; the last
// one of each room with an id, so that its ack says the room is done).
async function fill(server, tag) {
  const c = await connect(server.url(`/chat?user=${tag}`));
  const rooms = Array.from({ length: ROOMS }, (_, i) => `${tag}-${i}`);
  for (const room of rooms) await c.request('join', { room, ms: 10000 });
  const before = rssKiB(server.process.pid);
  const pad = 'x'.repeat(60);
  for (const room of rooms) {
    for (let n = 1; n < PER_ROOM; n++) {
      c.send({ type: 'chat:message', room, data: { t: Date.now() * 1e6, seq: n, pad } });
    }
    const ack = await c.request('chat:message', { room, data: { t: Date.now() * 1e6, seq: PER_ROOM, pad }, ms: 20000 });
    if (ack.type !== 'ack') throw new Error(`publish failed: ${JSON.stringify(ack)}`);
  }
  c.drain();
  return { c, rooms, before };
}

(async () => {
  const out = [];
  // One node: history in the server's memory.
  let server = await startServer({ config: { limits: LIMITS, log: { level: 'warn' } } });
  try {
    const { rooms, before } = await fill(server, 'mem');
    await new Promise((r) => setTimeout(r, 300));
    const grown = rssKiB(server.process.pid) - before;
    const probe = await connect(server.url('/chat?user=probe'));
    const j = await probe.request('join', { room: rooms[0] });
    const bytes = j.data.history.reduce((n, ev) => n + JSON.stringify(ev).length, 0);
    out.push(`memory: ${ROOMS} rooms x ${PER_ROOM} messages: server RSS +${grown} KiB = ` +
      `${(grown * 1024 / ROOMS / 1024).toFixed(1)} KiB per room ` +
      `(${(grown * 1024 / ROOMS / PER_ROOM).toFixed(0)} B per message; the event JSON is ` +
      `${(bytes / j.data.history.length).toFixed(0)} B)`);
  } finally {
    await closeAll();
    await server.stop();
  }

  // One node over Redis: history in a Redis Stream per room.
  const redis = await startRedis();
  server = await startServer({ config: { limits: LIMITS, log: { level: 'warn' }, redis: { url: redis.url } } });
  try {
    await new Promise((r) => setTimeout(r, 500)); // connected
    const used = () => Number(/used_memory:(\d+)/.exec(redis.cli('INFO', 'memory'))[1]);
    const before = used();
    const { rooms } = await fill(server, 'red');
    const grown = used() - before;
    const usage = Number(redis.cli('MEMORY', 'USAGE', `mw:h:{${rooms[0]}}`, 'SAMPLES', '0'));
    const len = Number(redis.cli('XLEN', `mw:h:{${rooms[0]}}`));
    out.push(`redis: ${ROOMS} rooms x ${PER_ROOM} messages: used_memory +${(grown / 1024).toFixed(0)} KiB = ` +
      `${(grown / ROOMS / 1024).toFixed(1)} KiB per room (presence and seq keys included); ` +
      `one room's stream (${len} entries): MEMORY USAGE ${(usage / 1024).toFixed(1)} KiB ` +
      `= ${(usage / len).toFixed(0)} B per message`);
  } finally {
    await closeAll();
    await server.stop();
    await redis.stop();
  }
  for (const line of out) console.log(line);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
