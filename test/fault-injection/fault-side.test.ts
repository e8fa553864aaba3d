/**
 * The fault decorator against the relay-side contract (src/proxy/relay-side.ts), with fake
 * sides so that every call is seen: bounded memory (send() false past the high-water mark, then
 * exactly one writable()), bytes in order when a toxic is removed with data inside it, and a
 * listener without toxics passing chunks straight through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListenerFaults } from '../../src/faults/table.js';
import { HIGH_WATER_BYTES } from '../../src/faults/fault-side.js';
import { parseToxic } from '../../src/faults/toxics.js';
import type { RelayCore, RelaySide } from '../../src/proxy/relay-side.js';

/** A side that takes every write at once and records it. */
class FakeSide implements RelaySide {
  readonly written: Buffer[] = [];
  ended = false;
  destroyed = false;
  readEnded = false;
  get writeEnded(): boolean {
    return this.ended;
  }
  bind(_relay: RelayCore): void {}
  resumeReading(): void {}
  send(buf: Buffer, n: number): boolean {
    this.written.push(Buffer.from(buf.subarray(0, n)));
    return true;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  release(): void {}
}

/** A relay that counts what the sides report. */
function fakeRelay(): RelayCore & { writables: number } {
  return {
    writables: 0,
    read: () => true,
    writable() {
      this.writables++;
    },
    ended() {},
    failed() {},
    closed() {},
  };
}

test('past the high-water mark send() says wait; removing the toxic flushes in order and gives exactly one writable()', () => {
  const table = new ListenerFaults('l');
  table.add(parseToxic({ name: 'slow', type: 'bandwidth', stream: 'upstream', attributes: { rate: 1 } }));
  const backend = new FakeSide();
  const link = table.link(new FakeSide(), backend);
  const relay = fakeRelay();
  link.backend.bind(relay);
  const chunk = 64 * 1024;
  let sent = 0;
  const sentBytes: Buffer[] = [];
  let accepted = true;
  // The relay reuses its buffer: the decorator must copy what it holds.
  const buf = Buffer.alloc(chunk);
  while (accepted) {
    buf.fill(sent / chunk);
    sentBytes.push(Buffer.from(buf));
    accepted = link.backend.send(buf, chunk, false);
    sent += chunk;
    assert.ok(sent <= HIGH_WATER_BYTES + chunk, 'the relay is told to wait once the bound is passed');
  }
  assert.ok(sent > HIGH_WATER_BYTES);
  assert.equal(relay.writables, 0);
  const out = Buffer.concat(backend.written);
  assert.ok(out.length < sent, 'the bandwidth toxic holds most of it');
  table.remove('slow');
  assert.equal(relay.writables, 1, 'exactly one writable() after the false');
  assert.deepEqual(Buffer.concat(backend.written), Buffer.concat(sentBytes), 'every byte, in order, after the removal');
  table.replace([]);
  link.sideClosed();
  link.sideClosed();
  assert.equal(table.links, 0, 'a closed link leaves the table');
});

test('without toxics a send goes straight to the socket, the same buffer', () => {
  const table = new ListenerFaults('l');
  const client = new FakeSide();
  let got: Buffer | undefined;
  client.send = (b: Buffer) => {
    got = b;
    return true;
  };
  const link = table.link(client, new FakeSide());
  link.client.bind(fakeRelay());
  const buf = Buffer.from('abc');
  assert.equal(link.client.send(buf, 3, false), true);
  assert.equal(got, buf, 'no copy, no queue');
  assert.equal(link.names(), undefined, 'no toxic affected it');
});

test('limit_data passes exactly N bytes over many chunks, then ends the side', () => {
  const table = new ListenerFaults('l');
  table.add(parseToxic({ type: 'limit_data', stream: 'downstream', attributes: { bytes: 1000 } }));
  const client = new FakeSide();
  const link = table.link(client, new FakeSide());
  link.client.bind(fakeRelay());
  for (let i = 0; i < 30; i++) link.client.send(Buffer.alloc(77, i), 77, false);
  assert.equal(Buffer.concat(client.written).length, 1000);
  assert.equal(client.ended, true, 'the client got its FIN');
  assert.deepEqual(link.names(), ['limit_data_downstream']);
  assert.equal(table.affectedCounts().get('limit_data_downstream'), 1);
});
