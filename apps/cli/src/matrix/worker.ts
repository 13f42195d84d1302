import { parentPort, workerData } from 'node:worker_threads';
import { runScenario, type Scenario } from '@daxlab/core';
import { builtinCatalog } from '../catalog.js';
import { catalogWithPlugins } from '../plugins.js';
import { runCell } from './cell.js';
import type { FromWorker, ToWorker, WorkerSetup } from './pool.js';

// A matrix worker thread: rebuilds the catalog the main thread has (built-ins plus the same
// --plugin packages, loaded by name), then runs the cells it is handed, one at a time.
const port = parentPort;
if (port) {
  const setup = workerData as WorkerSetup;
  const send = (m: FromWorker) => port.postMessage(m);
  try {
    const catalog = await catalogWithPlugins(builtinCatalog(), setup.plugins, setup.cwd);
    const scenarios = new Map<number, Scenario>();
    port.on('message', (t: ToWorker) => {
      if (t.scenario) scenarios.set(t.scenarioId, t.scenario);
      const scenario = scenarios.get(t.scenarioId)!;
      send({ type: 'cell', index: t.index, cell: runCell(scenario, t.kernel, catalog, setup.options, runScenario, setup.debug) });
    });
    send({ type: 'ready' });
  } catch (e) {
    send({ type: 'init-failed', message: (e as Error).message });
    port.close();
  }
}
