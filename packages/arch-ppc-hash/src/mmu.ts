import { GiB, InputError, KiB, MiB, parseSize, type Mmu, type PkeyFacts } from '@daxlab/core';

/**
 * powerpc64 book3s with the hash MMU (HPT). Geometry of the Linux page tables
 * (arch/powerpc/include/asm/book3s/64/hash-64k.h and hash-4k.h):
 *   64K pages: H_PTE_INDEX_SIZE 8, H_PMD_INDEX_SIZE 10 -> PMD 16 MiB, PUD 16 GiB
 *   4K pages:  H_PTE_INDEX_SIZE 9, H_PMD_INDEX_SIZE 7  -> PMD 2 MiB,  PUD 256 MiB
 * The kernel linear map and the vmemmap are not translated through these tables: they are
 * bolted entries in the hash page table (see vmemmap.ts).
 */
export const PAGE_SIZES = [64 * KiB, 4 * KiB] as const;

/** SECTION_SIZE_BITS 24 (arch/powerpc/include/asm/sparsemem.h), for both page sizes. */
export const PPC_SECTION_SIZE = 16 * MiB;
/** PUD_SIZE of the Linux tables; never a device mapping size on hash (has_transparent_pud_hugepage() is 0). */
export const H_PUD_SIZE_64K = 16 * GiB;
export const H_PUD_SIZE_4K = 256 * MiB;

/**
 * Protection keys on the hash MMU (PPC_MEM_KEYS, the pkey syscalls from v4.16; radix has none:
 * scan_pkey_feature() returns 0 under early_radix_enabled()). `total` keys (arch_max_pkey(): the
 * "ibm,processor-storage-keys" count, 32 on POWER8/9 PowerNV and KVM, capped by what a PTE holds);
 * arch/powerpc/mm/book3s64/pkeys.c reserves key 1 (the ISA's programming note), key 2 (execute_only_key,
 * for PROT_EXEC mappings: its AMR bits deny data access and its IAMR bit allows execution in the
 * init register, and UAMOR keeps user space from changing them) and, from v5.11 [M] (hash KUAP uses
 * key 3), key 3. IAMR checks instruction fetches: the init register lets only keys 0 and 2 execute,
 * pkey_alloc() opens the key it returns (init_val without PKEY_DISABLE_EXECUTE). Signal delivery's
 * handling of AMR is not modelled (pkey_sighandler_tests.c does not build for powerpc).
 */
function ppcHashPkeys(total: number): PkeyFacts {
  return { since: [4, 16], total, reserved: [{ key: 1 }, { key: 2 }, { key: 3, since: [5, 11] }], executeOnly: { reserved: 2 }, fetch: 'separate', signals: false };
}

/**
 * 64K base pages (PPC_64K_PAGES, the distribution default and the configuration of seed 003:
 * "LE PAGE_SIZE=64K MMU=Hash").
 * - devdax alignments: dax_align_valid() (drivers/dax/dax-private.h) accepts PAGE_SIZE, PMD_SIZE
 *   when has_transparent_hugepage() and PUD_SIZE when HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD;
 *   hash__has_transparent_hugepage() (arch/powerpc/mm/book3s64/hash_pgtable.c) is true only when
 *   16M pages exist and PMD_SHIFT is 24, i.e. with 64K pages; PUD-sized device mappings need
 *   has_transparent_pud_hugepage(), which is radix-only on powerpc -> 64 KiB and 16 MiB.
 * - pte bits: ARCH_HAS_PTE_SPECIAL; ARCH_HAS_PTE_DEVMAP "if PPC_BOOK3S_64" (arch/powerpc/Kconfig,
 *   _PAGE_DEVMAP in book3s/64/pgtable.h) until the devmap bit was removed (~v6.17).
 */
export const PPC_HASH_64K_MMU: Mmu = {
  arch: 'ppc-hash',
  basePageSize: 64 * KiB,
  pmdSize: 16 * MiB,
  pudSize: null,
  levels: 4, // pgd, pud, pmd, pte (p4d folded)
  structPageSize: 64,
  sectionSize: PPC_SECTION_SIZE,
  subsectionSize: 2 * MiB, // SUBSECTION_SHIFT 21 (include/linux/mmzone.h): 32 pages of 64K
  // HAVE_ARCH_SOFT_DIRTY if PPC_BOOK3S_64 (arch/powerpc/Kconfig, 4K and 64K pages; hash and radix)
  pteBits: { special: true, devmap: true, softDirty: true },
  devdaxAlignments: [64 * KiB, 16 * MiB],
  // arch_hugetlb_valid_size() (arch/powerpc/mm/hugetlbpage.c): the sizes mmu_psize_defs has a
  // shift for; hash offers 16M and 16G (htab_init_page_sizes()), and 16M is the default
  // (hugetlbpage_init(): HPAGE_SHIFT). With 64K pages huge_pte_alloc() (book3s64) returns the PMD
  // for 16M (PMD_SHIFT 24) and the PUD for 16G (PUD_SHIFT 34): leaves in every release; the model
  // maps 16M only (pudSize is null: hash has no PUD device mappings). With 4K pages (PMD_SHIFT 21,
  // PUD_SHIFT 28) both were hugepd entries until "powerpc/64s: Use contiguous PMD/PUD instead of
  // HUGEPD" (Christophe Leroy, v7 of July 2024: v6.12 [M]; its cover letter: only hash-4k had
  // hugepd on book3s64, "hash-64k ... just leaf entries") made them contiguous PMDs / PUDs:
  // not modelled either way.
  hugetlbSizes: [16 * MiB, 16 * GiB],
  // hugetlbpage_init_defaultsize() (book3s64): HPAGE_SHIFT is the 16M page's shift where the MMU
  // has it ("Preference is 16M"), with 4K pages too, where it is not the PMD size
  defaultHugetlbSize: 16 * MiB,
  // memremap_compat_align() (arch/powerpc/mm/book3s64/pgtable.c): on hash, max(SUBSECTION_SIZE,
  // the linear map's page size), 16 MiB where the MMU has 16M pages (htab_init_page_sizes())
  memremapCompatAlign: 16 * MiB,
  // /dev/mem (STRICT_DEVMEM, default y on PPC: lib/Kconfig.debug): devmem_is_allowed()
  // (arch/powerpc/mm/mem.c) refuses System RAM but the RTAS user buffer. ppc64 RAM starts at
  // physical 0: the kernel runs at real address 0, where its exception vectors must be
  // (arch/powerpc/kernel/head_64.S), so everything below core's RAM is RAM the kernel owns.
  devmem: { lowMemory: [{ start: 0, end: 4 * GiB, kind: 'ram' }], filter: 'ram-refused' },
  // address-space slices of one page size each (arch/powerpc/include/asm/book3s/64/slice.h:
  // SLICE_LOW_SHIFT 28, SLICE_LOW_TOP 4 GiB, SLICE_HIGH_SHIFT 40; both page sizes): a hugetlb
  // mapping needs slices of its huge page size (book3s64/slice.c slice_get_unmapped_area())
  slices: { lowSize: 256 * MiB, lowTop: 4 * GiB, highSize: 1024 * GiB },
  // the user address space (arch/powerpc/include/asm/task_size_64.h, PPC_64K_PAGES):
  // DEFAULT_MAP_WINDOW_USER64 128 TiB, TASK_SIZE_USER64 4 PiB (a 52-bit address; in
  // place before v5.4 [M], so every preset);
  // slice_get_unmapped_area() raises slb_addr_limit to TASK_SIZE for a hint at or above the window
  userVa: { standard: { defaultWindow: 2 ** 47, taskSize: 2 ** 52 }, hint: 'slices' },
  // no memfdSecretSince: powerpc selects no ARCH_HAS_SET_DIRECT_MAP (mm/Kconfig SECRETMEM depends
  // on it) and has no memfd_secret in its syscall table [M]: memfd_secret() is ENOSYS
  pkeys: ppcHashPkeys(32),
  // hash__pmdp_collapse_flush() (arch/powerpc/mm/book3s64/hash_pgtable.c) ends with
  // serialize_against_pte_lookup(): an IPI to the mm's CPUs that waits out lockless page-table
  // walks such as GUP-fast (bedf03416913 dropped it for radix only)
  collapseFlushWaitsForGupFast: true,
};

/**
 * 4K base pages (PPC_4K_PAGES) with hash: PMD 2 MiB, but hash THP needs PMD_SHIFT == 24
 * (hash__has_transparent_hugepage(); hash-4k.h: H_PAGE_THP_HUGE 0, hash__pmd_trans_huge() 0),
 * so device-dax offers PAGE_SIZE only (no compound devmaps, nothing for seed 003 to trip on) and
 * fs-dax never maps a PMD.
 */
export const PPC_HASH_4K_MMU: Mmu = {
  ...PPC_HASH_64K_MMU,
  basePageSize: 4 * KiB,
  pmdSize: 2 * MiB,
  devdaxAlignments: [4 * KiB],
  // hugepage_init() then sets TRANSPARENT_HUGEPAGE_NEVER_DAX: fs-dax maps PTEs only
  transparentHugepage: false,
  // a 4K Linux PTE holds 3 key bits: num_pkey = min(8, pkeys_total) (v5.11; before, keys 8-31 were
  // reserved as os_reserved: the same keys are left)
  pkeys: ppcHashPkeys(8),
  // PPC_4K_PAGES: TASK_SIZE_USER64 and DEFAULT_MAP_WINDOW_USER64 are both 64 TiB (task_size_64.h)
  userVa: { standard: { defaultWindow: 2 ** 46, taskSize: 2 ** 46 }, hint: 'slices' },
};

/** The MMU for a page-size option (default 64 KiB); other sizes are refused with the fix. */
export function ppcHashMmu(pageSize?: number | string): Mmu {
  if (pageSize === undefined) return PPC_HASH_64K_MMU;
  const bytes = typeof pageSize === 'number' ? pageSize : parseSize(pageSize, 'pageSize');
  if (bytes === 64 * KiB) return PPC_HASH_64K_MMU;
  if (bytes === 4 * KiB) return PPC_HASH_4K_MMU;
  throw new InputError(
    `@daxlab/arch-ppc-hash: pageSize ${pageSize} is not a powerpc64 book3s page size; use 64KiB (PPC_64K_PAGES, the default) or 4KiB (PPC_4K_PAGES)`,
    undefined,
    'pageSize',
  );
}
