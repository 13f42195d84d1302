import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { errnoOf, gupsDuring, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '@daxlab/fs-xfs';
import { fuse, type Fuse } from '../src/index.js';

// A FUSE server that opens files FOPEN_DIRECT_IO (virtiofsd --cache=never): the `mount` step's
// fopenDirectIo, and FUSE_DIRECT_IO_ALLOW_MMAP in its FUSE_INIT reply, directIoAllowMmap.
// fs/fuse/file.c: fuse_file_read_iter / fuse_file_write_iter send such a file's read(2) and
// write(2) to fuse_direct_io() whatever O_DIRECT says, after FUSE_IS_DAX(); fuse_file_mmap()
// refuses MAP_SHARED (-ENODEV) unless the connection allows mmap (v6.6) and invalidates the page
// cache before a page-cache mapping.

const PAGE = 4096;

interface Booted {
  k: Kernel;
  fs: Fuse;
  m: Monitor;
}

/** virtio-fs with dax=never (page-cache files), the server's answers as given; `a` holds H0, H1 on the host. */
function boot(version: string, server: { fopenDirectIo?: boolean; directIoAllowMmap?: boolean } = { fopenDirectIo: true }, dax: 'never' | 'always' | 'inode' = 'never'): Booted {
  const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 64 * 1024 * 1024, as: 'vfs0' }));
  // the host file is written before the FOPEN_DIRECT_IO server opens it: a first mount without it
  k.run(k.mount({ device: 'vfs0', dax }));
  k.run(k.create({ file: 'a', size: 2 * PAGE }));
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'src' }));
  k.run(k.write({ map: 'src', page: 0, data: 'H0' }));
  k.run(k.write({ map: 'src', page: 1, data: 'H1' }));
  k.run(k.pwrite({ file: 'a', length: 2 * PAGE, map: 'src', direct: true }));
  k.run(k.munmap({ map: 'src' }));
  k.run(k.umount({ device: 'vfs0' }));
  k.run(k.mount({ device: 'vfs0', dax, ...server }));
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  return { k, fs: k.device('vfs0').fs as Fuse, m };
}

const host = (b: Booted, index: number): string => b.fs.hostData(b.k.file('a').inode, index);

describe('FOPEN_DIRECT_IO read(2) / write(2): fuse_direct_read_iter / fuse_direct_write_iter', () => {
  it('a read without O_DIRECT is FUSE_READ into the GUPed buffer (FOLL_WRITE, FOLL_GET on v6.6): no folio enters the page cache', () => {
    const b = boot('v6.6');
    const seen = gupsDuring(b.k, () => expect(b.k.run(b.k.pread({ file: 'a', length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE));
    expect(seen).toEqual([
      [false, true],
      [false, true],
    ]);
    expect([b.k.run(b.k.read({ map: 'buf', page: 0 })), b.k.run(b.k.read({ map: 'buf', page: 1 }))]).toEqual(['H0', 'H1']);
    // filemap_read() would have brought both folios in
    expect(b.k.file('a').inode.cache!.cache.size).toBe(0);
    // the server's short read at i_size: 0 bytes past it, the page below it across it
    expect(b.k.run(b.k.pread({ file: 'a', offset: 2 * PAGE, length: PAGE, map: 'buf' }))).toBe(0);
    expect(b.k.run(b.k.pread({ file: 'a', offset: PAGE, length: 2 * PAGE, map: 'buf' }))).toBe(PAGE);
    expect(b.m.violations).toEqual([]);
  });

  it('a write without O_DIRECT is FUSE_WRITE of the GUPed pages (no FOLL_WRITE; FOLL_PIN from v6.9): the host has it at once, i_size grows', () => {
    const b = boot('v6.15');
    b.k.run(b.k.write({ map: 'buf', page: 0, data: 'W' }));
    const seen = gupsDuring(b.k, () => expect(b.k.run(b.k.pwrite({ file: 'a', offset: 2 * PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE));
    expect(seen).toEqual([[true, false]]);
    // no writeback was needed: FUSE_WRITE carried it (a buffered write would sit in the cache until then)
    expect([host(b, 2), b.k.file('a').inode.size]).toEqual(['W', 3 * PAGE]);
    expect(b.k.maybePinned(b.k.pfnOf({ map: 'buf', page: 0 })!)).toBe(false);
  });

  it('the server that does not set FOPEN_DIRECT_IO keeps the buffered path: the read fills the page cache, no GUP', () => {
    const b = boot('v6.6', {});
    expect(gupsDuring(b.k, () => b.k.run(b.k.pread({ file: 'a', length: 2 * PAGE, map: 'buf' })))).toEqual([]);
    expect(b.k.file('a').inode.cache!.cache.size).toBe(2);
  });

  it('a buffer page GUP cannot get ends the requests with what was done (fuse_direct_io: res > 0 ? res : err)', () => {
    const b = boot('v6.6');
    b.k.run(b.k.write({ map: 'buf', page: 0, data: 'X' }));
    b.k.run(b.k.munmap({ map: 'buf', offset: PAGE, length: PAGE }));
    expect(b.k.run(b.k.pwrite({ file: 'a', length: 2 * PAGE, map: 'buf' }))).toBe(PAGE);
    expect([host(b, 0), host(b, 1)]).toEqual(['X', 'H1']);
    expect(errnoOf(() => b.k.run(b.k.pread({ file: 'a', length: PAGE, map: 'buf', page: 1 })))).toBe('EFAULT');
  });

  it('FUSE_IS_DAX() comes first: on a dax=always mount the same server answer changes nothing, dax_iomap_rw() copies without GUP', () => {
    const b = boot('v6.15', { fopenDirectIo: true }, 'always');
    expect(b.k.file('a').inode.sDax).toBe(true);
    expect(gupsDuring(b.k, () => expect(b.k.run(b.k.pread({ file: 'a', length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE))).toEqual([]);
    expect(b.k.run(b.k.read({ map: 'buf', page: 1 }))).toBe('H1');
    // and fuse_dax_mmap(): a shared mapping of the window, no -ENODEV
    b.k.run(b.k.mmap({ file: 'a', length: 2 * PAGE, shared: true, write: true, as: 'd' }));
    expect(b.k.run(b.k.read({ map: 'd', page: 0 }))).toBe('H0');
  });
});

describe('the page cache of an FOPEN_DIRECT_IO file across releases (fuse_direct_io)', () => {
  /** A private mapping `p` of `a` (generic_file_mmap: page-cache folios) has read both pages; the buffer holds N0. */
  function privatelyMapped(version: string): Booted {
    const b = boot(version);
    b.k.run(b.k.mmap({ file: 'a', length: 2 * PAGE, as: 'p' }));
    expect([b.k.run(b.k.read({ map: 'p', page: 0 })), b.k.run(b.k.read({ map: 'p', page: 1 }))]).toEqual(['H0', 'H1']);
    b.k.run(b.k.write({ map: 'buf', page: 0, data: 'N0' }));
    return b;
  }

  it('before v6.6 a write leaves the cached folio: the private mapping keeps showing the old data', () => {
    const b = privatelyMapped('v6.1');
    expect(b.k.run(b.k.pwrite({ file: 'a', length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect([host(b, 0), b.k.run(b.k.read({ map: 'p', page: 0 }))]).toEqual(['N0', 'H0']);
  });

  it('O_DIRECT changes nothing for such a file: fuse_direct_write_iter, not the VFS path that would invalidate before and after', () => {
    const b = privatelyMapped('v6.1');
    expect(b.k.run(b.k.pwrite({ file: 'a', length: PAGE, map: 'buf', direct: true }))).toBe(PAGE);
    expect([host(b, 0), b.k.run(b.k.read({ map: 'p', page: 0 }))]).toEqual(['N0', 'H0']);
  });

  it('from v6.6 the written range is invalidated first (80e4f25262f9): the mapping refaults and reads the new data', () => {
    const b = privatelyMapped('v6.6');
    expect(b.k.run(b.k.pwrite({ file: 'a', length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(b.k.isMappedIn({ map: 'p', page: 0 })).toBe(false);
    // page 1 was outside the range
    expect(b.k.isMappedIn({ map: 'p', page: 1 })).toBe(true);
    expect(b.k.run(b.k.read({ map: 'p', page: 0 }))).toBe('N0');
  });

  it('a buffer mapping the file itself refaults a folio the write then makes stale: v6.6 keeps it, v6.19 invalidates after the write (b359af8275a9)', () => {
    for (const [version, seen] of [
      ['v6.6', 'H1'],
      ['latest', 'N2'],
    ] as const) {
      const b = boot(version);
      b.k.run(b.k.write({ map: 'buf', page: 0, data: 'N2' }));
      b.k.run(b.k.pwrite({ file: 'a', offset: 2 * PAGE, length: PAGE, map: 'buf' }));
      // p maps a's pages 1 and 2 (H1, N2); nothing is faulted yet
      b.k.run(b.k.mmap({ file: 'a', offset: PAGE, length: 2 * PAGE, as: 'p' }));
      // pwrite(a, 0, 2 pages) from p: the range [0, 1] is invalidated (nothing cached), GUP of p's
      // page 0 faults a's folio 1 in (H1) and FUSE_WRITE puts H1 in host page 0, then GUP of p's
      // page 1 faults folio 2 (N2) and host page 1 becomes N2: folio 1 no longer says what the host does
      expect(b.k.run(b.k.pwrite({ file: 'a', length: 2 * PAGE, map: 'p' }))).toBe(2 * PAGE);
      expect([host(b, 0), host(b, 1)]).toEqual(['H1', 'N2']);
      // v6.6 leaves folio 1 cached and mapped; v6.19 drops the range [0, 1] again and p refaults from the host
      expect([version, b.k.run(b.k.read({ map: 'p', page: 0 }))]).toEqual([version, seen]);
      // a stale folio is still clean: the writeback of the inode's eviction leaves the host's N2 alone
      b.k.run(b.k.munmap({ map: 'p' }));
      b.k.run(b.k.dropCaches({}));
      expect([version, host(b, 1)]).toEqual([version, 'N2']);
    }
  });

  it('with FUSE_DIRECT_IO_ALLOW_MMAP a read writes the range back first (b5a2a3a0b776): a store through a shared mapping reaches the host before FUSE_READ', () => {
    const b = boot('v6.6', { fopenDirectIo: true, directIoAllowMmap: true });
    b.k.run(b.k.mmap({ file: 'a', length: PAGE, shared: true, write: true, as: 's' }));
    b.k.run(b.k.write({ map: 's', page: 0, data: 'S' }));
    expect(host(b, 0)).toBe('H0');
    // without the writeback the server would answer H0 (the page cache is the only place S is)
    b.k.run(b.k.pread({ file: 'a', length: PAGE, map: 'buf' }));
    expect([b.k.run(b.k.read({ map: 'buf', page: 0 })), host(b, 0)]).toEqual(['S', 'S']);
  });
});

describe('mmap of an FOPEN_DIRECT_IO file: fuse_file_mmap()', () => {
  it('MAP_SHARED is ENODEV, read-only too (VM_MAYSHARE), unless the connection allows mmap, which v6.6 knows and v6.1 does not', () => {
    const plain = boot('v6.6');
    expect(errnoOf(() => plain.k.run(plain.k.mmap({ file: 'a', length: PAGE, shared: true, as: 's' })))).toBe('ENODEV');
    const old = boot('v6.1', { fopenDirectIo: true, directIoAllowMmap: true });
    expect(errnoOf(() => old.k.run(old.k.mmap({ file: 'a', length: PAGE, shared: true, as: 's' })))).toBe('ENODEV');
    const b = boot('v6.6', { fopenDirectIo: true, directIoAllowMmap: true });
    b.k.run(b.k.mmap({ file: 'a', length: PAGE, shared: true, write: true, as: 's' }));
    expect(b.k.run(b.k.read({ map: 's', page: 0 }))).toBe('H0');
  });

  it('a private mapping is allowed, after invalidate_inode_pages2(): a dirty folio goes to the host, other mappings lose their PTEs, a COW copy stays', () => {
    const b = boot('v6.6', { fopenDirectIo: true, directIoAllowMmap: true });
    b.k.run(b.k.mmap({ file: 'a', length: 2 * PAGE, write: true, as: 'q' }));
    b.k.run(b.k.write({ map: 'q', page: 1, data: 'Q' }));
    b.k.run(b.k.mmap({ file: 'a', length: 2 * PAGE, shared: true, write: true, as: 's' }));
    b.k.run(b.k.write({ map: 's', page: 0, data: 'S' }));
    expect([host(b, 0), b.k.file('a').inode.cache!.cache.size]).toEqual(['H0', 1]);
    b.k.run(b.k.mmap({ file: 'a', length: 2 * PAGE, as: 'p' }));
    // fuse_launder_folio() wrote the dirty folio; s's PTE is gone, q's COW page is not
    expect([host(b, 0), b.k.isMappedIn({ map: 's', page: 0 }), b.k.isMappedIn({ map: 'q', page: 1 })]).toEqual(['S', false, true]);
    expect(b.k.file('a').inode.cache!.cache.size).toBe(0);
    expect([b.k.run(b.k.read({ map: 'p', page: 0 })), b.k.run(b.k.read({ map: 'q', page: 1 }))]).toEqual(['S', 'Q']);
  });
});

describe('the server fields on a mount', () => {
  it('are FUSE-only: another filesystem refuses them as input', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * 1024 * 1024, as: 'pmem0' }));
    expect(() => k.run(k.mount({ device: 'pmem0', fopenDirectIo: true }))).toThrow(expect.objectContaining({ name: 'InputError', field: 'fopenDirectIo' }));
  });
});
