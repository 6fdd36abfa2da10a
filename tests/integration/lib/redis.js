// Starts a real redis-server on a free 127.0.0.1 port (no persistence unless asked),
// for the clustering tests; stop() and start() again on the same port simulate an
// outage, pause() and resume() a Redis that hangs.
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const net = require('node:net');
const { freePort } = require('./server');

function ping(port, timeoutMs = 300) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(timeoutMs, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

// startRedis(port?, { dir }) -> { port, url, stop(), pause(), resume(), cli(...) }.
// opts.dir: keep the data in an append-only file there, written before each reply, so
// that a restart on the same port and dir (even after SIGKILL) has everything back.
async function startRedis(port, opts = {}) {
  port = port || await freePort();
  const persist = opts.dir ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', opts.dir]
    : ['--appendonly', 'no'];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', ...persist, '--protected-mode', 'no'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let exited = false;
  let paused = false;
  child.on('exit', () => { exited = true; });
  for (let i = 0; i < 100 && !(await ping(port)); i++) {
    if (exited) throw new Error(`redis-server on port ${port} exited at start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      if (exited) return;
      child.kill('SIGKILL');
      await new Promise((r) => (exited ? r() : child.on('exit', r)));
    },
    // A Redis that hangs: the process stops (SIGSTOP), its sockets stay open.
    pause() {
      if (!exited && !paused) child.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      if (!exited && paused) child.kill('SIGCONT');
      paused = false;
    },
    // Raw access for assertions: redis-cli, bounded.
    cli(...args) {
      return execFileSync('redis-cli', ['-p', String(port), ...args], { timeout: 3000 }).toString().trim();
    },
  };
}

module.exports = { startRedis };
