// The demo at / (examples/web) in a real headless Chromium against a real moonwire
// mounted like the embedded default: two people chatting with presence, typing, names
// and timestamps; the offline banner, pending messages and the countdown; a restart
// that loses history (the page keeps what it shows and marks the gap); notifications
// as backlog, live and read on every device; /favicon.ico. Screenshots of every view
// go to build/test-artifacts/browser/ (printed), for people to look at.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startServer, REPO } = require('./lib/server');
const { startProxy } = require('./lib/proxy');
const { launch, ARTIFACTS } = require('./lib/browser');
const { connect, closeAll } = require('./lib/client');
const { request } = require('./lib/http');
const { uid, expectAck } = require('./lib/helpers');

const LIMIT = { timeout: 90000 };
const KEY = 'demo-test-key';
const PHONE = { width: 390, height: 760 };

const config = {
  static: path.join(REPO, 'examples', 'web'),
  api: { keys: [KEY] },
};
const routes = {
  '/chat': { script: 'app:chat', options: { mentions: true } },
  '/notify': { script: 'app:notify' },
  '/reservations': { script: 'app:reservations' },
};

describe('the demo at /', LIMIT, () => {
  let server;
  let proxy;
  let browser;
  before(async () => {
    server = await startServer({ config, routes });
    proxy = await startProxy(server.port);
    browser = await launch();
  }, LIMIT);
  after(async () => {
    await closeAll();
    if (browser) await browser.close();
    if (proxy) await proxy.close();
    if (server) await server.stop();
  }, LIMIT);

  // A demo page for one person; through the proxy when `via` is given.
  async function open(user, name, { hash = '', viewport, via, query = '' } = {}) {
    const page = await browser.newPage({ viewport });
    const base = via ? via.httpUrl('/') : server.httpUrl('/');
    await page.goto(`${base}?user=${encodeURIComponent(user)}&name=${encodeURIComponent(name)}${query}${hash}`);
    await page.until(() => document.getElementById('conn').dataset.state === 'open');
    return page;
  }

  const shot = async (t, page, name) => t.diagnostic(`screenshot: ${await browser.screenshot(page, name)}`);
  const text = (page, sel) => page.locator(sel).innerText();

  it('serves the page, its files and /favicon.ico', LIMIT, async () => {
    const index = await request('GET', server.httpUrl('/'));
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    for (const f of ['/style.css', '/app.js', '/chat.js', '/board.js', '/notify.js', '/ui.js', '/moonwire.js']) {
      assert.equal((await request('GET', server.httpUrl(f))).status, 200, f);
    }
    const icon = await request('GET', server.httpUrl('/favicon.ico'));
    assert.equal(icon.status, 200);
    assert.equal(icon.headers['content-type'], 'image/x-icon');
  });

  it('two people chat: presence with names, typing, timestamps, own messages on the right', LIMIT, async (t) => {
    const room = uid('tea');
    const q = `&rooms=${room},random`;
    const ana = await open(uid('ana'), 'Ana', { query: q });
    const bobId = uid('bob');
    const bob = await open(bobId, 'Bob', { query: q });
    await ana.until((n) => document.querySelector('#log').innerText.includes(`${n} joined`), 'Bob');
    await ana.until(() => document.querySelector('#members').innerText.includes('Bob'));
    assert.match(await text(ana, '#members'), /Ana \(you\)[\s\S]*Bob/);
    assert.match(await text(ana, '#room-count'), /2 here/);

    await bob.locator('#text').pressSequentially('Hi Ana', { delay: 20 });
    await ana.until(() => document.getElementById('typing').textContent === 'Bob is typing…');
    await bob.locator('#text').press('Enter');
    await ana.until(() => document.querySelectorAll('#log .msg').length === 1);
    assert.equal(await ana.locator('#typing').textContent(), '', 'a message ends the typing');
    const msg = ana.locator('#log .msg').first();
    assert.equal(await msg.locator('.who').innerText(), 'Bob');
    assert.match(await msg.locator('time').innerText(), /\d{1,2}:\d{2}/);
    assert.equal(await msg.getAttribute('class'), 'msg', 'not mine');

    await ana.fill('#text', `Hello @${bobId}, tea at five?`);
    await ana.press('#text', 'Enter');
    await bob.until(() => document.querySelectorAll('#log .msg').length === 2);
    assert.equal(await ana.locator('#log .msg.mine').count(), 1);
    assert.equal(await ana.locator('#log .msg.pending').count(), 0);
    assert.equal(await bob.locator('#log .msg').nth(1).locator('.who').innerText(), 'Ana');
    assert.equal(await bob.locator('#log .msg .mention').innerText(), `@${bobId}`);
    await bob.locator('#text').pressSequentially('Sure', { delay: 20 });
    await ana.until(() => document.getElementById('typing').textContent === 'Bob is typing…');
    await shot(t, ana, 'chat-desktop');
    await shot(t, bob, 'chat-desktop-other-window');

    // Another room: unread counts, and the same person on a phone.
    const other = await connect(server.url(`/chat?user=${uid('cy')}`));
    expectAck(await other.request('join', { room: 'random' }), 1);
    expectAck(await other.request('chat:message', { room: 'random', data: { text: 'anyone for a walk?', name: 'Cy' } }), 2);
    await ana.until(() => [...document.querySelectorAll('#rooms .badge')].some((b) => !b.hidden && b.textContent === '1'));
    const phone = await open(uid('dee'), 'Dee', { viewport: PHONE, query: q });
    await phone.until(() => document.querySelectorAll('#log .msg').length === 2);
    await shot(t, phone, 'chat-phone');
    await phone.click('#toggle-members');
    await shot(t, phone, 'chat-phone-members');
    await other.close();
    for (const p of [ana, bob, phone]) await p.close();
  });

  it('offline: banner with a countdown, the message greyed until it is sent, once', LIMIT, async (t) => {
    const room = uid('off');
    const watcher = await connect(server.url(`/chat?user=${uid('w')}`));
    expectAck(await watcher.request('join', { room }), 1);
    const page = await open(uid('oli'), 'Oli', { via: proxy, query: `&rooms=${room}` });
    assert.equal(await page.locator('#banner').isHidden(), true);
    proxy.setMode('offline');
    await page.until(() => !document.getElementById('banner').hidden);
    await page.until(() => /Reconnecting in \d+ s/.test(document.getElementById('banner-text').textContent));
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'reconnecting');
    await page.fill('#text', 'sent from a tunnel');
    await page.press('#text', 'Enter');
    const pending = page.locator('#log .msg.pending');
    await pending.waitFor();
    assert.match(await pending.innerText(), /sent from a tunnel[\s\S]*Waiting for connection/);
    await page.until(() => /1 message will be sent/.test(document.getElementById('banner-text').textContent));
    await shot(t, page, 'chat-offline');
    proxy.setMode('pass');
    await page.until(() => document.querySelectorAll('#log .msg.pending').length === 0 &&
      document.querySelectorAll('#log .msg.mine').length === 1, null, 20000);
    await page.until(() => document.getElementById('banner').hidden);
    const got = await watcher.collect((m) => m.type === 'chat:message', 1000);
    assert.deepEqual(got.map((m) => m.data.text), ['sent from a tunnel'], 'sent once');
    await page.close();
  });

  it('after a restart that lost the history, keeps what it shows and marks the gap', LIMIT, async (t) => {
    const own = await startServer({ config, routes });
    const p2 = await startProxy(own.port);
    const room = uid('gap');
    const page = await open(uid('gus'), 'Gus', { via: p2, query: `&rooms=${room}` });
    for (const words of ['before the restart', 'this stays on screen']) {
      await page.fill('#text', words);
      await page.press('#text', 'Enter');
    }
    await page.until(() => document.querySelectorAll('#log .msg.mine:not(.pending)').length === 2);
    own.process.kill('SIGKILL');
    await page.until(() => !document.getElementById('banner').hidden);
    const again = await startServer({ config, routes });
    await own.stop().catch(() => {}); // killed: only its temp dir is left
    p2.setTarget(again.port);
    try {
      await page.until(() => document.querySelector('#log .gap') !== null, null, 20000);
      await page.fill('#text', 'after the restart');
      await page.press('#text', 'Enter');
      await page.until(() => document.querySelectorAll('#log .msg.mine:not(.pending)').length === 3);
      const order = await page.evaluate(() => [...document.querySelectorAll('#log .msg .text, #log .gap')].map((n) => n.textContent));
      assert.deepEqual(order, ['before the restart', 'this stays on screen', 'Some messages could not be recovered', 'after the restart']);
      await shot(t, page, 'chat-after-restart');
    } finally {
      await page.close();
      await p2.close();
      await again.stop();
    }
  });

  it('board: two windows race for a table, exactly one wins; holds count down live in both', LIMIT, async (t) => {
    const venue = uid('luna');
    const q = `&venue=${venue}`;
    const anaId = uid('ana');
    const bobId = uid('bob');
    const ana = await open(anaId, 'Ana', { hash: '#board', query: q, via: proxy });
    const bob = await open(bobId, 'Bob', { hash: '#board', query: q, via: proxy });
    const cell = (table, slot) => `#grid button[data-table="${table}"][data-slot="${slot}"]`;
    for (const p of [ana, bob]) await p.locator(cell('T3', '19:00')).waitFor();
    // Both click the same free cell; the network holds both holds until both are sent,
    // so that they reach the server together.
    proxy.setMode('pause');
    for (const p of [ana, bob]) {
      await p.click(cell('T3', '19:00'));
      await p.until((sel) => document.querySelector(sel).textContent === 'holding…', cell('T3', '19:00'));
    }
    proxy.setMode('pass');
    await ana.until((sel) => /held|hold/.test(document.querySelector(sel).textContent) &&
      !document.querySelector(sel).classList.contains('busy'), cell('T3', '19:00'));
    await bob.until((sel) => /held|hold/.test(document.querySelector(sel).textContent) &&
      !document.querySelector(sel).classList.contains('busy'), cell('T3', '19:00'));
    const mine = await Promise.all([ana, bob].map((p) => p.locator(cell('T3', '19:00')).evaluate((b) => b.classList.contains('mine'))));
    assert.equal(mine.filter(Boolean).length, 1, `exactly one window holds it: ${mine}`);
    const [winner, loser, winnerId] = mine[0] ? [ana, bob, anaId] : [bob, ana, bobId];
    assert.match(await loser.locator(cell('T3', '19:00')).innerText(), new RegExp(`held · ${winnerId}\\s+[0-2]:\\d\\d`));
    assert.match(await winner.locator(cell('T3', '19:00')).innerText(), /your hold\s+[0-2]:\d\d/);
    await loser.until(() => [...document.querySelectorAll('.toast')].some((n) => /Too late/.test(n.textContent)));
    assert.match(await winner.locator('#mine').innerText(), /T3 at 19:00 · party of 2 · expires in [0-2]:\d\d/);
    // The other window's holds appear live, with their countdown.
    await loser.selectOption('#party', '4');
    await loser.click(cell('T5', '20:00'));
    await winner.until((sel) => document.querySelector(sel).classList.contains('held'), cell('T5', '20:00'));
    assert.match(await winner.locator(cell('T5', '20:00')).innerText(), /held · .+\s+[0-2]:\d\d/);
    await winner.click('#mine .confirm');
    await loser.until((sel) => document.querySelector(sel).classList.contains('reserved'), cell('T3', '19:00'));
    assert.match(await loser.locator('#activity').innerText(), /reservation of T3 at 19:00 confirmed/);
    await shot(t, winner, 'board-desktop');
    await shot(t, loser, 'board-desktop-other-window');
    // A late arrival sees the taken cells in the snapshot; on a phone.
    const phone = await open(uid('cy'), 'Cy', { hash: '#board', query: q, viewport: PHONE });
    await phone.until((sel) => document.querySelector(sel) && document.querySelector(sel).classList.contains('reserved'), cell('T3', '19:00'));
    assert.equal(await phone.locator(cell('T5', '20:00')).evaluate((b) => b.classList.contains('held')), true);
    await shot(t, phone, 'board-phone');
    for (const p of [ana, bob, phone]) await p.close();
  });

  it('notifications: the backlog on load, live ones, read on every device', LIMIT, async (t) => {
    const user = uid('nina');
    const auth = { Authorization: `Bearer ${KEY}` };
    for (const data of [{ title: 'Your table is ready', text: 'Luna Bistro, 19:00, party of 2' }, { text: 'Deploy finished: v2.3 is live' }]) {
      assert.equal((await request('POST', server.httpUrl('/api/notify'), { headers: auth, body: { user, data } })).status, 200);
    }
    const page = await open(user, 'Nina', { hash: '#notify' });
    await page.until(() => document.querySelectorAll('#inbox li.unread').length === 2);
    assert.equal(await page.locator('#badge-notify').innerText(), '2');
    assert.equal(await page.locator('#inbox li').first().locator('.title').innerText(), 'Deploy finished: v2.3 is live', 'newest first');
    // Live: a mention in a chat room Nina is in.
    const room = uid('hall');
    await page.evaluate((room) => window.demo.views.chat.mw.join(room, { name: 'Nina' }), room);
    const max = await connect(server.url(`/chat?user=${uid('max')}`));
    expectAck(await max.request('join', { room, data: { name: 'Max' } }), 1);
    expectAck(await max.request('chat:message', { room, data: { text: `@${user} the slides are up`, name: 'Max' } }), 2);
    await page.until(() => document.querySelectorAll('#inbox li.unread').length === 3);
    assert.equal(await page.locator('#inbox li').first().locator('.title').innerText(), `Max mentioned you in #${room}`);
    assert.equal(await page.locator('#badge-notify').innerText(), '3');
    await shot(t, page, 'notifications');
    // The same person on a phone: the backlog; a read on one device reaches the other.
    const phone = await open(user, 'Nina', { hash: '#notify', viewport: PHONE });
    await phone.until(() => document.querySelectorAll('#inbox li.unread').length === 3);
    await page.locator('#inbox li').nth(1).click();
    await phone.until(() => document.querySelectorAll('#inbox li.unread').length === 2);
    await page.until(() => document.querySelectorAll('#inbox li.unread').length === 2);
    await shot(t, phone, 'notifications-phone');
    await phone.click('#read-all');
    await page.until(() => document.querySelectorAll('#inbox li.unread').length === 0);
    assert.equal(await page.locator('#badge-notify').isHidden(), true);
    await page.close();
    await phone.close();
    await max.close();
    t.diagnostic(`artifacts in ${ARTIFACTS}`);
  });
});
