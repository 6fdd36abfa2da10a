// Small DOM helpers shared by the demo's views.

export const $ = (id) => document.getElementById(id);

// el('li', {class: 'x', onclick: fn}, child, 'text', ...) -> an element. Text is
// always set as text, never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// A stable colour per user id.
export function colorOf(user) {
  let h = 0;
  for (const ch of String(user)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 52%)`;
}

export function initials(name) {
  const parts = String(name).trim().split(/[\s._-]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 1);
  return s.toUpperCase();
}

export function avatar(user, name, size) {
  return el('span', { class: `avatar${size ? ' ' + size : ''}`, style: `background:${colorOf(user)}`, 'aria-hidden': 'true' },
    initials(name || user));
}

const hm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
export const clock = (ms) => hm.format(new Date(ms));
export const fullTime = (ms) => full.format(new Date(ms));

export function dayLabel(ms) {
  const d = new Date(ms);
  const today = new Date();
  const y = new Date(today);
  y.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === y.toDateString()) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', month: 'short', day: 'numeric' });
}

export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

// "1:05" for 65 seconds.
export function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function toast(text, { bad = false, href = null, ms = 4000 } = {}) {
  const t = el(href ? 'a' : 'div', { class: `toast${bad ? ' bad' : ''}`, href, style: href ? 'text-decoration:none' : null }, text);
  $('toasts').append(t);
  setTimeout(() => t.remove(), ms);
}
