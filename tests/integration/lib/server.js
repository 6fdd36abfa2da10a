// Starts the real moonwire binary on a free 127.0.0.1 port with a per-test config.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.MOONWIRE_BIN || path.join(REPO, 'build', 'moonwire');
const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;

// Asks the kernel for a free port: listen on port 0, read it, close. Another process
// could take it before the server binds; startServer reports that as an early exit.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Deep merge for config objects: objects merge key by key, anything else (arrays
// included) replaces, and a `null` override deletes the key.
function merge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = merge(out[k], v);
    else out[k] = v;
  }
  return out;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One GET, bounded; resolves with the status code, or 0 when nothing answered.
function httpStatus(url, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function tail(text, n = 4000) {
  return text.length > n ? '...' + text.slice(-n) : text;
}

// startServer({ routes, config, scripts, env }) -> { port, url(path), httpUrl(path),
// logs(), waitForLog(regex, ms), alive(), stop() }.
// `scripts` is { 'name.lua': source } written next to moonwire.yaml; `routes` is merged
// into config.routes, `config` into the whole default config.
async function startServer(opts = {}) {
  const { routes, config, scripts, env } = opts;
  if (!fs.existsSync(BIN)) {
    throw new Error(`moonwire binary not found at ${BIN} (build it or set MOONWIRE_BIN)`);
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-it-'));
  for (const [name, source] of Object.entries(scripts || {})) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, source);
  }
  let cfg = {
    listen: `127.0.0.1:${port}`,
    dev: { user_param: true, hot_reload: false },
    routes: { '/chat': { script: 'app:chat' } },
  };
  cfg = merge(cfg, config);
  if (routes) cfg.routes = merge(cfg.routes, routes);
  // JSON is YAML flow style; one key per line keeps the server's line numbers useful.
  const cfgFile = path.join(dir, 'moonwire.yaml');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2) + '\n');

  let logText = '';
  const logWaiters = new Set();
  let exit = null; // { code, signal } once the process ended
  let stopping = false;
  let removed = false;

  const child = spawn(BIN, ['serve', '-c', cfgFile], {
    cwd: dir,
    env: { ...process.env, MOONWIRE_HOME: REPO, ...(env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.on('error', (err) => {
      logText += `\n[harness] spawn error: ${err.message}\n`;
      exit = exit || { code: -1, signal: null, error: err };
      resolve(exit);
    });
  });
  const onData = (chunk) => {
    logText += chunk.toString('utf8');
    for (const w of logWaiters) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  // Resolves with the exit status, or null when the process is still running after ms.
  function exitWithin(ms) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
  }

  function cleanupDir() {
    if (removed || process.env.MOONWIRE_KEEP_TMP) return;
    removed = true;
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const server = {
    port,
    dir,
    configFile: cfgFile,
    config: cfg,
    process: child,
    url(p = '/chat') {
      return `ws://127.0.0.1:${port}${p}`;
    },
    httpUrl(p = '/') {
      return `http://127.0.0.1:${port}${p}`;
    },
    logs() {
      return logText;
    },
    // Resolves with the first log line matching `regex`, waiting up to `ms`.
    waitForLog(regex, ms = 2000) {
      const find = () => logText.split('\n').find((line) => regex.test(line));
      return new Promise((resolve, reject) => {
        const hit = find();
        if (hit !== undefined) return resolve(hit);
        const check = () => {
          const line = find();
          if (line !== undefined) done(null, line);
        };
        const timer = setTimeout(() => {
          done(new Error(`no log line matching ${regex} within ${ms} ms; log:\n${tail(logText)}`));
        }, ms);
        function done(err, line) {
          clearTimeout(timer);
          logWaiters.delete(check);
          if (err) reject(err);
          else resolve(line);
        }
        logWaiters.add(check);
      });
    },
    alive() {
      return exit === null;
    },
    exitStatus() {
      return exit;
    },
    // SIGTERM, wait up to 5 s, then SIGKILL; removes the temp dir. Rejects when the server
    // had already died on its own (a crash must not pass silently).
    async stop() {
      const diedEarly = exit !== null && !stopping;
      stopping = true;
      if (exit === null) {
        child.kill('SIGTERM');
        if ((await exitWithin(STOP_TIMEOUT_MS)) === null) {
          logText += '\n[harness] no exit 5 s after SIGTERM: SIGKILL\n';
          child.kill('SIGKILL');
          await exitWithin(STOP_TIMEOUT_MS);
        }
      }
      cleanupDir();
      if (diedEarly) {
        throw new Error(`moonwire exited before stop() (${JSON.stringify(exit)}); log:\n${tail(logText)}`);
      }
      // Under ASan/UBSan a leak or an error report at exit fails the test that ran it.
      const report = logText.indexOf('Sanitizer');
      if (report >= 0) {
        throw new Error(`sanitizer report from moonwire:\n${logText.slice(Math.max(0, report - 200), report + 6000)}`);
      }
      return exit;
    },
  };

  // Wait until /healthz answers 200, or the process exits, or 10 s pass.
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exit !== null) {
      cleanupDir();
      throw new Error(`moonwire exited during start (${JSON.stringify(exit)}); config:\n` +
        `${JSON.stringify(cfg, null, 2)}\nlog:\n${tail(logText)}`);
    }
    const status = await httpStatus(server.httpUrl('/healthz'), 500);
    if (status === 200) break;
    if (Date.now() > deadline) {
      stopping = true;
      await server.stop().catch(() => {});
      throw new Error(`moonwire did not answer /healthz with 200 within ${START_TIMEOUT_MS} ms ` +
        `(last status ${status}); log:\n${tail(logText)}`);
    }
    await sleep(50);
  }
  return server;
}

module.exports = { startServer, freePort, httpStatus, sleep, merge, REPO, BIN };
