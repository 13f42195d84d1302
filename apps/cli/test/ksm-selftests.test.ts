import { createKernel, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { ARCHES } from './selftest-api.js';

// tools/testing/selftests/mm/ksm_functional_tests.c (docs/selftests.md, "Coverage:
// ksm_functional_tests.c"), driven through the kernel API on the test's whole 2 MiB: the
// ksft_test_result() of the test functions the model covers, per arch and release. The file is
// v6.1 (its unmerge tests came with "mm/ksm: fix KSM COW breaking with userfaultfd-wp via
// FAULT_FLAG_UNSHARE"); v5.4 and v5.10 show what the same system calls do there.

const RELEASES = PRESETS.map((p) => p.name);
const SIZE = 2 * 1024 * 1024;

/**
 * range_maps_duplicates(): does any pfn (pagemap, present pages only) appear twice in the range?
 * A set of the pfns seen is the test's pairwise comparison.
 */
function rangeMapsDuplicates(k: Kernel, pages: number): boolean {
  const seen = new Set<number>();
  for (let page = 0; page < pages; page++) {
    const pfn = k.pfnOf({ map: 'map', page });
    if (pfn === null || !k.isMappedIn({ map: 'map', page })) continue;
    if (seen.has(pfn)) return true;
    seen.add(pfn);
  }
  return false;
}

/**
 * mmap_and_merge_range(0xcf, 2 MiB): MADV_NOHUGEPAGE, memset() every page to the same value,
 * MADV_MERGEABLE, then ksm_merge(): two full scans. Later versions also SKIP when nothing merged
 * (/proc/self/ksm_merging_pages); here merging must have happened, as the test presumes.
 */
function mmapAndMergeRange(k: Kernel, pages: number): void {
  k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'map' }));
  k.run(k.madvise({ map: 'map', advice: 'nohugepage' }));
  for (let page = 0; page < pages; page++) k.run(k.write({ map: 'map', page, data: 'cf' }));
  k.run(k.madvise({ map: 'map', advice: 'mergeable' }));
  k.run(k.ksmMerge({}));
  // every page maps the one KSM page: it holds a reference and a mapcount per PTE
  const kpage = k.pfnOf({ map: 'map', page: 0 })!;
  expect(k.ksm.isKsm(kpage)).toBe(true);
  expect([k.folios.rc(kpage), k.folios.mapcount(kpage)]).toEqual([pages, pages]);
}

const TESTS: Record<string, (k: Kernel, pages: number) => boolean> = {
  test_unmerge: (k, pages) => {
    mmapAndMergeRange(k, pages);
    k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
    return !rangeMapsDuplicates(k, pages); // "Pages were unmerged"
  },
  test_unmerge_discarded: (k, pages) => {
    mmapAndMergeRange(k, pages);
    // "Discard half of all mapped pages so we have pte_none() entries."
    k.run(k.madvise({ map: 'map', advice: 'dontneed', length: SIZE / 2 }));
    k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
    return !rangeMapsDuplicates(k, pages);
  },
};

function verdict(arch: string, version: string, test: string): 'pass' | 'FAIL' {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const m = new Monitor(k);
  const ok = TESTS[test]!(k, SIZE / k.mmu.basePageSize);
  expect(m.violations, `${arch} ${version} ${test}`).toEqual([]);
  return ok ? 'pass' : 'FAIL';
}

describe('selftests/mm/ksm_functional_tests.c verdicts per arch and release', () => {
  const allPass = Object.fromEntries(RELEASES.map((v) => [v, 'pass']));
  for (const test of Object.keys(TESTS)) {
    it(test, () => {
      const got = Object.fromEntries(Object.keys(ARCHES).map((arch) => [arch, Object.fromEntries(RELEASES.map((v) => [v, verdict(arch, v, test)]))]));
      expect(got).toEqual(Object.fromEntries(Object.keys(ARCHES).map((arch) => [arch, allPass])));
    });
  }

  it('after MADV_UNMERGEABLE each page is a private copy mapped once, read-only from v6.1 (break_ksm unshares), writable before (a write fault)', () => {
    const after = Object.fromEntries(RELEASES.map((v) => {
      const k = createKernel({ arch: ARCHES.x86!(), kernel: v });
      const pages = SIZE / k.mmu.basePageSize;
      mmapAndMergeRange(k, pages);
      k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
      const pfns = [0, 1, pages - 1].map((page) => k.pfnOf({ map: 'map', page })!);
      expect(pfns.map((p) => [k.folios.rc(p), k.folios.mapcount(p), k.ksm.isKsm(p)]), v).toEqual([[1, 1, false], [1, 1, false], [1, 1, false]]);
      expect(k.run(k.read({ map: 'map', page: pages - 1 })), v).toBe('cf');
      return [v, k.isWritableIn({ map: 'map', page: 0 })];
    }));
    expect(after).toEqual({ 'v5.4': true, 'v5.10': true, 'v6.1': false, 'v6.3': false, 'v6.6': false, 'v6.15': false, latest: false });
  });
});
