import { createKernel, InputError, KernelError, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// ext4 on a device-mapper linear device over pmem namespaces (ndctl test/dm.sh; dax/dm.ts).
// dm_table_supports_dax(): the dm device offers DAX when every target's device does; a DAX
// access at dm page p of a target [start, start + length) at `offset` of its namespace is
// linear_dax_direct_access(): page offset/4K + (p - start/4K) of that namespace's block device,
// whose pmem_dax_direct_access() adds the data offset (the namespace's dataPfn here).

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4 * KiB;

function pmem(version = 'v6.6', size = 64 * MiB): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size, altmap: true, as: 'pmem0' }));
  k.run(k.probe({ size, altmap: true, as: 'pmem1' }));
  return k;
}

/** The error a step throws (a KernelError's errno, or the InputError). */
function failure(f: () => unknown): KernelError | InputError {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError || e instanceof InputError) return e;
    throw e;
  }
  throw new Error('the step succeeded');
}

/** The base-page leaf mapping page `page` of mapping `map` in init: its pfn and how many pages it maps. */
function leaf(k: Kernel, map: string, page: number): { pfn: number; pages: number } {
  const vma = k.map(map);
  const l = k.vm.lookup(k.process(undefined), vma.start + page)!;
  return { pfn: k.pfnOf({ map, page })!, pages: l.pages };
}

/** ext4 on dm device 'dm' with this table, file 'a' of `size` on it mapped shared as 'm' */
function mappedFile(table: { start: number; length: number; device: string; offset?: number }[], size: number): Kernel {
  const k = pmem();
  k.run(k.dmCreate({ name: 'dm', table }));
  k.run(k.mount({ device: 'dm' }));
  k.run(k.create({ file: 'a', size, device: 'dm' }));
  k.run(k.mmap({ file: 'a', length: size, shared: true, write: true, as: 'm' }));
  return k;
}

describe('dm-linear over fsdax namespaces: DAX pass-through', () => {
  it('a file block in the second target is a page of the second namespace, at its offset there', () => {
    const k = pmem();
    k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 2 * MiB, device: 'pmem0' }, { start: 2 * MiB, length: 2 * MiB, device: 'pmem1', offset: 4 * MiB }] }));
    k.run(k.mount({ device: 'dm' }));
    // first fit: 'a' takes the first target's 512 blocks, 'b' the dm device's block 512
    k.run(k.create({ file: 'a', size: 2 * MiB, device: 'dm' }));
    k.run(k.create({ file: 'b', size: 2 * PAGE, device: 'dm' }));
    const pmem0 = k.device('pmem0');
    const pmem1 = k.device('pmem1');
    expect(k.pfnOf({ file: 'a', page: 0 })).toBe(pmem0.dataPfn);
    expect(k.pfnOf({ file: 'a', page: 511 })).toBe(pmem0.dataPfn + 511);
    // 4 MiB into pmem1's block device: 1024 pages past its first data page
    expect(k.pfnOf({ file: 'b', page: 0 })).toBe(pmem1.dataPfn + 1024);
    expect(k.pfnOf({ file: 'b', page: 1 })).toBe(pmem1.dataPfn + 1025);
    // a DAX fault maps that very page, a ZONE_DEVICE page of pmem1's dev_pagemap
    k.run(k.mmap({ file: 'b', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 1, data: 'second target' }));
    expect(leaf(k, 'm', 1)).toEqual({ pfn: pmem1.dataPfn + 1025, pages: 1 });
    expect(k.memremap.pgmapOf(pmem1.dataPfn + 1025)).toBe(pmem1.pgmap);
    expect(k.pages.data.get(pmem1.dataPfn + 1025)).toBe('second target');
    // and back: the pfn is the dm device's block 513, file 'b' page 1
    const fs = k.file('b').fs;
    expect(fs.blocks.blockOfPfn(pmem1.dataPfn + 1025)).toBe(513);
    expect(fs.ownerOfPfn(pmem1.dataPfn + 1025)).toBe('b[1]');
    // pmem1's pages before the target's offset are no block of the dm device
    expect(fs.blocks.blockOfPfn(pmem1.dataPfn)).toBeNull();
  });

  it('a PMD fault maps 2 MiB of one target, and falls back to PTEs where 2 MiB of the file spans two targets', () => {
    // targets of 2 MiB at 2 MiB-aligned offsets: the PMD-aligned run of blocks is one aligned pfn run
    const k = mappedFile([{ start: 0, length: 2 * MiB, device: 'pmem0', offset: 2 * MiB }, { start: 2 * MiB, length: 2 * MiB, device: 'pmem1' }], 4 * MiB);
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    k.run(k.write({ map: 'm', page: 512, data: 'y' }));
    expect(leaf(k, 'm', 0)).toEqual({ pfn: k.device('pmem0').dataPfn + 512, pages: 512 });
    expect(leaf(k, 'm', 512)).toEqual({ pfn: k.device('pmem1').dataPfn, pages: 512 });

    // a 1 MiB first target: blocks 0-511 are 256 pages of pmem0 then 256 of pmem1, so
    // dm_dax_direct_access() returns fewer pages than the PMD and dax_iomap_pmd_fault() falls back
    const j = mappedFile([{ start: 0, length: 1 * MiB, device: 'pmem0' }, { start: 1 * MiB, length: 3 * MiB, device: 'pmem1' }], 2 * MiB);
    j.run(j.write({ map: 'm', page: 255, data: 'end of pmem0' }));
    j.run(j.write({ map: 'm', page: 256, data: 'start of pmem1' }));
    expect(leaf(j, 'm', 255)).toEqual({ pfn: j.device('pmem0').dataPfn + 255, pages: 1 });
    expect(leaf(j, 'm', 256)).toEqual({ pfn: j.device('pmem1').dataPfn, pages: 1 });
    expect(j.pages.data.get(j.device('pmem1').dataPfn)).toBe('start of pmem1');
  });

  it('the namespaces stay claimed until dm-remove: their own mount, disable and reconfigure are EBUSY', () => {
    const k = pmem();
    k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 4 * MiB, device: 'pmem0' }, { start: 4 * MiB, length: 4 * MiB, device: 'pmem1' }] }));
    expect((failure(() => k.run(k.mount({ device: 'pmem1' }))) as KernelError).code).toBe('EBUSY');
    expect((failure(() => k.run(k.unbind({ device: 'pmem0' }))) as KernelError).code).toBe('EBUSY');
    expect((failure(() => k.run(k.reconfigureNamespace({ device: 'pmem1', mode: 'devdax' }))) as KernelError).code).toBe('EBUSY');
    k.run(k.mount({ device: 'dm' }));
    // dm_lock_for_deletion(): the mounted device is open
    expect((failure(() => k.run(k.dmRemove({ name: 'dm' }))) as KernelError).code).toBe('EBUSY');
    k.run(k.umount({ device: 'dm' }));
    k.run(k.dmRemove({ name: 'dm' }));
    k.run(k.mount({ device: 'pmem1' }));
    // a mounted namespace cannot go into a table: dm_get_device() cannot claim it
    expect((failure(() => k.run(k.dmCreate({ name: 'again', table: [{ start: 0, length: 4 * MiB, device: 'pmem1' }] }))) as KernelError).code).toBe('EBUSY');
    expect(k.dmDevices.has('again')).toBe(false);
  });

  it('a disabled namespace has no block device to put in a table (ENXIO)', () => {
    const k = pmem();
    k.run(k.unbind({ device: 'pmem1' }));
    expect((failure(() => k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 4 * MiB, device: 'pmem1' }] }))) as KernelError).code).toBe('ENXIO');
  });

  it('memory failure of a page under the dm filesystem is reported as not modelled', () => {
    const k = pmem();
    k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 4 * MiB, device: 'pmem0' }] }));
    k.run(k.mount({ device: 'dm' }));
    k.run(k.create({ file: 'a', size: PAGE, device: 'dm' }));
    k.run(k.mmap({ file: 'a', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    const e = failure(() => k.run(k.memoryFailure({ map: 'm', page: 0 })));
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).unsupported).not.toBeNull();
  });
});

describe('dm-linear with a raw namespace in the table: no DAX for the dm device', () => {
  function mixed(version: string): Kernel {
    const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
    k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem0' }));
    k.run(k.probeRaw({ size: 64 * MiB, as: 'pmem1' }));
    k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 32 * MiB, device: 'pmem0' }, { start: 32 * MiB, length: 32 * MiB, device: 'pmem1' }] }));
    return k;
  }

  for (const v of ['v5.4', 'v5.10', 'v6.1', 'v6.6', 'latest']) {
    it(`${v}: ext4 -o dax fails with EINVAL ("DAX unsupported by block device"), the kernel's answer`, () => {
      const e = failure(() => mixed(v).run(mixed(v).mount({ device: 'dm' })));
      expect(e).toBeInstanceOf(KernelError);
      expect({ code: (e as KernelError).code, unsupported: (e as KernelError).unsupported }).toEqual({ code: 'EINVAL', unsupported: null });
      expect(e.message).toMatch(/raw-mode namespace pmem1/);
    });
  }

  it('one raw target is enough, wherever it is: a table of the fsdax namespace alone mounts', () => {
    const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probeRaw({ size: 64 * MiB, as: 'pmem0' }));
    k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem1' }));
    k.run(k.dmCreate({ name: 'rawfirst', table: [{ start: 0, length: 4 * MiB, device: 'pmem0' }, { start: 4 * MiB, length: 4 * MiB, device: 'pmem1' }] }));
    expect((failure(() => k.run(k.mount({ device: 'rawfirst' }))) as KernelError).code).toBe('EINVAL');
    k.run(k.dmCreate({ name: 'daxonly', table: [{ start: 0, length: 4 * MiB, device: 'pmem1', offset: 8 * MiB }] }));
    k.run(k.mount({ device: 'daxonly' }));
    k.run(k.create({ file: 'f', size: PAGE, device: 'daxonly' }));
    expect(k.pfnOf({ file: 'f', page: 0 })).toBe(k.device('pmem1').dataPfn + 2048);
  });

  it('without a dax option ext4 would mount without DAX: not modelled (unsupported)', () => {
    const k = mixed('v6.6');
    const e = failure(() => k.run(k.mount({ device: 'dm', dax: false }))) as KernelError;
    expect(e.code).toBe('EOPNOTSUPP');
    expect(e.unsupported).not.toBeNull();
  });
});

describe('dm-create input', () => {
  const bad = (table: { start: number; length: number; device: string; offset?: number }[]): InputError => {
    const e = failure(() => pmem().run(pmem().dmCreate({ name: 'dm', table })));
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  };

  it('targets must adjoin from 0 ("Gap in table"): a gap, an overlap, a first target not at 0', () => {
    const gap = bad([{ start: 0, length: 4 * MiB, device: 'pmem0' }, { start: 8 * MiB, length: 4 * MiB, device: 'pmem1' }]);
    expect(gap.field).toBe('table[1].start');
    expect(gap.message).toMatch(/starts at 8388608 bytes but the one before ends at 4194304.*Gap in table.*start it at 4194304/);
    expect(bad([{ start: 0, length: 4 * MiB, device: 'pmem0' }, { start: 2 * MiB, length: 4 * MiB, device: 'pmem1' }]).field).toBe('table[1].start');
    expect(bad([{ start: 4 * MiB, length: 4 * MiB, device: 'pmem0' }]).field).toBe('table[0].start');
  });

  it('an unknown device, a device-dax instance, a target past the end of its device, a split page', () => {
    expect(bad([{ start: 0, length: 4 * MiB, device: 'pmem9' }]).message).toMatch(/unknown device 'pmem9'; probe a pmem namespace first/);
    // 64 MiB namespaces: their data is 62 MiB (a 2 MiB info block + memmap reserve)
    const past = bad([{ start: 0, length: 4 * MiB, device: 'pmem0', offset: 60 * MiB }]);
    expect(past.field).toBe('table[0].length');
    expect(past.message).toMatch(/reaches past the end of 'pmem0' \(65011712 bytes of data\)/);
    expect(bad([{ start: 0, length: 4 * MiB + 512, device: 'pmem0' }]).field).toBe('table[0].length');
    expect(bad([{ start: 0, length: 0, device: 'pmem0' }]).field).toBe('table[0].length');
    const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * MiB, altmap: true, as: 'pmem0' }));
    k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 62 * MiB, device: 'pmem0' }] }));
    expect(failure(() => k.run(k.dmCreate({ name: 'dm', table: [{ start: 0, length: 4 * MiB, device: 'pmem0' }] })))).toBeInstanceOf(InputError);
    // the dm device is no namespace: steps that want one say so
    expect(failure(() => k.device('dm')).message).toMatch(/'dm' is a device-mapper device/);
    expect(failure(() => k.run(k.dmRemove({ name: 'pmem0' })))).toBeInstanceOf(InputError);
  });
});
