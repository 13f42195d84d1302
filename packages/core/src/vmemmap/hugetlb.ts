import type { Mmu } from '../arch.js';
import { kernelAtLeast } from '../features.js';
import { formatSize, isPowerOfTwo } from '../units.js';

/**
 * HugeTLB Vmemmap Optimization (HVO, mm/hugetlb_vmemmap.c, Documentation/mm/vmemmap_dedup.rst):
 * every tail struct page of a hugetlb folio past the first few holds only compound_head, so the
 * vmemmap pages after the reserved ones are remapped onto the reserved page and freed to the buddy
 * allocator when the folio joins the pool, and allocated again when it leaves it. Unlike the DAX
 * compound reuse (optimize.ts: reuse of the first *tail* vmemmap page at populate time), HVO remaps
 * a vmemmap that already exists and reuses the *head* vmemmap page.
 *
 * What an arch tells core about HVO in one release: null when its Kconfig selects it
 * (ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP from v6.6, ARCH_WANT_OPTIMIZE_VMEMMAP in v6.4-v6.5,
 * ARCH_WANT_HUGETLB_PAGE_OPTIMIZE_VMEMMAP / _FREE_VMEMMAP before, a plain `depends on X86_64` in
 * v5.14-v5.18), else the reason it does not, with the commit. Arches without the hook have no HVO.
 */
export type HugetlbVmemmapOptIn = (version: string) => string | null;

/**
 * The release HVO arrived in: Muchun Song's "Free some vmemmap pages of HugeTLB page" series
 * (CONFIG_HUGETLB_PAGE_FREE_VMEMMAP, x86-64 only, hugetlb_free_vmemmap= boot parameter), v5.14 [M].
 */
export const HVO_SINCE = [5, 14] as const;

/**
 * HUGETLB_VMEMMAP_RESERVE_SIZE in pages: the vmemmap pages of each hugetlb folio HVO keeps.
 * - 2 in v5.14-v5.17 (RESERVE_VMEMMAP_NR 2U): the head vmemmap page and the first tail page, the
 *   others remapped onto the first tail page (4094 of 4096 freed for 1 GiB, 6 of 8 for 2 MiB);
 * - 1 from v5.18 [M] ("mm: hugetlb: free the 2nd vmemmap page associated with each HugeTLB page":
 *   RESERVE_VMEMMAP_NR 1U, every tail page remapped onto the head page, made possible by the
 *   fake-head detection of page_fixed_fake_head()); HUGETLB_VMEMMAP_RESERVE_SIZE = PAGE_SIZE in
 *   mm/hugetlb_vmemmap.h since the v6.0 [M] cleanup.
 */
export function hugetlbVmemmapReservePages(version: string): number {
  return kernelAtLeast(version, 5, 18) ? 1 : 2;
}

/**
 * The release from which memory hot-added with memory_hotplug.memmap_on_memory and HVO coexist
 * ("mm: memory_hotplug: make hugetlb_optimize_vmemmap compatible with memmap_on_memory", mm tree
 * June 2022, v6.0 [M]): a folio whose vmemmap lives in the hot-added block itself is refused
 * (first a section flag, SECTION_CANNOT_OPTIMIZE_VMEMMAP; PageVmemmapSelfHosted checked by the
 * remap walk, -ENOTSUPP, in the tree as read), the others are optimised.
 * Before, the two were exclusive at boot and "hugetlb_free_vmemmap takes precedence over
 * memory_hotplug.memmap_on_memory" (kernel-parameters.txt, v5.14): no vmemmap was self-hosted.
 */
export const HVO_MEMMAP_ON_MEMORY_SINCE = [6, 0] as const;

export interface HugetlbVmemmapQuery {
  /** the huge page size, bytes (an hstate's huge_page_size()) */
  readonly hugetlbSize: number;
  /** kernel release: a preset name or 'vX.Y' */
  readonly version: string;
  /**
   * vmemmap_optimize_enabled: booted with hugetlb_free_vmemmap=on (or built with
   * CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON=y, default n), or vm.hugetlb_optimize_vmemmap=1
   * (v5.19+) before the pages joined the pool
   */
  readonly enabled: boolean;
  /** the folio lies in memory hot-added with memory_hotplug.memmap_on_memory (its vmemmap self-hosted) */
  readonly memmapOnMemory?: boolean;
}

/** What HVO does to the vmemmap of one hugetlb folio. */
export interface HugetlbVmemmapFigures {
  readonly hugetlbSize: number;
  /** base pages in the folio: one struct page each */
  readonly structPages: number;
  /** hugetlb_vmemmap_size(): bytes of struct pages, pages_per_huge_page * sizeof(struct page) */
  readonly vmemmapBytes: number;
  /** the same in PAGE_SIZE pages (a fraction when the struct pages fill less than one page) */
  readonly vmemmapPages: number;
  /** HUGETLB_VMEMMAP_RESERVE_SIZE / PAGE_SIZE in this release */
  readonly reservePages: number;
  /** hugetlb_vmemmap_optimizable(h) on this arch and release: the kernel would optimise this size */
  readonly optimizable: boolean;
  /** why not, with the source; null when optimizable */
  readonly refusal: string | null;
  /** vmemmap pages HVO frees when it runs (hugetlb_vmemmap_optimizable_size() / PAGE_SIZE) */
  readonly freeablePages: number;
  /** HVO is switched on (hugetlb_free_vmemmap=on / vm.hugetlb_optimize_vmemmap) */
  readonly enabled: boolean;
  /** the folio's vmemmap is optimised: optimizable, enabled and not refused for this folio */
  readonly optimized: boolean;
  /** why an enabled, optimizable size is still not optimised for this folio (memmap_on_memory), else null */
  readonly folioRefusal: string | null;
  /** vmemmap pages freed for this folio: freeablePages when optimized, else 0 */
  readonly freedPages: number;
  /** vmemmap memory the folio's struct pages use, in pages: vmemmapPages - freedPages */
  readonly keptPages: number;
}

/**
 * hugetlb_vmemmap_optimizable() and vmemmap_should_optimize_folio() for one huge page size: the
 * published arithmetic of vmemmap_dedup.rst (struct_size = HugeTLB_Size / PAGE_SIZE *
 * sizeof(struct page) / PAGE_SIZE pages; 8 for a PMD-level page with 64-byte struct pages, PAGE_SIZE
 * pages for a PUD-level one) minus the reserve, refused in the order the kernel decides:
 * 1. no HVO before v5.14;
 * 2. the arch does not select it in this release (`optIn`; undefined: an arch plugin without HVO);
 * 3. sizeof(struct page) not a power of two: hugetlb_vmemmap_optimizable_size() returns 0 (v5.14
 *    refused the boot parameter instead: "cannot free vmemmap pages because \"struct page\" crosses
 *    page boundaries"), so struct pages never straddle the remapped pages;
 * 4. the struct pages fill no more than the reserve (hugetlb_vmemmap_optimizable_size() 0: the
 *    contiguous-bit sizes of vmemmap_dedup.rst, "can be optimized only when its size of the struct
 *    page structs is greater than 1 page", 2 pages before v5.18).
 * Then, per folio: HVO switched on (vmemmap_optimize_enabled), and from v6.0 the folio's vmemmap
 * not self-hosted in memory hot-added with memmap_on_memory.
 */
export function hugetlbVmemmapFigures(mmu: Mmu, optIn: HugetlbVmemmapOptIn | undefined, q: HugetlbVmemmapQuery): HugetlbVmemmapFigures {
  const ps = mmu.basePageSize;
  const sps = mmu.structPageSize;
  const structPages = q.hugetlbSize / ps;
  const vmemmapBytes = structPages * sps;
  const reservePages = hugetlbVmemmapReservePages(q.version);
  const refusal = sizeRefusal(mmu, optIn, q, vmemmapBytes, reservePages);
  const freeablePages = refusal ? 0 : vmemmapBytes / ps - reservePages;
  const folioRefusal =
    !refusal && q.enabled && q.memmapOnMemory && kernelAtLeast(q.version, ...HVO_MEMMAP_ON_MEMORY_SINCE)
      ? 'its vmemmap is self-hosted in memory hot-added with memory_hotplug.memmap_on_memory (v6.0+ [M]: SECTION_CANNOT_OPTIMIZE_VMEMMAP, now PageVmemmapSelfHosted in the remap walk, -ENOTSUPP)'
      : null;
  const optimized = !refusal && q.enabled && !folioRefusal;
  const freedPages = optimized ? freeablePages : 0;
  return {
    hugetlbSize: q.hugetlbSize,
    structPages,
    vmemmapBytes,
    vmemmapPages: vmemmapBytes / ps,
    reservePages,
    optimizable: refusal === null,
    refusal,
    freeablePages,
    enabled: q.enabled,
    optimized,
    folioRefusal,
    freedPages,
    keptPages: vmemmapBytes / ps - freedPages,
  };
}

function sizeRefusal(mmu: Mmu, optIn: HugetlbVmemmapOptIn | undefined, q: HugetlbVmemmapQuery, vmemmapBytes: number, reservePages: number): string | null {
  const ps = mmu.basePageSize;
  if (!Number.isInteger(q.hugetlbSize / ps) || q.hugetlbSize <= ps) {
    throw new RangeError(`hugetlb size ${formatSize(q.hugetlbSize)} is not a multiple of PAGE_SIZE (${formatSize(ps)}) larger than it`);
  }
  if (!kernelAtLeast(q.version, ...HVO_SINCE)) return `no HVO before v5.14 (CONFIG_HUGETLB_PAGE_FREE_VMEMMAP, "Free some vmemmap pages of HugeTLB page" [M])`;
  const archSays = optIn ? optIn(q.version) : `the ${mmu.arch} plugin does not select ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP`;
  if (archSays) return archSays;
  if (!isPowerOfTwo(mmu.structPageSize)) {
    return `sizeof(struct page) ${mmu.structPageSize} is not a power of two: struct pages cross page boundaries (hugetlb_vmemmap_optimizable_size() is 0)`;
  }
  if (vmemmapBytes <= reservePages * ps) {
    return `the ${formatSize(vmemmapBytes)} of struct pages of a ${formatSize(q.hugetlbSize)} page fit in the ${reservePages} vmemmap page${reservePages > 1 ? 's' : ''} HVO keeps (HUGETLB_VMEMMAP_RESERVE_SIZE): nothing to free (hugetlb_vmemmap_optimizable_size() is 0)`;
  }
  return null;
}
