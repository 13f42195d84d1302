import { DaxFilesystem, KernelError, daxTriState, describeDaxOption, kernelAtLeast, preempt, type DaxHolder, type FallocateMode, type DaxMode, type DaxMountOption, type Device, type Directory, type FilesystemPlugin, type Inode, type Iomap, type Kernel, type Op, type Vmf } from '@daxlab/core';

/**
 * XFS on a DAX device. Orderings follow fs/xfs: xfs_vn_setattr_size (truncate),
 * xfs_file_fallocate (punch hole, allocate, zero and collapse range), xfs_break_layouts ->
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
    if (option === true) return 'always';
    if (option === false) return 'inode';
    if (!daxTriState(this.k.version)) throw KernelError.unsupported('EINVAL', `xfs before v5.8 knows only -o dax: mount ${describeDaxOption(option)} fails (unknown mount option)`);
    return option;
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
    yield* this.underFallocateLocks(inode, () => (mode === 'collapse-range' ? this.collapseRange(inode, offset, length) : this.allocateRange(inode, mode, offset, length, keepSize)));
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
    this.step(inode, 'xfs_prepare_shift');
    this.freeBlocks(inode, this.pages(inode.size), Infinity); // xfs_free_eofblocks
    const first = offset / ps;
    if (inode.cache) this.writeback(inode); // filemap_write_and_wait_range before the cache goes
    yield* this.truncatePagecacheRange(inode, Math.max(0, first - 1), Infinity);
    this.step(inode, 'xfs_bmap_collapse_extents');
    this.shiftBlocksDown(inode, first + length / ps, length / ps);
    yield* this.setattrSize(inode, newSize);
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
    return { type: 'mapped', pfn: this.blocks.pfnOf(cow!), contiguous: 1, shared: true, srcPfn: this.blocks.pfnOf(old) };
  }

  /** xfs_filemap_fault / xfs_filemap_huge_fault: MMAPLOCK_SHARED around dax_iomap_fault(). */
  *fault(vmf: Vmf, inode: Inode): Op {
    yield* this.daxFault(vmf, inode);
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

/** The XFS filesystem plugin. */
export function xfs(_options: XfsOptions = {}): FilesystemPlugin {
  return {
    kind: 'fs',
    name: '@daxlab/fs-xfs',
    fsName: 'xfs',
    coreRange: '>=0.1.0 <1.0.0',
    mount: (k, device) => new Xfs(k, device),
  };
}
