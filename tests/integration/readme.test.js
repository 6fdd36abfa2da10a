// The README's tour, run as written: its files are written from its code blocks, its
// commands run in a shell (`moonwire` on PATH, like the README's set-up says), its
// `npx wscat` sessions run in a terminal (script(1)) with the transcript's `>` lines
// typed and every `<` line checked in order, byte for byte except for ids, times and
// node names. The embedded default plays `make run`; ports 8080 and 9000 are mapped
// to free ones. A command the tour shows that this test cannot run fails the test.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, httpStatus, BIN, REPO } = require('./lib/server');
const { request } = require('./lib/http');
const { waitFor } = require('./lib/helpers');
const { start } = require('./lib/child');

const WAIT_MS = 8000;

// The tour: from "## A five-minute tour" to the next "## " heading.
function tourText() {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## A five-minute tour');
  assert.ok(start >= 0, 'README has a tour');
  const end = readme.indexOf('\n## ', start + 5);
  return readme.slice(start, end < 0 ? undefined : end);
}

// Prose and fenced blocks, in order: { kind: 'prose' | 'block', lang, text }.
function parse(text) {
  const items = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  let last = 0;
  for (let m; (m = re.exec(text));) {
    items.push({ kind: 'prose', text: text.slice(last, m.index) });
    items.push({ kind: 'block', lang: m[1], text: m[2] });
    last = re.lastIndex;
  }
  items.push({ kind: 'prose', text: text.slice(last) });
  return items;
}

// Values that differ from run to run. Notification and reservation ids are bound: the
// README's id stands for the one this run got, in later commands and frames too.
const ID_RE = /[0-9a-f]{12}-[0-9a-f]{8}-\d+|\bt\d+\/\d\d:\d\d\/[0-9a-f]{12,16}\b/g;
function normalize(s) {
  return s.replace(/"ts":\d+/g, '"ts":0').replace(/\bts=\S+/g, 'ts=T')
    .replace(/"expires_at":\d+/g, '"expires_at":0')
    .replace(/"node":"[^"]*"/g, '"node":"N"').replace(/\bnode=\S+/g, 'node=N')
    .replace(/"epoch":"[0-9a-f]*"/g, '"epoch":"E"').replace(/"conn":"\d+"/g, '"conn":"C"')
    .replace(/\bms=\d+/g, 'ms=M').replace(/\bversion=\S+/g, 'version=V')
    .replace(ID_RE, 'ID');
}

function stripAnsi(s) {
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}

function run(command, cwd, env) {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd, env, timeout: 30000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

describe('the README tour, as written', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-tour-'));
  const env = { ...process.env, PATH: `${path.dirname(BIN)}:${process.env.PATH}`,
    npm_config_offline: 'true', npm_config_update_notifier: 'false' };
  delete env.MOONWIRE_HOME;
  const ports = new Map(); // README port -> this run's
  const ids = new Map(); // README notification id -> this run's
  const procs = [];
  let embedded;
  let lastServer = null;
  let session = null; // the wscat session `<` and `>` lines belong to

  // The README's text with this run's ports and ids.
  const local = (s) => {
    let out = s.replace(/127\.0\.0\.1:(\d+)/g, (all, p) => {
      assert.ok(ports.has(p), `a port the tour uses: ${p}`);
      return `127.0.0.1:${ports.get(p)}`;
    });
    for (const [readme, actual] of ids) out = out.split(readme).join(actual);
    return out;
  };

  // Binds the README's ids in `expected` to the actual ones in `actual`, in order.
  const bind = (expected, actual) => {
    const e = expected.match(ID_RE) || [];
    const a = actual.match(ID_RE) || [];
    e.forEach((id, i) => { if (a[i] && !ids.has(id)) ids.set(id, a[i]); });
  };

  const same = (expected, actual, what) => {
    assert.equal(normalize(actual), normalize(expected), what);
    bind(expected, actual);
  };

  before(async () => {
    ports.set('8080', String(await freePort()));
    ports.set('9000', String(await freePort()));
    // `make run`: the embedded default.
    embedded = start(BIN, ['--listen', `127.0.0.1:${ports.get('8080')}`], { cwd: REPO, env });
    procs.push(embedded);
    await embedded.until((p) => /msg="listening"/.test(p.out), WAIT_MS, 'the embedded default');
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function wscat(command) {
    // npx finds wscat in the project's node_modules, as for a newcomer in the clone.
    const p = start('script', ['-qfec', local(command), '/dev/null'], { cwd: REPO, env });
    procs.push(p);
    p.frames = () => stripAnsi(p.out).split(/[\r\n]+/).filter((l) => l.startsWith('< ')).map((l) => l.slice(2));
    p.seen = 0;
    return p;
  }

  async function expectFrame(line) {
    assert.ok(session, `a < line outside a wscat session: ${line}`);
    const s = session;
    const frame = await s.until(() => s.frames()[s.seen], WAIT_MS, `the frame ${line}`);
    s.seen++;
    same(line, frame, 'a frame of the transcript');
  }

  async function expectLog(line, server) {
    assert.ok(server, `a log line without a server to come from: ${line}`);
    const want = normalize(local(line));
    await server.until((p) => p.out.split('\n').some((l) => normalize(l) === want), WAIT_MS,
      `the log line ${line}`);
  }

  async function transcript(text) {
    const lines = text.replace(/\n$/, '').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line.startsWith('$ ')) {
        const cmd = line.slice(2);
        const output = [];
        while (i + 1 < lines.length && !/^[$<>] /.test(lines[i + 1])) output.push(lines[++i]);
        if (/^npx wscat -c /.test(cmd)) {
          assert.deepEqual(output, [], 'wscat prints only frames');
          session = await wscat(cmd);
        } else if (/^moonwire serve /.test(cmd)) {
          lastServer = start('bash', ['-c', `exec ${local(cmd)}`], { cwd: work, env });
          procs.push(lastServer);
          for (const l of output) await expectLog(l, lastServer);
          await waitFor(async () => (await httpStatus(`http://127.0.0.1:${ports.get('9000')}/healthz`, 500)) === 200,
            WAIT_MS, 'the tour server to answer');
        } else {
          const r = await run(local(cmd), work, env);
          assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
          const got = r.stdout.replace(/\n$/, '').split('\n');
          assert.equal(got.length, output.length, `the output of ${cmd}:\n${r.stdout}`);
          output.forEach((l, k) => same(local(l), got[k], `line ${k + 1} of ${cmd}`));
        }
      } else if (line.startsWith('> ')) {
        assert.ok(session, `a > line outside a wscat session: ${line}`);
        session.child.stdin.write(`${local(line.slice(2))}\n`);
      } else if (line.startsWith('< ')) {
        await expectFrame(line.slice(2));
      } else if (/^ts=\S+ level=/.test(line)) {
        await expectLog(line, lastServer || embedded);
      } else {
        assert.fail(`a transcript line this test does not know how to check: ${line}`);
      }
    }
  }

  it('runs every command and shows every frame the README shows', async () => {
    let steps = 0;
    for (const item of parse(tourText())) {
      if (item.kind === 'prose') {
        // Pages the tour sends the reader to.
        for (const [, url] of item.text.matchAll(/<(http:\/\/127\.0\.0\.1:8080\/[^>]*)>/g)) {
          const res = await request('GET', local(url));
          assert.equal(res.status, 200, `GET ${url}`);
        }
        continue;
      }
      steps++;
      const first = item.text.split('\n')[0];
      if (item.lang === 'lua' || item.lang === 'yaml') {
        const m = /^(?:--|#) (\S+)$/.exec(first);
        assert.ok(m, `a ${item.lang} block names its file on its first line: ${first}`);
        fs.writeFileSync(path.join(work, m[1]), local(item.text));
      } else if (item.lang === 'sh') {
        for (const cmd of item.text.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
          const r = await run(local(cmd), work, env);
          assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
        }
      } else if (item.lang === 'text') {
        await transcript(item.text);
      } else {
        assert.fail(`a code block this test does not know how to run: \`\`\`${item.lang}`);
      }
    }
    assert.ok(steps >= 10, `the tour has its code blocks (${steps})`);
    // Nothing went wrong on the way.
    assert.doesNotMatch(embedded.out + (lastServer ? lastServer.out : ''), /level=error/);
  });
});
