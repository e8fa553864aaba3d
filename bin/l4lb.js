#!/usr/bin/env node
// The l4lb command. Library users import the package instead and size V8 themselves
// (docs/performance.md, "Running l4lb": --max-semi-space-size=1 for many idle connections).
import v8 from 'node:v8';

// V8's young generation grows during a burst of new connections (they all survive) and keeps
// its size afterwards: about 1–2 KiB of resident memory per idle connection, for no measured
// gain in throughput or CPU. Keeping it at its initial 1 MiB semi-space is what
// --max-semi-space-size=1 does; this process is already running, so it stops the growth
// instead (V8 reads the factor each time it would grow), and cluster workers, forked with
// process.execArgv, start with the flag itself. A semi-space size given by the user wins.
const userSized = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) =>
  /^--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor)\b/.test(a),
);
if (!userSized) {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  process.execArgv.push('--max-semi-space-size=1');
}

const { main } = await import('../dist/src/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`l4lb: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
