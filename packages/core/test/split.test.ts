import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import type { SplitCount } from '../src/mm/split.js';
import { testArch } from '../src/testing.js';

// split_huge_pages (mm/split.ts, mm/huge_memory.c split_huge_pages_pid() / __folio_split()). The
// test arch has 4 KiB pages and 2 MiB PMDs: HPAGE_PMD_NR 512, HPAGE_PMD_ORDER 9. Each case is the
// selftest's set-up (tools/testing/selftests/mm/split_huge_page_test.c) or a rule it rests on.
const NR = 512;
const MiB = 2 ** 20;

function kernel(version: string): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** memalign(pmd_pagesize, 4 * pmd_pagesize) + MADV_HUGEPAGE + a write to every page: four PMD-mapped THPs. */
function fourThps(k: Kernel, data: (page: number) => string = (p) => `d${p}`): void {
  k.run(k.mmap({ anon: true, length: 8 * MiB, write: true, as: 'mem' }));
  k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
  for (let page = 0; page < 4 * NR; page++) k.run(k.write({ map: 'mem', page, data: data(page) }));
}

const split = (k: Kernel, a: Parameters<Kernel['splitHugePages']>[0]): SplitCount => k.run(k.splitHugePages(a));
const order = (k: Kernel, page: number, map = 'mem'): number => k.folioOrderIn({ map, page });

describe('split_huge_pages, the pid form (split_pmd_thp_to_order)', () => {
  it('order 0: every THP splits, AnonHugePages goes to 0, each page is its own folio mapped by one PTE, data kept', () => {
    const k = kernel('latest');
    fourThps(k);
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(4);
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    // the walk visits all 2048 pages; each THP counts once (later pages find order-0 folios)
    expect(split(k, { map: 'mem' })).toEqual({ split: 4, total: 4 });
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(0);
    for (const page of [0, 1, 511, 512, 2047]) expect(order(k, page)).toBe(0);
    // one reference and one mapping per page: the PTE the PMD became (remap_page)
    expect(k.refcount(head + 7)).toBe(1);
    expect(k.mapcount(head + 7)).toBe(1);
    expect(k.anonExclusive(head + 7)).toBe(true);
    for (const page of [0, 700, 2047]) expect(k.run(k.read({ map: 'mem', page }))).toBe(`d${page}`);
    // nothing zero-filled, so nothing left RssAnon: 2048 pages of 4 KiB
    expect(k.rssAnonIn({})).toBe(8192);
  });

  it('order 3: 64 folios of 8 pages per THP, each with one reference and one mapping per PTE', () => {
    const k = kernel('latest');
    fourThps(k);
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(split(k, { map: 'mem', order: 3 })).toEqual({ split: 4, total: 4 });
    for (const page of [0, 5, 8, 2047]) expect(order(k, page)).toBe(3);
    expect(k.folios.folio(head + 13)).toBe(head + 8);
    expect(k.refcount(head + 8)).toBe(8);
    expect(k.mapcount(head + 8)).toBe(8);
    // the selftest's expected_orders[3] = 4 << (9 - 3) = 256 folios
    let folios = 0;
    for (let page = 0; page < 4 * NR; page++) if (k.folios.folio(k.pfnOf({ map: 'mem', page })!) === k.pfnOf({ map: 'mem', page })) folios++;
    expect(folios).toBe(256);
  });

  it('order 1 is refused for anon (folio_check_splittable: -EINVAL) before the PMD is touched: the THPs stay', () => {
    const k = kernel('latest');
    fourThps(k);
    // the walk steps one page at a time and finds the same unsplit THP at each: 2048 counted
    expect(split(k, { map: 'mem', order: 1 })).toEqual({ split: 0, total: 2048 });
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(4);
  });

  it('before v6.10 new_order is not parsed ("%d,0x%lx,0x%lx"): order 3 asked, order 0 made', () => {
    const k = kernel('v6.6');
    fourThps(k);
    expect(split(k, { map: 'mem', order: 3 })).toEqual({ split: 4, total: 4 });
    expect(order(k, 8)).toBe(0);
  });

  it('before v5.13 the file only takes "1": the pid form is EINVAL', () => {
    const k = kernel('v5.10');
    fourThps(k);
    expect(() => split(k, { map: 'mem' })).toThrow(/EINVAL|before v5.13/);
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(4);
  });

  it('a pinned THP is counted but not split (refcount != mapcount): the PMD stays', () => {
    const k = kernel('latest');
    fourThps(k);
    k.run(k.gup({ map: 'mem', page: NR, write: true, longterm: true, as: 'dma' }, true));
    // THP 1: rc 1 + 1 pin reference, mapcount 1 -> skipped at each of its 512 pages; the three
    // others split at their first page: "3 of 515 THP split"
    expect(split(k, { map: 'mem' })).toEqual({ split: 3, total: 515 });
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(1);
    expect(order(k, NR + 3)).toBe(9);
    expect(order(k, 0)).toBe(0);
  });

  it('a THP shared with a fork child: both PMDs become PTEs and each page keeps one reference and one mapping per process', () => {
    const k = kernel('latest');
    fourThps(k);
    k.run(k.fork({ as: 'child' }));
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    // copy_huge_pmd(): rc 2 and entire mapcount 2 for the THP; every reference is a mapping
    expect([k.refcount(head), k.mapcount(head)]).toEqual([2, 2]);
    expect(split(k, { map: 'mem', length: 2 * MiB, process: 'child' })).toEqual({ split: 1, total: 1 });
    expect(order(k, 0)).toBe(0);
    expect(k.folioOrderIn({ map: 'mem', page: 0, process: 'child' })).toBe(0);
    expect([k.refcount(head + 9), k.mapcount(head + 9)]).toEqual([2, 2]);
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(3);
    expect(k.anonHugePagesIn({ map: 'mem', page: 0, process: 'child' })).toBe(3);
    expect(k.run(k.read({ map: 'mem', page: 9, process: 'child' }))).toBe('d9');
  });

  it('a range ends at the first page without a VMA (vma_lookup() NULL: break)', () => {
    const k = kernel('latest');
    fourThps(k);
    k.run(k.munmap({ map: 'mem', offset: 2 * MiB, length: 2 * MiB }));
    // THP 0 splits, the hole at THP 1 ends the walk: THPs 2 and 3 stay
    expect(split(k, { map: 'mem' })).toEqual({ split: 1, total: 1 });
    expect(order(k, 2 * NR)).toBe(9);
  });
});

describe('echo 1 > split_huge_pages (split_huge_pages_all)', () => {
  it('splits every THP of every process to order 0, in every release; a pinned one is counted and stays', () => {
    for (const v of ['v5.4', 'latest']) {
      const k = kernel(v);
      fourThps(k);
      k.run(k.spawn({ as: 'p2' }));
      k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'other', process: 'p2' }));
      k.run(k.madvise({ map: 'other', advice: 'hugepage', process: 'p2' }));
      k.run(k.write({ map: 'other', page: 0, data: 'o', process: 'p2' }));
      k.run(k.gup({ map: 'mem', page: 3 * NR, write: true, longterm: true, as: 'dma' }, true));
      // 4 + 1 THPs (the other mapping's second PMD range was never touched); the pinned one stays
      expect(split(k, { all: true })).toEqual({ split: 4, total: 5 });
      expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(1);
      expect(k.folioOrderIn({ map: 'other', page: 0, process: 'p2' })).toBe(0);
      expect(k.run(k.read({ map: 'other', page: 0, process: 'p2' }))).toBe('o');
    }
  });
});

describe('split_huge_pages: zero-filled subpages (split_pmd_zero_pages, b1f202060afe v6.12)', () => {
  it('from v6.12 a zero-filled order-0 subpage maps the shared zero page and is freed: RssAnon drops to 0', () => {
    const k = kernel('latest');
    fourThps(k, () => '');
    expect(k.rssAnonIn({})).toBe(8192);
    expect(split(k, { map: 'mem' })).toEqual({ split: 4, total: 4 });
    expect(k.rssAnonIn({})).toBe(0);
    expect(k.run(k.read({ map: 'mem', page: 3 }))).toBe('');
    expect(k.anonHugePagesIn({ map: 'mem', page: 0 })).toBe(0);
  });

  it('only zero pages go: a page with data stays mapped, so RssAnon keeps one page per THP', () => {
    const k = kernel('latest');
    fourThps(k, (p) => (p % NR === 0 ? 'x' : ''));
    split(k, { map: 'mem' });
    expect(k.rssAnonIn({})).toBe(4 * 4);
  });

  it('split to order 2 keeps compound folios whole (PageCompound: no zero-page remap)', () => {
    const k = kernel('latest');
    fourThps(k, () => '');
    split(k, { map: 'mem', order: 2 });
    expect(k.rssAnonIn({})).toBe(8192);
  });

  it('v6.6 has no remap: the zero-filled pages stay (the selftest, added with it, would print "Incorrect RssAnon value")', () => {
    const k = kernel('v6.6');
    fourThps(k, () => '');
    split(k, { map: 'mem' });
    expect(k.rssAnonIn({})).toBe(8192);
  });

  it('the zero-page PTE keeps the soft-dirty bit only from the 2025 fix (v6.18 [M]): v6.15 drops it', () => {
    for (const [v, kept] of [['v6.15', false], ['latest', true]] as const) {
      const k = kernel(v);
      fourThps(k, () => '');
      // CLEAR_REFS_SOFT_DIRTY, then a write to THP 0: its PMD alone is soft-dirty again
      k.run(k.clearRefs({}));
      k.run(k.write({ map: 'mem', page: 0, data: '' }));
      expect(k.isSoftDirtyIn({ map: 'mem', page: 5 })).toBe(true);
      split(k, { map: 'mem' });
      expect(k.pfnOf({ map: 'mem', page: 5 })).toBe(k.zeroPfn);
      expect(k.isSoftDirtyIn({ map: 'mem', page: 5 })).toBe(kept);
      // THP 1 was not written after the clear: clean either way
      expect(k.isSoftDirtyIn({ map: 'mem', page: NR + 5 })).toBe(false);
    }
  });

  it('an mlocked range keeps its zero-filled pages (try_to_map_unused_to_zeropage: VM_LOCKED)', () => {
    const k = kernel('latest');
    fourThps(k, () => '');
    k.run(k.mlock({ map: 'mem' }));
    split(k, { map: 'mem' });
    expect(k.rssAnonIn({})).toBe(8192);
  });
});

describe('split_huge_pages of PTE-mapped THPs (split_pte_mapped_thp)', () => {
  it('mremap of page i of THP i keeps each THP whole and PTE-mapped; a split through the moved pages makes them order 0', () => {
    const k = kernel('latest');
    fourThps(k);
    k.run(k.mmap({ anon: true, length: 4 * 4096, write: true, as: 'area' }));
    for (let i = 0; i < 4; i++) k.run(k.mremap({ map: 'mem', offset: (i * NR + i) * 4096, length: 4096, to: 'area', toOffset: i * 4096, as: `moved${i}` }));
    // is_backed_by_folio(page_area + i * pagesize, pmd_order): still order-9 folios, now PTE-mapped
    for (let i = 0; i < 4; i++) expect(order(k, i, 'area')).toBe(9);
    expect(k.anonHugePagesIn({ map: 'mem', page: NR - 1 })).toBe(0);
    expect(split(k, { map: 'area' })).toEqual({ split: 4, total: 4 });
    for (let i = 0; i < 4; i++) {
      expect(order(k, i, 'area')).toBe(0);
      expect(k.run(k.read({ map: 'area', page: i }))).toBe(`d${i * NR + i}`);
    }
    // the whole folio split, the pages left in the first mapping too
    expect(order(k, NR + 5)).toBe(0);
  });
});

describe('split_huge_pages of mTHP and the non-uniform split (in_folio_offset, v6.15)', () => {
  it('a 64 KiB mTHP is a THP for the walk from v6.8 (folio_test_large_rmappable): it splits to order 0', () => {
    const k = kernel('v6.15');
    k.run(k.thpSize({ size: 64 * 1024, enabled: 'always' }));
    k.run(k.mmap({ anon: true, length: 64 * 1024, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    expect(order(k, 0, 'm')).toBe(4);
    expect(split(k, { map: 'm' })).toEqual({ split: 1, total: 1 });
    expect(order(k, 0, 'm')).toBe(0);
    // the 15 untouched pages were zero-filled: they map the zero page now
    expect(k.rssAnonIn({})).toBe(4);
  });

  it('folio_split() at page 0 to order 0 over one page: orders 0,0,0,0 (no order 1 for anon), then 2 up to 8', () => {
    const k = kernel('latest');
    fourThps(k);
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(split(k, { map: 'mem', length: 4096, order: 0, at: 0 })).toEqual({ split: 1, total: 1 });
    const orders: number[] = [];
    for (let pfn = head; pfn < head + NR; pfn += 1 << k.folios.order(pfn)) orders.push(k.folios.order(pfn));
    expect(orders).toEqual([0, 0, 0, 0, 2, 3, 4, 5, 6, 7, 8]);
    expect(order(k, NR)).toBe(9);
  });

  it('before v6.15 in_folio_offset is not parsed: the same write is a uniform split', () => {
    const k = kernel('v6.6');
    fourThps(k);
    expect(split(k, { map: 'mem', length: 4096, at: 0 })).toEqual({ split: 1, total: 1 });
    expect(order(k, 300)).toBe(0);
  });
});
