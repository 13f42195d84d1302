/**
 * struct page / struct folio storage (include/linux/mm_types.h), struct-of-arrays in typed
 * arrays, materialised lazily: a page nobody touched has the state its pgmap initialised it to
 * and costs no memory, so a 4 TiB device costs memory in proportion to the pages in use.
 */

/** page->flags bits the model uses (include/linux/page-flags.h). */
export const PG = {
  head: 1 << 0,
  reserved: 1 << 1,
  anonExclusive: 1 << 2,
  hwpoison: 1 << 3,
  locked: 1 << 4,
  dirty: 1 << 5,
  /** model-only: the slot describes a tail page of a compound page */
  tail: 1 << 6,
  /** folio_test_hugetlb(): a hugetlb folio; its last put frees it to the pool (free_huge_folio) */
  hugetlb: 1 << 7,
} as const;

/**
 * page->mapping is a pointer whose low bits carry flags: PAGE_MAPPING_ANON = 0x1. The model
 * encodes an address_space or anon_vma id as `id * 4 | flags`, so an id-0 value of 0x1 is
 * exactly PAGE_MAPPING_DAX_SHARED, and folio_test_anon() is `mapping & 1` as in the kernel.
 */
export const PAGE_MAPPING_ANON = 0x1;
export const PAGE_MAPPING_DAX_SHARED = 0x1;
export function mappingOf(spaceId: number): number {
  return spaceId * 4;
}
export function anonMappingOf(anonVmaId: number): number {
  return anonVmaId * 4 + PAGE_MAPPING_ANON;
}

/** The state a page has before anyone touched it (set by its pgmap's memmap init). */
export interface PageInit {
  readonly rc: number;
  readonly headPfn: number;
  /** compound order when this page is a head */
  readonly order: number;
  readonly flags: number;
  readonly pgmap: number;
}

export type PageInitSource = (pfn: number) => PageInit;

/**
 * Slots to start with (grown by doubling): few, because the explorer writes every array of a
 * session back to its snapshot for each replay (a quarter of a restore at 1,024 slots) and most
 * runs touch a few pages.
 */
const INITIAL_SLOTS = 64;

export class PageStore {
  private readonly slotOf = new Map<number, number>();
  private pfns = new Float64Array(INITIAL_SLOTS);
  rc = new Int32Array(INITIAL_SLOTS);
  /** folio_mapcount(): page-table mappings that took an rmap (0 = unmapped; _mapcount is this - 1) */
  mapcount = new Int32Array(INITIAL_SLOTS);
  /** large folios' _pincount */
  pincount = new Int32Array(INITIAL_SLOTS);
  flags = new Uint32Array(INITIAL_SLOTS);
  order = new Uint8Array(INITIAL_SLOTS);
  head = new Float64Array(INITIAL_SLOTS);
  mapping = new Float64Array(INITIAL_SLOTS);
  /** page->index (file offset in pages), unioned with page->share in the kernel */
  index = new Float64Array(INITIAL_SLOTS);
  share = new Int32Array(INITIAL_SLOTS);
  pgmap = new Int32Array(INITIAL_SLOTS);
  /** model-only ground truth: page-table entries (any level, any mm) pointing at this pfn */
  ptes = new Int32Array(INITIAL_SLOTS);
  /** model-only ground truth: outstanding GUP references (pins and gets) on this pfn */
  gup = new Int32Array(INITIAL_SLOTS);
  private used = 0;
  /** physical contents per pfn (a data tag), for DMA and CPU accesses */
  readonly data = new Map<number, string>();

  constructor(private readonly init: PageInitSource) {}

  get materialised(): number {
    return this.used;
  }

  has(pfn: number): boolean {
    return this.slotOf.has(pfn);
  }

  /** The slot of a pfn, materialising it from its pgmap's initial state on first touch. */
  slot(pfn: number): number {
    const s = this.slotOf.get(pfn);
    if (s !== undefined) return s;
    if (this.used === this.rc.length) this.grow();
    const i = this.used++;
    const init = this.init(pfn);
    this.slotOf.set(pfn, i);
    this.pfns[i] = pfn;
    this.rc[i] = init.rc;
    this.flags[i] = init.flags;
    this.order[i] = init.order;
    this.head[i] = init.headPfn;
    this.pgmap[i] = init.pgmap;
    return i;
  }

  /** Forget pages (their pgmap went away, or RAM was freed): next touch re-initialises. */
  drop(pfn: number): void {
    const s = this.slotOf.get(pfn);
    if (s === undefined) return;
    this.slotOf.delete(pfn);
    const last = --this.used;
    if (s !== last) {
      const lastPfn = this.pfns[last]!;
      for (const a of this.arrays()) a[s] = a[last]!;
      this.pfns[s] = lastPfn;
      this.slotOf.set(lastPfn, s);
    }
    for (const a of this.arrays()) a[last] = 0;
    this.data.delete(pfn);
  }

  /** Every materialised pfn in [start, start + n). */
  *touched(start: number, n: number): Generator<number> {
    for (const pfn of [...this.slotOf.keys()].sort((a, b) => a - b)) if (pfn >= start && pfn < start + n) yield pfn;
  }

  // slot() first: materialising a page may grow (replace) the arrays, so an array read before
  // the call would be a stale one (a lazily materialised tail: mm/hugetlb.ts)
  headOf(pfn: number): number {
    const s = this.slot(pfn);
    return this.head[s]!;
  }

  orderOf(head: number): number {
    const s = this.slot(head);
    return this.order[s]!;
  }

  private arrays(): (Int32Array | Uint32Array | Uint8Array | Float64Array)[] {
    return [this.rc, this.mapcount, this.pincount, this.flags, this.order, this.head, this.mapping, this.index, this.share, this.pgmap, this.ptes, this.gup];
  }

  private grow(): void {
    const n = this.rc.length * 2;
    const g = <T extends Int32Array | Uint32Array | Uint8Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.pfns = g(this.pfns);
    this.rc = g(this.rc);
    this.mapcount = g(this.mapcount);
    this.pincount = g(this.pincount);
    this.flags = g(this.flags);
    this.order = g(this.order);
    this.head = g(this.head);
    this.mapping = g(this.mapping);
    this.index = g(this.index);
    this.share = g(this.share);
    this.pgmap = g(this.pgmap);
    this.ptes = g(this.ptes);
    this.gup = g(this.gup);
  }
}
