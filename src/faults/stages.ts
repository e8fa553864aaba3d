/**
 * @module faults/stages — one toxic acting on one direction of one connection.
 *
 * A direction's toxics form a chain, as in Toxiproxy: bytes go through each stage in the order
 * the toxics were added, and the last stage hands them to the pipe's tail (fault-side.ts), which
 * writes them to the socket. A stage receives owned chunks (nobody reuses their memory) and the
 * end of the stream, and passes on chunks (the same, cut, or later) and the end. The end comes
 * in three kinds: `fin` (the source's FIN, passed through), `close` (a toxic closes the
 * connection: Toxiproxy closes both sockets, l4lb ends both directions with a FIN) and `reset`
 * (reset_peer: both sockets are reset).
 *
 * Timers read their toxic's attributes when they fire, so an update (POST to the toxic) acts on
 * open connections at once, as in Toxiproxy.
 */
import type { ToxicSpec } from './toxics.js';

/** How a direction ends: see the module comment. */
export type EndMode = 'fin' | 'close' | 'reset';

/** What a stage passes its output to: the next stage, or the pipe's tail. */
export interface Sink {
  push(chunk: Buffer): void;
  finish(mode: EndMode): void;
}

/** Bytes a stage discards (timeout, reset_peer, limit_data) are reported so the pipe's count of bytes in flight stays exact. */
export interface DropCounter {
  dropped(n: number): void;
}

/** One toxic in one direction of one connection. */
export abstract class Stage implements Sink {
  next: Sink;
  readonly spec: ToxicSpec;
  protected readonly drops: DropCounter;
  /** The end was passed on: nothing more goes out. */
  protected done = false;

  constructor(spec: ToxicSpec, next: Sink, drops: DropCounter) {
    this.spec = spec;
    this.next = next;
    this.drops = drops;
  }

  abstract push(chunk: Buffer): void;
  abstract finish(mode: EndMode): void;
  /** The toxic is removed from the chain: what the stage holds goes on now (Toxiproxy drops nothing). */
  flush(): void {}
  /** The connection closed: stop timers. */
  dispose(): void {}

  protected end(mode: EndMode): void {
    if (this.done) return;
    this.done = true;
    this.next.finish(mode);
  }

  protected drop(chunk: Buffer): void {
    this.drops.dropped(chunk.length);
  }
}

/** A toxic that its toxicity left out of this connection: passes everything on. */
export class PassStage extends Stage {
  push(chunk: Buffer): void {
    this.next.push(chunk);
  }
  finish(mode: EndMode): void {
    this.next.finish(mode);
  }
}

/** An item waiting in a timed queue: a chunk, or the end after the chunks before it. */
interface Timed {
  chunk: Buffer | undefined;
  end: EndMode | undefined;
  /** performance.now() at which it may go. */
  due: number;
}

/**
 * A queue of chunks each going out at its own time, in order: latency, bandwidth and slicer
 * are this with a different rule for the times.
 */
abstract class TimedStage extends Stage {
  readonly #queue: Timed[] = [];
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When the last item queued may go (items never overtake each other). */
  protected lastDue = 0;

  protected enqueue(chunk: Buffer | undefined, end: EndMode | undefined, due: number): void {
    this.lastDue = Math.max(due, this.lastDue);
    this.#queue.push({ chunk, end, due: this.lastDue });
    this.#arm();
  }

  protected get idle(): boolean {
    return this.#queue.length === 0;
  }

  finish(mode: EndMode): void {
    if (this.done) return;
    if (this.#queue.length === 0) this.end(mode);
    else this.enqueue(undefined, mode, this.lastDue);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#queue.length === 0) return;
    const wait = this.#queue[0].due - performance.now();
    if (wait <= 0) return this.#fire();
    this.#timer = setTimeout(fireTimed, wait, this);
  }

  /** Sends every item whose time has come, then waits for the next. */
  fire(): void {
    this.#timer = undefined;
    this.#fire();
  }

  #fire(): void {
    const q = this.#queue;
    // Timers fire up to a millisecond early or late: take what is due within half of one.
    while (q.length > 0 && q[0].due <= performance.now() + 0.5) {
      const item = q.shift()!;
      if (item.chunk !== undefined) this.next.push(item.chunk);
      else this.end(item.end!);
      this.sent();
    }
    this.#arm();
  }

  /** An item went out: a stage that times each item from the one before sets the next due time here. */
  protected sent(): void {}

  override flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const item of this.#queue.splice(0)) {
      if (item.chunk !== undefined) this.next.push(item.chunk);
      else this.end(item.end!);
    }
  }

  override dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }
}

function fireTimed(s: TimedStage): void {
  s.fire();
}

/** latency: each chunk is delayed by `latency` ± `jitter` ms; the end follows the last chunk at once. */
export class LatencyStage extends TimedStage {
  push(chunk: Buffer): void {
    if (this.done) return this.drop(chunk);
    const { latency, jitter } = this.spec.attributes;
    // Toxiproxy: latency + rand[-jitter, jitter).
    const delay = jitter > 0 ? latency + Math.floor(Math.random() * 2 * jitter) - jitter : latency;
    this.enqueue(chunk, undefined, performance.now() + delay);
  }
}

/** How long a bandwidth-limited piece may be: 100 ms worth of bytes (Toxiproxy's split). */
const BANDWIDTH_SLICE_MS = 100;

/**
 * bandwidth: at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy: `len × 1 ms / rate`). Each
 * piece (at most 100 ms worth) goes out once the time its bytes take at `rate` has passed since
 * the previous one; an idle stream earns no credit. `rate` 0: unlimited.
 */
export class BandwidthStage extends TimedStage {
  /** When the piece being timed may go, on the stage's own clock. */
  #clock = 0;

  push(chunk: Buffer): void {
    if (this.done) return this.drop(chunk);
    const rate = this.spec.attributes.rate;
    if (rate <= 0) {
      if (this.idle) return this.next.push(chunk);
      return this.enqueue(chunk, undefined, performance.now());
    }
    const slice = Math.max(1, rate * BANDWIDTH_SLICE_MS);
    for (let at = 0; at < chunk.length; at += slice) {
      const piece = chunk.length <= slice ? chunk : chunk.subarray(at, Math.min(chunk.length, at + slice));
      // rate bytes per ms: a piece takes length / rate ms after the previous one (or now).
      this.#clock = Math.max(this.#clock, performance.now()) + piece.length / rate;
      this.enqueue(piece, undefined, this.#clock);
    }
  }
}

/**
 * slicer: each chunk is cut into pieces of about `average_size` ± `size_variation` bytes (the
 * halving of Toxiproxy's SlicerToxic.chunk), `delay` µs apart.
 */
export class SlicerStage extends TimedStage {
  push(chunk: Buffer): void {
    if (this.done) return this.drop(chunk);
    const { average_size: avg, size_variation: variation, delay } = this.spec.attributes;
    const cuts: number[] = [];
    sliceOffsets(0, chunk.length, avg, variation, cuts);
    let due = Math.max(performance.now(), this.lastDue);
    for (let i = 1; i < cuts.length; i += 2) {
      this.enqueue(chunk.subarray(cuts[i - 1], cuts[i]), undefined, due);
      due += delay / 1000;
    }
    // The next chunk's first piece waits for the delay after this chunk's last.
    this.lastDue = due;
  }
}

/** Toxiproxy's chunk(): start/end pairs of the pieces of [start, end). */
function sliceOffsets(start: number, end: number, avg: number, variation: number, out: number[]): void {
  if (end - start - avg <= variation || avg <= 0) {
    out.push(start, end);
    return;
  }
  let mid = start + Math.floor((end - start) / 2);
  if (variation > 0) mid += Math.floor(Math.random() * 2 * variation) - variation;
  sliceOffsets(start, mid, avg, variation, out);
  sliceOffsets(mid, end, avg, variation, out);
}

/** slow_close: data passes; the end waits `delay` ms. */
export class SlowCloseStage extends Stage {
  #timer: NodeJS.Timeout | undefined = undefined;
  #pending: EndMode | undefined = undefined;

  push(chunk: Buffer): void {
    if (this.#pending !== undefined || this.done) return this.drop(chunk);
    this.next.push(chunk);
  }

  finish(mode: EndMode): void {
    if (this.#pending !== undefined || this.done) return;
    this.#pending = mode;
    this.#timer = setTimeout(() => this.end(mode), this.spec.attributes.delay);
  }

  override flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending !== undefined) this.end(this.#pending);
  }

  override dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * timeout: no data goes through; the connection is closed `timeout` ms after the toxic met it
 * (never with 0). Removing the toxic closes the connection too (Toxiproxy's Cleanup): the
 * bytes it swallowed are lost, so the stream cannot go on.
 */
export class TimeoutStage extends Stage {
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(spec: ToxicSpec, next: Sink, drops: DropCounter) {
    super(spec, next, drops);
    const ms = spec.attributes.timeout;
    if (ms > 0) this.#timer = setTimeout(() => this.end('close'), ms);
  }

  push(chunk: Buffer): void {
    this.drop(chunk);
  }

  finish(mode: EndMode): void {
    this.end(mode);
  }

  override flush(): void {
    this.dispose();
    this.end('close');
  }

  override dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * reset_peer: the first chunk (or the end) arms it; `timeout` ms later both sockets are reset
 * (TCP RST, Toxiproxy's SetLinger(0)). Data from then on is dropped.
 */
export class ResetPeerStage extends Stage {
  #timer: NodeJS.Timeout | undefined = undefined;
  #armed = false;

  push(chunk: Buffer): void {
    this.drop(chunk);
    this.#arm();
  }

  finish(): void {
    this.#arm();
  }

  #arm(): void {
    if (this.#armed || this.done) return;
    this.#armed = true;
    this.#timer = setTimeout(() => this.end('reset'), this.spec.attributes.timeout);
  }

  override flush(): void {
    if (!this.#armed) return;
    this.dispose();
    this.end('reset');
  }

  override dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** limit_data: `bytes` bytes go through, then the connection is closed. */
export class LimitDataStage extends Stage {
  /** Bytes passed so far: kept when the toxic is updated, as Toxiproxy's stub state. */
  #passed = 0;

  push(chunk: Buffer): void {
    if (this.done) return this.drop(chunk);
    const left = this.spec.attributes.bytes - this.#passed;
    const piece = left < chunk.length ? chunk.subarray(0, Math.max(0, left)) : chunk;
    if (piece.length < chunk.length) this.drops.dropped(chunk.length - piece.length);
    if (piece.length > 0) {
      this.#passed += piece.length;
      this.next.push(piece);
    }
    if (this.spec.attributes.bytes - this.#passed <= 0) this.end('close');
  }

  finish(mode: EndMode): void {
    this.end(mode);
  }
}

/** The stage of `spec` for one connection, or a pass-through when its toxicity leaves it out. */
export function createStage(spec: ToxicSpec, next: Sink, drops: DropCounter, applies: boolean): Stage {
  if (!applies) return new PassStage(spec, next, drops);
  switch (spec.type) {
    case 'latency':
      return new LatencyStage(spec, next, drops);
    case 'bandwidth':
      return new BandwidthStage(spec, next, drops);
    case 'slicer':
      return new SlicerStage(spec, next, drops);
    case 'slow_close':
      return new SlowCloseStage(spec, next, drops);
    case 'timeout':
      return new TimeoutStage(spec, next, drops);
    case 'reset_peer':
      return new ResetPeerStage(spec, next, drops);
    case 'limit_data':
      return new LimitDataStage(spec, next, drops);
  }
}
