import { createKernel, type Kernel } from '@daxlab/core';
import { errnoOf, testArch } from '@daxlab/core/testing';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { devdax } from '../src/index.js';

// ndctl enable-namespace (`bind`) of a devdax namespace with its memmap on the device: the same
// info-block read and memmap-area clear as an fsdax one (driver-nvdimm pfn-meta-errors tests),
// reached through nd_pmem_probe() -> nd_dax_probe() -> nd_pfn_validate(DAX_SIG) and dax_pmem's
// nvdimm_setup_pfn() -> nd_pfn_init(). Errors are put in with memory-failure { device, block }.
//
// Small layout (testArch, 4 KiB pages): 32 MiB at align 2 MiB, npfns = (32 MiB - 8 KiB) / 4 KiB
// = 8190, dataoff = ALIGN(8 KiB + 64 * 8190, 2 MiB) = 2 MiB = block 4096. The info block is bytes
// 4096..8191 = blocks 8..15; nd_pfn_clear_memmap_errors() covers blocks 16..4095.
// kmem layout (x86): 256 MiB, dataoff = ALIGN(8 KiB + 64 * 65534, 2 MiB) = 6 MiB = block 12288.

const MiB = 1 << 20;

function small(version: string): Kernel {
  const k = createKernel({ arch: testArch(), driver: devdax(), kernel: version });
  k.run(k.probe({ size: 32 * MiB, altmap: true, as: 'dax0' }));
  return k;
}

function forKmem(version: string): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: true, as: 'dax0' }));
  return k;
}

const inject = (k: Kernel, block: number, count: number): void => void k.run(k.memoryFailure({ device: 'dax0', block, count }));
const left = (k: Kernel): number => k.metadataBadblocksIn({ device: 'dax0' });

describe('enable-namespace of a devdax namespace clears its memmap area', () => {
  // v5.4: the clear is the tail of nd_pfn_validate() (48af2f7e52f4, v4.20); from c1f45d86a522
  // (v5.5) nd_pfn_init() calls it after validating: either way once per enable
  for (const v of ['v5.4', 'v5.10', 'v6.6', 'latest']) {
    it(`${v}: 32 blocks at 2040 stay while the namespace is enabled and are gone after disable + enable`, () => {
      const k = small(v);
      inject(k, 2040, 32);
      expect(left(k)).toBe(32);
      k.run(k.unbind({ device: 'dax0' }));
      expect(left(k)).toBe(32); // the bus's list outlives the disable
      k.run(k.bind({ device: 'dax0' }));
      expect(left(k)).toBe(0);
      expect(k.device('dax0').bound).toBe(true);
    });
  }

  it('blocks 0..7 (before the info block) are not the clear\'s: meta_start is (4 KiB + 4 KiB) >> 9 = 16', () => {
    const k = small('latest');
    inject(k, 0, 8);
    inject(k, 16, 1);
    k.run(k.unbind({ device: 'dax0' }));
    k.run(k.bind({ device: 'dax0' }));
    expect(left(k)).toBe(8);
  });
});

describe('a badblock in a devdax namespace\'s info block', () => {
  it('nd_dax_probe() fails validation (-ENXIO) and nd_pmem_probe() attaches the namespace as a raw disk, as for fsdax', () => {
    // block 12 is byte 6144, inside the 4 KiB info block at 4096: nvdimm_read_bytes() -> -EIO
    const k = small('latest');
    const phys = k.device('dax0').pgmap.startPfn * k.mmu.basePageSize;
    inject(k, 12, 1);
    k.run(k.unbind({ device: 'dax0' }));
    k.run(k.bind({ device: 'dax0' }));
    expect(k.devices.has('dax0')).toBe(false);
    expect(k.rawNamespaces.get('dax0')).toEqual({ name: 'dax0', size: 32 * MiB, phys });
  });

  it('the first block after it (16) does not stop validation: cleared, the instance comes back', () => {
    const k = small('latest');
    inject(k, 15, 1); // the info block's last block: raw
    k.run(k.unbind({ device: 'dax0' }));
    k.run(k.bind({ device: 'dax0' }));
    expect(k.devices.has('dax0')).toBe(false);

    const k2 = small('latest');
    inject(k2, 16, 1);
    k2.run(k2.unbind({ device: 'dax0' }));
    k2.run(k2.bind({ device: 'dax0' }));
    expect(k2.device('dax0').bound).toBe(true);
    expect(k2.metadataBadblocksIn({ device: 'dax0' })).toBe(0);
  });
});

describe('a devdax namespace kmem holds or held', () => {
  it('kmem holds it: bind is EBUSY as before and nothing reads or clears the metadata; reconfigure to devdax re-probes device_dax only (no clear)', () => {
    const k = forKmem('v6.6');
    inject(k, 2040, 32);
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(errnoOf(() => k.run(k.bind({ device: 'dax0' })))).toBe('EBUSY');
    expect(left(k)).toBe(32);
    // daxctl reconfigure-device -m devdax: kmem removed (blocks offline), dev_dax_probe() again;
    // the namespace was never disabled, so nd_pmem_probe() / nd_pfn_init() do not run
    k.run(k.reconfigure({ device: 'dax0', mode: 'devdax' }));
    expect(k.device('dax0').bound).toBe(true);
    expect(left(k)).toBe(32);
    k.run(k.unbind({ device: 'dax0' }));
    k.run(k.bind({ device: 'dax0' }));
    expect(left(k)).toBe(0);
  });

  // Forced disable with the memory online: kmem's region of the data range leaks (kmem.test.ts).
  // enable-namespace: before v5.5 devm_nsio_enable() requests the whole namespace first and fails
  // EBUSY before any read; from 8f4b01fcded2 (v5.5) only nd_info_block_reserve() is requested at
  // probe and the metadata up to dataoff at the clear, so both run and dev_dax_probe() is what
  // meets the leaked range
  for (const [v, remaining] of [['v5.4', 32], ['v6.6', 0]] as const) {
    it(`${v}: the range kmem leaked makes enable EBUSY; the memmap area has ${remaining} bad blocks left`, () => {
      const k = forKmem(v);
      inject(k, 2040, 32);
      k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
      k.run(k.unbind({ device: 'dax0', force: true }));
      expect(k.hotplug.leakedOf('dax0')).not.toBeNull();
      expect(() => k.run(k.bind({ device: 'dax0' }))).toThrow(/never released/);
      expect(left(k)).toBe(remaining);
      expect(k.devices.has('dax0')).toBe(true);
    });
  }

  it('v6.6, leaked range and an unreadable info block: the raw disk cannot claim the namespace either (EBUSY, no raw namespace)', () => {
    const k = forKmem('v6.6');
    inject(k, 12, 1);
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
    k.run(k.unbind({ device: 'dax0', force: true }));
    expect(() => k.run(k.bind({ device: 'dax0' }))).toThrow(/pmem_attach_disk\(\) could not reserve the namespace/);
    expect(k.rawNamespaces.has('dax0')).toBe(false);
    expect(k.devices.has('dax0')).toBe(true);
  });
});
