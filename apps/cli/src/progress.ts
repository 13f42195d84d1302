import type { CellResult } from '@daxlab/core';
import type { CliIo } from './io.js';

/**
 * Progress on stderr (stdout may carry a JSON report): a redrawn counter line on a terminal
 * outside CI, plain lines otherwise (one per finished scenario), nothing with --quiet.
 */
/** The scenario a cell belongs to (its file and name). */
export function cellGroup(c: { readonly scenario: string; readonly file?: string }): string {
  return `${c.file ?? ''}#${c.scenario}`;
}

export class Progress {
  private done = 0;
  private failed = 0;
  private lastDraw = -Infinity;
  private readonly mode: 'tty' | 'lines' | 'off';
  private current: { scenario: string; left: number; pass: number; notPass: Map<string, number> } | null = null;
  private scenariosDone = 0;

  constructor(
    private readonly io: CliIo,
    private readonly total: number,
    /** cells per scenario (by cellGroup()), in plan order */
    private readonly perScenario: ReadonlyMap<string, number>,
    quiet: boolean,
    /** print plain lines when not on a terminal (matrix); `run` shows its cells in the table anyway */
    plainLines: boolean,
  ) {
    this.mode = quiet ? 'off' : io.stderrIsTTY && !io.env.CI ? 'tty' : plainLines ? 'lines' : 'off';
  }

  cell(c: CellResult): void {
    this.done++;
    if (c.status === 'fail' || c.status === 'error') this.failed++;
    if (this.mode === 'tty') {
      const now = this.io.now();
      if (now - this.lastDraw >= 50 || this.done === this.total) {
        this.lastDraw = now;
        const width = String(this.total).length;
        this.io.stderr(`\r\x1b[2K[${String(this.done).padStart(width)}/${this.total}] ${this.failed ? `${this.failed} failing · ` : ''}${c.scenario}`);
      }
    } else if (this.mode === 'lines') {
      const group = cellGroup(c);
      if (!this.current || this.current.scenario !== group) {
        this.current = { scenario: group, left: this.perScenario.get(group) ?? 1, pass: 0, notPass: new Map() };
      }
      const cur = this.current;
      if (c.status === 'pass') cur.pass++;
      else cur.notPass.set(c.status, (cur.notPass.get(c.status) ?? 0) + 1);
      if (--cur.left === 0) {
        this.scenariosDone++;
        const rest = [...cur.notPass].map(([s, n]) => `, ${n} ${s}`).join('');
        const n = this.perScenario.get(group) ?? 1;
        this.io.stderr(`daxlab: [${this.scenariosDone}/${this.perScenario.size}] ${c.scenario}: ${n} cell${n === 1 ? '' : 's'}, ${cur.pass} pass${rest}\n`);
        this.current = null;
      }
    }
  }

  /** Clear the counter line before the report. */
  finish(): void {
    if (this.mode === 'tty' && this.done > 0) this.io.stderr('\r\x1b[2K');
  }
}
