import { createKernel, KernelError, Monitor, UnsupportedError } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

const PAGE = 4096;

/** A kernel with one mirror device and an anonymous buffer of `pages` pages holding d0, d1, … */
function setup(version: string, opts: { kind?: 'private' | 'coherent'; pages?: number; size?: number; features?: Record<string, unknown> } = {}) {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: version, features: opts.features ?? {} });
  const mon = new Monitor(k);
  const dev = k.run(k.probe({ driver: 'hmm', kind: opts.kind ?? 'private', size: opts.size ?? 256 * 1024 * 1024, as: 'dmirror0' }));
  const pages = opts.pages ?? 1;
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: true, as: 'buf' }));
  for (let i = 0; i < pages; i++) k.run(k.write({ map: 'buf', page: i, data: `d${i}` }));
  return { k, mon, dev, dpfn: (i: number) => dev.dataPfn + i, pfn: (page: number, process?: string) => k.pfnOf({ map: 'buf', page, ...(process ? { process } : {}) })! };
}

function whys(mon: Monitor, pfn: number): string[] {
  return mon.trace.filter((l) => l.includes(` page.ref pfn=${pfn} `)).map((l) => /why=(.*)$/.exec(l)![1]!);
}

const violations = (mon: Monitor) => mon.violations.map((v) => v.invariant);

describe('allocation and migration to the device: the extra reference (seeds 000/001)', () => {
  // Free device pages: memmap_init_zone_device() leaves them at 1 before 27674ef6c73f and at 0
  // after. test_hmm's allocation was get_page() (1->2) before and zone_device_page_init() (0->1)
  // after. migrate_vma_pages() installs the entry (+1, remove_migration_pte) and
  // migrate_vma_finalize() drops the allocation reference (-1): one reference per mapping on top
  // of the idle count, mapcount 1.
  for (const [version, idle] of [['v5.10', 1], ['v6.1', 0], ['latest', 0]] as const) {
    it(`${version}: a free page idles at ${idle}, a migrated one holds ${idle + 1}`, () => {
      const { k, mon, dpfn, pfn } = setup(version);
      expect(k.refcount(dpfn(0))).toBe(idle);
      const ram = pfn(0);
      k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
      expect(pfn(0)).toBe(dpfn(0));
      expect([k.refcount(dpfn(0)), k.mapcount(dpfn(0))]).toEqual([idle + 1, 1]);
      expect(k.isMappedIn({ map: 'buf', page: 0 })).toBe(false); // a non-present device-private entry
      expect(k.isAnon(dpfn(0))).toBe(true);
      const alloc = idle === 1 ? 'dmirror_devmem_alloc_page: get_page' : 'zone_device_page_init';
      expect(whys(mon, dpfn(0))).toEqual([alloc, 'migrate: remove_migration_pte', 'migrate_finalize: put destination']);
      // the system page: collect +1, unmap -1, finalize -1 -> 0 and freed
      expect(whys(mon, ram)).toEqual(['alloc_page', 'migrate: collect', 'migrate: unmap (try_to_migrate)', 'migrate_finalize: put source']);
      expect(mon.trace.some((l) => l.includes(`page.free pfn=${ram} type=ram`))).toBe(true);
      expect(violations(mon)).toEqual([]);
    });
  }

  it('the device copy is what the device reads; a CPU read faults it back (migrate_to_ram)', () => {
    const { k, dpfn, pfn } = setup('v6.6', { pages: 2 });
    k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: 'dmirror0' }));
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }))).toBe('d1');
    expect(pfn(1)).toBe(dpfn(1)); // the device's own access does not migrate its pages
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('d1');
    expect(k.folios.kind(pfn(1))).toBe('ram');
    expect(k.isMappedIn({ map: 'buf', page: 1 })).toBe(true);
  });
});

describe('page_free: when the page goes back to the mirror', () => {
  // migrate_to_ram drops the last reference of the device page. With the extra reference
  // put_devmap_managed_page() calls page_free at 2->1 and the page stays at 1; without it
  // free_zone_device_page() calls it at 1->0. Either way the next allocation reuses it (test_hmm
  // pushes freed pages on the head of its free list).
  for (const [version, after] of [['v5.10', 1], ['v6.6', 0]] as const) {
    it(`${version}: page_free at ${after + 1}->${after}, then the page is reused`, () => {
      const { k, mon, dpfn, pfn } = setup(version, { pages: 2 });
      k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: 'dmirror0' }));
      k.run(k.read({ map: 'buf', page: 0 }));
      expect(k.refcount(dpfn(0))).toBe(after);
      const free = mon.trace.findIndex((l) => l.includes(`page.free pfn=${dpfn(0)} type=private`));
      const put = mon.trace.findIndex((l) => l.includes(`page.ref pfn=${dpfn(0)} rc=${after} delta=-1`));
      expect(put).toBeGreaterThan(0);
      expect(free).toBe(put + 1);
      k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'b2' }));
      k.run(k.write({ map: 'b2', page: 0, data: 'x' }));
      k.run(k.migrate({ map: 'b2', page: 0, to: 'dmirror0' }));
      expect(k.pfnOf({ map: 'b2', page: 0 })).toBe(dpfn(0));
      expect(pfn(1)).toBe(dpfn(1));
      expect(violations(mon)).toEqual([]);
    });
  }

  it('munmap drops a device-private entry at once, before any TLB flush (zap_pte_range)', () => {
    const { k, mon, dpfn } = setup('v6.6');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    k.run(k.munmap({ map: 'buf' }));
    expect(k.refcount(dpfn(0))).toBe(0);
    // present pages wait for tlb_finish_mmu; the device page was freed before the flush
    const free = mon.trace.findIndex((l) => l.includes(`page.free pfn=${dpfn(0)} type=private`));
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThan(mon.trace.findIndex((l) => l.includes('tlb.flush')));
  });
});

describe('fork over device memory', () => {
  // copy_nonpresent_pte(): get_page + dup rmap; a writable entry in a COW mapping is made
  // readable in the parent and copied readable to the child; PageAnonExclusive is cleared.
  for (const [version, idle] of [['v5.10', 1], ['latest', 0]] as const) {
    it(`${version}: the device page gets a reference and a mapcount per process`, () => {
      const { k, dpfn, pfn } = setup(version);
      k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
      expect(k.anonExclusive(dpfn(0))).toBe(true);
      k.run(k.fork({ as: 'child' }));
      expect([k.refcount(dpfn(0)), k.mapcount(dpfn(0))]).toEqual([idle + 2, 2]);
      expect(pfn(0, 'child')).toBe(dpfn(0));
      const parent = k.vm.lookup(k.process('init'), k.map('buf').start)!.pte;
      const child = k.vm.lookup(k.process('child'), k.map('buf', 'child').start)!.pte;
      expect([parent.devicePrivate, parent.write, child.devicePrivate, child.write]).toEqual([true, false, true, false]);
      expect(k.anonExclusive(dpfn(0))).toBe(false);
      // the child's exit drops its entry: back to one reference per remaining mapping
      k.run(k.exit({ process: 'child' }));
      expect([k.refcount(dpfn(0)), k.mapcount(dpfn(0))]).toEqual([idle + 1, 1]);
    });
  }

  it("a write after fork migrates the shared page for both, then COWs the writer's copy", () => {
    // migrate_to_ram unmaps every entry of the page (try_to_migrate walks the anon_vma), so the
    // child ends up mapping the same system page read-only; the parent's retried write finds a
    // shared page (mapcount 2, not exclusive) and do_wp_page copies it.
    const { k, mon, dpfn, pfn } = setup('v6.6');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'buf', page: 0, data: 'P' }));
    const cow = mon.trace.filter((l) => l.includes(' cow '));
    expect(cow).toHaveLength(1);
    expect(k.folios.kind(pfn(0, 'child'))).toBe('ram');
    expect(pfn(0)).not.toBe(pfn(0, 'child'));
    expect([k.refcount(pfn(0)), k.refcount(pfn(0, 'child'))]).toEqual([1, 1]);
    expect(k.refcount(dpfn(0))).toBe(0);
    expect(k.run(k.read({ map: 'buf', page: 0, process: 'child' }))).toBe('d0');
  });
});

describe('GUP on device memory', () => {
  it('device-private pages are faulted back to RAM before GUP takes them (fast falls back to slow)', () => {
    const { k, dpfn, pfn } = setup('v6.6');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    const h = k.run(k.gup({ map: 'buf', page: 0, write: true, fast: true, as: 'g' }, false));
    expect(h.pfns[0]).toBe(pfn(0));
    expect(k.folios.kind(h.pfns[0]!)).toBe('ram');
    expect(k.refcount(h.pfns[0]!)).toBe(2); // the mapping and FOLL_GET
    expect(k.refcount(dpfn(0))).toBe(0);
  });

  it('device-coherent pages are pinned where they are without FOLL_LONGTERM', () => {
    const { k, dpfn } = setup('v6.6', { kind: 'coherent' });
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    const h = k.run(k.gup({ map: 'buf', page: 0, write: true, as: 'p' }, true));
    expect(h.pfns[0]).toBe(dpfn(0));
    expect(k.refcount(dpfn(0))).toBe(1 + 1024); // the mapping and GUP_PIN_COUNTING_BIAS
  });

  for (const fast of [false, true]) {
    it(`FOLL_LONGTERM migrates a device-coherent page to RAM first (${fast ? 'gup-fast' : 'slow path'})`, () => {
      // folio_is_longterm_pinnable() is false for coherent folios; check_and_migrate_movable_pages()
      // turns the pin into a reference, migrate_device_coherent_folio() moves the page (the old
      // page is freed: 1 -> 0), and the pages are pinned again.
      const { k, mon, dpfn, pfn } = setup('v6.6', { kind: 'coherent' });
      k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
      const h = k.run(k.gup({ map: 'buf', page: 0, write: true, longterm: true, fast, as: 'p' }, true));
      expect(h.pfns[0]).toBe(pfn(0));
      expect(k.folios.kind(h.pfns[0]!)).toBe('ram');
      expect(k.refcount(h.pfns[0]!)).toBe(1 + 1024);
      expect(k.refcount(dpfn(0))).toBe(0);
      expect(mon.trace.some((l) => l.includes(`page.free pfn=${dpfn(0)} type=coherent`))).toBe(true);
      expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('d0');
      expect(violations(mon)).toEqual([]);
    });
  }

  it('a pinned system page is not migrated to the device (migrate_vma_check_page)', () => {
    const { k, mon, pfn } = setup('v6.6', { pages: 2 });
    const pinned = pfn(0);
    k.run(k.gup({ map: 'buf', page: 0, write: true, as: 'dma' }, true));
    expect(() => k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: 'dmirror0' }))).toThrow(KernelError);
    expect(pfn(0)).toBe(pinned);
    expect([k.refcount(pinned), k.mapcount(pinned)]).toEqual([1025, 1]);
    expect(k.folios.kind(pfn(1))).toBe('private'); // the other page did move
    expect(violations(mon)).toEqual([]);
  });
});

describe('what the mirror refuses', () => {

  it('a device write to a read-only mapping: -EPERM (hmm.anon_write_prot)', () => {
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest' });
    k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, as: 'd' }));
    k.run(k.mmap({ anon: true, length: PAGE, as: 'ro' }));
    expect(k.run(k.deviceRead({ device: 'd', map: 'ro', page: 0 }))).toBe(''); // the zero page
    expect(() => k.run(k.deviceWrite({ device: 'd', map: 'ro', page: 0, data: 'x' }))).toThrow(expect.objectContaining({ code: 'EPERM' }));
  });

  it("a device write to its own read-only device-private entry: WARN and -EFAULT (dmirror_do_fault), even after mprotect(RW)", () => {
    // the pages were migrated from read-only PTEs, so the entries are readable device-private
    // ones; mprotect(PROT_READ|PROT_WRITE) never upgrades a non-present entry, and
    // hmm_range_fault() reports an entry of its own owner as it is (no fault): the driver
    // sees HMM_PFN_WRITE missing although it asked for it
    const { k, dpfn, pfn } = setup('latest', { pages: 1 });
    k.run(k.mprotect({ map: 'buf', write: false }));
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    k.run(k.mprotect({ map: 'buf', write: true }));
    expect(() => k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 0, data: 'x' }))).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(k.warnings).toEqual([expect.stringContaining('dmirror_do_fault: WARN_ON(range->default_flags & HMM_PFN_WRITE)')]);
    expect(pfn(0)).toBe(dpfn(0)); // still on the device, data unchanged
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }))).toBe('d0');
    // a CPU write faults it home (migrate_to_ram) and then the device can write
    k.run(k.write({ map: 'buf', page: 0, data: 'cpu' }));
    k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 0, data: 'dev' }));
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('dev');
  });

  it('a full device leaves the rest in RAM and the read-back fails with -ENOENT', () => {
    // a 2 MiB device (one subsection) has 512 pages; the 513th stays where it is
    const { k, dpfn, pfn } = setup('v6.6', { pages: 513, size: 512 * PAGE });
    expect(() => k.run(k.migrate({ map: 'buf', page: 0, pages: 513, to: 'dmirror0' }))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect([pfn(0), pfn(511)]).toEqual([dpfn(0), dpfn(511)]);
    expect(k.folios.kind(pfn(512))).toBe('ram');
    expect(k.run(k.read({ map: 'buf', page: 512 }))).toBe('d512');
  });

  it("another device's private page is faulted back to RAM when this device reads it (hmm2.double_map)", () => {
    const { k, pfn } = setup('v6.6');
    k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, as: 'dmirror1' }));
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror1' }));
    expect(k.deviceOfPfn(pfn(0))?.name).toBe('dmirror1');
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }))).toBe('d0');
    expect(k.folios.kind(pfn(0))).toBe('ram');
  });
});

describe('unbind with pages in use (hmm.migrate_release)', () => {
  it('v6.1+: in-use pages are evicted to RAM, then memunmap_pages() completes', () => {
    const { k, mon, pfn } = setup('v6.1', { pages: 2 });
    k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: 'dmirror0' }));
    k.run(k.unbind({ device: 'dmirror0' }));
    expect(k.folios.kind(pfn(0))).toBe('ram');
    expect([k.refcount(pfn(0)), k.mapcount(pfn(0))]).toEqual([1, 1]);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('d1');
    expect(mon.trace.some((l) => l.includes('pgmap.teardown device=dmirror0'))).toBe(true);
    expect(violations(mon)).toEqual([]);
  });

  it('v5.10: memunmap_pages() puts every page: page_free on a mapped page (2->1), then waits forever', () => {
    const { k, mon, dpfn } = setup('v5.10');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    expect(() => k.run(k.unbind({ device: 'dmirror0' }))).toThrow(/memunmap_pages\(dmirror0\): wait for page references/);
    expect(k.refcount(dpfn(0))).toBe(1);
    expect(violations(mon)).toEqual(['page-freed-while-mapped']);
  });

  it('0-based pages without migrate_device_range: no early page_free, memunmap_pages() just waits', () => {
    const { k, mon, dpfn } = setup('v6.6', { features: { 'migrate-device-range': false } });
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    expect(() => k.run(k.unbind({ device: 'dmirror0' }))).toThrow(/wait for page references/);
    expect(k.refcount(dpfn(0))).toBe(1);
    expect(violations(mon)).toEqual([]);
  });
});

describe('which kernels have it', () => {
  it('device-coherent memory needs v6.0: the probe is unsupported with the reason', () => {
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'v5.10' });
    expect(() => k.run(k.probe({ driver: 'hmm', kind: 'coherent', size: 1024 * PAGE, as: 'd' }))).toThrow(UnsupportedError);
    expect(() => k.run(k.probe({ driver: 'hmm', kind: 'private', size: 1024 * PAGE, as: 'd' }))).not.toThrow();
  });

  it('ZONE_DEVICE needs ARCH_HAS_PTE_DEVMAP until the devmap bit was removed', () => {
    const plugin = hmm();
    const noDevmap = { ...x86().mmu, arch: 'nodevmap', pteBits: { special: true, devmap: false } };
    const desc = (version: string, mmu = noDevmap) => ({ arch: mmu.arch, pageSize: PAGE, fs: null, driver: 'hmm', version, features: {} as never, mmu });
    expect(plugin.unsupported!(desc('v6.6'))).toMatch(/ARCH_HAS_PTE_DEVMAP/);
    expect(plugin.unsupported!(desc('latest'))).toBeNull();
    expect(plugin.unsupported!(desc('v6.6', x86().mmu))).toBeNull();
  });
});

describe('the migrate step', () => {
  it("`to: device` (SCENARIOS.md's form) means the only bound device that can migrate", () => {
    const { k, dpfn, pfn } = setup('latest');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'device' }));
    expect(pfn(0)).toBe(dpfn(0));
    k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, as: 'other' }));
    k.run(k.migrate({ map: 'buf', page: 0, to: 'ram' }));
    expect(() => k.run(k.migrate({ map: 'buf', page: 0, to: 'device' }))).toThrow(/exactly one bound device/);
  });
});

describe('hmm2.migrate_mixed', () => {
  it('a range running past the mapping is -EINVAL; a page on another device is not migrated: -ENOENT', () => {
    const { k, pfn } = setup('latest', { pages: 2 });
    expect(() => k.run(k.migrate({ map: 'buf', page: 1, pages: 2, to: 'dmirror0' }))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, as: 'dmirror1' }));
    k.run(k.migrate({ map: 'buf', page: 1, to: 'dmirror1' }));
    expect(() => k.run(k.migrate({ map: 'buf', page: 1, to: 'dmirror0' }))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(k.deviceOfPfn(pfn(1))?.name).toBe('dmirror1');
  });
});

describe('a device-coherent page that cannot move', () => {
  it('FOLL_LONGTERM fails with EBUSY and leaves no reference behind (check_and_migrate_movable_pages)', () => {
    // a FOLL_GET reference (say, O_DIRECT in flight) makes migrate_vma_check_page refuse the page:
    // migrate_device_coherent_folio fails, the GUP unpins everything it took and returns -EBUSY
    const { k, mon, dpfn } = setup('v6.6', { kind: 'coherent', pages: 2 });
    k.run(k.migrate({ map: 'buf', page: 0, pages: 2, to: 'dmirror0' }));
    k.run(k.gup({ map: 'buf', page: 1, as: 'odirect' }, false));
    expect([k.refcount(dpfn(0)), k.refcount(dpfn(1))]).toEqual([1, 2]);
    expect(() => k.run(k.gup({ map: 'buf', page: 0, pages: 2, write: true, longterm: true, as: 'rdma' }, true))).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    // page 0 moved to RAM before page 1 failed; page 1 is where it was, with only its mapping and the get
    expect(k.folios.kind(k.pfnOf({ map: 'buf', page: 0 })!)).toBe('ram');
    expect(k.refcount(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(1);
    expect([k.pfnOf({ map: 'buf', page: 1 }), k.refcount(dpfn(1)), k.mapcount(dpfn(1))]).toEqual([dpfn(1), 2, 1]);
    expect(k.maybePinned(dpfn(1))).toBe(false);
    expect(violations(mon)).toEqual([]);
  });
});

describe('bad probe input', () => {
  it('align and altmap do not apply to mirror devices: the driver refuses them as a composition it cannot serve', () => {
    // dmirror_allocate_chunk() calls memremap_pages() with neither an alignment nor an altmap, so a
    // probe asking for one (e.g. an fs scenario run with --driver hmm) is an unsupported cell
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest' });
    const refusal = (probe: () => unknown) => {
      try {
        probe();
      } catch (e) {
        return e as { name: string; code: string; unsupported: string | null };
      }
      throw new Error('the probe was accepted');
    };
    const align = refusal(() => k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, align: 2 * 1024 * 1024, as: 'd' })));
    expect([align.name, align.code]).toEqual(['KernelError', 'EINVAL']);
    expect(align.unsupported).toMatch(/no alignment.*leaves align out/);
    const altmap = refusal(() => k.run(k.probe({ driver: 'hmm', size: 1024 * PAGE, altmap: true, as: 'd' })));
    expect([altmap.name, altmap.code]).toEqual(['KernelError', 'EINVAL']);
    expect(altmap.unsupported).toMatch(/no altmap.*leaves altmap out/);
  });
});

describe('do_swap_page holds the device page across migrate_to_ram (16ce101db85d, v6.1)', () => {
  it('the CPU fault takes and drops a reference around migrate_to_ram', () => {
    // v6.1+: 1 (mapping) + 1 (do_swap_page) + 1 (collect), unmap -1, finalize -1, then the
    // fault's own put takes the page from 1 to 0 and page_free runs there, after migrate_to_ram
    const { k, mon, dpfn } = setup('v6.6');
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    k.run(k.read({ map: 'buf', page: 0 }));
    const fault = whys(mon, dpfn(0)).slice(3);
    expect(fault).toEqual(['do_swap_page: get_page before migrate_to_ram', 'migrate: collect', 'migrate: unmap (try_to_migrate)', 'migrate_finalize: put source', 'do_swap_page: put_page after migrate_to_ram']);
    expect(k.refcount(dpfn(0))).toBe(0);
  });
});

describe('make_device_exclusive() (HMM_DMIRROR_EXCLUSIVE): the entry, the mirror, the release rules', () => {
  const exclusive = (k: ReturnType<typeof setup>['k'], device: string, page: number, pages = 1) => k.run(k.deviceExclusive({ device, map: 'buf', page, pages }));
  const atomicHeld = (k: ReturnType<typeof setup>['k'], device: string, page = 0, pages?: number): boolean => {
    try {
      k.run(k.deviceCheckExclusive({ device, map: 'buf', page, ...(pages !== undefined ? { pages } : {}) }));
      return false;
    } catch (e) {
      if (e instanceof KernelError && e.code === 'EPERM') return true;
      throw e;
    }
  };

  // GUP(FOLL_GET | FOLL_WRITE) takes the written, exclusive page: +1 (2); the PTE becomes the
  // entry, whose reference is the PTE's; dmirror_exclusive() drops the GUP reference: 1. The rmap
  // goes with the PTE up to v6.14 (folio_remove_rmap_pte in page_make_device_exclusive_one) and
  // stays from v6.15 ("keep mapcount untouched"); restore_exclusive_pte() adds it back before.
  for (const [version, mapcount] of [['v6.1', 0], ['v6.6', 0], ['v6.15', 1], ['latest', 1]] as const) {
    it(`${version}: refcount 1 and mapcount ${mapcount} behind the entry, 1 and 1 once the CPU faulted it back`, () => {
      const { k, mon, pfn } = setup(version);
      const page = pfn(0);
      expect(exclusive(k, 'dmirror0', 0)).toEqual(['d0']);
      expect(whys(mon, page)).toEqual(['alloc_page', 'get_user_pages', 'put_page']);
      expect([k.refcount(page), k.mapcount(page), k.isMappedIn({ map: 'buf', page: 0 }), pfn(0)]).toEqual([1, mapcount, false, page]);
      expect(atomicHeld(k, 'dmirror0')).toBe(true);
      // the device reads through its atomic entry: no fault, the CPU entry stays
      expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }))).toBe('d0');
      expect(k.isMappedIn({ map: 'buf', page: 0 })).toBe(false);
      expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('d0');
      expect([k.refcount(page), k.mapcount(page), k.isWritableIn({ map: 'buf', page: 0 }), pfn(0)]).toEqual([1, 1, true, page]);
      expect(atomicHeld(k, 'dmirror0')).toBe(false);
      expect(violations(mon)).toEqual([]);
    });
  }

  it('v5.4 and v5.10 have no device-exclusive entries: the cell is unsupported (-EINVAL)', () => {
    for (const version of ['v5.4', 'v5.10']) {
      const { k } = setup(version);
      let err: unknown;
      try {
        exclusive(k, 'dmirror0', 0);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect([(err as KernelError).code, (err as KernelError).unsupported]).toEqual(['EINVAL', expect.stringMatching(/v5\.14/)]);
    }
  });

  // mprotect(PROT_READ) then back to PROT_READ|PROT_WRITE before the CPU touches the page. Up to
  // v6.14 change_pte_range() made the entry SWP_DEVICE_EXCLUSIVE_READ, so restore_exclusive_pte()
  // maps it read-only (and clean) and the write takes do_wp_page(), which reuses the exclusive
  // page. From v6.15 the entry is left alone and restore asks can_change_pte_writable(): VM_WRITE,
  // an exclusive anon page, soft-dirty not tracked (VM_SOFTDIRTY still set): writable at once.
  for (const [version, writable] of [['v6.6', false], ['v6.15', true]] as const) {
    it(`${version}: after mprotect R then RW the restored PTE is ${writable ? 'writable' : 'read-only'}; the write keeps the page`, () => {
      const { k, mon, pfn } = setup(version);
      const page = pfn(0);
      exclusive(k, 'dmirror0', 0);
      k.run(k.mprotect({ map: 'buf', write: false }));
      expect(atomicHeld(k, 'dmirror0')).toBe(false); // MMU_NOTIFY_PROTECTION_VMA
      k.run(k.mprotect({ map: 'buf', write: true }));
      expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('d0');
      expect(k.isWritableIn({ map: 'buf', page: 0 })).toBe(writable);
      k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
      expect([pfn(0), k.refcount(page), k.mapcount(page)]).toEqual([page, 1, 1]);
      expect(violations(mon)).toEqual([]);
    });
  }

  // clear_refs (soft-dirty) between make and restore: the swap entry loses its soft-dirty bit and
  // VM_SOFTDIRTY is cleared. v6.1: a writable entry is restored with maybe_mkwrite(pte_mkdirty())
  // -- dirty sets soft-dirty on x86 -- so the page reads as soft-dirty without a write. v6.15:
  // can_change_pte_writable() refuses (soft-dirty tracked, PTE not soft-dirty): read-only and
  // clean until the write faults and marks it.
  for (const [version, afterRead] of [['v6.1', [true, true]], ['v6.15', [false, false]]] as const) {
    it(`${version}: clear_refs, then the CPU read restores writable=${afterRead[0]} soft-dirty=${afterRead[1]}`, () => {
      const { k } = setup(version);
      exclusive(k, 'dmirror0', 0);
      k.run(k.clearRefs({}));
      expect(k.isSoftDirtyIn({ map: 'buf', page: 0 })).toBe(false);
      k.run(k.read({ map: 'buf', page: 0 }));
      expect([k.isWritableIn({ map: 'buf', page: 0 }), k.isSoftDirtyIn({ map: 'buf', page: 0 })]).toEqual(afterRead);
      k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
      expect([k.isWritableIn({ map: 'buf', page: 0 }), k.isSoftDirtyIn({ map: 'buf', page: 0 })]).toEqual([true, true]);
    });
  }

  // A second device's make_device_exclusive(): its GUP(FOLL_WRITE) faults the entry back
  // (remove_device_exclusive_entry notifies with owner NULL: device 0's atomic entry goes), then
  // converts the PTE again for device 1.
  it('a second device takes the page: the first loses its atomic mapping', () => {
    const { k, mon, pfn } = setup('latest', { pages: 2 });
    k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror1' }));
    exclusive(k, 'dmirror0', 0, 2);
    expect(exclusive(k, 'dmirror1', 0)).toEqual(['d0']);
    expect([atomicHeld(k, 'dmirror0', 0, 1), atomicHeld(k, 'dmirror0', 1, 1), atomicHeld(k, 'dmirror1', 0, 1)]).toEqual([false, true, true]);
    expect([k.refcount(pfn(0)), k.mapcount(pfn(0))]).toEqual([1, 1]);
    expect(violations(mon)).toEqual([]);
  });

  // A GUP pin of the page faults the entry back like a CPU access (the slow path sees a
  // non-present entry); the pin itself then counts GUP_PIN_COUNTING_BIAS on the small folio.
  it('pin_user_pages on a device-exclusive entry restores it first; the device loses that page only', () => {
    const { k, pfn } = setup('v6.6', { pages: 2 });
    exclusive(k, 'dmirror0', 0, 2);
    k.run(k.gup({ map: 'buf', page: 0, write: true, as: 'p' }, true));
    expect([atomicHeld(k, 'dmirror0', 0, 1), atomicHeld(k, 'dmirror0', 1, 1)]).toEqual([false, true]);
    expect([k.refcount(pfn(0)), k.mapcount(pfn(0)), k.isMappedIn({ map: 'buf', page: 0 })]).toEqual([1 + 1024, 1, true]);
  });

  // zap_pte_range() on a device-exclusive entry: the reference at once (no TLB gather); the rmap
  // only from v6.15 (before, make_device_exclusive had removed it: no second removal, no
  // underflow). The page is freed, the mirror heard of the unmap first.
  for (const version of ['v6.1', 'v6.15']) {
    it(`${version}: munmap of a device-exclusive entry frees the page, mapcount 0, no violation`, () => {
      const { k, mon, pfn } = setup(version);
      const page = pfn(0);
      exclusive(k, 'dmirror0', 0);
      k.run(k.munmap({ map: 'buf' }));
      expect([k.refcount(page), k.mapcount(page)]).toEqual([0, 0]);
      expect(mon.trace.some((l) => l.includes(`page.free pfn=${page} type=ram`))).toBe(true);
      expect(violations(mon)).toEqual([]);
    });
  }

  // migrate_vma_collect_pmd() selects only present pages and this device's device-private
  // entries: a device-exclusive entry is skipped (no MIGRATE_PFN_MIGRATE), so test_hmm's
  // read-back after MIGRATE_TO_DEV finds the page not in device memory: -ENOENT, entry unchanged.
  it('migrating a device-exclusive page to the device: skipped by the collect walk, -ENOENT, the entry stays', () => {
    const { k, mon, pfn } = setup('v6.15');
    const page = pfn(0);
    exclusive(k, 'dmirror0', 0);
    let code = '';
    try {
      k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0' }));
    } catch (e) {
      code = (e as KernelError).code;
    }
    expect([code, pfn(0), k.isMappedIn({ map: 'buf', page: 0 }), atomicHeld(k, 'dmirror0')]).toEqual(['ENOENT', page, false, true]);
    expect(violations(mon)).toEqual([]);
  });

  // move_page_tables() raises MMU_NOTIFY_UNMAP over the old range (the device's atomic entry goes)
  // and moves the entry as it is; the CPU's access at the new address restores it there.
  for (const version of ['v6.6', 'v6.15']) {
    it(`${version}: mremap moves a device-exclusive entry; the device loses its atomic mapping; the read at the new address restores it`, () => {
      const { k, mon, pfn } = setup(version, { pages: 2 });
      const page = pfn(0);
      exclusive(k, 'dmirror0', 0);
      // mremap(MREMAP_MAYMOVE | MREMAP_FIXED) onto another mapping (unmapped first)
      k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'dst' }));
      k.run(k.mremap({ map: 'buf', length: 2 * PAGE, to: 'dst', as: 'moved' }));
      expect(atomicHeld(k, 'dmirror0')).toBe(false);
      expect(k.run(k.read({ map: 'moved', page: 0 }))).toBe('d0');
      expect([k.pfnOf({ map: 'moved', page: 0 }), k.refcount(page), k.mapcount(page), k.isWritableIn({ map: 'moved', page: 0 })]).toEqual([page, 1, 1, true]);
      expect(violations(mon)).toEqual([]);
    });
  }

  // The mirror holds no page reference: only the notifier keeps it from using a freed page. A
  // driver that ignores invalidations (no ->invalidate) still maps the page when exit() frees it.
  it('device-maps-freed-page: caught when a mirror ignores the MMU notifier, not otherwise', () => {
    const run = (driver: ReturnType<typeof hmm>) => {
      const k = createKernel({ arch: x86(), driver, kernel: 'latest' });
      const mon = new Monitor(k);
      k.run(k.probe({ driver: 'hmm', size: 256 * 1024 * 1024, as: 'dmirror0' }));
      k.run(k.spawn({ as: 'p' }));
      k.run(k.mmap({ process: 'p', anon: true, length: PAGE, write: true, as: 'buf' }));
      k.run(k.write({ map: 'buf', page: 0, data: 'd0' }));
      k.run(k.deviceExclusive({ device: 'dmirror0', map: 'buf' }));
      k.run(k.exit({ process: 'p' }));
      return violations(mon);
    };
    expect(run(hmm())).toEqual([]);
    const { invalidate: _ignored, ...deaf } = hmm();
    expect(run(deaf)).toEqual(['device-maps-freed-page']);
  });

  // Not anonymous: the page of a shared mapping of the mirror device file (dmirror_fops_mmap:
  // vm_insert_page of a kernel page). GUP(FOLL_WRITE) grabs it, then make_device_exclusive
  // refuses: v5.14-v6.14 page_make_device_exclusive() returns false (dmirror_exclusive: -EBUSY),
  // v6.15 -EOPNOTSUPP; the GUP reference is dropped and the PTE left present.
  for (const [version, code] of [['v6.6', 'EBUSY'], ['v6.15', 'EOPNOTSUPP']] as const) {
    it(`${version}: a page that is not anonymous is refused with ${code}`, () => {
      const { k, mon } = setup(version);
      k.run(k.mmap({ device: 'dmirror0', length: PAGE, shared: true, write: true, as: 'file' }));
      const page = k.pfnOf({ map: 'file', page: 0 })!;
      const rc = k.refcount(page);
      let err: unknown;
      try {
        k.run(k.deviceExclusive({ device: 'dmirror0', map: 'file' }));
      } catch (e) {
        err = e;
      }
      expect((err as KernelError).code).toBe(code);
      expect([k.refcount(page), k.isMappedIn({ map: 'file', page: 0 })]).toEqual([rc, true]);
      expect(violations(mon)).toEqual([]);
    });
  }

  // FOLL_SPLIT_PMD on a PMD-mapped anonymous THP: split_huge_pmd() remaps it by 512 PTEs (511
  // references added: refcount 512, total mapcount 512). v6.15's folio walk converts the one PTE
  // of each page asked for: mapcount stays 512, both pages stay atomic. The v5.14-v6.14 rmap walk
  // of the folio converts all 512 PTEs for page 0 (mapcount 0, nothing mapped); page 1's GUP then
  // faults its entry back (mapcount 1), the walk's notifier over the folio erases page 0's atomic
  // entry and the walk stops at page 0's entry before reaching page 1: -EBUSY -- hmm-tests'
  // exclusive cases failing with THP, as the v6.15 series' cover letter reports.
  for (const [version, second, mapcounts, atomic0] of [['v6.6', 'EBUSY', [0, 1], false], ['v6.15', 'ok', [512, 512], true]] as const) {
    it(`${version}: make_device_exclusive on a THP: page 0 ok, page 1 ${second}; mapcount ${mapcounts.join(' then ')}`, () => {
      const k = createKernel({ arch: x86(), driver: hmm(), kernel: version });
      const mon = new Monitor(k);
      k.run(k.probe({ driver: 'hmm', size: 256 * 1024 * 1024, as: 'dmirror0' }));
      k.run(k.mmap({ anon: true, length: 2 * 1024 * 1024, write: true, as: 'buf' }));
      k.run(k.madvise({ map: 'buf', advice: 'hugepage' }));
      k.run(k.write({ map: 'buf', page: 0, data: 'h' }));
      const head = k.pfnOf({ map: 'buf', page: 0 })!;
      const page = (p: number) => k.run(k.deviceExclusive({ device: 'dmirror0', map: 'buf', page: p }));
      expect(page(0)).toEqual(['h']);
      expect([k.refcount(head), k.mapcount(head), k.isMappedIn({ map: 'buf', page: 511 })]).toEqual([512, mapcounts[0], version !== 'v6.6']);
      let got = 'ok';
      try {
        page(1);
      } catch (e) {
        got = (e as KernelError).code;
      }
      expect([got, k.refcount(head), k.mapcount(head)]).toEqual([second, 512, mapcounts[1]]);
      expect(atomicHeld(k, 'dmirror0', 0, 1)).toBe(atomic0);
      expect(violations(mon)).toEqual([]);
    });
  }
});
