import type { Mmu, VmemmapDetail, VmemmapOutcome, VmemmapPopulator, VmemmapRequest } from '../arch.js';
import { formatSize } from '../units.js';
import { altmapAllocBlocks, newAltmap, type AltmapState } from './altmap.js';
import type { HugetlbVmemmapOptIn } from './hugetlb.js';
import { compoundNrPages, vmemmapCanOptimize } from './optimize.js';
import { sectionRuns, sectionsTouched, type SectionRun } from './sections.js';

/**
 * How an arch's vmemmap_populate() obtains the memory behind one section chunk's struct pages
 * (the unoptimised path of __populate_section_memmap). Every arch maps vmemmap in naturally
 * aligned blocks of virtual address space and skips a block that an earlier chunk already
 * populated (pte/pmd not none, ppc's vmemmap_populated()); they differ in the block size, in
 * whether the altmap is honoured for the chunk, and in what happens when the altmap cannot give a
 * block.
 */
export interface MemmapBacking {
  /** vmemmap bytes one allocation maps: PAGE_SIZE (base pages), PMD_SIZE, a hash page, a frame */
  readonly blockSize: number;
  /** blocks come from the vmem_altmap when the pgmap has one (x86 sub-section chunks: no) */
  readonly useAltmap: boolean;
  /**
   * when altmap_alloc_block_buf() returns NULL: `enomem` fails the populate (generic
   * vmemmap_populate_hugepages "No fallback", base pages through vmemmap_pte_populate); `ram`
   * allocates the block from RAM instead (ppc64 __vmemmap_populate).
   */
  readonly onAltmapFailure: 'enomem' | 'ram';
  /**
   * ppc64 altmap_cross_boundary() (arch/powerpc/mm/init_64.c): a block whose struct pages describe
   * pfns outside the altmap's range is never taken from the altmap. end_pfn is the range's last
   * pfn (nd_pfn: PHYS_PFN(res->end)), and the test changed:
   * - `inside` (v6.6 [M], "powerpc/mm/dax: Fix the condition when checking if altmap vmemap can
   *   cross-boundary", Fixes: cf387d9644d8, in Aneesh Kumar's series that added the ppc64 DAX
   *   vmemmap optimisation): refused when start_pfn + nr_pfn - 1 > end_pfn, so a window ending at
   *   the device's last pfn qualifies ("without this fix, the last subsection vmemmap can end up
   *   in memory even if the namespace ... has sufficient space in the altmap area");
   * - `before-end` (before it; `true` means the same): refused when start_pfn + nr_pfn > end_pfn,
   *   which also sent the window ending exactly at end_pfn to RAM.
   */
  readonly altmapBoundaryCheck?: boolean | 'inside' | 'before-end';
  /** the kernel routine, for reports: 'vmemmap_populate_hugepages', ... */
  readonly via: string;
}

/** What an arch tells the generic model (its VmemmapPopulator, minus populate()). */
export interface VmemmapArchModel {
  /** vmemmap lives in init_mm page tables (false on ppc64 hash: bolted HPTEs only). */
  readonly vmemmapInInitMm: boolean;
  /** The arch opts in to the DAX vmemmap optimisation in this kernel version. */
  optsInToDaxVmemmapOptimization(version: string): boolean;
  /** Whether it selects HugeTLB Vmemmap Optimization in a version (null) or why not; absent: never (vmemmap/hugetlb.ts). */
  readonly hugetlbVmemmapOptIn?: HugetlbVmemmapOptIn;
  /** The backing vmemmap_populate() uses for one run of section chunks in this version. */
  backing(chunk: SectionRun, ctx: BackingContext): MemmapBacking;
  /**
   * The oops the arch takes when the generic vmemmap_populate_compound_pages() runs on it (it
   * builds vmemmap tables the generic way, in init_mm). Absent: the compound path works when
   * vmemmapInInitMm, and oopses with a generic message when not.
   */
  compoundPathOops?(mmu: Mmu, req: VmemmapRequest): string;
  /**
   * SECTION_SIZE_BITS of this release as a size, when it changed over time (arm64 before v5.12,
   * s390 before v6.13); absent: mmu.sectionSize, the current value.
   */
  sectionSize?(version: string): number;
}

export interface BackingContext {
  readonly mmu: Mmu;
  readonly version: string;
  readonly altmap: boolean;
}

interface Tally {
  ram: number;
  altmap: number;
  reused: number;
  /** vmemmap VA populated so far, in pages of PAGE_SIZE: [.., end) */
  end: number;
}

const fail = (errno: 'EINVAL' | 'ENOMEM', message: string): VmemmapOutcome => ({ ok: false, errno, message });

/**
 * The memmap of one device range, as memremap_pages() -> arch_add_memory() -> __add_pages() ->
 * section_activate() -> __populate_section_memmap() builds it, and the struct pages
 * memmap_init_zone_device() / memmap_init_range() then write. Arithmetic over (runs of)
 * sections; the cost does not grow with the size of the device.
 *
 * Assumes the range is not in an early (boot) section, whose memmap section_activate() reuses.
 */
export function populateDeviceMemmap(mmu: Mmu, arch: VmemmapArchModel, req: VmemmapRequest): VmemmapOutcome {
  const ps = mmu.basePageSize;
  const sps = mmu.structPageSize;
  const subPages = mmu.subsectionSize / ps;
  const secPages = (arch.sectionSize?.(req.version) ?? mmu.sectionSize) / ps;
  if (req.start % ps !== 0 || req.size % ps !== 0 || req.size <= 0) return fail('EINVAL', `range ${req.start}+${req.size} is not in whole pages of ${formatSize(ps)}`);
  const startPfn = req.start / ps;
  const nrPages = req.size / ps;
  // __add_pages() -> check_pfn_span(): SPARSEMEM_VMEMMAP hot-adds whole subsections only
  if (startPfn % subPages !== 0 || nrPages % subPages !== 0) {
    return fail('EINVAL', `check_pfn_span: start ${formatSize(req.start)} and size ${formatSize(req.size)} must be multiples of the subsection size ${formatSize(mmu.subsectionSize)}`);
  }
  const perCompound = 2 ** req.vmemmapShift;
  if (nrPages % perCompound !== 0) return fail('EINVAL', `size ${formatSize(req.size)} is not a whole number of ${formatSize(perCompound * ps)} compound pages`);
  const optimized = vmemmapCanOptimize(req.features['vmemmap-optimize'], {
    pageSize: ps,
    structPageSize: sps,
    vmemmapShift: req.vmemmapShift,
    altmap: req.altmap,
    archOptsIn: arch.optsInToDaxVmemmapOptimization(req.version),
  });
  if (optimized && arch.compoundPathOops) return { ok: false, oops: arch.compoundPathOops(mmu, req) };
  if (optimized && !arch.vmemmapInInitMm) {
    // seed 003: the generic compound path builds vmemmap PTEs in init_mm, which this MMU never
    // walks for kernel vmemmap; the first struct page write takes the fault.
    return {
      ok: false,
      oops: `Kernel access of bad area: ${mmu.arch} vmemmap is not mapped by init_mm page tables, but vmemmap_populate_compound_pages() populated the compound devmap there; memmap_init_zone_device() -> __init_single_page() faults on the unmapped struct pages (dev_dax_probe)`,
    };
  }
  const runs = sectionRuns(startPfn, nrPages, secPages);
  const layout = req.altmapLayout ?? { reserve: 0, free: nrPages };
  const altmap = req.altmap ? newAltmap(startPfn, nrPages, layout) : null;
  const t: Tally = { ram: 0, altmap: 0, reused: 0, end: 0 };
  const via = new Set<string>();
  if (optimized) {
    via.add('vmemmap_populate_compound_pages');
    for (const run of runs) compoundRun(t, run, { ps, sps, subPages, startPfn, perCompound });
  } else {
    for (const run of runs) {
      const b = arch.backing(run, { mmu, version: req.version, altmap: req.altmap });
      via.add(b.via);
      const err = blockRun(t, run, b, altmap, ps, sps, req.present ?? []);
      if (err) return fail('ENOMEM', err);
    }
  }
  const nrInit = compoundNrPages(optimized, { pageSize: ps, structPageSize: sps, vmemmapShift: req.vmemmapShift });
  // memmap_init_zone_device(): per compound, the head plus compound_nr_pages() - 1 tails (never
  // more distinct pages than the compound has); with an altmap, memmap_init_range() writes the
  // memmap's own `free` pfns and memmap_init_zone_device() the data after them: all but `reserve`.
  const structPagesInitialized = optimized
    ? (nrPages / perCompound) * Math.min(nrInit, perCompound)
    : altmap
      ? nrPages - Math.min(layout.reserve, nrPages)
      : nrPages;
  const vmemmapPages = t.ram + t.altmap;
  const detail: VmemmapDetail = {
    sections: sectionsTouched(runs),
    ramPages: t.ram,
    altmapPages: t.altmap,
    altmapAlignPages: altmap?.align ?? 0,
    compoundNrPages: req.vmemmapShift > 0 ? nrInit : null,
    via: [...via],
  };
  return {
    ok: true,
    figures: { structPages: nrPages, structPagesInitialized, vmemmapPages, vmemmapBytes: vmemmapPages * ps, savedPages: t.reused, optimized, detail },
  };
}

/** Unoptimised: count the new blocks each run's vmemmap VA needs and where they come from. */
function blockRun(t: Tally, run: SectionRun, b: MemmapBacking, altmap: AltmapState | null, ps: number, sps: number, present: NonNullable<VmemmapRequest['present']>): string | null {
  const B = b.blockSize;
  const vstart = run.pfn * sps;
  const vend = (run.pfn + run.nrPages * run.count) * sps;
  let first = Math.max(Math.floor(vstart / B) * B, Math.ceil((t.end * ps) / B) * B);
  let last = Math.ceil(vend / B) * B;
  // a neighbour's memmap lies wholly before or after this range, so it can only have populated
  // the first or the last block of it already
  const populated = (blockStart: number) => present.some((r) => (r.start / ps) * sps < blockStart + B && ((r.start + r.size) / ps) * sps > blockStart);
  if (last > first && populated(first)) first += B;
  if (last > first && populated(last - B)) last -= B;
  const blocks = Math.max(0, (last - first) / B);
  t.end = Math.max(t.end, last / ps);
  const pagesPerBlock = B / ps;
  if (!altmap || !b.useAltmap) {
    t.ram += blocks * pagesPerBlock;
    return null;
  }
  // blocks [lo, hi) may come from the altmap; the others (outside its pfns) from RAM
  let lo = 0;
  let hi = blocks;
  if (b.altmapBoundaryCheck) {
    lo = Math.min(blocks, Math.max(0, Math.ceil((altmap.basePfn * sps - first) / B)));
    // the last pfn a block's window may describe: end_pfn ('inside'), or one less ('before-end')
    const lastPfn = b.altmapBoundaryCheck === 'inside' ? altmap.endPfn : altmap.endPfn - 1;
    hi = Math.max(lo, Math.min(blocks, Math.floor(((lastPfn + 1) * sps - B - first) / B) + 1));
  }
  const want = hi - lo;
  const got = altmapAllocBlocks(altmap, pagesPerBlock, want);
  if (got < want && b.onAltmapFailure === 'enomem') {
    return `${b.via}: the altmap has ${Math.max(0, altmap.free - altmap.alloc - altmap.align)} free pfns left, a ${formatSize(B)} block needs ${pagesPerBlock} (vmem_altmap free ${altmap.free}, reserve ${altmap.reserve}); memremap_pages() fails`;
  }
  t.altmap += got * pagesPerBlock;
  t.ram += (blocks - got) * pagesPerBlock;
  return null;
}

interface CompoundGeometry {
  readonly ps: number;
  readonly sps: number;
  readonly subPages: number;
  readonly startPfn: number;
  readonly perCompound: number;
}

/**
 * vmemmap_populate_compound_pages() over a run of chunks. Full sections repeat with a period of
 * max(1, compound / section) chunks; two periods are simulated and, when they agree, the rest is
 * multiplied out.
 */
function compoundRun(t: Tally, run: SectionRun, g: CompoundGeometry): void {
  const period = Math.max(1, g.perCompound / run.nrPages);
  let i = 0;
  const chunks = (n: number) => {
    const before = { ram: t.ram, reused: t.reused, end: t.end };
    for (const stop = i + n; i < stop; i++) compoundChunk(t, run.pfn + i * run.nrPages, run.nrPages, g);
    return { ram: t.ram - before.ram, reused: t.reused - before.reused, end: t.end - before.end };
  };
  if (Number.isInteger(period) && run.count > 3 * period) {
    chunks(period);
    const d = chunks(period);
    const again = chunks(period);
    if (d.ram === again.ram && d.reused === again.reused && d.end === again.end) {
      const periods = Math.floor((run.count - i) / period);
      t.ram += periods * d.ram;
      t.reused += periods * d.reused;
      t.end += periods * d.end;
      i += periods * period;
    }
  }
  chunks(run.count - i);
}

/** One section chunk through vmemmap_populate_compound_pages(); vmemmap pages tracked by index. */
function compoundChunk(t: Tally, pfn: number, nrPages: number, g: CompoundGeometry): void {
  const { ps, sps, perCompound } = g;
  const vstart = pfn * sps;
  const vend = vstart + nrPages * sps;
  // reuse_compound_section(): a chunk that starts inside a compound larger than a subsection maps
  // every vmemmap page to the page behind the PTE just before it (compound_section_tail_page())
  if ((pfn - g.startPfn) % perCompound !== 0 && perCompound > g.subPages) {
    const from = Math.max(Math.floor(vstart / ps), t.end);
    const to = Math.ceil(vend / ps);
    t.reused += Math.max(0, to - from);
    t.end = Math.max(t.end, to);
    return;
  }
  const size = Math.min(vend - vstart, perCompound * sps);
  const pieces = Math.ceil((vend - vstart) / size);
  const firstPage = Math.floor(vstart / ps);
  if (size % ps === 0 && size >= 2 * ps && vstart % ps === 0 && firstPage >= t.end) {
    // each compound: head and first-tail vmemmap pages new, the other PTEs reuse the first tail page
    t.ram += 2 * pieces;
    t.reused += pieces * (size / ps - 2);
    t.end = firstPage + pieces * (size / ps);
    return;
  }
  if (size < ps) {
    // compound struct pages smaller than a page (only the unguarded form allows it): the head and
    // "tail" pages of every piece are just the next vmemmap pages; nothing is left to reuse
    const lastPage = Math.floor((vstart + (pieces - 1) * size) / ps) + 1;
    t.ram += Math.max(0, lastPage + 1 - Math.max(firstPage, t.end));
    t.end = Math.max(t.end, lastPage + 1);
    return;
  }
  for (let p = 0; p < pieces; p++) {
    const addr = vstart + p * size;
    const last = addr + size;
    const p0 = Math.floor(addr / ps);
    for (const page of [p0, p0 + 1]) {
      if (page >= t.end) {
        t.ram++;
        t.end = page + 1;
      }
    }
    const reuseFrom = addr + 2 * ps;
    if (last > reuseFrom) {
      const to = Math.floor(reuseFrom / ps) + Math.ceil((last - reuseFrom) / ps);
      t.reused += Math.max(0, to - Math.max(Math.floor(reuseFrom / ps), t.end));
      t.end = Math.max(t.end, to);
    }
  }
}

/** A VmemmapPopulator for an arch described by a VmemmapArchModel. */
export function vmemmapPopulator(arch: VmemmapArchModel): VmemmapPopulator {
  return {
    vmemmapInInitMm: arch.vmemmapInInitMm,
    optsInToDaxVmemmapOptimization: (version) => arch.optsInToDaxVmemmapOptimization(version),
    ...(arch.hugetlbVmemmapOptIn ? { hugetlbVmemmapOptIn: arch.hugetlbVmemmapOptIn } : {}),
    // a whole section of RAM is backed as vmemmap_populate() backs any full section
    vmemmapPmdMapped: (mmu, version) => {
      const secPages = (arch.sectionSize?.(version) ?? mmu.sectionSize) / mmu.basePageSize;
      return arch.backing({ pfn: 0, nrPages: secPages, count: 1, full: true }, { mmu, version, altmap: false }).blockSize === mmu.pmdSize;
    },
    sectionSize: (mmu, version) => arch.sectionSize?.(version) ?? mmu.sectionSize,
    populate: (mmu, req) => populateDeviceMemmap(mmu, arch, req),
  };
}
