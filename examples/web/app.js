// The demo's shell: who you are, which view is shown, and the connection state of
// that view's route (the pill in the top bar, the offline banner with its countdown).
import { startChat } from './chat.js';
import { startBoard } from './board.js';
import { startNotify } from './notify.js';
import { $, avatar, toast } from './ui.js';

const params = new URLSearchParams(location.search);

// Your user id comes from your name (the demo uses the server's dev `user` parameter:
// anyone can be anyone). ?user=ana&name=Ana pins both, for links and tests.
function slug(name) {
  return name.trim().toLowerCase().replace(/[^a-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 32);
}

function identity() {
  const user = params.get('user');
  if (user) return { user, name: params.get('name') || user };
  const name = localStorage.getItem('moonwire.name');
  return name && slug(name) ? { user: slug(name), name } : null;
}

function askName() {
  const dialog = $('name-dialog');
  $('name-input').value = localStorage.getItem('moonwire.name') || '';
  dialog.showModal();
  dialog.addEventListener('close', () => {
    const name = $('name-input').value.trim();
    if (!slug(name)) return askName();
    localStorage.setItem('moonwire.name', name);
    location.reload(); // every connection starts over as the new user
  }, { once: true });
}

const me = identity();
$('me').addEventListener('click', askName);
if (!me) {
  askName();
} else {
  start(me);
}

function start(me) {
  $('me-name').textContent = me.name;
  $('me-avatar').replaceWith(avatar(me.user, me.name, 'sm'));
  const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  const q = `?user=${encodeURIComponent(me.user)}`;
  const views = {
    chat: startChat({ me, url: `${ws}/chat${q}`, rooms: params.get('rooms') }),
    board: startBoard({ me, url: `${ws}/reservations${q}`, venue: params.get('venue') || 'demo' }),
    notify: startNotify({ me, url: `${ws}/notify${q}` }),
  };
  window.demo = { me, views }; // for the console (and the browser tests)

  let active = null;
  function show() {
    const name = (location.hash || '#chat').slice(1);
    active = views[name] ? name : 'chat';
    for (const el of document.querySelectorAll('.view')) el.hidden = el.dataset.view !== active;
    for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === active);
    views[active].shown();
    status();
  }
  window.addEventListener('hashchange', show);

  // The active view's connection, in the pill; when it is not open, the banner says
  // why and when the next attempt is, with a button to try at once.
  function status() {
    const mw = views[active].mw;
    const conn = $('conn');
    conn.dataset.state = mw.state;
    const labels = { open: 'online', connecting: 'connecting', reconnecting: 'offline', closed: 'closed' };
    $('conn-text').textContent = labels[mw.state] || mw.state;
    const down = mw.state === 'reconnecting' || (mw.state === 'connecting' && mw.stats.attempts > 1);
    $('banner').hidden = !down;
    if (!down) return;
    const pending = views[active].pendingCount ? views[active].pendingCount() : 0;
    const waiting = pending ? ` ${pending} message${pending > 1 ? 's' : ''} will be sent when you are back.` : '';
    let when;
    if (mw.retryAt && !mw.t) {
      const s = Math.max(0, Math.ceil((mw.retryAt - Date.now()) / 1000));
      when = s > 0 ? `Reconnecting in ${s} s.` : 'Reconnecting…';
    } else {
      when = 'Connecting…';
    }
    $('banner-text').textContent = `You are offline. ${when}${waiting}`;
    $('retry').hidden = !!mw.t;
  }
  for (const v of Object.values(views)) {
    v.mw.on('state', status);
    v.mw.on('retry', status);
    v.mw.on('request', status);
  }
  setInterval(status, 250);
  $('retry').addEventListener('click', () => views[active].mw.retryNow());
  show();

  // A notification while you look elsewhere: a toast and the badge.
  views.notify.onLive = (item) => {
    if (active !== 'notify') toast(item.title, { href: '#notify' });
  };
  // A mention opens its room.
  views.notify.onOpen = (data) => {
    if (!data || data.kind !== 'mention' || typeof data.room !== 'string') return;
    views.chat.open(data.room);
    location.hash = '#chat';
  };
}
