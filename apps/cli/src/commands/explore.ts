import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Option, type Command } from 'commander';
import pc from 'picocolors';
import { createExploreShare, exploreScenario, exploreShareStates, MAX_SHARED_STATES, isExploreResult, mergeExploreResults, REDUCTIONS, type CellKernelRequest, type CellResult, type CellStatus, type Counterexample, type ExploreOptions, type PluginCatalog, type Scenario, type ScheduleStep } from '@daxlab/core';
import { colorOnStdout, type CliIo } from '../io.js';
import { kernelsFor, parseKernelFlags, type KernelOptions } from '../kernel.js';
import { errorCell, nominalKernel, requestedKernel } from '../matrix/plan.js';
import { catalogWithPlugins, type Importer } from '../plugins.js';
import { kernelLabel, replayCommand } from '../report/common.js';
import { collectScenarioFiles, loadScenarios } from '../scenarios.js';
import type { ExploreWorkerSetup, FromExploreWorker } from './explore-worker.js';
import { parseWhole, splitList, UsageError } from '../usage.js';
import { renderExploreHtml } from './explore-html.js';

/**
 * `daxlab explore <scenario…>`: every interleaving of each scenario's threads on one kernel
 * (SCENARIOS.md), with the shortest schedule that breaks each invariant, the shortest one that
 * waits forever, and the size of the search. Register it in main.ts with the kernel flags:
 *
 *   exploreOptions(kernelOptions(program.command('explore'), false))
 *     .action(async (scenarios: string[], o: ExploreCommandOptions) => { code = await exploreCommand(scenarios, o, io, d); });
 */

/** The explorer: @daxlab/core's exploreScenario, or a stand-in for tests. */
export type Explorer = (scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog, options: ExploreOptions) => CellResult;

export interface ExploreDeps {
  readonly catalog: PluginCatalog;
  /** the @daxlab/cli version, for the reports */
  readonly version: string;
  readonly libraryDir?: string;
  readonly importer?: Importer;
  /** the explorer (default: @daxlab/core's exploreScenario) */
  readonly explore?: Explorer;
}

export interface ExploreCommandOptions extends KernelOptions {
  readonly maxStates?: string;
  readonly preemptions?: string;
  readonly reduction?: string;
  readonly search?: string;
  readonly stopAtFirst?: boolean;
  readonly reporter?: string;
  readonly out?: string;
  readonly trace?: boolean;
  readonly quiet?: boolean;
  readonly plugin?: readonly string[];
  readonly jobs?: string;
}

export const EXPLORE_REPORTERS = ['table', 'json', 'html'] as const;
export type ExploreReporter = (typeof EXPLORE_REPORTERS)[number];
/** Files the machine reporters write under --out. */
export const EXPLORE_FILES: Record<Exclude<ExploreReporter, 'table'>, string> = { json: 'daxlab-explore.json', html: 'daxlab-explore.html' };
const SEARCHES = ['bfs', 'dfs'] as const;

/** The explore command's own options and argument (the kernel flags come from main.ts). */
export function exploreOptions(cmd: Command): Command {
  return cmd
    .description('explore every interleaving of a scenario\'s threads: shortest schedules that break invariants or wait forever')
    .argument('<scenario...>', 'scenario files or directories (mode: explore; run-mode scenarios are explored too)')
    .option('--max-states <n>', 'stop after this many states (the result is then bounded, not complete)', '1000000')
    .option('--preemptions <k>', 'explore only schedules with at most k preemptions (switches away from a thread that could go on)')
    .addOption(new Option('--reduction <name>', 'state-hash: merge states already reached; none: every schedule as a tree').choices(REDUCTIONS).default('state-hash'))
    .addOption(new Option('--search <order>', 'bfs: shortest counterexamples first; dfs: fewer replays, deep findings sooner, counterexamples not shortest').choices(SEARCHES).default('bfs'))
    .option('--stop-at-first', 'stop at the first violation, blocked run or failed step (a verdict without the whole state space)')
    .option('--reporter <names>', `${EXPLORE_REPORTERS.join(', ')} (several: a,b; json and html go to --out)`, 'table')
    .option('--out <dir>', `write machine reports here (${Object.values(EXPLORE_FILES).join(', ')})`)
    .option('--jobs <n>', 'split a depth-first search (--search dfs, no --preemptions) over n threads sharing one table of visited states (the same states and verdicts; with --stop-at-first, which finding comes first can vary)', '1')
    .option('--trace', 'print the whole event trace of each counterexample')
    .option('--quiet', 'no progress');
}

function parseReporters(value: string, out: string | undefined): ExploreReporter[] {
  const names = splitList(value);
  if (names.length === 0) throw new UsageError('--reporter needs a value', `reporters: ${EXPLORE_REPORTERS.join(', ')}`);
  for (const n of names) if (!(EXPLORE_REPORTERS as readonly string[]).includes(n)) throw new UsageError(`--reporter: unknown reporter '${n}'`, `reporters: ${EXPLORE_REPORTERS.join(', ')}`);
  if (names.includes('html') && out === undefined) throw new UsageError('--reporter html writes a file: add --out DIR');
  if (out === undefined && names.length > 1 && names.includes('json')) throw new UsageError('--reporter json goes to a file when combined with other reporters: add --out DIR');
  return names as ExploreReporter[];
}

/** `daxlab explore`: explore each scenario on its kernel, report. Returns the exit code (0 pass, 1 fail or error). */
export async function exploreCommand(args: readonly string[], o: ExploreCommandOptions, io: CliIo, deps: ExploreDeps): Promise<number> {
  const started = io.now();
  const reporters = parseReporters(o.reporter ?? 'table', o.out);
  const maxStates = parseWhole('--max-states', o.maxStates ?? '1000000', 1);
  const preemptions = o.preemptions !== undefined ? parseWhole('--preemptions', o.preemptions, 0) : undefined;
  const reduction = (o.reduction ?? 'state-hash') as ExploreOptions['reduction'];
  if (!(REDUCTIONS as readonly string[]).includes(reduction!)) throw new UsageError(`--reduction ${o.reduction}: use one of ${REDUCTIONS.join(', ')}`);
  const search = (o.search ?? 'bfs') as ExploreOptions['search'];
  if (!(SEARCHES as readonly string[]).includes(search!)) throw new UsageError(`--search ${o.search}: use one of ${SEARCHES.join(', ')}`);
  const jobs = parseWhole('--jobs', o.jobs ?? '1', 1);
  if (jobs > 1 && (search !== 'dfs' || preemptions !== undefined || reduction !== 'state-hash')) {
    throw new UsageError('--jobs splits a depth-first search over hashed states', 'add --search dfs (and drop --preemptions and --reduction none), or use --jobs 1');
  }
  if (jobs > 1 && maxStates > MAX_SHARED_STATES) throw new UsageError(`--max-states ${maxStates} is more than a shared search holds (${MAX_SHARED_STATES})`, 'lower --max-states, or use --jobs 1');
  const catalog = await catalogWithPlugins(deps.catalog, o.plugin ?? [], io.cwd, deps.importer);
  const axes = parseKernelFlags(o, catalog, false);
  const explore = deps.explore ?? exploreScenario;
  const loaded = loadScenarios(collectScenarioFiles(args, io.cwd, deps.libraryDir), io.cwd);
  const progress = !o.quiet && io.stderrIsTTY && !io.env.CI;

  const cells: CellResult[] = [];
  for (const l of loaded) {
    if (!l.ok) {
      cells.push(errorCell(l.name, l.file, nominalKernel(axes), l.reason));
      continue;
    }
    for (const kernel of kernelsFor(l.scenario, axes, catalog, false)) {
      const options: ExploreOptions = {
        maxStates,
        reduction,
        search,
        ...(preemptions !== undefined ? { preemptions } : {}),
        ...(o.stopAtFirst ? { stopAtFirst: true } : {}),
        ...(progress ? { progress: (p) => io.stderr(`\r\x1b[2K${l.scenario}: ${p.states} states, ${p.transitions} transitions, depth ${p.depth}, ${formatMs(p.ms)}`) } : {}),
      };
      try {
        const parallel = jobs > 1 && deps.explore === undefined && existsSync(EXPLORE_WORKER_FILE);
        cells.push(parallel ? await exploreShared(l.scenario, kernel, catalog, options, jobs, { plugins: o.plugin ?? [], cwd: io.cwd }) : explore(l.scenario, kernel, catalog, options));
      } catch (e) {
        const err = e as Error;
        const detail = io.env.DAXLAB_DEBUG ? `\n${err.stack ?? ''}` : ' (a bug in daxlab: please report it; DAXLAB_DEBUG=1 shows the stack)';
        cells.push(errorCell(l.scenario.name, l.scenario.file, requestedKernel(kernel, l.scenario), `internal error: ${err.message}${detail}`));
      }
      if (progress) io.stderr('\r\x1b[2K');
    }
  }

  const elapsedMs = io.now() - started;
  const pluginSpecs = o.plugin ?? [];
  if (o.out !== undefined) mkdirSync(resolve(io.cwd, o.out), { recursive: true });
  for (const r of reporters) {
    if (r === 'table') {
      io.stdout(renderExploreTable(cells, { color: colorOnStdout(io), trace: o.trace === true, elapsedMs, plugins: pluginSpecs }));
      continue;
    }
    const text = r === 'json' ? renderExploreJson(cells, deps.version) : renderExploreHtml(cells, deps.version);
    if (o.out === undefined) io.stdout(text);
    else {
      const file = join(o.out, EXPLORE_FILES[r]);
      writeFileSync(resolve(io.cwd, file), text);
      if (!o.quiet) io.stderr(`daxlab: wrote ${file}\n`);
    }
  }
  return cells.some((c) => c.status === 'fail' || c.status === 'error') ? 1 : 0;
}

const EXPLORE_WORKER_FILE = fileURLToPath(new URL('./explore-worker.js', import.meta.url));

/**
 * One exploration split over `jobs` threads (core's shared.ts): this thread is worker 0 and
 * starts at once; the others start as soon as they have loaded the catalog. A worker that fails
 * leaves states it claimed unexpanded, so the search is then run again on this thread alone.
 */
async function exploreShared(scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog, options: ExploreOptions, jobs: number, where: { plugins: readonly string[]; cwd: string }): Promise<CellResult> {
  const buffer = createExploreShare(options.maxStates ?? 1_000_000);
  const { progress: _progress, ...plain } = options;
  const parts: Promise<FromExploreWorker>[] = [];
  const workers: Worker[] = [];
  for (let w = 1; w < jobs; w++) {
    const setup: ExploreWorkerSetup = { scenario, kernel, options: { ...plain, share: { buffer, worker: w, workers: jobs } }, plugins: where.plugins, cwd: where.cwd };
    const worker = new Worker(EXPLORE_WORKER_FILE, { workerData: setup });
    workers.push(worker);
    parts.push(
      new Promise((resolve) => {
        worker.once('message', (m: FromExploreWorker) => resolve(m));
        worker.once('error', (e) => resolve({ type: 'failed', message: e.message }));
        worker.once('exit', (code) => resolve({ type: 'failed', message: `exited with code ${code}` }));
      }),
    );
  }
  let mine: CellResult;
  try {
    mine = exploreScenario(scenario, kernel, catalog, { ...options, share: { buffer, worker: 0, workers: jobs } });
  } catch (e) {
    // an internal error here: the workers' parts are of no use
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  if (isExploreResult(mine) && mine.states === exploreShareStates(buffer)) {
    // this thread claimed every state (a small search, done before the workers got going): they
    // can find nothing new, so they are not waited for
    await Promise.all(workers.map((w) => w.terminate()));
    return mine;
  }
  const theirs = await Promise.all(parts);
  if (!isExploreResult(mine)) return mine;
  const results = [mine];
  for (const m of theirs) {
    if (m.type === 'failed' || !isExploreResult(m.part as CellResult)) return exploreScenario(scenario, kernel, catalog, options);
    results.push(m.part as typeof mine);
  }
  return mergeExploreResults(scenario, kernel, catalog, options, results);
}

// ---- reporters --------------------------------------------------------------------------------

/** How many trace lines a counterexample shows without --trace (the tail, where it happened). */
export const EXPLORE_TRACE_TAIL = 12;

const WORD: Record<CellStatus, string> = { pass: 'PASS', fail: 'FAIL', unsupported: 'UNSUP', error: 'ERROR' };

/** `app×2 → trunc×3 → app`: who ran, for how many preemption points, in order. */
export function scheduleText(schedule: readonly ScheduleStep[]): string {
  if (schedule.length === 0) return '(setup only)';
  return schedule.map((x) => `${x.thread}${(x.slices ?? 1) > 1 ? `×${x.slices}` : ''}`).join(' → ');
}

/** The schedule as `daxlab run --schedule` takes it (thread, step and slices per switch). */
export function scheduleJson(schedule: readonly ScheduleStep[]): string {
  return JSON.stringify(schedule.map((x) => ({ thread: x.thread, step: x.step, slices: x.slices ?? 1 })));
}

function replayWithSchedule(cell: CellResult, schedule: readonly ScheduleStep[], plugins: readonly string[]): string | null {
  const base = replayCommand(cell, plugins);
  return base ? `${base} --schedule '${scheduleJson(schedule)}'` : null;
}

export interface ExploreTableOptions {
  readonly color: boolean;
  readonly trace?: boolean;
  readonly elapsedMs?: number;
  readonly plugins?: readonly string[];
}

/** The terminal report: per cell its verdict and search size, then each finding with its schedule. */
export function renderExploreTable(cells: readonly CellResult[], o: ExploreTableOptions): string {
  const c = pc.createColors(o.color);
  const paint: Record<CellStatus, (s: string) => string> = { pass: c.green, fail: (s) => c.bold(c.red(s)), unsupported: c.yellow, error: (s) => c.bold(c.magenta(s)) };
  const lines: string[] = [];
  const indent = (xs: readonly string[]) => xs.map((l) => `       ${l}`);
  for (const cell of cells) {
    lines.push(`${paint[cell.status](WORD[cell.status].padEnd(5))}  ${cell.scenario}  ${kernelLabel(cell.kernel)}`.trimEnd());
    if (!isExploreResult(cell)) {
      if (cell.reason) lines.push(...indent(cell.reason.split('\n')));
      continue;
    }
    const bound = cell.complete ? 'complete' : `bounded (${cell.limits.join(', ')})`;
    const how = [cell.reduction, cell.search === 'dfs' ? 'depth-first' : null, cell.preemptionBound !== null ? `at most ${cell.preemptionBound} preemptions` : null].filter((x) => x !== null).join(', ');
    lines.push(...indent([`${bound}: ${cell.states} states, ${cell.transitions} transitions, depth ${cell.depth}, ${formatMs(cell.ms)} (${how})`]));
    lines.push(...indent([`outcome ${cell.outcome}; schedules ended: ${cell.ends.completed} completed, ${cell.ends.blocked} blocked, ${cell.ends.oops} oops, ${cell.ends.failed} failed`]));
    for (const f of cell.failures) lines.push(...indent([paint.fail(f)]));
    const finding = (title: string, x: Counterexample, extra: readonly string[] = []) => {
      lines.push(...indent([title, ...extra.map((m) => `  ${m}`)]));
      lines.push(...indent([`  schedule (${x.length} steps, ${x.preemptions} preemption${x.preemptions === 1 ? '' : 's'}): ${scheduleText(x.schedule)}`]));
      const shown = o.trace ? x.trace.length : Math.min(EXPLORE_TRACE_TAIL, x.trace.length);
      const from = x.trace.length - shown;
      if (from > 0) lines.push(...indent([c.dim(`  … ${from} earlier events`)]));
      for (let i = from; i < x.trace.length; i++) lines.push(...indent([c.dim(`  ${(x.threads[i] ?? '').padEnd(8)} ${x.trace[i]}`)]));
      const replay = replayWithSchedule(cell, x.schedule, o.plugins ?? []);
      if (replay) lines.push(...indent([c.dim(`  replay: ${replay}`)]));
    };
    for (const v of cell.violations) finding(`${c.bold(v.invariant)}: ${v.message}`, v);
    if (cell.blocked) finding(`${c.bold('blocked')}: some interleaving waits forever`, cell.blocked, cell.blocked.messages);
    if (cell.oops) finding(`${c.bold('oops')}`, cell.oops, cell.oops.messages);
    for (const f of cell.stepFailures) finding(`${c.bold('failed step')}: ${f.messages[0] ?? ''}`, f);
    for (const f of cell.allowedFailures) finding(`${c.bold('may fail')} (allowed by its expect): ${f.messages[0] ?? ''}`, f);
  }
  const count = (s: CellStatus) => cells.filter((x) => x.status === s).length;
  const n = cells.length;
  lines.push('');
  lines.push(`${n} cell${n === 1 ? '' : 's'} explored: ${count('pass')} pass, ${count('fail')} fail, ${count('unsupported')} unsupported, ${count('error')} error${o.elapsedMs !== undefined ? ` in ${formatMs(o.elapsedMs)}` : ''}`);
  return `${lines.join('\n')}\n`;
}

const counterexampleJson = (x: Counterexample) => ({
  schedule: x.schedule.map((s) => ({ thread: s.thread, step: s.step, slices: s.slices ?? 1 })),
  length: x.length,
  preemptions: x.preemptions,
  trace: [...x.trace],
  threads: [...x.threads],
});

/** The machine report (SCENARIOS.md): `{ tool, version, kind: 'explore', cells, summary }`, each cell with `complete, states, transitions, ms` and per violation its `schedule`. */
export function renderExploreJson(cells: readonly CellResult[], version: string): string {
  const doc = {
    tool: 'daxlab',
    version,
    kind: 'explore',
    cells: cells.map((c) => {
      const k = c.kernel;
      const features: Record<string, string | boolean> = {};
      for (const name of Object.keys(k.features).sort()) features[name] = k.features[name]!;
      const base = {
        scenario: c.scenario,
        ...(c.file !== undefined ? { file: c.file } : {}),
        kernel: { arch: k.arch, pageSize: k.pageSize, fs: k.fs, driver: k.driver, version: k.version, features },
        status: c.status,
        outcome: c.outcome,
      };
      if (!isExploreResult(c)) return { ...base, violations: [], failures: [...c.failures], reason: c.reason, ms: c.ms };
      return {
        ...base,
        complete: c.complete,
        states: c.states,
        transitions: c.transitions,
        depth: c.depth,
        ms: c.ms,
        reduction: c.reduction,
        search: c.search ?? 'bfs',
        preemptionBound: c.preemptionBound,
        limits: [...c.limits],
        ends: { ...c.ends },
        violations: c.violations.map((v) => ({ invariant: v.invariant, message: v.message, ...counterexampleJson(v) })),
        blocked: c.blocked ? { messages: [...c.blocked.messages], ...counterexampleJson(c.blocked) } : null,
        oops: c.oops ? { messages: [...c.oops.messages], ...counterexampleJson(c.oops) } : null,
        stepFailures: c.stepFailures.map((f) => ({ messages: [...f.messages], ...counterexampleJson(f) })),
        allowedFailures: c.allowedFailures.map((f) => ({ messages: [...f.messages], ...counterexampleJson(f) })),
        failures: [...c.failures],
        reason: c.reason,
      };
    }),
    summary: {
      pass: cells.filter((c) => c.status === 'pass').length,
      fail: cells.filter((c) => c.status === 'fail').length,
      unsupported: cells.filter((c) => c.status === 'unsupported').length,
      error: cells.filter((c) => c.status === 'error').length,
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`;
}
