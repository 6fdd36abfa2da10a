// The command line a newcomer meets: help that matches the embedded default, `check`
// without -c, --listen, the test usage, and a 401 that says when no API key exists.
'use strict';

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { startServer, BIN, REPO } = require('./lib/server');
const { request } = require('./lib/http');

function run(args) {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout: 10000, env: { ...process.env, MOONWIRE_HOME: REPO } },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

describe('moonwire command line', () => {
  const servers = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('help lists the commands, -c -l -t, and every route of the embedded default', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    for (const s of ['moonwire check [-c FILE]', 'moonwire test [-c FILE] [-t SECONDS] PATH...',
      '-l, --listen HOST:PORT', 'moonwire version', `(now: ${REPO})`]) {
      assert.ok(help.stdout.includes(s), `help shows ${s}:\n${help.stdout}`);
    }
    // The routes come from the embedded config itself.
    const check = await run(['check']);
    assert.equal(check.code, 0, check.stderr);
    const n = Number(/^embedded default: ok \((\d+) routes\)$/m.exec(check.stdout)[1]);
    const listed = help.stdout.match(/\/[a-z]+ \(app:[a-z]+(, raw)?\)/g) || [];
    assert.equal(listed.length, n, help.stdout);
    for (const r of ['/chat (app:chat)', '/notify (app:notify)', '/echo (app:echo, raw)']) {
      assert.ok(listed.includes(r), `help lists ${r}`);
    }
    assert.deepEqual(await run(['help']), help);
  });

  it('the test usage names -t; bad arguments are usage errors (exit 2)', async () => {
    const t = await run(['test', '--help']);
    assert.match(t.stdout, /usage: moonwire test \[-c FILE\] \[-t SECONDS\] PATH\.\.\./);
    assert.match(t.stdout, /-t SECONDS/);
    const bad = await run(['serve', '--listen', 'nowhere']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--listen wants HOST:PORT/);
    assert.equal((await run(['check', '-l', '127.0.0.1:1'])).code, 2, 'check does not listen');
    // The embedded default (public API key, ?user=) never listens beyond loopback.
    for (const host of ['0.0.0.0:1', '[::]:1', '192.0.2.1:1']) {
      const open = await run(['serve', '--listen', host]);
      assert.equal(open.code, 2, `${host}: ${open.stderr}`);
      assert.match(open.stderr, /embedded default listens on loopback only/);
    }
    assert.equal((await run(['bogus'])).code, 2);
  });

  it('a 401 says when no API key is configured at all', async () => {
    const srv = await startServer();
    servers.push(srv);
    const res = await request('POST', srv.httpUrl('/api/notify'), {
      headers: { authorization: 'Bearer anything' }, body: { user: 'ana', data: {} },
    });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'unauthorized');
    assert.match(res.json.message, /no API keys are configured.*api: \{ keys/);
    const keyed = await startServer({ config: { api: { keys: ['right'] } } });
    servers.push(keyed);
    const wrong = await request('POST', keyed.httpUrl('/api/notify'), {
      headers: { authorization: 'Bearer wrong' }, body: { user: 'ana', data: {} },
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.json.message, /missing or wrong API key/);
  });
});
