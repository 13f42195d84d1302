import {
  KiB,
  MiB,
  parseSize,
  kernelAtLeast,
  type ArchPlugin,
  type KernelDescription,
  type MemmapBacking,
  type Mmu,
  type SectionRun,
  type VmemmapArchModel,
  type VmemmapPopulator,
  vmemmapPopulator,
} from '@daxlab/core';

/** arm64 translation granules (CONFIG_ARM64_4K_PAGES / _16K_PAGES / _64K_PAGES). */
export const ARM64_PAGE_SIZES = [4 * KiB, 16 * KiB, 64 * KiB] as const;
export type Arm64PageSize = (typeof ARM64_PAGE_SIZES)[number];

/**
 * Per granule, with CONFIG_ARM64_VA_BITS=48 (arch/arm64/include/asm/pgtable-hwdef.h: each level
 * resolves PAGE_SHIFT - 3 bits, PMD_SHIFT = ARM64_HW_PGTABLE_LEVEL_SHIFT(2) = 2 * PAGE_SHIFT - 3,
 * CONFIG_PGTABLE_LEVELS = (VA_BITS - 4) / (PAGE_SHIFT - 3)):
 * - 4K: PAGE_SHIFT 12, PMD_SHIFT 21 (2 MiB), PUD_SHIFT 30 (1 GiB), 4 levels;
 * - 16K: PAGE_SHIFT 14, PMD_SHIFT 25 (32 MiB), PUD 36 (64 GiB), 4 levels;
 * - 64K: PAGE_SHIFT 16, PMD_SHIFT 29 (512 MiB), 3 levels (the PUD is folded: 42 bits per PGD entry).
 * pudSize is null for all: arm64 does not select HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD, so no
 * device memory is ever mapped by a PUD leaf and dax_align_valid() offers no PUD_SIZE alignment.
 */
export interface GranuleFacts {
  readonly pmdSize: number;
  /**
   * What one entry of the level above the PMD maps (PUD_SIZE; with 64K pages and 3 levels the
   * PUD is folded into the PGD, whose entries map 4 TiB). Page-table geometry only: arm64 never
   * maps device memory with it (Mmu.pudSize is null).
   */
  readonly pudSize: number;
  readonly levels: number;
  readonly sectionBits: number;
}
const GRANULES = new Map<Arm64PageSize, GranuleFacts>([
  // SECTION_SIZE_BITS (arch/arm64/include/asm/sparsemem.h): 27 for 4K and 16K ("at least 128MB
  // for 4K base page size config. Otherwise PMD based huge page entries could not be created for
  // vmemmap mappings. 16K follows 4K for simplicity"), 29 for 64K (to hold MAX_ORDER), since
  // f0b13ee23241 "arm64/sparsemem: reduce SECTION_SIZE_BITS" (v5.12 [M]); 30 for all before.
  [4 * KiB, { pmdSize: 2 * MiB, pudSize: 2 ** 30, levels: 4, sectionBits: 27 }],
  [16 * KiB, { pmdSize: 32 * MiB, pudSize: 2 ** 36, levels: 4, sectionBits: 27 }],
  [64 * KiB, { pmdSize: 512 * MiB, pudSize: 2 ** 42, levels: 3, sectionBits: 29 }],
]);
const facts = (p: Arm64PageSize): GranuleFacts => GRANULES.get(p)!;

/** The page-table geometry of a granule (48-bit VA). */
export function arm64Granule(pageSize: Arm64PageSize): GranuleFacts {
  return facts(pageSize);
}

/** 1 << SECTION_SIZE_BITS in this release (see GRANULES). */
export function arm64SectionSize(pageSize: Arm64PageSize, version: string): number {
  return 2 ** (kernelAtLeast(version, 5, 12) ? facts(pageSize).sectionBits : 30);
}

export function arm64Mmu(pageSize: Arm64PageSize): Mmu {
  const g = facts(pageSize);
  return {
    arch: 'arm64',
    basePageSize: pageSize,
    pmdSize: g.pmdSize,
    pudSize: null,
    levels: g.levels,
    structPageSize: 64, // sizeof(struct page), no debug options
    sectionSize: 2 ** g.sectionBits, // the current SECTION_SIZE_BITS; older releases: arm64SectionSize()
    subsectionSize: 2 * MiB, // SUBSECTION_SHIFT 21 on every arch (include/linux/mmzone.h)
    // ARCH_HAS_PTE_SPECIAL; ARCH_HAS_PTE_DEVMAP from 73b20c84d42d "arm64: mm: implement pte_devmap
    // support" (v5.7 [M]) until the devmap bit was removed (~v6.17 [M])
    // no soft-dirty: arch/arm64/Kconfig never selects HAVE_ARCH_SOFT_DIRTY (clear_refs 4 is a no-op)
    pteBits: { special: true, devmap: true, softDirty: false },
    // dax_align_valid() (drivers/dax/bus.c): PAGE_SIZE, and PMD_SIZE with THP; no PUD_SIZE
    devdaxAlignments: [pageSize, g.pmdSize],
    // __hugetlb_valid_size() (arch/arm64/mm/hugetlbpage.c): PUD_SIZE where pud_sect_supported()
    // (4K granule), CONT_PMD_SIZE, PMD_SIZE, CONT_PTE_SIZE (4K: 1G, 32M, 2M, 64K; 16K: 32M with
    // 2M cont-PTE and 1G cont-PMD; 64K: 512M with 2M cont-PTE and 16G cont-PMD). Only the PMD
    // size is one leaf the model maps (pudSize is null: no PUD leaves at all); the rest are refused.
    hugetlbSizes: [...(pageSize === 4 * KiB ? [2 ** 30] : []), g.pmdSize * (pageSize === 4 * KiB ? 16 : 32), g.pmdSize, pageSize * (pageSize === 4 * KiB ? 16 : pageSize === 16 * KiB ? 128 : 32)],
    // /dev/mem (STRICT_DEVMEM, default y on ARM64: lib/Kconfig.debug): devmem_is_allowed() refuses
    // System RAM (lib/devmem_is_allowed.c via GENERIC_LIB_DEVMEM_IS_ALLOWED, ~v5.9 [M]; the same test in
    // arch/arm64/mm/mmap.c before). Where RAM lies is the platform's, not the kernel's: daxlab's
    // arm64 is QEMU's "virt" machine (hw/arm/virt.c: flash at 0, RAM from 1 GiB), so the only
    // System RAM below core's starts at 1 GiB. A board with RAM at physical 0 would refuse the
    // selftest's mapping.
    devmem: { lowMemory: [{ start: 1024 * MiB, end: 4096 * MiB, kind: 'ram' }], filter: 'ram-refused' },
    // memfd_secret: __ARCH_WANT_MEMFD_SECRET in the arm64 unistd.h from 7bb7f2ac24a0 (v5.14);
    // can_set_direct_map() needs rodata_full, on by default (RODATA_FULL_DEFAULT_ENABLED)
    memfdSecretSince: [5, 14],
    // userfaultfd: HAVE_ARCH_USERFAULTFD_MINOR with the v5.13 minor-fault series;
    // HAVE_ARCH_USERFAULTFD_WP from 5b32510af77b "arm64/mm: Add uffd write-protect support" (v6.10)
    uffdWpSince: [6, 10],
    uffdMinorSince: [5, 13],
    // protection keys: Permission Overlay Extension (ARM64_POE, ARCH_HAS_PKEYS from v6.12; a CPU
    // with FEAT_S1POE assumed): arch_max_pkey() 8 (arch/arm64/include/asm/pkeys.h), key 0 the
    // default, none reserved; execute_only_pkey() is -1 (execute-only mappings use EPAN); POE's X
    // bit checks instruction fetches (POR_EL0_INIT: only key 0 RWX); signal delivery resets POR_EL0
    // to POR_EL0_INIT for the handler (arch/arm64/kernel/signal.c, `pkey-sigframe`)
    pkeys: { since: [6, 12], total: 8, reserved: [], executeOnly: 'none', fetch: 'combined', signals: true },
    // no collapseFlushWaitsForGupFast: the generic pmdp_collapse_flush() invalidates by broadcast
    // TLBI, no IPI, and GUP-fast relies on RCU table freeing (MMU_GATHER_RCU_TABLE_FREE): the
    // architecture of 70cbc3cc78a9's race
    // the user address space (arch/arm64/include/asm/processor.h): DEFAULT_MAP_WINDOW_64 is
    // 1 << VA_BITS_MIN, TASK_SIZE_64 1 << vabits_actual; with VA_BITS 48 both are 1 << 48. With
    // CONFIG_ARM64_VA_BITS_52 (the feature large-user-va; arm64Unsupported() refuses it where the
    // release lacks it) TASK_SIZE is 1 << 52 and the window stays at VA_BITS_MIN: 48, or 47 with
    // 16K pages (LPA2, v6.9 [M]). arch_get_mmap_end() / arch_get_mmap_base() open the rest to a
    // hint above the window (generic_get_unmapped_area_topdown())
    userVa: {
      standard: { defaultWindow: 2 ** 48, taskSize: 2 ** 48 },
      large: { defaultWindow: 2 ** (pageSize === 16 * KiB ? 47 : 48), taskSize: 2 ** 52 },
      hint: 'generic',
    },
  };
}

/**
 * arm64 and the DAX vmemmap optimisation, per version (arch/arm64/Kconfig): arm64 selected
 * ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP (HugeTLB only) in v5.19-v6.2 (arm64HugetlbVmemmapOptIn)
 * and dropped it again with 060a2c92d1b6 "arm64: mm: hugetlb: Disable HUGETLB_PAGE_OPTIMIZE_VMEMMAP"
 * (v6.3), so it did not
 * select ARCH_WANT_OPTIMIZE_VMEMMAP when 87a7ae75d738 (v6.4) keyed the DAX optimisation on it,
 * and it has never selected ARCH_WANT_OPTIMIZE_DAX_VMEMMAP (v6.6+). Under the unguarded form
 * (v5.19-v6.3) the generic code optimised on arm64 regardless — arm64 keeps vmemmap in init_mm
 * page tables, so that worked.
 */
export function arm64OptsInToDaxVmemmap(_version: string): boolean {
  return false;
}

/**
 * arch/arm64/mm/mmu.c vmemmap_populate(): with 16K or 64K pages always
 * vmemmap_populate_basepages(start, end, node, altmap); with 4K pages PMD blocks
 * (vmemmap_populate_hugepages: -ENOMEM when the altmap cannot supply one), and — since
 * "arm64: mm: Populate vmemmap at the page level if not section aligned" (v6.14, Zhenhua Huang;
 * stable-backported) — base pages for a chunk smaller than a section. Before that fix a
 * sub-section chunk still got a whole PMD block. The altmap is honoured on every path since
 * eee07935bb52 "arm64/mm: enable vmem_altmap support for vmemmap mappings" (v5.9 [M]), before
 * the first release with arm64 ZONE_DEVICE we model.
 */
export function arm64Backing(pageSize: Arm64PageSize, run: SectionRun, version: string): MemmapBacking {
  const basepages: MemmapBacking = { blockSize: pageSize, useAltmap: true, onAltmapFailure: 'enomem', via: 'vmemmap_populate_basepages' };
  if (pageSize !== 4 * KiB) return basepages;
  if (!run.full && kernelAtLeast(version, 6, 14)) return basepages;
  return { blockSize: facts(pageSize).pmdSize, useAltmap: true, onAltmapFailure: 'enomem', via: 'vmemmap_populate_hugepages' };
}

/**
 * HugeTLB Vmemmap Optimization on arm64 (arch/arm64/Kconfig): selected from 1e63ac088f20 "arm64:
 * mm: hugetlb: enable HUGETLB_PAGE_FREE_VMEMMAP for arm64" (v5.19: the revert is marked for
 * "5.19.x") until 060a2c92d1b6 "arm64: mm: hugetlb: Disable HUGETLB_PAGE_OPTIMIZE_VMEMMAP" (posted
 * 2023-02-22, v6.3 [M], backported to the 5.19+ stable trees, which the presets do not follow):
 * vmemmap_remap_pte() changes a live vmemmap PTE's permission and output address, which the Arm
 * architecture calls UNPREDICTABLE without break-before-make, and break-before-make is impossible
 * while the kernel may read the vmemmap. Not selected again in mainline as read (the 2024 re-enable
 * RFCs with a vmemmap fault handler were not merged).
 */
export function arm64HugetlbVmemmapOptIn(version: string): string | null {
  if (!kernelAtLeast(version, 5, 19)) return 'arm64 selects ARCH_WANT_HUGETLB_PAGE_FREE_VMEMMAP only from v5.19 (1e63ac088f20); HVO was x86-64 only before';
  if (kernelAtLeast(version, 6, 3)) {
    return 'arm64 dropped ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP in v6.3 (060a2c92d1b6 "arm64: mm: hugetlb: Disable HUGETLB_PAGE_OPTIMIZE_VMEMMAP" [M]): remapping a live vmemmap PTE needs break-before-make, which the concurrently read vmemmap cannot have';
  }
  return null;
}

export function arm64ArchModel(pageSize: Arm64PageSize): VmemmapArchModel {
  return {
    vmemmapInInitMm: true,
    optsInToDaxVmemmapOptimization: arm64OptsInToDaxVmemmap,
    hugetlbVmemmapOptIn: arm64HugetlbVmemmapOptIn,
    backing: (run, ctx) => arm64Backing(pageSize, run, ctx.version),
    sectionSize: (version) => arm64SectionSize(pageSize, version),
  };
}

/** The populator: core's model with arm64's backing and the SECTION_SIZE_BITS of each release. */
export function arm64Populator(pageSize: Arm64PageSize): VmemmapPopulator {
  return vmemmapPopulator(arm64ArchModel(pageSize));
}

/**
 * Why arm64 cannot run a kernel with a device driver in this release: ZONE_DEVICE needs
 * ARCH_HAS_PTE_DEVMAP and memory hot-remove (mm/Kconfig), which arm64 got in v5.7
 * (73b20c84d42d; bbd6ec605c0f "arm64/mm: Enable memory hot remove") [M].
 */
export function arm64Unsupported(k: KernelDescription): string | null {
  if (k.driver !== null && !kernelAtLeast(k.version, 5, 7)) {
    return `arm64 has no ZONE_DEVICE in ${k.version}: it needs ARCH_HAS_PTE_DEVMAP and MEMORY_HOTREMOVE, which arm64 selects from v5.7`;
  }
  // CONFIG_ARM64_VA_BITS_52 depends on ARM64_64K_PAGES until LPA2 support for 4K and 16K pages (v6.9 [M])
  if (k.features['large-user-va'] && k.pageSize !== 64 * KiB && !kernelAtLeast(k.version, 6, 9)) {
    return `arm64 has no 52-bit user VA with ${k.pageSize / KiB}K pages in ${k.version} (large-user-va): CONFIG_ARM64_VA_BITS_52 needs 64K pages before LPA2 (v6.9)`;
  }
  return null;
}

export interface Arm64Options {
  /** translation granule: 4KiB (default), 16KiB or 64KiB */
  readonly pageSize?: number | string;
}

function granule(value: number | string | undefined): Arm64PageSize {
  if (value === undefined) return 4 * KiB;
  let bytes: number;
  try {
    bytes = parseSize(value, 'pageSize');
  } catch {
    bytes = NaN;
  }
  const g = ARM64_PAGE_SIZES.find((p) => p === bytes);
  if (g === undefined) throw new Error(`@daxlab/arch-arm64: pageSize ${value} is not an arm64 granule; use 4KiB, 16KiB or 64KiB`);
  return g;
}

/** The arm64 arch plugin. */
export function arm64(options: Arm64Options = {}): ArchPlugin {
  const pageSize = granule(options.pageSize);
  return {
    kind: 'arch',
    name: '@daxlab/arch-arm64',
    arch: 'arm64',
    coreRange: '>=0.1.0 <1.0.0',
    mmu: arm64Mmu(pageSize),
    populator: arm64Populator(pageSize),
    unsupported: arm64Unsupported,
  };
}
