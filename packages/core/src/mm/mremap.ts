import type { Kernel } from '../kernel.js';
import { InputError, KernelError, KernelOops } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Pte, UffdCtx, Vma } from '../types.js';
import { vmasIn, type Leaf } from './vm.js';
import { isWpMarker } from './guard.js';
import { refuseSealedMremap } from './mseal.js';
import { sliceFixed } from './slices.js';
import type { UnmapEvents } from './userfaultfd.js';

export interface MremapRequest {
  readonly mm: Mm;
  /** the first page of the range to move and its length in pages (old_len) */
  readonly start: number;
  readonly pages: number;
  /** new_len in pages; default `pages`. Shrinking unmaps the tail first; growing happens in place or by a move (mremapResize) */
  readonly newPages?: number;
  /** MREMAP_MAYMOVE without MREMAP_FIXED: a range that cannot grow in place may move (implied by `to` and `dontUnmap`) */
  readonly mayMove?: boolean;
  /** MREMAP_FIXED's new_addr as a page, or null: a free range (MREMAP_DONTUNMAP alone) */
  readonly to: number | null;
  /** MREMAP_DONTUNMAP: the old range keeps its VMA, emptied */
  readonly dontUnmap: boolean;
  /** the scenario's name for the moved range (needed when the range moves) */
  readonly as?: string;
}

/**
 * mremap(addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED [| MREMAP_DONTUNMAP], new_addr)
 * (mm/mremap.c): unmap the destination, check the source lies in one VMA, then move_vma():
 * ->may_split() at both ends (v5.11, `mremap-may-split-check`), copy_vma() (same file, pgoff,
 * anon_vma and flags; merged with the VMAs around the new range where they match: Vm.mergeAround),
 * move_page_tables() — entries move, the pages' refcount, mapcount, mapping and index stay — and
 * do_munmap() of the old range. A new length goes through mremapResize() first (shrinking,
 * growing in place); a range that has to move to grow gets a VMA of the new length with the old
 * range's entries. From v6.17 a MREMAP_FIXED move of unchanged length may span several VMAs
 * (remapMove()).
 */
export function* mremap(k: Kernel, req: MremapRequest): Op<Vma | null> {
  const { mm, start } = req;
  let newPages = req.newPages ?? req.pages;
  // mremap(): "if (flags & MREMAP_DONTUNMAP && old_len != new_len)" -EINVAL
  if (req.dontUnmap && newPages !== req.pages) throw new KernelError('EINVAL', 'mremap: MREMAP_DONTUNMAP needs new_len == old_len');
  // 550a7d60bd5e (v5.16 [M]): mremap() looks the VMA at addr up before anything else, so no VMA
  // there is -EFAULT before a MREMAP_FIXED destination is unmapped (vma_lookup() in do_mremap(),
  // check_prep_vma() from v6.16); before, mremap_to() unmapped it first and vma_to_resize() said EFAULT
  const vma = k.vm.vmaAt(mm, start);
  if (!vma && kernelAtLeast(k.version, 5, 16)) throw new KernelError('EFAULT', `mremap: page ${start} of ${mm.name} is not mapped`);
  // mseal(2): the old range may not be sealed, checked before a MREMAP_FIXED destination is unmapped (mm/mseal.ts)
  refuseSealedMremap(k, mm, start, req.pages);
  let oldPages = req.pages;
  // from v6.17 a MREMAP_FIXED move of unchanged length (vrm_move_only()) aligns each VMA's part
  // on its own (remap_move() -> check_prep_vma()), below
  const moveOnly = req.to !== null && newPages === oldPages && kernelAtLeast(k.version, 6, 17);
  if (vma?.hugetlb && kernelAtLeast(k.version, 5, 16) && !moveOnly) ({ oldPages, newPages } = alignHugetlb(vma, start, oldPages, newPages, req.to));
  // an unchanged length that moves nothing returns addr (MREMAP_NO_RESIZE from v6.16; before, the
  // "shrink" by nothing of mremap(): do_munmap() of 0 bytes fails, which is ignored when
  // old_len == new_len, so an unmapped addr "succeeds" before v5.16)
  if (newPages === oldPages && req.to === null && !req.dontUnmap) return vma;
  const sized = { ...req, pages: oldPages };
  if (newPages !== oldPages) {
    const resized = yield* mremapResize(k, sized, newPages);
    if (resized !== undefined) return resized;
  }
  // the new VMA is new_len long; the old range (old_len, or new_len after a shrink) moves into it
  let pages = newPages;
  let end = start + Math.min(oldPages, newPages);
  const as = req.as;
  if (as === undefined) throw new InputError(`mremap has to move pages ${start}..${end - 1} of ${mm.name} to give them ${newPages} pages (no room to grow in place): name the moved range with as`, undefined, 'as');
  // MREMAP_DONTUNMAP arrived in v5.7 (e346b3813067 [M]): before, the flag does not exist (-EINVAL),
  // so a scenario built on it does not apply to that kernel
  if (req.dontUnmap && !kernelAtLeast(k.version, 5, 7)) throw KernelError.unsupported('EINVAL', 'MREMAP_DONTUNMAP does not exist before v5.7 (e346b3813067)');
  if (req.to !== null) {
    // mremap_to() (check_mremap_params() from v6.16 [M]): the ranges may not overlap
    if (req.to < end && req.to + pages > start) throw new KernelError('EINVAL', 'mremap: the old and new ranges overlap');
    // "mm/mremap: permit mremap() move of multiple VMAs" (v6.17 [M]): a move that keeps the length
    // (vrm_move_only()) goes VMA by VMA when the range is not inside one
    const one = k.vm.vmaAt(mm, start);
    const inOne = one !== null && end <= one.start + one.pages;
    if (moveOnly && !inOne) return yield* remapMove(k, { mm, start, end, to: req.to, dontUnmap: req.dontUnmap, as });
    if (moveOnly && one?.hugetlb) {
      pages = alignHugetlb(one, start, end - start, end - start, req.to).oldPages;
      end = start + pages;
    }
  }
  return yield* moveVma(k, { mm, start, end, pages, to: req.to, dontUnmap: req.dontUnmap, as });
}

interface VmaMove {
  readonly mm: Mm;
  /** the old range [start, end), and the new range's length (new_len) */
  readonly start: number;
  readonly end: number;
  readonly pages: number;
  /** new_addr with MREMAP_FIXED, or null: a free range */
  readonly to: number | null;
  readonly dontUnmap: boolean;
  readonly as: string;
}

/**
 * mremap_to() (with MREMAP_FIXED) and move_vma() of a range inside one VMA; the userfaultfd events
 * come at the end, as mremap() sends them after mmap_write_unlock(), even after an error:
 * userfaultfd_unmap_complete(uf_unmap_early) -- the destination's --, mremap_userfaultfd_complete()
 * and userfaultfd_unmap_complete(uf_unmap) -- the old range's.
 */
function* moveVma(k: Kernel, m: VmaMove): Op<Vma> {
  const ufEarly: UnmapEvents = [];
  const ufUnmap: UnmapEvents = [];
  const remap: { ctx: UffdCtx | null; to: number } = { ctx: null, to: 0 };
  try {
    return yield* moveVmaLocked(k, m, ufEarly, ufUnmap, remap);
  } finally {
    yield* k.uffd.completeUnmaps(ufEarly);
    yield* k.uffd.remapComplete(remap.ctx, m.start, remap.to, m.end - m.start);
    yield* k.uffd.completeUnmaps(ufUnmap);
  }
}

function* moveVmaLocked(k: Kernel, m: VmaMove, ufEarly: UnmapEvents, ufUnmap: UnmapEvents, remap: { ctx: UffdCtx | null; to: number }): Op<Vma> {
  const { mm, start, end, pages, as } = m;
  // MREMAP_FIXED unmaps whatever is at new_addr first
  if (m.to !== null) yield* k.vm.munmapRange(mm, m.to, m.to + pages, ufEarly);
  // vma_to_resize() (check_prep_vma() since the 2025 rework of mm/mremap.c [M]): no remap across
  // the end of a VMA
  const vma = k.vm.vmaAt(mm, start);
  if (!vma) throw new KernelError('EFAULT', `mremap: page ${start} of ${mm.name} is not mapped`);
  if (m.dontUnmap) {
    // v5.7: private anonymous only; a4609387859f (v5.13 [M]): anything but VM_DONTEXPAND | VM_PFNMAP
    // (every hugetlb VMA is VM_DONTEXPAND: hugetlbfs_file_mmap())
    const refused = kernelAtLeast(k.version, 5, 13) ? vma.flags.pfnmap || vma.flags.dontexpand || vma.hugetlb !== undefined : vma.kind !== 'anon' || vma.flags.shared;
    if (refused) throw new KernelError('EINVAL', `mremap: MREMAP_DONTUNMAP of '${vma.name}' is refused on ${k.version}`);
  }
  refuseHugetlbBeforeV516(k, vma);
  if (end > vma.start + vma.pages) throw new KernelError('EFAULT', `mremap: pages ${start}..${end - 1} are not inside one VMA of ${mm.name}`);
  // get_unmapped_area() of the VMA's file (MAP_FIXED at new_addr, after the unmap above): on an MMU
  // with slices, new_addr's slices must take the VMA's page size (mm/slices.ts: -EBUSY)
  const psize = vma.hugetlb?.pages ?? 1;
  if (m.to !== null) sliceFixed(k.mmu, mm, m.to, pages, psize);
  if (vma.device && k.features['mremap-may-split-check']) {
    // move_vma() (prep_move_vma() since that rework [M]): ask before copying, so a refusal moves nothing
    const driver = k.driverOf(vma.device);
    if (vma.start !== start) driver.maySplit?.(k, vma.device, vma, start);
    if (vma.start + vma.pages !== end) driver.maySplit?.(k, vma.device, vma, end);
  }
  const align = vma.hugetlb ? vma.hugetlb.pages : vma.device ? Math.max(1, vma.device.align / k.mmu.basePageSize) : 1;
  const to = m.to ?? k.vm.placeVma(mm, pages, align, psize);
  // copy_vma(): a new VMA for the new range, of the same file at the same offset, same anon_vma;
  // "If anonymous vma has not yet been faulted, update new pgoff to match new location, to
  // increase its chance of merging" (every release): an unfaulted anonymous VMA's vm_pgoff is
  // its new address, a faulted one keeps the pgoff its pages' rmap index needs
  const unfaulted = vma.kind === 'anon' && vma.anonVma === 0;
  const copy = k.vm.addVma(mm, { ...vma, name: as, start: to, pages, pgoff: unfaulted ? to : vma.pgoff + (start - vma.start), flags: { ...vma.flags } });
  // mremap_userfaultfd_prep(new_vma): the registration moves only with UFFD_FEATURE_EVENT_REMAP
  remap.ctx = k.uffd.remapPrep(copy);
  remap.to = to;
  movePageTables(k, vma, start, end, to);
  // clear_vma_resv_huge_pages() (550a7d60bd5e, v5.16; fixup_hugetlb_reservations() from 2025): a
  // private owner's reservation map now belongs to the copy; the old VMA -- all of it, also what
  // stays mapped of it -- drops its reference, so unmapping it gives nothing back
  if (vma.hugetlb) k.hugetlb.clearVmaResv(vma);
  // copy_vma() merges the new range with its neighbours before the entries move (the model after:
  // the same VMAs result); the copy may grow the VMA being moved itself when it lands right after it
  const moved = k.vm.mergeAround(copy, { copiedFrom: vma });
  if (m.dontUnmap) {
    // move_vma() (dontunmap_complete() from v6.16 [M]): "We always clear VM_LOCKED[ONFAULT] on the
    // old vma" -- the whole VMA, split or not; the copy keeps them
    delete vma.flags.locked;
    delete vma.flags.lockonfault;
    // the old VMA stays, now empty; from v5.12 (1583aa278f5f [M]) unlink_anon_vmas() when it was
    // exactly the moved range, so later faults there start a new anon_vma (before, it kept its own)
    if (vma !== moved && vma.start === start && vma.pages === end - start && kernelAtLeast(k.version, 5, 12)) {
      vma.anonVma = 0;
      delete vma.anonForked;
    }
  } else {
    try {
      yield* k.vm.munmapRange(mm, start, end, ufUnmap);
    } catch (e) {
      // before v5.11 nothing asked ->may_split() first: do_munmap() fails to split, move_vma()
      // only fixes up the accounting and returns the new address: both VMAs stay
      if (!(e instanceof KernelError) || k.features['mremap-may-split-check']) throw e;
    }
  }
  k.emit('vma.move', { mm: mm.name, map: vma.name, from: start, to, pages: end - start, as });
  return moved;
}

/**
 * remap_move() (v6.17 [M], "mm/mremap: permit mremap() move of multiple VMAs"): a MREMAP_FIXED
 * move of unchanged length over several VMAs and the gaps between them moves each VMA's part of
 * the range in address order, keeping the gaps: the first part goes to new_addr, each later one
 * as far after the previous part's new end as it was after the previous VMA's end. Each part is
 * an mremap_to() of its own (its destination unmapped, then move_vma(); the gaps' destinations are
 * left alone). A gap at the start of the range, or nothing mapped, is -EFAULT. vma_multi_allowed()
 * refuses a VMA userfaultfd_armed() (VM_UFFD_MISSING | _WP | _MINOR: the uffd remap event would
 * need mmap_lock dropped): -EFAULT before anything moves when it is the first VMA, or after the
 * parts before it moved when it is a later one; check_prep_vma() refuses a sealed VMA (-EPERM) the
 * same way. Not modelled: vma_multi_allowed()'s refusal of a file whose f_op has its own
 * get_unmapped_area (device-dax). The returned range is new_addr's (`as`).
 */
function* remapMove(k: Kernel, m: Omit<VmaMove, 'pages' | 'to'> & { readonly to: number }): Op<Vma | null> {
  const { mm, start, end } = m;
  const vmas = vmasIn(mm, start, end);
  const first = vmas[0];
  if (!first || first.start > start) throw new KernelError('EFAULT', `mremap: page ${start} of ${mm.name} is not mapped (a multi-VMA move starts in a VMA)`);
  let moved: Vma | null = null;
  let target = m.to;
  let lastEnd = 0;
  try {
    for (const [i, vma] of vmas.entries()) {
      const from = Math.max(vma.start, start);
      let to = Math.min(end, vma.start + vma.pages);
      const offset = i === 0 ? 0 : vma.start - lastEnd;
      lastEnd = vma.start + vma.pages;
      // check_prep_vma() per VMA: a sealed one is EPERM when the move reaches it (mm/mseal.ts)
      refuseSealedMremap(k, mm, from, to - from);
      const armed = vma.flags.uffdMissing === true || vma.flags.uffdWp === true || vma.flags.uffdMinor === true;
      if (armed) throw new KernelError('EFAULT', `mremap: '${vma.name}' is registered with userfaultfd: vma_multi_allowed() refuses it in a move of several VMAs${i === 0 ? '; nothing moved' : `; the ${i} VMA(s) before it moved`}`);
      // check_prep_vma() per VMA: a hugetlb part goes through align_hugetlb() (EINVAL off its huge
      // page size, its length rounded up; vma_multi_allowed() counts hugetlbfs among the
      // known-good get_unmapped_area()s)
      if (vma.hugetlb) to = from + alignHugetlb(vma, from, to - from, to - from, target + offset).oldPages;
      const piece = yield* moveVma(k, { mm, start: from, end: to, pages: to - from, to: target + offset, dontUnmap: m.dontUnmap, as: m.as });
      moved ??= piece;
      target = target + offset + (to - from);
    }
  } finally {
    // the name stands for the whole destination range, whatever parts reached it
    mm.ranges.set(m.as, { start: m.to, pages: end - start });
  }
  return moved;
}

/**
 * mremap() with new_len != old_len. Shrinking: "Always allow a shrinking remap: that just unmaps
 * the unnecessary pages" -- do_munmap() of the tail whatever lies there (no VMA check), then the
 * call is done (the old address; undefined is returned only for a MREMAP_FIXED move of what is
 * left, which mremap() goes on with). With MREMAP_FIXED the destination is unmapped first
 * (mremap_to()). Growing: vma_to_resize() (check_prep_vma() from v6.16 [M]) wants the old range
 * in one VMA (EFAULT) and refuses to grow a VM_DONTEXPAND or VM_PFNMAP one (EFAULT: remap_pfn_range()
 * mappings, /dev/mem, selftests/mm/pfnmap.c "mremap_expand"). Without MREMAP_FIXED a range that
 * ends where its VMA ends grows in place when nothing is mapped in the pages after
 * (vma_expandable(); vma_adjust() / vma_expand() make the VMA longer, nothing is faulted in);
 * otherwise it moves when MREMAP_MAYMOVE allows (undefined: mremap() goes on with move_vma()
 * to a range of new_len), else -ENOMEM. From v6.0 a VMA grown in place merges with the next one.
 */
function* mremapResize(k: Kernel, req: MremapRequest, newPages: number): Op<Vma | null | undefined> {
  const { mm, start, pages } = req;
  if (req.to !== null) {
    if (req.to < start + pages && req.to + newPages > start) throw new KernelError('EINVAL', 'mremap: the old and new ranges overlap');
    yield* k.vm.munmapRange(mm, req.to, req.to + newPages);
  }
  if (newPages < pages) {
    yield* k.vm.munmapRange(mm, start + newPages, start + pages);
    return req.to === null ? k.vm.vmaAt(mm, start) : undefined;
  }
  const vma = k.vm.vmaAt(mm, start);
  if (!vma) throw new KernelError('EFAULT', `mremap: page ${start} of ${mm.name} is not mapped`);
  refuseHugetlbBeforeV516(k, vma);
  if (start + pages > vma.start + vma.pages) throw new KernelError('EFAULT', `mremap: pages ${start}..${start + pages - 1} are not inside one VMA of ${mm.name}`);
  if (vma.flags.dontexpand || vma.flags.pfnmap) throw new KernelError('EFAULT', `mremap: '${vma.name}' is VM_DONTEXPAND | VM_PFNMAP and cannot grow (vma_to_resize)`);
  if (req.to !== null) return undefined; // mremap_to(): move_vma() to the fixed range
  const vmaEnd = vma.start + vma.pages;
  const grown = vmaEnd + newPages - pages;
  if (start + pages === vmaEnd && !mm.vmas.some((v) => v.start < grown && v.start + v.pages > vmaEnd)) {
    vma.pages += newPages - pages;
    // placement leaves its guard gap after the longer VMA too
    if (mm.nextVpn < grown + k.vm.pmdPages) mm.nextVpn = grown + k.vm.pmdPages;
    // ca3d76b0aa80 ("mm: add merging after mremap resize", v6.0 [M]): the grown VMA merges with
    // the one it now touches (vma_merge() of the extension; vma_merge_extend() from v6.7)
    return kernelAtLeast(k.version, 6, 0) ? k.vm.mergeAround(vma, 'extend') : vma;
  }
  // "if (flags & MREMAP_MAYMOVE)": move_vma() to get_unmapped_area(new_len), else -ENOMEM
  if (!req.mayMove && !req.dontUnmap) throw new KernelError('ENOMEM', `mremap: '${vma.name}' cannot grow in place to ${newPages} pages and MREMAP_MAYMOVE is not given`);
  return undefined;
}

/**
 * move_page_tables(): each leaf of [start, end) moves to the same offset from `to`
 * (ptep_get_and_clear + set_pte_at; move_huge_pmd / move_huge_pud for a huge leaf the move
 * covers whole and can place aligned). A huge PMD covered only in part is split first
 * (split_huge_pmd: a DAX one is zapped and re-faults at PTE level). move_soft_dirty_pte() marks
 * every moved entry soft-dirty. One TLB flush of the old range at the end.
 */
function movePageTables(k: Kernel, vma: Vma, start: number, end: number, to: number): void {
  if (vma.hugetlb) return moveHugetlbPageTables(k, vma, start, end, to);
  const mm = vma.mm;
  const delta = to - start;
  let moved = false;
  // move_page_tables(): MMU_NOTIFY_UNMAP over the old range before the entries move
  k.mmuNotify({ mm, start, end, event: 'unmap', owner: null });
  const clearWp = clearsUffdWp(k, vma);
  const move = (leaf: Leaf): void => {
    const pte = k.vm.clear(mm, leaf.base, leaf.pte.level)!;
    if (k.softDirtyArch) pte.softDirty = true; // move_soft_dirty_pte(), also pte_swp_mksoft_dirty()
    if (!clearWp || !dropUffdWp(pte)) k.vm.install(mm, leaf.base + delta, pte);
    moved = true;
  };
  for (const leaf of k.vm.leavesIn(mm, start, end)) {
    const whole = leaf.base >= start && leaf.base + leaf.pages <= end && (leaf.base + delta) % leaf.pages === 0;
    if (leaf.pte.level === 'pud' && !whole) {
      throw KernelError.unsupported('EINVAL', `mremap of part of a PUD leaf of '${vma.name}' (device-dax 1 GiB): move_page_tables() had no PUD-leaf split before v5.11 and it is not modelled`);
    }
    if (leaf.pte.level === 'pmd' && !whole) {
      if (leaf.pte.devmap && !k.features['mremap-devmap-pmd']) {
        // pmd_trans_huge() is false for a devmap PMD (x86): move_ptes() maps the DAX page as a
        // PTE table and moves its contents as entries
        const message = `BUG: mremap of part of a devmap PMD of '${vma.name}': move_ptes() walks the DAX huge page at pfn ${leaf.pte.pfn} as a page table (no pmd_devmap() check before v5.8)`;
        k.emit('oops', { message });
        throw new KernelOops(message);
      }
      k.vm.splitHugePmd(vma, leaf.base);
      // an anonymous THP's PMD became PTEs of the same folio (mm/thp.ts): those in the range move
      for (const sub of k.vm.leavesIn(mm, Math.max(start, leaf.base), Math.min(end, leaf.base + leaf.pages))) move(sub);
      continue;
    }
    move(leaf);
  }
  if (moved) k.emit('tlb.flush', { mm: mm.name });
}

/**
 * The hugetlb rules of mremap() from 550a7d60bd5e ("mm, hugepages: add mremap() support for
 * hugepage backed vma", v5.16 [M]; align_hugetlb() in check_prep_vma() since the 2025 rework):
 * old_len and new_len are rounded up to the huge page size, addr and new_addr must be huge-page
 * aligned, and the mapping may not grow ("the underlying hugetlb reservation is not yet capable to
 * handle split reservation"): -EINVAL, before anything is unmapped. A shrink and a same-size move
 * are allowed.
 */
function alignHugetlb(vma: Vma, start: number, pages: number, newPages: number, to: number | null): { oldPages: number; newPages: number } {
  const hp = vma.hugetlb!.pages;
  const size = `${hp} base pages`;
  if (start % hp !== 0) throw new KernelError('EINVAL', `mremap of hugetlb mapping '${vma.name}': the old address (page ${start}) is not aligned to its huge page size (${size})`);
  if (to !== null && to % hp !== 0) throw new KernelError('EINVAL', `mremap of hugetlb mapping '${vma.name}': the new address (page ${to}) is not aligned to its huge page size (${size})`);
  const oldPages = Math.ceil(pages / hp) * hp;
  const rounded = Math.ceil(newPages / hp) * hp;
  if (rounded > oldPages) throw new KernelError('EINVAL', `mremap of hugetlb mapping '${vma.name}': a hugetlb mapping cannot grow (${oldPages} to ${rounded} base pages)`);
  return { oldPages, newPages: rounded };
}

/** vma_to_resize() before 550a7d60bd5e (v5.16 [M]): "if (is_vm_hugetlb_page(vma)) return ERR_PTR(-EINVAL)" -- no hugetlb VMA grows or moves. */
function refuseHugetlbBeforeV516(k: Kernel, vma: Vma): void {
  if (vma.hugetlb && !kernelAtLeast(k.version, 5, 16)) throw new KernelError('EINVAL', `mremap: '${vma.name}' is a hugetlb mapping, which vma_to_resize() refuses before v5.16`);
}

/**
 * move_hugetlb_page_tables() (mm/hugetlb.c, 550a7d60bd5e, v5.16 [M]): MMU_NOTIFY_CLEAR over the
 * range, then each huge entry -- a huge page, a uffd-wp marker, a migration or poison entry --
 * moves to the same offset from `to` (move_huge_pte(): huge_ptep_get_and_clear() +
 * set_huge_pte_at(), no soft-dirty mark); the folio, its refcount and mapcount stay. Not
 * modelled: huge_pmd_unshare() of a source PMD table shared with another mapping of the file,
 * which skips that whole PUD range (the entries refault at the new address; the model has no
 * shared PMD tables). The uffd-wp state goes as in move_ptes() (clearsUffdWp()).
 */
function moveHugetlbPageTables(k: Kernel, vma: Vma, start: number, end: number, to: number): void {
  const mm = vma.mm;
  k.mmuNotify({ mm, start, end, event: 'clear', owner: null });
  const clearWp = clearsUffdWp(k, vma);
  let moved = false;
  for (const leaf of k.vm.leavesIn(mm, start, end)) {
    const pte = k.vm.clear(mm, leaf.base, leaf.pte.level)!;
    if (!clearWp || !dropUffdWp(pte)) k.vm.install(mm, leaf.base + to - start, pte);
    moved = true;
  }
  if (moved) k.emit('tlb.flush', { mm: mm.name });
}

/**
 * vma_has_uffd_without_event_remap() ("mm: clear uffd-wp PTE/PMD state on mremap()", a January
 * 2025 mm hotfix: v6.13 [M]): a VMA registered with a userfaultfd that lacks
 * UFFD_FEATURE_EVENT_REMAP loses its registration at the new address (mremap_userfaultfd_prep()),
 * so move_ptes(), move_huge_pmd() and move_huge_pte() clear the uffd-wp state of what they move as
 * well. Before, the moved entries kept their bit in an unregistered VMA.
 */
function clearsUffdWp(k: Kernel, vma: Vma): boolean {
  return vma.uffd !== undefined && !vma.uffd.features.has('event-remap') && kernelAtLeast(k.version, 6, 13);
}

/** The moved entry without its uffd-wp state: true when nothing is left to install (a PTE_MARKER_UFFD_WP is cleared to none). */
function dropUffdWp(pte: Pte): boolean {
  if (isWpMarker(pte)) return true;
  delete pte.uffdWp; // pte_clear_uffd_wp(), or pte_swp_clear_uffd_wp() on a swap entry
  return false;
}
