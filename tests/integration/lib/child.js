// A child process for tests: its output kept, waits on it bounded, a stop that ends its
// whole process group (SIGTERM, then SIGKILL after 5 s).
'use strict';

const { spawn } = require('node:child_process');

// start(cmd, args, opts) -> { child, out, exit, exited, until(pred, ms, what), stop() }.
// `out` is stdout and stderr together; opts go to spawn (stdio may be overridden).
function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts, detached: true });
  const p = { child, out: '', exit: null, waiters: new Set() };
  const onData = (d) => {
    p.out += d.toString('utf8');
    for (const w of p.waiters) w();
  };
  if (child.stdout) child.stdout.on('data', onData);
  if (child.stderr) child.stderr.on('data', onData);
  p.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      p.exit = { code, signal };
      for (const w of p.waiters) w();
      resolve(p.exit);
    });
    child.on('error', (err) => {
      p.out += `\n[harness] spawn ${cmd}: ${err.message}\n`;
      p.exit = p.exit || { code: -1, signal: null };
      for (const w of p.waiters) w();
      resolve(p.exit);
    });
  });

  // Resolves with pred(p) once it is truthy; rejects when the process exits first or
  // after ms.
  p.until = (pred, ms, what) => new Promise((resolve, reject) => {
    let timer;
    const done = (err, v) => {
      clearTimeout(timer);
      p.waiters.delete(check);
      if (err) reject(err);
      else resolve(v);
    };
    const check = () => {
      const v = pred(p);
      if (v) done(null, v);
      else if (p.exit) done(new Error(`${what}: ${cmd} exited (${JSON.stringify(p.exit)}); output:\n${p.out}`));
    };
    timer = setTimeout(() => done(new Error(`${what}: not within ${ms} ms; output:\n${p.out}`)), ms);
    p.waiters.add(check);
    check();
  });

  // Resolves with the exit status, or null when still running after ms.
  p.exitWithin = async (ms) => {
    let timer;
    const s = await Promise.race([p.exited, new Promise((r) => { timer = setTimeout(r, ms, null); })]);
    clearTimeout(timer);
    return s;
  };

  // Sends `signal` to the process and waits; SIGKILL for its group after 5 s.
  p.stop = async (signal = 'SIGTERM') => {
    if (!p.exit) {
      try { process.kill(-child.pid, signal); } catch (e) { /* already gone */ }
      if (!(await p.exitWithin(5000))) {
        try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
      }
    }
    return p.exited;
  };
  return p;
}

module.exports = { start };
