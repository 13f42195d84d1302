import { kernelAtLeast, KiB, MiB, vmemmapPopulator, type Mmu, type VmemmapArchModel, type VmemmapPopulator, type VmemmapRequest } from '@daxlab/core';
import { s390SectionSize } from './mmu.js';

/**
 * s390's own vmemmap_populate() (arch/s390/mm/vmem.c): add_pagetable(start, end, false) ->
 * modify_pmd_table(direct = false). It never calls vmemmap_populate_basepages():
 * - with EDAT1 every empty segment (PMD, 1 MiB of vmemmap VA = the struct pages of 64 MiB) gets
 *   a whole 1 MiB frame, even when only part of it will hold struct pages (the kernel's comment:
 *   smaller mappings would cost page tables, as vmemmap_populate() runs once per section); partly
 *   used frames are tracked with vmemmap_use_new_sub_pmd(), a segment that is already a leaf is
 *   reused (vmemmap_use_sub_pmd());
 * - without EDAT1 (or when no frame can be had) a page table and 4 KiB pages.
 * The frames came from RAM (vmemmap_alloc_block(PMD_SIZE, ...)) until "s390/mm: allocate vmemmap
 * pages from self-contained memory range" (memmap_on_memory for s390, v6.8 [M]) passed the
 * altmap: vmemmap_alloc_block_buf(PMD_SIZE, NUMA_NO_NODE, altmap); when the altmap cannot give a
 * frame the kernel tries 4 KiB pages from the same altmap and fails with -ENOMEM when those run
 * out too (modelled as ENOMEM at the frame: the 4 KiB retry is not modelled).
 *
 * DAX vmemmap optimisation: s390 selected ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP (HugeTLB), which
 * 0b376f1e0ff5 renamed to ARCH_WANT_OPTIMIZE_VMEMMAP in v6.4, so in v6.4-v6.5 vmemmap_can_optimize()
 * said yes for s390 (moot: no device-dax there). The v6.6 split gave s390 only
 * ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (the series left out the arches without device-dax: s390,
 * loongarch, riscv).
 */
/**
 * The generic vmemmap_populate_compound_pages() builds its tables with vmemmap_p?d_populate(),
 * one zeroed PAGE_SIZE block per table: s390 region and segment tables are 16 KiB CRST tables of
 * 2048 entries whose empty value has the invalid bit set, so a zeroed 4 KiB page is neither big
 * enough nor empty (in seed 003 Joao Martins notes that the change regressed s390, which never
 * uses vmemmap_populate_basepages()). Reachable only in the unguarded
 * releases with a compound pgmap, which s390 could not create then (no ZONE_DEVICE): the answer
 * of `daxlab vmemmap --arch s390 --kernel v6.1 --align 1MiB`, not of any real probe.
 */
export function s390CompoundPathOops(_mmu: Mmu, req: VmemmapRequest): string {
  return (
    `vmemmap_populate_compound_pages() (vmemmap-optimize=${req.features['vmemmap-optimize']}, vmemmap_shift ${req.vmemmapShift}) builds s390 region/segment tables from zeroed 4 KiB pages: ` +
    `s390 CRST tables are 16 KiB with invalid-bit empty entries, so the walk reads zero entries as valid and writes past the table (hypothetical: no ZONE_DEVICE on s390 in those releases)`
  );
}

/**
 * HugeTLB Vmemmap Optimization on s390 (arch/s390/Kconfig): selected from 00a34d5a99c0 "s390:
 * select ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP" (the s390 pull for v6.2 [M]) until "s390:
 * Disable ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP" (Heiko Carstens, 2025-10-30, Fixes: 00a34d5a99c0,
 * Cc stable; v6.18 [M]): reproducible crashes, because s390 kernel page tables are changed without
 * the break-before-make (invalidate, then write) the architecture requires.
 */
export function s390HugetlbVmemmapOptIn(version: string): string | null {
  if (!kernelAtLeast(version, 6, 2)) return 's390 selects ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP only from v6.2 (00a34d5a99c0 [M])';
  if (kernelAtLeast(version, 6, 18)) return 's390 dropped ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP in v6.18 ("s390: Disable ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP" [M]): remapping kernel page table entries without break-before-make crashed';
  return null;
}

export function s390ArchModel(edat1: boolean): VmemmapArchModel {
  return {
    vmemmapInInitMm: true,
    hugetlbVmemmapOptIn: s390HugetlbVmemmapOptIn,
    compoundPathOops: s390CompoundPathOops,
    sectionSize: s390SectionSize, // 28 bits before v6.13
    optsInToDaxVmemmapOptimization: (version) => kernelAtLeast(version, 6, 4) && !kernelAtLeast(version, 6, 6),
    backing: (_chunk, ctx) => ({
      blockSize: edat1 ? 1 * MiB : 4 * KiB,
      useAltmap: kernelAtLeast(ctx.version, 6, 8),
      onAltmapFailure: 'enomem',
      via: edat1 ? 'vmemmap_populate (s390 modify_pmd_table: 1 MiB segment frames)' : 'vmemmap_populate (s390 modify_pte_table: 4 KiB pages, no EDAT1)',
    }),
  };
}

export function s390Populator(edat1 = true): VmemmapPopulator {
  return vmemmapPopulator(s390ArchModel(edat1));
}
