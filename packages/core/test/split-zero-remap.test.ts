import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// The zero-page remap of a split (mm/split.ts remapZeroFilled; b1f202060afe, v6.12) across
// processes: remove_migration_ptes() walks every mapping of each new folio, and
// try_to_map_unused_to_zeropage() refuses a page of an mlocked folio (folio_test_mlocked(): the
// PG_mlocked that mlock_folio() set when a VM_LOCKED VMA mapped the THP, copied to every tail by the
// split) whichever VMA the entry is in. The test arch has 4 KiB pages and 2 MiB PMDs.

const NR = 512;
const MiB = 2 ** 20;

/** One PMD-mapped THP in 'mem', page 0 written, pages 1..511 zero-filled, shared with a fork child. */
function sharedThp(version: string, mlocked = false): { k: Kernel; head: number } {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
  k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
  k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
  // mlock_fixup() -> mlock_pte_range(): mlock_folio() on the PMD-mapped THP. Before the fork: after
  // it, mlock's population (FOLL_WRITE in a private writable VMA) would COW the shared THP away
  if (mlocked) k.run(k.mlock({ map: 'mem' }));
  // copy_huge_pmd(): the child's PMD maps the same THP (rc 2, mapcount 2)
  k.run(k.fork({ as: 'child' }));
  const head = k.pfnOf({ map: 'mem', page: 0 })!;
  expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([9, 2, 2]);
  return { k, head };
}

describe('the split of a THP two processes map', () => {
  it('latest: every mapping of a zero-filled page, the parent\'s and the child\'s, goes to the zero page; v6.6 keeps both', () => {
    for (const [v, remapped] of [['v6.6', false], ['latest', true]] as const) {
      const { k, head } = sharedThp(v);
      // the child's debugfs split: every reference is a mapping's, so the folio splits, and
      // unmap_folio()/remap_page() go through the parent's PMD too
      expect(k.run(k.splitHugePages({ map: 'mem', process: 'child' }))).toEqual({ split: 1, total: 1 });
      const tail = [k.pfnOf({ map: 'mem', page: NR - 1 }), k.pfnOf({ map: 'mem', page: NR - 1, process: 'child' })];
      expect([v, ...tail]).toEqual([v, ...(remapped ? [k.zeroPfn, k.zeroPfn] : [head + NR - 1, head + NR - 1])]);
      expect([k.rssAnonIn({}), k.rssAnonIn({ process: 'child' })]).toEqual(remapped ? [4, 4] : [NR * 4, NR * 4]);
      // the written page stays shared by both: rc 2, mapcount 2
      expect([k.refcount(head), k.mapcount(head)]).toEqual([2, 2]);
      expect(k.ram.live.has(head + NR - 1)).toBe(!remapped);
    }
  });

  it('latest: the parent\'s mlock makes the folio PG_mlocked, so the child\'s unlocked mapping keeps its zero-filled pages too', () => {
    // the child's VMA does not inherit VM_LOCKED (dup_mmap() clears it), but shares the mlocked THP
    const { k, head } = sharedThp('latest', true);
    expect([k.isLockedIn({ map: 'mem', page: 0 }), k.isLockedIn({ map: 'mem', page: 0, process: 'child' })]).toEqual([true, false]);
    expect(k.run(k.splitHugePages({ map: 'mem', process: 'child' }))).toEqual({ split: 1, total: 1 });
    expect([k.pfnOf({ map: 'mem', page: 7, process: 'child' }), k.pfnOf({ map: 'mem', page: 7 })]).toEqual([head + 7, head + 7]);
    expect([k.rssAnonIn({}), k.rssAnonIn({ process: 'child' })]).toEqual([NR * 4, NR * 4]);
  });
});

describe('MADV_FREE of part of a THP (madvise_free_huge_pmd(): split_folio(), then the PTE walk)', () => {
  it('splits the THP and cleans only the pages in range; from v6.12 the split also maps every zero-filled page of it to the zero page', () => {
    for (const [v, remapped] of [['v6.6', false], ['latest', true]] as const) {
      const k = createKernel({ arch: testArch(), kernel: v });
      k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
      k.run(k.write({ map: 'mem', page: NR, data: 'a' }));
      k.run(k.write({ map: 'mem', page: NR + 400, data: 'b' }));
      const mm = k.processes.get('init')!;
      const at = (page: number) => k.vm.lookup(mm, mm.ranges.get('mem')!.start + page)!.pte;
      expect(at(NR).level).toBe('pmd');
      // the first half of the THP: "If user want to discard part-pages of THP, split it so
      // MADV_FREE will deactivate only them"
      k.run(k.madvise({ map: 'mem', advice: 'free', offset: 2 * MiB, length: MiB }));
      expect([v, mm.pmds.size, at(NR).level, k.folios.order(at(NR).pfn)]).toEqual([v, 0, 'pte', 0]);
      // page NR (in range) was cleaned: pte_mkclean(); page NR + 400 (outside) keeps its dirty bit
      expect([at(NR).dirty, at(NR + 400).dirty]).toEqual([false, true]);
      // zero-filled pages on both sides of the range's end: remapped from v6.12, kept (and, in
      // range, cleaned) before
      expect([NR + 1, NR + 255, NR + 256, 2 * NR - 1].map((p) => at(p).pfn === k.zeroPfn)).toEqual(Array(4).fill(remapped));
      expect(k.rssAnonIn({})).toBe(remapped ? 8 : NR * 4);
      expect([k.run(k.read({ map: 'mem', page: NR })), k.run(k.read({ map: 'mem', page: NR + 400 })), k.run(k.read({ map: 'mem', page: NR + 1 }))]).toEqual(['a', 'b', '']);
    }
  });
});

describe('MADV_FREE of a PTE-mapped THP (madvise_free_pte_range())', () => {
  /** A THP in 'mem' (pages 0 and 300 written) whose PMD a one-page mprotect(PROT_READ) and back split: one VMA, PTE-mapped, order 9. */
  function pteMapped(version: string): { k: Kernel; head: number; at: (page: number) => ReturnType<Kernel['vm']['lookup']> } {
    const k = createKernel({ arch: testArch(), kernel: version });
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'a' }));
    k.run(k.write({ map: 'mem', page: 300, data: 'b' }));
    k.run(k.mprotect({ map: 'mem', offset: 0, length: 4096, write: false }));
    k.run(k.mprotect({ map: 'mem', offset: 0, length: 4096, write: true }));
    const mm = k.processes.get('init')!;
    const at = (page: number) => k.vm.lookup(mm, mm.ranges.get('mem')!.start + page);
    const head = at(0)!.pte.pfn;
    expect([mm.vmas.length, at(0)!.pte.level, k.folios.order(head)]).toEqual([1, 'pte', 9]);
    return { k, head, at };
  }

  it('covered whole: v6.6 splits it (every large folio it meets); from v6.10 it stays whole and is cleaned (the PTE batch)', () => {
    for (const [v, split] of [['v6.6', true], ['latest', false]] as const) {
      const { k, head, at } = pteMapped(v);
      k.run(k.madvise({ map: 'mem', advice: 'free' }));
      expect([v, k.folios.order(head), at(300)!.pte.pfn === head + 300, at(300)!.pte.dirty]).toEqual([v, split ? 0 : 9, true, false]);
      // v6.6 has no zero-page remap: the split leaves every page where it was
      expect(k.rssAnonIn({})).toBe(2 * MiB / 1024);
    }
  });

  it('covered in part on latest: split (madvise_folio_pte_batch() < folio_nr_pages()), and the split maps the zero-filled pages to the zero page', () => {
    const { k, head, at } = pteMapped('latest');
    k.run(k.madvise({ map: 'mem', advice: 'free', offset: 0, length: MiB }));
    expect([k.folios.order(head), at(1)!.pte.pfn, at(511)!.pte.pfn]).toEqual([0, k.zeroPfn, k.zeroPfn]);
    // page 0 in the range was cleaned, page 300 (outside, written) stays dirty
    expect([at(0)!.pte.dirty, at(300)!.pte.dirty, k.rssAnonIn({})]).toEqual([false, true, 8]);
    expect([k.run(k.read({ map: 'mem', page: 0 })), k.run(k.read({ map: 'mem', page: 300 }))]).toEqual(['a', 'b']);
  });
});

describe('MADV_COLD (madvise_cold_or_pageout_pte_range(pageout = false)): no LRU in the model, but the same splits as MADV_PAGEOUT', () => {
  it('a THP covered in part is split (from v6.12 with the zero-page remap); covered whole it stays a PMD-mapped THP', () => {
    for (const [v, remapped] of [['v6.6', false], ['latest', true]] as const) {
      const k = createKernel({ arch: testArch(), kernel: v });
      k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'a' }));
      k.run(k.write({ map: 'mem', page: NR, data: 'b' }));
      const mm = k.processes.get('init')!;
      const at = (page: number) => k.vm.lookup(mm, mm.ranges.get('mem')!.start + page)!.pte;
      // the first THP whole, the second's first half
      k.run(k.madvise({ map: 'mem', advice: 'cold', offset: 0, length: 3 * MiB }));
      expect([v, at(0).level, at(NR).level, k.folios.order(at(NR).pfn)]).toEqual([v, 'pmd', 'pte', 0]);
      expect([v, at(NR + 1).pfn === k.zeroPfn, at(2 * NR - 1).pfn === k.zeroPfn]).toEqual([v, remapped, remapped]);
      expect(k.rssAnonIn({})).toBe(remapped ? NR * 4 + 4 : 2 * NR * 4);
    }
  });
});
