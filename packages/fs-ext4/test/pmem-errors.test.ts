import { createKernel, InputError, KernelError, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { errnoOf as errno, testArch } from '@daxlab/core/testing';

// ndctl test/pmem-errors.sh after its mkfs (dax-tests E34): ext4 mounted WITHOUT -o dax on
// nfit_test's 64 MiB raw namespace, a 16 KiB file written with O_DIRECT, and badblocks written by
// hand into /sys/block/pmemX/badblocks under its first block (badblocks_store(): pmem->bb only).
// What each command of the script asserts, through the kernel API:
// - `dd iflag=direct bs=4096 count=1` of the file fails: the bio's pmem_do_read() finds the sector
//   in pmem->bb (is_bad_pmem) and fails it with BLK_STS_IOERR, which the direct I/O returns: EIO;
// - dax-errors.c's memcpy from a MAP_SHARED mapping of page 0 gets one SIGBUS: filemap_fault()
//   reads the folio, the read fails, the synchronous re-read (page_not_uptodate) fails too:
//   VM_FAULT_SIGBUS;
// - `read sector len < badblocks` finds the range still there (nothing above cleared it);
// - `dd oflag=direct bs=512 seek=$sector count=$len` of /dev/pmemX succeeds, and pmem_do_write()
//   -> pmem_clear_poison() clears what it writes (the script's own check of that is commented out);
// - after the file is written again, one bad sector of its first block fails the 4 KiB read again.

const KiB = 1024;

function kernel(version: string): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probeRaw({ size: 64 << 20, as: 'pmem0' }));
  k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'random' }));
  for (let i = 0; i < 4; i++) k.run(k.write({ map: 'random', page: i, data: `r${i}` }));
  k.run(k.mmap({ anon: true, length: 4 * KiB, as: 'zeroes' }));
  k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'buf' }));
  // mkfs.ext4 -b 4096; mount (no dax option); dd if=/dev/urandom of=$MNT/$FILE bs=4096 count=4 oflag=direct
  k.run(k.mount({ device: 'pmem0', dax: false }));
  k.run(k.create({ file: 'image', size: 0, device: 'pmem0' }));
  expect(k.run(k.pwrite({ file: 'image', length: 16 * KiB, direct: true, map: 'random' }))).toBe(16 * KiB);
  return k;
}

/** The block device sector of page `page` of the file (what filefrag -v -b512 prints for it). */
function sectorOf(k: Kernel, page: number): number {
  const { fs, inode } = k.file('image');
  return fs.blocks.pfnOf(inode.blocks.get(page)!) * 8 - (k.rawNamespaces.get('pmem0')!.phys / 512);
}

describe('ndctl pmem-errors.sh: ext4 without DAX on a raw namespace (E34)', () => {
  for (const v of ['v5.4', 'v5.10', 'v6.6', 'latest']) {
    it(`${v}: the script's assertions, command by command`, () => {
      const k = kernel(v);
      expect(k.file('image').inode.sDax).toBe(false);
      // echo $start_sect 8 > /sys/block/$blockdev/badblocks
      k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', count: 8 }));
      expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(8);
      expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(sectorOf(k, 0));
      // badblocks_store() wrote pmem->bb alone: the region and nfit_test know nothing of them
      expect(k.badblocksIn({ device: 'pmem0' })).toBe(0);
      expect(k.injectedErrorsIn({ device: 'pmem0' })).toBe(0);
      // dd if=$MNT/$FILE iflag=direct bs=4096 count=1: EIO
      expect(errno(() => k.run(k.pread({ file: 'image', length: 4 * KiB, direct: true, map: 'buf' })))).toBe('EIO');
      // dax-errors.c: mmap MAP_SHARED of page 0, memcpy from it: SIGBUS
      k.run(k.mmap({ file: 'image', length: 4 * KiB, shared: true, write: true, as: 'm' }));
      expect(errno(() => k.run(k.read({ map: 'm', page: 0 })))).toBe('SIGBUS');
      // the failed reads left the folio in the page cache, not uptodate: nothing maps it
      const cache = k.file('image').inode.cache!;
      expect(cache.cache.has(0)).toBe(true);
      expect(cache.notUptodate.has(0)).toBe(true);
      expect(k.vm.lookup(k.process(undefined), k.mapPage('m', 0).vpn)).toBeNull();
      k.run(k.munmap({ map: 'm' }));
      // read sector len < badblocks; dd of=/dev/$blockdev oflag=direct bs=512 seek=$sector count=$len
      expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(8);
      expect(k.run(k.pwrite({ device: 'pmem0', extentOf: 'image', length: 4 * KiB, direct: true, map: 'zeroes' }))).toBe(4 * KiB);
      expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
      // the folio is read again: the zeroes the block device wrote, the other pages the file's data
      expect(k.run(k.pread({ file: 'image', length: 16 * KiB, map: 'buf' }))).toBe(16 * KiB);
      expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'buf', page })))).toEqual(['', 'r1', 'r2', 'r3']);
      // dd ... oflag=direct bs=4096 count=4 (O_TRUNC); echo $((start_sect + 1)) 1 > badblocks; the read fails
      k.run(k.truncate({ file: 'image', size: 0 }));
      expect(k.run(k.pwrite({ file: 'image', length: 16 * KiB, direct: true, map: 'random' }))).toBe(16 * KiB);
      k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', sector: 1, count: 1 }));
      expect(k.bdevFirstBadblockIn({ device: 'pmem0' })).toBe(sectorOf(k, 0) + 1);
      expect(errno(() => k.run(k.pread({ file: 'image', length: 4 * KiB, direct: true, map: 'buf' })))).toBe('EIO');
      expect(k.run(k.pread({ file: 'image', offset: 4 * KiB, length: 12 * KiB, direct: true, map: 'buf' }))).toBe(12 * KiB);
      k.run(k.umount({ device: 'pmem0' }));
    });
  }

  it('a buffered read returns the pages before the bad one (filemap_read: bytes done), else EIO; a later page reads', () => {
    const k = kernel('v6.6');
    k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', sector: 8, count: 1 }));
    // page 1's block holds the bad sector (sector 8 from the file's start: block 1, its first sector)
    expect(k.run(k.pread({ file: 'image', length: 16 * KiB, map: 'buf' }))).toBe(4 * KiB);
    expect(errno(() => k.run(k.pread({ file: 'image', offset: 4 * KiB, length: 4 * KiB, map: 'buf' })))).toBe('EIO');
    expect(k.run(k.pread({ file: 'image', offset: 8 * KiB, length: 8 * KiB, map: 'buf' }))).toBe(8 * KiB);
  });

  it('a whole-page buffered write needs no read (block_write_begin()), and its writeback clears the bad sectors (pmem_do_write)', () => {
    const k = kernel('v6.6');
    k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', count: 8 }));
    expect(k.run(k.pwrite({ file: 'image', length: 4 * KiB, map: 'random', page: 2 }))).toBe(4 * KiB);
    // in the page cache only: the disk still lists them, an O_DIRECT read (which writes back first) clears them
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(8);
    k.run(k.fsync({ file: 'image' }));
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
    expect(k.run(k.pread({ file: 'image', length: 4 * KiB, direct: true, map: 'buf' }))).toBe(4 * KiB);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('r2');
  });

  it('an O_DIRECT write of the file over bad sectors clears them (the bio\'s pmem_do_write -> pmem_clear_poison)', () => {
    const k = kernel('v6.6');
    k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', sector: 4, count: 8 }));
    // bytes 2048..6143 of the file: sectors 4..11, across the first two blocks
    expect(k.run(k.pwrite({ file: 'image', offset: 2 * KiB, length: 4 * KiB, direct: true, map: 'random' }))).toBe(4 * KiB);
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
  });

  it('the hand-set sectors belong to the disk: destroy / reconfigure need it unmounted (EBUSY), a new personality starts without them', () => {
    const k = kernel('v6.6');
    k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'image', count: 8 }));
    expect(errno(() => k.run(k.reconfigureNamespace({ device: 'pmem0', mode: 'fsdax' })))).toBe('EBUSY');
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.reconfigureNamespace({ device: 'pmem0', mode: 'fsdax' }));
    // pmem_attach_disk() populated the new disk's list from the bus's, which never had them
    expect(k.bdevBadblocksIn({ device: 'pmem0' })).toBe(0);
  });

  it('block I/O beside the mount: O_DIRECT is modelled, buffered I/O (the block device\'s page cache) is not', () => {
    const k = kernel('v6.6');
    expect(errno(() => k.run(k.pread({ device: 'pmem0', extentOf: 'image', length: 4 * KiB, direct: true, map: 'buf' })))).toBe('no error');
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('r0');
    try {
      k.run(k.pread({ device: 'pmem0', length: 4 * KiB, map: 'buf' }));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).unsupported).not.toBeNull();
    }
  });

  it('bad input: past the disk, a file on another device, a file without a block', () => {
    const k = kernel('v6.6');
    expect(() => k.run(k.setBadblocks({ device: 'pmem0', sector: 131072 - 4, count: 8 }))).toThrow(InputError);
    k.run(k.probeRaw({ size: 64 << 20, as: 'pmem1' }));
    expect(() => k.run(k.setBadblocks({ device: 'pmem1', extentOf: 'image', count: 1 }))).toThrow(/'image' is on pmem0, not on pmem1/);
    k.run(k.create({ file: 'empty', size: 0, device: 'pmem0' }));
    expect(() => k.run(k.setBadblocks({ device: 'pmem0', extentOf: 'empty', count: 1 }))).toThrow(/has no block \(filefrag lists no extent\)/);
  });
});
