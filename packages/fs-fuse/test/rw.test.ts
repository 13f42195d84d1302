import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { errnoOf, gupsDuring, mappedWrittenFile, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { fuse, type Fuse } from '../src/index.js';

// pread(2) / pwrite(2) of a virtio-fs file (core fs/rw.ts). A DAX file: fuse_dax_read_iter and
// fuse_dax_write_iter run dax_iomap_rw() over the DAX window (fuse_iomap_begin sets up a range),
// except a write that extends the file, which fuse_dax_direct_write() sends to the server as
// FUSE_WRITE requests carrying the user's pages (fuse_direct_io: GUP, FOLL_GET up to v6.8,
// FOLL_PIN from v6.9). O_DIRECT of a file without DAX goes the same way (fuse_direct_IO).

const PAGE = 4096;

function boot(version = 'v6.6'): Kernel {
  const k = mappedWrittenFile(createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version }), 2, 'H');
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  return k;
}

describe('FUSE DAX read(2) / write(2)', () => {
  it('pread copies the file through the window into the buffer; pwrite inside i_size lands where the mapping sees it', () => {
    const k = boot();
    expect(k.run(k.pread({ file: 'a', length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('H1');
    k.run(k.write({ map: 'buf', page: 0, data: 'new' }));
    expect(k.run(k.pwrite({ file: 'a', offset: PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('new');
    expect(k.files.get('a')!.inode.size).toBe(2 * PAGE);
  });

  it('a write past EOF (file_extending_write) is FUSE_WRITE of the GUPed buffer pages; the window range shows the data, i_size grows to its end', () => {
    const k = boot();
    const m = new Monitor(k);
    k.run(k.write({ map: 'buf', page: 0, data: 'x0' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'x1' }));
    // pages 1 and 2 of a 2-page file: the write crosses i_size, so the whole of it goes to the server
    const seen = gupsDuring(k, () => expect(k.run(k.pwrite({ file: 'a', offset: PAGE, length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE));
    // one GUP per buffer page, FOLL_GET on v6.6 (738adade96b2 came in v6.9), not for write (the device reads them)
    expect(seen).toEqual([
      [false, false],
      [false, false],
    ]);
    // fuse_write_update_attr(): i_size is the end of what was written
    expect(k.files.get('a')!.inode.size).toBe(3 * PAGE);
    // the shared mapping of page 1 goes through the window range set up when it was written: the server's new data
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('x0');
    const fs = k.device('pmem0').fs as Fuse;
    expect(fs.hostData(k.files.get('a')!.inode, 1)).toBe('x0');
    expect(fs.hostData(k.files.get('a')!.inode, 2)).toBe('x1');
    // a new mapping of all three pages reads page 2 from the same window range
    k.run(k.mmap({ file: 'a', length: 3 * PAGE, shared: true, as: 'm3' }));
    expect(k.run(k.read({ map: 'm3', page: 2 }))).toBe('x1');
    // the GUP references are gone with the request: the buffer's anonymous pages are mapped once, refcount 1
    expect(k.refcount(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(1);
    expect(m.violations).toEqual([]);
  });

  it('from v6.9 fuse_get_user_pages() pins the buffer (iov_iter_extract_pages: FOLL_PIN)', () => {
    const k = boot('v6.15');
    k.run(k.write({ map: 'buf', page: 0, data: 'y' }));
    const seen = gupsDuring(k, () => expect(k.run(k.pwrite({ file: 'a', offset: 2 * PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE));
    expect(seen).toEqual([[true, false]]);
    expect(k.files.get('a')!.inode.size).toBe(3 * PAGE);
    expect(k.maybePinned(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(false);
    expect(k.refcount(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(1);
  });

  it('a buffer page GUP cannot get ends the request: the pages before it are written (a short count, not -EFAULT)', () => {
    const k = boot();
    k.run(k.write({ map: 'buf', page: 0, data: 'z0' }));
    // the second buffer page is unmapped: fuse_get_user_pages fails there
    k.run(k.munmap({ map: 'buf', offset: PAGE, length: PAGE }));
    expect(k.run(k.pwrite({ file: 'a', offset: 2 * PAGE, length: 2 * PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.files.get('a')!.inode.size).toBe(3 * PAGE);
    // nothing to write at all: -EFAULT, i_size unchanged
    expect(errnoOf(() => k.run(k.pwrite({ file: 'a', offset: 3 * PAGE, length: PAGE, map: 'buf', page: 1 })))).toBe('EFAULT');
    expect(k.files.get('a')!.inode.size).toBe(3 * PAGE);
  });
});

describe('FUSE O_DIRECT of a file without DAX: fuse_direct_IO()', () => {
  /** a v6.6 virtio-fs mount with dax=never: page-cache files; `a` has two written pages */
  function pagecache(version = 'v6.6'): Kernel {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version });
    k.run(k.probe({ size: 64 * 1024 * 1024, as: 'vfs0' }));
    k.run(k.mount({ device: 'vfs0', dax: 'never' }));
    k.run(k.create({ file: 'a', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'a', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'C0' }));
    k.run(k.write({ map: 'm', page: 1, data: 'C1' }));
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
    return k;
  }

  it('a read writes the cache back, then FUSE_READ fills the GUPed buffer (FOLL_WRITE); it stops at i_size', () => {
    const k = pagecache();
    expect(k.files.get('a')!.inode.cache).not.toBeNull();
    const seen = gupsDuring(k, () => expect(k.run(k.pread({ file: 'a', length: 2 * PAGE, map: 'buf', direct: true }))).toBe(2 * PAGE));
    expect(seen).toEqual([
      [false, true],
      [false, true],
    ]);
    // the mapping's stores reached the server by the writeback (kiocb_write_and_wait) before the read
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('C0');
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('C1');
    // at i_size: 0 bytes, no GUP; across it: the pages below it
    expect(gupsDuring(k, () => expect(k.run(k.pread({ file: 'a', offset: 2 * PAGE, length: PAGE, map: 'buf', direct: true }))).toBe(0))).toEqual([]);
    expect(k.run(k.pread({ file: 'a', offset: PAGE, length: 2 * PAGE, map: 'buf', direct: true }))).toBe(PAGE);
  });

  it('a write invalidates the cached pages (unmapped from the mapping), FUSE_WRITE goes to the server, and the next load reads it back', () => {
    const k = pagecache();
    k.run(k.write({ map: 'buf', page: 0, data: 'D0' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'D1' }));
    expect(k.isMappedIn({ map: 'm', page: 1 })).toBe(true);
    expect(k.run(k.pwrite({ file: 'a', offset: PAGE, length: 2 * PAGE, map: 'buf', direct: true }))).toBe(2 * PAGE);
    // fuse_write_update_size(): i_size grows to the end of the write
    expect(k.files.get('a')!.inode.size).toBe(3 * PAGE);
    // invalidate_inode_pages2_range() dropped page 1 from the cache and the mapping; page 0 was outside the range
    expect(k.isMappedIn({ map: 'm', page: 1 })).toBe(false);
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(true);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('D0');
    const fs = k.device('vfs0').fs as Fuse;
    expect(fs.hostData(k.files.get('a')!.inode, 2)).toBe('D1');
  });

  it('no sector alignment (fuse_direct_IO checks none): a sub-page range is refused only as not modelled', () => {
    const k = pagecache();
    expect(errnoOf(() => k.run(k.pread({ file: 'a', offset: 100, length: 100, map: 'buf', direct: true })))).toBe('unsupported: EOPNOTSUPP');
  });
});


