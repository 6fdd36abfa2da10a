// A real headless Chromium (Debian's `chromium`) driven by playwright-core, for the
// browser tests. One browser per test file, a fresh context (profile) per page; every
// wait is bounded, and the browser is killed when the file's tests end (close(), or
// playwright's own exit handler if the process dies first).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { REPO } = require('./server');

const BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-extensions', '--disable-dev-shm-usage'];
// Screenshots and other artifacts of browser tests: not committed (build/ is ignored).
const ARTIFACTS = process.env.MOONWIRE_ARTIFACTS || path.join(REPO, 'build', 'test-artifacts', 'browser');

// launch() -> { newPage(opts), close() }. playwright's launch makes a fresh temporary
// --user-data-dir per browser and removes it on close.
async function launch() {
  if (!fs.existsSync(BIN)) throw new Error(`chromium not found at ${BIN} (apt-get install chromium, or make deps)`);
  const browser = await chromium.launch({
    executablePath: BIN, headless: true, chromiumSandbox: false, args: ARGS, timeout: 30000,
  });
  const pages = new Set();

  return {
    browser,
    // A page in its own context (own cookies, storage, network). opts: viewport,
    // name (for logs). Returns the playwright Page with `logs` (console lines and
    // page errors, in order) and `until(fn, arg, ms)`.
    async newPage(opts = {}) {
      const context = await browser.newContext({ viewport: opts.viewport || { width: 1100, height: 720 } });
      context.setDefaultTimeout(15000);
      const page = await context.newPage();
      page.logs = [];
      page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
      // Waits until fn(arg) is truthy in the page, polling; fails with the page's logs.
      page.until = async (fn, arg, ms = 15000) => {
        try {
          return await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
        } catch (err) {
          err.message += `\npage logs:\n${page.logs.slice(-30).join('\n')}`;
          throw err;
        }
      };
      pages.add(page);
      page.once('close', () => {
        pages.delete(page);
        context.close().catch(() => {}); // one page per context: it goes with its page
      });
      return page;
    },
    // Saves a PNG of the page under ARTIFACTS and returns its path.
    async screenshot(page, name) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: false, timeout: 15000 });
      return file;
    },
    async close() {
      for (const p of pages) await p.context().close().catch(() => {});
      await browser.close();
    },
  };
}

module.exports = { launch, ARTIFACTS };
