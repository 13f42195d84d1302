import { createKernel } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

// Insert and collapse range of a page-cache file on a DAX-capable mount (dax=inode, no
// FS_XFLAG_DAX), on both filesystems that have them: the cache is written back and dropped
// from the offset, and its size follows i_size (XFS through xfs_vn_setattr_size, ext4's
// i_size_write).

const PAGE = 4096;

describe('insert and collapse range of a page-cache file', () => {
  for (const [name, fs] of [['xfs', xfs], ['ext4', ext4]] as const) {
    it(`${name}: the written-back data follows the blocks; the file grows with the insert and shrinks with the collapse`, () => {
      const k = createKernel({ arch: testArch(), fs: fs(), driver: nvdimm(), kernel: 'v6.6' });
      k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0', dax: 'inode' }));
      k.run(k.create({ file: 'a', size: 4 * PAGE }));
      expect(k.file('a').inode.sDax).toBe(false);
      k.run(k.mmap({ file: 'a', length: 5 * PAGE, shared: true, write: true, as: 'm' }));
      for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: p, data: `C${p}` }));
      k.run(k.fallocate({ file: 'a', mode: 'insert-range', offset: PAGE, length: PAGE }));
      // C1-C3 now at pages 2-4 (their blocks moved up), page 1 a hole
      expect([0, 1, 2, 3, 4].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['C0', '', 'C1', 'C2', 'C3']);
      k.run(k.fallocate({ file: 'a', mode: 'collapse-range', offset: 0, length: PAGE }));
      expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'm', page })))).toEqual(['', 'C1', 'C2', 'C3']);
      // 4 pages again: page 4 of the mapping is past EOF
      expect(() => k.run(k.read({ map: 'm', page: 4 }))).toThrow(/SIGBUS/);
    });
  }
});
