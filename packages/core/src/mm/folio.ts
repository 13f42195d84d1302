import type { Kernel } from '../kernel.js';
import type { Pgmap, PgmapType, PteLevel } from '../types.js';
import { PG } from './pages.js';

export type PageKind = PgmapType | 'ram' | 'zero';

/** GUP_PIN_COUNTING_BIAS (include/linux/mm.h): 1U << 10 in every version read. */
export const GUP_PIN_COUNTING_BIAS = 1024;

/**
 * Reference counting of folios: folio_get/folio_put and the per-type final-put paths
 * (free_zone_device_folio, put_devmap_managed_page), mapcounts and the anon test.
 */
export class Folios {
  constructor(private readonly k: Kernel) {}

  kind(pfn: number): PageKind {
    if (this.k.isZeroPfn(pfn)) return 'zero';
    return this.k.memremap.pgmapOf(pfn)?.type ?? 'ram';
  }

  /** page_folio(): the head pfn of the folio containing pfn. */
  folio(pfn: number): number {
    return this.k.pages.headOf(pfn);
  }

  // slot() before the array read: materialising a page may replace the arrays (PageStore.grow)
  rc(head: number): number {
    const s = this.k.pages.slot(head);
    return this.k.pages.rc[s]!;
  }

  mapcount(head: number): number {
    const s = this.k.pages.slot(head);
    return this.k.pages.mapcount[s]!;
  }

  /**
   * reuse_swap_page()'s mapcount test (v5.8 and earlier) for a page not in the swap cache (mm/swap.ts
   * reuseSwapPage() adds the swap count for one that is): page_mapcount() == 1 for
   * a small page; for a THP subpage page_trans_huge_map_swapcount() takes the largest
   * page_mapcount() of any subpage (each PTE-mapped subpage counts on its own, a PMD mapping
   * counts for all), so a PTE-mapped THP whose every subpage is mapped once is reused.
   */
  mappedOnce(head: number): boolean {
    const nr = this.nr(head);
    if (nr === 1 || !this.isAnon(head)) return this.mapcount(head) === 1;
    let max = 0;
    for (let i = 0; i < nr; i++) max = Math.max(max, this.k.vm.pageMapcount(head + i, head));
    return max <= 1;
  }

  order(head: number): number {
    return this.k.pages.orderOf(head);
  }

  nr(head: number): number {
    return 1 << this.order(head);
  }

  /**
   * Whether the folio has a _pincount: every large folio on 64-bit (include/linux/mm.h
   * folio_has_pincount, v6.1+). v5.10 needed order > 1 (hpage_pincount_available), but the only
   * large folios the model builds in the v5.x presets are PMD-order anon THPs, so the rules coincide.
   */
  hasPincount(head: number): boolean {
    return this.order(head) >= 1;
  }

  /**
   * folio_maybe_dma_pinned(): exact with a pincount, else rc >= GUP_PIN_COUNTING_BIAS. Without
   * pin accounting (`foll-pin` false, before v5.7) the kernel has no such test: nothing looks pinned.
   */
  maybeDmaPinned(head: number): boolean {
    if (!this.k.features['foll-pin']) return false;
    const s = this.k.pages.slot(head);
    if (this.hasPincount(head)) return this.k.pages.pincount[s]! > 0;
    return this.k.pages.rc[s]! >>> 0 >= GUP_PIN_COUNTING_BIAS;
  }

  /** The lowest _refcount a folio of this kind may have while its pgmap is live. */
  floor(head: number): number {
    const pgmap = this.k.memremap.pgmapOf(head);
    if (!pgmap) return 0;
    if (pgmap.killed) return 0;
    switch (pgmap.type) {
      case 'fsdax':
        return this.k.convention.floor;
      case 'generic':
        return 1;
      default:
        return this.k.features['devmem-extra-ref'] ? 1 : 0;
    }
  }

  get(head: number, n: number, why: string): void {
    this.change(head, n, why);
  }

  /**
   * folio_put_refs() with the era's device-page special cases:
   * - FS_DAX: put_devmap_managed_page wakes on 2->1 (legacy) or free_zone_device_folio wakes at 0;
   * - GENERIC: era (c) re-arms at 1 (folio_set_count), earlier 1->0 happens only at teardown;
   * - PRIVATE/COHERENT: ops->page_free at 2->1 (extra ref) or 1->0 (0-based).
   */
  put(head: number, n: number, why: string): void {
    const before = this.rc(head);
    const after = this.change(head, -n, why);
    const pgmap = this.k.memremap.pgmapOf(head);
    if (!pgmap) {
      if (after === 0 && !this.k.isZeroPfn(head)) this.freeRam(head);
      return;
    }
    this.devicePut(pgmap, head, before, after);
  }

  private devicePut(pgmap: Pgmap, head: number, before: number, after: number): void {
    const k = this.k;
    switch (pgmap.type) {
      case 'fsdax':
        if (k.convention.wakes(before, after)) {
          k.dax.wake(head);
          k.emit('page.wake', { pfn: head });
        }
        if (after === 0) k.emit('page.free', { pfn: head, type: pgmap.type });
        return;
      case 'generic':
        if (after === 0) {
          k.emit('page.free', { pfn: head, type: pgmap.type });
          // free_zone_device_folio(): v6.15+ re-arms device-dax pages at 1; v6.1-v6.14 WARNs
          // (device-dax pgmaps have no ops->page_free) and leaves the count at 0.
          if (!pgmap.killed && !k.features['pte-devmap']) this.change(head, 1, 'free_zone_device_folio: folio_set_count(1)');
          else if (!pgmap.killed) k.warn('free_zone_device_page: device-dax page reached refcount 0 (no page_free op)');
        }
        return;
      case 'private':
      case 'coherent':
      case 'p2pdma': {
        const freeAt = k.features['devmem-extra-ref'] ? 1 : 0;
        if (after === freeAt && before > freeAt) this.zoneDeviceFree(head);
        return;
      }
    }
  }

  /**
   * free_zone_device_folio() of a device-private or device-coherent folio: mapping and
   * PageAnonExclusive cleared, then the driver's ops->page_free (->folio_free from the 2025
   * device-private THP series). Also the end of a split tail nothing references (mm/thp.ts).
   */
  zoneDeviceFree(head: number): void {
    const k = this.k;
    const pgmap = k.memremap.pgmapOf(head);
    if (!pgmap) throw new Error(`zoneDeviceFree: pfn ${head} is not device memory`);
    const slot = k.pages.slot(head);
    k.pages.mapping[slot] = 0;
    k.pages.flags[slot]! &= ~PG.anonExclusive;
    k.emit('page.free', { pfn: head, type: pgmap.type });
    pgmap.ops.pageFree?.(head);
  }

  private change(head: number, delta: number, why: string): number {
    const p = this.k.pages;
    const s = p.slot(head);
    const rc = (p.rc[s] = p.rc[s]! + delta);
    if (this.k.bus.wants('page.ref')) this.k.emit('page.ref', { pfn: head, rc, delta, why });
    return rc;
  }

  private freeRam(head: number): void {
    // free_huge_folio(): a hugetlb folio goes back to its hstate's free list (mm/hugetlb.ts)
    if ((this.flags(head) & PG.hugetlb) !== 0) return this.k.hugetlb.freeFolio(head);
    this.k.emit('page.free', { pfn: head, type: 'ram' });
    this.k.ram.free(head);
  }

  /** folio_add_*_rmap: one more page-table mapping. */
  addMap(head: number): void {
    const p = this.k.pages;
    const s = p.slot(head);
    const mapcount = ++p.mapcount[s]!;
    if (this.k.bus.wants('page.map')) this.k.emit('page.map', { pfn: head, mapcount });
  }

  removeMap(head: number): void {
    const p = this.k.pages;
    const s = p.slot(head);
    const mapcount = --p.mapcount[s]!;
    if (this.k.bus.wants('page.map')) this.k.emit('page.map', { pfn: head, mapcount });
  }

  /** folio_test_anon(): page->mapping & PAGE_MAPPING_ANON, evaluated by an mm path. */
  testAnon(head: number, by: string): boolean {
    const s = this.k.pages.slot(head);
    const anon = (this.k.pages.mapping[s]! & 1) === 1;
    this.k.emit('page.anon-test', { pfn: head, anon, by });
    return anon;
  }

  isAnon(head: number): boolean {
    const s = this.k.pages.slot(head);
    return (this.k.pages.mapping[s]! & 1) === 1;
  }

  /**
   * The page whose PageAnonExclusive describes the mapping of pfn by an entry of this level: the
   * mapped page itself for a PTE, the head for a PMD-mapped THP (include/linux/page-flags.h
   * PageAnonExclusive, 6c287605fd56 v5.19: "the flag is stored in the head page" of a PMD mapping,
   * and __split_huge_pmd_locked() copies it to every subpage). Identical for order-0 folios.
   */
  exclusivePage(pfn: number, level: PteLevel): number {
    return level === 'pte' ? pfn : this.folio(pfn);
  }

  flags(head: number): number {
    const s = this.k.pages.slot(head);
    return this.k.pages.flags[s]!;
  }

  setFlag(head: number, flag: number, on: boolean): void {
    const s = this.k.pages.slot(head);
    if (on) this.k.pages.flags[s]! |= flag;
    else this.k.pages.flags[s]! &= ~flag;
  }
}
