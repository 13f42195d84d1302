import { populateDeviceMemmap, vmemmapPopulator, type ArchPlugin, type KernelDescription, type MemmapBacking, type Mmu, type SectionRun, type VmemmapArchModel, type VmemmapOutcome, type VmemmapRequest } from '@daxlab/core';

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
  sectionSize: 128 * MiB, // SECTION_SIZE_BITS 27 (arch/x86/include/asm/sparsemem.h, "matt - 128 is convenient right now")
  subsectionSize: 2 * MiB, // SUBSECTION_SHIFT 21 (include/linux/mmzone.h)
  // ARCH_HAS_PTE_SPECIAL, ARCH_HAS_PTE_DEVMAP (devmap bit gone ~v6.17); HAVE_ARCH_SOFT_DIRTY
  // (arch/x86/Kconfig, X86_64; _PAGE_SOFT_DIRTY, set by pte_mkdirty())
  pteBits: { special: true, devmap: true, softDirty: true },
  // dax_align_valid() (drivers/dax/bus.c): PAGE_SIZE, PMD_SIZE with THP, PUD_SIZE with
  // HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD (x86-64 selects it)
  devdaxAlignments: [4 * KiB, 2 * MiB, GiB],
  // arch_hugetlb_valid_size() (arch/x86/mm/hugetlbpage.c, CONFIG_X86_64): PMD_SIZE, and PUD_SIZE
  // with X86_FEATURE_GBPAGES (assumed: every x86-64 CPU of the releases modelled has 1G pages)
  hugetlbSizes: [2 * MiB, GiB],
  // /dev/mem (STRICT_DEVMEM, default y on X86: lib/Kconfig.debug). The first page is firmware's:
  // trim_bios_range() (arch/x86/kernel/setup.c) turns e820 RAM at [0, PAGE_SIZE) into reserved;
  // the PC's e820 reports the rest of the low 640 KiB as usable RAM; 640 KiB..1 MiB is the legacy
  // VGA/ROM hole; RAM resumes at 1 MiB up to the PCI hole (its top is firmware's: 3 GiB here).
  // devmem_is_allowed() (arch/x86/mm/init.c) maps all of the first MiB.
  devmem: {
    lowMemory: [
      { start: 0, end: 4 * KiB, kind: 'reserved' },
      { start: 4 * KiB, end: 640 * KiB, kind: 'ram' },
      { start: MiB, end: 3 * GiB, kind: 'ram' },
    ],
    filter: 'x86',
  },
  // memfd_secret: 447 in syscall_64.tbl and ARCH_HAS_SET_DIRECT_MAP from 7bb7f2ac24a0 "arch, mm:
  // wire up memfd_secret system call where relevant" (v5.14)
  memfdSecretSince: [5, 14],
  // userfaultfd: HAVE_ARCH_USERFAULTFD_WP (_PAGE_UFFD_WP, 5a281062af1d "userfaultfd: wp: add
  // WP pagetable tracking to x86", v5.7) and HAVE_ARCH_USERFAULTFD_MINOR (v5.13, with the hugetlbfs
  // minor-fault series)
  uffdWpSince: [5, 7],
  uffdMinorSince: [5, 13],
  // protection keys (ARCH_HAS_PKEYS with X86_INTEL_MEMORY_PROTECTION_KEYS, the pkey syscalls v4.9;
  // a CPU with PKU/OSPKE assumed): arch_max_pkey() 16 (arch/x86/include/asm/pkeys.h), key 0 the
  // default, no key reserved; the execute-only key is taken from the map at the first
  // mprotect(PROT_EXEC) (__execute_only_pkey(), arch/x86/mm/pkeys.c); PKRU does not restrict
  // instruction fetches (arch_vma_access_permitted() in asm/mmu_context.h); signal delivery gives
  // the handler init_pkru_value (fpu__clear_user_states(), `pkey-sigframe`)
  pkeys: { since: [4, 9], total: 16, reserved: [], executeOnly: 'on-demand', fetch: 'unchecked', signals: true },
  // x86 has no execute-only entries: protection_map[VM_EXEC] is PAGE_READONLY_EXEC
  // (arch/x86/mm/pgprot.c), and access_error() allows a read fault in any vma_is_accessible() VMA
  execOnlyLoads: 'readable',
  // pmdp_collapse_flush() -> flush_tlb_range() -> native_flush_tlb_multi(): an IPI to every CPU
  // running the mm, which a CPU inside GUP-fast (local_irq_save() in gup_fast()) takes only after
  // the walk; collapse_huge_page() relied on it ("After this gup_fast can't run anymore", up to
  // 70cbc3cc78a9). Native x86: paravirt TLB flushes that skip the IPI are not modelled.
  collapseFlushWaitsForGupFast: true,
  // the user address space (arch/x86/include/asm/page_64_types.h): DEFAULT_MAP_WINDOW is
  // (1 << 47) - PAGE_SIZE; TASK_SIZE_MAX is the same with 4-level paging and (1 << 56) - PAGE_SIZE
  // with 5-level paging (__VIRTUAL_MASK_SHIFT 56 when pgtable_l5_enabled(): CONFIG_X86_5LEVEL and
  // an LA57 CPU, the feature large-user-va); a hint above the window opens the rest
  // (arch_get_unmapped_area_topdown(), mmap_address_hint_valid(): b569bab78d8d, v4.14 [M])
  userVa: {
    standard: { defaultWindow: 2 ** 47 - 4 * KiB, taskSize: 2 ** 47 - 4 * KiB },
    large: { defaultWindow: 2 ** 47 - 4 * KiB, taskSize: 2 ** 56 - 4 * KiB },
    hint: 'x86',
  },
};

/**
 * Which vmemmap features x86-64 opts in to, per version (arch/x86/Kconfig):
 * - ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP `if X86_64` from v5.14 (HVO), the symbol the
 *   87a7ae75d738 fix first keyed the DAX optimisation on (its 6.3-stable backport);
 * - ARCH_WANT_OPTIMIZE_VMEMMAP `if X86_64` in v6.4-v6.5 (0b376f1e0ff5 rename, with 87a7ae75d738);
 * - ARCH_WANT_OPTIMIZE_DAX_VMEMMAP `if X86_64` from v6.6 (Aneesh's split of the option).
 * So wherever `vmemmap-optimize: arch-opt-in` applies, x86-64 is in.
 */
export function x86OptsInToDaxVmemmap(_version: string): boolean {
  return true;
}

/**
 * arch/x86/mm/init_64.c vmemmap_populate(): a chunk smaller than a section (sub-section hotplug,
 * v5.3) gets base pages from RAM — vmemmap_populate_basepages(start, end, node, NULL), the altmap
 * ignored; a full section gets PMD-sized blocks (vmemmap_populate_hugepages, with X86_FEATURE_PSE,
 * which every x86-64 CPU has), taken from the altmap when there is one, -ENOMEM when it cannot
 * supply one ("no fallback").
 */
export function x86Backing(run: SectionRun, mmu: Mmu): MemmapBacking {
  if (!run.full) return { blockSize: mmu.basePageSize, useAltmap: false, onAltmapFailure: 'enomem', via: 'vmemmap_populate_basepages' };
  return { blockSize: mmu.pmdSize, useAltmap: true, onAltmapFailure: 'enomem', via: 'vmemmap_populate_hugepages' };
}

/**
 * HugeTLB Vmemmap Optimization on x86-64: in every release that has it (core checks v5.14+).
 * fs/Kconfig HUGETLB_PAGE_FREE_VMEMMAP `depends on X86_64` (v5.14 [M]), then arch/x86/Kconfig
 * `select ARCH_WANT_HUGETLB_PAGE_FREE_VMEMMAP if X86_64` (v5.19), renamed
 * ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP, ARCH_WANT_OPTIMIZE_VMEMMAP (v6.4) and
 * ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (v6.6), always `if X86_64`.
 */
export function x86HugetlbVmemmapOptIn(_version: string): string | null {
  return null;
}

const x86Model = (archOptsIn: (version: string) => boolean): VmemmapArchModel => ({
  vmemmapInInitMm: true,
  optsInToDaxVmemmapOptimization: archOptsIn,
  hugetlbVmemmapOptIn: x86HugetlbVmemmapOptIn,
  backing: (run, { mmu }) => x86Backing(run, mmu),
});

/**
 * x86-64 memmap figures through core's generic model (sections, compound tail reuse, altmap).
 * `archOptsIn` overrides the Kconfig opt-in (to ask "what if x86 had not selected it").
 */
export function populateX86(mmu: Mmu, req: VmemmapRequest, archOptsIn = true): VmemmapOutcome {
  return populateDeviceMemmap(mmu, x86Model(() => archOptsIn), req);
}

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
    populator: vmemmapPopulator(x86Model(x86OptsInToDaxVmemmap)),
    unsupported(_k: KernelDescription): string | null {
      return null;
    },
  };
}
