import { parentPort, workerData } from 'node:worker_threads';
import { exploreScenario, type CellKernelRequest, type ExploreOptions, type Scenario } from '@daxlab/core';
import { builtinCatalog } from '../catalog.js';
import { catalogWithPlugins } from '../plugins.js';

/** What a worker of `daxlab explore --jobs N` is given: its part of one shared search. */
export interface ExploreWorkerSetup {
  readonly scenario: Scenario;
  readonly kernel: CellKernelRequest;
  /** the search options without callbacks (structured clone), `share` included */
  readonly options: Omit<ExploreOptions, 'progress'>;
  /** --plugin specs, loaded again by name */
  readonly plugins: readonly string[];
  readonly cwd: string;
}

export type FromExploreWorker = { readonly type: 'part'; readonly part: unknown } | { readonly type: 'failed'; readonly message: string };

// A worker thread of `daxlab explore --jobs N`: rebuilds the catalog the main thread has, walks
// the shared search in its own order of threads and posts its part of the result.
const port = parentPort;
if (port) {
  const setup = workerData as ExploreWorkerSetup;
  try {
    const catalog = await catalogWithPlugins(builtinCatalog(), setup.plugins, setup.cwd);
    const part = exploreScenario(setup.scenario, setup.kernel, catalog, setup.options);
    port.postMessage({ type: 'part', part } satisfies FromExploreWorker);
  } catch (e) {
    port.postMessage({ type: 'failed', message: (e as Error).message } satisfies FromExploreWorker);
  }
  port.close();
}
