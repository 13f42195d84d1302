import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { fsSequence, testArch } from '../../core/test/fixtures.js';

const MiB = 1024 * 1024;

/** XFS on pmem with a 16 KiB file `a`, mapped shared and written page by page (4 PTE entries). */
function boot(version: string, features: Record<string, unknown> = {}): Kernel {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version, features });
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: 16384 }));
  k.run(k.mmap({ file: 'a', length: 16384, shared: true, write: true, as: 'm' }));
  for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: p, data: `A${p}` }));
  return k;
}

describe('XFS truncate ordering: xfs_vn_setattr -> xfs_break_layouts -> xfs_setattr_size', () => {
  it('v5.10: MMAPLOCK, break layouts only scans, truncate_setsize deletes the entries, then xfs_itruncate_extents frees', () => {
    const k = boot('v5.10');
    const seen = fsSequence(k);
    k.run(k.truncate({ file: 'a', size: 0 }));
    // xfs_break_dax_layouts() (<= v6.14) unmaps and scans; the entries go in truncate_pagecache()
    expect(seen).toEqual([
      'inode_lock', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'unmap', 'scan',
      'inode_dio_wait', 'truncate_setsize', 'delete-entry', 'xfs_itruncate_extents', 'free-block',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'inode_unlock',
    ]);
    expect(k.warnings).toEqual([]);
  });

  it('v6.15: dax_break_layout_inode() deletes every entry inside xfs_break_layouts, before the size changes', () => {
    const k = boot('v6.15');
    const seen = fsSequence(k);
    k.run(k.truncate({ file: 'a', size: 8192 }));
    expect(seen).toEqual([
      'inode_lock', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'unmap', 'scan', 'delete-entry',
      'inode_dio_wait', 'truncate_setsize', 'xfs_itruncate_extents', 'free-block',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'inode_unlock',
    ]);
    // the whole file's entries went, not only those past EOF: four deletes, two blocks freed
    const { inode } = k.file('a');
    expect(inode.mapping.entries.size).toBe(0);
    expect([...inode.blocks.keys()]).toEqual([0, 1]);
    // truncate_inode_pages_range() found nothing left: no WARN
    expect(k.warnings).toEqual([]);
  });

  it('a pinned page: the wait drops MMAPLOCK (xfs_wait_dax_page) and keeps IOLOCK; no block is freed', () => {
    for (const version of ['v5.10', 'v6.6', 'v6.15']) {
      const k = boot(version);
      k.run(k.gup({ map: 'm', page: 2, write: true, as: 'dma' }, true));
      const seen = fsSequence(k);
      const op = k.truncate({ file: 'a', size: 0 });
      for (let r = op.next(); !r.done && !(r.value.kind === 'block' && !r.value.ready()); r = op.next());
      expect(seen, version).toEqual(['inode_lock', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'unmap', 'busy', 'wait']);
      const { inode } = k.file('a');
      expect(inode.mmaplock.heldExclusive, version).toBe(false);
      expect(inode.iolock.heldExclusive, version).toBe(true);
      expect(k.blockFree({ file: 'a', page: 2 }), version).toBe(false);
    }
  });
});

describe('XFS punch hole ordering: xfs_file_fallocate -> xfs_free_file_space', () => {
  it('v6.6: both locks, a whole-file break, then only the hole: its entries, then its whole blocks', () => {
    const k = boot('v6.6');
    const seen = fsSequence(k);
    // punch 1.5 pages from the middle of page 1: page 1 is whole inside, page 2 only half
    k.run(k.punchHole({ file: 'a', offset: 4096, length: 6144 }));
    expect(seen).toEqual([
      'xfs_ilock(IOLOCK_EXCL)', 'xfs_ilock(MMAPLOCK_EXCL)', 'xfs_break_layouts', 'unmap', 'scan',
      'inode_dio_wait', 'xfs_flush_unmap_range', 'delete-entry', 'xfs_free_file_space', 'free-block',
      'xfs_iunlock(MMAPLOCK_EXCL)', 'xfs_iunlock(IOLOCK_EXCL)',
    ]);
    const { inode } = k.file('a');
    // xfs_flush_unmap_range rounds out to whole pages (1 and 2); only page 1's block is freed
    expect([...inode.mapping.entries.keys()].sort()).toEqual([0, 3]);
    expect([...inode.blocks.keys()].sort()).toEqual([0, 2, 3]);
  });
});

describe('XFS reflink ordering: xfs_file_remap_range -> xfs_reflink_remap_prep', () => {
  it('v6.6: both inodes locked, the source\'s DAX layouts broken, then the extents shared', () => {
    const k = boot('v6.6');
    const seen = fsSequence(k);
    k.run(k.reflink({ from: 'a', to: 'b' }));
    expect(seen).toEqual([
      'xfs_iolock_two_inodes_and_break_layout', 'xfs_mmaplock_two_inodes_and_break_dax_layout', 'unmap', 'scan', 'xfs_reflink_remap_blocks',
    ]);
    const a = k.file('a').inode;
    const b = k.file('b').inode;
    expect([...b.blocks]).toEqual([...a.blocks]);
    expect(b.size).toBe(a.size);
  });

  it('v5.10: the locks are taken, then DAX files are refused with EINVAL and no file b exists', () => {
    const k = boot('v5.10');
    const seen = fsSequence(k);
    expect(() => k.run(k.reflink({ from: 'a', to: 'b' }))).toThrow(KernelError);
    expect(seen).toEqual(['xfs_iolock_two_inodes_and_break_layout']);
    expect(() => k.file('b')).toThrow(/no file 'b'/);
    const a = k.file('a').inode;
    expect(a.iolock.heldExclusive || a.mmaplock.heldExclusive).toBe(false);
  });
});
