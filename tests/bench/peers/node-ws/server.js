#!/usr/bin/env node
// The benchmark's Node peer: a `ws` server speaking the subset of moonwire's chat app
// (docs/protocol.md) that tests/bench drives, written the way a Node developer
// would: JSON per message, one ws.send per recipient (the event serialized once).
//   /chat?user=U -> hello; join -> ack {room, members, history: [], seq, epoch} and
//   presence:join to the others (presence:count at most once a second above 100 users);
//   leave; chat:message -> every member including the sender, then ack {seq};
//   ping -> pong; anything else -> unknown_type. No history, auth or rate limit.
// Heartbeat as the ws README does it: one timer pings every client each --heartbeat
// seconds and ends those that did not answer the previous ping (0: none).
// Usage: node tests/bench/peers/node-ws/server.js [--port 9001] [--host 127.0.0.1]
//        [--heartbeat 25]
// `ws` comes from the repository's own node_modules (the root package.json pins it).
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const { WebSocketServer } = require(require.resolve('ws', { paths: [REPO] }));

const PRESENCE_THRESHOLD = 100;
const MAX_LISTED = 1000;
const TYPE_RE = /^[a-z0-9_.:-]{1,64}$/;

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const port = Number(arg('--port', '9001'));
const host = arg('--host', '127.0.0.1');
const heartbeat = Number(arg('--heartbeat', '25'));
const clients = new Set();

const rooms = new Map(); // name -> { conns: Set, users: Map(user -> {name, conns}), seq, epoch, countTimer }
let nextConn = 1;

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { conns: new Set(), users: new Map(), seq: 0, epoch: crypto.randomBytes(6).toString('hex'), countTimer: null };
    rooms.set(name, r);
  }
  return r;
}

function member(user, u) {
  const m = { user, conns: u.conns };
  if (u.name !== undefined) m.name = u.name;
  return m;
}

function members(r) {
  const out = [];
  for (const [user, u] of r.users) {
    if (out.length >= MAX_LISTED) break;
    out.push(member(user, u));
  }
  return out;
}

function broadcast(r, event, except) {
  const frame = JSON.stringify(event);
  for (const ws of r.conns) if (ws !== except && ws.readyState === 1) ws.send(frame);
}

// Above the threshold a room sends presence:count at most once a second. `size` is the
// user count after a join, before a leave (as moonwire counts).
function presenceChanged(r, name, event, except, size) {
  if (size <= PRESENCE_THRESHOLD) {
    broadcast(r, event, except);
    return;
  }
  if (r.countTimer) return;
  broadcast(r, { type: 'presence:count', room: name, data: { count: r.users.size } });
  r.countTimer = setTimeout(() => {
    r.countTimer = null;
    if (rooms.get(name) === r) broadcast(r, { type: 'presence:count', room: name, data: { count: r.users.size } });
  }, 1000);
}

function leave(ws, name) {
  const r = rooms.get(name);
  if (!r || !r.conns.delete(ws)) return false;
  ws.rooms.delete(name);
  const u = r.users.get(ws.user);
  if (--u.conns === 0) {
    r.users.delete(ws.user);
    presenceChanged(r, name, { type: 'presence:leave', room: name, data: { user: ws.user } }, undefined, r.users.size + 1);
  }
  if (r.conns.size === 0) {
    if (r.countTimer) clearTimeout(r.countTimer);
    rooms.delete(name);
  }
  return true;
}

function reply(ws, id, data) {
  if (id === undefined || id === null) return;
  const m = { type: 'ack', id };
  if (data !== undefined) m.data = data;
  ws.send(JSON.stringify(m));
}

function fail(ws, id, code, message) {
  const m = { type: 'error', code, message };
  if (id !== undefined && id !== null) m.id = id;
  ws.send(JSON.stringify(m));
}

const handlers = {
  join(ws, msg) {
    const name = msg.room;
    const r = room(name);
    const nm = msg.data && typeof msg.data.name === 'string' ? msg.data.name : undefined;
    if (!r.conns.has(ws)) {
      r.conns.add(ws);
      ws.rooms.add(name);
      let u = r.users.get(ws.user);
      const first = !u;
      if (first) r.users.set(ws.user, (u = { conns: 0 }));
      u.conns++;
      u.name = nm;
      if (first) presenceChanged(r, name, { type: 'presence:join', room: name, data: member(ws.user, u) }, ws, r.users.size);
    }
    return { room: name, members: members(r), history: [], seq: r.seq, epoch: r.epoch };
  },
  leave(ws, msg) {
    if (!leave(ws, msg.room)) return notInRoom(msg.room);
    return { room: msg.room };
  },
  'chat:message'(ws, msg) {
    const r = rooms.get(msg.room);
    if (!r || !r.conns.has(ws)) return notInRoom(msg.room);
    const seq = ++r.seq;
    const event = { type: 'chat:message', room: msg.room, from: ws.user, seq, ts: Date.now() };
    if (msg.data !== undefined && msg.data !== null) event.data = msg.data;
    broadcast(r, event);
    return { seq };
  },
};

function notInRoom(name) {
  const e = new Error(`join room '${name}' first`);
  e.code = 'not_in_room';
  throw e;
}

function onMessage(ws, raw, isBinary) {
  if (isBinary) return fail(ws, undefined, 'bad_message', 'binary frames are not accepted on this route');
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch (e) {
    return fail(ws, undefined, 'bad_json', e.message);
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return fail(ws, undefined, 'bad_message', 'a message must be a JSON object');
  }
  const { id, type } = msg;
  if (typeof type !== 'string' || !TYPE_RE.test(type)) return fail(ws, id, 'bad_message', 'bad type');
  if (type === 'ping') {
    const m = { type: 'pong' };
    if (id !== undefined) m.id = id;
    if (msg.data !== undefined) m.data = msg.data;
    return ws.send(JSON.stringify(m));
  }
  const h = handlers[type];
  if (!h) return fail(ws, id, 'unknown_type', `unknown message type '${type}'`);
  if (typeof msg.room !== 'string' || msg.room.length === 0) {
    return fail(ws, id, 'bad_message', 'room is required');
  }
  let out;
  try {
    out = h(ws, msg);
  } catch (e) {
    return fail(ws, id, e.code || 'internal', e.code ? e.message : 'internal error');
  }
  reply(ws, id, out);
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024, clientTracking: false });
const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/chat') return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    const q = url.searchParams.get('user');
    ws.user = q && q.length <= 128 ? q : `anon-${crypto.randomBytes(6).toString('hex')}`;
    ws.rooms = new Set();
    ws.isAlive = true;
    clients.add(ws);
    ws.send(JSON.stringify({ type: 'hello', data: { conn: String(nextConn++), node: 'node-ws', user: ws.user, heartbeat } }));
    ws.on('message', (data, isBinary) => {
      ws.isAlive = true;
      onMessage(ws, data, isBinary);
    });
    ws.on('pong', () => { ws.isAlive = true; });
    ws.on('close', () => {
      clients.delete(ws);
      for (const name of [...ws.rooms]) leave(ws, name);
    });
    ws.on('error', () => {});
  });
});

if (heartbeat > 0) {
  setInterval(() => {
    for (const ws of clients) {
      if (!ws.isAlive) {
        ws.terminate();
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }, heartbeat * 1000);
}

server.listen(port, host, () => {
  console.log(`node-ws peer listening on ${host}:${server.address().port} pid=${process.pid}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
