import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Inode } from '../types.js';
import type { DaxFilesystem } from './filesystem.js';
import { commitJournal } from './journal.js';

/**
 * DAX mount modes and the per-inode DAX flag. The kernel decides DAX per inode: S_DAX is set
 * when the inode is set up (xfs_setup_inode -> xfs_diflags_to_iflags(init = true);
 * ext4_set_inode_flags(init = true)) from the mount's dax policy and the on-disk FS_XFLAG_DAX,
 * and is never changed on a cached inode. FS_IOC_FSSETXATTR changes only the on-disk flag (and
 * from v5.8 marks the inode I_DONTCACHE), so S_DAX follows once the inode is evicted: its last
 * user gone (I_DONTCACHE), drop_caches, or umount + mount (xfstests generic/608).
 *
 * A file without S_DAX lives in the page cache (mm/pagecache.ts) backed by its blocks: folios
 * are read from the blocks, and written back to them when the inode is evicted, so the data
 * survives S_DAX flipping either way.
 *
 * ext4's own refusals (data=journal, nodelalloc with chattr +j, inline data, fs-verity:
 * packages/fs-ext4) come in through the mount options (DaxFilesystem.applyMountOptions),
 * shouldEnableDax(), checkDaxFlagChange(), setJournalFlag(), enableVerity() and checkOpen();
 * rename moves an entry and keeps everything of the inode.
 *
 * FUSE/virtio-fs's dax=inode (v5.17: the server decides per inode with FUSE_ATTR_DAX) is
 * packages/fs-fuse's: parseDaxOption, shouldEnableDax, and iget for the attribute revalidation.
 *
 * Not modelled: ext4 encryption (it excludes DAX too; no fscrypt here); chattr +j of a
 * directory; FS_XFLAG_DAX of a FUSE directory (the host's); writeback
 * other than at eviction (`drop-caches` and `umount` are `sync` followed by the eviction);
 * rename over an existing name (an unlink) or to a new name.
 */

export const DAX_MODES = ['always', 'never', 'inode'] as const;
/** The mount's policy: every file DAX, none, or per inode (FS_XFLAG_DAX). */
export type DaxMode = (typeof DAX_MODES)[number];
/** A `mount` step's dax option: true = the legacy `-o dax`, false = no dax option, or `dax=<mode>`. */
export type DaxMountOption = boolean | DaxMode;

/** A directory: only its FS_XFLAG_DAX is modelled (what new files and directories in it inherit). */
export interface Directory {
  readonly name: string;
  daxFlag: boolean;
}

export function describeDaxOption(option: DaxMountOption): string {
  return option === true ? '-o dax' : option === false ? 'without a dax option' : `-o dax=${option}`;
}

/**
 * dax=always|never|inode and the per-inode DAX flag honoured at inode setup: XFS 02beb2686ff9
 * "fs/xfs: Make DAX mount option a tri-state" (v5.8), ext4 9cb20f94afcd "fs/ext4: Make DAX mount
 * option a tri-state" with EXT4_DAX_FL (merged late, for v5.8-rc2).
 */
export function daxTriState(version: string): boolean {
  return kernelAtLeast(version, 5, 8);
}

/** The filesystem whose open files (`open` steps) hold `name`, and its inode. */
function openFileNamed(k: Kernel, name: string): { fs: DaxFilesystem; inode: Inode } | null {
  for (const d of k.blockDevices()) {
    const fs = d.fs as DaxFilesystem | null;
    const inode = fs?.openFiles.get(name);
    if (fs && inode) return { fs, inode };
  }
  return null;
}

/** The mounted filesystems (a device whose filesystem is mounted and whose driver is bound). */
export function mountedFilesystems(k: Kernel): DaxFilesystem[] {
  return [...k.blockDevices()].filter((d) => d.fs && d.bound && (d.fs as DaxFilesystem).mounted).map((d) => d.fs as DaxFilesystem);
}

/** The filesystem mounted on a device (ENOENT when none is: a file cannot be made there). */
export function mountedOn(k: Kernel, device: string): DaxFilesystem {
  const bdev = k.blockDevice(device);
  const fs = bdev.fs as DaxFilesystem | null;
  if (!fs || !fs.mounted || !bdev.bound) throw new KernelError('ENOENT', `no filesystem is mounted on ${device}`);
  return fs;
}

/** The filesystem holding a directory, and the directory. */
function findDir(k: Kernel, name: string): { fs: DaxFilesystem; dir: Directory } {
  for (const fs of mountedFilesystems(k)) {
    const dir = fs.dirs.get(name);
    if (dir) return { fs, dir };
  }
  throw new KernelError('ENOENT', `no directory '${name}' on a mounted filesystem`);
}

/** The last user of an I_DONTCACHE inode went (iput_final): it is evicted now (waiting for a busy DAX page from v6.15), unless its page cache holds a pinned folio. */
function* dropIfDontcache(fs: DaxFilesystem, inode: Inode): Op {
  if (inode.incore && inode.dontcache && !fs.inUse(inode) && fs.evictable(inode) === null) yield* fs.evict(inode);
}

/** mkdir(2) in directory `in` (default the root): the new directory inherits FS_XFLAG_DAX where the filesystem does. */
export function* mkdir(k: Kernel, a: { dir: string; in?: string; device?: string }): Op {
  const fs = a.device !== undefined ? mountedOn(k, a.device) : a.in !== undefined ? findDir(k, a.in).fs : mountedFilesystems(k)[0];
  if (!fs) throw new KernelError('ENOENT', 'no filesystem is mounted');
  if (fs.dirs.has(a.dir) || k.files.has(a.dir)) throw new KernelError('EEXIST', `'${a.dir}' exists`);
  const parent = fs.dir(a.in ?? '/');
  // filename_create(): an existing name is EEXIST before mnt_want_write()'s EROFS is looked at
  fs.checkWritable(`mkdir ${a.dir}`);
  // xfs_inode_inherit_flags2() / ext4_inherit_flags(): directories inherit it as files do
  fs.dirs.set(a.dir, { name: a.dir, daxFlag: fs.newChildDaxFlag(parent) });
  fs.parents.set(a.dir, parent.name);
  yield* [];
}

/**
 * rename(2) of a file or directory into directory `into` (`mv x into/`: the name stays).
 * vfs_rename -> xfs_rename / ext4_rename / fuse_rename2 (FUSE_RENAME) move the directory entry
 * and touch nothing else of the inode: its FS_XFLAG_DAX stays (no inheritance: that happens only
 * when an inode is created, xfs_inode_inherit_flags2 / ext4_inherit_flags), its S_DAX stays (only
 * eviction re-decides it) and it is the same inode, so open files and mappings of it stay valid
 * (xfstests generic/607's mv cases). Refused as the kernel does: a target directory on another
 * filesystem (EXDEV: do_renameat2 compares the mounts), a directory into itself or its own subtree
 * (EINVAL: lock_rename() returns the source as the trap). Renaming over an existing entry would
 * unlink it: the model has no unlink.
 */
export function* rename(k: Kernel, a: { file?: string; dir?: string; into: string }): Op {
  const name = a.dir ?? a.file!;
  const fs = a.dir !== undefined ? findDir(k, a.dir).fs : k.file(a.file!).fs;
  if (name === '/') throw new KernelError('EBUSY', 'rename of the root directory (a mount point)');
  const target = mountedFilesystems(k).find((f) => f.dirs.has(a.into));
  if (!target) throw new KernelError('ENOENT', `no directory '${a.into}' on a mounted filesystem`);
  if (target !== fs) throw new KernelError('EXDEV', `rename of '${name}' into '${a.into}', which is on another filesystem`);
  // do_renameat2(): mnt_want_write() after the EXDEV and EBUSY tests, before lock_rename()'s EINVAL
  fs.checkWritable(`rename of '${name}'`);
  if (a.dir !== undefined) {
    for (let d: string | undefined = a.into; d !== undefined; d = fs.parents.get(d)) {
      if (d === a.dir) throw new KernelError('EINVAL', `rename of directory '${a.dir}' into '${a.into}', inside itself`);
    }
  }
  fs.parents.set(name, a.into);
  yield* [];
}

/**
 * `xfs_io -c 'chattr +x|-x'` (FS_IOC_FSGETXATTR, then FS_IOC_FSSETXATTR with FS_XFLAG_DAX set or
 * cleared) on a file or directory. The filesystem refuses what it must and says whether the inode
 * is marked I_DONTCACHE; xfs_io then closes the file, which is the last iput of an inode nobody
 * else holds: evicted at once, so S_DAX follows the flag at the next lookup.
 */
export function* chattr(k: Kernel, a: { file?: string; dir?: string; dax?: boolean; journal?: boolean }): Op {
  if (a.dir !== undefined) {
    const { fs, dir } = findDir(k, a.dir);
    fs.checkWritable(`chattr of directory '${a.dir}'`); // ioctl_fssetxattr() -> mnt_want_write_file()
    if (a.journal !== undefined) throw KernelError.unsupported('EOPNOTSUPP', `chattr ${a.journal ? '+' : '-'}j of directory '${a.dir}' (FS_JOURNAL_DATA_FL inherited by new files) is not modelled`);
    if (a.dax === undefined) return;
    fs.checkDaxFlagChange(dir, a.dax);
    dir.daxFlag = a.dax;
    return yield* [];
  }
  const { fs, inode } = k.file(a.file!);
  // FS_IOC_FSSETXATTR / FS_IOC_SETFLAGS: mnt_want_write_file() before the filesystem is asked
  fs.checkWritable(`chattr of '${a.file}'`);
  try {
    if (a.dax !== undefined) {
      const { dontcache } = fs.checkDaxFlagChange(inode, a.dax);
      yield* fs.prepareDaxFlagChange(inode, a.dax);
      inode.daxFlag = a.dax;
      if (dontcache) inode.dontcache = true;
    }
    // ext4_ioctl_setflags(): the journalling flag is changed last, after the other flags are written
    if (a.journal !== undefined) yield* fs.setJournalFlag(inode, a.journal);
  } finally {
    yield* dropIfDontcache(fs, inode);
  }
}

/**
 * `echo 2 > /proc/sys/vm/drop_caches` (drop_slab -> prune_icache_sb): every in-core inode that
 * nothing holds is evicted. The model writes dirty page cache back first (as `sync` would);
 * an inode whose page cache keeps a pinned folio stays (invalidate_mapping_pages cannot drop it);
 * a pinned DAX page makes the eviction, and so the write to drop_caches, wait from v6.15.
 */
export function* dropCaches(k: Kernel): Op {
  for (const fs of mountedFilesystems(k)) {
    for (const inode of [...fs.inodes.values()]) {
      if (inode.incore && !fs.inUse(inode) && fs.evictable(inode) === null) yield* fs.evict(inode);
    }
    commitJournal(fs); // sync(2)'s ->sync_fs(wait): the journal commits (fs/journal.ts)
  }
}

/**
 * umount(2): EBUSY while a file is open or mapped; otherwise sync, evict every inode
 * (evict_inodes) and detach. What is on the device stays for the next `mount`, whose dax option
 * may differ (xfstests _scratch_cycle_mount).
 */
export function* umount(k: Kernel, a: { device: string }): Op {
  const fs = k.blockDevice(a.device).fs as DaxFilesystem | null;
  if (!fs || !fs.mounted) throw new KernelError('EINVAL', `${a.device} is not mounted`);
  const busy = [...fs.inodes.values()].find((i) => fs.inUse(i));
  if (busy) throw new KernelError('EBUSY', `umount ${a.device}: '${busy.name}' is ${busy.opens > 0 ? 'open' : 'mapped'} (the mount is busy)`);
  for (const inode of [...fs.inodes.values()]) if (inode.incore) yield* fs.evict(inode);
  // a clean unmount: sync_filesystem(), then the log is written out (xfs_log_unmount, jbd2_journal_destroy)
  fs.sync();
  fs.mounted = false;
}

/**
 * mount -o remount,ro|rw (do_reconfigure_mnt() -> reconfigure_super(), fs/super.c). To read-only:
 * sb_prepare_remount_readonly() (fs/namespace.c) refuses with EBUSY while the mount has writers
 * (mnt_get_writers(): a file open for writing; a shared writable mapping, whose O_RDWR file the VMA
 * holds) or unlinked inodes still open (s_remove_count; there is no unlink here); then the
 * filesystem syncs and turns read-only (ext4's and XFS's remount code call sync_filesystem() since
 * 02b9984d6408 "fs: push sync_filesystem() down to the file system's remount_fs()"; XFS only in
 * xfs_remount_ro() from 2022 [M]): the model writes every page cache back, as at eviction. Mappings stay:
 * a private one keeps faulting and COWing (a COW fault changes nothing on the filesystem), and a
 * shared read-only one, being of an O_RDONLY file (else the remount was EBUSY), has no VM_MAYWRITE,
 * so mprotect(PROT_WRITE) of it is EACCES from now on. Back to read-write (remount_rw) nothing is
 * refused here. Remounting to the mode it has changes nothing. Every release the presets cover
 * does the same. Not modelled: other options given with the remount (dax= among them),
 * `-o remount,ro,force`.
 */
export function* remount(k: Kernel, a: { device: string; ro: boolean }): Op {
  const fs = k.blockDevice(a.device).fs as DaxFilesystem | null;
  if (!fs || !fs.mounted) throw new KernelError('EINVAL', `remount of ${a.device}, which is not mounted`);
  if (fs.readOnly === a.ro) return yield* [];
  if (a.ro) {
    const writer = fs.writer();
    if (writer) throw new KernelError('EBUSY', `remount ${a.device} read-only: ${writer} (sb_prepare_remount_readonly: the mount has writers)`);
    fs.sync();
    for (const inode of fs.inodes.values()) {
      for (const vma of fs.mappingsOf(inode)) if (vma.flags.shared) vma.flags.nomaywrite = true;
    }
  }
  fs.readOnly = a.ro;
  yield* [];
}

/**
 * open(2) of a file: the descriptor `as` holds its inode until `close`. `write` is O_RDWR: on a
 * read-only mount may_open() refuses it (EROFS), then the filesystem's ->open may (checkOpen);
 * the descriptor holds write access to the mount (FMODE_WRITER) until it is closed.
 */
export function* openFile(k: Kernel, a: { file: string; as: string; write?: boolean }): Op {
  if (openFileNamed(k, a.as)) throw new InputError(`open file '${a.as}' already exists`, undefined, 'as');
  const f = k.file(a.file);
  if (a.write) {
    f.fs.checkWritable(`open(O_RDWR) of '${a.file}'`);
    f.fs.checkOpen(f.inode, true);
    f.fs.openForWrite.add(a.as);
  }
  f.inode.opens++;
  f.fs.openFiles.set(a.as, f.inode);
  yield* [];
}

/** close(2): the last close of an I_DONTCACHE inode nobody maps evicts it. */
export function* closeFile(k: Kernel, a: { name: string }): Op {
  const f = openFileNamed(k, a.name);
  if (!f) throw new InputError(`unknown open file '${a.name}': open it first (open: { file, as: ${a.name} })`, undefined, 'name');
  f.fs.openFiles.delete(a.name);
  f.fs.openForWrite.delete(a.name);
  f.inode.opens--;
  yield* dropIfDontcache(f.fs, f.inode);
}

/**
 * statx(2)'s STATX_ATTR_DAX: IS_DAX() of the inode the lookup finds (set up again if it was
 * evicted). The attribute came in v5.8 (712b2698e4c0 "fs/stat: Define DAX statx attribute");
 * before it statx cannot tell.
 */
export function statxDax(k: Kernel, file: string): boolean {
  if (!kernelAtLeast(k.version, 5, 8)) throw KernelError.unsupported('EOPNOTSUPP', `statx has no STATX_ATTR_DAX before v5.8: S_DAX of '${file}' cannot be read`);
  return k.file(file).inode.sDax;
}

/** FS_IOC_FSGETXATTR's FS_XFLAG_DAX of a file or directory (ext4 before v5.8 has no such flag: never set). */
export function daxFlagOf(k: Kernel, t: { file?: string; dir?: string }): boolean {
  return t.dir !== undefined ? findDir(k, t.dir).dir.daxFlag : k.file(t.file!).inode.daxFlag;
}

/**
 * mmap(MAP_SHARED_VALIDATE | MAP_SYNC) of a file. do_mmap() refuses a flag the file's
 * f_op->mmap_supported_flags lacks (only ext4 and XFS have MAP_SYNC: -EOPNOTSUPP elsewhere);
 * xfs_file_mmap / ext4_file_mmap refuse VM_SYNC on a file without S_DAX
 * (daxdev_mapping_supported(): IS_DAX, and a synchronous DAX device, which pmem is).
 */
export function checkMapSync(fs: DaxFilesystem, inode: Inode): void {
  if (!fs.mapSync) throw new KernelError('EOPNOTSUPP', `mmap MAP_SYNC of '${inode.name}': ${fs.name} has no MAP_SYNC in mmap_supported_flags`);
  if (!inode.sDax) throw new KernelError('EOPNOTSUPP', `mmap MAP_SYNC of '${inode.name}', which is not DAX (daxdev_mapping_supported: !IS_DAX)`);
}
