import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Mm, Pte, UffdCtx, Vma, VmFlags } from '../types.js';
import { PG } from './pages.js';
import { inheritMdwe } from './mdwe.js';
import { copyMigrationEntry } from './migrate.js';

/**
 * fork(): dup_mmap() copies the VMAs; copy_page_range() copies page tables only for VMAs that
 * need it (vma_needs_copy: anon_vma, VM_PFNMAP|VM_MIXEDMAP), per PTE in copy_present_pte().
 */
export class Fork {
  constructor(private readonly k: Kernel) {}

  *fork(parent: Mm, childName: string): Op<Mm> {
    const k = this.k;
    const child = k.vm.newMm(childName);
    child.nextVpn = parent.nextVpn;
    // hash__init_new_context(): a fork child copies the parent's hash_mm_context, slice page sizes included (mm/slices.ts)
    if (parent.slicePsize) child.slicePsize = new Map(parent.slicePsize);
    // copy_process(): the child shares the parent's rlimits and credentials (RLIMIT_MEMLOCK, CAP_IPC_LOCK)
    if (parent.memlockLimit !== undefined) child.memlockLimit = parent.memlockLimit;
    // copy_process() -> mpol_dup(): the task policy (mm/mempolicy.ts)
    if (parent.taskPolicy) child.taskPolicy = parent.taskPolicy;
    // mm_init(): the child's mm flags are the parent's & MMF_INIT_MASK, which holds MMF_DISABLE_THP_MASK
    if (parent.thpDisable) child.thpDisable = parent.thpDisable;
    inheritMdwe(parent, child); // mmf_init_flags(): MMF_HAS_MDWE unless MMF_HAS_MDWE_NO_INHERIT (v6.7)
    k.pkeys.fork(parent, child); // dup_mmap() -> arch_dup_mmap() -> arch_dup_pkeys(); the thread's register with it
    k.emit('fork', { parent: parent.name, child: childName });
    k.ksm.fork(parent, child); // dup_mmap() -> ksm_fork()
    const uffds = new Map<UffdCtx, UffdCtx>();
    for (const src of [...parent.vmas]) {
      // dup_mmap(): a VM_DONTCOPY VMA (MADV_DONTFORK) is left out of the child
      if (src.flags.dontcopy) continue;
      // vm_area_dup(): the child gets its own copy of the flags (mprotect in one must not change the
      // other); VM_WIPEONFORK (v4.14): "a clean slate in the child" -- no anon_vma, no page tables
      // a hugetlb VMA's reservation stays the parent's (hugetlb_dup_vma_private(): the child owns none)
      // dup_mmap(): the child's copy is never VM_LOCKED / VM_LOCKONFAULT (mm/mlock.ts)
      const dst = k.vm.addVma(child, { ...src, flags: unlocked(src.flags), mm: child, anonVma: src.flags.wipeonfork ? 0 : src.anonVma, anonForked: src.anonVma !== 0 && !src.flags.wipeonfork, ...(src.hugetlb ? { hugetlb: { ...src.hugetlb, resv: null } } : {}) }, parent.ranges.get(src.name)!);
      k.uffd.dupVma(src, dst, uffds); // dup_mmap() -> dup_userfaultfd() (mm/userfaultfd.ts)
      if (src.flags.wipeonfork) continue;
      // vma_needs_copy(): a shared shmem or DAX VMA (no anon_vma) is not copied: the child refaults;
      // from v5.19 a child VMA that stays VM_UFFD_WP is ("mm/shmem: handle uffd-wp during fork()":
      // its page tables hold protection the page cache cannot give back)
      if (!(src.anonVma || src.flags.mixedmap || src.flags.pfnmap || k.uffd.forkCopiesTables(dst))) continue;
      // is_cow_mapping(): VM_MAYWRITE && !VM_SHARED; do_mmap() sets VM_MAYWRITE on every
      // private mapping, PROT_READ ones too, except one of an F_SEAL_FUTURE_WRITE memfd before
      // v5.5 (mm/memfd.ts): its PTEs stay writable in both, the anon pages shared
      const cow = !src.flags.shared && !src.flags.nomaywrite;
      // copy_page_range(): raw_write_seqcount_begin(&src_mm->write_protect_seq) for COW mappings;
      // a hugetlb VMA returned to copy_hugetlb_page_range() before it, which took the seqcount
      // itself only from v5.19 ("mm/hugetlb: take src_mm->write_protect_seq in
      // copy_hugetlb_page_range()"): until then GUP-fast on hugetlb could race with fork
      const seq = cow && (!src.hugetlb || kernelAtLeast(k.version, 5, 19));
      if (seq) parent.writeProtectSeq++;
      // copy_page_range(): MMU_NOTIFY_PROTECTION_PAGE over the source VMA of a COW mapping (its
      // PTEs are about to be write-protected): mirror devices drop what they map there
      if (cow) k.mmuNotify({ mm: parent, start: src.start, end: src.start + src.pages, event: 'protection-page', owner: null });
      try {
        yield* this.copyRange(src, dst, cow);
      } finally {
        if (seq) parent.writeProtectSeq++;
      }
    }
    k.uffd.queueForkEvents(uffds, child); // dup_mmap() -> dup_userfaultfd_complete(); kernel.ts fork() waits
    return child;
  }

  private *copyRange(src: Vma, dst: Vma, cow: boolean): Op {
    const k = this.k;
    const parent = src.mm;
    // copy_page_range(): is_vm_hugetlb_page(src_vma) -> copy_hugetlb_page_range() (mm/hugetlb.ts)
    if (src.hugetlb) return yield* k.hugetlb.copyRange(src, dst, cow);
    // copy_pmd_range() -> copy_huge_pmd() first: it may split a PMD back to PTEs (-EAGAIN)
    if (src.kind === 'anon') yield* this.copyHugePmds(src, dst, cow);
    const bases = [...parent.ptes.keys()].filter((v) => v >= src.start && v < src.start + src.pages).sort((a, b) => a - b);
    // copy_huge_pmd()/copy_huge_pud(): "skip if can be re-filled on fault" for non-anonymous
    // VMAs, so DAX PMDs are not copied.
    for (const vpn of bases) {
      const pte = parent.ptes.get(vpn);
      if (!pte) continue;
      yield preempt('copy_pte_range');
      let current = parent.ptes.get(vpn);
      if (!current) continue;
      if (current.marker) {
        // copy_nonpresent_pte() -> copy_pte_marker(): PTE_MARKER_GUARD is always copied (v6.13); the
        // VMA is copied at all because MADV_GUARD_INSTALL gave it an anon_vma (mm/guard.ts);
        // PTE_MARKER_UFFD_WP as the child's VMA allows (mm/userfaultfd.ts)
        const copy = k.uffd.childMarker(dst, current);
        if (copy) k.vm.install(dst.mm, vpn, copy);
        continue;
      }
      if (current.migration) {
        copyMigrationEntry(k, src, dst, vpn, current, cow);
        continue;
      }
      if (current.deviceExclusive) {
        // copy_nonpresent_pte(): try_restore_exclusive_pte() makes the parent's entry present
        // again (the folio lock is never contended in the model), then copy_present_pte() copies
        // it as any anon PTE: shared, both write-protected (b756a3b5e7ea, v5.14)
        k.exclusive.restore(src, vpn, current);
        current = parent.ptes.get(vpn)!;
      }
      if (current.devicePrivate) {
        yield* k.copyDevicePrivateEntry(src, dst, vpn, current);
        continue;
      }
      if (current.swap) {
        k.swap.copyEntry(dst, vpn, current, k.uffd.childKeepsSwapWp(dst, current)); // copy_nonpresent_pte(): swap_duplicate()
        continue;
      }
      const page = k.vm.normalPage(current, current.pfn);
      if (page === null) {
        // devmap/special PTE: copied as is, no reference, no rmap
        if (cow && current.write) current.write = false;
        k.vm.install(dst.mm, vpn, this.childEntry(src, dst, current, { write: cow ? false : current.write, dirty: src.flags.shared ? false : current.dirty }));
        continue;
      }
      const head = k.folios.folio(page);
      if (k.folios.testAnon(head, 'copy_present_pte') && this.needsCowForDma(parent, head, page)) {
        // copy_present_page(): the child gets a private copy now; the parent keeps the pinned page writable
        if (!dst.anonVma) dst.anonVma = src.anonVma;
        const copy = k.ram.allocAnon(dst.anonVma, k.pages.data.get(page) ?? '', k.numa.allocNode(dst, vpn));
        if (copy === null) throw new KernelError('ENOMEM', 'fork: could not allocate the early-COW copy of a pinned page');
        k.folios.addMap(copy);
        // copy_present_page(): maybe_mkwrite(pte_mkdirty(mk_pte())) -- soft-dirty with the dirty bit;
        // from v5.14 (8f34f1eac382) "Uffd-wp needs to be delivered to dest pte as well": write-protected
        const { uffdWp: _, ...fresh } = current;
        const wp = kernelAtLeast(k.version, 5, 14) && k.uffd.childKeepsWp(src, dst, current);
        k.vm.install(dst.mm, vpn, { ...fresh, pfn: copy, write: dst.flags.write && !wp, dirty: true, softDirty: k.softDirtyArch, ...(wp ? { uffdWp: true } : {}) });
        k.emit('cow', { mm: dst.mm.name, vaddr: vpn, from: page, to: copy, why: 'fork: early COW of a maybe-pinned page' });
        continue;
      }
      this.share(src, dst, vpn, current, page, cow, 'copy_present_pte');
    }
  }

  /**
   * Early COW decision (feature fork-cow-pinned): 5.10 copy_present_page() —
   * has_pinned && page_maybe_dma_pinned && anon; v5.19+ page_try_dup_anon_rmap() — exclusive and
   * folio_needs_cow_for_dma(). A shared (non-exclusive) anon page cannot be pinned in the
   * anon-exclusive era, so it is shared again.
   */
  needsCowForDma(parent: Mm, head: number, page: number): boolean {
    const k = this.k;
    if (!k.features['fork-cow-pinned']) return false;
    if (!parent.hasPinned) return false;
    if (k.features['wp-reuse'] === 'anon-exclusive' && (k.folios.flags(page) & PG.anonExclusive) === 0) return false;
    return k.folios.maybeDmaPinned(head);
  }

  /**
   * copy_huge_pmd() for each anonymous THP PMD of the VMA: share it (get, entire mapcount + 1,
   * PageAnonExclusive cleared, both PMDs write-protected and the child's old), unless the THP
   * may be DMA-pinned in an mm that has pinned: then the parent's PMD is split and the range is
   * copied per PTE, where each subpage gets its early-COW copy (d042035eaf5f "mm/thp: Split
   * huge pmds/puds if they're pinned when fork()", v5.9, with `fork-cow-pinned`; from v5.19
   * page_try_dup_anon_rmap(compound) fails the same way for an exclusive pinned THP).
   */
  private *copyHugePmds(src: Vma, dst: Vma, cow: boolean): Op {
    const k = this.k;
    const parent = src.mm;
    const bases = [...parent.pmds.keys()].filter((v) => v >= src.start && v < src.start + src.pages).sort((a, b) => a - b);
    for (const base of bases) {
      yield preempt('copy_huge_pmd');
      const leaf = k.vm.lookup(parent, base);
      if (!leaf) continue;
      // copy_huge_pmd(): is_pmd_migration_entry() -> the child gets it, readable (mm/migrate.ts)
      if (leaf.pte.migration) {
        copyMigrationEntry(k, src, dst, base, leaf.pte, cow);
        continue;
      }
      // is_huge_zero_pmd(): the child maps the huge zero page too (mm_get_huge_zero_page), read-only
      if (k.thp.isHugeZeroPmd(src, leaf)) {
        k.vm.install(dst.mm, base, { ...leaf.pte, write: false });
        continue;
      }
      // copy_huge_pmd() on a device-private PMD (the 2025 device-private THP series): a writable
      // entry becomes readable in the parent, folio_get + folio_try_dup_anon_rmap_pmd() (never
      // refused for device-private folios; PageAnonExclusive cleared), the child gets the same entry
      if (leaf.pte.devicePrivate) {
        yield* k.copyDevicePrivateEntry(src, dst, base, leaf.pte);
        continue;
      }
      if (!k.thp.isAnonPmd(src, leaf)) continue;
      const pmd = leaf.pte;
      const head = k.folios.folio(pmd.pfn);
      if (cow && this.needsCowForDma(parent, head, head)) {
        k.thp.splitAnonPmd(src, base);
        continue;
      }
      this.share(src, dst, base, pmd, head, cow, 'copy_huge_pmd');
    }
  }

  /**
   * Map a page (PTE) or a THP (PMD) into the child too: a reference and a mapping more,
   * PageAnonExclusive cleared (of the page for a PTE, of the head for a PMD), and for a COW
   * mapping both entries write-protected (ptep_set_wrprotect / pmdp_set_wrprotect on the parent's).
   */
  share(src: Vma, dst: Vma, at: number, entry: Pte, exclusivePage: number, cow: boolean, why: string): void {
    const k = this.k;
    const head = k.folios.folio(entry.pfn);
    k.folios.get(head, 1, why);
    k.folios.addMap(head);
    k.folios.setFlag(exclusivePage, PG.anonExclusive, false);
    if (cow && entry.write) {
      entry.write = false;
      k.emit('pte.set', { mm: src.mm.name, vaddr: at, pfn: entry.pfn, level: entry.level, write: false, devmap: entry.devmap, special: entry.special });
    }
    k.vm.install(dst.mm, at, this.childEntry(src, dst, entry, { write: cow ? false : entry.write, dirty: src.flags.shared ? false : entry.dirty }));
  }

  /** The child's copy of an entry: copy_present_pte() / copy_huge_pmd() drop the uffd-wp bit unless the VMA keeps VM_UFFD_WP (mm/userfaultfd.ts). */
  private childEntry(src: Vma, dst: Vma, entry: Pte, bits: Partial<Pte>): Pte {
    const { uffdWp: _, ...rest } = entry;
    return { ...rest, ...bits, ...(this.k.uffd.childKeepsWp(src, dst, entry) ? { uffdWp: true } : {}) };
  }
}

/** dup_mmap(): "tmp->vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT)"; the child's mm->def_flags start clear too. */
function unlocked(flags: VmFlags): VmFlags {
  const copy = { ...flags };
  delete copy.locked;
  delete copy.lockonfault;
  return copy;
}
