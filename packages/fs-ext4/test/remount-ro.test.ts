import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { pfnMappedAt, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';

// mount -o remount,ro on ext4 with -o dax (core fs/daxmode.ts remount, kernel.ts EROFS checks) and
// the COW fault on the read-only mount that xfstests generic/452 tests (ext4's cowData, feature
// ext4-dax-cow-journal: before fd96b8da68d3 the COW fault started a journal handle).

const PAGE = 4096;
const MiB = 1024 * 1024;

/** pmem0 mounted -o dax (or without DAX), file `f` of 4 pages written A0..A3 through a shared mapping that is then unmapped. */
function boot(version = 'v6.6', features: Record<string, unknown> = {}, dax = true): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version, features });
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax }));
  k.run(k.create({ file: 'f', size: 4 * PAGE }));
  k.run(k.mmap({ file: 'f', length: 4 * PAGE, shared: true, write: true, as: 'w' }));
  for (let p = 0; p < 4; p++) k.run(k.write({ map: 'w', page: p, data: `A${p}` }));
  k.run(k.munmap({ map: 'w' }));
  return k;
}

function errno(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
  return 'ok';
}

/** What the file's block behind page `p` holds (the medium, not any mapping). */
function onDisk(k: Kernel, p: number): string {
  const { fs, inode } = k.file('f');
  return k.pages.data.get(fs.blocks.pfnOf(inode.blocks.get(p)!)) ?? '';
}

describe('remount read-only: who holds write access (sb_prepare_remount_readonly)', () => {
  it('EBUSY while an O_RDWR descriptor is open; the close lets it through', () => {
    const k = boot();
    k.run(k.open({ file: 'f', as: 'fd', write: true }));
    expect(() => k.run(k.remount({ device: 'pmem0', ro: true }))).toThrow(/EBUSY.*'f' is open for writing \(fd\)/);
    expect(k.file('f').fs.readOnly).toBe(false);
    k.run(k.close({ name: 'fd' }));
    k.run(k.remount({ device: 'pmem0', ro: true }));
    expect(k.file('f').fs.readOnly).toBe(true);
  });

  it('EBUSY while a shared writable mapping holds its O_RDWR file; O_RDONLY opens and private or read-only mappings do not count', () => {
    const k = boot();
    k.run(k.open({ file: 'f', as: 'ro-fd' }));
    k.run(k.mmap({ file: 'f', length: PAGE, write: true, as: 'priv' }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'shro' }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'shrw' }));
    expect(() => k.run(k.remount({ device: 'pmem0', ro: true }))).toThrow(/EBUSY.*'shrw'/);
    k.run(k.munmap({ map: 'shrw' }));
    k.run(k.remount({ device: 'pmem0', ro: true }));
    // the read-only shared mapping came from an O_RDONLY file: no VM_MAYWRITE, mprotect(PROT_WRITE) EACCES
    expect(errno(() => k.run(k.mprotect({ map: 'shro', write: true })))).toBe('EACCES');
    // the private one may become writable and COW (its writes never reach the file)
    expect(errno(() => k.run(k.mprotect({ map: 'priv', write: true })))).toBe('ok');
  });

  it('MADV_REMOVE through a shared mapping left on the read-only mount: EACCES from v6.7 (no VM_MAYWRITE), and before it (no VM_WRITE)', () => {
    for (const v of ['v6.6', 'v6.15']) {
      const k = boot(v);
      k.run(k.mmap({ file: 'f', length: 4 * PAGE, shared: true, as: 'shro' }));
      k.run(k.remount({ device: 'pmem0', ro: true }));
      // v6.6: (VM_SHARED|VM_WRITE) is not all there; v6.15: vma_is_shared_maywrite() is false
      expect([v, errno(() => k.run(k.madvise({ map: 'shro', advice: 'remove' })))]).toEqual([v, 'EACCES']);
      expect(onDisk(k, 0)).toBe('A0');
    }
  });

  it('remounting to the mode the mount has changes nothing; a mount that is not there is EINVAL', () => {
    const k = boot();
    k.run(k.remount({ device: 'pmem0', ro: false }));
    expect(k.file('f').fs.readOnly).toBe(false);
    k.run(k.umount({ device: 'pmem0' }));
    expect(errno(() => k.run(k.remount({ device: 'pmem0', ro: true })))).toBe('EINVAL');
  });
});

describe('a read-only ext4 refuses every change with EROFS, before the filesystem is asked', () => {
  it('create, truncate, fallocate and punch hole, write(2), O_RDWR opens, shared writable mmap, chattr, mkdir, rename', () => {
    const k = boot('v6.6', {}, false); // no dax option: per-inode DAX (v5.8+), so chattr +x has a meaning
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    k.run(k.remount({ device: 'pmem0', ro: true }));
    const refused = {
      create: () => k.run(k.create({ file: 'g', size: PAGE })),
      truncate: () => k.run(k.truncate({ file: 'f', size: 0 })),
      fallocate: () => k.run(k.fallocate({ file: 'f', length: 8 * PAGE })),
      punchHole: () => k.run(k.punchHole({ file: 'f', offset: 0, length: PAGE })),
      pwrite: () => k.run(k.pwrite({ file: 'f', offset: 0, length: PAGE, map: 'buf' })),
      openRdwr: () => k.run(k.open({ file: 'f', as: 'fd', write: true })),
      mmapSharedWrite: () => k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' })),
      chattr: () => k.run(k.chattr({ file: 'f', dax: true })),
      chattrDir: () => k.run(k.chattr({ dir: 'd', dax: true })),
      mkdir: () => k.run(k.mkdir({ dir: 'e' })),
      rename: () => k.run(k.rename({ file: 'f', into: 'd' })),
    };
    for (const [what, f] of Object.entries(refused)) expect([what, errno(f)]).toEqual([what, 'EROFS']);
    // filename_create(): an existing name is EEXIST before the read-only test
    expect(errno(() => k.run(k.mkdir({ dir: 'd' })))).toBe('EEXIST');
    // what only reads goes on: read(2), O_RDONLY opens, read-only and private mappings
    expect(k.run(k.pread({ file: 'f', offset: PAGE, length: PAGE, map: 'buf' }))).toBe(PAGE);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('A1');
    k.run(k.open({ file: 'f', as: 'fd' }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'shro' }));
    expect(k.run(k.read({ map: 'shro', page: 0 }))).toBe('A0');
  });

  it('remount,rw gives write access back; a new mount after umount is read-write too', () => {
    const k = boot();
    k.run(k.remount({ device: 'pmem0', ro: true }));
    k.run(k.remount({ device: 'pmem0', ro: false }));
    k.run(k.create({ file: 'g', size: PAGE }));
    k.run(k.remount({ device: 'pmem0', ro: true }));
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.truncate({ file: 'g', size: 0 }));
    expect(k.file('g').inode.size).toBe(0);
  });

  it('mount -o ro: read-only from the start, after umount too, until a remount,rw', () => {
    const k = boot();
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', ro: true }));
    expect(errno(() => k.run(k.create({ file: 'g', size: PAGE })))).toBe('EROFS');
    k.run(k.mmap({ file: 'f', length: PAGE, as: 'r' }));
    expect(k.run(k.read({ map: 'r', page: 0 }))).toBe('A0');
    k.run(k.remount({ device: 'pmem0', ro: false }));
    expect(errno(() => k.run(k.create({ file: 'g', size: PAGE })))).toBe('ok');
  });

  it('the remount syncs first: a page-cache file written through a shared mapping reaches its block (sync_filesystem)', () => {
    // no dax option on v6.6 ext4: dax=inode by default, and a file without the flag is a page-cache file
    const k = boot('v6.6', {}, false);
    expect(k.file('f').inode.sDax).toBe(false);
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'w2' }));
    k.run(k.write({ map: 'w2', page: 0, data: 'B0' }));
    k.run(k.munmap({ map: 'w2' }));
    // boot()'s A0..A3 went to the page cache only: writeback happens at the remount
    expect(onDisk(k, 0)).not.toBe('B0');
    k.run(k.remount({ device: 'pmem0', ro: true }));
    expect(onDisk(k, 0)).toBe('B0');
    expect(onDisk(k, 3)).toBe('A3');
  });
});

describe('xfstests generic/452: a private write (COW) fault on the read-only DAX mount', () => {
  it('every preset: the COW copy is an anonymous page with the file data, the file stays as it was', () => {
    for (const v of ['v5.4', 'v6.6', 'latest']) {
      const k = boot(v);
      k.run(k.remount({ device: 'pmem0', ro: true }));
      k.run(k.mmap({ file: 'f', length: 4 * PAGE, write: true, exec: true, as: 'p' }));
      // do_cow_fault(): the first access is the write; the copy starts from the file page
      k.run(k.write({ map: 'p', page: 2, data: 'X' }));
      expect(k.run(k.read({ map: 'p', page: 2 }))).toBe('X');
      expect(k.folios.testAnon(k.folios.folio(pfnMappedAt(k, 'p', 2)), 'test')).toBe(true);
      expect(onDisk(k, 2)).toBe('A2');
      // read faults map the DAX page itself
      expect(pfnMappedAt(k, 'p', 1)).toBe(-1);
      expect(k.run(k.read({ map: 'p', page: 1 }))).toBe('A1');
      expect(pfnMappedAt(k, 'p', 1)).toBe(k.file('f').fs.blocks.pfnOf(k.file('f').inode.blocks.get(1)!));
    }
  });

  it('ext4-dax-cow-journal (before fd96b8da68d3): the COW fault starts a journal handle, which the read-only fs refuses: SIGBUS', () => {
    const k = boot('v6.6', { 'ext4-dax-cow-journal': true });
    const steps: string[] = [];
    k.bus.all().subscribe((e) => {
      if (e.type === 'fs.step') steps.push(String((e.data as { step: string }).step));
    });
    // read-write: the handle starts and the copy is made (nothing visible but the journal step)
    k.run(k.mmap({ file: 'f', length: 4 * PAGE, write: true, as: 'p' }));
    k.run(k.write({ map: 'p', page: 0, data: 'X' }));
    expect(steps).toEqual(['ext4_journal_start_sb']);
    k.run(k.remount({ device: 'pmem0', ro: true }));
    expect(() => k.run(k.write({ map: 'p', page: 1, data: 'Y' }))).toThrow(/SIGBUS.*journal handle on the read-only filesystem/);
    expect(pfnMappedAt(k, 'p', 1)).toBe(-1);
    // a page read first is mapped read-only and its write is do_wp_page()'s copy: ext4 is not called
    expect(k.run(k.read({ map: 'p', page: 2 }))).toBe('A2');
    k.run(k.write({ map: 'p', page: 2, data: 'Z' }));
    expect(k.run(k.read({ map: 'p', page: 2 }))).toBe('Z');
    expect(steps).toEqual(['ext4_journal_start_sb', 'ext4_journal_start_sb']);
  });

  it('the fixed handler (every preset) starts no journal handle for a COW fault', () => {
    const k = boot('v5.4');
    const steps: string[] = [];
    k.bus.all().subscribe((e) => {
      if (e.type === 'fs.step') steps.push(String((e.data as { step: string }).step));
    });
    k.run(k.mmap({ file: 'f', length: 4 * PAGE, write: true, as: 'p' }));
    k.run(k.write({ map: 'p', page: 0, data: 'X' }));
    expect(steps).toEqual([]);
  });
});

describe('fs-verity and writers', () => {
  it('FS_IOC_ENABLE_VERITY is ETXTBSY while an O_RDWR descriptor is open (deny_write_access), EROFS on a read-only mount', () => {
    const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: false, verity: true }));
    k.run(k.create({ file: 'v', size: PAGE }));
    k.run(k.open({ file: 'v', as: 'fd', write: true }));
    expect(errno(() => k.run(k.fsverityEnable({ file: 'v' })))).toBe('ETXTBSY');
    k.run(k.close({ name: 'fd' }));
    k.run(k.remount({ device: 'pmem0', ro: true }));
    expect(errno(() => k.run(k.fsverityEnable({ file: 'v' })))).toBe('EROFS');
  });
});
