/**
 * Names go into admin URL paths (`/api/v1/pools/P/backends/B`), so a name the API or a config
 * file accepts must be reachable there again: one rule (config/schema.ts, `nameProblem`) for
 * both. A backend named ".." used to be added (201) and then answer 404 to everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nameProblem } from '../../src/config/schema.js';
import { call, startStack, TIMEOUT } from './helpers.js';

const enc = encodeURIComponent;

/** The backend name a client's request path reaches, the way the admin server reads paths. */
function nameFromPath(name: string): string | undefined {
  const path = new URL(`/api/v1/pools/default/backends/${enc(name)}`, 'http://admin.invalid').pathname;
  const segs = path.split('/');
  return segs.length === 7 ? decodeURIComponent(segs[6]) : undefined;
}

test('every name the rule accepts comes back from an encoded URL path segment; "." and ".." do not', () => {
  // Dot segments and escapes are rare in random strings: mix them in.
  const tricky = fc.constantFrom('.', '..', '%2e', '.%2E', '%2e%2e', '%252e', '?', '#', '/', '\\');
  const piece = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), tricky);
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 3 }).map((parts) => parts.join('')), (s) => {
      if (nameProblem(s) === undefined) assert.equal(nameFromPath(s), s);
    }),
    { numRuns: 20_000 },
  );
  for (const s of ['.', '..']) {
    assert.notEqual(nameFromPath(s), s, `${s} is lost in a URL path`);
    assert.ok(nameProblem(s) !== undefined);
  }
});

test('the API refuses backend names that cannot round-trip through a URL path, with 400 and the reason', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const bad: Array<[string, RegExp]> = [
    ['..', /cannot be a name: URL paths treat/],
    ['.', /cannot be a name/],
    ['a/b', /may not contain "\/"/],
    ['50%', /may not contain "%"/],
    ['%2e%2e', /may not contain "%"/],
    ['a?b', /may not contain "\?"/],
    ['a#b', /may not contain "#"/],
    ['a b', /may not contain a blank/],
    ['a\u0000b', /control or invisible character \(U\+0000\)/],
    ['\u200b', /control or invisible character \(U\+200B\)/],
    ['', /must not be empty/],
    ['x'.repeat(201), /at most 200 characters/],
  ];
  for (const [name, reason] of bad) {
    const r = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: JSON.stringify({ address: '127.0.0.1:1', name }) });
    assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.text}`);
    assert.equal(r.json?.error, 'bad_name');
    assert.match(r.json?.message, reason);
  }
  const weight = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: '{"address":"127.0.0.1:1","weight":1e309}' });
  assert.equal(weight.status, 400);
  assert.equal(weight.json?.error, 'bad_weight');
  assert.match(weight.json?.message, /number out of range/);
  const scheme = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: '{"address":"http://127.0.0.1:80"}' });
  assert.equal(scheme.status, 400);
  assert.match(scheme.json?.message, /a scheme \("http:\/\/"\) is not allowed/);
  const quad = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: '{"address":"256.256.256.256:80"}' });
  assert.equal(quad.status, 400);
  assert.match(quad.json?.message, /not a valid IPv4 address/);
  // Nothing was added.
  const s = (await call(st.url, '/api/v1/pools/default/backends')).json as Array<{ name: string }>;
  assert.deepEqual(s.map((b) => b.name), st.names);
});

test('names the API accepts are reachable: GET, an action and DELETE find each one', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const names = ['...', 'a.b', "bäckend-ü_1~!$&'()*+,;=@", '[::1]:9', 'x<y>"z"', '{a}|^`'];
  for (const [i, name] of names.entries()) {
    const add = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: JSON.stringify({ address: `127.0.0.1:${10 + i}`, name }) });
    assert.equal(add.status, 201, `${name}: ${add.text}`);
    const got = await call(st.url, `/api/v1/pools/default/backends/${enc(name)}`);
    assert.equal(got.status, 200, `GET ${name}: ${got.text}`);
    assert.equal(got.json?.name, name);
    const drain = await call(st.url, `/api/v1/pools/default/backends/${enc(name)}/drain`, { method: 'POST' });
    assert.equal(drain.status, 200, `drain ${name}: ${drain.text}`);
    const del = await call(st.url, `/api/v1/pools/default/backends/${enc(name)}`, { method: 'DELETE' });
    assert.equal(del.status, 200, `DELETE ${name}: ${del.text}`);
  }
});
