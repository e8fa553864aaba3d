/**
 * @module bench/udp/bench-udp — the UDP phase of `npm run bench` on its own (bench/udp/phase.ts):
 * l4lb against nginx `stream` in front of two dnsmasq servers.
 *
 *   npm run bench:udp                      (quick: 3 s per measurement, one round)
 *   npm run bench:udp -- --full            (10 s per measurement, three rounds, the median reported)
 *   npm run bench:udp -- --rounds 3 --seconds 3   (any other mix)
 *   npm run bench:udp -- --node 26         (l4lb also on Node 26, from scripts/node-runtime.sh)
 *   npm run bench:udp -- --proxy-cpu 0     (proxies on CPU 0, load and dnsmasq on CPU 1)
 *   npm run bench:udp -- --before DIR      (also the l4lb built in DIR, e.g. a worktree of main,
 *                                           as l4lb-before: a before/after comparison in one run)
 *
 * Prints the table and a JSON line.
 */
import { join } from 'node:path';
import { currentNode, nodeRuntime } from '../tools.js';
import { runUdpPhase, udpReport, type UdpL4lb } from './phase.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

const full = process.argv.includes('--full');
const majors = (arg('--node') ?? '').split(',').filter(Boolean).map(Number);
const proxyCpu = arg('--proxy-cpu');
if (proxyCpu !== undefined && proxyCpu !== '0' && proxyCpu !== '1') throw new Error(`--proxy-cpu needs 0 or 1, not ${proxyCpu}`);

const idOf = (version: string) => `l4lb@node${version.slice(1).split('.')[0]}`;
const own = currentNode();
const l4lb: UdpL4lb[] = [{ id: idOf(own.version), node: own.bin }];
for (const m of majors) {
  const rt = nodeRuntime(m);
  if (!l4lb.some((l) => l.id === idOf(rt.version))) l4lb.push({ id: idOf(rt.version), node: rt.bin });
}

const before = arg('--before');
if (before !== undefined) {
  for (const l of [...l4lb]) l4lb.push({ ...l, id: l.id.replace('l4lb', 'l4lb-before'), bin: join(before, 'bin', 'l4lb.js') });
}

const result = await runUdpPhase({
  seconds: Number(arg('--seconds') ?? (full ? 10 : 3)),
  rounds: Number(arg('--rounds') ?? (full ? 3 : 1)),
  l4lb,
  proxyCpus: proxyCpu,
  clientCpus: proxyCpu === undefined ? undefined : String(1 - Number(proxyCpu)),
  log: (m) => process.stderr.write(`${m}\n`),
});
console.log(`\n${udpReport(result)}\n`);
console.log(JSON.stringify({ udp: result, node: process.version }));
