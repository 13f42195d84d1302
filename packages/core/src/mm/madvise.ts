import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Vma, VmFlags } from '../types.js';
import { nonPresent } from './exclusive.js';
import { madviseCollapse } from './collapse.js';
import { faultinRange } from './populate.js';
import { guardInstall, guardRemove } from './guard.js';
import { refuseSealedAdvice } from './mseal.js';
import type { Leaf } from './vm.js';

/** The advices modelled, as scenarios spell them (MADV_DONTNEED_LOCKED is `dontneed-locked`, ...). */
export const MADVISE_ADVICES = [
  'dontneed',
  'dontneed-locked',
  'free',
  'cold',
  'pageout',
  'dontfork',
  'dofork',
  'wipeonfork',
  'keeponfork',
  'populate-read',
  'populate-write',
  'hugepage',
  'nohugepage',
  'collapse',
  'mergeable',
  'unmergeable',
  'remove',
  'guard-install',
  'guard-remove',
  'normal',
  'sequential',
  'random',
] as const;
export type Advice = (typeof MADVISE_ADVICES)[number];

/**
 * The release each advice arrived in; before it madvise_behavior_valid() does not know the value:
 * -EINVAL. MADV_FREE (v4.5), MADV_DONTFORK/DOFORK (v2.6.16) and MADV_DONTNEED are
 * older than every preset.
 */
const ARRIVED: Readonly<Record<Advice, readonly [number, number, string]>> = {
  dontneed: [2, 6, 'MADV_DONTNEED'],
  'dontneed-locked': [5, 18, 'MADV_DONTNEED_LOCKED (9457056ac426)'],
  remove: [2, 6, 'MADV_REMOVE (v2.6.16)'],
  free: [4, 5, 'MADV_FREE'],
  cold: [5, 4, 'MADV_COLD (9c276cc65a58)'],
  pageout: [5, 4, 'MADV_PAGEOUT (1a4e58cce84e)'],
  dontfork: [2, 6, 'MADV_DONTFORK'],
  dofork: [2, 6, 'MADV_DOFORK'],
  wipeonfork: [4, 14, 'MADV_WIPEONFORK (d2cd9ede6e19)'],
  keeponfork: [4, 14, 'MADV_KEEPONFORK (d2cd9ede6e19)'],
  'populate-read': [5, 14, 'MADV_POPULATE_READ (4ca9b3859dac)'],
  'populate-write': [5, 14, 'MADV_POPULATE_WRITE (4ca9b3859dac)'],
  hugepage: [2, 6, 'MADV_HUGEPAGE'],
  nohugepage: [2, 6, 'MADV_NOHUGEPAGE'],
  collapse: [6, 1, 'MADV_COLLAPSE (7d8faaf15545)'],
  mergeable: [2, 6, 'MADV_MERGEABLE (v2.6.32)'],
  unmergeable: [2, 6, 'MADV_UNMERGEABLE (v2.6.32)'],
  'guard-install': [6, 13, 'MADV_GUARD_INSTALL (662df3e5c376)'],
  'guard-remove': [6, 13, 'MADV_GUARD_REMOVE (662df3e5c376)'],
  normal: [2, 6, 'MADV_NORMAL'],
  sequential: [2, 6, 'MADV_SEQUENTIAL'],
  random: [2, 6, 'MADV_RANDOM'],
};

/**
 * madvise(start, len, advice) over pages [start, start + pages) of a process (mm/madvise.c
 * do_madvise() -> madvise_walk_vmas()): each VMA the range touches gets the advice for its part,
 * in address order; the first refusal ends the call with its errno (the parts before keep the
 * advice); a part of the range no VMA covers makes the call -ENOMEM once the rest is done
 * (populate from v6.10: at the hole).
 * VM_LOCKED (mm/mlock.ts) refuses DONTNEED, FREE, COLD, PAGEOUT, REMOVE and GUARD_INSTALL; MADV_DONTNEED_LOCKED zaps it.
 * MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (v6.13) are mm/guard.ts.
 * On hugetlb VMAs only MADV_DONTNEED(_LOCKED) and MADV_REMOVE are modelled; the other advices are
 * refused there as not modelled.
 */
export function* madvise(k: Kernel, mm: Mm, start: number, pages: number, advice: Advice): Op {
  const [major, minor, what] = ARRIVED[advice];
  if (!kernelAtLeast(k.version, major, minor)) throw new KernelError('EINVAL', `${what} is not an advice before v${major}.${minor} (madvise_behavior_valid)`);
  const end = start + pages;
  // mseal(2), v6.10-v6.11: can_modify_mm_madv() over the whole range before anything (mm/mseal.ts)
  refuseSealedAdvice(k, mm, start, end, null, advice);
  if ((advice === 'populate-read' || advice === 'populate-write') && kernelAtLeast(k.version, 6, 10)) {
    // "mm/madvise: don't perform madvise VMA walk for MADV_POPULATE_(READ|WRITE)" (v6.10 [M]):
    // madvise_populate() over the whole range, faultin_page_range() with FOLL_MADV_POPULATE
    // looking each VMA up as it goes: a hole is -ENOMEM at once, nothing after it is populated
    for (let at = start; at < end; ) {
      const vma = k.vm.vmaAt(mm, at);
      if (!vma) throw new KernelError('ENOMEM', `madvise ${advice}: page ${at} of ${mm.name} is not mapped (vma_lookup)`);
      const to = Math.min(end, vma.start + vma.pages);
      yield* populate(k, vma, at, to, advice === 'populate-write');
      at = to;
    }
    return;
  }
  let unmapped = false;
  for (let at = start; at < end; ) {
    const vma = k.vm.vmaAt(mm, at) ?? nextVma(mm, at, end);
    if (!vma) {
      unmapped = true;
      break;
    }
    if (vma.start > at) {
      unmapped = true;
      at = vma.start;
    }
    const to = Math.min(end, vma.start + vma.pages);
    yield* adviseVma(k, vma, at, to, advice);
    at = to;
  }
  // madvise_walk_vmas(): "unmapped_error = -ENOMEM" for a hole, returned after the walk
  if (unmapped) throw new KernelError('ENOMEM', `madvise ${advice}: part of pages ${start}..${end - 1} of ${mm.name} is not mapped`);
}

function nextVma(mm: Mm, at: number, end: number): Vma | null {
  let best: Vma | null = null;
  for (const v of mm.vmas) if (v.start > at && v.start < end && (!best || v.start < best.start)) best = v;
  return best;
}

/**
 * Advices whose hugetlb rules the model follows: the zaps, and the refusals -- MADV_FREE (not
 * anonymous memory; from v5.18 madvise_dontneed_free_valid_vma() too), MADV_COLD/PAGEOUT
 * (can_madv_lru_vma()), MADV_COLLAPSE (VM_NO_KHUGEPAGED), MADV_WIPEONFORK (a vm_file) -- and
 * MADV_KEEPONFORK, which changes nothing there -- and MADV_POPULATE_(READ|WRITE), whose GUP
 * faults go to hugetlb_fault() like any fault there (a read allocates too: hugetlb has no zero
 * page) -- and MADV_GUARD_INSTALL/REMOVE, which is_valid_guard_vma() refuses there (VM_HUGETLB).
 * The rest are refused on hugetlb VMAs as not modelled.
 */
const HUGETLB_ADVICES: readonly Advice[] = ['dontneed', 'dontneed-locked', 'remove', 'free', 'cold', 'pageout', 'collapse', 'wipeonfork', 'keeponfork', 'populate-read', 'populate-write', 'guard-install', 'guard-remove'];

function notModelledOnHugetlb(vma: Vma, advice: Advice): KernelError {
  return KernelError.unsupported('EINVAL', `madvise ${advice} of hugetlb mapping '${vma.name}' is not modelled (modelled there: ${HUGETLB_ADVICES.join(', ')})`);
}

/** madvise_vma_behavior(): one VMA's part [s, e) of the range. */
function* adviseVma(k: Kernel, vma: Vma, s: number, e: number, advice: Advice): Op {
  // mseal(2), from v6.12: a discarding advice on sealed read-only anonymous memory is EPERM, checked first
  refuseSealedAdvice(k, vma.mm, s, e, vma, advice);
  if (vma.hugetlb && !HUGETLB_ADVICES.includes(advice)) throw notModelledOnHugetlb(vma, advice);
  switch (advice) {
    case 'dontneed':
    case 'dontneed-locked':
      // madvise_dontneed_free_valid_vma() (v5.4: can_madv_lru_vma()): VM_PFNMAP is refused, and
      // VM_LOCKED except for MADV_DONTNEED_LOCKED (mm/mlock.ts)
      if (vma.flags.pfnmap) throw refused(vma, advice, 'VM_PFNMAP');
      if (advice === 'dontneed' && vma.flags.locked) throw refused(vma, advice, 'VM_LOCKED (MADV_DONTNEED_LOCKED zaps locked ranges)');
      if (vma.hugetlb) yield* hugetlbDontneed(k, vma, s, e, advice);
      else yield* dontneed(k, vma, s, e);
      return;
    case 'remove':
      yield* remove(k, vma, s, e);
      return;
    case 'guard-install':
      // is_valid_guard_vma() refuses VM_HUGETLB among others (mm/guard.ts)
      yield* guardInstall(k, vma, s, e);
      return;
    case 'guard-remove':
      yield* guardRemove(k, vma, s, e);
      return;
    case 'free':
      if (vma.flags.pfnmap || vma.flags.locked) throw refused(vma, advice, vma.flags.pfnmap ? 'VM_PFNMAP' : 'VM_LOCKED');
      // madvise_free_single_vma(): "MADV_FREE works for only anon vma at the moment"
      if (vma.kind !== 'anon') throw refused(vma, advice, 'not anonymous memory');
      {
        const after = yield* afterRemoveEvent(k, vma, s, e);
        lazyfree(k, after.vma, s, after.e);
      }
      return;
    case 'cold':
    case 'pageout':
      // can_madv_lru_vma(): !(VM_LOCKED | VM_PFNMAP | VM_HUGETLB). Past it, MADV_COLD only moves
      // pages to the inactive LRU (no LRU in the model: only its THP splits show) and MADV_PAGEOUT
      // reclaims them: anonymous pages this process alone maps are swapped out (mm/swap.ts);
      // DAX and device pages are never on the LRU.
      if (vma.flags.pfnmap || vma.flags.locked) throw refused(vma, advice, vma.flags.pfnmap ? 'VM_PFNMAP' : 'VM_LOCKED');
      if (vma.hugetlb) throw refused(vma, advice, 'VM_HUGETLB (can_madv_lru_vma)');
      // a VM_DROPPABLE folio is never swap-backed (folio_add_new_anon_rmap()): reclaim discards it,
      // dirty or not, instead of swapping it (try_to_unmap_one()); not modelled
      if (advice === 'pageout' && vma.flags.droppable) throw KernelError.unsupported('EINVAL', `madvise pageout of '${vma.name}': reclaim of MAP_DROPPABLE memory (the pages are dropped, not swapped) is not modelled`);
      if (advice === 'pageout') yield* k.swap.pageout(vma, s, e);
      else yield* k.swap.cold(vma, s, e);
      return;
    case 'dontfork':
      updateFlags(k, vma, s, e, { dontcopy: true });
      return;
    case 'dofork':
      // "if (new_flags & VM_IO) return -EINVAL": an I/O mapping must never be copied
      if (vma.flags.io) throw refused(vma, advice, 'VM_IO');
      updateFlags(k, vma, s, e, { dontcopy: false });
      return;
    case 'wipeonfork':
      // "MADV_WIPEONFORK is only supported on anonymous memory": vm_file or VM_SHARED refuse
      if (vma.kind !== 'anon' || vma.flags.shared) throw refused(vma, advice, 'a file or shared mapping');
      updateFlags(k, vma, s, e, { wipeonfork: true });
      return;
    case 'keeponfork':
      // MAP_DROPPABLE's VM_WIPEONFORK is part of the mapping's contract: "if (vma->vm_flags &
      // VM_DROPPABLE) return -EINVAL" (9651fcedf7b9, v6.11 [M])
      if (vma.flags.droppable) throw refused(vma, advice, 'VM_DROPPABLE (MAP_DROPPABLE)');
      updateFlags(k, vma, s, e, { wipeonfork: false });
      return;
    case 'populate-read':
    case 'populate-write':
      yield* populate(k, vma, s, e, advice === 'populate-write');
      return;
    case 'collapse':
      // madvise_collapse() (mm/collapse.ts); hugepage_vma_check() refuses VM_NO_KHUGEPAGED, hugetlb included
      if (vma.hugetlb) throw refused(vma, advice, 'VM_HUGETLB (VM_NO_KHUGEPAGED)');
      yield* madviseCollapse(k, vma, s, e);
      return;
    case 'mergeable':
    case 'unmergeable':
      // ksm_madvise() (mm/ksm.ts): says whether VM_MERGEABLE changes, after unmerging the range
      if (yield* k.ksm.advise(vma, s, e, advice === 'mergeable')) updateFlags(k, vma, s, e, { mergeable: advice === 'mergeable' });
      return;
    case 'normal':
    case 'sequential':
    case 'random':
      // VM_SEQ_READ / VM_RAND_READ: readahead hints only (the model has no readahead); the VMA
      // splits and merges as for any madvise_update_vma()
      updateFlags(k, vma, s, e, { seqRead: advice === 'sequential', randRead: advice === 'random' });
      return;
    case 'hugepage':
    case 'nohugepage':
      // hugepage_madvise(): VM_HUGEPAGE set and VM_NOHUGEPAGE cleared, or the reverse. The model's
      // THP mode is `madvise`, so VmFlags.hugepage (THP allowed in this VMA) is exactly VM_HUGEPAGE
      // for anonymous memory; DAX VMAs start with it set (always THP-eligible) and lose it to
      // VM_NOHUGEPAGE, which every release checks first. Existing PMDs stay mapped.
      updateFlags(k, vma, s, e, { hugepage: advice === 'hugepage', nohugepage: advice === 'nohugepage' });
      return;
  }
}

function refused(vma: Vma, advice: Advice, why: string): KernelError {
  return new KernelError('EINVAL', `madvise ${advice} refused on '${vma.name}': ${why}`);
}

/**
 * madvise_dontneed_single_vma() -> zap_page_range_single(): the VMA stays, its entries in [s, e)
 * go (references dropped after the TLB flush). A huge leaf the range covers only in part is split
 * first, as zap_pmd_range() does (__split_huge_pmd: a DAX PMD is cleared and re-faults as PTEs).
 */
function* dontneed(k: Kernel, vma: Vma, s: number, e: number): Op {
  const after = yield* afterRemoveEvent(k, vma, s, e);
  yield* k.vm.zapRangeSingle(after.vma, s, after.e, 'madvise_dontneed');
}

/**
 * userfaultfd_remove() in madvise_dontneed_free() (mm/userfaultfd.ts removeEvent()): with
 * UFFD_FEATURE_EVENT_REMOVE the madvise sleeps until the monitor reads UFFD_EVENT_REMOVE; then
 * "vma = vma_lookup(mm, start)" (-ENOMEM when gone) and the end is cut to that VMA ("Don't fail if
 * end > vma->vm_end"). The re-check of madvise_dontneed_free_valid_vma() is not repeated.
 */
function* afterRemoveEvent(k: Kernel, vma: Vma, s: number, e: number): Op<{ vma: Vma; e: number }> {
  if (!(yield* k.uffd.removeEvent(vma, s, e))) return { vma, e };
  const again = k.vm.vmaAt(vma.mm, s);
  if (!again) throw new KernelError('ENOMEM', `madvise: page ${s} of ${vma.mm.name} was unmapped while UFFD_EVENT_REMOVE was pending`);
  return { vma: again, e: Math.min(e, again.start + again.pages) };
}

/**
 * MADV_DONTNEED(_LOCKED) of a hugetlb VMA. Before 90e7e7f5ef3f "mm: enable MADV_DONTNEED for
 * hugetlb mappings" (v5.18) can_madv_lru_vma() refuses VM_HUGETLB: -EINVAL. From it,
 * madvise_dontneed_free_valid_vma() wants the start huge-page aligned (-EINVAL) and moves the end
 * to a huge page boundary: up (ALIGN) as the commit came, down (ALIGN_DOWN) from 8ebe0a5eaaeb
 * "mm,madvise,hugetlb: fix unexpected data loss with MADV_DONTNEED on hugetlbfs" (v6.1 [M],
 * backported to 6.0 stable), which also returns 0 at once for an empty range. The VMA ends on huge
 * page boundaries, so rounding up never leaves it. zap_page_range_single() ->
 * __unmap_hugepage_range() then clears every huge entry in the range: the folio loses the mapping
 * and, after the TLB flush, the reference -- a private (anon) page, a fault's or a COW copy, goes
 * back to the pool; a page-cache page keeps the cache's reference and stays in the file.
 * The zap gives a private owner's anonymous page its reservation back from v6.9 (Hugetlb.zap),
 * and from v6.6 keeps faults out until the pages are freed (Hugetlb.zapSingle).
 */
function* hugetlbDontneed(k: Kernel, vma: Vma, s: number, e: number, advice: Advice): Op {
  const h = vma.hugetlb!;
  const mib = (h.pages * k.mmu.basePageSize) / 2 ** 20;
  if (!kernelAtLeast(k.version, 5, 18)) throw refused(vma, advice, 'VM_HUGETLB (can_madv_lru_vma; MADV_DONTNEED on hugetlb came with 90e7e7f5ef3f, v5.18)');
  if (s % h.pages !== 0) throw refused(vma, advice, `the start is not aligned to the ${mib} MiB huge page (madvise_dontneed_free_valid_vma)`);
  const end = kernelAtLeast(k.version, 6, 1) ? e - (e % h.pages) : Math.ceil(e / h.pages) * h.pages;
  if (end <= s) return;
  const after = yield* afterRemoveEvent(k, vma, s, end);
  yield* k.hugetlb.zapSingle(after.vma, s, after.e, 'madvise_dontneed');
}

/**
 * madvise_remove(): "free up the pages and associated backing store" -- a hole punched in the
 * file, vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) at the range's offset in it. A
 * VM_LOCKED VMA is -EINVAL first, and so is one without vm_file (private anonymous memory); one
 * not shared and writable is
 * -EACCES: VM_SHARED and VM_WRITE up to v6.6, vma_is_shared_maywrite() (VM_SHARED and
 * VM_MAYWRITE) from e8e17ee90eaf (v6.7 [M]), which every shared mapping of a file the model opens
 * (read-write) has. vfs_fallocate() refuses a character device (/dev/mem, device-dax) with -ENODEV
 * (!S_ISREG && !S_ISBLK). The punch itself is the filesystem's: shmem_fallocate (tmpfs and the
 * disk files' page cache, mm/pagecache.ts), hugetlbfs_fallocate (mm/hugetlb.ts: private COW copies go
 * too), or the DAX filesystem's. Hugetlb VMAs have been allowed since hugetlbfs hole punching
 * (v4.3), older than every preset.
 */
function* remove(k: Kernel, vma: Vma, s: number, e: number): Op {
  if (vma.flags.locked) throw refused(vma, 'remove', 'VM_LOCKED');
  if (vma.kind === 'anon') throw refused(vma, 'remove', 'no vm_file (anonymous memory)');
  const maywrite = kernelAtLeast(k.version, 6, 7);
  // v6.7+: vma_is_shared_maywrite() -- no VM_MAYWRITE on a shared mapping of a file opened
  // read-only (every shared mapping left on a read-only remount) or of a write-sealed memfd
  if (!vma.flags.shared || !(maywrite ? !vma.flags.nomaywrite : vma.flags.write)) throw new KernelError('EACCES', `madvise remove of '${vma.name}': the mapping is not ${maywrite ? 'shared with VM_MAYWRITE' : 'shared and writable'} (madvise_remove)`);
  if (vma.kind === 'device') throw new KernelError('ENODEV', `madvise remove of '${vma.name}': vfs_fallocate of a character device`);
  const ps = k.mmu.basePageSize;
  const offset = (s - vma.start + vma.pgoff) * ps;
  const length = (e - s) * ps;
  // userfaultfd_remove() after the checks, then vfs_fallocate() of the offset computed before
  yield* k.uffd.removeEvent(vma, s, e);
  if (vma.cacheFile?.hugetlb) return yield* k.hugetlb.punchHole(vma.cacheFile, offset, length);
  // vfs_fallocate(): secretmem_fops has no ->fallocate
  if (vma.cacheFile?.secretmem) throw new KernelError('EOPNOTSUPP', `madvise remove of secretmem mapping '${vma.name}' (vfs_fallocate: no ->fallocate)`);
  if (vma.cacheFile) return yield* k.pageCache.punchHole(vma.cacheFile, offset, length);
  const file = [...k.files.values()].find((f) => f.inode === vma.inode);
  if (!file) throw new Error(`madvise remove: no file behind '${vma.name}'`);
  yield* file.fs.punchHole(file.inode, offset, length);
}

/**
 * madvise_free_pte_range(): each anonymous page the range maps is marked lazily freeable
 * (mark_page_lazyfree / folio_mark_lazyfree) and its PTE made clean and old, so reclaim may drop
 * it instead of swapping it out. A page that is PG_dirty or in the swap cache is skipped when
 * mapped elsewhere too ("if folio is shared with others, we mustn't clear the folio's dirty
 * flag"), and a swap-cache one mapped once first leaves the swap cache (folio_free_swap(), else
 * skipped); the model keeps no PG_dirty on anon pages, so a page shared with a fork child and
 * not in the swap cache is cleaned in this process as well -- the child's dirty PTE would keep
 * reclaim from dropping it. A swap entry in the range is discarded (free_swap_and_cache() and
 * the entry cleared: the data is gone, the next access faults in a new page). The zero page (no
 * vm_normal_page()) and device entries are left alone. Without memory pressure nothing else
 * happens: the model has no reclaim, so the page stays mapped with its data until a write
 * dirties it again.
 */
function lazyfree(k: Kernel, vma: Vma, s: number, e: number): void {
  // where a "break" of madvise_free_pte_range() leaves the rest of the PMD's range
  let resume = s;
  for (const found of k.vm.leavesIn(vma.mm, s, e)) {
    if (found.base < resume) continue;
    // a split earlier in the walk may have changed the entry (the zero page, a new folio)
    const leaf = found.pte.level === 'pte' ? k.vm.lookup(vma.mm, found.base) : found;
    if (!leaf) continue;
    // madvise_free_huge_pmd(): an anonymous THP this process alone maps is cleaned at PMD level
    // when the range covers it whole; one covered in part is split ("If user want to discard
    // part-pages of THP, split it so MADV_FREE will deactivate only them": split_folio(), every
    // release; from v6.12 the split maps its zero-filled pages to the zero page, mm/split.ts) and
    // madvise_free_pte_range() goes on over the PTEs in the range; one mapped elsewhere too is
    // skipped, and so is the huge zero page
    if (leaf.pte.level === 'pmd' && k.thp.isAnonPmd(vma, leaf)) {
      const head = k.folios.folio(leaf.pte.pfn);
      if (k.folios.mapcount(head) !== 1) continue;
      if (leaf.base < s || leaf.base + leaf.pages > e) {
        if (!k.thp.splitFolioHeld(head, 'madvise_free_huge_pmd')) continue;
        for (const pte of k.vm.leavesIn(vma.mm, Math.max(s, leaf.base), Math.min(e, leaf.base + leaf.pages))) lazyfreePte(k, vma, pte);
        continue;
      }
      if (!leaf.pte.dirty) continue;
      leaf.pte.dirty = false; // pmd_mkold(pmd_mkclean()), then set_pmd_at
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: 'pmd', write: leaf.pte.write, devmap: false, special: false });
      continue;
    }
    const page = leaf.pte.level === 'pte' && !nonPresent(leaf.pte) ? k.vm.normalPage(leaf.pte, leaf.pte.pfn) : null;
    if (page !== null && k.folios.nr(k.folios.folio(page)) > 1 && k.folios.isAnon(k.folios.folio(page))) {
      const go = lazyfreeLargeFolio(k, vma, leaf.base, page, e);
      if (go === 'stop') {
        resume = leaf.base - (leaf.base % k.vm.pmdPages) + k.vm.pmdPages;
        continue;
      }
      if (go === 'skip') continue;
      if (go === 'whole') {
        // the batch: every PTE of the folio is cleaned, and the walk goes on past it
        const nr = k.folios.nr(k.folios.folio(page));
        for (let v = leaf.base; v < leaf.base + nr; v++) lazyfreePte(k, vma, k.vm.lookup(vma.mm, v)!);
        resume = leaf.base + nr;
        continue;
      }
      const now = k.vm.lookup(vma.mm, leaf.base);
      if (now) lazyfreePte(k, vma, now);
      continue;
    }
    lazyfreePte(k, vma, leaf);
  }
}

/**
 * madvise_free_pte_range() at a page of a PTE-mapped large anonymous folio (a THP whose PMD was
 * split, an mTHP). Up to v6.9: split_folio() and the same address again, unless the folio is
 * mapped elsewhere (page_mapcount(), folio_estimated_sharers() in v6.x: != 1) or the split fails --
 * then "break": the rest of this PMD's range is left. From "mm/madvise: optimize lazyfreeing with
 * mTHP in madvise_free" (v6.10 [M]): when the PTEs from this one on map the folio whole inside the
 * range (madvise_folio_pte_batch() covers folio_nr_pages()) it stays whole and is cleaned; else it
 * is split unless folio_likely_mapped_shared() (the first page mapped more than once), and that
 * page is passed over when it is not split. Every split maps the folio's zero-filled pages to the
 * zero page from v6.12 (mm/split.ts). 'go': clean the entry there now; 'whole': clean the folio's
 * PTEs, the batch.
 */
function lazyfreeLargeFolio(k: Kernel, vma: Vma, vpn: number, page: number, e: number): 'go' | 'whole' | 'skip' | 'stop' {
  const head = k.folios.folio(page);
  const nr = k.folios.nr(head);
  if (!kernelAtLeast(k.version, 6, 10)) {
    if (k.vm.pageMapcount(page, head) !== 1) return 'stop';
    return k.thp.splitFolioHeld(head, 'madvise_free_pte_range') ? 'go' : 'stop';
  }
  let batch = 0;
  for (; batch < nr && vpn + batch < e; batch++) {
    const pte = vma.mm.ptes.get(vpn + batch);
    if (!pte || nonPresent(pte) || pte.special || pte.pfn !== page + batch) break;
  }
  if (page === head && batch === nr) return 'whole';
  if (k.vm.pageMapcount(head, head) > 1) return 'skip';
  return k.thp.splitFolioHeld(head, 'madvise_free_pte_range') ? 'go' : 'skip';
}

/** madvise_free_pte_range() on one PTE (a large folio's page once lazyfreeLargeFolio() let it through). */
function lazyfreePte(k: Kernel, vma: Vma, leaf: Leaf): void {
  if (leaf.pte.swap) {
    // "if (!non_swap_entry(entry)) { free_swap_and_cache(entry); pte_clear_not_present_full() }"
    k.vm.clear(vma.mm, leaf.base, 'pte');
    k.swap.zapEntry(leaf.pte);
    return;
  }
  if (nonPresent(leaf.pte) || leaf.pte.level !== 'pte') return;
  const page = k.vm.normalPage(leaf.pte, leaf.pte.pfn);
  if (page === null) return;
  const folio = k.folios.folio(page);
  if (!k.folios.isAnon(folio)) return;
  if (k.swap.inSwapCache(folio) && (k.folios.mapcount(folio) !== 1 || !k.swap.freeSwap(folio))) return;
  if (!leaf.pte.dirty) return;
  leaf.pte.dirty = false; // pte_mkold(pte_mkclean()), then set_pte_at
  k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: 'pte', write: leaf.pte.write, devmap: leaf.pte.devmap, special: leaf.pte.special });
}

/**
 * madvise_update_vma(): nothing to do when the flags would not change; else split the VMA at
 * the range's ends (split_vma(), which a driver's ->may_split may refuse) and set the flags on
 * the piece in the range, then merge it with its neighbours where they are alike (Vm.mergeAround).
 */
function updateFlags(k: Kernel, vma: Vma, s: number, e: number, change: Partial<Pick<VmFlags, 'dontcopy' | 'wipeonfork' | 'hugepage' | 'nohugepage' | 'mergeable' | 'seqRead' | 'randRead'>>): void {
  if (Object.entries(change).every(([f, v]) => (vma.flags[f as keyof VmFlags] ?? false) === v)) return;
  const piece = k.vm.isolate(vma, s, e);
  Object.assign(piece.flags, change);
  k.vm.mergeAround(piece);
}

/**
 * madvise_populate() -> faultin_vma_page_range() (v5.14; faultin_page_range() later): GUP without
 * taking references, FOLL_WRITE for populate-write, so every page is faulted in exactly as a CPU
 * read (the zero page for anonymous memory, a DAX read fault) or write (a new or COW-broken
 * anonymous page, a DAX write fault) would, without touching the data. check_vma_flags() refuses
 * VM_IO | VM_PFNMAP, a write to a VMA without VM_WRITE and a read of one without VM_READ, which
 * faultin_vma_page_range() reports as -EINVAL ("incompatible mappings / permissions"); a fault
 * that ends in SIGBUS or SIGSEGV is -EFAULT (eb2faa513c24).
 */
function* populate(k: Kernel, vma: Vma, s: number, e: number, write: boolean): Op {
  const advice = write ? 'populate-write' : 'populate-read';
  if (vma.flags.io || vma.flags.pfnmap) throw refused(vma, advice, 'VM_IO | VM_PFNMAP (check_vma_flags)');
  if (write && !vma.flags.write) throw refused(vma, advice, 'no VM_WRITE (check_vma_flags)');
  if (!write && !vma.flags.read) throw refused(vma, advice, 'no VM_READ: PROT_NONE (check_vma_flags)');
  if (k.secretmem.isSecretmemVma(vma)) throw refused(vma, advice, 'a secretmem mapping (check_vma_flags: vma_is_secretmem)');
  yield* faultinRange(k, vma, s, e, write, `madvise ${advice}`);
}
