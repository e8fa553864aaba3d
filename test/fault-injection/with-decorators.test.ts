/**
 * Toxics around the other relay-side decorators (docs/mirroring.md): with a pool that mirrors
 * and replays, the fault side wraps theirs, and reset_peer still resets the client (they pass
 * `reset()` on) while the bytes of a plain toxic arrive intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { echoServer, request } from '../support/net.js';
import { dial, outcome } from './support.js';
import { startProxy } from '../../src/proxy/proxy.js';
import { silentLogger } from '../../src/observability/log.js';
import { normalizeConfig } from '../../src/config/load.js';

test('with mirror and retryOnEmptyResponse on the pool, reset_peer still resets the client and limit_data still cuts', async (t) => {
  const backend = await echoServer();
  const shadow = await echoServer();
  t.after(() => backend.close());
  t.after(() => shadow.close());
  const cfg = normalizeConfig(
    {
      listeners: [
        { name: 'rst', listen: '127.0.0.1:0', pool: 'app', faults: [{ type: 'reset_peer', attributes: { timeout: 100 } }] },
        { name: 'cut', listen: '127.0.0.1:0', pool: 'app', faults: [{ type: 'limit_data', attributes: { bytes: 3 } }] },
      ],
      pools: [
        { name: 'app', backends: [`127.0.0.1:${backend.port}`], mirror: { pool: 'shadow', percent: 100 }, retryOnEmptyResponse: {} },
        { name: 'shadow', backends: [`127.0.0.1:${shadow.port}`] },
      ],
      log: { access: 'off' },
    },
    'test.yaml',
  );
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  t.after(() => proxy.close());
  const [rst, cut] = proxy.addresses();
  const s = await dial(rst.port);
  const o = outcome(s);
  s.write('hello');
  const r = await o;
  assert.equal(r.how, 'error');
  assert.equal(r.code, 'ECONNRESET', 'the client saw a RST through the mirror and replay sides');
  assert.equal(await request(cut.port, 'hello'), 'hel');
});
