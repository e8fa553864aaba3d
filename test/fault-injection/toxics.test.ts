/**
 * Each toxic measured on real traffic through l4lb, set with the real `toxiproxy-node-client`
 * against l4lb's fault API (docs/faults.md). Timings are compared with a baseline measured in
 * the same test, so a loaded machine shifts both.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { startServer, echoServer, waitFor, type TestServer } from '../support/net.js';
import { startRig, dial, median, outcome } from './support.js';
import { MetricsRegistry } from '../../src/observability/metrics.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Echoes each chunk at once, noting in `arrivals` when it came (`performance.now()`). */
function timedEcho(arrivals: number[]): Promise<TestServer> {
  return startServer((s) => {
    s.on('data', (c: Buffer) => {
      arrivals.push(performance.now());
      s.write(c);
    });
    s.on('end', () => s.end());
  });
}

/** l4lb and its fault API in front of `backend` (closed with the test), and the `default` proxy to add toxics to. */
async function toxicRig(t: TestContext, backend: TestServer) {
  t.after(() => backend.close());
  const rig = await startRig(t, backend.port);
  return { rig, proxy: await rig.toxiproxy.get('default') };
}

/**
 * One-way delays of `rounds` ping-pongs on one connection through the proxy: `up` = client send
 * to backend arrival, `down` = backend reply to client arrival (one process, one clock).
 */
async function oneWayDelays(port: number, arrivals: number[], rounds = 7): Promise<{ up: number; down: number }> {
  const s = await dial(port);
  const ups: number[] = [];
  const downs: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      arrivals.length = 0;
      const got = once(s, 'data');
      const t0 = performance.now();
      s.write('x');
      await got;
      const t1 = performance.now();
      assert.equal(arrivals.length, 1, 'the backend saw the ping');
      ups.push(arrivals[0] - t0);
      downs.push(t1 - arrivals[0]);
    }
  } finally {
    s.destroy();
  }
  return { up: median(ups), down: median(downs) };
}

test('latency 200 ms adds 200 ± 20 ms on the chosen direction only, and acts on open connections', async (t) => {
  const arrivals: number[] = [];
  const backend = await timedEcho(arrivals);
  const { rig, proxy } = await toxicRig(t, backend);

  const base = await oneWayDelays(rig.port, arrivals);
  const down = await proxy.addToxic({ name: 'slow_replies', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 200, jitter: 0 } });
  const withDown = await oneWayDelays(rig.port, arrivals);
  assert.ok(Math.abs(withDown.down - base.down - 200) <= 20, `downstream: +${(withDown.down - base.down).toFixed(1)} ms (baseline ${base.down.toFixed(1)})`);
  assert.ok(Math.abs(withDown.up - base.up) <= 20, `upstream unchanged: ${base.up.toFixed(1)} → ${withDown.up.toFixed(1)} ms`);
  await down.remove();

  await proxy.addToxic({ name: 'slow_requests', type: 'latency', stream: 'upstream', toxicity: 1, attributes: { latency: 200, jitter: 0 } });
  const withUp = await oneWayDelays(rig.port, arrivals);
  assert.ok(Math.abs(withUp.up - base.up - 200) <= 20, `upstream: +${(withUp.up - base.up).toFixed(1)} ms`);
  assert.ok(Math.abs(withUp.down - base.down) <= 20, `downstream unchanged: ${base.down.toFixed(1)} → ${withUp.down.toFixed(1)} ms`);
  await rig.toxiproxy.reset();

  // Live: a toxic added while a connection is open acts on it (as in Toxiproxy).
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  arrivals.length = 0;
  let got = once(s, 'data');
  s.write('a');
  await got;
  await proxy.addToxic({ name: 'late', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } });
  arrivals.length = 0;
  got = once(s, 'data');
  s.write('b');
  await got;
  const liveDown = performance.now() - arrivals[0];
  assert.ok(liveDown >= 290, `the open connection got the latency: ${liveDown.toFixed(1)} ms`);
  s.destroy();
  await waitFor(() => rig.records.some((r) => r.faults?.includes('late')), 5000, 'the access record naming the toxic');
  assert.ok(rig.records.some((r) => r.faults?.includes('slow_replies')), 'access records name the toxics that affected them');
});

test('bandwidth 250 KB/s carries 1 MB in 4 s ± 15 %, bytes intact', async (t) => {
  const payload = randomBytes(1_000_000);
  const backend = await startServer((s) => {
    s.end(payload);
  });
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'thin', type: 'bandwidth', stream: 'downstream', toxicity: 1, attributes: { rate: 250 } });
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  const o = await outcome(s);
  assert.equal(o.how, 'end');
  assert.equal(o.bytes.length, payload.length);
  assert.equal(sha(o.bytes), sha(payload), 'SHA-256 of what arrived');
  assert.ok(o.ms >= 3400 && o.ms <= 4600, `1 MB at 250 KB/s took ${(o.ms / 1000).toFixed(2)} s`);
});

test('limit_data closes the connection after exactly N bytes; the backend sees the close', async (t) => {
  const payload = randomBytes(100_000);
  let backendEnded = false;
  const backend = await startServer((s) => {
    s.write(payload);
    s.on('end', () => {
      backendEnded = true;
      s.end();
    });
  });
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'cap', type: 'limit_data', stream: 'downstream', toxicity: 1, attributes: { bytes: 12_345 } });
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  const o = await outcome(s);
  assert.equal(o.how, 'end', 'an orderly close after the limit');
  assert.equal(o.bytes.length, 12_345);
  assert.equal(sha(o.bytes), sha(payload.subarray(0, 12_345)), 'the first N bytes, intact');
  s.destroy();
  await waitFor(() => backendEnded, 5000, 'the backend to get a FIN');
});

test('reset_peer: the client sees ECONNRESET after the timeout', async (t) => {
  const backend = await echoServer();
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'rst', type: 'reset_peer', stream: 'downstream', toxicity: 1, attributes: { timeout: 200 } });
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  const o = outcome(s);
  s.write('hello');
  const r = await o;
  assert.equal(r.how, 'error');
  assert.equal(r.code, 'ECONNRESET');
  assert.equal(r.bytes.length, 0, 'the echo that armed it was not delivered');
  assert.ok(r.ms >= 180, `reset after ${r.ms.toFixed(0)} ms`);
});

test('timeout stops all data and closes the connection after it', async (t) => {
  const backend = await echoServer();
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'stall', type: 'timeout', stream: 'downstream', toxicity: 1, attributes: { timeout: 600 } });
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  const o = outcome(s);
  s.write('hello');
  const r = await o;
  assert.equal(r.bytes.length, 0, 'no data got through');
  assert.equal(r.how, 'end');
  assert.ok(r.ms >= 550 && r.ms < 5000, `closed after ${r.ms.toFixed(0)} ms`);
});

test('slicer delivers the same bytes (SHA-256) in more, smaller reads', async (t) => {
  const payload = randomBytes(32 * 1024);
  const backend = await startServer((s) => {
    s.end(payload);
  });
  const { rig, proxy } = await toxicRig(t, backend);
  const base = await outcome(await dial(rig.port));
  await proxy.addToxic({ name: 'slices', type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 100, size_variation: 40, delay: 1000 } });
  const sliced = await outcome(await dial(rig.port));
  for (const o of [base, sliced]) {
    assert.equal(o.how, 'end');
    assert.equal(sha(o.bytes), sha(payload), 'SHA-256 of what arrived');
  }
  const avg = (o: typeof base) => o.bytes.length / o.reads.length;
  assert.ok(sliced.reads.length >= 4 * base.reads.length && sliced.reads.length >= 50, `reads: ${base.reads.length} → ${sliced.reads.length}`);
  assert.ok(avg(sliced) < 1000, `average read ${avg(base).toFixed(0)} → ${avg(sliced).toFixed(0)} bytes`);
});

test('toxicity 0.5 affects about half of 400 connections; the metric and access log agree', async (t) => {
  const backend = await echoServer();
  const { rig, proxy } = await toxicRig(t, backend);
  // An affected connection gets 2 of its 5 echoed bytes.
  await proxy.addToxic({ name: 'half', type: 'limit_data', stream: 'downstream', toxicity: 0.5, attributes: { bytes: 2 } });
  const N = 400;
  let affected = 0;
  let whole = 0;
  for (let i = 0; i < N; i += 20) {
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const s = await dial(rig.port);
        const o = outcome(s);
        s.end('hello');
        const r = await o;
        s.destroy();
        return r.bytes.toString();
      }),
    );
    for (const r of results) {
      if (r === 'he') affected++;
      else if (r === 'hello') whole++;
    }
  }
  assert.equal(affected + whole, N, 'every connection got its bytes or the limit');
  // Binomial(400, 0.5): mean 200, sd 10; ±5 sd fails once in ~1.7 million runs.
  assert.ok(affected >= 150 && affected <= 250, `${affected} of ${N} affected`);
  await waitFor(() => rig.records.length >= N, 5000, 'every access record');
  assert.equal(rig.records.filter((r) => r.faults?.includes('half')).length, affected, 'access records name the toxic on exactly the affected connections');
  const status = rig.proxy.status();
  assert.equal(status.listeners[0].faults?.connections.half, affected, 'the admin status counts them');
  const metrics = await new MetricsRegistry(async () => rig.proxy.status()).render();
  assert.match(metrics, new RegExp(`^l4lb_fault_connections_total\\{listener="default",toxic="half"\\} ${affected}$`, 'm'));
  assert.match(metrics, /^l4lb_faults_active\{listener="default"\} 1$/m);
});

test('down refuses new connections and closes open ones; reset restores everything', async (t) => {
  const backend = await echoServer();
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'lat', type: 'latency', stream: 'upstream', toxicity: 1, attributes: { latency: 50, jitter: 0 } });
  const open = await dial(rig.port);
  const openEnd = outcome(open);
  const updated = await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream });
  assert.equal(updated.enabled, false);
  const refused = await new Promise<string | undefined>((resolve) => {
    const s = net.connect({ port: rig.port, host: '127.0.0.1' });
    s.on('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
  assert.equal(refused, 'ECONNREFUSED', 'a down listener refuses connections');
  const closed = await Promise.race([openEnd, new Promise<undefined>((r) => setTimeout(r, 5000, undefined))]);
  assert.ok(closed !== undefined, 'the open connection was closed');
  assert.equal(rig.proxy.status().listeners[0].faults?.enabled, false);

  await rig.toxiproxy.reset();
  const after = await rig.toxiproxy.get('default');
  assert.equal(after.enabled, true);
  assert.deepEqual((await rig.toxiproxy.getAll()).default.toJson().enabled, true);
  const s = await dial(rig.port);
  t.after(() => s.destroy());
  const o = outcome(s);
  s.end('back');
  assert.equal((await o).bytes.toString(), 'back', 'the same port serves again');
  const st = rig.proxy.status().listeners[0].faults!;
  assert.deepEqual(st.toxics, [], 'reset removed the toxics');
  assert.equal(st.active, false);
});

test('slow_close delays the end of the stream, not the data', async (t) => {
  const backend = await startServer((s) => {
    s.end('bye');
  });
  const { rig, proxy } = await toxicRig(t, backend);
  await proxy.addToxic({ name: 'linger', type: 'slow_close', stream: 'downstream', toxicity: 1, attributes: { delay: 400 } });
  const s = await dial(rig.port);
  const t0 = performance.now();
  let dataAt = 0;
  s.once('data', () => (dataAt = performance.now() - t0));
  const o = await outcome(s);
  assert.equal(o.bytes.toString(), 'bye');
  assert.equal(o.how, 'end');
  assert.ok(dataAt < 300, `the data came at once (${dataAt.toFixed(0)} ms)`);
  assert.ok(o.ms >= 380, `the FIN waited the delay (${o.ms.toFixed(0)} ms)`);
});

test('timeout 0 holds the connection open without data; removing the toxic closes it, as Toxiproxy does', async (t) => {
  const backend = await echoServer();
  const { rig, proxy } = await toxicRig(t, backend);
  const stall = await proxy.addToxic({ name: 'stall', type: 'timeout', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
  const s = await dial(rig.port);
  const o = outcome(s);
  s.write('lost');
  const early = await Promise.race([o, new Promise<undefined>((r) => setTimeout(r, 700, undefined))]);
  assert.equal(early, undefined, 'still open after 700 ms with timeout 0');
  await stall.remove();
  const r = await Promise.race([o, new Promise<undefined>((res) => setTimeout(res, 5000, undefined))]);
  assert.ok(r !== undefined, 'removing the toxic closed the connection');
  assert.equal(r.bytes.length, 0, 'what the toxic swallowed never arrived');
});

test("several toxics on one direction form a chain, in the order added (Toxiproxy's chain)", async (t) => {
  const arrivals: number[] = [];
  const backend = await timedEcho(arrivals);
  const { rig, proxy } = await toxicRig(t, backend);
  const base = await oneWayDelays(rig.port, arrivals, 5);
  await proxy.addToxic({ name: 'first', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 150, jitter: 0 } });
  await proxy.addToxic({ name: 'second', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 150, jitter: 0 } });
  const both = await oneWayDelays(rig.port, arrivals, 5);
  assert.ok(Math.abs(both.down - base.down - 300) <= 30, `two 150 ms latencies: +${(both.down - base.down).toFixed(1)} ms`);
  const names = (rig.proxy.status().listeners[0].faults?.toxics ?? []).map((x) => x.name);
  assert.deepEqual(names, ['first', 'second'], 'listed in chain order');
});
