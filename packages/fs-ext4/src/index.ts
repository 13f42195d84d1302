import { DaxFilesystem, InputError, KernelError, daxTriState, describeDaxOption, kernelAtLeast, type DaxMode, type FallocateMode, type DaxMountOption, type Device, type Directory, type FilesystemPlugin, type FsMountOptions, type Inode, type Kernel, type Op, type Vmf } from '@daxlab/core';

/** EXT4_MIN_INLINE_DATA_SIZE: the inode's i_block, where inline data always fits. */
export const EXT4_MIN_INLINE_DATA_SIZE = 60;

/** The ext4 inode flags the DAX decision reads (EXT4_I(inode)->i_flags), kept in inode.state. */
interface Ext4InodeFlags {
  /** EXT4_INLINE_DATA_FL: the data lives in the inode (ext4_has_inline_data) */
  inline: boolean;
  /** EXT4_JOURNAL_DATA_FL (chattr +j) */
  journalData: boolean;
  /** EXT4_VERITY_FL: fs-verity enabled (FS_IOC_ENABLE_VERITY) */
  verity: boolean;
}

/** The mkfs features the model keeps (ext4_has_feature_*), fixed at the device's first mount. */
interface Ext4Features {
  inlineData: boolean;
  verity: boolean;
}

/**
 * ext4 on a DAX device (mount -o dax). Orderings follow fs/ext4: ext4_setattr(ATTR_SIZE)
 * (truncate), ext4_punch_hole() / ext4_fallocate() (punch hole), ext4_zero_range(),
 * ext4_collapse_range() and ext4_insert_range() (fs/ext4/extents.c), ext4_break_layouts(), and
 * ext4_dax_huge_fault() (faults and ->pfn_mkwrite). ext4 has no reflink: FICLONE fails with
 * EOPNOTSUPP (the VFS: no ->remap_file_range in ext4_file_operations).
 *
 * Differences from XFS that the model keeps: the busy-page loop of eras (a)/(b) lives inside
 * ext4_break_layouts() (XFS restarts from xfs_break_layouts()' outer loop, which also breaks
 * pNFS leases); ext4 has no leases; v5.10 punch hole returns before breaking layouts when the
 * hole starts at or beyond EOF, while v6.15 breaks layouts in ext4_fallocate() first.
 * Block allocation is the shared first-fit allocator, not mballoc; ext4's delayed reuse of
 * freed blocks until the journal commits (ext4_free_blocks -> ext4_mb_free_metadata) is not
 * modelled, as XFS's busy extents are not.
 */
export class Ext4 extends DaxFilesystem {
  readonly name = 'ext4';
  /** ext4_file_mmap(): a DAX file gets ext4_dax_vm_ops and VM_HUGEPAGE (no VM_MIXEDMAP) */
  readonly mmapFlags = { hugepage: true };
  /** ext4_file_operations.mmap_supported_flags = MAP_SYNC */
  override readonly mapSync = true;
  /** ext4_sync_file -> jbd2_complete_transaction() of the inode's (datasync) tid: the running transaction commits */
  override readonly journalCommit = 'jbd2_complete_transaction';

  /** data=journal|ordered|writeback (ordered by default) */
  dataMode: 'journal' | 'ordered' | 'writeback' = 'ordered';
  /** test_opt(sb, DELALLOC): on by default, off with nodelalloc or data=journal */
  delalloc = true;
  /** ext4_has_feature_inline_data() / _verity(): mkfs -O inline_data,verity, set at the device's first mount */
  features: Ext4Features | null = null;

  get inlineDataFeature(): boolean {
    return this.features?.inlineData ?? false;
  }

  constructor(k: Kernel, device: Device) {
    super(k, device);
  }

  /** The i_flags bits of an inode that the model keeps. */
  private flagsOf(inode: Inode): Ext4InodeFlags {
    const f = inode.state['ext4'] as Ext4InodeFlags | undefined;
    if (f) return f;
    const created: Ext4InodeFlags = { inline: false, journalData: false, verity: false };
    inode.state['ext4'] = created;
    return created;
  }

  /** Whether the inode's data lives in the inode (EXT4_INLINE_DATA_FL). */
  hasInlineData(inode: Inode): boolean {
    return this.flagsOf(inode).inline;
  }

  /** Whether fs-verity is enabled on the inode (EXT4_VERITY_FL). */
  hasVerity(inode: Inode): boolean {
    return this.flagsOf(inode).verity;
  }

  /** Whether the inode has EXT4_JOURNAL_DATA_FL. */
  journalDataFlag(inode: Inode): boolean {
    return this.flagsOf(inode).journalData;
  }

  /**
   * ext4_should_journal_data() -> ext4_inode_journal_mode() [v5.4..v6.15 fs/ext4/ext4_jbd2.{h,c}]:
   * every regular file under data=journal; a file flagged EXT4_JOURNAL_DATA_FL only without
   * delalloc ("We do not support data journalling with delayed allocation"). Encrypted files
   * fall back to ordered (no encryption in the model).
   */
  shouldJournalData(inode: Inode): boolean {
    return this.dataMode === 'journal' || (this.flagsOf(inode).journalData && !this.delalloc);
  }

  /**
   * The mount's other options, checked with its dax mode as ext4_fill_super() does (the whole
   * mount fails with EINVAL, nothing changes):
   * - data=journal with dax: "can't mount with both data=journal and dax" (test_opt(sb, DAX)
   *   before v5.8, DAX_ALWAYS after: dax=inode mounts, and then no file is DAX); data=journal
   *   with an explicit delalloc: "can't mount with both data=journal and delalloc"; data=journal
   *   clears DELALLOC (v6.1+: ext4_journal_data_check(); inline in ext4_fill_super before);
   * - the inline_data feature with dax=always / -o dax: "Cannot use DAX on a filesystem that
   *   may contain inline data" (559db4c6d784, v4.15; ext4_check_feature_compatibility() v6.1+).
   *   dax=inode mounts: inline files are simply not DAX (ext4_should_enable_dax).
   * inline_data and verity are mkfs's: the first mount of the device makes the filesystem with
   * them or without, and a later mount finds what was made (verity has no mount-time refusal:
   * verity files are simply not DAX).
   */
  override applyMountOptions(mode: DaxMode, o: FsMountOptions): void {
    const made: Ext4Features = this.features ?? { inlineData: o.inlineData ?? false, verity: o.verity ?? false };
    for (const key of ['inlineData', 'verity'] as const) {
      if (o[key] !== undefined && o[key] !== made[key]) {
        throw new InputError(`mount.${key}: ${this.device.name} was made ${made[key] ? 'with' : 'without'} ${key === 'inlineData' ? 'inline_data' : 'verity'} at its first mount; mkfs is not repeated: leave ${key} out or give ${made[key]}`, undefined, key);
      }
    }
    const feature = made.inlineData;
    const data = o.data ?? 'ordered';
    if (data === 'journal') {
      if (o.delalloc === true) throw new KernelError('EINVAL', `ext4 ${this.device.name}: can't mount with both data=journal and delalloc`);
      if (mode === 'always') throw new KernelError('EINVAL', `ext4 ${this.device.name}: can't mount with both data=journal and dax (${describeDaxOption(true)} or dax=always)`);
    }
    if (feature && mode === 'always') throw new KernelError('EINVAL', `ext4 ${this.device.name}: Cannot use DAX on a filesystem that may contain inline data (mkfs -O inline_data with -o dax / dax=always)`);
    this.features = made;
    this.dataMode = data;
    this.delalloc = data === 'journal' ? false : (o.delalloc ?? true);
  }

  /**
   * The dax mount option. v5.8 (9cb20f94afcd "fs/ext4: Make DAX mount option a tri-state", pulled
   * for v5.8-rc2): `-o dax` is dax=always (EXT4_MOUNT_DAX_ALWAYS), dax=never sets
   * EXT4_MOUNT2_DAX_NEVER, dax=inode (the default: no option) honours EXT4_DAX_FL. Before, only
   * `-o dax` existed (Opt_dax; dax=... is "Unrecognized mount option") and without it no file
   * was DAX.
   */
  override parseDaxOption(option: DaxMountOption): DaxMode {
    return ext4DaxMode(this.k.version, option);
  }

  /**
   * ext4_should_enable_dax() [v5.8; ext4_should_use_dax() before, which began with "-o dax or
   * nothing"]: not under dax=never; regular files only; not a file that journals its data
   * (ext4_should_journal_data: data=journal, or chattr +j with nodelalloc), not one with inline
   * data, not a verity file (EXT4_INODE_VERITY); encryption excludes it too (not modelled);
   * the block device supports DAX (EXT4_FLAGS_BDEV_IS_DAX: pmem in fsdax mode does); then
   * dax=always, or EXT4_DAX_FL (v5.8+). The same exclusions stand in v5.4's ext4_should_use_dax().
   */
  protected override shouldEnableDax(inode: Inode): boolean {
    if (this.daxMode === 'never') return false;
    if (this.shouldJournalData(inode) || this.hasInlineData(inode) || this.hasVerity(inode)) return false;
    return this.daxMode === 'always' || (daxTriState(this.k.version) && inode.daxFlag);
  }

  /**
   * A new file. `inline`: made by a small first write(2) (`echo data > file`). Its data stays in
   * the inode (ext4_try_to_write_inline_data via ext4_write_begin / ext4_da_write_begin) when
   * the inode got EXT4_STATE_MAY_INLINE_DATA at creation — the inline_data feature, and from
   * 4811d9929cda (v5.12, "ext4: allow the dax flag to be set and cleared on inline directories")
   * not for a file that inherited EXT4_DAX_FL — the write is buffered (a DAX file's write is
   * dax_iomap_rw, which never writes inline) and it fits: the model takes the inode's i_block
   * (EXT4_MIN_INLINE_DATA_SIZE, 60 bytes); larger writes, which may also fit in the in-inode
   * xattr space, go to a block as any other. Such a file has no block until it is converted.
   */
  override *create(name: string, size: number, dir = '/', how: { inline: boolean } = { inline: false }): Op<Inode> {
    if (!how.inline) return yield* super.create(name, size, dir);
    const inode = this.newInode(name, size, dir);
    const mayInline = this.inlineDataFeature && !(kernelAtLeast(this.k.version, 5, 12) && inode.daxFlag);
    if (mayInline && !inode.sDax && size <= EXT4_MIN_INLINE_DATA_SIZE) {
      this.flagsOf(inode).inline = true;
      this.step(inode, 'ext4_try_to_write_inline_data');
      return inode;
    }
    const blocks = this.blocks.alloc(name, 0, this.pages(size));
    blocks.forEach((b, i) => inode.blocks.set(i, b));
    return inode;
  }

  /**
   * Writing back a page of an inline file converts it (ext4_convert_inline_data, which
   * ext4_page_mkwrite runs for a write through a mapping): its data moves to a block and
   * EXT4_INLINE_DATA_FL goes, so the next setup of the inode may make it DAX. The model converts
   * when the written page reaches its block.
   */
  protected override writeback(inode: Inode): void {
    super.writeback(inode);
    if (this.hasInlineData(inode) && inode.blocks.size > 0) this.flagsOf(inode).inline = false;
  }

  /**
   * FS_IOC_SETFLAGS of EXT4_JOURNAL_DATA_FL (chattr +j / -j), after the other flags are written
   * [ext4_ioctl_setflags(), v5.4..v7.x fs/ext4/ioctl.c]: refused with EBUSY "Changes to the
   * journaling mode can cause unsafe changes to S_DAX" — on any -o dax mount before v5.8
   * (test_opt(sb, DAX): "ext4: prevent data corruption with journaling + DAX", v4.15, xfstests
   * ext4/030), on an inode with S_DAX from v5.8 ("fs/ext4: Narrow scope of DAX check in
   * setflags": IS_DAX(inode)). Otherwise ext4_change_inode_journal_flag() flushes
   * the journal and switches the address space operations; S_DAX is not re-decided (only at
   * inode setup, v5.8+; before, only -o dax could give S_DAX and that case is refused).
   */
  override *setJournalFlag(inode: Inode, on: boolean): Op {
    const flags = this.flagsOf(inode);
    if (flags.journalData === on) return;
    const refused = daxTriState(this.k.version) ? inode.sDax : this.daxMode === 'always';
    if (refused) throw new KernelError('EBUSY', `chattr ${on ? '+' : '-'}j of '${inode.name}': ${daxTriState(this.k.version) ? 'the inode is DAX' : 'the mount is -o dax'} (ext4_ioctl_setflags: changing the journalling mode could change S_DAX)`);
    this.step(inode, 'ext4_change_inode_journal_flag');
    flags.journalData = on;
    yield* [];
  }

  /** ext4_inherit_flags(): EXT4_DAX_FL is in EXT4_FL_INHERITED (v5.8), for new files and directories alike. */
  override newChildDaxFlag(parent: Directory): boolean {
    return daxTriState(this.k.version) && parent.daxFlag;
  }

  /**
   * FS_IOC_FSSETXATTR of FS_XFLAG_DAX. Before v5.8 ext4 has no such flag: setting it is
   * -EOPNOTSUPP (fsx_xflags outside EXT4_SUPPORTED_FS_XFLAGS; xfstests' _require_dax_iflag skips
   * the test). v5.8+ ext4_ioctl_setflags(): dax_compatible() refuses it with verity, encryption or
   * inline data (not modelled), and ext4_dax_dontcache() marks a regular file whose flag changes
   * I_DONTCACHE unless the mount is dax=always or dax=never.
   */
  override checkDaxFlagChange(target: Inode | Directory, on: boolean): { dontcache: boolean } {
    if (!daxTriState(this.k.version)) {
      if (on) throw KernelError.unsupported('EOPNOTSUPP', `ext4 before v5.8 has no EXT4_DAX_FL: FS_IOC_FSSETXATTR refuses FS_XFLAG_DAX on '${target.name}'`);
      return { dontcache: false };
    }
    if (on && !target.daxFlag && this.inlineExcludesDaxFlag(target)) {
      throw new KernelError('EOPNOTSUPP', `FS_XFLAG_DAX on '${target.name}', which has inline data (ext4_ioctl_setflags: dax_compatible() refuses EXT4_DAX_FL with EXT4_INLINE_DATA_FL)`);
    }
    // EXT4_DAX_MUT_EXCL holds EXT4_VERITY_FL since EXT4_DAX_FL came (v5.8)
    if (on && !target.daxFlag && 'blocks' in target && this.hasVerity(target)) {
      throw new KernelError('EOPNOTSUPP', `FS_XFLAG_DAX on verity file '${target.name}' (ext4_ioctl_setflags: dax_compatible() refuses EXT4_DAX_FL with EXT4_VERITY_FL)`);
    }
    return { dontcache: this.marksDontcache(target, on) };
  }

  /**
   * dax_compatible(): EXT4_DAX_MUT_EXCL holds EXT4_INLINE_DATA_FL from aa2f77920b74 ("ext4:
   * disallow modifying DAX inode flag if inline_data has been set", v5.10; v5.8-v5.9 let a file
   * with inline data take the flag, xfstests ext4/047). A directory made on an inline_data
   * filesystem starts inline (ext4_try_create_inline_dir; the model's directories stay small),
   * and was refused too until 4811d9929cda masked the bit for directories (v5.12); the root
   * directory is mke2fs's, in a block.
   */
  private inlineExcludesDaxFlag(target: Inode | Directory): boolean {
    if (!kernelAtLeast(this.k.version, 5, 10)) return false;
    if ('blocks' in target) return this.hasInlineData(target);
    return this.inlineDataFeature && target.name !== '/' && !kernelAtLeast(this.k.version, 5, 12);
  }

  /** fsverity_file_open(): a verity file cannot be opened for writing (EPERM). */
  override checkOpen(inode: Inode, write: boolean): void {
    if (write && this.hasVerity(inode)) throw new KernelError('EPERM', `open for writing of verity file '${inode.name}' (fsverity_file_open)`);
  }

  /**
   * FS_IOC_ENABLE_VERITY [ext4_ioctl, fsverity_ioctl_enable, ext4_begin_enable_verity /
   * ext4_end_enable_verity in fs/ext4/verity.c]: EOPNOTSUPP without the verity feature; ETXTBSY
   * while the file is open for writing (deny_write_access: a shared writable mapping holds an
   * O_RDWR file); EEXIST if it is verity already; from v5.8 EINVAL for a DAX inode or one with
   * EXT4_DAX_FL ("fs/ext4: Disallow verity if inode is DAX", and the flag test with EXT4_DAX_FL's
   * introduction). Inline data is converted to a block (ext4_convert_inline_data). Then
   * EXT4_VERITY_FL is set and ext4_set_inode_flags(inode, false) keeps S_DAX: the next setup
   * leaves it out. v5.4 had no DAX test, and its ext4_set_inode_flags() re-decided S_DAX of the
   * live inode: a DAX file losing S_DAX under its mappings is not modelled (unsupported).
   */
  override *enableVerity(inode: Inode): Op {
    if (!this.features?.verity) throw new KernelError('EOPNOTSUPP', `FS_IOC_ENABLE_VERITY of '${inode.name}': ${this.device.name} has no verity feature (mkfs -O verity)`);
    // fsverity_ioctl_enable(): file_permission(MAY_WRITE) fails on a read-only mount (sb_permission)
    this.checkWritable(`FS_IOC_ENABLE_VERITY of '${inode.name}'`);
    const writers = this.mappingsOf(inode).some((vma) => vma.flags.shared && vma.flags.write) || [...this.openForWrite].some((fd) => this.openFiles.get(fd) === inode);
    if (writers) throw new KernelError('ETXTBSY', `FS_IOC_ENABLE_VERITY of '${inode.name}', which is open for writing (an O_RDWR descriptor, or a shared writable mapping's: deny_write_access)`);
    const flags = this.flagsOf(inode);
    if (flags.verity) throw new KernelError('EEXIST', `FS_IOC_ENABLE_VERITY of '${inode.name}': verity already`);
    if (daxTriState(this.k.version)) {
      if (inode.sDax || inode.daxFlag) throw new KernelError('EINVAL', `FS_IOC_ENABLE_VERITY of '${inode.name}', which is DAX${inode.sDax ? '' : ' (EXT4_DAX_FL)'} (ext4_begin_enable_verity)`);
    } else if (inode.sDax) {
      throw KernelError.unsupported('EINVAL', `v5.4 ext4_end_enable_verity() re-decides S_DAX of the live DAX inode '${inode.name}' (ext4_set_inode_flags): not modelled`);
    }
    this.step(inode, 'ext4_begin_enable_verity');
    this.convertInlineData(inode);
    flags.verity = true;
    this.step(inode, 'ext4_end_enable_verity');
    yield* [];
  }

  /** ext4_convert_inline_data(): an inline file's data moves to a block and EXT4_INLINE_DATA_FL goes. */
  private convertInlineData(inode: Inode): void {
    const flags = this.flagsOf(inode);
    if (!flags.inline) return;
    this.step(inode, 'ext4_convert_inline_data');
    const blocks = this.blocks.alloc(inode.name, 0, this.pages(inode.size));
    blocks.forEach((b, i) => inode.blocks.set(i, b));
    flags.inline = false;
  }

  /**
   * ext4_setattr(ATTR_SIZE) [5.10 and 7.2 fs/ext4/inode.c]. notify_change() is called with
   * inode_lock held by the VFS (do_truncate). Shrinking waits for direct I/O (inode_dio_wait;
   * no DIO in the model), then under the fault lock: ext4_break_layouts(), the size change
   * (ext4_orphan_add on shrink, i_disksize and i_size under i_data_sem), truncate_pagecache()
   * (DAX entries deleted in eras (a)/(b); none left in (c)), and ext4_truncate() frees the
   * blocks beyond EOF (ext4_ext_truncate -> ext4_ext_remove_space), called even when the size
   * did not change.
   */
  *truncate(inode: Inode, size: number): Op {
    // fsverity_prepare_setattr(): a verity file's size cannot change
    if (this.hasVerity(inode)) throw new KernelError('EPERM', `truncate of verity file '${inode.name}' (fsverity_prepare_setattr)`);
    yield* this.lockInode(inode);
    try {
      const oldsize = inode.size;
      const shrink = size < oldsize;
      if (shrink) this.step(inode, 'inode_dio_wait');
      yield* this.lockFaults(inode);
      try {
        yield* this.breakLayouts(inode);
        if (size !== oldsize) {
          if (shrink) this.step(inode, 'ext4_orphan_add');
          inode.size = size;
          this.step(inode, 'i_size_write');
        }
        this.step(inode, 'truncate_pagecache');
        yield* this.truncatePagecacheTo(inode, size);
        if (size <= oldsize) {
          this.step(inode, 'ext4_truncate');
          this.freeBlocks(inode, this.pages(size), Infinity);
        }
      } finally {
        this.unlockFaults(inode);
      }
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). Two orderings:
   * - up to v6.14, ext4_punch_hole() [5.10 fs/ext4/inode.c]: write back a dirty mapping before
   *   any lock (DAX writeback, not modelled), inode_lock, return if the hole starts at or beyond
   *   i_size, end the hole after the page holding i_size, inode_dio_wait, the fault lock,
   *   ext4_break_layouts(), truncate_pagecache_range() over the whole blocks, zero the partial
   *   blocks (page data is one token here: not modelled), then under i_data_sem
   *   ext4_es_remove_extent + ext4_ext_remove_space() free the whole blocks inside the hole;
   * - from v6.15 (Zhang Yi's fallocate rework, 2890e5e0f49e "ext4: move out common parts into
   *   ext4_fallocate()"), ext4_fallocate() takes inode_lock, inode_dio_wait, the fault lock and
   *   ext4_break_layouts() for every non-allocating mode, then ext4_punch_hole() clamps to
   *   i_size (round_up to a page), truncates the page cache of the range
   *   (ext4_truncate_page_cache_block_range) and removes the whole blocks.
   */
  *punchHole(inode: Inode, offset: number, length: number): Op {
    // fallocate needs a descriptor open for writing, which fsverity_file_open() refuses
    this.checkOpen(inode, true);
    if (kernelAtLeast(this.k.version, 6, 15)) yield* this.fallocatePunch(inode, offset, length);
    else yield* this.punchHoleV510(inode, offset, length);
  }

  private *punchHoleV510(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    yield* this.lockInode(inode);
    try {
      if (offset >= inode.size) return; // "No need to punch hole beyond i_size"
      const size = inode.size;
      const end = offset + length > size ? size + ps - (size % ps) : offset + length;
      this.step(inode, 'inode_dio_wait');
      yield* this.withLayoutsBroken(inode, () => this.removeRange(inode, offset, end));
    } finally {
      this.unlockInode(inode);
    }
  }

  private *fallocatePunch(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    yield* this.fallocateV615(inode, 'punch', function* (this: Ext4): Op {
      this.step(inode, 'ext4_punch_hole');
      if (offset >= inode.size) return;
      const end = Math.min(offset + length, Math.ceil(inode.size / ps) * ps);
      yield* this.removeRange(inode, offset, end);
    }.bind(this));
  }

  /**
   * ext4_fallocate() from v6.15 (2890e5e0f49e and the rest of Zhang Yi's rework): inode_lock,
   * inode_dio_wait; plain allocation (ext4_do_fallocate) goes on without the fault lock; every
   * other mode takes filemap_invalidate_lock and ext4_break_layouts() first, and only then runs
   * the mode's own function, whose checks therefore come after the wait.
   */
  private *fallocateV615(inode: Inode, mode: FallocateMode | 'punch', body: () => Op): Op {
    this.step(inode, 'ext4_fallocate');
    yield* this.lockInode(inode);
    try {
      this.step(inode, 'inode_dio_wait');
      if (mode === 'allocate') return yield* body();
      yield* this.withLayoutsBroken(inode, body);
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * fallocate(mode) of an extent-mapped file (the model has no indirect-block files, whose
   * zero and collapse range are EOPNOTSUPP; nor encryption, which refuses collapse). Up to
   * v6.14 each mode takes its own locks (below); from v6.15 fallocateV615() takes them and
   * breaks layouts first.
   */
  *fallocate(inode: Inode, mode: FallocateMode, offset: number, length: number, keepSize: boolean): Op {
    this.checkOpen(inode, true); // fallocate needs a descriptor open for writing (fsverity_file_open)
    // ext4_fallocate(), before any lock: FALLOC_FL_UNSHARE_RANGE is in no release's mode mask
    // (ext4 has no shared blocks); FALLOC_FL_WRITE_ZEROES (v6.17, f4265b8d32c4 "ext4: add
    // FALLOC_FL_WRITE_ZEROES support") needs a block device with unmap write zeroes
    // (bdev_write_zeroes_unmap), which a pmem namespace does not set up [M: pmem_attach_disk's
    // queue limits were not read for it]: -EOPNOTSUPP either way.
    if (mode === 'unshare-range') throw new KernelError('EOPNOTSUPP', `fallocate(FALLOC_FL_UNSHARE_RANGE) of '${inode.name}': not in ext4_fallocate()'s modes`);
    if (mode === 'write-zeroes') throw new KernelError('EOPNOTSUPP', `fallocate(FALLOC_FL_WRITE_ZEROES) of '${inode.name}': ${this.device.name} has no unmap write zeroes (ext4_fallocate: bdev_write_zeroes_unmap)`);
    // every mode but punch hole converts inline data first (ext4_fallocate, before its locks up to
    // v6.14; v6.15 does it under inode_lock, an order the model does not keep)
    this.convertInlineData(inode);
    const v615 = kernelAtLeast(this.k.version, 6, 15);
    if (mode === 'allocate') {
      const body = (): Op => this.allocFileBlocks(inode, offset, length, keepSize);
      if (v615) return yield* this.fallocateV615(inode, mode, body);
      return yield* this.underInodeLock(inode, body);
    }
    if (mode === 'zero-range') {
      if (v615) return yield* this.fallocateV615(inode, mode, () => this.zeroRange(inode, offset, length, keepSize));
      return yield* this.zeroRangeV510(inode, offset, length, keepSize);
    }
    if (mode === 'insert-range') {
      if (v615) return yield* this.fallocateV615(inode, mode, () => this.insertRange(inode, offset, length));
      return yield* this.insertRangeV510(inode, offset, length);
    }
    if (v615) return yield* this.fallocateV615(inode, mode, () => this.collapseRange(inode, offset, length));
    return yield* this.collapseRangeV510(inode, offset, length);
  }

  /**
   * ext4_insert_range() up to v6.14 [as the v6.15 rework found it, fs/ext4/extents.c]: inode_lock,
   * then the checks — cluster-aligned offset and length (-EINVAL), offset below i_size (-EINVAL),
   * the grown file within s_maxbytes (-EFBIG) — then inode_dio_wait, the fault lock,
   * ext4_break_layouts() and the insert: every refusal comes before the wait. (v5.10 made the
   * alignment check before inode_lock and EFBIG before the EOF check: the same answers.)
   */
  private *insertRangeV510(inode: Inode, offset: number, length: number): Op {
    yield* this.shiftUnderOwnLocks(inode, 'ext4_insert_range', () => {}, () => this.checkInsertRange(inode, offset, length), () => this.insert(inode, offset, length));
  }

  /**
   * Collapse and insert range up to v6.14, each under its own locks: `checkFirst` before
   * inode_lock, `check` under it, then inode_dio_wait, the fault lock, ext4_break_layouts() and
   * the shift — every refusal before the wait.
   */
  private *shiftUnderOwnLocks(inode: Inode, fn: string, checkFirst: () => void, check: () => void, shift: () => Op): Op {
    this.step(inode, fn);
    checkFirst();
    yield* this.lockInode(inode);
    try {
      check();
      this.step(inode, 'inode_dio_wait');
      yield* this.withLayoutsBroken(inode, shift);
    } finally {
      this.unlockInode(inode);
    }
  }

  /** ext4_insert_range() from v6.15: the same checks, after ext4_fallocate() broke layouts. */
  private *insertRange(inode: Inode, offset: number, length: number): Op {
    this.step(inode, 'ext4_insert_range');
    this.checkInsertRange(inode, offset, length);
    yield* this.insert(inode, offset, length);
  }

  private checkInsertRange(inode: Inode, offset: number, length: number): void {
    const ps = this.pageSize;
    if (offset % ps || length % ps) throw new KernelError('EINVAL', `insert range of '${inode.name}' at ${offset}+${length}: not whole ${ps}-byte clusters (ext4_insert_range)`);
    if (offset >= inode.size) throw new KernelError('EINVAL', `insert range of '${inode.name}' at ${offset}: not below i_size ${inode.size} (ext4_insert_range)`);
    if (length > this.maxBytes - inode.size) throw new KernelError('EFBIG', `insert range of ${length} bytes into '${inode.name}' (${inode.size} bytes) passes s_maxbytes ${this.maxBytes} (ext4_insert_range)`);
  }

  /**
   * The insert itself: write back and drop the page cache from the page holding the offset to
   * EOF (filemap_write_and_wait_range + truncate_pagecache; ext4_truncate_page_cache_block_range
   * in v6.15), i_size and i_disksize grow by the length first ("Expand file to avoid data loss if
   * there is error while shifting"), then under i_data_sem the extent at the offset is split and
   * ext4_ext_shift_extents(SHIFT_RIGHT) moves every extent from there up by the length.
   */
  private *insert(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    const first = offset / ps;
    if (inode.cache) this.writeback(inode);
    this.step(inode, 'truncate_pagecache');
    yield* this.truncatePagecacheRange(inode, first, Infinity);
    inode.size += length;
    this.step(inode, 'i_size_write');
    if (inode.cache) yield* this.truncatePagecacheTo(inode, inode.size); // a page-cache file's size follows i_size
    this.step(inode, 'ext4_ext_shift_extents(SHIFT_RIGHT)');
    this.shiftBlocks(inode, first, length / ps);
  }

  /**
   * s_maxbytes of an extent-mapped file, ext4_max_size(blkbits, huge_file): 2^32 - 1 blocks (the
   * extent's 32-bit logical start); the block is the page under DAX (16 TiB - 4 KiB on x86).
   */
  override get maxBytes(): number {
    return (2 ** 32 - 1) * this.pageSize;
  }

  /**
   * The fault lock taken exclusively ("Prevent page faults from reinstantiating pages we have
   * released"), ext4_break_layouts(), the work, the fault lock dropped.
   */
  private *withLayoutsBroken(inode: Inode, body: () => Op): Op {
    yield* this.lockFaults(inode);
    try {
      yield* this.breakLayouts(inode);
      yield* body();
    } finally {
      this.unlockFaults(inode);
    }
  }

  /** ext4_fallocate() up to v6.14 for plain allocation: inode_lock, inode_dio_wait, no fault lock. */
  private *underInodeLock(inode: Inode, body: () => Op): Op {
    this.step(inode, 'ext4_fallocate');
    yield* this.lockInode(inode);
    try {
      this.step(inode, 'inode_dio_wait');
      yield* body();
    } finally {
      this.unlockInode(inode);
    }
  }

  /**
   * ext4_alloc_file_blocks(EXT4_GET_BLOCKS_CREATE_UNWRIT_EXT) (ext4_do_fallocate in v6.15):
   * unwritten extents over the holes of the range; i_size grows unless KEEP_SIZE.
   */
  private *allocFileBlocks(inode: Inode, offset: number, length: number, keepSize: boolean): Op {
    const ps = this.pageSize;
    const newSize = this.fallocNewSize(inode, offset, length, keepSize);
    this.step(inode, 'ext4_alloc_file_blocks');
    this.preallocate(inode, Math.floor(offset / ps), Math.ceil((offset + length) / ps));
    if (newSize) this.setSize(inode, newSize);
    yield* [];
  }

  /** ext4_update_inode_size(): i_size and i_disksize grow to `size`. */
  private setSize(inode: Inode, size: number): void {
    inode.size = size;
    this.step(inode, 'ext4_update_inode_size');
  }

  /**
   * ext4_zero_range() up to v6.14 [5.10 fs/ext4/extents.c]: inode_lock, the new size,
   * inode_dio_wait, then, only when the range holds a whole block, the fault lock,
   * ext4_break_layouts() and the zeroing; the partial blocks at the edges are preallocated
   * before the lock and zeroed after it (page data is one token here: not modelled).
   */
  private *zeroRangeV510(inode: Inode, offset: number, length: number, keepSize: boolean): Op {
    const ps = this.pageSize;
    this.step(inode, 'ext4_zero_range');
    yield* this.lockInode(inode);
    try {
      const newSize = this.fallocNewSize(inode, offset, length, keepSize);
      this.step(inode, 'inode_dio_wait');
      this.preallocateEdges(inode, offset, length);
      if (Math.floor((offset + length) / ps) > Math.ceil(offset / ps)) yield* this.withLayoutsBroken(inode, () => this.zeroWholeBlocks(inode, offset, length));
      if (newSize) this.setSize(inode, newSize);
    } finally {
      this.unlockInode(inode);
    }
  }

  /** ext4_zero_range() from v6.15: the same work, called with the locks held and layouts broken. */
  private *zeroRange(inode: Inode, offset: number, length: number, keepSize: boolean): Op {
    this.step(inode, 'ext4_zero_range');
    const newSize = this.fallocNewSize(inode, offset, length, keepSize);
    this.preallocateEdges(inode, offset, length);
    yield* this.zeroWholeBlocks(inode, offset, length);
    if (newSize) this.setSize(inode, newSize);
  }

  /** "Preallocate the range including the unaligned edges" when an end is not block-aligned. */
  private preallocateEdges(inode: Inode, offset: number, length: number): void {
    const ps = this.pageSize;
    if (offset % ps === 0 && (offset + length) % ps === 0) return;
    this.step(inode, 'ext4_alloc_file_blocks');
    this.preallocate(inode, Math.floor(offset / ps), Math.ceil((offset + length) / ps));
  }

  /**
   * The whole blocks of the range: ext4_update_disksize_before_punch, truncate_pagecache_range()
   * (ext4_truncate_page_cache_block_range in v6.15), then ext4_alloc_file_blocks(
   * CONVERT_UNWRITTEN | EXT4_EX_NOCACHE): holes get unwritten blocks and written extents are
   * converted to unwritten in place. Unlike XFS, no block is freed.
   */
  private *zeroWholeBlocks(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    const first = Math.ceil(offset / ps);
    const stop = Math.floor((offset + length) / ps);
    if (stop <= first) return;
    this.step(inode, 'truncate_pagecache_range');
    yield* this.truncatePagecacheRange(inode, first, stop - 1);
    this.step(inode, 'ext4_alloc_file_blocks(CONVERT_UNWRITTEN)');
    this.convertToUnwritten(inode, first, stop);
  }

  /**
   * ext4_collapse_range() up to v6.14 [5.10 fs/ext4/extents.c]: the alignment check (offset and
   * length whole clusters: -EINVAL) before any lock; inode_lock, then the EOF check (-EINVAL);
   * inode_dio_wait, the fault lock, ext4_break_layouts() and the collapse. Both refusals come
   * before the break-layouts wait.
   */
  private *collapseRangeV510(inode: Inode, offset: number, length: number): Op {
    yield* this.shiftUnderOwnLocks(inode, 'ext4_collapse_range', () => this.checkCollapseAligned(inode, offset, length), () => this.checkCollapseBeforeEof(inode, offset, length), () => this.collapse(inode, offset, length));
  }

  /** ext4_collapse_range() from v6.15: the same checks, after ext4_fallocate() broke layouts. */
  private *collapseRange(inode: Inode, offset: number, length: number): Op {
    this.step(inode, 'ext4_collapse_range');
    this.checkCollapseAligned(inode, offset, length);
    this.checkCollapseBeforeEof(inode, offset, length);
    yield* this.collapse(inode, offset, length);
  }

  /** "Collapse range works only on fs cluster size aligned regions" (no bigalloc: the block, PAGE_SIZE under DAX). */
  private checkCollapseAligned(inode: Inode, offset: number, length: number): void {
    const ps = this.pageSize;
    if (offset % ps || length % ps) throw new KernelError('EINVAL', `collapse range of '${inode.name}' at ${offset}+${length}: not whole ${ps}-byte clusters (ext4_collapse_range)`);
  }

  /** "There is no need to overlap collapse range with EOF, in which case it is effectively a truncate operation". */
  private checkCollapseBeforeEof(inode: Inode, offset: number, length: number): void {
    if (offset + length >= inode.size) throw new KernelError('EINVAL', `collapse range of '${inode.name}' at ${offset}+${length} reaches EOF (${inode.size}): that is a truncate (ext4_collapse_range)`);
  }

  /**
   * The collapse itself: write back and drop the page cache from the page holding the offset
   * (filemap_write_and_wait_range, truncate_pagecache: the DAX entries from there to EOF), then
   * under i_data_sem ext4_ext_remove_space() frees the range's blocks and
   * ext4_ext_shift_extents(SHIFT_LEFT) moves every extent above it down; i_size shrinks by the
   * length.
   */
  private *collapse(inode: Inode, offset: number, length: number): Op {
    const ps = this.pageSize;
    const first = offset / ps;
    const stop = (offset + length) / ps;
    if (inode.cache) this.writeback(inode);
    this.step(inode, 'truncate_pagecache');
    yield* this.truncatePagecacheRange(inode, first, Infinity);
    this.step(inode, 'ext4_ext_remove_space');
    this.freeBlocks(inode, first, stop);
    this.step(inode, 'ext4_ext_shift_extents');
    this.shiftBlocks(inode, stop, first - stop);
    inode.size -= length;
    this.step(inode, 'i_size_write');
    if (inode.cache) yield* this.truncatePagecacheTo(inode, inode.size); // a page-cache file's size follows i_size
  }

  /**
   * The common tail of both punch orderings for the byte range [offset, end): drop the page
   * cache / DAX entries of the whole pages inside it (truncate_pagecache_range keeps partial
   * pages), then free the whole blocks inside it (block size == PAGE_SIZE under DAX).
   */
  private *removeRange(inode: Inode, offset: number, end: number): Op {
    const ps = this.pageSize;
    const first = Math.ceil(offset / ps);
    const stop = Math.floor(end / ps);
    if (stop <= first) return;
    this.step(inode, 'truncate_pagecache_range');
    yield* this.truncatePagecacheRange(inode, first, stop - 1);
    this.step(inode, 'ext4_ext_remove_space');
    this.freeBlocks(inode, first, stop);
  }

  /**
   * ext4_break_layouts() over the whole file, with the fault lock held exclusively (it WARNs
   * and fails with -EINVAL otherwise). Eras (a)/(b): the do/while lives in ext4 —
   * dax_layout_busy_page(), then ___wait_var_event(rc == 1) with ext4_wait_dax_page() dropping
   * the fault lock across schedule() — until no page is busy. Era (c):
   * dax_break_layout_inode(inode, ext4_wait_dax_page), which also deletes every DAX entry.
   */
  *breakLayouts(inode: Inode): Op {
    if (!inode.mmaplock.heldExclusive) throw new KernelError('EINVAL', `ext4_break_layouts(${inode.name}) without the fault lock held`);
    this.step(inode, 'ext4_break_layouts');
    yield* this.breakDaxLayouts(inode, 0, Infinity); // whole file, ext4_wait_dax_page()
  }

  /**
   * ext4_dax_fault -> ext4_dax_huge_fault(): the fault lock shared around dax_iomap_fault()
   * (write faults also take sb_start_pagefault and a journal handle, retried on ENOSPC: not
   * modelled). The huge fault is tried first; a fallback retries with PTEs.
   */
  *fault(vmf: Vmf, inode: Inode): Op {
    yield* this.daxFault(vmf, inode);
  }

  /**
   * The copy a private write fault takes of a DAX file page (do_cow_fault -> ext4_dax_fault ->
   * ext4_dax_huge_fault() with FAULT_FLAG_WRITE and vmf->cow_page). Since fd96b8da68d3 ("ext4: fix
   * fault handling when mounted with -o dax,ro", v4.12 [M]) its `write` is FAULT_FLAG_WRITE on a
   * VM_SHARED mapping, so a COW fault takes only the fault lock and works on a read-only mount
   * (xfstests generic/452). Feature `ext4-dax-cow-journal` is the code before it: the COW fault
   * starts a journal handle, which ext4_journal_check_start() refuses on a read-only filesystem
   * (EROFS), and the fault returns VM_FAULT_SIGBUS.
   */
  override *cowData(vmf: Vmf, inode: Inode): Op<string> {
    if (this.k.features['ext4-dax-cow-journal']) {
      this.step(inode, 'ext4_journal_start_sb');
      if (this.readOnly) throw new KernelError('SIGBUS', `COW fault on page ${vmf.pgoff} of '${inode.name}': ext4_dax_huge_fault() starts a journal handle on the read-only filesystem (EROFS): VM_FAULT_SIGBUS`);
    }
    return yield* super.cowData(vmf, inode);
  }

  /** ext4_dax_vm_ops.pfn_mkwrite = ext4_dax_fault: a full PTE write fault under the fault lock. */
  *pfnMkwrite(vmf: Vmf, inode: Inode): Op {
    yield* this.daxFault({ ...vmf, write: true }, inode);
  }
}

export interface Ext4Options {}

/** The ext4 filesystem plugin. */
/** ext4's parse of the dax option on `version` (Ext4.parseDaxOption). */
function ext4DaxMode(version: string, option: DaxMountOption): DaxMode {
  if (option === true) return 'always';
  const tri = daxTriState(version);
  if (option === false) return tri ? 'inode' : 'never';
  if (!tri) throw KernelError.unsupported('EINVAL', `ext4 before v5.8 knows only -o dax: mount ${describeDaxOption(option)} fails (Unrecognized mount option)`);
  return option;
}

export function ext4(_options: Ext4Options = {}): FilesystemPlugin {
  return {
    kind: 'fs',
    name: '@daxlab/fs-ext4',
    fsName: 'ext4',
    coreRange: '>=0.1.0 <1.0.0',
    mount: (k, device) => {
      if (device.driver === 'virtiofs') throw new KernelError('EINVAL', `ext4: ${device.name} is a virtio-fs DAX window, not a block device`);
      return new Ext4(k, device);
    },
    /**
     * -o dax / dax=always on a block device without a dax_device (EXT4_FLAGS_BDEV_IS_DAX unset;
     * bdev_dax_supported() false before v5.17): "DAX unsupported by block device." and the mount
     * fails with EINVAL — ext4_fill_super() (goto failed_mount, since 2018-12, before every
     * preset), ext4_check_feature_compatibility() from v6.4. ndctl dax-errors.sh mounts a raw
     * namespace this way. Without DAX asked (no dax option; dax=never or dax=inode from v5.8)
     * ext4 mounts: EXT4_FLAGS_BDEV_IS_DAX stays unset, so ext4_should_enable_dax() (v5.8;
     * ext4_should_use_dax() before, which wants -o dax) gives no file S_DAX, and every file goes
     * through the page cache and bios (ndctl pmem-errors.sh's mount): Kernel.mount makes it.
     */
    mountWithoutDaxDevice: (k, device, dax) => {
      if (ext4DaxMode(k.version, dax) === 'always') throw new KernelError('EINVAL', `ext4 ${device.name}: DAX unsupported by block device (${device.why}): mount ${describeDaxOption(dax)} fails`);
    },
  };
}
