import { createKernel, daxFlagOf, Monitor, statxDax, type BlockAllocator, type DaxMountOption, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '@daxlab/fs-ext4';
import { DaxRanges, fuse, type Fuse } from '../src/index.js';
import { fsSequence, testArch } from '@daxlab/core/testing';

const MiB = 1024 * 1024;

/** A kernel whose fs is FUSE: `probe` without a driver brings up the virtio-fs DAX window. */
function boot(version: string, features: Record<string, unknown> = {}, window = 1024 * MiB): { k: Kernel; m: Monitor; fs: Fuse } {
  const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  k.run(k.probe({ size: window, as: 'vfs0' }));
  k.run(k.mount({ device: 'vfs0' }));
  return { k, m, fs: k.device('vfs0').fs as Fuse };
}

function file(k: Kernel, name: string, size: number, map = `m${name}`): void {
  k.run(k.create({ file: name, size }));
  k.run(k.mmap({ file: name, length: size, shared: true, write: true, as: map }));
}

const names = (m: Monitor): string[] => m.violations.map((v) => v.invariant).sort();

const sequence = (k: Kernel): string[] => fsSequence(k, { free: 'free-range', alloc: 'alloc-range' });

describe('virtio-fs DAX window (virtio_fs_setup_dax)', () => {
  it('probe maps the window as an FS_DAX pgmap with its memmap in RAM; FUSE splits it into 2 MiB ranges', () => {
    const { k, fs } = boot('v6.15', {}, 64 * MiB + 12 * 4096);
    const dev = k.device('vfs0');
    expect(dev.driver).toBe('virtiofs');
    expect(dev.pgmap.type).toBe('fsdax');
    expect(dev.pgmap.altmap).toBe(false);
    expect(dev.dataPfn).toBe(dev.pgmap.startPfn);
    expect(fs.blocks).toBeInstanceOf(DaxRanges);
    expect(fs.blocks.nrRanges).toBe(32); // the 12 pages past the last whole range are never used
    expect(fs.blocks.rangePages).toBe(512);
    expect(fs.mmapFlags).toEqual({ mixedmap: true, hugepage: true });
  });

  it('refuses to mount a pmem namespace, and is unsupported before v5.10', () => {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ driver: 'nvdimm', size: 1024 * MiB, as: 'pmem0' }));
    expect(() => k.run(k.mount({ device: 'pmem0' }))).toThrow(/EINVAL.*not a virtio-fs DAX window/);
    expect(() => createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: 'v5.4' })).toThrow(/v5\.10/);
  });

  it('ext4 refuses the window: it is no block device', () => {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), filesystems: [ext4()], kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * MiB, as: 'vfs0' }));
    expect(() => k.run(k.mount({ device: 'vfs0', fs: 'ext4' }))).toThrow(/EINVAL.*virtio-fs DAX window/);
  });
});

describe('FUSE_SETUPMAPPING: fuse_iomap_begin and the first fault of a chunk', () => {
  it('create asks the server for a host file and touches no window range; the first fault sets one up', () => {
    const { k, fs } = boot('v6.15');
    const seen = sequence(k);
    file(k, 'a', 2 * MiB);
    expect(seen).toEqual(['FUSE_CREATE', 'FUSE_FALLOCATE']);
    expect(fs.blocks.used).toBe(0);
    k.run(k.read({ map: 'ma', page: 3 }));
    expect(seen.slice(2)).toEqual(['FUSE_SETUPMAPPING(foffset=0<<21, moffset=0<<21, r)', 'alloc-range']);
    // fuse_iomap_begin(): window_offset + offset, and the 2 MiB range maps with a PMD
    const leaf = k.vm.lookup(k.process('init'), k.map('ma').start + 3)!;
    expect(leaf.pte.level).toBe('pmd');
    expect(k.pfnOf({ map: 'ma', page: 3 })).toBe(k.device('vfs0').dataPfn + 3);
    expect(k.blockOwner(k.device('vfs0').dataPfn + 511)).toBe('a[511]');
    expect(fs.blocks.used).toBe(512);
  });

  it('a write to a read-only range re-sends FUSE_SETUPMAPPING with WRITE and upgrades the PTE in place (pfn_mkwrite)', () => {
    const { k } = boot('v6.15');
    file(k, 'a', 4096);
    k.run(k.read({ map: 'ma', page: 0 }));
    const pfn = k.pfnOf({ map: 'ma', page: 0 })!;
    const seen = sequence(k);
    k.run(k.write({ map: 'ma', page: 0, data: 'W' }));
    expect(seen).toEqual(['FUSE_SETUPMAPPING(foffset=0<<21, moffset=0<<21, rw)']);
    expect(k.pfnOf({ map: 'ma', page: 0 })).toBe(pfn);
    expect(k.vm.lookup(k.process('init'), k.map('ma').start)!.pte.write).toBe(true);
    expect(k.refcount(pfn)).toBe(1);
  });

  it('a file smaller than its range maps with PTEs, and the range still covers 2 MiB of file offsets', () => {
    const { k } = boot('v6.6');
    file(k, 'a', 8192);
    k.run(k.write({ map: 'ma', page: 1, data: 'B' }));
    expect(k.vm.lookup(k.process('init'), k.map('ma').start + 1)!.pte.level).toBe('pte');
    expect(k.blockOwner(k.device('vfs0').dataPfn + 300)).toBe('a[300]');
  });

  it('VM_MIXEDMAP makes fork copy the DAX PTEs into the child (XFS/ext4 VMAs are refaulted instead)', () => {
    const { k } = boot('v6.6');
    file(k, 'a', 4096);
    k.run(k.write({ map: 'ma', page: 0, data: 'A' }));
    k.run(k.fork({ as: 'child' }));
    expect(k.isMappedIn({ map: 'ma', page: 0, process: 'child' })).toBe(true);
  });

  it('refuses reflink with EOPNOTSUPP', () => {
    const { k } = boot('v6.15');
    file(k, 'a', 4096);
    expect(() => k.run(k.reflink({ from: 'a', to: 'b' }))).toThrow(/EOPNOTSUPP/);
  });
});

describe('truncate: fuse_do_setattr(ATTR_SIZE)', () => {
  it('v6.15: fault lock, fuse_dax_break_layouts(0, -1) deletes the entries, FUSE_SETATTR, truncate_pagecache; the range stays', () => {
    const { k } = boot('v6.15');
    file(k, 'a', 4096);
    k.run(k.write({ map: 'ma', page: 0, data: 'A' }));
    const seen = sequence(k);
    k.run(k.truncate({ file: 'a', size: 0 }));
    expect(seen).toEqual([
      'inode_lock', 'filemap_invalidate_lock', 'fuse_dax_break_layouts(0, -1)', 'unmap', 'scan', 'delete-entry',
      'FUSE_SETATTR(size=0)', 'i_size_write', 'truncate_pagecache', 'invalidate_inode_pages2', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(k.blockFree({ file: 'a', page: 0 })).toBe(false);
    expect(k.warnings).toEqual([]);
  });

  it('v5.10: fi->i_mmap_sem and fuse_dax_break_layouts(0, 0); truncate_pagecache deletes the entries', () => {
    const { k } = boot('v5.10');
    file(k, 'a', 4096);
    k.run(k.write({ map: 'ma', page: 0, data: 'A' }));
    const seen = sequence(k);
    k.run(k.truncate({ file: 'a', size: 0 }));
    expect(seen).toEqual([
      'inode_lock', 'down_write(i_mmap_sem)', 'fuse_dax_break_layouts(0, 0)', 'unmap', 'scan',
      'FUSE_SETATTR(size=0)', 'i_size_write', 'truncate_pagecache', 'delete-entry', 'invalidate_inode_pages2', 'up_write(i_mmap_sem)', 'inode_unlock',
    ]);
  });

  it('the (0, 0) range of v5.10-v6.14 does not see a pin on page 1; the whole-file fix waits for it', () => {
    for (const [version, waits] of [['v6.6', false], ['v6.15', true], ['v6.6', true]] as const) {
      const { k, m } = boot(version, waits && version === 'v6.6' ? { 'fuse-break-whole-file': true } : {});
      file(k, 'a', 8192);
      k.run(k.write({ map: 'ma', page: 1, data: 'A' }));
      k.run(k.gup({ map: 'ma', page: 1, write: true, as: 'dma' }, true));
      const truncate = (): void => k.run(k.truncate({ file: 'a', size: 0 }));
      if (waits) expect(truncate, version).toThrow(/idle/);
      else expect(truncate, version).not.toThrow();
      expect(names(m)).toEqual([]);
    }
  });

  it('the server drops the host data past EOF: growing the file again reads zeroes', () => {
    const { k } = boot('v6.15');
    file(k, 'a', 8192);
    k.run(k.write({ map: 'ma', page: 1, data: 'B' }));
    k.run(k.truncate({ file: 'a', size: 4096 }));
    k.run(k.truncate({ file: 'a', size: 8192 }));
    k.run(k.mmap({ file: 'a', length: 8192, shared: true, as: 'again' }));
    expect(k.run(k.read({ map: 'again', page: 1 }))).toBe('');
  });
});

describe('punch hole: fuse_file_fallocate(PUNCH_HOLE | KEEP_SIZE)', () => {
  it('inode_lock, fault lock, break layouts, FUSE_FALLOCATE, truncate_pagecache_range; the host hole reads as zeroes', () => {
    const { k } = boot('v6.15');
    file(k, 'a', 4 * 4096);
    for (const page of [0, 1, 2, 3]) k.run(k.write({ map: 'ma', page, data: `D${page}` }));
    const seen = sequence(k);
    k.run(k.punchHole({ file: 'a', offset: 2048, length: 2 * 4096 }));
    expect(seen).toEqual([
      'inode_lock', 'filemap_invalidate_lock', 'fuse_dax_break_layouts(0, -1)', 'unmap', 'scan', 'delete-entry',
      'FUSE_FALLOCATE(PUNCH_HOLE|KEEP_SIZE, 2048, 8192)', 'truncate_pagecache_range', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'ma', page })))).toEqual(['D0', '', 'D2', 'D3']);
    expect(k.blockFree({ file: 'a', page: 1 })).toBe(false); // host blocks freed; the window range stays
  });
});

describe('range reclaim: lookup_and_reclaim_dmap, FUSE_REMOVEMAPPING, the free list', () => {
  /** a 2-range window, a and b set up, then c needs a range */
  function full(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor; fs: Fuse } {
    const r = boot(version, features, 4 * MiB);
    file(r.k, 'a', 4096);
    file(r.k, 'b', 4096);
    file(r.k, 'c', 4096);
    r.k.run(r.k.write({ map: 'ma', page: 0, data: 'A' }));
    r.k.run(r.k.write({ map: 'mb', page: 0, data: 'B' }));
    return r;
  }

  it('a fault with no free range waits for the worker, which reclaims the busy ranges in order and frees them to the tail', () => {
    const { k, fs } = full('v6.15');
    const seen = sequence(k);
    k.run(k.write({ map: 'mc', page: 0, data: 'C' }));
    expect(seen).toEqual([
      'lookup_and_reclaim_dmap(chunk=0)', 'filemap_invalidate_lock', 'fuse_dax_break_layouts(0, 511)', 'unmap', 'scan', 'delete-entry',
      'FUSE_REMOVEMAPPING(moffset=0<<21)', 'free-range', 'filemap_invalidate_unlock',
      'lookup_and_reclaim_dmap(chunk=0)', 'filemap_invalidate_lock', 'fuse_dax_break_layouts(0, 511)', 'unmap', 'scan', 'delete-entry',
      'FUSE_REMOVEMAPPING(moffset=1<<21)', 'free-range', 'filemap_invalidate_unlock',
      'FUSE_SETUPMAPPING(foffset=0<<21, moffset=0<<21, rw)', 'alloc-range',
    ]);
    expect(k.blockOwner(k.device('vfs0').dataPfn)).toBe('c[0]');
    expect(fs.blocks.nrFree).toBe(1);
    // what a and b wrote went to their host files with FUSE_REMOVEMAPPING and comes back with the next setup
    expect(k.run(k.read({ map: 'mc', page: 0 }))).toBe('C');
    expect(k.run(k.read({ map: 'ma', page: 0 }))).toBe('A');
    expect(k.blockOwner(k.pfnOf({ map: 'ma', page: 0 })!)).toBe('a[0]');
  });

  it('a range with an unmapped pinned page: v6.6 reclaims it under the pin (mapping_mapped), v6.15 waits in the reclaim', () => {
    const old = full('v6.6');
    old.k.run(old.k.gup({ map: 'ma', page: 0, write: true, as: 'dma' }, true));
    old.k.run(old.k.munmap({ map: 'ma' }));
    old.k.run(old.k.write({ map: 'mc', page: 0, data: 'C' }));
    old.k.run(old.k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(names(old.m)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    expect(old.k.run(old.k.read({ map: 'mc', page: 0 }))).toBe('X');

    const fixed = full('v6.15');
    fixed.k.run(fixed.k.gup({ map: 'ma', page: 0, write: true, as: 'dma' }, true));
    fixed.k.run(fixed.k.munmap({ map: 'ma' }));
    expect(() => fixed.k.run(fixed.k.write({ map: 'mc', page: 0, data: 'C' }))).toThrow(/idle/);
    expect(names(fixed.m)).toEqual([]);
  });

  it('the worker skips ranges in use by an iomap operation (refcnt > 1) and rotates the busy list', () => {
    const { fs } = full('v6.15');
    const [r0, r1] = fs.blocks.dmaps;
    r0!.refcnt = 2;
    expect(fs.blocks.pickReclaimable()).toBe(r1);
    r1!.refcnt = 2;
    expect(fs.blocks.pickReclaimable()).toBeNull();
    expect(fs.blocks.hasReclaimable()).toBe(false);
    r0!.refcnt = 1;
    expect(fs.blocks.pickReclaimable()).toBe(r0);
  });

  it('window pages are not allocated, shared or released one by one', () => {
    const { fs } = full('v6.15');
    // called as core calls any filesystem's allocator
    const blocks: BlockAllocator = fs.blocks;
    expect(() => blocks.alloc('x', 0, 1)).toThrow(/EOPNOTSUPP/);
    expect(() => blocks.share(0, 'x', 0)).toThrow(/EOPNOTSUPP/);
    expect(() => blocks.release(0, 'a')).toThrow(/EOPNOTSUPP/);
  });
});

describe('a private write fault copies the file page through FUSE (do_cow_fault -> dax_fault_cow_page)', () => {
  it('sets up a read-only window range for the chunk to read the host data, and maps an anonymous copy', () => {
    const { k, fs } = boot('v6.15');
    k.run(k.create({ file: 'a', size: 8192 }));
    k.run(k.mmap({ file: 'a', length: 8192, shared: false, write: true, as: 'p' }));
    const seen = sequence(k);
    k.run(k.write({ map: 'p', page: 0, data: 'P' }));
    expect(seen).toEqual(['FUSE_SETUPMAPPING(foffset=0<<21, moffset=0<<21, r)', 'alloc-range']);
    const pfn = k.pfnOf({ map: 'p', page: 0 })!;
    expect(k.deviceOfPfn(pfn)).toBeNull(); // a RAM page, not a window page
    expect(k.isAnon(pfn)).toBe(true);
    expect(fs.blocks.nrFree).toBe(fs.blocks.nrRanges - 1);
    // the file itself is unchanged: the host still has nothing at page 0
    k.run(k.mmap({ file: 'a', length: 8192, shared: true, as: 's' }));
    expect(k.run(k.read({ map: 's', page: 0 }))).toBe('');
  });

  it('a private write fault beyond EOF is SIGBUS, on FUSE as on XFS and ext4', () => {
    const { k } = boot('v6.15');
    k.run(k.create({ file: 'a', size: 4096 }));
    k.run(k.mmap({ file: 'a', length: 8192, shared: false, write: true, as: 'p' }));
    expect(() => k.run(k.write({ map: 'p', page: 1, data: 'P' }))).toThrow(/SIGBUS/);
  });
});

describe('virtio-fs device removal', () => {
  it('no dax holder: nothing unmaps the file before memunmap_pages, so v6.6 tears down a mapped page', () => {
    const { k, m } = boot('v6.6');
    file(k, 'a', 4096);
    k.run(k.write({ map: 'ma', page: 0, data: 'A' }));
    k.run(k.unbind({ device: 'vfs0' }));
    expect(names(m)).toEqual(['pgmap-teardown-while-referenced']);
  });

  it('v5.10: memunmap_pages waits for a pinned page', () => {
    const { k, m } = boot('v5.10');
    file(k, 'a', 4096);
    k.run(k.write({ map: 'ma', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'ma', page: 0, write: true, as: 'dma' }, true));
    k.run(k.munmap({ map: 'ma' }));
    expect(() => k.run(k.unbind({ device: 'vfs0' }))).toThrow(/wait for page references/);
    expect(names(m)).toEqual([]);
  });
});

describe('virtio-fs dax mount option (Fuse.parseDaxOption)', () => {
  /** the mount's error, or null when it mounted */
  const mountWith = (version: string, dax: boolean | 'always' | 'inode'): { code: string; unsupported: boolean } | null => {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version });
    k.run(k.probe({ size: 1024 * MiB, as: 'vfs0' }));
    try {
      k.run(k.mount({ device: 'vfs0', dax }));
      return null;
    } catch (e) {
      const { code, unsupported } = e as { code: string; unsupported: string | null };
      return { code, unsupported: unsupported !== null };
    }
  };

  it('-o dax and no option from v5.10; dax=always|inode only from v5.17 (780b1b959f9b)', () => {
    expect(mountWith('v5.10', true)).toBeNull();
    expect(mountWith('v5.10', false)).toBeNull();
    expect(mountWith('v5.10', 'always')).toEqual({ code: 'EINVAL', unsupported: true });
    expect(mountWith('v5.10', 'inode')).toEqual({ code: 'EINVAL', unsupported: true });
    expect(mountWith('v6.1', 'always')).toBeNull();
    expect(mountWith('v6.1', 'inode')).toBeNull();
    expect(mountWith('v6.1', false)).toBeNull();
  });
});

describe('virtio-fs per-inode DAX (v5.17: fuse_should_enable_dax, FUSE_ATTR_DAX, fuse_dax_dontcache)', () => {
  const PAGE = 4096;
  function mounted(version: string, dax: DaxMountOption): { k: Kernel; fs: Fuse } {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version });
    k.run(k.probe({ size: 64 * MiB, as: 'vfs0' }));
    k.run(k.mount({ device: 'vfs0', dax }));
    return { k, fs: k.device('vfs0').fs as Fuse };
  }

  it('the mode each option gives: -o dax always; no option never before v5.17 (no window in use), per inode after', () => {
    expect(mounted('v5.10', true).fs.daxMode).toBe('always');
    expect(mounted('v5.10', false).fs.daxMode).toBe('never');
    expect(mounted('v6.1', false).fs.daxMode).toBe('inode');
    expect(mounted('v6.1', 'never').fs.daxMode).toBe('never');
  });

  it('v5.10 without -o dax: a page-cache file whose data goes to the host at writeback; FS_XFLAG_DAX cannot be changed (no per-inode DAX)', () => {
    const { k, fs } = mounted('v5.10', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(statxDax(k, 'f')).toBe(false);
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.munmap({ map: 'm' }));
    expect(fs.hostData(k.file('f').inode, 0)).toBe('');
    k.run(k.dropCaches({}));
    // fuse_writepages: FUSE_WRITE put the page in the host file; no window range was ever used
    expect([fs.hostData(k.file('f').inode, 0), fs.blocks.nrFree]).toEqual(['A', fs.blocks.nrRanges]);
    expect(() => k.run(k.chattr({ file: 'f', dax: true }))).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
  });

  it('v6.1 dax=inode: chattr +x reaches the server; the next lookup sees FUSE_ATTR_DAX and the file is DAX, its page-cache data moved through the host into the window', () => {
    const { k, fs } = mounted('v6.1', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.chattr({ file: 'f', dax: true }));
    expect([daxFlagOf(k, { file: 'f' }), statxDax(k, 'f')]).toEqual([true, true]);
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'd' }));
    expect(k.run(k.read({ map: 'd', page: 0 }))).toBe('A');
    // the DAX fault set up one 2 MiB range for the file
    expect(fs.blocks.nrFree).toBe(fs.blocks.nrRanges - 1);
  });

  it('an open file keeps its S_DAX until its last close (I_DONTCACHE); the eviction removes its window ranges (fuse_dax_inode_cleanup)', () => {
    const { k, fs } = mounted('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.chattr({ file: 'f', dax: true }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'D' }));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.open({ file: 'f', as: 'fd' }));
    k.run(k.chattr({ file: 'f', dax: false }));
    expect([statxDax(k, 'f'), k.file('f').inode.dontcache, fs.blocks.nrFree]).toEqual([true, true, fs.blocks.nrRanges - 1]);
    k.run(k.close({ name: 'fd' }));
    // evicted at the close: FUSE_REMOVEMAPPING wrote the range to the host file and freed it
    expect([fs.hostData(k.file('f').inode, 0), fs.blocks.nrFree, statxDax(k, 'f')]).toEqual(['D', fs.blocks.nrRanges, false]);
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'p' }));
    expect(k.run(k.read({ map: 'p', page: 0 }))).toBe('D');
  });

  it('rename (FUSE_RENAME) moves the entry and keeps the inode, its S_DAX and its window range', () => {
    const { k, fs } = mounted('v6.6', 'always');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'R' }));
    const inode = k.file('f').inode;
    k.run(k.rename({ file: 'f', into: 'd' }));
    expect([k.file('f').inode === inode, statxDax(k, 'f'), fs.parents.get('f'), fs.blocks.nrFree]).toEqual([true, true, 'd', fs.blocks.nrRanges - 1]);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('R');
  });

  it('dax=never: the server may flag the file, it is never DAX; dax=always: every file is, flagged or not', () => {
    const never = mounted('v6.6', 'never');
    never.k.run(never.k.create({ file: 'f', size: PAGE }));
    never.k.run(never.k.chattr({ file: 'f', dax: true }));
    expect(statxDax(never.k, 'f')).toBe(false);
    const always = mounted('v6.6', 'always');
    always.k.run(always.k.create({ file: 'f', size: PAGE }));
    expect(statxDax(always.k, 'f')).toBe(true);
  });

  it('a directory flag is the host filesystem\'s (not modelled: unsupported); a page-cache file truncates without the fault lock', () => {
    const { k } = mounted('v6.6', 'inode');
    k.run(k.mkdir({ dir: 'd' }));
    expect(() => k.run(k.chattr({ dir: 'd', dax: true }))).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP', unsupported: expect.any(String) }));
    k.run(k.create({ file: 'f', size: 2 * PAGE, dir: 'd' }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.write({ map: 'm', page: 1, data: 'B' }));
    const steps: string[] = [];
    k.bus.all().subscribe((e) => {
      if (e.type === 'fs.step') steps.push(String((e.data as { step: string }).step));
    });
    k.run(k.truncate({ file: 'f', size: PAGE }));
    // page 1 went with truncate_pagecache; page 0, dirty, was written to the host before invalidate_inode_pages2 dropped it
    expect(steps).toEqual(['inode_lock', 'FUSE_SETATTR(size=4096)', 'i_size_write', 'truncate_pagecache', 'invalidate_inode_pages2', 'FUSE_WRITE', 'inode_unlock']);
    expect([(k.device('vfs0').fs as Fuse).hostData(k.file('f').inode, 0), k.file('f').inode.cache!.cache.size]).toEqual(['A', 0]);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('A');
  });
});

describe('mount options and flags FUSE does not have (DaxFilesystem base)', () => {
  it("ext4's data=, delalloc and inline_data are unknown options (EINVAL, nothing mounted); chattr +j is EOPNOTSUPP", () => {
    const k = createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * MiB, as: 'vfs0' }));
    expect(() => k.run(k.mount({ device: 'vfs0', data: 'journal' }))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(k.device('vfs0').fs).toBeNull();
    k.run(k.mount({ device: 'vfs0' }));
    k.run(k.create({ file: 'f', size: 4096 }));
    expect(() => k.run(k.chattr({ file: 'f', journal: true }))).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
  });
});
