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
    // io_pin_pages(): FOLL_WRITE | FOLL_LONGTERM (io_uring always pins writable) through
    // get_user_pages() (v5.4: a plain reference, `foll-pin` off), pin_user_pages() (v5.6 [M]) and
    // pin_user_pages_fast() from v6.10 [M] ("io_uring: unify io_pin_pages()"): GUP-fast then pins
    // what it can without a VMA, and only the rest meets check_vma_flags()
    const fast = kernelAtLeast(k.version, 6, 10);
    const h = yield* k.gupper.gup({ name: req.name, vma: req.vma, vpn: req.vpn, nr: req.nr, pin: true, write: true, longterm: true, fast });
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
    // vma_is_shmem() passes from v5.14 [M] (40dad765c045 "io_uring: enable shmem/memfd memory registration")
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
   * from v6.12 [M] io_check_coalesce_buffer() keeps one per folio of a buffer of whole equal-sized
   * folios (a partial first one must run to its end; the last may stop short) and io_coalesce_buffer()
   * drops the rest. Order-0 pages keep one pin each.
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
  if (vma.shmem) return vma.shmem;
  if (vma.inode) return vma.inode;
  if (vma.device) return vma.device;
  // /dev/mem (mm/devmem.ts: a 'device' VMA without a device); GUP refuses its VM_PFNMAP first
  return vma.kind === 'device' ? 'dev/mem' : null;
}

/** is_file_hugepages(vma->vm_file): a hugetlbfs file (MFD_HUGETLB memfd, MAP_HUGETLB). */
function isFileHugepages(vma: Vma): boolean {
  return vma.hugetlb !== undefined || vma.shmem?.hugetlb !== undefined;
}

/** vma_is_shmem(): tmpfs, a shared anonymous mapping's file included; not a disk file's page cache. */
function isShmem(vma: Vma): boolean {
  return vma.kind === 'shmem' && vma.shmem !== undefined && vma.shmem.hugetlb === undefined && vma.shmem.writeback === undefined;
}
