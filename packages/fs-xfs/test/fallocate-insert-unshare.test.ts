import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { fsSequence, mappedWrittenFile, testArch } from '@daxlab/core/testing';

// FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE and FALLOC_FL_WRITE_ZEROES on a DAX file of
// XFS (xfs_file_fallocate; xfs_falloc_insert_range / xfs_falloc_unshare_range from v6.12), and
// the mode checks vfs_fallocate() makes first.

const PAGE = 4096;

/** XFS on pmem with a 16 KiB file `a` (blocks 0-3, first fit), mapped shared as `m`, page p holding `A<p>`. */
function boot(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  return { k: mappedWrittenFile(k, 4), m };
}

/** page index -> block of a file, in page order */
const blockMap = (k: Kernel, file: string): [number, number][] => [...k.file(file).inode.blocks].sort((x, y) => x[0] - y[0]);
const core = (seen: string[]): string[] => seen.filter((s) => !['unmap', 'scan', 'delete-entry', 'free-block'].includes(s));
const readPages = (k: Kernel, map: string, pages: number[]): string[] => pages.map((page) => k.run(k.read({ map, page })));

describe('XFS insert range: a hole at the offset, the extents above shifted up, i_size grown', () => {
  it('inserting 2 pages at page 1 of a 4-page file: page 0 keeps block 0, blocks 1-3 move to pages 3-5, pages 1-2 are a hole', () => {
    const { k } = boot('v6.6');
    const seen = fsSequence(k);
    k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset: PAGE, length: 2 * PAGE }));
    expect(core(seen)).toEqual([
      'xfs_ilock(IOLOCK_EXCL)', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'inode_dio_wait',
      // i_size first (xfs_vn_setattr_size -> xfs_setattr_size), then the shift
      'xfs_falloc_setsize', 'inode_dio_wait', 'truncate_setsize',
      'xfs_insert_file_space', 'xfs_prepare_shift', 'xfs_bmap_insert_extents',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)',
    ]);
    // era (b): the break only unmapped; xfs_prepare_shift's flush from the block before the
    // offset (page 0) to EOF deleted the DAX entries
    expect(seen).toContain('delete-entry');
    expect(k.file('a').inode.size).toBe(6 * PAGE);
    expect(blockMap(k, 'a')).toEqual([[0, 0], [3, 1], [4, 2], [5, 3]]);
    // each moved block keeps its owner file and takes its new index (blocks.move)
    const fs = k.file('a').fs;
    expect([1, 2, 3].map((b) => fs.ownerOfPfn(k.device('pmem0').dataPfn + b))).toEqual(['a[3]', 'a[4]', 'a[5]']);
    k.run(k.mmap({ file: 'a', length: 6 * PAGE, shared: true, as: 'm6' }));
    // pages 1 and 2 read as a hole (the zero page); the data followed its blocks
    expect(readPages(k, 'm6', [0, 1, 2, 3, 4, 5])).toEqual(['A0', '', '', 'A1', 'A2', 'A3']);
  });

  it('a write into the inserted hole allocates a new block there (first fit: block 4) and leaves the shifted pages alone', () => {
    const { k } = boot('v6.15');
    k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset: 0, length: PAGE }));
    k.run(k.mmap({ file: 'a', length: 5 * PAGE, shared: true, write: true, as: 'm5' }));
    k.run(k.write({ map: 'm5', page: 0, data: 'N' }));
    expect(blockMap(k, 'a')).toEqual([[0, 4], [1, 0], [2, 1], [3, 2], [4, 3]]);
    expect(readPages(k, 'm5', [0, 1, 4])).toEqual(['N', 'A0', 'A3']);
  });

  it('preallocation past EOF (KEEP_SIZE) beyond the grown size is freed by xfs_prepare_shift (xfs_free_eofblocks)', () => {
    const { k } = boot('v6.15');
    // pages 4-7 preallocated past EOF: unwritten blocks 4-7
    k.run(k.fallocate({ file: 'a', offset: 4 * PAGE, length: 4 * PAGE, keepSize: true }));
    expect(blockMap(k, 'a').map(([i]) => i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset: PAGE, length: PAGE }));
    // the size grew to 5 pages first, so post-EOF means pages 5-7 (blocks 5-7 freed); page 4's
    // block 4 stays and is shifted to page 5, past the new EOF, with the data pages 1-3 -> 2-4
    expect(k.file('a').inode.size).toBe(5 * PAGE);
    expect(blockMap(k, 'a')).toEqual([[0, 0], [2, 1], [3, 2], [4, 3], [5, 4]]);
  });

  it('refuses a misaligned range, an offset at or past EOF (EINVAL) and a size past s_maxbytes (EFBIG), after the wait', () => {
    // XFS s_maxbytes is MAX_LFS_FILESIZE (2^63 - 1; the double rounds it to 2^63): inserting
    // 2^63 - 12288 bytes at 0 passes vfs_fallocate (0 + len <= s_maxbytes) but the grown file
    // (16 KiB + len) does not fit: xfs_falloc_insert_range's EFBIG
    const huge = 2 ** 63 - 3 * PAGE;
    for (const [offset, length, errno] of [[2048, PAGE, 'EINVAL'], [0, 6144, 'EINVAL'], [4 * PAGE, PAGE, 'EINVAL'], [8 * PAGE, PAGE, 'EINVAL'], [0, huge, 'EFBIG']] as const) {
      const { k } = boot('v6.15');
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset, length })), `${offset}+${length}`).toThrow(new RegExp(errno));
      expect(blockMap(k, 'a').map(([, b]) => b)).toEqual([0, 1, 2, 3]);
      expect(k.file('a').inode.size).toBe(4 * PAGE);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset, length })), `${offset}+${length} pinned`).toThrow(/idle/);
    }
  });

  it('waits for a pinned page in every release ordering; with the entries deleted before the wait the shift moves the pinned block under the DMA', () => {
    const { k, m } = boot('v6.6');
    k.run(k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    expect(() => k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset: 0, length: PAGE }))).toThrow(/idle/);
    expect(m.violations).toEqual([]);
    const bad = boot('v6.6', { 'dax-delete-entries-before-wait': true });
    bad.k.run(bad.k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    bad.k.run(bad.k.fallocate({ file: 'a', mode: 'insert-range', offset: 0, length: PAGE }));
    // nothing is freed (an insert frees only post-EOF blocks): block 1 now backs page 2 of a
    bad.k.run(bad.k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(bad.m.violations.map((v) => v.invariant)).toEqual(['dma-to-foreign-block']);
  });
});

describe('XFS unshare range of a reflinked DAX file (dax_file_unshare)', () => {
  /** `a` cloned to `c`: both files' pages 0-3 on the shared blocks 0-3 (refcount 2 each). */
  function cloned(version: string): { k: Kernel; m: Monitor } {
    const b = boot(version);
    b.k.run(b.k.reflink({ from: 'a', to: 'c' }));
    return b;
  }
  const owners = (k: Kernel, block: number): string | null => k.file('a').fs.ownerOfPfn(k.device('pmem0').dataPfn + block);

  it('v6.6: pages 1-2 of a get private copies (new blocks 4-5, first fit) with the data; c keeps blocks 1-2, now only its own', () => {
    const { k } = cloned('v6.6');
    const seen = fsSequence(k, { free: 'free-block', alloc: 'alloc-block' });
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: PAGE, length: 2 * PAGE, keepSize: true }));
    expect(core(seen)).toEqual([
      'xfs_ilock(IOLOCK_EXCL)', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'inode_dio_wait',
      'xfs_reflink_unshare', 'inode_dio_wait', 'dax_file_unshare',
      // one extent: blocks 1-2 are contiguous and both shared
      'xfs_reflink_allocate_cow', 'alloc-block', 'dax_unshare_iter', 'xfs_reflink_end_cow',
      'xfs_alloc_file_space', 'xfs_iunlock(MMAPLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)',
    ]);
    expect(blockMap(k, 'a')).toEqual([[0, 0], [1, 4], [2, 5], [3, 3]]);
    expect(blockMap(k, 'c')).toEqual([[0, 0], [1, 1], [2, 2], [3, 3]]);
    // the blocks outside the range stay shared; the old ones in it lose a's share (refcount 2 -> 1)
    expect([0, 1, 2, 3, 4, 5].map((b) => owners(k, b))).toEqual(['a[0]+c[0]', 'c[1]', 'c[2]', 'a[3]+c[3]', 'a[1]', 'a[2]']);
    expect(k.file('a').inode.size).toBe(4 * PAGE);
    // the copies hold the data; a write to a's page 1 is in place now and c does not see it
    expect(readPages(k, 'm', [0, 1, 2, 3])).toEqual(['A0', 'A1', 'A2', 'A3']);
    k.run(k.write({ map: 'm', page: 1, data: 'W' }));
    expect(blockMap(k, 'a')[1]).toEqual([1, 4]);
    k.run(k.mmap({ file: 'c', length: 4 * PAGE, shared: true, as: 'mc' }));
    expect(readPages(k, 'mc', [0, 1, 2, 3])).toEqual(['A0', 'A1', 'A2', 'A3']);
  });

  it('v6.1: dax_unshare_iter() returns 0 for the first shared extent, so the CoW is cancelled and the walk ends: nothing is unshared', () => {
    const { k } = cloned('v6.1');
    const seen = fsSequence(k, { free: 'free-block', alloc: 'alloc-block' });
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 0, length: 4 * PAGE }));
    // the CoW blocks 4-7 are allocated, filled and freed again (xfs_reflink_cancel_cow_range)
    expect(core(seen).slice(4, 11)).toEqual(['xfs_reflink_unshare', 'inode_dio_wait', 'dax_file_unshare', 'xfs_reflink_allocate_cow', 'alloc-block', 'dax_unshare_iter', 'xfs_reflink_cancel_cow_range']);
    expect(seen).toContain('free-block');
    expect(blockMap(k, 'a')).toEqual([[0, 0], [1, 1], [2, 2], [3, 3]]);
    expect([0, 1, 2, 3].map((b) => owners(k, b))).toEqual(['a[0]+c[0]', 'a[1]+c[1]', 'a[2]+c[2]', 'a[3]+c[3]']);
  });

  it('holes and unwritten extents are never shared: a hole is skipped by the unshare and then preallocated unwritten', () => {
    const { k } = boot('v6.15');
    // a's page 1 punched (block 1 free) before the clone: c has the same hole
    k.run(k.punchHole({ file: 'a', offset: PAGE, length: PAGE }));
    k.run(k.reflink({ from: 'a', to: 'c' }));
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 0, length: 4 * PAGE, keepSize: true }));
    // page 0 (one-block extent): CoW block = the lowest free, block 1; pages 2-3 (blocks 2-3):
    // blocks 4-5; then xfs_alloc_file_space gives the hole at page 1 an unwritten block 6
    expect(blockMap(k, 'a')).toEqual([[0, 1], [1, 6], [2, 4], [3, 5]]);
    expect(k.file('a').fs.isUnwritten(k.file('a').inode, 1)).toBe(true);
    expect(blockMap(k, 'c')).toEqual([[0, 0], [2, 2], [3, 3]]);
    expect([0, 2, 3].map((b) => owners(k, b))).toEqual(['c[0]', 'c[2]', 'c[3]']);
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, as: 'ma' }));
    expect(readPages(k, 'ma', [0, 1, 2, 3])).toEqual(['A0', '', 'A2', 'A3']);
  });

  it('without KEEP_SIZE a range past EOF grows the file; the unshare itself stops at i_size', () => {
    const { k } = cloned('v6.15');
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 3 * PAGE, length: 2 * PAGE }));
    // page 3 (block 3, shared) copied to block 4; page 4 is past EOF: a hole, preallocated (block 5)
    expect(blockMap(k, 'a')).toEqual([[0, 0], [1, 1], [2, 2], [3, 4], [4, 5]]);
    expect(k.file('a').inode.size).toBe(5 * PAGE);
    expect(owners(k, 3)).toBe('c[3]');
  });

  it('v6.6 after a munmap (the mapping_mapped() early return): neither the clone nor the unshare waits, and the pinned block ends up c\'s alone', () => {
    const { k, m } = boot('v6.6');
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.reflink({ from: 'a', to: 'c' }));
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 0, length: 4 * PAGE, keepSize: true }));
    // a's four pages moved to the CoW blocks 4-7; the pinned block 0 is c's page 0 only
    expect(blockMap(k, 'a').map(([, b]) => b)).toEqual([4, 5, 6, 7]);
    expect(owners(k, 0)).toBe('c[0]');
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(m.violations.map((v) => v.message)).toEqual([expect.stringMatching(/pinned as a\[0\], now c\[0\]/)]);
  });

  it('waits for a pinned page of the file first (xfs_break_layouts, whole file)', () => {
    const { k, m } = cloned('v6.15');
    k.run(k.gup({ map: 'm', page: 3, write: true, as: 'dma' }, true));
    expect(() => k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 0, length: PAGE }))).toThrow(/idle/);
    expect(m.violations).toEqual([]);
  });

  it('a file that was never cloned: nothing to unshare, the range is preallocated as with mode 0 (v5.10: DAX files cannot be cloned)', () => {
    const { k } = boot('v5.10');
    k.run(k.punchHole({ file: 'a', offset: 0, length: PAGE }));
    const seen = fsSequence(k);
    k.run(k.fallocate({ file: 'a', mode: 'unshare-range', offset: 0, length: 2 * PAGE, keepSize: true }));
    expect(core(seen)).not.toContain('dax_file_unshare');
    expect(blockMap(k, 'a')).toEqual([[0, 0], [1, 1], [2, 2], [3, 3]]);
    expect(k.file('a').fs.isUnwritten(k.file('a').inode, 0)).toBe(true);
  });
});

describe('vfs_fallocate mode checks and FALLOC_FL_WRITE_ZEROES', () => {
  it('KEEP_SIZE with collapse or insert range: EINVAL up to v6.11, EOPNOTSUPP from v6.12, before the filesystem sees it', () => {
    for (const [version, errno] of [['v6.6', 'EINVAL'], ['v6.15', 'EOPNOTSUPP'], ['latest', 'EOPNOTSUPP']] as const) {
      for (const mode of ['collapse-range', 'insert-range'] as const) {
        const { k } = boot(version);
        k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
        const seen = fsSequence(k);
        expect(() => k.run(k.fallocate({ file: 'a', mode, offset: 0, length: PAGE, keepSize: true })), `${version} ${mode}`).toThrow(new RegExp(`${errno}.*vfs_fallocate`));
        expect(seen).toEqual([]);
      }
    }
  });

  it('WRITE_ZEROES: an unknown mode bit before v6.17 (vfs_fallocate), not an XFS mode after (EOPNOTSUPP before any lock)', () => {
    for (const [version, where] of [['v6.15', 'v6.17'], ['latest', 'XFS_FALLOC_FL_SUPPORTED']] as const) {
      const { k } = boot(version);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      const seen = fsSequence(k);
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'write-zeroes', offset: 0, length: PAGE })), version).toThrow(new RegExp(`EOPNOTSUPP.*${where}`));
      expect(seen).toEqual([]);
    }
    // v6.17+ with KEEP_SIZE: vfs_fallocate refuses the combination itself
    const { k } = boot('latest');
    expect(() => k.run(k.fallocate({ file: 'a', mode: 'write-zeroes', offset: 0, length: PAGE, keepSize: true }))).toThrow(/EOPNOTSUPP.*vfs_fallocate/);
  });

  it('the range and the mode are checked before vfs_fallocate asks for ->fallocate (secretmem has none)', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.memfdSecret({ file: 's', size: PAGE }));
    expect(() => k.run(k.fallocate({ file: 's', length: 0 }))).toThrow(/EINVAL.*len > 0/);
    expect(() => k.run(k.fallocate({ file: 's', mode: 'insert-range', length: PAGE, keepSize: true }))).toThrow(/EINVAL.*vfs_fallocate up to v6.11/);
    expect(() => k.run(k.fallocate({ file: 's', length: PAGE }))).toThrow(/EOPNOTSUPP.*no ->fallocate/);
  });

  it('a range past s_maxbytes is EFBIG in vfs_fallocate', () => {
    const { k } = boot('v6.15');
    expect(() => k.run(k.fallocate({ file: 'a', offset: 2 ** 63, length: PAGE }))).toThrow(/EFBIG.*vfs_fallocate/);
  });
});
