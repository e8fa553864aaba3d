/**
 * @module cluster/requests — request/response over the IPC channel to the workers.
 *
 * A request carries a fresh `id`; the worker's answer repeats it (cluster/ipc.ts). Each
 * request waits at most its own timeout, and fails at once when its worker exits.
 */
import type { Worker } from 'node:cluster';
import type { PrimaryMessage, WorkerMessage } from './ipc.js';

/** The worker a request goes to. */
export interface Peer {
  /** 1-based slot number (for messages). */
  readonly id: number;
  /** The process in the slot now (undefined while it restarts). */
  readonly worker: Worker | undefined;
}

interface Pending {
  peer: Peer;
  resolve(m: WorkerMessage): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class WorkerRequests {
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();

  /** Sends a message nobody waits for; false when the worker is not there to take it. */
  send(peer: Peer, m: PrimaryMessage): boolean {
    const w = peer.worker;
    if (!w || !w.isConnected()) return false;
    w.send(m);
    return true;
  }

  /** Sends a request built around a fresh id and waits for the answer with that id. */
  ask(peer: Peer, build: (id: number) => PrimaryMessage, timeoutMs: number): Promise<WorkerMessage> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`worker ${peer.id} did not answer within ${timeoutMs}ms`));
      }, timeoutMs);
      this.#pending.set(id, { peer, resolve, reject, timer });
      if (!this.send(peer, build(id))) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`worker ${peer.id} is not running`));
      }
    });
  }

  /** A message from a worker: the answer to a request when it carries a pending id. */
  answer(m: WorkerMessage): void {
    if (!('id' in m) || m.id === undefined) return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  /** Fails the requests waiting on `peer` (its worker exited). */
  failPeer(peer: Peer, why: string): void {
    for (const [id, p] of this.#pending) if (p.peer === peer) this.#fail(id, p, why);
  }

  /** Fails every waiting request (the cluster closes). */
  failAll(why: string): void {
    for (const [id, p] of this.#pending) this.#fail(id, p, why);
  }

  #fail(id: number, p: Pending, why: string): void {
    this.#pending.delete(id);
    clearTimeout(p.timer);
    p.reject(new Error(why));
  }
}
