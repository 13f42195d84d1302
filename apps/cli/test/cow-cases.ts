import type { Kernel } from '@daxlab/core';

// cow.c's 14 anonymous test cases as functions over a kernel, shared by the THP and hugetlb
// backing contexts (cow-thp.test.ts, cow-hugetlb.test.ts): each is the selftest function's sequence
// and the verdict is what its memcmp() would print. `Mem` is the range cow.c's `mem` points at, in
// the mapping named 'mem' (x86: 4 KiB pages).

const PAGE = 4096;

export type Verdict = 'pass' | 'FAIL';

export interface Mem {
  readonly first: number;
  readonly pages: number;
}

/** The pages a memset() of the range stands for: its first and its last. */
export const ends = (m: Mem): number[] => [...new Set([m.first, m.first + m.pages - 1])];

export function memset(k: Kernel, m: Mem, data: string, process?: string): void {
  for (const page of ends(m)) k.run(k.write({ map: 'mem', page, data, ...(process ? { process } : {}) }));
}

export function snapshot(k: Kernel, m: Mem, process?: string): string[] {
  return ends(m).map((page) => k.run(k.read({ map: 'mem', page, ...(process ? { process } : {}) })));
}

/** What a GUP reference sees at the same pages (the pipe's or the pin's copy). */
export function through(k: Kernel, name: string, m: Mem): string[] {
  const h = k.pins.get(name)!;
  return ends(m).map((page) => k.pages.data.get(h.pfns[page - m.first]!) ?? '');
}

export const verdict = (ok: boolean): Verdict => (ok ? 'pass' : 'FAIL');

export function mprotectRoRw(k: Kernel, m: Mem): void {
  k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: false }));
  k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: true }));
}

export type Case = (k: Kernel, m: Mem) => Verdict;

/** test_cow_in_parent[_mprotect]: the child's backup must still match after the parent writes. */
const cowInParent =
  (mprotect: boolean): Case =>
  (k, m) => {
    k.run(k.fork({ as: 'child' }));
    const old = snapshot(k, m, 'child');
    if (mprotect) mprotectRoRw(k, m);
    memset(k, m, '0xff');
    return verdict(JSON.stringify(snapshot(k, m, 'child')) === JSON.stringify(old));
  };

/** do_test_vmsplice_in_child: the pipe (a R/O GUP-fast get by the child) must keep the old data. */
const vmspliceInChild =
  (mprotect: boolean): Case =>
  (k, m) => {
    k.run(k.fork({ as: 'child' }));
    // child_vmsplice_memcmp_fn(): the child backs the contents up (a swapped-out page is swapped in by the child)
    const old = snapshot(k, m, 'child');
    k.run(k.gup({ map: 'mem', page: m.first, pages: m.pages, fast: true, process: 'child', as: 'pipe' }, false));
    k.run(k.munmap({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, process: 'child' }));
    if (mprotect) mprotectRoRw(k, m);
    memset(k, m, '0xff');
    return verdict(JSON.stringify(through(k, 'pipe', m)) === JSON.stringify(old));
  };

/** do_test_vmsplice_in_parent: the parent's pipe must not see the child's write. */
const vmspliceInParent =
  (beforeFork: boolean): Case =>
  (k, m) => {
    const old = snapshot(k, m);
    if (beforeFork) k.run(k.gup({ map: 'mem', page: m.first, pages: m.pages, fast: true, as: 'pipe' }, false));
    k.run(k.fork({ as: 'child' }));
    if (!beforeFork) k.run(k.gup({ map: 'mem', page: m.first, pages: m.pages, fast: true, as: 'pipe' }, false));
    k.run(k.munmap({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096 }));
    memset(k, m, '0xff', 'child');
    k.run(k.exit({ process: 'child' }));
    return verdict(JSON.stringify(through(k, 'pipe', m)) === JSON.stringify(old));
  };

/** do_test_iouring: the R/W longterm pin must read what the page table shows after the write. */
const iouring =
  (useFork: boolean): Case =>
  (k, m) => {
    k.run(k.gup({ map: 'mem', page: m.first, pages: m.pages, write: true, longterm: true, as: 'fixed' }, true));
    if (useFork) k.run(k.fork({ as: 'child' }));
    else {
      k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: false }));
      k.run(k.clearRefs({}));
      k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: true }));
    }
    memset(k, m, '0xff');
    return verdict(JSON.stringify(through(k, 'fixed', m)) === JSON.stringify(snapshot(k, m)));
  };

/** do_test_ro_pin: the R/O longterm pin must read what the page table shows after the write. */
const roPin =
  (test: 'shared' | 'previously-shared' | 'exclusive', fast: boolean): Case =>
  (k, m) => {
    if (test !== 'exclusive') k.run(k.fork({ as: 'child' }));
    if (test === 'previously-shared') k.run(k.exit({ process: 'child' }));
    if (test === 'exclusive') {
      k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: false }));
      k.run(k.clearRefs({}));
      k.run(k.mprotect({ map: 'mem', offset: m.first * PAGE, length: m.pages * 4096, write: true }));
    }
    k.run(k.gup({ map: 'mem', page: m.first, pages: m.pages, longterm: true, fast, as: 'ro' }, true));
    memset(k, m, '0xff');
    return verdict(JSON.stringify(through(k, 'ro', m)) === JSON.stringify(snapshot(k, m)));
  };

export const CASES: readonly [string, Case][] = [
  ['Basic COW after fork()', cowInParent(false)],
  ['Basic COW after fork() with mprotect() optimization', cowInParent(true)],
  ['vmsplice() + unmap in child', vmspliceInChild(false)],
  ['vmsplice() + unmap in child with mprotect() optimization', vmspliceInChild(true)],
  ['vmsplice() before fork(), unmap in parent after fork()', vmspliceInParent(true)],
  ['vmsplice() + unmap in parent after fork()', vmspliceInParent(false)],
  ['R/O-mapping a page registered as iouring fixed buffer', iouring(false)],
  ['fork() with an iouring fixed buffer', iouring(true)],
  ['R/O GUP pin on R/O-mapped shared page', roPin('shared', false)],
  ['R/O GUP-fast pin on R/O-mapped shared page', roPin('shared', true)],
  ['R/O GUP pin on R/O-mapped previously-shared page', roPin('previously-shared', false)],
  ['R/O GUP-fast pin on R/O-mapped previously-shared page', roPin('previously-shared', true)],
  ['R/O GUP pin on R/O-mapped exclusive page', roPin('exclusive', false)],
  ['R/O GUP-fast pin on R/O-mapped exclusive page', roPin('exclusive', true)],
];

const P = 'pass' as const;
const F = 'FAIL' as const;

/**
 * The base page's verdicts (docs/selftests.md, "cow.c — verdicts per release (base page)"), in
 * the tables' columns: v5.4, v5.10, v6.1 and later.
 */
export const BASE_PAGE: Readonly<Record<string, readonly [Verdict, Verdict, Verdict]>> = {
  'Basic COW after fork()': [P, P, P],
  'Basic COW after fork() with mprotect() optimization': [P, P, P],
  'vmsplice() + unmap in child': [F, P, P],
  'vmsplice() + unmap in child with mprotect() optimization': [F, P, P],
  'vmsplice() before fork(), unmap in parent after fork()': [F, P, P],
  'vmsplice() + unmap in parent after fork()': [F, P, P],
  'R/O-mapping a page registered as iouring fixed buffer': [P, F, P],
  'fork() with an iouring fixed buffer': [F, P, P],
  'R/O GUP pin on R/O-mapped shared page': [F, F, P],
  'R/O GUP-fast pin on R/O-mapped shared page': [F, F, P],
  'R/O GUP pin on R/O-mapped previously-shared page': [P, F, P],
  'R/O GUP-fast pin on R/O-mapped previously-shared page': [P, F, P],
  'R/O GUP pin on R/O-mapped exclusive page': [P, F, P],
  'R/O GUP-fast pin on R/O-mapped exclusive page': [P, F, P],
};

/**
 * Swapped out (docs/selftests.md, "cow.c — verdicts per release (swapped out)"), for the base
 * page and the swapped-out THP contexts alike (the THP is split before it is swapped): the base
 * page's, except that on v5.10 the parent's write swap-in reuses the page a child's vmsplice()
 * holds (reuse_swap_page() does not count GUP references; fixed by c145e0b47c77, v5.19).
 */
export const SWAPPED_OUT: Readonly<Record<string, readonly [Verdict, Verdict, Verdict]>> = {
  ...BASE_PAGE,
  'vmsplice() + unmap in child': [F, F, P],
  'vmsplice() + unmap in child with mprotect() optimization': [F, F, P],
};

/** MADV_PAGEOUT of the range, then cow.c's range_is_swapped() (else "MADV_PAGEOUT did not work"). */
export function swapOut(k: Kernel, m: Mem): void {
  k.run(k.madvise({ map: 'mem', advice: 'pageout', offset: m.first * PAGE, length: m.pages * PAGE }));
  for (let page = m.first; page < m.first + m.pages; page++) if (!k.isSwappedIn({ map: 'mem', page })) throw new Error(`MADV_PAGEOUT did not work: page ${page} is not swapped`);
}

/** The verdict tables' columns: v5.4, v5.10, then v6.1 and every later preset alike. */
export const column = (version: string): 0 | 1 | 2 => (version === 'v5.4' ? 0 : version === 'v5.10' ? 1 : 2);

/** do_run_with_thp()'s contexts (THP_RUN_*; the swapped-out ones add MADV_PAGEOUT: swapOut). */
export type ThpContext = 'pmd' | 'pte' | 'single-pte' | 'partial-mremap' | 'partially-shared' | 'pmd-swap' | 'pte-swap' | 'single-pte-swap';

/**
 * run_anon_test_case() + do_run_with_thp(fn, ctx, thpsize) for a size of `nr` base pages: on v6.8+
 * kernels the PMD size's `enabled` is set to never and this size's to always (thp_push_settings();
 * older kernels have no per-size knobs and cow.c runs the PMD size alone, untouched); mmap(2 *
 * thpsize), MADV_HUGEPAGE on its thpsize-aligned part, mem[0] = 1 and the last subpage must be
 * populated ("Did not get a THP populated"), memset(mem, 1), then the context. Returns cow.c's
 * `mem` and `size`.
 */
export function runWithThp(k: Kernel, ctx: ThpContext, nr: number): Mem {
  if (ctx.endsWith('-swap')) {
    const m = runWithThp(k, ctx.slice(0, -'-swap'.length) as ThpContext, nr);
    swapOut(k, m);
    return m;
  }
  const size = nr * PAGE;
  const pmdSize = k.vm.pmdPages * PAGE;
  if (k.thp.sizes.exist) {
    k.run(k.thpSize({ size: pmdSize, enabled: 'never' }));
    k.run(k.thpSize({ size, enabled: 'always' }));
  }
  k.run(k.mmap({ anon: true, length: 2 * size, write: true, as: 'mem' }));
  // mem = (mmap_mem + thpsize) & ~(thpsize - 1), as a page index into the mapping
  const start = k.processes.get('init')!.ranges.get('mem')!.start;
  const first = Math.floor((start + nr) / nr) * nr - start;
  k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: first * PAGE, length: size }));
  k.run(k.write({ map: 'mem', page: first, data: '0x01' }));
  if (k.pfnOf({ map: 'mem', page: first + nr - 1 }) !== k.pfnOf({ map: 'mem', page: first })! + nr - 1) throw new Error('Did not get a THP populated');
  k.run(k.write({ map: 'mem', page: first + nr - 1, data: '0x01' }));
  const at = (page: number): number => (first + page) * PAGE;
  switch (ctx) {
    case 'pmd':
      if (nr !== k.vm.pmdPages) throw new Error('THP_RUN_PMD needs thpsize == pmdsize');
      break;
    case 'pte':
      // a no-op for a size below the PMD's: the folio is PTE-mapped already
      k.run(k.mprotect({ map: 'mem', offset: at(1), length: PAGE, write: false }));
      k.run(k.mprotect({ map: 'mem', offset: at(1), length: PAGE, write: true }));
      break;
    case 'single-pte':
      k.run(k.madvise({ map: 'mem', advice: 'dontneed', offset: at(1), length: size - PAGE }));
      return { first, pages: 1 };
    case 'partial-mremap':
      // mremap(mem + thpsize / 2, thpsize / 2, thpsize / 2, MREMAP_MAYMOVE | MREMAP_FIXED, mremap_mem)
      k.run(k.mmap({ anon: true, length: size / 2, as: 'mremap_mem' }));
      k.run(k.mremap({ map: 'mem', offset: at(nr / 2), length: size / 2, to: 'mremap_mem', as: 'moved' }));
      return { first, pages: nr / 2 };
    case 'partially-shared':
      k.run(k.madvise({ map: 'mem', advice: 'dontfork', offset: at(1), length: size - PAGE }));
      k.run(k.fork({ as: 'sharer' }));
      k.run(k.exit({ process: 'sharer' }));
      k.run(k.madvise({ map: 'mem', advice: 'dofork', offset: at(1), length: size - PAGE }));
      break;
  }
  return { first, pages: nr };
}
