import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { mappedWrittenFile, pfnMappedAt, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';

// XFS on a read-only remount (core fs/daxmode.ts remount) and the COW fault xfstests generic/452
// runs there: xfs_filemap_fault() took any FAULT_FLAG_WRITE fault on a DAX file for a write up to
// v5.8 (sb_start_pagefault, file_update_time), xfs_is_write_fault() from v5.9 (b17164e258e3).

const PAGE = 4096;

/** pmem0 with file `a` of 4 pages written A0..A3 through the shared mapping `m`, which is then unmapped. */
function boot(version: string): Kernel {
  const k = mappedWrittenFile(createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version }), 4);
  k.run(k.munmap({ map: 'm' }));
  return k;
}

function stepsOf(k: Kernel): string[] {
  const steps: string[] = [];
  k.bus.all().subscribe((e) => {
    if (e.type === 'fs.step') steps.push(String((e.data as { step: string }).step));
  });
  return steps;
}

describe('XFS: a COW fault of a DAX file and the file times', () => {
  it('v5.4: the COW fault updates the file times on a read-write mount (the objtool rebuild of b17164e258e3), quietly not on a read-only one', () => {
    const k = boot('v5.4');
    const steps = stepsOf(k);
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, write: true, as: 'p' }));
    k.run(k.write({ map: 'p', page: 0, data: 'X' }));
    expect(steps).toEqual(['file_update_time']);
    k.run(k.remount({ device: 'pmem0', ro: true }));
    // __mnt_want_write_file() fails, file_update_time() returns 0 and the fault goes on
    k.run(k.write({ map: 'p', page: 1, data: 'Y' }));
    expect(steps).toEqual(['file_update_time']);
    expect(k.run(k.read({ map: 'p', page: 1 }))).toBe('Y');
  });

  it('v5.10 on: xfs_is_write_fault() is false for a private mapping: no time update, and the COW fault works read-only', () => {
    for (const v of ['v5.10', 'v6.6', 'latest']) {
      const k = boot(v);
      const steps = stepsOf(k);
      k.run(k.mmap({ file: 'a', length: 4 * PAGE, write: true, as: 'p' }));
      k.run(k.write({ map: 'p', page: 0, data: 'X' }));
      k.run(k.remount({ device: 'pmem0', ro: true }));
      k.run(k.write({ map: 'p', page: 1, data: 'Y' }));
      expect(steps).toEqual([]);
      // the copies are the process's; the file's blocks hold what was written before
      const { fs, inode } = k.file('a');
      expect(pfnMappedAt(k, 'p', 1)).not.toBe(fs.blocks.pfnOf(inode.blocks.get(1)!));
      expect(k.pages.data.get(fs.blocks.pfnOf(inode.blocks.get(1)!))).toBe('A1');
    }
  });
});

describe('XFS read-only: reflink and EROFS', () => {
  it('FICLONE creates its destination: EROFS on the read-only mount (v6.1, where DAX files clone)', () => {
    const k = boot('v6.1');
    k.run(k.remount({ device: 'pmem0', ro: true }));
    let code = 'ok';
    try {
      k.run(k.reflink({ from: 'a', to: 'b' }));
    } catch (e) {
      code = e instanceof KernelError ? e.code : 'thrown';
    }
    expect(code).toBe('EROFS');
    k.run(k.remount({ device: 'pmem0', ro: false }));
    k.run(k.reflink({ from: 'a', to: 'b' }));
    expect(k.file('b').inode.blocks.get(0)).toBe(k.file('a').inode.blocks.get(0));
  });
});
