#!/usr/bin/env node
// Prints the comparison table of a `make bench` run: the median over rounds of each
// figure, per server, and the moonwire/node ratio.
// Usage: node tests/bench/table.js RESULTS_FILE
// RESULTS_FILE holds the lines run.sh wrote: "round=N server=S run=R result k=v ...".
'use strict';

const fs = require('node:fs');

// One row per figure: the run it comes from, the key in its result line, the unit,
// and which way is better.
const ROWS = [
  ['ramp', 'best_dps', 'fan-out ceiling 1 -> FANOUT_MEMBERS, p99 <= 100 ms (deliveries/s)', 'higher'],
  ['fanout', 'deliveries_per_s', 'fan-out 1 -> FANOUT_MEMBERS at FANOUT_RATE msg/s (deliveries/s)', 'higher'],
  ['fanout', 'p50_ms', '  latency p50 (ms)', 'lower'],
  ['fanout', 'p99_ms', '  latency p99 (ms)', 'lower'],
  ['chat10', 'p50_ms', 'chat 100 rooms x 10 @ 10 msg/s: p50 (ms)', 'lower'],
  ['chat10', 'p99_ms', '  p99 (ms)', 'lower'],
  ['chat10', 'server_cpu_pct', '  server CPU (%)', 'lower'],
  ['chat1', 'p50_ms', 'chat 100 rooms x 10 @ 1 msg/s: p50 (ms)', 'lower'],
  ['chat1', 'p99_ms', '  p99 (ms)', 'lower'],
  ['chat1', 'server_cpu_pct', '  server CPU (%)', 'lower'],
  ['idle', 'kib_per_conn', 'memory per idle connection at IDLE_N (KiB)', 'lower'],
  ['connect', 'connects_per_s', 'handshake + hello + join per second', 'higher'],
  ['connect', 'connects_per_server_cpu_s', '  per server CPU-second', 'higher'],
];

function parse(file) {
  const runs = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const kv = {};
    for (const tok of line.split(/\s+/)) {
      const i = tok.indexOf('=');
      if (i > 0) kv[tok.slice(0, i)] = tok.slice(i + 1);
    }
    runs.push(kv);
  }
  return runs;
}

function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(v) {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtRatio(r) {
  if (r === undefined || !Number.isFinite(r)) return '-';
  if (r >= 10) return r.toFixed(0) + 'x';
  if (r >= 0.1) return r.toFixed(2) + 'x';
  return r.toPrecision(2) + 'x';
}

function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: table.js RESULTS_FILE');
    process.exit(2);
  }
  const runs = parse(file).filter((r) => r.run && r.server);
  const servers = [...new Set(runs.map((r) => r.server))];
  const [a, b] = [servers.includes('moonwire') ? 'moonwire' : servers[0], servers.find((s) => s !== 'moonwire')];
  const env = {
    FANOUT_RATE: process.env.FANOUT_RATE || '50',
    FANOUT_MEMBERS: process.env.FANOUT_MEMBERS || '1000',
    IDLE_N: process.env.IDLE_N || '10000',
  };
  const values = (run, key, server) =>
    runs.filter((r) => r.run === run && r.server === server && r[key] !== undefined && r[key] !== '-')
      .map((r) => Number(r[key])).filter((v) => !Number.isNaN(v));

  const rounds = new Set(runs.map((r) => r.round)).size;
  const head = ['figure (median of ' + rounds + ' rounds)', a, b || '', b ? `${a}/${b}` : '', 'better', 'gen CPU max %'];
  const rows = [head];
  for (const [run, key, label, better] of ROWS) {
    const va = values(run, key, a);
    const vb = b ? values(run, key, b) : [];
    if (!va.length && !vb.length) continue;
    const ma = va.length ? median(va) : undefined;
    const mb = vb.length ? median(vb) : undefined;
    const ratio = ma !== undefined && mb ? ma / mb : undefined;
    const gen = [a, b].filter(Boolean).map((s) => {
      const g = values(run, 'gen_cpu_pct', s);
      return g.length ? Math.max(...g).toFixed(0) : '-';
    }).join(' / ');
    rows.push([label.replace(/FANOUT_RATE|FANOUT_MEMBERS|IDLE_N/g, (k) => env[k]), fmt(ma), fmt(mb),
      fmtRatio(ratio), better, gen]);
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((c, j) => (j === 0 ? String(c).padEnd(widths[j]) : String(c).padStart(widths[j]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }

  // Anything that makes a figure suspect: loss, failures, a saturated generator.
  const notes = [];
  for (const r of runs) {
    const what = `${r.run} ${r.server} round ${r.round}`;
    if (Number(r.loss) > 0) notes.push(`${what}: ${r.loss} of ${r.expected} deliveries missing after the drain time`);
    if (r.send_bursty === '1') notes.push(`${what}: the generator fell behind its send schedule (p99 ${r.send_lag_p99_ms} ms late): messages went out in bursts`);
    if (Number(r.other_cpu_pct) > 25) notes.push(`${what}: other load on the machine during the run (${r.other_cpu_pct}% of a CPU)`);
    if (Number(r.conn_failed) > 0 || Number(r.closed) > 0) {
      notes.push(`${what}: ${r.conn_failed} connections failed, ${r.closed} closed (${r.first_failure || '-'})`);
    }
    if (Number(r.errors) > 0) notes.push(`${what}: ${r.errors} error replies (${r.first_error || '-'})`);
    if (r.gen_saturated === '1') notes.push(`${what}: generator saturated (${r.gen_cpu_pct}% CPU): a lower bound`);
    if (r.capped_by_nofile === '1') notes.push(`${what}: connections capped by the open-files limit`);
    if (r.crashed) notes.push(`${what}: SERVER DIED (${r.crashed})`);
  }
  if (notes.length) {
    console.log('\nnotes:');
    for (const n of notes) console.log('  ' + n);
  }
}

main();
