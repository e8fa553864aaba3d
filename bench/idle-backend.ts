/**
 * @module bench/idle-backend — a backend that accepts connections and holds them, idle
 * (echoing whatever a client sends, for connections that carry one request first).
 *
 * Run as a child with an IPC channel. It sends `{ type: 'ready', port }` once listening and
 * answers `{ type: 'count', id }` with `{ type: 'count', id, open, accepted }`, which is how the
 * bench knows that every connection it opened through a proxy really reached the backend.
 * It exits when the IPC channel closes, so it never outlives the bench.
 */
import { createServer, type Socket } from 'node:net';

/** Request from the bench. */
export interface IdleRequest {
  type: 'count';
  id: number;
}

/** Messages to the bench. */
export type IdleMessage = { type: 'ready'; port: number } | { type: 'count'; id: number; open: number; accepted: number };

function main(): void {
  const host = process.argv[2] ?? '127.0.0.1';
  let open = 0;
  let accepted = 0;
  const server = createServer((s: Socket) => {
    open++;
    accepted++;
    s.on('error', () => {});
    s.on('close', () => open--);
    // Silent unless spoken to: an idle connection sits there until the peer closes it; a
    // keep-alive one gets its request echoed once, then sits there too.
    s.on('data', (d) => s.write(d));
  });
  server.listen({ host, port: 0, backlog: 4096 }, () => {
    const addr = server.address();
    if (addr && typeof addr === 'object') send({ type: 'ready', port: addr.port });
  });
  process.on('message', (m: IdleRequest) => {
    if (m.type === 'count') send({ type: 'count', id: m.id, open, accepted });
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

function send(m: IdleMessage): void {
  process.send?.(m);
}

main();
