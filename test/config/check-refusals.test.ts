/**
 * `l4lb check FILE` refuses what cannot work, with exit 2 and `FILE:LINE: PATH: REASON`:
 * names that cannot round-trip through an admin URL path segment (one rule, the schema's),
 * addresses written as URLs, numbers too large to represent, and dotted quads that are not
 * IPv4 addresses. Each refusal would otherwise have been accepted, or explained wrongly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runL4lb } from '../support/net.js';

/** A config whose line 7 is `line7` (inside the pool's backends list unless it says otherwise). */
function yamlWith(line7: string, o: { pool?: string; listener?: string } = {}): string {
  return [
    'listeners:', //                                                    1
    `  - { name: ${o.listener ?? 'web'}, listen: "127.0.0.1:0", pool: ${o.pool ?? 'web'} }`, // 2
    'pools:', //                                                        3
    `  - name: ${o.pool ?? 'web'}`, //                                  4
    '    backends:', //                                                 5
    '      - 127.0.0.1:9001', //                                        6
    line7, //                                                           7
    '',
  ].join('\n');
}

interface Case {
  what: string;
  file: string;
  text: string;
  /** `FILE:LINE: PATH: ` and the reason, as one pattern over the error line. */
  line: number;
  path: string;
  reason: RegExp;
}

const CASES: Case[] = [
  { what: 'backend named ".."', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: ".." }'), line: 7, path: 'pools[0].backends[1].name', reason: /"\.\." cannot be a name: URL paths treat "\." and "\.\." as directory steps/ },
  { what: 'backend named "."', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "." }'), line: 7, path: 'pools[0].backends[1].name', reason: /"\." cannot be a name/ },
  { what: 'backend name with "%"', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "50%" }'), line: 7, path: 'pools[0].backends[1].name', reason: /names may not contain "%"/ },
  { what: 'backend name with "?"', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "a?b" }'), line: 7, path: 'pools[0].backends[1].name', reason: /names may not contain "\?"/ },
  { what: 'backend name with "#"', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "a#b" }'), line: 7, path: 'pools[0].backends[1].name', reason: /names may not contain "#"/ },
  { what: 'backend name with "/"', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "a/b" }'), line: 7, path: 'pools[0].backends[1].name', reason: /names may not contain "\/"/ },
  { what: 'backend name with a control character', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "a\\u0007b" }'), line: 7, path: 'pools[0].backends[1].name', reason: /control or invisible character \(U\+0007\)/ },
  { what: 'backend name with a zero-width space', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "a\\u200bb" }'), line: 7, path: 'pools[0].backends[1].name', reason: /control or invisible character \(U\+200B\)/ },
  { what: 'empty backend name', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", name: "" }'), line: 7, path: 'pools[0].backends[1].name', reason: /a name must not be empty/ },
  { what: 'overlong backend name', file: 'a.yaml', text: yamlWith(`      - { address: "127.0.0.1:9002", name: "${'x'.repeat(201)}" }`), line: 7, path: 'pools[0].backends[1].name', reason: /a name is at most 200 characters \(got 201\)/ },
  { what: 'pool named ".."', file: 'a.yaml', text: yamlWith('', { pool: '".."' }), line: 4, path: 'pools[0].name', reason: /"\.\." cannot be a name/ },
  { what: 'listener named "."', file: 'a.yaml', text: yamlWith('', { listener: '"."' }), line: 2, path: 'listeners[0].name', reason: /"\." cannot be a name/ },
  { what: 'an address with a scheme', file: 'a.yaml', text: yamlWith('      - http://127.0.0.1:80'), line: 7, path: 'pools[0].backends[1].address', reason: /a scheme \("http:\/\/"\) is not allowed here: write HOST:PORT/ },
  { what: 'a listen address with a scheme', file: 'a.yaml', text: yamlWith('', { listener: 'web' }).replace('listen: "127.0.0.1:0"', 'listen: "tcp://127.0.0.1:0"'), line: 2, path: 'listeners[0].listen', reason: /a scheme \("tcp:\/\/"\) is not allowed here/ },
  { what: 'a weight of 1e309 (YAML)', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", weight: 1e309 }'), line: 7, path: 'pools[0].backends[1].weight', reason: /number out of range: it is too large to represent/ },
  {
    what: 'a weight of 1e309 (JSON)',
    file: 'a.json',
    text: '{\n  "listeners": [{ "listen": "127.0.0.1:0", "pool": "web" }],\n  "pools": [{ "name": "web", "backends": [{ "address": "127.0.0.1:9002", "weight": 1e309 }] }]\n}\n',
    line: 3,
    path: 'pools[0].backends[0].weight',
    reason: /number out of range: it is too large to represent/,
  },
  { what: 'maxConnections of 1e400', file: 'a.yaml', text: yamlWith('      - { address: "127.0.0.1:9002", maxConnections: 1e400 }'), line: 7, path: 'pools[0].backends[1].maxConnections', reason: /number out of range/ },
  { what: '256.256.256.256 as a host', file: 'a.yaml', text: yamlWith('      - 256.256.256.256:80'), line: 7, path: 'pools[0].backends[1].address', reason: /"256\.256\.256\.256" is not a valid IPv4 address/ },
  { what: 'a three-part dotted quad', file: 'a.yaml', text: yamlWith('      - 10.0.1:80'), line: 7, path: 'pools[0].backends[1].address', reason: /"10\.0\.1" is not a valid IPv4 address/ },
  { what: 'a DNS name made of numbers', file: 'a.yaml', text: yamlWith('    dns: { name: 300.1.1.1, port: 80 }').replace('    backends:\n      - 127.0.0.1:9001\n', ''), line: 5, path: 'pools[0].dns.name', reason: /"300\.1\.1\.1" is not a valid IPv4 address/ },
];

for (const c of CASES) {
  test(`l4lb check refuses ${c.what}: exit 2, file, line, path and reason`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'l4lb-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, c.file);
    writeFileSync(file, c.text);
    const r = await runL4lb(['check', file]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith(`${file}:`));
    assert.equal(lines.length, 1, `one problem reported:\n${r.stderr}`);
    const prefix = `${file}:${c.line}: ${c.path}: `;
    assert.ok(lines[0].startsWith(prefix), `"${lines[0]}" starts with "${prefix}"`);
    assert.match(lines[0].slice(prefix.length), c.reason);
  });
}

test('l4lb check accepts names that survive a URL path segment, IPv4 and IPv6 literals and DNS names', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-check-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ok.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - { name: "edge:443", listen: "127.0.0.1:0", pool: "web.v2" }',
      'pools:',
      '  - name: "web.v2"',
      '    backends:',
      '      - 127.0.0.1:9001',
      '      - "[::1]:9001"',
      '      - localhost:9002',
      '      - { address: "10.0.0.255:80", name: "...", weight: 1e300 }',
      "      - { address: \"127.0.0.2:80\", name: \"bäckend-ü_1~!$&'()*+,;=@[]\" }",
      '',
    ].join('\n'),
  );
  const r = await runL4lb(['check', file]);
  assert.equal(r.code, 0, r.stderr);
});

test('a BACKEND argument written as a URL is refused with exit 2 and the reason', async () => {
  const r = await runL4lb(['http://127.0.0.1:80']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /a scheme \("http:\/\/"\) is not allowed here/);
});
