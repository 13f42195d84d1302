import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_WRITE } from '../mm/memfd.js';
import { PG } from '../mm/pages.js';
import { preempt, type Op } from '../sched.js';
import type { GupHandle, Inode, PageCacheFile } from '../types.js';
import type { Iomap } from '../dax/dax.js';
import type { DaxFilesystem, DirectIoCoherence } from './filesystem.js';
import { fileExtentSector } from '../dax/media-errors.js';

/**
 * pread(2) / pwrite(2) of a file, with O_DIRECT or without: the user buffer is `length` bytes of
 * a mapping of the scenario from its page `page` on (any mapping: the same DAX file, another
 * one, a page-cache file, anonymous memory). What each kind of file does with the buffer:
 *
 * - a DAX file (S_DAX; O_DIRECT changes nothing: xfs_file_read_iter / ext4_file_read_iter /
 *   fuse_file_read_iter test IS_DAX first): dax_iomap_rw() [fs/dax.c]. The filesystem holds
 *   i_rwsem (xfs_file_dax_read: IOLOCK_SHARED, xfs_file_dax_write: IOLOCK_EXCL; ext4_dax_read_iter
 *   / ext4_dax_write_iter and fuse_dax_read_iter / fuse_dax_write_iter: inode_lock_shared /
 *   inode_lock), asks its iomap for each extent (a write allocates holes and converts unwritten
 *   extents), and copies between the user buffer and the kernel's DAX mapping of the blocks with
 *   copy_to_user / copy_from_user (dax_iomap_iter: copy_to_iter, dax_copy_from_iter). The copy
 *   faults the buffer in through handle_mm_fault like a CPU access: no GUP, no pin, page faults
 *   never disabled (no IOCB_NOFAULT in any DAX path). A read stops at i_size and reads holes and
 *   unwritten extents as zeroes (iov_iter_zero); a write over new blocks (IOMAP_F_NEW) or a CoW
 *   extent first invalidates the range (invalidate_inode_pages2_range), so a zero page a read
 *   fault mapped there goes and mmap sees the data. A copy that faults ends the call: the bytes
 *   done, or -EFAULT when none (dax_iomap_rw: `done ? done : ret`, every release).
 * - a page-cache file (tmpfs / memfd, a disk tmpfile, a file without S_DAX on a DAX-capable
 *   mount), buffered: filemap_read() / shmem_file_read_iter() copy each folio to the user
 *   (copy_folio_to_iter: a short copy is -EFAULT unless something was read); a tmpfs hole reads
 *   as zeroes without a folio (SGP_READ). generic_perform_write() faults each source page in
 *   first (fault_in_iov_iter_readable), then ->write_begin gets the folio, the copy lands in it and
 *   ->write_end extends i_size: `written ? written : -EFAULT`.
 * - a file without S_DAX on XFS / ext4 with O_DIRECT: iomap_dio_rw(). The range's page cache is
 *   written back (and, for a write, invalidated: unmapped from every process, COW copies kept)
 *   first; a mapped extent is block I/O whose bio holds the buffer pages by GUP for the I/O's
 *   duration (bio_iov_iter_get_pages: get_user_pages_fast (FOLL_GET) until v6.4; from v6.5
 *   iov_iter_extract_pages() pins user memory, FOLL_PIN: a7e689dd1c06); a hole or unwritten
 *   extent read is iomap_dio_hole_iter()'s iov_iter_zero, a CPU store. A buffer page GUP cannot
 *   fault in fails the whole call with -EFAULT, even after bios went out: xfs and ext4 do not pass
 *   IOMAP_DIO_PARTIAL (only btrfs and gfs2 do, v5.16), and v5.4's ext4 (fs/direct-io.c) lets
 *   dio->page_errors win over the bytes done. The position and length must be multiples of the
 *   logical sector (512 bytes on pmem): -EINVAL (xfs_file_dio_write, iomap_dio_bio_iter).
 * - a memfd with O_DIRECT: open(O_DIRECT) is -EINVAL until shmem_file_open() sets
 *   FMODE_CAN_ODIRECT (v6.6, "tmpfs: trivial support for direct IO" [M]); from then the I/O is
 *   the buffered one. hugetlbfs and secretmem have no ->write_iter (vfs_write: -EINVAL);
 *   secretmem has no ->read_iter either; hugetlbfs_read_iter() copies the cached huge pages.
 * - FUSE: a DAX write that extends the file (fuse_dax_write_iter: file_extending_write),
 *   O_DIRECT of a file without DAX (fuse_direct_IO) and every read and write of a file without
 *   DAX that the server opened FOPEN_DIRECT_IO (fuse_direct_read_iter / fuse_direct_write_iter)
 *   go to the server: fuse_direct_io() GUPs the buffer pages (FOLL_GET up to v6.8, FOLL_PIN from
 *   v6.9) for FUSE_READ / FUSE_WRITE requests, and a page it cannot get gives a short count
 *   (serverIo below).
 *
 * The model's data is one string per page, so the position and length must be whole pages
 * (anything else that the kernel accepts is refused as not modelled), except for O_DIRECT
 * without DAX on XFS / ext4, which moves bytes from a buffer that may start inside a page
 * (directIo). Not modelled: the
 * file_remove_privs / timestamp updates of xfs_file_write_checks, RLIMIT_FSIZE, the
 * buffered fallback a direct write takes when the page cache cannot be invalidated (-ENOTBLK),
 * O_DIRECT on disk tmpfiles (whose blocks are not modelled), asynchronous direct I/O, and a
 * DAX write over poisoned blocks (dax_recovery_write); a DAX read of them fails (daxRead).
 */

/** A pread / pwrite step's arguments. */
export interface FileIoArgs {
  readonly file: string;
  /** the file position, bytes */
  readonly offset?: number;
  /** bytes */
  readonly length: number;
  /** the mapping the user buffer is in, and its first page */
  readonly map: string;
  readonly page?: number;
  /** bytes into page `page` where the buffer starts (default 0; O_DIRECT without DAX only) */
  readonly pageOffset?: number;
  /** O_DIRECT */
  readonly direct?: boolean;
  /** the process making the call (default: the one that created the mapping) */
  readonly process?: string;
}

/** pread / pwrite of a pmem namespace's block device (/dev/pmemX) instead of a file. */
export interface BdevIoArgs extends Omit<FileIoArgs, 'file'> {
  readonly device: string;
  readonly file?: undefined;
  /** `offset` counts from this file's first extent on the device (filefrag: dax/media-errors.ts fileExtentSector()) */
  readonly extentOf?: string;
}

/** bdev_logical_block_size() of a pmem namespace: the sector O_DIRECT must be aligned to */
const LOGICAL_SECTOR = 512;

/** pread(2) of a file or a block device into a buffer; returns the bytes read. */
export function* fileRead(k: Kernel, a: FileIoArgs | BdevIoArgs): Op<number> {
  return a.file === undefined ? yield* bdevIo(k, a, 'read') : yield* fileIo(k, a, 'read');
}

/** pwrite(2) of a buffer to a file or a block device; returns the bytes written. */
export function* fileWrite(k: Kernel, a: FileIoArgs | BdevIoArgs): Op<number> {
  return a.file === undefined ? yield* bdevIo(k, a, 'write') : yield* fileIo(k, a, 'write');
}

type Dir = 'read' | 'write';

/** The user buffer: page `i` of it is page `first + i` of mapping `map` in `process`. */
interface UserBuffer {
  readonly map: string;
  readonly first: number;
  readonly process?: string;
}

function* fileIo(k: Kernel, a: FileIoArgs, dir: Dir): Op<number> {
  const ps = k.mmu.basePageSize;
  const offset = a.offset ?? 0;
  const pageOffset = a.pageOffset ?? 0;
  const call = `p${dir}(${a.file}, ${offset}, ${a.length}${a.direct ? ', O_DIRECT' : ''})`;
  const buf: UserBuffer = { map: a.map, first: a.page ?? 0, ...(a.process !== undefined ? { process: a.process } : {}) };
  if (pageOffset >= ps) throw new InputError(`${call}: pageOffset ${pageOffset} is not inside a ${ps}-byte page: give page + pageOffset with 0 <= pageOffset < ${ps}`, undefined, 'pageOffset');
  const memfd = k.pageCache.named(a.file);
  if (memfd) {
    wholeBuffer(pageOffset, call);
    return yield* memfdIo(k, memfd, a, dir, buf, call);
  }
  const { fs, inode } = k.file(a.file);
  // the descriptor a write needs cannot be opened on a read-only mount (may_open: EROFS)
  if (dir === 'write') fs.checkWritable(`open '${a.file}' for ${call}`);
  const directNonDax = a.direct === true && !inode.sDax;
  if (!inode.sDax && !inode.cache) throw new Error(`${inode.name}: neither S_DAX nor a page cache`);
  // the sector check of a direct I/O comes before anything is done (xfs_file_dio_write,
  // iomap_dio_bio_iter: the position, the length and the buffer's address, iov_iter_alignment()
  // before v6.0 and bdev_iter_is_aligned() from v6.0 with pmem's 511-byte dma_alignment [M]);
  // fuse_direct_IO() has none (the server takes any range)
  if (directNonDax && !fs.directIoToServer && (offset % LOGICAL_SECTOR !== 0 || a.length % LOGICAL_SECTOR !== 0 || pageOffset % LOGICAL_SECTOR !== 0)) {
    throw new KernelError('EINVAL', `${call}: O_DIRECT position, length and buffer address must be multiples of the ${LOGICAL_SECTOR}-byte logical sector`);
  }
  // generic_write_check_limits() (xfs_file_write_checks / ext4_write_checks, under i_rwsem: the
  // model checks first): a write starting at or past s_maxbytes is -EFBIG, one crossing it is cut there
  let length = a.length;
  if (dir === 'write' && length > 0) {
    if (offset >= fs.maxBytes) throw new KernelError('EFBIG', `${call}: at or past ${fs.name}'s s_maxbytes ${fs.maxBytes}`);
    length = Math.min(length, fs.maxBytes - offset);
  }
  // iomap direct I/O moves bytes (the bio's segments); every other path here is modelled by whole pages
  if (directNonDax && !fs.directIoToServer) return length === 0 ? 0 : yield* directIo(k, fs, inode, offset, length, buf, pageOffset, dir, call);
  wholePages(ps, offset, length, call);
  wholeBuffer(pageOffset, call);
  const first = offset / ps;
  const n = length / ps;
  if (n === 0) return 0;
  if (inode.sDax) return dir === 'read' ? yield* daxRead(k, fs, inode, first, n, buf) : yield* daxWrite(k, fs, inode, first, n, buf, call);
  // fuse_file_read_iter / fuse_file_write_iter: FUSE_IS_DAX() first, then an FOPEN_DIRECT_IO open
  // file is fuse_direct_read_iter / fuse_direct_write_iter, with O_DIRECT or without
  if (fs.fopenDirectIo(inode)) return yield* serverDirectIo(k, fs, inode, first, n, buf, dir, call, fs.fopenDirectIoCoherence());
  if (directNonDax) return yield* serverDirectIo(k, fs, inode, first, n, buf, dir, call);
  return yield* bufferedInodeIo(k, fs, inode, first, n, buf, dir);
}

/** Sub-page I/O cannot be represented: the model keeps one datum per page. */
function wholePages(ps: number, offset: number, length: number, call: string): void {
  if (offset % ps !== 0 || length % ps !== 0) throw KernelError.unsupported('EOPNOTSUPP', `${call}: I/O of part of a page is not modelled (data is per page): use whole ${ps}-byte pages`);
}

/** A buffer that starts inside a page: modelled for O_DIRECT without DAX (iomap_dio_rw) only. */
function wholeBuffer(pageOffset: number, call: string): void {
  if (pageOffset !== 0) throw KernelError.unsupported('EOPNOTSUPP', `${call}: a buffer starting inside a page (pageOffset ${pageOffset}) is modelled for O_DIRECT of a file without DAX on XFS / ext4 only`);
}

// ---- the user side: copy_to_user / copy_from_user -------------------------------------------

/** The errors a user access turns into a short copy (a fault the kernel's exception fixup ends). */
const USER_FAULTS = new Set(['SIGSEGV', 'SIGBUS', 'EFAULT', 'ENOMEM', 'EHWPOISON']);

function userFault(e: unknown): boolean {
  return e instanceof KernelError && e.unsupported === null && USER_FAULTS.has(e.code);
}

/**
 * copy_to_user() of one page: a store that faults the buffer page in for write as a CPU store
 * would (handle_mm_fault with FAULT_FLAG_WRITE; COW in a private mapping). false: it faulted
 * without success (no VMA, PROT_READ, SIGBUS): the copy is short.
 */
function* copyToUser(k: Kernel, buf: UserBuffer, i: number, data: string): Op<boolean> {
  try {
    yield* k.write({ map: buf.map, page: buf.first + i, data, ...(buf.process !== undefined ? { process: buf.process } : {}) });
    return true;
  } catch (e) {
    if (userFault(e)) return false;
    throw e;
  }
}

/** copy_from_user() of one page: a load that read-faults the buffer page in; null: it faulted. */
function* copyFromUser(k: Kernel, buf: UserBuffer, i: number): Op<string | null> {
  try {
    return yield* k.read({ map: buf.map, page: buf.first + i, ...(buf.process !== undefined ? { process: buf.process } : {}) });
  } catch (e) {
    if (userFault(e)) return null;
    throw e;
  }
}

/** What a call that moved `done` pages returns: the bytes, or -EFAULT when nothing moved. */
function shortCount(done: number, ps: number, call: string, why: string): number {
  if (done === 0) throw new KernelError('EFAULT', `${call}: ${why}`);
  return done * ps;
}

// ---- DAX: dax_iomap_rw() ---------------------------------------------------------------------

/**
 * The iomap of a write at `index` for up to `pages` pages. A shared (reflinked) extent is written
 * by copy on write: XFS's ->iomap_begin gives a CoW fork block (IOMAP_F_SHARED with the old
 * extent as srcmap) one page at a time in this model, so a shared extent offered for several
 * pages is asked for again page by page; the shared block itself is never written.
 */
function* writeIomap(fs: DaxFilesystem, inode: Inode, index: number, pages: number): Op<Iomap> {
  const map = yield* fs.iomapBegin(inode, index, true, pages);
  if (!map.shared || map.srcPfn !== undefined) return map;
  const one = yield* fs.iomapBegin(inode, index, true, 1);
  if (one.shared && one.srcPfn === undefined) throw new Error(`${fs.name}: the write iomap of ${inode.name} page ${index} is a shared extent without a CoW block`);
  return one;
}

/** i_rwsem shared (xfs_file_dax_read: xfs_ilock(XFS_IOLOCK_SHARED); ext4/fuse: inode_lock_shared). */
function* daxRead(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, n: number, buf: UserBuffer): Op<number> {
  const ps = k.mmu.basePageSize;
  yield* inode.iolock.downRead();
  try {
    // dax_iomap_iter(): a read ends at i_size
    const end = Math.min(first + n, fs.pages(inode.size));
    let done = 0;
    for (let index = first; index < end; ) {
      const map = yield* fs.iomapBegin(inode, index, false, end - index);
      const run = Math.min(map.contiguous, end - index);
      // dax_iomap_iter() (dax_iomap_actor() in older releases) maps the extent's pages with one
      // dax_direct_access(), which fails when any of them is poisoned (__pmem_direct_access():
      // badblocks_check() over the whole request, no recovery for a read): the read ends there,
      // returning what was copied, else -EIO (dax_iomap_rw: `done ? done : ret`)
      if (map.type === 'mapped' && k.dax.poisoned(map.pfn, run)) {
        if (done === 0) throw new KernelError('EIO', `read of ${inode.name} pages ${index}..${index + run - 1}: the DAX extent holds a poisoned page or badblock (dax_direct_access: -EIO)`);
        break;
      }
      for (let i = 0; i < run; i++) {
        // a hole or unwritten extent: iov_iter_zero(); mapped: copy_to_iter() from the DAX kernel address
        const data = map.type === 'hole' ? '' : (k.pages.data.get(map.pfn + i) ?? '');
        if (!(yield* copyToUser(k, buf, done, data))) return shortCount(done, ps, `read of ${inode.name}`, `the buffer page ${buf.first + done} of '${buf.map}' cannot be written`);
        done++;
      }
      index += run;
    }
    return Math.min(done * ps, Math.max(0, inode.size - first * ps));
  } finally {
    inode.iolock.upRead();
  }
}

/**
 * i_rwsem exclusive (xfs_file_dax_write: XFS_IOLOCK_EXCL; ext4_dax_write_iter, fuse_dax_write_iter:
 * inode_lock), dax_iomap_rw(IOMAP_WRITE), then i_size extended past the bytes written
 * (xfs_file_dax_write: i_size_write + xfs_setfilesize; ext4_handle_inode_extension). A FUSE write
 * that extends the file (file_extending_write: it starts at or ends past i_size, the whole write)
 * goes to fuse_dax_direct_write() instead: FUSE_WRITE of the buffer's pages, the server writing
 * its host file, then fuse_write_update_attr() extends i_size to the end of what was written
 * ("write and on disk i_size increase are not atomic otherwise", fs/fuse/dax.c, v5.10).
 */
function* daxWrite(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, n: number, buf: UserBuffer, call: string): Op<number> {
  const ps = k.mmu.basePageSize;
  yield* inode.iolock.downWrite();
  try {
    if (fs.daxWriteToServer(inode, first * ps, (first + n) * ps)) {
      const done = yield* serverIo(k, fs, inode, first, n, buf, 'write', call);
      extendSize(k, fs, inode, first, done);
      return shortCount(done, ps, call, `GUP of the buffer page ${buf.first} of '${buf.map}' failed (fuse_get_user_pages)`);
    }
    let done = 0;
    for (let index = first; index < first + n; ) {
      const allocates = fs.writeAllocates(inode, index);
      let map;
      try {
        map = yield* writeIomap(fs, inode, index, first + n - index);
      } catch (e) {
        // iomap_iter() ends on ->iomap_begin's error (ENOSPC): dax_iomap_rw returns what was done
        if (e instanceof KernelError && e.unsupported === null && done > 0) break;
        throw e;
      }
      if (map.type !== 'mapped') throw new KernelError('EIO', `write of ${inode.name} page ${index}: the iomap is a hole (dax_iomap_iter: WARN_ON_ONCE, -EIO)`);
      const run = Math.min(map.contiguous, first + n - index);
      // IOMAP_F_NEW or CoW: tear down the zero pages read faults mapped over the old hole
      if (allocates || map.srcPfn !== undefined) yield* k.dax.invalidateInodePages2Range(inode, index, index + run - 1);
      let faulted = false;
      for (let i = 0; i < run; i++) {
        const data = yield* copyFromUser(k, buf, done);
        if (data === null) {
          faulted = true;
          break;
        }
        k.pages.data.set(map.pfn + i, data);
        done++;
      }
      if (faulted) break;
      index += run;
    }
    extendSize(k, fs, inode, first, done);
    return shortCount(done, ps, `write of ${inode.name}`, `the buffer page ${buf.first} of '${buf.map}' cannot be read`);
  } finally {
    inode.iolock.upWrite();
  }
}

/**
 * i_size_write() after a write that ended past i_size (the page cache's file grows with it); a
 * write that wrote nothing leaves i_size alone (xfs_file_dax_write and ext4's extension test
 * `ret > 0`), even where its iomap allocated blocks past EOF.
 */
function extendSize(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, done: number): void {
  if (done > 0) extendSizeTo(k, fs, inode, (first + done) * k.mmu.basePageSize);
}

/** i_size_write() up to byte `end` when the file is shorter. */
function extendSizeTo(k: Kernel, fs: DaxFilesystem, inode: Inode, end: number): void {
  if (end <= inode.size) return;
  inode.size = end;
  if (inode.cache && inode.cache.pages < fs.pages(end)) inode.cache.pages = fs.pages(end);
  k.emit('fs.step', { fs: fs.name, file: inode.name, step: 'i_size_write' });
}

// ---- page cache: filemap_read(), generic_perform_write() -------------------------------------

/**
 * A buffered read or write of a file without S_DAX on a DAX-capable mount. XFS takes i_rwsem
 * (xfs_file_buffered_read: IOLOCK_SHARED; xfs_file_buffered_write: IOLOCK_EXCL); ext4 and FUSE
 * read without it (generic_file_read_iter) and write under inode_lock.
 */
function* bufferedInodeIo(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, n: number, buf: UserBuffer, dir: Dir): Op<number> {
  const cache = inode.cache!;
  const ps = k.mmu.basePageSize;
  const shared = dir === 'read';
  const locks = !shared || fs.name === 'xfs';
  if (locks) yield* (shared ? inode.iolock.downRead() : inode.iolock.downWrite());
  try {
    if (dir === 'read') {
      const end = Math.min(first + n, fs.pages(inode.size));
      const done = yield* cacheRead(k, cache, first, end, buf, true);
      return done === 0 && end > first ? shortCount(0, ps, `read of ${inode.name}`, 'the buffer cannot be written') : Math.min(done * ps, Math.max(0, inode.size - first * ps));
    }
    const done = yield* cacheWrite(k, cache, first, n, buf);
    extendSize(k, fs, inode, first, done);
    return shortCount(done, ps, `write of ${inode.name}`, `the buffer page ${buf.first} of '${buf.map}' cannot be read`);
  } finally {
    if (locks) {
      if (shared) inode.iolock.upRead();
      else inode.iolock.upWrite();
    }
  }
}

/**
 * Copy pages [first, end) of a page-cache file to the buffer; returns the pages copied before a
 * fault. `reads`: a disk file's filemap_read() brings each folio into the cache
 * (filemap_get_pages -> ->read_folio); a tmpfs read (shmem_file_read_iter, SGP_READ) of a hole or
 * of a folio fallocate left !uptodate copies zeroes and adds nothing.
 */
function* cacheRead(k: Kernel, file: PageCacheFile, first: number, end: number, buf: UserBuffer, reads: boolean): Op<number> {
  let done = 0;
  for (let index = first; index < end; index++) {
    let data = '';
    if (reads) {
      if (file.pages <= index) file.pages = index + 1;
      let pfn: number;
      try {
        pfn = k.pageCache.getFolio(file, index, 'filemap_read');
      } catch (e) {
        // a folio whose read failed ends filemap_read(): `already_read ? already_read : error`
        if (done > 0 && e instanceof KernelError && e.code === 'EIO' && e.unsupported === null) break;
        throw e;
      }
      data = k.pages.data.get(pfn) ?? '';
      k.folios.put(k.folios.folio(pfn), 1, 'filemap_read: folio_put');
    } else {
      const pfn = file.cache.get(index);
      if (pfn !== undefined && !file.notUptodate.has(index)) data = k.pages.data.get(pfn) ?? '';
    }
    if (!(yield* copyToUser(k, buf, done, data))) break;
    done++;
  }
  return done;
}

/**
 * generic_perform_write() of n pages from `first`: fault the source page in
 * (fault_in_iov_iter_readable: nothing readable ends the loop), ->write_begin (the folio,
 * allocated over a hole: shmem_write_begin SGP_WRITE, large under a huge policy
 * (PageCache.writeBegin), or grabbed for a disk file), the copy,
 * ->write_end (i_size extended page by page); returns the pages written.
 */
function* cacheWrite(k: Kernel, file: PageCacheFile, first: number, n: number, buf: UserBuffer): Op<number> {
  const ps = k.mmu.basePageSize;
  let done = 0;
  for (let index = first; index < first + n; index++) {
    const data = yield* copyFromUser(k, buf, done);
    if (data === null) break;
    // i_size before this page's ->write_end; a tmpfs huge policy may allocate a large folio here
    const isize = file.size ?? file.pages * ps;
    if (file.pages <= index) file.pages = index + 1;
    const pfn = k.pageCache.writeBegin(file, index, isize, (first + n) * ps);
    k.pages.data.set(pfn, data);
    file.notUptodate.delete(index);
    k.folios.put(k.folios.folio(pfn), 1, 'write_end: folio_put');
    if (file.size !== undefined && (index + 1) * ps > file.size) file.size = (index + 1) * ps;
    done++;
  }
  return done;
}

/**
 * hugetlbfs_read_iter() of base pages [first, end): the huge page holding each is looked up in
 * the cache (keyed by huge-page index) without allocating; a hole reads as zeroes (iov_iter_zero),
 * a cached one is copied from its subpage. Returns the pages copied before a fault.
 *
 * A folio memory failure poisoned (kept in the cache from v6.1, mm/memfailure.ts): from
 * 8625147cafaa "hugetlbfs: don't delete error page from pagecache" (v6.1) the whole huge page is
 * -EIO; from "hugetlbfs: improve read HWPOISON hugepage" (Jiaqi Yan, v6.5 [M])
 * adjust_range_hwpoison() lets the copy run up to the first raw poisoned page at or after the
 * position, and only a huge page whose first page to read is poisoned is -EIO. The -EIO replaces
 * the count of bytes the call copied from earlier huge pages ("retval = -EIO; break;").
 */
function* hugetlbRead(k: Kernel, file: PageCacheFile, first: number, end: number, buf: UserBuffer): Op<number> {
  const per = file.hugetlb!.pages;
  let done = 0;
  for (let index = first; index < end; index++) {
    const head = file.cache.get(Math.floor(index / per));
    if (head !== undefined && (k.folios.flags(head) & PG.hwpoison) !== 0) {
      const startsHere = index === first || index % per === 0;
      const partial = kernelAtLeast(k.version, 6, 5);
      if (startsHere && (!partial || k.memoryFailures.rawPoisoned(head, head + (index % per)))) throw new KernelError('EIO', `read of page ${index} of hugetlbfs file '${file.name}': its huge page is poisoned (hugetlbfs_read_iter${partial ? ': adjust_range_hwpoison() gives 0 bytes' : ''})`);
      if (k.memoryFailures.rawPoisoned(head, head + (index % per))) break;
    }
    const data = head === undefined ? '' : (k.pages.data.get(head + (index % per)) ?? '');
    if (!(yield* copyToUser(k, buf, done, data))) break;
    done++;
  }
  return done;
}

/** A memfd (tmpfs, hugetlbfs, secretmem) or a disk tmpfile: the page-cache file by its own name. */
function* memfdIo(k: Kernel, file: PageCacheFile, a: FileIoArgs, dir: Dir, buf: UserBuffer, call: string): Op<number> {
  const ps = k.mmu.basePageSize;
  const offset = a.offset ?? 0;
  // vfs_read / vfs_write: no ->read_iter / ->write_iter is -EINVAL (every release)
  if (file.secretmem) throw new KernelError('EINVAL', `${call}: secretmem_fops has no ->${dir}_iter`);
  if (file.hugetlb && dir === 'write') throw new KernelError('EINVAL', `${call}: hugetlbfs_file_operations has no ->write_iter`);
  if (a.direct && file.writeback) throw KernelError.unsupported('EOPNOTSUPP', `${call}: O_DIRECT of a tmpfile on a non-DAX disk (its blocks are not modelled)`);
  if (a.direct && !kernelAtLeast(k.version, 6, 6)) throw new KernelError('EINVAL', `${call}: open(O_DIRECT) of a tmpfs file: no FMODE_CAN_ODIRECT before v6.6`);
  wholePages(ps, offset, a.length, call);
  const first = offset / ps;
  const n = a.length / ps;
  if (n === 0) return 0;
  const isize = file.size ?? file.pages * ps;
  if (dir === 'read') {
    const end = Math.min(first + n, Math.ceil(isize / ps));
    if (end <= first) return 0;
    const done = file.hugetlb ? yield* hugetlbRead(k, file, first, end, buf) : yield* cacheRead(k, file, first, end, buf, file.writeback !== undefined);
    return Math.min(shortCount(done, ps, call, `the buffer page ${buf.first} of '${buf.map}' cannot be written`), isize - offset);
  }
  // shmem_write_begin(): a write seal refuses any write, F_SEAL_GROW one that ends past i_size
  const seals = file.seals ?? 0;
  if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) throw new KernelError('EPERM', `${call}: the memfd is write-sealed (shmem_write_begin)`);
  if (seals & F_SEAL_GROW && offset + a.length > isize) throw new KernelError('EPERM', `${call}: past i_size of a F_SEAL_GROW memfd (shmem_write_begin)`);
  const done = yield* cacheWrite(k, file, first, n, buf);
  return shortCount(done, ps, call, `the buffer page ${buf.first} of '${buf.map}' cannot be read`);
}

// ---- O_DIRECT without DAX: iomap_dio_rw() ----------------------------------------------------

/**
 * Which i_rwsem mode a direct I/O takes: reads shared (xfs_file_dio_read, ext4_dio_read_iter);
 * XFS's block-aligned write shared (xfs_file_dio_write_aligned) unless it starts past EOF
 * (xfs_file_write_checks takes it exclusive to zero the gap); ext4 from v5.5 (iomap dio) shared
 * only for an overwrite of written blocks inside i_size (ext4_dio_write_checks), exclusive before.
 * A write not aligned to the filesystem block (a page here) takes it exclusive on both (XFS:
 * unaligned_io, xfs_file_dio_write_unaligned from v5.13 [M]; ext4_unaligned_io); the shared
 * overwrite-only first try newer XFS and ext4 make for an unaligned overwrite is not modelled.
 */
function directLockShared(k: Kernel, fs: DaxFilesystem, inode: Inode, pos: number, len: number, dir: Dir): boolean {
  if (dir === 'read') return true;
  const ps = k.mmu.basePageSize;
  if (pos % ps !== 0 || len % ps !== 0) return false;
  if (fs.name === 'xfs') return pos <= inode.size;
  if (!kernelAtLeast(k.version, 5, 5)) return false;
  if (pos + len > inode.size) return false;
  for (let i = pos / ps; i < (pos + len) / ps; i++) if (!inode.blocks.has(i) || fs.isUnwritten(inode, i)) return false;
  return true;
}

/** A direct I/O in progress: buffer byte `bufOffset + x - pos` (from page `buf.first`) is file byte x. */
interface DirectIo {
  readonly pos: number;
  readonly bufOffset: number;
  readonly buf: UserBuffer;
  readonly dir: Dir;
  readonly call: string;
}

/** How far an extent's I/O got: the file byte reached, and why it stopped short (null: it did not). */
interface ExtentIo {
  readonly reached: number;
  readonly failed: string | null;
}

/**
 * iomap_dio_rw() of the file bytes [pos, pos + len), the buffer starting `bufOffset` bytes into
 * page `buf.first` of its mapping. Each iomap extent is one bio (dioBio); a hole read is
 * iomap_dio_hole_iter() (dioZero). The model's data is one datum per page: a page moved in part
 * takes the datum of the page its first byte comes from (the rest of a block the kernel zeroes or
 * keeps is not modelled). A read stops at the page holding the last byte of i_size and returns
 * at most the bytes up to i_size; a write extends i_size to its end.
 */
function* directIo(k: Kernel, fs: DaxFilesystem, inode: Inode, pos: number, len: number, buf: UserBuffer, bufOffset: number, dir: Dir, call: string): Op<number> {
  const ps = k.mmu.basePageSize;
  const shared = directLockShared(k, fs, inode, pos, len, dir);
  yield* shared ? inode.iolock.downRead() : inode.iolock.downWrite();
  try {
    const endByte = dir === 'read' ? Math.min(pos + len, fs.pages(inode.size) * ps) : pos + len;
    if (endByte <= pos) return 0;
    const first = Math.floor(pos / ps);
    const end = Math.ceil(endByte / ps);
    // kiocb_write_and_wait() / kiocb_invalidate_pages(): written back, and for a write dropped
    yield* fs.syncForDirectIo(inode, first, end - 1, dir === 'write');
    const io: DirectIo = { pos, bufOffset, buf, dir, call };
    let reached = pos;
    let failed: string | null = null;
    for (let index = first; index < end && failed === null; ) {
      const map = dir === 'write' ? yield* writeIomap(fs, inode, index, end - index) : yield* fs.iomapBegin(inode, index, false, end - index);
      const run = Math.min(map.contiguous, end - index);
      const from = Math.max(pos, index * ps);
      const to = Math.min(endByte, (index + run) * ps);
      const blockPfn = (page: number): number => map.pfn + page - index;
      if (dir === 'read' && map.type !== 'hole') badSectorRead(k, inode, from, to, blockPfn, call);
      ({ reached, failed } = dir === 'read' && map.type === 'hole' ? yield* dioZero(k, io, from, to) : yield* dioBio(k, io, from, to, blockPfn));
      index += run;
    }
    // iomap_dio_complete() -> kiocb_invalidate_post_direct_write(): what the I/O faulted in goes again
    if (dir === 'write' && reached > pos) yield* fs.syncForDirectIo(inode, first, Math.ceil(reached / ps) - 1, true);
    // no IOMAP_DIO_PARTIAL on xfs and ext4: the error wins over the bytes done, and the end_io
    // (xfs_dio_write_end_io, ext4_dio_write_end_io: `if (error) return error`) extends nothing
    if (failed !== null) throw new KernelError('EFAULT', `${call}: ${failed}`);
    if (dir === 'write') extendSizeTo(k, fs, inode, endByte);
    return dir === 'read' ? Math.min(endByte, inode.size) - pos : endByte - pos;
  } finally {
    if (shared) inode.iolock.upRead();
    else inode.iolock.upWrite();
  }
}

/**
 * The read bio of file bytes [from, to) in the blocks blockPfn(page) meets a bad sector: the pmem
 * block device fails it (pmem_do_read(): is_bad_pmem() of pmem->bb, BLK_STS_IOERR; pmem_do_bvec()
 * before v5.7), and the error is the call's, whatever else was read: iomap_dio_bio_end_io() sets
 * dio->error, which iomap_dio_complete() returns (v5.5+ ext4, XFS); v5.4's ext4 (fs/direct-io.c
 * dio_complete()) returns dio->io_error once no page error came first. -EIO either way.
 */
function badSectorRead(k: Kernel, inode: Inode, from: number, to: number, blockPfn: (page: number) => number, call: string): void {
  const ps = k.mmu.basePageSize;
  for (let x = from; x < to; ) {
    const page = Math.floor(x / ps);
    const end = Math.min(to, (page + 1) * ps);
    const sector = (blockPfn(page) * ps + (x - page * ps)) / LOGICAL_SECTOR;
    if (k.pmemBadblock(sector, (end - x) / LOGICAL_SECTOR)) throw new KernelError('EIO', `${call}: the bio for ${inode.name} bytes ${from}..${to - 1} meets a bad sector at file byte ${x} (pmem_do_read: is_bad_pmem, BLK_STS_IOERR)`);
    x = end;
  }
}

/** The buffer pages (indices from `buf.first`) that the file bytes [from, to) of a direct I/O touch. */
function bufferPages(ps: number, io: DirectIo, from: number, to: number): [number, number] {
  return [Math.floor((io.bufOffset + from - io.pos) / ps), Math.floor((io.bufOffset + to - 1 - io.pos) / ps)];
}

/** The file byte the first byte of buffer page `j` that the I/O moves goes to or comes from. */
function fileByteOf(ps: number, io: DirectIo, j: number): number {
  return io.pos + Math.max(j * ps, io.bufOffset) - io.bufOffset;
}

/** The file byte the I/O has reached once buffer page `j` is done. */
function reachedAfter(ps: number, io: DirectIo, j: number, to: number): number {
  return Math.min(to, io.pos + (j + 1) * ps - io.bufOffset);
}

/** iomap_dio_hole_iter(): iov_iter_zero, CPU stores into the buffer pages whose first byte reads the hole. */
function* dioZero(k: Kernel, io: DirectIo, from: number, to: number): Op<ExtentIo> {
  const ps = k.mmu.basePageSize;
  const [j0, j1] = bufferPages(ps, io, from, to);
  let reached = from;
  for (let j = j0; j <= j1; j++) {
    if (fileByteOf(ps, io, j) >= from && !(yield* copyToUser(k, io.buf, j, ''))) {
      return { reached, failed: `the buffer page ${io.buf.first + j} of '${io.buf.map}' cannot be written` };
    }
    reached = reachedAfter(ps, io, j, to);
  }
  return { reached, failed: null };
}

/**
 * The bio of one extent, file bytes [from, to) in the blocks blockPfn(page): bio_iov_iter_get_pages()
 * GUPs every buffer page the bytes touch (FOLL_GET until v6.4, FOLL_PIN from v6.5: a7e689dd1c06);
 * a page two extents share is GUPed by both bios. Physically contiguous pages merge into one
 * segment (bvec_try_merge_page), which bio_for_each_folio_all() walks per folio at completion:
 * `bio-release-pages` says how many references __bio_release_pages() drops for it. The model
 * moves one page at a time and ignores BIO_MAX_VECS (a bio of more than 256 segments is several).
 */
function* dioBio(k: Kernel, io: DirectIo, from: number, to: number, blockPfn: (page: number) => number): Op<ExtentIo> {
  const ps = k.mmu.basePageSize;
  const [j0, j1] = bufferPages(ps, io, from, to);
  const firstFile = Math.floor(from / ps);
  const lastFile = Math.floor((to - 1) / ps);
  // the buffer page each file page's first byte comes from (a write's datum for that block)
  const sourceOf = (page: number): number => Math.floor((io.bufOffset + Math.max(from, page * ps) - io.pos) / ps);
  // the segment's first folio run: its in-page start offset, and whether the pages so far are one
  const segmentOffset = (io.bufOffset + from - io.pos) % ps;
  let run: { pfn: number; head: number } | null = null;
  let oneRun = true;
  let reached = from;
  for (let j = j0; j <= j1; j++) {
    const moved = yield* gupPageIo(k, io.buf, j, io.dir, {
      name: `bio(${io.call})`,
      submit: `submit_bio(${io.call})`,
      pin: kernelAtLeast(k.version, 6, 5),
      load: (current) => {
        const x = fileByteOf(ps, io, j);
        return x >= from && x < to ? (k.pages.data.get(blockPfn(Math.floor(x / ps))) ?? '') : current;
      },
      store: (data) => {
        for (let page = firstFile; page <= lastFile; page++) if (sourceOf(page) === j) k.pages.data.set(blockPfn(page), data);
        // pmem_do_write(): the sectors this buffer page fills are written, their poison cleared (pmem_clear_poison)
        const x = Math.max(from, fileByteOf(ps, io, j));
        const end = reachedAfter(ps, io, j, to);
        if (x < end) k.clearMediaErrors((blockPfn(Math.floor(x / ps)) * ps + (x % ps)) / LOGICAL_SECTOR, Math.ceil((end - x) / LOGICAL_SECTOR));
      },
      kept: (pfn) => {
        const head = k.pages.headOf(pfn);
        oneRun = oneRun && (run === null || (pfn === run.pfn + 1 && head === run.head));
        run = { pfn, head };
        return j === j1 && j > j0 && oneRun && lostByLength(k, segmentOffset, io.bufOffset + to - io.pos - j * ps);
      },
    });
    if (!moved) return { reached, failed: `GUP of the buffer page ${io.buf.first + j} of '${io.buf.map}' failed (bio_iov_iter_get_pages)` };
    reached = reachedAfter(ps, io, j, to);
  }
  return { reached, failed: null };
}

/**
 * Whether v6.8's __bio_release_pages() (1b151e2435fc) leaves the last page of a multi-page folio
 * segment held: it releases ceil(fi.length / PAGE_SIZE) pages from the first, one fewer than the
 * pages spanned exactly when the bytes used in the last page are no more than the offset the
 * segment starts at in its first page. 38b43539d64b (v6.9) counts the pages spanned.
 */
function lostByLength(k: Kernel, startOffset: number, lastPageBytes: number): boolean {
  return k.features['bio-release-pages'] === 'length' && startOffset > 0 && lastPageBytes <= startOffset;
}

/**
 * One buffer page of a direct I/O's bio: the device moves the data between it and the block at
 * `blockPfn` (bio_iov_iter_get_pages: FOLL_GET until v6.4, FOLL_PIN from v6.5), then
 * bio_release_pages() drops the references.
 */
function* bioPage(k: Kernel, buf: UserBuffer, i: number, dir: Dir, blockPfn: number, call: string): Op<boolean> {
  return yield* gupPageIo(k, buf, i, dir, {
    name: `bio(${call})`,
    submit: `submit_bio(${call})`,
    pin: kernelAtLeast(k.version, 6, 5),
    load: () => k.pages.data.get(blockPfn) ?? '',
    store: (data) => k.pages.data.set(blockPfn, data),
  });
}

/** Where a GUPed buffer page's data goes or comes from, and how it is held. */
interface PageIo {
  /** the handle's name (made unique per page) */
  readonly name: string;
  /** the preemption point while the I/O is in flight */
  readonly submit: string;
  /** FOLL_PIN (else FOLL_GET) */
  readonly pin: boolean;
  /** the file side's data (for a read), given the buffer page's own */
  load(current: string): string;
  /** the file side takes the data (for a write) */
  store(data: string): void;
  /** the completion leaves the reference in place (a leak: the handle stays held under its name) */
  kept?(pfn: number): boolean;
}

/**
 * One buffer page of a direct I/O: GUP it (FOLL_WRITE when the I/O writes it: a read), submit,
 * the far side moves the data while the page is held (another thread may run between submit and
 * completion), then the reference is dropped. The handle is a pin by a generated name while the
 * I/O is in flight, so the invariants see its DMA. false: GUP failed (the I/O stops there).
 */
function* gupPageIo(k: Kernel, buf: UserBuffer, i: number, dir: Dir, io: PageIo): Op<boolean> {
  let name = `${io.name}@${buf.first + i}`;
  while (k.pins.has(name)) name += "'";
  let h: GupHandle;
  try {
    const { vma, vpn } = k.mapPage(buf.map, buf.first + i, buf.process);
    h = yield* k.gupper.gup({ name, vma, vpn, nr: 1, pin: io.pin, write: dir === 'read', longterm: false, fast: true });
  } catch (e) {
    if (userFault(e)) return false;
    throw e;
  }
  k.pins.set(name, h);
  let kept = false;
  try {
    yield preempt(io.submit);
    const pfn = h.pfns[0]!;
    if (dir === 'read') {
      const data = io.load(k.pages.data.get(pfn) ?? '');
      k.pages.data.set(pfn, data);
      k.emit('dma.write', { name, pfn, data });
    } else {
      const data = k.pages.data.get(pfn) ?? '';
      k.emit('dma.read', { name, pfn, data });
      io.store(data);
    }
    kept = io.kept?.(pfn) ?? false;
  } finally {
    if (!kept) {
      k.gupper.release(h, io.pin);
      k.pins.delete(name);
    }
  }
  return true;
}

// ---- a pmem namespace's block device: blkdev_read_iter() / blkdev_write_iter() ----------------

/**
 * read(2) / write(2) of /dev/pmemX, the block device of a pmem namespace in fsdax or raw mode
 * (block/fops.c blkdev_read_iter / blkdev_write_iter). pmem_submit_bio() -> pmem_do_read() /
 * pmem_do_write() [drivers/nvdimm/pmem.c; one pmem_do_bvec() before v5.7] reach the media at
 * to_offset() = sector * 512 + pmem->data_offset: the info block's dataoff of an fsdax namespace
 * (pmem_attach_disk()), so byte 0 is its first data page, `dataPfn` (fs-dax block 0; a devdax
 * instance's offset 0 after a mode change at the same layout), and 0 for a raw namespace, whose
 * whole range is the disk. The capacity is the data, dataoff to end_trunc (a raw namespace's
 * size). A write at or past it is -ENOSPC, one across it is cut (blkdev_write_iter); a read
 * there returns 0. pmem_do_read() fails a bvec that touches a badblock (is_bad_pmem():
 * BLK_STS_IOERR): a direct read is -EIO whole, a buffered one returns the pages before it, else
 * -EIO. pmem_do_write() of a bvec over badblocks clears them through pmem_clear_poison() ->
 * nvdimm_clear_poison() (whole sectors, the written ones only) and writes the data (before
 * v5.19 [M] it wrote, cleared, wrote again; the order is not modelled): Kernel.clearMediaErrors.
 * O_DIRECT (blkdev_direct_IO) needs 512-byte alignment (-EINVAL) and moves sectors: each part of
 * a media page it touches is one bvec, whose buffer page is the one its first byte is in (one
 * datum per page: the page moved in part takes it), GUPed for the bio as a file's direct I/O is;
 * a page GUP cannot get fails the call with -EFAULT (__blkdev_direct_IO returns the error).
 * Buffered I/O goes by whole pages (the page cache's). The model keeps no block-device page
 * cache: a buffered write is on the media at once, as it is after the fsync() or the last close
 * (blkdev_release -> sync_blockdev()) the tests do before any other view looks. Not modelled:
 * I/O while a filesystem is mounted on the namespace (the two caches).
 */
function* bdevIo(k: Kernel, a: BdevIoArgs, dir: Dir): Op<number> {
  const ps = k.mmu.basePageSize;
  const step = `p${dir}`;
  const offset = (a.offset ?? 0) + (a.extentOf !== undefined ? fileExtentSector(k, a.device, a.extentOf, step) * LOGICAL_SECTOR : 0);
  const call = `${step}(/dev/${a.device}, ${offset}, ${a.length}${a.direct ? ', O_DIRECT' : ''})`;
  const buf: UserBuffer = { map: a.map, first: a.page ?? 0, ...(a.process !== undefined ? { process: a.process } : {}) };
  wholeBuffer(a.pageOffset ?? 0, call);
  const disk = pmemDisk(k, a.device, call, a.direct === true);
  if (a.direct && (offset % LOGICAL_SECTOR !== 0 || a.length % LOGICAL_SECTOR !== 0)) throw new KernelError('EINVAL', `${call}: O_DIRECT position and length must be multiples of the ${LOGICAL_SECTOR}-byte logical sector (blkdev_dio_invalid)`);
  if (a.length === 0) return 0;
  if (offset >= disk.capacity) {
    if (dir === 'write') throw new KernelError('ENOSPC', `${call}: at or past the end of the ${disk.capacity}-byte block device (blkdev_write_iter)`);
    return 0;
  }
  const end = Math.min(offset + a.length, disk.capacity);
  if (!a.direct) wholePages(ps, offset, end - offset, call);
  let pos = offset;
  while (pos < end) {
    // one bvec: the part of a media page the I/O touches, and the buffer page its first byte is in
    const page = Math.floor(pos / ps);
    const to = Math.min(end, (page + 1) * ps);
    const pfn = disk.firstPfn + page;
    const sector = (pfn * ps + (pos - page * ps)) / LOGICAL_SECTOR;
    const sectors = (to - pos) / LOGICAL_SECTOR;
    const i = Math.floor((pos - offset) / ps);
    if (dir === 'read' && k.pmemBadblock(sector, sectors)) {
      if (a.direct || pos === offset) throw new KernelError('EIO', `${call}: sectors ${pos / LOGICAL_SECTOR}..${to / LOGICAL_SECTOR - 1} of the block device touch badblocks (pmem_do_read: is_bad_pmem)`);
      break;
    }
    if (a.direct) {
      if (!(yield* bioPage(k, buf, i, dir, pfn, call))) throw new KernelError('EFAULT', `${call}: GUP of the buffer page ${buf.first + i} of '${buf.map}' failed (bio_iov_iter_get_pages)`);
    } else if (dir === 'read') {
      if (!(yield* copyToUser(k, buf, i, k.pages.data.get(pfn) ?? ''))) break;
    } else {
      const data = yield* copyFromUser(k, buf, i);
      if (data === null) break;
      k.pages.data.set(pfn, data);
    }
    // pmem_do_write(): the written sectors' poison is cleared (pmem_clear_poison -> badblocks_clear)
    if (dir === 'write') k.clearMediaErrors(sector, sectors);
    pos = to;
  }
  if (pos === offset) throw new KernelError('EFAULT', `${call}: the buffer page ${buf.first} of '${buf.map}' faulted`);
  return pos - offset;
}

/**
 * The block device of a pmem namespace: the pfn its byte 0 is in and its capacity. An fsdax
 * namespace's starts at its data (pmem->data_offset), a raw one's at the namespace's start.
 * Beside a mounted filesystem only O_DIRECT is modelled: it moves sectors between the buffer and
 * the media as the filesystem's own bios do (a direct write does not touch the file's page
 * cache, as in the kernel); buffered I/O would go through the block device's page cache, which
 * the model does not keep apart from the media.
 */
function pmemDisk(k: Kernel, name: string, call: string, direct: boolean): { firstPfn: number; capacity: number } {
  const raw = k.rawNamespaces.get(name);
  const mounted = (fs: unknown): boolean => (fs as DaxFilesystem | null | undefined)?.mounted === true;
  const besideMount = (): never => {
    throw KernelError.unsupported('EOPNOTSUPP', `${call}: a filesystem is mounted on ${name}: buffered block I/O beside it (the block device's page cache) is not modelled; O_DIRECT is`);
  };
  if (raw) {
    if (mounted(raw.disk?.fs) && !direct) besideMount();
    return { firstPfn: raw.phys / k.mmu.basePageSize, capacity: raw.size };
  }
  const device = k.device(name);
  // dax_fops (drivers/dax/device.c) has no ->read / ->write: vfs_read / vfs_write give -EINVAL
  if (device.driver === 'devdax') throw new KernelError('EINVAL', `${call}: ${name} is a device-dax instance, a character device without read/write (dax_fops): mmap it`);
  if (device.driver !== 'nvdimm') throw KernelError.unsupported('EOPNOTSUPP', `${call}: ${name} (driver ${device.driver}) is not a pmem namespace: block I/O is modelled on nvdimm namespaces only`);
  if (!device.bound) throw new KernelError('ENOENT', `${call}: the namespace is disabled: no block device`);
  if (mounted(device.fs) && !direct) besideMount();
  return { firstPfn: device.dataPfn, capacity: device.dataPages * k.mmu.basePageSize };
}

// ---- a file server's direct I/O: fuse_direct_io() --------------------------------------------

/**
 * fuse_direct_io() [fs/fuse/file.c]: the buffer's pages are GUPed (fuse_get_user_pages:
 * iov_iter_get_pages(), FOLL_GET, up to v6.8; iov_iter_extract_pages(), FOLL_PIN for user memory,
 * from v6.9: 738adade96b2 "fuse: Fix missing FOLL_PIN for direct-io"), carried by FUSE_READ /
 * FUSE_WRITE requests that the server answers from or into its file, and released
 * (fuse_release_user_pages). A page GUP cannot get ends the I/O, which returns what was done
 * (`res > 0 ? res : err`: a short count, where iomap direct I/O fails the whole call). The model
 * sends one page per request (the kernel up to fc->max_pages). Returns the pages done.
 */
function* serverIo(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, n: number, buf: UserBuffer, dir: Dir, call: string): Op<number> {
  const pin = kernelAtLeast(k.version, 6, 9);
  const request = dir === 'read' ? 'FUSE_READ' : 'FUSE_WRITE';
  let done = 0;
  while (done < n) {
    const index = first + done;
    const moved = yield* gupPageIo(k, buf, done, dir, {
      name: `fuse(${call})`,
      submit: `${request}(${call})`,
      pin,
      load: () => fs.serverRead(inode, index),
      store: (data) => fs.serverWrite(inode, index, data),
    });
    if (!moved) break;
    done++;
  }
  return done;
}

/**
 * O_DIRECT of a FUSE file without DAX, through the VFS: fuse_cache_read_iter /
 * fuse_cache_write_iter -> generic_file_read_iter / generic_file_direct_write -> ->direct_IO,
 * fuse_direct_IO(). The range's page cache is written back first and, for a write, invalidated
 * before and after (kiocb_invalidate_pages, kiocb_invalidate_post_direct_write), as for iomap
 * direct I/O.
 */
const VFS_DIRECT_IO: DirectIoCoherence = { writeback: true, invalidateBefore: true, invalidateAfter: 'written' };

/**
 * A FUSE direct I/O of a file without DAX: O_DIRECT through the VFS (VFS_DIRECT_IO), or any
 * read or write of an FOPEN_DIRECT_IO open file, fuse_direct_read_iter / fuse_direct_write_iter
 * calling fuse_direct_io() itself, whose page-cache handling (`sync`) changed by release (the
 * filesystem's fopenDirectIoCoherence()). A write holds inode_lock; a read takes no i_rwsem. A
 * read past i_size returns 0 and one across it stops there (the server's short read); a write
 * that wrote something extends i_size to its end (fuse_write_update_size /
 * fuse_write_update_attr).
 */
function* serverDirectIo(k: Kernel, fs: DaxFilesystem, inode: Inode, first: number, n: number, buf: UserBuffer, dir: Dir, call: string, sync = VFS_DIRECT_IO): Op<number> {
  const ps = k.mmu.basePageSize;
  if (dir === 'write') yield* inode.iolock.downWrite();
  try {
    const end = dir === 'read' ? Math.min(first + n, fs.pages(inode.size)) : first + n;
    if (end <= first) return 0;
    // a dirty folio invalidate_inode_pages2_range() meets is written first (->launder_folio)
    const invalidate = dir === 'write' && sync.invalidateBefore;
    if (sync.writeback || invalidate) yield* fs.syncForDirectIo(inode, first, end - 1, invalidate);
    const done = yield* serverIo(k, fs, inode, first, end - first, buf, dir, call);
    if (dir === 'write' && done > 0 && sync.invalidateAfter) yield* fs.syncForDirectIo(inode, first, (sync.invalidateAfter === 'range' ? end : first + done) - 1, true);
    const bytes = shortCount(done, ps, call, `GUP of the buffer page ${buf.first} of '${buf.map}' failed (fuse_get_user_pages)`);
    if (dir === 'read') return Math.min(bytes, inode.size - first * ps);
    extendSize(k, fs, inode, first, done);
    return bytes;
  } finally {
    if (dir === 'write') inode.iolock.upWrite();
  }
}
