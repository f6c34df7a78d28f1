/**
 * What `memshift top` shows: the table of instances grouped by pool, pool
 * totals and means, and the new pool's fill against the old one. The same
 * lines serve the full-screen view (terminal-kit) and the plain snapshots
 * printed for scripts.
 */
import terminalKit from 'terminal-kit';
import type { HotKeyEntry, HotKeysSnapshot } from '../jobs/hot-keys.js';
import type { InstanceRow, PoolSummary, TopSnapshot } from '../jobs/top.js';
import { formatBytes, formatDuration, formatRatio } from './format.js';

type Terminal = typeof terminalKit.terminal;

interface Column {
  readonly title: string;
  readonly numeric: boolean;
  /** Sort value of an instance; down instances sort last whatever the order. */
  readonly sortBy: (row: InstanceRow) => number | string;
}

const rate = (
  row: InstanceRow,
  pick: (r: NonNullable<Extract<InstanceRow, { up: true }>['rates']>) => number,
) => (row.up && row.rates ? pick(row.rates) : -1);

export const TOP_COLUMNS: readonly Column[] = [
  { title: 'INSTANCE', numeric: false, sortBy: (r) => r.address },
  { title: 'STATE', numeric: false, sortBy: (r) => (r.up ? 'up' : 'DOWN') },
  { title: 'VERSION', numeric: false, sortBy: (r) => (r.up ? r.version : '') },
  { title: 'UPTIME', numeric: true, sortBy: (r) => (r.up ? r.uptimeSeconds : -1) },
  { title: 'USED', numeric: true, sortBy: (r) => (r.up ? r.bytes : -1) },
  { title: 'MEM%', numeric: true, sortBy: (r) => (r.up && r.limitBytes > 0 ? r.bytes / r.limitBytes : -1) },
  { title: 'ITEMS', numeric: true, sortBy: (r) => (r.up ? r.items : -1) },
  { title: 'HIT', numeric: true, sortBy: (r) => rate(r, (x) => x.hitRatio ?? -1) },
  { title: 'GET/s', numeric: true, sortBy: (r) => rate(r, (x) => x.getsPerSec) },
  { title: 'SET/s', numeric: true, sortBy: (r) => rate(r, (x) => x.setsPerSec) },
  { title: 'EVICT/s', numeric: true, sortBy: (r) => rate(r, (x) => x.evictionsPerSec) },
  { title: 'CONNS', numeric: true, sortBy: (r) => (r.up ? r.connections : -1) },
  { title: 'READ/s', numeric: true, sortBy: (r) => rate(r, (x) => x.readBytesPerSec) },
  { title: 'WRITE/s', numeric: true, sortBy: (r) => rate(r, (x) => x.writtenBytesPerSec) },
  { title: 'RTT', numeric: true, sortBy: (r) => (r.up ? r.rttMs : Infinity) },
];

/** Names sort up, figures down: the biggest instance first. */
export function defaultDescending(column: number): boolean {
  return TOP_COLUMNS[column]?.numeric ?? false;
}

export interface SortState {
  /** Index into TOP_COLUMNS. */
  column: number;
  descending: boolean;
}

export type LineStyle = 'title' | 'header' | 'row' | 'down' | 'total' | 'fill' | 'help';

export interface ViewLine {
  readonly text: string;
  readonly style: LineStyle;
}

function perSecond(value: number | undefined): string {
  if (value === undefined) return '-';
  if (value >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  return value >= 100 || value === 0 ? value.toFixed(0) : value.toFixed(1);
}

function bytesPerSecond(value: number | undefined): string {
  return value === undefined ? '-' : formatBytes(Math.round(value));
}

function instanceCells(row: InstanceRow): string[] {
  if (!row.up) return [row.address, 'DOWN', row.error];
  const r = row.rates;
  return [
    row.address,
    'up',
    row.version,
    formatDuration(row.uptimeSeconds),
    formatBytes(row.bytes),
    row.limitBytes > 0 ? formatRatio(row.bytes / row.limitBytes) : '-',
    String(row.items),
    formatRatio(r?.hitRatio),
    perSecond(r?.getsPerSec),
    perSecond(r?.setsPerSec),
    perSecond(r?.evictionsPerSec),
    String(row.connections),
    bytesPerSecond(r?.readBytesPerSec),
    bytesPerSecond(r?.writtenBytesPerSec),
    `${row.rttMs.toFixed(1)}ms`,
  ];
}

function poolCells(pool: PoolSummary, first: boolean): string[] {
  const t = pool.totals;
  const polled = pool.instances.some((r) => r.up && r.rates);
  if (first) {
    return [
      `${pool.name} total`,
      `${pool.up}/${pool.instances.length} up`,
      '',
      '',
      formatBytes(t.bytes),
      t.limitBytes > 0 ? formatRatio(t.bytes / t.limitBytes) : '-',
      String(t.items),
      formatRatio(pool.hitRatio),
      polled ? perSecond(t.getsPerSec) : '-',
      polled ? perSecond(t.setsPerSec) : '-',
      polled ? perSecond(t.evictionsPerSec) : '-',
      String(t.connections),
      polled ? bytesPerSecond(t.readBytesPerSec) : '-',
      polled ? bytesPerSecond(t.writtenBytesPerSec) : '-',
      pool.meanRttMs === undefined ? '-' : `${pool.meanRttMs.toFixed(1)}ms`,
    ];
  }
  const n = pool.up;
  const mean = (v: number): number | undefined => (n > 0 ? v / n : undefined);
  return [
    `${pool.name} mean`,
    '',
    '',
    '',
    n > 0 ? formatBytes(Math.round(t.bytes / n)) : '-',
    '',
    pool.meanItems === undefined ? '-' : String(Math.round(pool.meanItems)),
    '',
    polled ? perSecond(mean(t.getsPerSec)) : '-',
    polled ? perSecond(mean(t.setsPerSec)) : '-',
    polled ? perSecond(mean(t.evictionsPerSec)) : '-',
    n > 0 ? String(Math.round(t.connections / n)) : '-',
    polled ? bytesPerSecond(mean(t.readBytesPerSec)) : '-',
    polled ? bytesPerSecond(mean(t.writtenBytesPerSec)) : '-',
    '',
  ];
}

function bar(share: number | undefined, width: number): string {
  if (share === undefined) return `[${' '.repeat(width)}]    -`;
  const filled = Math.max(0, Math.min(width, Math.round(share * width)));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatRatio(share).padStart(6)}`;
}

function compare(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

export function sortRows(rows: readonly InstanceRow[], sort: SortState): InstanceRow[] {
  const column = TOP_COLUMNS[sort.column] ?? TOP_COLUMNS[0]!;
  return [...rows].sort((x, y) => {
    if (x.up !== y.up) return x.up ? -1 : 1;
    const c = compare(column.sortBy(x), column.sortBy(y));
    return sort.descending ? -c : c;
  });
}

/** The table and the fill bars for one snapshot, as plain text lines. */
export function renderTop(snapshot: TopSnapshot, sort: SortState): ViewLine[] {
  const header = TOP_COLUMNS.map((c, i) => (i === sort.column ? `[${c.title}]` : c.title));
  const body: { cells: string[]; style: LineStyle }[] = [];
  for (const pool of snapshot.pools) {
    for (const row of sortRows(pool.instances, sort)) {
      body.push({ cells: instanceCells(row), style: row.up ? 'row' : 'down' });
    }
    body.push({ cells: poolCells(pool, true), style: 'total' });
    if (pool.instances.length > 1) body.push({ cells: poolCells(pool, false), style: 'total' });
  }
  const widths = header.map((h) => h.length);
  for (const { cells } of body) {
    if (cells.length < TOP_COLUMNS.length) {
      widths[0] = Math.max(widths[0]!, cells[0]!.length);
      continue;
    }
    cells.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  }
  const line = (cells: string[]): string => {
    if (cells.length < TOP_COLUMNS.length) {
      // A DOWN row: address, state, then the reason across the rest.
      return `${cells[0]!.padEnd(widths[0]!)}  ${(cells[1] ?? '').padEnd(widths[1]!)}  ${cells.slice(2).join(' ')}`;
    }
    return cells
      .map((cell, i) => (TOP_COLUMNS[i]!.numeric ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  };
  const lines: ViewLine[] = [{ text: line(header), style: 'header' }];
  for (const { cells, style } of body) lines.push({ text: line(cells), style });
  const fill = snapshot.fill;
  if (fill) {
    lines.push({
      text: `fill ${fill.to} vs ${fill.from}: items ${bar(fill.items, 30)}  bytes ${bar(fill.bytes, 30)}`,
      style: 'fill',
    });
  }
  return lines;
}

/** One plain snapshot for a script or a log: a time line, then the table. */
export function renderTopText(snapshot: TopSnapshot, sort: SortState): string {
  const when = new Date(snapshot.time).toISOString();
  return [
    `memshift top  ${when}  poll ${snapshot.poll}`,
    ...renderTop(snapshot, sort).map((l) => l.text),
  ].join('\n');
}

const HELP = [
  'memshift top keys',
  '  < >  or  left right   sort by the previous / next column',
  '  r                     reverse the sort order',
  '  p  or  space          pause / resume the display (polling goes on)',
  '  h  or  ?              show / hide this help',
  '  q  or  Ctrl-C         quit',
];

/** What the full screen shows: the instance table, or the hot keys. */
export interface ScreenTable<S> {
  /** The title's start, e.g. `memshift top`. */
  readonly name: string;
  readonly columns: readonly { readonly title: string; readonly numeric: boolean }[];
  /** Columns the sort keys step through, in order. */
  readonly sortable: readonly number[];
  render(snapshot: S, sort: SortState): ViewLine[];
}

export const INSTANCE_TABLE: ScreenTable<TopSnapshot> = {
  name: 'memshift top',
  columns: TOP_COLUMNS,
  sortable: TOP_COLUMNS.map((_, i) => i),
  render: renderTop,
};

export interface TopScreenOptions<S> {
  readonly table: ScreenTable<S>;
  readonly intervalMs: number;
  readonly sort: SortState;
  /** Shown in the title line, e.g. the dashboard's URL. */
  readonly note?: string;
  /** Called when the user quits. */
  readonly onQuit: () => void;
}

/**
 * The full-screen view. It draws what it is given with `update()`; keys
 * change the sort, pause the display, show help or quit.
 */
export class TopScreen<S> {
  private readonly term: Terminal;
  private readonly options: TopScreenOptions<S>;
  private readonly table: ScreenTable<S>;
  private readonly sort: SortState;
  private latest: S | undefined;
  private shown: S | undefined;
  private paused = false;
  private help = false;
  private started = false;

  constructor(options: TopScreenOptions<S>, term: Terminal = terminalKit.terminal) {
    this.term = term;
    this.options = options;
    this.table = options.table;
    this.sort = { ...options.sort };
  }

  /** The sort the user chose last (the hot keys are fetched in its order). */
  get sortState(): SortState {
    return { ...this.sort };
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.term.fullscreen(true);
    this.term.hideCursor(true);
    this.term.grabInput(true);
    this.term.on('key', this.onKey);
    this.term.on('resize', this.onResize);
    this.draw();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.term.off('key', this.onKey);
    this.term.off('resize', this.onResize);
    this.term.grabInput(false);
    this.term.hideCursor(false);
    this.term.styleReset();
    this.term.fullscreen(false);
  }

  update(snapshot: S): void {
    this.latest = snapshot;
    if (!this.paused) this.shown = snapshot;
    this.draw();
  }

  private readonly onResize = (): void => this.draw();

  private readonly onKey = (name: string): void => {
    const sortable = this.table.sortable;
    const at = Math.max(0, sortable.indexOf(this.sort.column));
    const step = (by: number): void => {
      this.sort.column = sortable[(at + by + sortable.length) % sortable.length] ?? this.sort.column;
      this.sort.descending = this.table.columns[this.sort.column]?.numeric ?? false;
    };
    switch (name) {
      case 'q':
      case 'Q':
      case 'CTRL_C':
      case 'ESCAPE':
        this.options.onQuit();
        return;
      case '<':
      case ',':
      case 'LEFT':
        step(-1);
        break;
      case '>':
      case '.':
      case 'RIGHT':
        step(1);
        break;
      case 'r':
      case 'R':
        this.sort.descending = !this.sort.descending;
        break;
      case 'p':
      case 'P':
      case ' ':
        this.paused = !this.paused;
        if (!this.paused) this.shown = this.latest;
        break;
      case 'h':
      case 'H':
      case '?':
        this.help = !this.help;
        break;
      default:
        return;
    }
    this.draw();
  };

  private draw(): void {
    if (!this.started) return;
    const term = this.term;
    const width = term.width;
    const height = term.height;
    const column = this.table.columns[this.sort.column]?.title ?? '';
    const state = this.paused ? '  PAUSED' : '';
    const note = this.options.note ? `  ${this.options.note}` : '';
    const title =
      `${this.table.name}  every ${(this.options.intervalMs / 1000).toFixed(1)}s  ` +
      `sort ${column} ${this.sort.descending ? 'desc' : 'asc'}${state}  h: help  q: quit${note}`;
    const lines: ViewLine[] = [{ text: title, style: 'title' }];
    if (this.help) for (const text of HELP) lines.push({ text, style: 'help' });
    else if (this.shown) lines.push(...this.table.render(this.shown, this.sort));
    else lines.push({ text: 'polling...', style: 'row' });
    term.moveTo(1, 1);
    for (let y = 0; y < Math.min(lines.length, height); y++) {
      const { text, style } = lines[y]!;
      term.moveTo(1, y + 1).eraseLine();
      const clipped = text.length > width ? text.slice(0, width) : text;
      switch (style) {
        case 'title':
          term.inverse(clipped);
          break;
        case 'header':
          term.bold(clipped);
          break;
        case 'down':
          term.red.bold(clipped);
          break;
        case 'total':
          term.cyan(clipped);
          break;
        case 'fill':
          term.green(clipped);
          break;
        default:
          term(clipped);
      }
    }
    term.moveTo(1, Math.min(lines.length, height) + 1).eraseDisplayBelow();
  }
}

/** Hot-key columns: the figures first, the key last, so a long key never pushes them off screen. */
const KEY_COLUMNS: readonly {
  readonly title: string;
  readonly numeric: boolean;
  readonly sortBy: (row: HotKeyEntry) => number | string;
}[] = [
  { title: 'REQ/s', numeric: true, sortBy: (r) => r.requests },
  { title: 'BYTES/s', numeric: true, sortBy: (r) => r.bytes },
  { title: 'HIT', numeric: true, sortBy: (r) => r.hitRatio ?? -1 },
  { title: 'SHARE', numeric: true, sortBy: (r) => r.share },
  { title: 'REQS', numeric: true, sortBy: (r) => r.requests },
  { title: 'KEY', numeric: false, sortBy: (r) => r.key },
];

/** The sort column of the hot keys by bytes; every other sort fetches them by requests. */
export const KEYS_BY_BYTES_COLUMN = 1;

/** Longest key shown before it is cut (with an ellipsis). */
const KEY_DISPLAY_CHARS = 120;

function keyCells(row: HotKeyEntry): string[] {
  // Counts inherited from displaced keys make this one's an upper bound: say so.
  const requests = row.error > 0 ? `${row.requests}~` : String(row.requests);
  const key = row.key.length > KEY_DISPLAY_CHARS ? `${row.key.slice(0, KEY_DISPLAY_CHARS - 1)}…` : row.key;
  return [
    perSecond(row.requestsPerSec),
    bytesPerSecond(row.bytesPerSec),
    formatRatio(row.hitRatio),
    formatRatio(row.share),
    requests,
    key,
  ];
}

/** The hot-key table for one snapshot: a line of totals, the header, one line per key. */
export function renderKeys(snapshot: HotKeysSnapshot, sort: SortState): ViewLine[] {
  const column = KEY_COLUMNS[sort.column] ?? KEY_COLUMNS[0]!;
  const rows = [...snapshot.keys].sort((x, y) => {
    const c = compare(column.sortBy(x), column.sortBy(y));
    return sort.descending ? -c : c;
  });
  const drops = snapshot.kernel.droppedByKernel;
  const totals =
    `window ${snapshot.windowSeconds}s (${snapshot.spanSeconds.toFixed(1)}s seen)  ` +
    `${perSecond(snapshot.requestsPerSec)} req/s  ${bytesPerSecond(snapshot.bytesPerSec)}/s  ` +
    `keys held ${snapshot.tracked}/${snapshot.capacity}  evicted ${snapshot.counters.evicted}` +
    (drops ? `  kernel drops ${drops}` : '') +
    (snapshot.operations.gaps ? `  capture gaps ${snapshot.operations.gaps}` : '');
  const header = KEY_COLUMNS.map((c, i) => (i === sort.column ? `[${c.title}]` : c.title));
  const body = rows.map(keyCells);
  const widths = header.map((h) => h.length);
  for (const cells of body) cells.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (KEY_COLUMNS[i]!.numeric ? cell.padStart(widths[i]!) : cell))
      .join('  ')
      .trimEnd();
  const lines: ViewLine[] = [
    { text: totals, style: 'total' },
    { text: line(header), style: 'header' },
  ];
  for (const cells of body) lines.push({ text: line(cells), style: 'row' });
  if (body.length === 0) lines.push({ text: 'no keys seen in the window yet', style: 'row' });
  return lines;
}

/** One plain hot-key snapshot for a script or a log: a time line, then the table. */
export function renderKeysText(snapshot: HotKeysSnapshot, sort: SortState): string {
  const when = new Date(snapshot.time).toISOString();
  return [`memshift top --keys  ${when}`, ...renderKeys(snapshot, sort).map((l) => l.text)].join('\n');
}

export const KEYS_TABLE: ScreenTable<HotKeysSnapshot> = {
  name: 'memshift top --keys',
  columns: KEY_COLUMNS,
  // The tracker ranks keys by requests or by bytes; the other columns only reorder what it ranked.
  sortable: [0, KEYS_BY_BYTES_COLUMN],
  render: renderKeys,
};
