import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';

// pread(2) / pwrite(2) on ext4 (core fs/rw.ts): which i_rwsem mode each path takes (the first
// preemption point of the call is its lock), and the DAX write path's allocation and size.

const PAGE = 4096;
const MiB = 1024 * 1024;

function boot(version: string, dax: boolean): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax }));
  k.run(k.create({ file: 'f', size: 2 * PAGE }));
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  return k;
}

/** The preemption point a call reaches first: the lock it takes (down_read / down_write of f's i_rwsem). */
function firstLock(k: Kernel, call: 'pread' | 'pwrite', a: { offset: number; length: number; direct?: boolean }): string {
  const op = k[call]({ file: 'f', map: 'buf', ...a });
  const y = op.next();
  if (y.done) return 'none (the call completed)';
  if (y.value.kind !== 'preempt') throw new Error(`${call}: blocked first`);
  return y.value.point;
}

describe('ext4 i_rwsem modes of read(2) and write(2)', () => {
  it('DAX: ext4_dax_read_iter inode_lock_shared, ext4_dax_write_iter inode_lock (O_DIRECT the same)', () => {
    const k = boot('v6.6', true);
    expect(firstLock(k, 'pread', { offset: 0, length: PAGE })).toBe('down_read(f:i_rwsem)');
    expect(firstLock(k, 'pwrite', { offset: 0, length: PAGE, direct: true })).toBe('down_write(f:i_rwsem)');
  });

  it('O_DIRECT without DAX: from v5.5 an overwrite of written blocks inside i_size shares the lock (ext4_dio_write_checks), an extending write does not; v5.4 always takes it exclusive', () => {
    const k = boot('v6.6', false);
    expect(firstLock(k, 'pwrite', { offset: 0, length: PAGE, direct: true })).toBe('down_read(f:i_rwsem)');
    expect(firstLock(k, 'pwrite', { offset: PAGE, length: 2 * PAGE, direct: true })).toBe('down_write(f:i_rwsem)');
    expect(firstLock(boot('v5.4', false), 'pwrite', { offset: 0, length: PAGE, direct: true })).toBe('down_write(f:i_rwsem)');
    expect(firstLock(k, 'pread', { offset: 0, length: PAGE, direct: true })).toBe('down_read(f:i_rwsem)');
  });

  it('buffered without DAX: generic_file_read_iter takes no i_rwsem (nothing to wait for: the call runs through), ext4_buffered_write_iter inode_lock', () => {
    const k = boot('v6.6', false);
    expect(firstLock(k, 'pread', { offset: 0, length: PAGE })).toBe('none (the call completed)');
    expect(firstLock(k, 'pwrite', { offset: 0, length: PAGE })).toBe('down_write(f:i_rwsem)');
  });
});

describe('ext4 DAX pwrite', () => {
  it('a write past EOF allocates the new pages (ext4_iomap_alloc) and extends i_size to its end; reading back through a new mapping sees the data', () => {
    const k = boot('v5.4', true);
    k.run(k.write({ map: 'buf', page: 0, data: 'x0' }));
    k.run(k.write({ map: 'buf', page: 1, data: 'x1' }));
    expect(k.run(k.pwrite({ file: 'f', offset: 3 * PAGE, length: 2 * PAGE, map: 'buf' }))).toBe(2 * PAGE);
    expect(k.files.get('f')!.inode.size).toBe(5 * PAGE);
    // page 2 was never written: a hole inside the file
    expect(k.blockFree({ file: 'f', page: 2 })).toBe(true);
    k.run(k.mmap({ file: 'f', length: 5 * PAGE, shared: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 2 }))).toBe('');
    expect(k.run(k.read({ map: 'm', page: 4 }))).toBe('x1');
  });

  it('s_maxbytes (2^32 - 1 blocks): a write crossing it is cut there, one starting at it is EFBIG (generic_write_check_limits)', () => {
    const k = boot('v6.6', true);
    const max = (2 ** 32 - 1) * PAGE;
    // 4 pages from max - 2 pages: 2 pages written, i_size = s_maxbytes
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'big' }));
    expect(k.run(k.pwrite({ file: 'f', offset: max - 2 * PAGE, length: 4 * PAGE, map: 'big' }))).toBe(2 * PAGE);
    expect(k.files.get('f')!.inode.size).toBe(max);
    try {
      k.run(k.pwrite({ file: 'f', offset: max, length: PAGE, map: 'big' }));
      throw new Error('no error');
    } catch (e) {
      expect(e instanceof KernelError ? e.code : e).toBe('EFBIG');
    }
  });

  it('a read(2) into a PROT_READ buffer cannot store anything: EFAULT', () => {
    const k = boot('v6.6', true);
    k.run(k.mprotect({ map: 'buf', write: false }));
    try {
      k.run(k.pread({ file: 'f', length: PAGE, map: 'buf' }));
      throw new Error('no error');
    } catch (e) {
      expect(e instanceof KernelError ? e.code : e).toBe('EFAULT');
    }
  });
});
