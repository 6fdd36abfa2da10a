// examples/nginx/moonwire.conf with Debian's real nginx, run by this user on a free
// loopback port with its files in a temp dir, in front of two moonwire nodes sharing
// a real Redis: chat and notify through the proxy across nodes (no sticky sessions),
// the heartbeat keeping an idle WebSocket open past nginx's read timeout, and a node
// stopped behind the proxy while its clients reconnect through it to the other node.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, freePort, httpStatus, REPO } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck, sleep, waitFor } = require('./lib/helpers');
const { start } = require('./lib/child');

const EXAMPLE = fs.readFileSync(path.join(REPO, 'examples', 'nginx', 'moonwire.conf'), 'utf8');
const KEY = 'nginx-test-key';

// The example with this test's nodes and port. `timeouts` scales nginx's WebSocket
// timeouts down (with the nodes' heartbeat) so that the idle test takes seconds.
function siteConfig(nodePorts, port, timeouts) {
  let conf = EXAMPLE.replace(/^(\s*)server 127\.0\.0\.1:8081 (.*)\n\s*server 127\.0\.0\.1:8082 (.*)\n/m,
    (all, indent, o1, o2) => `${indent}server 127.0.0.1:${nodePorts[0]} ${o1}\n${indent}server 127.0.0.1:${nodePorts[1]} ${o2}\n`);
  assert.notEqual(conf, EXAMPLE, 'the example lists two upstream servers on 8081 and 8082');
  conf = conf.replace(/^(\s*)listen 80;/m, `$1listen 127.0.0.1:${port};`);
  assert.match(conf, new RegExp(`listen 127\\.0\\.0\\.1:${port};`));
  if (timeouts) {
    conf = conf.replace(/proxy_read_timeout \S+;/, `proxy_read_timeout ${timeouts};`)
      .replace(/proxy_send_timeout \S+;/, `proxy_send_timeout ${timeouts};`);
  }
  return conf;
}

// Starts nginx in the foreground with everything under `dir`; resolves once it answers.
async function startNginx(site) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-nginx-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'moonwire.conf'), site(port));
  // As root, nginx would switch its worker to `nobody`, which cannot enter this
  // private temp dir: keep it as the user running the test.
  const user = process.getuid() === 0 ? 'user root root;\n' : '';
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `${user}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/moonwire.conf;
}
`);
  const p = start('nginx', ['-p', dir, '-e', 'stderr', '-c', path.join(dir, 'nginx.conf')]);
  await waitFor(async () => {
    if (p.exit) throw new Error(`nginx exited at start (${JSON.stringify(p.exit)}):\n${p.out}`);
    return (await httpStatus(`http://127.0.0.1:${port}/healthz`, 500)) === 200;
  }, 10000, 'nginx to answer');
  return {
    port,
    logs: () => p.out,
    ws: (u) => `ws://127.0.0.1:${port}${u}`,
    http: (u) => `http://127.0.0.1:${port}${u}`,
    async stop() {
      await p.stop('SIGQUIT');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Connects through nginx until one client sits on each node (round robin makes that
// the first two; the bound keeps a surprise from looping).
async function onEachNode(proxy, pathOf) {
  const byNode = new Map();
  for (let i = 0; i < 8 && byNode.size < 2; i++) {
    const c = await connect(proxy.ws(pathOf(i)));
    if (byNode.has(c.hello.data.node)) await c.close();
    else byNode.set(c.hello.data.node, c);
  }
  assert.equal(byNode.size, 2, 'nginx spreads connections over both nodes');
  return [...byNode.values()];
}

describe('examples/nginx in front of two nodes', () => {
  let redis;
  let nodes = [];
  let proxy;

  function nodeConfig(name, heartbeat) {
    return {
      config: {
        node_id: name,
        redis: { url: redis.url },
        api: { keys: [KEY] },
        heartbeat,
      },
      routes: { '/notify': { script: 'app:notify' } },
    };
  }

  before(async () => {
    redis = await startRedis();
    const hb = { interval: '25s', timeout: '10s' };
    nodes = await Promise.all([startServer(nodeConfig('node-1', hb)), startServer(nodeConfig('node-2', hb))]);
    proxy = await startNginx((port) => siteConfig(nodes.map((n) => n.port), port));
  });

  after(async () => {
    await closeAll();
    if (proxy) await proxy.stop();
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
    if (redis) await redis.stop();
  });

  it('keeps its WebSocket timeouts above the heartbeat', () => {
    // The nodes drop a silent peer after interval + timeout (25s + 10s by default) and
    // ping after interval: nginx must not cut a connection before that.
    for (const k of ['proxy_read_timeout', 'proxy_send_timeout']) {
      const m = new RegExp(`${k} (\\d+)s;`).exec(EXAMPLE);
      assert.ok(m && Number(m[1]) > 35, `${k} ${m && m[1]}s must stay above 35 s`);
    }
  });

  it('carries chat between clients on different nodes, without sticky sessions', async () => {
    const room = uid('via-nginx');
    const [ana, bob] = await onEachNode(proxy, (i) => `/chat?user=u${i}`);
    expectAck(await ana.request('join', { room }), 1, 'ana joins');
    expectAck(await bob.request('join', { room }), 1, 'bob joins');
    assert.equal((await ana.next({ type: 'presence:join', room }, 3000)).data.user, bob.user);
    const sent = await ana.request('chat:message', { room, data: { text: 'across nodes' } });
    expectAck(sent, 2, 'chat');
    const ev = await bob.next({ type: 'chat:message', room }, 3000);
    assert.deepEqual(ev.data, { text: 'across nodes' });
    assert.equal(ev.from, ana.user);
    await Promise.all([ana.close(), bob.close()]);
  });

  it('delivers notifications posted through nginx to the user on either node', async () => {
    const user = uid('zoe');
    const devices = await onEachNode(proxy, () => `/notify?user=${user}`);
    for (const d of devices) await d.next('notify:backlog');
    await waitFor(async () => redis.cli('PUBSUB', 'NUMSUB', `mw:user:${user}`).endsWith('2'), 3000,
      'both nodes subscribed to the user');
    // Two posts: round robin sends them to different nodes; each reaches both devices.
    for (const n of [1, 2]) {
      const res = await request('POST', proxy.http('/api/notify'), {
        headers: { authorization: `Bearer ${KEY}` }, body: { user, data: { n } },
      });
      assert.equal(res.status, 200, res.text);
      for (const d of devices) assert.equal((await d.next('notify', 3000)).data.id, res.json.id);
    }
    const denied = await request('POST', proxy.http('/api/notify'), { body: { user, data: {} } });
    assert.equal(denied.status, 401, 'nginx passes the API key check through');
    await Promise.all(devices.map((d) => d.close()));
  });

  it('reconnects the clients of a stopped node through nginx to the other node', async () => {
    const room = uid('failover');
    const [a, b] = await onEachNode(proxy, (i) => `/chat?user=f${i}`);
    for (const c of [a, b]) expectAck(await c.request('join', { room }), 1, 'join');
    expectAck(await a.request('chat:message', { room, data: { n: 1 } }), 2, 'before the stop');
    const first = await b.next({ type: 'chat:message', room }, 3000);
    const epoch = (await b.request('sync', { room, data: { since: 0 } })).data.epoch;

    // Stop the node `a` is on, behind the proxy.
    const victim = nodes.find((n) => n.config.node_id === a.hello.data.node);
    const survivor = nodes.find((n) => n !== victim);
    await victim.stop();
    const closed = await a.closed;
    assert.equal(closed.code, 1001, 'the stopping node closes with 1001 through nginx');
    const hint = a.messages.find((m) => m.type === 'reconnect');
    assert.ok(hint && hint.data.after_ms > 0, 'the reconnect hint passes through nginx');

    // Meanwhile the room goes on on the surviving node.
    expectAck(await b.request('chat:message', { room, data: { n: 2 } }, 3000), 3, 'during the outage');

    // Every new connection goes to the survivor: nginx skips the stopped node.
    for (let i = 0; i < 4; i++) {
      const c = await connect(proxy.ws(`/chat?user=${a.user}`));
      assert.equal(c.hello.data.node, survivor.config.node_id, `reconnect ${i} lands on the survivor`);
      if (i < 3) await c.close();
      else {
        expectAck(await c.request('join', { room }), 1, 'rejoin');
        const s = expectAck(await c.request('sync', { room, data: { since: first.seq, epoch } }), 2, 'sync');
        assert.equal(s.reset, false);
        assert.deepEqual(s.messages.map((m) => m.data), [{ n: 2 }], 'what was missed, once');
      }
    }
    await b.close();
  });

  it('keeps an idle WebSocket open past proxy_read_timeout: the heartbeat is traffic', async () => {
    // The example's ratio, scaled down: timeouts of 3 s, a heartbeat of 1 s + 1 s.
    const hb = { interval: '1s', timeout: '1s' };
    const pair = await Promise.all([startServer(nodeConfig('node-h1', hb)), startServer(nodeConfig('node-h2', hb))]);
    const fast = await startNginx((port) => siteConfig(pair.map((n) => n.port), port, '3s'));
    try {
      const c = await connect(fast.ws('/chat?user=idle'));
      await sleep(5000); // > 3 s without a message either way
      assert.ok(c.isOpen, `still open after 5 s idle (closed: ${JSON.stringify(c.closeInfo)})`);
      assert.ok(c.pings >= 2, `pings went through nginx (${c.pings})`);
      expectAck(await c.request('join', { room: uid('idle') }), 1, 'still serves');
      await c.close();
    } finally {
      await fast.stop();
      await Promise.all(pair.map((n) => n.stop()));
    }
  });
});
