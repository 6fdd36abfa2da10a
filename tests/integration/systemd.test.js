// examples/systemd: systemd-analyze checks the unit (syntax, commands, sandbox score),
// then moonwire runs the way the unit runs it, under strace: its ExecStartPre, ExecStart
// with the example config and a real Redis, clients, ExecReload, a logrotate
// copytruncate of the `append:` log file, and the stop. Every system call it made must
// pass the unit's SystemCallFilter, every socket its RestrictAddressFamilies, it must
// open no file for writing (ProtectSystem=strict), and it must exit within TimeoutStopSec.
// systemd itself cannot run here (no systemd as PID 1 in CI's chroot), so this is what
// can be checked of a unit without booting it.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, httpStatus, BIN, REPO } = require('./lib/server');
const { startRedis } = require('./lib/redis');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { expectAck, waitFor } = require('./lib/helpers');
const { start } = require('./lib/child');

const EXAMPLE = path.join(REPO, 'examples', 'systemd');
// LeakSanitizer cannot run under ptrace: the sanitizer build's leak check happens in
// every other test, not in the traced runs here.
const TRACED_ENV = process.env.MOONWIRE_SANITIZE
  ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:detect_leaks=0` } : {};
const INSTALLED_BIN = '/usr/local/bin/moonwire';

function run(file, args, { timeout = 30000, env } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout, env: env || process.env, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

// The [Service] settings of a unit file: { Key: [values...] } (keys may repeat).
function unitSettings(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) (out[m[1]] = out[m[1]] || []).push(m[2]);
  }
  return out;
}

const unitText = fs.readFileSync(path.join(EXAMPLE, 'moonwire.service'), 'utf8');
const unit = unitSettings(unitText);

// "15s", "1min 30s", "500ms" -> ms (the forms a unit file uses).
function unitDuration(s) {
  let ms = 0;
  for (const [, n, u] of s.matchAll(/(\d+)\s*(ms|s|min|h)?/g)) {
    ms += Number(n) * ({ ms: 1, s: 1000, min: 60000, h: 3600000 }[u || 's']);
  }
  return ms;
}

// Every system call in a SystemCallFilter group, groups expanded (systemd-analyze's own
// table, so it matches the systemd that would run the unit).
async function syscallSets() {
  const r = await run('systemd-analyze', ['syscall-filter']);
  assert.equal(r.code, 0, r.stderr);
  const groups = {};
  let cur = null;
  for (const line of r.stdout.split('\n')) {
    if (/^@[a-z-]+$/.test(line.trim()) && !line.startsWith(' ')) cur = groups[line.trim()] = [];
    else if (cur && /^\s+[@a-z0-9_-]+$/.test(line)) cur.push(line.trim());
  }
  const expand = (name, seen = new Set()) => {
    if (!name.startsWith('@')) return [name];
    if (seen.has(name)) return [];
    seen.add(name);
    assert.ok(groups[name], `systemd-analyze knows ${name}`);
    return groups[name].flatMap((n) => expand(n, seen));
  };
  return expand;
}

// The set a SystemCallFilter= list allows: the first line is an allow list, `~` lines
// take groups away.
async function allowedSyscalls(filters) {
  const expand = await syscallSets();
  const allowed = new Set();
  for (const f of filters) {
    const deny = f.startsWith('~');
    for (const item of f.replace(/^~/, '').split(/\s+/).filter(Boolean)) {
      for (const sc of expand(item)) {
        if (deny) allowed.delete(sc);
        else allowed.add(sc);
      }
    }
  }
  return allowed;
}

// What a strace -f output file shows against the unit's sandbox.
async function checkTrace(trace) {
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const allowed = await allowedSyscalls(unit.SystemCallFilter);
  const used = new Set();
  for (const l of lines) {
    const m = /^\d+\s+([a-z0-9_]+)\(/.exec(l);
    if (m) used.add(m[1]);
  }
  assert.ok(used.has('epoll_wait') || used.has('epoll_pwait'), 'the trace holds the loop');
  const denied = [...used].filter((sc) => !allowed.has(sc));
  assert.deepEqual(denied, [], `system calls outside SystemCallFilter=${unit.SystemCallFilter.join(' ')}`);

  const families = new Set(unit.RestrictAddressFamilies[0].split(/\s+/));
  const socketFams = new Set(lines.map((l) => /\ssocket\((AF_[A-Z0-9]+)/.exec(l)).filter(Boolean).map((m) => m[1]));
  assert.ok(socketFams.has('AF_INET'), 'the trace holds the sockets');
  assert.deepEqual([...socketFams].filter((f) => !families.has(f)), [], 'address families');

  // Opened for writing: only what ProtectSystem=strict and PrivateDevices leave writable.
  const writes = lines.filter((l) => /\sopen(at)?\(.*O_(WRONLY|RDWR|CREAT)/.test(l) && !/= -1 /.test(l))
    .filter((l) => !/"\/dev\/(null|u?random|tty)"/.test(l) && !/"\/proc\/self\//.test(l));
  assert.deepEqual(writes, [], 'files opened for writing');
  return used;
}

describe('examples/systemd', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-systemd-'));
  // The unit as installed, with the binary under test where it installs moonwire.
  const unitFile = path.join(dir, 'moonwire.service');
  fs.writeFileSync(unitFile, unitText.split(INSTALLED_BIN).join(BIN));
  let redis;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await closeAll();
    if (redis) await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('systemd-analyze verify accepts the unit without a warning', async () => {
    const r = await run('systemd-analyze', ['verify', '--man=no', unitFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings (an unknown key is only a warning)');
    // The same check fails on a mistake: an unknown key, a command that does not exist.
    const bad = path.join(dir, 'bad.service');
    fs.writeFileSync(bad, unitText.replace(/^KillMode=/m, 'KillMod=').split(INSTALLED_BIN).join(BIN));
    assert.match((await run('systemd-analyze', ['verify', '--man=no', bad])).stderr, /Unknown key 'KillMod'/);
  });

  it('its sandbox is rated OK by systemd-analyze security', async () => {
    const r = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', unitFile]);
    const m = /Overall exposure level for moonwire\.service: ([\d.]+) (\w+)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]} (the example scores 1.4):\n${r.stdout}`);
  });

  it('moonwire runs within the unit\'s limits: filter, address families, no writes, logrotate, stop', async () => {
    const port = await freePort();
    const cfgFile = path.join(dir, 'moonwire.yaml');
    const cfgText = fs.readFileSync(path.join(EXAMPLE, 'moonwire.yaml'), 'utf8');
    assert.match(cfgText, /^listen: 127\.0\.0\.1:8081 /m);
    fs.writeFileSync(cfgFile, cfgText.replace(/^listen: \S+/m, `listen: 127.0.0.1:${port}`));
    const env = { ...process.env, ...TRACED_ENV, MOONWIRE_HOME: REPO, REDIS_URL: redis.url, MOONWIRE_API_KEY: 'k3y', NODE_ID: 'node-sd' };
    const cmd = (line) => line.split(/\s+/).map((w) => (w === INSTALLED_BIN ? BIN : w === '/etc/moonwire/moonwire.yaml' ? cfgFile : w));

    // ExecStartPre: the check passes.
    const [pre] = unit.ExecStartPre.map(cmd);
    const checked = await run(pre[0], pre.slice(1), { env });
    assert.equal(checked.code, 0, checked.stderr);

    // ExecStart under strace, stderr appended to a file like StandardError=append:.
    const logFile = path.join(dir, 'moonwire.log');
    const trace = path.join(dir, 'trace');
    const execStart = cmd(unit.ExecStart[0]);
    const logFd = fs.openSync(logFile, 'a');
    const tracer = start('strace', ['-f', '-qq', '-o', trace, '--', ...execStart], { env, stdio: ['ignore', 'ignore', logFd] });
    fs.closeSync(logFd);
    const logs = () => fs.readFileSync(logFile, 'utf8');
    try {
      await waitFor(async () => {
        if (tracer.exit) throw new Error(`moonwire exited at start ${JSON.stringify(tracer.exit)}:\n${logs()}`);
        return (await httpStatus(`http://127.0.0.1:${port}/readyz`, 500)) === 200;
      }, 20000, 'moonwire (under strace) to be ready');
      const pid = Number(fs.readFileSync(`/proc/${tracer.child.pid}/task/${tracer.child.pid}/children`, 'utf8').trim());
      assert.ok(pid > 0, 'the traced moonwire process');

      const clients = [];
      for (let i = 0; i < 20; i++) {
        const c = await connect(`ws://127.0.0.1:${port}/chat`);
        expectAck(await c.request('join', { room: 'sd' }), 1, 'join');
        clients.push(c);
      }
      expectAck(await clients[0].request('chat:message', { room: 'sd', data: { n: 1 } }), 2, 'chat');
      await clients[19].next({ type: 'chat:message', room: 'sd' });
      const inbox = await connect(`ws://127.0.0.1:${port}/notify`); // no user_param: anonymous
      await inbox.next('notify:backlog');
      const sent = await request('POST', `http://127.0.0.1:${port}/api/notify`, {
        headers: { authorization: 'Bearer k3y' }, body: { user: inbox.user, data: { n: 1 } },
      });
      assert.equal(sent.status, 200, sent.text);
      await inbox.next('notify');

      // logrotate with the example's rule, pointed at this log file.
      const rule = fs.readFileSync(path.join(EXAMPLE, 'moonwire.logrotate'), 'utf8')
        .replace(/^\/var\/log\/moonwire\/moonwire\.log \{/m, `${logFile} {`);
      assert.ok(rule.includes(`${logFile} {`), 'the example rotates /var/log/moonwire/moonwire.log');
      const ruleFile = path.join(dir, 'logrotate.conf');
      fs.writeFileSync(ruleFile, rule, { mode: 0o644 });
      const rot = await run('logrotate', ['-v', '-f', '-s', path.join(dir, 'logrotate.state'), ruleFile]);
      assert.equal(rot.code, 0, rot.stdout + rot.stderr);
      assert.ok(fs.existsSync(`${logFile}.1`), rot.stdout + rot.stderr);
      assert.match(fs.readFileSync(`${logFile}.1`, 'utf8'), /msg="listening"/);

      // ExecReload: the check, then SIGHUP (the unit's kill line, with $MAINPID).
      for (const line of unit.ExecReload.map(cmd)) {
        const r = await run(line[0], line.slice(1).map((w) => w.replace('$MAINPID', String(pid))), { env });
        assert.equal(r.code, 0, `${line.join(' ')}: ${r.stderr}`);
      }
      await waitFor(() => /msg="reloaded" .*why=SIGHUP/.test(logs()), 10000, 'the reload to be logged');
      const after = fs.readFileSync(logFile);
      assert.equal(after.indexOf(0), -1, 'no hole of NUL bytes after the truncation');
      assert.match(after.toString(), /^ts=/, 'the first line after the rotation starts the file');
      assert.doesNotMatch(after.toString(), /msg="listening"/, 'old lines went to the rotated file');
      expectAck(await clients[1].request('chat:message', { room: 'sd', data: { n: 2 } }), 2, 'chat after reload');

      // Stop: SIGTERM; clients get the reconnect hint and 1001; the exit comes well
      // before TimeoutStopSec would SIGKILL.
      const stopMs = unitDuration(unit.TimeoutStopSec[0]);
      const t0 = Date.now();
      process.kill(pid, 'SIGTERM');
      const st = await tracer.exitWithin(stopMs);
      assert.ok(st, `moonwire still running ${stopMs} ms after SIGTERM (TimeoutStopSec)`);
      assert.deepEqual(st, { code: 0, signal: null }, logs());
      for (const c of clients) {
        assert.equal((await c.closed).code, 1001);
        assert.ok(c.messages.some((m) => m.type === 'reconnect'), 'reconnect hint');
      }
      assert.match(logs(), /msg="stopped"/);
      console.log(`# stopped ${Date.now() - t0} ms after SIGTERM (TimeoutStopSec=${unit.TimeoutStopSec[0]})`);
    } finally {
      await tracer.stop('SIGKILL');
    }

    await checkTrace(trace);
  });

  it('with workers: the master and its workers also stay within the filter', async () => {
    const port = await freePort();
    const cfgFile = path.join(dir, 'workers.yaml');
    fs.writeFileSync(cfgFile, fs.readFileSync(path.join(EXAMPLE, 'moonwire.yaml'), 'utf8')
      .replace(/^listen: \S+/m, `listen: 127.0.0.1:${port}\nworkers: 2`));
    const env = { ...process.env, ...TRACED_ENV, MOONWIRE_HOME: REPO, REDIS_URL: redis.url, NODE_ID: 'node-sdw' };
    const trace = path.join(dir, 'trace-workers');
    const tracer = start('strace', ['-f', '-qq', '-o', trace, '--', BIN, 'serve', '-c', cfgFile], { env });
    try {
      await waitFor(async () => {
        if (tracer.exit) throw new Error(`moonwire exited at start ${JSON.stringify(tracer.exit)}:\n${tracer.out}`);
        return (tracer.out.match(/msg="listening"/g) || []).length === 2 &&
          (await httpStatus(`http://127.0.0.1:${port}/readyz`, 500)) === 200;
      }, 20000, 'both workers (under strace) to be ready');
      const master = Number(fs.readFileSync(`/proc/${tracer.child.pid}/task/${tracer.child.pid}/children`, 'utf8').trim());
      const c = await connect(`ws://127.0.0.1:${port}/chat`);
      expectAck(await c.request('join', { room: 'w' }), 1, 'join');
      process.kill(master, 'SIGHUP');
      await tracer.until((p) => (p.out.match(/msg="reloaded" .*why=SIGHUP/g) || []).length >= 2, 10000,
        'both workers to reload');
      process.kill(master, 'SIGTERM');
      assert.equal((await c.closed).code, 1001);
      assert.deepEqual(await tracer.exited, { code: 0, signal: null }, tracer.out);
    } finally {
      await tracer.stop('SIGKILL');
    }
    const used = await checkTrace(trace);
    assert.ok(used.has('prctl') && used.has('kill'), 'the trace holds the master and its workers');
  });
});
