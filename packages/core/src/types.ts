import type { VmemmapFigures } from './arch.js';
import type { RwSem } from './sched.js';
import type { PkeyState } from './mm/pkeys.js';

/** enum memory_type (include/linux/memremap.h), by name: numeric values shifted in v6.0. */
export type PgmapType = 'private' | 'coherent' | 'fsdax' | 'generic' | 'p2pdma';

/** struct dev_pagemap */
export interface Pgmap {
  readonly id: number;
  readonly device: string;
  readonly type: PgmapType;
  /** first pfn of the range (range.start >> PAGE_SHIFT) */
  readonly startPfn: number;
  readonly nrPages: number;
  /** pfn_first(): the first pfn with a usable struct page (after the altmap's metadata pfns) */
  readonly firstPfn: number;
  readonly vmemmapShift: number;
  readonly altmap: boolean;
  readonly vmemmap: VmemmapFigures | null;
  /** percpu_ref_kill() ran: get_dev_pagemap() fails from now on */
  killed: boolean;
  /** memunmap_pages() finished: the struct pages are gone */
  gone: boolean;
  /** dev_pagemap_ops present for this type (pmem fs-dax and device-dax have no page_free) */
  readonly ops: { readonly pageFree?: (pfn: number) => void; readonly migrateToRam?: true; readonly memoryFailure?: true };
}

/** One physical range of a device's data: its first pfn, its pages, the device page offset it starts at. */
export interface DeviceRange {
  readonly pfn: number;
  readonly pages: number;
  readonly pgoff: number;
  readonly pgmap: Pgmap;
}

/** A bound device: a pmem namespace, a device-dax instance, a mirror device, a DAX window. */
export interface Device {
  readonly name: string;
  readonly driver: string;
  readonly size: number;
  readonly align: number;
  readonly pgmap: Pgmap;
  /** first pfn usable for data (filesystem block 0 on pmem) */
  readonly dataPfn: number;
  readonly dataPages: number;
  /**
   * device-dax of a dynamic region (dax/region.ts, v5.10): its data as several physical ranges in
   * page-offset order, each with its own pgmap; absent: one range of dataPages from dataPfn
   */
  readonly ranges?: readonly DeviceRange[];
  /**
   * a pmem namespace with a pfn or dax info block (nd_pfn / nd_dax, drivers/nvdimm/pfn_devs.c):
   * its data starts at the info block's dataoff, enable-namespace validates the block, and
   * reconfigure-namespace can switch its mode. Absent: a device without namespace metadata
   * (device-dax of an hmem or dynamic region, a test_hmm device)
   */
  readonly pmemNamespace?: boolean;
  bound: boolean;
  /** the filesystem mounted on it, if any */
  fs: FsHandle | null;
  /** device-dax: the character device's address_space (its inode's i_mapping) */
  readonly mapping: AddressSpace;
  /** driver-private state */
  readonly state: Record<string, unknown>;
}

/** The part of a mounted filesystem core needs to reach. */
export interface FsHandle {
  readonly name: string;
}

/** struct address_space: the DAX entries (i_pages) and the VMAs mapping it (i_mmap). */
export interface AddressSpace {
  readonly id: number;
  readonly owner: string;
  readonly entries: Map<number, DaxEntry>;
  readonly mmaps: Set<Vma>;
}

/** A DAX XArray value entry (fs/dax.c): pfn << DAX_SHIFT | flags. */
export interface DaxEntry {
  pfn: number;
  pmd: boolean;
  zero: boolean;
  empty: boolean;
  locked: boolean;
  dirty: boolean;
}

/** An inode of a DAX filesystem. */
export interface Inode {
  readonly id: number;
  readonly name: string;
  size: number;
  /** file page index -> filesystem block */
  readonly blocks: Map<number, number>;
  readonly mapping: AddressSpace;
  /** VFS inode->i_rwsem (XFS_IOLOCK) */
  readonly iolock: RwSem;
  /** mapping->invalidate_lock (XFS_MMAPLOCK, ext4 i_mmap_sem) */
  readonly mmaplock: RwSem;
  readonly device: Device;
  /** per-filesystem state (FUSE dmap tree, ...) */
  readonly state: Record<string, unknown>;
  /** the on-disk FS_XFLAG_DAX (XFS_DIFLAG2_DAX, EXT4_DAX_FL): what the next inode setup sees (fs/daxmode.ts) */
  daxFlag: boolean;
  /** S_DAX of the in-core inode: decided when the inode is set up, never changed while it is cached */
  sDax: boolean;
  /** the inode is in core (iget); eviction (drop_caches, umount, I_DONTCACHE) clears it */
  incore: boolean;
  /** I_DONTCACHE (d_mark_dontcache, v5.8): evicted when its last user goes */
  dontcache: boolean;
  /** open file descriptions (`open` steps) holding the inode */
  opens: number;
  /** the page cache of a file without S_DAX on a DAX-capable mount (null while S_DAX) */
  cache: PageCacheFile | null;
}

export interface VmFlags {
  read: boolean;
  /** VM_WRITE: mprotect() changes it (mm/mprotect.ts) */
  write: boolean;
  shared: boolean;
  mixedmap: boolean;
  pfnmap: boolean;
  hugepage: boolean;
  /** VM_NOHUGEPAGE (MADV_NOHUGEPAGE): no THP of any size, even a size whose knob is `always` (vma_thp_disabled()) */
  nohugepage?: boolean;
  io: boolean;
  /**
   * VM_SOFTDIRTY: every page counts as soft-dirty (set on new VMAs by mmap_region(), cleared by
   * clear_refs); always false on an arch without soft-dirty, where VM_SOFTDIRTY is 0
   */
  softdirty: boolean;
  /** VM_MAYWRITE clear: mprotect(PROT_WRITE) is EACCES (a read-only shared mapping of a write-sealed memfd: mm/memfd.ts) */
  nomaywrite?: boolean;
  /** VM_DONTCOPY: fork leaves the VMA out of the child (madvise MADV_DONTFORK / MADV_DOFORK: mm/madvise.ts) */
  dontcopy: boolean;
  /** VM_WIPEONFORK: the child gets the VMA empty (MADV_WIPEONFORK, v4.14) */
  wipeonfork: boolean;
  /** VM_DONTEXPAND: mremap() may not grow the VMA (remap_pfn_range() sets it) */
  dontexpand: boolean;
  /** VM_PKEY_BIT*: the VMA's protection key (pkey_mprotect(), mm/pkeys.ts); absent: key 0 */
  pkey?: number;
  /** VM_EXEC: mapped with PROT_EXEC (file_thp_enabled() wanted it until v6.8, 7fbb5e188248: mm/collapse.ts) */
  exec?: boolean;
  /** VM_MERGEABLE: MADV_MERGEABLE, ksmd may merge its anonymous pages (mm/ksm.ts); inherited by fork */
  mergeable?: boolean;
  /** VM_LOCKED: mlock(), mlockall(), MAP_LOCKED (mm/mlock.ts); smaps VmFlags "lo"; not inherited by fork */
  locked?: boolean;
  /** VM_LOCKONFAULT: mlock2(MLOCK_ONFAULT), MCL_ONFAULT: locked, but populated only by faults */
  lockonfault?: boolean;
  /** VM_UFFD_MISSING: UFFDIO_REGISTER_MODE_MISSING, a fault on an empty entry goes to the userfaultfd (mm/userfaultfd.ts) */
  uffdMissing?: boolean;
  /** VM_UFFD_WP: UFFDIO_REGISTER_MODE_WP (v5.7), a write to a uffd-wp entry goes to the userfaultfd */
  uffdWp?: boolean;
  /** VM_UFFD_MINOR: UFFDIO_REGISTER_MODE_MINOR (hugetlbfs v5.13, shmem v5.14), a fault on a cached page goes to the userfaultfd */
  uffdMinor?: boolean;
  /** VM_SYNC: mmap(MAP_SHARED_VALIDATE | MAP_SYNC) of a DAX file (v4.15): a write fault over uncommitted metadata commits it before the page is mapped (fs/journal.ts) */
  sync?: boolean;
  /** VM_SEQ_READ / VM_RAND_READ: MADV_SEQUENTIAL / MADV_RANDOM readahead hints (MADV_NORMAL clears both) */
  seqRead?: boolean;
  randRead?: boolean;
  /**
   * VM_DROPPABLE: MAP_DROPPABLE (v6.11): private anonymous memory whose pages reclaim may drop
   * (reads then see zeroes); comes with VM_WIPEONFORK; never mlocked
   */
  droppable?: boolean;
  /** VM_SEALED: mseal(2) (v6.10, mm/mseal.ts); smaps VmFlags "sl"; never cleared, kept by fork (vm_area_dup) */
  sealed?: boolean;
}

/** 'pagecache': a file whose pages are RAM page cache (a memfd or shared anonymous memory on tmpfs, hugetlbfs, secretmem, a disk file without DAX): never anon (mm/pagecache.ts) */
export type VmaKind = 'anon' | 'file' | 'device' | 'pagecache';

/** An inode whose page cache holds ordinary RAM folios: tmpfs (mm/shmem.c), hugetlbfs, secretmem or a non-DAX disk file (mm/pagecache.ts). */
export interface PageCacheFile {
  readonly name: string;
  /** i_size in pages */
  pages: number;
  /** i_mapping: its VMAs (i_mmap); the page cache itself is `cache` */
  readonly mapping: AddressSpace;
  /** i_pages: file page index -> pfn of the order-0 folio caching it */
  readonly cache: Map<number, number>;
  /** indexes whose folio fallocate() added and nothing has zeroed yet (!folio_test_uptodate) */
  readonly notUptodate: Set<number>;
  /**
   * An open file keeps the inode (memfd: the model never closes it); a shared anonymous
   * mapping's file is held only by its VMAs, so the last unmap evicts it; a SysV shm segment's
   * file is held until IPC_RMID (ipc/shm.ts), then only by its VMAs.
   */
  held: boolean;
  /** i_size in bytes, where the seal checks need it (tmpfs memfds: mm/memfd.ts); `pages` is i_size rounded up to pages */
  size?: number;
  /** a memfd's F_SEAL_* bits (shmem_inode_info->seals: mm/memfd.ts); undefined for a file that has none (secretmem, disk files) */
  seals?: number;
  /** a hugetlbfs file (memfd MFD_HUGETLB, MAP_SHARED|MAP_HUGETLB): its page size; `cache` is keyed by huge-page index (mm/hugetlb.ts) */
  readonly hugetlb?: HugetlbFile;
  /**
   * A regular file on a non-DAX disk filesystem (ext4, xfs) or a FUSE file without DAX rather
   * than tmpfs: its mapping can write back (mapping_can_writeback) and its vm_ops have
   * ->page_mkwrite (fuse_page_mkwrite for FUSE), so a shared writable mapping of it needs dirty
   * tracking (mm/mmap.c vma_needs_dirty_tracking, v6.5).
   */
  readonly writeback?: 'ext4' | 'xfs' | 'fuse';
  /**
   * A memfd_secret() file (mm/secretmem.c, mm/secretmem.ts): order-0 pages removed from the
   * direct map, mapped MAP_SHARED only, VM_LOCKED, refused by GUP; i_size may be set once.
   */
  readonly secretmem?: true;
  /**
   * A file on a tmpfs mounted by the scenario (`tmpfile` with fs: tmpfs): its mount's huge= option,
   * SHMEM_SB(inode->i_sb)->huge (mm/shmem.c). Unset: the internal mount (shm_mnt) of memfds and
   * shared anonymous memory, whose huge policy is transparent_hugepage/shmem_enabled.
   */
  readonly mountHuge?: 'always' | 'within_size' | 'advise' | 'never';
  /**
   * shmem's shared policy (shmem_inode_info->policy, mpol_set_shared_policy()): what mbind() of a
   * mapping set for file page ranges [start, end); tmpfs page-cache allocations follow it (mm/mempolicy.ts)
   */
  sharedPolicy?: { readonly start: number; readonly end: number; readonly policy: VmaPolicy }[];
  /**
   * The data of file page `index` as the filesystem reads it into a new folio (a file without
   * S_DAX on a DAX-capable mount: its blocks; fs/daxmode.ts), null when the bio fails (a bad
   * sector: mm/pagecache.ts readFolio()); absent: a new folio is zeroes.
   */
  readonly readPage?: (index: number) => string | null;
  /** a __folio_split() of one of its folios between the refcount freeze and the last unfreeze (mm/split.ts) */
  splitting?: FolioSplitInFlight;
}

/**
 * What a lockless page-cache lookup (filemap_get_entry(): xas_load(), folio_try_get(),
 * xas_reload()) can see of a page-cache folio while __folio_split() runs: the xarray entries of its
 * indexes, which after-split folios are still frozen (refcount 0: folio_try_get() fails) and which
 * are still locked (folio_lock() sleeps until the split unlocks them).
 */
export interface FolioSplitInFlight {
  /** file index -> the first pfn of the folio its xarray entry names */
  readonly entries: Map<number, number>;
  /** first pfns of the folios whose refcount is frozen */
  readonly frozen: Set<number>;
  /** first pfns of the after-split folios still locked */
  readonly locked: Set<number>;
}

/** struct vm_area_struct */
export interface Vma {
  readonly id: number;
  /** the scenario's name for the mapping (kept by the child after fork) */
  readonly name: string;
  readonly mm: Mm;
  /** vm_start, vm_end - vm_start and vm_pgoff in pages: split_vma() moves them (mm/vm.ts splitVma) */
  start: number;
  pages: number;
  pgoff: number;
  readonly flags: VmFlags;
  readonly kind: VmaKind;
  readonly inode: Inode | null;
  readonly device: Device | null;
  /** the page-cache file behind a 'pagecache' VMA (vm_file of a memfd, a disk tmpfile, secretmem or shmem_zero_setup) */
  readonly cacheFile?: PageCacheFile;
  /** anon_vma id once the VMA has anonymous pages (or inherited them) */
  anonVma: number;
  /**
   * anon_vma_fork() linked this fork child's copy to its parent's anon_vmas: its anon_vma_chain is
   * not singular (vma_had_uncowed_parents() / vma_is_fork_child()), which VMA merging refuses
   * (mm/vm.ts mergeAround). It stays after every page was COWed.
   */
  anonForked?: boolean;
  /** is_vm_hugetlb_page(): the hstate and reservation of a hugetlb VMA (mm/hugetlb.ts) */
  readonly hugetlb?: HugetlbVma;
  /** vm_userfaultfd_ctx.ctx: the userfaultfd this VMA is registered with (with VM_UFFD_* in flags; mm/userfaultfd.ts) */
  uffd?: UffdCtx;
  /** vma->vm_policy (mbind(), mm/mempolicy.ts): where its pages are allocated; absent: the task's default, the local node */
  policy?: VmaPolicy;
}

/** A VMA's NUMA memory policy (struct mempolicy): the mode and its nodes (N_MEMORY only). */
export interface VmaPolicy {
  readonly mode: 'preferred' | 'bind' | 'interleave' | 'local' | 'preferred-many';
  readonly nodes: readonly number[];
}

/** struct userfaultfd_ctx (fs/userfaultfd.c): one userfaultfd of a process. */
export interface UffdCtx {
  readonly id: number;
  /** ctx->mm */
  readonly mm: Mm;
  /** ctx->features: what UFFDIO_API enabled (mm/userfaultfd.ts UFFD_FEATURES) */
  readonly features: ReadonlySet<string>;
  /** ctx->released: the fd was closed */
  released: boolean;
  /**
   * ctx->mmap_changing: non-cooperative events (fork, remap, remove, unmap) prepared and not yet
   * read; while non-zero the fill ioctls, UFFDIO_WRITEPROTECT and UFFDIO_MOVE are -EAGAIN
   */
  mmapChanging: number;
  /**
   * What read() would return, oldest first: a sleeping fault's UFFD_EVENT_PAGEFAULT until it is
   * read or its fault is woken (fault_pending_wqh), then events (event_wqh: UFFD_EVENT_FORK)
   */
  readonly msgs: UffdMsg[];
}

/** struct uffd_msg as the model keeps it. */
export type UffdMsg =
  | { readonly event: 'pagefault'; readonly vpn: number; readonly write: boolean; readonly wp: boolean; readonly minor: boolean }
  | { readonly event: 'fork'; readonly child: string; read: boolean }
  /** UFFD_EVENT_REMAP (mremap): the range moved from `from` to `to`, `len` pages */
  | { readonly event: 'remap'; readonly from: number; readonly to: number; readonly len: number; read: boolean }
  /** UFFD_EVENT_REMOVE (MADV_DONTNEED / MADV_FREE / MADV_REMOVE) and UFFD_EVENT_UNMAP (munmap): pages [start, end) */
  | { readonly event: 'remove'; readonly start: number; readonly end: number; read: boolean }
  | { readonly event: 'unmap'; readonly start: number; readonly end: number; read: boolean };

/** hstate_vma(): a huge page size, in base pages, and the page-table level that maps it. */
export interface Hstate {
  readonly pages: number;
  readonly level: PteLevel;
}

/** A hugetlbfs inode: its hstate and the huge pages reserved for it (the inode's resv_map, shared mappings). */
export interface HugetlbFile extends Hstate {
  readonly resv: Set<number>;
}

/**
 * A hugetlb VMA: its hstate and, for the private mapping's owner (HPAGE_RESV_OWNER), its
 * reservation map — the huge-page indexes (vm_pgoff-relative, in huge pages) reserved at mmap and
 * not consumed by a fault yet. Split pieces share it, as they share the kernel's resv_map; a fork
 * child's VMA owns none (hugetlb_dup_vma_private()).
 */
export interface HugetlbVma extends Hstate {
  readonly resv: Set<number> | null;
}

export type PteLevel = 'pte' | 'pmd' | 'pud';

/** A page-table entry at any level. */
export interface Pte {
  pfn: number;
  write: boolean;
  dirty: boolean;
  special: boolean;
  devmap: boolean;
  readonly level: PteLevel;
  /** a non-present device-private entry (swap-like) */
  devicePrivate: boolean;
  /**
   * a non-present device-exclusive entry (make_device_exclusive(), v5.14+; mm/exclusive.ts): the
   * page is system memory a device maps atomically, `write` is SWP_DEVICE_EXCLUSIVE_WRITE vs _READ
   * (one type from v6.15), `dirty` what the folio kept (folio_mark_dirty at conversion)
   */
  deviceExclusive?: boolean;
  /**
   * _PAGE_SOFT_DIRTY: set with the dirty bit by pte_mkdirty() (x86, s390, ppc64 book3s), cleared
   * by clear_refs; never set on an arch without soft-dirty. The CPU's own dirtying does not set it.
   */
  softDirty: boolean;
  /**
   * _PAGE_UFFD_WP (pte_uffd_wp): set by UFFDIO_WRITEPROTECT (or UFFDIO_COPY with MODE_WP) where the
   * arch has the bit (HAVE_ARCH_USERFAULTFD_WP, Mmu.uffdWpSince); a write fault on it goes to the
   * userfaultfd instead of do_wp_page()'s reuse or copy (mm/userfaultfd.ts); on a swap entry
   * pte_swp_uffd_wp() (kept across swap-out, v5.7), on a `marker` PTE_MARKER_UFFD_WP
   */
  uffdWp?: boolean;
  /**
   * a non-present swap entry (mm/swap.ts): the page was swapped out to `swap.slot`; `pfn` is -1.
   * `exclusive` is pte_swp_exclusive() (v5.19+, "mm/swap: remember PG_anon_exclusive via a swp
   * pte bit"); `softDirty` is pte_swp_soft_dirty()
   */
  swap?: SwapEntry;
  /**
   * a guard PTE marker (make_pte_marker(PTE_MARKER_GUARD), MADV_GUARD_INSTALL, v6.13; mm/guard.ts):
   * non-present, no page behind it (`pfn` is -1); any access to it is SIGSEGV
   */
  guard?: boolean;
  /**
   * a PTE_MARKER_POISONED (UFFDIO_POISON, v6.6; mm/userfaultfd.ts): non-present, no page behind it;
   * an access is VM_FAULT_HWPOISON, SIGBUS
   */
  poisoned?: boolean;
  /**
   * with `poisoned`: a hwpoison swap entry (make_hwpoison_entry(), mm/memory-failure.c's
   * try_to_unmap(TTU_HWPOISON); mm/memfailure.ts) rather than a PTE_MARKER_POISONED: the zap, fork and
   * fault rules are the same ("is_hwpoison_entry(entry) || is_poisoned_swp_entry(entry)")
   */
  hwpoison?: boolean;
  /**
   * a PTE marker (make_pte_marker(), include/linux/swapops.h, v5.19): a non-present entry with no
   * page behind it (`pfn` is -1), whose bits are `guard` (PTE_MARKER_GUARD) and `uffdWp`
   * (PTE_MARKER_UFFD_WP: a write-protected page that is not mapped; mm/userfaultfd.ts)
   */
  marker?: boolean;
  /**
   * a migration entry (include/linux/swapops.h make_*_migration_entry(); mm/mempolicy.ts): the
   * page at `pfn` is being migrated and is unmapped here until remove_migration_ptes(); `write`
   * is a writable entry, `migration.exclusive` a readable-exclusive one (v5.19)
   */
  migration?: { readonly exclusive: boolean };
}

/** The swap entry of a swap PTE (swp_entry_t and the swp pte bits the model keeps). */
export interface SwapEntry {
  readonly slot: number;
  exclusive: boolean;
}

/** struct mm_struct with its page tables. */
export interface Mm {
  readonly id: number;
  readonly name: string;
  readonly vmas: Vma[];
  /** PTE-level entries by virtual page number */
  readonly ptes: Map<number, Pte>;
  /** PMD leaves by vpn of their first page */
  readonly pmds: Map<number, Pte>;
  readonly puds: Map<number, Pte>;
  /** MMF_HAS_PINNED / mm->has_pinned: set by the first FOLL_PIN, never cleared, not inherited */
  hasPinned: boolean;
  /** mm->write_protect_seq: odd while fork copies page tables */
  writeProtectSeq: number;
  /** next free virtual page for mmap placement */
  nextVpn: number;
  alive: boolean;
  /**
   * The address range each mapping name of this process stands for (what mmap or mremap
   * returned): page N of the mapping is start + N, in whichever VMA now covers it after parts
   * were unmapped, split off or moved away, and kept after all its VMAs are gone.
   */
  readonly ranges: Map<string, MappingRange>;
  /** mm->def_flags after mlockall(MCL_FUTURE [| MCL_ONFAULT]): new VMAs come locked (mm/mlock.ts) */
  lockFuture?: 'lock' | 'onfault';
  /**
   * mmap(MAP_FIXED) in progress: the page the next placeVma() returns instead of searching (the
   * caller unmapped what was there first); cleared as soon as it is used (kernel.ts mmap)
   */
  fixedPlacement?: number;
  /** with fixedPlacement: MAP_FIXED at an address of its own (mmap `fixed.addr`), which leaves the default placement where it was */
  fixedAbsolute?: true;
  /**
   * mmap() with an address hint in progress: the hint's page (after do_mmap()'s
   * round_hint_to_min()), which the next placeVma() tries first (mm/vaspace.ts); cleared with fixedPlacement
   */
  addressHint?: number;
  /**
   * The first vpn of the PMD range collapse_huge_page() has taken the page table of
   * (pmdp_collapse_flush()) and not yet mapped by its huge PMD: lockless walkers (GUP-fast) find
   * no page table there, while the detached table keeps its entries (`ptes`) until the copy clears
   * them. mmap_lock is held for write meanwhile (mm/collapse.ts).
   */
  collapsing?: number;
  /**
   * The page size (in base pages) of each address-space slice a hugetlb mapping converted, by slice
   * (`L<n>` / `H<n>`, mm/slices.ts; the rest have the base page size). Only where the MMU has slices.
   */
  slicePsize?: Map<string, number>;
  /**
   * RLIMIT_MEMLOCK in pages after `setrlimit` (which also drops CAP_IPC_LOCK, as
   * memfd_secret.c's set_cap_limits() does); absent: the process has CAP_IPC_LOCK and no limit
   * applies (mlock_future_ok(), can_do_mlock()). Inherited over fork.
   */
  memlockLimit?: number;
  /**
   * current->mempolicy (set_mempolicy(), mm/mempolicy.ts) of the process's task: where its pages go
   * when their VMA has no policy; absent: the default (local). fork copies it, execve keeps it.
   */
  taskPolicy?: VmaPolicy;
  /**
   * prctl(PR_SET_THP_DISABLE) (mm/thp.ts setDisable): MMF_DISABLE_THP (`completely`) or, from
   * v6.18, MMF_DISABLE_THP_EXCEPT_ADVISED; absent: THP as the sysfs modes and madvise say. fork
   * and execve keep it (MMF_INIT_MASK).
   */
  thpDisable?: ThpDisable;
  /**
   * prctl(PR_SET_MDWE) (mm/mdwe.ts): MMF_HAS_MDWE, with MMF_HAS_MDWE_NO_INHERIT (v6.7) when
   * `noInherit`; absent: no MDWE. fork and execve keep it unless noInherit.
   */
  mdwe?: { readonly noInherit: boolean };
  /** mm->context.pkey_allocation_map and the thread's pkey rights register (mm/pkeys.ts); absent: untouched since mm creation */
  pkeys?: PkeyState;
  /** a fatal signal is pending (`kill`): the process runs no more user code; its memory goes at `exit` */
  dying?: boolean;
  /** MMF_UNSTABLE: process_mrelease() reaped it (mm/mrelease.ts); new faults there are SIGBUS */
  unstable?: boolean;
}

/** The two prctl(PR_SET_THP_DISABLE) settings: every VMA, or every VMA not advised (VM_HUGEPAGE, MADV_COLLAPSE). */
export type ThpDisable = 'completely' | 'except-advised';

/** An address range in pages (Mm.ranges). */
export interface MappingRange {
  readonly start: number;
  readonly pages: number;
}

/** A GUP reference handed to a driver: the pages it may DMA to. */
export interface GupHandle {
  readonly name: string;
  readonly mm: Mm;
  readonly vma: Vma;
  readonly vpn: number;
  readonly pfns: number[];
  readonly pin: boolean;
  readonly write: boolean;
  readonly longterm: boolean;
  /** who owned each pfn's block when pinned (for dma-to-foreign-block) */
  readonly owners: (string | null)[];
  released: boolean;
}
