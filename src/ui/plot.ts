/**
 * A line chart of hit ratio over time as a standalone SVG file: one line per
 * series, seconds on x (0 = cut-over), 0-100% on y. Plain SVG so it opens in
 * any browser or image viewer, with nothing to install.
 */

export interface Series {
  readonly name: string;
  /** [second relative to cut-over, ratio 0..1] */
  readonly points: ReadonlyArray<readonly [number, number]>;
}

const COLORS = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b'];

export function hitRatioSvg(title: string, series: readonly Series[]): string {
  const width = 900;
  const height = 420;
  const left = 60;
  const right = 190;
  const top = 40;
  const bottom = 50;
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const minX = Math.min(0, ...xs);
  const maxX = Math.max(1, ...xs);
  const px = (x: number): number => left + ((x - minX) / (maxX - minX)) * (width - left - right);
  const py = (y: number): number => top + (1 - Math.max(0, Math.min(1, y))) * (height - top - bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="24" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  for (let pct = 0; pct <= 100; pct += 20) {
    const y = py(pct / 100);
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 8}" y="${y + 4}" text-anchor="end">${pct}%</text>`);
  }
  const step = Math.max(1, Math.ceil((maxX - minX) / 15));
  for (let x = Math.ceil(minX / step) * step; x <= maxX; x += step) {
    out.push(`<text x="${px(x)}" y="${height - bottom + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(
    `<line x1="${px(0)}" x2="${px(0)}" y1="${top}" y2="${height - bottom}" stroke="#555" stroke-dasharray="4 3"/>`,
    `<text x="${px(0) + 4}" y="${top + 12}">cut-over</text>`,
    `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">seconds since cut-over</text>`,
    `<text x="16" y="${(top + height - bottom) / 2}" transform="rotate(-90 16 ${(top + height - bottom) / 2})" text-anchor="middle">hit ratio</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const path = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    if (path) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`);
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${width - right + 15}" x2="${width - right + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    out.push(`<text x="${width - right + 46}" y="${ly + 4}">${escape(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
