import type { Kernel } from '../kernel.js';
import { anonMappingOf, PG } from './pages.js';

/** System RAM for anonymous pages and COW copies: a simple page allocator with reuse. */
export class Ram {
  /**
   * RAM starts at 4 GiB physical, for every base page size (a pfn base fixed for 4 KiB pages
   * would put 64 KiB-page RAM at 64 GiB, on top of the first device range: see Memremap).
   */
  static readonly BASE = 4 * 2 ** 30;
  /** first RAM pfn: the shared zero page, then the huge zero page, then allocations */
  readonly basePfn: number;
  private next = 0;
  private readonly freed: number[] = [];
  readonly live = new Set<number>();
  /** pages left before alloc_page() fails (fault-injection for fork's -ENOMEM path) */
  limit = Number.POSITIVE_INFINITY;

  constructor(private readonly k: Kernel) {
    this.basePfn = Ram.BASE / k.mmu.basePageSize;
  }

  /** alloc_page() + folio_add_new_anon_rmap(): rc 1, exclusive anon page, or null (ENOMEM). */
  allocAnon(anonVma: number, data: string): number | null {
    return this.alloc(PG.anonExclusive, anonMappingOf(anonVma), data);
  }

  /** alloc_page(GFP_KERNEL | __GFP_ZERO): rc 1, no mapping (a driver's page), or null (ENOMEM). */
  allocKernel(): number | null {
    return this.alloc(0, 0, '');
  }

  /**
   * A page-cache folio for a shmem file (shmem_alloc_folio + shmem_add_to_page_cache): order 0,
   * not anon, page->mapping/index set; rc 1 is the page cache's reference. Null: ENOMEM.
   */
  allocFile(mapping: number, index: number): number | null {
    const pfn = this.alloc(0, mapping, '');
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
  allocAnonLarge(anonVma: number, order: number): number | null {
    const nr = 1 << order;
    if (this.live.size + nr > this.limit || this.k.faultInject.shouldFail('page-alloc')) return null;
    if (this.next === 0) this.next = this.basePfn + 2 * this.k.vm.pmdPages;
    const head = Math.ceil(this.next / nr) * nr;
    // the pfns skipped to align the folio stay usable for order-0 pages
    for (let pfn = this.next; pfn < head; pfn++) this.freed.push(pfn);
    this.next = head + nr;
    const p = this.k.pages;
    for (let i = 0; i < nr; i++) {
      const pfn = head + i;
      this.live.add(pfn);
      const s = p.slot(pfn);
      p.rc[s] = i === 0 ? 1 : 0;
      p.flags[s] = i === 0 ? PG.head | PG.anonExclusive : PG.tail;
      p.order[s] = i === 0 ? order : 0;
      p.head[s] = head;
      p.mapping[s] = anonMappingOf(anonVma);
      p.data.set(pfn, '');
    }
    this.k.emit('page.ref', { pfn: head, rc: 1, delta: 1, why: 'vma_alloc_folio(order ' + order + ')' });
    return head;
  }

  private alloc(flags: number, mapping: number, data: string): number | null {
    if (this.live.size >= this.limit || this.k.faultInject.shouldFail('page-alloc')) return null;
    if (this.next === 0) this.next = this.basePfn + 2 * this.k.vm.pmdPages; // after the zero and huge zero pages
    const pfn = this.freed.pop() ?? this.next++;
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

  /** Free a folio: every page of it (a THP's tails too) goes back for order-0 reuse. */
  free(pfn: number): void {
    if (!this.live.has(pfn)) return;
    const nr = 1 << this.k.pages.orderOf(pfn);
    for (let i = 0; i < nr; i++) {
      if (!this.live.delete(pfn + i)) continue;
      this.k.pages.drop(pfn + i);
      this.freed.push(pfn + i);
    }
  }
}
