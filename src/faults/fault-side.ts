/**
 * @module faults/fault-side — toxics on the data path: a relay-side decorator (see
 * proxy/relay-side.ts for the contract) around each side of a connection.
 *
 * A {@link FaultLink} is one connection's fault state: two {@link FaultSide}s, one around the
 * client side (carrying the `downstream` toxics: what is sent to the client) and one around the
 * backend side (the `upstream` toxics). A side runs the bytes the relay sends to it through its
 * direction's chain of stages (stages.ts) before they reach the socket; what the socket reads
 * goes to the relay untouched. With no toxic on a direction and nothing queued, a send goes
 * straight to the socket.
 *
 * Memory stays bounded: the bytes a direction holds (in its stages and its tail) are counted,
 * and past {@link HIGH_WATER_BYTES} the relay is told to wait (send() returns false) until they
 * fall to {@link LOW_WATER_BYTES}, so a slow toxic (bandwidth, latency) pauses the reader as a
 * slow socket does.
 *
 * Toxics act live, as in Toxiproxy: the listener's table (table.ts) tells every open link when
 * a toxic is added, updated or removed. An added toxic goes at the end of the chain; a removed
 * one hands what it holds to the next stage first.
 */
import type { RelayCore, RelaySide } from '../proxy/relay-side.js';
import { createStage, type DropCounter, type EndMode, type Sink, type Stage } from './stages.js';
import type { ToxicSpec, ToxicStream } from './toxics.js';

/** Bytes a direction may hold before the relay waits. */
export const HIGH_WATER_BYTES = 256 * 1024;
/** Bytes held at which a waiting relay may send again. */
export const LOW_WATER_BYTES = 64 * 1024;

/** What a link needs from its listener's fault table. */
export interface FaultSource {
  /** The toxics of `stream`, in chain order. */
  chain(stream: ToxicStream): readonly ToxicSpec[];
  /** A toxic met this connection (its toxicity chose it): counted once per connection. */
  affected(link: FaultLink, toxic: ToxicSpec): void;
  /** The link's two sides are closed: it takes no more changes. */
  unlink(link: FaultLink): void;
}

/** One connection's toxics, both directions. */
export class FaultLink {
  readonly client: FaultSide;
  readonly backend: FaultSide;
  readonly #source: FaultSource;
  /** Names of the toxics that affected this connection, in the order they first did. */
  readonly #names: string[] = [];
  #closedSides = 0;

  constructor(source: FaultSource, client: RelaySide, backend: RelaySide) {
    this.#source = source;
    this.client = new FaultSide(this, client, 'downstream');
    this.backend = new FaultSide(this, backend, 'upstream');
    this.sync();
  }

  /** The toxics that affected this connection (for its access-log line); undefined when none. */
  names(): string[] | undefined {
    return this.#names.length > 0 ? [...this.#names] : undefined;
  }

  /** Brings both chains in line with the table (a toxic was added, updated or removed). */
  sync(): void {
    if (this.#closedSides > 0) return;
    this.client.sync(this.#source.chain('downstream'));
    this.backend.sync(this.#source.chain('upstream'));
  }

  /** A stage was made for `spec`: does it act on this connection (its toxicity)? */
  roll(spec: ToxicSpec): boolean {
    const applies = spec.toxicity >= 1 || Math.random() < spec.toxicity;
    if (applies) {
      if (!this.#names.includes(spec.name)) this.#names.push(spec.name);
      this.#source.affected(this, spec);
    }
    return applies;
  }

  /** reset_peer: both sockets are reset, now. */
  reset(): void {
    this.client.resetInner();
    this.backend.resetInner();
  }

  sideClosed(): void {
    if (++this.#closedSides < 2) return;
    this.client.dispose();
    this.backend.dispose();
    this.#source.unlink(this);
  }
}

/**
 * One side of a faulted connection: towards the relay a {@link RelaySide}, towards the side it
 * wraps a {@link RelayCore}; what the relay sends goes through the direction's stages first.
 */
export class FaultSide implements RelaySide, RelayCore, Sink, DropCounter {
  readonly #link: FaultLink;
  readonly #inner: RelaySide;
  readonly #stream: ToxicStream;
  #relay!: RelayCore;
  #stages: Stage[] = [];
  /** Chunks the last stage passed on while the socket was busy. */
  readonly #queue: Buffer[] = [];
  /** Bytes taken from the relay and not yet handed to the socket (nor dropped). */
  #held = 0;
  /** The socket has a write in flight (its send() returned false): wait for its writable(). */
  #innerWaiting = false;
  /** send() returned false to the relay: it waits for one writable(). */
  #relayWaiting = false;
  /** The relay ended or destroyed this direction: nothing more comes in. */
  #inputEnded = false;
  /** The end reached the tail (what is queued goes first, then the end). */
  #ending: EndMode | undefined = undefined;
  #ended = false;
  /** A toxic closed the connection: reads from this socket are dropped, its FIN was reported. */
  #cut = false;
  #reportedEnd = false;

  constructor(link: FaultLink, inner: RelaySide, stream: ToxicStream) {
    this.#link = link;
    this.#inner = inner;
    this.#stream = stream;
  }

  // --- RelaySide, towards the relay ---
  bind(relay: RelayCore): void {
    this.#relay = relay;
    this.#inner.bind(this);
  }

  resumeReading(): void {
    if (!this.#cut) this.#inner.resumeReading();
  }

  send(buf: Buffer, n: number, owned: boolean): boolean {
    // Ended, or a toxic closed this direction: what still comes is dropped.
    if (this.#inputEnded || this.#ending !== undefined) return true;
    if (this.#stages.length === 0 && this.#held === 0 && this.#queue.length === 0 && !this.#innerWaiting) {
      if (this.#inner.send(buf, n, owned)) return true;
      this.#innerWaiting = this.#relayWaiting = true;
      return false;
    }
    // The relay reuses its buffer once send() returns true: the stages get a copy they own.
    let chunk: Buffer;
    if (owned) chunk = n === buf.length ? buf : buf.subarray(0, n);
    else {
      chunk = Buffer.allocUnsafe(n);
      buf.copy(chunk, 0, 0, n);
    }
    this.#held += n;
    this.#head().push(chunk);
    if (this.#held <= HIGH_WATER_BYTES) return true;
    this.#relayWaiting = true;
    return false;
  }

  end(): void {
    if (this.#inputEnded) return;
    this.#inputEnded = true;
    this.#head().finish('fin');
  }

  destroy(): void {
    this.#inputEnded = true;
    this.#inner.destroy();
  }

  get destroyed(): boolean {
    return this.#inner.destroyed;
  }

  get readEnded(): boolean {
    return this.#reportedEnd || this.#inner.readEnded;
  }

  get writeEnded(): boolean {
    return this.#inputEnded || this.#ending !== undefined || this.#inner.writeEnded;
  }

  release(): void {
    this.#inner.release();
  }

  // --- RelayCore, towards the wrapped side ---
  read(_from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean {
    if (this.#cut) return true;
    return this.#relay.read(this, n, buf, owned);
  }

  writable(): void {
    this.#innerWaiting = false;
    this.#drain();
  }

  ended(): void {
    if (this.#reportedEnd) return;
    this.#reportedEnd = true;
    this.#relay.ended(this);
  }

  failed(_side: RelaySide, err: NodeJS.ErrnoException): void {
    this.#relay.failed(this, err);
  }

  closed(): void {
    // Nothing can be written to this socket any more: its stages stop now.
    this.dispose();
    this.#link.sideClosed();
    this.#relay.closed(this);
  }

  // --- Sink: the tail of the chain ---
  push(chunk: Buffer): void {
    if (this.#ending !== undefined) return this.dropped(chunk.length);
    if (this.#innerWaiting || this.#queue.length > 0) {
      this.#queue.push(chunk);
      return;
    }
    this.#write(chunk);
    this.#maybeWritable();
  }

  finish(mode: EndMode): void {
    if (this.#ending !== undefined) return;
    this.#ending = mode;
    // A reset drops what is queued (the RST does anyway); the other ends go after it.
    if (mode === 'reset' || this.#queue.length === 0) this.#applyEnd();
  }

  // --- DropCounter ---
  dropped(n: number): void {
    this.#held -= n;
    this.#maybeWritable();
  }

  // --- for the link ---
  /** Rebuilds the chain for `specs`: stages of removed toxics flush, new toxics join the end. */
  sync(specs: readonly ToxicSpec[]): void {
    const old = this.#stages;
    const kept = old.filter((s) => specs.includes(s.spec));
    const added: Stage[] = [];
    for (const spec of specs) {
      if (!kept.some((s) => s.spec === spec)) added.push(createStage(spec, this, this, this.#link.roll(spec)));
    }
    const chain = [...kept, ...added];
    for (let i = 0; i < chain.length; i++) chain[i].next = chain[i + 1] ?? this;
    // A removed stage hands what it holds to the stage that follows it now. Later stages hold
    // older bytes, so the last removed goes first and order is kept.
    for (let i = old.length - 1; i >= 0; i--) {
      const stage = old[i];
      if (kept.includes(stage)) continue;
      stage.next = old.slice(i + 1).find((s) => kept.includes(s)) ?? added[0] ?? this;
      stage.flush();
      stage.dispose();
    }
    this.#stages = chain;
    this.#drain();
  }

  resetInner(): void {
    this.#inputEnded = true;
    this.#cut = true;
    const inner = this.#inner;
    if (inner.reset !== undefined) inner.reset();
    else inner.destroy();
  }

  dispose(): void {
    for (const s of this.#stages) s.dispose();
    this.#stages = [];
    this.#queue.length = 0;
  }

  // --- internals ---
  #head(): Sink {
    return this.#stages.length > 0 ? this.#stages[0] : this;
  }

  #write(chunk: Buffer): void {
    this.#held -= chunk.length;
    if (this.#inner.destroyed) return;
    if (!this.#inner.send(chunk, chunk.length, true)) this.#innerWaiting = true;
  }

  #drain(): void {
    const q = this.#queue;
    while (q.length > 0 && !this.#innerWaiting) this.#write(q.shift()!);
    if (q.length === 0 && this.#ending !== undefined) this.#applyEnd();
    this.#maybeWritable();
  }

  #maybeWritable(): void {
    if (!this.#relayWaiting || this.#innerWaiting || this.#held > LOW_WATER_BYTES) return;
    this.#relayWaiting = false;
    this.#relay.writable(this);
  }

  #applyEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    const mode = this.#ending!;
    this.#queue.length = 0;
    if (mode === 'reset') {
      // Never from inside a relay call (relay-side.ts): the resets close the sockets, which
      // report to the relay.
      process.nextTick(resetLink, this.#link);
      return;
    }
    this.#inner.end();
    if (mode === 'close') process.nextTick(cutSide, this);
  }

  /**
   * A toxic closed the connection (timeout, limit_data): this socket got its FIN; the relay is
   * told it sent one too, so the other side gets a FIN, and what this socket still sends is
   * dropped (Toxiproxy closes both sockets; l4lb lets both peers see an orderly end).
   */
  cut(): void {
    this.#cut = true;
    if (this.#reportedEnd || this.#inner.destroyed) return;
    this.#reportedEnd = true;
    this.#relay.ended(this);
  }

  /** Which direction this side's toxics act on. */
  get stream(): ToxicStream {
    return this.#stream;
  }
}

function resetLink(link: FaultLink): void {
  link.reset();
}

function cutSide(side: FaultSide): void {
  side.cut();
}
