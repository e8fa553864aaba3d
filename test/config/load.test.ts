/**
 * Loading config files: a full example resolves to the expected values with every default
 * filled in, and each kind of mistake is reported with its path, its line and a reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYamlForTest } from 'yaml';
import { ConfigError, ErrorCodes, type ConfigIssue } from '../../src/errors.js';
import { loadConfigFile, normalizeConfig, parseConfigText } from '../../src/config/load.js';
import { Defaults, defaultPassive, defaultTimeouts, type Config } from '../../src/config/types.js';

/** Joins lines so that a test can read line numbers off the array index (index + 1). */
function doc(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** A valid base the rejection tests extend: lines 1-6. */
const BASE = [
  'listeners:', //                        1
  '  - name: web', //                     2
  '    listen: 127.0.0.1:8080', //        3
  '    pool: web', //                     4
  'pools:', //                            5
  '  - name: web', //                     6
];
const BASE_BACKENDS = ['    backends:', '      - 127.0.0.1:9001']; // lines 7-8

function parseError(text: string, env: Record<string, string> = {}, file = 'l4lb.yaml'): ConfigError {
  try {
    parseConfigText(text, file, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

function issueAt(err: ConfigError, path: string): ConfigIssue {
  const found = err.issues.find((i) => i.path === path);
  assert.ok(found, `no issue at ${path}; got:\n${err.message}`);
  return found;
}

/** Asserts exactly one issue, at `path` on `line`, whose message matches. */
function assertOnlyIssue(err: ConfigError, path: string, line: number, message: RegExp): void {
  assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
  assert.equal(err.issues.length, 1, `expected one issue, got:\n${err.message}`);
  const issue = issueAt(err, path);
  assert.equal(issue.line, line, `line of ${path}`);
  assert.match(issue.message, message);
}

const FULL = doc(
  'workers: 2',
  'maxConnections: 5000',
  'shutdown: { drainTimeout: 20s, closeSpread: 2s }',
  'log: { level: debug, access: off }',
  'admin: { listen: "127.0.0.1:9000", token: "${L4LB_ADMIN_TOKEN}", persist: true }',
  'listeners:',
  '  - name: web',
  '    listen: 127.0.0.1:8080',
  '    pool: web',
  '    retries: 2',
  '    maxConnections: 10000',
  '    overLimit: reject',
  '    timeouts: { connect: 3s, idle: 10m, clientFin: 15s, serverFin: 20s, maxLifetime: 1h, preread: 250ms }',
  '    acl: [ { allow: 10.0.0.0/8 }, { deny: [0.0.0.0/0, "::/0"] } ]',
  '    aclDefault: deny',
  '    sourceLimits: { maxConnections: 100, ratePerSecond: 50, burst: 80, ipv6Prefix: 56 }',
  '    acceptProxy: { trusted: [127.0.0.1/32] }',
  '  - listen: "[::1]:8443"',
  '    tls: { mode: passthrough }',
  '    routes:',
  '      - { serverNames: [API.example.com, "*.example.org"], pool: api }',
  '      - { alpn: [h2], pool: web }',
  '  - name: term',
  '    listen: :9443',
  '    pool: web',
  '    timeouts: { connect: 1500 }',
  '    tls: { mode: terminate, certificates: [ { cert: /etc/l4lb/a.pem, key: /etc/l4lb/a.key } ] }',
  'pools:',
  '  - name: web',
  '    balance: round-robin',
  '    hashKey: source-ip-port',
  '    slowStart: 30s',
  '    proxyProtocol: v2',
  '    queue: { size: 10, timeout: 2s }',
  '    tls: { enabled: true, ca: /etc/l4lb/ca.pem, insecureSkipVerify: false, servername: backend.internal }',
  '    healthCheck: { type: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3, jitter: 0.1 }',
  '    passive: { consecutiveFailures: 5, baseEjection: 30s, maxEjection: 300s }',
  '    backends:',
  '      - 127.0.0.1:9001',
  '      - { address: 127.0.0.1:9002, weight: 2, backup: false, state: enabled, maxConnections: 0, name: b2 }',
  '      - { address: "[::1]:9003", backup: true, state: draining, maxConnections: 7 }',
  '  - name: api',
  '    balance: maglev',
  '    healthCheck: { send: "PING\\r\\n", expectRegex: "^\\\\+PONG", interval: 500ms }',
  '    dns: { name: api.internal, port: 8080, resolvers: [127.0.0.1:5353, 127.0.0.2], minTtl: 2s, maxTtl: 60s, keepLastOnFailure: false, weight: 3 }',
);

const FULL_EXPECTED: Config = {
  file: 'l4lb.yaml',
  workers: 2,
  maxConnections: 5000,
  shutdown: { drainTimeoutMs: 20_000, closeSpreadMs: 2_000 },
  log: { level: 'debug', access: 'off' },
  admin: { host: '127.0.0.1', port: 9000, token: 's3cret', persist: true },
  listeners: [
    {
      name: 'web',
      host: '127.0.0.1',
      port: 8080,
      pool: 'web',
      retries: 2,
      maxConnections: 10000,
      overLimit: 'reject',
      timeouts: { connectMs: 3000, idleMs: 600_000, clientFinMs: 15_000, serverFinMs: 20_000, maxLifetimeMs: 3_600_000, prereadMs: 250 },
      acl: [
        { action: 'allow', cidr: '10.0.0.0/8' },
        { action: 'deny', cidr: '0.0.0.0/0' },
        { action: 'deny', cidr: '::/0' },
      ],
      aclDefault: 'deny',
      sourceLimits: { maxConnections: 100, ratePerSecond: 50, burst: 80, ipv6Prefix: 56 },
      acceptProxy: { trusted: ['127.0.0.1/32'] },
      routes: [],
    },
    {
      name: '[::1]:8443',
      host: '::1',
      port: 8443,
      timeouts: defaultTimeouts(),
      maxConnections: 0,
      overLimit: 'queue',
      acl: [],
      aclDefault: 'allow',
      tls: { mode: 'passthrough', certificates: [] },
      routes: [
        { serverNames: ['api.example.com', '*.example.org'], pool: 'api' },
        { alpn: ['h2'], pool: 'web' },
      ],
    },
    {
      name: 'term',
      host: '',
      port: 9443,
      pool: 'web',
      timeouts: { ...defaultTimeouts(), connectMs: 1500 },
      maxConnections: 0,
      overLimit: 'queue',
      acl: [],
      aclDefault: 'allow',
      tls: { mode: 'terminate', certificates: [{ cert: '/etc/l4lb/a.pem', key: '/etc/l4lb/a.key' }] },
      routes: [],
    },
  ],
  pools: [
    {
      name: 'web',
      balance: 'round-robin',
      hashKey: 'source-ip-port',
      slowStartMs: 30_000,
      proxyProtocol: 'v2',
      queue: { size: 10, timeoutMs: 2000 },
      tls: { enabled: true, ca: '/etc/l4lb/ca.pem', insecureSkipVerify: false, servername: 'backend.internal' },
      healthCheck: { type: 'tcp', intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3, jitter: 0.1 },
      passive: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000 },
      backends: [
        { name: '127.0.0.1:9001', host: '127.0.0.1', port: 9001, weight: 1, backup: false, state: 'enabled', maxConnections: 0, check: true },
        { name: 'b2', host: '127.0.0.1', port: 9002, weight: 2, backup: false, state: 'enabled', maxConnections: 0, check: true },
        { name: '[::1]:9003', host: '::1', port: 9003, weight: 1, backup: true, state: 'draining', maxConnections: 7, check: true },
      ],
    },
    {
      name: 'api',
      balance: 'maglev',
      hashKey: 'source-ip',
      slowStartMs: 0,
      queue: { size: 0, timeoutMs: Defaults.queueTimeoutMs },
      healthCheck: {
        type: 'send-expect',
        intervalMs: 500,
        timeoutMs: 500,
        rise: Defaults.healthRise,
        fall: Defaults.healthFall,
        jitter: Defaults.healthJitter,
        send: Buffer.from('PING\r\n'),
        expect: { kind: 'regex', value: '^\\+PONG' },
      },
      passive: defaultPassive(),
      backends: [],
      dns: {
        name: 'api.internal',
        port: 8080,
        resolvers: ['127.0.0.1:5353', '127.0.0.2:53'],
        minTtlMs: 2000,
        maxTtlMs: 60_000,
        keepLastOnFailure: false,
        weight: 3,
      },
    },
  ],
};

test('a full config resolves to the expected values: durations in ms, addresses parsed, defaults filled', () => {
  const cfg = parseConfigText(FULL, 'l4lb.yaml', { L4LB_ADMIN_TOKEN: 's3cret' });
  assert.deepStrictEqual(cfg, FULL_EXPECTED);
});

test('the same config written as JSON resolves to the same values', () => {
  const raw = parseConfigText(FULL, 'l4lb.yaml', { L4LB_ADMIN_TOKEN: 's3cret' });
  // Rebuild the input as JSON text from the YAML, through the yaml package's own reading.
  const yamlText = FULL.replace('"${L4LB_ADMIN_TOKEN}"', '"s3cret"');
  const json = JSON.stringify(parseYamlForTest(yamlText), null, 2);
  const cfg = parseConfigText(json, 'l4lb.json', {});
  assert.deepStrictEqual({ ...cfg, file: raw.file }, raw);
  assert.equal(cfg.file, 'l4lb.json');
});

test('a minimal config takes every default from Defaults, defaultTimeouts() and defaultPassive()', () => {
  const cfg = parseConfigText(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: {}'), 'l4lb.yaml', {});
  assert.equal(cfg.workers, 1);
  assert.equal(cfg.maxConnections, 0);
  assert.equal(cfg.admin, undefined);
  assert.deepEqual(cfg.shutdown, { drainTimeoutMs: Defaults.drainTimeoutMs, closeSpreadMs: Defaults.closeSpreadMs });
  assert.deepEqual(cfg.log, { level: 'info', access: 'stderr' });
  const l = cfg.listeners[0];
  assert.deepEqual(l.timeouts, defaultTimeouts());
  assert.equal(l.retries, undefined);
  assert.equal(l.overLimit, 'queue');
  assert.deepEqual([l.acl, l.aclDefault, l.routes], [[], 'allow', []]);
  assert.equal('sourceLimits' in l || 'acceptProxy' in l || 'tls' in l, false);
  const p = cfg.pools[0];
  assert.deepEqual(p.passive, defaultPassive());
  assert.deepEqual(p.queue, { size: 0, timeoutMs: Defaults.queueTimeoutMs });
  assert.deepEqual(p.healthCheck, {
    type: 'tcp',
    intervalMs: Defaults.healthIntervalMs,
    timeoutMs: Defaults.healthTimeoutMs,
    rise: Defaults.healthRise,
    fall: Defaults.healthFall,
    jitter: Defaults.healthJitter,
  });
  assert.deepEqual(p.backends, [
    { name: '127.0.0.1:9001', host: '127.0.0.1', port: 9001, weight: 1, backup: false, state: 'enabled', maxConnections: 0, check: true },
  ]);
});

test('the default health check timeout never exceeds a short interval', () => {
  const cfg = parseConfigText(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { interval: 300ms }'), 'l4lb.yaml', {});
  assert.equal(cfg.pools[0].healthCheck?.intervalMs, 300);
  assert.equal(cfg.pools[0].healthCheck?.timeoutMs, 300);
});

test('workers: auto becomes the number of available CPUs', () => {
  const cfg = parseConfigText(doc('workers: auto', ...BASE, ...BASE_BACKENDS), 'l4lb.yaml', {});
  assert.equal(cfg.workers, availableParallelism());
});

test('durations accept plain milliseconds and compound units', () => {
  const cfg = parseConfigText(
    doc(...BASE.slice(0, 4), '    timeouts: { connect: 750, idle: 1m30s, maxLifetime: 1d }', ...BASE.slice(4), ...BASE_BACKENDS),
    'l4lb.yaml',
    {},
  );
  assert.deepEqual(cfg.listeners[0].timeouts, { ...defaultTimeouts(), connectMs: 750, idleMs: 90_000, maxLifetimeMs: 86_400_000 });
});

test('health check bytes come from sendHex and expectHex, and imply type send-expect', () => {
  const cfg = parseConfigText(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { sendHex: "50 49 4E 47", expectHex: 2B4F }'), 'l4lb.yaml', {});
  const hc = cfg.pools[0].healthCheck;
  assert.equal(hc?.type, 'send-expect');
  assert.deepEqual(hc?.send, Buffer.from('PING'));
  assert.deepEqual(hc?.expect, { kind: 'hex', value: '2b4f' });
});

test('source limits default the burst to the rate, and at least one', () => {
  const at = (limits: string): unknown =>
    parseConfigText(doc(...BASE.slice(0, 4), `    sourceLimits: ${limits}`, ...BASE.slice(4), ...BASE_BACKENDS), 'l4lb.yaml', {})
      .listeners[0].sourceLimits;
  assert.deepEqual(at('{ ratePerSecond: 20 }'), { maxConnections: 0, ratePerSecond: 20, burst: 20, ipv6Prefix: Defaults.ipv6SourcePrefix });
  assert.deepEqual(at('{ ratePerSecond: 0.5 }'), { maxConnections: 0, ratePerSecond: 0.5, burst: 1, ipv6Prefix: 64 });
  assert.deepEqual(at('{ maxConnections: 3 }'), { maxConnections: 3, ratePerSecond: 0, burst: 0, ipv6Prefix: 64 });
});

test('sourceLimits.shared takes a redis:// or rediss:// URL and fills its defaults', () => {
  const at = (limits: string): unknown =>
    parseConfigText(doc(...BASE.slice(0, 4), `    sourceLimits: ${limits}`, ...BASE.slice(4), ...BASE_BACKENDS), 'l4lb.yaml', {})
      .listeners[0].sourceLimits;
  assert.deepEqual(at('{ ratePerSecond: 20, shared: { redis: "redis://127.0.0.1:6379/0" } }'), {
    maxConnections: 0,
    ratePerSecond: 20,
    burst: 20,
    ipv6Prefix: 64,
    shared: { redis: 'redis://127.0.0.1:6379/0', prefix: 'l4lb:', timeoutMs: 50, onStoreFailure: 'open', leaseTtlMs: 10_000, leaseSize: undefined },
  });
  const full = at('{ maxConnections: 5, shared: { redis: "rediss://u:p@redis.internal:6380/2", prefix: "edge:", timeout: 20ms, onStoreFailure: closed, leaseTtl: 3s, leaseSize: 4 } }');
  assert.deepEqual((full as { shared: unknown }).shared, {
    redis: 'rediss://u:p@redis.internal:6380/2', prefix: 'edge:', timeoutMs: 20, onStoreFailure: 'closed', leaseTtlMs: 3000, leaseSize: 4,
  });
});

test('a bad sourceLimits.shared is rejected with its path and why', () => {
  const limits = (shared: string) => doc(...BASE.slice(0, 4), `    sourceLimits: { ratePerSecond: 5, shared: ${shared} }`, ...BASE.slice(4), ...BASE_BACKENDS);
  assertOnlyIssue(parseError(limits('{ redis: "http://127.0.0.1:6379" }')), 'listeners[0].sourceLimits.shared.redis', 5, /the scheme must be redis:\/\/ or rediss:\/\/ \(TLS\), got http:\/\//);
  assertOnlyIssue(parseError(limits('{ redis: "redis://127.0.0.1:6379/cache" }')), 'listeners[0].sourceLimits.shared.redis', 5, /the path is a database number/);
  assertOnlyIssue(parseError(limits('{ redis: "not a url" }')), 'listeners[0].sourceLimits.shared.redis', 5, /expected a URL like redis:\/\/HOST:PORT\/DB/);
  assertOnlyIssue(parseError(limits('{ redis: "redis://127.0.0.1", onStoreFailure: maybe }')), 'listeners[0].sourceLimits.shared.onStoreFailure', 5, /open.*closed/);
  assertOnlyIssue(parseError(limits('{ redis: "redis://127.0.0.1", timeout: 0 }')), 'listeners[0].sourceLimits.shared.timeout', 5, /greater than 0/);
  assertOnlyIssue(parseError(limits('{ prefix: "x:" }')), 'listeners[0].sourceLimits.shared.redis', 5, /./);
});

test('top-level x- keys are ignored so they can hold YAML anchors for merge keys', () => {
  const cfg = parseConfigText(
    doc('x-timeouts: &t { connect: 2s, idle: 1m }', ...BASE.slice(0, 4), '    timeouts: { <<: *t, idle: 2m }', ...BASE.slice(4), ...BASE_BACKENDS),
    'l4lb.yaml',
    {},
  );
  assert.equal(cfg.listeners[0].timeouts.connectMs, 2000);
  assert.equal(cfg.listeners[0].timeouts.idleMs, 120_000);
});

test('a mistake inside a merged anchor is reported on the anchor line', () => {
  const err = parseError(
    doc('x-timeouts: &t { connect: 5 parsecs }', ...BASE.slice(0, 4), '    timeouts:', '      <<: *t', ...BASE.slice(4), ...BASE_BACKENDS),
  );
  assertOnlyIssue(err, 'listeners[0].timeouts.connect', 1, /is not a duration/);
});

test('anchors on a list item share its settings with a merge key', () => {
  const cfg = parseConfigText(
    doc(
      'listeners:',
      '  - &l { name: a, listen: 127.0.0.1:8001, pool: web, timeouts: { idle: 1m } }',
      '  - { <<: *l, name: b, listen: 127.0.0.1:8002 }',
      'pools: [ { name: web, backends: [127.0.0.1:9001] } ]',
    ),
    'l4lb.yaml',
    {},
  );
  assert.deepEqual(
    cfg.listeners.map((l) => [l.name, l.port, l.timeouts.idleMs]),
    [
      ['a', 8001, 60_000],
      ['b', 8002, 60_000],
    ],
  );
});

// ------------------------------------------------------------------------------------------
// Rejections: one per kind of mistake, each asserting path, line and reason.

test('an unknown key is rejected at its own line with a suggestion', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    retires: 2', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].retires', 5, /^unknown key "retires" \(did you mean "retries"\?\)$/);
});

test('an unknown key with no near match lists the allowed keys', () => {
  const err = parseError(doc(...BASE, ...BASE_BACKENDS, '    queue: { zzzzzz: 1 }'));
  assertOnlyIssue(err, 'pools[0].queue.zzzzzz', 9, /^unknown key "zzzzzz"; allowed keys: size, timeout$/);
});

test('a value of the wrong type is rejected with what was expected and what was found', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    maxConnections: lots', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].maxConnections', 5, /^expected a number, got a string \("lots"\)$/);
});

test('a backend that is neither an address nor an object says what it may be', () => {
  const err = parseError(doc(...BASE, '    backends:', '      - 9001'));
  assertOnlyIssue(err, 'pools[0].backends[0]', 8, /^expected an address \("HOST:PORT"\) or an object with an address, got a number \(9001\)$/);
});

test('a missing required key is reported at its parent', () => {
  const err = parseError(doc('listeners:', '  - name: web', '    pool: web', 'pools:', '  - name: web', ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].listen', 2, /^required$/);
});

test('an IPv6 backend address without brackets is rejected', () => {
  const err = parseError(doc(...BASE, '    backends:', '      - 127.0.0.1:9001', '      - "::1:80"'));
  assertOnlyIssue(err, 'pools[0].backends[1].address', 9, /IPv6 addresses need brackets, e\.g\. "\[::1\]:80"/);
});

test('a backend address with a bad port is rejected at its address key', () => {
  const err = parseError(doc(...BASE, '    backends:', '      - address: 127.0.0.1:70000', '        weight: 2'));
  assertOnlyIssue(err, 'pools[0].backends[0].address', 8, /port 70000 is out of range 1-65535/);
});

test('a listen address without a port is rejected', () => {
  const err = parseError(doc('listeners:', '  - name: web', '    listen: 127.0.0.1', '    pool: web', 'pools:', '  - name: web', ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].listen', 3, /expected HOST:PORT, got "127\.0\.0\.1"/);
});

test('duplicate listener names are rejected at the second one', () => {
  const err = parseError(
    doc(...BASE.slice(0, 4), '  - name: web', '    listen: 127.0.0.1:8081', '    pool: web', ...BASE.slice(4), ...BASE_BACKENDS),
  );
  assertOnlyIssue(err, 'listeners[1].name', 5, /^duplicate listener name "web" \(also used by listeners\[0\]\)$/);
});

test('duplicate pool names are rejected at the second one', () => {
  const err = parseError(doc(...BASE, ...BASE_BACKENDS, '  - name: web', '    backends: [127.0.0.1:9002]'));
  assertOnlyIssue(err, 'pools[1].name', 9, /^duplicate pool name "web" \(also used by pools\[0\]\)$/);
});

test('duplicate backend names within a pool are rejected', () => {
  const err = parseError(
    doc(...BASE, '    backends:', '      - { address: 127.0.0.1:9001, name: a }', '      - { address: 127.0.0.1:9002, name: a }'),
  );
  assertOnlyIssue(err, 'pools[0].backends[1].name', 9, /^duplicate backend name "a" in this pool/);
});

test('the same backend address listed twice without names is a duplicate name', () => {
  const err = parseError(doc(...BASE, '    backends: [127.0.0.1:9001, 127.0.0.1:9001]'));
  assertOnlyIssue(err, 'pools[0].backends[1]', 7, /^duplicate backend name "127\.0\.0\.1:9001"/);
});

test('two listeners on the same address are rejected, and so is one that overlaps a wildcard', () => {
  const two = parseError(
    doc('listeners:', '  - { name: a, listen: 127.0.0.1:8080, pool: web }', '  - { name: b, listen: 127.0.0.1:8080, pool: web }', 'pools:', '  - name: web', ...BASE_BACKENDS),
  );
  assertOnlyIssue(two, 'listeners[1].listen', 3, /^listen address "127\.0\.0\.1:8080" clashes with listeners\[0\]/);
  const wildcard = parseError(
    doc('listeners:', '  - { name: a, listen: ":8080", pool: web }', '  - { name: b, listen: 127.0.0.1:8080, pool: web }', 'pools:', '  - name: web', ...BASE_BACKENDS),
  );
  assertOnlyIssue(wildcard, 'listeners[1].listen', 3, /clashes with listeners\[0\] \(":8080"\)/);
});

test('listeners on port 0 never clash: each gets its own ephemeral port', () => {
  const cfg = parseConfigText(
    doc('listeners:', '  - { name: a, listen: 127.0.0.1:0, pool: web }', '  - { name: b, listen: 127.0.0.1:0, pool: web }', 'pools:', '  - name: web', ...BASE_BACKENDS),
    'l4lb.yaml',
    {},
  );
  assert.deepEqual(cfg.listeners.map((l) => l.port), [0, 0]);
});

test('a pool with neither backends nor dns is rejected as empty', () => {
  const err = parseError(doc(...BASE, '    backends: []'));
  assertOnlyIssue(err, 'pools[0].backends', 7, /^the pool is empty: list backends, or discover them with dns$/);
  const noKey = parseError(doc(...BASE, '    balance: random'));
  assertOnlyIssue(noKey, 'pools[0]', 6, /the pool is empty/);
});

test('a backend weight of 0 or below is rejected', () => {
  const err = parseError(
    doc(...BASE, '    backends:', '      - { address: 127.0.0.1:9001, weight: 0 }', '      - { address: 127.0.0.1:9002, weight: -1 }'),
  );
  assert.equal(err.issues.length, 2);
  assert.deepEqual(issueAt(err, 'pools[0].backends[0].weight'), {
    path: 'pools[0].backends[0].weight',
    line: 8,
    message: 'must be greater than 0, got a number (0)',
  });
  assert.deepEqual(issueAt(err, 'pools[0].backends[1].weight'), {
    path: 'pools[0].backends[1].weight',
    line: 9,
    message: 'must be greater than 0, got a number (-1)',
  });
});

test('a listener that names an unknown pool is rejected with a suggestion', () => {
  const err = parseError(doc(...BASE.slice(0, 3), '    pool: wbe', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].pool', 4, /^unknown pool "wbe" \(did you mean "web"\?\)$/);
});

test('a route that names an unknown pool is rejected', () => {
  const err = parseError(
    doc(...BASE, ...BASE_BACKENDS).replace(
      '    pool: web\npools:',
      '    pool: web\n    tls: { mode: passthrough }\n    routes:\n      - { serverNames: [a.example.com], pool: nothere }\npools:',
    ),
  );
  assertOnlyIssue(err, 'listeners[0].routes[0].pool', 7, /^unknown pool "nothere" \(pools: web\)$/);
});

test('an unknown balancer name is rejected with the list of names', () => {
  const err = parseError(doc(...BASE, '    balance: fastest', ...BASE_BACKENDS));
  assertOnlyIssue(
    err,
    'pools[0].balance',
    7,
    /^must be one of round-robin, weighted-round-robin, least-connections, random, power-of-two-choices, source-ip-hash, maglev, got a string \("fastest"\)$/,
  );
});

test("HAProxy's and nginx's balancer names get a did-you-mean to l4lb's", () => {
  const cases: Array<[string, RegExp]> = [
    ['leastconn', /\(did you mean "least-connections"\? that is HAProxy's leastconn\)$/],
    ['least_conn', /\(did you mean "least-connections"\? that is nginx's least_conn\)$/],
    ['roundrobin', /\(did you mean "weighted-round-robin"\? that is HAProxy's roundrobin \(it honours weights; round-robin ignores them\)\)$/],
    ['static-rr', /\(did you mean "weighted-round-robin"\? that is HAProxy's static-rr\)$/],
    ['source', /\(did you mean "source-ip-hash"\? that is HAProxy's source\)$/],
    ['ip_hash', /\(did you mean "source-ip-hash"\? that is nginx's ip_hash\)$/],
    ['first', /\(HAProxy's first has no equivalent: l4lb always spreads connections\)$/],
    ['round_robin', /\(did you mean "round-robin"\?\)$/],
  ];
  for (const [name, hint] of cases) {
    const err = parseError(doc(...BASE, `    balance: ${name}`, ...BASE_BACKENDS));
    assertOnlyIssue(err, 'pools[0].balance', 7, hint);
  }
});

test('bad CIDRs are rejected: a prefix out of range, and not an address at all', () => {
  const err = parseError(
    doc(...BASE.slice(0, 4), '    acl:', '      - allow: 10.0.0.0/33', '      - deny: [0.0.0.0/0, intranet]', ...BASE.slice(4), ...BASE_BACKENDS),
  );
  assert.equal(err.issues.length, 2);
  assert.deepEqual(issueAt(err, 'listeners[0].acl[0].allow'), {
    path: 'listeners[0].acl[0].allow',
    line: 6,
    message: 'prefix length "/33" in "10.0.0.0/33" must be a number from 0 to 32',
  });
  const second = issueAt(err, 'listeners[0].acl[1].deny[1]');
  assert.equal(second.line, 7);
  assert.match(second.message, /^"intranet" is not an IP address or CIDR/);
});

test('a bad trusted CIDR for PROXY headers is rejected', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    acceptProxy: { trusted: ["::1/129"] }', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].acceptProxy.trusted[0]', 5, /must be a number from 0 to 128/);
});

test('a duration in unknown units is rejected', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    timeouts:', '      connect: 5 parsecs', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].timeouts.connect', 6, /^"5 parsecs" is not a duration: write a number and a unit/);
});

test('a duration longer than timers allow is rejected', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    timeouts: { maxLifetime: 30d }', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].timeouts.maxLifetime', 5, /too long: the maximum is 24d/);
});

test('an unset environment variable is rejected at the value that uses it', () => {
  const err = parseError(doc(...BASE.slice(0, 2), '    listen: ${WEB_LISTEN}', ...BASE.slice(3), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].listen', 3, /^environment variable WEB_LISTEN is not set \(write \$\{WEB_LISTEN:-default\}/);
});

test('rise and fall below 1 are rejected', () => {
  const err = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck:', '      rise: 0', '      fall: -2'));
  assert.equal(err.issues.length, 2);
  assert.deepEqual(issueAt(err, 'pools[0].healthCheck.rise'), { path: 'pools[0].healthCheck.rise', line: 10, message: 'must be at least 1, got a number (0)' });
  assert.equal(issueAt(err, 'pools[0].healthCheck.fall').line, 11);
});

test('a health check timeout longer than its interval is rejected', () => {
  const err = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { interval: 1s, timeout: 2s }'));
  assertOnlyIssue(err, 'pools[0].healthCheck.timeout', 9, /^timeout \(2000ms\) must not exceed interval \(1000ms\)$/);
});

test('health check keys that exclude each other are rejected', () => {
  const both = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { send: a, sendHex: "61", expect: b }'));
  assertOnlyIssue(both, 'pools[0].healthCheck.sendHex', 9, /^use either send or sendHex, not both$/);
  const tcp = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { type: tcp, expect: PONG }'));
  assertOnlyIssue(tcp, 'pools[0].healthCheck.expect', 9, /needs type: send-expect/);
  const empty = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { type: send-expect }'));
  assertOnlyIssue(empty, 'pools[0].healthCheck.type', 9, /send-expect needs send or sendHex/);
  const regex = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { expectRegex: "(" }'));
  assertOnlyIssue(regex, 'pools[0].healthCheck.expectRegex', 9, /^not a valid regular expression/);
  const hex = parseError(doc(...BASE, ...BASE_BACKENDS, '    healthCheck: { expectHex: "abc" }'));
  assertOnlyIssue(hex, 'pools[0].healthCheck.expectHex', 9, /is not hex bytes/);
});

test('dns discovery needs exactly one of name+port or srv', () => {
  const none = parseError(doc(...BASE, '    dns: { resolvers: [127.0.0.1] }'));
  assertOnlyIssue(none, 'pools[0].dns', 7, /^needs name \(with port\)/);
  const noPort = parseError(doc(...BASE, '    dns: { name: app.internal }'));
  assertOnlyIssue(noPort, 'pools[0].dns.port', 7, /^required with dns\.name/);
  const srvPort = parseError(doc(...BASE, '    dns:', '      srv: _app._tcp.internal', '      port: 80'));
  assertOnlyIssue(srvPort, 'pools[0].dns.port', 9, /not allowed with dns\.srv/);
  const both = parseError(doc(...BASE, '    dns: { srv: _app._tcp.internal }', '    backends: [127.0.0.1:9001]'));
  assertOnlyIssue(both, 'pools[0].dns', 7, /^use either backends or dns in a pool, not both$/);
  const resolver = parseError(doc(...BASE, '    dns: { name: a.internal, port: 80, resolvers: [dns.google] }'));
  assertOnlyIssue(resolver, 'pools[0].dns.resolvers[0]', 7, /expected a DNS server IP/);
});

test('passive ejection and dns TTL bounds must be ordered', () => {
  const passive = parseError(doc(...BASE, ...BASE_BACKENDS, '    passive: { baseEjection: 10m }'));
  assertOnlyIssue(passive, 'pools[0].passive.baseEjection', 9, /^maxEjection \(300000ms\) must not be less than baseEjection \(600000ms\)$/);
  const ttl = parseError(doc(...BASE, '    dns: { name: a.internal, port: 80, minTtl: 1m, maxTtl: 10s }'));
  assertOnlyIssue(ttl, 'pools[0].dns.minTtl', 7, /^minTtl \(60000ms\) must not exceed maxTtl \(10000ms\)$/);
});

test('listener TLS and routes must fit together', () => {
  const listener = (...extra: string[]): string => doc(...BASE.slice(0, 4), ...extra, ...BASE.slice(4), ...BASE_BACKENDS);
  const noCerts = parseError(listener('    tls: { mode: terminate }'));
  assertOnlyIssue(noCerts, 'listeners[0].tls.certificates', 5, /^required with mode: terminate/);
  const passCerts = parseError(listener('    tls: { mode: passthrough, certificates: [{ cert: a, key: b }] }'));
  assertOnlyIssue(passCerts, 'listeners[0].tls.certificates', 5, /not used with mode: passthrough/);
  const routesNoTls = parseError(listener('    routes: [ { serverNames: [a.example.com], pool: web } ]'));
  assertOnlyIssue(routesNoTls, 'listeners[0].routes', 5, /routes match on the TLS ClientHello/);
  const badName = parseError(listener('    tls: { mode: passthrough }', '    routes: [ { serverNames: ["*"], pool: web } ]'));
  assertOnlyIssue(badName, 'listeners[0].routes[0].serverNames[0]', 6, /expected a server name like/);
});

test('a listener with routes needs no pool, and a route with neither names nor alpn catches the rest', () => {
  const cfg = parseConfigText(
    doc(
      'listeners:',
      '  - name: tls',
      '    listen: 127.0.0.1:8443',
      '    tls: { mode: passthrough }',
      '    routes: [ { serverNames: [A.Example.COM.], pool: web }, { pool: web } ]',
      'pools:',
      '  - name: web',
      ...BASE_BACKENDS,
    ),
    'l4lb.yaml',
    {},
  );
  assert.equal(cfg.listeners[0].pool, undefined);
  assert.deepEqual(cfg.listeners[0].routes, [{ serverNames: ['a.example.com'], pool: 'web' }, { pool: 'web' }]);
});

test('a listener needs a pool unless it has routes', () => {
  const err = parseError(doc('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', 'pools:', '  - name: web', ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0]', 2, /^needs a pool \(or routes\)$/);
});

test('an ACL rule must be either allow or deny', () => {
  const err = parseError(doc(...BASE.slice(0, 4), '    acl: [ { allow: 10.0.0.0/8, deny: 10.1.0.0/16 } ]', ...BASE.slice(4), ...BASE_BACKENDS));
  assertOnlyIssue(err, 'listeners[0].acl[0]', 5, /either \{ allow: CIDR \} or \{ deny: CIDR \}/);
});

test('an admin API on a non-loopback address without a token is rejected', () => {
  const err = parseError(doc('admin:', '  listen: 0.0.0.0:9000', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(err, 'admin.token', 1, /^required when admin\.listen is not a loopback address$/);
  const empty = parseError(doc('admin: { listen: ":9000", token: "${T:-}" }', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(empty, 'admin.token', 1, /required when admin\.listen is not a loopback address/);
  const ok = parseConfigText(doc('admin: { listen: "[::1]:9000" }', ...BASE, ...BASE_BACKENDS), 'l4lb.yaml', {});
  assert.deepEqual(ok.admin, { host: '::1', port: 9000, persist: false });
});

test('an admin address that clashes with a listener is rejected', () => {
  const err = parseError(doc('admin: { listen: "127.0.0.1:8080" }', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(err, 'admin.listen', 1, /^admin address "127\.0\.0\.1:8080" clashes with listeners\[0\]/);
});

test('log.access stdout is rejected: stdout carries the listening lines', () => {
  const err = parseError(doc('log: { access: stdout }', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(err, 'log.access', 1, /use stderr, off or a file path/);
});

test('workers must be auto or a positive whole number', () => {
  const err = parseError(doc('workers: many', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(err, 'workers', 1, /^expected "auto" or a whole number from 1 to 1024, got a string \("many"\)$/);
  const zero = parseError(doc('workers: 0', ...BASE, ...BASE_BACKENDS));
  assertOnlyIssue(zero, 'workers', 1, /must be at least 1/);
});

test('an empty file and a non-object document are rejected', () => {
  const empty = parseError('# nothing here\n');
  assert.equal(empty.code, ErrorCodes.CONFIG_INVALID);
  assert.match(empty.issues[0].message, /the config is empty/);
  const list = parseError('- a\n- b\n');
  assertOnlyIssue(list, '', 1, /^expected an object \(key: value pairs\), got a list$/);
});

test('several problems are reported together, ordered by line', () => {
  const err = parseError(
    doc(
      'workers: -3', //                                      1
      'listeners:', //                                        2
      '  - name: web', //                                     3
      '    listen: "::1:80"', //                              4
      '    pool: api', //                                     5
      '    colour: blue', //                                  6
      'pools:', //                                            7
      '  - name: web', //                                     8
      '    balance: fastest', //                              9
      '    backends:', //                                     10
      '      - { address: 127.0.0.1:9001, weight: 0 }', //   11
      '  - name: web', //                                     12
      '    backends: []', //                                  13
    ),
  );
  assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
  assert.deepEqual(
    err.issues.map((i) => [i.line, i.path]),
    [
      [1, 'workers'],
      [4, 'listeners[0].listen'],
      [5, 'listeners[0].pool'],
      [6, 'listeners[0].colour'],
      [9, 'pools[0].balance'],
      [11, 'pools[0].backends[0].weight'],
      [12, 'pools[1].name'],
      [13, 'pools[1].backends'],
    ],
  );
  // The message has one line per issue: FILE:LINE: PATH: REASON.
  const lines = err.message.split('\n');
  assert.equal(lines.length, 8);
  assert.match(lines[1], /^l4lb\.yaml:4: listeners\[0\]\.listen: IPv6 addresses need brackets/);
});

test('a YAML syntax error is CONFIG_PARSE with its line', () => {
  const err = parseError(doc('listeners:', '  - name: web', '    listen: [127.0.0.1:8080', '    pool: web'));
  assert.equal(err.code, ErrorCodes.CONFIG_PARSE);
  assert.equal(err.issues[0].line, 4);
  assert.match(err.issues[0].message, /^YAML syntax error at column \d+: /);
  assert.match(err.message, /^l4lb\.yaml:4: /);
});

test('an unquoted ${NAME} inside { } explains that it must be quoted', () => {
  const err = parseError(doc(...BASE, ...BASE_BACKENDS, 'admin: { listen: 127.0.0.1:9000, token: ${TOKEN} }'));
  assert.equal(err.code, ErrorCodes.CONFIG_PARSE);
  assert.equal(err.issues[0].line, 9);
  assert.match(err.issues[0].message, /a \$\{NAME\} value must be quoted/);
});

test('a JSON syntax error is CONFIG_PARSE with its line', () => {
  const err = parseError('{\n  "listeners": [],\n  "pools": [,]\n}\n', {}, 'l4lb.json');
  assert.equal(err.code, ErrorCodes.CONFIG_PARSE);
  assert.equal(err.issues[0].line, 3);
  assert.equal(err.issues[0].message, 'JSON syntax error at column 13: expected a value, got ","');
});

test('JSON is strict JSON: a trailing comma is a syntax error even though YAML would take it', () => {
  const err = parseError('{"listeners": [], "pools": [],}', {}, 'config.JSON');
  assert.equal(err.code, ErrorCodes.CONFIG_PARSE);
  assert.equal(err.issues[0].message, 'JSON syntax error at column 31: a trailing comma before "}" is not allowed in JSON');
});

test('JSON syntax errors give line and column on one line, whatever Node says', () => {
  // [text, line, column, reason]: the mistakes people make writing JSON by hand.
  const cases: Array<[string, number, number, RegExp]> = [
    ['{\n  "listeners": [\n    { "listen": "127.0.0.1:0", "pool": "p" },\n  ],\n  "pools": []\n}\n', 4, 3, /trailing comma before "\]"/],
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected "," or "}" after a property value, got "\\""/],
    ['{\n  "a": "x\\q"\n}', 2, 10, /"\\q" is not a JSON escape/],
    ["{\n  'a': 1\n}", 2, 3, /property name in double quotes/],
    ['{\n  "a": yes\n}', 2, 8, /text values need double quotes/],
    ['{\n  "a": "open\n}', 2, 8, /string is not closed/],
    ['{"a": 1', 1, 8, /got end of file/],
    ['{"a": 1} {}', 1, 10, /after the end of the document/],
    ['{"a": 01}', 1, 8, /expected "," or "}"/],
  ];
  for (const [text, line, col, reason] of cases) {
    const err = parseError(text, {}, 'l4lb.json');
    assert.equal(err.code, ErrorCodes.CONFIG_PARSE, text);
    assert.equal(err.issues.length, 1, text);
    assert.equal(err.issues[0].line, line, text);
    assert.match(err.issues[0].message, new RegExp(`^JSON syntax error at column ${col}: `), text);
    assert.match(err.issues[0].message, reason, text);
    assert.doesNotMatch(err.message, /\n/, 'one line per issue');
  }
});

test('validation errors in JSON carry lines too', () => {
  const json = JSON.stringify(
    { listeners: [{ name: 'web', listen: '127.0.0.1:8080', pool: 'web' }], pools: [{ name: 'web', backends: [{ address: '127.0.0.1:9001', weight: 0 }] }] },
    null,
    2,
  );
  const err = parseError(json, {}, 'l4lb.json');
  const line = json.split('\n').findIndex((l) => l.includes('"weight"')) + 1;
  assertOnlyIssue(err, 'pools[0].backends[0].weight', line, /must be greater than 0/);
});

test('${NAME} interpolates in any string value; defaults, escapes and embedding work', () => {
  const cfg = parseConfigText(
    doc(
      'admin:',
      '  listen: ${ADMIN_HOST:-127.0.0.1}:${ADMIN_PORT}',
      '  token: "pre-${TOKEN}-$${LITERAL}-${EMPTY:-fallback}-${EMPTY_NO_DEFAULT}"',
      'listeners:',
      '  - name: ${NAME}',
      '    listen: 127.0.0.1:8080',
      '    pool: web',
      '    timeouts: { idle: "${IDLE}" }',
      'pools:',
      '  - name: web',
      '    backends: ["${BACKEND}"]',
    ),
    'l4lb.yaml',
    { ADMIN_PORT: '9100', TOKEN: 'abc', EMPTY: '', EMPTY_NO_DEFAULT: '', NAME: 'front', IDLE: '2m', BACKEND: '127.0.0.1:7000' },
  );
  assert.deepEqual(cfg.admin, { host: '127.0.0.1', port: 9100, token: 'pre-abc-${LITERAL}-fallback-', persist: false });
  assert.equal(cfg.listeners[0].name, 'front');
  assert.equal(cfg.listeners[0].timeouts.idleMs, 120_000);
  assert.equal(cfg.pools[0].backends[0].port, 7000);
});

test('malformed ${...} references are reported', () => {
  const err = parseError(doc(...BASE, '    backends: ["${1BAD}", "${UNCLOSED"]'));
  assert.equal(err.issues.length, 2);
  assert.equal(issueAt(err, 'pools[0].backends[0]').line, 7);
  assert.match(issueAt(err, 'pools[0].backends[0]').message, /is not a variable reference/);
  assert.match(issueAt(err, 'pools[0].backends[1]').message, /^unterminated "\$\{"/);
});

test('${NAME} in keys is left alone', () => {
  const err = parseError(doc('${KEY}: 1', ...BASE, ...BASE_BACKENDS), { KEY: 'workers' });
  assertOnlyIssue(err, '["${KEY}"]', 1, /unknown key "\$\{KEY\}"/);
});

test('normalizeConfig validates a CLI-built object with paths and no lines', () => {
  const cfg = normalizeConfig(
    { listeners: [{ listen: ':8080', pool: 'default' }], pools: [{ name: 'default', balance: 'random', backends: ['127.0.0.1:1', '127.0.0.1:2'] }] },
    '(command line)',
  );
  assert.equal(cfg.file, undefined);
  assert.equal(cfg.listeners[0].name, ':8080');
  assert.equal(cfg.pools[0].backends.length, 2);
  try {
    normalizeConfig({ listeners: [{ listen: ':8080', pool: 'default' }], pools: [{ name: 'default', backends: ['bad'] }] }, '(command line)');
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues, [{ path: 'pools[0].backends[0].address', message: 'expected HOST:PORT, got "bad"' }]);
    assert.equal(err.message, '(command line): pools[0].backends[0].address: expected HOST:PORT, got "bad"');
  }
});

test('normalizeConfig does not interpolate ${NAME}: flags are taken literally', () => {
  const cfg = normalizeConfig(
    { listeners: [{ name: '${X}', listen: '127.0.0.1:0', pool: 'p' }], pools: [{ name: 'p', backends: ['127.0.0.1:1'] }] },
    'flags',
  );
  assert.equal(cfg.listeners[0].name, '${X}');
});

// ------------------------------------------------------------------------------------------
// Files.

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'l4lb-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('loadConfigFile reads YAML and JSON files and records the file', async (t) => {
  const dir = await tempDir(t);
  const yamlFile = join(dir, 'l4lb.yaml');
  await writeFile(yamlFile, doc(...BASE, ...BASE_BACKENDS));
  const fromYaml = await loadConfigFile(yamlFile, {});
  assert.equal(fromYaml.file, yamlFile);
  const jsonFile = join(dir, 'l4lb.json');
  await writeFile(jsonFile, JSON.stringify({ listeners: [{ listen: '127.0.0.1:8080', pool: 'web' }], pools: [{ name: 'web', backends: ['127.0.0.1:9001'] }] }));
  const fromJson = await loadConfigFile(jsonFile, {});
  assert.deepEqual(fromJson.pools, fromYaml.pools);
});

test('a missing file is CONFIG_READ naming the file', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'nope.yaml');
  await assert.rejects(loadConfigFile(file, {}), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, ErrorCodes.CONFIG_READ);
    assert.equal(err.file, file);
    assert.equal(err.message, `${file}: (root): cannot read the config file: no such file`);
    return true;
  });
});

test('a directory given as the config file is CONFIG_READ', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(loadConfigFile(dir, {}), (err: unknown) => err instanceof ConfigError && err.code === ErrorCodes.CONFIG_READ);
});

test('relative file paths are resolved against the config file directory, and need not exist', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'l4lb.yaml');
  await writeFile(
    file,
    doc(
      'log: { access: logs/access.log }',
      ...BASE.slice(0, 4),
      '    tls: { mode: terminate, certificates: [ { cert: certs/a.pem, key: /abs/a.key } ] }',
      ...BASE.slice(4),
      ...BASE_BACKENDS,
      '    tls: { ca: ca.pem }',
    ),
  );
  const cfg = await loadConfigFile(file, {});
  assert.equal(cfg.log.access, join(dir, 'logs', 'access.log'));
  assert.deepEqual(cfg.listeners[0].tls?.certificates, [{ cert: join(dir, 'certs', 'a.pem'), key: '/abs/a.key' }]);
  assert.deepEqual(cfg.pools[0].tls, { enabled: true, ca: join(dir, 'ca.pem'), insecureSkipVerify: false });
});

test('parseConfigText resolves relative paths against the directory of the file name it is given', () => {
  const cfg = parseConfigText(doc('log: { access: a.log }', ...BASE, ...BASE_BACKENDS), 'conf/l4lb.yaml', {});
  assert.equal(cfg.log.access, resolve('conf', 'a.log'));
});

test('an ALPN route on a terminating listener is rejected: it could never match', () => {
  const yaml = `
listeners:
  - name: t
    listen: 127.0.0.1:0
    pool: p
    tls: { mode: terminate, certificates: [ { cert: a.pem, key: a.key } ] }
    routes:
      - { alpn: [h2], pool: p }
pools:
  - { name: p, backends: [ 127.0.0.1:9001 ] }
`;
  assert.throws(
    () => parseConfigText(yaml, 'alpn.yaml'),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.issues.some((i) => i.path === 'listeners[0].routes[0].alpn' && i.line === 8 && /passthrough/.test(i.message)),
  );
});
