// Time per join with room names that all collide under FNV-1a (the unkeyed hash the
// maps used before SipHash): docs/security.md. Starts a moonwire, joins ROOMS such
// rooms from CONNS connections (WINDOW joins in flight each) and reports wall time and
// server CPU time per join, overall and for the last tenth (the map at its fullest).
//
//   node tests/bench/collide.js [--bin build/moonwire] [--rooms 100000] [--conns 10]
//                               [--window 64] [--plain] [--old]
// --plain: random names; --old: a binary without limits.max_rooms (no room limit);
// --home DIR: its MOONWIRE_HOME (lua/ and apps/ of the same tree).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  return typeof def === 'boolean' ? true : process.argv[i + 1];
}
if (arg('bin', '')) process.env.MOONWIRE_BIN = path.resolve(arg('bin', '')); // before server.js reads it

const { startServer } = require('../integration/lib/server');
const { connect, closeAll } = require('../integration/lib/client');
const { collidingNames } = require('../integration/lib/collide');

const ROOMS = Number(arg('rooms', 100000));
const CONNS = Number(arg('conns', 10));
const WINDOW = Number(arg('window', 64));
const PLAIN = arg('plain', false);
const OLD = arg('old', false);
const HOME = arg('home', '');

const APP = `
local mw = require "moonwire"
local app = mw.app()
app:on("join", function(conn, msg) conn:join(msg.room) return true end)
return app
`;

function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 1000 / 100; // utime + stime, USER_HZ = 100
}

async function main() {
  const names = PLAIN ? Array.from({ length: ROOMS }, (_, i) => `room-${i}-${Math.random()}`)
    : collidingNames(ROOMS).names;
  const server = await startServer({
    scripts: { 'join.lua': APP },
    env: HOME ? { MOONWIRE_HOME: path.resolve(HOME) } : undefined,
    routes: { '/j': { script: 'join.lua', presence: { events: false } } },
    config: { limits: OLD ? { rate: 1e9, burst: 1e9 } : { rate: 1e9, burst: 1e9, max_rooms: ROOMS } },
  });
  const pid = server.process.pid;
  try {
    const clients = [];
    for (let i = 0; i < CONNS; i++) clients.push(await connect(server.url(`/j?user=c${i}`)));
    const marks = []; // [joins done, wall ms, cpu ms]
    let done = 0;
    const t0 = Date.now();
    const cpu0 = cpuMs(pid);
    const mark = () => marks.push([done, Date.now() - t0, cpuMs(pid) - cpu0]);
    const tick = setInterval(mark, 200);
    await Promise.all(clients.map(async (c, ci) => {
      const mine = names.filter((_, k) => k % CONNS === ci);
      let next = 0;
      const worker = async () => {
        while (next < mine.length) {
          const room = mine[next++];
          const r = await c.request('join', { room, ms: 600000 });
          if (r.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(r)}`);
          c.drain();
          c.entries.length = 0;
          done++;
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, worker));
    }));
    clearInterval(tick);
    mark();
    const [, wall, cpu] = marks[marks.length - 1];
    const tenth = marks.find((m) => m[0] >= ROOMS * 0.9) || marks[marks.length - 1];
    const lastN = ROOMS - tenth[0];
    console.log(`result names=${PLAIN ? 'random' : 'fnv1a-colliding'} rooms=${ROOMS} conns=${CONNS} ` +
      `wall_s=${(wall / 1000).toFixed(2)} us_per_join=${(wall * 1000 / ROOMS).toFixed(1)} ` +
      `server_cpu_us_per_join=${(cpu * 1000 / ROOMS).toFixed(1)} ` +
      `last_tenth_us_per_join=${lastN ? ((wall - tenth[1]) * 1000 / lastN).toFixed(1) : 'n/a'} ` +
      `last_tenth_server_cpu_us_per_join=${lastN ? ((cpu - tenth[2]) * 1000 / lastN).toFixed(1) : 'n/a'}`);
  } finally {
    await closeAll();
    await server.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
