import { DaxFilesystem, KernelError, type Device, type FilesystemPlugin, type Inode, type Kernel, type Op, type Vmf } from '@daxlab/core';

/**
 * XFS on a DAX device. Orderings follow fs/xfs: xfs_vn_setattr_size (truncate),
 * xfs_file_fallocate (punch hole), xfs_break_layouts -> xfs_break_dax_layouts, and
 * xfs_file_remap_range (reflink). Lock names: IOLOCK = inode->i_rwsem, MMAPLOCK =
 * mapping->invalidate_lock (a private mrlock in v5.10).
 */
export class Xfs extends DaxFilesystem {
  readonly name = 'xfs';
  /** xfs_file_mmap(): DAX files get VM_HUGEPAGE only (no VM_MIXEDMAP) */
  readonly mmapFlags = { hugepage: true };

  constructor(k: Kernel, device: Device) {
    super(k, device);
  }

  /** notify_change -> xfs_vn_setattr: the VFS already holds IOLOCK_EXCL (inode_lock). */
  *truncate(inode: Inode, size: number): Op {
    yield* inode.iolock.downWrite();
    yield* inode.mmaplock.downWrite(); // xfs_ilock(ip, XFS_MMAPLOCK_EXCL)
    try {
      yield* this.breakLayouts(inode); // xfs_break_layouts(BREAK_UNMAP)
      yield* this.setattrSize(inode, size);
    } finally {
      inode.mmaplock.upWrite();
      inode.iolock.upWrite();
    }
  }

  /**
   * xfs_setattr_size(): inode_dio_wait (no direct I/O in the model), truncate_setsize() (i_size,
   * then truncate_pagecache: unmap, DAX entries, unmap), then xfs_itruncate_extents() frees blocks.
   */
  private *setattrSize(inode: Inode, size: number): Op {
    inode.size = size;
    const from = this.pages(size);
    yield* this.k.dax.truncatePagecache(inode, from, Infinity);
    this.freeBlocks(inode, from, Infinity);
  }

  /** xfs_file_fallocate(FALLOC_FL_PUNCH_HOLE) */
  *punchHole(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    yield* inode.iolock.downWrite(); // xfs_ilock(IOLOCK_EXCL | MMAPLOCK_EXCL)
    yield* inode.mmaplock.downWrite();
    try {
      yield* this.breakLayouts(inode);
      // xfs_flush_unmap_range(): rounded out to whole blocks, truncate_pagecache_range()
      const first = Math.floor(offset / ps);
      const last = Math.ceil((offset + length) / ps) - 1;
      yield* this.k.dax.truncatePagecache(inode, first, last);
      // xfs_free_file_space(): only whole blocks inside the hole are unmapped and freed
      this.freeBlocks(inode, Math.ceil(offset / ps), Math.floor((offset + length) / ps));
    } finally {
      inode.mmaplock.upWrite();
      inode.iolock.upWrite();
    }
  }

  /**
   * xfs_break_dax_layouts() over the whole file. Eras (a)/(b): dax_layout_busy_page() and one
   * wait for the page's refcount to reach the idle value, then the outer xfs_break_layouts()
   * loop rescans. Era (c): dax_break_layout_inode(), which also deletes every DAX entry.
   */
  *breakLayouts(inode: Inode): Op {
    yield* this.breakDaxLayouts(inode, 0, Infinity); // whole file, xfs_wait_dax_page()
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
   * FICLONE (xfs_file_remap_range): v5.10 refuses DAX files ("Don't share DAX file data for
   * now", -EINVAL); from v6.0 xfs_reflink_remap_prep() locks both inodes, breaks the source's
   * DAX layouts (xfs_mmaplock_two_inodes_and_break_dax_layout) and the blocks are shared.
   */
  override *reflink(src: Inode, to: string): Op<Inode> {
    if (!this.k.features['fsdax-reflink']) throw new KernelError('EINVAL', `xfs: reflink of DAX file ${src.name} refused (no fsdax reflink in ${this.k.version})`);
    yield* src.iolock.downWrite();
    yield* src.mmaplock.downWrite();
    try {
      yield* this.breakLayouts(src);
      const dst = this.newInode(to, src.size);
      for (const [index, block] of [...src.blocks].sort((a, b) => a[0] - b[0])) {
        this.blocks.share(block, to, index); // xfs_reflink_remap_blocks(): refcount btree +1
        dst.blocks.set(index, block);
      }
      return dst;
    } finally {
      src.mmaplock.upWrite();
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
