/**
 * @module faults/table — the toxics of one listener, and of the process.
 *
 * A {@link ListenerFaults} is what Toxiproxy calls a proxy's toxic collection: an ordered list
 * of toxics (each direction's chain is the list's toxics of that stream, in order), the
 * `enabled` flag (false = down), counters of the connections each toxic affected, and the
 * open connections' {@link FaultLink}s, which it tells of every change so that toxics act on
 * connections already open, as in Toxiproxy.
 *
 * A listener's policy carries its table only when faults are possible there (the fault API is
 * on, or the listener's config has `faults:`); otherwise connections get no link at all and
 * the relay sees the plain sockets (docs/faults.md, "Cost").
 */
import type { RelaySide } from '../proxy/relay-side.js';
import { FaultLink, type FaultSource } from './fault-side.js';
import type { ToxicSpec, ToxicStream } from './toxics.js';

/** A toxic change the API reports as Toxiproxy does (404, 409). */
export class FaultTableError extends Error {
  readonly status: 404 | 409;
  constructor(status: 404 | 409, message: string) {
    super(message);
    this.name = 'FaultTableError';
    this.status = status;
  }
}

/** The faults of one listener. */
export class ListenerFaults implements FaultSource {
  readonly listener: string;
  /** In the order added; a direction's chain is its stream's toxics in this order. */
  #toxics: ToxicSpec[] = [];
  #up: ToxicSpec[] = [];
  #down: ToxicSpec[] = [];
  /** False: the listener is down (Toxiproxy's `enabled: false`). */
  enabled = true;
  /** The `faults:` of the listener's config when they were last applied (JSON), to see a reload change them. */
  configured = '[]';
  readonly #links = new Set<FaultLink>();
  /** Connections each toxic affected, by toxic name (since start; kept over removals for the metric). */
  readonly #affected = new Map<string, number>();

  constructor(listener: string) {
    this.listener = listener;
  }

  /** Wraps a connection's two sides (connection.ts, Connection#startRelay). */
  link(client: RelaySide, backend: RelaySide): FaultLink {
    const link = new FaultLink(this, client, backend);
    this.#links.add(link);
    return link;
  }

  // --- FaultSource ---
  chain(stream: ToxicStream): readonly ToxicSpec[] {
    return stream === 'upstream' ? this.#up : this.#down;
  }

  affected(_link: FaultLink, toxic: ToxicSpec): void {
    this.#affected.set(toxic.name, (this.#affected.get(toxic.name) ?? 0) + 1);
  }

  unlink(link: FaultLink): void {
    this.#links.delete(link);
  }

  // --- the table ---
  /** The toxics, in the order added. */
  list(): readonly ToxicSpec[] {
    return this.#toxics;
  }

  get(name: string): ToxicSpec | undefined {
    return this.#toxics.find((t) => t.name === name);
  }

  /** Whether anything is injected: a toxic, or the listener down. */
  get active(): boolean {
    return this.#toxics.length > 0 || !this.enabled;
  }

  /** Open connections carrying a link. */
  get links(): number {
    return this.#links.size;
  }

  /** Connections affected per toxic name, since start. */
  affectedCounts(): ReadonlyMap<string, number> {
    return this.#affected;
  }

  /** Adds a toxic at the end of its chain; 409 when the name is taken. */
  add(spec: ToxicSpec): ToxicSpec {
    if (this.get(spec.name)) throw new FaultTableError(409, 'toxic already exists');
    this.#toxics = [...this.#toxics, spec];
    this.#changed();
    return spec;
  }

  /** Changes a toxic's toxicity and attributes in place (stages read them live); 404 when unknown. */
  update(name: string, change: { toxicity: number; attributes: Record<string, number> }): ToxicSpec {
    const t = this.get(name);
    if (!t) throw new FaultTableError(404, 'toxic not found');
    t.toxicity = change.toxicity;
    t.attributes = change.attributes;
    return t;
  }

  /** Removes a toxic; 404 when unknown. */
  remove(name: string): void {
    if (!this.get(name)) throw new FaultTableError(404, 'toxic not found');
    this.#toxics = this.#toxics.filter((t) => t.name !== name);
    this.#changed();
  }

  /** Replaces every toxic (a reload that changed the listener's `faults:`, or a reset). */
  replace(specs: readonly ToxicSpec[]): void {
    this.#toxics = [...specs];
    this.#changed();
  }

  #changed(): void {
    this.#up = this.#toxics.filter((t) => t.stream === 'upstream');
    this.#down = this.#toxics.filter((t) => t.stream === 'downstream');
    for (const link of [...this.#links]) link.sync();
  }
}
