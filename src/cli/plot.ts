/**
 * A hand-written SVG line chart (no dependency): the quality plot of `rankdistill demo` — metrics
 * of the student against examples seen. Pure: returns the SVG text.
 */

/** One line of the chart. */
export interface PlotSeries {
  name: string;
  /** CSS colour of the line. */
  color: string;
  points: readonly { x: number; y: number }[];
}

/** Options of {@link lineChartSvg}. */
export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** y range; default [0, 1] (agreement metrics). */
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Compact tick label: 1200 → 1.2k, 3500000 → 3.5M. */
function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

/** A "nice" step (1, 2 or 5 × 10^k) giving about `n` intervals over `span`. */
function niceStep(span: number, n: number): number {
  if (!(span > 0)) return 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/**
 * Renders series as a line chart with axes, ticks, point markers and a legend.
 *
 * @example
 * const svg = lineChartSvg([{ name: 'recall', color: '#1f77b4', points: [{ x: 0, y: 0.02 }, { x: 5e5, y: 0.4 }] }],
 *   { title: 'Student vs teacher', xLabel: 'examples seen', yLabel: 'agreement' });
 * writeFileSync('quality.svg', svg);
 */
export function lineChartSvg(series: readonly PlotSeries[], o: LineChartOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 420;
  const m = { left: 64, right: 24, top: 44, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p.x)).filter(Number.isFinite);
  const xMin = 0;
  const xMax = Math.max(1, ...xs);
  const yMin = o.yMin ?? 0;
  const yMax = o.yMax ?? 1;
  const sx = (x: number) => m.left + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number) => m.top + ph - ((Math.min(yMax, Math.max(yMin, y)) - yMin) / (yMax - yMin)) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  );
  // grid and ticks
  const xStep = niceStep(xMax - xMin, 6);
  for (let x = xMin; x <= xMax + 1e-9; x += xStep) {
    const px = sx(x).toFixed(1);
    out.push(
      `<line x1="${px}" y1="${m.top}" x2="${px}" y2="${m.top + ph}" stroke="#eee"/>`,
      `<text x="${px}" y="${m.top + ph + 16}" text-anchor="middle">${tickLabel(x)}</text>`,
    );
  }
  const yStep = niceStep(yMax - yMin, 5);
  for (let y = yMin; y <= yMax + 1e-9; y += yStep) {
    const py = sy(y).toFixed(1);
    out.push(
      `<line x1="${m.left}" y1="${py}" x2="${m.left + pw}" y2="${py}" stroke="#eee"/>`,
      `<text x="${m.left - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${tickLabel(y)}</text>`,
    );
  }
  out.push(
    `<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333"/>`,
    `<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  // lines, markers, legend
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length > 0) {
      const d = pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${esc(s.color)}" stroke-width="2" points="${d}"/>`);
      for (const p of pts)
        out.push(
          `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3" fill="${esc(s.color)}"><title>${esc(s.name)}: ${p.y.toFixed(4)} at ${Math.round(p.x)}</title></circle>`,
        );
    }
    const ly = m.top + 8 + i * 18;
    out.push(
      `<line x1="${m.left + 12}" y1="${ly}" x2="${m.left + 36}" y2="${ly}" stroke="${esc(s.color)}" stroke-width="2"/>`,
      `<text x="${m.left + 42}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
