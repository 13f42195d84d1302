import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CellKernelRequest, CellResult, PluginCatalog, RunOptions, Scenario } from '@daxlab/core';
import { runCell, type Runner } from './cell.js';
import { errorCell, requestedKernel } from './plan.js';

/** A cell to run: the scenario as loaded (plain data, so it crosses to a worker by structured clone). */
export interface CellTask {
  readonly index: number;
  readonly scenario: Scenario;
  readonly kernel: CellKernelRequest;
}

/**
 * Runs cells and reports each as it finishes (in any order; the caller orders the report by
 * index). Resolves once every task has reported.
 */
export type CellExecutor = (tasks: readonly CellTask[], onCell: (index: number, cell: CellResult) => void) => Promise<void>;

/** In the calling thread, one after another: --jobs 1, or an injected runner/catalog (tests, embedders). */
export function inProcessExecutor(catalog: PluginCatalog, options: RunOptions, runner: Runner, debug: boolean): CellExecutor {
  return async (tasks, onCell) => {
    for (const t of tasks) onCell(t.index, runCell(t.scenario, t.kernel, catalog, options, runner, debug));
  };
}

/** What a worker needs to rebuild the catalog and run cells exactly as the main thread would. */
export interface WorkerSetup {
  /** --plugin specs, loaded again by name in each worker */
  readonly plugins: readonly string[];
  readonly cwd: string;
  readonly options: RunOptions;
  readonly debug: boolean;
}

/**
 * A cell for a worker. A scenario crosses once per worker (structured clone costs ~0.1 ms per
 * scenario, as much as a cheap cell); its later cells name it by id.
 */
export interface ToWorker {
  readonly index: number;
  readonly scenarioId: number;
  readonly scenario?: Scenario;
  readonly kernel: CellKernelRequest;
}
export type FromWorker = { readonly type: 'ready' } | { readonly type: 'cell'; readonly index: number; readonly cell: CellResult } | { readonly type: 'init-failed'; readonly message: string };

/** The worker entry, next to this file once built (dist/matrix/worker.js); absent when running from sources. */
export const WORKER_FILE = fileURLToPath(new URL('./worker.js', import.meta.url));

export function workersAvailable(): boolean {
  return existsSync(WORKER_FILE);
}

/**
 * Cells handed to a worker ahead of its results: with one, the worker idles for a message round
 * trip after every cell (a cheap cell costs about as much as that); with two, its next cell is
 * already waiting in its port.
 */
const IN_FLIGHT = 2;

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  /** the cells sent and not yet reported, in the order the worker runs them */
  readonly busy: CellTask[];
  cause: string | null;
  /** ids of the scenarios this worker already has */
  readonly has: Set<number>;
}

/**
 * `jobs` worker threads, one cell in flight each (so a crash is pinned on the cell that caused
 * it). A worker that dies mid-cell turns that cell into an `error` naming the cause and is
 * replaced; one that cannot start fails the cells still queued once no worker is left, so a
 * broken setup ends the run with error cells instead of hanging it.
 */
export function workerExecutor(jobs: number, setup: WorkerSetup): CellExecutor {
  return (tasks, onCell) =>
    new Promise<void>((resolveAll, rejectAll) => {
      const queue = [...tasks];
      const slots = new Set<Slot>();
      const scenarioIds = new Map<Scenario, number>();
      let finished = 0;
      let settled = false;
      let startFailure: string | null = null;

      const end = (err?: unknown) => {
        if (settled) return;
        settled = true;
        const stops = [...slots].map((s) => s.worker.terminate());
        slots.clear();
        void Promise.allSettled(stops).then(() => (err === undefined ? resolveAll() : rejectAll(err)));
      };
      const report = (index: number, cell: CellResult) => {
        try {
          onCell(index, cell);
        } catch (e) {
          end(e);
          return;
        }
        if (++finished === tasks.length) end();
      };
      const failQueued = (why: string) => {
        for (const t of queue.splice(0)) report(t.index, errorCell(t.scenario.name, t.scenario.file, requestedKernel(t.kernel, t.scenario), why));
      };
      const feed = (s: Slot) => {
        while (!settled && s.ready && s.busy.length < IN_FLIGHT) {
          const t = queue.shift();
          if (!t) return;
          s.busy.push(t);
          let id = scenarioIds.get(t.scenario);
          if (id === undefined) scenarioIds.set(t.scenario, (id = scenarioIds.size));
          const first = !s.has.has(id);
          s.has.add(id);
          s.worker.postMessage({ index: t.index, scenarioId: id, ...(first ? { scenario: t.scenario } : {}), kernel: t.kernel } satisfies ToWorker);
        }
      };
      const spawn = () => {
        const worker = new Worker(WORKER_FILE, { workerData: setup satisfies WorkerSetup });
        const s: Slot = { worker, ready: false, busy: [], cause: null, has: new Set() };
        slots.add(s);
        worker.on('message', (m: FromWorker) => {
          if (m.type === 'ready') {
            s.ready = true;
            feed(s);
          } else if (m.type === 'init-failed') {
            s.cause = m.message;
          } else {
            // a worker runs its cells in the order it was sent them
            s.busy.shift();
            report(m.index, m.cell);
            feed(s);
          }
        });
        worker.on('error', (e: Error) => {
          s.cause ??= e.message.split('\n')[0] ?? String(e);
        });
        worker.on('exit', (code) => {
          if (settled || !slots.delete(s)) return;
          const cause = s.cause ?? `it exited with code ${code}`;
          const [t, ...waiting] = s.busy;
          if (t) {
            // the cell it was running crashed it; the ones waiting behind it go to other workers
            queue.unshift(...waiting);
            report(t.index, errorCell(t.scenario.name, t.scenario.file, requestedKernel(t.kernel, t.scenario), `the worker thread running this cell crashed: ${cause} (the other cells ran on)`));
          }
          if (settled) return;
          if (!s.ready) startFailure = cause;
          else if (queue.length > 0) spawn();
          if (slots.size === 0 && queue.length > 0) failQueued(`no worker thread could start: ${startFailure ?? cause}`);
        });
      };
      if (tasks.length === 0) return resolveAll();
      for (let i = 0; i < Math.min(jobs, tasks.length); i++) spawn();
    });
}
