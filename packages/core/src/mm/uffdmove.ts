import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Mm, UffdCtx, Vma } from '../types.js';
import { anonMappingOf, PG } from './pages.js';
import { nonPresent } from './exclusive.js';
import { migrationEntryWait } from './migrate.js';

/**
 * UFFDIO_MOVE (v6.8, adef440691ba "userfaultfd: UFFDIO_MOVE uABI"; fs/userfaultfd.c
 * userfaultfd_move(), mm/userfaultfd.c move_pages(), move_pages_pte(), move_present_pte(),
 * move_swap_pte(), move_zeropage_pte(), mm/huge_memory.c move_pages_huge_pmd()): the handler moves
 * anonymous pages from one place of the ctx's mm to another, page tables only: a page keeps its
 * data and its struct page, its rmap follows it into the destination VMA (folio_move_anon_rmap()
 * and folio->index), and the faults sleeping on the destination wake (unless
 * UFFDIO_MOVE_MODE_DONTWAKE).
 *
 * What refuses (in the kernel's order):
 * - the ioctl before v6.8: userfaultfd_ioctl()'s switch does not know it, -EINVAL;
 * - a zero length (validate_range()), a move into another mm (v6.8: "Do not allow cross-mm moves");
 * - the VMAs: from v6.9 (867a43a34ff8 "userfaultfd: use per-vma locks in userfaultfd operations")
 *   no VMA at dst or at src is -ENOENT (uffd_move_lock() -> vma_lookup()), before -EINVAL
 *   (find_vma() + range check); then -EINVAL for a VM_SHARED one, a range past either VMA's end,
 *   and validate_move_areas(): different VM_READ/WRITE/EXEC or mlock state, a source without
 *   VM_WRITE, VM_PFNMAP / VM_IO / VM_HUGETLB / VM_MIXEDMAP (vma_move_compatible()), a destination
 *   not registered with this ctx, and either VMA not anonymous (vma_is_anonymous()) — so every
 *   DAX mapping: a device-dax VMA is always shared (dev_dax_mmap()'s check_vma()), an fs-dax one
 *   shared or a private file mapping, and hugetlb is VM_HUGETLB;
 * - per entry: a populated destination -EEXIST (a PMD leaf there, or any PTE, a marker too:
 *   "!pte_none(orig_dst_pte)"); an empty source -ENOENT unless UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
 *   (then the hole counts as moved); a page not PageAnonExclusive (shared after fork, KSM) or
 *   maybe-DMA-pinned (folio_maybe_dma_pinned()) -EBUSY, a swap entry without pte_swp_exclusive()
 *   -EBUSY; a non-swap entry other than migration (device-private, device-exclusive, a PTE marker)
 *   -EFAULT; a migration entry is waited out and the page retried (-EAGAIN inside move_pages()).
 * An error after some pages moved ends the ioctl with -EAGAIN and uffdio_move.move = the bytes
 * moved ("ret = range.len == uffdio_move.len ? 0 : -EAGAIN").
 *
 * A PMD-mapped THP (or the huge zero PMD) at the source moves whole (move_pages_huge_pmd()) when
 * src and dst are PMD-aligned, a whole PMD is left to move and the destination PMD is none (no
 * page table there either); otherwise it is split first (split_huge_pmd(): an exclusive THP or the
 * huge zero page, else -EBUSY) and move_pages_pte() splits the then PTE-mapped folio
 * (split_folio()) before moving its pages one by one. A PTE-mapped large folio is split the same
 * way. The moved PTE is writable (both VMAs have VM_WRITE); up to v6.14 it is made dirty ("Follow
 * mremap() behavior"), from v6.15 (Barry Song's "mm: userfaultfd: correct dirty flags set for both
 * present and swap pte", mm-hotfixes May 2025) it keeps the source's dirty bit and is soft-dirty,
 * as a moved swap entry is. From v6.15 ("mm: userfaultfd: fix race of userfaultfd_move and swap
 * cache", Kairui Song) a swap entry whose folio is still in the swap cache moves that folio's rmap
 * too; before, the cached folio kept the source's anon_vma.
 *
 * Without UFFDIO_MOVE_MODE_DONTWAKE the faults sleeping on the destination wake (each as its entry
 * appears: the model wakes no fault whose entry is still empty); with it they sleep on until
 * UFFDIO_WAKE (mm/userfaultfd.ts holdWakes(), wake()).
 *
 * A non-cooperative event prepared and not read yet (ctx->mmap_changing) makes it -EAGAIN.
 *
 * Not modelled: batched moves of large folios without a split (later series), and a
 * pinned large folio that split_folio() cannot split: move_pages() retries the -EAGAIN without end
 * (until a fatal signal), which the model refuses as unsupported rather than hang.
 */

/** uffdio_move.mode: UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES and UFFDIO_MOVE_MODE_DONTWAKE. */
export interface UffdMoveMode {
  readonly allowSrcHoles: boolean;
  readonly dontwake: boolean;
}

/** vma_move_compatible(): no VM_PFNMAP, VM_IO, VM_HUGETLB or VM_MIXEDMAP. */
function moveCompatible(vma: Vma): boolean {
  return !vma.flags.pfnmap && !vma.flags.io && !vma.hugetlb && !vma.flags.mixedmap;
}

/** vma_is_anonymous(): private anonymous memory (shared anonymous memory is shmem in the model). */
function isAnonymous(vma: Vma): boolean {
  return vma.kind === 'anon' && !vma.hugetlb;
}

/** validate_move_areas(): why the two VMAs cannot take part in a move, or null. */
function moveAreasRefusal(ctx: UffdCtx, src: Vma, dst: Vma): string | null {
  const access = (v: Vma) => `${v.flags.read ? 'r' : '-'}${v.flags.write ? 'w' : '-'}${v.flags.exec ? 'x' : '-'}`;
  if (access(src) !== access(dst)) return `'${src.name}' (${access(src)}) and '${dst.name}' (${access(dst)}) differ in VM_ACCESS_FLAGS`;
  if ((src.flags.locked ?? false) !== (dst.flags.locked ?? false)) return `only one of '${src.name}' and '${dst.name}' is mlocked (VM_LOCKED)`;
  if (!src.flags.write) return `'${src.name}' is not writable ("only move between writable VMAs")`;
  if (!moveCompatible(src) || !moveCompatible(dst)) return `'${!moveCompatible(src) ? src.name : dst.name}' is VM_PFNMAP, VM_IO, VM_HUGETLB or VM_MIXEDMAP (vma_move_compatible)`;
  if (dst.uffd !== ctx) return `'${dst.name}' is not registered with this userfaultfd`;
  if (!isAnonymous(src) || !isAnonymous(dst)) return `'${!isAnonymous(src) ? src.name : dst.name}' is not anonymous memory ("Only allow moving across anonymous vmas")`;
  return null;
}

/**
 * ioctl(UFFDIO_MOVE) of `pages` base pages from virtual page `src` to `dst` of the ctx's mm
 * (`mm`: the caller's, current->mm). Returns the pages moved (uffdio_move.move / page size).
 */
export function* uffdMove(k: Kernel, ctx: UffdCtx, mm: Mm, dst: number, src: number, pages: number, mode: UffdMoveMode): Op<number> {
  const what = 'UFFDIO_MOVE';
  if (!kernelAtLeast(k.version, 6, 8)) throw new KernelError('EINVAL', `${what} does not exist before v6.8 (userfaultfd_ioctl(): unknown ioctl, -EINVAL)`);
  // userfaultfd_move(): "if (atomic_read(&ctx->mmap_changing)) return -EAGAIN"
  k.uffd.refuseWhileChanging(ctx, what);
  if (mm !== ctx.mm) throw new KernelError('EINVAL', `${what}: the userfaultfd belongs to ${ctx.mm.name}, the caller is ${mm.name} ("Do not allow cross-mm moves")`);
  if (pages <= 0) throw new KernelError('EINVAL', `${what}: zero length (validate_range)`);
  const perVmaLocks = kernelAtLeast(k.version, 6, 9);
  const lookupCode = perVmaLocks ? 'ENOENT' : 'EINVAL';
  const dstVma = k.vm.vmaAt(mm, dst);
  if (!dstVma) throw new KernelError(lookupCode, `${what}: nothing is mapped at the destination (page ${dst} of ${mm.name})`);
  // find_vma_and_prepare_anon() (v6.9+) prepares the destination's anon_vma before any check
  if (perVmaLocks && !dstVma.flags.shared && dstVma.kind === 'anon') k.vm.anonVmaPrepare(dstVma);
  const srcVma = k.vm.vmaAt(mm, src);
  if (!srcVma) throw new KernelError(lookupCode, `${what}: nothing is mapped at the source (page ${src} of ${mm.name})`);
  if (srcVma.flags.shared) throw new KernelError('EINVAL', `${what}: source '${srcVma.name}' is a shared mapping (VM_SHARED)`);
  if (src + pages > srcVma.start + srcVma.pages) throw new KernelError('EINVAL', `${what}: the source range runs past the end of '${srcVma.name}'`);
  if (dstVma.flags.shared) throw new KernelError('EINVAL', `${what}: destination '${dstVma.name}' is a shared mapping (VM_SHARED)`);
  if (dst + pages > dstVma.start + dstVma.pages) throw new KernelError('EINVAL', `${what}: the destination range runs past the end of '${dstVma.name}'`);
  const why = moveAreasRefusal(ctx, srcVma, dstVma);
  if (why) throw new KernelError('EINVAL', `${what}: ${why} (validate_move_areas)`);
  // v6.8: "if (unlikely(anon_vma_prepare(dst_vma)))" after the checks
  const dstAnonVma = k.vm.anonVmaPrepare(dstVma);
  // UFFDIO_MOVE_MODE_DONTWAKE: no wake_userfault() of the range afterwards
  if (mode.dontwake) k.uffd.holdWakes(ctx, dst, pages);

  const n = k.vm.pmdPages;
  let moved = 0;
  const stop = (code: 'EEXIST' | 'ENOENT' | 'EBUSY' | 'EFAULT', why: string): never => {
    if (moved === 0) throw new KernelError(code, `${what}: ${why}`);
    throw new KernelError('EAGAIN', `${what}: moved ${moved} page(s) (uffdio_move.move ${moved * k.mmu.basePageSize}), then ${code}: ${why}`);
  };
  /** folio_move_anon_rmap() + folio->index = linear_page_index(dst_vma, dst_addr) */
  const moveRmap = (head: number, to: number): void => {
    const s = k.pages.slot(head);
    k.pages.mapping[s] = anonMappingOf(dstAnonVma);
    k.pages.index[s] = dstVma.pgoff + (to - dstVma.start);
    k.emit('page.mapping', { pfn: head, mapping: `anon_vma ${dstAnonVma}`, index: k.pages.index[s]!, share: k.pages.share[s]! });
  };
  const exclusive = (pfn: number): boolean => (k.folios.flags(pfn) & PG.anonExclusive) !== 0;

  for (let s = src, d = dst; s < src + pages; ) {
    yield preempt(what);
    const where = `page ${s - srcVma.start} of '${srcVma.name}' to page ${d - dstVma.start} of '${dstVma.name}'`;
    const dstLeaf = k.vm.lookup(mm, d);
    // "If the dst_pmd is mapped as THP don't override it and just be strict"
    if (dstLeaf && dstLeaf.pte.level !== 'pte') stop('EEXIST', `${where}: a huge entry maps the destination`);
    const srcLeaf = k.vm.lookup(mm, s);
    if (srcLeaf && srcLeaf.pte.level === 'pmd') {
      const pmd = srcLeaf.pte;
      if (pmd.migration) throw KernelError.unsupported('EOPNOTSUPP', `${what}: a PMD migration entry at the source is not modelled`);
      const hugeZero = k.thp.isHugeZeroPmd(srcVma, srcLeaf);
      const head = hugeZero ? pmd.pfn : k.folios.folio(pmd.pfn);
      // move_splits_huge_pmd() || !pmd_none(dst_pmdval): a PTE table at the destination counts
      const split = s % n !== 0 || d % n !== 0 || src + pages - s < n || k.vm.pteTableAt(mm, d);
      if (split) {
        if (!hugeZero && !exclusive(head)) stop('EBUSY', `${where}: the THP is not exclusive to this mm (PageAnonExclusive)`);
        // split_huge_pmd(); "The folio will be split by move_pages_pte()"
        k.vm.splitHugePmd(srcVma, srcLeaf.base);
        continue;
      }
      yield* movePmd(k, srcVma, s, d, hugeZero, head, moveRmap, stop, where);
      s += n;
      d += n;
      moved += n;
      continue;
    }
    // src_pmd none: -ENOENT without ALLOW_SRC_HOLES, else __pte_alloc() of the source's table
    if (!srcLeaf && !k.vm.pteTableAt(mm, s)) {
      if (!mode.allowSrcHoles) stop('ENOENT', `${where}: the source is a hole (no page table) and ALLOW_SRC_HOLES is not set`);
      k.vm.allocPteTable(mm, s);
    }
    k.vm.allocPteTable(mm, d);
    // move_pages_pte()
    if (dstLeaf) stop('EEXIST', `${where}: the destination is populated`);
    if (!srcLeaf) {
      if (!mode.allowSrcHoles) stop('ENOENT', `${where}: the source page is not mapped and ALLOW_SRC_HOLES is not set`);
      s++;
      d++;
      moved++; // "nothing to do to move a hole"
      continue;
    }
    const pte = srcLeaf.pte;
    if (pte.migration) {
      // migration_entry_wait(), then -EAGAIN: move_pages() retries the page
      yield* migrationEntryWait(k, mm, s, pte, false);
      continue;
    }
    k.mmuNotify({ mm, start: s, end: s + 1, event: 'clear', owner: null });
    if (pte.swap) {
      // move_swap_pte(): "if (!pte_swp_exclusive(orig_src_pte)) return -EBUSY"
      if (!pte.swap.exclusive) stop('EBUSY', `${where}: the swap entry is not exclusive (pte_swp_exclusive)`);
      const cached = k.swap.cacheOf(pte.swap.slot);
      if (cached !== null && kernelAtLeast(k.version, 6, 15)) moveRmap(cached, d);
      k.vm.clear(mm, s, 'pte');
      k.vm.install(mm, d, { ...pte, swap: { ...pte.swap }, ...(kernelAtLeast(k.version, 6, 15) ? { softDirty: k.softDirtyArch } : {}) });
    } else if (nonPresent(pte)) {
      stop('EFAULT', `${where}: the source is a non-swap entry (device-private, device-exclusive or a PTE marker)`);
    } else if (pte.special && k.isZeroPfn(pte.pfn)) {
      // move_zeropage_pte(): the destination maps the zero page, read-only
      k.vm.clear(mm, s, 'pte');
      k.emit('tlb.flush', { mm: mm.name });
      k.vm.install(mm, d, k.faults.pte(k.zeroPfn, 'pte', { special: true }));
    } else {
      const page = k.vm.normalPage(pte, pte.pfn);
      if (page === null || !exclusive(page)) stop('EBUSY', `${where}: the page is not an exclusive anonymous page (PageAnonExclusive)`);
      const head = k.folios.folio(page!);
      if (k.folios.nr(head) > 1) {
        // split_folio() under the folio lock, then "goto retry" on the same address
        if (!k.thp.splitFolioHeld(head, 'move_pages_pte')) throw KernelError.unsupported('EAGAIN', `${what}: split_folio() of the large folio at ${where} fails (a reference beyond the mappings: pinned or GUP'd), and move_pages() retries -EAGAIN without end`);
        continue;
      }
      // move_present_pte()
      if (k.folios.maybeDmaPinned(head)) stop('EBUSY', `${where}: the page may be DMA-pinned (folio_maybe_dma_pinned)`);
      k.vm.clear(mm, s, 'pte'); // ptep_clear_flush()
      k.emit('tlb.flush', { mm: mm.name });
      moveRmap(head, d);
      const v615 = kernelAtLeast(k.version, 6, 15);
      const dirty = v615 ? pte.dirty : true;
      k.vm.install(mm, d, k.faults.pte(head, 'pte', { write: true, dirty, softDirty: (v615 || dirty) && k.softDirtyArch }));
    }
    s++;
    d++;
    moved++;
  }
  return moved;
}

/**
 * move_pages_huge_pmd(): the destination PMD is none. The huge zero PMD moves as it is (not
 * writable); an anonymous THP must be PageAnonExclusive and not maybe-DMA-pinned (-EBUSY), then
 * its PMD is cleared and flushed, its rmap follows it, and the destination PMD maps it writable
 * and dirty ("Follow mremap() behavior"); the deposited page table moves with it.
 */
function* movePmd(
  k: Kernel,
  srcVma: Vma,
  s: number,
  d: number,
  hugeZero: boolean,
  head: number,
  moveRmap: (head: number, to: number) => void,
  stop: (code: 'EBUSY', why: string) => never,
  where: string,
): Op {
  const mm = srcVma.mm;
  k.mmuNotify({ mm, start: s, end: s + k.vm.pmdPages, event: 'clear', owner: null });
  if (hugeZero) {
    k.vm.clear(mm, s, 'pmd');
    k.emit('tlb.flush', { mm: mm.name });
    k.vm.install(mm, d, k.faults.pte(k.hugeZeroPfn, 'pmd', { special: true }));
    return;
  }
  if ((k.folios.flags(head) & PG.anonExclusive) === 0) stop('EBUSY', `${where}: the THP is not exclusive to this mm (PageAnonExclusive)`);
  if (k.folios.maybeDmaPinned(head)) stop('EBUSY', `${where}: the THP may be DMA-pinned (folio_maybe_dma_pinned)`);
  k.vm.clear(mm, s, 'pmd'); // pmdp_huge_clear_flush()
  k.emit('tlb.flush', { mm: mm.name });
  moveRmap(head, d);
  k.vm.install(mm, d, k.faults.pte(head, 'pmd', { write: true, dirty: true }));
  yield* [];
}
