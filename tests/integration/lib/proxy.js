// A TCP proxy on a free 127.0.0.1 port in front of a moonwire, for the browser tests:
// the page loads from it and connects through it, and the test plays the network.
//   mode 'pass'      forward everything
//   mode 'offline'   cut every connection; refuse new ones (accepted, then reset)
//   mode 'blackhole' connections stay up but nothing gets through either way (a dead
//                    link: only the client's own ping can tell)
//   mode 'deaf'      the client's frames reach the server, nothing comes back (acks
//                    lost on the way)
//   mode 'pause'     what clients send waits in the proxy until the mode changes (two
//                    clients' messages then reach the server together: a real race)
//   blockWebSocket   false | 'refuse' (WebSocket upgrades are cut at once, like a proxy
//                    that forbids them) | 'hold' (swallowed without an answer; let
//                    through when the block is lifted). Plain HTTP still passes.
// Every accepted connection is logged in `log` ({at, ws, outcome}): a count of the
// client's connection attempts, seen from the network.
'use strict';

const net = require('node:net');

const HEAD_MAX = 16384;

async function startProxy(targetPort) {
  const pairs = new Set(); // {client, upstream, ws, held}
  const log = [];
  const proxy = {
    port: 0,
    target: targetPort,
    mode: 'pass',
    blockWebSocket: false,
    log,
    url: (p = '/chat') => `ws://127.0.0.1:${proxy.port}${p}`,
    httpUrl: (p = '/') => `http://127.0.0.1:${proxy.port}${p}`,
    setMode(mode) {
      proxy.mode = mode;
      if (mode === 'offline') for (const p of pairs) destroy(p);
      if (mode === 'pass') for (const p of pairs) if (p.blackholed || p.deaf) destroy(p);
      if (mode !== 'pause') {
        for (const p of pairs) {
          if (p.paused && p.upstream) p.upstream.write(Buffer.concat(p.paused));
          p.paused = null;
        }
      }
      if (mode === 'blackhole') for (const p of pairs) p.blackholed = true;
      if (mode === 'deaf') for (const p of pairs) p.deaf = true;
    },
    // New connections go to this port from now on (a restarted server).
    setTarget(port) { proxy.target = port; },
    setBlockWebSocket(how) {
      proxy.blockWebSocket = how;
      if (!how) for (const p of pairs) if (p.held) forward(p);
    },
    // Cuts every connection now (both ends see the close); new ones are accepted.
    cut() { for (const p of pairs) destroy(p); },
    // WebSocket upgrades seen since `since` (ms), with what happened to them.
    upgrades(since = 0) { return log.filter((e) => e.ws && e.at >= since); },
    connections: () => pairs.size,
    close() {
      for (const p of pairs) destroy(p);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };

  function destroy(p) {
    pairs.delete(p);
    p.client.destroy();
    if (p.upstream) p.upstream.destroy();
  }

  // Connects the held connection upstream and sends what the client said so far.
  function forward(p) {
    p.held = false;
    const up = net.connect({ host: '127.0.0.1', port: proxy.target });
    p.upstream = up;
    up.on('connect', () => { p.entry.outcome = 'forwarded'; });
    up.on('error', () => { p.entry.outcome = p.entry.outcome === 'forwarded' ? 'forwarded' : 'upstream refused'; destroy(p); });
    up.on('close', () => destroy(p));
    up.on('data', (d) => { if (!p.blackholed && !p.deaf) p.client.write(d); });
    up.write(p.head);
  }

  const server = net.createServer((client) => {
    const entry = { at: Date.now(), ws: false, outcome: 'open' };
    log.push(entry);
    const p = { client, upstream: null, head: Buffer.alloc(0), held: true, blackholed: false, entry, decided: false };
    pairs.add(p);
    client.on('error', () => {});
    client.on('close', () => destroy(p));
    if (proxy.mode === 'offline') {
      entry.outcome = 'refused (offline)';
      client.resetAndDestroy ? client.resetAndDestroy() : client.destroy();
      pairs.delete(p);
      return;
    }
    if (proxy.mode === 'blackhole') p.blackholed = true;
    if (proxy.mode === 'deaf') p.deaf = true;
    client.on('data', (d) => {
      if (p.blackholed) return;
      if (!p.decided) {
        p.head = Buffer.concat([p.head, d]);
        const text = p.head.toString('latin1');
        if (!text.includes('\r\n\r\n') && p.head.length < HEAD_MAX) return;
        p.decided = true;
        entry.ws = /^upgrade:\s*websocket/im.test(text);
        if (entry.ws && proxy.blockWebSocket === 'refuse') {
          entry.outcome = 'refused (websocket blocked)';
          return destroy(p);
        }
        if (entry.ws && proxy.blockWebSocket === 'hold') {
          entry.outcome = 'held (websocket blocked)';
          return;
        }
        return forward(p);
      }
      if (p.held) p.head = Buffer.concat([p.head, d]);
      else if (proxy.mode === 'pause') (p.paused = p.paused || []).push(d);
      else p.upstream.write(d);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  proxy.port = server.address().port;
  return proxy;
}

module.exports = { startProxy };
