// `cmake --install` into a temporary prefix: the installed binary finds its Lua library,
// bundled apps and web files there (not in the source tree), also after the prefix is
// moved, and `moonwire` without a config serves the embedded default from them.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, httpStatus, BIN, REPO } = require('./lib/server');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { expectAck, waitFor } = require('./lib/helpers');
const { start } = require('./lib/child');

// The environment a user has: no MOONWIRE_HOME.
function userEnv() {
  const env = { ...process.env };
  delete env.MOONWIRE_HOME;
  return env;
}

function run(file, args, { timeout = 20000, cwd } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout, env: userEnv(), cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

// `moonwire` with no config file, on a free port; resolves once /healthz answers.
async function serveEmbedded(bin) {
  const port = await freePort();
  const p = start(bin, ['--listen', `127.0.0.1:${port}`], { env: userEnv() });
  await waitFor(async () => {
    if (p.exit) throw new Error(`moonwire exited at start (${JSON.stringify(p.exit)}):\n${p.out}`);
    return (await httpStatus(`http://127.0.0.1:${port}/healthz`, 500)) === 200;
  }, 10000, 'the installed moonwire to answer /healthz');
  p.port = port;
  return p;
}

describe('cmake --install into a temporary prefix', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-install-'));
  const prefix = path.join(tmp, 'prefix');
  const share = path.join(prefix, 'share', 'moonwire');
  const bin = path.join(prefix, 'bin', 'moonwire');

  before(async () => {
    const r = await run('cmake', ['--install', path.dirname(BIN), '--prefix', prefix], { timeout: 60000 });
    assert.equal(r.code, 0, `cmake --install failed:\n${r.stdout}\n${r.stderr}`);
  });
  after(async () => {
    await closeAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('puts the binary, Lua library, apps, web files and docs in the standard places', () => {
    for (const f of [
      'bin/moonwire',
      'share/moonwire/lua/moonwire/init.lua',
      'share/moonwire/lua/moonwire/router.lua',
      'share/moonwire/apps/chat/main.lua',
      'share/moonwire/apps/notify/main.lua',
      'share/moonwire/apps/echo/main.lua',
      'share/moonwire/examples/web/index.html',
      'share/moonwire/examples/web/moonwire.js',
      'share/moonwire/examples/nginx/moonwire.conf',
      'share/moonwire/examples/systemd/moonwire.service',
      'share/doc/moonwire/README.md',
      'share/doc/moonwire/docs/operations.md',
    ]) {
      assert.ok(fs.existsSync(path.join(prefix, f)), `${f} is installed`);
    }
    fs.accessSync(bin, fs.constants.X_OK);
  });

  it('the installed binary uses the installed home, and `check` without -c checks the embedded default', async () => {
    const help = await run(bin, ['help']);
    assert.equal(help.code, 0, help.stderr);
    assert.ok(help.stdout.includes(`(now: ${fs.realpathSync(share)})`), help.stdout);
    const check = await run(bin, ['check'], { cwd: tmp });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^embedded default: ok \(\d+ routes\)$/m);
  });

  it('`moonwire` without a config serves the embedded default from the installed files', async () => {
    // A file only the installed docroot has: served means the installed home is used.
    const marker = `installed-${process.pid}`;
    fs.writeFileSync(path.join(share, 'examples', 'web', 'marker.txt'), marker);
    const srv = await serveEmbedded(bin);
    try {
      const base = `http://127.0.0.1:${srv.port}`;
      assert.equal((await request('GET', `${base}/marker.txt`)).text, marker);
      const js = await request('GET', `${base}/moonwire.js`);
      assert.equal(js.status, 200);
      assert.equal(js.text, fs.readFileSync(path.join(share, 'examples', 'web', 'moonwire.js'), 'utf8'));
      assert.match((await request('GET', `${base}/`)).text, /<html/i);

      const ana = await connect(`ws://127.0.0.1:${srv.port}/chat?user=ana`);
      expectAck(await ana.request('join', { room: 'lobby' }), 1, 'join');
      expectAck(await ana.request('chat:message', { room: 'lobby', data: { text: 'hi' } }), 2, 'chat');

      // The development API key of the embedded default, printed at start.
      assert.match(srv.out, /msg="development api key" key=dev /);
      const inbox = await connect(`ws://127.0.0.1:${srv.port}/notify?user=ana`);
      await inbox.next('notify:backlog');
      const sent = await request('POST', `${base}/api/notify`, {
        headers: { authorization: 'Bearer dev' }, body: { user: 'ana', data: { text: 'hi' } },
      });
      assert.equal(sent.status, 200, sent.text);
      assert.deepEqual((await inbox.next('notify')).data.data, { text: 'hi' });
    } finally {
      await closeAll();
      const s = await srv.stop();
      assert.deepEqual(s, { code: 0, signal: null }, srv.out);
    }
  });

  it('runs the installed apps\' Lua tests and still finds its files after the prefix moves', async () => {
    const moved = path.join(tmp, 'moved');
    fs.renameSync(prefix, moved);
    try {
      const mbin = path.join(moved, 'bin', 'moonwire');
      const help = await run(mbin, ['help']);
      assert.ok(help.stdout.includes(`(now: ${fs.realpathSync(path.join(moved, 'share', 'moonwire'))})`),
        help.stdout);
      const t = await run(mbin, ['test', path.join(moved, 'share', 'moonwire', 'apps', 'notify', 'tests')],
        { timeout: 60000 });
      assert.equal(t.code, 0, `${t.stdout}\n${t.stderr}`);
      assert.match(t.stdout, / 0 failed$/m);
    } finally {
      fs.renameSync(moved, prefix);
    }
  });

  it('a binary in its build directory keeps using its source tree', async () => {
    const help = await run(BIN, ['help']);
    assert.ok(help.stdout.includes(`(now: ${fs.realpathSync(REPO)})`), help.stdout);
  });
});
