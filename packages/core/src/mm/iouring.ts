import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { GupHandle, Vma } from '../types.js';

export interface FixedBufferRequest {
  readonly name: string;
  readonly vma: Vma;
  readonly vpn: number;
  /** pages the iovec covers */
  readonly nr: number;
}

/**
 * io_uring fixed buffers (IORING_REGISTER_BUFFERS / IORING_UNREGISTER_BUFFERS) as
 * io_sqe_buffer_register() and io_buffer_unmap() do them per release: fs/io_uring.c up to v5.18,
 * io_uring/rsrc.c after, io_pin_pages() in io_uring/memmap.c from v6.10. Releases marked [M] are
 * taken from commit dates.
 */
export class IoUring {
  constructor(private readonly k: Kernel) {}

  /** Register one iovec as a fixed buffer: pin it, let the release refuse it, keep the pins it keeps. */
  *register(req: FixedBufferRequest): Op<GupHandle> {
    const k = this.k;
    // "arbitrary limit, but we need something": an iovec over 1 GiB is -EFAULT before anything is
    // pinned (io_sqe_buffer_register since v5.1; io_validate_user_buf_range() now)
    if (req.nr * k.mmu.basePageSize > 2 ** 30) throw new KernelError('EFAULT', `io_uring buffer '${req.name}' is ${req.nr} pages, over the 1 GiB limit of one registered buffer`);
    // io_pin_pages(): FOLL_WRITE | FOLL_LONGTERM (io_uring always pins writable) through
    // get_user_pages() (v5.4: a plain reference, `foll-pin` off), pin_user_pages() (v5.6 [M]) and
    // pin_user_pages_fast() from v6.10 (1943f96b3816 "io_uring: unify io_pin_pages()", for-6.10/io_uring):
    // GUP-fast then pins what it can without a VMA, and only the rest meets check_vma_flags()
    const h = yield* this.pinRange(req, kernelAtLeast(k.version, 6, 10));
    try {
      this.refuseFileBacked(h);
    } catch (e) {
      // "if we did partial map, or found file backed vmas, release any pages we did get"
      k.gupper.release(h, true);
      throw e;
    }
    k.gupper.keepOnly(h, this.keptPins(h.pfns));
    return h;
  }

  /**
   * io_pin_pages()'s GUP call, one VMA of the range after the other as __get_user_pages() walks
   * them (check_vma_flags() per VMA). GUP returns the number of pages pinned before a later VMA
   * fails, and io_pin_pages() turns a partial pin into -EFAULT ("partial map, or didn't map
   * anything") after unpinning it. Before v5.12 [M] (52650c8b466b "mm/gup: remove the vma allocation
   * from gup_longterm_locked()") the fs-dax refusal was check_dax_vmas() over every page pinned,
   * after the walk: an fs-dax VMA anywhere in the range is -EOPNOTSUPP for the whole call.
   * Approximation: GUP-fast's prefix is taken per VMA, not page by page within one.
   */
  private *pinRange(req: FixedBufferRequest, fast: boolean): Op<GupHandle> {
    const k = this.k;
    const mm = req.vma.mm;
    const done: GupHandle[] = [];
    for (let vpn = req.vpn; vpn < req.vpn + req.nr; ) {
      const vma = k.vm.vmaAt(mm, vpn);
      const nr = vma ? Math.min(vma.start + vma.pages, req.vpn + req.nr) - vpn : 0;
      try {
        if (!vma) throw new KernelError('EFAULT', `io_uring buffer '${req.name}': page ${vpn - req.vpn} of it is not mapped`);
        done.push(yield* k.gupper.gup({ name: req.name, vma, vpn, nr, pin: true, write: true, longterm: true, fast }));
      } catch (e) {
        if (!(e instanceof KernelError) || done.length === 0) throw e;
        for (const h of done) k.gupper.release(h, true);
        const daxLate = !kernelAtLeast(k.version, 5, 12) && [...done.map((h) => h.vma), ...(vma ? [vma] : [])].some((v) => k.isFsdaxVma(v));
        if (daxLate) throw new KernelError('EOPNOTSUPP', `io_uring buffer '${req.name}' covers an fs-dax mapping (__gup_longterm_locked: check_dax_vmas)`);
        throw new KernelError('EFAULT', `io_uring buffer '${req.name}': GUP pinned only ${done.reduce((n, h) => n + h.pfns.length, 0)} of ${req.nr} pages (${e.code} at page ${vpn - req.vpn}: ${e.message}); io_pin_pages() unpins a partial map and fails with -EFAULT`);
      }
      vpn += nr;
    }
    if (done.length === 1) return done[0]!;
    // one buffer over several VMAs: the pages in address order, as io_pin_pages() hands them on
    const first = done[0]!;
    return { ...first, pfns: done.flatMap((h) => h.pfns), owners: done.flatMap((h) => h.owners), released: false };
  }

  /** io_buffer_unmap(): unpin_user_page() of what the buffer kept (put_page() in v5.4). */
  unregister(h: GupHandle): void {
    this.k.gupper.release(h, true);
  }

  /**
   * io_uring's own check of the VMAs behind a pinned buffer, up to v6.4: "don't support file
   * backed memory". Gone in v6.5 [M] ("io_uring: rsrc: delegate VMA file-backed check to GUP",
   * with 8ac268436e6d): GUP's FOLL_LONGTERM checks decide alone from then on.
   */
  private refuseFileBacked(h: GupHandle): void {
    const k = this.k;
    if (kernelAtLeast(k.version, 6, 5)) return;
    const vmas: Vma[] = [];
    for (let vpn = h.vpn; vpn < h.vpn + h.pfns.length; vpn++) {
      const vma = k.vm.vmaAt(h.mm, vpn);
      if (vma && vmas[vmas.length - 1] !== vma) vmas.push(vma);
    }
    const first = vmFile(vmas[0]!);
    // vma_is_shmem() passes from v5.14 (40dad765c045 "io_uring: enable shmem/memfd memory registration", 5.14-rc1 pull)
    const shmemOk = kernelAtLeast(k.version, 5, 14);
    for (const vma of vmas) {
      const file = vmFile(vma);
      // edd478269640 "io_uring/rsrc: disallow multi-source reg buffers" (v6.3 [M]): one vm_file for all
      if (kernelAtLeast(k.version, 6, 3) && file !== first) {
        throw new KernelError('EINVAL', `io_uring buffer '${h.name}' spans mappings of different files ('${vmas[0]!.name}' and '${vma.name}'; io_pin_pages: multi-source buffers are refused)`);
      }
      if (file === null || isFileHugepages(vma) || (shmemOk && isShmem(vma))) continue;
      const what = shmemOk ? 'neither shmem nor hugetlbfs' : 'not hugetlbfs (shmem only from v5.14)';
      throw new KernelError('EOPNOTSUPP', `io_uring buffer '${h.name}': mapping '${vma.name}' is file-backed, ${what} (io_sqe_buffer_register: "don't support file backed memory")`);
    }
  }

  /**
   * Which of the pinned pages keep their pin (indexes into pfns); the others are unpinned at once.
   * From v6.3 [M] (57bebf807e2a "io_uring/rsrc: optimise registered huge pages") a buffer lying in
   * one large folio keeps one pin, its pages consecutive from v6.4 (776617db78c6, CVE-2023-2598);
   * from v6.12 [M] (a8edbb424b139 "io_uring/rsrc: enable multi-hugepage buffer coalescing")
   * io_check_coalesce_buffer() keeps one per folio of a buffer of whole equal-sized folios (the
   * last may stop short; that a partial first one must run to its folio's end is the 2025 form of
   * the check, modelled for every release from v6.12) and io_coalesce_buffer() drops the rest.
   * Order-0 pages keep one pin each.
   */
  private keptPins(pfns: readonly number[]): ReadonlySet<number> | null {
    const k = this.k;
    if (pfns.length < 2 || !kernelAtLeast(k.version, 6, 3)) return null;
    const folio = (pfn: number) => k.folios.folio(pfn);
    if (!kernelAtLeast(k.version, 6, 12)) {
      const head = folio(pfns[0]!);
      for (let i = 1; i < pfns.length; i++) {
        if (folio(pfns[i]!) !== head) return null;
        if (kernelAtLeast(k.version, 6, 4) && pfns[i] !== pfns[i - 1]! + 1) return null;
      }
      return new Set([0]);
    }
    // io_check_coalesce_buffer(): pages contiguous inside a folio, every folio after the first
    // starting at its page 0 with the first one's size, the first run reaching its folio's end
    const size = k.folios.nr(folio(pfns[0]!));
    if (size === 1) return null;
    const starts = [0];
    for (let i = 1; i < pfns.length; i++) {
      if (folio(pfns[i]!) === folio(pfns[i - 1]!) && pfns[i] === pfns[i - 1]! + 1) continue;
      const prevHead = folio(pfns[i - 1]!);
      if (starts.length === 1 ? pfns[i - 1]! - prevHead !== size - 1 : i - starts[starts.length - 1]! !== size) return null;
      const head = folio(pfns[i]!);
      if (k.folios.nr(head) !== size || pfns[i] !== head) return null;
      starts.push(i);
    }
    return new Set(starts);
  }
}

/** vm_file as an identity: the shmem / hugetlbfs / page-cache file, the DAX inode, the device; null for anonymous memory. */
function vmFile(vma: Vma): object | string | null {
  if (vma.cacheFile) return vma.cacheFile;
  if (vma.inode) return vma.inode;
  if (vma.device) return vma.device;
  // /dev/mem (mm/devmem.ts: a 'device' VMA without a device); GUP refuses its VM_PFNMAP first
  return vma.kind === 'device' ? 'dev/mem' : null;
}

/** is_file_hugepages(vma->vm_file): a hugetlbfs file (MFD_HUGETLB memfd, MAP_HUGETLB). */
function isFileHugepages(vma: Vma): boolean {
  return vma.hugetlb !== undefined || vma.cacheFile?.hugetlb !== undefined;
}

/** vma_is_shmem(): tmpfs, a shared anonymous mapping's file included; not a disk file's page cache. */
function isShmem(vma: Vma): boolean {
  return vma.kind === 'pagecache' && vma.cacheFile !== undefined && vma.cacheFile.hugetlb === undefined && vma.cacheFile.writeback === undefined;
}
