import { createKernel, KernelError, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { fsSequence, testArch } from '@daxlab/core/testing';

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

describe('DAX faults on holes: iomap_begin over the fault size (no stray block)', () => {
  function sparse(version: string): Kernel {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 2 * MiB }));
    k.run(k.punchHole({ file: 'a', offset: 0, length: 2 * MiB }));
    k.run(k.mmap({ file: 'a', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    return k;
  }

  it('a PMD write fault on a PMD-sized hole allocates the whole 2 MiB and maps it with one PMD', () => {
    for (const version of ['v6.6', 'v6.15']) {
      const k = sparse(version);
      k.run(k.write({ map: 'm', page: 5, data: 'W' }));
      const { inode } = k.file('a');
      // xfs_iomap_write_direct() over the hole [0, 512): 512 blocks, not the faulting page's one
      expect(inode.blocks.size, version).toBe(512);
      expect(k.vm.lookup(k.process('init'), k.map('m').start + 5)!.pte.level, version).toBe('pmd');
      expect(k.run(k.read({ map: 'm', page: 5 })), version).toBe('W');
    }
  });

  it('a PMD write fault whose first page is a one-block hole allocates that block, then falls back to a PTE', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.15' });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 2 * MiB }));
    k.run(k.punchHole({ file: 'a', offset: 0, length: 4096 }));
    k.run(k.create({ file: 'b', size: 4096 })); // takes the block the punch freed
    k.run(k.mmap({ file: 'a', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 5, data: 'W' }));
    const { inode } = k.file('a');
    // the hole xfs_bmapi_read finds at offset 0 ends at block 1: one block is allocated there (as
    // in the kernel) and it is not contiguous with the rest, so the extent is shorter than
    // PMD_SIZE and the fault falls back to page 5's PTE
    expect(inode.blocks.size).toBe(512);
    expect(inode.blocks.get(0)).not.toBe(inode.blocks.get(1)! - 1);
    expect(k.vm.lookup(k.process('init'), k.map('m').start + 5)!.pte.level).toBe('pte');
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
  });
});

describe('copy-on-write of a shared (reflinked) extent on a write fault', () => {
  it('v6.15: b gets a CoW block with the old data, a keeps the shared block; the old page loses one share', () => {
    const k = boot('v6.15');
    k.run(k.reflink({ from: 'a', to: 'b' }));
    k.run(k.mmap({ file: 'b', length: 16384, shared: true, write: true, as: 'mb' }));
    k.run(k.mmap({ file: 'a', length: 16384, shared: true, write: true, as: 'ma' }));
    expect(k.run(k.read({ map: 'mb', page: 1 }))).toBe('A1');
    expect(k.run(k.read({ map: 'ma', page: 1 }))).toBe('A1');
    const shared = k.pfnOf({ file: 'a', page: 1 })!;
    expect(k.pfnOf({ file: 'b', page: 1 })).toBe(shared);
    // mapping NULL + share 2: both files map it (era (c) dax_folio_make_shared)
    expect(k.pages.share[k.pages.slot(shared)]).toBe(2);
    const seen = fsSequence(k);
    k.run(k.write({ map: 'mb', page: 1, data: 'B1' }));
    expect(seen.filter((s) => s.startsWith('xfs_'))).toEqual(['xfs_reflink_allocate_cow', 'xfs_reflink_end_cow']);
    const cow = k.pfnOf({ file: 'b', page: 1 })!;
    expect(cow).not.toBe(shared);
    expect(k.pfnOf({ map: 'mb', page: 1 })).toBe(cow);
    expect(k.run(k.read({ map: 'mb', page: 1 }))).toBe('B1');
    expect(k.run(k.read({ map: 'ma', page: 1 }))).toBe('A1');
    // b's other pages are still shared; a's page 1 is a's alone now (refcount btree 2 -> 1)
    expect(k.pfnOf({ file: 'b', page: 2 })).toBe(k.pfnOf({ file: 'a', page: 2 }));
    expect(k.file('a').fs.blocks.ownersOf(k.file('a').inode.blocks.get(1)!)).toEqual([{ file: 'a', index: 1 }]);
    expect(k.pages.share[k.pages.slot(shared)]).toBe(1);
  });
});

describe('fault injection: the failed insert (seed 004)', () => {
  it('fail-nth 1 fails __do_fault\'s prealloc: no entry is created; fail-nth 2 fails the insert after the entry', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.15' });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 4096 }));
    k.run(k.mmap({ file: 'a', length: 4096, shared: true, write: true, as: 'm' }));
    k.run(k.injectFault({ site: 'insert-pgtable', nth: 1 }));
    expect(() => k.run(k.write({ map: 'm', page: 0, data: 'A' }))).toThrow(/ENOMEM.*prealloc/);
    expect(k.file('a').inode.mapping.entries.size).toBe(0);
    k.run(k.injectFault({ site: 'insert-pgtable', nth: 2 }));
    expect(() => k.run(k.write({ map: 'm', page: 0, data: 'A' }))).toThrow(/ENOMEM.*vmf_insert_page/);
    // merged behaviour: the entry stays, associating the page, which is back at 0
    const e = k.file('a').inode.mapping.entries.get(0)!;
    expect(e).toMatchObject({ empty: false, zero: false, locked: false });
    expect(k.refcount(e.pfn)).toBe(0);
    expect(k.faultInject.injected.get('insert-pgtable')).toBe(2);
    // nothing armed any more: the retry maps the page, the existing entry is reused
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(e.pfn);
    expect(k.refcount(e.pfn)).toBe(1);
  });

  it('with a PTE table already there (another page of the PMD range mapped) nothing is allocated and nothing fails', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.15' });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 16384 }));
    k.run(k.mmap({ file: 'a', length: 16384, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.injectFault({ site: 'insert-pgtable' }));
    // page 1 shares page 0's PTE table: neither __do_fault nor insert_page allocates one
    k.run(k.write({ map: 'm', page: 1, data: 'B' }));
    expect(k.faultInject.injected.get('insert-pgtable')).toBeUndefined();
    expect(k.faultInject.isArmed('insert-pgtable')).toBe(true);
  });
});

describe('the dax holder: kill_dax() on pmem unbind', () => {
  it('v6.6: MF_MEM_PRE_REMOVE reaches xfs_dax_notify_failure, which invalidates the file before memunmap_pages', () => {
    const k = boot('v6.6');
    const events: string[] = [];
    k.bus.all().subscribe((e) => {
      if (e.type === 'fs.step') events.push(String((e.data as { step: string }).step));
      if (e.type === 'pte.clear' && events.at(-1) !== 'unmap') events.push('unmap');
      if (e.type === 'pgmap.kill' || e.type === 'pgmap.teardown') events.push(e.type);
    });
    k.run(k.unbind({ device: 'pmem0' }));
    expect(events).toEqual(['xfs_dax_notify_failure(MF_MEM_PRE_REMOVE)', 'unmap', 'pgmap.kill', 'pgmap.teardown']);
    // invalidate_inode_pages2_range keeps dirty entries (the four written pages): only the PTEs went
    expect(k.file('a').inode.mapping.entries.size).toBe(4);
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
  });

  it('v6.1: kill_dax() notifies nobody yet; the mapping survives into memunmap_pages', () => {
    const k = boot('v6.1');
    k.run(k.unbind({ device: 'pmem0' }));
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(true);
  });
});

describe('a poisoned pmem page (ndctl dax-poison, kernel-tests-anchors E08/E20)', () => {
  it('memory-failure unmaps it, the refault is SIGBUS; a punch frees the block and the write that reallocates it zeroes the poison away', () => {
    for (const version of ['v5.10', 'v6.15']) {
      const k = boot(version);
      const dev = k.device('pmem0');
      const bad = k.pfnOf({ file: 'a', page: 1 })!;
      k.run(k.memoryFailure({ device: 'pmem0', page: bad - dev.dataPfn }));
      expect(k.isMappedIn({ map: 'm', page: 1 }), version).toBe(false);
      // dax_iomap_direct_access() -> -EHWPOISON: VM_FAULT_HWPOISON
      expect(() => k.run(k.read({ map: 'm', page: 1 })), version).toThrow(/SIGBUS.*poisoned/);
      expect(k.run(k.read({ map: 'm', page: 2 })), version).toBe('A2');
      k.run(k.punchHole({ file: 'a', offset: 4096, length: 4096 }));
      k.run(k.write({ map: 'm', page: 1, data: 'N' }));
      // first fit hands the punched block back: the allocation's zeroing cleared its poison
      expect(k.pfnOf({ file: 'a', page: 1 }), version).toBe(bad);
      expect(k.run(k.read({ map: 'm', page: 1 })), version).toBe('N');
    }
  });
});

describe('a failed insert inside an existing DAX entry', () => {
  it('leaves the entry as it was: the fault did not associate the page, so no zero-referenced entry is its doing', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v6.15' });
    const m = new Monitor(k);
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'a', size: 4096 }));
    k.run(k.mmap({ file: 'a', length: 4096, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.munmap({ map: 'm' }));
    // the entry stays associated at rc 0 after the unmap: v6.15's idle, tracked page
    const e = k.file('a').inode.mapping.entries.get(0)!;
    expect(k.refcount(e.pfn)).toBe(0);
    k.run(k.mmap({ file: 'a', length: 4096, shared: true, write: true, as: 'm2' }));
    k.run(k.injectFault({ site: 'insert-pgtable', nth: 2 }));
    expect(() => k.run(k.read({ map: 'm2', page: 0 }))).toThrow(/ENOMEM/);
    expect(k.file('a').inode.mapping.entries.get(0)).toBe(e);
    expect(m.violations.map((v) => v.invariant)).toEqual([]);
  });
});
