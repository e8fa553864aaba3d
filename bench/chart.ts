/**
 * @module bench/chart — a hand-written SVG of the ratios against the baseline.
 *
 * Grouped bars, one group per metric, one bar per proxy. The y axis is logarithmic so that
 * 2× and 0.5× are the same distance from the 1.0 line, and bars start at 1.0: a bar going up
 * means "more than the baseline", which is good for throughput and bad for CPU or memory, so
 * each group says which way is better. Red ticks mark the targets of the judged contenders.
 */
import {
  isJudged,
  metricDef,
  metricValue,
  ratioToBaseline,
  type MetricId,
  type RunInfo,
  type SuiteResult,
} from './report.js';

const WIDTH = 1000;
const HEIGHT = 470;
const MARGIN = { left: 64, right: 20, top: 78, bottom: 70 };
/** Candidate axis bounds; the chart picks the tightest pair that fits every bar and target. */
const NICE_BOUNDS = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50];
const GRID_TICKS = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50];
const PALETTE: Record<string, string> = { nginx: '#9a9a9a', 'node-pipe': '#9ecae1', direct: '#c7e9c0' };
const L4LB_PALETTE = ['#3182bd', '#08519c', '#6baed6', '#2171b5'];
const TARGET_COLOR = '#d62728';
/** Metrics left out of the chart: no target, and they tell the same story as their neighbours. */
const SKIPPED: MetricId[] = ['kaP50Ms', 'userPerGB', 'userPerConnUs'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function n(v: number): string {
  return v.toFixed(1);
}

/** Renders the suite's ratios as a standalone SVG document. */
export function renderChart(suite: SuiteResult, run: RunInfo, subtitle: string): string {
  const metrics = suite.metrics.filter((id) => !SKIPPED.includes(id));
  const base = suite.contenders.find((c) => c.id === suite.baseline);
  const bars = suite.contenders.filter((c) => c.id !== suite.baseline && c.kind !== 'direct');
  let l4lbIndex = 0;
  const colors = new Map(bars.map((c) => [c.id, c.kind === 'l4lb' ? L4LB_PALETTE[l4lbIndex++ % L4LB_PALETTE.length] : PALETTE[c.kind] ?? '#fdae6b']));

  // Ratios and target ratios, per metric and bar.
  const cells = metrics.map((id) => {
    const m = metricDef(id);
    return bars.map((c) => {
      const r = c.available ? ratioToBaseline(suite, c, id) : NaN;
      let target: number | undefined;
      if (m.target && isJudged(suite, c)) {
        const t = m.target.value(c, run);
        target = m.target.kind === 'ratio' ? t : base ? t / metricValue(base, id) : NaN;
      }
      return { c, r, target };
    });
  });
  const finite = cells.flat().flatMap((x) => [x.r, x.target ?? NaN]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = [...NICE_BOUNDS].reverse().find((b) => b <= Math.min(0.5, ...finite.map((v) => v * 0.9))) ?? NICE_BOUNDS[0];
  const hi = NICE_BOUNDS.find((b) => b >= Math.max(2, ...finite.map((v) => v * 1.1))) ?? NICE_BOUNDS[NICE_BOUNDS.length - 1];
  const plotTop = MARGIN.top;
  const plotBottom = HEIGHT - MARGIN.bottom;
  const clamp = (v: number) => Math.min(hi, Math.max(lo, v));
  const y = (v: number) => plotBottom - ((Math.log(clamp(v)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) * (plotBottom - plotTop);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="16" font-weight="bold">${esc(`${suite.title}: ratio to ${suite.baseline} (log scale, 1.0 = ${suite.baseline})`)}</text>`,
    `<text x="${MARGIN.left}" y="40" fill="#555">${esc(subtitle)}</text>`,
  );

  // Grid and axis labels.
  for (const t of GRID_TICKS.filter((t) => t >= lo && t <= hi)) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${n(y(t))}" y2="${n(y(t))}" stroke="${t === 1 ? '#000' : '#e3e3e3'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`,
      `<text x="${MARGIN.left - 8}" y="${n(y(t) + 4)}" text-anchor="end" fill="#444">${t}×</text>`,
    );
  }

  // Legend.
  let lx = MARGIN.left;
  for (const c of bars) {
    out.push(`<rect x="${lx}" y="52" width="12" height="12" fill="${colors.get(c.id)}"/>`, `<text x="${lx + 16}" y="62">${esc(c.id)}</text>`);
    lx += 24 + c.id.length * 7;
  }
  out.push(
    `<line x1="${lx}" x2="${lx + 16}" y1="58" y2="58" stroke="${TARGET_COLOR}" stroke-width="2.5"/>`,
    `<text x="${lx + 20}" y="62">target (Node contenders)</text>`,
  );

  // Groups.
  const groupWidth = (WIDTH - MARGIN.left - MARGIN.right) / metrics.length;
  const barWidth = Math.min(26, (groupWidth - 16) / Math.max(1, bars.length));
  metrics.forEach((id, gi) => {
    const m = metricDef(id);
    const gx = MARGIN.left + gi * groupWidth;
    const x0 = gx + (groupWidth - barWidth * bars.length) / 2;
    cells[gi].forEach(({ c, r, target }, bi) => {
      const x = x0 + bi * barWidth;
      if (!Number.isFinite(r) || r <= 0) {
        out.push(`<text x="${n(x + barWidth / 2)}" y="${n(y(1) - 4)}" text-anchor="middle" font-size="9" fill="#888">n/a</text>`);
      } else {
        const top = Math.min(y(r), y(1));
        const h = Math.max(1, Math.abs(y(r) - y(1)));
        out.push(`<rect x="${n(x + 1)}" y="${n(top)}" width="${n(barWidth - 2)}" height="${n(h)}" fill="${colors.get(c.id)}"><title>${esc(`${c.id}: ${r.toFixed(2)}× ${suite.baseline}`)}</title></rect>`);
        const ly = r >= 1 ? top - 3 : top + h + 10;
        out.push(`<text x="${n(x + barWidth / 2)}" y="${n(ly)}" text-anchor="middle" font-size="9">${r.toFixed(r >= 10 ? 0 : 2)}</text>`);
      }
      if (target !== undefined && Number.isFinite(target) && target > 0) {
        out.push(
          `<line x1="${n(x - 1)}" x2="${n(x + barWidth + 1)}" y1="${n(y(target))}" y2="${n(y(target))}" stroke="${TARGET_COLOR}" stroke-width="2.5"><title>${esc(`target for ${c.id}: ${target.toFixed(2)}×`)}</title></line>`,
        );
      }
    });
    const cx = gx + groupWidth / 2;
    out.push(
      `<text x="${n(cx)}" y="${plotBottom + 18}" text-anchor="middle" font-weight="bold">${esc(m.short)}</text>`,
      `<text x="${n(cx)}" y="${plotBottom + 34}" text-anchor="middle" fill="#555">${m.better === 'higher' ? '↑ higher is better' : '↓ lower is better'}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
