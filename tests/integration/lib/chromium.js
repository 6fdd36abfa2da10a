// A real headless Chromium, driven over the DevTools protocol with the `ws` package:
// launch() -> { evaluate(expr), goto(url), close() }. Bounded in time; the browser is
// killed on close. Needs Debian's `chromium` (make deps installs it).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const WebSocket = require('ws');

const BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch (e) { reject(e); } });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 3 s`)));
    req.on('error', reject);
  });
}

const exited = (child) => child.exitCode !== null || child.signalCode !== null;

async function launch() {
  if (!fs.existsSync(BIN)) throw new Error(`chromium not found at ${BIN} (apt-get install chromium, or make deps)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-chromium-'));
  const child = spawn(BIN, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-extensions', '--disable-background-networking', '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', `--user-data-dir=${dir}`, 'about:blank'],
  { stdio: ['ignore', 'ignore', 'pipe'], detached: true }); // its own group: killed whole
  const killAll = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { /* gone */ } };
  let stderr = '';
  const pending = new Map();
  child.stderr.on('data', (d) => { stderr += d; });
  child.on('exit', (code, signal) => { // whatever waits on the browser fails now
    stderr += `\n[harness] chromium exited (code ${code}, signal ${signal})\n`;
    for (const { reject } of pending.values()) reject(new Error(`chromium went away; stderr: ${stderr.slice(-2000)}`));
    pending.clear();
  });
  const portFile = path.join(dir, 'DevToolsActivePort');
  let port = null;
  for (let i = 0; i < 200 && port === null; i++) { // up to 10 s
    if (fs.existsSync(portFile)) port = Number(fs.readFileSync(portFile, 'utf8').split('\n')[0]) || null;
    if (port === null) await new Promise((r) => setTimeout(r, 50));
  }
  if (port === null) {
    killAll();
    throw new Error(`chromium did not start: ${stderr.slice(-2000)}`);
  }
  let ws;
  try {
    const targets = await getJson(`http://127.0.0.1:${port}/json/list`);
    const page = targets.find((t) => t.type === 'page');
    if (!page) throw new Error('no page target');
    ws = new WebSocket(page.webSocketDebuggerUrl, { perMessageDeflate: false, handshakeTimeout: 5000 });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('close', () => reject(new Error('the DevTools socket closed')));
    });
  } catch (err) {
    killAll();
    throw new Error(`chromium: ${err.message}; stderr: ${stderr.slice(-2000)}`);
  }
  ws.on('close', () => {
    for (const { reject } of pending.values()) reject(new Error(`chromium went away; stderr: ${stderr.slice(-2000)}`));
    pending.clear();
  });
  let nextId = 1;
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(msg.error.message));
      else resolve(msg.result);
    }
  });
  const send = (method, params = {}, ms = 10000) => new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => { pending.delete(id); reject(new Error(`${method}: no answer in ${ms} ms`)); }, ms);
    pending.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    try {
      ws.send(JSON.stringify({ id, method, params }));
    } catch (err) {
      pending.delete(id);
      clearTimeout(timer);
      reject(new Error(`${method}: ${err.message}; stderr: ${stderr.slice(-2000)}`));
    }
  });
  await send('Runtime.enable');
  await send('Page.enable');

  return {
    // Loads url and waits for its load event.
    async goto(url) {
      await send('Page.navigate', { url });
      for (let i = 0; i < 100; i++) {
        const r = await send('Runtime.evaluate', { expression: 'document.readyState', returnByValue: true });
        if (r.result.value === 'complete') return;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`${url}: not loaded in 5 s`);
    },
    // Evaluates an expression in the page (awaiting a promise) and returns its value.
    async evaluate(expression, ms = 15000) {
      const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, ms);
      if (r.exceptionDetails) {
        const d = r.exceptionDetails;
        throw new Error(`in the page: ${(d.exception && d.exception.description) || d.text}`);
      }
      return r.result.value;
    },
    async close() {
      ws.close();
      killAll(); // the browser and its renderer, GPU and zygote processes
      await new Promise((r) => (exited(child) ? r() : child.once('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}

module.exports = { launch };
