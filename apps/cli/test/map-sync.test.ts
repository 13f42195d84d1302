import { createKernel, metadataDirty, type FilesystemPlugin, type Kernel } from '@daxlab/core';
import { pfnMappedAt, testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// Metadata durability of DAX files (core fs/journal.ts): MAP_SYNC write faults commit the journal
// before the page is mapped (dax_iomap_pte_fault -> VM_FAULT_NEEDDSYNC -> dax_finish_sync_fault ->
// vfs_fsync_range, then dax_insert_pfn_mkwrite), plain shared stores leave their allocation
// uncommitted until fsync / msync, and a dm-log-writes replay to a mark keeps exactly what was
// committed then (xfstests generic/470). XFS and ext4 alike; MAP_SYNC is v4.15, before every preset.

const PAGE = 4096;
const PMD = 512 * PAGE;
const FILESYSTEMS: [string, () => FilesystemPlugin, string][] = [
  ['xfs', xfs, 'xfs_log_force'],
  ['ext4', ext4, 'jbd2_complete_transaction'],
];
const VERSIONS = ['v5.4', 'v6.6', 'latest'];

/** pmem0 mounted -o dax, file `a` created with `size` bytes of holes (create 0 + truncate up), nothing committed. */
function boot(fs: () => FilesystemPlugin, version: string, size = 4 * PAGE): Kernel {
  const k = createKernel({ arch: testArch(), fs: fs(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: 0 }));
  k.run(k.truncate({ file: 'a', size }));
  return k;
}

/** Every event of the kinds that show the order of a commit and a mapping, as short strings. */
function trace(k: Kernel): string[] {
  const out: string[] = [];
  k.bus.all().subscribe((e) => {
    const d = e.data as Record<string, unknown>;
    if (e.type === 'fs.step') out.push(`step ${String(d['step'])}`);
    if (e.type === 'pte.set') out.push(`${String(d['level'])} ${d['write'] ? 'rw' : 'ro'}`);
    if (e.type === 'block.alloc') out.push('alloc');
  });
  return out;
}

const dirty = (k: Kernel, file: string): boolean => {
  const { fs, inode } = k.file(file);
  return metadataDirty(fs, inode);
};

describe.each(FILESYSTEMS)('%s: MAP_SYNC write faults commit the metadata first', (_name, fs, commit) => {
  it.each(VERSIONS)('%s: a store to a hole allocates, commits, then maps the page writable; a second store to it faults no more', (version) => {
    const k = boot(fs, version);
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, sync: true, as: 'm' }));
    const t = trace(k);
    k.run(k.write({ map: 'm', page: 1, data: 'S' }));
    // the block, then the journal (create, i_size and the block with it), then the PTE
    expect(t).toEqual(['alloc', `step dax_finish_sync_fault: ${commit}`, 'pte rw']);
    expect(dirty(k, 'a')).toBe(false);
    k.run(k.write({ map: 'm', page: 1, data: 'T' }));
    expect(t).toHaveLength(3);
  });

  it.each(VERSIONS)('%s: a read fault maps the zero page; the write after it (pfn_mkwrite) commits like a first write', (version) => {
    const k = boot(fs, version);
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, sync: true, as: 'm' }));
    const t = trace(k);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect(t).toEqual(['pte ro']);
    k.run(k.write({ map: 'm', page: 0, data: 'S' }));
    expect(t.slice(1)).toEqual(['alloc', `step dax_finish_sync_fault: ${commit}`, 'pte rw']);
  });

  it('a store to a block whose metadata is committed is not synchronous: no IOMAP_F_DIRTY, no commit', () => {
    const k = boot(fs, 'v6.6');
    k.run(k.fallocate({ file: 'a', length: 4 * PAGE }));
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'plain' }));
    k.run(k.write({ map: 'plain', page: 2, data: 'P' })); // converts the unwritten extent
    k.run(k.fsync({ file: 'a' }));
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, sync: true, as: 'm' }));
    const t = trace(k);
    k.run(k.write({ map: 'm', page: 2, data: 'S' }));
    expect(t).toEqual(['pte rw']);
    // an unwritten page is converted by its write fault: metadata again, so that one commits
    k.run(k.write({ map: 'm', page: 3, data: 'S' }));
    expect(t.slice(1)).toEqual([`step dax_finish_sync_fault: ${commit}`, 'pte rw']);
  });

  it('a PMD write fault over a 2 MiB hole commits its 512 blocks, then maps the PMD', () => {
    const k = boot(fs, 'v6.6', PMD);
    k.run(k.mmap({ file: 'a', length: PMD, shared: true, write: true, sync: true, as: 'm' }));
    const t = trace(k);
    k.run(k.write({ map: 'm', page: 7, data: 'S' }));
    expect(t.filter((x) => x === 'alloc')).toHaveLength(512);
    expect(t.filter((x) => x !== 'alloc')).toEqual([`step dax_finish_sync_fault: ${commit}`, 'pmd rw']);
    expect(k.file('a').fs.journal.committed.files.get('a')?.blocks.size).toBe(512);
  });
});

describe.each(FILESYSTEMS)('%s: without MAP_SYNC the metadata waits for fsync or msync', (_name, fs, commit) => {
  it('a plain shared store allocates without a commit; fsync commits once, a second fsync has nothing to do', () => {
    const k = boot(fs, 'v6.6');
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'm' }));
    const t = trace(k);
    k.run(k.write({ map: 'm', page: 0, data: 'P' }));
    expect(t).toEqual(['alloc', 'pte rw']);
    expect(dirty(k, 'a')).toBe(true);
    // the journal has never seen the file: created, sized and written since the mount
    expect(k.file('a').fs.journal.committed.files.has('a')).toBe(false);
    k.run(k.fsync({ file: 'a' }));
    expect(t.slice(2)).toEqual([`step vfs_fsync_range: ${commit}`]);
    k.run(k.fsync({ file: 'a' }));
    k.run(k.msync({ map: 'm' }));
    expect(t).toHaveLength(3);
  });

  it('msync(MS_SYNC) of a shared mapping commits; of a private one it does nothing', () => {
    const k = boot(fs, 'v6.6');
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, write: true, as: 'p' }));
    k.run(k.write({ map: 'm', page: 0, data: 'P' }));
    k.run(k.msync({ map: 'p' }));
    expect(dirty(k, 'a')).toBe(true);
    k.run(k.msync({ map: 'm' }));
    expect(dirty(k, 'a')).toBe(false);
    // msync of a range no longer mapped: ENOMEM
    k.run(k.munmap({ map: 'm' }));
    expect(errnoOf(() => k.run(k.msync({ map: 'm' })))).toBe('ENOMEM');
  });

  it("a commit takes every earlier change of the filesystem with it, not only the file's own", () => {
    const k = boot(fs, 'v6.6');
    k.run(k.create({ file: 'b', size: 2 * PAGE }));
    expect(dirty(k, 'b')).toBe(true);
    k.run(k.fsync({ file: 'a' }));
    expect(dirty(k, 'b')).toBe(false);
  });
});

describe.each(FILESYSTEMS)('%s: a log replay keeps exactly what was committed at the mark', (_name, fs) => {
  it('blocks allocated after the mark are free again, committed ones stay, and the files made after it are gone', () => {
    const k = boot(fs, 'v6.6');
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'kept' }));
    k.run(k.msync({ map: 'm' }));
    k.run(k.write({ map: 'm', page: 1, data: 'lost' }));
    k.run(k.create({ file: 'b', size: PAGE }));
    k.run(k.logMark({ device: 'pmem0', mark: 'crash' }));
    const lostBlock = k.file('a').inode.blocks.get(1)!;
    k.run(k.munmap({ map: 'm' }));
    expect(errnoOf(() => k.run(k.logReplay({ device: 'pmem0', mark: 'crash' })))).toBe('EBUSY');
    k.run(k.umount({ device: 'pmem0' }));
    expect(errnoOf(() => k.run(k.logReplay({ device: 'pmem0', mark: 'nonesuch' })))).toBe('ENOENT');
    k.run(k.logReplay({ device: 'pmem0', mark: 'crash' }));
    k.run(k.mount({ device: 'pmem0' }));
    const { fs: f, inode } = k.file('a');
    expect([...inode.blocks.keys()]).toEqual([0]);
    expect(inode.size).toBe(4 * PAGE);
    expect(f.blocks.isFree(lostBlock)).toBe(true);
    expect(errnoOf(() => k.file('b'))).toBe('ENOENT');
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'r' }));
    expect(k.run(k.read({ map: 'r', page: 0 }))).toBe('kept');
    // page 1 is a hole again: zeroes, though the store reached the media
    expect(k.run(k.read({ map: 'r', page: 1 }))).toBe('');
    expect(k.pages.data.get(f.blocks.pfnOf(lostBlock))).toBe('lost');
    // the freed block is the allocator's again: the next allocation gets it
    k.run(k.write({ map: 'r', page: 2, data: 'new' }));
    expect(pfnMappedAt(k, 'r', 2)).toBe(f.blocks.pfnOf(lostBlock));
  });

  it('an unwritten extent converted by a plain store is unwritten again after the replay', () => {
    const k = boot(fs, 'v6.6');
    k.run(k.fallocate({ file: 'a', length: 4 * PAGE }));
    k.run(k.fsync({ file: 'a' }));
    k.run(k.mmap({ file: 'a', length: 4 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 3, data: 'U' }));
    k.run(k.logMark({ device: 'pmem0', mark: 'after-store' }));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.logReplay({ device: 'pmem0', mark: 'after-store' }));
    k.run(k.mount({ device: 'pmem0' }));
    const { fs: f, inode } = k.file('a');
    expect(inode.blocks.size).toBe(4);
    expect(f.isUnwritten(inode, 3)).toBe(true);
  });
});
