import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Pte, Vma } from '../types.js';
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
  readonly data: string;
  /** stable_node->nid: the node's stable tree (0 while merge_across_nodes) */
  readonly nid: number;
  kpfn: number;
  /** rmap_hlist_len: the rmap_items hanging off it */
  len: number;
}

/** An rmap_item listed from a stable node (STABLE_FLAG): an (mm, address) mapping its KSM page. */
interface StableItem {
  readonly mm: Mm;
  readonly node: StableNode;
}

/** What mm_struct holds for KSM: MMF_VM_MERGE_ANY and the counters of /proc/PID/ksm_*. */
interface MmKsm {
  /** MMF_VM_MERGE_ANY: prctl(PR_SET_MEMORY_MERGE, 1) (v6.4) */
  mergeAny: boolean;
  /** mm->ksm_merging_pages (v5.19): this mm's rmap_items in the stable tree */
  mergingPages: number;
  /** mm->ksm_zero_pages (v6.6): PTEs of this mm that KSM pointed at the shared zero page */
  zeroPages: number;
}

/** One page-table slot ksmd looks at: an rmap_item's (mm, address). */
interface Candidate {
  readonly vma: Vma;
  readonly vpn: number;
  readonly page: number;
}

/**
 * Kernel Samepage Merging (mm/ksm.c), for the anonymous pages of VM_MERGEABLE VMAs:
 * MADV_MERGEABLE / MADV_UNMERGEABLE (ksm_madvise), prctl(PR_SET_MEMORY_MERGE) (MMF_VM_MERGE_ANY),
 * ksmd's scans (ksm_do_scan -> cmp_and_merge_page) with the use_zero_pages knob, unmerging
 * (break_ksm), the per-mm counters ksm_merging_pages and ksm_zero_pages, the sysfs counters
 * pages_shared / pages_sharing, one stable and unstable tree per NUMA node when merge_across_nodes
 * is 0, and exec. KSM swap-in copies and the re-filing of a KSM page migrated to another node
 * (migrate_nodes) are not modelled.
 */
export class Ksm {
  /** ksm_mm_head's list: mms in the order __ksm_enter() added them (MMF_VM_MERGEABLE) */
  private readonly slots: Mm[] = [];
  /**
   * the stable trees, keyed by tree and content (treeKey(); the model's page data stands for
   * memcmp_pages()): each content's KSM pages, head first -- a stable_node chain's dups, or the
   * one plain node
   */
  private readonly stable = new Map<string, StableNode[]>();
  /** stable nodes by id, as a KSM page's mapping names them */
  private readonly nodes = new Map<number, StableNode>();
  /** rmap_item->oldchecksum per (mm, page): what the last scan saw there */
  private readonly checksums = new Map<string, string>();
  /** the rmap_items hanging off stable nodes, per (mm, page) */
  private readonly items = new Map<string, StableItem>();
  /** rmap_item->age and ->remaining_skips per (mm, page), for smart scan */
  private readonly ages = new Map<string, { age: number; skips: number }>();
  private readonly perMm = new WeakMap<Mm, MmKsm>();
  private nextNode = 1;
  /**
   * /sys/kernel/mm/ksm/max_page_sharing: how many rmap_items one KSM page takes before a second KSM
   * page of the same content is made (2c653d0ee2ae "ksm: introduce ksm_max_page_sharing per page
   * deduplication limit", v4.13; default 256)
   */
  readonly maxPageSharing = 256;
  /** /sys/kernel/mm/ksm/use_zero_pages (v4.12, off by default) */
  useZeroPages = false;
  /** the global ksm_zero_pages (/sys/kernel/mm/ksm/ksm_zero_pages, v6.6) */
  zeroPagesTotal = 0;
  /**
   * /sys/kernel/mm/ksm/merge_across_nodes (90bd6fd31c80 "ksm: allow trees per NUMA node", v3.9;
   * default 1): 0 keeps one stable and one unstable tree per node (get_kpfn_nid()), so pages of
   * different nodes never merge. Set through setMergeAcrossNodes().
   */
  private acrossNodes = true;

  constructor(private readonly k: Kernel) {}

  get mergeAcrossNodes(): boolean {
    return this.acrossNodes;
  }

  /**
   * merge_across_nodes_store(): a change is refused (-EBUSY) while pages_shared is not 0 or a KSM
   * page is still mapped (remove_all_stable_nodes()); ksm_tests.c writes it after `echo 2 > run`.
   */
  setMergeAcrossNodes(on: boolean): void {
    if (on === this.acrossNodes) return;
    if (this.pagesShared() > 0 || !this.removeAllStableNodes()) throw new KernelError('EBUSY', 'merge_across_nodes: KSM pages are still shared (pages_shared > 0 or a KSM page is mapped): echo 2 > /sys/kernel/mm/ksm/run first');
    this.acrossNodes = on;
  }

  /**
   * /sys/kernel/mm/ksm/pages_shared and pages_sharing (ksm_pages_shared / ksm_pages_sharing):
   * stable_tree_append() counts the first rmap_item of a node as shared and every further one as
   * sharing, the removals undo it (remove_rmap_item_from_tree(), remove_node_from_stable_tree()),
   * so pages_shared is the stable nodes with rmap_items and pages_sharing their items beyond the
   * first. A KSM page that lost its mappings stays counted until ksmd (or a search) finds it stale.
   * Zero-page merges are not counted (no rmap_item joins the stable tree).
   */
  pagesShared(): number {
    let n = 0;
    for (const dups of this.stable.values()) for (const node of dups) if (node.len > 0) n++;
    return n;
  }

  pagesSharing(): number {
    let n = 0;
    for (const dups of this.stable.values()) for (const node of dups) n += Math.max(node.len - 1, 0);
    return n;
  }

  /**
   * get_kpfn_nid(): the tree a page's pfn belongs to -- 0 while merge_across_nodes, else its
   * node (pfn_to_nid).
   */
  private nidOf(pfn: number): number {
    return this.acrossNodes ? 0 : this.k.numa.nodeOf(pfn);
  }

  private treeKey(nid: number, data: string): string {
    return `${nid}:${data}`;
  }

  /** folio_test_ksm() / PageKsm(): the mapping's low bits are PAGE_MAPPING_KSM. */
  isKsm(head: number): boolean {
    const s = this.k.pages.slot(head);
    return (this.k.pages.mapping[s]! & 3) === PAGE_MAPPING_KSM;
  }

  /**
   * folio_migrate_ksm() (ksm_migrate_page() before v6.1): a migrated KSM page's stable node points
   * at the new folio, which took over the old one's mapping (mm/mempolicy.ts).
   */
  migrated(oldHead: number, newHead: number): void {
    const s = this.k.pages.slot(newHead);
    const node = this.nodes.get(this.k.pages.mapping[s]! >>> 2);
    if (node && node.kpfn === oldHead) node.kpfn = newHead;
  }

  private state(mm: Mm): MmKsm {
    let st = this.perMm.get(mm);
    if (!st) this.perMm.set(mm, (st = { mergeAny: false, mergingPages: 0, zeroPages: 0 }));
    return st;
  }

  /**
   * vma_ksm_compatible(): KSM leaves VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND |
   * VM_HUGETLB | VM_MIXEDMAP and DAX VMAs alone (v6.4 named the list; ksm_madvise() held it before).
   */
  private compatible(vma: Vma): boolean {
    const f = vma.flags;
    return !(f.shared || f.pfnmap || f.io || f.dontexpand || f.mixedmap || vma.hugetlb || vma.kind === 'device' || (vma.kind === 'file' && vma.inode !== null));
  }

  /** __ksm_enter(): the mm joins ksmd's list (MMF_VM_MERGEABLE), behind the idle scan cursor: last. */
  private enter(mm: Mm): void {
    if (!this.slots.includes(mm)) this.slots.push(mm);
  }

  /**
   * ksm_madvise() for one VMA's part [s, e): whether VM_MERGEABLE should change (the caller
   * updates the flags). MADV_MERGEABLE silently ignores VMAs KSM cannot merge in
   * (vma_ksm_compatible) and enters the mm into ksmd's list (__ksm_enter) on first use.
   * MADV_UNMERGEABLE unmerges the range first (unmerge_ksm_pages) when the VMA has an anon_vma;
   * an error leaves VM_MERGEABLE set.
   */
  *advise(vma: Vma, s: number, e: number, mergeable: boolean): Op<boolean> {
    if (mergeable) {
      if (vma.flags.mergeable || !this.compatible(vma)) return false;
      this.enter(vma.mm);
      return true;
    }
    if (!vma.flags.mergeable) return false;
    if (vma.anonVma) yield* this.unmerge(vma, s, e);
    return true;
  }

  /**
   * prctl(PR_SET_MEMORY_MERGE, on) (kernel/sys.c, d7597f59d1d3 "mm: add new api to enable ksm per
   * process", v6.4; an unknown option before: -EINVAL). On: ksm_enable_merge_any() -- the mm joins
   * ksmd's list, MMF_VM_MERGE_ANY is set and every compatible VMA becomes VM_MERGEABLE
   * (ksm_add_vmas), as will every VMA mmap creates later (ksm_add_vma). Off: ksm_disable_merge_any()
   * ("mm/ksm: unmerge and clear VM_MERGEABLE when setting PR_SET_MEMORY_MERGE=0", 24139c07f413,
   * v6.4 [M]) unmerges and clears VM_MERGEABLE on every VMA as MADV_UNMERGEABLE would; if that
   * fails, the VMAs are marked again and MMF_VM_MERGE_ANY stays.
   */
  *setMemoryMerge(mm: Mm, on: boolean): Op {
    this.requirePrctl('PR_SET_MEMORY_MERGE');
    const st = this.state(mm);
    if (on) {
      if (st.mergeAny) return;
      this.enter(mm);
      st.mergeAny = true;
      this.addVmas(mm);
      return;
    }
    if (!st.mergeAny) return;
    try {
      for (const vma of [...mm.vmas].sort((a, b) => a.start - b.start)) {
        // __ksm_del_vma()
        if (!vma.flags.mergeable) continue;
        if (vma.anonVma) yield* this.unmerge(vma, vma.start, vma.start + vma.pages);
        vma.flags.mergeable = false;
      }
    } catch (err) {
      this.addVmas(mm);
      throw err;
    }
    st.mergeAny = false;
  }

  /** prctl(PR_GET_MEMORY_MERGE): !!test_bit(MMF_VM_MERGE_ANY) (v6.4; -EINVAL before). */
  memoryMerge(mm: Mm): boolean {
    this.requirePrctl('PR_GET_MEMORY_MERGE');
    return this.state(mm).mergeAny;
  }

  private requirePrctl(option: string): void {
    if (!kernelAtLeast(this.k.version, 6, 4)) throw new KernelError('EINVAL', `prctl(${option}) arrived in v6.4 (d7597f59d1d3): before it prctl() answers the unknown option with -EINVAL`);
  }

  /** ksm_add_vmas() -> __ksm_add_vma(): VM_MERGEABLE on every compatible VMA, whole. */
  private addVmas(mm: Mm): void {
    for (const vma of mm.vmas) if (this.compatible(vma)) vma.flags.mergeable = true;
  }

  /**
   * ksm_add_vma() from mmap_region() (v6.4; ksm_vma_flags() computes the same before the VMA is
   * made from v6.16): a new VMA of an MMF_VM_MERGE_ANY mm is VM_MERGEABLE when compatible. From
   * v6.19 ("mm/ksm: fix exec/fork inheritance support for prctl" [M]) it also re-enters an mm that
   * ksmd dropped from its list after a scan found nothing mergeable.
   */
  addVma(vma: Vma): void {
    if (!this.state(vma.mm).mergeAny || !this.compatible(vma)) return;
    vma.flags.mergeable = true;
    if (kernelAtLeast(this.k.version, 6, 19)) this.enter(vma.mm);
  }

  /**
   * ksm_fork(): a child of an mm on ksmd's list is entered too (MMF_VM_MERGEABLE), and from v6.4
   * inherits MMF_VM_MERGE_ANY. dup_mm() copies the whole mm_struct, counters included: the child
   * starts with the parent's ksm_merging_pages and ksm_zero_pages though it has no rmap_items,
   * until 4d6fc29f3634 ("mm/ksm: fix incorrect KSM counter handling in mm_struct during fork",
   * v6.18 [M]) zeroes ksm_merging_pages (the child's KSM pages get counted when ksmd reaches them)
   * and adds the inherited KSM zero pages, which the child's PTEs do map, to the global count.
   */
  fork(parent: Mm, child: Mm): void {
    const from = this.state(parent);
    const to = this.state(child);
    to.mergingPages = from.mergingPages;
    to.zeroPages = from.zeroPages;
    if (this.slots.includes(parent)) {
      if (kernelAtLeast(this.k.version, 6, 18)) {
        to.mergingPages = 0;
        this.zeroPagesTotal += to.zeroPages;
      }
      this.enter(child);
    }
    if (kernelAtLeast(this.k.version, 6, 4)) to.mergeAny = from.mergeAny;
  }

  /**
   * execve() (Kernel.exec): the new mm's flags come from MMF_INIT_MASK, which holds
   * MMF_VM_MERGE_ANY from v6.7 (3c6f33b7273a "mm/ksm: support fork/exec for prctl" [M]) -- before,
   * PR_SET_MEMORY_MERGE is lost on exec -- and from v6.10 ksm_execve() in __bprm_mm_init() enters
   * the new mm into ksmd's list (3a9e567ca45f "mm/ksm: fix ksm exec support for prctl" [M]); in
   * between the flag survives but ksmd never scans the new program. The counters start at 0.
   */
  execve(old: Mm, mm: Mm): void {
    if (!this.state(old).mergeAny || !kernelAtLeast(this.k.version, 6, 7)) return;
    this.state(mm).mergeAny = true;
    if (kernelAtLeast(this.k.version, 6, 10)) this.enter(mm);
  }

  /**
   * /proc/PID/ksm_merging_pages (7609385337a4, v5.19; no such file before: ENOENT): the mm's
   * rmap_items in the stable tree (stable_tree_append / remove_rmap_item_from_tree).
   */
  mergingPages(mm: Mm): number {
    if (!kernelAtLeast(this.k.version, 5, 19)) throw new KernelError('ENOENT', '/proc/PID/ksm_merging_pages arrived in v5.19 (7609385337a4)');
    return this.state(mm).mergingPages;
  }

  /** /proc/PID/ksm_stat exists (cb4df4cae4f2 "ksm: count allocated ksm rmap_items for each process", v6.1). */
  hasKsmStat(): boolean {
    return kernelAtLeast(this.k.version, 6, 1);
  }

  /**
   * The ksm_zero_pages line of /proc/PID/ksm_stat (e2942062e01d / "ksm: add ksm zero pages for
   * each process", v6.6): ENOENT where ksm_stat is missing (before v6.1) or has no such line.
   */
  zeroPages(mm: Mm): number {
    if (!kernelAtLeast(this.k.version, 6, 6)) throw new KernelError('ENOENT', `/proc/PID/ksm_stat has no ksm_zero_pages line before v6.6 (e2942062e01d)${this.hasKsmStat() ? '' : ', and no ksm_stat before v6.1 (cb4df4cae4f2)'}`);
    return this.state(mm).zeroPages;
  }

  /**
   * is_ksm_zero_pte(): a zero-page PTE that KSM installed, which replace_page() marks dirty from
   * v6.6 ("ksm: support unsharing KSM-placed zero pages", 30ff6ed9a65c); before, it looked like any
   * other zero-page PTE.
   */
  isKsmZeroPte(pte: Pte): boolean {
    return pte.level === 'pte' && pte.special && pte.dirty && pte.pfn === this.k.zeroPfn && kernelAtLeast(this.k.version, 6, 6);
  }

  /** ksm_might_unmap_zero_page(): a KSM zero-page PTE goes (zap_present_ptes, wp_page_copy). */
  unmapZeroPage(mm: Mm, pte: Pte): void {
    if (!this.isKsmZeroPte(pte)) return;
    this.zeroPagesTotal--;
    this.state(mm).zeroPages--;
  }

  /**
   * ksmd until merging settles: the two full scans ksm_functional_tests.c's ksm_merge() waits
   * for (full_scans + 2). Each scan (scan_get_next_rmap_item) walks the listed mms in order, each
   * one's VM_MERGEABLE VMAs with an anon_vma by address, each present anonymous page
   * (folio_walk_start without FW_ZEROPAGE: not the zero page, not a device entry)
   * (cmp_and_merge_page): first the stable tree (an existing KSM page with the same content:
   * try_to_merge_with_ksm_page), then, only if the content did not change since the previous
   * scan (oldchecksum), the zero page (use_zero_pages) and the unstable tree, rebuilt each scan: a
   * second page of the same content makes the later-scanned page the KSM page
   * (try_to_merge_two_pages: it is write-protected and becomes stable, the earlier one is
   * replaced by it). So one scan merges nothing new, the second does.
   */
  *scan(scans = 2): Op {
    for (let i = 0; i < scans; i++) yield* this.fullScan();
  }

  /**
   * echo 2 > /sys/kernel/mm/ksm/run: unmerge_and_remove_all_rmap_items(). Every listed mm's
   * VM_MERGEABLE VMAs with an anon_vma are unmerged (unmerge_ksm_pages(), as MADV_UNMERGEABLE, but
   * VM_MERGEABLE stays set), all its rmap_items are freed (remove_trailing_rmap_items() from the
   * head: oldchecksums and stable-tree listings, so ksm_merging_pages drops to 0), an exited mm
   * leaves the list; then remove_all_stable_nodes() drops the nodes whose pages went, and ksmd
   * merges nothing until the next `echo 1` (the ksm-merge step).
   */
  *unmergeAll(): Op {
    for (const mm of [...this.slots]) {
      for (const vma of mm.alive ? [...mm.vmas].sort((a, b) => a.start - b.start) : []) {
        if (vma.flags.mergeable && vma.anonVma) yield* this.unmerge(vma, vma.start, vma.start + vma.pages);
      }
      for (const key of [...this.checksums.keys(), ...this.items.keys(), ...this.ages.keys()]) {
        if (!key.startsWith(`${mm.id}:`)) continue;
        this.checksums.delete(key);
        this.ages.delete(key);
        this.removeItem(key);
      }
      if (!mm.alive) this.drop(mm);
    }
    // "Clean up stable nodes, but don't worry if some are still busy"
    this.removeAllStableNodes();
  }

  /**
   * remove_all_stable_nodes() -> remove_stable_node() on every node: a stale one goes
   * (ksm_get_folio()), one whose page is no longer mapped too (its mapping keeps PAGE_MAPPING_KSM
   * with no node: set_page_stable_node(page, NULL)); a still-mapped KSM page stays: false (-EBUSY).
   */
  private removeAllStableNodes(): boolean {
    let ok = true;
    for (const dups of [...this.stable.values()]) {
      for (const node of dups) {
        if (this.alive(node) && this.k.folios.mapcount(node.kpfn) > 0) {
          ok = false;
          continue;
        }
        const s = this.k.pages.slot(node.kpfn);
        if (this.alive(node)) this.k.pages.mapping[s] = PAGE_MAPPING_KSM;
        this.removeNode(node);
      }
    }
    return ok;
  }

  private *fullScan(): Op {
    const k = this.k;
    const unstable = new Map<string, Candidate>();
    for (const mm of [...this.slots]) {
      const seen = new Set<string>();
      let mergeable = false;
      for (const vma of mm.alive ? [...mm.vmas].sort((a, b) => a.start - b.start) : []) {
        if (!vma.flags.mergeable) continue;
        mergeable = true;
        if (!vma.anonVma) continue;
        for (let vpn = vma.start; vpn < vma.start + vma.pages; vpn++) {
          // the VMA may have been changed by a merge's break_cow(): look it up again
          if (k.vm.vmaAt(mm, vpn) !== vma) break;
          const page = this.anonPageAt(vma, vpn);
          if (page === null) continue;
          const key = this.key(mm, vpn);
          seen.add(key);
          if (this.skip(key, page)) continue;
          yield* this.cmpAndMerge({ vma, vpn, page }, unstable);
        }
      }
      // get_next_rmap_item() frees the rmap_items of addresses it no longer finds a page at,
      // remove_trailing_rmap_items() those past the last: their oldchecksum and stable-tree
      // listing go with them
      for (const key of [...this.checksums.keys(), ...this.items.keys(), ...this.ages.keys()]) {
        if (key.startsWith(`${mm.id}:`) && !seen.has(key)) {
          this.checksums.delete(key);
          this.ages.delete(key);
          this.removeItem(key);
        }
      }
      if (!mergeable) this.drop(mm);
    }
  }

  /**
   * should_skip_rmap_item(): smart scan (5e924ff54d08 "mm/ksm: add smart page scanning", v6.7 [M];
   * /sys/kernel/mm/ksm/smart_scan, on by default). A page that is not KSM ages by one each time
   * ksmd reaches it; from age 3 on it is left alone for skip_age(age) visits (1 up to age 5, 2 up
   * to 8, 4, then 8) between two it looks at, and a skipped page leaves the trees
   * (remove_rmap_item_from_tree) without cmp_and_merge_page(). The age lives in the rmap_item:
   * freed with it.
   */
  private skip(key: string, page: number): boolean {
    if (!kernelAtLeast(this.k.version, 6, 7) || this.isKsm(page)) return false;
    const r = this.ages.get(key) ?? { age: 0, skips: 0 };
    this.ages.set(key, r);
    const age = r.age;
    if (age !== 255) r.age++;
    if (age < 3) return false;
    if (r.skips === 0) {
      r.skips = age <= 3 ? 1 : age <= 5 ? 2 : age <= 8 ? 4 : 8;
      return false;
    }
    r.skips--;
    this.removeItem(key);
    return true;
  }

  /**
   * scan_get_next_rmap_item(): a full scan of an exited mm, or of one without any VM_MERGEABLE
   * VMA, takes it off ksmd's list and clears MMF_VM_MERGEABLE -- and MMF_VM_MERGE_ANY, so
   * PR_GET_MEMORY_MERGE reads 0 and later mmaps are not marked, until v6.19 ("mm/ksm: fix
   * exec/fork inheritance support for prctl" [M]) kept MMF_VM_MERGE_ANY.
   */
  private drop(mm: Mm): void {
    this.slots.splice(this.slots.indexOf(mm), 1);
    if (!kernelAtLeast(this.k.version, 6, 19)) this.state(mm).mergeAny = false;
  }

  private key(mm: Mm, vpn: number): string {
    return `${mm.id}:${vpn}`;
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
    const key = this.key(item.vma.mm, item.vpn);
    if (this.isKsm(item.page)) {
      // a KSM page whose rmap_item already hangs off its stable node: nothing to do; else a KSM
      // page this mm got by fork: try_to_merge_one_page() says 0 ("ksm page forked") and
      // stable_tree_append() lists it
      const node = this.nodeOf(item.page);
      if (!node || this.items.get(key)?.node === node) return;
      this.removeItem(key);
      this.append(key, item.vma.mm, node);
      return;
    }
    this.removeItem(key);
    const data = this.k.pages.data.get(item.page) ?? '';
    const nid = this.nidOf(item.page);
    // the checksum test, and the zero page, come before the stable tree from v6.11 ("mm/ksm: don't
    // waste time searching stable tree for fast changing page", Chengming Zhou [M]); after it before
    const checksumFirst = kernelAtLeast(this.k.version, 6, 11);
    if (checksumFirst && !this.unchanged(key, data, item)) return;
    // stable_tree_search(): a KSM page whose content matches
    const node = this.stableNode(nid, data);
    if (node && this.mergeOne(item, node.kpfn)) {
      this.append(key, item.vma.mm, node);
      return;
    }
    if (!checksumFirst && !this.unchanged(key, data, item)) return;
    // unstable_tree_search_insert() in the page's node's tree: the same page found again is no
    // match, nor (merge_across_nodes 0) a tree page that has since moved to another node
    const treeKey = this.treeKey(nid, data);
    const tree = unstable.get(treeKey);
    if (!tree) {
      unstable.set(treeKey, item);
      return;
    }
    if (tree.page === item.page || this.anonPageAt(tree.vma, tree.vpn) !== tree.page) return;
    if (!this.acrossNodes && this.k.numa.nodeOf(tree.page) !== nid) return;
    const folio = this.k.folios.folio(item.page);
    if (this.k.folios.nr(folio) > 1 && this.k.folios.folio(tree.page) === folio) {
      // both pages in one large folio: get_mergeable_page()'s reference on the tree page is a
      // second one on the folio, so the split in try_to_merge_one_page() fails (can_split_folio)
      // and nothing merges; cmp_and_merge_page() then drops it and splits the folio ("split =
      // PageTransCompound(page) && compound_head(page) == compound_head(tree_page)", every
      // modelled release): no merge this time, the tree page stays in the unstable tree
      this.k.thp.splitFolioHeld(folio, 'cmp_and_merge_page: split_huge_page');
      return;
    }
    // try_to_merge_two_pages(): item's page becomes the KSM page, then tree's PTE maps it
    if (!this.writeProtect(item.vma, item.vpn, item.page)) return;
    const fresh: StableNode = { id: this.nextNode++, data, nid, kpfn: item.page, len: 0 };
    this.setStable(item.page, fresh);
    this.nodes.set(fresh.id, fresh);
    if (this.mergeOne(tree, item.page)) {
      // stable_tree_insert(): the content is now in the stable tree -- a new dup at the head of
      // its chain when KSM pages of this content exist (need_chain: alloc_stable_node_chain() /
      // stable_node_chain_add_dup()) -- and out of the unstable one; both rmap_items are appended
      this.stable.set(treeKey, [fresh, ...(this.stable.get(treeKey) ?? [])]);
      unstable.delete(treeKey);
      this.append(this.key(tree.vma.mm, tree.vpn), tree.vma.mm, fresh);
      this.append(key, item.vma.mm, fresh);
      return;
    }
    // "If that fails, we have a ksm page with only one pte pointing to it: so break it" (break_cow)
    this.nodes.delete(fresh.id);
    yield* this.breakKsm(item.vma, item.vpn);
  }

  /**
   * Whether cmp_and_merge_page() goes on to the unstable tree: "If the hash value of the page has
   * changed from the last time we calculated it, this page is changing frequently: therefore we
   * don't want to insert it in the unstable tree" (oldchecksum is updated); then
   * try_to_merge_with_zero_page() ("Same checksum as an empty page", use_zero_pages on) ends it
   * when the page went to the zero page.
   */
  private unchanged(key: string, data: string, item: Candidate): boolean {
    if (this.checksums.get(key) !== data) {
      this.checksums.set(key, data);
      return false;
    }
    return !(this.useZeroPages && data === '' && this.mergeWithZeroPage(item));
  }

  /**
   * stable_tree_append(): the rmap_item hangs off the node (rmap_hlist_len++, past
   * max_page_sharing only for a KSM page got by fork); mm->ksm_merging_pages++.
   */
  private append(key: string, mm: Mm, node: StableNode): void {
    this.items.set(key, { mm, node });
    node.len++;
    this.state(mm).mergingPages++;
  }

  /**
   * remove_rmap_item_from_tree() of a STABLE_FLAG item: ksm_get_folio() first, and a node whose
   * page is gone is stale -- remove_node_from_stable_tree() takes every rmap_item off it (each
   * one's mm->ksm_merging_pages--); else just this one.
   */
  private removeItem(key: string): void {
    const it = this.items.get(key);
    if (!it) return;
    if (!this.alive(it.node)) return this.removeNode(it.node);
    this.items.delete(key);
    it.node.len--;
    this.state(it.mm).mergingPages--;
  }

  private removeNode(node: StableNode): void {
    for (const [key, it] of this.items) {
      if (it.node !== node) continue;
      this.items.delete(key);
      this.state(it.mm).mergingPages--;
    }
    const key = this.treeKey(node.nid, node.data);
    const dups = (this.stable.get(key) ?? []).filter((d) => d !== node);
    if (dups.length > 0) this.stable.set(key, dups);
    else this.stable.delete(key);
    this.nodes.delete(node.id);
  }

  /** get_ksm_page()'s keyhole check: the node's page still carries the node in its mapping. */
  private alive(node: StableNode): boolean {
    const s = this.k.pages.slot(node.kpfn);
    return this.k.pages.rc[s]! > 0 && this.k.pages.mapping[s] === node.id * 4 + PAGE_MAPPING_KSM;
  }

  /**
   * stable_tree_search() for a page that is not KSM: the KSM pages of its content in chain order
   * (chain_prune() -> stable_node_dup()), each checked by ksm_get_folio() (a stale one is removed,
   * remove_node_from_stable_tree()); the first that is a page-sharing candidate -- it has rmap_items
   * and fewer than max_page_sharing -- is the one to merge into, moved to the chain's head when it
   * can take one more after this merge. None ("all full"): NULL, and the page has to find a match
   * in the unstable tree to start a new KSM page of that content. (The time-gated pruning walk,
   * which prefers the fullest candidate, is not modelled: ksmd's timing is not.)
   */
  private stableNode(nid: number, data: string): StableNode | null {
    const key = this.treeKey(nid, data);
    for (const node of [...(this.stable.get(key) ?? [])]) {
      if (!this.alive(node)) {
        this.removeNode(node);
        continue;
      }
      if (!this.sharingCandidate(node, 0)) continue;
      const dups = this.stable.get(key)!;
      if (dups[0] !== node && this.sharingCandidate(node, 1)) this.stable.set(key, [node, ...dups.filter((d) => d !== node)]);
      return node;
    }
    return null;
  }

  /** __is_page_sharing_candidate(): rmap_hlist_len && rmap_hlist_len + offset < ksm_max_page_sharing. */
  private sharingCandidate(node: StableNode, offset: number): boolean {
    return node.len > 0 && node.len + offset < this.maxPageSharing;
  }

  /** folio_stable_node(): the node a KSM page's mapping names. */
  private nodeOf(page: number): StableNode | null {
    const s = this.k.pages.slot(page);
    const id = Math.floor(this.k.pages.mapping[s]! / 4);
    return this.nodes.get(id) ?? null;
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
   * try_to_merge_one_page(vma, page, ZERO_PAGE): write_protect_page(), then replace_page() maps
   * the shared zero page instead (pte_mkspecial, no reference or rmap; from v6.6 pte_mkdirty marks
   * it KSM's and ksm_map_zero_page() counts it in mm->ksm_zero_pages and ksm_zero_pages); the
   * page loses its mapping and reference. No rmap_item joins the stable tree.
   */
  private mergeWithZeroPage(item: Candidate): boolean {
    const k = this.k;
    const { vma, vpn, page } = item;
    if (!this.writeProtect(vma, vpn, page)) return false;
    const marked = kernelAtLeast(k.version, 6, 6);
    k.vm.clear(vma.mm, vpn, 'pte');
    k.vm.install(vma.mm, vpn, k.faults.pte(k.zeroPfn, 'pte', { special: true, ...(marked ? { dirty: true } : {}) }));
    if (marked) {
      this.zeroPagesTotal++;
      this.state(vma.mm).zeroPages++;
    }
    this.dropOld(vma, page, 'replace_page: merged into the zero page');
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
    // page_vma_mapped_walk() finds no PTE of the page any more when the split (v6.12) mapped it,
    // zero-filled, to the shared zero page and freed it: -EFAULT, nothing merged
    const leaf = k.vm.lookup(vma.mm, vpn);
    if (!leaf || leaf.pte.level !== 'pte' || leaf.pte.special || leaf.pte.pfn !== page) return false;
    const pte = leaf.pte;
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
    this.dropOld(vma, page, 'replace_page: merged page');
  }

  private dropOld(vma: Vma, page: number, why: string): void {
    const k = this.k;
    const head = k.folios.folio(page);
    k.folios.removeMap(head);
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.folios.put(head, 1, why);
  }

  /**
   * unmerge_ksm_pages() -> break_ksm() on each page of [s, e): while the PTE maps a KSM page
   * (or, from v6.6, a KSM-placed zero page: is_ksm_zero_pte), fault it: FAULT_FLAG_UNSHARE from
   * v6.2 (6cce3314b928 "mm/ksm: fix KSM COW breaking with userfaultfd-wp via FAULT_FLAG_UNSHARE",
   * merged for 6.2 with d7c0e68dab98 "convert break_ksm() to use walk_page_range_vma()": the copy
   * stays read-only), before it a write fault (FAULT_FLAG_WRITE: the copy
   * is mapped writable where the VMA has VM_WRITE). do_wp_page() copies a KSM page, except
   * v5.1-v5.8's reuse_ksm_page() of one mapped by this PTE alone.
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
      if (!this.isKsmZeroPte(leaf.pte) && (page === null || !this.isKsm(page))) return;
      if (tries === 2) throw new KernelError('EFAULT', `break_ksm: page ${vpn - vma.start} of '${vma.name}' is still a KSM page after two faults`);
      if (kernelAtLeast(k.version, 6, 2)) yield* k.faults.unshare(vma, vpn);
      else {
        // handle_mm_fault(FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE) checks no VMA permission: in a VMA
        // without VM_WRITE (PROT_READ, PROT_NONE) the copy is made and mapped read-only (maybe_mkwrite).
        // It has no FAULT_FLAG_ALLOW_RETRY, so on a uffd-wp PTE handle_userfault() returns
        // VM_FAULT_SIGBUS, which ends break_ksm()'s loop with 0: the page stays a KSM page (the bug
        // 6cce3314b928 fixed in v6.2; mm/userfaultfd.ts)
        try {
          yield* k.faults.handle(vma, vpn, true, true, false);
        } catch (e) {
          if (e instanceof KernelError && e.code === 'SIGBUS') return;
          throw e;
        }
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
