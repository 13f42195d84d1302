import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { fsSequence, testArch } from '@daxlab/core/testing';

const MiB = 1024 * 1024;

function boot(version: string, features: Record<string, unknown> = {}, fileSize = 2 * MiB): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: fileSize }));
  k.run(k.mmap({ file: 'a', length: fileSize, shared: true, write: true, as: 'm' }));
  k.run(k.write({ map: 'm', page: 0, data: 'A' }));
  return { k, m };
}

const names = (m: Monitor): string[] => m.violations.map((v) => v.invariant).sort();

const sequence = (k: Kernel): string[] => fsSequence(k);
const folded = (s: string[]): string[] => s.filter((x, i) => x !== s[i - 1]);

describe('ext4 truncate ordering (ext4_setattr ATTR_SIZE)', () => {
  it('v5.10: inode_lock, dio wait, i_mmap_sem, break layouts (scan only), size, truncate_pagecache deletes entries, ext4_truncate frees', () => {
    const { k } = boot('v5.10');
    const seen = sequence(k);
    k.run(k.truncate({ file: 'a', size: 0 }));
    expect(folded(seen)).toEqual([
      'inode_lock', 'inode_dio_wait', 'down_write(i_mmap_sem)', 'ext4_break_layouts', 'unmap', 'scan',
      'ext4_orphan_add', 'i_size_write', 'truncate_pagecache', 'delete-entry', 'ext4_truncate', 'free-block',
      'up_write(i_mmap_sem)', 'inode_unlock',
    ]);
  });

  it('v6.15: invalidate_lock, and dax_break_layout_inode deletes every entry before truncate_pagecache', () => {
    const { k } = boot('v6.15');
    const seen = sequence(k);
    k.run(k.truncate({ file: 'a', size: 0 }));
    expect(folded(seen)).toEqual([
      'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts', 'unmap', 'scan', 'delete-entry',
      'ext4_orphan_add', 'i_size_write', 'truncate_pagecache', 'ext4_truncate', 'free-block',
      'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(k.warnings).toEqual([]);
  });

  it('a pinned page makes ext4_break_layouts wait with the fault lock dropped and the inode lock held', () => {
    const { k } = boot('v6.6');
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    const seen = sequence(k);
    const { inode } = k.file('a');
    expect(() => k.run(k.truncate({ file: 'a', size: 0 }))).toThrow(/idle/);
    expect(folded(seen)).toEqual(['inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts', 'unmap', 'busy', 'wait']);
    expect(inode.iolock.heldExclusive).toBe(true);
    expect(inode.mmaplock.heldExclusive).toBe(false);
  });

  it('growing a file neither breaks blocks nor calls ext4_truncate', () => {
    const { k } = boot('v6.15', {}, 4096);
    const seen = sequence(k);
    k.run(k.truncate({ file: 'a', size: 8192 }));
    expect(seen).not.toContain('ext4_truncate');
    expect(seen).not.toContain('inode_dio_wait');
    expect(k.file('a').inode.size).toBe(8192);
    expect(k.blockFree({ file: 'a', page: 0 })).toBe(false);
  });
});

describe('ext4 punch hole: ext4_punch_hole (<= v6.14) vs ext4_fallocate (v6.15)', () => {
  it('v6.6: ext4_punch_hole locks, breaks layouts, truncates the whole pages and frees the whole blocks inside', () => {
    const { k } = boot('v6.6', {}, 4 * 4096);
    const seen = sequence(k);
    k.run(k.punchHole({ file: 'a', offset: 2048, length: 3 * 4096 }));
    expect(folded(seen).filter((s) => !['unmap', 'scan', 'delete-entry', 'free-block'].includes(s))).toEqual([
      'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts', 'truncate_pagecache_range', 'ext4_ext_remove_space', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect([0, 1, 2, 3].map((page) => k.blockFree({ file: 'a', page }))).toEqual([false, true, true, false]);
  });

  it('v6.15: ext4_fallocate breaks layouts before ext4_punch_hole clamps to EOF', () => {
    const { k } = boot('v6.15', {}, 2 * 4096);
    const seen = sequence(k);
    k.run(k.punchHole({ file: 'a', offset: 4096, length: MiB }));
    expect(folded(seen).filter((s) => !['unmap', 'scan', 'delete-entry', 'free-block'].includes(s))).toEqual([
      'ext4_fallocate', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts', 'ext4_punch_hole', 'truncate_pagecache_range', 'ext4_ext_remove_space', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect([0, 1].map((page) => k.blockFree({ file: 'a', page }))).toEqual([false, true]);
  });

  it('a hole at EOF: v6.6 returns before breaking layouts; v6.15 waits for a pinned page first', () => {
    for (const [version, waits] of [['v6.6', false], ['v6.15', true]] as const) {
      const { k, m } = boot(version, {}, 2 * 4096);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      const seen = sequence(k);
      const punch = (): void => k.run(k.punchHole({ file: 'a', offset: 2 * 4096, length: 4096 }));
      if (waits) expect(punch, version).toThrow(/idle/);
      else expect(punch, version).not.toThrow();
      expect(seen.includes('ext4_break_layouts'), version).toBe(waits);
      expect(names(m)).toEqual([]);
    }
  });
});

describe('map -> pin -> munmap -> truncate -> reuse -> DMA on ext4 (seed 004)', () => {
  const race = (k: Kernel): void => {
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'a', size: 0 }));
    k.run(k.create({ file: 'b', size: 2 * MiB }));
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
  };

  it('v6.6 (mapping_mapped() early return): the pinned block is freed, reused by b and corrupted', () => {
    const { k, m } = boot('v6.6');
    race(k);
    expect(names(m)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    k.run(k.mmap({ file: 'b', length: 2 * MiB, shared: true, as: 'mb' }));
    expect(k.run(k.read({ map: 'mb', page: 0 }))).toBe('X');
  });

  it('v6.15 waits for the pin; deleting entries before the wait, or waiting for rc 1 on a PMD folio pin, does not', () => {
    const w = boot('v6.15');
    w.k.run(w.k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    w.k.run(w.k.munmap({ map: 'm' }));
    expect(() => w.k.run(w.k.truncate({ file: 'a', size: 0 }))).toThrow(/idle/);
    expect(names(w.m)).toEqual([]);
    for (const f of [{ 'dax-delete-entries-before-wait': true }, { 'dax-wait-refcount-one': true }]) {
      const { k, m } = boot('v6.15', f);
      race(k);
      expect(names(m), JSON.stringify(f)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    }
  });
});

describe('ext4 faults, holes and refusals', () => {
  it('maps 2 MiB with a PMD (VM_HUGEPAGE) and refcounts it per convention', () => {
    const legacy = boot('v6.6');
    const pfn = legacy.k.pfnOf({ map: 'm', page: 0 })!;
    expect(legacy.k.vm.lookup(legacy.k.process('init'), legacy.k.map('m').start)!.pte.level).toBe('pmd');
    expect(legacy.k.refcount(pfn)).toBe(1);
    expect(legacy.k.mapcount(pfn)).toBe(0);
    const zero = boot('v6.15');
    expect(zero.k.refcount(zero.k.pfnOf({ map: 'm', page: 0 })!)).toBe(1);
    expect(zero.k.mapcount(zero.k.pfnOf({ map: 'm', page: 0 })!)).toBe(1);
  });

  it('a hole reads the zero page; a write allocates; a read fault then a write goes through pfn_mkwrite on the same pfn', () => {
    const { k } = boot('v6.15', {}, 2 * 4096);
    k.run(k.punchHole({ file: 'a', offset: 4096, length: 4096 }));
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('');
    expect(k.pfnOf({ map: 'm', page: 1 })).toBe(k.zeroPfn);
    k.run(k.write({ map: 'm', page: 1, data: 'W' }));
    expect(k.pfnOf({ map: 'm', page: 1 })).not.toBe(k.zeroPfn);
    expect(k.blockFree({ file: 'a', page: 1 })).toBe(false);

    const b = boot('v6.15', {}, 2 * 4096);
    b.k.run(b.k.create({ file: 'c', size: 4096 }));
    b.k.run(b.k.mmap({ file: 'c', length: 4096, shared: true, write: true, as: 'mc' }));
    b.k.run(b.k.read({ map: 'mc', page: 0 }));
    const before = b.k.pfnOf({ map: 'mc', page: 0 })!;
    const leaf = b.k.vm.lookup(b.k.process('init'), b.k.map('mc').start)!;
    expect(leaf.pte.write).toBe(false);
    b.k.run(b.k.write({ map: 'mc', page: 0, data: 'W' }));
    expect(b.k.pfnOf({ map: 'mc', page: 0 })).toBe(before);
    expect(b.k.vm.lookup(b.k.process('init'), b.k.map('mc').start)!.pte.write).toBe(true);
    expect(b.k.refcount(before)).toBe(1);
  });

  it('refuses reflink with EOPNOTSUPP (no ->remap_file_range) in every version', () => {
    for (const v of ['v5.10', 'v6.6', 'v6.15']) {
      const { k } = boot(v, {}, 4096);
      expect(() => k.run(k.reflink({ from: 'a', to: 'b' })), v).toThrow(/EOPNOTSUPP/);
    }
  });

  it('ext4_break_layouts without the fault lock is -EINVAL (the WARN_ON_ONCE in ext4)', () => {
    const { k } = boot('v6.15', {}, 4096);
    const fs = k.file('a').fs as unknown as { breakLayouts(i: unknown): Generator };
    expect(() => k.run(fs.breakLayouts(k.file('a').inode) as never)).toThrow(/EINVAL/);
  });
});

describe('ext4 registers no dax holder (fs_dax_get_by_bdev(..., NULL, NULL))', () => {
  it('v6.6 and v6.15: pmem unbind tears the pgmap down under a mapped page; XFS would have unmapped it', () => {
    for (const version of ['v6.6', 'v6.15']) {
      const { k, m } = boot(version);
      k.run(k.unbind({ device: 'pmem0' }));
      expect(k.isMappedIn({ map: 'm', page: 0 }), version).toBe(true);
      expect(names(m), version).toEqual(['pgmap-teardown-while-referenced']);
    }
  });
});

describe('a poisoned pmem page on ext4 (ndctl dax-errors.sh: punch hole clears poison)', () => {
  it('the refault of a poisoned page is SIGBUS until a punch and a rewrite (EXT4_GET_BLOCKS_CREATE_ZERO) clear it', () => {
    const { k } = boot('v6.15', {}, 16384);
    const bad = k.pfnOf({ file: 'a', page: 0 })!;
    k.run(k.memoryFailure({ device: 'pmem0', page: bad - k.device('pmem0').dataPfn }));
    expect(() => k.run(k.read({ map: 'm', page: 0 }))).toThrow(/SIGBUS/);
    k.run(k.punchHole({ file: 'a', offset: 0, length: 4096 }));
    k.run(k.write({ map: 'm', page: 0, data: 'N' }));
    expect(k.pfnOf({ file: 'a', page: 0 })).toBe(bad);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('N');
  });
});
