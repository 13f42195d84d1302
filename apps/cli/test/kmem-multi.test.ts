import { createKernel, daxSize, KernelOops, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// kmem over every range of a multi-range device-dax instance (core mm/hotplug.ts;
// drivers/dax/kmem.c dev_dax_kmem_probe() / dev_dax_kmem_remove(), v5.10 "device-dax: add
// dis-contiguous resource support"). x86: memory blocks of 128 MiB, 4 KiB pages, 64-byte struct
// pages, so one block's memmap is 32768 x 64 B = 2 MiB (512 pages).

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BLOCK = 128 * MiB;

/**
 * A 4 GiB dax_hmem region (1 GiB-aligned) where dax0.1 gets two ranges, as daxctl-create.sh
 * test 2 builds them: dax0.0 keeps [0, a), dax0.1 takes [a, a + b), dax0.2 [a + b, a + b + c);
 * dax0.1 is destroyed and created again with b + d bytes: the hole [a, a + b) (mapping0) and
 * [a + b + c, a + b + c + d) after dax0.2 (mapping1). Offsets from the region start.
 */
function twoRanges(version: string, a: number, b: number, c: number, d: number, arch = x86()): { k: Kernel; base: number } {
  const k = createKernel({ arch, driver: devdax(), kernel: version });
  k.run(k.daxBus.createRegion({ size: 4 * GiB, as: 'hmem0' }));
  k.run(k.daxBus.disable('dax0.0'));
  k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: a }));
  expect(k.run(k.daxBus.createDevice({ region: 'hmem0', size: b }))).toBe('dax0.1');
  expect(k.run(k.daxBus.createDevice({ region: 'hmem0', size: c }))).toBe('dax0.2');
  k.run(k.daxBus.disable('dax0.1'));
  k.run(k.daxBus.destroyDevice({ device: 'dax0.1' }));
  expect(k.run(k.daxBus.createDevice({ region: 'hmem0', size: b + d }))).toBe('dax0.1');
  expect(k.daxBus.instance('dax0.1').dev.ranges).toHaveLength(2);
  return { k, base: k.daxBus.region('hmem0').start };
}
/** dax0.1 = [1 GiB, 2 GiB) + [3 GiB, 4 GiB): 8 whole blocks in each range */
const gigs = (version = 'v6.6') => twoRanges(version, GiB, GiB, GiB, GiB);
const mem = (k: Kernel) => k.hotplug.memoryOf('dax0.1')!;
/** the instance whose kmem resource holds physical address `phys` (/proc/iomem), or null */
const kmemAt = (k: Kernel, phys: number): string | null => k.hotplug.rangeAt(phys, phys + 1)?.mem.device ?? null;
const states = (k: Kernel, mapping: number): string[] => [...new Set(mem(k).ranges.find((r) => r.mapping === mapping)!.blocks.map((b) => b.state))];

describe('kmem over a multi-range device-dax instance (dev_dax_kmem_probe(), v5.10)', () => {
  it('each range is its own resource and its own blocks: 2 x 1 GiB = 2 x 8 blocks, 2 MiB of memmap per block', () => {
    const { k, base } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false }));
    const m = mem(k);
    expect(m.ranges.map((r) => [r.mapping, (r.start - base) / GiB, r.size / GiB])).toEqual([
      [0, 1, 1],
      [1, 3, 1],
    ]);
    // block ids are physical address / 128 MiB: 8 from base + 1 GiB, 8 from base + 3 GiB
    expect(m.ranges[0]!.blocks.map((b) => b.id)).toEqual(Array.from({ length: 8 }, (_, i) => (base + GiB) / BLOCK + i));
    expect(m.ranges[1]!.blocks.map((b) => b.id)).toEqual(Array.from({ length: 8 }, (_, i) => (base + 3 * GiB) / BLOCK + i));
    expect(m.blocks).toHaveLength(16);
    // memmap per range: 262144 struct pages x 64 B = 16 MiB (4096 pages); the device 32 MiB
    expect(m.ranges.map((r) => r.vmemmap.vmemmapBytes)).toEqual([16 * MiB, 16 * MiB]);
    expect(m.vmemmap).toMatchObject({ structPages: 524288, vmemmapPages: 8192, vmemmapBytes: 32 * MiB });
    expect(m.size).toBe(2 * GiB);
    expect(m.resourceName).toBe('System RAM (kmem)');
    // /proc/iomem: the gap between the ranges (dax0.2's 1 GiB) is not kmem's
    expect(kmemAt(k, base + GiB)).toBe('dax0.1');
    expect(kmemAt(k, base + 3 * GiB)).toBe('dax0.1');
    expect(kmemAt(k, base + 2 * GiB)).toBeNull();
  });

  it('memmap_on_memory (kmem v6.8+) per range: each of the 16 blocks hosts its own 512-page memmap, none in RAM; onlining gives the allocator the rest of each block', () => {
    const { k } = gigs('v6.15');
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false, memmapOnMemory: true }));
    const m = mem(k);
    expect(m.memmapOnMemory).toBe(true);
    expect(m.vmemmap.detail).toMatchObject({ ramPages: 0, altmapPages: 16 * 512 });
    expect(m.ranges.map((r) => r.vmemmap.detail!.altmapPages)).toEqual([8 * 512, 8 * 512]);
    k.run(k.memoryState({ device: 'dax0.1', online: true, mapping: 1 }));
    // the first page the node-1 allocator hands out is mapping1's first block's 513th page
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'buf' }));
    k.run(k.mbind({ map: 'buf', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(m.ranges[1]!.start / 4096 + 512);
  });

  it('arm64 4K before v5.12: 1 GiB memory blocks (the section), so each 1 GiB range is one block with a 16 MiB memmap', () => {
    const { k, base } = twoRanges('v5.10', GiB, GiB, GiB, GiB, arm64());
    expect(k.hotplug.blockSize).toBe(GiB);
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false }));
    expect(mem(k).ranges.map((r) => [r.mapping, r.blocks.map((b) => b.id)])).toEqual([
      [0, [(base + GiB) / GiB]],
      [1, [(base + 3 * GiB) / GiB]],
    ]);
    expect(mem(k).vmemmap.vmemmapBytes).toBe(32 * MiB);
  });

  it('online/offline per range; offline_pages() moves a page of mapping0 to node 0 although mapping1 keeps node 1 online (do_migrate_range() clears the source node)', () => {
    const { k } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false }));
    expect(k.run(k.memoryState({ device: 'dax0.1', online: true }))).toBe(16);
    // node 1: the first node without boot RAM (numa-nodes 1)
    expect(k.numa.hasMemory(1)).toBe(true);
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'buf' }));
    k.run(k.mbind({ map: 'buf', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'buf', page: 0 })!;
    // ZONE_MOVABLE ranges by address: the page is in mapping0 ([1 GiB, 2 GiB) of the region)
    const r0 = mem(k).ranges[0]!;
    expect(pfn * 4096 >= r0.start && pfn * 4096 < r0.start + r0.size).toBe(true);
    expect(k.run(k.memoryState({ device: 'dax0.1', online: false, mapping: 0 }))).toBe(8);
    expect(states(k, 0)).toEqual(['offline']);
    expect(states(k, 1)).toEqual(['online']);
    expect(k.numa.nodeOf(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(0);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('A');
    expect(k.numa.hasMemory(1)).toBe(true);
    expect(k.run(k.memoryState({ device: 'dax0.1', online: false }))).toBe(8);
    expect(k.numa.hasMemory(1)).toBe(false);
    // a mapping kmem did not add: input error naming the ones it did
    expect(() => k.run(k.memoryState({ device: 'dax0.1', online: true, mapping: 2 }))).toThrow(/mapping 2 of 'dax0.1' has no memory blocks: kmem added mapping 0, 1/);
  });

  it('back to devdax: remove_memory() of both offline ranges, dev_dax_probe() maps both ranges again (2 mappings, 2 GiB)', () => {
    const { k, base } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'devdax', force: true }));
    expect(k.hotplug.added.size).toBe(0);
    const d = k.device('dax0.1');
    expect(d.bound).toBe(true);
    expect(d.ranges!.map((r) => [(r.pfn * 4096 - base) / GiB, (r.pages * 4096) / GiB, r.pgoff])).toEqual([
      [1, 1, 0],
      [3, 1, GiB / 4096],
    ]);
    expect(kmemAt(k, base + 3 * GiB)).toBeNull();
  });

  it('dev_dax_kmem_remove() per range: an offline range goes, a range with a block online leaks ("cannot be hotremoved until the next reboot"); device_dax then EBUSY on it', () => {
    const { k, base } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
    k.run(k.memoryState({ device: 'dax0.1', online: false, mapping: 0 }));
    // ndctl's check refuses while memory is online; the kernel's own unbind does not ask
    expect(errnoOf(() => k.run(k.unbind({ device: 'dax0.1' })))).toBe('EBUSY');
    k.run(k.unbind({ device: 'dax0.1', force: true }));
    expect(k.hotplug.memoryOf('dax0.1')).toBeNull();
    const leaked = k.hotplug.leakedOf('dax0.1')!;
    expect(leaked.ranges.map((r) => r.mapping)).toEqual([1]);
    expect(leaked.blocks).toHaveLength(8);
    // mapping0's resource is released, mapping1's stays System RAM (kmem), its memory on node 1
    expect(kmemAt(k, base + GiB)).toBeNull();
    expect(kmemAt(k, base + 3 * GiB)).toBe('dax0.1');
    expect(k.numa.hasMemory(1)).toBe(true);
    expect(() => k.run(k.bind({ device: 'dax0.1' }))).toThrow(/EBUSY.*mapping1/);
  });

  it('the mapped counter: bound to kmem again, mapping0 is added and mapping1 (still requested) is skipped; its remove_memory() with the leaked blocks online is -EBUSY, with them offline it succeeds and remove_resource(NULL) oopses', () => {
    for (const leakedOnline of [true, false]) {
      const { k } = gigs();
      k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
      k.run(k.memoryState({ device: 'dax0.1', online: false, mapping: 0 }));
      k.run(k.unbind({ device: 'dax0.1', force: true }));
      const old = k.hotplug.leakedOf('dax0.1')!;
      if (!leakedOnline) for (const b of old.blocks) k.run(k.hotplug.offlineBlock(old, b));
      // echo dax0.1 > /sys/bus/dax/drivers/kmem/bind: dev_dax_kmem_probe() again
      const again = k.hotplug.kmemProbe(k.device('dax0.1'), { memmapOnMemory: false });
      expect(again.ranges.map((r) => r.mapping)).toEqual([0]);
      expect(again.skipped.map((s) => s.mapping)).toEqual([1]);
      // the earlier binding's leaked range is still there, under a key of its own
      expect(k.hotplug.leakedOf('dax0.1')).toBe(old);
      if (leakedOnline) {
        expect(k.hotplug.kmemRemove(again)).toBe(true);
        expect(k.hotplug.memoryOf('dax0.1')).toBeNull();
        expect(k.hotplug.leakedOf('dax0.1')).toBe(old);
      } else {
        expect(() => k.hotplug.kmemRemove(again)).toThrow(KernelOops);
      }
    }
  });

  it('request_mem_region() of the first range fails while nothing is added yet: -EBUSY, no memory', () => {
    const { k } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
    // mapping1 offline, mapping0 online: mapping0 leaks
    k.run(k.memoryState({ device: 'dax0.1', online: false, mapping: 1 }));
    k.run(k.unbind({ device: 'dax0.1', force: true }));
    expect(() => k.hotplug.kmemProbe(k.device('dax0.1'), { memmapOnMemory: false })).toThrow(/EBUSY.*mapping0: could not reserve region/);
    expect(k.hotplug.memoryOf('dax0.1')).toBeNull();
  });
});

describe('claims of every range revoke /dev/mem (revoke_devmem() from __request_region(), v5.8, CONFIG_IO_STRICT_DEVMEM)', () => {
  it('enable-device of the two-range instance: dev_dax_probe() requests mapping1 [3 GiB, 4 GiB) too, so a /dev/mem mapping there is zapped (the next store SIGBUS)', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6', features: { 'io-strict-devmem': true } });
    k.run(k.daxBus.createRegion({ size: 4 * GiB, as: 'hmem0' }));
    k.run(k.daxBus.disable('dax0.0'));
    k.run(k.daxBus.resizeDevice({ device: 'dax0.0', size: GiB }));
    k.run(k.daxBus.createDevice({ region: 'hmem0', size: GiB }));
    k.run(k.daxBus.createDevice({ region: 'hmem0', size: GiB }));
    k.run(k.daxBus.disable('dax0.1'));
    k.run(k.daxBus.destroyDevice({ device: 'dax0.1' }));
    k.run(k.daxBus.createDevice({ region: 'hmem0', size: 2 * GiB }));
    k.run(k.daxBus.disable('dax0.1'));
    // mapping1 is idle now: /dev/mem maps it
    const base = k.daxBus.region('hmem0').start;
    k.run(k.mmap({ devmem: true, offset: base + 3 * GiB, length: 2 * MiB, shared: true, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
    expect(k.isMappedIn({ map: 'buf', page: 0 })).toBe(true);
    k.run(k.daxBus.enable('dax0.1'));
    expect(k.isMappedIn({ map: 'buf', page: 0 })).toBe(false);
    expect(errnoOf(() => k.run(k.write({ map: 'buf', page: 0, data: 'y' })))).toBe('SIGBUS');
  });
});

describe('dax_kmem_range(): each range aligned inward to memory blocks, per release', () => {
  it('a 64 MiB range is skipped ("too small after alignment"); a 256 MiB range at 448 MiB holds one block, [512 MiB, 640 MiB)', () => {
    // dax0.0 [0, 64M), hole [64M, 128M) -> mapping0 (64 MiB), dax0.2 [128M, 448M), mapping1
    // [448M, 704M): rounded up to 512M, down to 640M
    const { k, base } = twoRanges('v6.6', 64 * MiB, 64 * MiB, 320 * MiB, 256 * MiB);
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false }));
    const m = mem(k);
    expect(m.ranges.map((r) => [r.mapping, (r.start - base) / MiB, r.size / MiB])).toEqual([[1, 512, 128]]);
    expect(m.skipped).toEqual([]);
    expect(m.vmemmap.vmemmapBytes).toBe(2 * MiB);
    expect(k.run(k.memoryState({ device: 'dax0.1', online: true }))).toBe(1);
  });

  it('no range holds a whole block: v5.10-v5.14 bind kmem with nothing added (the probe returns 0); v5.15+ -EINVAL ("rejecting DAX region without any memory after alignment")', () => {
    // two 64 MiB ranges: [64M, 128M) and [448M, 512M)
    const small = (v: string) => twoRanges(v, 64 * MiB, 64 * MiB, 320 * MiB, 64 * MiB).k;
    const k = small('v5.10');
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
    expect(mem(k).ranges).toEqual([]);
    expect(mem(k).blocks).toEqual([]);
    expect(k.run(k.memoryState({ device: 'dax0.1', online: true }))).toBe(0);
    // nothing to remove: back to devdax at once
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'devdax' }));
    expect(k.device('dax0.1').bound).toBe(true);
    for (const v of ['v6.1', 'v6.6']) {
      const k2 = small(v);
      expect(() => k2.run(k2.reconfigure({ device: 'dax0.1', mode: 'system-ram' }))).toThrow(/EINVAL.*rejecting DAX region without any memory/);
    }
  });

  it('before v5.10 (one range): request_mem_region() of the empty aligned range conflicts: -EBUSY', () => {
    // 128 MiB namespace with its memmap on it: data [6 MiB, 128 MiB) holds no aligned block
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v5.4' });
    k.run(k.probe({ size: 128 * MiB, align: 2 * MiB, altmap: true, as: 'dax0' }));
    expect(() => k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }))).toThrow(/EBUSY.*could not reserve region/);
  });
});

describe('the dax bus around kmem: dev->driver is device_dax, kmem or none (drivers/dax/bus.c)', () => {
  it('size_store() is EBUSY while kmem holds the instance (dev_dax_resize(): dev->driver); enable-device and disable-device leave it in system-ram mode (daxctl_dev_enable(): already enabled; disable_devdax_device(): "is in system-ram mode")', () => {
    const { k } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram', online: false }));
    expect(k.daxBus.driverOf(k.daxBus.instance('dax0.1').dev)).toBe('kmem');
    expect(() => k.run(k.daxBus.resizeDevice({ device: 'dax0.1', size: GiB }))).toThrow(/EBUSY.*bound to kmem/);
    k.run(k.daxBus.enable('dax0.1'));
    expect(mem(k).blocks).toHaveLength(16);
    // daxctl disable-device: "is in system-ram mode", kmem keeps it (the blocks stay, nothing removed)
    k.run(k.daxBus.disable('dax0.1'));
    expect(k.daxBus.driverOf(k.daxBus.instance('dax0.1').dev)).toBe('kmem');
    expect(mem(k).blocks).toHaveLength(16);
  });

  it('a failed kmem probe (v6.6 EINVAL: no whole block) leaves the instance without a driver: resizable, and enable-device binds device_dax again', () => {
    const { k } = twoRanges('v6.6', 64 * MiB, 64 * MiB, 320 * MiB, 64 * MiB);
    expect(() => k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }))).toThrow(/EINVAL/);
    const dev = k.daxBus.instance('dax0.1').dev;
    expect(k.daxBus.driverOf(dev)).toBeNull();
    k.run(k.daxBus.disable('dax0.1'));
    // dev_dax_shrink() of the last range: [448M, 512M) goes, the 64 MiB hole stays
    k.run(k.daxBus.resizeDevice({ device: 'dax0.1', size: 64 * MiB }));
    k.run(k.daxBus.enable('dax0.1'));
    expect(k.daxBus.driverOf(dev)).toBe('device_dax');
    expect(k.device('dax0.1').dataPages).toBe((64 * MiB) / 4096);
  });

  it('after a leak: disable-device has nothing to unbind, destroy-device frees the dax ranges, and a new instance over the leaked range cannot bind device_dax (EBUSY) while one beside it can', () => {
    const { k, base } = gigs();
    k.run(k.reconfigure({ device: 'dax0.1', mode: 'system-ram' }));
    k.run(k.memoryState({ device: 'dax0.1', online: false, mapping: 1 }));
    // mapping0 [1 GiB, 2 GiB) leaks, mapping1 [3 GiB, 4 GiB) is removed
    k.run(k.unbind({ device: 'dax0.1', force: true }));
    k.run(k.daxBus.disable('dax0.1'));
    k.run(k.daxBus.destroyDevice({ device: 'dax0.1' }));
    // create_store() + size: the lowest free space first, the hole [1 GiB, 2 GiB): held by the leak
    expect(() => k.run(k.daxBus.createDevice({ region: 'hmem0', size: GiB }))).toThrow(/EBUSY.*could not reserve range/);
    const held = k.daxBus.instance('dax0.1').dev;
    expect(held.ranges.map((r) => (r.start - base) / GiB)).toEqual([1]);
    expect(k.daxBus.driverOf(held)).toBeNull();
    // create-device again: create_store() makes dax0.3, but the region's seed stays the first
    // instance not bound, dax0.1 ("only the first one that has not been successfully bound is
    // tracked as the region seed"), which daxctl takes: EBUSY again
    expect(() => k.run(k.daxBus.createDevice({ region: 'hmem0', size: GiB }))).toThrow(/EBUSY.*dax0.1/);
    expect(daxSize(k.daxBus.instance('dax0.3').dev)).toBe(0);
    // sized by hand dax0.3 gets the lowest free space, [3 GiB, 4 GiB), which kmem released: it binds
    k.run(k.daxBus.resizeDevice({ device: 'dax0.3', size: GiB }));
    k.run(k.daxBus.enable('dax0.3'));
    expect(k.daxBus.instance('dax0.3').dev.ranges.map((r) => (r.start - base) / GiB)).toEqual([3]);
    expect(k.daxBus.driverOf(k.daxBus.instance('dax0.3').dev)).toBe('device_dax');
  });
});
