import type { CellResult, CellStatus } from '@daxlab/core';
import type { CliIo } from './io.js';
import { kernelLabel } from './report/index.js';

/** The scenario a cell belongs to (its file and name). */
export function cellGroup(c: { readonly scenario: string; readonly file?: string }): string {
  return `${c.file ?? ''}#${c.scenario}`;
}

/** How long the rest will take at the pace so far: `ETA 1m05s`. */
export function formatEta(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

const BAR = 20;
/** Without a known width the bar line stays within a classic 80-column terminal, so `\r` redraws one line. */
const WIDTH = 80;
const WORD: Record<CellStatus, string> = { pass: 'PASS', fail: 'FAIL', unsupported: 'UNSUP', error: 'ERROR' };

export type ProgressMode = 'bar' | 'lines' | 'problems' | 'off';

/**
 * The progress mode: a redrawn bar on a terminal outside CI; plain lines otherwise (one per
 * finished scenario, for matrix; `run` shows its cells in the table anyway); with --quiet only
 * a line per cell that did not pass (matrix), as it finishes.
 */
export function progressMode(io: CliIo, quiet: boolean, matrix: boolean): ProgressMode {
  if (quiet) return matrix ? 'problems' : 'off';
  if (io.stderrIsTTY && !io.env.CI) return 'bar';
  return matrix ? 'lines' : 'off';
}

/**
 * Progress on stderr (stdout may carry a JSON report). Cells may finish in any order (--jobs):
 * counts are per status and per scenario, whatever the order.
 */
export class Progress {
  private done = 0;
  private ran = 0;
  private readonly counts: Record<CellStatus, number> = { pass: 0, fail: 0, unsupported: 0, error: 0 };
  private readonly groups = new Map<string, { left: number; counts: Map<CellStatus, number> }>();
  private scenariosDone = 0;
  private lastDraw = -Infinity;
  /** when the first cell of this invocation finished: the pace is measured from there (start-up aside) */
  private firstAt = 0;

  constructor(
    private readonly io: CliIo,
    /** cells in this run, including those restored from a cell log */
    private readonly total: number,
    /** cells per scenario (by cellGroup()) */
    private readonly perScenario: ReadonlyMap<string, number>,
    private readonly mode: ProgressMode,
  ) {}

  /** A cell finished in an earlier, interrupted run (--resume): counted, not shown, not timed. */
  restore(c: CellResult): void {
    this.count(c);
  }

  /** A cell finished now. */
  cell(c: CellResult): void {
    if (this.ran++ === 0) this.firstAt = this.io.now();
    const groupDone = this.count(c);
    if (this.mode === 'bar') {
      if (c.status === 'fail' || c.status === 'error') this.io.stderr(`\r\x1b[2K${this.problemLine(c)}\n`);
      const now = this.io.now();
      if (now - this.lastDraw >= 50 || this.done === this.total) {
        this.lastDraw = now;
        this.io.stderr(`\r\x1b[2K${this.bar(c.scenario, now)}`);
      }
    } else if (this.mode === 'problems') {
      if (c.status !== 'pass') this.io.stderr(`daxlab: ${this.problemLine(c)}\n`);
    } else if (this.mode === 'lines' && groupDone) {
      const g = this.groups.get(cellGroup(c))!;
      const n = this.perScenario.get(cellGroup(c)) ?? 1;
      const rest = (['fail', 'unsupported', 'error'] as const).filter((s) => g.counts.get(s)).map((s) => `, ${g.counts.get(s)} ${s}`).join('');
      this.io.stderr(`daxlab: [${this.scenariosDone}/${this.perScenario.size}] ${c.scenario}: ${n} cell${n === 1 ? '' : 's'}, ${g.counts.get('pass') ?? 0} pass${rest}\n`);
    }
  }

  /** Clear the bar before the report. */
  finish(): void {
    if (this.mode === 'bar' && this.ran > 0) this.io.stderr('\r\x1b[2K');
  }

  /** Count a cell; true when it was its scenario's last. */
  private count(c: CellResult): boolean {
    this.done++;
    this.counts[c.status]++;
    const key = cellGroup(c);
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { left: this.perScenario.get(key) ?? 1, counts: new Map() }));
    g.counts.set(c.status, (g.counts.get(c.status) ?? 0) + 1);
    if (--g.left !== 0) return false;
    this.scenariosDone++;
    return true;
  }

  private problemLine(c: CellResult): string {
    return `${WORD[c.status]} ${c.scenario} ${kernelLabel(c.kernel)}`;
  }

  /**
   * `[#####---------------]  12/280 10 pass 1 fail 1 unsup 0 error ETA 3s scenario`. The ETA is
   * the pace between the first cell and this one times the cells left ('ETA …' until two ran).
   */
  private bar(scenario: string, now: number): string {
    const filled = this.total > 0 ? Math.round((BAR * this.done) / this.total) : BAR;
    const width = String(this.total).length;
    const c = this.counts;
    const eta = this.done >= this.total ? 'done' : this.ran < 2 ? 'ETA …' : `ETA ${formatEta(((now - this.firstAt) / (this.ran - 1)) * (this.total - this.done))}`;
    const line = `[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${String(this.done).padStart(width)}/${this.total} ${c.pass} pass ${c.fail} fail ${c.unsupported} unsup ${c.error} error ${eta} ${scenario}`;
    // one column short of the width: a line that fills it wraps on some terminals
    const max = (this.io.stderrColumns ?? WIDTH) - 1;
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
  }
}
