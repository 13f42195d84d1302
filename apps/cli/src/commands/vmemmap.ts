import type { Command } from 'commander';
import {
  featureDiff,
  formatSize,
  GiB,
  hugetlbVmemmapFigures,
  InputError,
  isPowerOfTwo,
  orderBase2,
  parseSize,
  resolveFeatures,
  type ArchPlugin,
  type HugetlbVmemmapFigures,
  type FeatureOverrides,
  type PluginCatalog,
  type VmemmapOutcome,
} from '@daxlab/core';
import { dataOffset, infoBlockReserve } from '@daxlab/driver-nvdimm';
import type { CliIo } from '../io.js';
import { DEFAULT_KERNEL, parseKernelFlags, type KernelOptions } from '../kernel.js';
import { catalogWithPlugins, type Importer } from '../plugins.js';
import { UsageError } from '../usage.js';

/**
 * `daxlab vmemmap --arch A [--page-size S] --size S --align S [--altmap] [--kernel V] [--feature k=v] [--json]`
 * or `daxlab vmemmap --arch A [--page-size S] --hugetlb S [--pages N] [--kernel V] [--feature k=v] [--json]`
 * (SCENARIOS.md; the --hugetlb form: docs/scenarios.md): what the memmap of one device-dax range
 * costs on a kernel, or what hugetlb pages' vmemmap costs and HVO frees — struct pages, those
 * memmap_init_zone_device() writes, the pages and bytes of memory behind them (not the page
 * tables), and the pages tail reuse saves — through the arch plugin's own populator, so every
 * arch in the catalog or loaded with --plugin answers. Register it in main.ts with the kernel
 * flags: `vmemmapOptions(kernelOptions(program.command('vmemmap'), false))`.
 */

export interface VmemmapCommandOptions extends KernelOptions {
  readonly hugetlb?: string;
  readonly pages?: string;
  readonly memmapOnMemory?: boolean;
  readonly size?: string;
  readonly align?: string;
  readonly start?: string;
  readonly altmap?: boolean;
  readonly json?: boolean;
  readonly plugin?: readonly string[];
}

export interface VmemmapDeps {
  readonly catalog: PluginCatalog;
  readonly importer?: Importer;
}

/** Where a device sits when --start is not given: where memremap_pages() places the first one (64 GiB). */
export const DEFAULT_DEVICE_START = 64 * GiB;

/** The vmemmap command's own options (the kernel flags come from main.ts; --fs and --driver are ignored). */
export function vmemmapOptions(cmd: Command): Command {
  // the kernel flags are shared with run/explore: say what they mean here
  const say = (flag: string, text: string) => {
    const opt = cmd.options.find((o) => o.long === flag);
    if (opt) opt.description = text;
  };
  say('--arch', 'architecture (required): x86, arm64, … or a --plugin arch (daxlab list plugins)');
  say('--fs', 'ignored (the memmap does not depend on a filesystem)');
  say('--driver', 'ignored (the range is a device-dax one; --altmap gives it the memmap of a pmem namespace in devdax mode)');
  return cmd
    .description('struct-page memory of one device-dax range (struct pages, those initialised, vmemmap pages and bytes, pages saved by tail reuse), or with --hugetlb of hugetlb pages and what HVO frees')
    .option('--size <size>', 'device size (4GiB, 1TiB, …)')
    .option('--align <size>', 'device-dax alignment: compound page size (vmemmap_shift); PAGE_SIZE for order-0 pages')
    .option('--start <address>', `physical start of the range (default ${formatSize(DEFAULT_DEVICE_START)}, where the first probe lands)`)
    .option('--altmap', 'memmap on the device (vmem_altmap), laid out as nd_pfn_init() does for a pmem namespace in devdax mode')
    .option('--hugetlb <size>', 'instead of a device: the vmemmap of hugetlb pages of this size and what HVO frees (switch it on with --feature hugetlb-free-vmemmap=true)')
    .option('--pages <n>', 'with --hugetlb: nr_hugepages, the pages of the pool (default 1)')
    .option('--memmap-on-memory', 'with --hugetlb: the pages lie in memory hot-added with memory_hotplug.memmap_on_memory=1 (their vmemmap self-hosted)')
    .option('--json', 'print the figures as JSON');
}

export interface VmemmapQuery {
  readonly size: number;
  readonly align: number;
  readonly start?: number;
  readonly altmap?: boolean;
  readonly version: string;
  readonly features?: FeatureOverrides | Readonly<Record<string, unknown>>;
}

/** The JSON shape of SCENARIOS.md plus how the figures came about. */
export interface VmemmapReport {
  readonly arch: string;
  readonly pageSize: number;
  readonly structPageSize: number;
  readonly size: number;
  readonly align: number;
  readonly altmap: boolean;
  readonly optimized: boolean | null;
  readonly structPages: number | null;
  readonly structPagesInitialized: number | null;
  readonly vmemmapPages: number | null;
  readonly vmemmapBytes: number | null;
  readonly savedPages: number | null;
  readonly kernel: { readonly version: string; readonly features: FeatureOverrides };
  readonly start: number;
  readonly vmemmapShift: number;
  /** the altmap's nd_pfn layout (pfns), when --altmap */
  readonly altmapLayout: { readonly reserve: number; readonly free: number } | null;
  readonly sections: number | null;
  readonly ramPages: number | null;
  readonly altmapPages: number | null;
  readonly altmapAlignPages: number | null;
  readonly compoundNrPages: number | null;
  readonly via: readonly string[];
  /** the alignment is one dax_align_valid() accepts on this arch */
  readonly alignOffered: boolean;
  /** why the arch cannot build a device-dax kernel in this version, or null */
  readonly unsupported: string | null;
  readonly outcome: 'completed' | 'oops' | 'error';
  readonly oops: string | null;
  readonly error: string | null;
}

/**
 * The figures for one device on one arch plugin: dev_dax_probe()'s vmemmap_shift from the
 * alignment (with compound devmaps), nd_pfn_init()'s altmap layout when the memmap is on the
 * device (info block reserve, memmap rounded up to the namespace alignment, which is at least
 * memremap_compat_align()), then the arch's populator. Throws InputError on a size or alignment
 * the kernel cannot describe.
 */
export function vmemmapReport(arch: ArchPlugin, q: VmemmapQuery): VmemmapReport {
  const mmu = arch.mmu;
  const ps = mmu.basePageSize;
  if (!isPowerOfTwo(q.align) || q.align < ps) throw new InputError(`--align ${formatSize(q.align)}: an alignment is a power of two of at least PAGE_SIZE (${formatSize(ps)} on ${arch.arch})`, undefined, 'align');
  if (q.size <= 0) throw new InputError(`--size ${formatSize(q.size)}: a device has a positive size`, undefined, 'size');
  if (q.size % q.align !== 0) throw new InputError(`--size ${formatSize(q.size)}: a device-dax range is a whole number of its alignment (${formatSize(q.align)})`, undefined, 'size');
  const start = q.start ?? DEFAULT_DEVICE_START;
  if (start % q.align !== 0) throw new InputError(`--start ${formatSize(start)}: a device-dax range starts on its alignment (${formatSize(q.align)})`, undefined, 'start');
  const features = resolveFeatures(q.version, q.features ?? {});
  const vmemmapShift = features['compound-devmap'] && q.align > ps ? orderBase2(q.align / ps) : 0;
  const altmap = q.altmap ?? false;
  let layout: { reserve: number; free: number } | null = null;
  let error: string | null = null;
  if (altmap) {
    const nsAlign = Math.max(q.align, mmu.memremapCompatAlign ?? mmu.subsectionSize);
    const offset = dataOffset(q.size, ps, nsAlign, true);
    const reserve = infoBlockReserve(ps) / ps;
    if (offset >= q.size) error = `ENXIO: nd_pfn_init: a ${formatSize(q.size)} namespace has no room for data after its ${formatSize(offset)} of info block and memmap`;
    layout = { reserve, free: offset / ps - reserve };
  }
  const unsupported = arch.unsupported?.({ arch: arch.arch, pageSize: ps, fs: null, driver: 'devdax', version: q.version, features }) ?? null;
  // nd_pfn_init() refusing the namespace means memremap_pages() is never called
  const outcome: VmemmapOutcome | null = error
    ? null
    : arch.populator.populate(mmu, { start, size: q.size, vmemmapShift, altmap, ...(layout ? { altmapLayout: layout } : {}), features, version: q.version });
  const f = outcome?.ok ? outcome.figures : null;
  const d = f?.detail;
  return {
    arch: arch.arch,
    pageSize: ps,
    structPageSize: mmu.structPageSize,
    size: q.size,
    align: q.align,
    altmap,
    optimized: f?.optimized ?? null,
    structPages: f?.structPages ?? null,
    structPagesInitialized: f?.structPagesInitialized ?? null,
    vmemmapPages: f?.vmemmapPages ?? null,
    vmemmapBytes: f?.vmemmapBytes ?? null,
    savedPages: f?.savedPages ?? null,
    kernel: { version: q.version, features: featureDiff(q.version, features) },
    start,
    vmemmapShift,
    altmapLayout: layout,
    sections: d?.sections ?? null,
    ramPages: d?.ramPages ?? null,
    altmapPages: d?.altmapPages ?? null,
    altmapAlignPages: d?.altmapAlignPages ?? null,
    compoundNrPages: d?.compoundNrPages ?? null,
    via: d?.via ?? [],
    alignOffered: mmu.devdaxAlignments.includes(q.align),
    unsupported,
    outcome: outcome?.ok ? 'completed' : outcome && 'oops' in outcome ? 'oops' : 'error',
    oops: outcome && !outcome.ok && 'oops' in outcome ? outcome.oops : null,
    error: error ?? (outcome && !outcome.ok && 'errno' in outcome ? `${outcome.errno}: ${outcome.message}` : null),
  };
}

const n = (v: number | null) => (v === null ? '-' : v.toLocaleString('en-US'));

/** `daxlab vmemmap --hugetlb`: one hugetlb page's vmemmap and HVO's verdict, and a pool of them. */
export interface HugetlbVmemmapReport extends HugetlbVmemmapFigures {
  readonly arch: string;
  readonly pageSize: number;
  readonly structPageSize: number;
  readonly kernel: { readonly version: string; readonly features: FeatureOverrides };
  /** the pages lie in memory hot-added with memmap_on_memory (--memmap-on-memory) */
  readonly memmapOnMemory: boolean;
  /**
   * the pool: `pages` pages of this size, each as the figures say; pteTablePages: the PTE tables
   * HVO allocates splitting PMD-mapped vmemmap (vmemmap_split_pmd()) when the pages are contiguous
   * and the first starts a vmemmap PMD (the fewest: pages scattered over memory split more)
   */
  readonly pool: { readonly pages: number; readonly vmemmapPages: number; readonly vmemmapBytes: number; readonly savedPages: number; readonly savedBytes: number; readonly pteTablePages: number };
}

/**
 * The vmemmap of hugetlb pages of one size on an arch plugin, with and without HVO as the kernel
 * decides (core's hugetlbVmemmapFigures() with the arch's hugetlbVmemmapOptIn), for one page and
 * for a pool of `pages` (every pool page of an hstate gets the same treatment: pages come from
 * boot RAM, never from memmap_on_memory blocks). Throws InputError on a size the arch does not
 * offer (arch_hugetlb_valid_size()).
 */
export function hugetlbVmemmapReport(arch: ArchPlugin, q: { readonly hugetlbSize: number; readonly pages?: number; readonly memmapOnMemory?: boolean; readonly version: string; readonly features?: FeatureOverrides | Readonly<Record<string, unknown>> }): HugetlbVmemmapReport {
  const mmu = arch.mmu;
  const sizes = mmu.hugetlbSizes ?? [];
  if (!sizes.includes(q.hugetlbSize)) {
    throw new InputError(`--hugetlb ${formatSize(q.hugetlbSize)}: not a hugetlb page size of ${arch.arch} with ${formatSize(mmu.basePageSize)} pages (arch_hugetlb_valid_size(): ${sizes.map(formatSize).join(', ') || 'none'})`, undefined, 'hugetlb');
  }
  const pages = q.pages ?? 1;
  if (!Number.isInteger(pages) || pages < 0) throw new InputError(`--pages ${pages}: nr_hugepages is a whole number of pages, 0 or more`, undefined, 'pages');
  const features = resolveFeatures(q.version, q.features ?? {});
  const f = hugetlbVmemmapFigures(mmu, arch.populator.hugetlbVmemmapOptIn, { hugetlbSize: q.hugetlbSize, version: q.version, enabled: features['hugetlb-free-vmemmap'], memmapOnMemory: q.memmapOnMemory ?? false });
  const ps = mmu.basePageSize;
  const pmdMapped = arch.populator.vmemmapPmdMapped?.(mmu, q.version) ?? false;
  const pteTablePages = f.optimized && pmdMapped ? Math.ceil((pages * f.vmemmapBytes) / mmu.pmdSize) : 0;
  return {
    arch: arch.arch,
    pageSize: ps,
    structPageSize: mmu.structPageSize,
    kernel: { version: q.version, features: featureDiff(q.version, features) },
    memmapOnMemory: q.memmapOnMemory ?? false,
    ...f,
    pool: { pages, vmemmapPages: pages * f.keptPages, vmemmapBytes: pages * f.keptPages * ps, savedPages: pages * f.freedPages, savedBytes: pages * f.freedPages * ps, pteTablePages },
  };
}

/** The table rendering of a hugetlb report: one fact per line. */
export function renderHugetlbVmemmapTable(r: HugetlbVmemmapReport): string {
  // a size whose struct pages fill part of one page gives fractions: show them exactly
  const pg = (v: number) => `${v.toLocaleString('en-US', { maximumFractionDigits: 6 })} page${v === 1 ? '' : 's'}`;
  let hvo: string;
  if (r.optimized) hvo = `optimised: ${pg(r.freedPages)} of vmemmap freed per huge page, ${pg(r.reservePages)} kept (HUGETLB_VMEMMAP_RESERVE_SIZE)`;
  else if (r.folioRefusal) hvo = `on, but not for these pages: ${r.folioRefusal}`;
  else if (r.optimizable) hvo = `off (hugetlb_free_vmemmap=off, the default): --feature hugetlb-free-vmemmap=true frees ${pg(r.freeablePages)} per huge page`;
  else hvo = `not available: ${r.refusal}`;
  const rows: [string, string][] = [
    ['arch', `${r.arch} (PAGE_SIZE ${formatSize(r.pageSize)}, struct page ${r.structPageSize} B)`],
    ['kernel', `${r.kernel.version}${Object.keys(r.kernel.features).length ? ` ${Object.entries(r.kernel.features).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : ''}`],
    ['hugetlb page', `${formatSize(r.hugetlbSize)}: ${n(r.structPages)} struct pages, ${formatSize(r.vmemmapBytes)} of vmemmap (${pg(r.vmemmapPages)})`],
    ['HVO', hvo],
    ['pool', `${pg(r.pool.pages)}: ${formatSize(r.pool.vmemmapBytes)} of vmemmap (${pg(r.pool.vmemmapPages)}), ${formatSize(r.pool.savedBytes)} freed by HVO (${pg(r.pool.savedPages)})${r.pool.pteTablePages ? `, ${pg(r.pool.pteTablePages)} of PTE tables to split the vmemmap PMDs (pages contiguous)` : ''}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

/** The default (table) rendering: one fact per line. */
export function renderVmemmapTable(r: VmemmapReport): string {
  const rows: [string, string][] = [
    ['arch', `${r.arch} (PAGE_SIZE ${formatSize(r.pageSize)}, struct page ${r.structPageSize} B)`],
    ['kernel', `${r.kernel.version}${Object.keys(r.kernel.features).length ? ` ${Object.entries(r.kernel.features).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : ''}`],
    ['device', `${formatSize(r.size)} at ${formatSize(r.start)}, align ${formatSize(r.align)}${r.alignOffered ? '' : ' (not a device-dax alignment on this arch)'}, vmemmap_shift ${r.vmemmapShift}`],
    ['memmap', r.altmap ? `on the device (altmap reserve ${r.altmapLayout?.reserve}, free ${n(r.altmapLayout?.free ?? null)} pfns)` : 'in RAM'],
  ];
  if (r.unsupported) rows.push(['unsupported', r.unsupported]);
  if (r.outcome === 'completed') {
    rows.push(
      ['optimized', r.optimized ? `yes (${r.via.join(', ')})` : `no (${r.via.join(', ')})`],
      ['struct pages', n(r.structPages)],
      ['initialised', `${n(r.structPagesInitialized)}${r.compoundNrPages !== null ? ` (compound_nr_pages ${n(r.compoundNrPages)})` : ''}`],
      ['vmemmap pages', `${n(r.vmemmapPages)} (RAM ${n(r.ramPages)}, device ${n(r.altmapPages)}${r.altmapAlignPages ? `, ${n(r.altmapAlignPages)} altmap pfns of alignment` : ''})`],
      ['vmemmap bytes', `${n(r.vmemmapBytes)} (${formatSize(r.vmemmapBytes ?? 0)})`],
      ['saved pages', n(r.savedPages)],
      ['sections', n(r.sections)],
    );
  } else if (r.outcome === 'oops') {
    rows.push(['outcome', 'kernel oops'], ['oops', r.oops ?? '']);
  } else {
    rows.push(['outcome', 'memremap_pages() failed'], ['error', r.error ?? '']);
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

function sizeFlag(flag: string, value: string | undefined, required: boolean): number | undefined {
  if (value === undefined) {
    if (required) throw new UsageError(`${flag} is required`, 'e.g. daxlab vmemmap --arch x86 --size 1TiB --align 2MiB');
    return undefined;
  }
  try {
    return parseSize(value, flag);
  } catch (e) {
    if (e instanceof InputError) throw new UsageError(e.message);
    throw e;
  }
}

/** `daxlab vmemmap`: print the figures. Exit code 0, or 1 when the kernel oopses or memremap_pages() fails. */
export async function vmemmapCommand(o: VmemmapCommandOptions, io: CliIo, deps: VmemmapDeps): Promise<number> {
  const catalog = await catalogWithPlugins(deps.catalog, o.plugin ?? [], io.cwd, deps.importer);
  if (o.arch === undefined) throw new UsageError('--arch is required', `arches: ${Object.keys(catalog.arch).join(', ')}`);
  const axes = parseKernelFlags(o, catalog, false);
  if (o.hugetlb !== undefined) return hugetlbCommand(o, io, catalog, axes);
  if (o.pages !== undefined) throw new UsageError('--pages counts hugetlb pages: it goes with --hugetlb <size>');
  if (o.memmapOnMemory) throw new UsageError('--memmap-on-memory places hugetlb pages: it goes with --hugetlb <size> (a device-dax range\'s memmap on the device is --altmap)');
  const size = sizeFlag('--size', o.size, true)!;
  const align = sizeFlag('--align', o.align, true)!;
  const start = sizeFlag('--start', o.start, false);
  const arch = archFor(catalog, axes, o);
  const features = Object.fromEntries(axes.features.map(([k, v]) => [k, v[0]]));
  let report: VmemmapReport;
  try {
    report = vmemmapReport(arch, { size, align, altmap: o.altmap ?? false, version: axes.version?.[0] ?? DEFAULT_KERNEL.version, features, ...(start !== undefined ? { start } : {}) });
  } catch (e) {
    if (e instanceof InputError) throw new UsageError(e.message);
    throw e;
  }
  io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : renderVmemmapTable(report));
  return report.outcome === 'completed' ? 0 : 1;
}

/** The arch plugin for --arch / --page-size (the catalog's constructors refuse a page size they lack). */
function archFor(catalog: PluginCatalog, axes: ReturnType<typeof parseKernelFlags>, o: VmemmapCommandOptions): ArchPlugin {
  try {
    return catalog.arch[axes.arch![0]!]!(axes.pageSize !== undefined ? { pageSize: axes.pageSize } : {});
  } catch (e) {
    throw new UsageError(`--page-size ${o.pageSize ?? ''}: ${(e as Error).message}`.trim(), `page sizes are per arch (arm64: 4KiB, 16KiB, 64KiB)`);
  }
}

/** `daxlab vmemmap --hugetlb <size> [--pages N]`: exit code 0 (figures, whatever the verdict). */
function hugetlbCommand(o: VmemmapCommandOptions, io: CliIo, catalog: PluginCatalog, axes: ReturnType<typeof parseKernelFlags>): number {
  const deviceFlags = (['size', 'align', 'start', 'altmap'] as const).filter((k) => o[k] !== undefined);
  if (deviceFlags.length) throw new UsageError(`--hugetlb asks about hugetlb pages; ${deviceFlags.map((k) => `--${k}`).join(', ')} describe${deviceFlags.length === 1 ? 's' : ''} a device-dax range: give one or the other`);
  const hugetlbSize = sizeFlag('--hugetlb', o.hugetlb, true)!;
  let pages: number | undefined;
  if (o.pages !== undefined) {
    if (!/^\d+$/.test(o.pages.trim())) throw new UsageError(`--pages ${o.pages}: nr_hugepages is a whole number of pages (e.g. --pages 512)`);
    pages = Number(o.pages);
  }
  const arch = archFor(catalog, axes, o);
  const features = Object.fromEntries(axes.features.map(([k, v]) => [k, v[0]]));
  let report: HugetlbVmemmapReport;
  try {
    report = hugetlbVmemmapReport(arch, { hugetlbSize, version: axes.version?.[0] ?? DEFAULT_KERNEL.version, features, memmapOnMemory: o.memmapOnMemory ?? false, ...(pages !== undefined ? { pages } : {}) });
  } catch (e) {
    if (e instanceof InputError) throw new UsageError(e.message);
    throw e;
  }
  io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : renderHugetlbVmemmapTable(report));
  return 0;
}
