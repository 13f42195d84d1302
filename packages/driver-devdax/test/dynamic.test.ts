import { availableSize, createKernel, daxSize, type Kernel, type Op } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '../src/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A 4 GiB dax_hmem region (dax0.0 spanning it, enabled), as daxctl-create.sh finds it. */
function boot(version = 'v6.6'): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.daxBus.createRegion({ size: 4 * GiB, as: 'hmem0' }));
  return k;
}
const region = (k: Kernel) => k.daxBus.region('hmem0');
const dev = (k: Kernel, name: string) => k.daxBus.instance(name).dev;
/** daxctl create-device, and the name the kernel gave (the region ida's lowest free id) */
function* createAs(k: Kernel, a: Parameters<Kernel['daxBus']['createDevice']>[0], as: string): Op {
  expect(yield* k.daxBus.createDevice(a)).toBe(as);
}
/** the instance's ranges as [start, length] in GiB from the region start */
const layout = (k: Kernel, name: string): number[][] => dev(k, name).ranges.map((r) => [(r.start - region(k).start) / GiB, (r.end - r.start + 1) / GiB]);

describe('dynamic device-dax regions (drivers/dax/bus.c, v5.10)', () => {
  it('dax_hmem: instance 0 spans the region, enabled, with one mapping; nothing is available', () => {
    const k = boot();
    expect(layout(k, 'dax0.0')).toEqual([[0, 4]]);
    expect(availableSize(region(k))).toBe(0);
    expect(k.device('dax0.0').dataPages).toBe((4 * GiB) / 4096);
  });

  it('create_store(): ENOSPC on a full region; a disabled instance resized to 0 gives the space back', () => {
    const k = boot();
    expect(() => k.run(createAs(k, { region: 'hmem0', size: GiB }, 'dax0.1'))).toThrow(/ENOSPC/);
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: 0 }));
    expect(availableSize(region(k))).toBe(4 * GiB);
    // create-device without -s takes all of it; the ida gives id 1 (0 is taken)
    k.run(createAs(k, { region: 'hmem0' }, 'dax0.1'));
    expect(layout(k, 'dax0.1')).toEqual([[0, 4]]);
  });

  it('dev_dax_resize() refusals: EBUSY while enabled, EINVAL off the 2 MiB granule, ENOSPC beyond the free space; delete_store() keeps instance 0', () => {
    const k = boot();
    expect(() => k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: 2 * GiB }))).toThrow(/EBUSY/);
    k.run(k.daxBus.disable('dax0.0'));
    // 1 MiB is a multiple of neither dev_dax->align (2 MiB) nor memremap_compat_align() (2 MiB)
    expect(() => k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB + MiB }))).toThrow(/EINVAL/);
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB }));
    k.run(createAs(k, { region: 'hmem0', size: 2 * GiB }, 'dax0.1'));
    // 1 GiB is free: asking dax0.0 for 1 GiB + 2 MiB more is ENOSPC, and nothing changes
    expect(() => k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: 2 * GiB + 2 * MiB }))).toThrow(/ENOSPC/);
    expect(layout(k, 'dax0.0')).toEqual([[0, 1]]);
    // destroy: size 0 first (its GiB back), then delete_store() refuses id 0
    expect(() => k.run(k.daxBus.destroyDevice({ device: 'dax0.0' }))).toThrow(/EBUSY/);
    expect(daxSize(dev(k, 'dax0.0'))).toBe(0);
    expect(availableSize(region(k))).toBe(2 * GiB);
    // dax_bus_probe(): a 0-size instance does not bind
    expect(() => k.run(k.daxBus.enable('dax0.0'))).toThrow(/ENXIO/);
  });

  it('test 5: growth into the region start is a new range (pgoff order kept); growth after the last range extends it', () => {
    const k = boot();
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: 0 }));
    for (const n of [1, 2, 3, 4]) k.run(createAs(k, { region: 'hmem0', size: GiB }, `dax0.${n}`));
    for (const n of [1, 4]) {
      k.run(k.daxBus.disable(`dax0.${n}`));
      k.run(k.daxBus.destroyDevice({ device: `dax0.${n}` }));
    }
    k.run(k.daxBus.disable('dax0.2'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.2', size: 2 * GiB }));
    // [1, 2) GiB kept as range 0 (pgoff 0); the first free space is [0, 1): range 1 at pgoff 1 GiB
    expect(layout(k, 'dax0.2')).toEqual([[1, 1], [0, 1]]);
    expect(dev(k, 'dax0.2').ranges.map((r) => r.offset)).toEqual([0, GiB]);
    k.run(k.daxBus.disable('dax0.3'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.3', size: 2 * GiB }));
    expect(layout(k, 'dax0.3')).toEqual([[2, 2]]);
    // the seed is gone after each bind, and ids 1 and 4 are free again: the next one is dax0.1
    expect(availableSize(region(k))).toBe(0);
  });

  it('test 4: two instances growing in turn interleave: four ranges each, shrink to 0 gives back all four', () => {
    const k = boot();
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB / 2 }));
    k.run(createAs(k, { region: 'hmem0', size: GiB / 2 }, 'dax0.1'));
    k.run(k.daxBus.disable('dax0.1'));
    for (const size of [GiB, 1.5 * GiB, 2 * GiB]) {
      k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size }));
      k.run(k.daxBus.resizeDevice({ device: 'dax0.1', size }));
    }
    // each growth lands after the other's last range (adjust_ok() fails): 0, 1, 2, 3 GiB for
    // dax0.0 and 0.5, 1.5, 2.5, 3.5 GiB for dax0.1, half a GiB each
    expect(layout(k, 'dax0.0')).toEqual([[0, 0.5], [1, 0.5], [2, 0.5], [3, 0.5]]);
    expect(layout(k, 'dax0.1')).toEqual([[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [3.5, 0.5]]);
    // dev_dax_shrink() to 768 MiB: the last two ranges go, the second is trimmed to 256 MiB
    k.run(k.daxBus.resizeDevice({ device: 'dax0.1', size: 768 * MiB }));
    expect(layout(k, 'dax0.1')).toEqual([[0.5, 0.5], [1.5, 0.25]]);
    expect(availableSize(region(k))).toBe(4 * GiB - 2 * GiB - 768 * MiB);
  });

  it('dev_dax_probe() of a multi-range instance: every range memremapped, faults find the page by dev_dax_pgoff_to_phys(), disable unmaps all', () => {
    const k = boot();
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB }));
    k.run(createAs(k, { region: 'hmem0', size: GiB }, 'dax0.1'));
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: 2 * GiB }));
    k.run(k.daxBus.enable('dax0.0'));
    const d = k.device('dax0.0');
    expect(d.ranges?.length).toBe(2);
    const [r0, r1] = d.ranges!;
    // range 1 is the region's [2, 3) GiB, after dax0.1's [1, 2) GiB
    expect(r1!.pfn - r0!.pfn).toBe((2 * GiB) / 4096);
    expect(r1!.pgmap).not.toBe(r0!.pgmap);
    k.run(k.mmap({ device: 'dax0.0', length: 2 * GiB, shared: true, write: true, as: 'm' }));
    // device page 262144 + 5 is the 6th page of range 1
    k.run(k.write({ map: 'm', page: GiB / 4096 + 5, data: 'A' }));
    expect(k.pfnOf({ map: 'm', page: GiB / 4096 + 5 })).toBe(r1!.pfn + 5);
    k.run(k.munmap({ map: 'm' }));
    k.run(k.daxBus.disable('dax0.0'));
    expect([r0!.pgmap.gone, r1!.pgmap.gone]).toEqual([true, true]);
  });

  it('test 7: mapping_store() claims exact ranges in the order given (ENXIO off the granule, ENOMEM when taken)', () => {
    const k = boot();
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB }));
    // [0, 1) GiB is dax0.0's: __request_region() fails
    expect(() => k.run(createAs(k, { region: 'hmem0', mappings: [{ offset: GiB / 2, size: GiB }] }, 'dax0.1'))).toThrow(/ENOMEM/);
    // 1 MiB is not a multiple of 2 MiB: mapping_store() leaves rc at -ENXIO. create_store() made
    // dax0.2 this time, but daxctl takes the seed, still the 0-size dax0.1
    expect(() => k.run(createAs(k, { region: 'hmem0', mappings: [{ offset: 2 * GiB, size: MiB }] }, 'dax0.1'))).toThrow(/ENXIO/);
    // the later range first: pgoff order is the order of the writes, not of the addresses
    k.run(createAs(k, { region: 'hmem0', size: 2 * GiB, mappings: [{ offset: 3 * GiB, size: GiB }, { offset: GiB, size: GiB }] }, 'dax0.1'));
    expect(layout(k, 'dax0.1')).toEqual([[3, 1], [1, 1]]);
    expect(dev(k, 'dax0.1').ranges.map((r) => r.offset)).toEqual([0, GiB]);
    // device page 0 is at 3 GiB into the region
    expect(k.device('dax0.1').ranges![0]!.pfn - region(k).start / 4096).toBe((3 * GiB) / 4096);
    expect([...region(k).devices.keys()]).toEqual([0, 1, 2, 3]);
  });

  it('before v5.10 regions are static: the steps are unsupported', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v5.4' });
    expect(() => k.run(k.daxBus.createRegion({ size: 4 * GiB, as: 'hmem0' }))).toThrow(/v5\.10/);
  });
});
