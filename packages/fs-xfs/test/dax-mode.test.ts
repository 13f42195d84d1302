import { createKernel, daxFlagOf, exploreScenario, isExploreResult, KernelError, Monitor, parseScenario, statxDax, type DaxMountOption, type Kernel, type PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// Per-inode DAX on XFS (fs/daxmode.ts, Xfs.parseDaxOption / shouldEnableDax / checkDaxFlagChange).
// S_DAX is decided when the inode is set up and only eviction changes it; a file without S_DAX
// lives in the page cache, read from and written back to its blocks.

const PAGE = 4096;
const MiB = 1024 * 1024;

function boot(version: string, dax: DaxMountOption): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax }));
  return { k, m };
}

function errorOf(f: () => unknown): KernelError {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e;
    throw e;
  }
  throw new Error('expected a KernelError');
}

describe('XFS dax mount options per release', () => {
  it('v5.4 knows only -o dax: dax=inode is an unknown option, and the cell is unsupported', () => {
    const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: 'v5.4' });
    k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
    const e = errorOf(() => k.run(k.mount({ device: 'pmem0', dax: 'inode' })));
    expect(e.code).toBe('EINVAL');
    expect(e.unsupported).toMatch(/before v5\.8 knows only -o dax/);
    // the failed mount left the device unmounted: -o dax mounts it
    k.run(k.mount({ device: 'pmem0', dax: true }));
    k.run(k.create({ file: 'a', size: PAGE }));
    expect(k.file('a').inode.sDax).toBe(true);
  });

  it('v5.4 without a dax option still honours XFS_DIFLAG2_DAX at inode setup (xfs_inode_supports_dax: "DAX mount option or DAX iflag")', () => {
    const { k } = boot('v5.4', false);
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'in', size: PAGE, dir: 'd' }));
    k.run(k.create({ file: 'out', size: PAGE }));
    expect(k.file('in').inode.sDax).toBe(true); // inherited the flag (xfs_inode_inherit_flags2)
    expect(k.file('out').inode.sDax).toBe(false);
    // statx has no STATX_ATTR_DAX before v5.8: the check cannot be made there
    expect(errorOf(() => statxDax(k, 'in')).unsupported).toMatch(/STATX_ATTR_DAX/);
  });

  it('v5.10: -o dax is dax=always, no option is dax=inode, dax=never makes nothing DAX', () => {
    for (const [dax, flagged, plain] of [[true, true, true], ['always', true, true], [false, true, false], ['inode', true, false], ['never', false, false]] as const) {
      const { k } = boot('v5.10', dax);
      k.run(k.mkdir({ dir: 'd' }));
      k.run(k.chattr({ dir: 'd', dax: true }));
      k.run(k.create({ file: 'f', size: PAGE, dir: 'd' }));
      k.run(k.create({ file: 'g', size: PAGE }));
      expect([dax, statxDax(k, 'f'), statxDax(k, 'g')]).toEqual([dax, flagged, plain]);
      // the flag itself does not depend on the mount option (generic/607)
      expect(daxFlagOf(k, { file: 'f' })).toBe(true);
    }
  });
});

describe('XFS: S_DAX changes only when the inode is evicted', () => {
  it('dax=inode (v5.10): chattr on a file nobody holds is followed at once — I_DONTCACHE, and xfs_io\'s close is the last iput', () => {
    const { k } = boot('v5.10', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.chattr({ file: 'f', dax: true }));
    expect(statxDax(k, 'f')).toBe(true);
    k.run(k.chattr({ file: 'f', dax: false }));
    expect(statxDax(k, 'f')).toBe(false);
  });

  it('an open file keeps its S_DAX through chattr and drop_caches; its close evicts the I_DONTCACHE inode (generic/608)', () => {
    const { k } = boot('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: 0 }));
    k.run(k.open({ file: 'f', as: 'fd' }));
    k.run(k.chattr({ file: 'f', dax: true }));
    k.run(k.dropCaches({}));
    expect([daxFlagOf(k, { file: 'f' }), statxDax(k, 'f'), k.file('f').inode.dontcache]).toEqual([true, false, true]);
    k.run(k.close({ name: 'fd' }));
    expect(k.file('f').inode.incore).toBe(true); // set up again by the lookup
    expect(statxDax(k, 'f')).toBe(true);
  });

  it('v5.4 has no I_DONTCACHE: the new flag takes effect only after drop_caches (or umount) evicts the unused inode', () => {
    const { k } = boot('v5.4', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.chattr({ file: 'f', dax: true }));
    expect(k.file('f').inode.sDax).toBe(false);
    k.run(k.dropCaches({}));
    expect(k.file('f').inode.sDax).toBe(true);
  });

  it('v5.4 xfs_ioctl_setattr_dax_invalidate(): the change of a mapped page-cache file writes it back, unmaps it and empties the cache, and leaves S_DAX alone', () => {
    const { k } = boot('v5.4', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'kept' }));
    const folio = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.chattr({ file: 'f', dax: true }));
    expect([k.isMappedIn({ map: 'm', page: 0 }), k.pfnOf({ file: 'f', page: 0 }), k.refcount(folio), k.file('f').inode.sDax]).toEqual([false, null, 0, false]);
    // the next fault reads a new folio from the block the invalidation wrote
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('kept');
    expect(k.pfnOf({ map: 'm', page: 0 })).not.toBe(k.file('f').fs.blocks.pfnOf(k.file('f').inode.blocks.get(0)!));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.dropCaches({}));
    expect(k.file('f').inode.sDax).toBe(true);
  });

  it('dax=always: chattr -x marks nothing and S_DAX stays after eviction (the mount decides)', () => {
    const { k } = boot('v6.15', 'always');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.chattr({ file: 'f', dax: false }));
    expect(k.file('f').inode.dontcache).toBe(false);
    k.run(k.dropCaches({}));
    expect([daxFlagOf(k, { file: 'f' }), statxDax(k, 'f')]).toEqual([false, true]);
  });

  it('umount is EBUSY while a file is open or mapped; after it the next mount decides S_DAX again', () => {
    const { k } = boot('v6.6', 'always');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.open({ file: 'f', as: 'fd' }));
    expect(errorOf(() => k.run(k.umount({ device: 'pmem0' }))).code).toBe('EBUSY');
    k.run(k.close({ name: 'fd' }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'm' }));
    expect(errorOf(() => k.run(k.umount({ device: 'pmem0' }))).code).toBe('EBUSY');
    k.run(k.munmap({ map: 'm' }));
    k.run(k.umount({ device: 'pmem0' }));
    expect(errorOf(() => k.file('f')).code).toBe('ENOENT'); // not mounted
    // nothing can be made on the unmounted filesystem
    expect(errorOf(() => k.run(k.create({ file: 'g', size: PAGE, device: 'pmem0' }))).code).toBe('ENOENT');
    expect(errorOf(() => k.run(k.mkdir({ dir: 'd' }))).code).toBe('ENOENT');
    k.run(k.mount({ device: 'pmem0', dax: 'never' }));
    expect(statxDax(k, 'f')).toBe(false);
  });
});

describe('XFS: the data survives S_DAX flipping', () => {
  it('page cache -> DAX: the folio written through a shared mapping is written back to the block at eviction; the DAX mapping then maps the block', () => {
    const { k, m } = boot('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'pc' }));
    k.run(k.write({ map: 'pc', page: 1, data: 'cached' }));
    const folio = k.pfnOf({ map: 'pc', page: 1 })!;
    // a RAM folio, not the block: the cache's reference and the PTE's
    expect(folio).not.toBe(k.file('f').fs.blocks.pfnOf(k.file('f').inode.blocks.get(1)!));
    expect([k.refcount(folio), k.mapcount(folio)]).toEqual([2, 1]);
    k.run(k.chattr({ file: 'f', dax: true })); // the mapping holds the inode: no eviction yet
    expect(statxDax(k, 'f')).toBe(false);
    k.run(k.munmap({ map: 'pc' })); // the last user: evicted at the next lookup
    expect(statxDax(k, 'f')).toBe(true);
    expect(k.refcount(folio)).toBe(0); // the page cache dropped it at eviction
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'dax' }));
    expect(k.run(k.read({ map: 'dax', page: 1 }))).toBe('cached');
    expect(k.pfnOf({ map: 'dax', page: 1 })).toBe(k.pfnOf({ file: 'f', page: 1 }));
    expect(m.violations).toEqual([]);
  });

  it('DAX -> page cache: a new folio is read from the block a DAX store wrote', () => {
    const { k, m } = boot('v6.15', 'inode');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'f', size: PAGE, dir: 'd' }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'dax' }));
    k.run(k.write({ map: 'dax', page: 0, data: 'on pmem' }));
    k.run(k.munmap({ map: 'dax' }));
    k.run(k.chattr({ file: 'f', dax: false }));
    expect(statxDax(k, 'f')).toBe(false);
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'pc' }));
    expect(k.run(k.read({ map: 'pc', page: 0 }))).toBe('on pmem');
    expect(m.violations).toEqual([]);
  });

  it('a pinned page-cache folio keeps the inode in core (invalidate_mapping_pages cannot drop it) until the pin goes', () => {
    const { k } = boot('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'pc' }));
    k.run(k.gup({ map: 'pc', page: 0, write: true, as: 'dio' }, false));
    k.run(k.munmap({ map: 'pc' }));
    k.run(k.chattr({ file: 'f', dax: true }));
    k.run(k.dropCaches({}));
    // the cache's reference and the GUP reference (the PTE's went with munmap)
    expect(k.refcount(k.pfnOf({ file: 'f', page: 0 })!)).toBe(2);
    expect(statxDax(k, 'f')).toBe(false);
    k.run(k.put({ name: 'dio' }));
    k.run(k.dropCaches({}));
    expect(statxDax(k, 'f')).toBe(true);
  });

  it('truncate of a file without S_DAX drops its page cache past EOF and frees the blocks (xfs_setattr_size ordering)', () => {
    const { k } = boot('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, as: 'pc' }));
    k.run(k.write({ map: 'pc', page: 1, data: 'x' }));
    const folio = k.pfnOf({ file: 'f', page: 1 })!;
    k.run(k.munmap({ map: 'pc' }));
    k.run(k.truncate({ file: 'f', size: PAGE }));
    expect(k.pfnOf({ file: 'f', page: 1 })).toBe(null);
    expect(k.refcount(folio)).toBe(0);
    expect(k.blockFree({ file: 'f', page: 1 })).toBe(true);
  });
});

describe('XFS: FS_XFLAG_DAX refusals and MAP_SYNC', () => {
  it('a reflinked file takes no DAX flag and no S_DAX until v6.9 lifted the restriction', () => {
    for (const [version, allowed] of [['v6.6', false], ['v6.15', true]] as const) {
      const { k } = boot(version, 'always');
      k.run(k.create({ file: 'src', size: PAGE }));
      k.run(k.reflink({ from: 'src', to: 'dst' }));
      const set = (): void => k.run(k.chattr({ file: 'dst', dax: true }));
      if (allowed) set();
      else expect(errorOf(set).code).toBe('EINVAL');
      // both inodes are S_DAX while cached (dax=always at creation); set up again, a reflinked one is not before v6.9
      k.run(k.umount({ device: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0', dax: 'always' }));
      expect([version, statxDax(k, 'src'), statxDax(k, 'dst')]).toEqual([version, allowed, allowed]);
    }
  });

  it('MAP_SYNC maps a DAX file and fails with EOPNOTSUPP on a file without S_DAX (daxdev_mapping_supported)', () => {
    const { k } = boot('v6.6', 'inode');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'dax', size: PAGE, dir: 'd' }));
    k.run(k.create({ file: 'pc', size: PAGE }));
    k.run(k.mmap({ file: 'dax', length: PAGE, shared: true, write: true, sync: true, as: 's1' }));
    expect(errorOf(() => k.run(k.mmap({ file: 'pc', length: PAGE, shared: true, write: true, sync: true, as: 's2' }))).code).toBe('EOPNOTSUPP');
    k.run(k.memfdCreate({ file: 'mfd', size: PAGE }));
    expect(errorOf(() => k.run(k.mmap({ file: 'mfd', length: PAGE, shared: true, sync: true, as: 's3' }))).code).toBe('EOPNOTSUPP');
  });
});

describe('XFS: the last close races a new mapping (explore)', () => {
  // chattr +x while fd is open marks the inode I_DONTCACHE; thread a closes fd, thread b maps the
  // file, writes, unmaps and asks statx. Only when b runs to the end before a closes is the file
  // still held at b's statx: S_DAX is still the old one there, in exactly that one schedule.
  const scenario = parseScenario(`name: close-vs-mmap
mode: explore
setup:
  - probe: { size: 1GiB, as: dev0 }
  - mount: { device: dev0, dax: inode }
  - create: { file: f, size: 4KiB }
  - open: { file: f, as: fd }
  - chattr: { file: f, dax: true }
threads:
  - name: a
    steps:
      - close: fd
  - name: b
    steps:
      - mmap: { file: f, length: 4KiB, shared: true, write: true, as: m }
      - write: { map: m, page: 0, data: x }
      - munmap: { map: m }
      - check: { dax: { file: f }, equals: true }
`, 'close-vs-mmap.yaml');
  const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs() }, driver: { nvdimm: () => nvdimm() } };

  it('every schedule runs (the open files are kernel state the explorer restores), and only b-before-close sees S_DAX unchanged', () => {
    const r = exploreScenario(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} }, catalog);
    if (!isExploreResult(r)) throw new Error(`not explored: ${r.reason ?? r.status}`);
    expect(r.complete).toBe(true);
    expect(r.stepFailures.flatMap((f) => f.messages)).toEqual(['threads[1].steps[3]: dax(file=f) is false, expected true']);
    expect(r.violations).toEqual([]);
  });
});

describe('XFS: a file without S_DAX is a disk file to GUP and COW', () => {
  /** dax=inode: `dax` in a +x directory, `pc` at the root, both one page, mapped shared read-write and written */
  function twoFiles(version: string): Kernel {
    const { k } = boot(version, 'inode');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'dax', size: PAGE, dir: 'd' }));
    k.run(k.create({ file: 'pc', size: PAGE }));
    for (const f of ['dax', 'pc']) {
      k.run(k.mmap({ file: f, length: PAGE, shared: true, write: true, as: f }));
      k.run(k.write({ map: f, page: 0, data: f }));
    }
    return k;
  }
  const longtermWritePin = (k: Kernel, map: string): string => {
    try {
      k.run(k.gup({ map, page: 0, write: true, longterm: true, as: `p-${map}` }, true));
      return 'pinned';
    } catch (e) {
      return (e as KernelError).code;
    }
  };

  it('FOLL_LONGTERM|FOLL_WRITE: EOPNOTSUPP on the DAX file (check_vma_flags: vma_is_fsdax) at every release; on the page-cache file EFAULT from v6.5 (writable_file_mapping_allowed), pinned before', () => {
    const old = twoFiles('v6.1');
    expect([longtermWritePin(old, 'dax'), longtermWritePin(old, 'pc')]).toEqual(['EOPNOTSUPP', 'pinned']);
    const now = twoFiles('v6.6');
    expect([longtermWritePin(now, 'dax'), longtermWritePin(now, 'pc')]).toEqual(['EOPNOTSUPP', 'EFAULT']);
  });

  it('a private write COWs the page-cache folio read from the block; punch hole drops the folio and the block but keeps the COW copy (truncate_pagecache_range: even_cows = 0)', () => {
    const k = twoFiles('v6.6');
    k.run(k.munmap({ map: 'pc' }));
    k.run(k.mmap({ file: 'pc', length: PAGE, write: true, as: 'priv' }));
    expect(k.run(k.read({ map: 'priv', page: 0 }))).toBe('pc');
    k.run(k.write({ map: 'priv', page: 0, data: 'mine' }));
    expect(k.isAnon(k.pfnOf({ map: 'priv', page: 0 })!)).toBe(true);
    const cached = k.pfnOf({ file: 'pc', page: 0 })!;
    k.run(k.punchHole({ file: 'pc', offset: 0, length: PAGE }));
    expect([k.pfnOf({ file: 'pc', page: 0 }), k.refcount(cached), k.blockFree({ file: 'pc', page: 0 })]).toEqual([null, 0, true]);
    expect(k.run(k.read({ map: 'priv', page: 0 }))).toBe('mine');
  });
});

describe('XFS: evicting an inode whose DAX page is pinned', () => {
  /** a DAX file whose page 0 a get (O_DIRECT) still holds after munmap */
  function pinnedDax(version: string): Kernel {
    const { k } = boot(version, 'always');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    k.run(k.gup({ map: 'm', page: 0, as: 'dio' }, false));
    k.run(k.munmap({ map: 'm' }));
    return k;
  }

  it('v6.15: dax_break_layout_final() waits for the page, so drop_caches blocks until the reference goes', () => {
    const k = pinnedDax('v6.15');
    expect(() => k.run(k.dropCaches({}))).toThrow(/wait for pfn \d+ of f to become idle/);
  });

  it('v6.6: eviction goes ahead and dax_disassociate_entry() WARNs about the busy page it truncates', () => {
    const k = pinnedDax('v6.6');
    k.run(k.dropCaches({}));
    expect(k.file('f').inode.incore).toBe(true); // set up again by the lookup
    expect(k.warnings).toEqual([expect.stringMatching(/^dax_disassociate_entry: truncating busy pfn \d+ \(refcount 2\)$/)]);
  });
});
