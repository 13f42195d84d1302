import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Pte, Vma } from '../types.js';
import { PG } from './pages.js';
import type { Leaf } from './vm.js';
import { nonPresent } from './exclusive.js';
import type { WriteExec } from './mdwe.js';

/**
 * mprotect(2) among PROT_NONE, PROT_READ and PROT_READ|PROT_WRITE (mm/mprotect.c mprotect_fixup ->
 * change_protection -> change_pte_range / change_huge_pmd) and the soft-dirty half of
 * /proc/PID/clear_refs (fs/proc/task_mmu.c clear_refs_write, type 4 = CLEAR_REFS_SOFT_DIRTY).
 *
 * Only what a present or device-private entry shows is modelled: the write bit, the dirty and
 * soft-dirty bits. PROT_NONE is the VMA without VM_READ (and VM_WRITE): its present entries are
 * pte_protnone (PAGE_NONE), which the model reads from the VMA's flags; uffd-wp and NUMA hinting
 * are not modelled. VM_MAYWRITE is assumed (every
 * private mapping has it; a shared file or device mapping is taken to come from an O_RDWR open),
 * except where a write seal took it away (VmFlags.nomaywrite: mm/memfd.ts; EACCES in mm/vm.ts
 * mprotectRange, as do_mprotect_pkey() refuses it before mprotect_fixup()).
 */
/** mprotect()'s new protection: PROT_READ, PROT_WRITE, PROT_EXEC (VM_READ, VM_WRITE, VM_EXEC). */
export interface Protection extends WriteExec {
  readonly read: boolean;
}

export class Mprotect {
  constructor(private readonly k: Kernel) {}

  /**
   * mprotect(vma, PROT_NONE | PROT_READ [| PROT_WRITE] [| PROT_EXEC]) over the whole VMA (`read:
   * false` is PROT_NONE, or PROT_EXEC alone). VM_EXEC changes no entry the model has (no NX bit).
   */
  *mprotect(vma: Vma, prot: Protection): Op {
    const k = this.k;
    const { write, read, exec } = prot;
    if (write && !read) throw new KernelError('EINVAL', `mprotect of '${vma.name}': PROT_WRITE without PROT_READ is not modelled`);
    // mprotect_fixup(): nothing to do when the flags do not change (no page-table walk at all)
    if (vma.flags.write === write && vma.flags.read === read && (vma.flags.exec === true) === exec) {
      yield* [];
      return;
    }
    if (exec) vma.flags.exec = true;
    else delete vma.flags.exec;
    const leaves = k.vm.leavesIn(vma.mm, vma.start, vma.start + vma.pages);
    // change_pud_range() had no PUD-leaf case until cb0f01beb166 ("mm/mprotect: fix dax pud
    // handlings", v6.12 [M]): pud_none_or_clear_bad() took a device-dax PUD for a bad table and
    // cleared it. Neither that nor the fixed change_huge_pud() is modelled: refused for every release.
    // (hugetlb_change_protection() handles a hugetlb VMA's PUD leaves like its PMD ones)
    if (!vma.hugetlb && leaves.some((l) => l.pte.level === 'pud')) {
      throw KernelError.unsupported('EINVAL', `mprotect of '${vma.name}': it maps PUD leaves (device-dax 1 GiB), which change_pud_range() mishandled until v6.12; not modelled`);
    }
    const readChanged = vma.flags.read !== read;
    vma.flags.write = write; // vm_flags_reset(vma, newflags); vma_set_page_prot(vma)
    // PROT_NONE: protection_map[VM_NONE] is PAGE_NONE, so change_pte_range()'s pte_modify() makes
    // every present entry pte_protnone (no access, no write bit); back to PROT_READ it is readable
    vma.flags.read = read;
    // vm_page_prot: a private mapping's is never writable (COW: protection_map[] PAGE_COPY); a
    // shared one's is, unless the mapping wants write notifications (vma_wants_writenotify)
    const writenotify = this.wantsWritenotify(vma);
    const newprotWrite = write && vma.flags.shared && !writenotify;
    // v6.0+: MM_CP_TRY_CHANGE_WRITABLE when vma_wants_manual_pte_write_upgrade(): shared mappings
    // with writenotify, private mappings with VM_WRITE
    const tryWritable = write && (vma.flags.shared ? writenotify : true);
    // change_pmd_range(): mmu_notifier_invalidate_range_start(MMU_NOTIFY_PROTECTION_VMA) before the
    // PTEs change: a mirror device drops what it mapped there (test_hmm's atomic entries too)
    if (leaves.length > 0) k.mmuNotify({ mm: vma.mm, start: vma.start, end: vma.start + vma.pages, event: 'protection-vma', owner: null });
    // v5.14-v6.14 change_pte_range(): a SWP_DEVICE_EXCLUSIVE_WRITE entry becomes _READ like a
    // device-private one; v6.15 has one device-exclusive type and leaves it alone
    const exclusiveReadable = k.features['device-exclusive'] === 'rmap';
    let changed = false;
    for (const leaf of leaves) {
      const pte = leaf.pte;
      const before = pte.write;
      if (pte.devicePrivate || (pte.deviceExclusive && exclusiveReadable)) {
        // change_pte_range(): a writable device-private entry becomes a readable one whatever
        // the new protection (make_readable_device_private_entry)
        pte.write = false;
      } else if (pte.migration) {
        // change_pte_range(): a writable migration entry is made readable whatever the new
        // protection ("A protection check is difficult so just be safe and disable write"),
        // readable-exclusive for an anon folio from v5.19 (mm/migrate.ts)
        if (pte.write) pte.migration = { exclusive: k.features['wp-reuse'] === 'anon-exclusive' && k.folios.isAnon(k.folios.folio(pte.pfn)) };
        pte.write = false;
      } else if (pte.deviceExclusive || pte.swap || pte.marker) {
        // change_pte_range(): a swap entry carries no permission; a PTE marker is skipped
        // ("is_guard_swp_entry(entry)) continue", v6.13): any access faults anyway
        continue;
      } else {
        pte.write = newprotWrite; // pte_modify() / pmd_modify(): dirty and soft-dirty kept
        if (!pte.write && tryWritable && this.mayUpgrade(vma, leaf)) pte.write = true;
      }
      // a present entry changes access when VM_READ does (pte_protnone on or off): a TLB flush too
      if (pte.write === before && !(readChanged && !nonPresent(pte))) continue;
      changed = true;
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: pte.pfn, level: pte.level, write: pte.write, devmap: pte.devmap, special: pte.special, ...(nonPresent(pte) ? { device: true } : {}) });
    }
    // flush_tlb_range() when change_protection() changed entries (tlb_finish_mmu in newer releases)
    if (changed) k.emit('tlb.flush', { mm: vma.mm.name });
    yield* [];
  }

  /**
   * can_change_pte_writable() as restore_exclusive_pte() asks it from v6.15 (mm/exclusive.ts):
   * the same test as mprotect's write upgrade.
   */
  canChangePteWritable(vma: Vma, leaf: Leaf): boolean {
    return this.mayUpgrade(vma, leaf);
  }

  /**
   * The write upgrade change_pte_range() / change_huge_pmd() may do on a read-only leaf after
   * pte_modify() (feature `mprotect-anon-writable`).
   */
  private mayUpgrade(vma: Vma, leaf: Leaf): boolean {
    const k = this.k;
    // hugetlb_change_protection(): huge_pte_modify() with vm_page_prot, never a write upgrade
    if (vma.hugetlb) return false;
    const mode = k.features['mprotect-anon-writable'];
    const pte = leaf.pte;
    if (mode === 'off') {
      // before 64fe24a3e05e: only dirty_accountable (= vma_wants_writenotify(): shared) PTEs, with
      // the soft-dirty test 76aefad628aa corrected; change_huge_pmd() never upgraded
      if (!vma.flags.shared || pte.level !== 'pte') return false;
      return pte.dirty && (pte.softDirty || !vma.flags.softdirty);
    }
    // change_huge_pmd() tries can_change_pmd_writable() only from v6.2 (value `clean`)
    if (pte.level === 'pmd' && mode !== 'clean') return false;
    // can_change_pte_writable(): do we need write faults for soft-dirty tracking?
    if (this.softDirtyTracking(vma) && !pte.softDirty) return false;
    // "Do we need write faults for uffd-wp tracking?" (userfaultfd_pte_wp(); mm/userfaultfd.ts)
    if (k.uffd.wpArmed(vma, pte)) return false;
    // v6.0-v6.1: only dirty entries, private or shared
    if (mode === 'dirty' && !pte.dirty) return false;
    if (vma.flags.shared) return pte.dirty; // writenotify: "clean" may still need the fs to hear of it
    // private: only an exclusive anon page, which the write fault would reuse anyway
    const page = k.vm.normalPage(pte, pte.pfn);
    if (page === null) return false;
    const head = k.folios.folio(page);
    return k.folios.testAnon(head, 'can_change_pte_writable') && (k.folios.flags(k.folios.exclusivePage(page, pte.level)) & PG.anonExclusive) !== 0;
  }

  /**
   * echo 4 > /proc/PID/clear_refs: clear VM_SOFTDIRTY on every VMA, then write-protect every
   * present entry and clear its soft-dirty bit (clear_soft_dirty / clear_soft_dirty_pmd), so the
   * next write faults and marks it again. Without soft-dirty in the arch (VM_SOFTDIRTY is 0 and
   * clear_soft_dirty() an empty stub) the write succeeds and changes nothing; cow.c cannot tell.
   */
  *clearSoftDirty(mm: Mm): Op {
    const k = this.k;
    if (!k.softDirtyArch) {
      yield* [];
      return;
    }
    // clear_refs_test_walk() skips VM_PFNMAP VMAs
    // clear_refs_walk_ops has no hugetlb_entry: the page walk skips hugetlb VMAs' entries
    const walked = mm.vmas.filter((vma) => !vma.flags.pfnmap && !vma.hugetlb).map((vma) => ({ vma, leaves: k.vm.leavesIn(mm, vma.start, vma.start + vma.pages) }));
    const pud = walked.find((w) => w.leaves.some((l) => l.pte.level === 'pud'));
    if (pud) {
      // walk_pud_range() without a pud_entry splits (zaps) a huge PUD: not modelled
      throw KernelError.unsupported('EINVAL', `clear_refs of ${mm.name}: '${pud.vma.name}' maps PUD leaves (device-dax 1 GiB), which the page walk splits; not modelled`);
    }
    for (const vma of mm.vmas) vma.flags.softdirty = false; // vma_set_page_prot(): writenotify from now on
    // clear_refs_write(): MMU_NOTIFY_SOFT_DIRTY over the whole address space
    k.mmuNotify({ mm, start: 0, end: Infinity, event: 'soft-dirty', owner: null });
    let changed = false;
    for (const { vma, leaves } of walked) {
      for (const leaf of leaves) {
        const pte = leaf.pte;
        if (nonPresent(pte)) {
          pte.softDirty = false; // pte_swp_clear_soft_dirty(): a swap entry keeps its permission
          continue;
        }
        if (pte.level === 'pte' && this.pinnedWritable(vma, pte)) continue;
        const wasWritable = pte.write;
        pte.write = false;
        pte.softDirty = false;
        if (!wasWritable) continue;
        changed = true;
        k.emit('pte.set', { mm: mm.name, vaddr: leaf.base, pfn: pte.pfn, level: pte.level, write: false, devmap: pte.devmap, special: pte.special });
      }
    }
    if (changed) k.emit('tlb.flush', { mm: mm.name }); // flush_tlb_mm()
    yield* [];
  }

  /** pte_is_pinned() (feature `clear-refs-skip-pinned`, v5.11). */
  private pinnedWritable(vma: Vma, pte: Pte): boolean {
    const k = this.k;
    if (!k.features['clear-refs-skip-pinned']) return false;
    if (!pte.write || vma.flags.shared || !vma.mm.hasPinned) return false; // is_cow_mapping(), MMF_HAS_PINNED
    const page = k.vm.normalPage(pte, pte.pfn);
    return page !== null && k.folios.maybeDmaPinned(k.folios.folio(page));
  }

  /** vma_soft_dirty_enabled(): tracking is on when VM_SOFTDIRTY is clear (and the arch has it). */
  softDirtyTracking(vma: Vma): boolean {
    return this.k.softDirtyArch && !vma.flags.softdirty;
  }

  /**
   * vma_wants_writenotify() (mm/mmap.c) for a writable shared mapping: the filesystem wants to
   * hear of the first write (->page_mkwrite / ->pfn_mkwrite: every DAX filesystem), or soft-dirty
   * tracking needs write faults. A device-dax file has neither and no writeback.
   */
  wantsWritenotify(vma: Vma): boolean {
    if (!vma.flags.shared || !vma.flags.write) return false;
    if (vma.kind === 'file') return true;
    // a disk file's page cache (mm/pagecache.ts writeback): ->page_mkwrite and mapping_can_writeback()
    if (this.k.pageCache.needsDirtyTracking(vma)) return true;
    if (this.softDirtyTracking(vma)) return true;
    // userfaultfd_wp() (51d3d5eb74ff "mm/userfaultfd: enable writenotify while userfaultfd-wp is
    // enabled for a VMA", v6.2): vm_page_prot loses the write bit, so no remapped entry (mprotect,
    // a read fault, hugetlb's resolve) becomes writable behind the protection
    if (vma.flags.uffdWp && kernelAtLeast(this.k.version, 6, 2)) return true;
    return false;
  }
}
