import { createKernel, daxFlagOf, statxDax, type FsMountOptions, type DaxMountOption, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4, Ext4, EXT4_MIN_INLINE_DATA_SIZE } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// ext4's DAX refusals (fs-ext4: applyMountOptions, shouldEnableDax, checkDaxFlagChange,
// setJournalFlag, create inline) and rename (fs/daxmode.ts), per release. Each expectation is
// reasoned in its comment from the kernel function the model follows.

const PAGE = 4096;

function kernel(version: string): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 1 << 30, as: 'pmem0' }));
  return k;
}

function mounted(version: string, dax: DaxMountOption, o: FsMountOptions = {}): Kernel {
  const k = kernel(version);
  k.run(k.mount({ device: 'pmem0', dax, ...o }));
  return k;
}

const ext4Of = (k: Kernel): Ext4 => k.device('pmem0').fs as Ext4;
const code = (c: string) => expect.objectContaining({ code: c });

describe('ext4_fill_super: mount refusals', () => {
  for (const v of ['v5.4', 'v5.10', 'v6.6', 'latest']) {
    it(`${v}: -o dax with data=journal is EINVAL and mounts nothing; without dax it mounts`, () => {
      const k = kernel(v);
      // "can't mount with both data=journal and dax": test_opt(DAX) / DAX_ALWAYS, every release
      expect(() => k.run(k.mount({ device: 'pmem0', dax: true, data: 'journal' }))).toThrow(code('EINVAL'));
      expect(k.device('pmem0').fs).toBeNull();
      k.run(k.mount({ device: 'pmem0', dax: false, data: 'journal' }));
      // data=journal clears DELALLOC
      expect([ext4Of(k).dataMode, ext4Of(k).delalloc]).toEqual(['journal', false]);
    });

    it(`${v}: the inline_data feature with -o dax is EINVAL; the feature stays with the device`, () => {
      const k = kernel(v);
      expect(() => k.run(k.mount({ device: 'pmem0', dax: true, inlineData: true }))).toThrow(code('EINVAL'));
      k.run(k.mount({ device: 'pmem0', dax: false, inlineData: true }));
      k.run(k.umount({ device: 'pmem0' }));
      // mkfs is not repeated: the remount without the field still has the feature
      expect(() => k.run(k.mount({ device: 'pmem0', dax: true }))).toThrow(code('EINVAL'));
      expect(() => k.run(k.mount({ device: 'pmem0', dax: false, inlineData: false }))).toThrow(/inlineData/);
    });
  }

  it('data=journal with an explicit delalloc is EINVAL ("both data=journal and delalloc")', () => {
    const k = kernel('v6.6');
    expect(() => k.run(k.mount({ device: 'pmem0', dax: 'inode', data: 'journal', delalloc: true }))).toThrow(code('EINVAL'));
  });
});

describe('ext4_should_enable_dax: journalled data and inline data are never DAX', () => {
  it('v6.6 dax=inode,data=journal: a file with FS_XFLAG_DAX is not DAX; with data=ordered the same flag gives S_DAX', () => {
    const k = mounted('v6.6', 'inode', { data: 'journal' });
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'f', size: PAGE, dir: 'd' }));
    expect([daxFlagOf(k, { file: 'f' }), statxDax(k, 'f')]).toEqual([true, false]);
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: 'inode' }));
    expect(statxDax(k, 'f')).toBe(true);
  });

  it('the per-inode journal flag counts only without delalloc (ext4_inode_journal_mode)', () => {
    for (const [delalloc, dax] of [[false, false], [true, true]] as const) {
      const k = mounted('v6.6', 'inode', { delalloc });
      k.run(k.create({ file: 'f', size: PAGE }));
      k.run(k.chattr({ file: 'f', journal: true }));
      // +x marks I_DONTCACHE and nothing holds f: evicted, set up again at the statx
      k.run(k.chattr({ file: 'f', dax: true }));
      expect(statxDax(k, 'f')).toBe(dax);
    }
  });

  it(`a small first write (<= ${EXT4_MIN_INLINE_DATA_SIZE} bytes) on inline_data is inline and has no block; a larger one is not`, () => {
    const k = mounted('v6.6', 'inode', { inlineData: true });
    k.run(k.create({ file: 's', size: 32, inline: true }));
    k.run(k.create({ file: 'l', size: 61, inline: true }));
    const fs = ext4Of(k);
    expect([fs.hasInlineData(k.file('s').inode), k.file('s').inode.blocks.size]).toEqual([true, 0]);
    expect([fs.hasInlineData(k.file('l').inode), k.file('l').inode.blocks.size]).toEqual([false, 1]);
  });

  it('without the inline_data feature a small write is an ordinary block', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.create({ file: 's', size: 32, inline: true }));
    expect([ext4Of(k).hasInlineData(k.file('s').inode), k.file('s').inode.blocks.size]).toEqual([false, 1]);
  });
});

describe('dax_compatible and inline data, per release', () => {
  it('v5.10 and v6.6: FS_XFLAG_DAX on an inline file is EOPNOTSUPP (aa2f77920b74, v5.10); the flag stays clear', () => {
    for (const v of ['v5.10', 'v6.6']) {
      const k = mounted(v, 'inode', { inlineData: true });
      k.run(k.create({ file: 's', size: 32, inline: true }));
      expect(() => k.run(k.chattr({ file: 's', dax: true }))).toThrow(code('EOPNOTSUPP'));
      expect([daxFlagOf(k, { file: 's' }), statxDax(k, 's')]).toEqual([false, false]);
    }
  });

  it('an inline directory: refused on v5.10, allowed from v5.12 (4811d9929cda); the root is not inline', () => {
    const old = mounted('v5.10', 'inode', { inlineData: true });
    old.run(old.mkdir({ dir: 'd' }));
    expect(() => old.run(old.chattr({ dir: 'd', dax: true }))).toThrow(code('EOPNOTSUPP'));
    old.run(old.chattr({ dir: '/', dax: true }));
    const k = mounted('v6.1', 'inode', { inlineData: true });
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    expect(daxFlagOf(k, { dir: 'd' })).toBe(true);
  });

  it('v6.1: a file inheriting EXT4_DAX_FL gets no MAY_INLINE_DATA: its small write takes a block and it is DAX', () => {
    const k = mounted('v6.1', 'inode', { inlineData: true });
    k.run(k.chattr({ dir: '/', dax: true }));
    k.run(k.create({ file: 'f', size: 32, inline: true }));
    expect([ext4Of(k).hasInlineData(k.file('f').inode), statxDax(k, 'f')]).toEqual([false, true]);
  });

  it('v5.10 dax=never: the inherited flag does not stop inline data (before v5.12), and the file is not DAX', () => {
    const k = mounted('v5.10', 'never', { inlineData: true });
    k.run(k.chattr({ dir: '/', dax: true }));
    k.run(k.create({ file: 'f', size: 32, inline: true }));
    expect([ext4Of(k).hasInlineData(k.file('f').inode), statxDax(k, 'f')]).toEqual([true, false]);
  });

  it('writeback of a page written through a mapping converts the inline file; then +x gives S_DAX and the data is on the block', () => {
    const k = mounted('v6.6', 'inode', { inlineData: true });
    k.run(k.create({ file: 's', size: 32, inline: true }));
    k.run(k.mmap({ file: 's', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'S' }));
    k.run(k.munmap({ map: 'm' }));
    k.run(k.dropCaches({}));
    expect(ext4Of(k).hasInlineData(k.file('s').inode)).toBe(false);
    k.run(k.chattr({ file: 's', dax: true }));
    expect(statxDax(k, 's')).toBe(true);
    k.run(k.mmap({ file: 's', length: PAGE, shared: true, as: 'm2' }));
    expect(k.run(k.read({ map: 'm2', page: 0 }))).toBe('S');
  });
});

describe('chattr +j (ext4_ioctl_setflags) per release', () => {
  it('v5.4 -o dax: EBUSY for any file (test_opt(DAX)); v5.4 without dax: allowed', () => {
    const k = mounted('v5.4', true);
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(() => k.run(k.chattr({ file: 'f', journal: true }))).toThrow(code('EBUSY'));
    expect(ext4Of(k).journalDataFlag(k.file('f').inode)).toBe(false);
    const k2 = mounted('v5.4', false);
    k2.run(k2.create({ file: 'f', size: PAGE }));
    k2.run(k2.chattr({ file: 'f', journal: true }));
    expect(ext4Of(k2).journalDataFlag(k2.file('f').inode)).toBe(true);
  });

  it('v6.6 dax=inode: EBUSY only for an S_DAX inode (IS_DAX); clearing an unset flag is no change and never refused', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.mkdir({ dir: 'd' }));
    k.run(k.chattr({ dir: 'd', dax: true }));
    k.run(k.create({ file: 'dax', size: PAGE, dir: 'd' }));
    k.run(k.create({ file: 'plain', size: PAGE }));
    k.run(k.chattr({ file: 'dax', journal: false }));
    expect(() => k.run(k.chattr({ file: 'dax', journal: true }))).toThrow(code('EBUSY'));
    k.run(k.chattr({ file: 'plain', journal: true }));
    // S_DAX is not re-decided by the journal change (only at setup)
    expect(statxDax(k, 'plain')).toBe(false);
  });
});

describe('rename (fs/daxmode.ts)', () => {
  it('keeps the flag, S_DAX, the inode and its mapping; no inheritance from the new parent', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.mkdir({ dir: 'x' }));
    k.run(k.chattr({ dir: 'x', dax: true }));
    k.run(k.mkdir({ dir: 'p' }));
    k.run(k.create({ file: 'f', size: PAGE, dir: 'x' }));
    k.run(k.create({ file: 'g', size: PAGE, dir: 'p' }));
    const inode = k.file('f').inode;
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'F' }));
    k.run(k.rename({ file: 'f', into: 'p' }));
    k.run(k.rename({ file: 'g', into: 'x' }));
    expect(k.file('f').inode).toBe(inode);
    expect([daxFlagOf(k, { file: 'f' }), statxDax(k, 'f'), daxFlagOf(k, { file: 'g' }), statxDax(k, 'g')]).toEqual([true, true, false, false]);
    expect(ext4Of(k).parents.get('f')).toBe('p');
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('F');
  });

  it('into a directory of another mount is EXDEV (do_renameat2: the mounts differ); the entry stays where it was', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.probe({ size: 1 << 30, as: 'pmem1' }));
    k.run(k.mount({ device: 'pmem1', dax: 'inode' }));
    k.run(k.mkdir({ dir: 'other', device: 'pmem1' }));
    k.run(k.create({ file: 'f', size: PAGE, device: 'pmem0' }));
    expect(() => k.run(k.rename({ file: 'f', into: 'other' }))).toThrow(code('EXDEV'));
    expect(ext4Of(k).parents.get('f')).toBe('/');
  });

  it('a directory into its own subtree is EINVAL; an unknown target ENOENT; the root EBUSY', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.mkdir({ dir: 'a' }));
    k.run(k.mkdir({ dir: 'b', in: 'a' }));
    k.run(k.mkdir({ dir: 'c', in: 'b' }));
    expect(() => k.run(k.rename({ dir: 'a', into: 'c' }))).toThrow(code('EINVAL'));
    expect(() => k.run(k.rename({ dir: 'a', into: 'a' }))).toThrow(code('EINVAL'));
    expect(() => k.run(k.rename({ dir: 'b', into: 'nowhere' }))).toThrow(code('ENOENT'));
    // moving c to the root first: a into c is then allowed (c is no longer below a)
    k.run(k.rename({ dir: 'c', into: '/' }));
    k.run(k.rename({ dir: 'a', into: 'c' }));
    expect(ext4Of(k).parents.get('a')).toBe('c');
  });
});

describe('fs-verity (ext4_begin_enable_verity, fsverity_file_open) per release', () => {
  it('needs the verity feature: EOPNOTSUPP without', () => {
    const k = mounted('v6.6', 'inode');
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(() => k.run(k.fsverityEnable({ file: 'f' }))).toThrow(code('EOPNOTSUPP'));
  });

  it('v6.6: EINVAL for an S_DAX inode and for a non-DAX inode with EXT4_DAX_FL (dax=never); a verity file refuses +x', () => {
    const k = mounted('v6.6', 'inode', { verity: true });
    k.run(k.chattr({ dir: '/', dax: true }));
    k.run(k.create({ file: 'dax', size: PAGE }));
    expect(() => k.run(k.fsverityEnable({ file: 'dax' }))).toThrow(code('EINVAL'));
    const never = mounted('v6.6', 'never', { verity: true });
    never.run(never.chattr({ dir: '/', dax: true }));
    never.run(never.create({ file: 'flagged', size: PAGE }));
    // S_DAX is off under dax=never, but the flag alone refuses it (ext4_test_inode_flag(EXT4_INODE_DAX))
    expect(statxDax(never, 'flagged')).toBe(false);
    expect(() => never.run(never.fsverityEnable({ file: 'flagged' }))).toThrow(code('EINVAL'));
    never.run(never.chattr({ dir: '/', dax: false }));
    never.run(never.create({ file: 'v', size: PAGE }));
    never.run(never.fsverityEnable({ file: 'v' }));
    expect(() => never.run(never.chattr({ file: 'v', dax: true }))).toThrow(code('EOPNOTSUPP'));
  });

  it('a verity file is never DAX again, even under dax=always; it cannot be opened for writing or truncated; a private writable mapping is fine', () => {
    const k = mounted('v6.6', 'inode', { verity: true });
    k.run(k.create({ file: 'v', size: PAGE }));
    k.run(k.fsverityEnable({ file: 'v' }));
    expect(() => k.run(k.mmap({ file: 'v', length: PAGE, shared: true, write: true, as: 'w' }))).toThrow(code('EPERM'));
    expect(() => k.run(k.truncate({ file: 'v', size: 0 }))).toThrow(code('EPERM'));
    expect(() => k.run(k.punchHole({ file: 'v', offset: 0, length: PAGE }))).toThrow(code('EPERM'));
    k.run(k.mmap({ file: 'v', length: PAGE, write: true, as: 'priv' }));
    k.run(k.munmap({ map: 'priv' }));
    k.run(k.umount({ device: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0', dax: 'always' }));
    expect(statxDax(k, 'v')).toBe(false);
  });

  it('an inline file is converted to a block first (ext4_convert_inline_data)', () => {
    const k = mounted('v6.6', 'inode', { verity: true, inlineData: true });
    k.run(k.create({ file: 's', size: 32, inline: true }));
    k.run(k.fsverityEnable({ file: 's' }));
    expect([ext4Of(k).hasInlineData(k.file('s').inode), k.file('s').inode.blocks.size, ext4Of(k).hasVerity(k.file('s').inode)]).toEqual([false, 1, true]);
  });

  it('v5.4: a DAX file (-o dax) is not modelled: ext4_end_enable_verity re-decides S_DAX of the live inode (unsupported)', () => {
    const k = mounted('v5.4', true, { verity: true });
    k.run(k.create({ file: 'f', size: PAGE }));
    expect(() => k.run(k.fsverityEnable({ file: 'f' }))).toThrow(expect.objectContaining({ code: 'EINVAL', unsupported: expect.any(String) }));
  });
});

