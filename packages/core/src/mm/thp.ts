import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { preempt, type Op } from '../sched.js';
import { kernelAtLeast } from '../features.js';
import type { Mm, ThpDisable, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { PG } from './pages.js';
import type { Leaf } from './vm.js';
import { AnonThpSizes } from './mthp.js';
import { Khugepaged } from './collapse.js';
import { splitAnonFolio, type AnonSplit } from './split.js';

/** /sys/kernel/mm/transparent_hugepage/enabled (mm/huge_memory.c enabled_store()). */
export const THP_ENABLED_MODES = ['always', 'madvise', 'never'] as const;
export type ThpEnabledMode = (typeof THP_ENABLED_MODES)[number];

/**
 * Anonymous transparent huge pages mapped by a PMD (mm/huge_memory.c). The model boots with
 * /sys/kernel/mm/transparent_hugepage/enabled = `madvise` (what cow.c relies on: it calls
 * MADV_HUGEPAGE; the `thp-enabled` step changes it), so only VM_HUGEPAGE VMAs (`VmFlags.hugepage`) get THPs, and use_zero_page = 1
 * (the default), so a read fault maps the huge zero page; defrag lets the allocation succeed
 * whenever the model's RAM can hold the folio. MADV_COLLAPSE and khugepaged are in mm/collapse.ts. Not modelled: swap,
 * the deferred split queue. Sizes below the PMD (mTHP, v6.8+) are in mm/mthp.ts.
 */
export class Thp {
  /** the per-size enabled knobs and the PTE-mapped anonymous THPs below the PMD size (mm/mthp.ts) */
  readonly sizes: AnonThpSizes;
  /** khugepaged's max_ptes_* limits and its scan pass (mm/collapse.ts) */
  readonly khugepaged: Khugepaged;

  /** transparent_hugepage/enabled: TRANSPARENT_HUGEPAGE_FLAG (always) / _REQ_MADV_FLAG (madvise) / neither */
  enabled: ThpEnabledMode = 'madvise';

  constructor(private readonly k: Kernel) {
    this.sizes = new AnonThpSizes(k);
    this.khugepaged = new Khugepaged(k);
  }

  /** echo mode > transparent_hugepage/enabled: ENOENT where hugepage_init() failed (no THP on this MMU, no sysfs directory). */
  setEnabled(mode: ThpEnabledMode): void {
    if (this.k.mmu.transparentHugepage === false) throw new KernelError('ENOENT', 'transparent_hugepage/enabled does not exist: this MMU has no THP (hugepage_init() failed)');
    this.enabled = mode;
  }

  /**
   * What the global mode allows in a VMA where sysfs is obeyed (TVA_ENFORCE_SYSFS: faults and
   * khugepaged, not MADV_COLLAPSE): hugepage_global_always(), or VM_HUGEPAGE with
   * hugepage_global_enabled() (v5.4 __transparent_hugepage_enabled(); hugepage_vma_check() from
   * v6.0; the `inherit` sizes of thp_vma_allowable_orders() from v6.8).
   */
  globalAllows(vma: Vma): boolean {
    return this.enabled === 'always' || (this.enabled === 'madvise' && vma.flags.hugepage);
  }

  /**
   * vma_thp_disabled() (include/linux/huge_mm.h; the same test inline in
   * __transparent_hugepage_enabled() / hugepage_vma_check() before 963756aac1f0, v6.12 [M]): VM_NOHUGEPAGE,
   * or the process's prctl(PR_SET_THP_DISABLE) (MMF_DISABLE_THP, an mm flag since 1860033237d4,
   * v4.13). MMF_DISABLE_THP_EXCEPT_ADVISED ("prctl: extend PR_SET_THP_DISABLE to optionally
   * exclude VM_HUGEPAGE", v6.18 [M]) spares a VM_HUGEPAGE VMA and a forced collapse (MADV_COLLAPSE:
   * "mm/huge_memory: respect MADV_COLLAPSE with PR_THP_DISABLE_EXCEPT_ADVISED", same series).
   * Every THP path asks it: anonymous and DAX faults, shmem, khugepaged and MADV_COLLAPSE.
   */
  disabled(vma: Vma, forcedCollapse: boolean): boolean {
    if (vma.flags.nohugepage) return true;
    const mode = vma.mm.thpDisable;
    if (mode === 'completely') return true;
    return mode === 'except-advised' && !vma.flags.hugepage && !forcedCollapse;
  }

  /**
   * prctl(PR_SET_THP_DISABLE, disable, flags) (kernel/sys.c; prctl_set_thp_disable() from v6.18):
   * sets or clears the process's flag under mmap_write_lock; existing VMAs keep their flags, the
   * flag is asked at each fault or collapse. Before v6.18 any arg3 is EINVAL; from it
   * PR_THP_DISABLE_EXCEPT_ADVISED (arg3 bit 1) picks MMF_DISABLE_THP_EXCEPT_ADVISED, and flags
   * with disable = 0 are EINVAL. fork and execve keep the setting (MMF_DISABLE_THP_MASK is in
   * MMF_INIT_MASK).
   */
  setDisable(mm: Mm, disable: boolean, exceptAdvised: boolean): void {
    if (exceptAdvised && !kernelAtLeast(this.k.version, 6, 18)) throw new KernelError('EINVAL', 'prctl(PR_SET_THP_DISABLE) with arg3 set: PR_THP_DISABLE_EXCEPT_ADVISED came with v6.18 [M]; before, any arg3 is -EINVAL');
    if (exceptAdvised && !disable) throw new KernelError('EINVAL', 'prctl(PR_SET_THP_DISABLE, 0, PR_THP_DISABLE_EXCEPT_ADVISED): flags are only allowed when disabling');
    const mode: ThpDisable | undefined = !disable ? undefined : exceptAdvised ? 'except-advised' : 'completely';
    if (mode === undefined) delete mm.thpDisable;
    else mm.thpDisable = mode;
  }

  /** prctl(PR_GET_THP_DISABLE): 1 when disabled completely, 1 | PR_THP_DISABLE_EXCEPT_ADVISED (3) except advised (v6.18), else 0. */
  getDisable(mm: Mm): number {
    return mm.thpDisable === 'completely' ? 1 : mm.thpDisable === 'except-advised' ? 3 : 0;
  }

  /** HPAGE_PMD_ORDER: the arch's PMD order (9 with 4 KiB pages, 13 with 64 KiB on arm64). */
  get order(): number {
    return Math.log2(this.k.vm.pmdPages);
  }

  /**
   * __handle_mm_fault(): pmd_none() && thp_vma_allowable_order() (v5.4:
   * transparent_hugepage_enabled() / __transparent_hugepage_enabled()): an anonymous private VMA
   * with VM_HUGEPAGE, an MMU that can map PMD leaves (has_transparent_hugepage()), and
   * transhuge_vma_suitable(): the PMD-aligned range around vpn lies inside the VMA. pmd_none()
   * is approximated by "no PTE in the range" (an emptied page table is not remembered).
   */
  eligible(vma: Vma, vpn: number): boolean {
    const k = this.k;
    if (k.mmu.transparentHugepage === false) return false;
    // v6.8+: the PMD order's own knob (hugepages-<PMD size>kB/enabled, `inherit` by default) decides
    if (!this.sizes.allowed(vma, this.order)) return false;
    const n = k.vm.pmdPages;
    const base = vpn - (vpn % n);
    if (base < vma.start || base + n > vma.start + vma.pages) return false;
    for (let v = base; v < base + n; v++) if (vma.mm.ptes.has(v)) return false;
    return true;
  }

  /**
   * do_huge_pmd_anonymous_page(). A read fault maps the huge zero page read-only
   * (transparent_hugepage_use_zero_page(): set_huge_zero_page(); it takes no page reference,
   * only the mm's huge_zero_refcount). A write fault allocates an order-HPAGE_PMD_ORDER anon folio,
   * folio_add_new_anon_rmap() (entire mapcount 1, PageAnonExclusive from v5.19), mapped by a
   * writable dirty PMD (mk_huge_pmd + maybe_pmd_mkwrite(pmd_mkdirty())). False: fall back to
   * PTEs (VM_FAULT_FALLBACK: not eligible, or the allocation failed — THP_FAULT_FALLBACK).
   */
  anonymousFault(vmf: Vmf): boolean {
    const k = this.k;
    const { vma, vpn } = vmf;
    if (!this.eligible(vma, vpn)) return false;
    const base = vpn - (vpn % k.vm.pmdPages);
    // anon_vma_prepare() comes first, for a read fault too: fork copies the huge zero PMD
    const anonVma = k.vm.anonVmaPrepare(vma);
    if (!vmf.write) {
      k.vm.install(vma.mm, base, k.faults.pte(k.hugeZeroPfn, 'pmd', { special: true }));
      return true;
    }
    const head = k.ram.allocAnonLarge(anonVma, this.order, k.numa.allocNode(vma, base, this.order));
    if (head === null) return false;
    k.folios.addMap(head);
    // maybe_pmd_mkwrite(): writable only with VM_WRITE (a FOLL_FORCE write into a read-only VMA
    // gets a dirty, read-only PMD: mkdirty.c test_ptrace_write_thp)
    k.vm.install(vma.mm, base, k.faults.pte(head, 'pmd', { write: vma.flags.write, dirty: true }));
    return true;
  }

  /** is_huge_zero_pmd() in an anonymous VMA. */
  isHugeZeroPmd(vma: Vma, leaf: Leaf): boolean {
    return leaf.pte.level === 'pmd' && vma.kind === 'anon' && leaf.pte.special && leaf.pte.pfn === this.k.hugeZeroPfn;
  }

  /**
   * do_huge_pmd_wp_page() on the huge zero PMD. Up to v5.7 (`thp-cow` copy-huge) a write
   * allocates a THP, zeroed (clear_huge_page), mapped writable in its place. From v5.8 it goes
   * straight to the fallback: the PMD is split into PTEs of the small zero page
   * (__split_huge_zero_page_pmd) and the write or unshare continues at PTE level. Returns false
   * after such a split.
   */
  *wpHugeZeroPmd(vmf: Vmf, leaf: Leaf): Op<boolean> {
    const k = this.k;
    const { vma } = vmf;
    if (k.features['thp-cow'] === 'split') {
      this.splitZeroPmd(vma, leaf.base);
      return false;
    }
    const head = k.ram.allocAnonLarge(k.vm.anonVmaPrepare(vma), this.order, k.numa.allocNode(vma, leaf.base, this.order));
    if (head === null) {
      this.splitZeroPmd(vma, leaf.base); // split_huge_pmd() + VM_FAULT_FALLBACK
      return false;
    }
    yield preempt('clear_huge_page');
    k.vm.clear(vma.mm, leaf.base, 'pmd');
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.folios.addMap(head);
    k.vm.install(vma.mm, leaf.base, k.faults.pte(head, 'pmd', { write: vma.flags.write, dirty: true }));
    return true;
  }

  /** __split_huge_zero_page_pmd(): every page of the range maps the small zero page read-only. */
  splitZeroPmd(vma: Vma, base: number): void {
    const k = this.k;
    const pmd = k.vm.clear(vma.mm, base, 'pmd');
    if (!pmd) return;
    k.emit('tlb.flush', { mm: vma.mm.name });
    for (let i = 0; i < k.vm.pmdPages; i++) k.vm.install(vma.mm, base + i, k.faults.pte(k.zeroPfn, 'pte', { special: true, softDirty: pmd.softDirty }));
  }

  /**
   * do_huge_pmd_wp_page() on an anonymous PMD-mapped THP (write or, v5.19+, unshare fault).
   * Returns false after splitting the PMD (VM_FAULT_FALLBACK): the caller retries at PTE level.
   * - `thp-cow` copy-huge (v5.7 and earlier): reuse when page_trans_huge_mapcount() == 1, else a
   *   new THP gets a copy of all subpages (alloc_hugepage_vma + copy_user_huge_page).
   * - `thp-cow` split (3917c80280c9 "thp: change CoW semantics for anon-THP", v5.8): reuse when
   *   reuse_swap_page() says the THP is mapped once (a mapcount test: GUP references do not
   *   count, which is why cow.c's vmsplice cases still leak on v5.10), else split and COW the
   *   one PTE. v5.18 (3bff7e3f1f16) asks page_count() == 1 instead; with PageAnonExclusive
   *   (`wp-reuse` anon-exclusive, v5.19) an exclusive THP is reused at once, else a folio with
   *   refcount 1 is reused and marked exclusive (an unshare fault stops there).
   */
  *wpHugePmd(vmf: Vmf, leaf: Leaf, unshare: boolean): Op<boolean> {
    const k = this.k;
    const { vma } = vmf;
    const head = k.folios.folio(leaf.pte.pfn);
    k.folios.testAnon(head, 'do_huge_pmd_wp_page');
    const reuse =
      k.features['wp-reuse'] === 'anon-exclusive'
        ? (k.folios.flags(head) & PG.anonExclusive) !== 0 || k.folios.rc(head) === 1
        : k.folios.mappedOnce(head);
    if (reuse) {
      if (k.features['wp-reuse'] === 'anon-exclusive') k.folios.setFlag(head, PG.anonExclusive, true);
      if (unshare) return true;
      // pmd_mkyoung + maybe_pmd_mkwrite(pmd_mkdirty()), pmdp_set_access_flags()
      leaf.pte.write = vma.flags.write;
      leaf.pte.dirty = true;
      leaf.pte.softDirty = k.softDirtyArch;
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: 'pmd', write: leaf.pte.write, devmap: false, special: false });
      return true;
    }
    if (k.features['thp-cow'] === 'split') {
      this.splitAnonPmd(vma, leaf.base);
      return false;
    }
    yield* this.copyHuge(vmf, leaf, head);
    return true;
  }

  /** The v5.7-and-earlier whole-THP copy of do_huge_pmd_wp_page(). */
  private *copyHuge(vmf: Vmf, leaf: Leaf, head: number): Op {
    const k = this.k;
    const { vma } = vmf;
    const n = k.vm.pmdPages;
    const copy = k.ram.allocAnonLarge(k.vm.anonVmaPrepare(vma), this.order, k.numa.allocNode(vma, leaf.base, this.order));
    // do_huge_pmd_wp_page_fallback() (copy into HPAGE_PMD_NR small pages) is not modelled
    if (copy === null) throw KernelError.unsupported('ENOMEM', 'do_huge_pmd_wp_page: the THP copy could not be allocated and do_huge_pmd_wp_page_fallback() is not modelled');
    for (let i = 0; i < n; i++) k.pages.data.set(copy + i, k.pages.data.get(head + i) ?? '');
    yield preempt('copy_user_huge_page');
    k.vm.clear(vma.mm, leaf.base, 'pmd'); // pmdp_huge_clear_flush_notify
    k.folios.addMap(copy);
    k.vm.install(vma.mm, leaf.base, k.faults.pte(copy, 'pmd', { write: vma.flags.write, dirty: true }));
    k.emit('cow', { mm: vma.mm.name, vaddr: leaf.base, from: head, to: copy, why: 'do_huge_pmd_wp_page: copy the THP' });
    k.folios.removeMap(head); // page_remove_rmap(page, true)
    k.emit('tlb.flush', { mm: vma.mm.name });
    k.folios.put(head, 1, 'do_huge_pmd_wp_page: put_page(old THP)');
  }

  /**
   * __split_huge_pmd_locked() of an anonymous THP: the PMD becomes HPAGE_PMD_NR PTEs mapping the
   * subpages with the PMD's write, dirty and soft-dirty bits; each PTE takes a reference and a
   * mapcount (page_ref_add(HPAGE_PMD_NR - 1) and the subpage _mapcount increments, the entire
   * mapcount dropped: the folio's total mapcount goes from 1 to HPAGE_PMD_NR), and from v5.19
   * PageAnonExclusive of the head is carried to every subpage. The THP itself stays whole.
   */
  splitAnonPmd(vma: Vma, base: number): void {
    const k = this.k;
    const mm = vma.mm;
    const pmd = k.vm.clear(mm, base, 'pmd');
    if (!pmd) return;
    k.emit('tlb.flush', { mm: mm.name }); // pmdp_invalidate()
    const head = k.folios.folio(pmd.pfn);
    const n = k.vm.pmdPages;
    const exclusive = (k.folios.flags(head) & PG.anonExclusive) !== 0;
    k.folios.get(head, n - 1, '__split_huge_pmd_locked: page_ref_add(HPAGE_PMD_NR - 1)');
    for (let i = 0; i < n; i++) {
      if (k.features['wp-reuse'] === 'anon-exclusive') k.folios.setFlag(pmd.pfn + i, PG.anonExclusive, exclusive);
      if (i > 0) k.folios.addMap(head);
      k.vm.install(mm, base + i, { ...pmd, pfn: pmd.pfn + i, level: 'pte' });
    }
  }

  /**
   * split_folio() / split_huge_page() of an anonymous THP into order-0 pages (mm/huge_memory.c),
   * for a caller holding one reference (migrate_vma_collect_pmd(): folio_get + folio_trylock):
   * mm/split.ts splitAnonFolio() to order 0. False (-EBUSY / -EAGAIN) when a reference other than
   * the caller's and the mappings' is held: a pin or a GUP get stops it. From v6.12 the split maps
   * zero-filled pages to the shared zero page and frees them, whoever asked for it: a caller must
   * look at the PTE again after it (the kernel's do: page_vma_mapped_walk(), the PTE walk retried).
   */
  splitFolio(head: number, how: Pick<AnonSplit, 'standsForWholeSwapout'> = {}): boolean {
    return splitAnonFolio(this.k, head, { order: 0, ...how }) === null;
  }

  /**
   * folio_split_unmapped(folio, 0) (the 2025 device-private THP series, for
   * migrate_vma_split_unmapped_folio()): an unmapped large folio, every mapping already a
   * migration entry, whose only reference is the migration's, becomes order-0 folios, each
   * holding one reference (folio_ref_unfreeze(new_folio, 1)) and no mapping. False when another
   * reference is held (the freeze fails).
   */
  splitUnmapped(head: number): boolean {
    const k = this.k;
    const nr = k.folios.nr(head);
    if (k.folios.rc(head) !== 1 || k.folios.mapcount(head) !== 0) return false;
    const p = k.pages;
    for (let i = 0; i < nr; i++) {
      const s = p.slot(head + i);
      p.order[s] = 0;
      p.head[s] = head + i;
      p.flags[s]! &= ~(PG.head | PG.tail);
      p.mapcount[s] = 0;
      p.rc[s] = 1;
    }
    k.emit('page.ref', { pfn: head, rc: 1, delta: 0, why: `folio_split_unmapped: order ${Math.log2(nr)} -> ${nr} order-0 folios, one reference each` });
    return true;
  }

  /** split_folio() by a caller that takes its own reference for it (folio_get ... folio_put); `who` names it. */
  splitFolioHeld(head: number, who: string, how: Pick<AnonSplit, 'standsForWholeSwapout'> = {}): boolean {
    const k = this.k;
    k.folios.get(head, 1, `${who}: folio_get before split_folio`);
    const split = this.splitFolio(head, how);
    k.folios.put(head, 1, `${who}: folio_put after split_folio`);
    return split;
  }

  /**
   * wp_can_reuse_anon_folio() for a non-exclusive page of a PTE-mapped large anon folio (v5.19+):
   * - up to v6.9 the small-folio rule: the only reference is ours (folio_ref_count() == 1);
   * - v6.10 (Barry Song's 2024 patch to wp_can_reuse_anon_folio() [M]): never, for any large folio;
   * - v6.15 (`__wp_can_reuse_large_anon_folio()`, CONFIG_MM_ID [M]): when the folio is mapped more
   *   than once, only by this mm, and every reference is a mapping (refcount == large mapcount).
   */
  canReuseLarge(head: number, mm: Mm): boolean {
    const k = this.k;
    if (!kernelAtLeast(k.version, 6, 10)) return k.folios.rc(head) === 1;
    if (!kernelAtLeast(k.version, 6, 15)) return false;
    const mapcount = k.folios.mapcount(head);
    if (mapcount <= 1 || k.folios.rc(head) !== mapcount) return false;
    const nr = k.folios.nr(head);
    let mine = 0;
    for (const pte of mm.ptes.values()) if (!pte.special && pte.pfn >= head && pte.pfn < head + nr) mine++;
    for (const pmd of mm.pmds.values()) if (pmd.pfn === head && !pmd.special) mine++;
    return mine === mapcount;
  }

  /** Whether a leaf is a PMD mapping an anonymous THP (vma_is_anonymous + a normal page). */
  isAnonPmd(vma: Vma, leaf: Leaf): boolean {
    // a PMD migration entry (mm/mempolicy.ts) is no mapped THP
    return leaf.pte.level === 'pmd' && vma.kind === 'anon' && !leaf.pte.special && !leaf.pte.devmap && !leaf.pte.devicePrivate && !leaf.pte.migration;
  }
}
