// Reads a /metrics page with a real Prometheus parser (the official Python client's,
// Debian's python3-prometheus-client) and checks it against the text format and the
// Prometheus naming conventions.
'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { request } = require('./http');

// Debian's interpreter: the package is installed for it (a python3 earlier in PATH,
// such as a pyenv one, would not see it).
const PYTHON = process.env.MOONWIRE_PYTHON || '/usr/bin/python3';

const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({'name': f.name, 'type': f.type, 'help': f.documentation,
                'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value}
                            for s in f.samples]})
json.dump(out, sys.stdout)
`;

// The families of a page, as the Python client parses them: [{name, type, help,
// samples: [{name, labels, value}]}] (a counter's family name without `_total`, as
// that parser names them). Throws with the parser's error on a page it cannot read.
function parse(text) {
  const r = spawnSync(PYTHON, ['-c', PARSE], { input: text, encoding: 'utf8', timeout: 10000 });
  if (r.error) throw new Error(`${PYTHON}: ${r.error.message} (apt-get install python3-prometheus-client)`);
  if (r.status !== 0) throw new Error(`the Prometheus parser refused the page:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

const BASE_UNIT_SUFFIXES = ['_seconds', '_bytes'];
const NON_BASE_UNITS = /_(ms|msec|milliseconds|us|microseconds|ns|nanoseconds|minutes|hours|kb|kib|mb|mib)(_|$)/;

function labelKey(labels) {
  return Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',');
}

// Histogram rules for one family: per label set, buckets in ascending `le`, cumulative,
// a +Inf bucket equal to _count, and a _sum.
function checkHistogram(f) {
  const sets = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = labelKey(rest);
    if (!sets.has(key)) sets.set(key, { buckets: [], sum: undefined, count: undefined });
    const set = sets.get(key);
    if (s.name === `${f.name}_bucket`) {
      assert.ok(le !== undefined, `${f.name}{${key}}: a bucket without le`);
      set.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), value: s.value });
    } else if (s.name === `${f.name}_sum`) {
      set.sum = s.value;
    } else if (s.name === `${f.name}_count`) {
      set.count = s.value;
    } else {
      assert.fail(`${f.name}: unexpected sample ${s.name}`);
    }
  }
  for (const [key, set] of sets) {
    const what = `${f.name}{${key}}`;
    assert.ok(set.buckets.length > 1, `${what}: buckets`);
    for (let i = 1; i < set.buckets.length; i++) {
      assert.ok(set.buckets[i].le > set.buckets[i - 1].le, `${what}: le ascending`);
      assert.ok(set.buckets[i].value >= set.buckets[i - 1].value,
        `${what}: buckets cumulative (le=${set.buckets[i].le})`);
    }
    const last = set.buckets[set.buckets.length - 1];
    assert.equal(last.le, Infinity, `${what}: a +Inf bucket last`);
    assert.equal(set.count, last.value, `${what}: _count equals the +Inf bucket`);
    assert.ok(set.sum !== undefined && set.sum >= 0, `${what}: _sum`);
  }
}

// Checks a page and returns { families, value(name, labels), sum(name, labels) }:
// value() reads one series (undefined when absent); sum() adds every series of the
// sample name whose labels include `labels`.
function check(text) {
  const families = parse(text);
  const typeLines = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
  const helpLines = [...text.matchAll(/^# HELP (\S+) (.*)$/gm)];
  // The parser starts a new family for a sample that belongs to none, or for a family
  // whose lines are split in two groups: both show as more families than TYPE lines.
  assert.equal(families.length, typeLines.length,
    `every sample belongs to the family under whose TYPE it stands (families: ` +
    `${families.map((f) => f.name).join(' ')})`);
  assert.equal(helpLines.length, typeLines.length, 'one HELP per TYPE');
  const names = new Set();
  for (const [, name, type] of typeLines) {
    assert.ok(!names.has(name), `${name}: one TYPE line`);
    names.add(name);
    assert.ok(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name), `${name}: a valid metric name`);
    assert.ok(name.startsWith('moonwire_'), `${name}: in the moonwire_ namespace`);
    assert.ok(!NON_BASE_UNITS.test(name), `${name}: base units (seconds, bytes)`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), `${name}: a counter ends in _total`);
    else assert.ok(!name.endsWith('_total'), `${name}: only counters end in _total`);
    if (type === 'histogram') {
      assert.ok(BASE_UNIT_SUFFIXES.some((u) => name.endsWith(u)), `${name}: a histogram in a base unit`);
    }
  }
  for (const f of families) {
    assert.ok(f.help.trim().length > 0, `${f.name}: HELP text`);
    assert.ok(['counter', 'gauge', 'histogram'].includes(f.type), `${f.name}: TYPE ${f.type}`);
    for (const s of f.samples) {
      assert.ok(Number.isFinite(s.value), `${s.name}: a finite value`);
      if (f.type !== 'gauge') assert.ok(s.value >= 0, `${s.name}: not negative`);
    }
    if (f.type === 'histogram') checkHistogram(f);
  }
  const samples = families.flatMap((f) => f.samples);
  const matches = (s, name, labels) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  return {
    families,
    value(name, labels = {}) {
      const s = samples.find((x) => x.name === name && labelKey(x.labels) === labelKey(labels));
      return s ? s.value : undefined;
    },
    sum(name, labels = {}) {
      return samples.filter((s) => matches(s, name, labels)).reduce((a, s) => a + s.value, 0);
    },
    series(name) {
      return samples.filter((s) => s.name === name);
    },
  };
}

// GET /metrics from a server (lib/server.js) and check it.
async function scrape(server) {
  const res = await request('GET', server.httpUrl('/metrics'));
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const page = check(res.text);
  page.text = res.text;
  return page;
}

module.exports = { parse, check, scrape };
