// Authentication (docs/security.md): JWTs through libjwt with the checks around it;
// every bad token is refused at the handshake with 401 (or closed 4001 when it comes
// in a message), the log says why, and the server serves everyone else.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const { startServer, BIN, REPO } = require('./lib/server');
const { connect, closeAll, Client } = require('./lib/client');
const { upgradeRequest, request } = require('./lib/http');
const { sseConnect, closeAllSse } = require('./lib/sse');
const { sign, now, keyPair, b64url } = require('./lib/jwt');
const { uid, expectAck, expectError, assertServes, assertPingPong, waitFor } = require('./lib/helpers');

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';

const WHO = `
local mw = require "moonwire"
local app = mw.app()
function app.connect(conn) conn:send({ type = "connected", data = conn.user }) end
app:on("whoami", function(conn) return { user = conn.user, claims = conn.claims } end)
local runs = 0
app:on("count", function() runs = runs + 1 return runs end)
return app
`;

async function refused(server, target, headers = []) {
  const res = await upgradeRequest(server.port, target, headers);
  assert.equal(res.status, 401, `${target}: ${res.head}`);
  assert.match(res.head, /www-authenticate: Bearer/i);
  const body = JSON.parse(res.body);
  assert.equal(body.error, 'unauthorized');
  return body.message;
}

// Opens without waiting for hello (a connection that waits for its auth message).
function open(url) {
  const c = new Client(new WebSocket(url));
  return new Promise((resolve, reject) => {
    c.ws.once('open', () => resolve(c));
    c.ws.once('error', reject);
  });
}

function closedWithin(c, ms) {
  let t;
  return Promise.race([c.closed, new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`still open after ${ms} ms: ${c.received()}`)), ms);
  })]).finally(() => clearTimeout(t));
}

describe('auth: HS256 tokens, optional', () => {
  let server;
  const rsa = keyPair('rsa');

  before(async () => {
    server = await startServer({
      scripts: { 'who.lua': WHO },
      routes: { '/who': { script: 'who.lua' } },
      config: { auth: { jwt_secret: '${MW_TEST_SECRET}' } },
      env: { MW_TEST_SECRET: SECRET },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  const token = (payload, opts = {}) => sign({ sub: 'ana', exp: now() + 60, ...payload },
    { key: SECRET, ...opts });

  it('takes the user from sub, from the token parameter, and hands every claim to Lua', async () => {
    const t = token({ sub: 'ana', role: 'admin', n: 7 });
    const c = await connect(server.url(`/who?token=${t}`));
    assert.equal(c.user, 'ana');
    const d = expectAck(await c.request('whoami'), 1);
    assert.equal(d.user, 'ana');
    assert.equal(d.claims.role, 'admin');
    assert.equal(d.claims.n, 7);
    await c.close();
  });

  it('takes the token from Authorization: Bearer, and a token wins over ?user=', async () => {
    const t = token({ sub: 'bea' });
    const c = await connect(server.url('/who?user=mallory'), { headers: { authorization: `Bearer ${t}` } });
    assert.equal(c.user, 'bea');
    await c.close();
    const c2 = await connect(server.url(`/who?user=mallory&token=${token({ sub: 'cid' })}`));
    assert.equal(c2.user, 'cid');
    await c2.close();
  });

  it('accepts every HS algorithm and an exp just past within the leeway', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const c = await connect(server.url(`/who?token=${token({ sub: alg }, { alg })}`));
      assert.equal(c.user, alg);
      await c.close();
    }
    const c = await connect(server.url(`/who?token=${token({ exp: now() - 2 })}`));
    assert.equal(c.user, 'ana', 'the default leeway is 5 s');
    await c.close();
  });

  it('refuses forged, wrong-secret, expired, not-yet-valid, alg none, confused and malformed tokens with 401', async () => {
    const good = token({});
    const [h, , s] = good.split('.');
    const forged = `${h}.${b64url(JSON.stringify({ sub: 'root', exp: now() + 60 }))}.${s}`;
    const cases = [
      ['forged payload', forged, /bad signature/],
      ['wrong secret', token({}, { key: 'another-secret-of-32-bytes-or-more!!' }), /bad signature/],
      ['expired', token({ exp: now() - 60 }), /expired/],
      ['not valid yet', token({ nbf: now() + 60 }), /not valid yet/],
      ['alg none', sign({ sub: 'ana', exp: now() + 60 }, { alg: 'none' }), /alg none/],
      ['alg none with a signature', `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${good.split('.')[1]}.${s}`, /alg none/],
      ['RS256 without a public key', sign({ sub: 'ana', exp: now() + 60 }, { alg: 'RS256', key: rsa.privateKey }), /not accepted/],
      ['garbage', 'not-a-token', /malformed/],
      ['two segments', good.split('.').slice(0, 2).join('.'), /malformed/],
      ['bad base64', `${h}.!!!.${s}`, /malformed/],
      ['header not JSON', `${b64url('nope')}.${good.split('.')[1]}.${s}`, /malformed token header/],
      ['no sub', token({ sub: undefined }), /no sub/],
      ['sub not a user id', token({ sub: 'u'.repeat(129) }), /sub is not a valid user id/],
      ['sub with a NUL', token({ sub: 'a\u0000b' }), /sub is not a valid user id|bad signature/],
      ['exp not a number', token({ exp: 'later' }), /exp and nbf must be numbers/],
      ['too long', token({ pad: 'x'.repeat(9000) }), /longer than 8 KiB|malformed/],
      ['a claim not UTF-8', (() => {
        const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
        const body = b64url(Buffer.concat([Buffer.from('{"sub":"ana","x":"'), Buffer.from([0xff]), Buffer.from('"}')]));
        const sig = require('node:crypto').createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
        return `${head}.${body}.${sig}`;
      })(), /malformed token payload|bad signature/],
    ];
    for (const [what, t, reason] of cases) {
      const message = await refused(server, `/who?token=${t}`);
      assert.match(message, reason, what);
    }
    assert.match(await refused(server, '/who', [`Authorization: Bearer ${forged}`]), /bad signature/);
    await server.waitForLog(/upgrade rejected" path=\/who remote=\S+ status=401 reason="token expired"/);
    await assertServes(server);
  });

  it('serves anonymous clients, and refuses an auth message on a connection without a token', async () => {
    const c = await connect(server.url('/who'));
    assert.match(c.user, /^anon-/);
    expectError(await c.request('auth', { data: { token: token({}) } }), 'forbidden', 1);
    await assertPingPong(c);
    await c.close();
  });

  it('refreshes a token for the same user and refuses one for another user', async () => {
    const c = await connect(server.url(`/who?token=${token({ sub: 'dan', exp: now() + 60 })}`));
    const later = now() + 3600;
    const d = expectAck(await c.request('auth', { data: { token: token({ sub: 'dan', exp: later, v: 2 }) } }), 1);
    assert.deepEqual(d, { user: 'dan', exp: later });
    assert.equal(expectAck(await c.request('whoami'), 2).claims.v, 2, 'the new claims');
    expectError(await c.request('auth', { data: { token: token({ sub: 'eve' }) } }), 'forbidden', 3);
    expectError(await c.request('auth', { data: { token: token({ sub: 'dan', exp: now() - 60 }) } }), 'unauthorized', 4);
    expectError(await c.request('auth', { data: {} }), 'bad_message', 5);
    assert.equal(expectAck(await c.request('whoami'), 6).user, 'dan', 'still dan');
    await c.close();
  });
});

describe('auth: expiry', () => {
  let server;
  before(async () => {
    server = await startServer({
      scripts: { 'who.lua': WHO },
      routes: { '/who': { script: 'who.lua' } },
      config: { auth: { jwt_secret: SECRET, leeway: '0s' }, heartbeat: { interval: '300ms', timeout: '2s' } },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('closes a connection whose token expires without a refresh with 4001', async () => {
    const exp = now() + 2;
    const c = await connect(server.url(`/who?token=${sign({ sub: 'fay', exp }, { key: SECRET })}`));
    const info = await closedWithin(c, 6000);
    assert.equal(info.code, 4001);
    assert.match(info.reason, /expired/);
    assert.ok(Date.now() / 1000 >= exp, 'not before its exp');
    await server.waitForLog(/token expired" conn=\S+ user=fay/);
  });

  it('keeps a connection that refreshed in time', async () => {
    const c = await connect(server.url(`/who?token=${sign({ sub: 'gil', exp: now() + 2 }, { key: SECRET })}`));
    expectAck(await c.request('auth', { data: { token: sign({ sub: 'gil', exp: now() + 60 }, { key: SECRET }) } }), 1);
    await new Promise((r) => setTimeout(r, 3500));
    assert.ok(c.isOpen, `still open: ${JSON.stringify(c.closeInfo)}`);
    await assertPingPong(c);
    await c.close();
  });
});

describe('auth: required, with RS256 and HS256 keys', () => {
  let server;
  let dir;
  const rsa = keyPair('rsa');
  const ec = keyPair('ec');

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-keys-'));
    fs.writeFileSync(path.join(dir, 'rsa.pem'), rsa.publicPem);
    server = await startServer({
      scripts: { 'who.lua': WHO },
      routes: { '/who': { script: 'who.lua' } },
      config: {
        auth: { required: true, jwt_secret: SECRET, jwt_public_key: path.join(dir, 'rsa.pem'), timeout: '500ms' },
        heartbeat: { interval: '200ms', timeout: '2s' },
      },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts RS256 tokens and HS256 tokens', async () => {
    const c = await connect(server.url(`/who?token=${sign({ sub: 'rsa', exp: now() + 60 }, { alg: 'RS256', key: rsa.privateKey })}`));
    assert.equal(c.user, 'rsa');
    await c.close();
    const c2 = await connect(server.url(`/who?token=${sign({ sub: 'hs', exp: now() + 60 }, { key: SECRET })}`));
    assert.equal(c2.user, 'hs');
    await c2.close();
  });

  it('refuses an HS256 token signed with the public key (algorithm confusion) and an ES256 token', async () => {
    const confused = sign({ sub: 'root', exp: now() + 60 }, { alg: 'HS256', key: rsa.publicPem });
    assert.match(await refused(server, `/who?token=${confused}`), /bad signature/);
    const es = sign({ sub: 'root', exp: now() + 60 }, { alg: 'ES256', key: ec.privateKey });
    assert.match(await refused(server, `/who?token=${es}`), /not accepted/);
  });

  it('serves nothing to a connection without a token until its auth message, then hello and connect', async () => {
    const c = await open(server.url('/who?user=ignored'));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(c.messages, [], 'no hello, no connect handler before auth');
    const t = sign({ sub: 'late', exp: now() + 60 }, { alg: 'RS256', key: rsa.privateKey });
    c.send({ type: 'auth', id: 'a1', data: { token: t } });
    const hello = await c.next('hello');
    assert.equal(hello.data.user, 'late');
    assert.equal((await c.next('connected')).data, 'late');
    const ack = await c.next({ type: 'ack', id: 'a1' });
    assert.equal(ack.data.user, 'late');
    expectAck(await c.request('whoami', { id: 2 }), 2);
    await c.close();
  });

  it('closes 4001 on another first message, a bad first token, or no auth message in time', async () => {
    const a = await open(server.url('/who'));
    a.send({ type: 'ping', id: 1 });
    assert.equal((await closedWithin(a, 3000)).code, 4001);
    assert.ok(!a.messages.some((m) => m.type === 'pong' || m.type === 'hello'), a.received());

    const b = await open(server.url('/who'));
    b.send({ type: 'auth', id: 1, data: { token: sign({ sub: 'x', exp: now() - 60 }, { key: SECRET }) } });
    assert.equal((await closedWithin(b, 3000)).code, 4001);
    expectError(b.messages.find((m) => m.type === 'error'), 'unauthorized', 1);

    const t0 = Date.now();
    const w = await open(server.url('/who'));
    assert.equal((await closedWithin(w, 5000)).code, 4001);
    assert.ok(Date.now() - t0 >= 400, 'not before auth.timeout');
    assert.deepEqual(w.messages, []);
    await server.waitForLog(/auth timeout" conn=/);
    await server.waitForLog(/auth refused" conn=\S+ remote=\S+ reason="token expired"/);
  });

  it("puts a waiting connection's ?session= in its user's session once auth named the user", async () => {
    const t = sign({ sub: 'sess-user', exp: now() + 60 }, { key: SECRET });
    const first = await open(server.url('/who?session=tabs'));
    first.send({ type: 'auth', id: 'a', data: { token: t } });
    await first.next({ type: 'ack', id: 'a' });
    const n = expectAck(await first.request('count', { id: 'c1' }), 'c1');
    await first.close();
    // the same user, same session, by handshake token: the id is answered from the
    // session's window, the handler does not run again
    const again = await connect(server.url(`/who?session=tabs&token=${t}`));
    assert.equal(expectAck(await again.request('count', { id: 'c1' }), 'c1'), n);
    assert.equal(expectAck(await again.request('count', { id: 'c2' }), 'c2'), n + 1);
    await again.close();
  });

  it('refuses a bad token at the handshake with 401 even with ?user=', async () => {
    assert.match(await refused(server, '/who?user=ana&token=abc.def.ghi'), /malformed/);
    assert.ok(server.alive());
  });

  it('takes an RS256 token (over 256 bytes) in ?token= on the HTTP fallback, and refuses bad ones with 401', async () => {
    const t = sign({ sub: 'sse-rsa', exp: now() + 60 }, { alg: 'RS256', key: rsa.privateKey });
    assert.ok(t.length > 256, `${t.length} bytes`);
    const c = await sseConnect(server.httpUrl(`/who?token=${t}`));
    assert.equal(c.user, 'sse-rsa', JSON.stringify(c.status && c.text));
    assert.equal((await c.next('connected')).data, 'sse-rsa');
    c.close();
    for (const bad of [sign({ sub: 'x', exp: now() - 60 }, { key: SECRET }), 'abc.def.ghi', `${t.slice(0, -4)}AAAA`]) {
      const res = await sseConnect(server.httpUrl(`/who?token=${bad}`));
      assert.equal(res.status, 401, res.text);
    }
    // Without a token: nothing until a POSTed auth message, then hello, connect, the ack.
    const w = await sseConnect(server.httpUrl('/who?user=x'), { hello: false });
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(w.entries, [], 'nothing served before auth');
    assert.equal(await w.send({ type: 'auth', id: 'a', data: { token: t } }), 204);
    assert.equal((await w.next('hello')).data.user, 'sse-rsa');
    assert.equal((await w.next('connected')).data, 'sse-rsa');
    assert.equal((await w.next({ type: 'ack', id: 'a' })).data.user, 'sse-rsa');
    w.close();
    const f = await sseConnect(server.httpUrl('/who'), { hello: false });
    assert.equal(await f.send({ type: 'ping', id: 1 }), 204);
    assert.equal((await f.closed(3000)).code, 4001);
    closeAllSse();
  });
});

describe('auth: required, and the admin page', () => {
  let server;
  const KEY = 'admin-key-for-the-auth-test';

  before(async () => {
    server = await startServer({
      routes: { '/chat': { script: 'app:chat' } },
      config: { auth: { required: true, jwt_secret: SECRET }, api: { keys: [KEY] } },
    });
  });

  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('lets /admin/ws open without a token (its API key is its proof), and no chat client into its room', async () => {
    const a = await connect(server.url('/admin/ws'));
    expectError(await a.request('admin:auth', { id: 1, data: { key: 'wrong' } }), 'unauthorized', 1);
    expectAck(await a.request('admin:auth', { id: 2, data: { key: KEY } }), 2);
    await a.next((m) => m.type === 'admin:snapshot');
    const t = sign({ sub: 'ana', exp: now() + 60 }, { key: SECRET });
    const c = await connect(server.url(`/chat?token=${t}`));
    expectError(await c.request('join', { id: 1, room: 'moonwire:admin' }), 'forbidden', 1);
    expectAck(await c.request('join', { id: 2, room: uid('room') }), 2);
    await c.close();
    await a.close();
    const w = await open(server.url('/chat')); // upgraded, and waits for its token:
    w.send({ type: 'ping', id: 1 }); // anything else first closes it
    assert.equal((await closedWithin(w, 5000)).code, 4001);
    assert.ok(!w.messages.some((m) => m.type === 'hello' || m.type === 'pong'), w.received());
  });
});

describe('auth: the per-user limit applies to first-message auth too', () => {
  let server;
  before(async () => {
    server = await startServer({
      config: { auth: { required: true, jwt_secret: SECRET }, limits: { max_connections_per_user: 1 } },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('closes 1008 a waiting connection whose auth names a user already at the limit', async () => {
    const t = sign({ sub: 'one', exp: now() + 60 }, { key: SECRET });
    const first = await connect(server.url(`/chat?token=${t}`));
    const second = await open(server.url('/chat'));
    second.send({ type: 'auth', id: 1, data: { token: t } });
    assert.equal((await closedWithin(second, 3000)).code, 1008);
    expectError(second.messages.find((m) => m.type === 'error'), 'rate_limited', 1);
    assert.ok(!second.messages.some((m) => m.type === 'hello'));
    await assertPingPong(first);
    await first.close();
  });
});

describe('auth: ES256 key inline from the environment', () => {
  let server;
  const ec = keyPair('ec');
  before(async () => {
    server = await startServer({
      scripts: { 'who.lua': WHO },
      routes: { '/who': { script: 'who.lua' } },
      config: { auth: { jwt_public_key: '${MW_TEST_EC_KEY}', audience: 'chat', issuer: 'https://issuer.test' } },
      env: { MW_TEST_EC_KEY: ec.publicPem },
    });
  });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('accepts ES256 with the right iss and aud, refuses the wrong ones', async () => {
    const claims = { sub: 'eli', exp: now() + 60, iss: 'https://issuer.test', aud: ['x', 'chat'] };
    const c = await connect(server.url(`/who?token=${sign(claims, { alg: 'ES256', key: ec.privateKey })}`));
    assert.equal(c.user, 'eli');
    await c.close();
    assert.match(await refused(server, `/who?token=${sign({ ...claims, aud: 'other' }, { alg: 'ES256', key: ec.privateKey })}`), /audience/);
    assert.match(await refused(server, `/who?token=${sign({ ...claims, iss: 'evil' }, { alg: 'ES256', key: ec.privateKey })}`), /issuer/);
    assert.match(await refused(server, `/who?token=${sign(claims, { alg: 'HS256', key: 'x' })}`), /not accepted/);
  });
});

describe('auth: fail-closed configuration', () => {
  function check(config, files = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moonwire-authcfg-'));
    try {
      for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
      fs.writeFileSync(path.join(dir, 'moonwire.yaml'), JSON.stringify({ routes: { '/chat': { script: 'app:chat' } }, ...config }, null, 1));
      return spawnSync(BIN, ['check', '-c', path.join(dir, 'moonwire.yaml')],
        { env: { ...process.env, MOONWIRE_HOME: REPO }, timeout: 20000, encoding: 'utf8' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it('refuses settings it could not enforce', () => {
    const cases = [
      [{ auth: { required: true } }, {}, /required is true but neither jwt_secret nor jwt_public_key/],
      [{ auth: { jwt_public_key: 'key.pem' } }, { 'key.pem': 'not a key' }, /moonwire\.yaml:\d+: auth\.jwt_public_key: not an RSA or EC public key/],
      [{ auth: { jwt_public_key: 'missing.pem' } }, {}, /file not found/],
      [{ auth: { jwt_secret: 'x', algorithms: ['none'] } }, {}, /'none' would accept unsigned tokens/],
      [{ auth: { jwt_secret: 'x', algorithms: ['ES256'] } }, {}, /ES256 needs jwt_public_key/],
      [{ auth: { jwt_public_key: 'rsa.pem', algorithms: ['ES256'] } }, { 'rsa.pem': keyPair('rsa').publicPem }, /ES256 needs an EC key/],
    ];
    for (const [config, files, message] of cases) {
      const r = check(config, files);
      assert.notEqual(r.status, 0, JSON.stringify(config));
      assert.match(r.stdout + r.stderr, message, JSON.stringify(config));
    }
    assert.equal(check({ auth: { jwt_secret: SECRET, required: true } }).status, 0);
  });
});

describe('dev:watch', () => {
  let server;
  before(async () => { server = await startServer({ config: { dev: { hot_reload: false } } }); });
  after(async () => {
    await closeAll();
    if (server) await server.stop();
  });

  it('is unknown_type unless dev.hot_reload is on (reload errors carry server paths)', async () => {
    const c = await connect(server.url(`/chat?user=${uid('w')}`));
    expectError(await c.request('dev:watch'), 'unknown_type', 1);
    await c.close();
    await waitFor(() => server.alive(), 100, 'alive');
  });
});
