import pc from 'picocolors';
import type { CellResult, CellStatus } from '@daxlab/core';
import { kernelLabel, replayCommand, summarize, type Report } from './common.js';

export interface TableOptions {
  /** colour the status words (stdout is a TTY and NO_COLOR is unset) */
  readonly color: boolean;
  /** print only cells that did not pass, then the summary */
  readonly quiet?: boolean;
  /** print each cell's event trace */
  readonly trace?: boolean;
  /** wall-clock time of the whole run, for the summary line */
  readonly elapsedMs?: number;
}

/** How many trace lines a failing cell shows (the tail, where the violation happened). */
export const TRACE_TAIL = 12;

const WORD: Record<CellStatus, string> = { pass: 'PASS', fail: 'FAIL', unsupported: 'UNSUP', error: 'ERROR' };

/** The terminal report: one line per cell, details under cells that did not pass, a summary. */
export function renderTable(report: Report, o: TableOptions): string {
  const c = pc.createColors(o.color);
  const paint: Record<CellStatus, (s: string) => string> = { pass: c.green, fail: (s) => c.bold(c.red(s)), unsupported: c.yellow, error: (s) => c.bold(c.magenta(s)) };
  const shown = o.quiet ? report.cells.filter((x) => x.status !== 'pass') : report.cells;
  const nameWidth = Math.max(0, ...shown.map((x) => x.scenario.length));
  const lines: string[] = [];
  for (const cell of shown) {
    const word = WORD[cell.status].padEnd(5);
    lines.push(`${paint[cell.status](word)}  ${cell.scenario.padEnd(nameWidth)}  ${kernelLabel(cell.kernel)}`.trimEnd());
    lines.push(...details(cell, c.dim, report.plugins).map((l) => `       ${l}`));
    if (o.trace && cell.trace?.length) lines.push(`       trace (${cell.trace.length} events):`, ...cell.trace.map((t) => `         ${t}`));
  }
  const s = summarize(report.cells);
  const n = report.cells.length;
  const parts = [`${s.pass} pass`, `${s.fail} fail`, `${s.unsupported} unsupported`, `${s.error} error`].map((p, i) => {
    const count = [s.pass, s.fail, s.unsupported, s.error][i]!;
    const status = (['pass', 'fail', 'unsupported', 'error'] as const)[i]!;
    return count > 0 && status !== 'pass' ? paint[status](p) : p;
  });
  const time = o.elapsedMs !== undefined ? ` in ${formatMs(o.elapsedMs)}` : '';
  if (shown.length > 0) lines.push('');
  lines.push(`${n} cell${n === 1 ? '' : 's'}: ${parts.join(', ')}${time}`);
  return `${lines.join('\n')}\n`;
}

/** Why a cell did not pass: the unmet expectations, the first violation and its trace tail, how to replay. */
function details(cell: CellResult, dim: (s: string) => string, plugins: readonly string[] = []): string[] {
  if (cell.status === 'pass') return [];
  if (cell.status === 'error' || cell.status === 'unsupported') return cell.reason ? cell.reason.split('\n') : [];
  const out = [...cell.failures];
  const v = cell.violations[0];
  if (v) {
    out.push(`${v.invariant}: ${v.message}${cell.violations.length > 1 ? ` (+${cell.violations.length - 1} more violation${cell.violations.length > 2 ? 's' : ''})` : ''}`);
    const tail = v.trace.slice(-TRACE_TAIL);
    if (v.trace.length > tail.length) out.push(dim(`  … ${v.trace.length - tail.length} earlier events`));
    out.push(...tail.map((t) => dim(`  ${t}`)));
  }
  if (cell.reason) out.push(cell.reason);
  const replay = replayCommand(cell, plugins);
  if (replay) out.push(dim(`replay: ${replay}`));
  return out;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`;
}
