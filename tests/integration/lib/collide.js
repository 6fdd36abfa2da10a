// Room names that all have one FNV-1a hash: the unkeyed hash moonwire's maps used
// before they were keyed with SipHash (docs/security.md). Per block, two different
// 6-letter strings take FNV-1a from the same state to the same state (a birthday
// search, ~2^16.5 tries); a name picks one string of each pair, so 17 blocks give 2^17
// names of 102 bytes. Deterministic (fixed seed); about half a second.
'use strict';

const BLOCK = 6;
const FNV_OFFSET = 2166136261;

function fnv1a(h, s) {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h >>> 0;
}

function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

function collidingPair(h, next) {
  const seen = new Map();
  for (let tries = 0; tries < 4e6; tries++) {
    let s = '';
    for (let i = 0; i < BLOCK; i++) s += String.fromCharCode(97 + (next() % 26));
    const st = fnv1a(h, s);
    const prev = seen.get(st);
    if (prev !== undefined && prev !== s) return { a: prev, b: s, state: st };
    seen.set(st, s);
  }
  throw new Error('no FNV-1a collision found');
}

// n names (n <= 2^17) that share one FNV-1a hash, and that hash.
function collidingNames(n) {
  const blocks = Math.ceil(Math.log2(Math.max(n, 2)));
  if (blocks > 17) throw new Error('at most 2^17 names of at most 128 bytes');
  const next = rng(0x9e3779b9);
  const pairs = [];
  let h = FNV_OFFSET;
  for (let i = 0; i < blocks; i++) {
    const p = collidingPair(h, next);
    pairs.push([p.a, p.b]);
    h = p.state;
  }
  const names = new Array(n);
  for (let k = 0; k < n; k++) {
    let name = '';
    for (let i = 0; i < blocks; i++) name += pairs[i][(k >>> i) & 1];
    names[k] = name;
  }
  return { names, hash: h };
}

module.exports = { collidingNames, fnv1a, FNV_OFFSET };
