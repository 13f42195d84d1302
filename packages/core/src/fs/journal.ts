import { KernelError } from '../errors.js';
import type { Kernel } from '../kernel.js';
import type { Inode } from '../types.js';
import type { DaxFilesystem } from './filesystem.js';
import type { BlockOwner } from './blocks.js';

/**
 * Metadata durability of a journalling DAX filesystem (XFS's log, ext4's jbd2): what a power
 * failure, or a dm-log-writes replay, finds of each file.
 *
 * Every metadata change (creating a file, i_size, allocating or freeing blocks, converting an
 * unwritten extent, FS_XFLAG_DAX, directories) is a transaction that is committed to the
 * running journal transaction (XFS: xfs_trans_commit into the CIL; ext4: a jbd2 handle) but
 * reaches the device only when the journal commits: xfs_log_force_seq() / jbd2's commit of the
 * running transaction. A commit takes every earlier change of the whole filesystem with it (one
 * CIL checkpoint, one jbd2 transaction), not only the inode that asked. The model commits at:
 *  - fsync(2) / fdatasync(2) and msync(MS_SYNC) (vfs_fsync_range -> xfs_file_fsync /
 *    ext4_sync_file), and only when the file has uncommitted metadata (xfs_fsync_seq() is 0 for
 *    an unpinned inode; jbd2_complete_transaction() of a committed tid does nothing);
 *  - a MAP_SYNC write fault whose iomap carries IOMAP_F_DIRTY (dax_finish_sync_fault(), fs/dax.c);
 *  - sync_filesystem() (sync, drop-caches, remount read-only) and umount (a clean unmount).
 * The journal's own periodic commits (jbd2's commit interval, 5 s; XFS's log worker and CIL
 * push thresholds) are not modelled: a scenario has no clock, so uncommitted metadata stays
 * uncommitted until one of the calls above. Nothing is synchronous by itself (no -o wsync /
 * dirsync / O_SYNC here). File data is not journalled: DAX stores and writes go to the media at
 * once (the model keeps no CPU caches), page-cache data at writeback.
 */
export interface InodeMeta {
  readonly size: number;
  readonly blocks: ReadonlyMap<number, number>;
  readonly unwritten: ReadonlySet<number>;
  readonly daxFlag: boolean;
  readonly dir: string;
}

/** The committed metadata of every file and directory (name -> what the device holds). */
export interface Checkpoint {
  readonly files: ReadonlyMap<string, InodeMeta>;
  readonly dirs: ReadonlyMap<string, { readonly daxFlag: boolean; readonly parent: string }>;
}

/** A filesystem's journal: the last commit, and the dm-log-writes marks taken on its device. */
export class Journal {
  committed: Checkpoint = { files: new Map(), dirs: new Map([['/', { daxFlag: false, parent: '/' }]]) };
  /** `dmsetup message <log-writes dev> 0 mark <name>`: the commit each mark found in the log */
  readonly marks = new Map<string, Checkpoint>();
}

function metaOf(fs: DaxFilesystem, inode: Inode): InodeMeta {
  const unwritten = new Set<number>();
  for (const index of inode.blocks.keys()) if (fs.isUnwritten(inode, index)) unwritten.add(index);
  return { size: inode.size, blocks: new Map(inode.blocks), unwritten, daxFlag: inode.daxFlag, dir: fs.parents.get(inode.name) ?? '/' };
}

/** The live inode is as `c` committed it (compared in place: no copy on the fault path). */
function asCommitted(fs: DaxFilesystem, inode: Inode, c: InodeMeta): boolean {
  if (inode.size !== c.size || inode.daxFlag !== c.daxFlag || (fs.parents.get(inode.name) ?? '/') !== c.dir || inode.blocks.size !== c.blocks.size) return false;
  let unwritten = 0;
  for (const [i, block] of inode.blocks) {
    if (c.blocks.get(i) !== block) return false;
    const u = fs.isUnwritten(inode, i);
    if (u !== c.unwritten.has(i)) return false;
    if (u) unwritten++;
  }
  return unwritten === c.unwritten.size;
}

/**
 * The file has metadata the journal has not committed: XFS's xfs_ipincount() with fsync fields
 * beyond XFS_ILOG_TIMESTAMP (xfs_bmbt_to_iomap's IOMAP_F_DIRTY, xfs_fsync_seq), ext4's
 * ext4_inode_datasync_dirty() (i_datasync_tid not committed). Timestamps are not modelled.
 */
export function metadataDirty(fs: DaxFilesystem, inode: Inode): boolean {
  if (fs.journalCommit === null) return false;
  const committed = fs.journal.committed.files.get(inode.name);
  return committed === undefined || !asCommitted(fs, inode, committed);
}

/** The journal commits: every change made so far, of every file, is on the device. */
export function commitJournal(fs: DaxFilesystem): void {
  if (fs.journalCommit === null) return;
  const files = new Map<string, InodeMeta>();
  for (const inode of fs.inodes.values()) {
    const before = fs.journal.committed.files.get(inode.name);
    files.set(inode.name, before !== undefined && asCommitted(fs, inode, before) ? before : metaOf(fs, inode));
  }
  const dirs = new Map<string, { daxFlag: boolean; parent: string }>();
  for (const d of fs.dirs.values()) dirs.set(d.name, { daxFlag: d.daxFlag, parent: fs.parents.get(d.name) ?? '/' });
  fs.journal.committed = { files, dirs };
}

/** The log device records a mark: replaying to it gives the metadata committed by now. */
export function markLog(fs: DaxFilesystem, mark: string): void {
  requireLog(fs, 'log-mark');
  fs.journal.marks.set(mark, fs.journal.committed);
}

function requireLog(fs: DaxFilesystem, step: string): void {
  if (fs.journalCommit === null) throw KernelError.unsupported('EOPNOTSUPP', `${step} on ${fs.device.name}: ${fs.name} has no block device for a dm-log-writes target to sit on`);
}

/**
 * replay-log --replay <dev> --end-mark <mark> onto the unmounted device: its metadata becomes
 * what the journal had committed at the mark, so the next mount (log recovery) finds exactly
 * that: files created later are gone, and each file's size, blocks, unwritten extents and
 * FS_XFLAG_DAX are as committed; blocks allocated later are free again. File data is left as
 * the media holds it (see docs/kernel-model.md: dm-log-writes never logged DAX stores).
 */
export function replayLog(k: Kernel, fs: DaxFilesystem, mark: string): void {
  requireLog(fs, 'log-replay');
  const at = fs.journal.marks.get(mark);
  if (!at) throw new KernelError('ENOENT', `replay-log: mark '${mark}' does not exist in the log of ${fs.device.name} (log-mark it first)`);
  if (fs.mounted) throw new KernelError('EBUSY', `replay-log onto ${fs.device.name}: the filesystem is mounted (umount it first)`);
  for (const name of [...fs.inodes.keys()]) {
    if (at.files.has(name)) continue;
    fs.inodes.delete(name);
    fs.parents.delete(name);
    k.files.delete(name);
  }
  for (const [name, meta] of at.files) {
    // there is no unlink: every file the mark knows still exists
    const inode = fs.inodes.get(name)!;
    inode.size = meta.size;
    inode.daxFlag = meta.daxFlag;
    inode.blocks.clear();
    for (const [i, block] of meta.blocks) inode.blocks.set(i, block);
    fs.setUnwritten(inode, meta.unwritten);
    fs.parents.set(name, meta.dir);
  }
  for (const name of [...fs.dirs.keys()]) if (!at.dirs.has(name)) fs.dirs.delete(name);
  for (const [name, d] of at.dirs) {
    const dir = fs.dirs.get(name);
    if (dir) dir.daxFlag = d.daxFlag;
    else fs.dirs.set(name, { name, daxFlag: d.daxFlag });
    if (name !== '/') fs.parents.set(name, d.parent);
  }
  const owned: [number, BlockOwner][] = [];
  for (const [file, meta] of at.files) for (const [index, block] of meta.blocks) owned.push([block, { file, index }]);
  fs.blocks.rebuild(owned);
  fs.journal.committed = at;
}
