// The booking board over /reservations: a venue's tables by time slot, live. A click
// on a free cell holds it (exactly one of any racing holds wins); a hold counts down
// until you confirm it or it expires; everyone's board changes as it happens.
import { $, el, clock, mmss, toast } from './ui.js';

// A venue the server does not describe accepts any table and slot: the demo then
// shows this one.
const DEMO_TABLES = [['T1', 2], ['T2', 2], ['T3', 4], ['T4', 4], ['T5', 6], ['T6', 8]];
const DEMO_SLOTS = ['18:00', '18:30', '19:00', '19:30', '20:00', '20:30', '21:00'];

const key = (table, slot) => `${table}\u0000${slot}`;

// "18:00", "18:30", ... from open until before close (opening hours of a venue).
function halfHours(open, close) {
  const min = (hm) => { const [h, m] = String(hm).split(':').map(Number); return h * 60 + m; };
  const out = [];
  for (let t = min(open); t < min(close) && out.length < 48; t += 30) {
    out.push(`${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`);
  }
  return out;
}

// The join's snapshot, whatever its exact layout: tables (with capacities when the
// venue is described), slots, and the cells that are not free.
function readSnapshot(ack) {
  const out = { tables: [], slots: [], cells: [] };
  const tables = ack.tables || (ack.venue && ack.venue.tables) || [];
  const list = Array.isArray(tables) ? tables : Object.entries(tables).map(([id, t]) => ({ id, ...(typeof t === 'object' ? t : { capacity: t }) }));
  for (const t of list) {
    const id = String(t.id || t.table || t.name);
    out.tables.push({ id, capacity: t.capacity || t.seats || null });
    if (t.slots && !Array.isArray(t.slots)) {
      for (const [slot, s] of Object.entries(t.slots)) out.cells.push({ table: id, slot, ...(typeof s === 'object' ? s : { status: s }) });
    }
  }
  const slots = ack.slots || (ack.venue && ack.venue.slots);
  if (Array.isArray(slots)) out.slots = slots.map(String);
  else if (ack.hours && ack.hours.open && ack.hours.close) out.slots = halfHours(ack.hours.open, ack.hours.close);
  for (const name of ['reservations', 'holds', 'cells', 'statuses', 'taken']) {
    if (Array.isArray(ack[name])) out.cells.push(...ack[name]);
  }
  return out;
}

export function startBoard({ me, url, venue }) {
  const room = `venue:${venue}`;
  const mw = new Moonwire(url);
  const view = { mw, shown };
  let tables = [];
  let slots = [];
  const cells = new Map(); // key -> {status, reservation, user, party, expires_at}
  const busy = new Set();  // keys with a hold on its way
  $('venue-name').textContent = venue === 'demo' ? 'Luna Bistro · tonight' : venue;

  mw.join(room).catch((err) => toast(`Board: ${err.message}`, { bad: true }));

  mw.on('joined', (r, ack) => {
    if (r !== room) return;
    const snap = readSnapshot(ack || {});
    // A described venue lists every table with its seats; an undescribed one only the
    // tables something is happening on: those join the demo's layout.
    const described = snap.tables.some((t) => t.capacity) || snap.slots.length > 0;
    tables = described ? snap.tables : DEMO_TABLES.map(([id, capacity]) => ({ id, capacity }));
    slots = snap.slots.length ? snap.slots : [...DEMO_SLOTS];
    for (const t of snap.tables) if (!tables.some((x) => x.id === t.id)) tables.push(t);
    // The snapshot replaces what we knew: it is the state after any gap.
    cells.clear();
    for (const c of snap.cells) {
      const status = c.status === 'confirmed' ? 'reserved' : c.status;
      if (status && status !== 'free' && status !== 'cancelled' && status !== 'expired') {
        cells.set(key(c.table, c.slot), { ...c, status });
        ensure(c.table, c.slot);
      }
    }
    drawGrid();
    renderMine();
    // The snapshot says which cells are taken; our own holds come with their ids and
    // times, so that a reload can still confirm them.
    mw.request('reservation:mine', undefined, { room }).then((d) => {
      for (const c of (d && d.reservations) || []) {
        const status = c.status === 'confirmed' ? 'reserved' : c.status;
        if (status !== 'held' && status !== 'reserved') continue;
        ensure(c.table, c.slot);
        cells.set(key(c.table, c.slot), { ...c, status });
      }
      drawGrid();
      renderMine();
    }, () => {});
  });

  // A table or slot the layout did not list (an undescribed venue) gets a place.
  function ensure(table, slot) {
    if (!tables.some((t) => t.id === table)) tables.push({ id: table, capacity: null });
    if (!slots.includes(slot)) slots.push(slot);
  }

  function who(user) { return user === me.user ? 'you' : user; }

  function drawGrid() {
    const head = el('tr', {}, el('th', {}, ''), slots.map((s) => el('th', { scope: 'col' }, s)));
    const rows = tables.map((t) => el('tr', {},
      el('th', { scope: 'row', class: 'table-name' }, t.id, t.capacity ? el('small', {}, `${t.capacity} seats`) : null),
      slots.map((s) => el('td', {}, cellButton(t, s)))));
    $('grid').replaceChildren(el('thead', {}, head), el('tbody', {}, rows));
  }

  function cellButton(t, slot) {
    const k = key(t.id, slot);
    const b = el('button', { type: 'button', class: 'cell', dataset: { table: t.id, slot }, onclick: () => hold(t, slot) });
    paint(b, k, t);
    return b;
  }

  // replaceChildren() would write "null" for a missing child.
  const fill = (node, ...kids) => node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined));

  function paint(b, k, t) {
    const c = cells.get(k);
    const party = Number($('party').value);
    const status = c ? c.status : 'free';
    const mine = c && c.user === me.user;
    b.className = `cell ${status}${mine ? ' mine' : ''}${busy.has(k) ? ' busy' : ''}${!c && t && t.capacity && party > t.capacity ? ' too-small' : ''}`;
    b.disabled = status !== 'free' || busy.has(k);
    if (status === 'free') {
      fill(b, el('span', { class: 'label' }, busy.has(k) ? 'holding…' : 'free'));
      b.title = `Hold ${t ? t.id : ''} at ${b.dataset.slot}`;
    } else if (status === 'held') {
      fill(b, el('span', {}, mine ? 'your hold' : `held${c.user ? ' · ' + who(c.user) : ''}`),
        c.expires_at ? el('span', { class: 'count', dataset: { expires: c.expires_at } }, mmss(c.expires_at - Date.now())) : null);
      b.title = c.party ? `party of ${c.party}` : '';
    } else {
      fill(b, el('span', {}, 'reserved'), c.user ? el('span', {}, who(c.user)) : null);
      b.title = c.party ? `party of ${c.party}` : '';
    }
  }

  function repaint(table, slot) {
    const b = $('grid').querySelector(`button[data-table="${CSS.escape(table)}"][data-slot="${CSS.escape(slot)}"]`);
    if (!b) return drawGrid();
    paint(b, key(table, slot), tables.find((t) => t.id === table));
  }

  $('party').addEventListener('change', drawGrid);

  /* ---- holding, confirming, cancelling ---- */

  async function hold(t, slot) {
    const k = key(t.id, slot);
    const party = Number($('party').value);
    if (t.capacity && party > t.capacity) return toast(`${t.id} seats ${t.capacity}; pick a bigger table`, { bad: true });
    busy.add(k);
    repaint(t.id, slot);
    try {
      const ack = await mw.request('reservation:hold', { table: t.id, slot, party }, { room });
      // The room's reservation:created usually came first; the ack is ours for sure.
      const c = cells.get(k);
      if (!c || c.reservation !== ack.reservation) {
        cells.set(k, { status: 'held', reservation: ack.reservation, user: me.user, party, expires_at: ack.expires_at, table: t.id, slot });
      }
      toast(`${t.id} at ${slot} is yours for ${mmss(ack.expires_at - Date.now())}: confirm it below`);
    } catch (err) {
      if (err.code === 'conflict') toast(`Too late: ${t.id} at ${slot} was just taken`, { bad: true });
      else toast(`Could not hold ${t.id} at ${slot}: ${err.message}`, { bad: true });
    } finally {
      busy.delete(k);
      repaint(t.id, slot);
      renderMine();
    }
  }

  async function act(type, c) {
    try {
      await mw.request(type, { reservation: c.reservation }, { room });
    } catch (err) {
      toast(`${type === 'reservation:confirm' ? 'Confirm' : 'Cancel'} failed: ${err.message}`, { bad: true });
    }
  }

  function renderMine() {
    const mine = [...cells.values()].filter((c) => c.user === me.user);
    if (!mine.length) return $('mine').replaceChildren(el('li', { class: 'muted empty' }, 'None yet. Click a free cell to hold a table.'));
    $('mine').replaceChildren(...mine.map((c) => el('li', {},
      el('span', { class: 'what' }, el('b', {}, c.table), ` at ${c.slot}`, c.party ? ` · party of ${c.party}` : '',
        c.status === 'held' && c.expires_at ? el('span', {}, ' · expires in ', el('span', { class: 'countdown', dataset: { expires: c.expires_at } }, mmss(c.expires_at - Date.now()))) : ' · confirmed'),
      c.status === 'held' ? el('button', { type: 'button', class: 'confirm', onclick: () => act('reservation:confirm', c) }, 'Confirm') : null,
      el('button', { type: 'button', class: 'cancel', onclick: () => act('reservation:cancel', c) }, 'Cancel'))));
  }

  /* ---- the room's events ---- */

  function activity(text) {
    const empty = $('activity').querySelector('.empty');
    if (empty) empty.remove();
    $('activity').prepend(el('li', {}, el('time', {}, clock(Date.now())), el('span', {}, text)));
    while ($('activity').children.length > 30) $('activity').lastChild.remove();
  }

  mw.on('reservation:created', (ev) => {
    const d = ev.data;
    ensure(d.table, d.slot);
    cells.set(key(d.table, d.slot), { ...d, status: 'held' });
    repaint(d.table, d.slot);
    renderMine();
    activity(`${d.user === me.user ? 'You' : d.user} held ${d.table} at ${d.slot}${d.party ? ` for ${d.party}` : ''}`);
  });

  mw.on('reservation:updated', (ev) => {
    const d = ev.data;
    const k = key(d.table, d.slot);
    const c = cells.get(k);
    const owner = c && c.reservation === d.reservation ? c.user : null;
    if (d.status === 'confirmed') cells.set(k, { ...(c || {}), ...d, status: 'reserved' });
    else if (c && c.reservation === d.reservation) cells.delete(k);
    repaint(d.table, d.slot);
    renderMine();
    const by = owner === me.user ? 'Your' : owner ? `${owner}'s` : 'A';
    const verb = { confirmed: 'confirmed', cancelled: 'cancelled', expired: 'expired' }[d.status] || d.status;
    activity(`${by} ${d.status === 'confirmed' ? 'reservation' : 'hold'} of ${d.table} at ${d.slot} ${verb}`);
    if (owner === me.user && d.status === 'expired') toast(`Your hold on ${d.table} at ${d.slot} expired`, { bad: true });
  });

  mw.on('table:status_changed', (ev) => {
    const d = ev.data;
    const k = key(d.table, d.slot);
    const c = cells.get(k);
    ensure(d.table, d.slot);
    if (d.status === 'free') cells.delete(k);
    else cells.set(k, { ...(c || { table: d.table, slot: d.slot }), status: d.status });
    repaint(d.table, d.slot);
  });

  // Countdowns tick; a hold past its time shows 0:00 until the server expires it.
  setInterval(() => {
    for (const n of document.querySelectorAll('#view-board [data-expires]')) n.textContent = mmss(Number(n.dataset.expires) - Date.now());
  }, 250);

  mw.on('error', (err) => toast(`Board: ${err.message}`, { bad: true }));

  function shown() {}
  return view;
}
