import type { ArchPlugin, KernelDescription, Mmu, VmemmapOutcome, VmemmapPopulator, VmemmapRequest } from '@daxlab/core';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** x86-64 with 4-level paging (arch/x86/include/asm/pgtable_64_types.h, page_64_types.h, sparsemem.h). */
export const X86_MMU: Mmu = {
  arch: 'x86',
  basePageSize: 4 * KiB, // PAGE_SHIFT 12
  pmdSize: 2 * MiB, // PMD_SHIFT 21
  pudSize: GiB, // PUD_SHIFT 30; HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD (device-dax PUD faults)
  levels: 4,
  structPageSize: 64, // sizeof(struct page) on x86-64 without debug options
  sectionSize: 128 * MiB, // SECTION_SIZE_BITS 27
  subsectionSize: 2 * MiB, // SUBSECTION_SHIFT 21 (include/linux/mmzone.h)
  pteBits: { special: true, devmap: true }, // ARCH_HAS_PTE_SPECIAL, ARCH_HAS_PTE_DEVMAP (devmap bit gone ~v6.17)
  devdaxAlignments: [4 * KiB, 2 * MiB, GiB], // dev_dax_size alignments: PAGE_SIZE, PMD_SIZE, PUD_SIZE
};

/** VMEMMAP_RESERVE_NR (include/linux/mm.h): vmemmap pages kept per compound page. */
const VMEMMAP_RESERVE_NR = 2;

/**
 * vmemmap_can_optimize() / its unguarded predecessor (mm/sparse-vmemmap.c
 * __populate_section_memmap): power-of-two struct page, compound pgmap, no altmap, more than
 * VMEMMAP_RESERVE_NR vmemmap pages per compound page; feature `vmemmap-optimize` says whether the
 * arch opt-in matters (v6.4+, ARCH_WANT_OPTIMIZE_VMEMMAP selected by x86-64).
 */
export function canOptimize(mmu: Mmu, req: VmemmapRequest, archOptsIn: boolean): boolean {
  const mode = req.features['vmemmap-optimize'];
  if (mode === 'off' || req.vmemmapShift === 0 || req.altmap) return false;
  if ((mmu.structPageSize & (mmu.structPageSize - 1)) !== 0) return false;
  const perCompound = (2 ** req.vmemmapShift * mmu.structPageSize) / mmu.basePageSize;
  if (perCompound <= VMEMMAP_RESERVE_NR) return false;
  return mode === 'unguarded' || archOptsIn;
}

/**
 * vmemmap figures for a device range:
 * - unoptimised: vmemmap_populate() maps 64 bytes per page; x86 backs it with PMD-sized blocks
 *   (vmemmap_populate_hugepages, base pages when a block cannot be had), so the memory is the
 *   struct-page bytes rounded up to whole 2 MiB blocks per section range;
 * - optimised: vmemmap_populate_compound_pages() keeps VMEMMAP_RESERVE_NR vmemmap pages per
 *   compound page and maps the rest to the reused tail page; memmap_init_zone_device()
 *   initialises compound_nr_pages() = VMEMMAP_RESERVE_NR * PAGE_SIZE / sizeof(struct page)
 *   struct pages per compound page instead of all of them.
 */
export function populateX86(mmu: Mmu, req: VmemmapRequest, archOptsIn: boolean): VmemmapOutcome {
  const pages = req.size / mmu.basePageSize;
  const optimized = canOptimize(mmu, req, archOptsIn);
  const bytes = pages * mmu.structPageSize;
  if (!optimized) {
    // altmap: the memmap comes from the device in base pages; RAM: PMD-sized vmemmap blocks
    const block = req.altmap ? mmu.basePageSize : mmu.pmdSize;
    const vmemmapBytes = Math.ceil(bytes / block) * block;
    return { ok: true, figures: { structPages: pages, structPagesInitialized: pages, vmemmapPages: vmemmapBytes / mmu.basePageSize, vmemmapBytes, savedPages: 0, optimized: false } };
  }
  const nr = 2 ** req.vmemmapShift;
  const compounds = pages / nr;
  const perCompound = (nr * mmu.structPageSize) / mmu.basePageSize;
  const vmemmapPages = compounds * VMEMMAP_RESERVE_NR;
  const initPerCompound = (VMEMMAP_RESERVE_NR * mmu.basePageSize) / mmu.structPageSize;
  return {
    ok: true,
    figures: {
      structPages: pages,
      structPagesInitialized: compounds * initPerCompound,
      vmemmapPages,
      vmemmapBytes: vmemmapPages * mmu.basePageSize,
      savedPages: compounds * (perCompound - VMEMMAP_RESERVE_NR),
      optimized: true,
    },
  };
}

const X86_POPULATOR: VmemmapPopulator = {
  vmemmapInInitMm: true,
  // x86-64 selects ARCH_WANT_OPTIMIZE_VMEMMAP (v6.4, 87a7ae75d738) / _DAX_VMEMMAP (v6.6)
  optsInToDaxVmemmapOptimization: () => true,
  populate: (mmu, req) => populateX86(mmu, req, true),
};

export interface X86Options {
  /** x86-64 has only 4 KiB base pages */
  readonly pageSize?: number | string;
}

/** The x86-64 arch plugin. */
export function x86(options: X86Options = {}): ArchPlugin {
  const ps = options.pageSize;
  if (ps !== undefined && ps !== 4096 && ps !== '4KiB' && ps !== '4K') throw new Error(`@daxlab/arch-x86: pageSize ${ps} is not supported; x86-64 has 4KiB pages only`);
  return {
    kind: 'arch',
    name: '@daxlab/arch-x86',
    arch: 'x86',
    coreRange: '>=0.1.0 <1.0.0',
    mmu: X86_MMU,
    populator: X86_POPULATOR,
    unsupported(_k: KernelDescription): string | null {
      return null;
    },
  };
}
