import { createKernel, formatSnapshotFlags, KernelError, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

// The mirror device (lib/test_hmm.c) on anonymous THPs: what hmm-tests.c's THP sub-runs do to the
// THP head and the device pages, per release. x86 with 4 KiB pages: HPAGE_PMD_NR = 512.
const PAGE = 4096;
const NR = 512;
const RELEASES = PRESETS.map((p) => p.name);

/**
 * hmm-tests.c's THP buffer: mmap(2 * PMD_SIZE) read/write, MADV_HUGEPAGE on map = ALIGN(ptr,
 * PMD_SIZE) for PMD_SIZE (the model places the mapping PMD-aligned, so map is page 0 and the VMA
 * splits at page 512).
 */
function setup(version: string) {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: version });
  const mon = new Monitor(k);
  const dev = k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
  k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: NR * PAGE }));
  return { k, mon, dev, pfn: (page: number, process?: string) => k.pfnOf({ map: 'buf', page, ...(process ? { process } : {}) })! };
}

/** The CPU fills the THP: the first write faults it in (do_huge_pmd_anonymous_page), the rest hit the PMD. */
function fill(k: Kernel, tag = 'i'): void {
  for (let i = 0; i < NR; i++) k.run(k.write({ map: 'buf', page: i, data: `${tag}${i}` }));
}

const faults = (mon: Monitor) => mon.trace.filter((l) => / fault /.test(l)).length;
const level = (k: Kernel, page: number, process = 'init') => {
  const mm = k.processes.get(process)!;
  return k.vm.lookup(mm, mm.ranges.get('buf')!.start + page)?.pte.level;
};

describe('hmm.anon_write_huge: the device write faults a THP in through hmm_range_fault()', () => {
  for (const v of RELEASES) {
    it(`${v}: one fault maps an order-9 folio by a writable PMD (rc 1, mapcount 1); the CPU reads the device's data`, () => {
      const { k, mon, pfn } = setup(v);
      for (let i = 0; i < NR; i++) k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: i, data: `i${i}` }));
      // hmm_vma_fault() -> handle_mm_fault(FAULT_FLAG_WRITE) on pmd_none in a VM_HUGEPAGE range:
      // do_huge_pmd_anonymous_page() maps the whole PMD, so the other 511 pages need no fault
      // (hmm-tests.c: faults == 1)
      expect(faults(mon)).toBe(1);
      const head = pfn(0);
      expect(pfn(NR - 1)).toBe(head + NR - 1);
      expect([k.folios.order(head), k.refcount(head), k.mapcount(head), level(k, 0)]).toEqual([9, 1, 1, 'pmd']);
      expect(k.isWritableIn({ map: 'buf', page: 300 })).toBe(true);
      for (const i of [0, 1, 255, NR - 1]) expect(k.run(k.read({ map: 'buf', page: i }))).toBe(`i${i}`);
      // the second half is not VM_HUGEPAGE and untouched
      expect(k.isMappedIn({ map: 'buf', page: NR })).toBe(false);
      // hmm_vma_handle_pmd() gives every base page of the PMD its order from v5.9
      // (hmm_pfn_to_map_order()); dmirror_mkentry() turns it into HMM_DMIRROR_PROT_PMD
      const snap = k.run(k.deviceSnapshot({ device: 'dmirror0', map: 'buf', expect: Array<number>(NR + 1).fill(0) })).map(formatSnapshotFlags);
      expect(new Set(snap.slice(0, NR))).toEqual(new Set([v === 'v5.4' ? 'WRITE' : 'WRITE|PMD']));
      expect(snap[NR]).toBe('NONE');
      expect(mon.violations).toEqual([]);
    });
  }
});

describe('hmm.anon_write_child, use_thp = 1, migrate = 0: fork of a PMD-mapped THP, the child writes through its device', () => {
  for (const v of RELEASES) {
    it(`${v}: copy_huge_pmd shares the THP, the child's device write COWs it, the parent's THP is left alone`, () => {
      const { k, mon, pfn } = setup(v);
      fill(k);
      const head = pfn(0);
      k.run(k.fork({ as: 'child' }));
      // copy_huge_pmd(): folio_get + entire mapcount + 1, both PMDs write-protected
      expect([k.refcount(head), k.mapcount(head)]).toEqual([2, 2]);
      expect([k.isWritableIn({ map: 'buf', page: 0 }), k.isWritableIn({ map: 'buf', page: 0, process: 'child' })]).toEqual([false, false]);
      for (const i of [0, NR - 1]) expect(k.run(k.read({ map: 'buf', page: i, process: 'child' }))).toBe(`i${i}`);
      k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 0, data: 'c0', process: 'child' }));
      if (v === 'v5.4') {
        // thp-cow copy-huge: do_huge_pmd_wp_page() with page_trans_huge_mapcount() 2 copies the
        // whole THP for the child (a new order-9 folio behind a writable PMD); the old one keeps
        // the parent's PMD: rc 1, mapcount 1
        const copy = pfn(0, 'child');
        expect([k.folios.order(copy), k.refcount(copy), k.mapcount(copy), level(k, 0, 'child')]).toEqual([9, 1, 1, 'pmd']);
        expect([k.refcount(head), k.mapcount(head)]).toEqual([1, 1]);
      } else {
        // thp-cow split (v5.8+): not mapped once, so __split_huge_pmd_locked() maps the child's
        // range by 512 PTEs (rc 2 + 511 = 513, mapcount 1 entire + 512 = 513) and do_wp_page
        // copies page 0 (rc and mapcount 512): parent PMD 1 + the child's 511 other PTEs
        expect(level(k, 0, 'child')).toBe('pte');
        expect(level(k, 0)).toBe('pmd');
        expect([k.refcount(head), k.mapcount(head)]).toEqual([NR, NR]);
        expect(k.folios.order(pfn(0, 'child'))).toBe(0);
      }
      for (let i = 1; i < NR; i++) k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: i, data: `c${i}`, process: 'child' }));
      for (const i of [0, 1, NR - 1]) expect(k.run(k.read({ map: 'buf', page: i, process: 'child' }))).toBe(`c${i}`);
      // every PTE the child had on the old THP was copied away (a lone remaining PTE is not
      // reused: the parent's PMD keeps rc at 2 for it), so the parent's THP is its own again
      expect([k.refcount(head), k.mapcount(head)]).toEqual([1, 1]);
      k.run(k.exit({ process: 'child' }));
      for (const i of [0, NR - 1]) expect(k.run(k.read({ map: 'buf', page: i }))).toBe(`i${i}`);
      expect([k.refcount(head), k.mapcount(head), level(k, 0)]).toEqual([1, 1, 'pmd']);
      expect(mon.violations).toEqual([]);
    });
  }
});

describe('migration of a PMD-mapped THP to device-private memory (migrate_vma_collect_pmd)', () => {
  for (const v of RELEASES.filter((r) => r !== 'latest')) {
    it(`${v}: split_folio() first, then the 512 base pages migrate one by one`, () => {
      const { k, mon, dev, pfn } = setup(v);
      fill(k);
      const head = pfn(0);
      k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
      // each device page: the idle count (1 with the extra reference of v5.17 and earlier, else
      // 0) plus its one device-private entry; mapcount 1
      const idle = k.features['devmem-extra-ref'] ? 1 : 0;
      for (const i of [0, 1, NR - 1]) {
        expect(pfn(i)).toBe(dev.dataPfn + i);
        expect([k.refcount(dev.dataPfn + i), k.mapcount(dev.dataPfn + i)]).toEqual([idle + 1, 1]);
        expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: i }))).toBe(`i${i}`);
      }
      // split: folio_get (rc 2), can_split_folio (mapcount 1 == rc 2 - 1), the PMD remapped by
      // PTEs, every subpage its own folio with rc 1 (the head 1 + the caller's); folio_put; then
      // each page's collect/unmap/finalize frees it: none of the THP's pages is left
      expect(mon.trace.some((l) => l.includes(`page.ref pfn=${head} `) && l.includes('__split_huge_page: order 9 -> 512 order-0 pages'))).toBe(true);
      for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
      // each CPU read faults one page home (migrate_to_ram): an order-0 page now
      expect(k.run(k.read({ map: 'buf', page: 7 }))).toBe('i7');
      expect([k.folios.order(pfn(7)), k.refcount(pfn(7)), k.mapcount(pfn(7))]).toEqual([0, 1, 1]);
      expect(mon.violations).toEqual([]);
    });
  }

  it('latest: MIGRATE_VMA_SELECT_COMPOUND moves the THP whole to a device-private THP behind one PMD entry', () => {
    const { k, dev, pfn, mon } = setup('latest');
    fill(k);
    const head = pfn(0);
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // migrate_vma_collect_huge_pmd(): folio_get (rc 2), set_pmd_migration_entry (the PMD's rmap
    // and reference go: rc 1, mapcount 0), migrate_vma_check_page() passes (rc 1 - 1 collect
    // reference = mapcount 0); the driver's order-9 device folio (zone_device_folio_init: rc 1)
    // is mapped where the PMD was (remove_migration_pmd: +1, entire mapcount 1), finalize drops
    // the source's collect reference (freed) and the destination's allocation one: rc 1
    const d = pfn(0);
    expect(d).toBe(dev.dataPfn);
    expect([k.folios.order(d), k.refcount(d), k.mapcount(d), level(k, 0), k.isWritableIn({ map: 'buf', page: 0 })]).toEqual([9, 1, 1, 'pmd', false]);
    expect(k.isSwappedIn({ map: 'buf', page: 300 })).toBe(true); // a non-present PMD: pagemap PM_SWAP
    expect(pfn(300)).toBe(d + 300);
    for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 300 }))).toBe('i300');
    expect(mon.violations).toEqual([]);
  });

  it('v6.6: a pinned THP cannot be split (can_split_folio: rc 2 + the caller\'s is not mapcount 1 + 1), so its range is skipped: -ENOENT', () => {
    const { k, pfn } = setup('v6.6');
    fill(k);
    const head = pfn(0);
    k.run(k.gup({ map: 'buf', page: 3, as: 'dma' }, true));
    // FOLL_PIN on a large folio: +1 and _pincount 1
    expect(k.refcount(head)).toBe(2);
    let err: unknown;
    try {
      k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    } catch (e) {
      err = e;
    }
    // migrate_vma_collect_skip() for the whole PMD: nothing migrated, test_hmm reads back -ENOENT
    expect((err as KernelError).code).toBe('ENOENT');
    expect([k.folios.order(head), k.refcount(head), k.mapcount(head), level(k, 0)]).toEqual([9, 2, 1, 'pmd']);
  });

  it('v6.1: a THP shared with a fork child is split in both processes; each device page then has two entries', () => {
    const { k, dev, pfn } = setup('v6.1');
    fill(k);
    const head = pfn(0);
    k.run(k.fork({ as: 'child' }));
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // can_split_folio(): mapcount 2 (two PMDs) == rc 3 (two PMDs + the caller's) - 1; unmap_folio()
    // reaches both PMDs through the rmap, so both processes end with PTEs, then the collect's
    // rmap walk moves both entries of each page to its device page: rc 0 + 2, mapcount 2
    expect(pfn(9, 'child')).toBe(dev.dataPfn + 9);
    expect([k.refcount(dev.dataPfn + 9), k.mapcount(dev.dataPfn + 9)]).toEqual([2, 2]);
    for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
    expect(k.run(k.read({ map: 'buf', page: 9, process: 'child' }))).toBe('i9');
  });

  it('the huge zero page is split into zero-page PTEs and migrates as holes (migrate_anon_huge_zero\'s mechanism, v6.15)', () => {
    const { k, dev } = setup('v6.15');
    k.run(k.mprotect({ map: 'buf', write: false }));
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    expect(level(k, 0)).toBe('pmd');
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // split_huge_pmd() then MIGRATE_PFN_MIGRATE without a page for each zero PTE:
    // migrate_vma_insert_page() maps a fresh device page (read-only: the VMA has no VM_WRITE)
    expect(k.pfnOf({ map: 'buf', page: NR - 1 })).toBe(dev.dataPfn + NR - 1);
    expect([k.refcount(dev.dataPfn), k.mapcount(dev.dataPfn)]).toEqual([1, 1]);
    expect(k.run(k.read({ map: 'buf', page: 9 }))).toBe('');
  });
});

describe('latest (migrate-device-thp compound): empty PMDs, partial ranges and migrations to RAM', () => {
  it('an empty PMD the range covers whole becomes one device-private THP (migrate_vma_collect_hole + migrate_vma_insert_huge_pmd_page)', () => {
    const { k, dev, pfn } = setup('latest');
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // one MIGRATE_PFN_COMPOUND hole: folio_add_new_anon_rmap (entire mapcount 1) + folio_get on
    // top of zone_device_folio_init's 1, then finalize's put of the allocation reference: rc 1
    expect([pfn(0), k.folios.order(pfn(0)), k.refcount(pfn(0)), k.mapcount(pfn(0)), level(k, 0)]).toEqual([dev.dataPfn, 9, 1, 1, 'pmd']);
    expect(k.isAnon(pfn(0))).toBe(true);
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: NR - 1 }))).toBe('');
  });

  it('a range that covers the empty PMD only in part is walked page by page: base holes migrate', () => {
    const { k, dev } = setup('latest');
    k.run(k.migrate({ map: 'buf', page: 1, pages: NR - 1, to: 'dmirror0' }));
    expect(k.pfnOf({ map: 'buf', page: NR - 1 })).toBe(dev.dataPfn + NR - 2);
  });

  it('a migration to RAM (device pages selected, not system ones) skips a PMD-mapped THP (migrate_vma_collect_huge_pmd)', () => {
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest' });
    const dev = k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
    // page 512 goes to the device while the VMA is not VM_HUGEPAGE; then the first PMD gets a THP
    k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
    k.run(k.write({ map: 'buf', page: NR, data: 'd' }));
    k.run(k.migrate({ map: 'buf', page: NR, to: 'dmirror0' }));
    k.run(k.madvise({ map: 'buf', advice: 'hugepage' }));
    k.run(k.write({ map: 'buf', page: 0, data: 't' }));
    const head = k.pfnOf({ map: 'buf', page: 0 })!;
    expect([k.folios.order(head), level(k, 0)]).toEqual([9, 'pmd']);
    expect(k.pfnOf({ map: 'buf', page: NR })).toBe(dev.dataPfn);
    // HMM_DMIRROR_MIGRATE_TO_SYS over both PMDs: the device page comes home, the THP is not touched
    k.run(k.migrate({ map: 'buf', page: 0, pages: 2 * NR, to: 'ram' }));
    expect(k.folios.kind(k.pfnOf({ map: 'buf', page: NR })!)).toBe('ram');
    expect([k.folios.order(head), k.refcount(head), k.mapcount(head), level(k, 0)]).toEqual([9, 1, 1, 'pmd']);
  });
});

describe('migration of a THP mapped by PTEs (a partial mremap() split its PMD)', () => {
  /** migrate_remap_fault's before = 1 move to an unaligned address: the PMD is split, the folio stays order 9. */
  function remapped(version: string) {
    const s = setup(version);
    fill(s.k);
    s.k.run(s.k.mmap({ anon: true, length: 2 * NR * PAGE, as: 'dst' }));
    s.k.run(s.k.mremap({ map: 'buf', length: NR * PAGE, to: 'dst', toOffset: (NR / 4) * PAGE, as: 'moved' }));
    return s;
  }

  for (const v of RELEASES.filter((r) => r !== 'latest')) {
    it(`${v}: "FIXME support THP": a PageTransCompound page is not collected, the migration reads back -ENOENT`, () => {
      const { k } = remapped(v);
      const head = k.pfnOf({ map: 'moved', page: 0 })!;
      // split_huge_pmd() in move_page_tables(): 512 PTEs, rc and mapcount 512, still order 9
      expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([9, NR, NR]);
      expect(() => k.run(k.migrate({ map: 'moved', page: 0, pages: NR, to: 'dmirror0' }))).toThrow(/ENOENT/);
      expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([9, NR, NR]);
      expect(k.folios.kind(k.pfnOf({ map: 'moved', page: 5 })!)).toBe('ram');
    });
  }

  it('latest: a THP half unmapped is split during the walk; the unmapped half is freed by the split, the rest migrates', () => {
    const { k, dev, pfn } = setup('latest');
    fill(k);
    const head = pfn(0);
    // munmap() of the second half: the PMD is split first, then 256 PTEs are zapped (rc and mapcount 256)
    k.run(k.munmap({ map: 'buf', offset: (NR / 2) * PAGE, length: (NR / 2) * PAGE }));
    expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([9, NR / 2, NR / 2]);
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR / 2, to: 'dmirror0' }));
    // split_folio(): subpages 256..511 have no mapping left, so the split's put frees them; 0..255
    // were order-0 pages at rc 1 and migrated (their RAM freed at finalize)
    for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
    expect(k.pfnOf({ map: 'buf', page: NR / 2 - 1 })).toBe(dev.dataPfn + NR / 2 - 1);
    expect(k.run(k.read({ map: 'buf', page: 3 }))).toBe('i3');
  });

  it('latest: migrate_vma_split_folio() splits it during the walk and every page migrates', () => {
    const { k, dev } = remapped('latest');
    const head = k.pfnOf({ map: 'moved', page: 0 })!;
    k.run(k.migrate({ map: 'moved', page: 0, pages: NR, to: 'dmirror0' }));
    expect(k.pfnOf({ map: 'moved', page: NR - 1 })).toBe(dev.dataPfn + NR - 1);
    for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
    expect(k.run(k.read({ map: 'moved', page: 100 }))).toBe('i100');
  });
});
