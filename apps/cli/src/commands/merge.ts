import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CellResult } from '@daxlab/core';
import { parseReporters, REPORT_FILES, writeReports } from '../execute.js';
import type { CliIo } from '../io.js';
import { shardCellIndex, shardSize } from '../matrix/plan.js';
import { failed, type Report } from '../report/index.js';
import { parseJsonReport, ReportReadError } from '../report/read.js';
import { UsageError } from '../usage.js';

export interface MergeCommandOptions {
  readonly reporter?: string;
  readonly out?: string;
  readonly quiet?: boolean;
}

/** A report to merge and how to name it in messages. */
export interface NamedReport {
  readonly file: string;
  readonly report: Report;
}

const shardName = (r: Report) => (r.plan?.shard ? `shard ${r.plan.shard.index}/${r.plan.shard.count}` : 'the whole run');

/**
 * Join shard reports of one run into the report the unsharded run writes: the same cells in
 * the same order (shard i/n holds the cells at i-1, i-1+n, … of the whole list), no shard in
 * the plan; the summary is recomputed when rendered. Throws a UsageError naming the files for
 * reports of different runs, shards of different splits, overlapping or missing shards.
 */
export function mergeReports(inputs: readonly NamedReport[]): Report {
  if (inputs.length === 0) throw new UsageError('merge needs at least one report', 'daxlab merge shard-1/daxlab-report.json shard-2/daxlab-report.json …');
  for (const { file, report } of inputs) {
    if (!report.plan) throw new UsageError(`${file}: the report has no plan (it was written by an older daxlab), so it cannot be matched with other shards`, 'rerun the shards with this daxlab');
  }
  const [first, ...rest] = inputs as [NamedReport, ...NamedReport[]];
  const plan = first.report.plan!;
  for (const other of rest) {
    const p = other.report.plan!;
    if (p.id !== plan.id || p.cells !== plan.cells) {
      throw new UsageError(
        `${first.file} and ${other.file} are reports of different runs (plan ${plan.id.slice(0, 12)}, ${plan.cells} cells vs plan ${p.id.slice(0, 12)}, ${p.cells} cells)`,
        'merge the shards of one command line: the same scenarios, flags, plugins and daxlab version, only --shard differing',
      );
    }
  }
  const whole = inputs.find((x) => !x.report.plan!.shard);
  if (whole) {
    const other = inputs.find((x) => x !== whole);
    if (other) throw new UsageError(`${whole.file} holds the whole run; it overlaps ${other.file} (${shardName(other.report)})`, 'merge only shard reports, each once');
  }
  const count = plan.shard?.count ?? 1;
  const byIndex = new Map<number, NamedReport>();
  for (const x of inputs) {
    const s = x.report.plan!.shard ?? { index: 1, count: 1 };
    if (s.count !== count) throw new UsageError(`${first.file} is ${shardName(first.report)} but ${x.file} is ${shardName(x.report)}: shards of different splits`, 'merge shards of one --shard i/n split');
    const seen = byIndex.get(s.index);
    if (seen) throw new UsageError(`${seen.file} and ${x.file} are both ${shardName(x.report)}: shards overlap`, 'give each shard once');
    byIndex.set(s.index, x);
  }
  const missing = [...Array(count).keys()].map((i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new UsageError(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')} missing: a merge needs every shard of the run`, `give all ${count} shard reports`);
  const cells: CellResult[] = new Array<CellResult>(plan.cells);
  for (const [index, x] of byIndex) {
    const shard = { index, count };
    const want = shardSize(plan.cells, shard);
    if (x.report.cells.length !== want) throw new UsageError(`${x.file}: ${shardName(x.report)} of a ${plan.cells}-cell run holds ${want} cells, the report has ${x.report.cells.length} (an unfinished or edited report?)`);
    x.report.cells.forEach((c, j) => (cells[shardCellIndex(j, shard)] = c));
  }
  return { kind: first.report.kind, version: first.report.version, cells, plugins: first.report.plugins ?? [], plan: { id: plan.id, cells: plan.cells } };
}

/** A results argument: a JSON report file, or a directory holding daxlab-report.json (an --out DIR). */
function readResults(arg: string, cwd: string): NamedReport {
  const abs = resolve(cwd, arg);
  if (!existsSync(abs)) throw new UsageError(`${arg}: no such file or directory`, `give JSON reports (--reporter json) or --out directories holding ${REPORT_FILES.json}`);
  const isDir = statSync(abs).isDirectory();
  const file = isDir ? join(arg, REPORT_FILES.json) : arg;
  if (isDir && !existsSync(join(abs, REPORT_FILES.json))) throw new UsageError(`${arg}: no ${REPORT_FILES.json} in this directory (did that shard finish?)`, "a killed shard finishes with 'daxlab matrix … --out DIR --resume'");
  try {
    return { file, report: parseJsonReport(readFileSync(resolve(cwd, file), 'utf8'), file) };
  } catch (e) {
    if (e instanceof ReportReadError) throw new UsageError(e.message);
    throw e;
  }
}

/** `daxlab merge <results…>`: the whole run's report from its shards. Exit code as the run's. */
export function mergeCommand(args: readonly string[], o: MergeCommandOptions, io: CliIo): number {
  const reporters = parseReporters(o.reporter ?? 'table', o.out);
  const report = mergeReports(args.map((a) => readResults(a, io.cwd)));
  writeReports(report, reporters, o, io);
  return failed(report.cells) ? 1 : 0;
}
