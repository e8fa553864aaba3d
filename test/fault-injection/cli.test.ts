/**
 * `l4lb --faults-api`: the fault API from the command line, as docs/faults.md shows it, its
 * help line, and the one-process rule (exit 2 with the reason).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Toxiproxy } from 'toxiproxy-node-client';
import { echoServer, request, runL4lb, spawnL4lb, waitFor } from '../support/net.js';

test('--faults-api serves the Toxiproxy API; the access log names the toxic', async (t) => {
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4lb = await spawnL4lb(['--faults-api', '127.0.0.1:0', `127.0.0.1:${backend.port}`]);
  t.after(() => l4lb.stop());
  await waitFor(() => l4lb.stdout.some((l) => l.startsWith('faults api on ')), 5000, 'the "faults api on" line');
  const url = l4lb.stdout.find((l) => l.startsWith('faults api on '))!.slice('faults api on '.length);
  const toxiproxy = new Toxiproxy(url);
  const proxy = await toxiproxy.get('default');
  assert.equal(proxy.listen, l4lb.addresses[0]);
  await proxy.addToxic({ name: 'first3', type: 'limit_data', stream: 'downstream', toxicity: 1, attributes: { bytes: 3 } });
  assert.equal(await request(l4lb.port, 'hello'), 'hel');
  await waitFor(() => /"faults":\["first3"\]/.test(l4lb.stderr()), 5000, 'the access-log line naming the toxic');
  await toxiproxy.reset();
  assert.equal(await request(l4lb.port, 'hello'), 'hello');
  l4lb.child.kill('SIGTERM');
  await once(l4lb.child, 'exit');
});

test('--help lists --faults-api; with --workers 2 it is refused with exit 2', async () => {
  const help = await runL4lb(['--help']);
  assert.match(help.stdout, /--faults-api HOST:PORT/);
  const r = await runL4lb(['--faults-api', '127.0.0.1:0', '--workers', '2', '127.0.0.1:1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /the fault API runs with one process/);
});
