import type { FeatureSet } from './features.js';
import type { AltmapLayout } from './vmemmap/altmap.js';
import type { HugetlbVmemmapOptIn } from './vmemmap/hugetlb.js';

/**
 * What an architecture plugin tells the kernel about its MMU. Values are per arch and base page
 * size; cite arch/<arch>/include/asm/*.h for each constant in the plugin.
 */
export interface Mmu {
  /** Short arch name used in scenarios and reports: 'x86', 'arm64', 'ppc-hash', 's390'. */
  readonly arch: string;
  /** PAGE_SIZE in bytes. */
  readonly basePageSize: number;
  /** PMD_SIZE: the size a PMD leaf maps. */
  readonly pmdSize: number;
  /** PUD_SIZE when the arch can map device memory with a PUD leaf (THP PUD), else null. */
  readonly pudSize: number | null;
  /** Number of page-table levels in use. */
  readonly levels: number;
  /** sizeof(struct page). */
  readonly structPageSize: number;
  /** 1 << SECTION_SIZE_BITS. */
  readonly sectionSize: number;
  /** 1 << SUBSECTION_SHIFT (2 MiB in mm/sparse.c unless the arch says otherwise). */
  readonly subsectionSize: number;
  /**
   * PTE bits the arch has: pte_special (ARCH_HAS_PTE_SPECIAL), pte_devmap (ARCH_HAS_PTE_DEVMAP)
   * and pte_soft_dirty (HAVE_ARCH_SOFT_DIRTY, with CONFIG_MEM_SOFT_DIRTY=y; absent means none).
   */
  readonly pteBits: { readonly special: boolean; readonly devmap: boolean; readonly softDirty?: boolean };
  /** Device-dax alignments the arch offers (bytes). */
  readonly devdaxAlignments: readonly number[];
  /**
   * has_transparent_hugepage(): whether the MMU can map a PMD leaf for THP/DAX at all. Absent
   * means it can. When it cannot, hugepage_init() marks THP unsupported and fs-dax never tries a
   * PMD fault (TRANSPARENT_HUGEPAGE_NEVER_DAX, renamed _UNSUPPORTED by 520d6e8bc649;
   * thp_disabled_by_hw() in __thp_vma_allowable_orders() from v6.12).
   */
  readonly transparentHugepage?: boolean;
  /**
   * memremap_compat_align(): the alignment nd_pfn namespaces get at least (mm/memremap.c:
   * SUBSECTION_SIZE unless the arch overrides it; ppc64 hash: its linear-map page size).
   * Absent means subsectionSize.
   */
  readonly memremapCompatAlign?: number;
  /**
   * The huge page sizes hugetlbfs accepts (arch_hugetlb_valid_size(), bytes). Absent: none
   * (mm/hugetlb.ts refuses MAP_HUGETLB and MFD_HUGETLB). The model maps a size equal to PMD_SIZE
   * by a PMD leaf and one equal to pudSize by a PUD leaf; other sizes (arm64 cont-PTE/cont-PMD,
   * ppc64 hugepd) are refused as not modelled.
   */
  readonly hugetlbSizes?: readonly number[];
  /**
   * HPAGE_SIZE: the default_hstate (without default_hugepagesz=) that MAP_HUGETLB, SHM_HUGETLB and
   * MFD_HUGETLB without a size use (hugetlb_init(): size_to_hstate(HPAGE_SIZE)). Absent: pmdSize
   * (x86-64 and arm64 define HPAGE_SHIFT as PMD_SHIFT, s390 as 20, its segment).
   */
  readonly defaultHugetlbSize?: number;
  /**
   * What `mmap` of /dev/mem finds at a physical address below core's RAM, and the arch's
   * STRICT_DEVMEM filter (mm/devmem.ts). Absent: the arch does not say, and /dev/mem mappings
   * are refused as not modelled.
   */
  readonly devmem?: DevmemLayout;
  /**
   * The first release in which memfd_secret(2) is wired into the arch's syscall table and the arch
   * selects ARCH_HAS_SET_DIRECT_MAP (mm/Kconfig SECRETMEM depends on it); absent: never (ENOSYS).
   */
  readonly memfdSecretSince?: readonly [major: number, minor: number];
  /**
   * The first release in which the arch selects HAVE_ARCH_USERFAULTFD_WP (a _PAGE_UFFD_WP bit in
   * its PTEs); absent: never (pte_mkuffd_wp() is asm-generic/pgtable_uffd.h's no-op, and from v5.19
   * UFFDIO_API hides UFFD_FEATURE_PAGEFAULT_FLAG_WP and UFFDIO_REGISTER_MODE_WP is EINVAL).
   */
  readonly uffdWpSince?: readonly [major: number, minor: number];
  /** The first release in which the arch selects HAVE_ARCH_USERFAULTFD_MINOR (UFFDIO_REGISTER_MODE_MINOR); absent: never. */
  readonly uffdMinorSince?: readonly [major: number, minor: number];
  /**
   * Address-space slices of one MMU page size each (powerpc64 hash: mm/slices.ts), which
   * get_unmapped_area() must fit a mapping's page size into; absent: no such constraint.
   */
  readonly slices?: MmuSlices;
  /**
   * Memory protection keys (CONFIG_ARCH_HAS_PKEYS: pkey_alloc / pkey_free / pkey_mprotect, mm/pkeys.ts)
   * on a CPU that has them; absent: never (include/linux/pkeys.h fallbacks, the syscalls ENOSYS).
   */
  readonly pkeys?: PkeyFacts;
  /**
   * Whether pmdp_collapse_flush() waits for every GUP-fast walk of the mm in progress: x86's TLB
   * flush IPIs the CPUs that run the mm and GUP-fast keeps interrupts off (the "after this gup_fast
   * can't run anymore" of collapse_huge_page()), ppc64 hash calls serialize_against_pte_lookup().
   * Absent: it does not (arm64, s390: broadcast TLB invalidation, page tables freed by RCU), so a
   * GUP-fast walk may read a PTE before the collapse clears the PMD and take its reference after
   * the collapse counted the references (70cbc3cc78a9; mm/gup.ts).
   */
  readonly collapseFlushWaitsForGupFast?: boolean;
  /**
   * A load from a VMA mapped PROT_EXEC alone (VM_EXEC without VM_READ) whose key allows it:
   * `readable` where protection_map[VM_EXEC] gives a readable entry and the fault handler lets a
   * read of any vma_is_accessible() VMA through (x86: PAGE_READONLY_EXEC, access_error());
   * absent: not modelled (arm64 maps it PAGE_EXECONLY with EPAN).
   */
  readonly execOnlyLoads?: 'readable';
  /**
   * The user address-space limits get_unmapped_area() works with (mm/vaspace.ts); absent: an
   * address hint is refused as not modelled.
   */
  readonly userVa?: UserVaFacts;
}

/** One user address-space layout, in bytes (arch/<arch>/include/asm/processor.h, task_size_64.h). */
export interface UserVa {
  /**
   * DEFAULT_MAP_WINDOW: the top of what mmap() hands out without a hint above it (STACK_TOP, below
   * which mmap_base() leaves the stack its gap); s390: STACK_TOP, its 3-level asce limit
   */
  readonly defaultWindow: number;
  /** TASK_SIZE: the top of user addresses, which a hint above the window or MAP_FIXED may reach */
  readonly taskSize: number;
}

/** An arch's user address-space layouts and how its get_unmapped_area() takes a hint. */
export interface UserVaFacts {
  readonly standard: UserVa;
  /** the wider layout of the feature `large-user-va` (x86 LA57, arm64 52-bit VA); absent: the arch has one layout */
  readonly large?: UserVa;
  /**
   * whose hint check: `x86` (arch_get_unmapped_area_topdown(): mmap_address_hint_valid() refuses
   * a range that crosses DEFAULT_MAP_WINDOW), `generic` (generic_get_unmapped_area_topdown():
   * arch_get_mmap_end() / arch_get_mmap_base()), `slices` (powerpc slice_get_unmapped_area()) or
   * `s390` (its arch_get_unmapped_area_topdown(): any free hint below TASK_SIZE, the page table
   * grown by crst_table_upgrade(); no window above mmap_base for a search)
   */
  readonly hint: 'x86' | 'generic' | 'slices' | 's390';
}

/** An arch's protection keys (arch/<arch>/include/asm/pkeys.h, arch/<arch>/mm/pkeys.c). */
export interface PkeyFacts {
  /** the first release in which the arch selects ARCH_HAS_PKEYS */
  readonly since: readonly [major: number, minor: number];
  /** arch_max_pkey(): the keys a VMA (VM_PKEY_BIT*) and the rights register can name */
  readonly total: number;
  /**
   * keys besides key 0 set in every new mm's allocation map that no user interface accepts
   * (powerpc reserved_allocation_mask), each from the release given (absent: all modelled ones)
   */
  readonly reserved: readonly { readonly key: number; readonly since?: readonly [major: number, minor: number] }[];
  /**
   * how a plain mprotect(PROT_EXEC) gets an execute-only key (arch_override_mprotect_pkey()):
   * `on-demand` (x86 __execute_only_pkey(): mm_pkey_alloc() at the first use, access-disabled in
   * the caller's register, then hidden from mm_pkey_is_allocated()), `{ reserved }` (powerpc
   * execute_only_key: one of `reserved`, which the init register denies data access and allows
   * execution), `none` (arm64: execute_only_pkey() is -1, EPAN does it)
   */
  readonly executeOnly: 'on-demand' | { readonly reserved: number } | 'none';
  /**
   * how the register treats instruction fetches: `unchecked` (x86: PKRU never restricts them,
   * arch_vma_access_permitted() returns true for `execute`), `separate` (powerpc IAMR: a register
   * of its own that pkey_alloc()'s init_val sets and pkey_set(), an AMR write, leaves alone),
   * `combined` (arm64 POE: the X bit in the key's field, which PKEY_DISABLE_ACCESS leaves set).
   * Checked or not, the init register lets only key 0 (and powerpc's execute-only key) execute.
   */
  readonly fetch: 'unchecked' | 'separate' | 'combined';
  /**
   * whether signal delivery's handling of the register is modelled (`pkey-sigframe`; the handler
   * starts with the init register: x86 fpu__clear_user_states(), arm64
   * set_handler_user_access_state()); false on powerpc, which pkey_sighandler_tests.c does not build for
   */
  readonly signals: boolean;
}

/** Slice geometry in bytes (arch/powerpc/include/asm/book3s/64/slice.h). */
export interface MmuSlices {
  /** 1 << SLICE_LOW_SHIFT: the size of each slice below lowTop */
  readonly lowSize: number;
  /** SLICE_LOW_TOP: where the low slices end and the high ones take over */
  readonly lowTop: number;
  /** 1 << SLICE_HIGH_SHIFT: the size of each slice above lowTop */
  readonly highSize: number;
}

/**
 * Physical memory as /dev/mem sees it (drivers/char/mem.c mmap_mem -> range_is_allowed ->
 * devmem_is_allowed()). Core's own RAM (from 4 GiB, mm/ram.ts) is System RAM and device ranges
 * (from 64 GiB) belong to their drivers on every arch; the arch describes what lies below.
 */
export interface DevmemLayout {
  /** physical ranges (bytes, [start, end)) below 4 GiB that are System RAM or firmware-reserved; anything else there is neither (a hole, ROM or MMIO) */
  readonly lowMemory: readonly { readonly start: number; readonly end: number; readonly kind: 'ram' | 'reserved' }[];
  /**
   * The arch's devmem_is_allowed(): `x86` (arch/x86/mm/init.c: System RAM is refused except in
   * the first MiB, where it is mapped but read() sees zeros), `ram-refused`
   * (lib/devmem_is_allowed.c, arch/powerpc/mm/mem.c: any System RAM is refused) or `all-refused`
   * (arch/s390/include/asm/page.h: every pfn is refused)
   */
  readonly filter: 'x86' | 'ram-refused' | 'all-refused';
  /** the first release whose default configuration has STRICT_DEVMEM (lib/Kconfig.debug); absent: all of them */
  readonly strictSince?: readonly [major: number, minor: number];
}

/** Result of populating (and initialising) the memmap of one device range. */
export interface VmemmapFigures {
  /** struct pages the memmap of the range holds: one per base page of the range (altmap metadata pfns included). */
  readonly structPages: number;
  /** struct pages memmap_init_zone_device() writes. */
  readonly structPagesInitialized: number;
  /** pages of memory that back struct pages (not page tables). */
  readonly vmemmapPages: number;
  readonly vmemmapBytes: number;
  /** vmemmap pages not allocated thanks to compound tail reuse. */
  readonly savedPages: number;
  /** true when vmemmap_populate_compound_pages() was used. */
  readonly optimized: boolean;
  /** How the figures came about (core's generic model fills it; other populators may not). */
  readonly detail?: VmemmapDetail;
}

export interface VmemmapDetail {
  /** sections (mem_section) the range touches: one section_activate() each */
  readonly sections: number;
  /** vmemmap pages (PAGE_SIZE) allocated from RAM */
  readonly ramPages: number;
  /** vmemmap pages allocated from the device (vmem_altmap) */
  readonly altmapPages: number;
  /** altmap pfns skipped to align its blocks (vmem_altmap.align) */
  readonly altmapAlignPages: number;
  /** compound_nr_pages(): struct pages memmap_init_zone_device() writes per compound page (null: order-0) */
  readonly compoundNrPages: number | null;
  /** the kernel routines that populated the memmap */
  readonly via: readonly string[];
}

/** The outcome of vmemmap population: figures, or the oops the real kernel hits. */
export type VmemmapOutcome =
  | { readonly ok: true; readonly figures: VmemmapFigures }
  | { readonly ok: false; readonly oops: string }
  /** memremap_pages() fails with an errno (check_pfn_span, an exhausted altmap) */
  | { readonly ok: false; readonly errno: 'EINVAL' | 'ENOMEM'; readonly message: string };

export interface VmemmapRequest {
  /** physical start and size of the device range, bytes */
  readonly start: number;
  readonly size: number;
  /** pgmap->vmemmap_shift (0 for order-0 pages) */
  readonly vmemmapShift: number;
  /** memmap allocated from the device (vmem_altmap) instead of RAM */
  readonly altmap: boolean;
  /** the altmap's reserve and free pfns (nd_pfn layout); absent: reserve 0 and room for the whole memmap */
  readonly altmapLayout?: AltmapLayout;
  /**
   * Other device ranges (bytes) whose memmap is populated now (live pgmaps): a vmemmap block
   * their struct pages already occupy is not allocated again (pte/pmd not none; ppc64 hash
   * vmemmap_populated()). Matters where one block spans more than the 1 GiB between devices:
   * ppc64 hash's 16 MiB block holds the struct pages of 16 GiB.
   */
  readonly present?: readonly { readonly start: number; readonly size: number }[];
  /** the kernel's features (vmemmap-optimize decides the populator) */
  readonly features: FeatureSet;
  /** kernel version preset name, for arch facts that changed over time */
  readonly version: string;
}

/**
 * How an arch maps struct-page memory (arch/<arch>/mm/init*.c vmemmap_populate()).
 * Implemented by each arch plugin; core's vmemmap module calls it.
 */
export interface VmemmapPopulator {
  /** Whether vmemmap lives in init_mm page tables (false on ppc64 hash: bolted HPTEs). */
  readonly vmemmapInInitMm: boolean;
  /** Whether the arch selects the DAX vmemmap optimisation opt-in in this version. */
  optsInToDaxVmemmapOptimization(version: string): boolean;
  /**
   * Whether the arch selects HugeTLB Vmemmap Optimization in this version: null when it does, else
   * why not (vmemmap/hugetlb.ts). Absent: the arch has no HVO.
   */
  readonly hugetlbVmemmapOptIn?: HugetlbVmemmapOptIn;
  /**
   * Whether the memmap of (boot) RAM is mapped by PMD leaves in this version (x86-64 and arm64 4K
   * vmemmap_populate_hugepages(), s390's 1 MiB segment frames), so that HVO must split one into a
   * PTE table (vmemmap_split_pmd(): one page-table page, never merged back) before it remaps.
   * Absent: PTE-mapped, nothing to split.
   */
  vmemmapPmdMapped?(mmu: Mmu, version: string): boolean;
  /**
   * 1 << SECTION_SIZE_BITS in this release, where it changed (arm64 1 GiB before v5.12, s390
   * before v6.13); absent: mmu.sectionSize. Memory hotplug's default block size follows it.
   */
  sectionSize?(mmu: Mmu, version: string): number;
  /** Populate the memmap of a device range; pure arithmetic over sections and blocks. */
  populate(mmu: Mmu, request: VmemmapRequest): VmemmapOutcome;
}
