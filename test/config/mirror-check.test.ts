/**
 * `l4lb check` refuses a mirror or a replay setting that cannot work, with exit 2 and
 * `FILE:LINE: PATH: REASON`: a mirror pool that does not exist, a pool mirroring itself, a
 * percent outside 0-100, a buffer or replay size over its cap, and either on a UDP listener's
 * pool. A good config with both is accepted, its defaults filled in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runL4lb } from '../support/net.js';
import { parseConfigText } from '../../src/config/load.js';
import { Defaults } from '../../src/config/types.js';

/** Two pools, `main` (line 4) and `shadow` (line 8); line 7 is `main`'s extra setting. */
function yamlWith(line7: string, listener = '  - { name: web, listen: "127.0.0.1:0", pool: main }'): string {
  return [
    'listeners:', //                           1
    listener, //                               2
    'pools:', //                               3
    '  - name: main', //                       4
    '    backends:', //                        5
    '      - 127.0.0.1:9001', //               6
    line7, //                                  7
    '  - name: shadow', //                     8
    '    backends: [127.0.0.1:9002]', //       9
    '',
  ].join('\n');
}

const CASES = [
  { what: 'a mirror pool that does not exist', text: yamlWith('    mirror: { pool: shadw, percent: 10 }'), path: 'pools[0].mirror.pool', reason: /unknown pool "shadw" \(did you mean "shadow"\?\)/ },
  { what: 'a pool mirroring itself', text: yamlWith('    mirror: { pool: main, percent: 10 }'), path: 'pools[0].mirror.pool', reason: /a pool cannot mirror to itself \("main"\)/ },
  { what: 'a percent over 100', text: yamlWith('    mirror: { pool: shadow, percent: 101 }'), path: 'pools[0].mirror.percent', reason: /must be at most 100, got a number \(101\)/ },
  { what: 'a negative percent', text: yamlWith('    mirror: { pool: shadow, percent: -1 }'), path: 'pools[0].mirror.percent', reason: /must be at least 0, got a number \(-1\)/ },
  { what: 'a mirror without a percent', text: yamlWith('    mirror: { pool: shadow }'), path: 'pools[0].mirror.percent', reason: /required/ },
  { what: 'a mirror buffer over the cap', text: yamlWith('    mirror: { pool: shadow, percent: 10, bufferSize: 1GiB }'), path: 'pools[0].mirror.bufferSize', reason: /"1GiB" is out of range: from 1024 to 67108864 bytes \(64 MiB\)/ },
  { what: 'a mirror buffer that is not a size', text: yamlWith('    mirror: { pool: shadow, percent: 10, bufferSize: lots }'), path: 'pools[0].mirror.bufferSize', reason: /expected a size such as "16KiB"/ },
  { what: 'a replay maxBytes over the cap', text: yamlWith('    retryOnEmptyResponse: { maxBytes: 2MiB }'), path: 'pools[0].retryOnEmptyResponse.maxBytes', reason: /"2MiB" is out of range: from 1 to 1048576 bytes \(1 MiB\)/ },
  { what: 'a replay maxBytes of 0', text: yamlWith('    retryOnEmptyResponse: { maxBytes: 0 }'), path: 'pools[0].retryOnEmptyResponse.maxBytes', reason: /out of range/ },
  {
    what: 'a mirror on a UDP listener\'s pool',
    text: yamlWith('    mirror: { pool: shadow, percent: 10 }', '  - { name: dns, protocol: udp, listen: "127.0.0.1:0", pool: main }'),
    path: 'listeners[0].pool',
    line: 2,
    reason: /pool "main" sets mirror \(pools\[0\]\.mirror\), which applies to TCP connections only/,
  },
];

for (const c of CASES) {
  test(`l4lb check refuses ${c.what}: exit 2, file, line, path and reason`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'l4lb-mirror-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'a.yaml');
    writeFileSync(file, c.text);
    const r = await runL4lb(['check', file]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith(`${file}:`));
    assert.equal(lines.length, 1, `one problem reported:\n${r.stderr}`);
    const prefix = `${file}:${c.line ?? 7}: ${c.path}: `;
    assert.ok(lines[0].startsWith(prefix), `"${lines[0]}" starts with "${prefix}"`);
    assert.match(lines[0].slice(prefix.length), c.reason);
  });
}

test('l4lb check accepts a mirror and a replay setting; the loader fills in their defaults', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-mirror-check-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ok.yaml');
  const text = yamlWith('    mirror: { pool: shadow, percent: 12.5 }\n    retryOnEmptyResponse: {}');
  writeFileSync(file, text);
  const r = await runL4lb(['check', file]);
  assert.equal(r.code, 0, r.stderr);
  const cfg = parseConfigText(text, file);
  assert.deepEqual(cfg.pools[0].mirror, { pool: 'shadow', percent: 12.5, bufferSize: Defaults.mirrorBufferSize });
  assert.equal(Defaults.mirrorBufferSize, 1024 * 1024);
  assert.deepEqual(cfg.pools[0].retryOnEmptyResponse, { maxBytes: 16 * 1024 });
  assert.equal(cfg.pools[1].mirror, undefined);
  const sized = parseConfigText(yamlWith('    mirror: { pool: shadow, percent: 0, bufferSize: 64KiB }\n    retryOnEmptyResponse: { maxBytes: 1MiB }'), file);
  assert.equal(sized.pools[0].mirror?.bufferSize, 64 * 1024);
  assert.equal(sized.pools[0].retryOnEmptyResponse?.maxBytes, 1024 * 1024);
});
