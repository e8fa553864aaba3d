/**
 * Acl and the IP helpers: IPv4, IPv6, mapped addresses, first match wins, defaults, CIDR errors;
 * cross-checked against node:net BlockList and Node's own IPv6 formatting.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/errors.js';
import {
  Acl,
  AclError,
  formatIPv6,
  parseCidr,
  parseIp,
  parseIPv4,
  parseIPv6,
  type AclRuleSpec,
} from '../../src/admission/acl.js';

describe('Acl', () => {
  test('allows and denies IPv4 clients by CIDR, first match wins', () => {
    const acl = new Acl(
      [
        { action: 'deny', cidr: '10.0.0.66' },
        { action: 'allow', cidr: '10.0.0.0/8' },
        { action: 'deny', cidr: '0.0.0.0/0' },
      ],
      'allow',
    );
    assert.equal(acl.allows('10.0.0.66'), false);
    assert.equal(acl.allows('10.0.0.67'), true);
    assert.equal(acl.allows('10.255.255.255'), true);
    assert.equal(acl.allows('11.0.0.1'), false);
    assert.deepEqual(acl.decide('10.1.1.1'), { allow: true, rule: 1 });
  });

  test('order matters: the same rules reversed decide differently', () => {
    const rules: AclRuleSpec[] = [
      { action: 'allow', cidr: '192.168.0.0/16' },
      { action: 'deny', cidr: '192.168.1.0/24' },
    ];
    assert.equal(new Acl(rules).allows('192.168.1.5'), true);
    assert.equal(new Acl([...rules].reverse()).allows('192.168.1.5'), false);
  });

  test('falls back to the default action: deny', () => {
    const acl = new Acl([{ action: 'allow', cidr: '127.0.0.0/8' }], 'deny');
    assert.equal(acl.allows('127.0.0.1'), true);
    assert.equal(acl.allows('8.8.8.8'), false);
    assert.equal(acl.allows('::1'), false);
    assert.deepEqual(acl.decide('8.8.8.8'), { allow: false, rule: -1 });
  });

  test('falls back to the default action: allow (the config default)', () => {
    const acl = new Acl([{ action: 'deny', cidr: '203.0.113.0/24' }]);
    assert.equal(acl.allows('203.0.113.9'), false);
    assert.equal(acl.allows('198.51.100.1'), true);
  });

  test('matches IPv6 clients by CIDR, including prefixes that split a byte', () => {
    const acl = new Acl(
      [
        { action: 'allow', cidr: '2001:db8::/32' },
        { action: 'allow', cidr: 'fe80::/10' },
        { action: 'allow', cidr: '::1' },
      ],
      'deny',
    );
    assert.equal(acl.allows('2001:db8:ffff::1'), true);
    assert.equal(acl.allows('2001:db9::1'), false);
    assert.equal(acl.allows('febf::1'), true);
    assert.equal(acl.allows('fec0::1'), false);
    assert.equal(acl.allows('::1'), true);
    assert.equal(acl.allows('::2'), false);
    assert.equal(acl.allows('fe80::1%eth0'), true, 'a zone is ignored');
  });

  test('treats IPv4-mapped IPv6 clients as IPv4', () => {
    const acl = new Acl([{ action: 'allow', cidr: '10.0.0.0/8' }], 'deny');
    assert.equal(acl.allows('::ffff:10.0.0.1'), true);
    assert.equal(acl.allows('::ffff:a00:1'), true);
    assert.equal(acl.allows('::ffff:11.0.0.1'), false);
  });

  test('treats IPv4-mapped IPv6 rules as IPv4 rules', () => {
    const acl = new Acl([{ action: 'allow', cidr: '::ffff:10.0.0.0/104' }], 'deny');
    assert.equal(acl.allows('10.9.9.9'), true);
    assert.equal(acl.allows('::ffff:10.9.9.9'), true);
    assert.equal(acl.allows('11.0.0.1'), false);
  });

  test('an IPv6 catch-all does not match IPv4 clients', () => {
    const acl = new Acl([{ action: 'allow', cidr: '::/0' }], 'deny');
    assert.equal(acl.allows('2001:db8::1'), true);
    assert.equal(acl.allows('10.0.0.1'), false);
    assert.equal(acl.allows('::ffff:10.0.0.1'), false);
  });

  test('denies addresses that are not IP addresses (fails closed)', () => {
    const acl = new Acl([], 'allow');
    assert.equal(acl.allows(undefined), false);
    assert.equal(acl.allows('not-an-ip'), false);
    assert.equal(acl.allows('1.2.3.4'), true);
  });

  test('clears host bits of a rule (10.1.2.3/8 is 10.0.0.0/8)', () => {
    const acl = new Acl([{ action: 'deny', cidr: '10.1.2.3/8' }]);
    assert.equal(acl.allows('10.200.0.1'), false);
  });

  test('rejects invalid CIDRs with the rule index and the reason', () => {
    const cases: [string, RegExp][] = [
      ['10.0.0.0/33', /acl\[1\].*prefix length 33 is out of range 0-32/],
      ['::/129', /acl\[1\].*out of range 0-128/],
      ['10.0.0.0/x', /acl\[1\].*"x" is not a number/],
      ['10.0.0.0/', /acl\[1\].*is not a number/],
      ['example.com', /acl\[1\].*not an IPv4 or IPv6 address/],
      ['10.0.0.256/8', /acl\[1\].*not an IPv4 or IPv6 address/],
    ];
    for (const [cidr, message] of cases) {
      assert.throws(
        () => new Acl([{ action: 'allow', cidr: '1.2.3.4' }, { action: 'deny', cidr }]),
        (e: unknown) => e instanceof AclError && e.code === ErrorCodes.CONFIG_INVALID && message.test(e.message),
        cidr,
      );
    }
    assert.throws(() => new Acl([{ action: 'maybe' as 'allow', cidr: '1.2.3.4' }]), /acl\[0\]: action must be/);
  });

  test('agrees with node:net BlockList checked rule by rule, first match wins', () => {
    const v4Rule = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => ({ a, p, type: 'ipv4' as const }));
    const v6Rule = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, p]) => ({ a, p, type: 'ipv6' as const }));
    const notMapped = (a: string) => {
      const b = parseIPv6(a);
      return b !== undefined && !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff);
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.oneof(v4Rule, v6Rule.filter((r) => notMapped(r.a)))), { maxLength: 8 }),
        fc.oneof(fc.ipV4(), fc.ipV6().filter(notMapped)),
        fc.boolean(),
        (rules, address, defaultAllow) => {
          const acl = new Acl(
            rules.map(([allow, r]) => ({ action: allow ? 'allow' : 'deny', cidr: `${r.a}/${r.p}` })),
            defaultAllow ? 'allow' : 'deny',
          );
          const family = net.isIPv4(address) ? 'ipv4' : 'ipv6';
          let want = defaultAllow;
          for (const [allow, r] of rules) {
            if (r.type !== family) continue;
            const bl = new net.BlockList();
            bl.addSubnet(r.a, r.p, r.type);
            if (bl.check(address, family)) {
              want = allow;
              break;
            }
          }
          assert.equal(acl.allows(address), want);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('IP address helpers', () => {
  test('parseIPv4 is strict about form', () => {
    assert.equal(parseIPv4('1.2.3.4'), 0x01020304);
    assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
    for (const bad of ['1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..3.4', '1.2.3.4 ', '', 'a.b.c.d']) {
      assert.equal(parseIPv4(bad), -1, bad);
    }
  });

  test('parseIPv6 rejects malformed addresses', () => {
    for (const bad of [':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1:2:3:4:5:6:7:8::', '::1.2.3', '1.2.3.4::', ':1::', '::1:']) {
      assert.equal(parseIPv6(bad), undefined, bad);
    }
    assert.equal(parseIPv6('fe80::1%eth0'), undefined);
    assert.ok(parseIPv6('fe80::1%eth0', true));
  });

  test('parseIp unmaps IPv4-mapped addresses', () => {
    assert.deepEqual(parseIp('::ffff:1.2.3.4'), { family: 4, v4: 0x01020304 });
    assert.equal(parseIp('::1')?.family, 6);
    assert.equal(parseIp('nope'), undefined);
  });

  test('parseCidr reads bare addresses as host routes', () => {
    assert.deepEqual(parseCidr('10.0.0.1'), { family: 4, v4: 0x0a000001, prefix: 32 });
    const c = parseCidr('::1');
    assert.ok(!('error' in c) && c.family === 6 && c.prefix === 128);
  });

  test('formatIPv6 agrees with Node\u2019s own formatting and round-trips through parseIPv6', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 16 }), (raw, zeros) => {
        const b = Uint8Array.from(raw);
        b.fill(0, 16 - zeros); // make zero runs common
        const text = formatIPv6(b);
        assert.deepEqual(parseIPv6(text), b);
        // libuv writes IPv4-compatible addresses (::a.b.c.d) in dotted form; RFC 5952 does not.
        if (!b.subarray(0, 12).every((x) => x === 0)) {
          assert.equal(text, new net.SocketAddress({ address: text, family: 'ipv6' }).address);
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('parseIPv6 agrees with node:net on random textual addresses', () => {
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        const b = parseIPv6(a);
        assert.ok(b, a);
        const viaNode = new net.SocketAddress({ address: a, family: 'ipv6' }).address;
        assert.deepEqual(parseIPv6(viaNode), b);
      }),
      { numRuns: 500 },
    );
  });
});
