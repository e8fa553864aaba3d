/**
 * @module bench/node-pipe — the plain Node proxy: `c.pipe(b); b.pipe(c)` and nothing else.
 *
 * The reference for "what does Node itself cost": no config, no health, no metrics, no
 * limits, round-robin over the backends. It speaks l4lb's CLI contract so the bench can start
 * both the same way:
 * `node node-pipe.js --listen HOST:PORT BACKEND...` prints `listening on HOST:PORT` first.
 */
import { connect, createServer, type Socket } from 'node:net';

function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function main(argv: string[]): void {
  let listen: string | undefined;
  const backends: Array<{ host: string; port: number }> = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--listen') listen = argv[++i];
    else backends.push(parseHostPort(argv[i]));
  }
  if (!listen || backends.length === 0) {
    process.stderr.write('usage: node-pipe --listen HOST:PORT BACKEND...\n');
    process.exit(2);
  }
  let next = 0;
  const server = createServer((client: Socket) => {
    const target = backends[next++ % backends.length];
    const upstream = connect(target);
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing ends both; pipe() alone would leave the other socket open.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  const { host, port } = parseHostPort(listen);
  server.listen({ host, port, backlog: 4096 }, () => {
    process.stdout.write(`listening on ${host}:${port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

main(process.argv.slice(2));
