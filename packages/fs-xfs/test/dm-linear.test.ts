import { createKernel, KernelError, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// XFS on a device-mapper linear device (dax/dm.ts): with DAX when every target's namespace has
// it (dm_table_supports_dax()), the file's pages those of the target's namespace; with a raw
// namespace in the table the dm device has no DAX, and XFS, unlike ext4, turns DAX off and
// mounts (xfs_setup_dax_always(): "DAX unsupported by block device. Turning off DAX."): a
// page-cache XFS, not modelled.

const MiB = 1024 * 1024;

function boot(version: string, second: 'fsdax' | 'raw'): Kernel {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem0' }));
  if (second === 'raw') k.run(k.probeRaw({ size: 64 * MiB, as: 'pmem1' }));
  else k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem1' }));
  k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 1 * MiB, device: 'pmem0' }, { start: 1 * MiB, length: 8 * MiB, device: 'pmem1', offset: 2 * MiB }] }));
  return k;
}

describe('xfs on dm-linear', () => {
  for (const v of ['v5.4', 'v6.6', 'latest']) {
    it(`${v}: over two fsdax namespaces the files are DAX, a block of the second target a page of pmem1`, () => {
      const k = boot(v, 'fsdax');
      k.run(k.mount({ device: 'dm' }));
      k.run(k.create({ file: 'a', size: 1 * MiB, device: 'dm' }));
      k.run(k.create({ file: 'b', size: 4096, device: 'dm' }));
      expect(k.file('b').inode.cache).toBeFalsy();
      // dm block 256 = the second target's first page = pmem1's block-device page 512 (2 MiB in)
      expect(k.pfnOf({ file: 'b', page: 0 })).toBe(k.device('pmem1').dataPfn + 512);
      k.run(k.mmap({ file: 'b', length: 4096, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: 'on pmem1' }));
      expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.device('pmem1').dataPfn + 512);
      expect(k.pages.data.get(k.device('pmem1').dataPfn + 512)).toBe('on pmem1');
    });

    it(`${v}: with a raw namespace in the table -o dax turns DAX off and mounts (not modelled), it does not fail`, () => {
      const k = boot(v, 'raw');
      let e: unknown = null;
      try {
        k.run(k.mount({ device: 'dm' }));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(KernelError);
      expect({ code: (e as KernelError).code, unsupported: (e as KernelError).unsupported !== null }).toEqual({ code: 'EOPNOTSUPP', unsupported: true });
      expect((e as Error).message).toMatch(/Turning off DAX/);
      expect((e as Error).message).toMatch(/raw-mode namespace pmem1/);
    });
  }
});
