// Starts a real Redis Cluster on free 127.0.0.1 ports (no persistence; 3 masters, and
// replicas when asked: a 3+3 cluster fails a killed master over to its replica) for
// the Redis Cluster tests, and the bits of the cluster protocol a test needs to aim at
// it: CRC16 key slots, the slot table, moving one slot.
'use strict';

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const CLI_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;

// CRC16/XMODEM (poly 0x1021, init 0), the one Redis Cluster uses for key slots.
function crc16(buf) {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// The slot of a key: of its {hash tag} when it has a non-empty one.
function keySlot(key) {
  let k = Buffer.from(key);
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  return crc16(k) % 16384;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function canListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// A cluster node needs its port and port + 10000 (the cluster bus): both are taken
// below the kernel's ephemeral range (32768 and up), so outgoing connections cannot
// hold them, and both are checked free.
async function freeClusterPort(taken) {
  for (let i = 0; i < 200; i++) {
    const port = 11000 + Math.floor(Math.random() * 11000);
    if (taken.has(port) || taken.has(port + 10000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10000))) {
      taken.add(port);
      taken.add(port + 10000);
      return port;
    }
  }
  throw new Error('no free port pair for a cluster node');
}

// redis-cli, bounded; resolves with its trimmed stdout.
function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(port), ...args], { timeout: CLI_TIMEOUT_MS },
      (err, stdout, stderr) => (err ? reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`))
        : resolve(stdout.toString().trim())));
  });
}

// CLUSTER SLOTS as [{ start, end, port, id }], sorted by start.
async function slotRanges(port) {
  const out = await cli(port, '--json', 'CLUSTER', 'SLOTS');
  return JSON.parse(out).map((r) => ({ start: r[0], end: r[1], port: r[2][1], id: r[2][2] }))
    .sort((a, b) => a.start - b.start);
}

// startRedisCluster({ masters: 3, replicas: 0 }) -> { ports, urls, cli(port, ...),
// slots(), portOfSlot(slot), nodeId(port), moveSlot(slot, toPort), kill(port),
// restart(port), waitFailover(slot, oldPort), stop() }.
async function startRedisCluster(opts = {}) {
  const replicas = opts.replicas || 0;
  const n = (opts.masters || 3) * (1 + replicas);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-rc-'));
  const taken = new Set();
  const nodes = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => new Promise((resolve) => {
      if (node.exited) return resolve();
      const t = setTimeout(resolve, STOP_TIMEOUT_MS);
      node.child.on('exit', () => { clearTimeout(t); resolve(); });
      node.child.kill('SIGKILL');
    })));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // (Re)starts the server of node; its nodes-<port>.conf in dir keeps its cluster
  // identity and slots across a restart.
  const spawnNode = (node) => {
    const child = spawn('redis-server', ['--port', String(node.port), '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${node.port}.conf`,
      '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no',
      // replicas in sync at once (no 5 s wait for more replicas), and a replica may
      // take over whatever the age of its data: the failover tests need it to
      '--repl-diskless-sync-delay', '0', '--cluster-replica-validity-factor', '0',
      '--protected-mode', 'no', '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    node.child = child;
    node.exited = false;
    node.stderr = '';
    child.stderr.on('data', (d) => { node.stderr += d; });
    child.on('exit', () => { node.exited = true; });
  };
  const waitPing = async (node, deadline) => {
    while ((await cli(node.port, 'PING').catch(() => '')) !== 'PONG') {
      if (node.exited) throw new Error(`redis-server on port ${node.port} exited at start: ${node.stderr}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${node.port} did not start`);
      await sleep(50);
    }
  };
  const waitOk = async (deadline) => {
    for (const node of nodes.filter((x) => !x.exited)) {
      while (!(await cli(node.port, 'CLUSTER', 'INFO').catch(() => '')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`cluster_state not ok on port ${node.port}`);
        await sleep(100);
      }
    }
  };
  // Every replica has synced with its master (only then can it take over).
  const waitReplicas = async (deadline) => {
    for (const node of nodes.filter((x) => !x.exited)) {
      for (;;) {
        const info = await cli(node.port, 'INFO', 'replication').catch(() => '');
        if (!info.includes('role:slave') || info.includes('master_link_status:up')) break;
        if (Date.now() > deadline) throw new Error(`replica on port ${node.port} not in sync`);
        await sleep(100);
      }
    }
  };
  try {
    for (let i = 0; i < n; i++) {
      const node = { port: await freeClusterPort(taken) };
      spawnNode(node);
      nodes.push(node);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const node of nodes) await waitPing(node, deadline);
    await new Promise((resolve, reject) => {
      execFile('redis-cli', ['--cluster', 'create', ...nodes.map((x) => `127.0.0.1:${x.port}`),
        '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: START_TIMEOUT_MS },
      (err, stdout) => (err ? reject(new Error(`redis-cli --cluster create: ${err.message}\n${stdout}`)) : resolve()));
    });
    await waitOk(deadline);
    if (replicas) await waitReplicas(deadline);
  } catch (err) {
    await stop();
    throw err;
  }
  const ports = nodes.map((x) => x.port);
  const cluster = {
    ports,
    urls: ports.map((p) => `redis://127.0.0.1:${p}`),
    cli,
    slots: () => slotRanges(ports.find((p) => !nodes.find((x) => x.port === p).exited)),
    async portOfSlot(slot) {
      const r = (await cluster.slots()).find((x) => slot >= x.start && slot <= x.end);
      return r ? r.port : 0;
    },
    async nodeId(port) {
      return cli(port, 'CLUSTER', 'MYID');
    },
    // Moves one slot and its keys to the master on toPort, the way redis-cli
    // --cluster reshard does: IMPORTING on the target, MIGRATING on the source, MIGRATE
    // the keys in batches, then NODE on both (and the others, so nobody waits for
    // gossip). Every step is one bounded redis-cli call. `between` runs once the keys
    // have moved and before NODE: the source then answers ASK for them.
    async moveSlot(slot, toPort, between) {
      const fromPort = await cluster.portOfSlot(slot);
      if (fromPort === toPort) throw new Error(`slot ${slot} is already on port ${toPort}`);
      const fromId = await cluster.nodeId(fromPort);
      const toId = await cluster.nodeId(toPort);
      await cli(toPort, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
      await cli(fromPort, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
      for (let i = 0; i < 1000; i++) {
        const keys = (await cli(fromPort, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100')).split('\n').filter(Boolean);
        if (!keys.length) break;
        await cli(fromPort, 'MIGRATE', '127.0.0.1', String(toPort), '', '0', '5000', 'KEYS', ...keys);
      }
      if (between) await between();
      await cli(toPort, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
      await cli(fromPort, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
      for (const p of ports) {
        if (p !== toPort && p !== fromPort) await cli(p, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
      }
    },
    // kill -9 of one master (no replica takes over: its slots are down).
    async kill(port) {
      const node = nodes.find((x) => x.port === port);
      if (node.exited) return;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, STOP_TIMEOUT_MS);
        node.child.on('exit', () => { clearTimeout(t); resolve(); });
        node.child.kill('SIGKILL');
      });
    },
    // Waits until a node other than oldPort serves `slot` (a replica took over the
    // killed master's slots) and every live node says cluster_state:ok.
    async waitFailover(slot, oldPort, timeoutMs = 20000) {
      const deadline = Date.now() + timeoutMs;
      const live = ports.find((p) => p !== oldPort && !nodes.find((x) => x.port === p).exited);
      for (;;) {
        const r = (await slotRanges(live).catch(() => [])).find((x) => slot >= x.start && slot <= x.end);
        if (r && r.port !== oldPort) break;
        if (Date.now() > deadline) throw new Error(`slot ${slot} not failed over within ${timeoutMs} ms`);
        await sleep(100);
      }
      await waitOk(deadline);
      return (await slotRanges(live)).find((x) => slot >= x.start && slot <= x.end).port;
    },
    // Starts a killed master again (empty: no persistence) and waits until every node
    // says cluster_state:ok.
    async restart(port, timeoutMs = START_TIMEOUT_MS) {
      const node = nodes.find((x) => x.port === port);
      spawnNode(node);
      const deadline = Date.now() + timeoutMs;
      await waitPing(node, deadline);
      await waitOk(deadline);
    },
    stop,
  };
  return cluster;
}

module.exports = { startRedisCluster, keySlot, crc16 };
