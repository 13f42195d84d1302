import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { Mm, Pte, UffdCtx, UffdMsg, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { vmasIn, type Leaf } from './vm.js';
import { nonPresent } from './exclusive.js';
import { isWpMarker, poisonedMarker, uffdWpMarker } from './guard.js';

/**
 * userfaultfd(2) (fs/userfaultfd.c, mm/userfaultfd.c, include/linux/userfaultfd_k.h): a process
 * registers ranges of its memory with a userfaultfd, and faults there are handed to a handler
 * thread instead of being resolved by the kernel. What the model keeps:
 *
 * - UFFDIO_API (`userfaultfd_api()`): the features a release defines (UFFD_API_FEATURES), minus
 *   those the arch cannot back; asking for a feature the release does not define is EINVAL, and
 *   from v6.10 (1723f04caacb "Fix userfaultfd_api to return EINVAL as expected": the requested
 *   features are checked against the reported ones) a feature masked for the arch is EINVAL too; before, it was enabled
 *   silently.
 * - UFFDIO_REGISTER (`userfaultfd_register()`, `vma_can_userfault()` per release): MISSING on
 *   anonymous, shmem and hugetlb VMAs in every release here; WP from v5.7 (63b2d4174c4a) on
 *   anonymous VMAs, and from v5.19 on shmem and hugetlb (PTE markers, CONFIG_PTE_MARKER_UFFD_WP,
 *   which needs the arch's uffd-wp bit); MINOR on hugetlbfs from v5.13 and shmem from v5.14 where
 *   the arch selects HAVE_ARCH_USERFAULTFD_MINOR. Every other VMA — fs-dax and device-dax files
 *   (vma_is_dax), secretmem, a disk file's page cache, /dev/mem — is not anonymous, shmem or
 *   hugetlb: EINVAL in every release, except a WP-only registration with UFFD_FEATURE_WP_ASYNC
 *   (v6.7: "allow any memory type"). The VMA is split at the range's ends and gets
 *   VM_UFFD_* and the ctx (vm_userfaultfd_ctx).
 * - Faults (`handle_userfault()`): do_anonymous_page() / do_huge_pmd_anonymous_page() and
 *   shmem_get_folio_gfp() / hugetlb_no_page() on an empty entry of a VM_UFFD_MISSING VMA, a
 *   cached page in a VM_UFFD_MINOR one, and do_wp_page() / do_huge_pmd_wp_page() on a uffd-wp
 *   entry of a VM_UFFD_WP VMA (not for FAULT_FLAG_UNSHARE, v5.19+). A fault that may retry
 *   (FAULT_FLAG_ALLOW_RETRY: the CPU's, GUP's) sleeps until userfaultfd_must_wait() no longer
 *   holds — the handler's UFFDIO_COPY / ZEROPAGE / WRITEPROTECT changed the entry, or the range was
 *   unregistered — and the access is retried: the handler is the scenario's next step in another
 *   thread, and a sequential scenario's access `blocks`. A fault that may not retry (break_ksm()'s,
 *   up to v6.1) and any fault of a UFFD_FEATURE_SIGBUS ctx get VM_FAULT_SIGBUS.
 * - UFFDIO_COPY / UFFDIO_ZEROPAGE into anonymous and shmem VMAs, UFFDIO_CONTINUE into shmem
 *   (`mfill_atomic()`, `mfill_atomic_install_pte()`; MODE_WP for COPY v5.7 and CONTINUE v6.4),
 *   UFFDIO_POISON (v6.6: PTE_MARKER_POISONED), the same into hugetlbfs whole huge pages at a time
 *   (`mfill_atomic_hugetlb()`; ZEROPAGE is EINVAL there); the ioctls UFFDIO_REGISTER reports per
 *   release and memory (uffdio_register.ioctls); UFFDIO_WRITEPROTECT
 *   of anonymous VMAs and, from v5.19, shmem and hugetlb (`mwriteprotect_range()` ->
 *   change_protection(MM_CP_UFFD_WP[_RESOLVE]), hugetlb_change_protection()).
 * - PTE_MARKER_UFFD_WP (v5.19; the marker entry guard regions use too, mm/guard.ts): the
 *   protection of an empty entry of a shmem or hugetlb VMA (a huge one there) or, with
 *   UFFD_FEATURE_WP_UNPOPULATED (v6.4), of an anonymous one; zap keeps or leaves one for a file
 *   VMA, a fault on one maps the page uffd-wp.
 * - The uffd-wp bit of a swap entry (v5.7): kept by try_to_unmap_one(), restored write-protected by
 *   do_swap_page() and, from v5.19, by swapoff's unuse_pte() (mm/swap.ts), set and cleared by
 *   UFFDIO_WRITEPROTECT.
 * - fork: `dup_userfaultfd()` keeps VM_UFFD_* in the child only with UFFD_FEATURE_EVENT_FORK, and
 *   copy_present_pte() keeps a PTE's uffd-wp bit only where the VMA keeps VM_UFFD_WP (swap entries
 *   and markers likewise, per release); fork() then waits for the monitor to read
 *   UFFD_EVENT_FORK. read() (`uffd-read`) returns pagefault messages of sleeping faults, then fork
 *   events.
 *
 * - UFFD_FEATURE_WP_ASYNC (v6.7): a write fault on a uffd-wp entry is resolved by the kernel (the bit
 *   cleared, then the usual reuse or copy; `resolveAsync()`); PAGEMAP_SCAN reads and re-arms the
 *   bits (mm/pagemapscan.ts).
 *
 * UFFDIO_MOVE (v6.8) is mm/uffdmove.ts.
 *
 * - The other non-cooperative events (v4.11): UFFD_EVENT_REMAP from mremap() (without
 *   UFFD_FEATURE_EVENT_REMAP the moved VMA is unregistered instead), UFFD_EVENT_REMOVE from
 *   MADV_DONTNEED / MADV_FREE / MADV_REMOVE before they zap, UFFD_EVENT_UNMAP from munmap(); each
 *   syscall waits until its event is read, and while one (or a fork's) is pending ctx->mmap_changing
 *   makes the fill ioctls, UFFDIO_WRITEPROTECT and UFFDIO_MOVE -EAGAIN.
 *
 * Not modelled: THP split and migration of uffd-wp entries, UFFD_FEATURE_THREAD_ID.
 */

/** UFFD_FEATURE_* names the model knows, as scenarios spell them. */
export const UFFD_FEATURES = ['event-fork', 'missing-hugetlbfs', 'missing-shmem', 'sigbus', 'pagefault-flag-wp', 'minor-hugetlbfs', 'minor-shmem', 'wp-hugetlbfs-shmem', 'wp-unpopulated', 'poison', 'wp-async', 'move', 'event-remap', 'event-remove', 'event-unmap'] as const;
export type UffdFeature = (typeof UFFD_FEATURES)[number];
/** UFFDIO_REGISTER_MODE_* */
export const UFFD_MODES = ['missing', 'wp', 'minor'] as const;
export type UffdMode = (typeof UFFD_MODES)[number];
/** the reason handle_userfault() is called with */
type Reason = 'missing' | 'wp' | 'minor';
/** The range ioctls uffdio_register.ioctls can hold (_UFFDIO_WAKE 0x02 … _UFFDIO_POISON 0x08), as scenarios spell them. */
export const UFFD_RANGE_IOCTLS = ['wake', 'copy', 'zeropage', 'move', 'writeprotect', 'continue', 'poison'] as const;
export type UffdRangeIoctl = (typeof UFFD_RANGE_IOCTLS)[number];

/**
 * The release each ioctl entered UFFD_API_RANGE_IOCTLS (include/uapi/linux/userfaultfd.h), and
 * UFFD_API_RANGE_IOCTLS_BASIC — what a range with a hugetlb VMA reports — where it differs:
 * WRITEPROTECT v5.7 (v5.19 for hugetlb, with uffd-wp on hugetlbfs), CONTINUE v5.13, POISON v6.6
 * ("mm: userfaultfd: add new UFFDIO_POISON ioctl"), MOVE v6.8 ("userfaultfd: UFFDIO_MOVE uABI", never
 * for hugetlb); ZEROPAGE is never BASIC (no huge zero page for hugetlb).
 */
const IOCTL_SINCE: Record<UffdRangeIoctl, { all: readonly [number, number]; hugetlb: readonly [number, number] | null }> = {
  wake: { all: [4, 3], hugetlb: [4, 3] },
  copy: { all: [4, 3], hugetlb: [4, 3] },
  zeropage: { all: [4, 3], hugetlb: null },
  move: { all: [6, 8], hugetlb: null },
  writeprotect: { all: [5, 7], hugetlb: [5, 19] },
  continue: { all: [5, 13], hugetlb: [5, 13] },
  poison: { all: [6, 6], hugetlb: [6, 6] },
};

/** The release each feature entered UFFD_API_FEATURES (include/uapi/linux/userfaultfd.h). */
const FEATURE_SINCE: Record<UffdFeature, readonly [number, number]> = {
  'event-fork': [4, 11], // 893e26e61d04 "userfaultfd: non-cooperative: Add fork() event"
  // informational: MISSING registration of hugetlbfs and shmem works (v4.11, with the shmem and hugetlbfs support)
  'missing-hugetlbfs': [4, 11],
  'missing-shmem': [4, 11],
  sigbus: [4, 14], // 2d6d6f5a09a9 "mm: userfaultfd: add new UFFD_FEATURE_SIGBUS feature"
  'pagefault-flag-wp': [5, 7], // e06f1e1dd499 "userfaultfd: wp: enabled write protection in userfaultfd API"
  'minor-hugetlbfs': [5, 13], // 7677f7fd8be7 "userfaultfd: add minor fault registration mode"
  'minor-shmem': [5, 14], // 964ab0040ff9 "userfaultfd/shmem: advertise shmem minor fault support" (with c949b097ef2e)
  'wp-hugetlbfs-shmem': [5, 19], // b1f9e876862d "mm/uffd: enable write protection for shmem & hugetlbfs"
  'wp-unpopulated': [6, 4], // 2bad466cc9d9 "mm/uffd: UFFD_FEATURE_WP_UNPOPULATED": markers on empty anonymous entries too
  // "mm: userfaultfd: add new UFFDIO_POISON ioctl" (v6.6, hugetlbfs in the same series): no arch mask
  poison: [6, 6],
  // d61ea1cb0095 "userfaultfd: UFFD_FEATURE_WP_ASYNC" (v6.7): the kernel resolves uffd-wp write faults itself
  'wp-async': [6, 7],
  // adef440691ba "userfaultfd: UFFDIO_MOVE uABI" (v6.8): UFFDIO_MOVE exists (mm/uffdmove.ts); no arch mask
  move: [6, 8],
  // the non-cooperative events of v4.11: 72f87654c696 (mremap), 05ce77249d50 (MADV_DONTNEED, renamed
  // REMOVE with MADV_REMOVE), 897ab3e0c49e (munmap)
  'event-remap': [4, 11],
  'event-remove': [4, 11],
  'event-unmap': [4, 11],
};

export class Userfaultfd {
  private nextId = 1;
  /** the userfaultfd each process's uffd-* steps use: its last `uffd-api`, or the one a fork event handed the monitor */
  readonly byProcess = new Map<string, UffdCtx>();

  constructor(private readonly k: Kernel) {}

  private since(at: readonly [number, number] | undefined): boolean {
    return at !== undefined && kernelAtLeast(this.k.version, at[0], at[1]);
  }

  /** HAVE_ARCH_USERFAULTFD_WP in this release: PTEs have a uffd-wp bit (pte_mkuffd_wp is not a no-op). */
  archWp(): boolean {
    return this.since(this.k.mmu.uffdWpSince);
  }

  /** HAVE_ARCH_USERFAULTFD_MINOR in this release. */
  private archMinor(): boolean {
    return this.since(this.k.mmu.uffdMinorSince);
  }

  /** UFFD_API_FEATURES of the release (what it defines, whatever the arch). */
  private defined(f: UffdFeature): boolean {
    return kernelAtLeast(this.k.version, FEATURE_SINCE[f][0], FEATURE_SINCE[f][1]);
  }

  /**
   * The features UFFDIO_API reports (userfaultfd_api(): UFFD_API_FEATURES, then the masks):
   * MINOR_* without HAVE_ARCH_USERFAULTFD_MINOR (masked since they exist); PAGEFAULT_FLAG_WP
   * without HAVE_ARCH_USERFAULTFD_WP from v5.14 (00b151f21f39 "mm/userfaultfd: fail uffd-wp
   * registration if not supported"; before, it was reported on every arch and pte_mkuffd_wp() did
   * nothing there); WP_HUGETLBFS_SHMEM and WP_UNPOPULATED without PTE markers
   * (#ifndef CONFIG_PTE_MARKER_UFFD_WP: the arch bit).
   */
  available(): Set<UffdFeature> {
    const out = new Set<UffdFeature>();
    for (const f of UFFD_FEATURES) {
      if (!this.defined(f)) continue;
      if ((f === 'minor-hugetlbfs' || f === 'minor-shmem') && !this.archMinor()) continue;
      if (f === 'pagefault-flag-wp' && kernelAtLeast(this.k.version, 5, 14) && !this.archWp()) continue;
      if ((f === 'wp-hugetlbfs-shmem' || f === 'wp-unpopulated' || f === 'wp-async') && !this.archWp()) continue;
      out.add(f);
    }
    return out;
  }

  /** userfaultfd(O_CLOEXEC | O_NONBLOCK) then ioctl(UFFDIO_API, { api: UFFD_API, features }). */
  api(mm: Mm, features: readonly UffdFeature[]): UffdCtx {
    const available = this.available();
    for (const f of features) {
      if (!this.defined(f)) throw new KernelError('EINVAL', `UFFDIO_API: feature ${f} does not exist before v${FEATURE_SINCE[f].join('.')} (features & ~UFFD_API_FEATURES)`);
      // the requested features are checked against the reported ones only from v6.10 [M]
      if (!available.has(f) && kernelAtLeast(this.k.version, 6, 10)) throw new KernelError('EINVAL', `UFFDIO_API: feature ${f} is not available on ${this.k.mmu.arch} (features & ~uffdio_api.features)`);
    }
    return { id: this.nextId++, mm, features: new Set(features), released: false, mmapChanging: 0, msgs: [] };
  }

  /** The kinds of memory vma_can_userfault() knows: anonymous, shmem, hugetlb (or none of them). */
  private memoryKind(vma: Vma): 'anon' | 'shmem' | 'hugetlb' | null {
    if (vma.hugetlb) return 'hugetlb';
    if (vma.kind === 'anon') return 'anon';
    // vma_is_shmem(): tmpfs files, memfds and shared anonymous memory; not secretmem, not a disk file's page cache
    if (vma.kind === 'pagecache' && vma.cacheFile && !vma.cacheFile.secretmem && !vma.cacheFile.writeback) return 'shmem';
    return null; // fs-dax, device-dax, /dev/mem, secretmem, ext4/xfs page cache
  }

  /** vma_can_userfault(vma, vm_flags, wp_async) of the release: why not, or null. */
  private refusal(vma: Vma, modes: ReadonlySet<UffdMode>, wpAsync: boolean): string | null {
    // v6.7 (d61ea1cb0095): "If wp async enabled, and WP is the only mode enabled, allow any
    // memory type" -- fs-dax and device-dax files, a disk file's page cache, secretmem too
    if (wpAsync && modes.size === 1 && modes.has('wp')) return null;
    const kind = this.memoryKind(vma);
    if (kind === null) {
      const hint = this.defined('wp-async') && this.archWp() ? ': only a WP-only registration with UFFD_FEATURE_WP_ASYNC (uffd-api feature wp-async) takes any memory' : '';
      return `'${vma.name}' is neither anonymous, shmem nor hugetlb memory (vma_can_userfault)${hint}`;
    }
    if (modes.has('minor')) {
      // 7677f7fd8be7 (v5.13): hugetlbfs only; c949b097ef2e (v5.14): shmem too
      const ok = kind === 'hugetlb' || (kind === 'shmem' && kernelAtLeast(this.k.version, 5, 14));
      if (!ok) return `MINOR mode is for hugetlbfs${kernelAtLeast(this.k.version, 5, 14) ? ' and shmem' : ''} mappings only; '${vma.name}' is ${kind} memory (vma_can_userfault)`;
    }
    // v5.7-v5.18: "FIXME: add WP support to hugetlbfs and shmem"; v5.19+: without
    // CONFIG_PTE_MARKER_UFFD_WP (the arch's uffd-wp bit) only anonymous VMAs
    if (modes.has('wp') && kind !== 'anon' && !(kernelAtLeast(this.k.version, 5, 19) && this.archWp())) {
      return `WP mode on ${kind} memory needs PTE markers (v5.19, and an arch with a uffd-wp bit); '${vma.name}' is refused (vma_can_userfault)`;
    }
    return null;
  }

  /**
   * UFFDIO_REGISTER of [start, end) (userfaultfd_register()): the modes first, then every VMA of the
   * range is checked before any changes; then each is split at the range's ends and gets the flags.
   * Returns uffdio_register.ioctls: UFFD_API_RANGE_IOCTLS, or _BASIC when a VMA of the range is
   * hugetlb ("Note vmas containing huge pages": basic_ioctls), less WRITEPROTECT without MODE_WP
   * ("userfaultfd: wp: declare _UFFDIO_WRITEPROTECT conditionally", v5.7) and CONTINUE without
   * MODE_MINOR (v5.13: "CONTINUE ioctl is only supported for MINOR ranges").
   */
  register(ctx: UffdCtx, start: number, end: number, modes: ReadonlySet<UffdMode>): UffdRangeIoctl[] {
    const k = this.k;
    const mm = ctx.mm;
    if (modes.size === 0) throw new KernelError('EINVAL', 'UFFDIO_REGISTER: no mode given');
    if (modes.has('wp')) {
      // v5.4: "FIXME: remove the below error constraint by implementing the wprotect tracking mode"
      if (!kernelAtLeast(k.version, 5, 7)) throw new KernelError('EINVAL', 'UFFDIO_REGISTER_MODE_WP is not implemented before v5.7');
      // v5.14+ (00b151f21f39): "#ifndef CONFIG_HAVE_ARCH_USERFAULTFD_WP goto out" (before, accepted and inert)
      if (kernelAtLeast(k.version, 5, 14) && !this.archWp()) throw new KernelError('EINVAL', `UFFDIO_REGISTER_MODE_WP: ${k.mmu.arch} has no uffd-wp PTE bit in ${k.version} (HAVE_ARCH_USERFAULTFD_WP)`);
    }
    if (modes.has('minor')) {
      if (!kernelAtLeast(k.version, 5, 13)) throw new KernelError('EINVAL', 'UFFDIO_REGISTER_MODE_MINOR does not exist before v5.13');
      if (!this.archMinor()) throw new KernelError('EINVAL', `UFFDIO_REGISTER_MODE_MINOR: ${k.mmu.arch} does not select HAVE_ARCH_USERFAULTFD_MINOR`);
    }
    // for_each_vma_range(): in address order
    const vmas = vmasIn(mm, start, end);
    // find_vma_prev(): no VMA at or above start is -ENOMEM; the first one past the range -EINVAL
    if (!mm.vmas.some((v) => v.start + v.pages > start)) throw new KernelError('ENOMEM', `UFFDIO_REGISTER: nothing is mapped at or above page ${start} of ${mm.name}`);
    if (vmas.length === 0) throw new KernelError('EINVAL', `UFFDIO_REGISTER: no VMA in the range (pages ${start}..${end - 1} of ${mm.name})`);
    const first = vmas[0]!;
    for (const vma of vmas) {
      const why = this.refusal(vma, modes, ctx.features.has('wp-async'));
      if (why) throw new KernelError('EINVAL', `UFFDIO_REGISTER: ${why}`);
      // a hugetlb VMA: the range's start (first VMA) and end must be huge-page aligned
      if (vma.hugetlb) {
        const hp = vma.hugetlb.pages;
        if ((vma === first && (start - vma.start) % hp !== 0) || (end <= vma.start + vma.pages && (end - vma.start) % hp !== 0)) {
          throw new KernelError('EINVAL', `UFFDIO_REGISTER: the range is not aligned to '${vma.name}''s huge page size`);
        }
      }
      // "Check that this vma isn't already owned by a different userfaultfd"
      if (vma.uffd && vma.uffd !== ctx) throw new KernelError('EBUSY', `UFFDIO_REGISTER: '${vma.name}' is registered with another userfaultfd`);
    }
    for (const v of vmas) {
      const vma = k.vm.isolate(v, Math.max(start, v.start), Math.min(end, v.start + v.pages));
      // new_flags = (vma->vm_flags & ~__VM_UFFD_FLAGS) | vm_flags
      clearUffd(vma);
      if (modes.has('missing')) vma.flags.uffdMissing = true;
      if (modes.has('wp')) vma.flags.uffdWp = true;
      if (modes.has('minor')) vma.flags.uffdMinor = true;
      vma.uffd = ctx;
      k.vm.mergeAround(vma);
    }
    const basic = vmas.some((v) => v.hugetlb !== undefined);
    return UFFD_RANGE_IOCTLS.filter((name) => {
      const since = basic ? IOCTL_SINCE[name].hugetlb : IOCTL_SINCE[name].all;
      if (since === null || !kernelAtLeast(k.version, since[0], since[1])) return false;
      if (name === 'writeprotect') return modes.has('wp');
      if (name === 'continue') return modes.has('minor');
      return true;
    });
  }

  /**
   * close() of the last reference (userfaultfd_release()): every VMA of the ctx is unregistered
   * (VM_UFFD_* cleared, merged back), ctx->released is set and every waiter is woken — a sleeping
   * fault retries and the kernel resolves it (a later handle_userfault() on a released ctx is
   * VM_FAULT_NOPAGE), a fork waiting on its event returns.
   */
  close(ctx: UffdCtx): void {
    const k = this.k;
    ctx.released = true;
    for (const vma of [...ctx.mm.vmas]) {
      if (vma.uffd !== ctx) continue;
      // "mm/userfaultfd: reset ptes when close() for wr-protected ones" (April 2024, Fixes
      // f369b07c8614; v6.9 [M]): close resets the protection as UFFDIO_UNREGISTER does
      if (vma.flags.uffdWp && kernelAtLeast(k.version, 6, 9)) this.changeProtection(vma, vma.start, vma.start + vma.pages, false);
      clearUffd(vma);
      k.vm.mergeAround(vma);
    }
    ctx.msgs.length = 0;
    for (const [name, c] of this.byProcess) if (c === ctx) this.byProcess.delete(name);
  }

  /** UFFDIO_UNREGISTER (userfaultfd_unregister()): the flags go, and faults waiting there wake (they see no ctx). */
  unregister(ctx: UffdCtx, start: number, end: number): void {
    const k = this.k;
    const mm = ctx.mm;
    if (!mm.vmas.some((v) => v.start + v.pages > start)) throw new KernelError('ENOMEM', `UFFDIO_UNREGISTER: nothing is mapped at or above page ${start} of ${mm.name}`);
    // for_each_vma_range(): in address order
    const vmas = vmasIn(mm, start, end);
    if (vmas.length === 0) throw new KernelError('EINVAL', 'UFFDIO_UNREGISTER: no VMA in the range');
    // vma_can_userfault(cur, cur->vm_flags, wp_async): a WP-only registration of any memory with WP_ASYNC (v6.7)
    const wpOnly = (v: Vma) => ctx.features.has('wp-async') && v.flags.uffdWp === true && !v.flags.uffdMissing && !v.flags.uffdMinor;
    for (const vma of vmas) if (this.memoryKind(vma) === null && !wpOnly(vma)) throw new KernelError('EINVAL', `UFFDIO_UNREGISTER: '${vma.name}' cannot be registered at all (vma_can_userfault)`);
    for (const v of vmas) {
      if (!v.uffd) continue;
      const vma = k.vm.isolate(v, Math.max(start, v.start), Math.min(end, v.start + v.pages));
      // f369b07c8614 "mm/uffd: reset write protection when unregister with wp-mode" (v6.0):
      // uffd_wp_range(enable_wp = false) over the VMA first, so no uffd-wp bit or marker outlives it
      if (vma.flags.uffdWp && kernelAtLeast(k.version, 6, 0)) this.changeProtection(vma, vma.start, vma.start + vma.pages, false);
      clearUffd(vma);
      k.vm.mergeAround(vma);
    }
  }

  /**
   * find_dst_vma(): the VMA holding all of [start, start + pages), registered with a userfaultfd
   * ("Check the vma is registered in uffd"), else -ENOENT.
   */
  private dstVma(ctx: UffdCtx, start: number, pages: number, what: string): Vma {
    const vma = this.k.vm.vmaAt(ctx.mm, start);
    if (!vma || start + pages > vma.start + vma.pages || !vma.uffd) throw new KernelError('ENOENT', `${what}: pages ${start}..${start + pages - 1} of ${ctx.mm.name} are not inside one VMA registered with a userfaultfd`);
    return vma;
  }

  /**
   * UFFDIO_COPY (mcopy_atomic() -> mcopy_atomic_pte() / mfill_atomic_pte_copy()): each page gets a
   * new page holding `data` (anonymous, or page cache in a shared shmem mapping: `fill()`), unless
   * something is mapped there already (-EEXIST). For an anonymous page the entry is:
   * - dirty: only with VM_WRITE up to v5.6 ("pte_mkwrite(pte_mkdirty())"); always from v5.7
   *   (292924b26024 "userfaultfd: wp: apply _PAGE_UFFD_WP bit": pte_mkdirty(mk_pte())), and
   *   unconditionally for every memory type from v5.16 (9ae0f87d009c);
   * - writable only with VM_WRITE and without UFFDIO_COPY_MODE_WP — never in a PROT_READ VMA
   *   (mkdirty.c test_uffdio_copy);
   * - uffd-wp with MODE_WP: up to v5.17 only inside the VM_WRITE branch, from v5.18 [M] whatever
   *   VM_WRITE says (Nadav Amit's "userfaultfd: mark uffd_wp regardless of VM_WRITE flag", Fixes
   *   292924b26024).
   * Returns the pages copied; a partial copy is -EAGAIN after the pages it placed (userfaultfd_copy()).
   */
  *copy(ctx: UffdCtx, start: number, pages: number, data: string, wp: boolean): Op<number> {
    if (wp && !kernelAtLeast(this.k.version, 5, 7)) throw new KernelError('EINVAL', 'UFFDIO_COPY_MODE_WP does not exist before v5.7');
    return yield* this.fill(ctx, start, pages, 'copy', data, wp);
  }

  /** UFFDIO_ZEROPAGE (mfill_zeropage_pte()): the shared zero page, special and read-only; hugetlb -EINVAL. */
  *zeropage(ctx: UffdCtx, start: number, pages: number): Op<number> {
    return yield* this.fill(ctx, start, pages, 'zeropage', '', false);
  }

  /**
   * UFFDIO_POISON (v6.6; an unknown ioctl, -EINVAL, before): mfill_atomic_pte_poison() /
   * hugetlb_mfill_atomic_pte(MFILL_ATOMIC_POISON) put a PTE_MARKER_POISONED in each empty entry
   * ("Refuse to overwrite any PTE, even a PTE marker (e.g. UFFD WP)": -EEXIST; past i_size of a
   * shmem file -EFAULT), and the faults waiting there wake: the retried access meets the marker,
   * VM_FAULT_HWPOISON (handle_pte_marker(); hugetlb_fault(): VM_FAULT_HWPOISON_LARGE), SIGBUS.
   */
  *poison(ctx: UffdCtx, start: number, pages: number): Op<number> {
    if (!kernelAtLeast(this.k.version, 6, 6)) throw new KernelError('EINVAL', 'UFFDIO_POISON does not exist before v6.6 (unknown ioctl)');
    return yield* this.fill(ctx, start, pages, 'poison', '', false);
  }

  /**
   * UFFDIO_CONTINUE (v5.13 hugetlbfs, v5.14 shmem; mfill_atomic_pte_continue(), mcontinue_atomic_pte()
   * before v6.5): map the page the page cache already holds (shmem_get_folio(SGP_NOALLOC): none is
   * -EFAULT; hugetlb: filemap_lock_hugetlb_folio(), none -EFAULT), resolving a MINOR fault; -EEXIST
   * where something is mapped. Anonymous memory is -EINVAL ("!vma_is_shmem() &&
   * MFILL_ATOMIC_CONTINUE"). `wp`: UFFDIO_CONTINUE_MODE_WP, Axel Rasmussen's "mm: userfaultfd: add
   * UFFDIO_CONTINUE_MODE_WP to install WP PTEs" (v6.4): userfaultfd_continue() passes
   * MFILL_ATOMIC_WP, the entry is mapped read-only and uffd-wp as UFFDIO_COPY_MODE_WP does; before
   * v6.4 the mode bit is unknown ("mode & ~UFFDIO_CONTINUE_MODE_DONTWAKE": -EINVAL).
   */
  *continueMinor(ctx: UffdCtx, start: number, pages: number, wp = false): Op<number> {
    if (!kernelAtLeast(this.k.version, 5, 13)) throw new KernelError('EINVAL', 'UFFDIO_CONTINUE does not exist before v5.13 (unknown ioctl)');
    if (wp && !kernelAtLeast(this.k.version, 6, 4)) throw new KernelError('EINVAL', 'UFFDIO_CONTINUE_MODE_WP does not exist before v6.4 (mode & ~UFFDIO_CONTINUE_MODE_DONTWAKE)');
    return yield* this.fill(ctx, start, pages, 'continue', '', wp);
  }

  /**
   * mfill_atomic() for COPY, ZEROPAGE and CONTINUE, page by page. Where the pages come from:
   * anonymous memory and a private shmem mapping ("!(dst_vma->vm_flags & VM_SHARED)") get a new
   * anonymous page (mcopy_atomic_pte(); a private shmem mapping checks i_size first: -EFAULT past
   * it) or the zero page; a shared shmem mapping gets a page added to the page cache
   * (shmem_mfill_atomic_pte(): -EEXIST when the cache has it, -EFAULT past i_size; ZEROPAGE a zeroed
   * one) or, for CONTINUE, the cached page. mfill_atomic_install_pte() (v5.14; the same rules
   * before) maps it: writable with VM_WRITE, except a page-cache page in a private mapping and a
   * MODE_WP copy; dirty — an anonymous page from v5.7 always (with VM_WRITE only before), a
   * page-cache page when writable, and every page from v5.16 (9ae0f87d009c); uffd-wp with MODE_WP
   * (`wp`: MFILL_ATOMIC_WP of COPY, v5.7, and CONTINUE, v6.4), which also keeps it read-only.
   */
  private *fill(ctx: UffdCtx, start: number, pages: number, mode: 'copy' | 'zeropage' | 'continue' | 'poison', data: string, wp: boolean): Op<number> {
    const k = this.k;
    const what = mode === 'zeropage' ? 'UFFDIO_ZEROPAGE' : mode === 'continue' ? 'UFFDIO_CONTINUE' : mode === 'poison' ? 'UFFDIO_POISON' : 'UFFDIO_COPY';
    this.refuseWhileChanging(ctx, what);
    const vma = this.dstVma(ctx, start, pages, what);
    // "if ((flags & MFILL_ATOMIC_WP) && !(dst_vma->vm_flags & VM_UFFD_WP)) goto out_unlock" (-EINVAL),
    // before the hugetlb branch
    if (wp && !vma.flags.uffdWp) throw new KernelError('EINVAL', `${what} with MODE_WP into '${vma.name}', which is not registered for WP`);
    const kind = this.memoryKind(vma);
    if (kind === 'hugetlb') {
      if (mode === 'zeropage') throw new KernelError('EINVAL', `UFFDIO_ZEROPAGE into hugetlb mapping '${vma.name}': there is no huge zero page for hugetlb (mfill_atomic_hugetlb)`);
      return yield* this.fillHugetlb(vma, start, pages, mode, data, wp, what);
    }
    if (mode === 'continue' && kind !== 'shmem') throw new KernelError('EINVAL', `UFFDIO_CONTINUE into '${vma.name}', which is not shmem`);
    const file = kind === 'shmem' ? vma.cacheFile! : null;
    const inCache = file !== null && (vma.flags.shared || mode === 'continue');
    let done = 0;
    // an error after some pages were placed: the ioctl returns what it did and -EAGAIN
    const stop = (code: 'EEXIST' | 'EFAULT', why: string): never => {
      if (done === 0) throw new KernelError(code, `${what}: ${why}`);
      throw new KernelError('EAGAIN', `${what}: placed ${done} page(s), then ${why} (the ioctl's count is ${done} pages)`);
    };
    for (let vpn = start; vpn < start + pages; vpn++) {
      yield preempt(what);
      const where = `page ${vpn - vma.start} of '${vma.name}'`;
      if (mode === 'poison') {
        // mfill_file_over_size() first, then any entry at all is -EEXIST
        if (file && vma.pgoff + (vpn - vma.start) >= file.pages) stop('EFAULT', `${where} is past the end of file '${file.name}'`);
        if (k.vm.lookup(vma.mm, vpn)) stop('EEXIST', `${where} is not empty (UFFDIO_POISON overwrites no entry, not even a marker)`);
        k.vm.install(vma.mm, vpn, poisonedMarker('pte'));
        done++;
        continue;
      }
      // mfill_atomic_install_pte() / mfill_atomic_pte(): "if (!pte_none(*dst_pte))" -EEXIST (a huge
      // PMD too); from v5.19 pte_none_mostly(): a uffd-wp marker is overwritten (the copy is not
      // uffd-wp unless MODE_WP asks)
      const there = k.vm.lookup(vma.mm, vpn);
      if (there && !isWpMarker(there.pte)) stop('EEXIST', `${where} is already mapped`);
      const index = vma.pgoff + (vpn - vma.start);
      if (file && index >= file.pages) stop('EFAULT', `${where} is past the end of file '${file.name}'`);
      let pfn: number;
      if (inCache) {
        if (mode === 'continue') {
          if (!file!.cache.has(index)) stop('EFAULT', `${where}: the page cache has no page to continue with (SGP_NOALLOC)`);
        } else if (file!.cache.has(index)) stop('EEXIST', `${where}: the page cache has the page already (shmem_add_to_page_cache)`);
        pfn = k.pageCache.getFolio(file!, index, what);
        if (mode !== 'continue') k.pages.data.set(pfn, data);
      } else if (mode === 'zeropage') {
        k.vm.install(vma.mm, vpn, k.faults.pte(k.zeroPfn, 'pte', { special: true }));
        done++;
        continue;
      } else {
        // anon_vma_prepare(), then a new anonymous page, exclusive (folio_add_new_anon_rmap)
        const anon = k.ram.allocAnon(k.vm.anonVmaPrepare(vma), data);
        if (anon === null) throw new KernelError('ENOMEM', `${what}: out of memory`);
        pfn = anon;
      }
      // folio_add_file_rmap_pte() / folio_add_new_anon_rmap(): the mapping counts on the folio, a
      // PMD-order shmem folio (collapse_file()) included, where zap takes it back
      k.folios.addMap(k.folios.folio(pfn));
      const writable = vma.flags.write && !wp && !(inCache && !vma.flags.shared);
      const dirty = kernelAtLeast(k.version, 5, 16) || (inCache ? writable : kernelAtLeast(k.version, 5, 7) || vma.flags.write);
      const uffdWp = wp && this.archWp() && (vma.flags.write || kernelAtLeast(k.version, 5, 18));
      k.vm.install(vma.mm, vpn, k.faults.pte(pfn, 'pte', { write: writable, dirty, ...(uffdWp ? { uffdWp } : {}) }));
      done++;
    }
    return done;
  }

  /**
   * mfill_atomic_hugetlb() (__mcopy_atomic_hugetlb() before v6.5): dst and len must be multiples
   * of the VMA's huge page size ("if (dst_start & (vma_hpagesize - 1) || len & (vma_hpagesize -
   * 1))": -EINVAL); then each huge page is filled whole (Hugetlb.mfill). Returns the base pages
   * placed; an error after some is -EAGAIN as for small pages.
   */
  private *fillHugetlb(vma: Vma, start: number, pages: number, mode: 'copy' | 'continue' | 'poison', data: string, wp: boolean, what: string): Op<number> {
    const hp = vma.hugetlb!.pages;
    if ((start - vma.start) % hp !== 0 || pages % hp !== 0) {
      throw new KernelError('EINVAL', `${what}: the range (${pages} base pages at page ${start - vma.start} of '${vma.name}') is not aligned to its ${hp}-page huge pages (mfill_atomic_hugetlb)`);
    }
    let done = 0;
    for (let base = start; base < start + pages; base += hp) {
      yield preempt(what);
      try {
        this.k.hugetlb.mfill(vma, base, mode, data, wp, what);
      } catch (e) {
        if (done === 0 || !(e instanceof KernelError)) throw e;
        throw new KernelError('EAGAIN', `${what}: placed ${done} page(s), then ${e.message} (the ioctl's count is ${done} pages)`);
      }
      done += hp;
    }
    return done;
  }

  /**
   * UFFDIO_WRITEPROTECT (mwriteprotect_range()): the range must be registered for WP — up to v6.3
   * inside one VMA (find_dst_vma()), from v6.4 (Muhammad Usama Anjum's "mm/userfaultfd: support WP
   * on multiple VMAs") every VMA of it — and, up to v5.18, anonymous; from v5.19 shmem and
   * hugetlb too (hugetlb by whole huge pages: "if ((start & page_mask) || (len & page_mask))"
   * -EINVAL). change_protection() (change_pte_range()) with
   * MM_CP_UFFD_WP write-protects each present entry and sets its uffd-wp bit (nothing where the
   * arch has none), sets the bit of a swap entry (pte_swp_mkuffd_wp, v5.7), and where markers are
   * used (`useMarkers()`) puts a PTE_MARKER_UFFD_WP in each empty entry (v5.19: change_pmd_prepare()
   * allocates the page tables for it). MM_CP_UFFD_WP_RESOLVE clears the bits, drops uffd-wp markers
   * ("the next page fault will trigger without uffd trapping") and "leaves the write bit to be
   * handled by the PF interrupt handler", except that from v6.0 (64fe24a3e05e, feature
   * mprotect-anon-writable) MM_CP_TRY_CHANGE_WRITABLE maps what can_change_pte_writable() allows
   * writable at once. Faults waiting on the range then retry (wake_userfault()).
   */
  writeprotect(ctx: UffdCtx, start: number, pages: number, enable: boolean): void {
    const k = this.k;
    if (!kernelAtLeast(k.version, 5, 7)) throw new KernelError('EINVAL', 'UFFDIO_WRITEPROTECT does not exist before v5.7 (unknown ioctl)');
    this.refuseWhileChanging(ctx, 'UFFDIO_WRITEPROTECT');
    const end = start + pages;
    const vmas = kernelAtLeast(k.version, 6, 4)
      ? vmasIn(ctx.mm, start, end)
      : [this.dstVma(ctx, start, pages, 'UFFDIO_WRITEPROTECT')];
    if (vmas.length === 0) throw new KernelError('ENOENT', 'UFFDIO_WRITEPROTECT: nothing is mapped in the range');
    // mwriteprotect_range() checks and changes VMA by VMA, in address order: a VMA that refuses
    // ends the call with the VMAs below it already changed (uffd_wp_range(), each with its own
    // mmu_gather and TLB flush)
    for (const vma of vmas) {
      if (!vma.flags.uffdWp) throw new KernelError('ENOENT', `UFFDIO_WRITEPROTECT: '${vma.name}' is not registered for WP (userfaultfd_wp)`);
      const kind = this.memoryKind(vma);
      if (kind !== 'anon' && !kernelAtLeast(k.version, 5, 19)) throw new KernelError('ENOENT', `UFFDIO_WRITEPROTECT: '${vma.name}' is not anonymous (vma_is_anonymous)`);
      const hp = vma.hugetlb?.pages ?? 1;
      if ((start - vma.start) % hp !== 0 || pages % hp !== 0) throw new KernelError('EINVAL', `UFFDIO_WRITEPROTECT: the range is not aligned to the huge pages of '${vma.name}' (mwriteprotect_range)`);
      if (this.changeProtection(vma, Math.max(start, vma.start), Math.min(end, vma.start + vma.pages), enable)) k.emit('tlb.flush', { mm: ctx.mm.name });
    }
  }

  /**
   * change_protection(MM_CP_UFFD_WP or _RESOLVE) over pages [s, e) of one VMA; true when an entry
   * changed. A hugetlb VMA goes by huge pages (hugetlb_change_protection(), v5.19): a huge entry
   * gets or loses the bit the same way — except that the resolve gives it vm_page_prot
   * (huge_pte_modify(): writable in a shared writable mapping until v6.2 made a VM_UFFD_WP one
   * write-notify) — and an empty one a huge marker; until v6.2 ("mm/hugetlb: pre-allocate pgtable pages for uffd
   * wr-protects") only where hugetlb_walk() found a page table (the model: where another entry of
   * the mm lies in the same PUD-sized region).
   */
  private changeProtection(vma: Vma, s: number, e: number, enable: boolean): boolean {
    const k = this.k;
    const bit = this.archWp();
    const tryWritable = k.features['mprotect-anon-writable'] !== 'off';
    const markers = enable && this.useMarkers(vma);
    const huge = vma.hugetlb;
    const step = huge ? huge.pages : 1;
    let changed = false;
    for (let vpn = s; vpn < e; ) {
      let leaf = k.vm.lookup(vma.mm, vpn);
      // change_pmd_range(): "if (next - addr != HPAGE_PMD_SIZE || uffd_wp_protect_file(vma,
      // cp_flags))" __split_huge_pmd() (v5.19): a file VMA's huge PMD -- shmem, fs-dax, device-dax
      // -- is split (zapped: the pages stay in the file) before the protection, which then puts
      // markers in the new PTE table
      if (enable && leaf?.pte.level === 'pmd' && !huge && vma.kind !== 'anon' && kernelAtLeast(k.version, 5, 19)) {
        k.vm.splitHugePmd(vma, leaf.base);
        leaf = k.vm.lookup(vma.mm, vpn);
      }
      if (!leaf) {
        if (markers && (!huge || kernelAtLeast(k.version, 6, 2) || this.hugeTableAt(vma, vpn))) {
          k.vm.install(vma.mm, vpn, uffdWpMarker(huge ? huge.level : 'pte'));
          changed = true;
        }
        vpn += step;
        continue;
      }
      vpn = leaf.base + leaf.pages;
      const pte = leaf.pte;
      if (pte.marker) {
        // "If this is uffd-wp pte marker and we'd like to unprotect it, drop it"
        if (!enable && isWpMarker(pte)) {
          k.vm.clear(vma.mm, leaf.base, pte.level);
          changed = true;
        }
        continue;
      }
      if (pte.swap) {
        // pte_swp_mkuffd_wp() / pte_swp_clear_uffd_wp() of the swap entry
        if (enable && bit) pte.uffdWp = true;
        else delete pte.uffdWp;
        continue;
      }
      if (nonPresent(pte)) continue;
      const before = { write: pte.write, wp: pte.uffdWp ?? false };
      if (enable) {
        pte.write = false;
        if (bit) pte.uffdWp = true;
      } else {
        delete pte.uffdWp;
        if (huge) pte.write = vma.flags.shared && vma.flags.write && !k.mprotector.wantsWritenotify(vma);
        // vma_wants_manual_pte_write_upgrade(): a private VMA with VM_WRITE, a shared one with
        // writenotify (a VM_UFFD_WP one from v6.2)
        else if (tryWritable && (vma.flags.shared ? k.mprotector.wantsWritenotify(vma) : vma.flags.write) && !pte.write && k.mprotector.canChangePteWritable(vma, leaf)) pte.write = true;
      }
      if (pte.write === before.write && (pte.uffdWp ?? false) === before.wp) continue;
      changed = true;
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: pte.pfn, level: pte.level, write: pte.write, devmap: pte.devmap, special: pte.special });
    }
    return changed;
  }

  /** Whether a page table would hold the huge entry at vpn: some entry of the mm in the same PUD-sized region. */
  hugeTableAt(vma: Vma, vpn: number): boolean {
    const span = this.k.vm.pudPages || this.k.vm.pmdPages * 512;
    const from = vpn - (vpn % span);
    return this.k.vm.leavesIn(vma.mm, from, from + span).length > 0;
  }

  /**
   * userfaultfd_wp_use_markers(): a VM_UFFD_WP VMA that is not anonymous (v5.19, b1f9e876862d's
   * series: "For file-backed mem, we need to be able to wr-protect a none pte, because even if the
   * pte is none, the page/swap cache could exist"), or an anonymous one whose ctx has
   * UFFD_FEATURE_WP_UNPOPULATED (v6.4). Markers exist only with the arch's uffd-wp bit.
   */
  useMarkers(vma: Vma): boolean {
    if (!vma.flags.uffdWp || !this.archWp() || !kernelAtLeast(this.k.version, 5, 19)) return false;
    return vma.kind !== 'anon' || vma.uffd?.features.has('wp-unpopulated') === true;
  }

  /** userfaultfd_wp_async(): the VMA's userfaultfd has UFFD_FEATURE_WP_ASYNC (v6.7). */
  wpAsync(vma: Vma): boolean {
    return vma.uffd?.features.has('wp-async') === true;
  }

  /**
   * uffd_wp_range(vma, start, len, true): change_protection(MM_CP_UFFD_WP) over pages [s, e) of one
   * VMA, as UFFDIO_WRITEPROTECT does it and PAGEMAP_SCAN's PM_SCAN_WP_MATCHING over a page-table
   * hole (mm/pagemapscan.ts); true when an entry changed.
   */
  wpRange(vma: Vma, s: number, e: number): boolean {
    return this.changeProtection(vma, s, e, true);
  }

  /**
   * The async resolve of a write fault on a uffd-wp entry (UFFD_FEATURE_WP_ASYNC, v6.7): do_wp_page()
   * ("if (!userfaultfd_wp_async(vma)) return handle_userfault(...)"; else pte_clear_uffd_wp() and on
   * to the reuse or copy) and hugetlb_fault() ("Fallthrough to CoW") clear the bit, no message, no
   * handler; the caller then handles the write as if the bit had never been there.
   */
  resolveAsync(vma: Vma, leaf: Leaf): void {
    delete leaf.pte.uffdWp;
    this.k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: leaf.pte.level, write: leaf.pte.write, devmap: leaf.pte.devmap, special: leaf.pte.special });
  }

  /**
   * pte_marker_handle_uffd_wp(): whether a fault on a PTE_MARKER_UFFD_WP is the empty entry's fault
   * (do_fault(); from v6.4 do_pte_missing(), so anonymous memory too) rather than
   * pte_marker_clear() — the VMA left VM_UFFD_WP, or (v5.19–v6.3) it is anonymous.
   */
  markerFaults(vma: Vma): boolean {
    return vma.flags.uffdWp === true && (vma.kind !== 'anon' || kernelAtLeast(this.k.version, 6, 4));
  }

  /**
   * The entry a fault on a uffd-wp marker mapped keeps the protection: do_set_pte() /
   * set_pte_range() (v5.19: "if (unlikely(uffd_wp)) entry = pte_mkuffd_wp(pte_wrprotect(entry))")
   * and, from v6.4, do_anonymous_page() for the zero page and a new page alike
   * (vmf_orig_pte_uffd_wp()). A write then faults again and meets the userfaultfd in do_wp_page().
   */
  armFromMarker(vma: Vma, vpn: number): void {
    const leaf = this.k.vm.lookup(vma.mm, vpn);
    if (!leaf || nonPresent(leaf.pte)) return;
    leaf.pte.uffdWp = true;
    leaf.pte.write = false;
    this.k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: leaf.pte.level, write: false, devmap: leaf.pte.devmap, special: leaf.pte.special });
  }

  /**
   * zap_install_uffd_wp_if_needed() -> pte_install_uffd_wp_if_needed() (v5.19, "mm/shmem: persist
   * uffd-wp bit across zapping for file-backed"): a zap without ZAP_FLAG_DROP_MARKER (MADV_DONTNEED,
   * unmap_mapping_range() of truncation and hole punching) that cleared a uffd-wp present or swap
   * entry of a VM_UFFD_WP file VMA leaves a PTE_MARKER_UFFD_WP in its place ("Zap on anonymous
   * always means dropping everything").
   */
  keepWpAfterZap(vma: Vma, base: number, cleared: Pte): void {
    if (!cleared.uffdWp || cleared.marker || vma.kind === 'anon') return;
    if (!this.useMarkers(vma)) return;
    // a hugetlb entry too (__unmap_hugepage_range(): "Restore the PTE marker if it was uffd-wp")
    this.k.vm.install(vma.mm, base, uffdWpMarker(cleared.level));
  }

  /** uffd_disable_fault_around(): no fault-around in a VMA registered for MINOR (v5.14) or WP (v5.19) faults. */
  disablesFaultAround(vma: Vma): boolean {
    return vma.flags.uffdMinor === true || (vma.flags.uffdWp === true && kernelAtLeast(this.k.version, 5, 19));
  }

  /**
   * pagemap's PM_UFFD_WP (bit 57, fb8e37f35a2f "mm/pagemap: export uffd-wp protection
   * information", v5.14): a present entry's pte_uffd_wp(), a swap entry's pte_swp_uffd_wp() and
   * (v5.19) a PTE_MARKER_UFFD_WP; always 0 before v5.14.
   */
  pagemapWp(mm: Mm, vpn: number): boolean {
    if (!kernelAtLeast(this.k.version, 5, 14)) return false;
    const pte = this.k.vm.lookup(mm, vpn)?.pte;
    if (!pte || pte.devicePrivate || pte.deviceExclusive) return false;
    return pte.uffdWp === true;
  }

  /**
   * The userfault a fault on an empty entry raises, if any: VM_UFFD_MISSING with nothing to map
   * (anonymous memory; shmem and hugetlb when the page cache lacks the page), VM_UFFD_MINOR when
   * the page cache has it.
   */
  onEmpty(vmf: Vmf): Reason | null {
    const { vma } = vmf;
    if (!vma.uffd) return null;
    const kind = this.memoryKind(vma);
    if (kind === 'anon') return vma.flags.uffdMissing ? 'missing' : null;
    if (kind === null || !vma.cacheFile) return null;
    const index = vma.hugetlb ? Math.floor(vmf.pgoff / vma.hugetlb.pages) : vmf.pgoff;
    const cached = vma.cacheFile.cache.has(index);
    if (!cached) return vma.flags.uffdMissing ? 'missing' : null;
    return vma.flags.uffdMinor ? 'minor' : null;
  }

  /** userfaultfd_pte_wp() / userfaultfd_huge_pmd_wp(): a write fault on this entry goes to the userfaultfd. */
  wpArmed(vma: Vma, pte: Pte): boolean {
    return vma.flags.uffdWp === true && pte.uffdWp === true;
  }

  /**
   * handle_userfault(vmf, reason). Without a ctx, with UFFD_FEATURE_SIGBUS, or for a fault that may
   * not retry (no FAULT_FLAG_ALLOW_RETRY: break_ksm() up to v6.1) it is VM_FAULT_SIGBUS; a released
   * ctx is VM_FAULT_NOPAGE (the access retries). Else the thread sleeps while
   * userfaultfd_must_wait() holds and the fault returns VM_FAULT_RETRY.
   */
  *handle(vmf: Vmf, reason: Reason, retry: boolean): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    const ctx = vma.uffd;
    const where = `page ${vpn - vma.start} of '${vma.name}'`;
    k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write: vmf.write, kind: `userfault-${reason}` });
    if (!ctx) throw new KernelError('SIGBUS', `handle_userfault on ${where} without a userfaultfd`);
    if (ctx.features.has('sigbus')) throw new KernelError('SIGBUS', `${where}: the userfaultfd has UFFD_FEATURE_SIGBUS`);
    if (ctx.released) return;
    if (!retry) throw new KernelError('SIGBUS', `${where}: a ${reason} userfault from a fault without FAULT_FLAG_ALLOW_RETRY is VM_FAULT_SIGBUS`);
    if (!this.mustWait(vma.mm, vpn, ctx, reason)) return;
    // userfault_msg(): UFFD_EVENT_PAGEFAULT with the address and FLAG_WRITE / FLAG_WP / FLAG_MINOR,
    // readable (fault_pending_wqh) while the fault sleeps and nobody read it
    const msg: UffdMsg = { event: 'pagefault', vpn, write: vmf.write, wp: reason === 'wp', minor: reason === 'minor' };
    ctx.msgs.push(msg);
    const sleeper: Sleeper = { ctx, vpn, held: false };
    this.sleepers.add(sleeper);
    try {
      // a sleeper a DONTWAKE ioctl passed over sleeps on until UFFDIO_WAKE, unregister or close
      const held = () => sleeper.held && !ctx.released && this.k.vm.vmaAt(vma.mm, vpn)?.uffd === ctx;
      yield* waitUntil(`handle_userfault(${reason}) on ${where}: waiting for the handler (UFFDIO_${reason === 'wp' ? 'WRITEPROTECT' : reason === 'minor' ? 'CONTINUE' : 'COPY, ZEROPAGE or MOVE'}; after a DONTWAKE one, UFFDIO_WAKE)`, () => !this.mustWait(vma.mm, vpn, ctx, reason) && !held());
    } finally {
      this.sleepers.delete(sleeper);
      // woken (or gone): an unread message leaves with its waiter (userfaultfd_wake_function's list_del_init)
      const i = ctx.msgs.indexOf(msg);
      if (i >= 0) ctx.msgs.splice(i, 1);
    }
  }

  /**
   * read() of the userfaultfd (userfaultfd_ctx_read()): the oldest unread pagefault first
   * (find_userfault(); the fault goes on sleeping, its message is not read again), then events —
   * reading UFFD_EVENT_FORK completes it (resolve_userfault_fork(), userfaultfd_event_complete()),
   * which lets the fork return, and the monitor gets the child's userfaultfd. Nothing to read:
   * -EAGAIN with O_NONBLOCK, else the reader sleeps.
   */
  *read(ctx: UffdCtx, nonblock: boolean): Op<UffdMsg> {
    const next = () => ctx.msgs.find((m) => m.event === 'pagefault') ?? ctx.msgs[0];
    if (!next() && nonblock) throw new KernelError('EAGAIN', `read() of ${ctx.mm.name}'s userfaultfd: nothing pending (O_NONBLOCK)`);
    yield* waitUntil(`read() of ${ctx.mm.name}'s userfaultfd`, () => next() !== undefined);
    const msg = next()!;
    ctx.msgs.splice(ctx.msgs.indexOf(msg), 1);
    // userfaultfd_event_complete(): the event's sender (fork, mremap, madvise, munmap) may return
    if (msg.event !== 'pagefault') msg.read = true;
    if (msg.event === 'fork') {
      const child = this.forked.get(msg);
      if (child) this.byProcess.set(msg.child, child);
    }
    return msg;
  }

  /** the faults sleeping in handle_userfault(), each with its ctx and page (fault_pending_wqh / fault_wqh) */
  private readonly sleepers = new Set<Sleeper>();

  /**
   * A *_MODE_DONTWAKE ioctl over pages [start, start + pages) (UFFDIO_MOVE_MODE_DONTWAKE:
   * userfaultfd_move() skips wake_userfault()): the faults sleeping there now stay asleep after
   * their entry is filled, until UFFDIO_WAKE (`wake()`), UFFDIO_UNREGISTER or close.
   */
  holdWakes(ctx: UffdCtx, start: number, pages: number): void {
    for (const s of this.sleepers) if (s.ctx === ctx && s.vpn >= start && s.vpn < start + pages) s.held = true;
  }

  /**
   * UFFDIO_WAKE (userfaultfd_wake() -> wake_userfault()): the faults sleeping on the range are
   * woken. A woken fault whose entry is still empty would retry and sleep again with a new message;
   * the model lets it go on sleeping on its first one.
   */
  wake(ctx: UffdCtx, start: number, pages: number): void {
    if (pages <= 0) throw new KernelError('EINVAL', 'UFFDIO_WAKE: zero length (validate_range)');
    for (const s of this.sleepers) if (s.ctx === ctx && s.vpn >= start && s.vpn < start + pages) s.held = false;
  }

  /** userfaultfd_must_wait(): still registered, and the entry still empty (MISSING, MINOR) or uffd-wp and read-only (WP). */
  private mustWait(mm: Mm, vpn: number, ctx: UffdCtx, reason: Reason): boolean {
    const vma = this.k.vm.vmaAt(mm, vpn);
    if (ctx.released || !vma || vma.uffd !== ctx) return false;
    const leaf: Leaf | null = this.k.vm.lookup(mm, vpn);
    // pte_none_mostly() (v5.19): a uffd-wp marker is as good as none
    if (reason !== 'wp') return leaf === null || isWpMarker(leaf.pte);
    return leaf !== null && !leaf.pte.write && leaf.pte.uffdWp === true;
  }

  /**
   * dup_userfaultfd() (fork): without UFFD_FEATURE_EVENT_FORK the child's VMA is unregistered
   * ("vma->vm_userfaultfd_ctx = NULL_VM_UFFD_CTX; vm_flags &= ~__VM_UFFD_FLAGS"); with it the child's
   * VMA is registered with one new ctx per parent ctx (same features), as the monitor gets it by
   * UFFD_EVENT_FORK.
   */
  dupVma(src: Vma, dst: Vma, forked: Map<UffdCtx, UffdCtx>): void {
    const octx = src.uffd;
    if (!octx || !octx.features.has('event-fork')) {
      clearUffd(dst);
      return;
    }
    let nctx = forked.get(octx);
    if (!nctx) {
      nctx = { id: this.nextId++, mm: dst.mm, features: octx.features, released: false, mmapChanging: 0, msgs: [] };
      forked.set(octx, nctx);
    }
    dst.uffd = nctx;
  }

  /** the child's ctx each unread fork event carries */
  private readonly forked = new Map<UffdMsg, UffdCtx>();
  /** the fork events a child's fork() still waits on, with the parent ctx each was queued on */
  private readonly forkWaits = new Map<string, { msg: UffdMsg & { event: 'fork' }; octx: UffdCtx }[]>();

  /**
   * dup_userfaultfd_complete() at the end of dup_mmap(): each EVENT_FORK ctx of the parent gets a
   * UFFD_EVENT_FORK message (the child's userfaultfd goes with it).
   */
  queueForkEvents(uffds: ReadonlyMap<UffdCtx, UffdCtx>, child: Mm): void {
    const waits: { msg: UffdMsg & { event: 'fork' }; octx: UffdCtx }[] = [];
    for (const [octx, nctx] of uffds) {
      const msg = { event: 'fork' as const, child: child.name, read: false };
      this.forked.set(msg, nctx);
      // dup_userfaultfd(): atomic_inc(&octx->mmap_changing) until the event is read
      octx.mmapChanging++;
      octx.msgs.push(msg);
      waits.push({ msg, octx });
    }
    if (waits.length > 0) this.forkWaits.set(child.name, waits);
  }

  /**
   * userfaultfd_event_wait_completion(): fork() returns only once the monitor has read each fork
   * event (or closed the fd); a fork with an EVENT_FORK userfaultfd needs a handler thread.
   */
  *awaitForkEvents(child: string): Op {
    for (const { msg, octx } of this.forkWaits.get(child) ?? []) {
      yield* waitUntil(`fork of ${octx.mm.name}: UFFD_EVENT_FORK waits for the monitor to read it (userfaultfd_event_wait_completion)`, () => msg.read || octx.released);
      // the monitor closed its userfaultfd without reading the event: the child's ctx is released
      // too ("release_new_ctx"), so its VMAs leave it
      const nctx = this.forked.get(msg);
      if (!msg.read && nctx) this.close(nctx);
      this.forked.delete(msg);
      octx.mmapChanging--; // userfaultfd_event_wait_completion(): atomic_dec(&ctx->mmap_changing)
    }
    this.forkWaits.delete(child);
  }

  /**
   * -EAGAIN while a non-cooperative event is prepared and unread (ctx->mmap_changing, df2cc96e7701
   * "userfaultfd: prevent non-cooperative events vs mcopy_atomic races", v4.18): UFFDIO_COPY,
   * ZEROPAGE, CONTINUE, POISON, WRITEPROTECT and MOVE check it before anything else.
   */
  refuseWhileChanging(ctx: UffdCtx, what: string): void {
    if (ctx.mmapChanging > 0) throw new KernelError('EAGAIN', `${what}: a non-cooperative event (fork, remap, remove or unmap) of this userfaultfd is not read yet (ctx->mmap_changing)`);
  }

  /**
   * userfaultfd_event_wait_completion(): queue the event on the ctx and sleep until the monitor
   * reads it (or closes the fd), then atomic_dec(&ctx->mmap_changing) -- the caller's prep raised it.
   */
  private *sendEvent(ctx: UffdCtx, msg: UffdMsg & { read: boolean }, who: string): Op {
    ctx.msgs.push(msg);
    try {
      yield* waitUntil(`${who}: UFFD_EVENT_${msg.event.toUpperCase()} waits for the monitor to read it (userfaultfd_event_wait_completion)`, () => msg.read || ctx.released);
    } finally {
      const i = ctx.msgs.indexOf(msg);
      if (i >= 0) ctx.msgs.splice(i, 1);
      ctx.mmapChanging--;
    }
  }

  /**
   * mremap_userfaultfd_prep() on the VMA move_vma() made at the new address: with
   * UFFD_FEATURE_EVENT_REMAP its ctx goes along (mmap_changing raised; the ctx is returned for
   * remapComplete()); without it "Drop uffd context if remap feature not enabled": the new VMA is
   * unregistered (VM_UFFD_* cleared), so faults at the new address are the kernel's own.
   */
  remapPrep(vma: Vma): UffdCtx | null {
    const ctx = vma.uffd;
    if (!ctx) return null;
    if (ctx.features.has('event-remap') && !ctx.released) {
      ctx.mmapChanging++;
      return ctx;
    }
    clearUffd(vma);
    return null;
  }

  /** mremap_userfaultfd_complete(): UFFD_EVENT_REMAP of [from, from + len) to `to`, waited on by mremap(). */
  *remapComplete(ctx: UffdCtx | null, from: number, to: number, len: number): Op {
    if (!ctx) return;
    yield* this.sendEvent(ctx, { event: 'remap', from, to, len, read: false }, `mremap of ${ctx.mm.name}`);
  }

  /**
   * userfaultfd_remove() before MADV_DONTNEED / MADV_DONTNEED_LOCKED / MADV_FREE
   * (madvise_dontneed_free()) and MADV_REMOVE (madvise_remove()) act on [start, end): with
   * UFFD_FEATURE_EVENT_REMOVE the mmap_lock is dropped and the madvise waits until the monitor has
   * read UFFD_EVENT_REMOVE (the selftests' monitor unregisters the range then). True when the event
   * was sent: the caller looks the VMA up again (madvise_dontneed_free(): vma_lookup(), -ENOMEM
   * when it is gone, the end cut to the VMA).
   */
  *removeEvent(vma: Vma, start: number, end: number): Op<boolean> {
    const ctx = vma.uffd;
    if (!ctx || !ctx.features.has('event-remove') || ctx.released) return false;
    ctx.mmapChanging++;
    yield* this.sendEvent(ctx, { event: 'remove', start, end, read: false }, `madvise of ${vma.mm.name}`);
    return true;
  }

  /**
   * userfaultfd_unmap_prep() for the VMAs munmap() is about to detach (do_vmi_align_munmap()): one
   * entry per ctx with UFFD_FEATURE_EVENT_UNMAP (has_unmap_ctx()), mmap_changing raised.
   */
  unmapPrep(mm: Mm, start: number, end: number): UffdCtx[] {
    const ctxs: UffdCtx[] = [];
    for (const v of vmasIn(mm, start, end)) {
      const ctx = v.uffd;
      if (!ctx || !ctx.features.has('event-unmap') || ctx.released || ctxs.includes(ctx)) continue;
      ctx.mmapChanging++;
      ctxs.push(ctx);
    }
    return ctxs;
  }

  /** userfaultfd_unmap_complete(): UFFD_EVENT_UNMAP of each prepared range to its ctxs, waited on in turn. */
  *completeUnmaps(uf: UnmapEvents): Op {
    for (const { ctxs, start, end } of uf) for (const ctx of ctxs) yield* this.sendEvent(ctx, { event: 'unmap', start, end, read: false }, `munmap of ${ctx.mm.name}`);
  }

  /**
   * Whether the child's copy of an entry keeps its uffd-wp bit (copy_present_pte(),
   * copy_huge_pmd()): from v5.14 (8f34f1eac382 "mm/userfaultfd: fix uffd-wp special cases for
   * fork()") when the child's VMA is VM_UFFD_WP; from v5.7 (b569a1760782) until then the parent's
   * VMA was asked instead, so the bit survived into a child that lost the registration.
   */
  childKeepsWp(src: Vma, dst: Vma, pte: Pte): boolean {
    if (!pte.uffdWp) return false;
    return kernelAtLeast(this.k.version, 5, 14) ? dst.flags.uffdWp === true : src.flags.uffdWp === true;
  }

  /**
   * The child's swap entry keeps pte_swp_uffd_wp() (copy_nonpresent_pte()): from v5.14
   * (8f34f1eac382: "if (!userfaultfd_wp(dst_vma)) pte = pte_swp_clear_uffd_wp(pte)") only in a
   * VM_UFFD_WP child VMA; v5.7–v5.13 copy_one_pte() copied the swap PTE as it was.
   */
  childKeepsSwapWp(dst: Vma, pte: Pte): boolean {
    if (!pte.uffdWp) return false;
    return !kernelAtLeast(this.k.version, 5, 14) || dst.flags.uffdWp === true;
  }

  /**
   * The child's copy of a PTE marker (copy_nonpresent_pte()), or null: a guard marker always; a
   * uffd-wp marker v5.19–v6.1 as it was (with a WARN when the child's VMA is not VM_UFFD_WP), and
   * from v6.2 ("mm/uffd: fix pte marker when fork() without fork event", Peter Xu, mm-hotfixes for
   * 6.2 [M]) only into a VM_UFFD_WP child VMA.
   */
  childMarker(dst: Vma, marker: Pte): Pte | null {
    const wp = marker.uffdWp === true && (dst.flags.uffdWp === true || !kernelAtLeast(this.k.version, 6, 2));
    // copy_pte_marker(): "Always copy error entries" -- PTE_MARKER_POISONED (UFFDIO_POISON, v6.6)
    if (!marker.guard && !marker.poisoned && !wp) return null;
    const { uffdWp: _, ...rest } = marker;
    return { ...rest, ...(wp ? { uffdWp: true } : {}) };
  }

  /**
   * vma_needs_copy(): from v5.19 ("mm/shmem: handle uffd-wp during fork()") fork copies the page
   * tables of a child VMA that stays VM_UFFD_WP, shared shmem too: the uffd-wp bits and markers
   * are held there only.
   */
  forkCopiesTables(dst: Vma): boolean {
    return dst.flags.uffdWp === true && kernelAtLeast(this.k.version, 5, 19);
  }
}


/** struct list_head *uf of do_vmi_munmap(): the UFFD_EVENT_UNMAPs prepared, to send once the syscall is done. */
export type UnmapEvents = { readonly ctxs: readonly UffdCtx[]; readonly start: number; readonly end: number }[];

/** A fault sleeping in handle_userfault(); `held`: a DONTWAKE ioctl filled its entry without waking it. */
interface Sleeper {
  readonly ctx: UffdCtx;
  readonly vpn: number;
  held: boolean;
}

/** The VMA leaves its userfaultfd: no ctx, no VM_UFFD_* flags. */
function clearUffd(vma: Vma): void {
  delete vma.uffd;
  delete vma.flags.uffdMissing;
  delete vma.flags.uffdWp;
  delete vma.flags.uffdMinor;
}
