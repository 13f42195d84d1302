import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { CellResult } from '@daxlab/core';
import { cellJson, planJson, type PlanInfo } from '../report/index.js';
import { parseCell, parsePlan, ReportReadError } from '../report/read.js';
import { UsageError } from '../usage.js';

/** The cell log under --out: a header line, then one line per finished cell, in finishing order. */
export const CELL_LOG = 'cells.ndjson';
const FORMAT = 'daxlab-cells/1';

/** At most this long between fsyncs of the cell log. */
export const SYNC_INTERVAL_MS = 1000;

/**
 * `--out DIR` keeps every finished cell on disk at once: each is appended to DIR/cells.ndjson
 * with a write(2) before the run goes on, so a process killed at any point (SIGKILL, OOM, ^C)
 * keeps all cells it finished: the data is in the kernel's page cache. fsync(2) guards against
 * the machine going down too; it costs milliseconds per call on a busy disk (several times the
 * cost of a cell), so it runs at most once per SYNC_INTERVAL_MS and at the end: a power cut
 * loses at most the last second of cells. A line cut short is dropped on --resume.
 */
export class CellLog {
  private lastSync = performance.now();

  private constructor(
    private fd: number | null,
    /** the cells already in the log (on --resume), by plan index */
    readonly done: ReadonlyMap<number, CellResult>,
    /** how messages name the log */
    private readonly file: string,
  ) {}

  /**
   * Start a log for `plan` in `dir` (which exists), or with `resume` take over the one there:
   * its cells count as done, provided it belongs to the same plan. `shown` is how DIR is named
   * in messages.
   */
  static open(dir: string, shown: string, plan: PlanInfo, resume: boolean): CellLog {
    const path = join(dir, CELL_LOG);
    const file = join(shown, CELL_LOG);
    if (resume && existsSync(path)) {
      const { done, validBytes } = readLog(readFileSync(path, 'utf8'), file, plan);
      const fd = openSync(path, 'r+');
      ftruncateSync(fd, validBytes);
      closeSync(fd);
      return new CellLog(openSync(path, 'a'), done, file);
    }
    const fd = openSync(path, 'w');
    writeSync(fd, `${JSON.stringify({ format: FORMAT, plan: planJson(plan) })}\n`);
    fsyncSync(fd);
    return new CellLog(fd, new Map(), file);
  }

  append(index: number, cell: CellResult): void {
    if (this.fd === null) throw new Error('cell log is closed');
    try {
      writeSync(this.fd, `${JSON.stringify({ index, cell: cellJson(cell) })}\n`);
      const now = performance.now();
      if (now - this.lastSync >= SYNC_INTERVAL_MS) {
        fsyncSync(this.fd);
        this.lastSync = now;
      }
    } catch (e) {
      // a full disk or a vanished directory: stop, keeping what is on disk for --resume
      throw new UsageError(`cannot append to ${this.file}: ${(e as Error).message}`, 'the cells written so far are kept: free space, then rerun the same command with --resume');
    }
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}

function describePlan(p: PlanInfo): string {
  return `${p.cells} cells${p.shard ? `, shard ${p.shard.index}/${p.shard.count}` : ''}, plan ${p.id.slice(0, 12)}`;
}

/** Parse a log; refuse one of another plan. Returns the cells and how many bytes hold whole lines. */
export function readLog(text: string, file: string, plan: PlanInfo): { done: Map<number, CellResult>; validBytes: number } {
  const done = new Map<number, CellResult>();
  // only newline-terminated lines were completely written; the rest is a write cut short
  const whole = text.slice(0, text.lastIndexOf('\n') + 1);
  const lines = whole.split('\n').slice(0, -1);
  const fresh = `remove it or use another --out DIR to start over`;
  if (lines.length === 0) return { done, validBytes: 0 };
  let header: { format?: unknown; plan?: unknown };
  try {
    header = JSON.parse(lines[0]!) as typeof header;
  } catch {
    throw new ReportReadError(`${file}:1: not a daxlab cell log (its first line is not JSON); ${fresh}`);
  }
  if (header.format !== FORMAT) throw new ReportReadError(`${file}:1: not a daxlab cell log (format ${JSON.stringify(header.format)}, expected "${FORMAT}"); ${fresh}`);
  const theirs = parsePlan(header.plan, `${file}:1`);
  if (!theirs) throw new ReportReadError(`${file}:1: the cell log names no plan; ${fresh}`);
  const sameShard = theirs.shard?.index === plan.shard?.index && theirs.shard?.count === plan.shard?.count;
  if (theirs.id !== plan.id || theirs.cells !== plan.cells || !sameShard) {
    throw new ReportReadError(
      `--resume: ${file} belongs to a different matrix (${describePlan(theirs)}); this command plans ${describePlan(plan)}. ` +
        `Resume with the same scenarios, flags, plugins and daxlab version, or drop --resume to start over (or use another --out DIR)`,
    );
  }
  for (let i = 1; i < lines.length; i++) {
    const where = `${file}:${i + 1}`;
    let rec: { index?: unknown; cell?: unknown };
    try {
      rec = JSON.parse(lines[i]!) as typeof rec;
    } catch {
      throw new ReportReadError(`${where}: not JSON; ${fresh}`);
    }
    const index = rec.index;
    if (!Number.isSafeInteger(index) || (index as number) < 0 || (index as number) >= plan.cells) throw new ReportReadError(`${where}: index ${JSON.stringify(index)} is not a cell of this plan (0…${plan.cells - 1}); ${fresh}`);
    if (plan.shard && (index as number) % plan.shard.count !== plan.shard.index - 1) throw new ReportReadError(`${where}: cell ${String(index)} is not in shard ${plan.shard.index}/${plan.shard.count}; ${fresh}`);
    if (done.has(index as number)) throw new ReportReadError(`${where}: cell ${String(index)} is in the log twice; ${fresh}`);
    done.set(index as number, parseCell(rec.cell, where));
  }
  return { done, validBytes: Buffer.byteLength(whole) };
}
