import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Pte, Vma } from '../types.js';
import { PG } from './pages.js';
import { entryStillRead, origPte, pteSame, type Leaf } from './vm.js';
import { nonPresent } from './exclusive.js';
import { migrationEntryWait } from './migrate.js';
import { isWpMarker } from './guard.js';
import { checkStableAddressSpace } from './mrelease.js';

/** A page fault as the handlers see it (struct vm_fault). */
export interface Vmf {
  readonly vma: Vma;
  /** faulting virtual page */
  readonly vpn: number;
  /** file/device page index of vpn (linear_page_index) */
  readonly pgoff: number;
  readonly write: boolean;
  /** no FAULT_FLAG_ALLOW_RETRY (break_ksm()'s fault up to v6.1): a userfault is VM_FAULT_SIGBUS (mm/userfaultfd.ts) */
  readonly noRetry?: true;
}

/**
 * handle_mm_fault(): dispatch on what the page table holds (mm/memory.c handle_pte_fault):
 * nothing -> do_anonymous_page / do_cow_fault / ->huge_fault / ->fault; a device-private entry ->
 * do_swap_page (migrate_to_ram); a present read-only PTE and a write -> do_wp_page.
 */
export class Faults {
  constructor(private readonly k: Kernel) {}

  /**
   * `force`: handle_mm_fault() as GUP with FOLL_FORCE or the kernel itself (break_ksm) raises it:
   * it checks no VMA permission (the arch's access_error() does, for user faults), so a write
   * fault may COW in a private VMA without VM_WRITE; what it maps follows maybe_mkwrite().
   * `retry`: FAULT_FLAG_ALLOW_RETRY (CPU and GUP faults); without it a userfault is SIGBUS.
   */
  *handle(vma: Vma, vpn: number, write: boolean, force = false, retry = true): Op {
    const k = this.k;
    if (write && !vma.flags.write && !force) throw new KernelError('EFAULT', `write to a read-only mapping '${vma.name}'`);
    let leaf = k.vm.lookup(vma.mm, vpn);
    const vmf: Vmf = { vma, vpn, pgoff: vma.pgoff + (vpn - vma.start), write, ...(retry ? {} : { noRetry: true as const }) };
    // do_swap_page() -> handle_pte_marker() -> pte_marker_handle_uffd_wp() (v5.19): a
    // PTE_MARKER_UFFD_WP the VMA no longer wants is cleared (pte_marker_clear(): the access retries
    // on an empty entry); else the fault is the empty entry's (do_fault(), and from v6.4
    // do_pte_missing()), and what it maps comes uffd-wp (mm/userfaultfd.ts)
    if (leaf && isWpMarker(leaf.pte) && !k.uffd.markerFaults(vma)) {
      k.vm.clear(vma.mm, leaf.base, leaf.pte.level);
      leaf = null;
    }
    const wpMarker = leaf !== null && isWpMarker(leaf.pte);
    // an empty entry of a VMA registered with a userfaultfd: do_anonymous_page() and
    // do_huge_pmd_anonymous_page() ("if (userfaultfd_missing(vma))"), shmem_get_folio_gfp() and
    // hugetlb_no_page() hand the fault to the handler first (mm/userfaultfd.ts)
    const userfault = (!leaf || wpMarker) && vma.uffd ? k.uffd.onEmpty(vmf) : null;
    // do_anonymous_page() pte_alloc()s the table before "if (userfaultfd_missing(vma))";
    // do_huge_pmd_anonymous_page() leaves the PMD none (UFFDIO_MOVE moves a THP whole into it)
    if (userfault && !leaf && vma.kind === 'anon' && !vma.hugetlb && !k.thp.eligible(vma, vpn)) k.vm.allocPteTable(vma.mm, vpn);
    if (userfault) return yield* k.uffd.handle(vmf, userfault, retry);
    // handle_mm_fault(): is_vm_hugetlb_page(vma) -> hugetlb_fault() (mm/hugetlb.ts)
    // handle_pte_marker(): "if (marker & PTE_MARKER_POISONED) return VM_FAULT_HWPOISON"; hugetlb_fault()
    // likewise VM_FAULT_HWPOISON_LARGE (UFFDIO_POISON, v6.6): SIGBUS (GUP: -EFAULT without FOLL_HWPOISON)
    // do_swap_page() "else if (is_hwpoison_entry(entry))" and hugetlb_fault()'s
    // is_hugetlb_entry_hwpoisoned() the same for the entries memory failure leaves (mm/memfailure.ts)
    if (leaf?.pte.poisoned) {
      k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write, kind: 'poisoned' });
      const entry = leaf.pte.hwpoison ? 'a hwpoison entry (memory failure)' : 'a PTE_MARKER_POISONED (UFFDIO_POISON)';
      throw new KernelError('SIGBUS', `${write ? 'write to' : 'read of'} page ${vpn - vma.start} of '${vma.name}': ${entry}, VM_FAULT_HWPOISON: BUS_MCEERR_AR`);
    }
    if (vma.hugetlb) return yield* k.hugetlb.fault(vmf);
    // do_swap_page() -> handle_pte_marker(): "Hitting a guard page is always a fatal condition",
    // VM_FAULT_SIGSEGV (v6.13, mm/memory.c); GUP turns it into -EFAULT (mm/guard.ts)
    if (leaf?.pte.guard) {
      k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write, kind: 'guard' });
      throw new KernelError('SIGSEGV', `${write ? 'write to' : 'read of'} page ${vpn - vma.start} of '${vma.name}', a guard region (PTE_MARKER_GUARD)`);
    }
    // a migration entry: sleep until the migration has put a present entry back, then the access
    // is retried (mm/migrate.ts migrationEntryWait)
    if (leaf?.pte.migration) return yield* migrationEntryWait(k, vma.mm, vpn, leaf.pte, write);
    if (leaf?.pte.devicePrivate) {
      // do_swap_page(): a device-private entry calls pgmap->ops->migrate_to_ram(); the access is
      // then retried, so a write to a read-only result (a COW page after fork) goes to do_wp_page
      k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write, kind: 'device-private' });
      const orig = origPte(leaf.pte);
      // the entry was read without the PTE lock (handle_pte_fault): others may run before do_swap_page
      yield preempt('do_swap_page: device-private entry', entryStillRead(k.vm, vma.mm, vpn, leaf.pte));
      // a PMD-level entry (the 2025 device-private THP series) is do_huge_pmd_device_private():
      // pmd_same() under the PMD lock, folio_get + folio_trylock, migrate_to_ram, folio_put
      const pmd = leaf.pte.level === 'pmd';
      if (k.features['device-fault-page-ref'] || pmd) {
        // v6.1: pte_same() under the PTE lock, else the fault is simply retried; a reference
        // keeps the page from being freed while migrate_to_ram() runs
        if (!pteSame(k.vm.lookup(vma.mm, vpn)?.pte, leaf.pte, orig)) return;
        // get_page(vmf->page) / put_page(vmf->page): the page's folio at each moment (the driver
        // may split a large device folio, moving the reference to the fault page's new folio)
        const page = k.vm.pfnAt(leaf, vpn);
        k.folios.get(k.folios.folio(page), 1, pmd ? 'do_huge_pmd_device_private: folio_get' : 'do_swap_page: get_page before migrate_to_ram');
        try {
          yield* k.deviceFault(vmf, leaf);
        } finally {
          k.folios.put(k.folios.folio(page), 1, pmd ? 'do_huge_pmd_device_private: folio_put' : 'do_swap_page: put_page after migrate_to_ram');
        }
      } else yield* k.deviceFault(vmf, leaf);
      const after = k.vm.lookup(vma.mm, vpn);
      if (write && after && !after.pte.devicePrivate && !after.pte.write) yield* this.wpPage(vmf, after);
      return;
    }
    if (leaf?.pte.swap) {
      // do_swap_page() on a swap entry (mm/swap.ts); a write it did not map writable goes on to
      // do_wp_page() with the PTE it installed
      if (!(yield* k.swap.fault(vmf, leaf))) return;
      const after = k.vm.lookup(vma.mm, vpn);
      if (after && !nonPresent(after.pte) && !after.pte.write) yield* this.wpPage(vmf, after);
      return;
    }
    if (leaf?.pte.deviceExclusive) {
      // do_swap_page() -> remove_device_exclusive_entry(): the device loses its atomic mapping and
      // the PTE comes back; the access is retried (a write to what came back read-only: do_wp_page)
      k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write, kind: 'device-exclusive' });
      yield* k.exclusive.remove(vmf, leaf);
      const after = k.vm.lookup(vma.mm, vpn);
      if (write && after && !nonPresent(after.pte) && !after.pte.write) yield* this.wpPage(vmf, after);
      return;
    }
    if (!leaf || wpMarker) {
      // a uffd-wp marker in a DAX mapping (a WP_ASYNC registration of any memory, v6.7): the DAX
      // fault paths insert over pte_none only (insert_pfn() / insert_page()); not modelled
      if (wpMarker && vma.kind !== 'anon' && vma.kind !== 'pagecache') throw KernelError.unsupported('EOPNOTSUPP', `a fault on a uffd-wp marker in DAX mapping '${vma.name}' is not modelled`);
      checkStableAddressSpace(vma, write);
      k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write, kind: vma.kind });
      if (vma.kind === 'anon') yield* this.anonymous(vmf);
      else if ((vma.kind === 'file' || vma.kind === 'pagecache') && write && !vma.flags.shared) yield* this.cowFault(vmf);
      else if (vma.kind === 'file') yield* k.fileFault(vmf);
      else if (vma.kind === 'pagecache') yield* k.pageCache.fault(vmf); // do_read_fault / do_shared_fault -> shmem_fault
      else yield* k.deviceFault(vmf, null);
      if (wpMarker) k.uffd.armFromMarker(vma, vpn);
      return;
    }
    if (write && !leaf.pte.write) yield* this.wpPage(vmf, leaf);
  }

  /**
   * handle_mm_fault(FAULT_FLAG_UNSHARE), as GUP raises it when gup_must_unshare() says a R/O pin
   * would not stay coherent (mm/gup.c faultin_page, v5.19+): do_wp_page() without making the
   * PTE writable — reuse marks the page exclusive, a copy is mapped read-only.
   */
  *unshare(vma: Vma, vpn: number): Op {
    if (vma.hugetlb) return yield* this.k.hugetlb.unshare(vma, vpn);
    const leaf = this.k.vm.lookup(vma.mm, vpn);
    if (!leaf || nonPresent(leaf.pte) || leaf.pte.write) return;
    this.k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write: false, kind: 'unshare' });
    yield* this.wpPage({ vma, vpn, pgoff: vma.pgoff + (vpn - vma.start), write: false }, leaf, true);
  }

  /** do_anonymous_page(): read -> the shared zero page (special PTE, no ref); write -> a new page. */
  private *anonymous(vmf: Vmf): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    // __handle_mm_fault(): pmd_none() in a THP-enabled VMA tries do_huge_pmd_anonymous_page() first
    if (k.thp.anonymousFault(vmf)) return;
    if (!vmf.write) {
      k.vm.install(vma.mm, vpn, this.pte(k.zeroPfn, 'pte', { special: true }));
      return;
    }
    // alloc_anon_folio() (v6.8+): a large folio of an enabled order below the PMD's, mapped by PTEs (mm/mthp.ts)
    if (k.thp.sizes.fault(vmf)) return;
    const pfn = k.ram.allocAnon(k.vm.anonVmaPrepare(vma), '', k.numa.allocNode(vma, vpn));
    if (pfn === null) throw new KernelError('ENOMEM', 'out of memory in do_anonymous_page');
    k.folios.addMap(pfn);
    // "if (vma->vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry))" (a FOLL_FORCE write may come without)
    k.vm.install(vma.mm, vpn, this.pte(pfn, 'pte', vma.flags.write ? { write: true, dirty: true } : {}));
  }

  /** do_cow_fault(): a private write to an unmapped file page copies it into a new anon page. */
  private *cowFault(vmf: Vmf): Op {
    const k = this.k;
    const data = yield* k.fileData(vmf);
    yield preempt('do_cow_fault');
    const pfn = k.ram.allocAnon(k.vm.anonVmaPrepare(vmf.vma), data, k.numa.allocNode(vmf.vma, vmf.vpn));
    if (pfn === null) throw new KernelError('ENOMEM', 'out of memory in do_cow_fault');
    k.folios.addMap(pfn);
    k.vm.install(vmf.vma.mm, vmf.vpn, this.pte(pfn, 'pte', { write: vmf.vma.flags.write, dirty: true })); // maybe_mkwrite(pte_mkdirty())
  }

  /**
   * do_wp_page() (mm/memory.c): shared mappings reuse the page (wp_page_shared) or, for pages
   * without a normal struct page and — from v6.15 — fs-dax pages, call ->pfn_mkwrite
   * (wp_pfn_shared); private mappings reuse an anon page when the era's rule allows, else copy.
   */
  private *wpPage(vmf: Vmf, leaf: Leaf, unshare = false): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    // do_wp_page() / do_huge_pmd_wp_page(): a write (not an unshare, v5.19+) on a uffd-wp entry of a
    // VM_UFFD_WP VMA goes to the userfaultfd ("if (userfaultfd_pte_wp(vma, ptent))", v5.7)
    if (!unshare && k.uffd.wpArmed(vma, leaf.pte)) {
      if (!k.uffd.wpAsync(vma)) return yield* k.uffd.handle(vmf, 'wp', vmf.noRetry !== true);
      // UFFD_FEATURE_WP_ASYNC (v6.7): wp_huge_pmd() "goto split" -- the write is handled at PTE
      // level (a file PMD is zapped and faulted again) -- and do_wp_page() clears the bit itself
      if (leaf.pte.level !== 'pte') {
        k.vm.splitHugePmd(vma, leaf.base);
        const after = k.vm.lookup(vma.mm, vpn);
        if (!after || after.pte.level !== 'pte') return yield* this.handle(vma, vpn, true);
        leaf = after;
      }
      if (leaf.pte.uffdWp) k.uffd.resolveAsync(vma, leaf);
      if (leaf.pte.write) return;
    }
    // wp_huge_pmd(): an anonymous VMA's PMD goes to do_huge_pmd_wp_page(); VM_FAULT_FALLBACK
    // (the PMD was split) continues with the PTE now at vpn (handle_pte_fault -> do_wp_page)
    if (!vma.flags.shared && (k.thp.isAnonPmd(vma, leaf) || k.thp.isHugeZeroPmd(vma, leaf))) {
      const done = k.thp.isHugeZeroPmd(vma, leaf) ? yield* k.thp.wpHugeZeroPmd(vmf, leaf) : yield* k.thp.wpHugePmd(vmf, leaf, unshare);
      if (done) return;
      const pte = k.vm.lookup(vma.mm, vpn);
      if (!pte) return;
      leaf = pte;
    }
    const pfn = k.vm.pfnAt(leaf, vpn);
    const page = k.vm.normalPage(leaf.pte, pfn);
    // unsharing only concerns COW mappings (do_wp_page: shared + FAULT_FLAG_UNSHARE does nothing)
    if (unshare && vma.flags.shared) return;
    if (vma.flags.shared) {
      const fsdax = page !== null && k.folios.kind(page) === 'fsdax';
      if ((page === null || fsdax) && vma.kind === 'file') {
        yield* k.pfnMkwrite(vmf);
        return;
      }
      leaf.pte.write = true; // wp_page_reuse(): maybe_mkwrite(pte_mkdirty())
      leaf.pte.dirty = true;
      leaf.pte.softDirty = k.softDirtyArch;
      // wp_page_shared(): a disk file's ->page_mkwrite (and fault_dirty_shared_page()) dirties the folio writeback cleaned
      if (page !== null && vma.cacheFile?.writeback) k.folios.setFlag(k.folios.folio(page), PG.dirty, true);
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: leaf.pte.level, write: true, devmap: leaf.pte.devmap, special: leaf.pte.special });
      return;
    }
    if (page !== null) {
      const head = k.folios.folio(page);
      if (k.folios.testAnon(head, 'do_wp_page') && this.canReuseAnon(head, page, vma)) {
        k.folios.setFlag(page, PG.anonExclusive, true);
        if (unshare) return; // R/O and now exclusive: GUP may pin it
        leaf.pte.write = vma.flags.write; // wp_page_reuse(): maybe_mkwrite(pte_mkdirty())
        leaf.pte.dirty = true;
        leaf.pte.softDirty = k.softDirtyArch;
        k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn, level: leaf.pte.level, write: leaf.pte.write, devmap: false, special: false });
        return;
      }
    }
    // v5.19-v6.1 do_wp_page(): "No anonymous page -> nothing to do" for an unshare fault
    if (unshare && page === null && k.features['gup-unshare'] !== 'cow-mapping') return;
    yield* this.copyPage(vmf, leaf, pfn, page, unshare ? 'do_wp_page: unshare' : 'do_wp_page', unshare);
  }

  /** Whether do_wp_page() may reuse an anon page, per the era (feature `wp-reuse`). */
  private canReuseAnon(head: number, page: number, vma: Vma): boolean {
    const k = this.k;
    // a KSM page is anon but never exclusive: copied, but for v5.1-v5.8's reuse_ksm_page() (mm/ksm.ts)
    if (k.ksm.isKsm(head)) return k.ksm.reuseOnWrite(head, vma);
    switch (k.features['wp-reuse']) {
      case 'mapcount': // reuse_swap_page(): mapped once, and for a swap-cache page swapped by nobody else
        return k.swap.inSwapCache(head) ? k.swap.reuseSwapPage(head) : k.folios.mappedOnce(head);
      case 'refcount': // 09854ba94c6a: page_count() == 1
        return k.folios.rc(head) === 1;
      case 'anon-exclusive': // PageAnonExclusive, else wp_can_reuse_anon_folio(): rc == 1
        // PageAnonExclusive is per page: a PTE-mapped THP subpage carries its own (v5.19)
        if ((k.folios.flags(page) & PG.anonExclusive) !== 0) return true;
        if (k.folios.nr(head) > 1) return k.thp.canReuseLarge(head, vma.mm);
        // wp_can_reuse_anon_folio(): a swap-cache folio whose only other reference is the cache's
        // first tries to leave the swap cache (folio_free_swap(); 53a05ad9f21d, v5.19: the series of c145e0b47c77)
        if (k.folios.rc(head) === 2 && k.swap.inSwapCache(head)) k.swap.freeSwap(head);
        return k.folios.rc(head) === 1;
    }
  }

  /** wp_page_copy(): a new anon page with the old contents replaces the PTE. */
  private *copyPage(vmf: Vmf, leaf: Leaf, pfn: number, page: number | null, why: string, unshare = false): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    const copy = k.ram.allocAnon(k.vm.anonVmaPrepare(vma), k.pages.data.get(pfn) ?? '', k.numa.allocNode(vma, vpn));
    if (copy === null) throw new KernelError('ENOMEM', 'out of memory in wp_page_copy');
    // the entry's value as the fault read it (orig_pte): others change entries in place too
    // (UFFDIO_WRITEPROTECT, PAGEMAP_SCAN's WP_MATCHING, KSM's write_protect_page)
    const orig = origPte(leaf.pte);
    yield preempt('wp_page_copy', entryStillRead(k.vm, vma.mm, leaf.base, leaf.pte));
    // wp_page_copy(): "Re-check the pte" -- pte_same() under the PTE lock; an entry changed
    // meanwhile (a migration put an entry or the new page there, a zap removed it, a field of it
    // was rewritten) drops the copy (folio_put(new_folio)) and the fault returns to be retried
    const now = k.vm.lookup(vma.mm, leaf.base)?.pte;
    if (!pteSame(now, leaf.pte, orig)) {
      k.folios.put(copy, 1, 'wp_page_copy: the pte changed, copy dropped');
      return;
    }
    // A huge file leaf is zapped first, not split into PTEs (__split_huge_pmd_locked() on a
    // non-anonymous VMA: pmdp_huge_clear_flush, then for a normal folio — v6.15 DAX —
    // folio_remove_rmap_pmd + folio_put, below); the write is then COWed at PTE level.
    if (leaf.pte.level !== 'pte') k.vm.clear(vma.mm, leaf.base, leaf.pte.level);
    else k.ksm.unmapZeroPage(vma.mm, k.vm.clear(vma.mm, vpn, 'pte')!); // wp_page_copy(): ksm_might_unmap_zero_page()
    k.folios.addMap(copy);
    // wp_page_copy(): an unshare copy is mapped R/O and clean, keeping the old entry's soft-dirty
    // and uffd-wp bits (v5.19); a write fault's copy gets maybe_mkwrite(pte_mkdirty())
    const bits = unshare ? { softDirty: leaf.pte.softDirty, ...(leaf.pte.uffdWp ? { uffdWp: true } : {}) } : { write: vma.flags.write, dirty: true };
    k.vm.install(vma.mm, vpn, this.pte(copy, 'pte', bits));
    k.emit('cow', { mm: vma.mm.name, vaddr: vpn, from: pfn, to: copy, why });
    if (page !== null) {
      const head = k.folios.folio(page);
      k.folios.removeMap(head);
      // "mm: free idle swap cache page after COW" (f4c4a3f48480, posted June 2021: v5.14 [M]): free_swap_cache(old)
      if (kernelAtLeast(k.version, 5, 14)) k.swap.freeSwapCache(head);
      yield preempt('wp_page_copy: flush before put');
      k.emit('tlb.flush', { mm: vma.mm.name });
      k.folios.put(head, 1, 'wp_page_copy: old page');
    }
  }

  /** A new entry; one made dirty is soft-dirty too (pte_mkdirty() sets both where the arch has it). */
  pte(pfn: number, level: Pte['level'], bits: Partial<Omit<Pte, 'pfn' | 'level'>> = {}): Pte {
    return { pfn, level, write: false, dirty: false, special: false, devmap: false, devicePrivate: false, softDirty: bits.dirty === true && this.k.softDirtyArch, ...bits };
  }
}

