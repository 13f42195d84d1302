import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, PageCacheFile, Pte, PteLevel } from '../types.js';
import { poisonedMarker } from './guard.js';
import { mappingOf, PG } from './pages.js';


/**
 * memory_failure() of a RAM page as madvise(MADV_HWPOISON) reaches it (mm/memory-failure.c, read in
 * torvalds/linux at v5.14 and linux-next 2025; mm/madvise.c madvise_inject_error()): the caller's
 * get_user_pages_fast() reference comes with the pfn (MF_COUNT_INCREASED) and is never given back --
 * the poisoned page keeps it for good, off every list.
 *
 * - TestSetPageHWPoison and num_poisoned_pages + 1 (/proc/meminfo HardwareCorrupted).
 * - hwpoison_user_mappings(): try_to_unmap(TTU_HWPOISON) turns every entry mapping the page into a
 *   hwpoison swap entry (make_hwpoison_entry(), a hugetlb one at the PMD/PUD): a later access is
 *   VM_FAULT_HWPOISON[_LARGE], SIGBUS BUS_MCEERR_AR, and pagemap reports it as swapped. Then
 *   kill_procs(forcekill = the folio is dirty || the unmap failed): a written anonymous page is
 *   dirty (try_to_unmap_one() moves the PTE's dirty bit to the folio), a hugetlb page-cache folio is
 *   always dirty (hugetlb_add_to_page_cache() marks it so, 22146c3ce989, v4.18). Who is on the list:
 *   collect_procs(force_early = MF_ACTION_REQUIRED) takes the caller (task_early_kill(): "force_early
 *   && tsk->mm == current->mm") only when madvise passes MF_ACTION_REQUIRED, which it does from
 *   "mm/madvise: add MF_ACTION_REQUIRED to madvise(MADV_HWPOISON)" (Jane Chu, v6.11 [M]); before,
 *   only early-kill tasks (vm.memory_failure_early_kill, PR_MCE_KILL: not modelled, off by default),
 *   so the caller meets its SIGBUS at its next access instead.
 * - A clean page of an ext4 / xfs file (written back: fsync) has a mapping that can write back and
 *   no dirty PTE, so TTU_HWPOISON is cleared: its PTEs just go, nobody is killed, and
 *   me_pagecache_clean() truncates it from the page cache; the next access reads the block again.
 * - page_action(): an anonymous page is MF_RECOVERED as it is (me_pagecache_clean()); a hugetlb
 *   page-cache folio goes to hugetlbfs's error_remove_page: until "hugetlbfs: don't delete error page
 *   from pagecache" (8625147cafaa, v6.1) it left the page cache and its index's reservation
 *   (hugetlb_delete_from_page_cache + hugetlb_unreserve_pages), so the file reads and faults a hole
 *   there; from v6.1 it stays, and reads (fs/rw.ts) and faults find it poisoned. Extra references
 *   (a pin) make it MF_FAILED: -EBUSY.
 * - hugetlb: the flag is on the folio (its head); from v6.1 the raw pages are listed
 *   (161df60e9e89 "mm, hwpoison, hugetlb: support saving mechanism of raw error pages" [M]), which
 *   hugetlbfs_read_iter() asks from v6.5 (`rawPoisoned`).
 *
 * Not modelled (refused as such): page-cache pages of shmem (kept in the cache from v5.19,
 * a76054266661), of tmpfiles (no blocks to read back) and of FUSE, a dirty disk-file page
 * (me_pagecache_dirty(): AS_EIO on the mapping, reported by the next fsync), large folios (try_to_split_thp_page()), anonymous hugetlb folios
 * (dissolved once unmapped), the swap cache, a page already poisoned, early kill, unpoisoning a
 * hugetlb page.
 */
export class MemoryFailure {
  /** num_poisoned_pages: base pages memory failure and soft offline marked PG_hwpoison */
  poisonedPages = 0;
  /** the raw hwpoison pages of each poisoned hugetlb folio (folio->_hugetlb_hwpoison, v6.1) */
  private readonly rawPages = new Map<number, Set<number>>();

  constructor(private readonly k: Kernel) {}

  /** /proc/meminfo HardwareCorrupted: num_poisoned_pages << (PAGE_SHIFT - 10), in kB. */
  hardwareCorruptedKb(): number {
    return (this.poisonedPages * this.k.mmu.basePageSize) / 1024;
  }

  /**
   * is_raw_hwpoison_page_in_hugepage() for a base page of a poisoned hugetlb folio: in the folio's
   * raw list. (A folio whose list could not be kept -- raw_hwp_unreliable -- is not modelled.)
   */
  rawPoisoned(head: number, pfn: number): boolean {
    return this.rawPages.get(head)?.has(pfn) === true;
  }

  /**
   * madvise(MADV_HWPOISON) of the RAM page at `pfn`, which `caller` maps (madvise_inject_error():
   * get_user_pages_fast() already faulted it in). Returns whether kill_proc() sent the caller
   * SIGBUS (BUS_MCEERR_AR), delivered as madvise returns.
   */
  *madvise(pfn: number, caller: Mm): Op<boolean> {
    const k = this.k;
    const head = k.folios.folio(pfn);
    const what = `memory failure of pfn ${pfn}`;
    if (k.isZeroPfn(pfn)) throw KernelError.unsupported('EOPNOTSUPP', `${what}: the zero page (get_hwpoison_page() finds no LRU page) is not modelled`);
    if ((k.folios.flags(head) & PG.hwpoison) !== 0) throw KernelError.unsupported('EOPNOTSUPP', `${what}: the page is already poisoned (-EHWPOISON, kill_accessing_process()) is not modelled`);
    const hugetlb = (k.folios.flags(head) & PG.hugetlb) !== 0;
    const file = k.folios.isAnon(head) ? undefined : this.cacheFile(head);
    if (hugetlb && !file) throw KernelError.unsupported('EOPNOTSUPP', `${what}: an anonymous hugetlb folio (me_huge_page() dissolves it once unmapped) is not modelled`);
    if (!hugetlb && file && (file.writeback === undefined || file.writeback === 'fuse' || file.readPage === undefined)) throw KernelError.unsupported('EOPNOTSUPP', `${what}: a page-cache page of ${file.writeback ?? 'shmem'} file '${file.name}' is not modelled (anonymous pages, the page cache of ext4 / xfs files with blocks and hugetlbfs are)`);
    // folio_test_dirty(), or folio_mkclean() finding a dirty or writable PTE (it would set PG_dirty)
    const dirty = (k.folios.flags(head) & PG.dirty) !== 0 || this.dirtyPte(pfn);
    if (!hugetlb && file && dirty) throw KernelError.unsupported('EOPNOTSUPP', `${what}: a dirty page of '${file.name}' (me_pagecache_dirty(): AS_EIO on the mapping) is not modelled; fsync it first`);
    if (!hugetlb && k.folios.nr(head) > 1) throw KernelError.unsupported('EOPNOTSUPP', `${what}: a page of a large folio (try_to_split_thp_page()) is not modelled`);
    if (!hugetlb && k.swap.inSwapCache(head)) throw KernelError.unsupported('EOPNOTSUPP', `${what}: a page in the swap cache is not modelled`);
    yield* [];
    // madvise_inject_error(): the get_user_pages_fast() reference, MF_COUNT_INCREASED
    k.folios.get(head, 1, 'madvise_inject_error: get_user_pages_fast (MF_COUNT_INCREASED)');
    if (hugetlb) {
      k.folios.setFlag(head, PG.hwpoison, true);
      if (kernelAtLeast(k.version, 6, 1)) this.rawPages.set(head, new Set([pfn]));
    } else k.folios.setFlag(pfn, PG.hwpoison, true);
    this.poisonedPages++;
    const slot = k.pages.slot(head);
    const index = file ? k.pages.index[slot]! : 0;
    // collect_procs() runs before try_to_unmap(); the caller is on the list only with MF_ACTION_REQUIRED
    const callerListed = kernelAtLeast(k.version, 6, 11) && (file ? this.mapsFileIndex(caller, file, index) : this.mapsPage(caller, pfn));
    // hwpoison_user_mappings(): a clean page of a mapping that can write back loses TTU_HWPOISON
    // ("corrupted page was clean: dropped without side effects"): its PTEs are simply cleared
    const unmapped = this.unmapAll(head, pfn, hugetlb, !(file && !hugetlb));
    // hugetlb page-cache folios are always dirty; an anonymous page is once a dirty PTE went
    const forcekill = hugetlb || (k.folios.flags(head) & PG.dirty) !== 0 || !unmapped;
    if (file) this.errorRemove(file, index, head);
    // has_extra_refcount(): ours, and from v6.1 the page cache's (extra_pins)
    const expected = 1 + (hugetlb && kernelAtLeast(k.version, 6, 1) ? 1 : 0);
    if (k.folios.rc(head) > expected && !(forcekill && callerListed)) throw new KernelError('EBUSY', `${what}: MF_FAILED, the page has ${k.folios.rc(head) - expected} extra reference${k.folios.rc(head) - expected === 1 ? '' : 's'} (has_extra_refcount)`);
    return forcekill && callerListed;
  }

  /**
   * echo pfn > /sys/kernel/debug/hwpoison/unpoison-pfn (mm/hwpoison-inject.c -> unpoison_memory(),
   * read in linux-next 2025 and v5.4): a PG_hwpoison base page nobody else holds, maps or caches
   * loses the flag, num_poisoned_pages - 1, and the reference memory failure or soft offline kept
   * goes: the page is freed to the allocator (put_page_back_buddy() for one taken off it). Refusals
   * -- not poisoned, "someone grabs the hwpoison page" (a reference besides the kept one), mapped,
   * a non-NULL folio_mapping() -- are -EBUSY from "mm/hwpoison: fix unpoison_memory()" (Naoya
   * Horiguchi, v5.17 [M]); before, unpoison_memory() returned 0 for them and changed nothing. A
   * hardware-reported failure disables unpoison (-EOPNOTSUPP): the model injects only by madvise.
   */
  unpoison(pfn: number): void {
    const k = this.k;
    const refuse = (why: string): void => {
      if (kernelAtLeast(k.version, 5, 17)) throw new KernelError('EBUSY', `unpoison of pfn ${pfn}: ${why}`);
    };
    if (k.memremap.pgmapOf(pfn) !== null) throw new KernelError('EIO', `unpoison of pfn ${pfn}: a ZONE_DEVICE page is not online memory (pfn_to_online_page() is NULL)`);
    if (!k.pages.has(pfn) || (k.folios.flags(pfn) & PG.hwpoison) === 0) return refuse('the page was already unpoisoned');
    const head = k.folios.folio(pfn);
    if ((k.folios.flags(head) & PG.hugetlb) !== 0) throw KernelError.unsupported('EOPNOTSUPP', `unpoison of pfn ${pfn}: a hugetlb page (folio_free_raw_hwp()) is not modelled`);
    const slot = k.pages.slot(head);
    const mapping = k.pages.mapping[slot]!;
    if (k.folios.rc(head) > 1) return refuse('someone grabs the hwpoison page');
    if (k.vm.isMapped(head)) return refuse('someone maps the hwpoison page');
    if (mapping !== 0 && !k.folios.isAnon(head)) return refuse('the hwpoison page has non-NULL mapping');
    k.folios.setFlag(pfn, PG.hwpoison, false);
    this.poisonedPages--;
    // get_hwpoison_page(MF_UNPOISON) + folio_put(), then the kept reference: the page is freed
    if (k.folios.rc(head) === 1) k.folios.put(head, 1, 'unpoison_memory: folio_put (the reference memory failure kept)');
    k.ram.putBack(pfn);
  }

  /** The page-cache file whose folio this is (page->mapping), if any. */
  private cacheFile(head: number): PageCacheFile | undefined {
    const slot = this.k.pages.slot(head);
    const mapping = this.k.pages.mapping[slot]!;
    if (mapping === 0) return undefined;
    return [...this.k.pageCache.files.values()].find((f) => mappingOf(f.mapping.id) === mapping);
  }

  /** collect_procs_anon(): page_mapped_in_vma() of a VMA of the caller's. */
  private mapsPage(mm: Mm, pfn: number): boolean {
    for (const pte of mm.ptes.values()) if (pte.pfn === pfn && !pte.marker && !pte.swap && !pte.migration) return true;
    return false;
  }

  /** collect_procs_file(): a VMA of the caller's covers the page's file offset (mapped there or not). */
  private mapsFileIndex(mm: Mm, file: PageCacheFile, index: number): boolean {
    const per = file.hugetlb ? file.hugetlb.pages : 1;
    return [...file.mapping.mmaps].some((v) => v.mm === mm && v.pgoff <= index * per && index * per < v.pgoff + v.pages);
  }

  /**
   * try_to_unmap(folio, TTU_HWPOISON) over the rmap walk: each leaf mapping the page (a hugetlb
   * folio's PMDs / PUDs, an order-0 page's PTEs) becomes a hwpoison entry of its level, its rmap and
   * reference gone, a dirty bit moved to the folio. True when nothing maps the folio any more.
   */
  private unmapAll(head: number, pfn: number, hugetlb: boolean, ttuHwpoison: boolean): boolean {
    const k = this.k;
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      const tables: [Map<number, Pte>, PteLevel][] = hugetlb ? [[mm.pmds, 'pmd'], [mm.puds, 'pud']] : [[mm.ptes, 'pte']];
      for (const [table, level] of tables) {
        for (const [vpn, e] of [...table]) {
          if (e.pfn !== (hugetlb ? head : pfn) || e.marker || e.swap || e.migration || e.special || e.devicePrivate) continue;
          if (k.vm.vmaAt(mm, vpn)) k.mmuNotify({ mm, start: vpn, end: vpn + 1, event: 'clear', owner: null });
          const pte = k.vm.clear(mm, vpn, level)!;
          k.emit('tlb.flush', { mm: mm.name });
          if (pte.dirty) k.folios.setFlag(head, PG.dirty, true);
          if (ttuHwpoison) k.vm.install(mm, vpn, { ...poisonedMarker(level), hwpoison: true });
          k.folios.removeMap(head);
          k.folios.put(head, 1, 'try_to_unmap_one: TTU_HWPOISON');
        }
      }
    }
    return !k.vm.isMapped(head);
  }

  /** A PTE mapping the page that is dirty or writable (folio_mkclean() would clean it). */
  private dirtyPte(pfn: number): boolean {
    for (const mm of this.k.processes.values()) {
      if (!mm.alive) continue;
      for (const pte of mm.ptes.values()) if (pte.pfn === pfn && !pte.marker && !pte.swap && !pte.migration && (pte.dirty || pte.write)) return true;
    }
    return false;
  }

  /**
   * truncate_error_folio() -> ->error_remove_folio (->error_remove_page before v6.8). ext4 and xfs:
   * generic_error_remove_folio() -> truncate_inode_folio(): the clean folio leaves the page cache
   * (mapping NULL, the cache's reference put) and a later access reads the block again.
   * hugetlbfs_error_remove_page(): before v6.1 the folio leaves the page cache and the index its
   * reservation (as a hole punch of that page does); from v6.1 nothing.
   */
  private errorRemove(file: PageCacheFile, index: number, head: number): void {
    const k = this.k;
    if (!file.hugetlb) {
      file.cache.delete(index);
      const slot = k.pages.slot(head);
      k.pages.mapping[slot] = 0;
      k.emit('page.mapping', { pfn: head, mapping: 'NULL', index: 0, share: 0 });
      k.folios.put(head, 1, 'truncate_inode_folio: the page cache reference');
      return;
    }
    if (kernelAtLeast(k.version, 6, 1)) return;
    k.hugetlb.removeErrorPage(file, index);
  }
}
