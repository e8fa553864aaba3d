import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
for (const parser of ['proxy', 'tls', 'admin', 'cli', 'config']) for (const share of [1, 0]) {
  const shared = new SharedArrayBuffer(16 + 256 * 1024);
  const w = new Worker(new URL('./dist/test/fuzz/worker.js', import.meta.url), { workerData: { parser, subSeed: 5, timeMs: 3000, propertyShare: share, hangMs: 100, shared } });
  let st; w.on('message', (m) => { if (m.type === 'done') st = m.stats; else console.log('finding', m.message.slice(0, 100)); });
  await once(w, 'exit');
  console.log(parser, share ? 'props' : 'mut', Math.round(st.inputs / st.elapsedMs * 1000), '/s', JSON.stringify(st.verdicts));
}
