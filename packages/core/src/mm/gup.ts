import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { GupHandle, Mm, Vma } from '../types.js';
import { GUP_PIN_COUNTING_BIAS } from './folio.js';
import { PG } from './pages.js';
import { entryStillRead, type Leaf } from './vm.js';
import { nonPresent } from './exclusive.js';
import { kernelAtLeast } from '../features.js';

export interface GupRequest {
  readonly name: string;
  readonly vma: Vma;
  readonly vpn: number;
  readonly nr: number;
  /** FOLL_PIN (pin_user_pages) vs FOLL_GET (get_user_pages) */
  readonly pin: boolean;
  readonly write: boolean;
  readonly longterm: boolean;
  /** try the lockless GUP-fast walk first */
  readonly fast: boolean;
  /** FOLL_FORCE: ptrace's access to another mm (/proc/PID/mem, access_remote_vm) */
  readonly force?: boolean;
  /** FOLL_REMOTE: get_user_pages_remote() / pin_user_pages_remote() of another mm, whose pkeys the caller's register does not govern */
  readonly remote?: boolean;
  /**
   * Whether the caller lets GUP drop mmap_lock (a `locked` argument): its faults may then retry
   * (FAULT_FLAG_ALLOW_RETRY), so a userfault sleeps instead of failing (mm/userfaultfd.ts). Absent:
   * what pin_user_pages[_fast]() / get_user_pages[_fast]() do (`Gup.mayRetry`); get_user_pages_remote()
   * with a NULL `locked` (access_remote_vm: /proc/PID/mem, ptrace) says false.
   */
  readonly retry?: boolean;
}

/**
 * get_user_pages / pin_user_pages (mm/gup.c): the lockless fast walk with its fall-back to the
 * slow path, try_grab_folio's accounting (GUP_PIN_COUNTING_BIAS or _pincount), and unpin.
 */
export class Gup {
  /** handles that hold fewer pins than pages (keepOnly): the indexes of the pfns that still hold one */
  private readonly kept = new WeakMap<GupHandle, ReadonlySet<number>>();

  constructor(private readonly k: Kernel) {}

  *gup(req: GupRequest): Op<GupHandle> {
    const k = this.k;
    const mm = req.vma.mm;
    // mm_set_has_pinned_flag(): FOLL_PIN marks the mm, never cleared (MMF_HAS_PINNED, v5.16; has_pinned v5.9)
    if (this.counted(req.pin)) mm.hasPinned = true;
    let pfns = req.fast ? yield* this.fast(req, mm) : null;
    if (pfns === null) pfns = yield* this.slow(req);
    // __gup_longterm_locked(): check_and_migrate_movable_pages() returns -EAGAIN after migrating
    // unpinnable pages (device-coherent), and the pages are pinned again
    for (let round = 0; req.longterm && req.pin && (yield* k.checkAndMigrateLongterm(req, pfns)); round++) {
      if (round === 2) throw new KernelError('EBUSY', `FOLL_LONGTERM pin '${req.name}' keeps finding unpinnable pages`);
      pfns = yield* this.slow(req);
    }
    const owners = pfns.map((pfn) => k.blockOwner(pfn));
    for (const pfn of pfns) {
      const p = k.pages;
      const s = p.slot(pfn);
      p.gup[s]! += 1;
    }
    const handle: GupHandle = { name: req.name, mm, vma: req.vma, vpn: req.vpn, pfns, pin: req.pin, write: req.write, longterm: req.longterm, owners, released: false };
    k.emit('gup.pin', { mm: mm.name, name: req.name, pfns: [...pfns], pin: req.pin, longterm: req.longterm, write: req.write, fast: req.fast });
    return handle;
  }

  /**
   * Whether a reference of this kind is counted as a pin: FOLL_PIN, on a kernel with pin
   * accounting (`foll-pin`). Before it (v5.6 and earlier) a driver's DMA pin was a
   * get_user_pages() reference like any other.
   */
  private counted(pin: boolean): boolean {
    return pin && this.k.features['foll-pin'];
  }

  /** try_grab_folio(): FOLL_GET +1; FOLL_PIN +1024 on a small folio, +1 and _pincount +1 on a large one. */
  grab(head: number, pin: boolean, why: string): void {
    const k = this.k;
    if (!this.counted(pin)) return k.folios.get(head, 1, why);
    if (k.folios.hasPincount(head)) {
      const s = k.pages.slot(head);
      k.pages.pincount[s]! += 1;
      k.folios.get(head, 1, why);
    } else k.folios.get(head, GUP_PIN_COUNTING_BIAS, why);
  }

  /** gup_put_folio(): the exact inverse of grab for the kind of reference the caller says it holds. */
  ungrab(head: number, pin: boolean, why: string): void {
    const k = this.k;
    if (!this.counted(pin)) return k.folios.put(head, 1, why);
    if (k.folios.hasPincount(head)) {
      const s = k.pages.slot(head);
      k.pages.pincount[s]! -= 1;
      k.folios.put(head, 1, why);
    } else k.folios.put(head, GUP_PIN_COUNTING_BIAS, why);
  }

  /**
   * GUP-fast (lockless_pages_from_mm / gup_fast_pte_range): bails to the slow path on anything
   * unusual; after grabbing, re-reads the PTE (and from 70cbc3cc78a9 the PMD: `gup-fast-pmd-recheck`)
   * and drops the reference if it changed. Reading the entry and taking the reference are one
   * step where the MMU's collapse flush waits for GUP-fast (Mmu.collapseFlushWaitsForGupFast): a
   * zap in between is then seen by the re-check exactly as one after the grab (its pages are only
   * freed after its flush). Elsewhere they are two, so a collapse can clear the PMD and count the
   * references in between.
   */
  private *fast(req: GupRequest, mm: Mm): Op<number[] | null> {
    const k = this.k;
    const seqCheck = req.pin && k.features['gup-fast-fork-seq'];
    const seq = mm.writeProtectSeq;
    if (seqCheck && seq % 2 === 1) return null;
    const got: number[] = [];
    const undo = (): null => {
      for (const pfn of got) if (!k.isZeroPfn(pfn)) this.ungrab(k.folios.folio(pfn), req.pin, 'gup-fast: undo');
      return null;
    };
    const splitGrab = !k.mmu.collapseFlushWaitsForGupFast;
    const pmdRecheck = k.features['gup-fast-pmd-recheck'];
    for (let i = 0; i < req.nr; i++) {
      const vpn = req.vpn + i;
      const leaf = k.vm.lookup(mm, vpn);
      // a PMD a collapse has cleared: no page table to walk (pmd_none)
      if (!leaf || nonPresent(leaf.pte) || k.vm.collapsingAt(mm, vpn)) return undo();
      // gup_fast_pte_range(): a pte_protnone() entry (a PROT_NONE VMA's) is left to the slow path
      if (!req.vma.flags.read) return undo();
      if (req.write && !leaf.pte.write) return undo();
      // pte_access_permitted() asks the pkey register of the entry's key (x86 __pkru_allows_pkey(),
      // arm64 POE, powerpc arch_pte_access_permitted()): a denied key goes to the slow path
      if (!k.pkeys.permits(req.vma, req.write, false)) return undo();
      const pfn = k.vm.pfnAt(leaf, vpn);
      if (leaf.pte.devmap) {
        // eras (a)/(b): devmap leaves need a live pgmap; FOLL_LONGTERM always goes slow
        if (req.longterm) return undo();
        const pgmap = k.memremap.pgmapOf(pfn);
        if (!pgmap || pgmap.killed) return undo();
      } else if (leaf.pte.special) return undo();
      const stillRead = entryStillRead(k.vm, mm, vpn, leaf.pte);
      if (splitGrab) yield preempt('gup-fast: grab', stillRead);
      const head = k.folios.folio(pfn);
      if (k.folios.rc(head) <= 0) return undo(); // folio_ref_try_add: add-unless-zero fails
      this.grab(head, req.pin, 'gup-fast');
      if (req.longterm && !k.longtermPinnable(head)) {
        this.ungrab(head, req.pin, 'gup-fast: not longterm-pinnable');
        return undo();
      }
      // gup_fast_folio_allowed() (folio_fast_pin_allowed() when it came in v6.5 [M]: a6e79df92e4a
      // "mm/gup: disallow FOLL_LONGTERM GUP-fast writing to file-backed mappings"): a writable
      // longterm pin of a file folio outside shmem goes to the slow path, which refuses it
      if (req.write && req.pin && req.longterm && this.writeLongtermRefused() && k.pageCache.diskFileOfFolio(head)) {
        this.ungrab(head, req.pin, 'gup-fast: folio needs dirty tracking');
        return undo();
      }
      // the secretmem test on the grabbed folio (mm/secretmem.ts gupFastAllowed(): folio_is_secretmem()
      // up to v6.9, part of gup_fast_folio_allowed() from v6.10 [M]): a secretmem folio goes to the slow path
      if (!k.secretmem.gupFastAllowed(head)) {
        this.ungrab(head, req.pin, 'gup-fast: secretmem folio');
        return undo();
      }
      if (this.mustUnshare(req, null, leaf, vpn)) {
        this.ungrab(head, req.pin, 'gup-fast: must unshare');
        return undo();
      }
      // the re-check compares PTE identity: a zapped and re-faulted PTE with the same contents fails
      // it. Without the PMD re-check, a PTE table a collapse took away still holds the entry read
      yield preempt('gup-fast: re-check pte', stillRead);
      if (!stillRead() || (pmdRecheck && k.vm.collapsingAt(mm, vpn))) {
        this.ungrab(head, req.pin, 'gup-fast: pte changed');
        return undo();
      }
      got.push(pfn);
    }
    if (seqCheck && mm.writeProtectSeq !== seq) return undo(); // read_seqcount_retry: a fork ran
    return got;
  }

  /**
   * gup_must_unshare() (feature gup-unshare): a R/O FOLL_PIN of a R/O-mapped anon page that is not
   * PageAnonExclusive (a7f226604170, v5.19); from v6.2 (84209e87c696) also a R/O FOLL_LONGTERM pin
   * of a non-anon page — the zero page here — in a COW mapping, always when GUP-fast has no VMA.
   * A devmap PTE's page is checked too (follow_page_pte() takes it from get_dev_pagemap() before
   * the check; follow_devmap_pmd/pud never check): with PAGE_MAPPING_DAX_SHARED it tests anon.
   * `observe`: emit the folio_test_anon() fact (false when only polling a retry's condition).
   */
  private mustUnshare(req: GupRequest, vma: Vma | null, leaf: Leaf, vpn: number, observe = true): boolean {
    const k = this.k;
    const mode = k.features['gup-unshare'];
    if (mode === 'off' || !req.pin || req.write || leaf.pte.write) return false;
    const pfn = k.vm.pfnAt(leaf, vpn);
    const page = k.vm.normalPage(leaf.pte, pfn) ?? (leaf.pte.devmap && leaf.pte.level === 'pte' ? pfn : null);
    if (page !== null) {
      const head = k.folios.folio(page);
      const anon = observe ? k.folios.testAnon(head, 'gup_must_unshare') : k.folios.isAnon(head);
      if (anon) return (k.folios.flags(k.folios.exclusivePage(page, leaf.pte.level)) & PG.anonExclusive) === 0;
    } else if (!k.isZeroPfn(pfn)) return false;
    if (mode !== 'cow-mapping' || !req.longterm) return false;
    // is_cow_mapping(): private mappings keep VM_MAYWRITE (do_mmap; mprotect only changes VM_WRITE)
    return vma === null || !vma.flags.shared;
  }

  /** __get_user_pages(): check_vma_flags, then fault in and grab each page under the PTE lock. */
  private *slow(req: GupRequest): Op<number[]> {
    const k = this.k;
    let vma = req.vma;
    // mmap_read_lock(): a collapse holds mmap_lock for write until its huge PMD is in place
    yield* waitUntil('mmap_lock (collapse_huge_page)', () => vma.mm.collapsing === undefined);
    this.checkVma(req, vma);
    const got: number[] = [];
    try {
      for (let i = 0; i < req.nr; i++) {
        const vpn = req.vpn + i;
        // __get_user_pages(): past vm_end the next VMA is looked up (gup_vma_lookup) and checked
        // in its turn: a range may span VMAs split by mprotect/madvise; a hole is -EFAULT
        if (vpn >= vma.start + vma.pages) {
          const next = k.vm.vmaAt(vma.mm, vpn);
          if (!next) throw new KernelError('EFAULT', `page ${vpn - req.vma.start} is beyond mapping '${vma.name}'`);
          vma = next;
          this.checkVma(req, vma);
        }
        const pfn = yield* this.slowPage(req, vma, vpn);
        got.push(pfn);
        if (!k.isZeroPfn(pfn)) yield preempt('gup: next page');
      }
    } catch (e) {
      for (const pfn of got) if (!k.isZeroPfn(pfn)) this.ungrab(k.folios.folio(pfn), req.pin, 'gup: error unwind');
      throw e;
    }
    return got;
  }

  /** v6.5+: writable longterm pins of file mappings that need dirty tracking are refused (both commits merged for v6.5). */
  private writeLongtermRefused(): boolean {
    return kernelAtLeast(this.k.version, 6, 5);
  }

  /** check_vma_flags() for one VMA of the range. */
  private checkVma(req: GupRequest, vma: Vma): void {
    const k = this.k;
    if (vma.flags.io || vma.flags.pfnmap) throw new KernelError('EFAULT', `GUP on a VM_IO/VM_PFNMAP mapping '${vma.name}'`);
    // check_vma_flags(): FOLL_LONGTERM && vma_is_fsdax() -> -EOPNOTSUPP (5.10: check_dax_vmas, same code).
    if (req.longterm && vma.kind === 'file' && k.isFsdaxVma(vma)) {
      throw new KernelError('EOPNOTSUPP', `FOLL_LONGTERM on fs-dax mapping '${vma.name}' (check_vma_flags)`);
    }
    // check_vma_flags(): vma_is_secretmem() -> -EFAULT, with or without FOLL_FORCE (1507f51255c9, v5.14)
    if (k.secretmem.isSecretmemVma(vma)) throw new KernelError('EFAULT', `GUP of secretmem mapping '${vma.name}' (check_vma_flags: vma_is_secretmem)`);
    // check_vma_flags() -> writable_file_mapping_allowed(): FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE on a
    // mapping that needs dirty tracking (a disk file's shared writable mapping; shmem is fine) is
    // -EFAULT from v6.5 [M] (8ac268436e6d "mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to
    // file-backed mappings"); before, the pin was taken and the folio could be written behind writeback
    if (req.write && req.pin && req.longterm && this.writeLongtermRefused() && k.pageCache.needsDirtyTracking(vma)) {
      throw new KernelError('EFAULT', `FOLL_LONGTERM|FOLL_WRITE pin of '${vma.name}', a shared mapping of ${vma.cacheFile?.writeback} file '${vma.cacheFile?.name}' that needs dirty tracking (check_vma_flags: writable_file_mapping_allowed)`);
    }
    if (req.write && !vma.flags.write) {
      // check_vma_flags(): FOLL_FORCE lets a write into a VMA without VM_WRITE through where it
      // COWs (is_cow_mapping(): private, VM_MAYWRITE); FOLL_FORCE|FOLL_WRITE on hugetlb is refused
      // from v6.1 (1d8d14641fd9 [M]) and not modelled before
      if (!req.force || vma.flags.shared || vma.flags.nomaywrite) throw new KernelError('EFAULT', `FOLL_WRITE on read-only mapping '${vma.name}'`);
      if (vma.hugetlb) throw KernelError.unsupported('EFAULT', `FOLL_FORCE|FOLL_WRITE on hugetlb mapping '${vma.name}' is not modelled`);
    }
    // check_vma_flags(): a read of a VMA without VM_READ (PROT_NONE) is -EFAULT without FOLL_FORCE
    // (with it, VM_MAYREAD suffices: every mapping here has it)
    if (!req.write && !vma.flags.read && !req.force) throw new KernelError('EFAULT', `GUP of PROT_NONE mapping '${vma.name}'`);
    // check_vma_flags(): GUP is a data access, so arch_vma_access_permitted(vma, write, false,
    // foreign = FOLL_REMOTE): the caller's pkey register binds a local GUP, never a remote one
    if (!k.pkeys.permits(vma, req.write, req.remote === true)) throw new KernelError('EFAULT', `GUP of '${vma.name}': ${k.pkeys.denial(vma, req.write ? 'write' : 'read')} (check_vma_flags)`);
  }

  /** One page of __get_user_pages(): fault it in (or unshare it) as needed, then grab it. */
  private *slowPage(req: GupRequest, vma: Vma, vpn: number): Op<number> {
    const k = this.k;
    let leaf = k.vm.lookup(vma.mm, vpn);
    // FOLL_COW (up to v6.1): faultin_page() sets it when a write fault in a VMA without VM_WRITE
    // returned VM_FAULT_WRITE (do_wp_page broke COW)
    let cowed = false;
    for (let tries = 0; ; tries++) {
      const fault = !leaf || nonPresent(leaf.pte) || (req.write && !this.canFollowWrite(req, vma, leaf, vpn, cowed));
      // follow_page_pte() -EMLINK -> faultin_page(FAULT_FLAG_UNSHARE) (v5.19+)
      const unshare = !fault && this.mustUnshare(req, vma, leaf!, vpn);
      if (!fault && !unshare) break;
      if (tries === 2) throw new KernelError('EFAULT', `GUP could not fault in page ${vpn - vma.start} of '${vma.name}'`);
      if (unshare) yield* k.faults.unshare(vma, vpn);
      else yield* this.faultin(vma, vpn, req.write, req.force ?? false, req.retry ?? this.mayRetry(req));
      // a fault that waited on a migration entry returned 0 and __get_user_pages() retries the
      // page for as long as it keeps meeting them: not a try
      if (leaf?.pte.migration) tries--;
      if (req.write && !vma.flags.write && leaf && !nonPresent(leaf.pte)) cowed = true;
      const before = leaf;
      leaf = k.vm.lookup(vma.mm, vpn);
      if (unshare && leaf && leaf.pte === before?.pte && this.mustUnshare(req, vma, leaf, vpn, false)) {
        // The unshare fault changed nothing (a page that only looks anon in a shared mapping:
        // the PAGE_MAPPING_DAX_SHARED alias): follow_page_pte() says -EMLINK again and
        // __get_user_pages() retries until the page table changes or a fatal signal comes.
        const stuck = leaf.pte;
        yield* waitUntil(`GUP retrying an unshare fault that cannot make progress (page ${vpn - vma.start} of '${vma.name}')`, () => {
          const now = k.vm.lookup(vma.mm, vpn);
          return !now || now.pte !== stuck || !this.mustUnshare(req, vma, now, vpn, false);
        });
        leaf = k.vm.lookup(vma.mm, vpn);
        tries = -1;
      }
    }
    if (!leaf) throw new KernelError('EFAULT', `GUP lost page ${vpn - vma.start} of '${vma.name}'`);
    const pfn = k.vm.pfnAt(leaf, vpn);
    let page = k.vm.normalPage(leaf.pte, pfn);
    if (page === null && leaf.pte.devmap) {
      // follow_page_pte(): get_dev_pagemap() must succeed (eras (a)/(b))
      const pgmap = k.memremap.pgmapOf(pfn);
      if (!pgmap || pgmap.killed) throw new KernelError('EFAULT', `pgmap of pfn ${pfn} is going away`);
      page = pfn;
    }
    if (page === null) {
      if (!k.isZeroPfn(pfn)) throw new KernelError('EFAULT', `no struct page behind page ${vpn - vma.start} of '${vma.name}'`);
      return pfn; // the zero page is never pinned (is_zero_folio short-circuit)
    }
    const head = k.folios.folio(page);
    if (k.folios.rc(head) <= 0) {
      k.warn(`try_grab_folio: refcount ${k.folios.rc(head)} <= 0 on pfn ${page}`);
      throw new KernelError('ENOMEM', `try_grab_folio failed on a page with refcount ${k.folios.rc(head)}`);
    }
    this.grab(head, req.pin, req.pin ? 'pin_user_pages' : 'get_user_pages');
    return pfn;
  }

  /**
   * FAULT_FLAG_ALLOW_RETRY for the slow path's faults: it needs a `locked` that GUP may drop. GUP-fast
   * falls back to get_user_pages_unlocked() (which has one) except under FOLL_LONGTERM, where
   * __gup_longterm_unlocked() took mmap_lock itself and called __gup_longterm_locked() without; and
   * pin_user_pages() / get_user_pages() passed none until v6.3 (Jason Gunthorpe's "mm/gup: make
   * locked never NULL in the internal GUP functions" and "add FOLL_UNLOCKABLE": they pass their own).
   * Without it a userfault is VM_FAULT_SIGBUS, which GUP returns as -EFAULT.
   */
  private mayRetry(req: GupRequest): boolean {
    return (req.fast && !req.longterm) || kernelAtLeast(this.k.version, 6, 3);
  }

  /**
   * can_follow_write_pte(): a writable PTE; or, with FOLL_FORCE, the COW a write fault broke in a
   * private mapping without VM_WRITE -- up to v6.1 FOLL_COW and a dirty PTE, from v6.2
   * (5535be309971 "mm/gup: fix FOLL_FORCE COW security issue and remove FOLL_COW") an exclusive
   * anonymous page, and no write fault owed to soft-dirty tracking.
   */
  private canFollowWrite(req: GupRequest, vma: Vma, leaf: Leaf, vpn: number, cowed: boolean): boolean {
    const k = this.k;
    if (leaf.pte.write) return true;
    if (!req.force || vma.flags.shared || vma.flags.write) return false;
    if (!kernelAtLeast(k.version, 6, 2)) return cowed && leaf.pte.dirty;
    const page = k.vm.normalPage(leaf.pte, k.vm.pfnAt(leaf, vpn));
    if (page === null || !k.folios.isAnon(k.folios.folio(page)) || (k.folios.flags(page) & PG.anonExclusive) === 0) return false;
    // vma_soft_dirty_enabled(): soft-dirty tracking armed (clear_refs cleared VM_SOFTDIRTY)
    if (k.softDirtyArch && !vma.flags.softdirty && !leaf.pte.softDirty) return false;
    // "return !userfaultfd_pte_wp(vma, pte)": a uffd-wp entry must take the write fault (mm/userfaultfd.ts)
    return !k.uffd.wpArmed(vma, leaf.pte);
  }

  /**
   * faultin_page(): handle_mm_fault(), whose VM_FAULT_SIGBUS / SIGSEGV GUP returns as -EFAULT
   * (vm_fault_to_errno(): a shmem page past i_size, a poisoned DAX block), not as a signal.
   * `force` (FOLL_FORCE): the fault may write where the VMA has no VM_WRITE.
   */
  private *faultin(vma: Vma, vpn: number, write: boolean, force: boolean, retry: boolean): Op {
    try {
      yield* this.k.faults.handle(vma, vpn, write, force, retry);
    } catch (e) {
      if (e instanceof KernelError && (e.code === 'SIGBUS' || e.code === 'SIGSEGV') && e.unsupported === null) throw new KernelError('EFAULT', `GUP fault on page ${vpn - vma.start} of '${vma.name}': ${e.message}`);
      throw e;
    }
  }

  /**
   * Drop the pins of every page of `h` but those at `kept` (indexes into h.pfns; null keeps all):
   * their folios stay pinned through the kept ones and every page stays reachable through `h` (an
   * io_uring buffer coalesced to one pin per folio, mm/iouring.ts). release() drops the rest.
   */
  keepOnly(h: GupHandle, kept: ReadonlySet<number> | null): void {
    if (kept === null) return;
    const k = this.k;
    h.pfns.forEach((pfn, i) => {
      if (!kept.has(i) && !k.isZeroPfn(pfn)) this.ungrab(k.folios.folio(pfn), h.pin, 'unpin_user_folio: coalesced');
    });
    this.kept.set(h, kept);
  }

  /**
   * unpin_user_page() (asPin) or put_page(): release a GUP reference. Releasing with the wrong
   * call is a driver bug the kernel does not catch: put_page() on a pin leaks the bias,
   * unpin_user_page() on a get underflows.
   */
  release(h: GupHandle, asPin: boolean): void {
    const k = this.k;
    if (h.released) throw new KernelError('EINVAL', `'${h.name}' was already released`);
    h.released = true;
    const kept = this.kept.get(h);
    for (const [i, pfn] of h.pfns.entries()) {
      if (k.isZeroPfn(pfn)) continue;
      if (k.isGone(pfn)) {
        k.warn(`release of '${h.name}': pfn ${pfn} belongs to a pgmap that was torn down (use after free)`);
        continue;
      }
      const p = k.pages;
      const s = p.slot(pfn);
      p.gup[s]! -= 1;
      if (kept && !kept.has(i)) continue; // its pin went at keepOnly()
      this.ungrab(k.folios.folio(pfn), asPin, asPin ? 'unpin_user_page' : 'put_page');
    }
    k.emit('gup.unpin', { name: h.name, pfns: [...h.pfns], pin: asPin });
  }
}
