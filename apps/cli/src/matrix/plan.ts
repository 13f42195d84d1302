import { createHash } from 'node:crypto';
import type { CellKernel, CellKernelRequest, CellResult, RunOptions, Scenario } from '@daxlab/core';
import { DEFAULT_KERNEL, type KernelAxes, type Shard } from '../kernel.js';
import type { PlanInfo, ReportKind } from '../report/index.js';

/**
 * One entry of a run's cell list: a scenario on a kernel to run, or a problem already known
 * (a file that does not load) that is reported as its `error` cell without running anything.
 * `index` is the position in the whole (unsharded) list: reports are in this order.
 */
export type PlannedCell =
  | { readonly kind: 'cell'; readonly index: number; readonly scenario: Scenario; readonly kernel: CellKernelRequest }
  | { readonly kind: 'problem'; readonly index: number; readonly cell: CellResult };

/** What else decides a run's results, besides its cells. */
export interface PlanContext {
  readonly kind: ReportKind;
  readonly version: string;
  readonly options: RunOptions;
  readonly plugins: readonly string[];
}

/**
 * The identity of the whole cell list: a hash over each planned cell (the scenario as loaded,
 * so an edited file is a different run, and the kernel asked for), the run options that change
 * results, the plugins and the daxlab version. Shards of one run share it; `merge` and `--resume`
 * compare it.
 */
export function planInfo(all: readonly PlannedCell[], ctx: PlanContext, shard?: Shard): PlanInfo {
  const h = createHash('sha256');
  h.update(JSON.stringify({ kind: ctx.kind, version: ctx.version, options: ctx.options, plugins: ctx.plugins }));
  // a scenario has many cells: its text is hashed once
  const digests = new Map<Scenario, string>();
  const digest = (s: Scenario) => digests.get(s) ?? digests.set(s, createHash('sha256').update(JSON.stringify(s)).digest('hex')).get(s)!;
  for (const p of all) {
    h.update('\n');
    h.update(p.kind === 'cell' ? JSON.stringify([digest(p.scenario), p.kernel]) : JSON.stringify([p.cell.file ?? null, p.cell.scenario, p.cell.reason]));
  }
  return { id: h.digest('hex').slice(0, 32), cells: all.length, ...(shard ? { shard: { index: shard.index, count: shard.count } } : {}) };
}

/** How many of `total` cells shard i/n holds (round-robin: indices i-1, i-1+n, …). */
export function shardSize(total: number, shard: Shard): number {
  return total > shard.index - 1 ? Math.ceil((total - (shard.index - 1)) / shard.count) : 0;
}

/** Where the j-th cell of shard i/n sits in the whole list. */
export function shardCellIndex(j: number, shard: Shard): number {
  return shard.index - 1 + j * shard.count;
}

/** The kernel a scenario that did not load is reported under: the first value of each axis asked for. */
export function nominalKernel(axes: KernelAxes): CellKernel {
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

/** The kernel of a cell that never ran, as the report shows it. */
export function requestedKernel(k: CellKernelRequest, scenario: Scenario): CellKernel {
  return { arch: k.arch, pageSize: k.pageSize ?? scenario.kernel.pageSize ?? 0, fs: k.fs, driver: k.driver, version: k.version, features: { ...k.features } };
}

/** An `error` cell for something that stopped a cell before or while it ran. */
export function errorCell(scenario: string, file: string | undefined, kernel: CellKernel, reason: string): CellResult {
  return { scenario, ...(file !== undefined ? { file } : {}), kernel, status: 'error', outcome: 'error', violations: [], failures: [], reason, ms: 0 };
}
