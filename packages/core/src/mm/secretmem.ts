import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, PageCacheFile, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { mlockFutureOk } from './mlock.js';
import { mappingOf } from './pages.js';

/** O_CLOEXEC (include/uapi/asm-generic/fcntl.h, 02000000 on x86, arm64 and s390): the one flag memfd_secret() takes. */
export const MEMFD_SECRET_CLOEXEC = 0o2000000;

/**
 * memfd_secret(2) (mm/secretmem.c, v5.14): a file whose pages only the processes that map it can
 * reach. Each page is an order-0 folio of the file's page cache, taken out of the kernel's direct
 * map when it is allocated, so the kernel itself cannot read it through a kernel address: GUP
 * refuses the mappings (check_vma_flags(): vma_is_secretmem() -> -EFAULT; GUP-fast drops the
 * folio and leaves it to the slow path) and with it /proc/PID/mem, ptrace, process_vm_readv,
 * vmsplice and io_uring registration. Mappings are MAP_SHARED only, VM_LOCKED (charged to
 * RLIMIT_MEMLOCK) and VM_DONTDUMP, and mlock_fixup() leaves them alone (munlock cannot unlock
 * them). Fork shares the pages like any shared file mapping; the child's VMA loses VM_LOCKED
 * (dup_mmap()).
 *
 * The file is a PageCacheFile with `secretmem` set, so the page-cache bookkeeping (references, rmap,
 * fork, munmap) is mm/pagecache.ts's; what differs is here.
 *
 * Per release (feature `secretmem`, Mmu.memfdSecretSince): the syscall exists from v5.14 on
 * x86-64 and arm64, from v6.4 on s390, never on powerpc; it is ENOSYS unless booted with
 * secretmem.enable=1 before v6.5 (b758fe6df50d). GUP-fast's secretmem test (page_is_secretmem(),
 * later folio_is_secretmem()) skipped any folio without PG_lru until v6.9 (65291dcfcf89
 * "mm/secretmem: fix GUP-fast succeeding on secretmem folios"): a page secretmem_fault() just
 * added sits in the per-CPU LRU add batch without PG_lru until the batch drains, and GUP-fast
 * grabbed it.
 *
 * Not modelled: read()/write() on the fd (no ->read_iter/->write_iter: EINVAL), the PMD-sized
 * direct-map splits set_direct_map_invalid_noflush() causes, memcg accounting, hibernation
 * (refused while secretmem_users > 0), the per-CPU batch's other folios (the model drains it only
 * where the kernel calls lru_add_drain() — munmap's unmap_region(), exit_mmap(), mlock — not when
 * 15 other folios fill it), and the fd's release (a memfd here lives for the whole run).
 */
export class Secretmem {
  /** folios secretmem_fault() added to the page cache that are still in the LRU add batch (PG_lru clear) */
  private readonly lruBatch = new Set<number>();
  /** pages set_direct_map_invalid_noflush() took out of the direct map (secretmem_free_folio() puts them back) */
  private readonly offDirectMap = new Set<number>();

  constructor(private readonly k: Kernel) {}

  /**
   * memfd_secret(flags) then, with `size`, ftruncate(fd, size). ENOSYS where the arch lacks it or
   * the release has it disabled (secretmem_enable, can_set_direct_map()); EINVAL for any flag but
   * O_CLOEXEC. The inode starts with i_size 0 (secretmem_file_create()).
   */
  create(name: string, flags: number, size: number | undefined): PageCacheFile {
    const k = this.k;
    const state = k.features.secretmem;
    const since = k.mmu.memfdSecretSince;
    if (!since || !kernelAtLeast(k.version, since[0], since[1]) || state === 'absent') {
      throw new KernelError('ENOSYS', `memfd_secret() does not exist on ${k.mmu.arch} ${k.version}${since ? ` (from v${since[0]}.${since[1]})` : ' (no ARCH_HAS_SET_DIRECT_MAP)'}`);
    }
    if (state === 'disabled') throw new KernelError('ENOSYS', `memfd_secret() is disabled on ${k.version} unless booted with secretmem.enable=1 (on by default from v6.5; feature secretmem=enabled)`);
    if ((flags & ~MEMFD_SECRET_CLOEXEC) !== 0) throw new KernelError('EINVAL', `memfd_secret(${flags}): only O_CLOEXEC (${MEMFD_SECRET_CLOEXEC}) is a valid flag`);
    if (k.pageCache.files.has(name) || k.files.has(name)) throw new KernelError('EEXIST', `file '${name}' exists`);
    // the registry's entry, replaced by the same file marked secretmem (PageCacheFile is read-only)
    const file: PageCacheFile = { ...k.pageCache.newFile(name, 0, true), secretmem: true };
    k.pageCache.files.set(name, file);
    if (size !== undefined) this.setSize(file, size);
    return file;
  }

  /**
   * ftruncate() (secretmem_setattr(), f9b141f93659 "mm/secretmem: fix panic when growing a
   * memfd_secret", v5.19 [M]): the size can be set once; any size change of a file whose i_size is
   * not 0 is EINVAL (before, growing it crashed the kernel: not modelled).
   */
  setSize(file: PageCacheFile, size: number): void {
    if (file.pages !== 0) throw new KernelError('EINVAL', `ftruncate of secretmem file '${file.name}': its size is set already (secretmem_setattr)`);
    file.pages = Math.ceil(size / this.k.mmu.basePageSize);
  }

  /**
   * secretmem_mmap() (->mmap_prepare from v6.17 [M], same checks): a mapping without VM_SHARED |
   * VM_MAYSHARE is EINVAL; mlock_future_ok() on the length with VM_LOCKED is EAGAIN (mlock_future_check()
   * before v6.5 [M]); the VMA gets VM_LOCKED | VM_DONTDUMP (VM_DONTDUMP is not modelled: no core
   * dumps). do_mmap() decided on population before ->mmap set VM_LOCKED, so nothing is populated;
   * mmap_region() then charges the VMA to mm->locked_vm (mm/mlock.ts lockedVm()).
   */
  mmap(mm: Mm, a: { pages: number; pgoff: number; shared: boolean; write: boolean; as: string }, file: PageCacheFile): Vma {
    const k = this.k;
    if (!a.shared) throw new KernelError('EINVAL', `mmap '${a.as}' of secretmem file '${file.name}' without MAP_SHARED (secretmem_mmap)`);
    if (!mlockFutureOk(mm, a.pages)) throw new KernelError('EAGAIN', `mmap '${a.as}' of secretmem file '${file.name}': ${a.pages} locked page(s) exceed RLIMIT_MEMLOCK (${mm.memlockLimit} pages, without CAP_IPC_LOCK) (secretmem_mmap: mlock_future_ok)`);
    const start = k.vm.placeVma(mm, a.pages, 1);
    return k.vm.addVma(mm, { name: a.as, start, pages: a.pages, pgoff: a.pgoff, flags: { ...k.vm.flags({ write: a.write, shared: true }), locked: true }, kind: 'pagecache', inode: null, device: null, cacheFile: file, anonVma: 0 });
  }

  /**
   * secretmem_fault() then finish_fault(): past i_size SIGBUS (vmf_error(-EINVAL)); the cached
   * page, or a new zeroed order-0 folio taken out of the direct map
   * (set_direct_map_invalid_noflush(), flush_tlb_kernel_range()) and added to the cache
   * (filemap_add_folio(): the cache's reference, and folio_add_lru() into the per-CPU batch).
   * The fault's reference is the PTE's. secretmem_vm_ops has no ->map_pages (no fault-around) and
   * no ->page_mkwrite: the shared writable mapping's vm_page_prot is writable.
   */
  *fault(vmf: Vmf): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    const file = vma.cacheFile!;
    if (vmf.pgoff >= file.pages) throw new KernelError('SIGBUS', `page ${vmf.pgoff} of secretmem file '${file.name}' is past its end (${file.pages} pages): secretmem_fault -EINVAL`);
    let pfn = file.cache.get(vmf.pgoff);
    if (pfn === undefined) {
      const got = k.ram.allocFile(mappingOf(file.mapping.id), vmf.pgoff);
      if (got === null) throw new KernelError('ENOMEM', `out of memory allocating page ${vmf.pgoff} of secretmem file '${file.name}' (VM_FAULT_OOM)`);
      pfn = got;
      this.offDirectMap.add(pfn);
      file.cache.set(vmf.pgoff, pfn);
      this.lruBatch.add(pfn);
      k.emit('page.mapping', { pfn, mapping: `secretmem:${file.name}`, index: vmf.pgoff, share: 0 });
    }
    k.folios.get(pfn, 1, 'secretmem_fault');
    k.folios.addMap(pfn);
    const writable = vmf.write || (vma.flags.write && !k.mprotector.wantsWritenotify(vma));
    k.vm.install(vma.mm, vpn, k.faults.pte(pfn, 'pte', { write: writable, dirty: vmf.write }));
    yield* [];
  }

  /** vma_is_secretmem(): the VMA maps a secretmem file (vm_ops == &secretmem_vm_ops). */
  isSecretmemVma(vma: Vma): boolean {
    return vma.cacheFile?.secretmem === true;
  }

  /**
   * GUP-fast's test of a folio it grabbed (gup_fast_folio_allowed() from v6.10 [M];
   * folio_is_secretmem() / page_is_secretmem() before): false for a secretmem folio, which GUP-fast
   * drops and leaves to the slow path (where check_vma_flags() refuses it). Before v6.9 the test
   * returned "not secretmem" early for a folio without PG_lru — one still in the LRU add batch.
   */
  gupFastAllowed(head: number): boolean {
    const k = this.k;
    if (!this.offDirectMap.has(head)) return true;
    return !kernelAtLeast(k.version, 6, 9) && this.lruBatch.has(head);
  }

  /** Whether the page is in the kernel's direct map (a secretmem page is not). */
  inDirectMap(pfn: number): boolean {
    return !this.offDirectMap.has(pfn);
  }

  /** lru_add_drain() / lru_add_drain_all(): the batched folios get PG_lru. */
  drainLru(): void {
    this.lruBatch.clear();
  }
}
