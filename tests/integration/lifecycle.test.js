// Process and app lifecycle: start-up errors from the command line (bad scripts, a
// busy port), `moonwire check`, and the app's connect/disconnect handlers.
'use strict';

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, REPO, BIN } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { uid, expectAck } = require('./lib/helpers');

// Runs the binary to completion (bounded) and resolves with {code, stdout, stderr}.
function run(args, { timeout = 10000 } = {}) {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout, env: { ...process.env, MOONWIRE_HOME: REPO } },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

// Writes files into a fresh temp dir and returns its path.
function tempDir(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-lc-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const dirs = [];
after(async () => {
  await closeAll();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('command line', () => {
  it('check accepts a good config and names the routes', async () => {
    const dir = tempDir({ 'm.yaml': 'routes:\n  /chat: { script: "app:chat" }\n' });
    dirs.push(dir);
    const r = await run(['check', '-c', path.join(dir, 'm.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok \(1 route\)/);
  });

  it('check reports a script syntax error as file:line and exits non-zero', async () => {
    const dir = tempDir({
      'm.yaml': 'routes:\n  /x: { script: broken.lua }\n',
      'broken.lua': 'local mw = require "moonwire"\nlocal app = mw.app(\nreturn app\n',
    });
    dirs.push(dir);
    const r = await run(['check', '-c', path.join(dir, 'm.yaml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /broken\.lua:3: /);
  });

  it('serve refuses to start with a script that fails at load time', async () => {
    const dir = tempDir({
      'm.yaml': 'listen: 127.0.0.1:1\nroutes:\n  /x: { script: boom.lua }\n',
      'boom.lua': 'local x = nil\nreturn x.field\n',
    });
    dirs.push(dir);
    const r = await run(['serve', '-c', path.join(dir, 'm.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /boom\.lua:2: .*index/);
  });

  it('serve refuses a script that does not return an app', async () => {
    const dir = tempDir({
      'm.yaml': 'routes:\n  /x: { script: noapp.lua }\n',
      'noapp.lua': 'return 42\n',
    });
    dirs.push(dir);
    const r = await run(['check', '-c', path.join(dir, 'm.yaml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /noapp\.lua: the script must return an app/);
  });

  it('check reports a config error with its line', async () => {
    const dir = tempDir({ 'm.yaml': 'listen: 127.0.0.1:8080\nheartbeat:\n  intervall: 5s\n' });
    dirs.push(dir);
    const r = await run(['check', '-c', path.join(dir, 'm.yaml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /m\.yaml:3: .*intervall/);
  });

  it('serve exits 1 with "cannot listen" when the port is taken', async () => {
    const server = await startServer();
    try {
      const dir = tempDir({ 'm.yaml': `listen: 127.0.0.1:${server.port}\nroutes:\n  /chat: { script: "app:chat" }\n` });
      dirs.push(dir);
      const r = await run(['serve', '-c', path.join(dir, 'm.yaml')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot listen/);
      assert.doesNotMatch(r.stderr, /msg="listening"/);
    } finally {
      await server.stop();
    }
  });

  it('version prints the version', async () => {
    const r = await run(['version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^moonwire \d+\.\d+\.\d+/);
  });

  it('an unknown command is an error with usage', async () => {
    const r = await run(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });
});

describe('lifecycle log lines', () => {
  let server;
  after(async () => { if (server) await server.stop(); });

  it('logs each open and close at info with who closed, how, how long and what it carried', async () => {
    server = await startServer();
    const user = uid('logged');
    const c = await connect(server.url(`/chat?user=${user}`));
    const conn = c.hello.data.conn;
    const open = await server.waitForLog(new RegExp(`level=info msg="conn open" conn=${conn} `), 2000);
    assert.match(open, new RegExp(`route=/chat user=${user} remote=127\\.0\\.0\\.1 transport=ws`));
    // The address is each connection's own (taken from accept, kept until the upgrade).
    const others = await Promise.all(['127.0.0.7', '127.0.0.9'].map((ip) =>
      connect(server.url(`/chat?user=${user}`), { localAddress: ip })));
    for (const [i, ip] of ['127.0.0.7', '127.0.0.9'].entries()) {
      const line = await server.waitForLog(new RegExp(`msg="conn open" conn=${others[i].hello.data.conn} `), 2000);
      assert.match(line, new RegExp(`remote=${ip.replace(/\./g, '\\.')} transport=ws`));
    }
    await Promise.all(others.map((o) => o.close()));
    const room = uid('r');
    expectAck(await c.request('join', { room }), 1);
    await c.close(4000, 'done here');
    const closed = await server.waitForLog(new RegExp(`level=info msg="conn closed" conn=${conn} `), 5000);
    assert.match(closed, new RegExp(`user=${user} by=peer code=4000 reason="done here" duration_ms=\\d+ ` +
      'msgs_in=1 msgs_out=2 bytes_in=\\d+ bytes_out=\\d+'));
    assert.equal(Number(/bytes_in=(\d+)/.exec(closed)[1]), JSON.stringify({ type: 'join', id: 1, room }).length);
    assert.ok(Number(/bytes_out=(\d+)/.exec(closed)[1]) > 0);

    // Closed by the server: a rejected session id.
    const bad = await connect(server.url(`/chat?user=${user}&session=no%20spaces`)).catch(() => null);
    const badConn = bad ? bad.hello.data.conn : null;
    if (bad) await bad.closed;
    const line = await server.waitForLog(/msg="conn closed" .*by=server code=1008 reason="bad session id"/, 5000);
    if (badConn) assert.match(line, new RegExp(`conn=${badConn} `));
  });
});

describe('connect and disconnect handlers', () => {
  const script = `
local mw = require "moonwire"
local app = mw.app()
function app.connect(conn)
  if conn.user == "rejected" then return false, "not welcome" end
  if conn.user == "crasher" then error("connect blew up") end
  conn:set("joined_at", 1234)
end
function app.disconnect(conn)
  mw.log.info("bye", { user = conn.user, joined_at = conn:get("joined_at"),
                       rooms = table.concat(conn:rooms(), ",") })
end
app:on("enter", function(conn, msg) conn:join(msg.room) return true end)
return app
`;
  let server;
  after(async () => { if (server) await server.stop(); });

  it('connect returning false closes with 4001 and its reason', async () => {
    server = server || await startServer({ routes: { '/app': { script: 'app.lua' } }, scripts: { 'app.lua': script } });
    const WebSocket = require('ws');
    const ws = new WebSocket(server.url('/app?user=rejected'));
    const [code, reason] = await new Promise((resolve) => ws.on('close', (c, r) => resolve([c, String(r)])));
    assert.equal(code, 4001);
    assert.equal(reason, 'not welcome');
  });

  it('an error in connect closes with 1011 and logs the traceback', async () => {
    server = server || await startServer({ routes: { '/app': { script: 'app.lua' } }, scripts: { 'app.lua': script } });
    const WebSocket = require('ws');
    const ws = new WebSocket(server.url('/app?user=crasher'));
    const code = await new Promise((resolve) => ws.on('close', (c) => resolve(c)));
    assert.equal(code, 1011);
    const line = await server.waitForLog(/lua error.*connect blew up/, 2000);
    assert.match(line, /app\.lua:6/);
  });

  it('disconnect still sees the connection\'s attributes and rooms', async () => {
    server = server || await startServer({ routes: { '/app': { script: 'app.lua' } }, scripts: { 'app.lua': script } });
    const user = uid('leaver');
    const c = await connect(server.url(`/app?user=${user}`));
    expectAck(await c.request('enter', { room: 'hall' }), 1);
    await c.close();
    const line = await server.waitForLog(new RegExp(`msg="bye".*user="${user}"`), 3000);
    assert.match(line, /joined_at="1234"/);
    assert.match(line, /rooms="hall"/);
  });
});
