// The Lua watchdog (limits.handler_timeout, docs/security.md): Lua code that holds the
// loop too long is stopped, interpreted or JIT-compiled, in a handler, a timer, a
// connect handler or a reload's top level; the client gets `internal`, the log gets
// file:line, and the server serves everyone else again right after.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, BIN, REPO } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck, expectError, assertServes, assertPingPong, waitFor } = require('./lib/helpers');

const TIMEOUT_MS = 200;
const WAIT_MS = 10000; // an answer comes after TIMEOUT_MS plus at most a watchdog tick

const SPIN = `
local mw = require "moonwire"
local app = mw.app()
-- Hot at once: LuaJIT compiles the loop after a few dozen iterations.
app:on("spin", function() local i = 0 while true do i = i + 1 end end)
app:on("spin_empty", function() while true do end end)
app:on("spin_interpreted", function()
  local function spin() local i = 0 while true do i = i + 1 end end
  jit.off(spin) -- this function stays in the interpreter
  spin()
end)
app:on("spin_in_pcall", function()
  while true do pcall(function() while true do end end) end
end)
app:on("spin_after_wait", function() mw.sleep(0.01) while true do end end)
app:on("recurse", function() local function r(n) return 1 + r(n + 1) end return r(1) end)
app:on("recurse_tail", function() local function r(n) return r(n + 1) end return r(1) end)
app:on("recurse_pcall", function()
  local function r() local ok, e = pcall(r) error(e, 0) end
  r()
end)
app:on("timer_spin", function() mw.after(0, function() while true do end end) return true end)
app:on("traces", function()
  local n = 0
  for i = 1, 10000 do if require("jit.util").traceinfo(i) then n = n + 1 else break end end
  return n
end)
app:on("ok", function() return "fine" end)
return app
`;

const CONNECT_SPIN = `
local mw = require "moonwire"
local app = mw.app()
function app.connect() while true do end end
return app
`;

describe('watchdog', () => {
  let server;

  before(async () => {
    server = await startServer({
      scripts: { 'spin.lua': SPIN, 'connect_spin.lua': CONNECT_SPIN, 'reload.lua': SPIN },
      routes: {
        '/spin': { script: 'spin.lua' },
        '/connect-spin': { script: 'connect_spin.lua' },
        '/reload': { script: 'reload.lua' },
      },
      config: { limits: { handler_timeout: `${TIMEOUT_MS}ms` } },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  for (const [type, what] of [['spin', 'a JIT-compiled loop'], ['spin_empty', 'an empty JIT-compiled loop'],
    ['spin_interpreted', 'an interpreted loop'], ['spin_in_pcall', 'a loop that catches the error with pcall'],
    ['spin_after_wait', 'a loop after the handler waited'], ['recurse_tail', 'endless tail recursion']]) {
    it(`stops ${what}: internal with the id, file:line in the log, the server serves on`, async () => {
      const bystander = await connect(server.url(`/chat?user=${uid('by')}`));
      const c = await connect(server.url(`/spin?user=${uid('spin')}`));
      expectError(await c.request(type, { ms: WAIT_MS }), 'internal', 1, type);
      const line = await server.waitForLog(new RegExp(`handler stopped by the watchdog" route=/spin conn=${c.hello.data.conn} ` +
        'at=[^ ]*spin\\.lua:\\d+'));
      assert.match(line, /ms=\d+/);
      await assertPingPong(c, `${type}: the same connection`);
      await assertPingPong(bystander, `${type}: another client`);
      const ok = await c.request('ok');
      assert.equal(ok.type, 'ack', JSON.stringify(ok));
      assert.equal(ok.data, 'fine');
      await c.close();
      await bystander.close();
    });
  }

  it('proves the loop was JIT-compiled: the state has traces', async () => {
    const c = await connect(server.url(`/spin?user=${uid('t')}`));
    const n = expectAck(await c.request('traces'), 1);
    assert.ok(n > 0, `traces compiled: ${n}`);
    await c.close();
  });

  it('answers a resend of a stopped id with the same error, without running it again', async () => {
    const c = await connect(server.url(`/spin?user=${uid('dup')}&session=${uid('s')}`));
    expectError(await c.request('spin', { id: 'once', ms: WAIT_MS }), 'internal', 'once');
    const before = (server.logs().match(/handler stopped by the watchdog/g) || []).length;
    expectError(await c.request('spin', { id: 'once', ms: 2000 }), 'internal', 'once');
    const later = (server.logs().match(/handler stopped by the watchdog/g) || []).length;
    assert.equal(later, before, 'the handler did not run a second time');
    await c.close();
  });

  it('answers a stopped message without an id with an error without id', async () => {
    const c = await connect(server.url(`/spin?user=${uid('noid')}`));
    c.send({ type: 'spin' });
    expectError(await c.next('error', WAIT_MS), 'internal', undefined);
    await assertPingPong(c);
    await c.close();
  });

  it('turns endless recursion into internal (stack overflow), also through pcall', async () => {
    const c = await connect(server.url(`/spin?user=${uid('rec')}`));
    expectError(await c.request('recurse', { ms: WAIT_MS }), 'internal', 1);
    expectError(await c.request('recurse_pcall', { ms: WAIT_MS }), 'internal', 2);
    await server.waitForLog(/lua error.*stack overflow/);
    await assertPingPong(c);
    await c.close();
  });

  it('stops a timer that loops, and logs it', async () => {
    const c = await connect(server.url(`/spin?user=${uid('timer')}`));
    expectAck(await c.request('timer_spin'), 1);
    await server.waitForLog(/handler stopped by the watchdog" route=\/spin conn=- at=[^ ]*spin\.lua:\d+/, WAIT_MS);
    await assertPingPong(c);
    await c.close();
  });

  it('closes a connection whose connect handler loops with 1011', async () => {
    const c = await connect(server.url(`/connect-spin?user=${uid('cs')}`), { timeout: WAIT_MS });
    assert.equal((await c.closed).code, 1011);
    await server.waitForLog(/handler stopped by the watchdog" route=\/connect-spin/);
    await assertServes(server);
  });

  it("stops a reload whose top level loops: the old code keeps serving", async () => {
    const c = await connect(server.url(`/reload?user=${uid('rl')}`));
    fs.writeFileSync(path.join(server.dir, 'reload.lua'), `local x = 0\nwhile true do x = x + 1 end\n`);
    server.process.kill('SIGHUP');
    await server.waitForLog(/reload failed.*reload\.lua:2: stopped: ran longer than limits\.handler_timeout/, WAIT_MS);
    expectAck(await c.request('ok'), 1);
    await c.close();
    await assertServes(server);
  });

  it('refuses at check time a script whose top level never returns', () => {
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'moonwire-wd-'));
    try {
      fs.writeFileSync(path.join(dir, 'loop.lua'), 'local mw = require "moonwire"\nwhile true do end\n');
      fs.writeFileSync(path.join(dir, 'moonwire.yaml'), JSON.stringify({
        limits: { handler_timeout: `${TIMEOUT_MS}ms` }, routes: { '/x': { script: 'loop.lua' } },
      }));
      const r = spawnSync(BIN, ['check', '-c', path.join(dir, 'moonwire.yaml')],
        { env: { ...process.env, MOONWIRE_HOME: REPO }, timeout: 20000, encoding: 'utf8' });
      assert.notEqual(r.status, 0, `check must fail: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, /loop\.lua:2: stopped: ran longer than limits\.handler_timeout/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('still serves after all of it', async () => {
    await waitFor(() => server.alive(), 1000, 'the server is alive');
    await assertServes(server);
  });
});
