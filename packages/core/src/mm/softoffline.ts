import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Vma } from '../types.js';
import { mappingOf, PG } from './pages.js';

/** Where soft offline found the page: the madvise caller's mapping of it (null: a pfn from sysfs). */
export interface SoftOfflineAt {
  readonly vma: Vma | null;
  readonly vpn: number;
}

/**
 * Soft offline of online memory (mm/memory-failure.c soft_offline_page(), read in
 * GrapheneOS/kernel_common-6.6 and ColinIanKing/linux-next): a page that had correctable errors is
 * taken out of use without killing anyone. An in-use page moves to a new page (the NUMA migration
 * of mm/mempolicy.ts, reason MR_MEMORY_FAILURE, preemptible as it is) and the old one is marked
 * PG_hwpoison and kept off the allocator for good (page_handle_poison()); a free page is taken off
 * the allocator at once; a hugetlb page migrates to another page of its pool, and its old huge page
 * is dissolved out of the pool (nr_hugepages - 1) with only the offlined base page kept back.
 * ZONE_DEVICE pages never get here (kernel.ts: EIO).
 *
 * Not modelled: hwpoison_filter (off by default), the unmapped clean page-cache page's
 * invalidation reached by pfn only for disk files (mapping_evict_folio() is modelled, no step names
 * an unmapped page), movable_ops pages (zsmalloc, balloon), the split of a large page-cache folio,
 * num_poisoned_pages per node (the global count is mm/memfailure.ts's), unpoison.
 */
export class SoftOffline {
  /** /proc/sys/vm/enable_soft_offline (v6.11): 1 by default */
  private enabled = true;
  constructor(private readonly k: Kernel) {}

  /**
   * echo 0|1 > /proc/sys/vm/enable_soft_offline: 56374430c5dfc "mm/memory-failure: userspace
   * controls soft-offlining pages" (v6.11 [M]); 0 makes every soft offline -EOPNOTSUPP. The file is
   * not there before (ENOENT). (linux-next has carried a bitmask form, 3 = enabled but not for
   * HugeTLB pages, Kyle Meyer's v2 of September 2025; the mainline selftest read still writes
   * only 0 and 1, and so does the model.)
   */
  setEnabled(on: boolean): void {
    if (!kernelAtLeast(this.k.version, 6, 11)) throw new KernelError('ENOENT', '/proc/sys/vm/enable_soft_offline does not exist before v6.11 (56374430c5dfc): soft offline is always allowed');
    this.enabled = on;
  }

  /**
   * soft_offline_page(pfn, flags) of a RAM pfn, after pfn_to_online_page() (the caller refused
   * ZONE_DEVICE). `held`: MF_COUNT_INCREASED, the madvise caller's GUP reference on the folio, which
   * every refusal puts back (put_ref_page()).
   */
  *offline(pfn: number, at: SoftOfflineAt, held: boolean): Op {
    const k = this.k;
    const putRef = (why: string): void => {
      if (held) k.folios.put(k.folios.folio(pfn), 1, `put_ref_page: ${why}`);
    };
    // the sysctl is checked right after pfn_to_online_page() (v6.11)
    if (!this.enabled) {
      putRef('enable_soft_offline is 0');
      throw new KernelError('EOPNOTSUPP', `soft offline of pfn ${pfn}: disabled by /proc/sys/vm/enable_soft_offline`);
    }
    if (k.pages.has(pfn) && (k.folios.flags(pfn) & PG.hwpoison) !== 0) {
      putRef('page already poisoned');
      // "page already poisoned": 0 from the 2020 rework (v5.9 [M]), -EBUSY before
      if (!kernelAtLeast(k.version, 5, 9)) throw new KernelError('EBUSY', `soft offline of pfn ${pfn}: the page is already poisoned`);
      return;
    }
    const head = k.folios.folio(pfn);
    // get_any_page(): with MF_COUNT_INCREASED the caller's reference stands for the lookup, but a
    // page soft offline cannot handle is put back and -EIO all the same
    if (held && !this.handlable(pfn, head)) {
      putRef('get_any_page: not handlable');
      throw new KernelError('EIO', `soft offline of pfn ${pfn}: ${k.isZeroPfn(pfn) ? 'the zero page' : 'a page'} on no LRU list (HWPoisonHandlable: not PageLRU, not free)`);
    }
    const inUse = held || this.getHwpoisonPage(pfn, head);
    if (!inUse) {
      // ret == 0: a free page (or a free huge page) goes straight to page_handle_poison(page, true, false)
      if (!this.handlePoison(pfn, head, true, false)) throw new KernelError('EBUSY', `soft offline of free pfn ${pfn}: it could not be taken off the allocator`);
      return;
    }
    yield* this.inUsePage(pfn, at);
  }

  /**
   * get_hwpoison_page(page, MF_SOFT_OFFLINE) without MF_COUNT_INCREASED (the sysfs write):
   * a reference on an in-use page (true), or false for a free one (refcount 0, a free huge page).
   * A page in use but on no LRU (a driver's page, the zero page: HWPoisonHandlable() false) is
   * -EIO after shake_page().
   */
  private getHwpoisonPage(pfn: number, head: number): boolean {
    const k = this.k;
    if (!k.isZeroPfn(pfn) && (!k.pages.has(head) || k.folios.rc(head) === 0)) return false;
    if (!this.handlable(pfn, head)) throw new KernelError('EIO', `soft offline of pfn ${pfn}: a page on no LRU list (HWPoisonHandlable: not PageLRU, not free)`);
    k.folios.get(head, 1, 'get_hwpoison_page: folio_try_get');
    return true;
  }

  /**
   * PageHuge() || HWPoisonHandlable(): a hugetlb folio, or a page on an LRU list -- anonymous
   * (KSM pages too) and page-cache folios; not the zero page nor a driver's page (no mapping).
   */
  private handlable(pfn: number, head: number): boolean {
    const k = this.k;
    if (k.isZeroPfn(pfn)) return false;
    const s = k.pages.slot(head);
    return (k.folios.flags(head) & PG.hugetlb) !== 0 || k.pages.mapping[s] !== 0;
  }

  /**
   * soft_offline_in_use_page() with the get_hwpoison_page() reference held: a THP is split first
   * (try_to_split_thp_page(): -EBUSY when other references stop it, the reference put); a clean
   * unmapped page-cache page is invalidated (mapping_evict_folio()); otherwise the folio is isolated
   * and migrated (mm/mempolicy.ts migrateForSoftOffline) and the old page poisoned. Migration that
   * does not succeed is -EBUSY from 3f4b815a439a "mm,hwpoison: return -EBUSY when migration fails"
   * (v5.11), -EIO before; -ENOMEM as migrate_pages() gives it.
   */
  private *inUsePage(pfn: number, at: SoftOfflineAt): Op {
    const k = this.k;
    let head = k.folios.folio(pfn);
    const huge = (k.folios.flags(head) & PG.hugetlb) !== 0;
    if (!huge && k.folios.nr(head) > 1) {
      if (!k.folios.isAnon(head)) throw KernelError.unsupported('EOPNOTSUPP', `soft offline of pfn ${pfn}: splitting a large page-cache folio (try_to_split_thp_page) is not modelled`);
      if (!k.thp.splitFolio(head)) {
        k.folios.put(head, 1, 'try_to_split_thp_page: put_page (release)');
        throw new KernelError('EBUSY', `soft offline of pfn ${pfn}: the THP could not be split (other references)`);
      }
      // "After splitting, the caller's folio reference will be transferred to @page"
      if (pfn !== head) {
        k.folios.get(pfn, 1, 'split_huge_page: the caller keeps its reference on the page');
        k.folios.put(head, 1, 'split_huge_page: ... not on the old head');
      }
      head = pfn;
    }
    if (!huge && this.evict(head)) {
      this.handlePoison(pfn, head, false, true);
      return;
    }
    if (!at.vma) throw KernelError.unsupported('EOPNOTSUPP', `soft offline of in-use pfn ${pfn} by its physical address: migration needs the mapping the model finds it through (madvise)`);
    const r = yield* k.numa.migrateForSoftOffline(head, at.vma, at.vpn);
    if (r === 'busy') throw new KernelError('EBUSY', `soft offline of pfn ${pfn}: isolation failed (isolate_folio_to_list)`);
    if (r === 'enomem') throw new KernelError('ENOMEM', `soft offline of pfn ${pfn}: no page to migrate to (migrate_pages -ENOMEM)`);
    if (r === 'failed') throw new KernelError(kernelAtLeast(k.version, 5, 11) ? 'EBUSY' : 'EIO', `soft offline of pfn ${pfn}: migration failed (migrate_pages, MR_MEMORY_FAILURE)`);
    // page_handle_poison(page, huge, release = !huge)
    if (!this.handlePoison(pfn, head, huge, !huge)) throw new KernelError('EBUSY', `soft offline of pfn ${pfn}: the migrated huge page could not be dissolved`);
  }

  /**
   * mapping_evict_folio() (invalidate_inode_page() before v6.3) of a page-cache page, under
   * "!huge && folio_test_lru() && !folio_test_swapcache()": a clean page nobody maps (references:
   * the cache's and ours) leaves the page cache. True: evicted, our reference left.
   */
  private evict(head: number): boolean {
    const k = this.k;
    if (k.folios.isAnon(head) || k.swap.inSwapCache(head)) return false;
    const s = k.pages.slot(head);
    const mapping = k.pages.mapping[s]!;
    if (mapping === 0 || (k.folios.flags(head) & PG.dirty) !== 0 || k.folios.rc(head) > 2) return false;
    const file = [...k.pageCache.files.values()].find((f) => mappingOf(f.mapping.id) === mapping);
    if (!file || file.hugetlb || file.secretmem) return false;
    const index = k.pages.index[s]!;
    if (file.cache.get(index) !== head) return false;
    file.cache.delete(index);
    k.pages.mapping[s] = 0;
    k.folios.put(head, 1, 'mapping_evict_folio: remove_mapping (the page cache reference)');
    return true;
  }

  /**
   * page_handle_poison(page, hugepage_or_freepage, release): for a free page or a huge page,
   * __page_handle_poison() first -- dissolve_free_hugetlb_folio() of its (free) huge page, then
   * take_page_off_buddy() of the page; false if either fails. Then SetPageHWPoison, put_page()
   * when `release` (the isolation reference: the page is freed, and free_pages_prepare() keeps a
   * poisoned page off the allocator), page_ref_inc() and num_poisoned_pages_inc(): the page ends
   * at refcount 1, PG_hwpoison, never allocated again (refcount 0 before v5.9).
   */
  private handlePoison(pfn: number, head: number, hugeOrFree: boolean, release: boolean): boolean {
    const k = this.k;
    if (hugeOrFree) {
      if (k.hugetlb.dissolveFree(pfn) === 'enomem') return false;
      // take_page_off_buddy(): a RAM page from the free list; a dissolved huge page's base pages
      // are the buddy allocator's now (mm/hugetlb.ts never hands pool addresses out again)
      if (!k.hugetlb.isPoolPfn(pfn) && !k.ram.takeOffBuddy(pfn)) return false;
    }
    const s = k.pages.slot(pfn);
    k.pages.flags[s]! |= PG.hwpoison;
    if (release) k.folios.put(pfn, 1, 'page_handle_poison: put_page');
    // before the 2020 rework (v5.9 [M]) the page was poisoned free, in the buddy lists
    // (set_hwpoison_free_buddy_page(): the flag only, refcount 0; allocations skip it)
    if (kernelAtLeast(k.version, 5, 9)) k.folios.get(pfn, 1, 'page_handle_poison: page_ref_inc');
    k.memoryFailures.poisonedPages++;
    return true;
  }
}
