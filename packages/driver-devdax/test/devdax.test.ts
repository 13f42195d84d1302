import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function boot(version: string, align: number, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), driver: devdax(), kernel: version, features });
  const m = new Monitor(k);
  k.run(k.probe({ size: 2 * GiB, align, as: 'dax0' }));
  return { k, m };
}
const names = (m: Monitor): string[] => m.violations.map((v) => v.invariant).sort();

describe('device-dax (drivers/dax/device.c)', () => {
  it('dev_dax_probe(): vmemmap_shift = order_base_2(align >> PAGE_SHIFT): 9 for 2 MiB, 18 for 1 GiB, 0 before compound devmaps', () => {
    expect(boot('v6.1', 2 * MiB).k.device('dax0').pgmap.vmemmapShift).toBe(9);
    expect(boot('v6.1', GiB).k.device('dax0').pgmap.vmemmapShift).toBe(18);
    expect(boot('v5.10', 2 * MiB).k.device('dax0').pgmap.vmemmapShift).toBe(0);
    expect(boot('v6.1', 4096).k.device('dax0').pgmap.vmemmapShift).toBe(0);
  });

  it('altmap (a pmem namespace in devdax mode, map=dev): data after nd_pfn_init()\'s offset, memmap on the device, no tail reuse even unguarded', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.1' });
    k.run(k.probe({ size: GiB, align: 2 * MiB, altmap: true, as: 'dax0' }));
    const d = k.device('dax0');
    // 8 KiB info block + 64 B x 262142 pfns of memmap = 16785280 bytes, rounded up to 2 MiB: 18 MiB
    expect((d.dataPfn - d.pgmap.startPfn) * 4096).toBe(18 * MiB);
    expect(d.dataPages).toBe((GiB - 18 * MiB) / 4096);
    // all but the 2-pfn info block written (memmap_init_range() for the memmap's own pfns); 16 MiB from the device
    expect(d.pgmap.vmemmap).toMatchObject({ optimized: false, structPagesInitialized: 262142, vmemmapBytes: 16 * MiB, detail: { ramPages: 0, altmapPages: 4096 } });
    // the first compound head is the first data pfn
    expect(k.folios.folio(d.dataPfn + 3)).toBe(d.dataPfn);
  });

  it('compound pages: tails start at refcount 0 and point at the head, which idles at 1', () => {
    const { k } = boot('v6.15', 2 * MiB);
    const head = k.device('dax0').dataPfn;
    expect(k.pages.rc[k.pages.slot(head + 7)]).toBe(0);
    expect(k.folios.folio(head + 7)).toBe(head);
    expect(k.refcount(head + 7)).toBe(1);
  });

  it('only shared, aligned mappings (check_vma): private -> EINVAL, unaligned length -> EINVAL', () => {
    const { k } = boot('v6.15', 2 * MiB);
    expect(() => k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: false, as: 'p' }))).toThrow(/EINVAL/);
    expect(() => k.run(k.mmap({ device: 'dax0', length: MiB, shared: true, as: 'u' }))).toThrow(/EINVAL/);
  });

  it('a 2 MiB device maps PMDs; v6.1 installs devmap PMDs without a reference, v6.15 adds one per mapping', () => {
    for (const [v, rc] of [['v6.1', 1], ['v6.15', 2]] as const) {
      const { k } = boot(v, 2 * MiB);
      k.run(k.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 3, data: 'A' }));
      const leaf = k.vm.lookup(k.process('init'), k.map('m').start + 3)!;
      expect(leaf.pte.level).toBe('pmd');
      expect(leaf.pte.devmap).toBe(v === 'v6.1');
      expect(k.refcount(k.pfnOf({ map: 'm', page: 3 })!), v).toBe(rc);
    }
  });

  it('a 1 GiB device maps a PUD on x86', () => {
    const { k } = boot('v6.15', GiB);
    k.run(k.mmap({ device: 'dax0', length: GiB, shared: true, as: 'm' }));
    k.run(k.read({ map: 'm', page: 12345 }));
    expect(k.vm.lookup(k.process('init'), k.map('m').start)!.pte.level).toBe('pud');
  });

  it('FOLL_PIN on a compound device-dax folio adds 1 to the head and 1 to _pincount', () => {
    const { k } = boot('v6.15', 2 * MiB);
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 5, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 5 })!;
    const head = k.folios.folio(pfn);
    k.run(k.gup({ map: 'm', page: 5, write: true, as: 'p' }, true));
    expect(k.refcount(pfn)).toBe(3);
    expect(k.pages.pincount[k.pages.slot(head)]).toBe(1);
    expect(k.maybePinned(pfn)).toBe(true);
    k.run(k.unpin({ name: 'p' }));
    expect(k.refcount(pfn)).toBe(2);
    expect(k.maybePinned(pfn)).toBe(false);
  });

  it('FOLL_PIN on an order-0 device-dax page (v5.10) adds GUP_PIN_COUNTING_BIAS', () => {
    const { k } = boot('v5.10', 2 * MiB);
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 5, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 5, write: true, as: 'p' }, true));
    expect(k.refcount(k.pfnOf({ map: 'm', page: 5 })!)).toBe(1 + 1024);
  });

  it('device-dax mappings are not copied at fork: the child refaults the same page', () => {
    const { k } = boot('v6.15', 2 * MiB);
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.fork({ as: 'c' }));
    expect(k.pfnOf({ map: 'm', page: 0, process: 'c' })).toBeNull();
    expect(k.run(k.read({ map: 'm', page: 0, process: 'c' }))).toBe('A');
    expect(k.pfnOf({ map: 'm', page: 0, process: 'c' })).toBe(k.pfnOf({ map: 'm', page: 0 }));
  });

  it('unbind zaps user mappings first (kill_dev_dax); a pin does not stop teardown from v5.18 on', () => {
    const clean = boot('v6.15', 2 * MiB);
    clean.k.run(clean.k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    clean.k.run(clean.k.write({ map: 'm', page: 0, data: 'A' }));
    clean.k.run(clean.k.unbind({ device: 'dax0' }));
    expect(names(clean.m)).toEqual([]);
    const pinned = boot('v6.15', 2 * MiB);
    pinned.k.run(pinned.k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    pinned.k.run(pinned.k.gup({ map: 'm', page: 0, write: true, as: 'p' }, true));
    pinned.k.run(pinned.k.unbind({ device: 'dax0' }));
    expect(names(pinned.m)).toEqual(['pgmap-teardown-while-referenced']);
  });

  // ndctl device-dax.c "test fault after device-dax instance disabled": the store must SIGBUS
  it('a fault after unbind is SIGBUS (check_vma(): !dax_alive()), whether or not the page was mapped before', () => {
    const { k } = boot('v6.6', 2 * MiB);
    k.run(k.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.unbind({ device: 'dax0' }));
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
    expect(() => k.run(k.write({ map: 'm', page: 0, data: 'B' }))).toThrow(/SIGBUS/);
    expect(() => k.run(k.write({ map: 'm', page: 512, data: 'B' }))).toThrow(/SIGBUS/);
  });

  it('memory failure (mf_generic_kill_procs): EBUSY before any fault associated the page, then the whole leaf is unmapped from every process', () => {
    for (const version of ['v5.10', 'v6.15']) {
      const { k } = boot(version, 2 * MiB);
      k.run(k.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
      // dax_lock_folio(): no folio->mapping yet
      expect(() => k.run(k.memoryFailure({ device: 'dax0', page: 256 })), version).toThrow(/EBUSY/);
      k.run(k.write({ map: 'm', page: 0, data: 'A' }));
      k.run(k.fork({ as: 'c' }));
      k.run(k.read({ map: 'm', page: 0, process: 'c' }));
      // page 256 of the 2 MiB leaf: page->mapping set on the head (compound) or by the same fault (v5.10)
      k.run(k.memoryFailure({ device: 'dax0', page: 256 }));
      expect([k.isMappedIn({ map: 'm', page: 0 }), k.isMappedIn({ map: 'm', page: 511 }), k.isMappedIn({ map: 'm', page: 0, process: 'c' })], version).toEqual([false, false, false]);
      // dev_dax_huge_fault() does not look at PG_hwpoison: the page maps again
      expect(k.run(k.read({ map: 'm', page: 0 })), version).toBe('A');
    }
  });
});

