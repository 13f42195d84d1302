import type { FeatureSet } from '../features.js';
import { isPowerOfTwo } from '../units.js';

/**
 * VMEMMAP_RESERVE_NR (include/linux/mm.h, v6.6): vmemmap pages each compound page keeps for
 * itself: the page holding the head struct page and the first tail page, which every other tail
 * vmemmap PTE of the compound maps again. The same 2 pages were hard-coded before v6.6
 * (vmemmap_populate_compound_pages, 4917f55b4ef9; compound_nr_pages, 6fd3620b3428).
 */
export const VMEMMAP_RESERVE_NR = 2;

/** What the DAX vmemmap decision looks at, for one pgmap. */
export interface OptimizeQuery {
  readonly pageSize: number;
  readonly structPageSize: number;
  /** pgmap->vmemmap_shift: pgmap_vmemmap_nr() = 1 << shift */
  readonly vmemmapShift: number;
  readonly altmap: boolean;
  /** the arch opts in (ARCH_WANT_OPTIMIZE_VMEMMAP v6.4, ARCH_WANT_OPTIMIZE_DAX_VMEMMAP or an override v6.6) */
  readonly archOptsIn: boolean;
}

/**
 * Whether __populate_section_memmap() takes vmemmap_populate_compound_pages(), by feature
 * `vmemmap-optimize`:
 * - `off`: never (before 4917f55b4ef9 there was no compound tail reuse);
 * - `unguarded` (4917f55b4ef9 to v6.3): inline `is_power_of_2(sizeof(struct page)) && pgmap &&
 *   pgmap_vmemmap_nr(pgmap) > 1 && !altmap` on every arch: any compound pgmap, even one whose
 *   struct pages fill less than one vmemmap page;
 * - `arch-opt-in` (87a7ae75d738, v6.4; the form since v6.6, include/linux/mm.h
 *   __vmemmap_can_optimize): the arch opted in, power-of-two struct page, no altmap, and more
 *   than VMEMMAP_RESERVE_NR vmemmap pages per compound page. (v6.4-v6.5 still tested
 *   pgmap_vmemmap_nr > 1; only 64 KiB-page arches opting in could tell, and none did before v6.6.)
 */
export function vmemmapCanOptimize(mode: FeatureSet['vmemmap-optimize'], q: OptimizeQuery): boolean {
  if (mode === 'off' || q.vmemmapShift === 0 || q.altmap || !isPowerOfTwo(q.structPageSize)) return false;
  if (mode === 'unguarded') return true;
  if (!q.archOptsIn) return false;
  return (2 ** q.vmemmapShift * q.structPageSize) / q.pageSize > VMEMMAP_RESERVE_NR;
}

/**
 * compound_nr_pages() (mm/mm_init.c; mm/page_alloc.c before v6.4): how many struct pages of each
 * compound memmap_init_zone_device() writes. With tail reuse only the unique ones:
 * VMEMMAP_RESERVE_NR * PAGE_SIZE / sizeof(struct page) (128 at 4 KiB, 2048 at 64 KiB); else all
 * pgmap_vmemmap_nr(). The v5.19-v6.3 form (6fd3620b3428) returned 2 * PAGE_SIZE / sizeof(struct
 * page) whenever the struct page size was a power of two and there was no altmap, i.e. exactly
 * when the unguarded populate path was taken.
 */
export function compoundNrPages(optimized: boolean, q: Pick<OptimizeQuery, 'pageSize' | 'structPageSize' | 'vmemmapShift'>): number {
  if (!optimized) return 2 ** q.vmemmapShift;
  return (VMEMMAP_RESERVE_NR * q.pageSize) / q.structPageSize;
}
