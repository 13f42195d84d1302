import { createKernel, daxFlagOf, Monitor, statxDax, type DaxMountOption, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// Per-inode DAX on ext4 (fs/daxmode.ts, Ext4.parseDaxOption / shouldEnableDax / checkDaxFlagChange):
// before v5.8 (9cb20f94afcd, pulled for v5.8-rc2) ext4 had only -o dax and no EXT4_DAX_FL.

const PAGE = 4096;

/** ext4 on a 1 GiB pmem namespace, mounted with `dax` (true: -o dax; false: no option). */
function mounted(version: string, dax: DaxMountOption): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 1 << 30, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax }));
  return { k, m: new Monitor(k) };
}

/** The kernel error `f` fails with, as { code, unsupported? } (an unsupported one makes the cell n/a). */
const refusal = (code: string, unsupported: boolean) => expect.objectContaining({ code, unsupported: unsupported ? expect.any(String) : null });

describe('ext4 dax mount options and EXT4_DAX_FL per release', () => {
  it('v5.4: without -o dax no file is DAX; FS_XFLAG_DAX cannot be set (EOPNOTSUPP: the test harness skips); clearing it is a no-op', () => {
    const { k } = mounted('v5.4', false);
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(k.file('f').inode.sDax).toBe(false);
    expect(() => k.run(k.chattr({ file: 'f', dax: true }))).toThrow(refusal('EOPNOTSUPP', true));
    k.run(k.chattr({ file: 'f', dax: false }));
    expect(daxFlagOf(k, { file: 'f' })).toBe(false);
  });

  it('v5.4: -o dax makes every regular file DAX; dax=never is an unrecognized option', () => {
    const { k } = mounted('v5.4', true);
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(k.file('f').inode.sDax).toBe(true);
    const k2 = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: 'v5.4' });
    k2.run(k2.probe({ size: 1 << 30, as: 'pmem0' }));
    expect(() => k2.run(k2.mount({ device: 'pmem0', dax: 'never' }))).toThrow(/Unrecognized mount option/);
  });

  it('v5.10: no option is dax=inode; EXT4_DAX_FL is inherited by directories and files (ext4_inherit_flags)', () => {
    const { k } = mounted('v5.10', false);
    k.run(k.mkdir({ dir: 'a' }));
    k.run(k.chattr({ dir: 'a', dax: true }));
    k.run(k.mkdir({ dir: 'b', in: 'a' }));
    k.run(k.create({ file: 'f', size: PAGE, dir: 'b' }));
    k.run(k.create({ file: 'g', size: PAGE }));
    expect([daxFlagOf(k, { dir: 'b' }), daxFlagOf(k, { file: 'f' }), statxDax(k, 'f'), statxDax(k, 'g')]).toEqual([true, true, true, false]);
  });
});

describe('ext4: ext4_dax_dontcache() only under dax=inode', () => {
  it('dax=inode: a flag change marks the inode I_DONTCACHE; its last close evicts it and S_DAX follows', () => {
    const { k } = mounted('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.open({ file: 'f', as: 'fd' }));
    k.run(k.chattr({ file: 'f', dax: true }));
    expect([k.file('f').inode.dontcache, statxDax(k, 'f')]).toEqual([true, false]);
    k.run(k.close({ name: 'fd' }));
    expect(statxDax(k, 'f')).toBe(true);
  });

  it('dax=never: the flag is stored (generic/607) but no inode is marked, and none is ever DAX', () => {
    const { k } = mounted('v6.15', 'never');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.chattr({ file: 'f', dax: true }));
    k.run(k.dropCaches({}));
    expect([daxFlagOf(k, { file: 'f' }), k.file('f').inode.dontcache, statxDax(k, 'f')]).toEqual([true, false, false]);
  });

  it('a flip through drop_caches keeps the data: page cache written back to the block, then mapped by DAX', () => {
    const { k, m } = mounted('v6.15', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'pc' }));
    k.run(k.write({ map: 'pc', page: 0, data: 'journal-free' }));
    k.run(k.munmap({ map: 'pc' }));
    k.run(k.open({ file: 'f', as: 'fd' }));
    k.run(k.chattr({ file: 'f', dax: true }));
    k.run(k.close({ name: 'fd' }));
    k.run(k.dropCaches({}));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, as: 'dax' }));
    expect(k.run(k.read({ map: 'dax', page: 0 }))).toBe('journal-free');
    expect(k.pfnOf({ map: 'dax', page: 0 })).toBe(k.file('f').fs.blocks.pfnOf(k.file('f').inode.blocks.get(0)!));
    expect(m.violations).toEqual([]);
  });
});

describe('ext4: no I_DONTCACHE where the mount decides, nor for a directory', () => {
  it('dax=always: chattr -x on a file and +x on a directory mark nothing; every regular file stays DAX', () => {
    const { k } = mounted('v6.6', 'always');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.create({ file: 'f', size: PAGE, dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.chattr({ file: 'f', dax: false }));
    k.run(k.create({ file: 'g', size: PAGE, dir: 'd' }));
    expect([k.file('f').inode.dontcache, statxDax(k, 'f'), daxFlagOf(k, { file: 'g' }), statxDax(k, 'g')]).toEqual([false, true, true, true]);
  });
});
