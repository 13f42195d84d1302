import { exploreScenario } from '@daxlab/core';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CellKernel, CellKernelRequest, CellResult, PluginCatalog, RunOptions, Scenario, ScheduleStep } from '@daxlab/core';
import { colorOnStdout, type CliIo } from './io.js';
import { DEFAULT_KERNEL, kernelsFor, parseKernelFlags, parseShard, takeShard, type KernelAxes, type KernelOptions } from './kernel.js';
import { loadPlugin, withPlugins, type Importer } from './plugins.js';
import { cellGroup, Progress } from './progress.js';
import { failed, renderHtml, renderJson, renderJunit, renderTable, type Report, type ReportKind } from './report/index.js';
import { collectScenarioFiles, loadScenarios } from './scenarios.js';
import { parseWhole, splitList, UsageError } from './usage.js';

export type Runner = (scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog, options?: RunOptions) => CellResult;

/** What the commands need from outside: the simulator, the built-in plugins, where the library is. */
export interface Deps {
  readonly runScenario: Runner;
  readonly catalog: PluginCatalog;
  readonly version: string;
  readonly libraryDir?: string;
  readonly importer?: Importer;
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

type Planned =
  | { readonly kind: 'cell'; readonly scenario: Scenario; readonly kernel: CellKernelRequest }
  | { readonly kind: 'problem'; readonly cell: CellResult };

/** The kernel a scenario that could not be loaded is reported under: the first the flags ask for. */
function nominalKernel(axes: KernelAxes): CellKernel {
  const features: Record<string, string | boolean> = {};
  for (const [name, values] of axes.features) features[name] = values[0]!;
  return {
    arch: axes.arch?.[0] ?? DEFAULT_KERNEL.arch,
    pageSize: axes.pageSize ?? 0,
    fs: axes.fs?.[0] ?? null,
    driver: axes.driver?.[0] ?? null,
    version: axes.version?.[0] ?? DEFAULT_KERNEL.version,
    features,
  };
}

function problemCell(scenario: string, file: string | undefined, kernel: CellKernel, reason: string): CellResult {
  return { scenario, ...(file !== undefined ? { file } : {}), kernel, status: 'error', outcome: 'error', violations: [], failures: [], reason, ms: 0 };
}

/** `daxlab run` and `daxlab matrix`: plan the cells, run them, report. Returns the exit code. */
export async function runCommand(kind: ReportKind, args: readonly string[], o: RunCommandOptions, io: CliIo, deps: Deps): Promise<number> {
  const started = io.now();
  const reporters = parseReporters(o.reporter ?? 'table', o.out);
  const seed = o.seed !== undefined ? parseWhole('--seed', o.seed, 0) : undefined;
  const schedule = o.schedule !== undefined ? parseSchedule(o.schedule, io.cwd) : undefined;
  if (o.jobs !== undefined) parseWhole('--jobs', o.jobs, 1);
  const shard = o.shard !== undefined ? parseShard(o.shard) : undefined;
  const plugins = [];
  for (const p of o.plugin ?? []) plugins.push(await loadPlugin(p, io.cwd, deps.importer));
  const catalog = withPlugins(deps.catalog, plugins);
  const axes = parseKernelFlags(o, catalog, kind === 'matrix');
  const all = loadScenarios(collectScenarioFiles(args, io.cwd, deps.libraryDir), io.cwd);
  // The built-in library's `mode: explore` scenarios are judged over every interleaving by
  // `daxlab explore`; run/matrix over the library leave them to it (named files still run, explored).
  const loaded = args.length === 0 ? all.filter((l) => !(l.ok && l.scenario.mode === 'explore')) : all;
  const skipped = all.length - loaded.length;
  if (skipped > 0 && !o.quiet) io.stderr(`daxlab: ${skipped} explore-mode scenarios left to 'daxlab explore' (apps/cli/scenarios/explore, …)\n`);

  const plan: Planned[] = loaded.flatMap((l): Planned[] =>
    l.ok
      ? kernelsFor(l.scenario, axes, catalog, kind === 'matrix').map((kernel) => ({ kind: 'cell', scenario: l.scenario, kernel }))
      : [{ kind: 'problem', cell: problemCell(l.name, l.file, nominalKernel(axes), l.reason) }],
  );
  const mine = takeShard(plan, shard);
  const groups = new Map<string, number>();
  for (const p of mine) {
    const g = p.kind === 'cell' ? cellGroup({ scenario: p.scenario.name, ...(p.scenario.file !== undefined ? { file: p.scenario.file } : {}) }) : cellGroup(p.cell);
    groups.set(g, (groups.get(g) ?? 0) + 1);
  }
  const progress = new Progress(io, mine.length, groups, o.quiet === true, kind === 'matrix');
  // the html report draws each cell's timeline from its whole trace
  const options: RunOptions = { ...(seed !== undefined ? { seed } : {}), ...(o.trace || reporters.includes('html') ? { trace: true } : {}), ...(schedule ? { schedule } : {}) };
  const cells: CellResult[] = [];
  for (const p of mine) {
    const cell = p.kind === 'problem' ? p.cell : runOne(p, catalog, options, deps, io);
    cells.push(cell);
    progress.cell(cell);
  }
  progress.finish();

  const report: Report = { kind, version: deps.version, cells, plugins: o.plugin ?? [] };
  const elapsedMs = io.now() - started;
  if (o.out !== undefined) mkdirSync(resolve(io.cwd, o.out), { recursive: true });
  for (const r of reporters) {
    if (r === 'table') {
      io.stdout(renderTable(report, { color: colorOnStdout(io), quiet: o.quiet === true, trace: o.trace === true, elapsedMs }));
      continue;
    }
    const text = r === 'json' ? renderJson(report) : r === 'junit' ? renderJunit(report) : renderHtml(report);
    if (o.out === undefined) {
      io.stdout(text);
    } else {
      const file = join(o.out, REPORT_FILES[r]);
      writeFileSync(resolve(io.cwd, file), text);
      if (!o.quiet) io.stderr(`daxlab: wrote ${file}\n`);
    }
  }
  return failed(cells) ? 1 : 0;
}

/** One cell; a crash inside the simulator becomes an `error` cell, so one bug does not end a matrix. */
function runOne(p: Extract<Planned, { kind: 'cell' }>, catalog: PluginCatalog, options: RunOptions, deps: Deps, io: CliIo): CellResult {
  try {
    // `mode: explore` scenarios are judged over every interleaving (unless a schedule is replayed)
    if (p.scenario.mode === 'explore' && !options.schedule) return exploreScenario(p.scenario, p.kernel, catalog, { maxStates: 200000 });
    return deps.runScenario(p.scenario, p.kernel, catalog, options);
  } catch (e) {
    const err = e as Error;
    const k = p.kernel;
    const kernel: CellKernel = { arch: k.arch, pageSize: k.pageSize ?? p.scenario.kernel.pageSize ?? 0, fs: k.fs, driver: k.driver, version: k.version, features: { ...k.features } };
    const detail = io.env.DAXLAB_DEBUG ? `\n${err.stack ?? ''}` : ' (a bug in daxlab: please report it; DAXLAB_DEBUG=1 shows the stack)';
    return problemCell(p.scenario.name, p.scenario.file, kernel, `internal error: ${err.message}${detail}`);
  }
}
