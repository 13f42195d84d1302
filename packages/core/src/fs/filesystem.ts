import type { Kernel } from '../kernel.js';
import type { Iomap, DaxIomapOps, WaitCallbacks } from '../dax/dax.js';
import { InputError, KernelError } from '../errors.js';
import type { Vmf } from '../mm/fault.js';
import type { KernelDescription } from '../plugin.js';
import type { DriverPlugin } from '../driver.js';
import { RwSem, type Op } from '../sched.js';
import type { Device, FsHandle, Inode, Vma, VmFlags } from '../types.js';
import { BlockAllocator } from './blocks.js';
import { PG } from '../mm/pages.js';
import { kernelAtLeast } from '../features.js';
import { daxTriState, describeDaxOption, type DaxMode, type DaxMountOption, type Directory } from './daxmode.js';
import { commitJournal, Journal, metadataDirty } from './journal.js';

/** dax_break_layout_final() waits holding no lock the wait would drop. */
const NO_LOCK_TO_DROP: WaitCallbacks = {
  release: () => {},
  reacquire: function* (): Op {
    yield* [];
  },
};

/** Mount options besides dax that some filesystem knows (a `mount` step's fields). */
export interface FsMountOptions {
  /** ext4 data=journal|ordered|writeback */
  data?: 'journal' | 'ordered' | 'writeback';
  /** ext4 delalloc (true) or nodelalloc (false); unset: the default (delalloc) */
  delalloc?: boolean;
  /** mkfs.ext4 -O inline_data: the filesystem's feature, made at the device's first mount */
  inlineData?: boolean;
  /** mkfs.ext4 -O verity: the filesystem's feature, made at the device's first mount */
  verity?: boolean;
}

/**
 * What a filesystem's file server answers (FUSE: the model's virtiofsd), given by a `mount` step:
 * each mount is a new connection (FUSE_INIT) whose server opens every file the same way.
 */
export interface FileServerOptions {
  /** FOPEN_DIRECT_IO in every FUSE_OPEN / FUSE_CREATE reply (virtiofsd --cache=never) */
  fopenDirectIo?: boolean;
  /** FUSE_DIRECT_IO_ALLOW_MMAP in the FUSE_INIT reply (FUSE_DIRECT_IO_RELAX, the same bit, in v6.6) */
  directIoAllowMmap?: boolean;
}

/**
 * What a direct I/O to a file server does with the range's page cache: written back first
 * (filemap_write_and_wait_range), and for a write invalidated before the requests
 * (invalidate_inode_pages2_range: unmapped from every process, COW copies kept, dropped) and
 * after them, over the pages written (`written`: kiocb_invalidate_post_direct_write) or the
 * whole range asked for (`range`).
 */
export interface DirectIoCoherence {
  readonly writeback: boolean;
  readonly invalidateBefore: boolean;
  readonly invalidateAfter: 'written' | 'range' | false;
}

/**
 * The fallocate(2) modes besides FALLOC_FL_PUNCH_HOLE (the `punch-hole` step): 0
 * (FALLOC_FL_ALLOCATE_RANGE, unwritten extents over the holes), FALLOC_FL_ZERO_RANGE,
 * FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE and
 * FALLOC_FL_WRITE_ZEROES (v6.17).
 */
export type FallocateMode = 'allocate' | 'zero-range' | 'collapse-range' | 'insert-range' | 'unshare-range' | 'write-zeroes';

/** include/uapi/linux/falloc.h names, for messages. */
export const FALLOC_FLAG: Record<FallocateMode, string> = {
  allocate: 'FALLOC_FL_ALLOCATE_RANGE',
  'zero-range': 'FALLOC_FL_ZERO_RANGE',
  'collapse-range': 'FALLOC_FL_COLLAPSE_RANGE',
  'insert-range': 'FALLOC_FL_INSERT_RANGE',
  'unshare-range': 'FALLOC_FL_UNSHARE_RANGE',
  'write-zeroes': 'FALLOC_FL_WRITE_ZEROES',
};

/** MAX_LFS_FILESIZE on 64-bit (LLONG_MAX): s_maxbytes of XFS and FUSE. */
export const MAX_LFS_FILESIZE = 2 ** 63 - 1;

/** A filesystem plugin: mounts a DAX filesystem on a device. */
export interface FilesystemPlugin {
  readonly kind: 'fs';
  readonly name: string;
  /** 'xfs', 'ext4', 'fuse' */
  readonly fsName: string;
  readonly coreRange?: string;
  unsupported?(kernel: KernelDescription): string | null;
  mount(k: Kernel, device: Device): DaxFilesystem;
  /**
   * mount(2) on a block device that offers no DAX (a raw-mode pmem namespace, a dm device over
   * one; `why` says which): throws the filesystem's answer to the dax option — a refused mount,
   * or KernelError.unsupported where its mount without DAX is not modelled — and returns where
   * it mounts without DAX (on a raw namespace Kernel.mount then makes a page-cache filesystem:
   * `bdevDax` false; over a dm device that is not modelled). Absent: every such mount is not modelled.
   */
  mountWithoutDaxDevice?(k: Kernel, device: { readonly name: string; readonly why: string }, dax: DaxMountOption): void;
  /**
   * A driver that a `probe` without an explicit driver uses when this filesystem is the
   * kernel's (virtio-fs: the DAX cache window), so scenarios written for pmem run unchanged.
   */
  readonly probeDriver?: DriverPlugin;
}

/**
 * struct dax_holder_operations: what a filesystem registers with fs_dax_get_by_bdev() to hear
 * about failures of its DAX device; `pre-remove` is MF_MEM_PRE_REMOVE, sent by kill_dax() before
 * the device goes away (offset/length in bytes of the device; Infinity = to its end).
 */
export interface DaxHolder {
  notifyFailure(offset: number, length: number, kind: 'pre-remove'): Op;
}

/**
 * What every DAX filesystem shares: inodes with their block maps on the shared allocator,
 * iomap_begin() for DAX faults, the fault-lock wait callbacks. Each filesystem writes its own
 * truncate / punch-hole / reflink / break-layouts ordering as small named steps.
 */
export abstract class DaxFilesystem implements FsHandle, DaxIomapOps {
  abstract readonly name: string;
  /** VM flags its ->mmap sets (xfs_file_mmap/ext4_file_mmap: VM_HUGEPAGE; fuse_dax_mmap: VM_MIXEDMAP|VM_HUGEPAGE) */
  abstract readonly mmapFlags: Partial<VmFlags>;
  /** MAP_SYNC in its f_op->mmap_supported_flags (ext4 and XFS) */
  readonly mapSync: boolean = false;
  /** The dax holder it registers, if any (only XFS does: ext4 and FUSE pass NULL holder ops). */
  readonly daxHolder: DaxHolder | null = null;
  readonly inodes = new Map<string, Inode>();
  readonly blocks: BlockAllocator;
  private nextIno = 1;
  /** the mount's DAX policy, from its dax option (parseDaxOption; fs/daxmode.ts) */
  daxMode: DaxMode = 'always';
  /**
   * The block device has a dax_device (fs_dax_get_by_bdev(): ext4's EXT4_FLAGS_BDEV_IS_DAX, v5.8;
   * XFS's bt_daxdev). False on a raw pmem namespace (Kernel.mount): no file is ever S_DAX there,
   * whatever the dax policy and FS_XFLAG_DAX say (ext4_should_enable_dax()).
   */
  bdevDax = true;
  /** mounted now; umount keeps what is on the device (inodes, blocks, directories) for the next mount */
  mounted = true;
  /** directories by name ('/' is the root): only their FS_XFLAG_DAX is modelled, which new children inherit */
  readonly dirs = new Map<string, Directory>([['/', { name: '/', daxFlag: false }]]);
  /** the open files of `open` steps on it, by name (each holds its inode: fs/daxmode.ts) */
  readonly openFiles = new Map<string, Inode>();
  /** the directory each file and directory is in, by name (rename moves an entry: fs/daxmode.ts) */
  readonly parents = new Map<string, string>();
  /** mounted read-only (SB_RDONLY): `remount: { ro: true }` (fs/daxmode.ts); every mount starts read-write */
  readOnly = false;
  /** the `open` steps' files opened for writing (O_RDWR: FMODE_WRITER holds write access to the mount) */
  readonly openForWrite = new Set<string>();
  /**
   * The function that commits its metadata journal (the fs.step a commit shows), or null for a
   * filesystem whose metadata durability is not modelled (FUSE: the host's). fs/journal.ts.
   */
  readonly journalCommit: string | null = null;
  /** what the journal has committed, and the dm-log-writes marks of the device (fs/journal.ts) */
  readonly journal = new Journal();

  constructor(
    protected readonly k: Kernel,
    readonly device: Device,
  ) {
    this.blocks = new BlockAllocator(k, device);
  }

  /** Truncate to `size` bytes with the filesystem's full ordering. */
  abstract truncate(inode: Inode, size: number): Op;
  /** fallocate(FALLOC_FL_PUNCH_HOLE) with the filesystem's ordering. */
  abstract punchHole(inode: Inode, offset: number, length: number): Op;
  /**
   * fallocate(mode) with the filesystem's ordering and refusals, after vfs_fallocate()'s checks
   * (a positive length; COLLAPSE_RANGE, INSERT_RANGE and WRITE_ZEROES without KEEP_SIZE; the
   * range within s_maxbytes). `keepSize`: FALLOC_FL_KEEP_SIZE (allocate, zero and unshare range).
   */
  abstract fallocate(inode: Inode, mode: FallocateMode, offset: number, length: number, keepSize: boolean): Op;

  /**
   * sb->s_maxbytes: the largest file the filesystem allows (vfs_fallocate's EFBIG, insert range's
   * EFBIG). XFS (xfs_max_file_offset) and FUSE: MAX_LFS_FILESIZE on 64-bit; ext4 overrides.
   */
  get maxBytes(): number {
    return MAX_LFS_FILESIZE;
  }
  /** The filesystem's ->fault / ->huge_fault for a DAX file (takes its fault lock shared). */
  abstract fault(vmf: Vmf, inode: Inode): Op;
  /** ->pfn_mkwrite: a write to a present read-only DAX PTE (a full DAX write fault). */
  abstract pfnMkwrite(vmf: Vmf, inode: Inode): Op;

  /**
   * FICLONE: share all of src's blocks with a new file. A filesystem without ->remap_file_range
   * never gets the call: do_clone_file_range() (fs/remap_range.c) fails it with -EOPNOTSUPP, an
   * operation this kernel does not have (a scenario about reflink is `unsupported` there).
   */
  *reflink(src: Inode, _to: string): Op<Inode> {
    throw KernelError.unsupported('EOPNOTSUPP', `${this.name} has no ->remap_file_range: do_clone_file_range() refuses FICLONE of ${src.name} (fs/remap_range.c)`);
  }

  /** Emit `fs.step`: the ordering reached the kernel function `step` names. */
  protected step(inode: Inode, step: string): void {
    this.k.emit('fs.step', { fs: this.name, file: inode.name, step });
  }

  /**
   * The names the ordering gives its two locks (fs.step): the VFS inode lock (i_rwsem) and the
   * fault lock. ext4 and FUSE: EXT4_I()->i_mmap_sem / fi->i_mmap_sem up to v5.14,
   * mapping->invalidate_lock from v5.15 (Jan Kara's invalidate_lock series: "ext4: Convert to
   * use mapping->invalidate_lock", "fuse: Convert to using invalidate_lock"). XFS overrides.
   */
  protected lockNames(): { inode: readonly [string, string]; faults: readonly [string, string] } {
    return {
      inode: ['inode_lock', 'inode_unlock'],
      faults: kernelAtLeast(this.k.version, 5, 15) ? ['filemap_invalidate_lock', 'filemap_invalidate_unlock'] : ['down_write(i_mmap_sem)', 'up_write(i_mmap_sem)'],
    };
  }

  protected *lockInode(inode: Inode): Op {
    yield* inode.iolock.downWrite();
    this.step(inode, this.lockNames().inode[0]);
  }

  protected unlockInode(inode: Inode): void {
    inode.iolock.upWrite();
    this.step(inode, this.lockNames().inode[1]);
  }

  /** Take the fault lock exclusively: no new DAX fault can map the file until unlockFaults(). */
  protected *lockFaults(inode: Inode): Op {
    yield* inode.mmaplock.downWrite();
    this.step(inode, this.lockNames().faults[0]);
  }

  protected unlockFaults(inode: Inode): void {
    inode.mmaplock.upWrite();
    this.step(inode, this.lockNames().faults[1]);
  }

  get pageSize(): number {
    return this.k.mmu.basePageSize;
  }

  newInode(name: string, size: number, dir = '/'): Inode {
    if (this.inodes.has(name) || this.dirs.has(name)) throw new KernelError('EEXIST', `file '${name}' exists`);
    const parent = this.dir(dir);
    const id = this.k.newAddressSpaceId();
    const inode: Inode = {
      id: this.nextIno++,
      name,
      size,
      blocks: new Map(),
      mapping: { id, owner: name, entries: new Map(), mmaps: new Set() },
      iolock: new RwSem(`${name}:i_rwsem`, () => this.k.currentThread),
      mmaplock: new RwSem(`${name}:invalidate_lock`, () => this.k.currentThread),
      device: this.device,
      state: {},
      daxFlag: this.newChildDaxFlag(parent),
      sDax: false,
      incore: false,
      dontcache: false,
      opens: 0,
      cache: null,
    };
    this.inodes.set(name, inode);
    this.parents.set(name, parent.name);
    this.setupInode(inode);
    return inode;
  }

  // ---- per-inode DAX (fs/daxmode.ts) ------------------------------------------------------

  /**
   * The mount's dax option as this filesystem parses it. The base accepts only the legacy
   * `-o dax` (and `dax=always`): a filesystem without modelled dax= modes refuses the rest as
   * not modelled. XFS and ext4 override with their releases' parsers.
   */
  parseDaxOption(option: DaxMountOption): DaxMode {
    if (option === true || option === 'always') return 'always';
    throw KernelError.unsupported('EOPNOTSUPP', `${this.name}: mount ${describeDaxOption(option)} is not modelled (only -o dax: every file DAX)`);
  }

  /**
   * The mount options other than dax (ext4's data=, [no]delalloc, and mkfs's inline_data), checked
   * against the dax mode `mode` the same mount asks for; throws before changing anything, so a
   * refused mount leaves the filesystem as it was. The base knows none of them: the filesystem's
   * parser refuses an unknown option with EINVAL (xfs_fs_parse_param, fuse_parse_param).
   */
  applyMountOptions(_mode: DaxMode, o: FsMountOptions): void {
    const given = (Object.keys(o) as (keyof FsMountOptions)[]).filter((key) => o[key] !== undefined);
    if (given.length) throw new KernelError('EINVAL', `${this.name}: unknown mount option ${given.join(', ')} (only ext4 has data=, delalloc, inline_data and verity)`);
  }

  /**
   * The file server's answers (a `mount` step's server fields): only FUSE has a server, so any
   * other filesystem refuses them as input errors.
   */
  applyServerOptions(o: FileServerOptions): void {
    const given = (Object.keys(o) as (keyof FileServerOptions)[]).find((key) => o[key] !== undefined);
    if (given) throw new InputError(`mount.${given}: ${this.name} has no file server (it is what a FUSE server answers): leave it out, or mount fs: fuse`, undefined, given);
  }

  /**
   * Whether read(2) and write(2) of a file without S_DAX bypass its page cache, O_DIRECT or not
   * (FUSE's FOPEN_DIRECT_IO open files). The base: never.
   */
  fopenDirectIo(_inode: Inode): boolean {
    return false;
  }

  /** The page-cache handling of an FOPEN_DIRECT_IO read or write (only where fopenDirectIo()). */
  fopenDirectIoCoherence(): DirectIoCoherence {
    throw new Error(`${this.name}: no FOPEN_DIRECT_IO files`);
  }

  /**
   * What the filesystem's ->mmap does before a file without S_DAX gets a page-cache mapping
   * (MAP_SHARED when `shared`). The base: nothing (generic_file_mmap).
   */
  *mmapPageCache(_inode: Inode, _shared: boolean): Op {
    yield* [];
  }

  /**
   * open(2) of the file, for writing when `write` (a shared writable mapping needs an O_RDWR
   * descriptor): what the filesystem's ->open refuses. The base refuses nothing; ext4 refuses to
   * open a verity file for writing (fsverity_file_open: EPERM).
   */
  checkOpen(_inode: Inode, _write: boolean): void {}

  /** FS_IOC_ENABLE_VERITY (fsverity_ioctl_enable): only ext4's fs-verity is modelled. */
  *enableVerity(inode: Inode): Op {
    throw KernelError.unsupported('EOPNOTSUPP', `${this.name}: FS_IOC_ENABLE_VERITY of '${inode.name}' is not modelled (only ext4's fs-verity)`);
  }

  /**
   * FS_IOC_SETFLAGS changing FS_JOURNAL_DATA_FL (chattr +j / -j) of a file: only ext4 has it
   * (ext4_ioctl_setflags); elsewhere the flag is not in the filesystem's settable flags.
   */
  *setJournalFlag(inode: Inode, _on: boolean): Op {
    throw new KernelError('EOPNOTSUPP', `${this.name}: FS_JOURNAL_DATA_FL of '${inode.name}' (chattr +j is ext4's)`);
  }

  /** S_DAX for an inode being set up (xfs_inode_should_enable_dax, ext4_should_enable_dax); the base: dax=always. */
  protected shouldEnableDax(_inode: Inode): boolean {
    return this.daxMode === 'always';
  }

  /** FS_XFLAG_DAX of a new file or directory in `parent` (XFS and ext4 inherit the parent's); the base has none. */
  newChildDaxFlag(_parent: Directory): boolean {
    return false;
  }

  /**
   * FS_IOC_FSSETXATTR changing FS_XFLAG_DAX of a file or directory: the filesystem's refusals
   * (throws), and whether the inode is marked I_DONTCACHE (d_mark_dontcache) so that S_DAX follows
   * the flag once its last user goes. The base has no per-inode DAX flag.
   */
  checkDaxFlagChange(target: Inode | Directory, _on: boolean): { dontcache: boolean } {
    throw KernelError.unsupported('EOPNOTSUPP', `${this.name}: FS_XFLAG_DAX of '${target.name}' is not modelled (no per-inode DAX here)`);
  }

  /**
   * Whether changing FS_XFLAG_DAX marks the inode I_DONTCACHE (d_mark_dontcache, v5.8: XFS's
   * xfs_ioctl_setattr_prepare_dax(), ext4's ext4_dax_dontcache()): a regular file whose flag
   * changes on a dax=inode mount; under dax=always|never, for a directory, or before v5.8, never.
   */
  protected marksDontcache(target: Inode | Directory, on: boolean): boolean {
    return 'blocks' in target && daxTriState(this.k.version) && this.daxMode === 'inode' && target.daxFlag !== on;
  }

  /** A directory by name (ENOENT when there is none). */
  dir(name: string): Directory {
    const d = this.dirs.get(name);
    if (!d) throw new KernelError('ENOENT', `no directory '${name}' on ${this.device.name}`);
    return d;
  }

  /**
   * The inode is set up in core (xfs_setup_inode -> xfs_diflags_to_iflags(init), ext4_set_inode_flags
   * at iget or creation): S_DAX decided now and kept while the inode is cached. A file without
   * S_DAX gets a page cache whose folios read its blocks (mm/pagecache.ts).
   */
  setupInode(inode: Inode): void {
    inode.incore = true;
    inode.dontcache = false;
    inode.sDax = this.bdevDax && this.shouldEnableDax(inode);
    if (inode.sDax || inode.cache) return;
    const fsName = this.name === 'ext4' || this.name === 'fuse' ? this.name : 'xfs';
    inode.cache = this.k.pageCache.createForInode(`${inode.name}@${this.device.name}`, this.pages(inode.size), fsName, (index) => this.readCachedPage(inode, index));
  }

  /**
   * The data a page-cache read of page `index` of a file without S_DAX finds (->read_folio):
   * zeroes for a hole or an unwritten extent (no bio), else its block, read by a bio that the
   * pmem block device fails over a bad sector (pmem_do_read(): is_bad_pmem() of pmem->bb,
   * BLK_STS_IOERR; pmem_do_bvec() before v5.7): null.
   */
  protected readCachedPage(inode: Inode, index: number): string | null {
    const block = inode.blocks.get(index);
    if (block === undefined || this.isUnwritten(inode, index)) return '';
    const pfn = this.blocks.pfnOf(block);
    const sectors = this.pageSize / 512;
    if (this.k.pmemBadblock(pfn * sectors, sectors)) return null;
    return this.k.pages.data.get(pfn) ?? '';
  }

  /**
   * A change to a read-only filesystem is EROFS before the filesystem sees it: the VFS asks for
   * write access to the mount first (mnt_want_write() / mnt_want_write_file(): __mnt_is_readonly()
   * tests MNT_READONLY and SB_RDONLY, fs/namespace.c), and open(2) for writing fails in may_open()
   * -> inode_permission() ("Nobody gets write access to a read-only fs": sb_permission(), fs/namei.c).
   */
  checkWritable(what: string): void {
    if (this.readOnly) throw new KernelError('EROFS', `${what}: ${this.name} on ${this.device.name} is mounted read-only`);
  }

  /**
   * Who holds write access to the mount (mnt_get_writers() > 0), or null: a file open for writing,
   * or a shared writable mapping, whose O_RDWR file the VMA keeps open (vma->vm_file) after close.
   * A private or read-only mapping is taken to come from an O_RDONLY descriptor, as mmap's own
   * checkOpen() takes it.
   */
  writer(): string | null {
    for (const fd of this.openForWrite) return `'${this.openFiles.get(fd)?.name ?? fd}' is open for writing (${fd})`;
    for (const inode of this.inodes.values()) {
      const vma = this.mappingsOf(inode).find((v) => v.flags.shared && v.flags.write);
      if (vma) return `'${inode.name}' is mapped shared and writable ('${vma.name}' in ${vma.mm.name})`;
    }
    return null;
  }

  /** The VMAs mapping the file, through DAX or through its page cache. */
  mappingsOf(inode: Inode): Vma[] {
    return [...inode.mapping.mmaps, ...(inode.cache?.mapping.mmaps ?? [])];
  }

  /** An open file, or a VMA mapping it (through DAX or its page cache), holds the inode (i_count). */
  inUse(inode: Inode): boolean {
    return inode.opens > 0 || inode.mapping.mmaps.size > 0 || (inode.cache?.mapping.mmaps.size ?? 0) > 0;
  }

  /**
   * A path lookup of the file: the in-core inode, set up again if it was evicted. An inode marked
   * I_DONTCACHE that nothing holds any more was evicted when its last user went (iput_final):
   * done here, when it is next looked up, unless its page cache or DAX pages are still busy.
   */
  iget(inode: Inode): Inode {
    if (!this.mounted) throw new KernelError('ENOENT', `no file '${inode.name}': ${this.device.name} is not mounted`);
    if (inode.incore && inode.dontcache && !this.inUse(inode) && this.evictable(inode) === null && !this.evictionWaits(inode)) this.k.run(this.evict(inode));
    if (!inode.incore) this.setupInode(inode);
    return inode;
  }

  /**
   * Why prune_icache_sb() keeps an unused inode, or null: invalidate_mapping_pages() cannot drop a
   * page-cache folio with references beyond the cache's (a GUP pin), so inode_lru_isolate()
   * keeps the inode. A busy DAX page does not keep it: see evictionWaits().
   */
  evictable(inode: Inode): string | null {
    // the cache holds one reference per index: a PMD-order folio collapse_file() made, nr of them
    for (const [index, pfn] of inode.cache?.cache ?? []) if (this.k.refcount(pfn) > this.k.folios.nr(this.k.folios.folio(pfn))) return `page ${index} of its page cache is referenced (refcount ${this.k.refcount(pfn)})`;
    return null;
  }

  /**
   * Eviction would wait for a busy DAX page: v6.15's xfs_fs_evict_inode() / ext4_evict_inode()
   * call dax_break_layout_final() (an uninterruptible wait) first. Earlier eras evict anyway,
   * and dax_disassociate_entry() WARNs about the busy page it truncates.
   */
  evictionWaits(inode: Inode): boolean {
    if (this.k.features['fsdax-refcount'] === 'legacy') return false;
    for (const entry of inode.mapping.entries.values()) if (this.k.dax.busyPage(entry) !== null) return true;
    return false;
  }

  /**
   * evict(): the page cache is written back first (the model's drop-caches and umount are
   * `sync` then eviction: writeback allocates the blocks of pages written over holes, as
   * delalloc conversion does) and dropped (truncate_inode_pages_final); a DAX inode's entries
   * are deleted (v6.15: dax_break_layout_final first). The inode leaves core: S_DAX is decided
   * again at the next lookup.
   */
  *evict(inode: Inode): Op {
    if (inode.cache) {
      const cache = inode.cache;
      this.writeback(inode);
      this.k.pageCache.evict(cache);
      inode.cache = null;
    } else if (inode.mapping.entries.size > 0) {
      if (this.k.features['fsdax-refcount'] !== 'legacy') yield* this.k.dax.breakLayout(inode, 0, Infinity, NO_LOCK_TO_DROP);
      yield* this.k.dax.truncatePagecache(inode, 0, Infinity);
    }
    this.step(inode, 'evict');
    inode.incore = false;
    inode.dontcache = false;
  }

  /**
   * Write every cached page of a file without S_DAX to its block (filemap_write_and_wait, as the
   * model's writeback: pages are not tracked clean or dirty); a page written over a hole gets a
   * block, as delalloc conversion gives it one. A folio a failed read left not uptodate is not
   * dirty and is not written. The bio's pmem_do_write() clears the poison of the sectors it
   * writes (pmem_clear_poison(): Kernel.clearMediaErrors).
   */
  protected writeback(inode: Inode): void {
    for (const [index, pfn] of [...(inode.cache?.cache ?? [])].sort((a, b) => a[0] - b[0])) {
      if (index >= this.pages(inode.size) || inode.cache?.notUptodate.has(index)) continue;
      const data = this.k.pages.data.get(pfn) ?? '';
      let block = inode.blocks.get(index);
      if (block === undefined && data === '') continue;
      if (block === undefined) {
        block = this.blocks.alloc(inode.name, index, 1)[0]!;
        inode.blocks.set(index, block);
      }
      this.unwrittenOf(inode).delete(index); // writeback converts an unwritten extent it writes
      const blockPfn = this.blocks.pfnOf(block);
      this.k.pages.data.set(blockPfn, data);
      this.k.clearMediaErrors((blockPfn * this.pageSize) / 512, this.pageSize / 512);
      this.k.pageCache.cleanForIo(pfn);
    }
  }

  /**
   * sync_filesystem(): every file's page cache written back to its blocks (writeback above), then
   * ->sync_fs(wait) commits the journal (xfs_fs_sync_fs -> xfs_log_force(XFS_LOG_SYNC);
   * ext4_sync_fs -> jbd2 commit and wait): fs/journal.ts.
   */
  sync(): void {
    for (const inode of this.inodes.values()) if (inode.cache) this.writeback(inode);
    commitJournal(this);
  }

  /**
   * vfs_fsync_range() of the file (fsync, fdatasync, msync MS_SYNC, dax_finish_sync_fault):
   * xfs_file_fsync / ext4_sync_file write the page cache back (a DAX file's
   * dax_writeback_mapping_range() only flushes CPU caches, which the model has not), then force
   * the journal if the file has uncommitted metadata (fs/journal.ts). `caller` names the path.
   */
  fsync(inode: Inode, caller: string): void {
    if (inode.cache) this.writeback(inode);
    if (!metadataDirty(this, inode)) return;
    this.step(inode, `${caller}: ${this.journalCommit}`);
    commitJournal(this);
  }

  /**
   * FS_IOC_FSSETXATTR is about to change FS_XFLAG_DAX of a regular file (after checkDaxFlagChange
   * accepted it): what the filesystem does to the file first. The base: nothing.
   */
  *prepareDaxFlagChange(_inode: Inode, _on: boolean): Op {
    yield* [];
  }

  /**
   * truncate_pagecache() after i_size changed to `size`: the DAX entries past it (eras (a)/(b)),
   * or the page-cache folios (unmapped from every mapping, private COW copies included).
   */
  protected *truncatePagecacheTo(inode: Inode, size: number): Op {
    if (inode.cache) yield* this.k.pageCache.truncate(inode.cache, size);
    else yield* this.k.dax.truncatePagecache(inode, this.pages(size), Infinity);
  }

  /** truncate_pagecache_range() of pages [first, last]: DAX entries, or page-cache folios (COW copies kept). */
  protected *truncatePagecacheRange(inode: Inode, first: number, last: number): Op {
    const ps = this.pageSize;
    if (inode.cache) yield* this.k.pageCache.punchHole(inode.cache, first * ps, (last - first + 1) * ps);
    else yield* this.k.dax.truncatePagecache(inode, first, last);
  }

  /**
   * Create a file and allocate all its blocks (like fallocate after open(O_CREAT)). `inline`: the
   * file is made by a small first write(2) instead; only ext4 keeps such data in the inode
   * (inline_data), elsewhere it is an ordinary block.
   */
  *create(name: string, size: number, dir = '/', _how: { inline: boolean } = { inline: false }): Op<Inode> {
    const inode = this.newInode(name, size, dir);
    const pages = Math.ceil(size / this.pageSize);
    const blocks = this.blocks.alloc(name, 0, pages);
    blocks.forEach((b, i) => inode.blocks.set(i, b));
    return inode;
  }

  /**
   * iomap_begin() for `pages` pages from `index`: the extent at index. A hole reads as a hole as
   * long as it lasts (up to `pages`); a write allocates it, clipped to the next allocated block
   * (xfs_direct_write_iomap_begin -> xfs_iomap_write_direct over the hole xfs_bmapi_read found;
   * ext4_iomap_alloc -> ext4_map_blocks, which allocates up to the next extent), so a PMD write
   * fault on a PMD-sized hole allocates the whole PMD, not the faulting page.
   */
  *iomapBegin(inode: Inode, index: number, write: boolean, pages = 1): Op<Iomap> {
    let block = inode.blocks.get(index);
    if (block !== undefined && this.isUnwritten(inode, index)) {
      const run = this.unwrittenRun(inode, index, pages);
      if (!write) return { type: 'hole', pfn: 0, contiguous: run, shared: false };
      this.convertUnwritten(inode, index, run);
    }
    if (block === undefined) {
      let hole = 1;
      while (hole < pages && !inode.blocks.has(index + hole)) hole++;
      if (!write) return { type: 'hole', pfn: 0, contiguous: hole, shared: false };
      this.blocks.alloc(inode.name, index, hole).forEach((b, i) => inode.blocks.set(index + i, b));
      this.zeroNewBlocks(inode, index, hole);
      block = inode.blocks.get(index)!;
    }
    let contiguous = 1;
    const run = this.blocks.physicalRun(block);
    while (contiguous < run && inode.blocks.get(index + contiguous) === block + contiguous && !this.isUnwritten(inode, index + contiguous)) contiguous++;
    const shared = this.blocks.ownersOf(block).length > 1;
    return { type: 'mapped', pfn: this.blocks.pfnOf(block), contiguous, shared, dirty: write && this.metadataDirty(inode) };
  }

  /**
   * IOMAP_F_DIRTY of the file's iomap: it has metadata the journal has not committed (after this
   * very allocation, too). XFS: xfs_bmbt_to_iomap() (xfs_ipincount() and ili_fsync_fields beyond
   * XFS_ILOG_TIMESTAMP); ext4: ext4_set_iomap() (ext4_inode_datasync_dirty()). fs/journal.ts.
   * The kernel sets it on any iomap; only a write fault looks at it, so the model asks only then.
   */
  metadataDirty(inode: Inode): boolean {
    return metadataDirty(this, inode);
  }

  /**
   * A DAX write fault's new blocks are zeroed before they are mapped (XFS: XFS_BMAPI_ZERO ->
   * xfs_zero_extent -> dax_zero_page_range; ext4: EXT4_GET_BLOCKS_CREATE_ZERO ->
   * ext4_issue_zeroout), and the pmem write clears any poison there (pmem_clear_poison:
   * badblocks and PG_hwpoison) — why ndctl's dax-poison test rewrites a punched block.
   */
  protected zeroNewBlocks(inode: Inode, index: number, count: number): void {
    const p = this.k.pages;
    for (let i = index; i < index + count; i++) {
      const pfn = this.blocks.pfnOf(inode.blocks.get(i)!);
      if (p.has(pfn)) p.flags[p.slot(pfn)] = p.flags[p.slot(pfn)]! & ~PG.hwpoison;
      const sectors = this.k.mmu.basePageSize / 512;
      this.k.clearMediaErrors(pfn * sectors, sectors);
    }
  }

  // ---- read(2) / write(2) (fs/rw.ts) --------------------------------------------------------

  /**
   * IOMAP_F_NEW of a write's iomap at `index`: the write allocates a hole or converts an unwritten
   * extent (XFS: imap_needs_alloc() -> xfs_iomap_write_direct(); ext4: EXT4_MAP_NEW from
   * ext4_iomap_alloc()), so dax_iomap_iter() invalidates the range first. FUSE overrides.
   */
  writeAllocates(inode: Inode, index: number): boolean {
    return !inode.blocks.has(index) || this.isUnwritten(inode, index);
  }

  /**
   * Whether direct I/O goes to a file server as requests carrying the user's pages (FUSE:
   * fuse_direct_io, FUSE_READ / FUSE_WRITE) instead of as bios to the filesystem's own blocks
   * (XFS, ext4: iomap_dio_rw). Such a filesystem implements serverRead() / serverWrite().
   */
  get directIoToServer(): boolean {
    return false;
  }

  /**
   * Whether a DAX write(2) of bytes [start, end) goes to the server as a direct write instead of
   * through dax_iomap_rw() (FUSE's file-extending writes). XFS and ext4 send every DAX write through it.
   */
  daxWriteToServer(_inode: Inode, _start: number, _end: number): boolean {
    return false;
  }

  /** The server's data for file page `index` (a FUSE_READ of it); only for directIoToServer. */
  serverRead(inode: Inode, _index: number): string {
    throw new Error(`${this.name}: ${inode.name} has no file server to read from`);
  }

  /** The server stores `data` at file page `index` (a FUSE_WRITE of it); only for directIoToServer. */
  serverWrite(inode: Inode, _index: number, _data: string): void {
    throw new Error(`${this.name}: ${inode.name} has no file server to write to`);
  }

  /**
   * Before (and after) direct I/O to pages [first, last] of a file without S_DAX: the page cache
   * is written back (filemap_write_and_wait_range; the model writes back every cached page, as it
   * does not track dirty ones) and, for a write, invalidated (invalidate_inode_pages2_range:
   * unmapped from every process, COW copies kept, dropped). A folio held beyond the cache and its
   * mappings (a GUP pin) cannot be invalidated: the kernel then falls back to a buffered write
   * (-ENOTBLK), which is not modelled.
   */
  *syncForDirectIo(inode: Inode, first: number, last: number, invalidate: boolean): Op {
    const cache = inode.cache;
    if (!cache) return;
    this.writeback(inode);
    if (!invalidate) return;
    for (const [index, pfn] of cache.cache) {
      if (index < first || index > last) continue;
      if (this.k.refcount(pfn) - this.k.mapcount(pfn) > this.k.folios.nr(this.k.folios.folio(pfn))) {
        throw KernelError.unsupported('EOPNOTSUPP', `direct write of ${inode.name}: page ${index} of its page cache is held (refcount ${this.k.refcount(pfn)}); the buffered fallback (-ENOTBLK) is not modelled`);
      }
    }
    yield* this.truncatePagecacheRange(inode, first, last);
  }

  /** Who owns the block behind a pfn, as `file[index]` (null: free, or not a data block). */
  ownerOfPfn(pfn: number): string | null {
    const b = this.blocks.blockOfPfn(pfn);
    if (b === null) return null;
    const owners = this.blocks.ownersOf(b);
    return owners.length ? owners.map((o) => `${o.file}[${o.index}]`).join('+') : null;
  }

  /** Free the file's blocks for pages [from, to) (xfs_itruncate_extents, ext4_ext_remove_space). */
  protected freeBlocks(inode: Inode, from: number, to: number): void {
    const idx = [...inode.blocks.keys()].filter((i) => i >= from && i < to).sort((a, b) => a - b);
    for (const i of idx) {
      this.blocks.release(inode.blocks.get(i)!, inode.name);
      inode.blocks.delete(i);
      this.unwrittenOf(inode).delete(i);
    }
  }

  // ---- unwritten extents (fallocate) --------------------------------------------------------

  /**
   * The file pages whose blocks are unwritten extents (XFS_EXT_UNWRITTEN, ext4's
   * EXT4_EXT_MARK_UNWRIT1): allocated, but read as zeroes whatever the block holds. A DAX read
   * fault maps the zero page there (iomap type IOMAP_UNWRITTEN is a hole to dax_iomap_fault); a
   * DAX write fault converts and zeroes the block first (XFS: imap_needs_alloc() for an unwritten
   * extent under IOMAP_DAX, xfs_iomap_write_direct(XFS_BMAPI_CONVERT | XFS_BMAPI_ZERO); ext4:
   * EXT4_GET_BLOCKS_CREATE_ZERO), so data a stale DMA left there is never seen.
   */
  private unwrittenOf(inode: Inode): Set<number> {
    let set = inode.state['unwritten'] as Set<number> | undefined;
    if (!set) {
      set = new Set();
      inode.state['unwritten'] = set;
    }
    return set;
  }

  /** Page `index` of the file is an unwritten extent (a reflink shares one as unwritten). */
  protected markUnwritten(inode: Inode, index: number): void {
    this.unwrittenOf(inode).add(index);
  }

  /** The file's unwritten pages become exactly `pages` (a log replay restores them: fs/journal.ts). */
  setUnwritten(inode: Inode, pages: ReadonlySet<number>): void {
    inode.state['unwritten'] = new Set(pages);
  }

  isUnwritten(inode: Inode, index: number): boolean {
    return (inode.state['unwritten'] as Set<number> | undefined)?.has(index) ?? false;
  }

  /** How many unwritten pages start at `index` (at most `max`). */
  private unwrittenRun(inode: Inode, index: number, max: number): number {
    let n = 1;
    while (n < max && this.isUnwritten(inode, index + n) && inode.blocks.has(index + n)) n++;
    return n;
  }

  /** A write converts unwritten pages [index, index + count): zeroed, then written extents. */
  private convertUnwritten(inode: Inode, index: number, count: number): void {
    for (let i = index; i < index + count; i++) {
      this.unwrittenOf(inode).delete(i);
      this.k.pages.data.set(this.blocks.pfnOf(inode.blocks.get(i)!), '');
    }
    this.zeroNewBlocks(inode, index, count);
  }

  /**
   * Preallocation (xfs_alloc_file_space(XFS_BMAPI_PREALLOC), ext4_alloc_file_blocks(
   * EXT4_GET_BLOCKS_CREATE_UNWRIT_EXT)): every hole among pages [first, stop) gets an unwritten
   * block; allocated pages stay as they are. Runs of holes are allocated together, as one
   * xfs_bmapi_write() / ext4_map_blocks() call covers a hole.
   */
  protected preallocate(inode: Inode, first: number, stop: number): void {
    for (let i = first; i < stop; ) {
      if (inode.blocks.has(i)) {
        i++;
        continue;
      }
      let n = 1;
      while (i + n < stop && !inode.blocks.has(i + n)) n++;
      this.blocks.alloc(inode.name, i, n).forEach((b, j) => {
        inode.blocks.set(i + j, b);
        this.unwrittenOf(inode).add(i + j);
      });
      i += n;
    }
  }

  /**
   * ext4_alloc_file_blocks(EXT4_GET_BLOCKS_CONVERT_UNWRITTEN) of pages [first, stop): holes get
   * unwritten blocks and written extents become unwritten in place
   * (ext4_ext_map_blocks -> convert_initialized_extent()): zeroed without a block freed.
   */
  protected convertToUnwritten(inode: Inode, first: number, stop: number): void {
    this.preallocate(inode, first, stop);
    for (let i = first; i < stop; i++) this.unwrittenOf(inode).add(i);
  }

  /**
   * Shift every block at page `from` or above by `by` pages, unwritten state with it: down for
   * collapse range (`by` < 0: xfs_bmap_collapse_extents, ext4_ext_shift_extents(SHIFT_LEFT);
   * pages [from + by, from) must be holes), up for insert range (`by` > 0:
   * xfs_bmap_insert_extents, ext4_ext_shift_extents(SHIFT_RIGHT); pages [from, from + by) become
   * a hole). The block keeps its owner file; its owner index follows (blocks.move), so a DMA
   * pinned for the old file offset is seen landing at another one.
   */
  protected shiftBlocks(inode: Inode, from: number, by: number): void {
    // moved in the direction of the shift, the first page to move is the farthest one
    const moving = [...inode.blocks.keys()].filter((i) => i >= from).sort((a, b) => (by > 0 ? b - a : a - b));
    const unwritten = this.unwrittenOf(inode);
    for (const i of moving) {
      const block = inode.blocks.get(i)!;
      if (inode.blocks.has(i + by)) throw new Error(`shifting the extents of ${inode.name}: page ${i + by} is not a hole`);
      inode.blocks.delete(i);
      inode.blocks.set(i + by, block);
      this.blocks.move(block, inode.name, i, i + by);
      if (unwritten.delete(i)) unwritten.add(i + by);
    }
  }

  /**
   * i_size after an allocating fallocate mode: offset + length unless FALLOC_FL_KEEP_SIZE or the
   * file is already that long (xfs_falloc_newsize, ext4's new_size); 0 when unchanged.
   */
  protected fallocNewSize(inode: Inode, offset: number, length: number, keepSize: boolean): number {
    return keepSize || offset + length <= inode.size ? 0 : offset + length;
  }

  /** The wait callback of break layouts: drop the fault lock across schedule(), retake it. */
  protected dropFaultLockWhileWaiting(inode: Inode): WaitCallbacks {
    return {
      release: () => {
        inode.mmaplock.upWrite();
        this.k.lockEvent(inode.mmaplock.name, 'up_write (wait)');
      },
      reacquire: function* (this: DaxFilesystem): Op {
        yield* inode.mmaplock.downWrite();
      }.bind(this),
    };
  }

  /**
   * Wait until no DAX page of [start, end] is busy, dropping the fault lock while sleeping.
   * Eras (a)/(b): the filesystem's own loop — dax_layout_busy_page_range() and one wait for the
   * page's idle refcount, then rescan (xfs_break_dax_layouts, ext4_break_layouts,
   * __fuse_dax_break_layouts). Era (c): dax_break_layout(), which also deletes the entries.
   */
  protected *breakDaxLayouts(inode: Inode, start: number, end: number): Op {
    const cb = this.dropFaultLockWhileWaiting(inode);
    if (this.k.features['fsdax-refcount'] !== 'legacy') {
      yield* this.k.dax.breakLayout(inode, start, end, cb);
      return;
    }
    for (;;) {
      const page = yield* this.k.dax.layoutBusyPageRange(inode, start, end);
      if (page === null) return;
      yield* this.k.dax.waitPageIdle(inode, page, cb);
    }
  }

  /**
   * The copy a private write fault takes of a file page (do_cow_fault -> ->fault with cow_page ->
   * dax_iomap_pte_fault -> dax_fault_cow_page): under the fault lock shared, iomap_begin for a
   * read; a hole or unwritten extent is zeroes (clear_user_highpage), a mapped one is copied
   * (copy_cow_page_dax).
   */
  *cowData(vmf: Vmf, inode: Inode): Op<string> {
    if (vmf.pgoff * this.pageSize >= inode.size) throw new KernelError('SIGBUS', `fault beyond EOF of ${inode.name}`);
    yield* inode.mmaplock.downRead();
    try {
      const map = yield* this.iomapBegin(inode, vmf.pgoff, false, 1);
      return map.type === 'hole' ? '' : (this.k.pages.data.get(map.pfn) ?? '');
    } finally {
      inode.mmaplock.upRead();
    }
  }

  /**
   * The common DAX fault: fault lock shared, try a PMD, else a PTE (dax_iomap_fault). A MAP_SYNC
   * write fault over uncommitted metadata is finished under the same lock (dax/dax.ts
   * finishSyncFault: XFS's __xfs_filemap_fault / xfs_dax_fault and ext4's ext4_dax_huge_fault,
   * its journal handle stopped first, call dax_finish_sync_fault() on VM_FAULT_NEEDDSYNC).
   */
  protected *daxFault(vmf: Vmf, inode: Inode): Op {
    yield* inode.mmaplock.downRead();
    try {
      const huge = yield* this.k.dax.pmdFault(vmf, inode, this);
      if (huge === 'fallback') yield* this.k.dax.pteFault(vmf, inode, this);
    } finally {
      inode.mmaplock.upRead();
    }
  }

  pages(bytes: number): number {
    return Math.ceil(bytes / this.pageSize);
  }
}
