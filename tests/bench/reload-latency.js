#!/usr/bin/env node
// Hot reload latency: time from writing a route's script to a client getting an
// answer from the new code. Starts a real server on a free loopback port with
// dev.hot_reload, edits the script ROUNDS times (bounded), prints min/p50/p90/max.
// Usage: node tests/bench/reload-latency.js [ROUNDS=30]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { startServer } = require('../integration/lib/server');
const { connect, closeAll } = require('../integration/lib/client');

const ROUNDS = Math.min(Number(process.argv[2]) || 30, 200);
const script = (v) => `local mw = require "moonwire"
local app = mw.app()
app:on("version", function(conn, msg) return ${v} end)
return app
`;

(async () => {
  const server = await startServer({
    config: { dev: { hot_reload: true }, limits: { rate: 100000, burst: 100000 } },
    routes: { '/app': { script: 'app.lua' } },
    scripts: { 'app.lua': script(0) },
  });
  const file = path.join(server.dir, 'app.lua');
  const c = await connect(server.url('/app?user=bench'));
  const samples = [];
  try {
    for (let v = 1; v <= ROUNDS; v++) {
      const t0 = process.hrtime.bigint();
      fs.writeFileSync(file, script(v));
      for (;;) { // poll with requests until the new code answers (bounded)
        const r = await c.request('version', { ms: 2000 });
        if (r.data === v) break;
        if (Number(process.hrtime.bigint() - t0) / 1e6 > 5000) throw new Error('no reload in 5 s');
        await new Promise((res) => setTimeout(res, 2)); // 2 ms resolution
      }
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await new Promise((r) => setTimeout(r, 100)); // let the watcher settle between rounds
    }
  } catch (e) {
    console.error(server.logs().split('\n').slice(0, 12).join('\n'));
    throw e;
  } finally {
    await closeAll();
    await server.stop();
  }
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(1);
  console.log(`reload latency over ${samples.length} edits (ms): min ${samples[0].toFixed(1)} ` +
    `p50 ${q(0.5)} p90 ${q(0.9)} max ${samples[samples.length - 1].toFixed(1)} ` +
    '(includes the 50 ms debounce)');
})().catch((e) => { console.error(e); process.exit(1); });
