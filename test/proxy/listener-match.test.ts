/**
 * @module test/proxy/listener-match — which running listener a reloaded listener keeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchListeners, type RunningListener } from '../../src/proxy/listener-match.js';
import type { ListenerConfig } from '../../src/config/types.js';

function lc(name: string, host: string, port: number): ListenerConfig {
  return { name, host, port } as ListenerConfig;
}

const running: RunningListener[] = [
  { name: 'default', host: '127.0.0.1', port: 0, boundPort: 41000 },
  { name: 'web', host: '127.0.0.1', port: 8080, boundPort: 8080 },
];

const cases: Array<[string, ListenerConfig[], (number | undefined)[]]> = [
  ['same name, same configured port', [lc('default', '127.0.0.1', 0), lc('web', '127.0.0.1', 8080)], [0, 1]],
  ['same name, the port it got for port 0', [lc('default', '127.0.0.1', 41000)], [0]],
  ['same name, port 0 again for a fixed port ("any port": the one it has)', [lc('web', '127.0.0.1', 0)], [1]],
  ['another name, exactly the bound port (a file written after a start on port 0)', [lc('127.0.0.1:41000', '127.0.0.1', 41000)], [0]],
  ['another name, port 0: a new listener, not any running one', [lc('other', '127.0.0.1', 0)], [undefined]],
  ['same name, another port: a new listener', [lc('web', '127.0.0.1', 8081)], [undefined]],
  ['same name, another host: a new listener', [lc('web', '127.0.0.2', 8080)], [undefined]],
  ['a socket is kept by one listener only', [lc('default', '127.0.0.1', 41000), lc('copy', '127.0.0.1', 41000)], [0, undefined]],
  ['a name match wins over an address match', [lc('x', '127.0.0.1', 8080), lc('web', '127.0.0.1', 8080)], [undefined, 1]],
];

for (const [name, next, want] of cases) {
  test(`reload keeps a listener: ${name}`, () => {
    assert.deepEqual(matchListeners(next, running), want);
  });
}
