import { createKernel, formatSnapshotFlags, KernelError, Monitor, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm, setDmirrorFlags } from '../src/index.js';

// Device-private THPs on `latest` (`migrate-device-thp` compound: Balbir Singh's 2025 series,
// read in its v7 posting, and lib/test_hmm.c of a tree that has it): the refcounts, mapcounts
// and entries the kernel keeps, reasoned step by step in each test. x86, 4 KiB pages:
// HPAGE_PMD_NR = 512. The device-private folio starts at refcount 1 (zone_device_folio_init)
// and idles at 0 (v6.1+: free device pages sit at 0).
const PAGE = 4096;
const NR = 512;

/** A PMD-aligned MADV_HUGEPAGE anonymous buffer of one PMD plus one, as hmm-tests.c maps it. */
function setup(opts: { write?: boolean; features?: Record<string, string | boolean>; coherent?: boolean } = {}) {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest', ...(opts.features ? { features: opts.features } : {}) });
  const mon = new Monitor(k);
  // test_hmm's numbering: private devices are dmirror0 and 1, coherent ones dmirror2 and 3
  const dev = k.run(k.probe({ driver: 'hmm', kind: opts.coherent ? 'coherent' : 'private', size: 256 * 1024 * 1024, as: opts.coherent ? 'dmirror2' : 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: opts.write ?? true, as: 'buf' }));
  k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: NR * PAGE }));
  const entry = (page: number, process = 'init') => {
    const mm = k.processes.get(process)!;
    return k.vm.lookup(mm, mm.ranges.get('buf')!.start + page)?.pte ?? null;
  };
  const pfn = (page: number, process?: string) => k.pfnOf({ map: 'buf', page, ...(process ? { process } : {}) })!;
  const state = dev.state as unknown as { allocated: Set<number>; freedHuge: number[]; calloc: number; cfree: number };
  return { k, mon, dev, entry, pfn, state };
}

function fillAndMigrate(k: Kernel, to = 'dmirror0'): void {
  for (let i = 0; i < NR; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
  k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to }));
}

const snapshot = (k: Kernel, page: number, process?: string) =>
  formatSnapshotFlags(k.run(k.deviceSnapshot({ device: 'dmirror0', map: 'buf', page, expect: [0], ...(process ? { process } : {}) }))[0]!);

describe('a device-private THP behind one PMD entry', () => {
  it('the migrated THP: one writable device-private PMD on an order-9 device folio, rc 1, entire mapcount 1, PageAnonExclusive kept', () => {
    const { k, dev, entry, pfn, mon, state } = setup();
    fillAndMigrate(k);
    // zone_device_folio_init (1) + remove_migration_pmd (+1, mapcount 1) - finalize's put of the
    // allocation reference (-1): rc 1
    const head = pfn(0);
    expect([head, k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([dev.dataPfn, 9, 1, 1]);
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: true, write: true, pfn: head });
    // folio_migrate_mapping(): anon, and the source's PageAnonExclusive (the THP was exclusive)
    expect(k.isAnon(head)).toBe(true);
    expect(k.anonExclusive(head)).toBe(true);
    // dmirror_devmem_alloc_page(is_large): calloc += HPAGE_PMD_NR
    expect([state.calloc, state.allocated.size]).toEqual([NR, NR]);
    expect(snapshot(k, 77)).toBe('DEV_PRIVATE_LOCAL|WRITE|PMD');
    // the device's own write through hmm_range_fault() lands in the folio's page 77
    k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 77, data: 'dev77' }));
    expect(k.pages.data.get(head + 77)).toBe('dev77');
    expect(mon.violations).toEqual([]);
  });

  it('a CPU write fault brings it home whole (do_huge_pmd_device_private): a writable THP, rc 1, mapcount 1; the device folio back on free_folios', () => {
    const { k, entry, pfn, state, mon } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.write({ map: 'buf', page: 300, data: 'cpu' }));
    // device folio: 1 + folio_get (fault) + 1 (collect) - 1 (set_pmd_migration_entry) - 1
    // (finalize: the source) - 1 (folio_put after migrate_to_ram) = 0 -> ->folio_free
    expect([k.refcount(dhead), k.mapcount(dhead)]).toEqual([0, 0]);
    expect(state.freedHuge).toEqual([dhead]);
    expect([state.allocated.size, state.cfree]).toEqual([0, NR]);
    // the RAM THP: vma_alloc_folio (1) + remove_migration_pmd (+1) - finalize (-1) = 1; the
    // migration entry was writable, so the PMD is writable and the write needed no COW
    const head = pfn(0);
    expect([k.folios.kind(head), k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual(['ram', 9, 1, 1]);
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: false, write: true });
    expect(k.run(k.read({ map: 'buf', page: 299 }))).toBe('i299');
    expect(k.run(k.read({ map: 'buf', page: 300 }))).toBe('cpu');
    expect(mon.violations).toEqual([]);
  });

  it('the huge zero PMD of a PROT_READ mapping: a read-only device PMD (migrate_vma_insert_huge_pmd_page replaces the zero PMD), faulted home as a read-only THP', () => {
    const { k, entry, pfn, dev } = setup({ write: false });
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    expect(entry(0)).toMatchObject({ level: 'pmd', special: true });
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // a MIGRATE_PFN_COMPOUND hole: folio_add_new_anon_rmap (mapcount 1) + folio_get on top of the
    // allocation's 1, finalize's put: rc 1; VM_WRITE is clear, so a readable device-private entry
    expect([pfn(0), k.refcount(dev.dataPfn), k.mapcount(dev.dataPfn)]).toEqual([dev.dataPfn, 1, 1]);
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: true, write: false });
    expect(snapshot(k, 511)).toBe('DEV_PRIVATE_LOCAL|READ|PMD');
    expect(k.run(k.read({ map: 'buf', page: 511 }))).toBe('');
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: false, write: false, special: false });
    expect([k.refcount(pfn(0)), k.mapcount(pfn(0)), k.refcount(dev.dataPfn)]).toEqual([1, 1, 0]);
  });

  it('fork (copy_huge_pmd): both PMDs read-only on one device folio (rc 2, mapcount 2, not exclusive); the child\'s read brings it home for both', () => {
    const { k, entry, pfn } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.fork({ as: 'child' }));
    // folio_get + folio_try_dup_anon_rmap_pmd (never refused for device-private folios: clears
    // PageAnonExclusive); the parent's writable entry made readable (make_readable_device_private_entry)
    expect([k.refcount(dhead), k.mapcount(dhead), k.anonExclusive(dhead)]).toEqual([2, 2, false]);
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: true, write: false });
    expect(entry(0, 'child')).toMatchObject({ level: 'pmd', devicePrivate: true, write: false, pfn: dhead });
    expect(snapshot(k, 3, 'child')).toBe('DEV_PRIVATE_LOCAL|READ|PMD');
    expect(k.run(k.read({ map: 'buf', page: 3, process: 'child' }))).toBe('i3');
    // the collect unmapped both PMDs (try_to_migrate through the rmap), remove_migration_pmd
    // mapped the new THP at both places, read-only as their migration entries were
    const head = pfn(0);
    expect(pfn(0, 'child')).toBe(head);
    expect([k.folios.kind(head), k.refcount(head), k.mapcount(head), k.refcount(dhead)]).toEqual(['ram', 2, 2, 0]);
    expect(entry(0)).toMatchObject({ level: 'pmd', write: false, devicePrivate: false });
    // the parent's write: not exclusive, rc 2: do_huge_pmd_wp_page splits its PMD and copies
    k.run(k.write({ map: 'buf', page: 3, data: 'p3' }));
    expect(k.run(k.read({ map: 'buf', page: 3, process: 'child' }))).toBe('i3');
  });

  it('munmap (zap_huge_pmd): folio_remove_rmap_pmd + folio_put at once: the device folio is freed and the next huge migration reuses it', () => {
    const { k, pfn, state } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.munmap({ map: 'buf' }));
    expect([k.refcount(dhead), k.mapcount(dhead), state.freedHuge]).toEqual([0, 0, [dhead]]);
    k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
    k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: NR * PAGE }));
    fillAndMigrate(k);
    // dmirror_devmem_alloc_page(is_large): free_folios first
    expect([pfn(0), k.refcount(dhead), state.freedHuge]).toEqual([dhead, 1, []]);
  });

  it('mprotect(PROT_READ) of the whole PMD (change_huge_pmd): the entry turns readable, still one PMD', () => {
    const { k, entry, pfn } = setup();
    fillAndMigrate(k);
    k.run(k.mprotect({ map: 'buf', write: false, offset: 0, length: NR * PAGE }));
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: true, write: false });
    expect([k.refcount(pfn(0)), k.mapcount(pfn(0))]).toEqual([1, 1]);
  });

  it('mprotect(PROT_READ) of half the PMD splits the VMA and the entry (__split_huge_pmd_locked): 512 device-private PTEs, rc and mapcount 512, the folio still order 9', () => {
    const { k, entry, pfn } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.mprotect({ map: 'buf', write: false, offset: 256 * PAGE, length: 256 * PAGE }));
    // folio_ref_add(HPAGE_PMD_NR - 1) and folio_add_anon_rmap_ptes(512) for the PMD's one: 512 each
    expect([k.folios.order(dhead), k.refcount(dhead), k.mapcount(dhead)]).toEqual([9, 512, 512]);
    expect(entry(0)).toMatchObject({ level: 'pte', devicePrivate: true, write: true, pfn: dhead });
    // the second VMA's PTEs made readable by change_pte_range()
    expect(entry(300)).toMatchObject({ level: 'pte', devicePrivate: true, write: false, pfn: dhead + 300 });
    // PageAnonExclusive carried (the head's, as the folio reads it)
    expect(k.anonExclusive(dhead + 300)).toBe(true);
    expect(snapshot(k, 300)).toBe('DEV_PRIVATE_LOCAL|READ');
  });

  it('a CPU fault on a PTE of the split entry migrates that page only (vmf->pte: order 0), splitting the device folio first (migrate_vma_split_folio)', () => {
    const { k, entry, pfn, state, mon } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.munmap({ map: 'buf', offset: 0, length: 128 * PAGE }));
    // split PMD (rc 512) then 128 PTEs zapped: rc and mapcount 384
    expect([k.refcount(dhead), k.mapcount(dhead)]).toEqual([384, 384]);
    expect(k.run(k.read({ map: 'buf', page: 200 }))).toBe('i200');
    // do_swap_page's get (385) on the large folio; split_folio(): can_split_folio (mapcount 384 ==
    // 385 - 1); each subpage's refcount is its PTE's, the head keeps the fault's reference, which
    // moves to page 200's new folio (folio_get(new_fault_folio), folio_put(folio)): the unmapped
    // head (0 then) and its 127 unmapped neighbours go back to the mirror one by one
    expect([k.folios.order(dhead), k.refcount(dhead)]).toEqual([0, 0]);
    expect([k.refcount(dhead + 201), k.mapcount(dhead + 201), k.folios.order(dhead + 201)]).toEqual([1, 1, 0]);
    // page 200: its PTE moved to a RAM page; do_swap_page's put freed it
    expect(k.refcount(dhead + 200)).toBe(0);
    expect(entry(200)).toMatchObject({ level: 'pte', devicePrivate: false });
    expect(state.allocated.size).toBe(NR - 128 - 1);
    expect(k.run(k.read({ map: 'buf', page: 511 }))).toBe('i511');
    expect(mon.violations).toEqual([]);
  });

  it('a pinned THP stays (migrate_vma_check_page: rc 2 beyond the collect reference and mapcount 0): the PMD is restored, -ENOENT', () => {
    const { k, entry, pfn } = setup();
    for (let i = 0; i < NR; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
    const head = pfn(0);
    k.run(k.gup({ map: 'buf', page: 5, write: true, as: 'dma' }, true));
    expect(k.refcount(head)).toBe(2);
    // test_hmm's read-back: page 0 is not in device memory
    expect(() => k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }))).toThrow(/^ENOENT/);
    // collect (+1, 3), unmap (-1, 2, mapcount 0): 2 - 1 > 0, so remove_migration_pmd puts the
    // PMD back (+1, mapcount 1) and finalize drops the collect reference: rc 2, mapcount 1
    expect([k.folios.kind(head), k.refcount(head), k.mapcount(head)]).toEqual(['ram', 2, 1]);
    expect(entry(0)).toMatchObject({ level: 'pmd', devicePrivate: false, write: true, pfn: head });
  });

  it('HMM_DMIRROR_MIGRATE_TO_SYS moves the device THP home whole; HMM_DMIRROR_RELEASE (migrate_device_range) evicts one whole', () => {
    const a = setup();
    fillAndMigrate(a.k);
    const d1 = a.pfn(0);
    a.k.run(a.k.migrate({ map: 'buf', page: 0, pages: NR, to: 'ram' }));
    expect([a.k.folios.kind(a.pfn(0)), a.k.folios.order(a.pfn(0)), a.k.refcount(a.pfn(0)), a.k.refcount(d1)]).toEqual(['ram', 9, 1, 0]);
    expect(a.entry(0)).toMatchObject({ level: 'pmd', write: true, devicePrivate: false });

    const b = setup();
    fillAndMigrate(b.k);
    const d2 = b.pfn(0);
    b.k.run(b.k.unbind({ device: 'dmirror0' }));
    // migrate_device_unmap(): MIGRATE_PFN_COMPOUND for the large folio; dmirror_device_evict_chunk
    // allocates a folio of its order: one THP behind one PMD, rc 1, mapcount 1
    expect([b.k.folios.kind(b.pfn(0)), b.k.folios.order(b.pfn(0)), b.k.refcount(b.pfn(0)), b.k.mapcount(b.pfn(0)), b.k.refcount(d2)]).toEqual(['ram', 9, 1, 1, 0]);
    expect(b.k.run(b.k.read({ map: 'buf', page: 400 }))).toBe('i400');
  });

  it('GUP of a page behind the device PMD faults the whole folio home first, then pins the THP', () => {
    const { k, pfn } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.gup({ map: 'buf', page: 9, write: true, as: 'p' }, true));
    const head = pfn(0);
    expect([k.folios.kind(head), k.refcount(dhead)]).toEqual(['ram', 0]);
    // the PMD's reference + the pin (FOLL_PIN on a large folio: +1 and _pincount)
    expect(k.refcount(head)).toBe(2);
  });

  it('with `migrate-device-thp` split (v6.15 and before) the same migration splits the THP and moves 512 order-0 pages', () => {
    const { k, entry, pfn, dev } = setup({ features: { 'migrate-device-thp': 'split' } });
    fillAndMigrate(k);
    expect(entry(0)).toMatchObject({ level: 'pte', devicePrivate: true });
    expect([pfn(511), k.folios.order(pfn(511)), k.refcount(pfn(511))]).toEqual([dev.dataPfn + 511, 0, 1]);
  });

  // HMM_DMIRROR_FLAGS / HMM_DMIRROR_FLAG_FAIL_ALLOC (hmm-tests.c migrate_anon_huge_err, _zero_err):
  // the driver's huge allocation fails once and it falls back to base pages; migrate_vma_pages()
  // then splits the unmapped source (migrate_vma_split_unmapped_folio()) or fills the hole page
  // by page (linux-mm/linux-mm 08ea4eaefa56 mm/migrate_device.c, 05ab51217205 lib/test_hmm.c)
  it('FAIL_ALLOC to the device: the unmapped THP is split (folio_split_unmapped: 512 order-0 folios at rc 1) and 512 base device pages take its place, one PTE each', () => {
    const { k, dev, entry, pfn, state, mon } = setup();
    for (let i = 0; i < NR; i++) k.run(k.write({ map: 'buf', page: i, data: `i${i}` }));
    const head = pfn(0);
    setDmirrorFlags(k, 'dmirror0', { failAlloc: true });
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    // the source: collect (rc 2) and the PMD's migration entry (rc 1, mapcount 0); the split's
    // folio_get / freeze put leave 1; each order-0 piece holds one reference, dropped at finalize
    for (let i = 0; i < NR; i++) expect(k.ram.live.has(head + i)).toBe(false);
    // each device page: zone_device_page_init (1) + remove_migration_pte (+1) - finalize (-1)
    expect([pfn(300), k.folios.order(pfn(300)), k.refcount(pfn(300)), k.mapcount(pfn(300))]).toEqual([dev.dataPfn + 300, 0, 1, 1]);
    expect(entry(300)).toMatchObject({ level: 'pte', devicePrivate: true, write: true });
    expect([state.calloc, state.freedHuge.length]).toEqual([NR, 0]);
    expect(k.run(k.read({ map: 'buf', page: 2 }))).toBe('i2');
    // the flag fails one allocation only
    k.run(k.munmap({ map: 'buf' }));
    k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
    k.run(k.madvise({ map: 'buf', advice: 'hugepage', offset: 0, length: NR * PAGE }));
    fillAndMigrate(k);
    expect([entry(0)?.level, k.folios.order(pfn(0))]).toEqual(['pmd', 9]);
    expect(mon.violations).toEqual([]);
  });

  it('FAIL_ALLOC on MIGRATE_TO_SYS: the device THP is split and comes home as 512 order-0 system pages; its pieces go back on the mirror\'s free_pages', () => {
    const { k, entry, pfn, state } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    setDmirrorFlags(k, 'dmirror0', { failAlloc: true });
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'ram' }));
    // dmirror_devmem_fault_alloc_and_copy(): *dst &= ~MIGRATE_PFN_COMPOUND and a system page per page
    expect([k.folios.kind(pfn(7)), k.folios.order(pfn(7)), k.refcount(pfn(7)), k.mapcount(pfn(7))]).toEqual(['ram', 0, 1, 1]);
    expect(entry(7)).toMatchObject({ level: 'pte', devicePrivate: false, write: true });
    // ->folio_free of each order-0 piece: free_pages, cfree += 1 each
    expect([k.refcount(dhead), k.refcount(dhead + 7), state.allocated.size, state.cfree, state.freedHuge.length]).toEqual([0, 0, 0, NR, 0]);
    expect(k.run(k.read({ map: 'buf', page: 2 }))).toBe('i2');
  });

  it('FAIL_ALLOC over the huge zero PMD: the compound hole is filled page by page, the first insert splitting the zero PMD (512 read-only device PTEs)', () => {
    const { k, entry, dev } = setup({ write: false });
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    setDmirrorFlags(k, 'dmirror0', { failAlloc: true });
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'dmirror0' }));
    expect(entry(0)).toMatchObject({ level: 'pte', devicePrivate: true, write: false, pfn: dev.dataPfn });
    expect(entry(511)).toMatchObject({ level: 'pte', devicePrivate: true, write: false, pfn: dev.dataPfn + 511 });
    expect([k.refcount(dev.dataPfn + 511), k.mapcount(dev.dataPfn + 511)]).toEqual([1, 1]);
    expect(k.run(k.read({ map: 'buf', page: 2 }))).toBe('');
  });

  it('FAIL_ALLOC on a CPU fault of the device PMD: the split of the unmapped folio is refused (the fault\'s reference), the PMD comes back as PTEs and the retried access migrates its page alone', () => {
    const { k, entry, pfn, mon } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    setDmirrorFlags(k, 'dmirror0', { failAlloc: true });
    expect(k.run(k.read({ map: 'buf', page: 5 }))).toBe('i5');
    // first fault: dmirror_devmem_fault_alloc_and_copy() falls back to base system pages;
    // migrate_vma_split_unmapped_folio(): split_huge_pmd_address(freeze) makes 512 PTE migration
    // entries, folio_split_unmapped() refuses (rc 2: the fault's folio_get besides the
    // migration's), so finalize maps the large folio back by 512 device-private PTEs. The
    // retried access is a PTE fault (order 0): migrate_vma_split_folio() splits the folio, the
    // fault's reference moving to page 5's folio, and page 5 alone comes home
    expect(entry(5)).toMatchObject({ level: 'pte', devicePrivate: false, write: true });
    expect(entry(400)).toMatchObject({ level: 'pte', devicePrivate: true, write: true, pfn: dhead + 400 });
    expect([k.folios.order(dhead), k.refcount(dhead), k.refcount(dhead + 400), k.refcount(dhead + 5)]).toEqual([0, 1, 1, 0]);
    expect(k.run(k.read({ map: 'buf', page: 400 }))).toBe('i400');
    expect(mon.violations).toEqual([]);
  });

  it('HMM_DMIRROR_FLAGS is the series\' ioctl: -EINVAL from the test_hmm of v6.15 and before', () => {
    const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'v6.15' });
    k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
    expect(() => setDmirrorFlags(k, 'dmirror0', { failAlloc: true })).toThrow(KernelError);
  });

  it('MIGRATE_TO_SYS over a half-unmapped device THP: migrate_vma_split_folio() (its own reference) splits the PTE-mapped folio, the unmapped half is freed, the rest comes home page by page', () => {
    const { k, entry, pfn, state, mon } = setup();
    fillAndMigrate(k);
    const dhead = pfn(0);
    k.run(k.munmap({ map: 'buf', offset: 256 * PAGE, length: 256 * PAGE }));
    expect([k.refcount(dhead), k.mapcount(dhead)]).toEqual([256, 256]);
    k.run(k.migrate({ map: 'buf', page: 0, pages: 256, to: 'ram' }));
    // folio_get (257) + split_folio(): can_split_folio (mapcount 256 == 257 - 1); the 256
    // unmapped pieces are freed at once (->folio_free each), the mapped ones migrate and are freed
    // by finalize: the mirror holds nothing
    expect([state.allocated.size, state.cfree, k.refcount(dhead), k.refcount(dhead + 300)]).toEqual([0, NR, 0, 0]);
    expect(entry(100)).toMatchObject({ level: 'pte', devicePrivate: false, write: true });
    expect([k.folios.order(pfn(100)), k.refcount(pfn(100)), k.mapcount(pfn(100))]).toEqual([0, 1, 1]);
    expect(k.run(k.read({ map: 'buf', page: 100 }))).toBe('i100');
    expect(mon.violations).toEqual([]);
  });

  it('a device-coherent THP: one present PMD on an order-9 coherent folio (rc 1, mapcount 1) the CPU uses in place; MIGRATE_TO_SYS leaves it (a present PMD is collected only with MIGRATE_VMA_SELECT_SYSTEM)', () => {
    const { k, dev } = setup({ coherent: true });
    fillAndMigrate(k, 'dmirror2');
    const head = k.pfnOf({ map: 'buf', page: 0 })!;
    // migrate_vma_pages(): remove_migration_pmd of a coherent folio: a present, writable, dirty PMD
    expect([head, k.folios.kind(head), k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([dev.dataPfn, 'coherent', 9, 1, 1]);
    expect(k.isWritableIn({ map: 'buf', page: 9 })).toBe(true);
    k.run(k.write({ map: 'buf', page: 9, data: 'cpu' }));
    expect(k.pages.data.get(head + 9)).toBe('cpu');
    expect(formatSnapshotFlags(k.run(k.deviceSnapshot({ device: 'dmirror2', map: 'buf', page: 9, expect: [0] }))[0]!)).toBe('DEV_COHERENT_LOCAL|WRITE|PMD');
    k.run(k.migrate({ map: 'buf', page: 0, pages: NR, to: 'ram' }));
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(head);
  });

  it('a migration that covers the huge zero PMD in part collects its pages as holes and leaves the PMD; the first insert splits it (page 0, outside the range, stays the zero page)', () => {
    const { k, entry, dev } = setup({ write: false });
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    k.run(k.migrate({ map: 'buf', page: 1, pages: NR - 1, to: 'dmirror0' }));
    expect(entry(0)).toMatchObject({ level: 'pte', special: true, devicePrivate: false });
    expect(entry(1)).toMatchObject({ level: 'pte', devicePrivate: true, write: false, pfn: dev.dataPfn });
    expect(entry(NR - 1)).toMatchObject({ level: 'pte', devicePrivate: true, pfn: dev.dataPfn + NR - 2 });
  });

  it('a device-coherent THP half unmapped (its PMD split into PTEs): MIGRATE_TO_SYS splits the large coherent folio during the walk and brings each kept page home', () => {
    const { k, dev } = setup({ coherent: true });
    fillAndMigrate(k, 'dmirror2');
    k.run(k.munmap({ map: 'buf', offset: 0, length: 256 * PAGE }));
    // the PMD split (rc 1 + 511, mapcount 512), then the first half's PTEs zapped: 256
    expect([k.folios.order(dev.dataPfn), k.refcount(dev.dataPfn), k.mapcount(dev.dataPfn)]).toEqual([9, 256, 256]);
    k.run(k.migrate({ map: 'buf', page: 256, pages: 256, to: 'ram' }));
    const p = k.pfnOf({ map: 'buf', page: 300 })!;
    expect([k.folios.kind(p), k.refcount(p), k.mapcount(p), k.refcount(dev.dataPfn), k.refcount(dev.dataPfn + 300)]).toEqual(['ram', 1, 1, 0, 0]);
    expect(k.run(k.read({ map: 'buf', page: 300 }))).toBe('i300');
  });

  it('a FOLL_LONGTERM pin of a device-coherent THP fails with -EBUSY (migrate_device_coherent_folio: WARN on a large folio, not migrated); the THP and its refcount are as before', () => {
    const { k, dev } = setup({ coherent: true });
    fillAndMigrate(k, 'dmirror2');
    expect(() => k.run(k.gup({ map: 'buf', page: 3, write: true, longterm: true, as: 'p' }, true))).toThrow(/^EBUSY/);
    // the pin (+1) turned into a reference and the pin dropped, then finalize's put: rc 1 again
    expect([k.pfnOf({ map: 'buf', page: 0 }), k.refcount(dev.dataPfn), k.mapcount(dev.dataPfn)]).toEqual([dev.dataPfn, 1, 1]);
    expect(k.warnings.some((w) => /folio_test_large/.test(w))).toBe(true);
  });
});
