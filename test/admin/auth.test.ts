/**
 * Who may use the admin server: the bearer token, the refusal to serve off loopback
 * without one (before binding anything), and the browser protections (Host and Origin).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { AdminServer, startProxyAdmin } from '../../src/admin/server.js';
import { AdminError } from '../../src/admin/errors.js';
import { ProxyStatusSource } from '../../src/admin/proxy-source.js';
import { bearerToken, tokenMatches } from '../../src/admin/auth.js';
import { call, enc, startStack, TIMEOUT } from './helpers.js';

const TOKEN = 's3cret-token';

test('with a token, every API request needs the right bearer token (401 otherwise)', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1, token: TOKEN });
  t.after(() => st.close());
  const b0 = enc(st.names[0]);
  const paths: Array<[string, string]> = [
    ['GET', '/api/v1/status'],
    ['GET', '/metrics'],
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/api/v1/events'],
    ['POST', `/api/v1/pools/default/backends/${b0}/drain`],
  ];
  for (const [method, path] of paths) {
    const none = await call(st.url, path, { method });
    assert.equal(none.status, 401, `${method} ${path} without a token`);
    assert.equal(none.json.error, 'unauthorized');
    assert.match(String(none.headers['www-authenticate']), /^Bearer/);
    const wrong = await call(st.url, path, { method, token: `${TOKEN}x` });
    assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
    const short = await call(st.url, path, { method, token: 's' });
    assert.equal(short.status, 401, `${method} ${path} with a shorter token`);
  }
  // Not one of the refused actions went through.
  assert.equal(st.proxy.pools.get('default')!.backends[0].admin, 'enabled');

  const ok = await call(st.url, '/api/v1/status', { token: TOKEN });
  assert.equal(ok.status, 200);
  const drained = await call(st.url, `/api/v1/pools/default/backends/${b0}/drain`, { method: 'POST', token: TOKEN });
  assert.equal(drained.status, 200);
  assert.equal(drained.json.backend.state, 'draining');
  const basic = await call(st.url, '/api/v1/status', { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
  assert.equal(basic.status, 401, 'only the Bearer scheme is accepted');
});

test('the token in the query string is accepted for the event stream only', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1, token: TOKEN });
  t.after(() => st.close());
  const status = await call(st.url, `/api/v1/status?token=${TOKEN}`);
  assert.equal(status.status, 401);
  const bad = await call(st.url, '/api/v1/events?token=nope');
  assert.equal(bad.status, 401);
  const ac = new AbortController();
  t.after(() => ac.abort());
  const res = await fetch(`${st.url}/api/v1/events?token=${TOKEN}`, { signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  ac.abort();
});

test('the dashboard page and its assets load without a token (they hold no data)', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1, token: TOKEN });
  t.after(() => st.close());
  const page = await call(st.url, '/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  assert.match(page.text, /<script type="module" src="\/assets\/app\.js">/);
  for (const [path, type] of [['/assets/app.js', /javascript/], ['/assets/style.css', /text\/css/]] as const) {
    const r = await call(st.url, path);
    assert.equal(r.status, 200, path);
    assert.match(String(r.headers['content-type']), type);
  }
  // Only the shipped files are served, whatever the path tries.
  assert.equal((await call(st.url, '/assets/../../package.json', { token: TOKEN })).status, 404);
  assert.equal((await call(st.url, '/assets/%2e%2e%2fserver.js')).status, 404);
  assert.equal((await call(st.url, '/assets/nope.js')).status, 404);
  // A name that is not valid percent-encoding is the client's mistake: 400, not 500.
  const bad = await call(st.url, '/assets/%');
  assert.equal(bad.status, 400);
  assert.equal(JSON.parse(bad.text).error, 'bad_path');
});

test('off loopback without a token, the admin server refuses to start and binds nothing', TIMEOUT, async (t) => {
  const cfg = configFromBackends(['127.0.0.1:1'], { accessLog: 'off' });
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  t.after(() => proxy.close());

  await assert.rejects(startProxyAdmin(proxy, { host: '0.0.0.0', port: 0, persist: false }), (err: unknown) => {
    assert.ok(err instanceof AdminError);
    assert.equal(err.code, 'L4LB_ERR_ADMIN');
    assert.equal(err.reason, 'token_required');
    assert.match(err.message, /token/);
    return true;
  });

  const source = new ProxyStatusSource(proxy);
  t.after(() => source.close());
  const server = new AdminServer(source, { host: '0.0.0.0', port: 0 });
  await assert.rejects(server.listen(), /without a token/);
  assert.equal(server.server.listening, false, 'nothing was bound');
  const empty = new AdminServer(source, { host: '', port: 0, token: '' });
  await assert.rejects(empty.listen(), /all interfaces/);
  assert.equal(empty.server.listening, false);
});

test('without a token, a Host header that is not loopback is refused (DNS rebinding)', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const port = new URL(st.url).port;
  const evil = await call(st.url, '/api/v1/status', { headers: { host: `evil.example:${port}` } });
  assert.equal(evil.status, 403);
  assert.equal(evil.json.error, 'forbidden_host');
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, '127.0.0.1']) {
    assert.equal((await call(st.url, '/api/v1/status', { headers: { host } })).status, 200, host);
  }
});

test('with a token, other Host names are fine', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1, token: TOKEN });
  t.after(() => st.close());
  const r = await call(st.url, '/api/v1/status', { token: TOKEN, headers: { host: 'lb.internal:9000' } });
  assert.equal(r.status, 200);
});

test('a change requested from another origin is refused; the same origin is fine', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const path = `/api/v1/pools/default/backends/${enc(st.names[0])}/disable`;
  const cross = await call(st.url, path, { method: 'POST', headers: { origin: 'http://evil.example' } });
  assert.equal(cross.status, 403);
  assert.equal(cross.json.error, 'forbidden_origin');
  const opaque = await call(st.url, path, { method: 'POST', headers: { origin: 'null' } });
  assert.equal(opaque.status, 403);
  assert.equal(st.proxy.pools.get('default')!.backends[0].admin, 'enabled');
  const same = await call(st.url, path, { method: 'POST', headers: { origin: st.url } });
  assert.equal(same.status, 200);
  assert.equal(same.json.backend.state, 'disabled');
});

test('token comparison and Authorization parsing', TIMEOUT, () => {
  assert.equal(tokenMatches('abc', 'abc'), true);
  assert.equal(tokenMatches('abd', 'abc'), false);
  assert.equal(tokenMatches('ab', 'abc'), false);
  assert.equal(tokenMatches('', 'abc'), false);
  assert.equal(bearerToken('Bearer abc'), 'abc');
  assert.equal(bearerToken('bearer   abc '), 'abc');
  assert.equal(bearerToken('Basic abc'), undefined);
  assert.equal(bearerToken('Bearer'), undefined);
  assert.equal(bearerToken(undefined), undefined);
});

test('a busy admin address is reported clearly, and the proxy is left as it was', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const pool = st.proxy.pools.get('default')!;
  const hook = pool.onStateChange;
  const port = Number(new URL(st.url).port);
  await assert.rejects(startProxyAdmin(st.proxy, { host: '127.0.0.1', port, persist: false }), (err: unknown) => {
    assert.ok(err instanceof AdminError);
    assert.match(err.message, new RegExp(`cannot serve the admin API on 127\\.0\\.0\\.1:${port}: address already in use`));
    return true;
  });
  assert.equal(pool.onStateChange, hook, 'the failed server released its state-change hook');
});
