// Message latency of moonwire.js over its HTTP fallback (SSE + POST) against
// WebSocket, in a real headless Chromium against a real moonwire:
//
//   node tests/bench/fallback-latency.js [N]      (N round trips per transport, 300)
//
// For each transport a page joins a room and, N times in a row, sends a chat message
// with mw.request and times it until the message's own event comes back down (up
// through the transport, through the chat app, down again), and another client's
// message (sent from Node over WebSocket) from its server time stamp until the page
// has it (down only). Prints
// p50/p99 in ms. A measurement, not a test: nothing is asserted.
'use strict';

const { startServer } = require('../integration/lib/server');
const { launch } = require('../integration/lib/browser');
const { connect, closeAll } = require('../integration/lib/client');

const N = Number(process.argv[2]) || 300;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const server = await startServer({
    config: { static: 'www', limits: { rate: 100000, burst: 100000 } },
    scripts: { 'www/t.html': '<!doctype html><meta charset="utf-8"><script src="/moonwire.js"></script>' },
  });
  const browser = await launch();
  const rows = [];
  try {
    for (const transport of ['websocket', 'http']) {
      const page = await browser.newPage();
      await page.goto(server.httpUrl('/t.html'));
      const room = `lat-${transport}-${Date.now()}`;
      const other = await connect(server.url('/chat?user=other'));
      await other.request('join', { room });
      const up = await page.evaluate(async ({ url, room, transport, n }) => {
        window.mw = new Moonwire(url, { transports: [transport] });
        await mw.join(room);
        window.arrived = new Map();
        mw.on('chat:message', (ev) => arrived.set(ev.data.k, performance.now()));
        const out = [];
        for (let i = 0; i < n; i++) {
          const k = 'u' + i;
          const t0 = performance.now();
          const got = new Promise((resolve) => { const check = () => (arrived.has(k) ? resolve() : setTimeout(check, 0)); check(); });
          await mw.request('chat:message', { k }, { room });
          await got;
          out.push(arrived.get(k) - t0);
        }
        return out;
      }, { url: server.url(`/chat?user=me-${transport}`), room, transport, n: N });
      // Down only: Node publishes, the page subtracts the event's server time stamp
      // (ts, ms, the same machine's clock) from its own clock on arrival; one message
      // every 30 ms, like people talking. (Back-to-back bursts measure the page's
      // main thread and the machine's load more than the transport: left out.)
      await page.evaluate(() => {
        window.downs = [];
        mw.on('chat:message', (ev) => { if (ev.data.d) downs.push(Date.now() - ev.ts); });
      });
      const nd = Math.min(N, 200);
      for (let i = 0; i < nd; i++) {
        await other.request('chat:message', { room, data: { d: i + 1 } });
        await new Promise((r) => setTimeout(r, 30));
      }
      await page.waitForFunction((n) => window.downs.length === n, nd, { timeout: 10000 });
      const down = await page.evaluate(() => downs);
      const transportUsed = await page.evaluate(() => mw.transport);
      rows.push({ transport: transportUsed, up, down });
      await page.evaluate(() => mw.close());
      await page.close();
      await other.close();
    }
  } finally {
    await closeAll();
    await browser.close();
    await server.stop();
  }
  const f = (xs) => `${pct(xs, 50).toFixed(1).padStart(6)} ${pct(xs, 99).toFixed(1).padStart(6)}`;
  console.log(`moonwire.js message latency in Chromium, ms (p50 p99)`);
  console.log('transport   round trip       down');
  for (const r of rows) console.log(`${r.transport.padEnd(10)}  ${f(r.up)}    ${f(r.down)}`);
  console.log(`round trip: ${N} requests from the page until their own event is back (performance.now);`);
  console.log('down: from the event\'s server time stamp (whole ms) to the page\'s clock, sent from Node');
}

main().catch((err) => { console.error(err); process.exit(1); });
