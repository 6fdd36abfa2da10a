#!/usr/bin/env node
// Prints the comparison table of a `make bench` run: the median over rounds of each
// figure, per server, and moonwire's ratio to each other server.
// Usage: node tests/bench/table.js RESULTS_FILE
// RESULTS_FILE holds the lines run.sh wrote: "round=N server=S run=R k=v ...".
'use strict';

const fs = require('node:fs');

// One row per figure: the run it comes from, the key in its result line, the label,
// and which way is better. The hbS:N runs get their rows from hbRows below.
const ROWS = [
  ['ramp', 'best_dps', 'fan-out ceiling 1 -> FANOUT_MEMBERS, p99 <= 100 ms, no loss (deliveries/s)', 'higher'],
  ['ramp', 'server_cpu_pct', '  server CPU at the ceiling (%)', ''],
  ['ramp', 'gen_cpu_pct', '  generator CPU at the ceiling (%; >= 90: the generator was the limit)', 'lower'],
  ['ramp', 'best_p99_ms', '  p99 at the ceiling (ms)', 'lower'],
  ['fanout', 'deliveries_per_s', 'fan-out 1 -> FANOUT_MEMBERS at FANOUT_RATE msg/s (deliveries/s)', 'higher'],
  ['fanout', 'loss_pct', '  loss (%)', 'lower'],
  ['fanout', 'p50_ms', '  latency p50 (ms)', 'lower'],
  ['fanout', 'p99_ms', '  latency p99 (ms)', 'lower'],
  ['fanout', 'server_cpu_pct', '  server CPU (%)', 'lower'],
  ['chat10', 'server_cpu_pct', 'chat 100 rooms x 10 @ 10 msg/s: server CPU (%)', 'lower'],
  ['chat10', 'p50_ms', '  p50 (ms)', 'lower'],
  ['chat10', 'p99_ms', '  p99 (ms)', 'lower'],
  ['chat1', 'p50_ms', 'chat 100 rooms x 10 @ 1 msg/s: p50 (ms)', 'lower'],
  ['chat1', 'p99_ms', '  p99 (ms)', 'lower'],
  ['chat1', 'server_cpu_pct', '  server CPU (%)', 'lower'],
  ['connect', 'connects_per_server_cpu_s', 'handshake + hello + join per server CPU-second', 'higher'],
  ['connect', 'connects_per_s', '  per second', 'higher'],
  ['idle', 'bytes_per_conn', 'memory per idle connection at IDLE_N (bytes)', 'lower'],
  ['chat5', 'p99_ms', 'chat 100 rooms x 10 @ 5 msg/s, nothing beside it: p99 (ms)', 'lower'],
  ['chat5', 'p999_ms', '  p99.9 (ms)', 'lower'],
  ['chat5', 'server_cpu_pct', '  server CPU (%)', 'lower'],
];

function hbRows(run) {
  const [hb, idle] = run.split(':');
  const beat = hb === 'hbdefault' ? 'the servers\' default heartbeat' : `heartbeat ${hb.slice(2)} s`;
  return [
    [run, 'p99_ms', `chat @ 5 msg/s + ${Number(idle).toLocaleString('en-US')} idle, ${beat}: p99 (ms)`, 'lower'],
    [run, 'p999_ms', '  p99.9 (ms)', 'lower'],
    [run, 'max_ms', '  max (ms)', 'lower'],
    [run, 'server_cpu_pct', '  server CPU (%)', 'lower'],
  ];
}

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
  const order = ['moonwire', 'uws', 'node'];
  const servers = [...new Set(runs.map((r) => r.server))]
    .sort((x, y) => (order.indexOf(x) + 1 || 99) - (order.indexOf(y) + 1 || 99));
  const main = servers.includes('moonwire') ? 'moonwire' : servers[0];
  const others = servers.filter((s) => s !== main);
  const env = {
    FANOUT_RATE: process.env.FANOUT_RATE || '1000',
    FANOUT_MEMBERS: process.env.FANOUT_MEMBERS || '1000',
    IDLE_N: Number(process.env.IDLE_N || '19000').toLocaleString('en-US'),
  };
  const values = (run, key, server) =>
    runs.filter((r) => r.run === run && r.server === server && r[key] !== undefined && r[key] !== '-')
      .map((r) => Number(r[key])).filter((v) => !Number.isNaN(v));

  const hbRuns = [...new Set(runs.map((r) => r.run).filter((r) => /^hb/.test(r)))]
    .sort((a, b) => (a.startsWith('hbdefault') - b.startsWith('hbdefault')) || a.localeCompare(b, 'en', { numeric: true }));
  const rows = ROWS.concat(...hbRuns.map(hbRows));

  const rounds = new Set(runs.map((r) => r.round)).size;
  const head = [`figure (median of ${rounds} rounds)`, ...servers, ...others.map((o) => `${main}/${o}`),
    'better', `gen CPU max % (${servers.join(' / ')})`];
  const out = [head];
  for (const [run, key, label, better] of rows) {
    const med = servers.map((s) => {
      const v = values(run, key, s);
      return v.length ? median(v) : undefined;
    });
    if (med.every((m) => m === undefined)) continue;
    const ratios = others.map((o) => {
      const a = med[servers.indexOf(main)];
      const b = med[servers.indexOf(o)];
      return a !== undefined && b ? a / b : undefined;
    });
    const gen = servers.map((s) => {
      const g = values(run, 'gen_cpu_pct', s);
      return g.length ? Math.max(...g).toFixed(0) : '-';
    }).join(' / ');
    out.push([label.replace(/FANOUT_RATE|FANOUT_MEMBERS|IDLE_N/g, (k) => env[k]), ...med.map(fmt),
      ...ratios.map(fmtRatio), better, gen]);
  }
  const widths = head.map((_, i) => Math.max(...out.map((r) => String(r[i]).length)));
  for (const [i, r] of out.entries()) {
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
    if (r.failed) notes.push(`${what}: no result (${r.failed})`);
  }
  if (notes.length) {
    console.log('\nnotes:');
    for (const n of notes) console.log('  ' + n);
  }
}

main();
