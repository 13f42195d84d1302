import { formatSize, type CellKernel, type CellResult, type CellStatus } from '@daxlab/core';

export type ReportKind = 'run' | 'matrix';

/** Everything a reporter needs: the cells in plan order, and what produced them. */
export interface Report {
  readonly kind: ReportKind;
  /** the @daxlab/cli version */
  readonly version: string;
  readonly cells: readonly CellResult[];
  /** the --plugin specs the run loaded (a replay needs them too) */
  readonly plugins?: readonly string[];
  /** which planned run the cells belong to (for `daxlab merge` and `--resume`) */
  readonly plan?: PlanInfo;
}

/**
 * The identity of a run's whole cell list: `id` hashes every planned cell (scenario content and
 * kernel), the options that change results and the plugins; `cells` counts the whole list.
 * A shard's report adds which shard it holds; a merged report is the whole run's (no shard).
 */
export interface PlanInfo {
  readonly id: string;
  readonly cells: number;
  readonly shard?: { readonly index: number; readonly count: number };
}

export type Summary = Record<CellStatus, number>;

export function summarize(cells: readonly CellResult[]): Summary {
  const s: Summary = { pass: 0, fail: 0, unsupported: 0, error: 0 };
  for (const c of cells) s[c.status]++;
  return s;
}

/** Only `fail` and `error` cells make a run fail (exit 1). */
export function failed(cells: readonly CellResult[]): boolean {
  return cells.some((c) => c.status === 'fail' || c.status === 'error');
}

/** Feature overrides as `name=value`, sorted by name. */
export function featureList(k: CellKernel): string[] {
  return Object.keys(k.features).sort().map((n) => `${n}=${String(k.features[n])}`);
}

/** `x86 4KiB xfs nvdimm v6.15 fsdax-refcount=legacy`: the kernel tuple of a cell. */
export function kernelLabel(k: CellKernel): string {
  return [k.arch, k.pageSize > 0 ? formatSize(k.pageSize) : null, k.fs ?? 'no-fs', k.driver ?? 'no-driver', k.version, ...featureList(k)]
    .filter((x) => x !== null)
    .join(' ');
}

/** The command that reruns one cell exactly (run uses one deterministic schedule per seed). */
export function replayCommand(c: CellResult, plugins: readonly string[] = []): string | null {
  if (!c.file) return null;
  const k = c.kernel;
  const parts = ['daxlab run', quote(c.file), `--arch ${k.arch}`];
  if (k.pageSize > 0) parts.push(`--page-size ${formatSize(k.pageSize)}`);
  if (k.fs) parts.push(`--fs ${k.fs}`);
  if (k.driver) parts.push(`--driver ${k.driver}`);
  parts.push(`--kernel ${k.version}`);
  for (const f of featureList(k)) parts.push(`--feature ${f}`);
  if (c.seed !== undefined) parts.push(`--seed ${c.seed}`);
  for (const p of plugins) parts.push(`--plugin ${quote(p)}`);
  return parts.join(' ');
}

function quote(s: string): string {
  return /^[\w./@:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
