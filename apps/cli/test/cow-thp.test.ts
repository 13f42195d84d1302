import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { BASE_PAGE, CASES, column, ends, memset, runWithThp, snapshot, SWAPPED_OUT, through, verdict, type Mem, type ThpContext, type Verdict } from './cow-cases.js';

// cow.c's anonymous test cases in its THP backing contexts (docs/selftests.md, "cow.c on THP"),
// driven through the kernel API apart from the scenarios' own `when:` rules: each case is the
// selftest function's sequence and the verdict is what its memcmp() would print.
//
// Contexts (do_run_with_thp): PMD-mapped THP; PTE-mapped THP (mprotect(mem + pagesize,
// pagesize, PROT_READ) and back); single PTE of a THP (MADV_DONTNEED of all but the first
// subpage, size = pagesize); partially mremap()ed THP (the second half moved elsewhere, size =
// thpsize / 2); partially shared THP (MADV_DONTFORK of all but the first subpage, fork + exit a
// child, MADV_DOFORK). x86: 4 KiB pages, 2 MiB THP (512 subpages).

const NR = 512;
const MiB = 2 ** 20;
type Context = ThpContext;

/** do_run_with_thp() for the PMD size (cow-cases.ts runWithThp). */
const setup = (k: Kernel, ctx: Context): Mem => runWithThp(k, ctx, NR);

// The verdicts per release (v5.4, v5.10, then v6.1 v6.3 v6.6 v6.15 latest alike), reasoned in
// docs/selftests.md from do_huge_pmd_wp_page(), copy_huge_pmd(), do_wp_page() and gup_must_unshare():
// - PMD-mapped: before v5.19 a THP mapped once is reused whatever GUP references it has
//   (mapcount tests), so the vmsplice cases leak on v5.10 too, and the pinned-exclusive cases do
//   not lose the pin on v5.10 (the base page does: page_count() != 1 copies it).
// - PTE-mapped and single PTE: every write goes through do_wp_page() per subpage, whose rule is
//   the base page's (page_count() of the folio on v5.10; v5.4 reuses when no subpage is mapped
//   twice): the base-page verdicts.
const P = 'pass' as const;
const F = 'FAIL' as const;
const PMD: Record<string, readonly [Verdict, Verdict, Verdict]> = {
  'Basic COW after fork()': [P, P, P],
  'Basic COW after fork() with mprotect() optimization': [P, P, P],
  'vmsplice() + unmap in child': [F, F, P],
  'vmsplice() + unmap in child with mprotect() optimization': [F, F, P],
  'vmsplice() before fork(), unmap in parent after fork()': [F, F, P],
  'vmsplice() + unmap in parent after fork()': [F, F, P],
  'R/O-mapping a page registered as iouring fixed buffer': [P, P, P],
  'fork() with an iouring fixed buffer': [F, P, P],
  'R/O GUP pin on R/O-mapped shared page': [F, F, P],
  'R/O GUP-fast pin on R/O-mapped shared page': [F, F, P],
  'R/O GUP pin on R/O-mapped previously-shared page': [P, P, P],
  'R/O GUP-fast pin on R/O-mapped previously-shared page': [P, P, P],
  'R/O GUP pin on R/O-mapped exclusive page': [P, P, P],
  'R/O GUP-fast pin on R/O-mapped exclusive page': [P, P, P],
};
// the base-page verdicts (cow-cases.ts BASE_PAGE), as reasoned above
const PTE = BASE_PAGE;
// Partially mremap()ed: the THP's subpages live in two VMAs; after a fork the child maps both
// halves, and a child that unmaps only `mem` (size = thpsize / 2) leaves the moved half mapped
// twice. v5.4's reuse test takes the largest page_mapcount() of any subpage of the THP
// (page_trans_huge_mapcount()), so the vmsplice cases copy and pass there; otherwise as PTE-mapped.
const PARTIAL_MREMAP: Record<string, readonly [Verdict, Verdict, Verdict]> = {
  ...PTE,
  'vmsplice() + unmap in child': [P, P, P],
  'vmsplice() + unmap in child with mprotect() optimization': [P, P, P],
  'vmsplice() before fork(), unmap in parent after fork()': [P, P, P],
  'vmsplice() + unmap in parent after fork()': [P, P, P],
};
// Partially shared: only the first subpage was COW-shared (and is no longer PageAnonExclusive);
// with the child gone every subpage is mapped once again: the PTE-mapped verdicts.
const EXPECTED: Record<Context, Record<string, readonly [Verdict, Verdict, Verdict]>> = {
  pmd: PMD,
  pte: PTE,
  'single-pte': PTE,
  'partial-mremap': PARTIAL_MREMAP,
  'partially-shared': PTE,
  // the swapped-out contexts: the THP is split and each page swapped; verdicts of a swapped-out base page
  'pmd-swap': SWAPPED_OUT,
  'pte-swap': SWAPPED_OUT,
  'single-pte-swap': SWAPPED_OUT,
};

describe('cow.c on anonymous THP, per release (x86, 2 MiB THP)', () => {
  for (const ctx of ['pmd', 'pte', 'single-pte', 'partial-mremap', 'partially-shared', 'pmd-swap', 'pte-swap', 'single-pte-swap'] as const) {
    for (const { name: version } of PRESETS) {
      it(`${ctx} context on ${version}`, () => {
        const got = Object.fromEntries(
          CASES.map(([name, run]) => {
            const k = createKernel({ arch: x86(), kernel: version });
            const m = setup(k, ctx);
            return [name, run(k, m)];
          }),
        );
        const want = Object.fromEntries(Object.entries(EXPECTED[ctx]).map(([name, v]) => [name, v[column(version)]]));
        expect(got).toEqual(want);
      });
    }
  }

  it('the setup builds each context: one PMD; 512 PTEs of the THP; one PTE of it (rc 1, mapcount 1)', () => {
    const shape = (ctx: Context): [string, number, number] => {
      const k = createKernel({ arch: x86(), kernel: 'latest' });
      setup(k, ctx);
      const mm = k.processes.get('init')!;
      const head = k.pfnOf({ map: 'mem', page: NR })!;
      return [mm.pmds.size === 1 ? 'pmd' : `${mm.ptes.size} ptes`, k.refcount(head), k.mapcount(head)];
    };
    expect(shape('pmd')).toEqual(['pmd', 1, 1]);
    // __split_huge_pmd_locked: page_ref_add(HPAGE_PMD_NR - 1), one mapping per PTE
    expect(shape('pte')).toEqual(['512 ptes', 512, 512]);
    expect(shape('single-pte')).toEqual(['1 ptes', 1, 1]);
    // the moved half is still the THP's (move_ptes keeps the pages), in another VMA
    expect(shape('partial-mremap')).toEqual(['512 ptes', 512, 512]);
    expect(shape('partially-shared')).toEqual(['512 ptes', 512, 512]);
    const k = createKernel({ arch: x86(), kernel: 'latest' });
    setup(k, 'partial-mremap');
    expect(k.pfnOf({ map: 'moved', page: 0 })).toBe(k.pfnOf({ map: 'mem', page: NR })! + NR / 2);
  });

  // non_anon_test_cases[] with run_with_huge_zeropage(): two private anonymous VMAs with
  // MADV_HUGEPAGE, read-faulted, so both map the huge zero page (use_zero_page = 1). test_cow writes
  // one and reads the other; the R/O longterm pin cases pin `mem`, write it, and compare. From
  // v6.2 (84209e87c696, gup-unshare cow-mapping) the pin unshares first: do_huge_pmd_wp_page()
  // splits the huge zero PMD (is_huge_zero_pmd -> fallback) and the zero-page PTE is copied.
  // Before, the pin keeps the huge zero page while the write gives `mem` new pages: FAIL.
  it('non-anon cases on the huge zeropage, per release', () => {
    const run = (version: string, test: 'cow' | 'pin' | 'fast-pin'): Verdict => {
      const k = createKernel({ arch: x86(), kernel: version });
      for (const name of ['mem', 'smem']) {
        // smem is PROT_READ in cow.c
        k.run(k.mmap({ anon: true, length: 2 * MiB, write: name === 'mem', as: name }));
        k.run(k.madvise({ map: name, advice: 'hugepage' }));
        k.run(k.read({ map: name, page: 0 }));
        if (k.pfnOf({ map: name, page: NR - 1 }) !== k.hugeZeroPfn + NR - 1) throw new Error('Did not get THPs populated');
      }
      const m: Mem = { first: 0, pages: NR };
      if (test === 'cow') {
        const other = (): string[] => ends(m).map((page) => k.run(k.read({ map: 'smem', page })));
        const old = other();
        memset(k, m, '0xff');
        // "Other mapping not modified"
        return verdict(JSON.stringify(other()) === JSON.stringify(old));
      }
      k.run(k.gup({ map: 'mem', page: 0, pages: NR, longterm: true, fast: test === 'fast-pin', as: 'ro' }, true));
      memset(k, m, '0xff');
      return verdict(JSON.stringify(through(k, 'ro', m)) === JSON.stringify(snapshot(k, m)));
    };
    const got = PRESETS.map(({ name }) => [name, run(name, 'cow'), run(name, 'pin'), run(name, 'fast-pin')]);
    const early = ['v5.4', 'v5.10', 'v6.1'];
    expect(got).toEqual(PRESETS.map(({ name }) => [name, P, early.includes(name) ? F : P, early.includes(name) ? F : P]));
  });
});
