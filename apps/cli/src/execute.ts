import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { CellKernel, CellResult, PluginCatalog, RunOptions, ScheduleStep } from '@daxlab/core';
import { colorOnStdout, type CliIo } from './io.js';
import { DEFAULT_KERNEL, kernelsFor, parseKernelFlags, parseShard, takeShard, type KernelAxes, type KernelOptions } from './kernel.js';
import type { Runner } from './matrix/cell.js';
import { CELL_LOG, CellLog } from './matrix/log.js';
import { errorCell, nominalKernel, planInfo, type PlannedCell } from './matrix/plan.js';
import { inProcessExecutor, type CellExecutor, type CellTask, type WorkerSetup } from './matrix/pool.js';
import { catalogWithPlugins, type Importer } from './plugins.js';
import { cellGroup, Progress, progressMode } from './progress.js';
import { failed, renderHtml, renderJson, renderJunit, renderTable, type Report, type ReportKind } from './report/index.js';
import { ReportReadError } from './report/read.js';
import { collectScenarioFiles, loadScenarios } from './scenarios.js';
import { parseWhole, splitList, UsageError } from './usage.js';

export type { Runner } from './matrix/cell.js';

/** What the commands need from outside: the simulator, the built-in plugins, where the library is. */
export interface Deps {
  readonly runScenario: Runner;
  readonly catalog: PluginCatalog;
  readonly version: string;
  readonly libraryDir?: string;
  readonly importer?: Importer;
  /**
   * Runs cells on `jobs` threads (--jobs N > 1). Absent, every cell runs in the main thread:
   * a worker rebuilds the catalog from plugin names, so an injected runner or catalog stays here.
   */
  readonly parallel?: (jobs: number, setup: WorkerSetup) => CellExecutor;
}

export interface RunCommandOptions extends KernelOptions {
  readonly seed?: string;
  readonly trace?: boolean;
  readonly schedule?: string;
  readonly reporter?: string;
  readonly out?: string;
  readonly quiet?: boolean;
  readonly plugin?: readonly string[];
  readonly jobs?: string;
  readonly shard?: string;
  readonly resume?: boolean;
}

export const REPORTERS = ['table', 'json', 'junit', 'html'] as const;
export type ReporterName = (typeof REPORTERS)[number];
/** Files the machine reporters write under --out. */
export const REPORT_FILES: Record<Exclude<ReporterName, 'table'>, string> = { json: 'daxlab-report.json', junit: 'junit.xml', html: 'daxlab-report.html' };

/** `--reporter a,b`: known names; machine reports need --out unless one alone goes to stdout. */
export function parseReporters(value: string, out: string | undefined): ReporterName[] {
  const names = splitList(value);
  if (names.length === 0) throw new UsageError('--reporter needs a value', `reporters: ${REPORTERS.join(', ')}`);
  for (const n of names) {
    if (!(REPORTERS as readonly string[]).includes(n)) throw new UsageError(`--reporter: unknown reporter '${n}'`, `reporters: ${REPORTERS.join(', ')}`);
  }
  const machine = names.filter((n) => n !== 'table');
  if (out === undefined && names.length > 1 && machine.length > 0) {
    throw new UsageError(`--reporter ${names.join(',')}: ${machine.join(' and ')} ${machine.length > 1 ? 'go' : 'goes'} to files when combined with other reporters; add --out DIR`, 'or use a single machine reporter to print it on stdout');
  }
  return names as ReporterName[];
}

/** `--schedule`: JSON text or a file holding `[{thread, step}, …]` (or a report cell/violation with a `schedule`). */
export function parseSchedule(value: string, cwd: string): ScheduleStep[] {
  let text = value;
  if (!/^\s*[[{]/.test(value)) {
    const file = resolve(cwd, value);
    if (!existsSync(file)) throw new UsageError(`--schedule ${value}: no such file, and not JSON`, `give '[{"thread":"app","step":0}, …]' or a file holding it`);
    text = readFileSync(file, 'utf8');
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--schedule: not valid JSON: ${(e as Error).message}`);
  }
  const list = Array.isArray(data) ? data : (data as { schedule?: unknown } | null)?.schedule;
  const ok = Array.isArray(list) && list.every((x) => typeof x === 'object' && x !== null && typeof (x as ScheduleStep).thread === 'string' && Number.isInteger((x as ScheduleStep).step) && (x as ScheduleStep).step >= 0);
  if (!ok) throw new UsageError('--schedule: expected a list of { "thread": name, "step": index } (as in the JSON report)');
  return (list as ScheduleStep[]).map((x) => ({ thread: x.thread, step: x.step }));
}

/**
 * Without --jobs, runs smaller than this stay in the main thread: a worker first loads core and
 * every plugin (about as long as 100 cells of the default matrix take, ~3 ms each), so two
 * workers only pay off from about 200 cells. The report is the same either way; an explicit
 * --jobs is always honoured.
 */
export const DEFAULT_WORKERS_MIN_CELLS = 200;

/**
 * Worker threads when --jobs is not given: one less than the cores, since the main thread plans,
 * logs and reports alongside them. On two vCPUs that means none: there two workers ran the
 * default matrix 1–15 % slower than the main thread alone (BENCHMARKS.md, default matrix).
 */
export function defaultJobs(cores = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

/**
 * The test hook for "a run killed mid-way": DAXLAB_ABORT_AFTER_CELLS=K makes the process
 * SIGKILL itself right after the K-th cell of this invocation is on disk (tests of --resume
 * kill at a known point instead of racing a timer).
 */
function abortAfterCells(io: CliIo): number | null {
  const v = io.env.DAXLAB_ABORT_AFTER_CELLS;
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : null;
}

/** `daxlab run` and `daxlab matrix`: plan the cells, run them, report. Returns the exit code. */
export async function runCommand(kind: ReportKind, args: readonly string[], o: RunCommandOptions, io: CliIo, deps: Deps): Promise<number> {
  const started = io.now();
  const reporters = parseReporters(o.reporter ?? 'table', o.out);
  const seed = o.seed !== undefined ? parseWhole('--seed', o.seed, 0) : undefined;
  const schedule = o.schedule !== undefined ? parseSchedule(o.schedule, io.cwd) : undefined;
  const jobs = o.jobs !== undefined ? parseWhole('--jobs', o.jobs, 1) : defaultJobs();
  const shard = o.shard !== undefined ? parseShard(o.shard) : undefined;
  if (o.resume && o.out === undefined) throw new UsageError('--resume needs --out DIR: the directory of the run to finish', 'daxlab matrix … --out DIR --resume');
  const catalog = await catalogWithPlugins(deps.catalog, o.plugin ?? [], io.cwd, deps.importer);
  const axes = parseKernelFlags(o, catalog, kind === 'matrix');
  // the reports under --out are not scenarios, even when DIR is inside a scanned directory
  const outDir = o.out !== undefined ? resolve(io.cwd, o.out) + sep : null;
  const files = collectScenarioFiles(args, io.cwd, deps.libraryDir).filter((f) => outDir === null || !f.startsWith(outDir));
  const all = loadScenarios(files, io.cwd);
  // The built-in library's `mode: explore` scenarios are judged over every interleaving by
  // `daxlab explore`; run/matrix over the library leave them to it (named files still run, explored).
  const loaded = args.length === 0 ? all.filter((l) => !(l.ok && l.scenario.mode === 'explore')) : all;
  const skipped = all.length - loaded.length;
  if (skipped > 0 && !o.quiet) io.stderr(`daxlab: ${skipped} explore-mode scenarios left to 'daxlab explore' (apps/cli/scenarios/explore, …)\n`);

  let index = 0;
  const plan: PlannedCell[] = loaded.flatMap((l): PlannedCell[] =>
    l.ok
      ? kernelsFor(l.scenario, axes, catalog, kind === 'matrix').map((kernel) => ({ kind: 'cell', index: index++, scenario: l.scenario, kernel }))
      : [{ kind: 'problem', index: index++, cell: errorCell(l.name, l.file, nominalKernel(axes), l.reason) }],
  );
  // the html report draws each cell's timeline from its whole trace
  const options: RunOptions = { ...(seed !== undefined ? { seed } : {}), ...(o.trace || reporters.includes('html') ? { trace: true } : {}), ...(schedule ? { schedule } : {}) };
  const pluginSpecs = o.plugin ?? [];
  const info = planInfo(plan, { kind, version: deps.version, options, plugins: pluginSpecs }, shard);
  const mine = takeShard(plan, shard);

  let log: CellLog | null = null;
  if (o.out !== undefined) {
    const dir = resolve(io.cwd, o.out);
    try {
      mkdirSync(dir, { recursive: true });
      log = CellLog.open(dir, o.out, info, o.resume === true);
    } catch (e) {
      if (e instanceof ReportReadError) throw new UsageError(e.message);
      if ((e as NodeJS.ErrnoException).code) throw new UsageError(`--out ${o.out}: cannot write the cell log there: ${(e as Error).message}`, 'give a directory you can create and write to');
      throw e;
    }
  }
  const results = new Map<number, CellResult>(log?.done ?? []);
  const groups = new Map<string, number>();
  for (const p of mine) {
    const g = cellGroup(p.kind === 'cell' ? { scenario: p.scenario.name, ...(p.scenario.file !== undefined ? { file: p.scenario.file } : {}) } : p.cell);
    groups.set(g, (groups.get(g) ?? 0) + 1);
  }
  const progress = new Progress(io, mine.length, groups, progressMode(io, o.quiet === true, kind === 'matrix'));
  for (const c of results.values()) progress.restore(c);
  if (o.resume && !o.quiet) io.stderr(`daxlab: --resume: ${results.size} of ${mine.length} cells already in ${join(o.out!, CELL_LOG)}; running the other ${mine.length - results.size}\n`);

  const abortAfter = abortAfterCells(io);
  let finishedNow = 0;
  const finish = (i: number, cell: CellResult) => {
    results.set(i, cell);
    log?.append(i, cell);
    progress.cell(cell);
    if (abortAfter !== null && ++finishedNow >= abortAfter) process.kill(process.pid, 'SIGKILL');
  };
  const todo = mine.filter((p) => !results.has(p.index));
  const tasks: CellTask[] = [];
  for (const p of todo) {
    if (p.kind === 'problem') finish(p.index, p.cell);
    else tasks.push({ index: p.index, scenario: p.scenario, kernel: p.kernel });
  }
  const debug = Boolean(io.env.DAXLAB_DEBUG);
  const parallel = o.jobs !== undefined ? tasks.length > 1 : tasks.length >= DEFAULT_WORKERS_MIN_CELLS;
  const execute =
    jobs > 1 && parallel && deps.parallel
      ? deps.parallel(jobs, { plugins: pluginSpecs, cwd: io.cwd, options, debug })
      : inProcessExecutor(catalog, options, deps.runScenario, debug);
  try {
    await execute(tasks, finish);
  } finally {
    log?.close();
  }
  progress.finish();

  const report: Report = { kind, version: deps.version, cells: mine.map((p) => results.get(p.index)!), plugins: pluginSpecs, plan: info };
  writeReports(report, reporters, o, io, io.now() - started);
  return failed(report.cells) ? 1 : 0;
}

/**
 * Print or write the reports: the table to stdout; machine reports to stdout (one alone) or
 * under --out. With --out the JSON report is always written: it is what `daxlab merge` reads.
 */
export function writeReports(report: Report, reporters: readonly ReporterName[], o: { readonly out?: string; readonly quiet?: boolean; readonly trace?: boolean }, io: CliIo, elapsedMs?: number): void {
  if (o.out !== undefined) mkdirSync(resolve(io.cwd, o.out), { recursive: true });
  const machine = reporters.filter((r): r is Exclude<ReporterName, 'table'> => r !== 'table');
  if (o.out !== undefined && !machine.includes('json')) machine.unshift('json');
  if (reporters.includes('table')) io.stdout(renderTable(report, { color: colorOnStdout(io), quiet: o.quiet === true, trace: o.trace === true, ...(elapsedMs !== undefined ? { elapsedMs } : {}) }));
  for (const r of machine) {
    const text = r === 'json' ? renderJson(report) : r === 'junit' ? renderJunit(report) : renderHtml(report);
    if (o.out === undefined) {
      io.stdout(text);
    } else {
      const file = join(o.out, REPORT_FILES[r]);
      writeFileSync(resolve(io.cwd, file), text);
      if (!o.quiet) io.stderr(`daxlab: wrote ${file}\n`);
    }
  }
}
