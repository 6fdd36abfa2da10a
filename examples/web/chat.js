// The chat view over /chat: rooms (all joined at once, unread counts), members with
// names, typing, timestamps, your own messages on the right, pending ones greyed until
// the server has them, and a marker where a reconnect could not recover everything.
import { $, el, avatar, clock, fullTime, dayLabel, toast } from './ui.js';

const DEFAULT_ROOMS = ['lobby', 'random', 'help'];
const GROUP_MS = 5 * 60 * 1000; // messages of one person within 5 min form a group

export function startChat({ me, url, rooms }) {
  const mw = new Moonwire(url);
  const names = new Map([[me.user, me.name]]); // user id -> display name
  const state = new Map();                      // room -> its view state
  const view = { mw, shown, pendingCount, open: (room) => select(room) };
  let active = null;
  let typingSentAt = 0;

  const saved = JSON.parse(localStorage.getItem('moonwire.rooms') || '[]');
  const wanted = rooms ? rooms.split(',') : [...DEFAULT_ROOMS, ...saved.filter((r) => !DEFAULT_ROOMS.includes(r))];
  for (const room of wanted) addRoom(room);
  select(new URLSearchParams(location.search).get('room') || wanted[0]);

  function nameOf(user) { return names.get(user) || user; }

  function addRoom(room) {
    if (state.has(room)) return state.get(room);
    const R = {
      room, members: new Map(), typers: new Map(), unread: 0, live: false, count: null,
      log: el('div', { class: 'roomlog', dataset: { room } }), pending: new Map(),
      last: null, // {from, ts} of the last message shown, for grouping
      lastDay: null,
    };
    R.button = el('button', { type: 'button', onclick: () => select(room) }, el('span', {}, '# ' + room), el('span', { class: 'badge', hidden: true }));
    $('rooms').append(el('li', {}, R.button));
    state.set(room, R);
    // Joined on this connection and on every later one; history comes with the join.
    mw.join(room, { name: me.name }).then(() => { R.live = true; }, (err) => {
      sys(R, `Could not join: ${err.message}`);
    });
    return R;
  }

  function select(room) {
    const R = addRoom(room);
    active = R;
    for (const S of state.values()) S.button.classList.toggle('active', S === R);
    $('log').replaceChildren(R.log);
    $('room-name').textContent = room;
    R.unread = 0;
    renderBadges();
    renderMembers();
    renderTyping();
    scrollDown(true);
  }

  $('add-room').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $('new-room').value.trim().toLowerCase().replace(/\s+/g, '-').slice(0, 40);
    if (!room) return;
    $('new-room').value = '';
    if (!DEFAULT_ROOMS.includes(room)) {
      const list = JSON.parse(localStorage.getItem('moonwire.rooms') || '[]');
      if (!list.includes(room)) localStorage.setItem('moonwire.rooms', JSON.stringify([...list, room]));
    }
    select(room);
  });

  $('toggle-members').addEventListener('click', () => {
    const open = $('members-panel').classList.toggle('open');
    $('toggle-members').setAttribute('aria-expanded', String(open));
  });

  /* ---- the log ---- */

  function nearBottom() {
    const log = $('log');
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollDown(force) {
    const log = $('log');
    if (force || nearBottom()) requestAnimationFrame(() => { log.scrollTop = log.scrollHeight; });
  }

  // Adds a node to a room's log: before its pending messages, which stay last.
  function put(R, node) {
    const stick = R === active && nearBottom();
    const firstPending = R.pending.size ? R.pending.values().next().value.node : null;
    R.log.insertBefore(node, firstPending);
    if (stick) scrollDown(true);
  }

  function sys(R, text, cls = 'sys') {
    put(R, el('div', { class: cls }, text));
    R.last = null;
  }

  // The text with @mentions marked.
  function textNodes(text) {
    const out = [];
    let at = 0;
    for (const m of String(text).matchAll(/@([a-z0-9_.-]+)/gi)) {
      if (m.index > at) out.push(text.slice(at, m.index));
      out.push(el('span', { class: 'mention' }, m[0]));
      at = m.index + m[0].length;
    }
    out.push(String(text).slice(at));
    return out;
  }

  function messageNode(R, { from, text, ts, mine, pending }) {
    const day = dayLabel(ts);
    if (day !== R.lastDay && !pending) {
      put(R, el('div', { class: 'day' }, day));
      R.lastDay = day;
      R.last = null;
    }
    const cont = !pending && R.last && R.last.from === from && ts - R.last.ts < GROUP_MS;
    const node = el('div', { class: `msg${mine ? ' mine' : ''}${cont ? ' cont' : ''}${pending ? ' pending' : ''}` },
      avatar(from, nameOf(from)),
      el('div', { class: 'bubble' },
        el('div', { class: 'meta' }, el('span', { class: 'who', title: from }, nameOf(from)),
          el('time', { datetime: new Date(ts).toISOString(), title: fullTime(ts) }, clock(ts))),
        el('div', { class: 'text' }, textNodes(text)),
        pending ? el('div', { class: 'status' }) : null));
    if (!pending) R.last = { from, ts };
    return node;
  }

  mw.on('chat:message', (ev) => {
    const R = state.get(ev.room);
    if (!R) return;
    const d = ev.data && typeof ev.data === 'object' ? ev.data : { text: String(ev.data) };
    if (d.name && typeof d.name === 'string' && !names.has(ev.from)) names.set(ev.from, d.name);
    const mine = ev.from === me.user;
    // Ours, shown as pending until now: it takes its place in the room's order.
    const p = mine && d.cid ? R.pending.get(d.cid) : null;
    if (p) {
      p.node.remove();
      R.pending.delete(d.cid);
    }
    put(R, messageNode(R, { from: ev.from, text: d.text === undefined ? JSON.stringify(ev.data) : d.text, ts: ev.ts || Date.now(), mine }));
    stopTyping(R, ev.from);
    if (R.live && !mine && (R !== active || document.hidden || !isShown())) {
      R.unread++;
      renderBadges();
    }
  });

  /* ---- sending, with the outbox made visible ---- */

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('text').value.trim();
    if (!text || !active) return;
    $('text').value = '';
    send(active, text);
    mw.send('typing:stop', undefined, { room: active.room });
    typingSentAt = 0;
  });

  function send(R, text) {
    const cid = Math.random().toString(36).slice(2, 10);
    const req = mw.request('chat:message', { text, name: me.name, cid }, { room: R.room });
    const node = messageNode(R, { from: me.user, text, ts: Date.now(), mine: true, pending: true });
    R.pending.set(cid, { node, req, text });
    R.log.append(node);
    status(R, cid);
    scrollDown(true);
    req.catch(() => {}); // shown in the message itself, see status()
  }

  function status(R, cid) {
    const p = R.pending.get(cid);
    if (!p) return;
    const item = p.req.item;
    const line = p.node.querySelector('.status');
    p.node.classList.toggle('failed', item.status === 'failed');
    p.node.classList.toggle('pending', item.status !== 'failed');
    if (item.status === 'failed') {
      line.replaceChildren(`Not sent: ${item.error ? item.error.code : 'error'}`,
        el('button', { type: 'button', onclick: () => { drop(R, cid); send(R, p.text); } }, 'Retry'),
        el('button', { type: 'button', onclick: () => drop(R, cid) }, 'Discard'));
    } else if (item.status === 'acked') {
      // Acked but its event never came (history lost meanwhile): show it as sent.
      p.node.classList.remove('pending');
      line.remove();
      R.pending.delete(cid);
    } else {
      line.replaceChildren(mw.state === 'open' ? 'Sending…' : 'Waiting for connection…',
        el('button', { type: 'button', onclick: () => { p.req.cancel(); } }, 'Cancel'));
    }
  }

  function drop(R, cid) {
    const p = R.pending.get(cid);
    if (!p) return;
    p.node.remove();
    R.pending.delete(cid);
  }

  mw.on('request', (item) => {
    if (item.type !== 'chat:message' || !item.data || !item.data.cid) return;
    const R = state.get(item.room);
    if (!R) return;
    if (item.status === 'cancelled') return drop(R, item.data.cid);
    status(R, item.data.cid);
  });
  mw.on('state', (st) => {
    for (const R of state.values()) for (const cid of R.pending.keys()) status(R, cid);
    $('members-panel').classList.toggle('stale', st !== 'open');
  });

  function pendingCount() {
    let n = 0;
    for (const R of state.values()) n += R.pending.size;
    return n;
  }

  /* ---- members, presence, typing ---- */

  mw.on('joined', (room, ack) => {
    const R = state.get(room);
    if (!R || !ack) return;
    R.members = new Map((ack.members || []).map((m) => [m.user, m]));
    for (const m of R.members.values()) if (m.name) names.set(m.user, m.name);
    if (R === active) renderMembers();
  });

  mw.on('presence:join', (ev) => {
    const R = state.get(ev.room);
    if (!R) return;
    R.members.set(ev.data.user, ev.data);
    if (ev.data.name) names.set(ev.data.user, ev.data.name);
    sys(R, `${nameOf(ev.data.user)} joined`);
    if (R === active) renderMembers();
  });

  mw.on('presence:leave', (ev) => {
    const R = state.get(ev.room);
    if (!R) return;
    R.members.delete(ev.data.user);
    stopTyping(R, ev.data.user);
    sys(R, `${nameOf(ev.data.user)} left`);
    if (R === active) renderMembers();
  });

  mw.on('presence:count', (ev) => {
    const R = state.get(ev.room);
    if (!R) return;
    R.count = ev.data.count;
    if (R === active) renderMembers();
  });

  // History could not be fully recovered after a reconnect: what is shown stays, and
  // a marker says that something may be missing here.
  mw.on('reset', (room) => {
    const R = state.get(room);
    if (R) sys(R, 'Some messages could not be recovered', 'gap');
  });

  function renderMembers() {
    const R = active;
    const list = [...R.members.values()].sort((a, b) => (a.user === me.user ? -1 : b.user === me.user ? 1 : nameOf(a.user).localeCompare(nameOf(b.user))));
    $('members').replaceChildren(...list.map((m) => el('li', {}, avatar(m.user, nameOf(m.user), 'sm'),
      el('span', {}, nameOf(m.user), m.user === me.user ? el('small', {}, ' (you)') : null,
        m.conns > 1 ? el('small', {}, ` · ${m.conns} tabs`) : null))));
    const n = R.count !== null && R.count > R.members.size ? R.count : R.members.size;
    $('room-count').textContent = n ? `· ${n} here` : '';
    $('toggle-members').textContent = `Members (${n})`;
  }

  mw.on('typing', (ev) => {
    const R = state.get(ev.room);
    if (!R || ev.data.user === me.user) return;
    if (ev.data.typing) {
      clearTimeout(R.typers.get(ev.data.user));
      // The server says false after 5 s without news; this is a backstop.
      R.typers.set(ev.data.user, setTimeout(() => stopTyping(R, ev.data.user), 7000));
    } else {
      stopTyping(R, ev.data.user);
    }
    if (R === active) renderTyping();
  });

  function stopTyping(R, user) {
    if (!R.typers.has(user)) return;
    clearTimeout(R.typers.get(user));
    R.typers.delete(user);
    if (R === active) renderTyping();
  }

  function renderTyping() {
    const who = [...active.typers.keys()].map(nameOf);
    $('typing').textContent = who.length === 0 ? ''
      : who.length === 1 ? `${who[0]} is typing…`
        : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : `${who.length} people are typing…`;
  }

  $('text').addEventListener('input', () => {
    if (!active) return;
    const now = Date.now();
    if ($('text').value.trim() === '') {
      if (typingSentAt) mw.send('typing:stop', undefined, { room: active.room });
      typingSentAt = 0;
    } else if (now - typingSentAt > 2000) {
      mw.send('typing:start', undefined, { room: active.room });
      typingSentAt = now;
    }
  });

  /* ---- badges ---- */

  function isShown() { return !$('view-chat').hidden; }

  function renderBadges() {
    let total = 0;
    for (const R of state.values()) {
      const b = R.button.querySelector('.badge');
      b.hidden = R.unread === 0;
      b.textContent = R.unread;
      total += R.unread;
    }
    $('badge-chat').hidden = total === 0 || isShown();
    $('badge-chat').textContent = total;
  }

  function shown() {
    if (active) {
      active.unread = 0;
      renderBadges();
      scrollDown(true);
    }
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden && isShown()) shown(); });
  mw.on('error', (err) => toast(`Chat: ${err.message}`, { bad: true }));
  return view;
}
