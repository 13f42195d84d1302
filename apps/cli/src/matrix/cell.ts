import { exploreScenario, formatSize, UnsupportedError, type CellKernelRequest, type CellResult, type PluginCatalog, type RunOptions, type Scenario } from '@daxlab/core';
import { errorCell, requestedKernel } from './plan.js';

export type Runner = (scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog, options?: RunOptions) => CellResult;

/** The explorer's state budget for a `mode: explore` scenario inside a run or matrix. */
export const MATRIX_EXPLORE_MAX_STATES = 200000;

/**
 * One cell, in the main thread or a worker. A crash inside the simulator becomes an `error`
 * cell naming it, so one bug does not end a matrix.
 */
export function runCell(scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog, options: RunOptions, runner: Runner, debug: boolean): CellResult {
  const refused = pageSizeRefused(scenario, kernel, catalog);
  if (refused !== null) return { ...errorCell(scenario.name, scenario.file, requestedKernel(kernel, scenario), refused), status: 'unsupported', outcome: 'unsupported' };
  try {
    // `mode: explore` scenarios are judged over every interleaving (unless a schedule is replayed)
    if (scenario.mode === 'explore' && !options.schedule) return exploreScenario(scenario, kernel, catalog, { maxStates: MATRIX_EXPLORE_MAX_STATES });
    return runner(scenario, kernel, catalog, options);
  } catch (e) {
    const err = e as Error;
    const detail = debug ? `\n${err.stack ?? ''}` : ' (a bug in daxlab: please report it; DAXLAB_DEBUG=1 shows the stack)';
    return errorCell(scenario.name, scenario.file, requestedKernel(kernel, scenario), `internal error: ${err.message}${detail}`);
  }
}

/**
 * A base page size the arch plugin cannot be built with (its factory throws, e.g. x86-64 at
 * 16KiB): the cell is `unsupported` with the plugin's words, as any kernel that cannot be built.
 * A plugin that throws UnsupportedError is left to the run, which honours `expect: unsupported`.
 */
function pageSizeRefused(scenario: Scenario, kernel: CellKernelRequest, catalog: PluginCatalog): string | null {
  const pageSize = kernel.pageSize ?? scenario.kernel.pageSize;
  const factory = catalog.arch[kernel.arch];
  if (pageSize === undefined || !factory) return null;
  try {
    factory({ pageSize });
    return null;
  } catch (e) {
    return e instanceof UnsupportedError ? null : `${kernel.arch} cannot be built with ${formatSize(pageSize)} base pages: ${(e as Error).message}`;
  }
}
