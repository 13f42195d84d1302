import { DaxFilesystem, KernelError, daxTriState, describeDaxOption, kernelAtLeast, preempt, type DaxHolder, type FallocateMode, type DaxMode, type DaxMountOption, type Device, type Directory, type FilesystemPlugin, type Inode, type Iomap, type Kernel, type Op, type Vmf } from '@daxlab/core';

/**
 * XFS on a DAX device. Orderings follow fs/xfs: xfs_vn_setattr_size (truncate),
 * xfs_file_fallocate (punch hole, allocate, zero, collapse, insert and unshare range), xfs_break_layouts ->
 * xfs_break_dax_layouts, and
 * xfs_file_remap_range (reflink). Lock names: IOLOCK = inode->i_rwsem, MMAPLOCK =
 * mapping->invalidate_lock (a private mrlock in v5.10).
 */
export class Xfs extends DaxFilesystem {
  readonly name = 'xfs';
  /** xfs_file_mmap(): DAX files get VM_HUGEPAGE only (no VM_MIXEDMAP) */
  readonly mmapFlags = { hugepage: true };
  /** xfs_file_operations.mmap_supported_flags = MAP_SYNC */
  override readonly mapSync = true;
  /** xfs_file_fsync -> xfs_fsync_flush_log: xfs_log_force_seq() of the inode's last commit (xfs_log_force_lsn() in older trees) */
  override readonly journalCommit = 'xfs_log_force';

  /**
   * xfs_dax_holder_operations (fs/xfs/xfs_notify_failure.c), registered by xfs_open_devices()
   * through fs_dax_get_by_bdev(). For MF_MEM_PRE_REMOVE of the whole device (v6.6): freeze the
   * filesystem, walk the rmap btree and invalidate every in-core file's DAX pages
   * (invalidate_inode_pages2_range: clean entries deleted, every mapping zapped), then shut the
   * filesystem down. Killing the processes that map the pages (mf_dax_kill_procs) is not
   * modelled; their mappings are gone either way.
   */
  override readonly daxHolder: DaxHolder = {
    notifyFailure: function* (this: Xfs, _offset: number, _length: number, kind: 'pre-remove'): Op {
      for (const inode of this.inodes.values()) {
        this.step(inode, `xfs_dax_notify_failure(${kind === 'pre-remove' ? 'MF_MEM_PRE_REMOVE' : kind})`);
        yield* this.k.dax.invalidateInodePages2Range(inode, 0, Infinity);
      }
    }.bind(this),
  };

  constructor(k: Kernel, device: Device) {
    super(k, device);
  }

  /**
   * The dax mount option. From v5.8 (02beb2686ff9 "fs/xfs: Make DAX mount option a tri-state"),
   * xfs_fs_parse_param(): Opt_dax (the legacy `-o dax`) and Opt_dax_enum (dax=always|never|inode)
   * go to xfs_mount_set_dax_mode(); without either, neither XFS_FEAT_DAX_ALWAYS nor _NEVER is set:
   * DAX per inode. Before, `-o dax` was the only DAX option (dax=... is an unknown option), and
   * without it xfs_inode_supports_dax() still enabled DAX on an inode whose XFS_DIFLAG2_DAX was
   * set ("DAX mount option or DAX iflag must be set", v5.4 fs/xfs/xfs_iops.c): per inode too.
   */
  override parseDaxOption(option: DaxMountOption): DaxMode {
    return xfsDaxMode(this.k.version, option);
  }

  /**
   * xfs_inode_should_enable_dax() [v5.8+; xfs_inode_supports_dax() in v5.4]: not under dax=never;
   * xfs_inode_supports_dax(): a regular file, not reflinked (until v6.9's "xfs: drop experimental
   * warning for FSDAX" lifted it [M]), block size PAGE_SIZE and a DAX device (both hold here);
   * then dax=always, or XFS_DIFLAG2_DAX.
   */
  protected override shouldEnableDax(inode: Inode): boolean {
    if (this.daxMode === 'never') return false;
    if (this.reflinkExcludesDax() && this.isReflinked(inode)) return false;
    return this.daxMode === 'always' || inode.daxFlag;
  }

  /** xfs_inode_inherit_flags2(): a new file or directory gets XFS_DIFLAG2_DAX from its parent directory. */
  override newChildDaxFlag(parent: Directory): boolean {
    return parent.daxFlag;
  }

  /**
   * FS_IOC_FSSETXATTR of FS_XFLAG_DAX. xfs_ioctl_setattr_xflags() refuses to set it on a reflinked
   * file (-EINVAL, "Don't allow us to set DAX mode for a reflinked file for now") until the
   * restriction went (v6.9 [M]). v5.8+ xfs_ioctl_setattr_prepare_dax(): a regular file whose flag
   * changes on a dax=inode mount is d_mark_dontcache()d; under dax=always|never, or for a
   * directory, nothing. v5.4 (xfs_ioctl_setattr_dax_invalidate) flushed and invalidated the page
   * cache and left S_DAX alone (the live switch is `#if 0`): no I_DONTCACHE before v5.8.
   */
  override checkDaxFlagChange(target: Inode | Directory, on: boolean): { dontcache: boolean } {
    const file = 'blocks' in target ? target : null;
    if (on && file && this.reflinkExcludesDax() && this.isReflinked(file)) {
      throw new KernelError('EINVAL', `FS_XFLAG_DAX on reflinked file '${file.name}' (xfs_ioctl_setattr_xflags: no DAX for reflinked files before v6.9)`);
    }
    return { dontcache: this.marksDontcache(target, on) };
  }

  /**
   * v5.4 xfs_ioctl_setattr_dax_invalidate(): when the requested flag differs from IS_DAX() of a
   * regular file, IOLOCK and MMAPLOCK exclusive, filemap_write_and_wait() and
   * invalidate_inode_pages2() (every mapping unmapped, the page cache or the clean DAX entries
   * dropped) "in preparation for flag change" — which then changes no S_DAX (the switch in
   * xfs_diflags_to_linux() is `#if 0`). Modelled on a mount without -o dax only: with it, whether
   * v5.4 still invalidated (the early return for XFS_MOUNT_DAX) was not checked. v5.8 replaced it
   * with xfs_ioctl_setattr_prepare_dax(), which only marks the inode I_DONTCACHE.
   */
  override *prepareDaxFlagChange(inode: Inode, on: boolean): Op {
    if (daxTriState(this.k.version) || this.daxMode !== 'inode' || on === inode.sDax) return;
    yield* this.lockInode(inode);
    try {
      yield* this.lockFaults(inode);
      try {
        this.step(inode, 'xfs_ioctl_setattr_dax_invalidate');
        if (inode.cache) {
          this.writeback(inode);
          yield* this.k.pageCache.punchHole(inode.cache, 0, inode.cache.pages * this.pageSize);
        } else {
          yield* this.k.dax.invalidateInodePages2Range(inode, 0, Infinity);
        }
      } finally {
        this.unlockFaults(inode);
      }
    } finally {
      this.unlockInode(inode);
    }
  }

  private reflinkExcludesDax(): boolean {
    return !kernelAtLeast(this.k.version, 6, 9);
  }

  /** XFS_DIFLAG2_REFLINK, approximated: a block of the file is shared (the flag outlives the sharing until cleared). */
  private isReflinked(inode: Inode): boolean {
    for (const b of inode.blocks.values()) if (this.blocks.ownersOf(b).length > 1) return true;
    return false;
  }

  /**
   * XFS_IOLOCK is the VFS inode->i_rwsem and XFS_MMAPLOCK the fault lock (a private mrlock in
   * v5.10, mapping->invalidate_lock from v5.15); xfs_ilock() takes IOLOCK before MMAPLOCK.
   */
  protected override lockNames(): { inode: readonly [string, string]; faults: readonly [string, string] } {
    return { inode: ['xfs_ilock(IOLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)'], faults: ['xfs_ilock(MMAPLOCK_EXCL)', 'xfs_iunlock(MMAPLOCK_EXCL)'] };
  }

  /**
   * notify_change -> xfs_vn_setattr(ATTR_SIZE) [5.10 and 7.2 fs/xfs/xfs_iops.c]: the VFS already
   * holds IOLOCK_EXCL (do_truncate's inode_lock); MMAPLOCK_EXCL, xfs_break_layouts(BREAK_UNMAP),
   * then xfs_vn_setattr_size() -> xfs_setattr_size(); MMAPLOCK is dropped before the VFS unlocks.
   */
  *truncate(inode: Inode, size: number): Op {
    yield* inode.iolock.downWrite();
    this.step(inode, 'inode_lock');
    try {
      yield* this.lockFaults(inode);
      try {
        yield* this.breakLayouts(inode);
        yield* this.setattrSize(inode, size);
      } finally {
        this.unlockFaults(inode);
      }
    } finally {
      inode.iolock.upWrite();
      this.step(inode, 'inode_unlock');
    }
  }

  /**
   * xfs_setattr_size(): inode_dio_wait (no direct I/O in the model); zeroing the EOF block is a
   * partial-page matter (page data is one token here); truncate_setsize() (i_size, then
   * truncate_pagecache: unmap, DAX entries, unmap); then in a transaction xfs_itruncate_extents()
   * frees the blocks past EOF.
   */
  private *setattrSize(inode: Inode, size: number): Op {
    this.step(inode, 'inode_dio_wait');
    this.step(inode, 'truncate_setsize');
    const oldsize = inode.size;
    inode.size = size;
    const from = this.pages(size);
    yield* this.truncatePagecacheTo(inode, size);
    // only a shrink (or same size) truncates extents: growing keeps preallocation past the old EOF
    if (size > oldsize) return;
    this.step(inode, 'xfs_itruncate_extents');
    this.freeBlocks(inode, from, Infinity);
  }

  /**
   * xfs_file_fallocate(FALLOC_FL_PUNCH_HOLE) [5.10 fs/xfs/xfs_file.c; 7.2 __xfs_file_fallocate]:
   * xfs_ilock(IOLOCK_EXCL | MMAPLOCK_EXCL), xfs_break_layouts(BREAK_UNMAP), inode_dio_wait,
   * xfs_flush_unmap_range() (rounded out to whole blocks: truncate_pagecache_range; in 7.2 it is
   * the first thing xfs_free_file_space() does), then xfs_free_file_space() unmaps and frees the
   * whole blocks inside the hole (xfs_unmap_extent) and zeroes the partial ones at the edges.
   */
  *punchHole(inode: Inode, offset: number, length: number): Op {
    yield* this.underFallocateLocks(inode, () => this.freeFileSpace(inode, offset, length));
  }

  /**
   * What every mode of xfs_file_fallocate() [v5.4-v6.x; __xfs_file_fallocate in 7.2] does
   * around its work: xfs_ilock(XFS_IOLOCK_EXCL | XFS_MMAPLOCK_EXCL), xfs_break_layouts(
   * BREAK_UNMAP) — for every mode, plain preallocation included — and inode_dio_wait.
   */
  private *underFallocateLocks(inode: Inode, body: () => Op): Op {
    yield* this.lockInode(inode);
    try {
      yield* this.lockFaults(inode);
      try {
        yield* this.breakLayouts(inode);
        this.step(inode, 'inode_dio_wait');
        yield* body();
      } finally {
        this.unlockFaults(inode);
      }
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * xfs_flush_unmap_range() of the range rounded out to pages (truncate_pagecache_range), then
   * xfs_free_file_space(): the whole blocks inside it unmapped and freed (xfs_unmap_extent), the
   * partial ones zeroed (page data is one token: not modelled). v5.4-v6.x flush in
   * xfs_file_fallocate() before the mode switch, 7.2 first thing in xfs_free_file_space().
   */
  private *freeFileSpace(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    this.step(inode, 'xfs_flush_unmap_range');
    yield* this.truncatePagecacheRange(inode, Math.floor(offset / ps), Math.ceil((offset + length) / ps) - 1);
    this.step(inode, 'xfs_free_file_space');
    this.freeBlocks(inode, Math.ceil(offset / ps), Math.floor((offset + length) / ps));
  }

  /**
   * fallocate() modes other than punch hole, under the same locks and break-layouts
   * (xfs_falloc_allocate_range / _zero_range / _collapse_range, split out of xfs_file_fallocate
   * by a refactor after v6.6 whose release was not checked; the same steps inline before).
   */
  *fallocate(inode: Inode, mode: FallocateMode, offset: number, length: number, keepSize: boolean): Op {
    // XFS_FALLOC_FL_SUPPORTED, checked before any lock: no FALLOC_FL_WRITE_ZEROES in the releases
    // read. [M] A patch adding it (xfs_falloc_zero_range with XFS_BMAPI_ZERO, v11 of March 2026)
    // was not seen merged; it refuses with -EOPNOTSUPP too unless the block device has unmap
    // write zeroes (bdev_write_zeroes_unmap_sectors), which a pmem namespace does not set up.
    if (mode === 'write-zeroes') throw new KernelError('EOPNOTSUPP', `fallocate(FALLOC_FL_WRITE_ZEROES) of '${inode.name}': not in XFS_FALLOC_FL_SUPPORTED`);
    yield* this.underFallocateLocks(inode, () => {
      if (mode === 'collapse-range') return this.collapseRange(inode, offset, length);
      if (mode === 'insert-range') return this.insertRange(inode, offset, length);
      if (mode === 'unshare-range') return this.unshareRange(inode, offset, length, keepSize);
      return this.allocateRange(inode, mode, offset, length, keepSize);
    });
  }

  /**
   * Mode 0 and FALLOC_FL_ZERO_RANGE. Zero range punches the range first (xfs_free_file_space:
   * "We use a hole punch rather than unwritten extent conversion", so the blocks are freed and
   * taken again), then, as plain preallocation does, xfs_alloc_file_space(XFS_BMAPI_PREALLOC) of
   * the range rounded out to blocks gives every hole an unwritten extent; i_size grows through
   * xfs_vn_setattr_size() unless KEEP_SIZE. (7.2's xfs_zero_range() instead of the punch runs
   * only under the XFS_ERRTAG_FORCE_ZERO_RANGE error injection knob.) The allocation is a
   * transaction of its own (xfs_trans_alloc_inode, which may sleep for log space): another task
   * can run between the free and the allocation.
   */
  private *allocateRange(inode: Inode, mode: FallocateMode, offset: number, length: number, keepSize: boolean): Op {
    const ps = this.pageSize;
    const newSize = this.fallocNewSize(inode, offset, length, keepSize);
    if (mode === 'zero-range') {
      this.step(inode, 'xfs_zero_file_space');
      yield* this.freeFileSpace(inode, offset, length);
    }
    this.step(inode, 'xfs_alloc_file_space');
    yield preempt('xfs_alloc_file_space');
    this.preallocate(inode, Math.floor(offset / ps), Math.ceil((offset + length) / ps));
    if (newSize) yield* this.setattrSize(inode, newSize);
  }

  /**
   * FALLOC_FL_COLLAPSE_RANGE (xfs_falloc_collapse_range; inline in xfs_file_fallocate up to
   * v6.6 at least): offset and length must be whole blocks (xfs_is_falloc_aligned: -EINVAL) and the range
   * must end before EOF ("effectively a truncate operation": -EINVAL). Both checks come after the
   * break-layouts wait. xfs_collapse_file_space(): xfs_free_file_space() of the range;
   * xfs_prepare_shift() frees the post-EOF blocks (xfs_free_eofblocks) and flushes and unmaps
   * from the block before the offset to EOF; xfs_bmap_collapse_extents() shifts the extents
   * above the range down by its length; then xfs_vn_setattr_size() shrinks i_size by it.
   * (v5.4-v6.x flush the range before the checks too: a refused collapse also loses the range's
   * DAX entries there, which the break has already unmapped.)
   */
  private *collapseRange(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    if (offset % ps || length % ps) throw new KernelError('EINVAL', `collapse range of '${inode.name}' at ${offset}+${length}: not whole ${ps}-byte blocks (xfs_is_falloc_aligned)`);
    if (offset + length >= inode.size) throw new KernelError('EINVAL', `collapse range of '${inode.name}' at ${offset}+${length} reaches EOF (${inode.size}): that is a truncate (xfs_falloc_collapse_range)`);
    const newSize = inode.size - length;
    this.step(inode, 'xfs_collapse_file_space');
    yield* this.freeFileSpace(inode, offset, length);
    const first = offset / ps;
    yield* this.prepareShift(inode, first);
    this.step(inode, 'xfs_bmap_collapse_extents');
    this.shiftBlocks(inode, first + length / ps, -length / ps);
    yield* this.setattrSize(inode, newSize);
  }

  /**
   * FALLOC_FL_INSERT_RANGE (xfs_falloc_insert_range from v6.12; inline in xfs_file_fallocate
   * before, the same checks in the same order, v5.4-v6.11): offset and length whole blocks
   * (xfs_is_falloc_aligned: -EINVAL), the grown file within s_maxbytes (-EFBIG), the offset below
   * i_size (-EINVAL) — all after the break-layouts wait. i_size grows first
   * (xfs_vn_setattr_size), "so that if we crash during the operation we don't leave shifted
   * extents past EOF"; then xfs_insert_file_space(): xfs_prepare_shift() frees the blocks past
   * the new EOF (xfs_free_eofblocks), flushes and unmaps from the block before the offset to
   * EOF, and xfs_bmap_insert_extents() shifts every extent at or above the offset up by the
   * length, leaving a hole there.
   */
  private *insertRange(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    if (offset % ps || length % ps) throw new KernelError('EINVAL', `insert range of '${inode.name}' at ${offset}+${length}: not whole ${ps}-byte blocks (xfs_is_falloc_aligned)`);
    if (this.maxBytes - inode.size < length) throw new KernelError('EFBIG', `insert range of ${length} bytes into '${inode.name}' (${inode.size} bytes) passes s_maxbytes (xfs_falloc_insert_range)`);
    if (offset >= inode.size) throw new KernelError('EINVAL', `insert range of '${inode.name}' at ${offset}: not below i_size ${inode.size} (xfs_falloc_insert_range)`);
    this.step(inode, 'xfs_falloc_setsize');
    yield* this.setattrSize(inode, inode.size + length);
    this.step(inode, 'xfs_insert_file_space');
    const first = offset / ps;
    yield* this.prepareShift(inode, first);
    this.step(inode, 'xfs_bmap_insert_extents');
    this.shiftBlocks(inode, first, length / ps);
  }

  /**
   * xfs_prepare_shift(), shared by collapse and insert range: the blocks past EOF go
   * (xfs_free_eofblocks), then the page cache is written back and dropped, and the mappings
   * unmapped, from the block before `first` to EOF.
   */
  private *prepareShift(inode: Inode, first: number): Op {
    this.step(inode, 'xfs_prepare_shift');
    this.freeBlocks(inode, this.pages(inode.size), Infinity); // xfs_free_eofblocks
    if (inode.cache) this.writeback(inode); // filemap_write_and_wait_range before the cache goes
    yield* this.truncatePagecacheRange(inode, Math.max(0, first - 1), Infinity);
  }

  /**
   * FALLOC_FL_UNSHARE_RANGE (xfs_falloc_unshare_range from v6.12; inline before, the same
   * steps): the new size (inode_newsize_ok), xfs_reflink_unshare() — nothing for an inode
   * without XFS_DIFLAG2_REFLINK, else inode_dio_wait and, for a DAX inode, dax_file_unshare()
   * (fs/dax.c, v6.0 d984648e428b "fsdax,xfs: port unshare to fsdax") — then
   * xfs_alloc_file_space() over the range (its holes become unwritten extents, as with mode 0),
   * then xfs_vn_setattr_size() unless KEEP_SIZE. A page-cache file's unshare
   * (iomap_file_unshare) is not modelled.
   */
  private *unshareRange(inode: Inode, offset: number, length: number, keepSize: boolean): Op {
    this.step(inode, 'xfs_reflink_unshare');
    if (this.isReflinked(inode)) {
      if (!inode.sDax) throw KernelError.unsupported('EOPNOTSUPP', `unshare range of '${inode.name}', which is not DAX: iomap_file_unshare() of the page cache is not modelled`);
      this.step(inode, 'inode_dio_wait');
      yield* this.daxFileUnshare(inode, offset, length);
    }
    // the unshare changes no size: the new size is the one computed before it
    yield* this.allocateRange(inode, 'allocate', offset, length, keepSize);
  }

  /**
   * dax_file_unshare(): the range clamped to i_size (v6.12, "iomap: constrain the file range
   * passed to iomap_file_unshare"; before it the pages past EOF were walked as holes, and no block
   * past EOF is shared, so the result is the same), then one iomap iteration per extent with
   * IOMAP_UNSHARE through xfs_dax_write_iomap_ops. A written extent shared with another file
   * (xfs_reflink_allocate_cow: IOMAP_F_SHARED, the old extent as srcmap) gets CoW blocks;
   * dax_unshare_iter() copies the old blocks' data into them and xfs_dax_write_iomap_end ->
   * xfs_reflink_end_cow() remaps the file to them and drops its share of the old ones (the other
   * file keeps them). Holes and unwritten extents are never shared
   * (xfs_reflink_trim_around_shared: only written extents) and stay as they are. Per release:
   * - v6.0-v6.1: dax_unshare_iter() returned copy_mc_to_kernel()'s 0 on success, so iomap_iter()
   *   saw nothing processed: xfs_dax_write_iomap_end(written = 0) cancelled the CoW
   *   (xfs_reflink_cancel_cow_range frees the new blocks) and the walk ended at the first shared
   *   extent. Nothing was unshared. Fixed by 388bc034d91d ("fsdax: dax_unshare_iter() should
   *   return a valid length", v6.2 [M: from the Feb 2023 hotfix batch that carried it]).
   * - v6.12 ("fsdax: dax_unshare_iter needs to copy entire blocks") also invalidates the DAX
   *   entries and mappings of each copied extent (invalidate_inode_pages2_range); before, only
   *   xfs_break_layouts(BREAK_UNMAP) had unmapped the file, and an entry could stay on the old
   *   block. (Every era (c) release has deleted every entry in the break already.)
   */
  private *daxFileUnshare(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    if (offset >= inode.size) return;
    const stop = Math.ceil(Math.min(offset + length, inode.size) / ps);
    const validLength = kernelAtLeast(this.k.version, 6, 2);
    this.step(inode, 'dax_file_unshare');
    for (let index = Math.floor(offset / ps); index < stop; ) {
      const run = this.sharedRun(inode, index, stop);
      if (run === 0) {
        index++;
        continue;
      }
      this.step(inode, 'xfs_reflink_allocate_cow');
      const cow = this.blocks.alloc(inode.name, index, run);
      this.step(inode, 'dax_unshare_iter');
      cow.forEach((b, i) => this.k.pages.data.set(this.blocks.pfnOf(b), this.k.pages.data.get(this.blocks.pfnOf(inode.blocks.get(index + i)!)) ?? ''));
      if (!validLength) {
        this.step(inode, 'xfs_reflink_cancel_cow_range');
        for (const b of cow) this.blocks.release(b, inode.name);
        return;
      }
      this.step(inode, 'xfs_reflink_end_cow');
      cow.forEach((b, i) => {
        this.blocks.release(inode.blocks.get(index + i)!, inode.name);
        inode.blocks.set(index + i, b);
      });
      if (kernelAtLeast(this.k.version, 6, 12)) yield* this.k.dax.invalidateInodePages2Range(inode, index, index + run - 1);
      index += run;
    }
  }

  /**
   * How many pages from `index` (below `stop`) form one shared written extent: shared blocks,
   * physically contiguous, none unwritten (the extent xfs_reflink_allocate_cow() trims to). 0
   * when the page at `index` is a hole, unwritten, or not shared.
   */
  private sharedRun(inode: Inode, index: number, stop: number): number {
    const shared = (i: number): boolean => {
      const b = inode.blocks.get(i);
      return b !== undefined && !this.isUnwritten(inode, i) && this.blocks.ownersOf(b).length > 1;
    };
    if (!shared(index)) return 0;
    let n = 1;
    while (index + n < stop && shared(index + n) && inode.blocks.get(index + n) === inode.blocks.get(index)! + n) n++;
    return n;
  }

  /**
   * xfs_break_layouts(BREAK_UNMAP) -> xfs_break_dax_layouts() over the whole file. Eras (a)/(b):
   * dax_layout_busy_page() and one wait for the page's refcount to reach the idle value, then the
   * outer xfs_break_layouts() loop rescans. Era (c): dax_break_layout_inode(), which also deletes
   * every DAX entry. The loop's BREAK_WRITE half (xfs_break_leased_layouts, pNFS leases) has
   * nothing to break: the model has no leases.
   */
  *breakLayouts(inode: Inode): Op {
    this.step(inode, 'xfs_break_layouts');
    yield* this.breakDaxLayouts(inode, 0, Infinity); // whole file, xfs_wait_dax_page()
  }

  /**
   * A write fault on a shared (reflinked) extent is a copy-on-write [6.12 fs/xfs/xfs_iomap.c]:
   * xfs_dax_write_iomap_begin -> xfs_direct_write_iomap_begin(IOMAP_DAX) allocates a CoW fork
   * block (xfs_reflink_allocate_cow, converted at once for DAX) and returns it with
   * IOMAP_F_SHARED and the old extent as srcmap; dax_fault_iter() copies the page
   * (dax_iomap_copy_around) and maps the new block; xfs_dax_write_iomap_end ->
   * xfs_reflink_end_cow() remaps the file to it and drops this file's share of the old block
   * (the refcount btree -1: the other file keeps it). A PMD-sized write falls back to PTEs here.
   */
  override *iomapBegin(inode: Inode, index: number, write: boolean, pages = 1): Op<Iomap> {
    const map = yield* super.iomapBegin(inode, index, write, pages);
    if (!write || !map.shared || pages > 1) return map;
    const old = inode.blocks.get(index)!;
    this.step(inode, 'xfs_reflink_allocate_cow');
    const [cow] = this.blocks.alloc(inode.name, index, 1);
    this.step(inode, 'xfs_reflink_end_cow');
    inode.blocks.set(index, cow!);
    this.blocks.release(old, inode.name);
    return { type: 'mapped', pfn: this.blocks.pfnOf(cow!), contiguous: 1, shared: true, srcPfn: this.blocks.pfnOf(old), dirty: this.metadataDirty(inode) };
  }

  /** xfs_filemap_fault / xfs_filemap_huge_fault: MMAPLOCK_SHARED around dax_iomap_fault(). */
  *fault(vmf: Vmf, inode: Inode): Op {
    yield* this.daxFault(vmf, inode);
  }

  /**
   * The copy a private write fault takes of a DAX file page (do_cow_fault -> xfs_filemap_fault).
   * Up to v5.8 XFS took every FAULT_FLAG_WRITE fault on a DAX file for a write to it:
   * sb_start_pagefault() and file_update_time(), so a COW fault changed the file's times
   * (b17164e258e3 "xfs: dont update mtime on COW faults", v5.9, tests xfs_is_write_fault():
   * FAULT_FLAG_WRITE on a VM_SHARED mapping). The iomap is asked for a read either way
   * (dax_iomap_pte_fault() leaves out IOMAP_WRITE with a cow_page), and on a read-only mount
   * file_update_time() gives up quietly (__mnt_want_write_file() fails), so the COW fault works
   * there in every release. The model keeps no timestamps: the fs.step marks the update.
   */
  override *cowData(vmf: Vmf, inode: Inode): Op<string> {
    if (!kernelAtLeast(this.k.version, 5, 9) && !this.readOnly) this.step(inode, 'file_update_time');
    return yield* super.cowData(vmf, inode);
  }

  /** xfs_filemap_pfn_mkwrite(): a full DAX write fault that serialises against truncate. */
  *pfnMkwrite(vmf: Vmf, inode: Inode): Op {
    yield* this.daxFault({ ...vmf, write: true }, inode);
  }

  /**
   * FICLONE (xfs_file_remap_range -> xfs_reflink_remap_prep). xfs_ilock2_io_mmap() takes both
   * inodes' IOLOCK (xfs_iolock_two_inodes_and_break_layout) and MMAPLOCK; for DAX files from v6.0
   * xfs_mmaplock_two_inodes_and_break_dax_layout() breaks the source's DAX layouts too (the
   * destination is new: nothing maps it). v5.10 then refuses DAX files with -EINVAL ("Don't share
   * DAX file data for now"); later releases share the extents (xfs_reflink_remap_blocks: refcount
   * btree +1 per block).
   */
  override *reflink(src: Inode, to: string): Op<Inode> {
    // a page-cache file's reflink (flush, then share) is not modelled
    if (!src.sDax) throw KernelError.unsupported('EOPNOTSUPP', `FICLONE of '${src.name}', which is not DAX: reflink of page-cache files is not modelled`);
    const dst = this.newInode(to, 0);
    // xfs_reflink_remap_prep(): IS_DAX(src) != IS_DAX(dest) is -EINVAL
    if (!dst.sDax) {
      this.inodes.delete(to);
      throw new KernelError('EINVAL', `FICLONE from DAX file '${src.name}' to '${to}', which is not DAX (xfs_reflink_remap_prep: IS_DAX differs)`);
    }
    yield* src.iolock.downWrite();
    yield* dst.iolock.downWrite();
    this.step(src, 'xfs_iolock_two_inodes_and_break_layout');
    yield* src.mmaplock.downWrite();
    yield* dst.mmaplock.downWrite();
    try {
      if (!this.k.features['fsdax-reflink']) {
        this.inodes.delete(to);
        throw KernelError.unsupported('EINVAL', `xfs_reflink_remap_prep() refuses to share DAX file ${src.name} ("Don't share DAX file data for now": no fsdax reflink before v6.0)`);
      }
      this.step(src, 'xfs_mmaplock_two_inodes_and_break_dax_layout');
      yield* this.breakDaxLayouts(src, 0, Infinity);
      this.step(src, 'xfs_reflink_remap_blocks');
      dst.size = src.size;
      for (const [index, block] of [...src.blocks].sort((a, b) => a[0] - b[0])) {
        this.blocks.share(block, to, index);
        dst.blocks.set(index, block);
        if (this.isUnwritten(src, index)) this.markUnwritten(dst, index); // the shared extent stays unwritten
      }
      return dst;
    } finally {
      dst.mmaplock.upWrite();
      src.mmaplock.upWrite();
      dst.iolock.upWrite();
      src.iolock.upWrite();
    }
  }
}

export interface XfsOptions {}

/** XFS's parse of the dax option on `version` (Xfs.parseDaxOption). */
function xfsDaxMode(version: string, option: DaxMountOption): DaxMode {
  if (option === true) return 'always';
  if (option === false) return 'inode';
  if (!daxTriState(version)) throw KernelError.unsupported('EINVAL', `xfs before v5.8 knows only -o dax: mount ${describeDaxOption(option)} fails (unknown mount option)`);
  return option;
}

/** The XFS filesystem plugin. */
export function xfs(_options: XfsOptions = {}): FilesystemPlugin {
  return {
    kind: 'fs',
    name: '@daxlab/fs-xfs',
    fsName: 'xfs',
    coreRange: '>=0.1.0 <1.0.0',
    mount: (k, device) => new Xfs(k, device),
    /**
     * -o dax on a block device without DAX: "DAX unsupported by block device. Turning off DAX."
     * and the mount goes on (xfs_fs_fill_super() in v5.4, later xfs_setup_dax_always(), which
     * finds no bt_daxdev from v5.17). A mount that does not fail is a non-DAX XFS whose files go
     * through the page cache and bios: not modelled.
     */
    mountWithoutDaxDevice: (k, device, dax) => {
      const mode = xfsDaxMode(k.version, dax);
      throw KernelError.unsupported('EOPNOTSUPP', `xfs ${describeDaxOption(dax)} on ${device.name} (${device.why}) mounts without DAX${mode === 'always' ? ' (DAX unsupported by block device. Turning off DAX.)' : ''}: files through the page cache and bios are not modelled`);
    },
  };
}
