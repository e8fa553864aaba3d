/**
 * @module bench/parse — read wrk's text report and iperf3's JSON report.
 */

/** What the bench uses of a wrk run. */
export interface WrkResult {
  requests: number;
  durationS: number;
  reqPerSec: number;
  /** From `--latency`'s distribution, in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** Responses that were not 2xx/3xx. */
  non2xx: number;
}

const LATENCY_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function latencyMs(text: string, percentile: string): number {
  const m = new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
  if (!m) throw new Error(`wrk output has no ${percentile}% latency line`);
  return Number(m[1]) * LATENCY_UNITS_MS[m[2]];
}

/** Parses `wrk --latency` output; throws when a required line is missing. */
export function parseWrk(text: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),/m.exec(text);
  if (!rps || !total) throw new Error(`unexpected wrk output: ${text.slice(0, 300)}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(total[1]),
    durationS: (Number(total[2]) * LATENCY_UNITS_MS[total[3]]) / 1000,
    reqPerSec: Number(rps[1]),
    p50Ms: latencyMs(text, '50'),
    p99Ms: latencyMs(text, '99'),
    socketErrors: errors
      ? { connect: Number(errors[1]), read: Number(errors[2]), write: Number(errors[3]), timeout: Number(errors[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

/** Total socket errors of a wrk run. */
export function wrkErrorCount(r: WrkResult): number {
  const e = r.socketErrors;
  return e.connect + e.read + e.write + e.timeout + r.non2xx;
}

/** What the bench uses of an iperf3 run. */
export interface IperfResult {
  /** Receiver-side rate, bits per second. */
  bitsPerSecond: number;
  /** Bytes the receiver got: what the proxy relayed. */
  bytes: number;
  seconds: number;
}

/** Parses `iperf3 -J` output; throws with iperf3's own message when the run failed. */
export function parseIperf(text: string): IperfResult {
  let doc: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number } } };
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.slice(0, 300)}`);
  }
  if (doc.error) throw new Error(`iperf3: ${doc.error}`);
  const r = doc.end?.sum_received;
  if (!r || typeof r.bits_per_second !== 'number' || typeof r.bytes !== 'number') {
    throw new Error('iperf3 JSON has no end.sum_received');
  }
  return { bitsPerSecond: r.bits_per_second, bytes: r.bytes, seconds: r.seconds ?? 0 };
}
