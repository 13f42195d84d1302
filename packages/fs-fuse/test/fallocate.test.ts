import { createKernel, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { fuse } from '../src/index.js';
import { fsSequence, mappedWrittenFile, testArch } from '@daxlab/core/testing';

// fuse_file_fallocate() modes besides punch hole on a virtio-fs DAX file.

const PAGE = 4096;

function boot(version: string): Kernel {
  // probe without a driver on a FUSE kernel brings up the virtio-fs DAX window
  return mappedWrittenFile(createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: version }), 4, 'D');
}

describe('fuse_file_fallocate: zero range, collapse range, allocate', () => {
  it('COLLAPSE_RANGE is outside the mode mask in every release; ZERO_RANGE before v5.14', () => {
    for (const version of ['v5.10', 'v6.6', 'latest']) {
      const k = boot(version);
      const seen = fsSequence(k);
      expect(() => k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: 0, length: PAGE })), version).toThrow(/EOPNOTSUPP/);
      expect(seen, version).toEqual([]); // refused before any lock
    }
    expect(() => { const k = boot('v5.10'); k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: 0, length: PAGE, keepSize: true })); }).toThrow(/EOPNOTSUPP.*v5\.14/);
  });

  it('INSERT_RANGE and UNSHARE_RANGE are outside the mode mask in every release, WRITE_ZEROES (v6.17+) too: EOPNOTSUPP before any lock', () => {
    for (const [version, mode] of [['v5.10', 'insert-range'], ['latest', 'insert-range'], ['v6.6', 'unshare-range'], ['latest', 'unshare-range'], ['latest', 'write-zeroes']] as const) {
      const k = boot(version);
      const seen = fsSequence(k);
      expect(() => k.run(k.fallocate({ file: 'a', mode, offset: 0, length: PAGE })), `${version} ${mode}`).toThrow(/EOPNOTSUPP.*fuse_file_fallocate/);
      expect(seen, `${version} ${mode}`).toEqual([]);
      expect(k.file('a').inode.size).toBe(4 * PAGE);
    }
  });

  it('zero range (v5.14+): break layouts, FUSE_FALLOCATE, truncate_pagecache_range; the zeroed host pages read as zeroes', () => {
    const k = boot('v6.15');
    const seen = fsSequence(k, { free: 'free-range', alloc: 'alloc-range' });
    k.run(k.fallocate({ file: 'a', mode: 'zero-range', offset: PAGE, length: 2 * PAGE, keepSize: true }));
    expect(seen).toEqual([
      'inode_lock', 'filemap_invalidate_lock', 'fuse_dax_break_layouts(0, -1)', 'unmap', 'scan', 'delete-entry',
      'FUSE_FALLOCATE(ZERO_RANGE|KEEP_SIZE, 4096, 8192)', 'truncate_pagecache_range', 'filemap_invalidate_unlock', 'inode_unlock',
    ]);
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['D0', '', '', 'D3']);
  });

  it('plain allocation blocks faults and breaks layouts only when the file may grow (no KEEP_SIZE)', () => {
    for (const keepSize of [true, false]) {
      const k = boot('v6.6');
      const seen = fsSequence(k);
      k.run(k.fallocate({ file: 'a', offset: 4 * PAGE, length: PAGE, keepSize }));
      expect(seen.some((s) => s.startsWith('fuse_dax_break_layouts')), `keepSize ${keepSize}`).toBe(!keepSize);
      expect(k.file('a').inode.size).toBe(keepSize ? 4 * PAGE : 5 * PAGE);
    }
  });
});
