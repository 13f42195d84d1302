import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { fsSequence, mappedWrittenFile, testArch } from '@daxlab/core/testing';

// fallocate(2) modes other than punch hole on a DAX file of XFS (xfs_file_fallocate; the
// xfs_falloc_* helpers of later releases): allocate, zero range, collapse range.

const PAGE = 4096;

/** XFS on pmem with a 16 KiB file `a` (blocks 0-3, first fit), mapped shared, page p holding `A<p>`. */
function boot(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  return { k: mappedWrittenFile(k, 4), m };
}

const blocksOf = (k: Kernel): number[] => [...k.file('a').inode.blocks].sort((x, y) => x[0] - y[0]).map(([, b]) => b);
const core = (seen: string[]): string[] => seen.filter((s) => !['unmap', 'scan', 'delete-entry', 'free-block'].includes(s));

describe('XFS zero range: punch, then preallocate unwritten', () => {
  it('frees the four blocks after the break, takes the same four back (first fit) as unwritten extents, keeps i_size', () => {
    const { k } = boot('v6.6');
    const before = blocksOf(k);
    const seen = fsSequence(k);
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: 0, length: 4 * PAGE, keepSize: true }));
    expect(core(seen)).toEqual([
      'xfs_ilock(IOLOCK_EXCL)', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'inode_dio_wait',
      'xfs_zero_file_space', 'xfs_flush_unmap_range', 'xfs_free_file_space', 'xfs_alloc_file_space',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)',
    ]);
    expect(seen).toContain('free-block');
    // the freed blocks 0-3 are the lowest free ones: the preallocation gets exactly them again
    expect(blocksOf(k)).toEqual(before);
    expect(k.file('a').inode.size).toBe(4 * PAGE);
    // unwritten: the old data is there on the media but every page reads as zeroes
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['', '', '', '']);
  });

  it('a write to an unwritten page converts it: the page reads what was written, its neighbour still zeroes', () => {
    const { k } = boot('v6.15');
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: 0, length: 2 * PAGE, keepSize: true }));
    k.run(k.write({ map: 'm', page: 0, data: 'W' }));
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['W', '', 'A2']);
  });

  it('without KEEP_SIZE past EOF the file grows through xfs_vn_setattr_size and the new pages are unwritten', () => {
    const { k } = boot('v6.15');
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: 3 * PAGE, length: 3 * PAGE }));
    expect(k.file('a').inode.size).toBe(6 * PAGE);
    // pages 3-5: page 3's block freed and taken back, pages 4 and 5 new; pages 0-2 untouched
    expect(blocksOf(k)).toEqual([0, 1, 2, 3, 4, 5]);
    expect([0, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['A0', '']);
  });

  it('waits for a pinned page (every release), and frees the block under the pin with the seed-004 misordering', () => {
    const { k, m } = boot('v6.6');
    k.run(k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    expect(() => k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: 0, length: 4 * PAGE, keepSize: true }))).toThrow(/idle/);
    expect(m.violations).toEqual([]);
    const bad = boot('v6.6', { 'dax-delete-entries-before-wait': true });
    bad.k.run(bad.k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    bad.k.run(bad.k.fallocate({ file: 'a', mode: 'zero-range', offset: 0, length: 4 * PAGE, keepSize: true }));
    expect(bad.m.violations.map((v) => v.invariant)).toEqual(['block-freed-while-pinned']);
  });
});

describe('XFS unwritten extents and reflink', () => {
  it('a clone shares an unwritten extent as unwritten: neither file reads what the media holds there', () => {
    const { k } = boot('v6.6');
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: PAGE, length: PAGE, keepSize: true }));
    // what a stale DMA (or an old write) left on the media of a's page-1 block
    const pfn = k.device('pmem0').dataPfn + k.file('a').inode.blocks.get(1)!;
    k.pages.data.set(pfn, 'STALE');
    k.run(k.reflink({ from: 'a', to: 'b' }));
    k.run(k.mmap({ file: 'b', length: 4 * PAGE, shared: true, write: true, as: 'mb' }));
    expect([0, 1].map((page) => k.run(k.read({ map: 'mb', page })))).toEqual(['A0', '']);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('');
  });
});

describe('XFS unwritten extents under PMD faults', () => {
  it('a preallocated 2 MiB extent reads through the huge zero page; a write converts the whole PMD and maps its own blocks', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.15' });
    k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 0 }));
    // 512 pages from page 0: the allocator gives a PMD-aligned run (one extent), all unwritten
    k.run(k.fallocate({ file: 'a', offset: 0, length: 2 * 1024 * 1024 }));
    k.run(k.mmap({ file: 'a', length: 2 * 1024 * 1024, shared: true, write: true, as: 'm' }));
    const mm = k.process('init');
    expect(k.run(k.read({ map: 'm', page: 7 }))).toBe('');
    expect(k.vm.lookup(mm, k.map('m').start + 7)!.pte).toMatchObject({ level: 'pmd', pfn: k.hugeZeroPfn });
    k.run(k.write({ map: 'm', page: 7, data: 'W' }));
    const leaf = k.vm.lookup(mm, k.map('m').start + 7)!;
    expect(leaf.pte.level).toBe('pmd');
    expect(leaf.pte.pfn).toBe(k.device('pmem0').dataPfn + k.file('a').inode.blocks.get(0)!);
    // the rest of the converted PMD reads zeroes (the conversion zeroed every block of it)
    expect([7, 8, 511].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['W', '', '']);
  });
});

describe('XFS plain fallocate (mode 0)', () => {
  it('breaks layouts like every other mode: a pinned page makes it wait', () => {
    const { k } = boot('v6.15');
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    const seen = fsSequence(k);
    expect(() => k.run(k.fallocate({ file: 'a', offset: 4 * PAGE, length: PAGE }))).toThrow(/idle/);
    expect(seen).toContain('xfs_break_layouts');
  });

  it('preallocation past EOF with KEEP_SIZE survives a truncate up (xfs_setattr_size truncates extents only when shrinking)', () => {
    const { k } = boot('v6.6');
    k.run(k.fallocate({ file: 'a', offset: 4 * PAGE, length: 2 * PAGE, keepSize: true }));
    expect(k.file('a').inode.size).toBe(4 * PAGE);
    k.run(k.truncate({ file: 'a', size: 6 * PAGE }));
    expect([4, 5].map((page) => k.blockFree({ file: 'a', page }))).toEqual([false, false]);
    k.run(k.truncate({ file: 'a', size: 4 * PAGE }));
    expect([4, 5].map((page) => k.blockFree({ file: 'a', page }))).toEqual([true, true]);
  });
});

describe('XFS collapse range', () => {
  it('frees the range, shifts the extents above it down and shrinks i_size', () => {
    const { k } = boot('v6.6');
    const seen = fsSequence(k);
    k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: PAGE, length: PAGE }));
    expect(core(seen)).toEqual([
      'xfs_ilock(IOLOCK_EXCL)', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'inode_dio_wait',
      'xfs_collapse_file_space', 'xfs_flush_unmap_range', 'xfs_free_file_space', 'xfs_prepare_shift', 'xfs_bmap_collapse_extents',
      'inode_dio_wait', 'truncate_setsize', 'xfs_itruncate_extents',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)',
    ]);
    // block 1 freed; blocks 2 and 3 now back pages 1 and 2
    expect(blocksOf(k)).toEqual([0, 2, 3]);
    expect(k.file('a').inode.size).toBe(3 * PAGE);
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['A0', 'A2', 'A3']);
    expect(() => k.run(k.read({ map: 'm', page: 3 }))).toThrow(/SIGBUS/);
  });

  it('with the seed-004 misordering a pinned block that only moves is still reported: the DMA lands at another file offset', () => {
    const { k, m } = boot('v6.6', { 'dax-delete-entries-before-wait': true });
    k.run(k.gup({ map: 'm', page: 2, write: true, as: 'dma' }, true));
    k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: 0, length: PAGE }));
    // block 2 was a[2] when pinned and is a[1] now (xfs_bmap_collapse_extents); nothing pinned was freed
    expect(k.blockOwner(k.device('pmem0').dataPfn + 2)).toBe('a[1]');
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(m.violations.map((v) => v.invariant)).toEqual(['dma-to-foreign-block']);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('X');
  });

  it('refuses a misaligned range or one reaching EOF with EINVAL, after the break-layouts wait', () => {
    for (const [offset, length] of [[2048, PAGE], [0, 6144], [3 * PAGE, PAGE], [2 * PAGE, 4 * PAGE]] as const) {
      const { k } = boot('v6.15');
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset, length })), `${offset}+${length}`).toThrow(/EINVAL/);
      expect(blocksOf(k)).toEqual([0, 1, 2, 3]);
      expect(k.file('a').inode.size).toBe(4 * PAGE);
      // with a pinned page the same call waits first: the checks come after xfs_break_layouts
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset, length })), `${offset}+${length}`).toThrow(/idle/);
    }
  });

  it('vfs_fallocate refuses COLLAPSE_RANGE | KEEP_SIZE before the filesystem sees it', () => {
    // EINVAL up to v6.11; v6.12+ says EOPNOTSUPP (fallocate-insert-unshare.test.ts)
    const { k } = boot('v6.6');
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    const seen = fsSequence(k);
    expect(() => k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: 0, length: PAGE, keepSize: true }))).toThrow(/EINVAL.*vfs_fallocate/);
    expect(seen).toEqual([]);
  });
});

describe('a page-cache file on a DAX-capable mount (dax=inode, no FS_XFLAG_DAX)', () => {
  it('collapse writes the cache back before dropping it, so the shifted pages keep their data', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: 'inode' }));
    k.run(k.create({ file: 'a', size: 4 * PAGE }));
    expect(k.file('a').inode.sDax).toBe(false);
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'm' }));
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: p, data: `C${p}` }));
    k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: 0, length: PAGE }));
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['C1', 'C2', 'C3']);
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: PAGE, length: PAGE, keepSize: true }));
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['C1', '', 'C3']);
  });
});

describe('fallocate modes of a memfd', () => {
  it('shmem_fallocate takes no ZERO_RANGE or COLLAPSE_RANGE (EOPNOTSUPP)', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.memfdCreate({ file: 'fd', size: 4 * PAGE }));
    for (const mode of ['zero-range', 'collapse-range'] as const) {
      expect(() => k.run(k.fallocate({ file: 'fd', mode, offset: 0, length: PAGE })), mode).toThrow(/EOPNOTSUPP.*shmem_fallocate/);
    }
    k.run(k.fallocate({ file: 'fd', offset: 0, length: PAGE }));
  });
});
