import { createKernel, Monitor, type DaxFilesystem, type Kernel } from '@daxlab/core';
import { errnoOf, gupsDuring, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';

// pread(2) / pwrite(2) on XFS (core fs/rw.ts). A DAX file: xfs_file_dax_read / xfs_file_dax_write
// -> dax_iomap_rw(), a copy through the kernel's DAX mapping that faults the user buffer in and
// never GUPs it. A file without S_DAX (mount without dax, v5.8+): the page cache, and with
// O_DIRECT iomap_dio_rw(), which GUPs the buffer for the bio (FOLL_GET, FOLL_PIN from v6.5).

const PAGE = 4096;
const MiB = 1024 * 1024;

function boot(version = 'v6.6', dax: boolean = true): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax }));
  return { k, m };
}



describe('XFS DAX: dax_iomap_rw()', () => {
  it('pwrite over a hole allocates the block, extends i_size, and invalidates the zero page a read fault mapped there (IOMAP_F_NEW)', () => {
    const { k, m } = boot();
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.punchHole({ file: 'f', offset: 0, length: PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    // a load from the hole maps the shared zero page (dax_load_hole)
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.zeroPfn);
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'P0' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'P1' }));
    const seen = gupsDuring(k, () => expect(k.run(k.pwrite({ file: 'f', offset: 0, length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE));
    // a copy, never a GUP: the buffer's pages are not referenced by the kernel
    expect(seen).toEqual([]);
    // both pages have blocks now, and the file grew from one page to two (xfs_file_dax_write: i_size_write)
    expect(k.blockFree({ file: 'f', page: 0 })).toBe(false);
    expect(k.blockFree({ file: 'f', page: 1 })).toBe(false);
    expect(k.files.get('f')!.inode.size).toBe(2 * PAGE);
    // invalidate_inode_pages2_range() took the zero page out of the mapping: the next load maps the block
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('P0');
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('P1');
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.pfnOf({ file: 'f', page: 0 }));
    expect(m.violations).toEqual([]);
  });

  it('an overwrite of written blocks invalidates nothing: the DAX PTE stays and sees the new data', () => {
    const { k } = boot();
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'old' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'new' }));
    expect(k.run(k.pwrite({ file: 'f', length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(true);
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('new');
  });

  it('pread into a private mapping of the same file (mmap-rw-fault): the copy write-faults the buffer page, a COW of the hole, and no DAX page is GUPed or pinned', () => {
    const { k, m } = boot();
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.punchHole({ file: 'f', offset: 0, length: PAGE }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'src' }));
    k.run(k.write({ map: 'src', page: 0, data: 'a' }));
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'src', direct: true }))).toBe(PAGE);
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, write: true, as: 'addr' }));
    // pread(fd, addr, page, page): file page 1 into mapping page 0 (the hole)
    const seen = gupsDuring(k, () => expect(k.run(k.pread({ file: 'f', offset: PAGE, length: PAGE, map: 'addr', page: 0 }))).toBe(PAGE));
    expect(seen).toEqual([]);
    expect(k.run(k.read({ map: 'addr', page: 0 }))).toBe('a');
    // do_cow_fault gave the private mapping an anonymous copy; the file's hole stays a hole
    expect(k.isAnon(k.pfnOf({ map: 'addr', page: 0 })!)).toBe(true);
    expect(k.blockFree({ file: 'f', page: 0 })).toBe(true);
    // pwrite(fd, addr + page, page, page) (generic/729's -2: a mapped page onto itself): the read
    // fault maps file page 1 read-only and the copy writes the same block
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'addr', page: 1, direct: true }))).toBe(PAGE);
    expect(k.pfnOf({ map: 'addr', page: 1 })).toBe(k.pfnOf({ file: 'f', page: 1 }));
    expect(k.maybePinned(k.pfnOf({ file: 'f', page: 1 })!)).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('reads stop at i_size and read holes as zeroes', () => {
    const { k } = boot();
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.punchHole({ file: 'f', offset: PAGE, length: PAGE }));
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'stale' }));
    expect(k.run(k.pread({ file: 'f', length: 4 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    // page 1 of the file is a hole: iov_iter_zero() overwrote the buffer
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('');
    expect(k.pfnOf({ map: 'buf', page: 2 })).toBeNull();
  });

  it('a buffer page that cannot be read ends the write short: the pages before it are written; none at all is EFAULT', () => {
    const { k } = boot();
    k.run(k.create({ file: 'f', size: 0 }));
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'buf' }));
    k.run(k.munmap({ map: 'buf', offset: PAGE, length: PAGE }));
    // dax_iomap_iter: copy_from_user of page 1 copies nothing -> `done ? done : -EFAULT`
    expect(k.run(k.pwrite({ file: 'f', length: 3 * PAGE, map: 'buf' }))).toBe(PAGE);
    // xfs_file_dax_write extends i_size to what was written; the iomap had allocated all three
    // blocks first (one extent), and they stay allocated past EOF
    expect(k.files.get('f')!.inode.size).toBe(PAGE);
    expect(k.blockFree({ file: 'f', page: 2 })).toBe(false);
    expect(errnoOf(() => k.run(k.pwrite({ file: 'f', length: PAGE, map: 'buf', page: 1 })))).toBe('EFAULT');
  });

  it('a write whose buffer is a mapping of the file past its new EOF copies nothing: EFAULT, and i_size stays (the block its iomap allocated stays past EOF)', () => {
    const { k } = boot();
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'src' }));
    k.run(k.truncate({ file: 'f', size: 0 }));
    // copy_from_user of m's page 0: the refault is beyond EOF (SIGBUS), the exception fixup ends the copy
    expect(errnoOf(() => k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'm', page: 0 })))).toBe('EFAULT');
    expect(k.files.get('f')!.inode.size).toBe(0);
    expect(k.blockFree({ file: 'f', page: 1 })).toBe(false);
  });
});

describe('XFS DAX: pwrite to a reflinked file', () => {
  it('each page is copied on write (xfs_reflink_allocate_cow): the other file keeps the old block and data, and the writer\'s mappings of the old block are invalidated', () => {
    const { k, m } = boot('v6.6');
    k.run(k.create({ file: 'a', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'a', length: 2 * PAGE, shared: true, write: true, as: 'ma' }));
    k.run(k.write({ map: 'ma', page: 0, data: 'old0' }));
    k.run(k.write({ map: 'ma', page: 1, data: 'old1' }));
    k.run(k.munmap({ map: 'ma' }));
    k.run(k.reflink({ from: 'a', to: 'b' }));
    k.run(k.mmap({ file: 'b', length: 2 * PAGE, shared: true, as: 'mb' }));
    expect(k.run(k.read({ map: 'mb', page: 1 }))).toBe('old1');
    const shared = k.pfnOf({ file: 'a', page: 1 });
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'new0' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'new1' }));
    expect(k.run(k.pwrite({ file: 'b', offset: 0, length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    // b has blocks of its own now; a's are untouched
    expect(k.pfnOf({ file: 'b', page: 1 })).not.toBe(shared);
    expect(k.pfnOf({ file: 'a', page: 1 })).toBe(shared);
    expect(k.pages.data.get(shared!)).toBe('old1');
    // mb mapped the shared block: the CoW invalidated it, and the next load maps b's new block
    expect(k.isMappedIn({ map: 'mb', page: 1 })).toBe(false);
    expect(k.run(k.read({ map: 'mb', page: 1 }))).toBe('new1');
    expect(m.violations).toEqual([]);
  });
});

describe('XFS DAX: ENOSPC from the iomap', () => {
  it('iomap_iter() ends on the allocation failure: a short count after a first extent, ENOSPC when nothing was written', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 32 * MiB, align: PAGE, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    const blocks = (k.devices.get('pmem0')!.fs as DaxFilesystem).blocks.nrBlocks;
    // everything but one block goes to 'full'; 'f' has page 0 written, pages 1 and 2 holes
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.create({ file: 'full', size: (blocks - 2) * PAGE }));
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'buf' }));
    // page 0 is mapped (an overwrite), pages 1-2 are one hole: xfs_iomap_write_direct() cannot reserve 2 blocks
    expect(k.run(k.pwrite({ file: 'f', offset: 0, length: 3 * PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.files.get('f')!.inode.size).toBe(PAGE);
    expect(errnoOf(() => k.run(k.pwrite({ file: 'f', offset: PAGE, length: 2 * PAGE, map: 'buf' })))).toBe('ENOSPC');
    // the one free block is enough for one page
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
  });
});

describe('XFS without DAX: the page cache and iomap_dio_rw()', () => {
  it('a buffered pwrite lands in the page cache; writeback before an O_DIRECT pread puts it on the block, which the GUPed buffer then receives', () => {
    const { k, m } = boot('v6.6', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(k.files.get('f')!.inode.sDax).toBe(false);
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'cached' }));
    expect(k.run(k.pwrite({ file: 'f', length: PAGE, map: 'buf' }))).toBe(PAGE);
    // O_DIRECT read into buffer page 1: iov_iter_extract_pages() pins it with FOLL_WRITE on v6.6
    const seen = gupsDuring(k, () => expect(k.run(k.pread({ file: 'f', length: PAGE, map: 'buf', page: 1, direct: true }))).toBe(PAGE));
    expect(seen).toEqual([[true, true]]);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('cached');
    // the pin went at bio completion
    expect(k.maybePinned(k.pfnOf({ map: 'buf', page: 1 })!)).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('the block layer took a plain reference before v6.5 (get_user_pages_fast): FOLL_GET, no pin', () => {
    const { k } = boot('v6.1', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
    // a direct write: the buffer is the bio's source, GUPed without FOLL_WRITE
    expect(gupsDuring(k, () => k.run(k.pwrite({ file: 'f', length: PAGE, map: 'buf', direct: true })))).toEqual([[false, false]]);
  });

  it('an O_DIRECT write whose buffer runs into an unmapped page fails with EFAULT although its first page reached the block (no IOMAP_DIO_PARTIAL on XFS)', () => {
    const { k } = boot('v6.6', false);
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'first' }));
    k.run(k.munmap({ map: 'buf', offset: PAGE, length: PAGE }));
    expect(errnoOf(() => k.run(k.pwrite({ file: 'f', length: 2 * PAGE, map: 'buf', direct: true })))).toBe('EFAULT');
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'dst' }));
    expect(k.run(k.pread({ file: 'f', length: PAGE, map: 'dst' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('first');
    // into an empty file: the first block is written, but xfs_dio_write_end_io() returns the
    // error before extending i_size
    k.run(k.create({ file: 'g', size: 0 }));
    expect(errnoOf(() => k.run(k.pwrite({ file: 'g', length: 2 * PAGE, map: 'buf', direct: true })))).toBe('EFAULT');
    expect(k.files.get('g')!.inode.size).toBe(0);
    expect(k.blockFree({ file: 'g', page: 0 })).toBe(false);
  });

  it('O_DIRECT alignment: not a multiple of the 512-byte sector is EINVAL; a sector-aligned part of a page is read', () => {
    const { k } = boot('v6.6', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    expect(errnoOf(() => k.run(k.pread({ file: 'f', offset: 100, length: PAGE, map: 'buf', direct: true })))).toBe('EINVAL');
    // iomap direct I/O moves bytes: 512 of them, GUPing the one buffer page they land in
    expect(gupsDuring(k, () => expect(k.run(k.pread({ file: 'f', offset: 512, length: 512, map: 'buf', direct: true }))).toBe(512))).toEqual([[true, true]]);
    // without O_DIRECT any offset is valid for the kernel: the model refuses it as not modelled
    expect(errnoOf(() => k.run(k.pread({ file: 'f', offset: 100, length: PAGE, map: 'buf' })))).toBe('unsupported: EOPNOTSUPP');
  });

  it('an O_DIRECT read of a hole is iomap_dio_hole_iter(): zeroes stored by the CPU, no GUP', () => {
    const { k } = boot('v6.6', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.punchHole({ file: 'f', offset: 0, length: PAGE }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'junk' }));
    expect(gupsDuring(k, () => expect(k.run(k.pread({ file: 'f', length: PAGE, map: 'buf', direct: true }))).toBe(PAGE))).toEqual([]);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
  });

  it('an O_DIRECT write of a page onto itself through a private mapping (generic/729): the cached copy is invalidated first, GUP faults it in again from the block, and the write completes', () => {
    const { k, m } = boot('v6.6', false);
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'src' }));
    k.run(k.write({ map: 'src', page: 0, data: 'f' }));
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'src', direct: true }))).toBe(PAGE);
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, write: true, as: 'addr' }));
    expect(k.run(k.read({ map: 'addr', page: 1 }))).toBe('f');
    expect(k.run(k.pwrite({ file: 'f', offset: PAGE, length: PAGE, map: 'addr', page: 1, direct: true }))).toBe(PAGE);
    // kiocb_invalidate_post_direct_write(): the folio the GUP faulted in is gone from the cache and the mapping again
    expect(k.isMappedIn({ map: 'addr', page: 1 })).toBe(false);
    expect(k.run(k.read({ map: 'addr', page: 1 }))).toBe('f');
    expect(m.violations).toEqual([]);
  });
});
