import { createKernel, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// device-dax as System RAM (core mm/hotplug.ts): kmem's hot-add of a device-dax range, the
// memory blocks' states, daxctl's and ndctl's refusals, and the kernel's one-shot hot-remove.

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function boot(version: string, size = 256 * MiB, altmap = true): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.probe({ size, align: 2 * MiB, altmap, as: 'dax0' }));
  return k;
}
const states = (k: Kernel): string[] => k.hotplug.memoryOf('dax0')!.blocks.map((b) => `${b.state}:${b.zone ?? '-'}`);

describe('kmem: device-dax hot-added as System RAM', () => {
  it('the range is aligned inward to 128 MiB blocks: 256 MiB with its memmap on the namespace (data from 6 MiB) holds one block, without it two', () => {
    // altmap: 8 KiB info block + 64 B x 65534 pfns = 4202368 bytes, rounded up to 2 MiB = 6 MiB;
    // [6 MiB, 256 MiB) of a 1 GiB-aligned namespace holds only the block [128 MiB, 256 MiB)
    const k = boot('v6.6');
    const start = k.device('dax0').pgmap.startPfn * 4096;
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    const mem = k.hotplug.memoryOf('dax0')!;
    expect(mem.start).toBe(start + 128 * MiB);
    expect(mem.size).toBe(128 * MiB);
    expect(mem.blocks.map((b) => b.id)).toEqual([(start + 128 * MiB) / (128 * MiB)]);
    expect(states(k)).toEqual(['offline:-']);
    // the memmap of the added block in RAM: 32768 struct pages x 64 B = 2 MiB (the "2 MiB per
    // 128 MiB memory block" of Documentation/admin-guide/mm/memory-hotplug.rst)
    expect(mem.vmemmap).toMatchObject({ structPages: 32768, vmemmapPages: 512, vmemmapBytes: 2 * MiB, detail: { ramPages: 512, altmapPages: 0 } });
    // the device_dax side is unbound: its pgmap is gone
    expect(k.device('dax0').pgmap.gone).toBe(true);

    const k2 = boot('v6.6', 256 * MiB, false);
    k2.run(k2.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(k2.hotplug.memoryOf('dax0')!.blocks).toHaveLength(2);
    expect(k2.hotplug.memoryOf('dax0')!.vmemmap.vmemmapBytes).toBe(4 * MiB);
  });

  it('add_memory_driver_managed() names the range "System RAM (kmem)" from v5.8; v5.4 used add_memory(): "System RAM"', () => {
    for (const [v, name] of [['v5.4', 'System RAM'], ['v5.10', 'System RAM (kmem)']] as const) {
      const k = boot(v);
      k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
      expect(k.hotplug.memoryOf('dax0')!.resourceName).toBe(name);
    }
  });

  it('a device smaller than one whole block after alignment has nothing to add: EINVAL', () => {
    // 128 MiB with its memmap on the device: data [6 MiB, 128 MiB) holds no aligned 128 MiB block
    const k = boot('v6.6', 128 * MiB);
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false })))).toBe('EINVAL');
  });

  it('daxctl onlines to ZONE_MOVABLE (online_movable), --no-movable to ZONE_NORMAL; online-memory / offline-memory count the blocks that changed', () => {
    const k = boot('v6.6', 512 * MiB, false);
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
    expect(states(k)).toEqual(['online:Movable', 'online:Movable', 'online:Movable', 'online:Movable']);
    expect(k.run(k.memoryState({ device: 'dax0', online: true }))).toBe(0); // already online
    expect(k.run(k.memoryState({ device: 'dax0', online: false }))).toBe(4);
    expect(k.run(k.memoryState({ device: 'dax0', online: true, movable: false }))).toBe(4);
    expect(states(k)).toEqual(['online:Normal', 'online:Normal', 'online:Normal', 'online:Normal']);
  });

  it('online-memory on an instance in devdax mode: ENXIO ("memory operations are not applicable in devdax mode")', () => {
    const k = boot('v6.6');
    expect(errnoOf(() => k.run(k.memoryState({ device: 'dax0', online: true })))).toBe('ENXIO');
  });

  it('auto_online_blocks: online_kernel / online_movable from v5.7 (EINVAL on v5.4); the kernel onlines what it adds with that type', () => {
    expect(errnoOf(() => { const k = boot('v5.4'); k.run(k.autoOnlineBlocks({ policy: 'online_movable' })); })).toBe('EINVAL');
    const k = boot('v5.10');
    k.run(k.autoOnlineBlocks({ policy: 'online_movable' }));
    // daxctl refuses -N under an onlining policy, and also its default (online to ZONE_MOVABLE)
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false })))).toBe('EBUSY');
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' })))).toBe('EBUSY');
    // nothing changed: the device is still device-dax
    expect(k.device('dax0').bound).toBe(true);
    // --force: the kernel onlines the block with the policy's type as it adds it
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false, force: true }));
    expect(states(k)).toEqual(['online:Movable']);
    // "online" puts it in the default zone: ZONE_NORMAL
    const k2 = boot('v5.4');
    k2.run(k2.autoOnlineBlocks({ policy: 'online' }));
    k2.run(k2.reconfigure({ device: 'dax0', mode: 'system-ram', online: false, force: true }));
    expect(states(k2)).toEqual(['online:Normal']);
  });

  it('back to devdax: refused while a block is online (EBUSY), -f offlines first; dev_dax_probe() maps the same physical range again', () => {
    const k = boot('v6.15');
    const before = k.device('dax0');
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'devdax' })))).toBe('EBUSY');
    expect(states(k)).toEqual(['online:Movable']);
    k.run(k.reconfigure({ device: 'dax0', mode: 'devdax', force: true }));
    const after = k.device('dax0');
    expect(after).not.toBe(before);
    expect(after.bound).toBe(true);
    expect(after.pgmap.startPfn).toBe(before.pgmap.startPfn);
    expect(after.dataPfn).toBe(before.dataPfn);
    expect(k.hotplug.added.size).toBe(0);
    // the new instance works: a shared mapping faults a 2 MiB leaf of it
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('A');
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(after.dataPfn);
  });

  it('ndctl disable-namespace with the memory online: EBUSY; the kernel unbind without that check leaks the range, and device_dax can never claim it again', () => {
    const k = boot('v6.6');
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
    expect(errnoOf(() => k.run(k.unbind({ device: 'dax0' })))).toBe('EBUSY');
    k.run(k.unbind({ device: 'dax0', force: true }));
    // remove_memory() failed: the block stays online System RAM, the region requested
    const mem = k.hotplug.added.get('dax0')!;
    expect(mem.leaked).toBe(true);
    expect(mem.blocks[0]!.state).toBe('online');
    expect(k.hotplug.memoryOf('dax0')).toBeNull();
    // the instance is gone with its namespace
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'devdax' })))).toBe('ENXIO');
  });

  it('a disabled namespace has no device-dax instance to reconfigure (ENXIO) until enable-namespace (bind) brings it back at the same range', () => {
    const k = boot('v6.6');
    const startPfn = k.device('dax0').pgmap.startPfn;
    k.run(k.unbind({ device: 'dax0' }));
    expect(errnoOf(() => k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false })))).toBe('ENXIO');
    k.run(k.bind({ device: 'dax0' }));
    expect(k.device('dax0').pgmap.startPfn).toBe(startPfn);
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(states(k)).toEqual(['offline:-']);
  });

  it('disable-namespace with the memory offline: remove_memory() succeeds and the range is released', () => {
    const k = boot('v6.6');
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    k.run(k.unbind({ device: 'dax0' }));
    expect(k.hotplug.added.size).toBe(0);
  });

  it('memmap_on_memory (kmem v6.8+): the block\'s 2 MiB memmap comes from the block itself; v6.6 has no such attribute (ENOENT)', () => {
    const k = boot('v6.15');
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false, memmapOnMemory: true }));
    const mem = k.hotplug.memoryOf('dax0')!;
    expect(mem.memmapOnMemory).toBe(true);
    expect(mem.vmemmap.vmemmapBytes).toBe(2 * MiB);
    // one 512-page altmap per block, nothing from RAM
    expect(mem.vmemmap.detail).toMatchObject({ ramPages: 0, altmapPages: 512 });
    const k2 = boot('v6.6');
    expect(errnoOf(() => k2.run(k2.reconfigure({ device: 'dax0', mode: 'system-ram', memmapOnMemory: true })))).toBe('ENOENT');
  });

  it('memmap_on_memory falls back to RAM where one block\'s memmap is not PMD-aligned: arm64 64 KiB (512 MiB blocks: 8192 x 64 B = 512 KiB, not a multiple of the 512 MiB PMD)', () => {
    const k = createKernel({ arch: arm64({ pageSize: 64 * 1024 }), driver: devdax(), kernel: 'v6.15' });
    k.run(k.probe({ size: 2 * GiB, align: 512 * MiB, as: 'dax0' }));
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false, memmapOnMemory: true }));
    const mem = k.hotplug.memoryOf('dax0')!;
    expect(mem.memmapOnMemory).toBe(false);
    expect(mem.blocks).toHaveLength(4);
    // 4 x 512 KiB of memmap, from RAM
    expect(mem.vmemmap.vmemmapBytes).toBe(2 * MiB);
    expect(mem.vmemmap.detail).toMatchObject({ altmapPages: 0 });
  });

  it('the memory block is the release\'s section: arm64 4K had 1 GiB sections before v5.12, so a 256 MiB device-dax holds no block on v5.10 (kmem binds with nothing added: v5.10-v5.14 skip a range too small after alignment and return 0) and two 128 MiB blocks on v6.6', () => {
    const on = (version: string) => {
      const k = createKernel({ arch: arm64(), driver: devdax(), kernel: version });
      k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, as: 'dax0' }));
      return k;
    };
    const old = on('v5.10');
    expect(old.hotplug.blockSize).toBe(GiB);
    old.run(old.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(old.hotplug.memoryOf('dax0')!.blocks).toHaveLength(0);
    const k = on('v6.6');
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(k.hotplug.memoryOf('dax0')!.blocks).toHaveLength(2);
  });
});
