import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { Mm, Pte, SwapEntry, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { nonPresent } from './exclusive.js';
import { entryStillRead, origPte, pteSame, type Leaf } from './vm.js';
import { PG } from './pages.js';

/**
 * One slot of the swap device (swap_info_struct->swap_map[offset] and the swap cache's entry for
 * it): `count` is the swap count (how many swap PTEs name the slot: swap_duplicate() /
 * swap_free()), `cache` the folio in the swap cache for it (SWAP_HAS_CACHE), `data` what was
 * written to the slot.
 */
interface Slot {
  count: number;
  cache: number | null;
  data: string;
}

/** Slots of the swap device: 1 GiB of 4 KiB pages, more than any scenario pages out. */
const SWAP_SLOTS = 1 << 18;

/**
 * Anonymous memory swapped to one swap device (mm/swapfile.c, mm/swap_state.c, mm/vmscan.c,
 * mm/rmap.c, mm/memory.c do_swap_page()). The device is a synchronous one (zram, pmem:
 * SWP_SYNCHRONOUS_IO, 0bcac06f27d7, v4.15): writeback completes inside pageout(), so a folio is
 * never found under writeback, and a swap-in of an entry nothing else names (swap count 1)
 * reads into a fresh folio without the swap cache (until the swap table series: alwaysSwapCache).
 * What is left out: swap of shmem pages
 * (shmem_writepage(); MADV_PAGEOUT leaves page-cache pages where they are), readahead, the
 * mem_cgroup_swap_full() / VM_LOCKED frees (the device is never half full and nothing is
 * mlocked), THP_SWAP clusters (a THP is split before its pages are swapped one by one: the page
 * tables end the same way, one swap PTE per subpage) and large-folio swap-in (every swap-in
 * is order 0), and the swap of device-private or DAX memory (never on the LRU). `swapoff()` takes
 * the device away for good (no swapon).
 */
export class Swap {
  private readonly slots = new Map<number, Slot>();
  /** folio (pfn) -> the slot it caches (folio->swap) */
  private readonly cached = new Map<number, number>();
  private readonly freed: number[] = [];
  private next = 0;
  /** swapoff(2) ran: no device, add_to_swap() fails */
  private off = false;

  constructor(private readonly k: Kernel) {}

  /**
   * Whether swap-in always goes through the swap cache (the 2025 swap table series by Kairui Song,
   * in mm for the release after v6.18 [M]: only the latest preset): a synchronous device no longer
   * skips it, so a folio is exclusive only by the entry's bit, and the cache is freed after the
   * mapping once no other entry names the slot.
   */
  private get alwaysSwapCache(): boolean {
    return kernelAtLeast(this.k.version, 7, 0);
  }

  /** __swap_count(): the swap PTEs naming a slot (0 for a free one). */
  swapCount(slot: number): number {
    return this.slots.get(slot)?.count ?? 0;
  }

  /** The folio the swap cache holds for a slot, or null. */
  cacheOf(slot: number): number | null {
    return this.slots.get(slot)?.cache ?? null;
  }

  /** folio_test_swapcache(). */
  inSwapCache(folio: number): boolean {
    return this.cached.has(folio);
  }

  /** Slots in use (a swap count or a swap-cache folio): what /proc/swaps' Used counts, in pages. */
  get used(): number {
    return this.slots.size;
  }

  /**
   * MADV_PAGEOUT of [s, e) of an anonymous-capable VMA (madvise_cold_or_pageout_pte_range(), then
   * reclaim_pages() -> shrink_folio_list()). From v5.5 only folios this process alone maps are
   * taken (mappedElsewhere: page_mapcount() != 1, later folio_estimated_sharers() /
   * folio_likely_mapped_shared() / folio_maybe_mapped_shared(), the same test for a small
   * folio); the zero page, DAX and device pages (no LRU) and
   * page-cache pages (shmem swap is not modelled) are skipped. A THP is split first
   * (split_huge_page() of a PMD or PTE-mapped one); a THP that cannot be split stays mapped
   * (v5.4 also stops the walk of that PMD there: not modelled).
   */
  *pageout(vma: Vma, s: number, e: number): Op {
    yield* this.coldOrPageout(vma, s, e, true);
  }

  /**
   * MADV_COLD of [s, e): the same walk (madvise_cold_or_pageout_pte_range(pageout = false)), which
   * only moves the folios to the inactive LRU -- the model has no LRU -- but splits as MADV_PAGEOUT
   * does a THP the range covers in part (split_folio(); so from v6.12 its zero-filled pages go to
   * the zero page) and, before v6.10, a PTE-mapped large folio it meets at all. One it covers whole
   * stays whole (deactivated as one folio).
   */
  *cold(vma: Vma, s: number, e: number): Op {
    yield* this.coldOrPageout(vma, s, e, false);
  }

  private *coldOrPageout(vma: Vma, s: number, e: number, pageout: boolean): Op {
    const k = this.k;
    const who = pageout ? 'madvise_pageout' : 'madvise_cold';
    for (const leaf of k.vm.leavesIn(vma.mm, s, e)) {
      if (leaf.pte.level === 'pud') continue;
      if (leaf.pte.level === 'pmd') {
        if (!k.thp.isAnonPmd(vma, leaf)) continue; // DAX PMDs, the huge zero page
        const head = k.folios.folio(leaf.pte.pfn);
        // a PMD the range covers in part is split only when mapped once, in v5.4 too
        const whole = leaf.base >= s && leaf.base + leaf.pages <= e;
        if (this.mappedElsewhere(head) || (!whole && k.folios.mapcount(head) !== 1)) continue;
        // covered whole, the kernel isolates the THP and swaps it out whole (THP_SWAP): the model's
        // split stands for that (MADV_COLD deactivates it whole: no split); covered in part,
        // split_folio() really splits it
        if (whole && !pageout) continue;
        if (!k.thp.splitFolioHeld(head, who, whole ? { standsForWholeSwapout: true } : {})) continue;
      }
    }
    for (let vpn = s; vpn < e; vpn++) {
      const leaf = k.vm.lookup(vma.mm, vpn);
      if (!leaf || leaf.pte.level !== 'pte' || leaf.pte.swap || leaf.pte.devicePrivate || leaf.pte.deviceExclusive) continue;
      const page = k.vm.normalPage(leaf.pte, leaf.pte.pfn);
      if (page === null || k.folios.kind(page) !== 'ram') continue;
      let head = k.folios.folio(page);
      if (!k.folios.isAnon(head)) continue;
      if (k.folios.nr(head) > 1) {
        // a PTE-mapped THP: split (the whole folio must be this process's alone), then the page
        // from "mm: madvise: avoid split during MADV_PAGEOUT and MADV_COLD" (Ryan Roberts' mTHP
        // swap-out series, v6.10 [M]) a folio whose
        // PTEs the range maps whole is not split but swapped out whole (mTHP swap-out, v6.10)
        const whole = kernelAtLeast(k.version, 6, 10) && this.ptesInRange(vma.mm, head, s, e) === k.folios.nr(head);
        if (whole && !pageout) continue;
        if (k.vm.pageMapcount(page, head) !== 1 || !k.thp.splitFolioHeld(head, who, whole ? { standsForWholeSwapout: true } : {})) continue;
        // the walk looks at the PTE again ("pte--; addr -= PAGE_SIZE; continue"): from v6.12 the
        // split left the shared zero page there if the page was zero-filled, and that is skipped
        const again = k.vm.lookup(vma.mm, vpn);
        if (!again || again.pte.level !== 'pte' || again.pte.special || again.pte.pfn !== page) continue;
        head = k.folios.folio(page);
      }
      if (!pageout || this.mappedElsewhere(head)) continue;
      yield preempt('reclaim_pages');
      this.reclaim(head, vma.mm, vpn);
    }
  }

  /** The PTEs of `mm` in [s, e) that map a page of the folio at `head`. */
  private ptesInRange(mm: Mm, head: number, s: number, e: number): number {
    const nr = this.k.folios.nr(head);
    let n = 0;
    for (let vpn = s; vpn < e; vpn++) {
      const pte = mm.ptes.get(vpn);
      if (pte && !nonPresent(pte) && !pte.special && pte.pfn >= head && pte.pfn < head + nr) n++;
    }
    return n;
  }

  /**
   * "Do not interfere with other mappings of this page": from 12e967fd8e4e "mm: do not allow
   * MADV_PAGEOUT for CoW pages" (v5.5 [M]) a folio mapped more than once is skipped; v5.4 pages
   * out a page it shares with a fork child too, and try_to_unmap() takes every mapping.
   */
  private mappedElsewhere(head: number): boolean {
    return kernelAtLeast(this.k.version, 5, 5) && this.k.folios.mapcount(head) !== 1;
  }

  /**
   * shrink_folio_list() for one isolated small anonymous folio: add_to_swap() (a slot, the swap
   * cache's reference, PG_dirty), try_to_unmap() (each PTE becomes a swap entry), pageout() (the
   * synchronous write), then __remove_mapping() frees the folio if the swap cache's reference is
   * the only one left; one held by GUP keeps it in the swap cache (the data stays coherent: a
   * swap-in finds that folio). A maybe-pinned folio is not added to the swap cache from v5.11
   * (feb889fb40fa "mm: don't put pinned pages into the swap cache").
   */
  private reclaim(folio: number, mm: Mm, vpn: number): void {
    const k = this.k;
    let slot = this.cached.get(folio);
    if (slot === undefined) {
      // "if (folio_maybe_dma_pinned(folio)) goto keep_locked" before add_to_swap() (v5.11)
      if (kernelAtLeast(k.version, 5, 11) && k.folios.maybeDmaPinned(folio)) return;
      const got = this.allocSlot();
      if (got === null) return; // add_to_swap() failed: activate_locked, the folio stays
      slot = got;
      this.addToCache(slot, folio, 'add_to_swap');
    }
    // rmap_walk_anon(): the one mapping the walk started from when it is the only one
    const mappings: [Mm, number][] = k.folios.mapcount(folio) === 1 ? [[mm, vpn]] : this.rmap(folio);
    for (const [where, at] of mappings) if (!this.unmapOne(where, at, folio, slot)) return;
    if (k.vm.isMapped(folio)) return;
    // pageout() -> swap_writepage(), complete on return (synchronous device)
    this.slots.get(slot)!.data = k.pages.data.get(folio) ?? '';
    // __remove_mapping(): folio_ref_freeze() succeeds only if the swap cache holds the last reference
    if (k.folios.rc(folio) === 1) this.deleteFromCache(folio, '__remove_mapping: delete_from_swap_cache');
  }

  /** The PTEs mapping a small folio, in every live process (rmap_walk_anon). */
  private rmap(folio: number): [Mm, number][] {
    const found: [Mm, number][] = [];
    for (const mm of this.k.processes.values()) {
      if (!mm.alive) continue;
      for (const [vpn, pte] of mm.ptes) if (!pte.swap && !pte.devicePrivate && !pte.deviceExclusive && !pte.migration && !pte.special && !pte.devmap && pte.pfn === folio) found.push([mm, vpn]);
    }
    return found;
  }

  /**
   * try_to_unmap_one() for one PTE: the PTE becomes a swap entry for the slot (swap_duplicate(),
   * soft-dirty kept: pte_swp_mksoft_dirty; uffd-wp kept: pte_swp_mkuffd_wp, f45ec5ff16a7
   * "userfaultfd: wp: support swap and page migration", v5.7), the rmap and the PTE's reference go. From v5.19 the
   * entry remembers PageAnonExclusive (1493a1913e34 "mm/swap: remember PG_anon_exclusive via a
   * swp pte bit"), and an exclusive page that may be pinned cannot be unmapped
   * (page_try_share_anon_rmap() / folio_try_share_anon_rmap_pte() fails: the PTE is restored and
   * the walk stops). False when it stopped.
   */
  private unmapOne(mm: Mm, vpn: number, folio: number, slot: number): boolean {
    const k = this.k;
    const anonExclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
    const exclusive = anonExclusiveEra && (k.folios.flags(folio) & PG.anonExclusive) !== 0;
    if (exclusive && k.folios.maybeDmaPinned(folio)) return false;
    const vma = k.vm.vmaAt(mm, vpn);
    if (vma) k.mmuNotify({ mm, start: vpn, end: vpn + 1, event: 'clear', owner: null });
    const pte = k.vm.clear(mm, vpn, 'pte')!;
    k.emit('tlb.flush', { mm: mm.name }); // ptep_clear_flush()
    this.slots.get(slot)!.count++;
    k.folios.setFlag(folio, PG.anonExclusive, false);
    k.vm.install(mm, vpn, this.entry(slot, exclusive, pte.softDirty, pte.uffdWp === true));
    k.folios.removeMap(folio);
    k.folios.put(folio, 1, 'try_to_unmap_one');
    return true;
  }

  /** A swap PTE (swp_entry_to_pte(), with the exclusive, soft-dirty and uffd-wp bits). */
  private entry(slot: number, exclusive: boolean, softDirty: boolean, uffdWp: boolean): Pte {
    return { pfn: -1, level: 'pte', write: false, dirty: false, special: false, devmap: false, devicePrivate: false, softDirty, swap: { slot, exclusive }, ...(uffdWp ? { uffdWp } : {}) };
  }

  /**
   * do_swap_page() for a swap PTE: the folio comes from the swap cache, or is read into a new
   * one (into the swap cache unless the device is synchronous and nothing else names the slot;
   * always into it in the latest mainline),
   * and is mapped; whether it is mapped exclusive (and writable, for a write) follows the era:
   * - v5.19+ (1493a1913e34, c145e0b47c77 "mm: streamline COW logic in do_swap_page()"): a fresh
   *   folio, or the entry's exclusive bit, or a folio whose only reference is ours (after a write
   *   fault freed the swap cache); the write of a non-exclusive one goes on to do_wp_page().
   *   From v6.11 an exclusive folio is mapped writable on a read fault too (VM_WRITE, no
   *   soft-dirty write-protection needed);
   * - up to v5.18: a write fault reuses the folio when reuse_swap_page() finds it mapped and
   *   swapped once at most (page_mapcount() + the slot's swap count, GUP references not counted;
   *   a swap-cache folio found so is deleted from the swap cache), else do_wp_page() decides.
   * The swap entry is freed (swap_free()); from v5.19 a write fault frees the swap cache of a
   * folio only it and the cache reference (should_try_to_free_swap()). An entry with the uffd-wp
   * bit maps the folio uffd-wp and write-protected (pte_swp_uffd_wp(): pte_mkuffd_wp(pte_wrprotect()),
   * v5.7; from v6.11 the writable upgrade is not even tried, !userfaultfd_pte_wp()): the fault
   * returns, and the write that retries meets the userfaultfd in do_wp_page(). Returns whether the
   * write still has to go to do_wp_page().
   */
  *fault(vmf: Vmf, leaf: Leaf): Op<boolean> {
    const k = this.k;
    const { vma, vpn } = vmf;
    const entry = leaf.pte.swap!;
    k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write: vmf.write, kind: 'swap' });
    const orig = origPte(leaf.pte);
    // the swap-in read happens without the PTE lock; pte_same() is checked afterwards
    yield preempt('do_swap_page: swapin', entryStillRead(k.vm, vma.mm, vpn, leaf.pte));
    if (!pteSame(k.vm.lookup(vma.mm, vpn)?.pte, leaf.pte, orig)) return false;
    const slot = this.slots.get(entry.slot);
    if (!slot) throw new Error(`do_swap_page: swap slot ${entry.slot} is free but a PTE of ${vma.mm.name} names it`);
    let folio = slot.cache;
    let fresh = false;
    if (folio !== null) k.folios.get(folio, 1, 'do_swap_page: swap_cache_get_folio');
    else {
      folio = k.ram.allocAnon(k.vm.anonVmaPrepare(vma), slot.data, k.numa.allocNode(vma, vpn));
      if (folio === null) throw new KernelError('ENOMEM', 'out of memory in do_swap_page');
      // SWP_SYNCHRONOUS_IO && __swap_count(entry) == 1: "skip swapcache" -- until the swap table
      // series ("mm, swap: never bypass the swap cache even for SWP_SYNCHRONOUS_IO", 2025 [M])
      if (slot.count === 1 && !this.alwaysSwapCache) fresh = true;
      else this.addToCache(entry.slot, folio, 'do_swap_page: add_to_swap_cache');
    }
    let exclusive = false;
    let write = false;
    const anonExclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
    if (anonExclusiveEra) {
      if (!this.alwaysSwapCache) {
        // v5.19 (c145e0b47c77): "Remove the swap entry and conditionally try to free up the
        // swapcache" before mapping: swap_free(), then should_try_to_free_swap() for a write
        // fault when the cache holds the only other reference (page_count() == 2)
        this.swapFree(entry.slot);
        if (vmf.write && this.cached.has(folio) && k.folios.rc(folio) === 2) this.freeSwap(folio);
      }
      exclusive = fresh || entry.exclusive || k.folios.rc(folio) === 1;
      // an exclusive folio: writable for a write fault; from v6.11 for a read fault too when the
      // VMA is writable and soft-dirty tracking does not need the write fault (c18160dba5ff,
      // 20dfa5b7adc5 pte_needs_soft_dirty_wp(), Barry Song, June 2024 [M])
      const mapWritableOnRead = kernelAtLeast(k.version, 6, 11) && vma.flags.write && !(k.mprotector.softDirtyTracking(vma) && !leaf.pte.softDirty);
      if (exclusive) write = vmf.write || mapWritableOnRead;
    } else if (vmf.write && this.reuseSwapPage(folio)) {
      // up to v5.18 reuse_swap_page() is asked before the rmap and swap_free() (its own count)
      exclusive = true;
      write = true;
    }
    k.folios.setFlag(folio, PG.anonExclusive, exclusive);
    k.vm.clear(vma.mm, vpn, 'pte');
    const dirty = write && vmf.write;
    const softDirty = leaf.pte.softDirty || (dirty && k.softDirtyArch);
    const uffdWp = leaf.pte.uffdWp === true;
    k.vm.install(vma.mm, vpn, k.faults.pte(folio, 'pte', { write: write && vma.flags.write && !uffdWp, dirty, softDirty, ...(uffdWp ? { uffdWp } : {}) }));
    k.folios.addMap(folio);
    if (!anonExclusiveEra) this.swapFree(entry.slot);
    if (anonExclusiveEra && this.alwaysSwapCache) {
      // the swap table series: the entry is put and the swap cache freed after mapping, and for a
      // SWP_SYNCHRONOUS_IO device always tried ("mm, swap: always try to free swap cache for
      // SWP_SYNCHRONOUS_IO devices", "mm, swap: free the swap cache after folio is mapped" [M])
      this.swapFree(entry.slot);
      if (this.cached.has(folio)) this.freeSwap(folio);
    }
    return vmf.write && !dirty;
  }

  /**
   * reuse_swap_page() (up to v5.18; do_swap_page() for a write, and do_wp_page() up to v5.8):
   * page_trans_huge_map_swapcount() is the page's mapcount plus, for a swap-cache page, the
   * slot's swap count; a count of 1 on a swap-cache page deletes it from the swap cache
   * (delete_from_swap_cache(), SetPageDirty). Reuse when the count is <= 1: GUP references are
   * not counted (the swapped-out vmsplice leak that c145e0b47c77 closed in v5.19).
   */
  reuseSwapPage(folio: number): boolean {
    const k = this.k;
    const slot = this.cached.get(folio);
    const count = k.folios.mapcount(folio) + (slot === undefined ? 0 : this.slots.get(slot)!.count);
    if (count === 1 && this.cached.has(folio)) this.deleteFromCache(folio, 'reuse_swap_page: delete_from_swap_cache');
    return count <= 1;
  }

  /**
   * folio_free_swap() / try_to_free_swap(): drop a folio from the swap cache once no swap PTE
   * names its slot (!folio_swapped()); the slot is freed with it. False if it stays.
   */
  freeSwap(folio: number): boolean {
    const slot = this.cached.get(folio);
    if (slot === undefined || this.slots.get(slot)!.count > 0) return false;
    this.deleteFromCache(folio, 'folio_free_swap');
    return true;
  }

  /**
   * free_swap_cache(): an unmapped swap-cache folio is dropped from the swap cache when no swap
   * PTE names its slot any more. Called by zap's batched free (free_pages_and_swap_cache()) and,
   * from v5.14, by wp_page_copy() for the page it copied away from.
   */
  freeSwapCache(folio: number): void {
    if (this.cached.has(folio) && this.k.folios.mapcount(folio) === 0) this.freeSwap(folio);
  }

  /**
   * copy_nonpresent_pte() for a swap PTE (fork): swap_duplicate(), and "Mark the swap entry as
   * shared": the parent's entry loses its exclusive bit, the child's copy never has it; it keeps
   * the uffd-wp bit when `uffdWp` (mm/userfaultfd.ts childKeepsSwapWp).
   */
  copyEntry(dst: Vma, vpn: number, pte: Pte, uffdWp: boolean): void {
    const entry = pte.swap!;
    this.slots.get(entry.slot)!.count++;
    entry.exclusive = false;
    this.k.vm.install(dst.mm, vpn, this.entry(entry.slot, false, pte.softDirty, uffdWp));
  }

  /**
   * zap_pte_range() of a swap PTE: free_swap_and_cache(): the swap count drops; at 0 an unmapped
   * folio left in the swap cache for the slot is dropped (__try_to_reclaim_swap(TTRS_UNMAPPED)),
   * a mapped one stays until it is unmapped or reclaimed.
   */
  zapEntry(pte: Pte): void {
    const entry = pte.swap!;
    this.swapFree(entry.slot);
    const slot = this.slots.get(entry.slot);
    if (slot && slot.count === 0 && slot.cache !== null && this.k.folios.mapcount(slot.cache) === 0) this.deleteFromCache(slot.cache, 'free_swap_and_cache');
  }

  /** swap_free(): one swap PTE less; a slot nothing names and nothing caches is free again. */
  private swapFree(slot: number): void {
    const s = this.slots.get(slot)!;
    s.count--;
    if (s.count === 0 && s.cache === null) this.release(slot);
  }

  private allocSlot(): number | null {
    if (this.off) return null;
    const slot = this.freed.pop() ?? (this.next < SWAP_SLOTS ? this.next++ : null);
    if (slot === null) return null;
    this.slots.set(slot, { count: 0, cache: null, data: '' });
    return slot;
  }

  private release(slot: number): void {
    this.slots.delete(slot);
    this.freed.push(slot);
  }

  /**
   * swapoff(2) of the swap device: try_to_unuse() -> unuse_mm() over every process, unuse_pte() for
   * each swap PTE: the folio from the swap cache, or read into it (read_swap_cache_async()), is
   * mapped old and read-only (pte_mkold(mk_pte(page, vm_page_prot))), exclusive when the entry said
   * so (RMAP_EXCLUSIVE, v5.19), and the swap entry freed; then every swap-cache folio leaves the
   * cache (folio_free_swap()). The swap PTE's soft-dirty and uffd-wp bits are carried over only
   * from "mm/swapfile: fix lost swap bits in unuse_pte()" (Miaohe Lin, v5.19); before, both were
   * lost. Up to v5.12 unuse_pte() compared entries with pte_same_as_swp(), which removed the
   * soft-dirty bit but not the uffd-wp one ("mm/swap: fix pte_same_as_swp() not removing uffd-wp
   * bit when compare", v5.13): a uffd-wp swap PTE never matched, stayed, and try_to_unuse() retried
   * forever (the syscall spins until a signal).
   */
  *swapoff(): Op {
    const k = this.k;
    for (const mm of [...k.processes.values()]) {
      if (!mm.alive) continue;
      for (const [vpn, pte] of [...mm.ptes].sort((a, b) => a[0] - b[0])) {
        if (!pte.swap) continue;
        if (pte.uffdWp && !kernelAtLeast(k.version, 5, 13)) continue; // pte_same_as_swp() false
        yield preempt('unuse_pte_range');
        const vma = k.vm.vmaAt(mm, vpn)!;
        const slot = this.slots.get(pte.swap.slot)!;
        let folio = slot.cache;
        if (folio === null) {
          folio = k.ram.allocAnon(k.vm.anonVmaPrepare(vma), slot.data, k.numa.allocNode(vma, vpn));
          if (folio === null) throw new KernelError('ENOMEM', 'swapoff: out of memory reading a page back');
          this.addToCache(pte.swap.slot, folio, 'try_to_unuse: read_swap_cache_async');
        }
        const kept = kernelAtLeast(k.version, 5, 19);
        if (k.features['wp-reuse'] === 'anon-exclusive') k.folios.setFlag(folio, PG.anonExclusive, pte.swap.exclusive);
        k.vm.clear(mm, vpn, 'pte');
        k.folios.get(folio, 1, 'unuse_pte: folio_get');
        k.folios.addMap(folio);
        k.vm.install(mm, vpn, { ...k.faults.pte(folio, 'pte'), softDirty: kept && pte.softDirty, ...(kept && pte.uffdWp ? { uffdWp: true } : {}) });
        this.swapFree(pte.swap.slot);
      }
    }
    if (this.slots.size > 0 && [...this.slots.values()].some((s) => s.count > 0)) {
      yield* waitUntil('swapoff: try_to_unuse() retries forever: a uffd-wp swap PTE never matches pte_same_as_swp() (before v5.13)', () => false);
    }
    // try_to_unuse(): what is left is only swap cache; folio_free_swap() takes each folio out
    for (const folio of [...this.cached.keys()]) this.deleteFromCache(folio, 'try_to_unuse: folio_free_swap');
    this.off = true;
  }

  /**
   * folio_migrate_mapping() of a swap-cache folio (NUMA migration, mm/mempolicy.ts): the slot's
   * cache entry names the new folio, and the cache's reference moves with it.
   */
  migrated(src: number, dst: number): void {
    const slot = this.cached.get(src);
    if (slot === undefined) return;
    this.cached.delete(src);
    this.cached.set(dst, slot);
    this.slots.get(slot)!.cache = dst;
    this.k.folios.get(dst, 1, 'folio_migrate_mapping: the swap cache takes the new folio');
    this.k.folios.put(src, 1, 'folio_migrate_mapping: the swap cache lets the old folio go');
  }

  /** add_to_swap_cache(): the cache takes a reference on the folio (folio_ref_add(nr)). */
  private addToCache(slot: number, folio: number, why: string): void {
    this.slots.get(slot)!.cache = folio;
    this.cached.set(folio, slot);
    this.k.folios.get(folio, 1, why);
  }

  /** delete_from_swap_cache(): the cache's reference goes; a slot nothing names is freed. */
  private deleteFromCache(folio: number, why: string): void {
    const slot = this.cached.get(folio)!;
    this.cached.delete(folio);
    const s = this.slots.get(slot)!;
    s.cache = null;
    if (s.count === 0) this.release(slot);
    this.k.folios.put(folio, 1, why);
  }
}
