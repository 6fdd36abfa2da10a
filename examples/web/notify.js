// The notifications view over /notify: the unread backlog on every connect, new ones
// live, and read marks shared by all your devices.
import { $, el, ago, fullTime } from './ui.js';

// A bell, drawn (no emoji font needed).
function bell() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1z');
  svg.append(path);
  return svg;
}

// What a notification says: mentions from the chat, else the payload's text or title.
function describe(data) {
  if (data && typeof data === 'object') {
    if (data.kind === 'mention') {
      return { icon: '@', title: `${data.name || data.from} mentioned you in #${data.room}`, sub: data.text };
    }
    const title = data.title || data.text;
    if (title) return { icon: bell(), title: String(title), sub: data.title && data.text ? String(data.text) : '' };
  }
  return { icon: bell(), title: 'Notification', sub: typeof data === 'string' ? data : JSON.stringify(data) };
}

export function startNotify({ url }) {
  const mw = new Moonwire(url);
  const items = new Map(); // id -> {id, ts, data, read, node}
  const view = { mw, shown, onLive: null, onOpen: null };

  function add(it, fresh) {
    if (items.has(it.id)) return items.get(it.id); // a push that raced the backlog
    const d = describe(it.data);
    const entry = { ...it, ...d, read: false };
    const click = () => {
      read([it.id]);
      if (view.onOpen) view.onOpen(it.data);
    };
    entry.node = el('li', { class: `unread${fresh ? ' fresh' : ''}`, dataset: { id: it.id }, onclick: click },
      el('span', { class: 'icon', 'aria-hidden': 'true' }, d.icon),
      el('div', { class: 'body' }, el('div', { class: 'title' }, d.title),
        d.sub ? el('div', { class: 'sub' }, d.sub) : null,
        el('time', { class: 'sub', dataset: { ts: it.ts }, title: fullTime(it.ts) }, ago(it.ts))),
      el('span', { class: 'dot', 'aria-label': 'unread' }));
    items.set(it.id, entry);
    // Newest first.
    const after = [...$('inbox').children].find((n) => Number(items.get(n.dataset.id).ts) < it.ts);
    $('inbox').insertBefore(entry.node, after || null);
    return entry;
  }

  function markRead(ids) {
    for (const id of ids) {
      const e = items.get(id);
      if (!e || e.read) continue;
      e.read = true;
      e.node.className = 'read';
    }
    render();
  }

  function read(ids) {
    const unread = ids.filter((id) => items.has(id) && !items.get(id).read);
    if (!unread.length) return;
    // Every device of the user, this one too, gets notify:read with what was removed.
    mw.request('notify:read', { ids: unread }).catch(() => {});
  }

  // On every connect: the complete list of what is unread. What we show as unread and
  // is not in it was read on another device meanwhile.
  mw.on('notify:backlog', (ev) => {
    const ids = new Set();
    for (const it of ev.data.items) {
      ids.add(it.id);
      add(it, false);
    }
    markRead([...items.values()].filter((e) => !e.read && !ids.has(e.id)).map((e) => e.id));
  });

  mw.on('notify', (ev) => {
    const e = add(ev.data, true);
    render();
    if (view.onLive && !e.read) view.onLive(e);
  });

  mw.on('notify:read', (ev) => markRead(ev.data.ids));

  function render() {
    const unread = [...items.values()].filter((e) => !e.read).length;
    $('badge-notify').hidden = unread === 0;
    $('badge-notify').textContent = unread;
    $('read-all').disabled = unread === 0;
    $('inbox-empty').hidden = items.size > 0;
  }

  $('read-all').addEventListener('click', () => {
    read([...items.values()].filter((e) => !e.read).map((e) => e.id).slice(0, 100));
  });

  setInterval(() => {
    for (const t of $('inbox').querySelectorAll('time[data-ts]')) t.textContent = ago(Number(t.dataset.ts));
  }, 15000);

  function shown() { render(); }
  render();
  return view;
}
