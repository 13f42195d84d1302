import { KernelError } from '../errors.js';
import type { Mmu, MmuSlices } from '../arch.js';
import type { Mm } from '../types.js';

/**
 * Address-space slices of the powerpc64 hash MMU (arch/powerpc/mm/book3s64/slice.c, every
 * release): a segment's hash entries have one page size, so the user address space is cut into
 * slices — 256 MiB ones below 4 GiB, 1 TiB ones above (book3s/64/slice.h: SLICE_LOW_SHIFT 28,
 * SLICE_LOW_TOP 4 GiB, SLICE_HIGH_SHIFT 40) — each of one MMU page size, the base page size
 * until a hugetlb mapping converts it (slice_convert()). get_unmapped_area() asks
 * slice_get_unmapped_area() for every mapping with its page size: a hugetlbfs file's
 * (hugetlb_get_unmapped_area() in arch/powerpc/mm/hugetlbpage.c; arch_get_unmapped_area() with
 * is_file_hugepages() in book3s64/slice.c once that hook went generic) or mm_ctx_user_psize().
 *
 * A range fits where every slice it touches has the page size ("good") or holds no VMA ("free",
 * slice_mask_for_free(); the free ones are converted). MAP_FIXED — mmap's, and mremap_to()'s
 * get_unmapped_area() after it unmapped the destination — takes the range there or fails with
 * -EBUSY ("If we have MAP_FIXED and failed the above steps, then error out"). Without it the
 * kernel searches the good slices, then the good and free ones, top-down from mmap_base; the
 * model places bottom-up (Vm.placeVma), so it takes the first position at or above its next free
 * page whose slices all fit. Slices keep their size when their VMAs go; a free slice converts
 * back. A fork child inherits the parent's slice sizes (hash__init_new_context() copies the
 * hash_mm_context). A hint at or above DEFAULT_MAP_WINDOW (128 TiB) raises slb_addr_limit to
 * TASK_SIZE and searches top-down from mmap_base moved up by the difference (mm/vaspace.ts). Not
 * modelled: 4K slices in a 64K kernel (subpage protection, cache-inhibited mappings: the "compat"
 * mask), radix (no slices).
 */

/** The slices a range of pages [start, start + pages) touches: `L<n>` below SLICE_LOW_TOP, `H<n>` above. */
export function slicesOf(mmu: Mmu, s: MmuSlices, start: number, pages: number): string[] {
  const ps = mmu.basePageSize;
  const first = start * ps;
  const last = (start + pages) * ps - 1;
  const keys: string[] = [];
  for (let a = first; a <= last; ) {
    if (a < s.lowTop) {
      const i = Math.floor(a / s.lowSize);
      keys.push(`L${i}`);
      a = (i + 1) * s.lowSize;
    } else {
      const i = Math.floor(a / s.highSize);
      keys.push(`H${i}`);
      a = (i + 1) * s.highSize;
    }
  }
  return keys;
}

/** The page range [start, end) of one slice (high slice 0 starts at SLICE_LOW_TOP: slice_high_has_vma()). */
function sliceRange(mmu: Mmu, s: MmuSlices, key: string): [number, number] {
  const i = Number(key.slice(1));
  const [from, to] = key[0] === 'L' ? [i * s.lowSize, (i + 1) * s.lowSize] : [Math.max(i * s.highSize, s.lowTop), (i + 1) * s.highSize];
  return [from / mmu.basePageSize, to / mmu.basePageSize];
}

/** get_slice_psize(): the slice's page size, in base pages (1 until converted). */
function slicePsize(mm: Mm, key: string): number {
  return mm.slicePsize?.get(key) ?? 1;
}

/** !slice_*_has_vma(): no VMA of the mm overlaps the slice. */
function sliceFree(mmu: Mmu, s: MmuSlices, mm: Mm, key: string): boolean {
  const [from, to] = sliceRange(mmu, s, key);
  return !mm.vmas.some((v) => v.start < to && v.start + v.pages > from);
}

/**
 * Whether [start, start + pages) fits mappings of `psize` base pages per page: every slice good or
 * free. With `convert`, the free slices of another size take `psize` (slice_convert()).
 */
function fits(mmu: Mmu, s: MmuSlices, mm: Mm, start: number, pages: number, psize: number, convert: boolean): string | null {
  const keys = slicesOf(mmu, s, start, pages);
  const bad = keys.find((key) => slicePsize(mm, key) !== psize && !sliceFree(mmu, s, mm, key));
  if (bad !== undefined) return bad;
  if (convert) {
    for (const key of keys) {
      if (slicePsize(mm, key) === psize) continue;
      const sizes = (mm.slicePsize ??= new Map());
      if (psize === 1) sizes.delete(key);
      else sizes.set(key, psize);
    }
  }
  return null;
}

/**
 * slice_get_unmapped_area() with MAP_FIXED at page `start`: converts the free slices of the range
 * to `psize`, or -EBUSY when a slice of another size still holds a VMA. No-op without slices.
 */
export function sliceFixed(mmu: Mmu, mm: Mm, start: number, pages: number, psize: number): void {
  const s = mmu.slices;
  if (!s) return;
  const bad = fits(mmu, s, mm, start, pages, psize, true);
  if (bad !== null) {
    const size = (n: number) => { const b = n * mmu.basePageSize; return b >= 2 ** 20 ? `${b / 2 ** 20} MiB` : `${b / 1024} KiB`; };
    throw new KernelError('EBUSY', `get_unmapped_area(MAP_FIXED) of ${size(psize)} pages at page ${start} of ${mm.name}: slice ${bad} has ${size(slicePsize(mm, bad))} pages and still holds a VMA (slice_get_unmapped_area)`);
  }
}

/**
 * slice_check_range_fits() of a hint or a search candidate: whether pages [start, start + pages)
 * fit `psize` (each slice good or free; the free ones are then converted). Null when they fit (or
 * the MMU has no slices), else the first page of the slice that does not.
 */
export function sliceTake(mmu: Mmu, mm: Mm, start: number, pages: number, psize: number): number | null {
  const s = mmu.slices;
  if (!s) return null;
  const bad = fits(mmu, s, mm, start, pages, psize, true);
  return bad === null ? null : sliceRange(mmu, s, bad)[0];
}

/**
 * The first `align`-aligned page at or above `from` where `pages` pages of `psize` fit their
 * slices, whose free slices are then converted; `from` itself without slices.
 */
export function slicePlace(mmu: Mmu, mm: Mm, from: number, pages: number, align: number, psize: number): number {
  const s = mmu.slices;
  let start = Math.ceil(from / align) * align;
  if (!s) return start;
  for (;;) {
    const bad = fits(mmu, s, mm, start, pages, psize, true);
    if (bad === null) return start;
    // past the slice that does not fit
    start = Math.ceil(sliceRange(mmu, s, bad)[1] / align) * align;
  }
}
