import { GiB, InputError, kernelAtLeast, KiB, MiB, parseSize, type Mmu } from '@daxlab/core';

/**
 * s390x (z/Architecture). 4 KiB pages only; the Linux PMD is the segment table (1 MiB segments,
 * "large" segment frames with EDAT1) and the PUD the region-third table (2 GiB). Up to five
 * table levels (region-first/second/third, segment, page; CONFIG_PGTABLE_LEVELS 5, the ASCE
 * decides how many are in use).
 */
export const S390_PAGE_SIZE = 4 * KiB;

/**
 * SECTION_SIZE_BITS (arch/s390/include/asm/sparsemem.h): 28 (256 MiB) since "[S390] Add support
 * for memory hot-add" until e3a6970b7daf "s390/sparsemem: Reduce section size to 128 MiB"
 * (s390 pull for v6.13 [M], with virtio-mem support), 27 from then on.
 */
export function s390SectionSize(version: string): number {
  return kernelAtLeast(version, 6, 13) ? 128 * MiB : 256 * MiB;
}

/**
 * - pte bits: ARCH_HAS_PTE_SPECIAL (arch/s390/Kconfig, since 3010a5ea665a "mm: introduce
 *   ARCH_HAS_PTE_SPECIAL", v4.18; pte_special existed before as __HAVE_ARCH_PTE_SPECIAL); never
 *   ARCH_HAS_PTE_DEVMAP: s390 has no devmap PTE/PMD bit.
 * - devdax alignments: what dax_align_valid() (drivers/dax/dax-private.h) would accept if a
 *   device-dax instance existed: PAGE_SIZE and PMD_SIZE (s390 has THP on EDAT1 machines), no
 *   PUD (no HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD). The driver itself cannot run: see unsupported.ts.
 * - sectionSize: the current 128 MiB; the vmemmap model asks s390SectionSize(version) for the
 *   release it models (only the section count changes: a 1 MiB vmemmap frame holds the struct
 *   pages of 64 MiB, which divides both section sizes).
 */
export const S390_MMU: Mmu = {
  arch: 's390',
  basePageSize: S390_PAGE_SIZE,
  pmdSize: 1 * MiB,
  pudSize: null, // PUD_SIZE is 2 GiB, but no PUD-sized device mappings (no THP PUD)
  levels: 5,
  structPageSize: 64,
  sectionSize: 128 * MiB,
  subsectionSize: 2 * MiB, // SUBSECTION_SHIFT 21 (include/linux/mmzone.h)
  // HAVE_ARCH_SOFT_DIRTY (arch/s390/Kconfig); pte_mkdirty() sets _PAGE_SOFT_DIRTY with _PAGE_DIRTY
  pteBits: { special: true, devmap: false, softDirty: true },
  devdaxAlignments: [4 * KiB, 1 * MiB],
  // arch_hugetlb_valid_size() (arch/s390/mm/hugetlbpage.c): PMD_SIZE (1M) with EDAT1, PUD_SIZE
  // (2G) with EDAT2; the model maps the 1 MiB segment leaf (pudSize is null: 2G is refused)
  hugetlbSizes: [1 * MiB, 2 * GiB],
  // /dev/mem: s390 memory starts at absolute address 0 (the lowcore of the boot CPU), so what lies
  // below core's RAM is System RAM. STRICT_DEVMEM defaults to y on s390 only from v6.13
  // (2b37c814aab7 "lib/Kconfig.debug: Default STRICT_DEVMEM to "y" on s390", with virtio-mem for
  // s390); before, /dev/mem is unfiltered. s390 selects ARCH_HAS_DEVMEM_IS_ALLOWED (arch/s390/Kconfig),
  // and its devmem_is_allowed() (an inline in arch/s390/include/asm/page.h) returns 0 for every
  // pfn: with STRICT_DEVMEM, no page of /dev/mem can be mapped at all, RAM or not.
  devmem: { lowMemory: [{ start: 0, end: 4 * GiB, kind: 'ram' }], filter: 'all-refused', strictSince: [6, 13] },
  // memfd_secret: 0490d6d7ba0a "s390/mm: enable ARCH_HAS_SET_DIRECT_MAP" and 7608f70adcb1 "s390:
  // wire up memfd_secret system call" (s390 pull for v6.4)
  memfdSecretSince: [6, 4],
  // no pkeys: s390 never selects ARCH_HAS_PKEYS, so pkey_alloc / pkey_free / pkey_mprotect are
  // COND_SYSCALLs left to sys_ni_syscall (ENOSYS) and every VMA has key 0 (include/linux/pkeys.h)
  // no collapseFlushWaitsForGupFast: s390's own pmdp_collapse_flush() (arch/s390/include/asm/
  // pgtable.h, in every preset's tree: already in v4.9) is pmdp_huge_get_and_clear() ->
  // pmdp_xchg_direct(), which invalidates the segment entry with IDTE (or CSP), broadcast by the
  // hardware with no IPI, and page tables are freed by RCU (MMU_GATHER_RCU_TABLE_FREE): GUP-fast's
  // interrupts-off walk is not waited for (70cbc3cc78a9)
  // the user address space (arch/s390/include/asm/processor.h): TASK_SIZE_MAX is -PAGE_SIZE and the
  // stack sits below _REGION2_SIZE (4 TiB, the 3-level ASCE limit; STACK_TOP, less the vdso in newer
  // releases); arch_get_unmapped_area_topdown() takes any free hint below TASK_SIZE and
  // check_asce_limit() -> crst_table_upgrade() adds page-table levels for it; a search stays below
  // mmap_base
  userVa: { standard: { defaultWindow: 4 * 1024 * GiB, taskSize: 2 ** 64 - 4 * KiB }, hint: 's390' },
};

/** PUD_SIZE (region-third entry): 2 GiB. */
export const S390_PUD_SIZE = 2 * GiB;

export function s390Mmu(pageSize?: number | string): Mmu {
  if (pageSize === undefined) return S390_MMU;
  const bytes = typeof pageSize === 'number' ? pageSize : parseSize(pageSize, 'pageSize');
  if (bytes === S390_PAGE_SIZE) return S390_MMU;
  throw new InputError(`@daxlab/arch-s390: pageSize ${pageSize} is not supported; s390 has 4KiB pages only`, undefined, 'pageSize');
}
