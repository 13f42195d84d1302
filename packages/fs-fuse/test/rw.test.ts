import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { mappedWrittenFile, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { fuse } from '../src/index.js';

// pread(2) / pwrite(2) of a virtio-fs DAX file (core fs/rw.ts): fuse_dax_read_iter and
// fuse_dax_write_iter run dax_iomap_rw() over the DAX window (fuse_iomap_begin sets up a range);
// a write that extends the file is fuse_dax_direct_write(), a FUSE_WRITE to the server, which the
// model refuses as not modelled.

const PAGE = 4096;

function boot(): Kernel {
  const k = mappedWrittenFile(createKernel({ arch: testArch(), fs: fuse(), driver: nvdimm(), kernel: 'v6.6' }), 2, 'H');
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  return k;
}

describe('FUSE DAX read(2) / write(2)', () => {
  it('pread copies the file through the window into the buffer; pwrite inside i_size lands where the mapping sees it', () => {
    const k = boot();
    expect(k.run(k.pread({ file: 'a', length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('H1');
    k.run(k.write({ map: 'buf', page: 0, data: 'new' }));
    expect(k.run(k.pwrite({ file: 'a', offset: PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('new');
    expect(k.files.get('a')!.inode.size).toBe(2 * PAGE);
  });

  it('a write past EOF (file_extending_write) is FUSE_WRITE to the server: not modelled', () => {
    const k = boot();
    try {
      k.run(k.pwrite({ file: 'a', offset: PAGE, length: 2 * PAGE, map: 'buf' }));
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).unsupported).toMatch(/fuse_dax_direct_write/);
    }
  });
});
