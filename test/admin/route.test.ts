/**
 * The admin request target parser on its own: every endpoint, percent-decoding of pool and
 * backend segments, and targets that cannot be read (400 `bad_path`, never a thrown URIError).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminError } from '../../src/admin/errors.js';
import { parseAdminTarget } from '../../src/admin/route.js';

test('each fixed endpoint, the dashboard files and the pool routes are recognised', () => {
  const cases: [string, unknown][] = [
    ['/', { kind: 'asset', name: 'index.html' }],
    ['/index.html', { kind: 'asset', name: 'index.html' }],
    ['/assets/app.js', { kind: 'asset', name: 'app.js' }],
    ['/healthz', { kind: 'healthz' }],
    ['/readyz?x=1', { kind: 'readyz' }],
    ['/metrics', { kind: 'metrics' }],
    ['/api/v1/status', { kind: 'status' }],
    ['/api/v1/events?token=abc', { kind: 'events' }],
    ['/api/v1/pools/web/backends/127.0.0.1%3A9001/drain', { kind: 'pool', parts: ['web', 'backends', '127.0.0.1:9001', 'drain'] }],
    ['/api/v1/pools/caf%C3%A9', { kind: 'pool', parts: ['café'] }],
    ['/api/v1/pools', { kind: 'not-found' }],
    ['/api/v2/status', { kind: 'not-found' }],
  ];
  for (const [target, route] of cases) assert.deepEqual(parseAdminTarget(target).route, route, target);
  assert.equal(parseAdminTarget('/api/v1/events?token=abc').query.get('token'), 'abc');
});

test('a bad percent-encoding in an asset name or a pool segment is a 400 bad_path', () => {
  for (const target of ['/assets/%', '/assets/%zz', '/api/v1/pools/%', '/api/v1/pools/web/backends/%E0%A4%A']) {
    assert.throws(
      () => parseAdminTarget(target),
      (err: unknown) => err instanceof AdminError && err.status === 400 && err.reason === 'bad_path',
      target,
    );
  }
});

test('an absolute-form target the URL parser refuses is a 400 bad_path', () => {
  assert.throws(
    () => parseAdminTarget('http://[::1/healthz'),
    (err: unknown) => err instanceof AdminError && err.status === 400 && err.reason === 'bad_path',
  );
});
