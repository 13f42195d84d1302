import type { Kernel } from '../kernel.js';
import type { Op, Yield } from '../sched.js';
import { anonMappingOf, PG } from './pages.js';

/** The zone a RAM page is in (page_zonenum()): kmem memory joins the one its block was onlined to. */
export type Zone = 'Normal' | 'Movable';

interface HotplugRange {
  readonly node: number;
  readonly zone: Zone;
  readonly start: number;
  readonly end: number;
  /** the next never-used pfn */
  next: number;
  /** offline_pages() isolated it */
  isolated: boolean;
}

/** System RAM for anonymous pages and COW copies: a simple page allocator with reuse. */
export class Ram {
  /**
   * RAM starts at 4 GiB physical, for every base page size (a pfn base fixed for 4 KiB pages
   * would put 64 KiB-page RAM at 64 GiB, on top of the first device range: see Memremap).
   */
  static readonly BASE = 4 * 2 ** 30;
  /** first RAM pfn: the shared zero page, then the huge zero page, then allocations */
  readonly basePfn: number;
  /**
   * Per memory node (mm/mempolicy.ts): the next never-used pfn and the freed ones. Node n > 0's
   * RAM starts at n * NODE_STRIDE physical, so page_to_nid() is a function of the pfn, as each
   * node's pgdat spans its own pfn range; node 0 starts after the zero and huge zero pages.
   */
  private readonly areas = new Map<number, { next: number; readonly freed: number[] }>();
  /**
   * Memory blocks kmem onlined (mm/hotplug.ts): online_pages() gives their pfns to the buddy of
   * the device's node and zone. A node with such ranges allocates from them (ZONE_MOVABLE first,
   * the zonelist order of a GFP_HIGHUSER_MOVABLE allocation), never past their end.
   */
  private readonly hotplugged: HotplugRange[] = [];
  /** inside withoutMovable(): allocations leave ZONE_MOVABLE out (no __GFP_MOVABLE) */
  private noMovable = 0;
  static readonly NODE_STRIDE = 2 ** 46;
  readonly live = new Set<number>();
  /** pages taken out of the allocator for good (PG_hwpoison: soft offline, mm/softoffline.ts) */
  readonly offline = new Set<number>();
  /** pages left before alloc_page() fails (fault-injection for fork's -ENOMEM path) */
  limit = Number.POSITIVE_INFINITY;

  constructor(private readonly k: Kernel) {
    this.basePfn = Ram.BASE / k.mmu.basePageSize;
  }

  /** alloc_page() + folio_add_new_anon_rmap(): rc 1, exclusive anon page, or null (ENOMEM). */
  allocAnon(anonVma: number, data: string, node = 0): number | null {
    return this.alloc(PG.anonExclusive, anonMappingOf(anonVma), data, node);
  }

  /** alloc_page(GFP_KERNEL | __GFP_ZERO): rc 1, no mapping (a driver's page), or null (ENOMEM). */
  allocKernel(): number | null {
    return this.alloc(0, 0, '', 0);
  }

  /**
   * A page-cache folio for a shmem file (shmem_alloc_folio + shmem_add_to_page_cache): order 0,
   * not anon, page->mapping/index set; rc 1 is the page cache's reference. Null: ENOMEM.
   */
  allocFile(mapping: number, index: number, node = 0): number | null {
    const pfn = this.alloc(0, mapping, '', node);
    if (pfn !== null) {
      const s = this.k.pages.slot(pfn);
      this.k.pages.index[s] = index;
    }
    return pfn;
  }

  /**
   * An anonymous THP (do_huge_pmd_anonymous_page -> vma_alloc_folio(order) +
   * folio_add_new_anon_rmap): 2^order naturally aligned contiguous pages, a head with rc 1 and
   * PageAnonExclusive, tails pointing at it; never from the order-0 free list. Null: ENOMEM.
   */
  allocAnonLarge(anonVma: number, order: number, node = 0): number | null {
    return this.allocLarge(order, anonMappingOf(anonVma), PG.anonExclusive, node, 'vma_alloc_folio');
  }

  /**
   * The PMD-order folio collapse_file() builds for a file's page cache (alloc_charge_folio(), the
   * same naturally aligned pages as an anonymous THP): not anon, page->mapping and ->index set
   * (new_folio->mapping / ->index = start); rc 1, the allocation's. Null: ENOMEM.
   */
  allocFileLarge(mapping: number, index: number, order: number, node = 0): number | null {
    const head = this.allocLarge(order, mapping, 0, node, 'alloc_charge_folio');
    for (let i = 0; head !== null && i < 1 << order; i++) {
      const s = this.k.pages.slot(head + i);
      this.k.pages.index[s] = index + i;
    }
    return head;
  }

  private allocLarge(order: number, mapping: number, headFlags: number, node: number, why: string): number | null {
    const nr = 1 << order;
    if (this.live.size + nr > this.limit || this.k.faultInject.shouldFail('page-alloc')) return null;
    const area = this.area(node);
    const ranges = this.rangesOf(node);
    let head: number;
    if (ranges) {
      const h = this.takeFromRanges(ranges, nr);
      if (h === null) return null;
      head = h;
    } else {
      head = Math.ceil(area.next / nr) * nr;
      // the pfns skipped to align the folio stay usable for order-0 pages
      for (let pfn = area.next; pfn < head; pfn++) area.freed.push(pfn);
      area.next = head + nr;
    }
    const p = this.k.pages;
    for (let i = 0; i < nr; i++) {
      const pfn = head + i;
      this.live.add(pfn);
      const s = p.slot(pfn);
      p.rc[s] = i === 0 ? 1 : 0;
      p.flags[s] = i === 0 ? PG.head | headFlags : PG.tail;
      p.order[s] = i === 0 ? order : 0;
      p.head[s] = head;
      p.mapping[s] = mapping;
      p.data.set(pfn, '');
    }
    this.k.emit('page.ref', { pfn: head, rc: 1, delta: 1, why: `${why}(order ${order})` });
    return head;
  }

  private alloc(flags: number, mapping: number, data: string, node: number): number | null {
    if (this.live.size >= this.limit || this.k.faultInject.shouldFail('page-alloc')) return null;
    const area = this.area(node);
    const ranges = this.rangesOf(node);
    let pfn: number | null = this.popFreed(area.freed) ?? (ranges ? this.takeFromRanges(ranges, 1) : area.next++);
    // a page soft offline took off the buddy allocator while it was never allocated is skipped
    while (pfn !== null && this.offline.has(pfn)) pfn = this.popFreed(area.freed) ?? (ranges ? this.takeFromRanges(ranges, 1) : area.next++);
    // the node's online memory is used up: ENOMEM (the zonelist's fallback to other nodes is not modelled)
    if (pfn === null) return null;
    this.live.add(pfn);
    const p = this.k.pages;
    const s = p.slot(pfn);
    p.rc[s] = 1;
    p.flags[s] = flags;
    p.mapping[s] = mapping;
    p.data.set(pfn, data);
    this.k.emit('page.ref', { pfn, rc: 1, delta: 1, why: 'alloc_page' });
    return pfn;
  }

  /**
   * Free a folio: every page of it (a THP's tails too) goes back for order-0 reuse on its node. A
   * PG_hwpoison page stays out, its struct page kept (mm/page_alloc.c free_pages_prepare(): "Do not
   * let hwpoison pages hit pcplists/buddy").
   */
  free(pfn: number): void {
    if (!this.live.has(pfn)) return;
    const nr = 1 << this.k.pages.orderOf(pfn);
    const area = this.area(this.nodeOf(pfn));
    for (let i = 0; i < nr; i++) {
      if (!this.live.delete(pfn + i)) continue;
      if (this.k.pages.has(pfn + i) && (this.k.folios.flags(pfn + i) & PG.hwpoison) !== 0) {
        this.offline.add(pfn + i);
        continue;
      }
      this.k.pages.drop(pfn + i);
      // a page freed into a pageblock offline_pages() isolated stays out of the allocator
      if (!this.hotplugRangeOf(pfn + i)?.isolated) area.freed.push(pfn + i);
    }
  }

  /**
   * A page kept off the allocator for PG_hwpoison goes back once unpoisoned (unpoison_memory():
   * the last folio_put() of a page no longer poisoned, or put_page_back_buddy() of one
   * take_page_off_buddy() took). False when it was not kept off.
   */
  putBack(pfn: number): boolean {
    if (!this.offline.delete(pfn)) return false;
    this.k.pages.drop(pfn);
    if (!this.hotplugRangeOf(pfn)?.isolated) this.area(this.nodeOf(pfn)).freed.push(pfn);
    return true;
  }

  /**
   * take_page_off_buddy() (mm/page_alloc.c, v5.9): a free RAM page leaves the allocator for good
   * (soft offline then marks it PG_hwpoison). False when the page is allocated.
   */
  takeOffBuddy(pfn: number): boolean {
    if (this.live.has(pfn) || this.offline.has(pfn) || pfn < this.basePfn + 2 * this.k.vm.pmdPages) return false;
    const freed = this.area(this.nodeOf(pfn)).freed;
    const at = freed.indexOf(pfn);
    if (at >= 0) freed.splice(at, 1);
    this.offline.add(pfn);
    return true;
  }

  /** page_to_nid() of a RAM pfn: the node whose range holds it (device memory below the first stride: node 0; kmem memory: its block's node). */
  nodeOf(pfn: number): number {
    return this.hotplugRangeOf(pfn)?.node ?? Math.floor((pfn * this.k.mmu.basePageSize) / Ram.NODE_STRIDE);
  }

  /** page_zonenum(): ZONE_MOVABLE or ZONE_NORMAL for a pfn of an online kmem block, Normal for other RAM. */
  zoneOf(pfn: number): Zone {
    return this.hotplugRangeOf(pfn)?.zone ?? 'Normal';
  }

  /** Whether online kmem memory gives `node` (any node without one) pages: node_states[N_MEMORY] for a hot-added node. */
  hasHotplugged(node?: number, zone?: Zone): boolean {
    return this.hotplugged.some((r) => (node === undefined || r.node === node) && (zone === undefined || r.zone === zone));
  }

  /**
   * online_pages() (mm/memory_hotplug.c): [start, end) joins `node`'s `zone` and its pages are
   * freed to the buddy (online_pages_range() -> generic_online_page()).
   */
  addHotplugged(node: number, zone: Zone, start: number, end: number): void {
    this.hotplugged.push({ node, zone, start, end, next: start, isolated: false });
    // ZONE_MOVABLE before ZONE_NORMAL, then by address: the order takeFromRanges() uses
    this.hotplugged.sort((a, b) => (a.zone === b.zone ? a.start - b.start : a.zone === 'Movable' ? -1 : 1));
  }

  /**
   * start_isolate_page_range() (offline_pages()): the free pages of [start, end) leave the
   * allocator, and pages freed there later stay out (MIGRATE_ISOLATE pageblocks).
   */
  isolateHotplugged(start: number): void {
    const r = this.hotplugged.find((x) => x.start === start);
    if (!r) return;
    r.isolated = true;
    const freed = this.area(r.node).freed;
    for (let i = freed.length - 1; i >= 0; i--) if (freed[i]! >= r.start && freed[i]! < r.end) freed.splice(i, 1);
  }

  /** Pages of [start, end) still allocated (what offline_pages() must migrate). */
  liveIn(start: number, end: number): number[] {
    return [...this.live].filter((pfn) => pfn >= start && pfn < end).sort((a, b) => a - b);
  }

  /** __offline_isolated_pages(): the range leaves its node and zone for good. */
  removeHotplugged(start: number): void {
    const at = this.hotplugged.findIndex((x) => x.start === start);
    if (at < 0) return;
    const r = this.hotplugged[at]!;
    this.hotplugged.splice(at, 1);
    for (const pfn of [...this.offline]) if (pfn >= r.start && pfn < r.end) this.offline.delete(pfn);
  }

  /** A pfn of an online kmem block (its struct pages are RAM's, whatever pgmap was there before). */
  isHotplugged(pfn: number): boolean {
    return this.hotplugRangeOf(pfn) !== undefined;
  }

  private hotplugRangeOf(pfn: number): HotplugRange | undefined {
    return this.hotplugged.find((r) => pfn >= r.start && pfn < r.end);
  }

  private rangesOf(node: number): HotplugRange[] | null {
    const rs = this.hotplugged.filter((r) => r.node === node);
    return rs.length > 0 ? rs : null;
  }

  /**
   * Run `op` allocating as a gfp mask without __GFP_MOVABLE does (GFP_USER: the highest zone is
   * ZONE_NORMAL): pages of ZONE_MOVABLE kmem blocks are left out while its code runs, not while
   * other threads run between its yields.
   */
  *withoutMovable<T>(op: Op<T>): Op<T> {
    for (;;) {
      this.noMovable++;
      let r: IteratorResult<Yield, T>;
      try {
        r = op.next();
      } finally {
        this.noMovable--;
      }
      if (r.done) return r.value;
      yield r.value;
    }
  }

  /** The last freed pfn the allocation may take (not a ZONE_MOVABLE one inside withoutMovable()). */
  private popFreed(freed: number[]): number | undefined {
    if (this.noMovable === 0) return freed.pop();
    for (let i = freed.length - 1; i >= 0; i--) {
      if (this.zoneOf(freed[i]!) !== 'Movable') return freed.splice(i, 1)[0];
    }
    return undefined;
  }

  /** `nr` naturally aligned never-used pfns from the first non-isolated range that has them. */
  private takeFromRanges(ranges: readonly HotplugRange[], nr: number): number | null {
    for (const r of ranges) {
      if (r.isolated || (this.noMovable > 0 && r.zone === 'Movable')) continue;
      const head = Math.ceil(r.next / nr) * nr;
      if (head + nr > r.end) continue;
      const area = this.area(r.node);
      for (let pfn = r.next; pfn < head; pfn++) area.freed.push(pfn);
      r.next = head + nr;
      return head;
    }
    return null;
  }

  /** The cursor and free list a node allocates from. */
  private area(node: number): { next: number; readonly freed: number[] } {
    let a = this.areas.get(node);
    if (!a) this.areas.set(node, (a = { next: node === 0 ? this.basePfn + 2 * this.k.vm.pmdPages : (node * Ram.NODE_STRIDE) / this.k.mmu.basePageSize, freed: [] }));
    return a;
  }
}
