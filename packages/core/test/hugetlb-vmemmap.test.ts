import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type KernelEvents } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { runScenario, type PluginCatalog } from '../src/scenario/run.js';
import { testArch } from '../src/testing.js';

// HVO on a hugetlb pool (mm/hugetlb.ts + vmemmap/hugetlb.ts), on the x86-64-shaped test arch
// (4 KiB pages, 64-byte struct page, HVO selected, RAM's memmap PMD-mapped): a 2 MiB page has 8
// vmemmap pages (vmemmap_dedup.rst), of which HVO frees 7 from v5.18 (6 before), a 1 GiB page 4096
// (4095 freed). One 2 MiB PMD of vmemmap holds the struct pages of 128 MiB (a section): HVO splits
// each PMD it remaps in into a PTE table (vmemmap_split_pmd), one page each. Pool pages are taken
// top-down from 64 GiB, so the first 64 pages of 2 MiB share the last section below it.

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const HPAGE = 2 * MiB;

function kernel(version = 'latest', hvo = true): Kernel {
  return createKernel({ arch: testArch(), kernel: version, features: { 'hugetlb-free-vmemmap': hvo } });
}

const pool = (k: Kernel, pages: number, size = HPAGE) => k.run(k.hugetlbPool({ size, pages }));
const vm = (k: Kernel, size = HPAGE) => k.hugetlb.vmemmap(size);

describe('a hugetlb pool reports the vmemmap its pages use and what HVO freed', () => {
  it('4 pages of 2 MiB with hugetlb_free_vmemmap=on: 1 vmemmap page each instead of 8 (28 freed)', () => {
    const k = kernel();
    pool(k, 4);
    // the 4 pages lie in one 128 MiB section: one vmemmap PMD split, one PTE table
    expect(vm(k)).toEqual({ perPage: 8, optimized: 4, vmemmapPages: 4, vmemmapBytes: 4 * 4096, savedPages: 28, surplus: 0, pteTablePages: 1 });
  });

  it('off by default (CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON=n): all 32 vmemmap pages stay', () => {
    const k = kernel('latest', false);
    pool(k, 4);
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 32, savedPages: 0, pteTablePages: 0 });
  });

  it('a release without HVO ignores the parameter (v5.10: no hugetlb_vmemmap.c)', () => {
    const k = kernel('v5.10');
    pool(k, 4);
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 32, savedPages: 0 });
  });

  it('1 GiB pages: 4096 vmemmap pages each, 4095 freed (PAGE_SIZE - 1)', () => {
    const k = kernel();
    pool(k, 2, GiB);
    // each 1 GiB page's 16 MiB of vmemmap spans 8 PMDs: 8 PTE tables apiece (the series' early
    // cover letter: "8 pages for page tables" per 1GB page)
    expect(vm(k, GiB)).toMatchObject({ perPage: 4096, optimized: 2, vmemmapPages: 2, savedPages: 8190, pteTablePages: 16 });
    // the 2 MiB pool is a different hstate: untouched
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 0 });
  });

  it('shrinking the pool restores the vmemmap of the pages that leave it; the event carries the figures', () => {
    const k = kernel();
    const seen: KernelEvents['hugetlb.pool'][] = [];
    k.bus.on('hugetlb.pool').subscribe((e) => seen.push(e.data));
    pool(k, 4);
    pool(k, 1);
    // the PTE table stays: the split is never undone
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, savedPages: 7, pteTablePages: 1 });
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    expect(seen.map((e) => [e.nr, e.optimized, e.vmemmapPages, e.savedPages, e.pteTablePages])).toEqual([[4, 4, 4, 28, 1], [1, 1, 1, 7, 1]]);
  });

  it('a page in use stays optimised through map and fault; shrunk below it, the pool counts it as surplus and it leaves when freed', () => {
    const k = kernel();
    pool(k, 2);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    pool(k, 0); // set_max_huge_pages: the page in use stays (min_count), made surplus (adjust_pool_surplus(+1))
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 0, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, savedPages: 7, surplus: 1 });
    k.run(k.munmap({ map: 'mem' })); // free_huge_folio with a surplus: the folio leaves, its vmemmap restored
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 0, free: 0, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 0, savedPages: 0, surplus: 0 });
  });

  it('a page in use while the pool is kept: back on the free list when freed, still optimised', () => {
    const k = kernel();
    pool(k, 1);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    k.run(k.munmap({ map: 'mem' }));
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, surplus: 0 });
  });
});

describe('vmemmap_split_pmd(): one PTE table per vmemmap PMD HVO remaps in', () => {
  it('65 pages of 2 MiB span two 128 MiB sections: two tables; a PTE-mapped memmap needs none', () => {
    const k = kernel();
    pool(k, 65);
    expect(vm(k).pteTablePages).toBe(2);
    const pte = createKernel({ arch: { ...testArch(), populator: { ...testArch().populator, vmemmapPmdMapped: () => false } }, kernel: 'latest', features: { 'hugetlb-free-vmemmap': true } });
    pte.run(pte.hugetlbPool({ size: HPAGE, pages: 65 }));
    expect(pte.hugetlb.vmemmap(HPAGE)).toMatchObject({ optimized: 65, pteTablePages: 0 });
  });
});

describe('hugetlb_vmemmap_restore_folio() cannot allocate: the page stays as a surplus page', () => {
  it('2 -> 0 with the first restore failing: one page left, free, surplus, still optimised; a later write of 1 makes it persistent again', () => {
    const k = kernel();
    pool(k, 2);
    k.run(k.injectFault({ site: 'hugetlb-vmemmap-restore' }));
    pool(k, 0);
    // remove_pool_hugetlb_folio + add_hugetlb_folio(h, folio, true): nr and free as before for
    // that page, surplus 1, so the persistent count (nr - surplus) reached 0; the second page left
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, savedPages: 7, surplus: 1 });
    pool(k, 1); // adjust_pool_surplus(-1): the surplus page joins the persistent pool, nothing allocated
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    expect(vm(k).surplus).toBe(0);
    pool(k, 0); // nothing armed now: the restore succeeds
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 0, free: 0, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 0 });
  });

  it('while the pool has a surplus page, the next folio freed leaves the pool (free_huge_folio) with its vmemmap restored', () => {
    const k = kernel();
    pool(k, 2);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    k.run(k.injectFault({ site: 'hugetlb-vmemmap-restore' }));
    // the free page fails to leave (surplus 1); the page in use stays and is made surplus too
    // (count 0 < persistent 1: adjust_pool_surplus(+1)): surplus 2
    pool(k, 0);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 2, free: 1, resv: 0 });
    expect(vm(k).surplus).toBe(2);
    k.run(k.munmap({ map: 'mem' }));
    // remove_hugetlb_folio(h, folio, true): nr and surplus drop, the freed folio goes to buddy;
    // the page whose restore failed is still there, free and surplus
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 1, resv: 0 });
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, surplus: 1 });
    // set_max_huge_pages() frees only persistent pages: writing 0 again leaves the surplus page
    pool(k, 0);
    expect(vm(k)).toMatchObject({ optimized: 1, vmemmapPages: 1, surplus: 1 });
  });

  it('without HVO nothing needs restoring: an armed restore fault is never reached', () => {
    const k = kernel('latest', false);
    pool(k, 2);
    k.run(k.injectFault({ site: 'hugetlb-vmemmap-restore' }));
    pool(k, 0);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 0, free: 0, resv: 0 });
    expect(k.faultInject.injected.get('hugetlb-vmemmap-restore')).toBeUndefined();
  });
});

describe('vm.hugetlb_optimize_vmemmap (v5.19+): for the pages that join a pool from now on', () => {
  const sysctl = (k: Kernel, value: 0 | 1) => k.run(k.sysctl({ name: 'vm.hugetlb_optimize_vmemmap', value }));

  it('pages already in the pool keep their vmemmap when it is switched on, and keep HVO when it is switched off', () => {
    const k = kernel('latest', false);
    pool(k, 2); // booted with HVO off: 2 x 8 vmemmap pages
    sysctl(k, 1);
    pool(k, 4); // the 2 new pages are optimised, the 2 old ones are not
    expect(vm(k)).toMatchObject({ optimized: 2, vmemmapPages: 8 + 8 + 1 + 1, savedPages: 14 });
    sysctl(k, 0);
    pool(k, 5); // the fifth page is not; the optimised ones stay optimised
    expect(vm(k)).toMatchObject({ optimized: 2, vmemmapPages: 18 + 8, savedPages: 14 });
    // shrinking removes the pages from the end of the free list first (the last added): 5 -> 2 leaves
    // the two oldest, never optimised
    pool(k, 2);
    expect(vm(k)).toMatchObject({ optimized: 0, vmemmapPages: 16, savedPages: 0 });
  });

  it('no such file before v5.19 (the boot parameter only), nor where HVO optimises no huge page size', () => {
    const k = kernel('v5.10');
    expect(() => sysctl(k, 1)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const noHvo = createKernel({ arch: { ...testArch(), populator: { ...testArch().populator, hugetlbVmemmapOptIn: () => 'this arch does not select it' } }, kernel: 'latest' });
    expect(() => noHvo.run(noHvo.sysctl({ name: 'vm.hugetlb_optimize_vmemmap', value: 1 }))).toThrow(/does not exist on x86 in latest: HVO can optimise no huge page size here \(this arch does not select it\)/);
  });
});

describe('check: { vmemmap: { hugetlb } } in a scenario', () => {
  const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
  const yaml = (equals: string) =>
    `name: hvo\nkernel: { features: { hugetlb-free-vmemmap: true } }\nsteps:\n  - hugetlb-pool: { size: 2MiB, pages: 3 }\n  - check: { vmemmap: { hugetlb: 2MiB }, equals: ${equals} }\n`;
  const run = (text: string) => runScenario(parseScenario(text, 'hvo.yaml'), { arch: 'x86', fs: null, driver: null, version: 'latest', features: {} }, catalog);

  it('passes with the pool\'s figures: 3 pages of 2 MiB keep 3 vmemmap pages (12 KiB), 21 freed', () => {
    expect(run(yaml('{ pages: 3, bytes: 12KiB, savedPages: 21 }')).status).toBe('pass');
  });

  it('fails naming the figure that differs', () => {
    const r = run(yaml('{ pages: 24 }'));
    expect(r.status).toBe('fail');
    expect(r.failures.join('\n')).toContain('pages is 3, expected 24');
  });

  it('refuses a device-only figure or a page at load time, naming the field', () => {
    expect(() => parseScenario(yaml('{ structPagesInitialized: 1 }'), 'hvo.yaml')).toThrow(/structPagesInitialized is a device figure/);
    expect(() => parseScenario(yaml('{ pages: 3 }').replace('hugetlb: 2MiB }', 'hugetlb: 2MiB, page: 0 }'), 'hvo.yaml')).toThrow(/vmemmap is per pool: remove page/);
    expect(() => parseScenario(yaml('1').replace('vmemmap: { hugetlb', 'refcount: { hugetlb'), 'hvo.yaml')).toThrow(/refcount\.hugetlb: hugetlb names a pool/);
  });
});
