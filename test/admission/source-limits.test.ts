/**
 * SourceLimiter (concurrency, token bucket with an injected clock, /64 grouping, pruning) and
 * RateLimitedLog.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimitedLog, SourceLimiter, type SourceAdmission } from '../../src/admission/source-limits.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function admitted(a: SourceAdmission): () => void {
  assert.equal(a.ok, true, `expected admission, got ${JSON.stringify(a)}`);
  if (!a.ok) throw new Error('unreachable');
  return a.release;
}

function refused(a: SourceAdmission): string {
  assert.equal(a.ok, false, 'expected a refusal');
  if (a.ok) throw new Error('unreachable');
  return a.reason;
}

describe('SourceLimiter concurrency', () => {
  test('caps concurrent connections per source and frees a slot on release', () => {
    const lim = new SourceLimiter({ maxConnections: 2, ratePerSecond: 0 });
    const r1 = admitted(lim.tryAdmit('10.0.0.1'));
    admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_concurrency');
    admitted(lim.tryAdmit('10.0.0.2')); // another source is not affected
    r1();
    admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_concurrency');
  });

  test('release is idempotent, whether or not the source entry outlives it', () => {
    // Without a rate limit the entry is dropped on release; with one it stays (bucket not full).
    for (const ratePerSecond of [0, 1]) {
      const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond, burst: 10, clock: () => 0 });
      const r = admitted(lim.tryAdmit('10.0.0.1'));
      r();
      r();
      const r2 = admitted(lim.tryAdmit('10.0.0.1'));
      r(); // a stale release must not free the new connection's slot
      assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_concurrency', `rate ${ratePerSecond}`);
      r2();
    }
  });

  test('counts an IPv4-mapped IPv6 client as its IPv4 address', () => {
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0 });
    admitted(lim.tryAdmit('192.0.2.1'));
    assert.equal(refused(lim.tryAdmit('::ffff:192.0.2.1')), 'source_concurrency');
  });

  test('admits everything when both limits are 0', () => {
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 0 });
    for (let i = 0; i < 100; i++) admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(lim.size, 0);
  });
});

describe('SourceLimiter rate', () => {
  test('allows a burst, then refills at the configured rate', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 2, burst: 3, clock: clock.now });
    for (let i = 0; i < 3; i++) admitted(lim.tryAdmit('10.0.0.1'))();
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
    clock.advance(499);
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
    clock.advance(1);
    admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
    clock.advance(10_000); // refills to the burst, not beyond
    for (let i = 0; i < 3; i++) admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
  });

  test('takes an explicit time argument instead of the clock', () => {
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 1, clock: () => 0 });
    admitted(lim.tryAdmit('10.0.0.1', 0));
    assert.equal(refused(lim.tryAdmit('10.0.0.1', 999)), 'source_rate');
    admitted(lim.tryAdmit('10.0.0.1', 1_000));
  });

  test('supports a fractional rate with the default burst of one', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 0.5, clock: clock.now });
    admitted(lim.tryAdmit('10.0.0.1'));
    clock.advance(1_999);
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
    clock.advance(1);
    admitted(lim.tryAdmit('10.0.0.1'));
  });

  test('a concurrency refusal does not spend a token', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 1, burst: 2, clock: clock.now });
    const r = admitted(lim.tryAdmit('10.0.0.1'));
    for (let i = 0; i < 5; i++) assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_concurrency');
    r();
    admitted(lim.tryAdmit('10.0.0.1')); // the second token is still there
  });

  test('a clock going backwards neither drains nor overfills the bucket', () => {
    const clock = manualClock(10_000);
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 1, burst: 1, clock: clock.now });
    admitted(lim.tryAdmit('10.0.0.1'));
    clock.advance(-5_000);
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_rate');
    clock.advance(1_000);
    admitted(lim.tryAdmit('10.0.0.1'));
  });

  test('rejects invalid options', () => {
    assert.throws(() => new SourceLimiter({ maxConnections: -1, ratePerSecond: 0 }), RangeError);
    assert.throws(() => new SourceLimiter({ maxConnections: 0, ratePerSecond: 1, burst: 0.5 }), RangeError);
    assert.throws(() => new SourceLimiter({ maxConnections: 0, ratePerSecond: 0, ipv6Prefix: 0 }), RangeError);
    assert.throws(() => new SourceLimiter({ maxConnections: 0, ratePerSecond: Number.NaN }), RangeError);
  });
});

describe('SourceLimiter source grouping', () => {
  test('groups IPv6 sources by /64: 2001:db8::1 and ::2 share, 2001:db8:0:1::1 does not', () => {
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0 });
    assert.equal(lim.keyOf('2001:db8::1'), lim.keyOf('2001:db8::2'));
    assert.notEqual(lim.keyOf('2001:db8::1'), lim.keyOf('2001:db8:0:1::1'));
    admitted(lim.tryAdmit('2001:db8::1'));
    assert.equal(refused(lim.tryAdmit('2001:db8::2')), 'source_concurrency');
    admitted(lim.tryAdmit('2001:db8:0:1::1'));
  });

  test('shares a token bucket within a /64', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 1, burst: 1, clock: clock.now });
    admitted(lim.tryAdmit('2001:db8::1'));
    assert.equal(refused(lim.tryAdmit('2001:db8::ffff:1')), 'source_rate');
    admitted(lim.tryAdmit('2001:db8:0:1::1'));
  });

  test('uses a configurable IPv6 prefix, including one that splits a byte', () => {
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0, ipv6Prefix: 52 });
    assert.equal(lim.keyOf('2001:db8:0:0f00::1'), lim.keyOf('2001:db8:0:0fff::1'));
    assert.notEqual(lim.keyOf('2001:db8:0:0f00::1'), lim.keyOf('2001:db8:0:1000::1'));
    const whole = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0, ipv6Prefix: 128 });
    assert.notEqual(whole.keyOf('2001:db8::1'), whole.keyOf('2001:db8::2'));
  });

  test('keeps IPv4 sources apart by default and groups them when asked', () => {
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0 });
    assert.notEqual(lim.keyOf('10.0.0.1'), lim.keyOf('10.0.0.2'));
    const by24 = new SourceLimiter({ maxConnections: 1, ratePerSecond: 0, ipv4Prefix: 24 });
    assert.equal(by24.keyOf('10.0.0.1'), by24.keyOf('10.0.0.200'));
    assert.notEqual(by24.keyOf('10.0.0.1'), by24.keyOf('10.0.1.1'));
  });
});

describe('SourceLimiter memory', () => {
  test('drops a source as soon as its last connection closes when there is no rate limit', () => {
    const lim = new SourceLimiter({ maxConnections: 5, ratePerSecond: 0 });
    const a = admitted(lim.tryAdmit('10.0.0.1'));
    const b = admitted(lim.tryAdmit('10.0.0.1'));
    assert.equal(lim.size, 1);
    a();
    assert.equal(lim.size, 1);
    b();
    assert.equal(lim.size, 0);
  });

  test('keeps a source while its bucket refills, then sweep() drops it', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 0, ratePerSecond: 10, burst: 10, clock: clock.now });
    admitted(lim.tryAdmit('10.0.0.1'))();
    assert.equal(lim.size, 1, 'the spent token is state worth keeping');
    clock.advance(50);
    assert.equal(lim.sweep(), 0);
    clock.advance(50); // 100 ms at 10/s gives the token back
    assert.equal(lim.sweep(), 1);
    assert.equal(lim.size, 0);
  });

  test('never drops a source with open connections', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 1, ratePerSecond: 10, clock: clock.now });
    admitted(lim.tryAdmit('10.0.0.1'));
    clock.advance(60_000);
    assert.equal(lim.sweep(), 0);
    for (let i = 0; i < 10; i++) admitted(lim.tryAdmit(`10.0.1.${i}`))();
    assert.equal(refused(lim.tryAdmit('10.0.0.1')), 'source_concurrency');
  });

  test('prunes idle sources lazily while admitting, keeping the table small', () => {
    const clock = manualClock();
    const lim = new SourceLimiter({ maxConnections: 10, ratePerSecond: 100, burst: 10, clock: clock.now });
    let maxSize = 0;
    for (let i = 0; i < 20_000; i++) {
      clock.advance(1);
      // Each source connects once; its bucket is full again 10 ms later.
      admitted(lim.tryAdmit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`))();
      maxSize = Math.max(maxSize, lim.size);
    }
    assert.ok(maxSize < 100, `table grew to ${maxSize}`);
  });
});

describe('RateLimitedLog', () => {
  test('lets N lines per interval through and reports the suppressed count with the next one', () => {
    const clock = manualClock();
    const log = new RateLimitedLog({ perInterval: 3, intervalMs: 1_000, clock: clock.now });
    for (let i = 0; i < 3; i++) assert.deepEqual(log.take('acl_deny'), { suppressed: 0 });
    for (let i = 0; i < 5; i++) assert.equal(log.take('acl_deny'), undefined);
    assert.deepEqual(log.take('source_rate'), { suppressed: 0 }, 'reasons are limited separately');
    clock.advance(999);
    assert.equal(log.take('acl_deny'), undefined);
    clock.advance(1);
    assert.deepEqual(log.take('acl_deny'), { suppressed: 6 });
    assert.deepEqual(log.take('acl_deny'), { suppressed: 0 });
  });

  test('drainSuppressed reports pending counts once and forgets quiet reasons', () => {
    const clock = manualClock();
    const log = new RateLimitedLog({ perInterval: 1, intervalMs: 1_000, clock: clock.now });
    log.take('a');
    log.take('a');
    log.take('a');
    log.take('b');
    assert.deepEqual(log.drainSuppressed(), [{ reason: 'a', suppressed: 2 }]);
    assert.deepEqual(log.drainSuppressed(), []);
    clock.advance(1_000);
    log.drainSuppressed();
    // 'b' was forgotten; a new window lets its next line through at once.
    assert.deepEqual(log.take('b'), { suppressed: 0 });
  });

  test('tracks a bounded number of reasons', () => {
    const log = new RateLimitedLog({ perInterval: 1, maxReasons: 2, clock: () => 0 });
    log.take('a');
    assert.equal(log.take('a'), undefined);
    log.take('b');
    log.take('c'); // evicts 'a'
    assert.deepEqual(log.take('a'), { suppressed: 0 });
  });
});
