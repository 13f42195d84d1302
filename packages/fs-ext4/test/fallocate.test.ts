import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4, type Ext4 } from '../src/index.js';
import { fsSequence, mappedWrittenFile, testArch } from '@daxlab/core/testing';

// fallocate(2) zero range, collapse range and plain allocation on a DAX file of ext4:
// ext4_zero_range / ext4_collapse_range (fs/ext4/extents.c), each with its own locks up to
// v6.14, under ext4_fallocate()'s locks and break-layouts from v6.15.

const PAGE = 4096;

/** ext4 on pmem with a 16 KiB file `a` (blocks 0-3, first fit), mapped shared, page p holding `A<p>`. */
function boot(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  return { k: mappedWrittenFile(k, 4), m };
}

const blocksOf = (k: Kernel): number[] => [...k.file('a').inode.blocks].sort((x, y) => x[0] - y[0]).map(([, b]) => b);
const core = (seen: string[]): string[] => seen.filter((s) => !['unmap', 'scan', 'delete-entry'].includes(s));
const zero = (k: Kernel, offset: number, length: number, keepSize = true): void => k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset, length, keepSize }));
const collapse = (k: Kernel, offset: number, length: number): void => k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset, length }));

describe('ext4 zero range: extents converted to unwritten in place', () => {
  it('v6.6: ext4_zero_range takes the fault lock and breaks layouts itself; no block is freed', () => {
    const { k } = boot('v6.6');
    const seen = fsSequence(k);
    zero(k, 0, 4 * PAGE);
    expect(core(seen)).toEqual([
      'ext4_zero_range', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts',
      'truncate_pagecache_range', 'ext4_alloc_file_blocks(CONVERT_UNWRITTEN)', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(seen).not.toContain('free-block');
    expect(blocksOf(k)).toEqual([0, 1, 2, 3]);
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['', '', '', '']);
  });

  it('v6.15: ext4_fallocate breaks layouts, then ext4_zero_range runs under its locks', () => {
    const { k } = boot('v6.15');
    const seen = fsSequence(k);
    zero(k, PAGE, 2 * PAGE);
    expect(core(seen)).toEqual([
      'ext4_fallocate', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts', 'ext4_zero_range',
      'truncate_pagecache_range', 'ext4_alloc_file_blocks(CONVERT_UNWRITTEN)', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['A0', '', '', 'A3']);
  });

  it('a range inside one block: v6.6 never breaks layouts (no whole block to zero), v6.15 waits for a pinned page', () => {
    for (const [version, waits] of [['v6.6', false], ['v6.15', true]] as const) {
      const { k } = boot(version);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      const seen = fsSequence(k);
      const call = (): void => zero(k, 1024, 1024);
      if (waits) expect(call, version).toThrow(/idle/);
      else expect(call, version).not.toThrow();
      expect(seen.includes('ext4_break_layouts'), version).toBe(waits);
    }
  });

  it('with the seed-004 misordering nothing is freed under the pin: no invariant breaks', () => {
    const { k, m } = boot('v6.6', { 'dax-delete-entries-before-wait': true });
    k.run(k.gup({ map: 'm', page: 1, write: true, as: 'dma' }, true));
    zero(k, 0, 4 * PAGE);
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(m.violations).toEqual([]);
    // the DMA reached a's own block, which is unwritten: the file reads zeroes there
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('');
  });

  it('without KEEP_SIZE the file grows to the end of the range (ext4_update_inode_size)', () => {
    const { k } = boot('v5.10');
    zero(k, 3 * PAGE, 2 * PAGE, false);
    expect(k.file('a').inode.size).toBe(5 * PAGE);
    expect(blocksOf(k)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('ext4 collapse range', () => {
  it('v6.6: frees the range, shifts the extents above down, shrinks i_size', () => {
    const { k } = boot('v6.6');
    const seen = fsSequence(k);
    collapse(k, PAGE, PAGE);
    expect(core(seen)).toEqual([
      'ext4_collapse_range', 'inode_lock', 'inode_dio_wait', 'filemap_invalidate_lock', 'ext4_break_layouts',
      'truncate_pagecache', 'ext4_ext_remove_space', 'free-block', 'ext4_ext_shift_extents', 'i_size_write', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect(blocksOf(k)).toEqual([0, 2, 3]);
    expect(k.file('a').inode.size).toBe(3 * PAGE);
    expect([0, 1, 2].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['A0', 'A2', 'A3']);
  });

  it('refusals: up to v6.14 before the break-layouts wait, from v6.15 after it', () => {
    for (const [offset, length] of [[2048, PAGE], [3 * PAGE, PAGE]] as const) {
      for (const [version, waits] of [['v5.10', false], ['v6.6', false], ['v6.15', true], ['latest', true]] as const) {
        const { k } = boot(version);
        k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
        const call = (): void => collapse(k, offset, length);
        expect(call, `${version} ${offset}+${length}`).toThrow(waits ? /idle/ : /EINVAL/);
        expect(blocksOf(k)).toEqual([0, 1, 2, 3]);
      }
    }
  });

  it('the seed-004 misordering frees the collapsed block under the pin and the next file gets it', () => {
    const { k, m } = boot('v6.15', { 'dax-delete-entries-before-wait': true });
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    collapse(k, 0, PAGE);
    k.run(k.create({ file: 'b', size: PAGE }));
    expect(k.file('b').inode.blocks.get(0)).toBe(0); // block 0, freed by the collapse, is the lowest free one
    k.run(k.dmaWrite({ pin: 'dma', data: 'X' }));
    expect(m.violations.map((v) => v.invariant).sort()).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
  });
});

describe('ext4 plain fallocate', () => {
  it('preallocates without the fault lock or a break: a pinned page does not hold it up', () => {
    for (const version of ['v6.6', 'v6.15']) {
      const { k } = boot(version);
      k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
      const seen = fsSequence(k);
      k.run(k.fallocate({ file: 'a', offset: 4 * PAGE, length: 2 * PAGE }));
      expect(seen, version).not.toContain('ext4_break_layouts');
      expect(k.file('a').inode.size).toBe(6 * PAGE);
      expect(blocksOf(k)).toEqual([0, 1, 2, 3, 4, 5]);
    }
  });
});

describe('ext4 fallocate of an inline-data file', () => {
  it('converts the inline data to a block first (ext4_convert_inline_data), then preallocates', () => {
    const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: false, inlineData: true }));
    k.run(k.create({ file: 'a', size: 10, inline: true }));
    const fs = k.device('pmem0').fs as Ext4;
    const { inode } = k.file('a');
    expect(fs.hasInlineData(inode)).toBe(true);
    const seen = fsSequence(k);
    k.run(k.fallocate({ file: 'a', offset: 0, length: 2 * PAGE }));
    expect(seen.slice(0, 2)).toEqual(['ext4_convert_inline_data', 'ext4_fallocate']);
    expect(fs.hasInlineData(inode)).toBe(false);
    // page 0 got its block from the conversion, page 1 from the preallocation
    expect([...inode.blocks.keys()].sort()).toEqual([0, 1]);
    expect(inode.size).toBe(2 * PAGE);
  });
});
