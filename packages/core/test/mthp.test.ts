import { describe, expect, it } from 'vitest';
import { createKernel, InputError, KernelError, type Kernel } from '../src/index.js';
import { PG } from '../src/mm/pages.js';
import { testArch } from '../src/testing.js';

// Multi-size THP for anonymous memory (mm/mthp.ts), values reasoned from mm/memory.c
// alloc_anon_folio() / do_anonymous_page() and include/linux/huge_mm.h thp_vma_allowable_orders()
// (19eaf44954df, v6.8). The test arch has 4 KiB pages and 2 MiB PMDs: 64 KiB is order 4 (16 pages),
// 32 KiB order 3, 16 KiB order 2, the PMD order 9.
const KiB = 1024;
const NR = 16;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/**
 * cow.c do_run_with_thp() for 64 KiB: settings.hugepages[PMD].enabled = never and [64K] = always,
 * mmap(2 * 64 KiB), MADV_HUGEPAGE on the 64 KiB-aligned part, then the first write. Returns the
 * page index of `mem` in the mapping (cow.c rounds the start up to the next 64 KiB boundary).
 */
function mthp(k: Kernel, opts: { size?: number; mode?: 'always' | 'madvise' | 'inherit' | 'never'; advise?: boolean } = {}): number {
  const size = opts.size ?? 64 * KiB;
  const nr = size / 4096;
  k.run(k.thpSize({ size: 2048 * KiB, enabled: 'never' }));
  k.run(k.thpSize({ size, enabled: opts.mode ?? 'always' }));
  k.run(k.mmap({ anon: true, length: 2 * size, write: true, as: 'mem' }));
  const start = k.processes.get('init')!.ranges.get('mem')!.start;
  const first = Math.ceil((start + 1) / nr) * nr - start;
  if (opts.advise ?? true) k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: first * 4096, length: size }));
  k.run(k.write({ map: 'mem', page: first, data: '0x01' }));
  return first;
}

const pte = (k: Kernel, page: number, process = 'init') => {
  const mm = k.processes.get(process)!;
  return k.vm.lookup(mm, mm.ranges.get('mem')!.start + page)!.pte;
};
const exclusive = (k: Kernel, pfn: number): boolean => (k.folios.flags(pfn) & PG.anonExclusive) !== 0;
/** the order of the folio mapped at a page of `mem` */
const orderAt = (k: Kernel, page: number): number => k.folios.order(k.folios.folio(k.pfnOf({ map: 'mem', page })!));

describe('mTHP: the fault (alloc_anon_folio, v6.8+)', () => {
  it('a write fault with 64 KiB enabled maps a naturally aligned order-4 folio by 16 writable dirty PTEs: rc 16, mapcount 16, every page exclusive', () => {
    const k = kernel();
    const first = mthp(k);
    const head = k.pfnOf({ map: 'mem', page: first })!;
    expect(head % NR).toBe(0);
    expect(k.folios.order(head)).toBe(4);
    // cow.c's "Did not get a THP populated" check: the last subpage is there after one write
    expect(k.pfnOf({ map: 'mem', page: first + NR - 1 })).toBe(head + NR - 1);
    // folio_ref_add(nr_pages - 1) on the allocation's 1; folio_add_new_anon_rmap(): each page mapped once
    expect(k.refcount(head)).toBe(NR);
    expect(k.mapcount(head)).toBe(NR);
    for (let i = 0; i < NR; i++) {
      expect(pte(k, first + i)).toMatchObject({ level: 'pte', pfn: head + i, write: true, dirty: true });
      expect(exclusive(k, head + i)).toBe(true);
    }
    // `always` needs no VM_HUGEPAGE: the first (aligned, unadvised) half of the mapping gets its own 64 KiB folio
    k.run(k.write({ map: 'mem', page: first - 1, data: 'x' }));
    expect(orderAt(k, first - 1)).toBe(4);
    expect(k.folios.folio(k.pfnOf({ map: 'mem', page: first - 1 })!)).not.toBe(head);
  });

  it('a read fault maps the zero page; only a write allocates (do_anonymous_page)', () => {
    const k = kernel();
    k.run(k.thpSize({ size: 64 * KiB, enabled: 'always' }));
    k.run(k.mmap({ anon: true, length: 64 * KiB, write: true, as: 'mem' }));
    k.run(k.read({ map: 'mem', page: 0 }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(k.zeroPfn);
    expect(k.pfnOf({ map: 'mem', page: 1 })).toBeNull();
  });

  it('the mode per size: always needs no MADV_HUGEPAGE, madvise and inherit (global madvise) do, never and MADV_NOHUGEPAGE give order 0', () => {
    const order = (mode: 'always' | 'madvise' | 'inherit' | 'never', advise: boolean, noHuge = false): number => {
      const k = kernel();
      k.run(k.thpSize({ size: 64 * KiB, enabled: mode }));
      k.run(k.mmap({ anon: true, length: 64 * KiB, write: true, as: 'mem' }));
      if (advise) k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      if (noHuge) k.run(k.madvise({ map: 'mem', advice: 'nohugepage' }));
      k.run(k.write({ map: 'mem', page: 3, data: 'x' }));
      return orderAt(k, 3);
    };
    expect([order('always', false), order('always', true), order('always', false, true)]).toEqual([4, 4, 0]);
    expect([order('madvise', false), order('madvise', true)]).toEqual([0, 4]);
    expect([order('inherit', false), order('inherit', true)]).toEqual([0, 4]);
    expect([order('never', false), order('never', true)]).toEqual([0, 0]);
    // boot defaults: every size below the PMD is never
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 64 * KiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    expect(orderAt(k, 0)).toBe(0);
  });

  it('the highest enabled order whose aligned range is inside the VMA and has no PTE set wins (thp_vma_suitable_orders, pte_range_none)', () => {
    const k = kernel();
    for (const size of [16, 32, 64]) k.run(k.thpSize({ size: size * KiB, enabled: 'always' }));
    k.run(k.mmap({ anon: true, length: 2 * 64 * KiB, write: true, as: 'mem' }));
    const start = k.processes.get('init')!.ranges.get('mem')!.start;
    const first = Math.ceil((start + 1) / NR) * NR - start;
    // a page already mapped at the window's first page: no 64 KiB folio fits; the upper 32 KiB does
    k.run(k.thpSize({ size: 64 * KiB, enabled: 'never' }));
    k.run(k.thpSize({ size: 32 * KiB, enabled: 'never' }));
    k.run(k.thpSize({ size: 16 * KiB, enabled: 'never' }));
    k.run(k.write({ map: 'mem', page: first, data: 'a' }));
    for (const size of [16, 32, 64]) k.run(k.thpSize({ size: size * KiB, enabled: 'always' }));
    k.run(k.write({ map: 'mem', page: first + 12, data: 'b' }));
    const b = k.pfnOf({ map: 'mem', page: first + 12 })!;
    expect(orderAt(k, first + 12)).toBe(3);
    expect(k.pfnOf({ map: 'mem', page: first + 8 })).toBe(b - 4);
    expect(k.folios.folio(b)).toBe(b - 4);
    // page first + 5: its 32 KiB window [first, first + 8) holds the order-0 page; the 16 KiB window [first + 4, first + 8) is free
    k.run(k.write({ map: 'mem', page: first + 5, data: 'c' }));
    expect(orderAt(k, first + 5)).toBe(2);
    expect(orderAt(k, first)).toBe(0);
  });

  it('before v6.8 the per-size knob does not exist: the step is unsupported (ENOENT), and a bad size or mode is an input error naming the field', () => {
    for (const version of ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6']) {
      const k = kernel(version);
      let err: unknown;
      try {
        k.run(k.thpSize({ size: 64 * KiB, enabled: 'always' }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toBe('ENOENT');
      expect((err as KernelError).unsupported).toMatch(/v6\.8/);
    }
    const k = kernel();
    expect(() => k.run(k.thpSize({ size: 8 * KiB, enabled: 'always' }))).toThrow(InputError);
    expect(() => k.run(k.thpSize({ size: 8 * KiB, enabled: 'always' }))).toThrow(/16KiB, 32KiB, 64KiB.*2048KiB/);
    expect(() => k.run(k.thpSize({ size: 4096 * KiB, enabled: 'always' }))).toThrow(/hugepages-4096kB/);
  });

  it('the PMD size has its own knob from v6.8: never stops PMD THPs, the default inherit keeps the global madvise rule', () => {
    const level = (mode?: 'never' | 'inherit'): string => {
      const k = kernel();
      if (mode) k.run(k.thpSize({ size: 2048 * KiB, enabled: mode }));
      k.run(k.mmap({ anon: true, length: 2048 * KiB, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
      return pte(k, 0).level;
    };
    expect([level(), level('inherit'), level('never')]).toEqual(['pmd', 'pmd', 'pte']);
  });
});

describe('mTHP: pins, fork, COW and unmap with the counts the kernel keeps', () => {
  it('FOLL_PIN of the 16 pages: +1 reference and +1 _pincount per page (large folio, no GUP_PIN_COUNTING_BIAS)', () => {
    const k = kernel();
    const first = mthp(k);
    const head = k.pfnOf({ map: 'mem', page: first })!;
    k.run(k.gup({ map: 'mem', page: first, pages: NR, longterm: true, as: 'p' }, true));
    expect(k.refcount(head)).toBe(2 * NR);
    const s = k.pages.slot(head);
    expect(k.pages.pincount[s]).toBe(NR);
    expect(k.maybePinned(head)).toBe(true);
  });

  it('fork shares every PTE (copy_present_ptes): rc and mapcount 32, PageAnonExclusive cleared, both sides read-only; a write in the child copies one page', () => {
    const k = kernel();
    const first = mthp(k);
    const head = k.pfnOf({ map: 'mem', page: first })!;
    k.run(k.fork({ as: 'child' }));
    expect(k.refcount(head)).toBe(2 * NR);
    expect(k.mapcount(head)).toBe(2 * NR);
    for (let i = 0; i < NR; i++) expect(exclusive(k, head + i)).toBe(false);
    expect(pte(k, first).write).toBe(false);
    expect(pte(k, first, 'child').write).toBe(false);
    k.run(k.write({ map: 'mem', page: first + 3, data: 'child', process: 'child' }));
    const copy = k.pfnOf({ map: 'mem', page: first + 3, process: 'child' })!;
    expect(k.folios.folio(copy)).not.toBe(head);
    expect(k.folios.order(k.folios.folio(copy))).toBe(0);
    expect([k.refcount(head), k.mapcount(head)]).toEqual([2 * NR - 1, 2 * NR - 1]);
    expect(k.run(k.read({ map: 'mem', page: first + 3 }))).toBe('');
  });

  it('fork with the folio pinned: every exclusive page of the maybe-pinned folio is copied for the child, the parent keeps its writable PTEs', () => {
    const k = kernel();
    const first = mthp(k);
    const head = k.pfnOf({ map: 'mem', page: first })!;
    k.run(k.gup({ map: 'mem', page: first, pages: NR, write: true, longterm: true, as: 'p' }, true));
    k.run(k.fork({ as: 'child' }));
    // folio_try_dup_anon_rmap_ptes() fails for the batch; copy_present_page() per PTE on the retry
    expect([k.refcount(head), k.mapcount(head)]).toEqual([2 * NR, NR]);
    for (let i = 0; i < NR; i++) {
      expect(k.pfnOf({ map: 'mem', page: first + i, process: 'child' })).not.toBe(head + i);
      expect(pte(k, first + i).write).toBe(true);
      expect(exclusive(k, head + i)).toBe(true);
    }
  });

  it('munmap of half the folio drops 8 references and mappings; unmapping the rest frees all 16 pages', () => {
    const k = kernel();
    const first = mthp(k);
    const head = k.pfnOf({ map: 'mem', page: first })!;
    const live = k.ram.live.size;
    k.run(k.munmap({ map: 'mem', offset: (first + NR / 2) * 4096, length: (NR / 2) * 4096 }));
    expect([k.refcount(head), k.mapcount(head)]).toEqual([NR / 2, NR / 2]);
    // no deferred split in the model: the folio keeps its order and its pages until freed
    expect(k.ram.live.size).toBe(live);
    k.run(k.munmap({ map: 'mem' }));
    expect(k.ram.live.size).toBe(live - NR);
  });

  it('split_folio() of an unpinned mTHP gives 16 order-0 folios, each rc and mapcount 1 (the head also the caller reference); a pin refuses it', () => {
    const k = kernel();
    const first = mthp(k);
    // cow.c's memset(mem, 1, thpsize) after the first write: no page is zero-filled, so the v6.12
    // zero-page remap of the split (tested below) leaves every page in place
    for (let i = 1; i < NR; i++) k.run(k.write({ map: 'mem', page: first + i, data: '0x01' }));
    const head = k.pfnOf({ map: 'mem', page: first })!;
    expect(k.thp.splitFolioHeld(head, 'test')).toBe(true);
    for (let i = 0; i < NR; i++) expect([k.folios.order(head + i), k.refcount(head + i), k.mapcount(head + i)]).toEqual([0, 1, 1]);
    const k2 = kernel();
    const f2 = mthp(k2);
    const h2 = k2.pfnOf({ map: 'mem', page: f2 })!;
    k2.run(k2.gup({ map: 'mem', page: f2, pages: 1, longterm: true, as: 'p' }, true));
    expect(k2.thp.splitFolioHeld(h2, 'test')).toBe(false);
    expect(k2.folios.order(h2)).toBe(4);
  });

  it('split_folio() maps the zero-filled pages of an mTHP to the shared zero page (v6.12+) and frees them', () => {
    // only the first page is written (do_anonymous_page() zeroed the whole folio): pages 1..15 are
    // zero-filled. __split_huge_page() remaps an anon folio with RMP_USE_SHARED_ZEROPAGE from
    // b1f202060afe (v6.12): try_to_map_unused_to_zeropage() replaces each such PTE by the zero
    // page, MM_ANONPAGES drops by one each, and nothing maps or holds the page, so it is freed.
    // mTHPs came with v6.8, so every preset that has them has the remap (numa.test.ts and
    // ksm.test.ts show a PMD THP on v6.6 keeping its zero-filled pages)
    for (const [version, zeroed] of [['v6.15', true], ['latest', true]] as const) {
      const k = kernel(version);
      const first = mthp(k);
      const head = k.pfnOf({ map: 'mem', page: first })!;
      expect(k.rssAnonIn({})).toBe(NR * 4);
      expect(k.thp.splitFolioHeld(head, 'test')).toBe(true);
      expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([0, 1, 1]);
      const tail = k.pfnOf({ map: 'mem', page: first + NR - 1 })!;
      expect([version, tail === k.zeroPfn, k.ram.live.has(head + NR - 1)]).toEqual([version, zeroed, !zeroed]);
      expect(k.rssAnonIn({})).toBe(zeroed ? 4 : NR * 4);
      expect(k.run(k.read({ map: 'mem', page: first + 1 }))).toBe('');
    }
  });
});
