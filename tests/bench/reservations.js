#!/usr/bin/env node
// Hold throughput of the reservations app (issue 13): N clients join one venue and
// race through the same sequence of tables, each with one hold in flight at a time, so
// every table is fought over by up to N holds and exactly one wins it. Every winner's
// reservation:created and table:status_changed go to all N members, as on a real board.
//
// Shapes: one node with the memory store, one node on Redis, two nodes on one Redis
// (clients alternate between the nodes). Servers and Redis run pinned to CPU 0
// (taskset), this generator should run on CPU 1: `taskset -c 1 node ...`. Everything
// it starts listens on free 127.0.0.1 ports and is killed at exit.
//
// Per run it prints holds/s (answered holds: acks and conflicts), wins/s (tables won),
// the p50/p99 time of a hold's answer, and the CPU% of the generator, the nodes and
// Redis over the measured window (a generator well below 100% is not the bottleneck),
// and of everything else on the machine (other_cpu_pct: is the machine quiet?).
// It also checks the races: every table that was held has exactly one winner.
//
// Usage: taskset -c 1 node tests/bench/reservations.js
//   env: CLIENTS ("20 200") SHAPES ("memory redis two-nodes") DURATION (5 s, max 60)
//        WARMUP (1 s) ROUNDS (3, max 10) BUILD (build)
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.resolve(ROOT, process.env.BUILD || 'build', 'moonwire');
const CLIENTS = (process.env.CLIENTS || '20 200').split(/\s+/).filter(Boolean).map(Number);
const SHAPES = (process.env.SHAPES || 'memory redis two-nodes').split(/\s+/).filter(Boolean);
const DURATION = Math.min(Number(process.env.DURATION) || 5, 60) * 1000;
const WARMUP = Math.min(Number(process.env.WARMUP) || 1, 10) * 1000;
const ROUNDS = Math.min(Number(process.env.ROUNDS) || 3, 10);
const TICKS = 100; // /proc clock ticks per second (USER_HZ)

const children = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-resv-bench-'));
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function httpStatus(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function until(what, fn, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function pinned(cmd, args, log) {
  const child = spawn('taskset', ['-c', '0', cmd, ...args], {
    env: { ...process.env, MOONWIRE_HOME: ROOT },
    stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')],
  });
  children.push(child);
  return child;
}

// CPU seconds the whole machine has been busy so far (every CPU, all but idle/iowait).
function machineBusy() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((x, y) => x + y, 0);
  return (total - f[3] - f[4]) / TICKS;
}

// CPU seconds a process has used so far (user + system).
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function startRedis() {
  const port = await freePort();
  const child = pinned('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no'], path.join(dir, `redis-${port}.log`));
  await until('redis', async () => {
    try {
      return execFileSync('redis-cli', ['-p', String(port), 'PING'],
        { timeout: 1000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() === 'PONG';
    } catch (e) {
      return false;
    }
  });
  return { port, child };
}

async function startNode(name, redisPort) {
  const port = await freePort();
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, [
    `listen: 127.0.0.1:${port}`,
    `node_id: ${name}`,
    'routes:',
    '  /reservations: { script: "app:reservations" }',
    redisPort ? `redis: { url: "redis://127.0.0.1:${redisPort}" }` : '',
    'dev: { user_param: true }',
    'limits: { rate: 1000000, burst: 1000000, send_queue: 16MiB, max_connections: 100000 }',
    'log: { level: warn }',
    '',
  ].join('\n'));
  const child = pinned(BIN, ['serve', '-c', file], path.join(dir, `${name}.log`));
  await until(`${name} ready`, async () => (await httpStatus(port, '/readyz')) === 200);
  return { port, child };
}

// A client that keeps only what the bench needs: answers to its own requests. Events
// are counted from the raw frame, without parsing.
function client(port, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/reservations?user=${user}`, { perMessageDeflate: false });
    const c = { ws, nextId: 1, pending: new Map(), events: 0 };
    ws.on('message', (data) => {
      if (data.includes('"type":"reservation:') || data.includes('"type":"table:')) {
        c.events++;
        return;
      }
      const msg = JSON.parse(data);
      const p = msg.id !== undefined && c.pending.get(msg.id);
      if (p) {
        c.pending.delete(msg.id);
        p(msg);
      } else if (msg.type === 'hello') {
        resolve(c);
      }
    });
    ws.on('error', reject);
    c.request = (type, room, data) => new Promise((done) => {
      const id = c.nextId++;
      c.pending.set(id, done);
      ws.send(JSON.stringify({ type, room, id, data }));
    });
  });
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0;
}

async function run(shape, n, round) {
  const redis = shape === 'memory' ? null : await startRedis();
  const nodes = [await startNode(`bench-a-${round}`, redis && redis.port)];
  if (shape === 'two-nodes') nodes.push(await startNode(`bench-b-${round}`, redis.port));
  const room = `venue:bench-${shape}-${n}-${round}`;
  const clients = [];
  for (let i = 0; i < n; i++) clients.push(await client(nodes[i % nodes.length].port, `u${i}`));
  for (const c of clients) {
    const r = await c.request('join', room);
    if (r.type !== 'ack') throw new Error(`join: ${JSON.stringify(r)}`);
  }
  await sleep(300); // the nodes' room subscriptions are in place

  const winners = new Map(); // table -> wins
  let answered = 0;
  let measuring = false;
  let stop = false;
  const latencies = [];
  let errors = 0;
  async function loop(c) {
    for (let k = 0; !stop; k++) {
      const t0 = process.hrtime.bigint();
      const r = await c.request('reservation:hold', room, { table: `t${k}`, slot: 's', party: 2 });
      if (r.type === 'ack') winners.set(k, (winners.get(k) || 0) + 1);
      else if (r.code !== 'conflict') errors++;
      if (measuring) {
        answered++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  }
  const loops = clients.map(loop);
  await sleep(WARMUP);
  const wonBefore = winners.size;
  const cpu0 = { gen: process.cpuUsage(), nodes: nodes.map((x) => cpuSeconds(x.child.pid)),
    redis: redis && cpuSeconds(redis.child.pid), machine: machineBusy() };
  const t0 = Date.now();
  measuring = true;
  await sleep(DURATION);
  measuring = false;
  const secs = (Date.now() - t0) / 1000;
  const genCpu = process.cpuUsage(cpu0.gen);
  const nodeCpu = nodes.map((x, i) => cpuSeconds(x.child.pid) - cpu0.nodes[i]);
  const redisCpu = redis ? cpuSeconds(redis.child.pid) - cpu0.redis : 0;
  const ours = (genCpu.user + genCpu.system) / 1e6 + nodeCpu.reduce((x, y) => x + y, 0) + redisCpu;
  const otherCpu = Math.max(0, machineBusy() - cpu0.machine - ours);
  const won = winners.size - wonBefore;
  stop = true;
  await Promise.all(loops);

  const doubles = [...winners.values()].filter((w) => w !== 1).length;
  latencies.sort((x, y) => x - y);
  const pct = (s) => Math.round((100 * s) / secs);
  const result = {
    shape, clients: n, round, holds_per_s: Math.round(answered / secs), wins_per_s: Math.round(won / secs),
    p50_ms: percentile(latencies, 0.5).toFixed(2), p99_ms: percentile(latencies, 0.99).toFixed(2),
    gen_cpu_pct: pct((genCpu.user + genCpu.system) / 1e6),
    node_cpu_pct: nodeCpu.map(pct).join('+'), redis_cpu_pct: redis ? pct(redisCpu) : '-',
    other_cpu_pct: pct(otherCpu),
    tables_with_not_one_winner: doubles, errors,
  };
  console.log('result ' + Object.entries(result).map(([k, v]) => `${k}=${v}`).join(' '));
  for (const c of clients) c.ws.terminate();
  for (const x of nodes) x.child.kill('SIGKILL');
  if (redis) redis.child.kill('SIGKILL');
  await sleep(200);
  if (doubles || errors) process.exitCode = 1;
  return result;
}

(async () => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} not found: build first`);
  console.log(`# reservations hold throughput: ${DURATION / 1000} s per run after ${WARMUP / 1000} s ` +
    `warm-up, ${ROUNDS} rounds; servers on CPU 0, this generator on CPU ${os.cpus().length > 1 ? '1 (if run with taskset -c 1)' : '0'}`);
  const all = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const shape of SHAPES) for (const n of CLIENTS) all.push(await run(shape, n, round));
  }
  console.log('# medians over the rounds');
  for (const shape of SHAPES) {
    for (const n of CLIENTS) {
      const rs = all.filter((r) => r.shape === shape && r.clients === n);
      const med = (k) => rs.map((r) => Number(r[k])).sort((x, y) => x - y)[Math.floor(rs.length / 2)];
      console.log(`# ${shape.padEnd(9)} ${String(n).padStart(4)} clients: ${med('holds_per_s')} holds/s, ` +
        `${med('wins_per_s')} wins/s, p50 ${med('p50_ms')} ms, p99 ${med('p99_ms')} ms, ` +
        `generator ${med('gen_cpu_pct')}% CPU, others ${med('other_cpu_pct')}%`);
    }
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
