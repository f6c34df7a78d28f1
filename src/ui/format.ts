/** Small formatters for terminal output: sizes, durations, ratios and aligned tables. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

/** A ratio in 0..1 as a percentage, or "-" when there is nothing to divide. */
export function formatRatio(ratio: number | undefined): string {
  return ratio === undefined || Number.isNaN(ratio) ? '-' : `${(ratio * 100).toFixed(1)}%`;
}

/** Left-aligns text columns and right-aligns numeric ones; a row of one cell spans the rest. */
export function formatTable(header: string[], rows: string[][], numeric: boolean[] = []): string {
  const widths = header.map((h) => h.length);
  for (const row of rows) {
    if (row.length === 1) continue;
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  }
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => {
        if (cells.length === 1 || i === cells.length - 1)
          return numeric[i] ? cell.padStart(widths[i] ?? 0) : cell;
        return numeric[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map((row) => (row.length === 1 ? `${row[0]}` : line(row)))].join('\n');
}
