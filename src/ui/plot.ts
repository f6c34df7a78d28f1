/**
 * A line chart of hit ratio over time as a standalone SVG file: one line per
 * series, seconds on x (0 = cut-over), 0-100% on y; optionally a second chart
 * of counts per second (stale hits) under it, on the same time axis. Plain SVG so it opens in
 * any browser or image viewer, with nothing to install.
 */

export interface Series {
  readonly name: string;
  /** [second relative to cut-over, ratio 0..1 or a count] */
  readonly points: ReadonlyArray<readonly [number, number]>;
}

const COLORS = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b'];

/** A second chart under the hit ratio: counts per second (stale hits), on the same time axis. */
export interface CountChart {
  readonly title: string;
  readonly label: string;
  readonly series: readonly Series[];
}

export function hitRatioSvg(title: string, series: readonly Series[], counts?: CountChart): string {
  const width = 900;
  const chartHeight = 420;
  const height = counts === undefined ? chartHeight : 2 * chartHeight;
  const xs = [...series, ...(counts?.series ?? [])].flatMap((s) => s.points.map(([x]) => x));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...chart({ title, series, label: 'hit ratio', xs, offset: 0, width, height: chartHeight, max: 1 }),
  ];
  if (counts) {
    const max = Math.max(1, ...counts.series.flatMap((s) => s.points.map(([, y]) => y)));
    out.push(
      ...chart({ ...counts, xs, offset: chartHeight, width, height: chartHeight, max: niceCeiling(max) }),
    );
  }
  out.push('</svg>');
  return out.join('\n');
}

/** 1, 2 or 5 times a power of ten, at least `n`. */
function niceCeiling(n: number): number {
  const power = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * power >= n) return m * power;
  return 10 * power;
}

interface ChartSpec {
  readonly title: string;
  readonly series: readonly Series[];
  readonly label: string;
  /** Every x of the whole picture, so both charts share the axis. */
  readonly xs: readonly number[];
  readonly offset: number;
  readonly width: number;
  readonly height: number;
  /** The top of the y axis: 1 is drawn as 100%, any other number as counts. */
  readonly max: number;
}

function chart(c: ChartSpec): string[] {
  const { width, offset, max } = c;
  const height = offset + c.height;
  const left = 60;
  const right = 190;
  const top = offset + 40;
  const bottom = 50;
  const minX = Math.min(0, ...c.xs);
  const maxX = Math.max(1, ...c.xs);
  const px = (x: number): number => left + ((x - minX) / (maxX - minX)) * (width - left - right);
  const py = (y: number): number => top + (1 - Math.max(0, Math.min(1, y / max))) * (height - top - bottom);
  const out: string[] = [
    `<text x="${left}" y="${offset + 24}" font-size="15" font-weight="bold">${escape(c.title)}</text>`,
  ];
  for (let tick = 0; tick <= 5; tick++) {
    const value = (max * tick) / 5;
    const y = py(value);
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    const text = max === 1 ? `${Math.round(value * 100)}%` : String(Math.round(value));
    out.push(`<text x="${left - 8}" y="${y + 4}" text-anchor="end">${text}</text>`);
  }
  const step = Math.max(1, Math.ceil((maxX - minX) / 15));
  for (let x = Math.ceil(minX / step) * step; x <= maxX; x += step) {
    out.push(`<text x="${px(x)}" y="${height - bottom + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(
    `<line x1="${px(0)}" x2="${px(0)}" y1="${top}" y2="${height - bottom}" stroke="#555" stroke-dasharray="4 3"/>`,
    `<text x="${px(0) + 4}" y="${top + 12}">cut-over</text>`,
    `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">seconds since cut-over</text>`,
    `<text x="16" y="${(top + height - bottom) / 2}" transform="rotate(-90 16 ${(top + height - bottom) / 2})" text-anchor="middle">${escape(c.label)}</text>`,
  );
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const path = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    if (path) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`);
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${width - right + 15}" x2="${width - right + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    out.push(`<text x="${width - right + 46}" y="${ly + 4}">${escape(s.name)}</text>`);
  });
  return out;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
