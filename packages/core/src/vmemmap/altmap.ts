/**
 * struct vmem_altmap and its allocator (include/linux/memremap.h, mm/sparse-vmemmap.c
 * altmap_alloc_block_buf / vmem_altmap_next_pfn / vmem_altmap_nr_free): memmap carved from the
 * device's own first pfns instead of RAM. All counts are pfns relative to the range's first pfn
 * (base_pfn is the range start: nd_pfn's SUBSECTION_ALIGN_DOWN(start) of an aligned namespace).
 */
export interface AltmapLayout {
  /** pfns at base_pfn never used for the memmap (nd_pfn: the info block, ALIGN(8K, PAGE_SIZE)) */
  readonly reserve: number;
  /** pfns after the reserve that may hold the memmap (nd_pfn: offset/PAGE_SIZE - reserve) */
  readonly free: number;
}

/** An altmap being allocated from; mutable like the kernel's (alloc and align grow). */
export interface AltmapState {
  readonly basePfn: number;
  /** last pfn of the pgmap range (vmem_altmap.end_pfn) */
  readonly endPfn: number;
  readonly reserve: number;
  readonly free: number;
  /** pfns handed out for the memmap */
  alloc: number;
  /** pfns skipped to align blocks */
  align: number;
}

export function newAltmap(basePfn: number, nrPages: number, layout: AltmapLayout): AltmapState {
  return { basePfn, endPfn: basePfn + nrPages - 1, reserve: layout.reserve, free: layout.free, alloc: 0, align: 0 };
}

/** lowest set bit of n (find_first_bit on nr_pfns): the alignment altmap blocks get. */
function lowestSetBit(n: number): number {
  let b = 1;
  while (n % (b * 2) === 0) b *= 2;
  return b;
}

/**
 * How many of `count` consecutive `nrPfns`-sized blocks altmap_alloc_block_buf() hands out before
 * it returns NULL, updating the altmap as the kernel does. Each block is aligned to the lowest set
 * bit of its size (padding goes to `align`); after the first, equal blocks need no more padding,
 * so the answer is arithmetic, not a loop. A failed allocation changes nothing, so once one fails
 * every later equal one fails too.
 */
export function altmapAllocBlocks(a: AltmapState, nrPfns: number, count: number): number {
  if (count <= 0) return 0;
  const nrFree = () => Math.max(0, a.free - (a.alloc + a.align));
  const next = a.basePfn + a.reserve + a.alloc + a.align;
  const boundary = lowestSetBit(nrPfns);
  const pad = Math.ceil(next / boundary) * boundary - next;
  if (nrPfns + pad > nrFree()) return 0;
  a.alloc += nrPfns;
  a.align += pad;
  // the next block starts at a multiple of `boundary` again: no padding from here on
  const more = Math.min(count - 1, Math.floor(nrFree() / nrPfns));
  a.alloc += more * nrPfns;
  return 1 + more;
}

/** vmem_altmap_offset(): reserve + free, the first pfn past the memmap area (mm/memremap.c). */
export function altmapOffset(layout: AltmapLayout): number {
  return layout.reserve + layout.free;
}
