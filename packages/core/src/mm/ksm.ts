import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Vma } from '../types.js';
import { nonPresent } from './exclusive.js';
import { anonMappingOf, PG } from './pages.js';

/**
 * PAGE_MAPPING_KSM (include/linux/page-flags.h): PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE. A KSM
 * page's mapping is its stable node with these bits (set_page_stable_node()), so it still tests
 * anon; the model encodes the stable node's id as `id * 4 | 3` (mm/pages.ts mappingOf).
 */
const PAGE_MAPPING_KSM = 0x3;

/** A stable-tree node: the KSM page that holds one content (struct ksm_stable_node). */
interface StableNode {
  readonly id: number;
  kpfn: number;
}

/** One page-table slot ksmd looks at: an rmap_item's (mm, address). */
interface Candidate {
  readonly vma: Vma;
  readonly vpn: number;
  readonly page: number;
}

/**
 * Kernel Samepage Merging (mm/ksm.c), for the anonymous pages of VM_MERGEABLE VMAs:
 * MADV_MERGEABLE / MADV_UNMERGEABLE (ksm_madvise), ksmd's scans (ksm_do_scan ->
 * cmp_and_merge_page), and unmerging (break_ksm). The use_zero_pages knob (off by default),
 * max_page_sharing chains, NUMA trees, prctl(PR_SET_MEMORY_MERGE) and KSM swap-in copies are not
 * modelled.
 */
export class Ksm {
  /** ksm_mm_head's list: mms in the order __ksm_enter() added them (MMF_VM_MERGEABLE) */
  private readonly slots: Mm[] = [];
  /** the stable tree, keyed by content (the model's page data stands for memcmp_pages()) */
  private readonly stable = new Map<string, StableNode>();
  /** rmap_item->oldchecksum per (mm, page): what the last scan saw there */
  private readonly checksums = new Map<string, string>();
  private nextNode = 1;

  constructor(private readonly k: Kernel) {}

  /** folio_test_ksm() / PageKsm(): the mapping's low bits are PAGE_MAPPING_KSM. */
  isKsm(head: number): boolean {
    const s = this.k.pages.slot(head);
    return (this.k.pages.mapping[s]! & 3) === PAGE_MAPPING_KSM;
  }

  /**
   * ksm_madvise() for one VMA's part [s, e): whether VM_MERGEABLE should change (the caller
   * updates the flags). MADV_MERGEABLE silently ignores VMAs KSM cannot merge in
   * (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP, and
   * vma_is_dax(); from v6.4 vma_ksm_compatible() holds the same list) and enters the mm into
   * ksmd's list (__ksm_enter) on first use. MADV_UNMERGEABLE unmerges the range first
   * (unmerge_ksm_pages) when the VMA has an anon_vma; an error leaves VM_MERGEABLE set.
   */
  *advise(vma: Vma, s: number, e: number, mergeable: boolean): Op<boolean> {
    if (mergeable) {
      if (vma.flags.mergeable) return false;
      const f = vma.flags;
      if (f.shared || f.pfnmap || f.io || f.dontexpand || f.mixedmap || vma.hugetlb || vma.kind === 'device' || (vma.kind === 'file' && vma.inode !== null)) return false;
      if (!this.slots.includes(vma.mm)) this.slots.push(vma.mm);
      return true;
    }
    if (!vma.flags.mergeable) return false;
    if (vma.anonVma) yield* this.unmerge(vma, s, e);
    return true;
  }

  /** ksm_fork(): a child of an mm on ksmd's list is entered too (MMF_VM_MERGEABLE is inherited). */
  fork(parent: Mm, child: Mm): void {
    if (this.slots.includes(parent)) this.slots.push(child);
  }

  /**
   * ksmd until merging settles: the two full scans ksm_functional_tests.c's ksm_merge() waits
   * for (full_scans + 2). Each scan (scan_get_next_rmap_item) walks the listed mms in order, each
   * one's VM_MERGEABLE VMAs with an anon_vma by address, each present anonymous page
   * (follow_page: not the zero page, not a device entry) that is not yet KSM
   * (cmp_and_merge_page): first the stable tree (an existing KSM page with the same content:
   * try_to_merge_with_ksm_page), then, only if the content did not change since the previous
   * scan (oldchecksum), the unstable tree, rebuilt each scan: a second page of the same content
   * makes the later-scanned page the KSM page (try_to_merge_two_pages: it is write-protected and
   * becomes stable, the earlier one is replaced by it). So one scan merges nothing new, the
   * second does.
   */
  *scan(scans = 2): Op {
    for (let i = 0; i < scans; i++) yield* this.fullScan();
  }

  private *fullScan(): Op {
    const k = this.k;
    const unstable = new Map<string, Candidate>();
    for (const mm of this.slots) {
      if (!mm.alive) continue;
      for (const vma of [...mm.vmas].sort((a, b) => a.start - b.start)) {
        if (!vma.flags.mergeable || !vma.anonVma) continue;
        for (let vpn = vma.start; vpn < vma.start + vma.pages; vpn++) {
          // the VMA may have been changed by a merge's break_cow(): look it up again
          if (k.vm.vmaAt(mm, vpn) !== vma) break;
          const page = this.anonPageAt(vma, vpn);
          // get_next_rmap_item() frees the rmap_items of addresses it no longer finds a page at:
          // their oldchecksum goes with them
          if (page === null) this.checksums.delete(`${mm.id}:${vpn}`);
          if (page === null || this.isKsm(page)) continue;
          yield* this.cmpAndMerge({ vma, vpn, page }, unstable);
        }
      }
    }
  }

  /** The anonymous page mapped at vpn, by a PTE or a THP's PMD (follow_page + PageAnon), else null. */
  private anonPageAt(vma: Vma, vpn: number): number | null {
    const k = this.k;
    const leaf = k.vm.lookup(vma.mm, vpn);
    if (!leaf || nonPresent(leaf.pte)) return null;
    const page = k.vm.normalPage(leaf.pte, k.vm.pfnAt(leaf, vpn));
    if (page === null || !k.folios.isAnon(k.folios.folio(page))) return null;
    return page;
  }

  /** cmp_and_merge_page(). */
  private *cmpAndMerge(item: Candidate, unstable: Map<string, Candidate>): Op {
    const data = this.k.pages.data.get(item.page) ?? '';
    // stable_tree_search(): a KSM page whose content matches
    const node = this.stableNode(data);
    if (node && this.mergeOne(item, node.kpfn)) return;
    // "If the hash value of the page has changed from the last time we calculated it, this page
    // is changing frequently: therefore we don't want to insert it in the unstable tree"
    const key = `${item.vma.mm.id}:${item.vpn}`;
    if (this.checksums.get(key) !== data) {
      this.checksums.set(key, data);
      return;
    }
    // unstable_tree_search_insert(): the same page found again is no match
    const tree = unstable.get(data);
    if (!tree) {
      unstable.set(data, item);
      return;
    }
    if (tree.page === item.page || this.anonPageAt(tree.vma, tree.vpn) !== tree.page) return;
    // try_to_merge_two_pages(): item's page becomes the KSM page, then tree's PTE maps it
    if (!this.writeProtect(item.vma, item.vpn, item.page)) return;
    const fresh: StableNode = { id: this.nextNode++, kpfn: item.page };
    this.setStable(item.page, fresh);
    if (this.mergeOne(tree, item.page)) {
      // stable_tree_insert(): the content is now in the stable tree; out of the unstable one
      this.stable.set(data, fresh);
      unstable.delete(data);
      return;
    }
    // "If that fails, we have a ksm page with only one pte pointing to it: so break it" (break_cow)
    yield* this.breakKsm(item.vma, item.vpn);
  }

  /** get_ksm_page()'s keyhole check: the node's page still carries the node in its mapping. */
  private stableNode(data: string): StableNode | null {
    const node = this.stable.get(data);
    if (!node) return null;
    const s = this.k.pages.slot(node.kpfn);
    if (this.k.pages.rc[s]! > 0 && this.k.pages.mapping[s] === node.id * 4 + PAGE_MAPPING_KSM) return node;
    this.stable.delete(data); // remove_node_from_stable_tree(): stale
    return null;
  }

  private setStable(page: number, node: StableNode): void {
    const s = this.k.pages.slot(page);
    this.k.pages.mapping[s] = node.id * 4 + PAGE_MAPPING_KSM;
  }

  /** try_to_merge_one_page() with a KSM page: write_protect_page() then replace_page(). */
  private mergeOne(item: Candidate, kpage: number): boolean {
    if (item.page === kpage) return false;
    if (!this.writeProtect(item.vma, item.vpn, item.page)) return false;
    this.replace(item.vma, item.vpn, item.page, kpage);
    return true;
  }

  /**
   * write_protect_page(): a writable or dirty PTE (or, v5.19+, an anon-exclusive page) is
   * cleared and flushed, then the page is refused unless mapcount + 1 + PageSwapCache equals
   * its refcount ("Check that no O_DIRECT or similar I/O is in progress on the page": the +1
   * is follow_page's reference, which the model does not take, so rc must equal mapcount +
   * swapcache -- a GUP pin or get breaks it); else PG_anon_exclusive is given up
   * (page_try_share_anon_rmap, v5.19) and the PTE comes back clean and read-only.
   */
  private writeProtect(vma: Vma, vpn: number, page: number): boolean {
    const k = this.k;
    // try_to_merge_one_page(): "if (PageTransCompound(page)) { if (split_huge_page(page)) goto
    // out_unlock; }" -- a large folio is split first (its PMDs become PTEs); a pinned one cannot be
    if (k.folios.nr(k.folios.folio(page)) > 1 && !k.thp.splitFolioHeld(k.folios.folio(page), 'try_to_merge_one_page')) return false;
    const pte = k.vm.lookup(vma.mm, vpn)!.pte;
    const exclusive = (k.folios.flags(page) & PG.anonExclusive) !== 0 && kernelAtLeast(k.version, 5, 19);
    if (!pte.write && !pte.dirty && !exclusive) return true;
    const head = k.folios.folio(page);
    const swapped = k.swap.inSwapCache(head) ? 1 : 0;
    if (k.folios.mapcount(head) + swapped !== k.folios.rc(head)) return false;
    if (exclusive && k.folios.maybeDmaPinned(head)) return false;
    k.folios.setFlag(page, PG.anonExclusive, false);
    pte.write = false; // pte_mkclean(pte_wrprotect()); the dirty bit goes to the folio (set_page_dirty)
    pte.dirty = false;
    k.emit('pte.set', { mm: vma.mm.name, vaddr: vpn, pfn: pte.pfn, level: 'pte', write: false, devmap: false, special: false });
    return true;
  }

  /**
   * replace_page(): the PTE maps kpage instead (get_page + page_add_anon_rmap on kpage,
   * mk_pte with vm_page_prot: read-only, clean), then the old page loses its mapping and, after
   * the flush, its reference (page_remove_rmap + put_page).
   */
  private replace(vma: Vma, vpn: number, page: number, kpage: number): void {
    const k = this.k;
    k.vm.clear(vma.mm, vpn, 'pte');
    k.folios.get(kpage, 1, 'replace_page: ksm page');
    k.folios.addMap(kpage);
    k.vm.install(vma.mm, vpn, k.faults.pte(kpage, 'pte'));
    const head = k.folios.folio(page);
    k.folios.removeMap(head);
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.folios.put(head, 1, 'replace_page: merged page');
  }

  /**
   * unmerge_ksm_pages() -> break_ksm() on each page of [s, e): while the PTE maps a KSM page,
   * fault it: FAULT_FLAG_UNSHARE from v6.1 ("mm/ksm: fix KSM COW breaking with
   * userfaultfd-wp via FAULT_FLAG_UNSHARE", d7c0e68dab98: the copy stays read-only), before it
   * a write fault (FAULT_FLAG_WRITE: the copy is mapped writable). do_wp_page() copies a KSM
   * page, except v5.1-v5.8's reuse_ksm_page() of one mapped by this PTE alone.
   */
  *unmerge(vma: Vma, s: number, e: number): Op {
    for (let vpn = s; vpn < e; vpn++) yield* this.breakKsm(vma, vpn);
  }

  private *breakKsm(vma: Vma, vpn: number): Op {
    const k = this.k;
    for (let tries = 0; ; tries++) {
      const leaf = k.vm.lookup(vma.mm, vpn);
      if (!leaf || nonPresent(leaf.pte) || leaf.pte.level !== 'pte') return;
      const page = k.vm.normalPage(leaf.pte, leaf.pte.pfn);
      if (page === null || !this.isKsm(page)) return;
      if (tries === 2) throw new KernelError('EFAULT', `break_ksm: page ${vpn - vma.start} of '${vma.name}' is still a KSM page after two faults`);
      if (kernelAtLeast(k.version, 6, 1)) yield* k.faults.unshare(vma, vpn);
      else {
        if (!vma.flags.write) throw KernelError.unsupported('EINVAL', `break_ksm before v6.1 on '${vma.name}' without VM_WRITE: its FAULT_FLAG_WRITE fault on a read-only VMA is not modelled`);
        yield* k.faults.handle(vma, vpn, true);
      }
    }
  }

  /**
   * do_wp_page() on a KSM page (the caller's reuse test): v5.1-v5.8 (wp-reuse `mapcount`)
   * reuse_ksm_page() takes a page not in the swap cache whose only reference is this PTE's
   * (page_ref_freeze(page, 1)) and makes it an ordinary anon page again (page_move_anon_rmap);
   * from 09854ba94c6a (v5.9) "if (PageKsm(page) || page_count(page) != 1) goto copy", and from
   * v5.19 KSM pages are never PageAnonExclusive and wp_can_reuse_anon_folio() refuses them: copy.
   */
  reuseOnWrite(head: number, vma: Vma): boolean {
    const k = this.k;
    if (k.features['wp-reuse'] !== 'mapcount') return false;
    if (k.swap.inSwapCache(head) || k.folios.rc(head) !== 1) return false;
    const s = k.pages.slot(head);
    k.pages.mapping[s] = anonMappingOf(k.vm.anonVmaPrepare(vma)); // page_move_anon_rmap()
    return true;
  }
}
