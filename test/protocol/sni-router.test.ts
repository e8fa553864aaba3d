/**
 * SniRouter: exact vs wildcard vs ALPN precedence, normalisation and rule order, as a table.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SniRouter, normalizeServerName, validateServerNamePattern, type SniRoute } from '../../src/protocol/sni-router.js';

describe('SniRouter', () => {
  const routes: SniRoute<string>[] = [
    { serverNames: ['*.example.com'], target: 'wild' },
    { serverNames: ['api.example.com'], target: 'api' },
    { serverNames: ['api.example.com'], alpn: ['h2'], target: 'api-h2' },
    { serverNames: ['*.example.com'], alpn: ['acme-tls/1'], target: 'wild-acme' },
    { serverNames: ['Mixed.Example.ORG.'], target: 'mixed' },
    { alpn: ['imap'], target: 'imap' },
    { serverNames: ['a.test', 'b.test'], target: 'ab' },
  ];
  const router = new SniRouter(routes, 'default');

  const table: [string | undefined, string[], string | undefined, string][] = [
    ['api.example.com', [], 'api', 'exact beats a wildcard listed before it'],
    ['API.EXAMPLE.COM', [], 'api', 'names compare case-insensitively'],
    ['api.example.com.', [], 'api', 'a trailing dot is ignored'],
    ['api.example.com', ['h2', 'http/1.1'], 'api-h2', 'an exact route with a matching ALPN beats one without'],
    ['api.example.com', ['http/1.1'], 'api', 'an ALPN route does not match when the client offers none of its protocols'],
    ['www.example.com', [], 'wild', 'a wildcard matches one label'],
    ['www.example.com', ['acme-tls/1'], 'wild-acme', 'a wildcard route with a matching ALPN beats one without'],
    ['example.com', [], 'default', 'a wildcard does not match the bare domain'],
    ['a.b.example.com', [], 'default', 'a wildcard does not match two labels'],
    ['mixed.example.org', [], 'mixed', 'route names are normalised too'],
    ['b.test', [], 'ab', 'any name of a route matches'],
    ['other.test', ['imap'], 'imap', 'an ALPN-only route matches any name'],
    [undefined, ['imap'], 'imap', 'an ALPN-only route matches without SNI'],
    [undefined, [], 'default', 'no SNI goes to the default'],
    ['', [], 'default', 'an empty name counts as no SNI'],
    ['unknown.net', ['h2'], 'default', 'an unknown name goes to the default'],
    ['API.example.com', ['IMAP'], 'api', 'ALPN ids compare exactly'],
  ];
  for (const [name, alpn, want, why] of table) {
    test(`${why} (${String(name)} ${JSON.stringify(alpn)} → ${String(want)})`, () => {
      assert.equal(router.route(name, alpn), want);
    });
  }

  test('ties within a rank go to the route listed first', () => {
    const r = new SniRouter([
      { serverNames: ['x.test'], target: 1 },
      { serverNames: ['X.test'], target: 2 },
      { serverNames: ['*.test'], alpn: ['h2'], target: 3 },
      { serverNames: ['*.test'], alpn: ['h2'], target: 4 },
    ]);
    assert.equal(r.route('x.test', []), 1);
    assert.equal(r.route('y.test', ['h2']), 3);
  });

  test('returns undefined without a default when nothing matches', () => {
    assert.equal(new SniRouter([{ serverNames: ['a.test'], target: 1 }]).route('b.test', []), undefined);
  });

  test('a route with neither names nor ALPN is a catch-all below the named routes', () => {
    const r = new SniRouter([{ target: 'all' }, { serverNames: ['a.test'], target: 'a' }], 'default');
    assert.equal(r.route('a.test', []), 'a');
    assert.equal(r.route('b.test', []), 'all');
    assert.equal(r.route(undefined, []), 'all');
  });

  test('rejects malformed name patterns', () => {
    for (const bad of ['a.*.com', '*', '*.', 'foo*.com', '**.com', 'a..b', '-a.com', 'a b.com']) {
      assert.ok(validateServerNamePattern(bad), bad);
      assert.throws(() => new SniRouter([{ serverNames: [bad], target: 1 }]), TypeError, bad);
    }
    for (const good of ['a.com', '*.a.com', 'A.COM.', 'x_y.example', 'localhost']) {
      assert.equal(validateServerNamePattern(good), undefined, good);
    }
  });

  test('normalizeServerName lower-cases and drops one trailing dot', () => {
    assert.equal(normalizeServerName('A.B.'), 'a.b');
  });
});
