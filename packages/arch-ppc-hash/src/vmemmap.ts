import { kernelAtLeast, MiB, KiB, vmemmapPopulator, type Mmu, type VmemmapArchModel, type VmemmapPopulator, type VmemmapRequest } from '@daxlab/core';

/**
 * mmu_vmemmap_psize (arch/powerpc/mm/book3s64/hash_utils.c htab_init_page_sizes()): 16 MiB when
 * the MMU has 16M pages and the machine booted with at least 1 GiB of RAM, else 64 KiB (else
 * 4 KiB). Every POWER server since POWER5+ has 16M pages; the smaller sizes are options.
 */
export const VMEMMAP_PAGE_SIZES = [16 * MiB, 64 * KiB, 4 * KiB] as const;
export type VmemmapPageSize = (typeof VMEMMAP_PAGE_SIZES)[number];

/**
 * H_VMEMMAP_START (arch/powerpc/include/asm/book3s/64/hash.h, hash-64k.h / hash-4k.h): the kernel
 * map areas follow H_KERN_VIRT_START in H_KERN_MAP_SIZE steps: vmalloc, I/O, vmemmap.
 * 64K: 0xc008000000000000 + 2 * 2^49; 4K: 0xc000100000000000 + 2 * 2^44. The seed's fault address
 * 0xc00c000100400038 is in the 64K vmemmap.
 */
export function hashVmemmapStart(pageSize: number): bigint {
  return pageSize === 64 * KiB ? 0xc008000000000000n + 2n * (1n << 49n) : 0xc000100000000000n + 2n * (1n << 44n);
}

/**
 * The oops of seed 003 (87a7ae75d738's commit message: "BUG: Unable to handle kernel data access
 * on write at 0xc00c000100400038 ... Oops: Kernel access of bad area, sig: 11 [#1] LE
 * PAGE_SIZE=64K MMU=Hash ... NIP __init_single_page ... memmap_init_zone_device ...
 * memremap_pages ... dev_dax_probe"): vmemmap_populate_compound_pages() happily builds vmemmap
 * PTEs in init_mm's page tables, but on hash the vmemmap region is translated only through
 * bolted HPTEs; hash_page_mm() does not resolve vmemmap addresses from Linux page tables, so the
 * first store to a struct page — mm_zero_struct_page() writes the last word first, offset 0x38 of
 * a 64-byte struct page — is a bad kernel access.
 */
export function compoundPathOops(mmu: Mmu, req: VmemmapRequest): string {
  const firstPfn = BigInt(req.start / mmu.basePageSize);
  const dar = hashVmemmapStart(mmu.basePageSize) + firstPfn * BigInt(mmu.structPageSize) + BigInt(mmu.structPageSize - 8);
  const ps = mmu.basePageSize >= MiB ? `${mmu.basePageSize / MiB}M` : `${mmu.basePageSize / KiB}K`;
  return (
    `BUG: Unable to handle kernel data access on write at 0x${dar.toString(16)}; Oops: Kernel access of bad area, sig: 11 [#1] ` +
    `LE PAGE_SIZE=${ps} MMU=Hash; NIP __init_single_page <- __init_zone_device_page <- memmap_init_zone_device <- memremap_pages <- devm_memremap_pages <- dev_dax_probe. ` +
    `vmemmap_populate_compound_pages() (vmemmap-optimize=${req.features['vmemmap-optimize']}, vmemmap_shift ${req.vmemmapShift}) put the compound devmap's vmemmap in init_mm page tables, ` +
    `which the hash MMU never walks for the vmemmap region: its struct pages are not mapped (fixed by 87a7ae75d738, v6.4: vmemmap_can_optimize() needs the arch opt-in)`
  );
}

/**
 * The hash MMU's vmemmap population (arch/powerpc/mm/init_64.c vmemmap_populate(), the non-radix
 * path; named __vmemmap_populate() once radix got its own):
 * - the vmemmap VA is cut into mmu_vmemmap_psize blocks (start aligned down to the block);
 * - a block already backing a valid subsection (vmemmap_populated()) is skipped;
 * - otherwise the block comes from the altmap when there is one and the pfns its struct pages
 *   describe stay inside it (altmap_cross_boundary(); end_pfn is the device's last pfn: until
 *   "powerpc/mm/dax: Fix the condition when checking if altmap vmemap can cross-boundary" (v6.5
 *   [M]) the test `start_pfn + nr_pfn > end_pfn` also refused the window ending exactly at the
 *   device's end, since then only windows reaching past it), falling back to RAM when the altmap
 *   allocation fails (16 MiB blocks may not fit the altmap's alignment);
 * - the block is recorded on vmemmap_list and bolted into the hash table with htab_bolt_mapping():
 *   no Linux page table is built.
 * One 16 MiB block holds 262144 struct pages: the memmap of 16 GiB of 64K pages.
 *
 * DAX vmemmap optimisation: powerpc never selects ARCH_WANT_OPTIMIZE_VMEMMAP (v6.4-v6.5), and
 * since v6.6 selects ARCH_WANT_OPTIMIZE_DAX_VMEMMAP only `if PPC_RADIX_MMU`, with an override
 * vmemmap_can_optimize() (book3s64/radix_pgtable.c) that is false unless radix_enabled(). Hash
 * never opts in; before 87a7ae75d738 nothing asked it (vmemmap-optimize=unguarded) and the probe
 * oopsed.
 */
/**
 * HugeTLB Vmemmap Optimization: powerpc has never selected ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP,
 * ARCH_WANT_OPTIMIZE_VMEMMAP or ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (the v6.6 split gave it only
 * the DAX option, for radix). On hash the remap could not work anyway: HVO walks and rewrites the
 * init_mm page tables of the vmemmap (walk_kernel_page_table_range), and hash vmemmap is bolted
 * HPTEs with no Linux page table behind them.
 */
export function hashHugetlbVmemmapOptIn(_version: string): string | null {
  return 'powerpc never selects ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (hash vmemmap is bolted HPTEs, not init_mm page tables the HVO remap walks)';
}

export function hashArchModel(vmemmapPageSize: VmemmapPageSize): VmemmapArchModel {
  return {
    vmemmapInInitMm: false,
    optsInToDaxVmemmapOptimization: () => false,
    hugetlbVmemmapOptIn: hashHugetlbVmemmapOptIn,
    backing: (_chunk, ctx) => ({
      blockSize: vmemmapPageSize,
      useAltmap: true,
      onAltmapFailure: 'ram',
      altmapBoundaryCheck: kernelAtLeast(ctx.version, 6, 5) ? 'inside' : 'before-end',
      via: 'vmemmap_populate (hash: htab_bolt_mapping of mmu_vmemmap_psize blocks)',
    }),
    compoundPathOops,
  };
}

export function hashPopulator(vmemmapPageSize: VmemmapPageSize = 16 * MiB): VmemmapPopulator {
  return vmemmapPopulator(hashArchModel(vmemmapPageSize));
}
