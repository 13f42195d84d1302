import {
  FEATURES,
  InputError,
  isPowerOfTwo,
  parseFeatureValue,
  parseSize,
  PRESETS,
  type CellKernelRequest,
  type PluginCatalog,
  type Scenario,
} from '@daxlab/core';
import { pickNames, splitList, UsageError } from './usage.js';

/** What a cell runs on when neither the command line nor the scenario says. */
export const DEFAULT_KERNEL = { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'latest' } as const;

/** The kernel flags as commander hands them over (raw strings). */
export interface KernelOptions {
  readonly arch?: string;
  readonly pageSize?: string;
  readonly fs?: string;
  readonly driver?: string;
  readonly kernel?: string;
  readonly feature?: readonly string[];
}

/** The kernel flags, validated: each axis a list (one element under `run`), or undefined when not given. */
export interface KernelAxes {
  readonly arch?: readonly string[];
  readonly pageSize?: number;
  /** matrix: every --page-size value (a list a,b; `pageSize` is the first), or each arch's own sizes (`all`) */
  readonly pageSizes?: readonly number[] | 'all';
  readonly fs?: readonly string[];
  readonly driver?: readonly string[];
  readonly version?: readonly string[];
  /** feature overrides, each with the values to try */
  readonly features: readonly (readonly [string, readonly (string | boolean)[]])[];
}

/**
 * Validate the kernel flags against the plugins and presets. `multi` (matrix) allows lists and
 * `all`; `run` takes one value per flag.
 */
export function parseKernelFlags(o: KernelOptions, catalog: PluginCatalog, multi: boolean): KernelAxes {
  const features = new Map<string, (string | boolean)[]>();
  for (const raw of o.feature ?? []) {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new UsageError(`--feature ${raw}: expected name=value (e.g. --feature fsdax-refcount=legacy)`, "see 'daxlab list features'");
    const name = raw.slice(0, eq).trim();
    const spec = FEATURES.find((f) => f.name === name);
    const values = raw.slice(eq + 1).trim() === 'all' && multi && spec ? [...spec.values] : splitList(raw.slice(eq + 1));
    if (values.length === 0) throw new UsageError(`--feature ${raw}: no value given`, spec ? `values: ${spec.values.join(', ')}` : undefined);
    if (!multi && values.length > 1) throw new UsageError(`--feature ${raw}: 'run' takes one value; use 'daxlab matrix' to try several`);
    if (features.has(name)) throw new UsageError(`--feature ${name} is given twice; give it once${multi ? ' with a list of values (name=a,b)' : ''}`);
    try {
      features.set(name, values.map((v) => parseFeatureValue(name, v, '--feature')));
    } catch (e) {
      if (e instanceof InputError) throw new UsageError(e.message, "see 'daxlab list features'");
      throw e;
    }
  }
  let pageSizes: number[] | 'all' | undefined;
  if (o.pageSize !== undefined && splitList(o.pageSize).includes('all')) {
    if (!multi) throw new UsageError(`--page-size all: 'run' takes one value; use 'daxlab matrix' to try several`);
    pageSizes = 'all';
  } else if (o.pageSize !== undefined) {
    const raw = splitList(o.pageSize);
    if (raw.length === 0) throw new UsageError('--page-size needs a value (4KiB, 16KiB, 64KiB)');
    if (!multi && raw.length > 1) throw new UsageError(`--page-size ${o.pageSize}: 'run' takes one value; use 'daxlab matrix' to try several`);
    pageSizes = raw.map((v) => {
      let size: number;
      try {
        size = parseSize(v, '--page-size');
      } catch (e) {
        if (e instanceof InputError) throw new UsageError(e.message);
        throw e;
      }
      if (!isPowerOfTwo(size)) throw new UsageError(`--page-size ${v}: a page size is a power of two (4KiB, 16KiB, 64KiB)`);
      return size;
    });
  }
  const pageSize = Array.isArray(pageSizes) ? pageSizes[0] : undefined;
  const axis = (flag: string, value: string | undefined, known: readonly string[]) => (value === undefined ? undefined : pickNames(flag, value, known, multi));
  return {
    ...optional('arch', axis('--arch', o.arch, Object.keys(catalog.arch))),
    ...optional('pageSize', pageSize),
    ...optional('pageSizes', multi ? pageSizes : undefined),
    ...optional('fs', axis('--fs', o.fs, Object.keys(catalog.fs))),
    ...optional('driver', axis('--driver', o.driver, Object.keys(catalog.driver))),
    ...optional('version', axis('--kernel', o.kernel, PRESETS.map((p) => p.name))),
    features: [...features],
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function allSteps(s: Scenario) {
  return [...s.setup, ...s.threads.flatMap((t) => t.steps)];
}

/**
 * The filesystem a scenario runs with when no flag says: its `kernel.fs`, else the fs its first
 * mount names, else xfs if it mounts at all; null when it never mounts (the fs is not part of its kernel).
 */
export function scenarioFs(s: Scenario): { used: boolean; fs: string | undefined } {
  const mounts = allSteps(s).filter((st) => st.op === 'mount');
  const named = mounts.map((st) => st.args.fs).find((f): f is string => typeof f === 'string');
  return { used: s.kernel.fs !== undefined || mounts.length > 0, fs: s.kernel.fs ?? named };
}

/** Likewise the driver: `kernel.driver`, else the first probe's driver; null when it never probes. */
export function scenarioDriver(s: Scenario): { used: boolean; driver: string | undefined } {
  const probes = allSteps(s).filter((st) => st.op === 'probe');
  const named = probes.map((st) => st.args.driver).find((d): d is string => typeof d === 'string');
  return { used: s.kernel.driver !== undefined || probes.length > 0, driver: s.kernel.driver ?? named };
}

/**
 * The kernels to run a scenario on. Precedence per axis: command-line flag, then the scenario's
 * `kernel:` defaults, then DEFAULT_KERNEL (`run`) or every known value (`matrix`: all arches, all
 * presets, all filesystems; the driver stays the scenario's). A scenario that never mounts gets
 * fs null, one that never probes gets driver null, whatever the flags say.
 */
export function kernelsFor(s: Scenario, axes: KernelAxes, catalog: PluginCatalog, multi: boolean): CellKernelRequest[] {
  const known = (xs: readonly string[], fallback: string) => (xs.length ? xs : [fallback]);
  const fsInfo = scenarioFs(s);
  const drvInfo = scenarioDriver(s);
  const one = <T>(v: T | undefined, fallback: T): T[] => [v ?? fallback];
  const archs = axes.arch ?? (s.kernel.arch || !multi ? one<string>(s.kernel.arch, DEFAULT_KERNEL.arch) : known(Object.keys(catalog.arch), DEFAULT_KERNEL.arch));
  const versions = axes.version ?? (s.kernel.version || !multi ? one<string>(s.kernel.version, DEFAULT_KERNEL.version) : PRESETS.map((p) => p.name));
  const fss: readonly (string | null)[] = !fsInfo.used ? [null] : axes.fs ? axes.fs : fsInfo.fs || !multi ? one<string>(fsInfo.fs, DEFAULT_KERNEL.fs) : known(Object.keys(catalog.fs), DEFAULT_KERNEL.fs);
  const drivers: readonly (string | null)[] = !drvInfo.used ? [null] : axes.driver ? axes.driver : one<string>(drvInfo.driver, DEFAULT_KERNEL.driver);
  const featureSets = axes.features.reduce<Record<string, string | boolean>[]>(
    (sets, [name, values]) => sets.flatMap((set) => values.map((v) => ({ ...set, [name]: v }))),
    [{}],
  );
  const out: CellKernelRequest[] = [];
  for (const arch of archs) {
    const pageSizes: readonly (number | undefined)[] = axes.pageSizes === 'all' ? archPageSizes(catalog, arch) : (axes.pageSizes ?? [axes.pageSize]);
    for (const pageSize of pageSizes) {
      for (const fs of fss) {
        for (const driver of drivers) {
          for (const version of versions) {
            for (const features of featureSets) {
              out.push({ arch, ...(pageSize !== undefined ? { pageSize } : {}), fs, driver, version, features });
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * Base page sizes Linux arches configure: PAGE_SHIFT 12 to 18 (4KiB everywhere, 8KiB sparc64
 * and alpha, 16KiB/64KiB arm64, loongarch and mips, 64KiB powerpc, 256KiB hexagon and ppc44x).
 */
const CANDIDATE_PAGE_SIZES = [12, 13, 14, 15, 16, 17, 18].map((shift) => 2 ** shift);

/**
 * `--page-size all`: the base page sizes an arch offers, as its plugin says: each candidate its
 * factory builds without refusing, by the page size the built MMU reports (a plugin that
 * ignores the option yields its one size once). No list of arches here: the catalog decides.
 */
export function archPageSizes(catalog: PluginCatalog, arch: string): number[] {
  const factory = catalog.arch[arch];
  if (!factory) return [];
  const sizes = new Set<number>();
  for (const candidate of CANDIDATE_PAGE_SIZES) {
    try {
      const size = (factory({ pageSize: candidate }) as { mmu?: { basePageSize?: unknown } }).mmu?.basePageSize;
      if (typeof size === 'number') sizes.add(size);
    } catch {
      // the arch has no such page size
    }
  }
  return [...sizes].sort((a, b) => a - b);
}

export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** `--shard i/n`, 1-based. */
export function parseShard(value: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index < 1 || index > count) {
    throw new UsageError(`--shard ${value}: expected i/n with 1 <= i <= n (e.g. --shard 2/4)`);
  }
  return { index, count };
}

/** Shard i of n takes every n-th cell of the sorted list, starting at the i-th (round-robin). */
export function takeShard<T>(cells: readonly T[], shard: Shard | undefined): T[] {
  if (!shard) return [...cells];
  return cells.filter((_, i) => i % shard.count === shard.index - 1);
}
