import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { fsSequence, mappedWrittenFile, testArch } from '@daxlab/core/testing';

// FALLOC_FL_INSERT_RANGE on a DAX file of ext4 (ext4_insert_range, fs/ext4/extents.c), with its
// own locks up to v6.14 and under ext4_fallocate()'s locks and break-layouts from v6.15; and the
// modes ext4 does not take (UNSHARE_RANGE; WRITE_ZEROES without unmap write zeroes).

const PAGE = 4096;

/** ext4 on pmem with a 16 KiB file `a` (blocks 0-3, first fit), mapped shared as `m`, page p holding `A<p>`. */
function boot(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  return { k: mappedWrittenFile(k, 4), m };
}

const blockMap = (k: Kernel): [number, number][] => [...k.file('a').inode.blocks].sort((x, y) => x[0] - y[0]);
const core = (seen: string[]): string[] => seen.filter((s) => !['unmap', 'scan', 'delete-entry'].includes(s));
const insert = (k: Kernel, offset: number, length: number): void => k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset, length }));

describe('ext4 insert range', () => {
  it('v6.6: inode_lock, the checks, then the fault lock and the break; blocks 2-3 move to pages 3-4, page 2 is a hole', () => {
    const { k } = boot('v6.6');
    const seen = fsSequence(k);
    insert(k, 2 * PAGE, PAGE);
    expect(core(seen)).toEqual([
      'ext4_insert_range', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts',
      'truncate_pagecache', 'i_size_write', 'ext4_ext_shift_extents(SHIFT_RIGHT)', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(seen).not.toContain('free-block');
    expect(blockMap(k)).toEqual([[0, 0], [1, 1], [3, 2], [4, 3]]);
    expect(k.file('a').inode.size).toBe(5 * PAGE);
    k.run(k.mmap({ file: 'a', length: 5 * PAGE, shared: true, as: 'm5' }));
    expect([0, 1, 2, 3, 4].map((page) => k.run(k.read({ map: 'm5', page })))).toEqual(['A0', 'A1', '', 'A2', 'A3']);
  });

  it('v6.15: ext4_fallocate breaks layouts first, then ext4_insert_range checks and shifts', () => {
    const { k } = boot('v6.15');
    const seen = fsSequence(k);
    insert(k, 0, 2 * PAGE);
    expect(core(seen)).toEqual([
      'ext4_fallocate', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts',
      'ext4_insert_range', 'truncate_pagecache', 'i_size_write', 'ext4_ext_shift_extents(SHIFT_RIGHT)', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(blockMap(k)).toEqual([[2, 0], [3, 1], [4, 2], [5, 3]]);
    expect(k.file('a').inode.size).toBe(6 * PAGE);
  });

  it('refusals (misaligned, offset at or past EOF: EINVAL; past s_maxbytes: EFBIG): up to v6.14 before the wait, from v6.15 after it', () => {
    // ext4 s_maxbytes with 4 KiB blocks: (2^32 - 1) blocks = 17592186040320 bytes. Inserting
    // s_maxbytes - 16 KiB + 4 KiB at 0 passes vfs_fallocate (0 + len <= s_maxbytes) but the
    // grown file would be one page too long
    const big = (2 ** 32 - 1) * PAGE - 4 * PAGE + PAGE;
    for (const [offset, length, errno] of [[2048, PAGE, 'EINVAL'], [0, 6144, 'EINVAL'], [4 * PAGE, PAGE, 'EINVAL'], [0, big, 'EFBIG']] as const) {
      for (const [version, pinned] of [['v6.6', new RegExp(errno)], ['v6.15', /idle/]] as const) {
        const { k } = boot(version);
        expect(() => insert(k, offset, length), `${version} ${offset}+${length}`).toThrow(new RegExp(errno));
        expect(blockMap(k).map(([, b]) => b)).toEqual([0, 1, 2, 3]);
        k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
        expect(() => insert(k, offset, length), `${version} ${offset}+${length} pinned`).toThrow(pinned);
      }
    }
    // one byte further than s_maxbytes already fails in vfs_fallocate
    const { k } = boot('v6.15');
    expect(() => insert(k, PAGE, (2 ** 32 - 1) * PAGE)).toThrow(/EFBIG.*vfs_fallocate/);
  });

  it('the seed-004 misordering moves the pinned block to another offset under the DMA; nothing is freed', () => {
    const { k, m } = boot('v6.6', { 'dax-delete-entries-before-wait': true });
    k.run(k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    insert(k, 0, PAGE);
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(m.violations.map((v) => v.invariant)).toEqual(['dma-to-foreign-block']);
  });
});

describe('modes ext4 does not take', () => {
  it('UNSHARE_RANGE is in no release mode mask; WRITE_ZEROES is v6.17+ and needs unmap write zeroes, which pmem lacks: EOPNOTSUPP before any lock', () => {
    for (const [version, mode, why] of [['v6.6', 'unshare-range', 'ext4_fallocate'], ['latest', 'unshare-range', 'ext4_fallocate'], ['v6.15', 'write-zeroes', 'v6.17'], ['latest', 'write-zeroes', 'bdev_write_zeroes_unmap']] as const) {
      const { k } = boot(version);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      const seen = fsSequence(k);
      expect(() => k.run(k.fallocate({ file: 'a', mode, offset: 0, length: PAGE })), `${version} ${mode}`).toThrow(new RegExp(`EOPNOTSUPP.*${why}`));
      expect(seen, `${version} ${mode}`).toEqual([]);
    }
  });
});
