import { createKernel, KernelError, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { ARCHES } from './selftest-api.js';

// tools/testing/selftests/mm/ksm_functional_tests.c (docs/selftests.md, "Coverage:
// ksm_functional_tests.c"), driven through the kernel API on the test's whole 2 MiB: the
// ksft_test_result() of the test functions the model covers, per arch and release, as the file
// of today reports them (it first appeared in v6.1 with the unmerge tests; the prctl tests came in
// v6.4, test_unmerge_zero_pages in v6.6, test_prctl_fork_exec in v6.7, test_fork_ksm_merging_page_count
// in v6.18); on older releases it shows what the same system calls do there.

const RELEASES = PRESETS.map((p) => p.name);
const SIZE = 2 * 1024 * 1024;
type Verdict = 'pass' | 'FAIL' | 'SKIP';

/**
 * range_maps_duplicates(): does any pfn (pagemap, present pages only) appear twice in the range?
 * A set of the pfns seen is the test's pairwise comparison.
 */
function rangeMapsDuplicates(k: Kernel, pages: number, process?: string): boolean {
  const seen = new Set<number>();
  for (let page = 0; page < pages; page++) {
    const at = { map: 'map', page, ...(process ? { process } : {}) };
    const pfn = k.pfnOf(at);
    if (pfn === null || !k.isMappedIn(at)) continue;
    if (seen.has(pfn)) return true;
    seen.add(pfn);
  }
  return false;
}

/** The negative errno a failed call returns (-errno), for the test's `ret < 0` / exit() paths. */
const ERRNO = { ENOENT: 2, EIO: 5, EINVAL: 22 } as const;
function call<T>(f: () => T): T | number {
  try {
    return f();
  } catch (e) {
    if (e instanceof KernelError && e.code in ERRNO) return -ERRNO[e.code as keyof typeof ERRNO];
    throw e;
  }
}

/** ksm_get_self_merging_pages(): /proc/self/ksm_merging_pages, or -errno when it cannot be read. */
const selfMergingPages = (k: Kernel, process = 'init') => call(() => k.ksm.mergingPages(k.process(process))) as number;

/**
 * ksm_get_self_zero_pages(): the number after "ksm_zero_pages" in /proc/self/ksm_stat, 0 when the
 * file has no such line (v6.1 to v6.5), -errno when the file cannot be opened (before v6.1).
 */
function selfZeroPages(k: Kernel): number {
  if (!k.ksm.hasKsmStat()) return -ERRNO.ENOENT;
  const n = call(() => k.ksm.zeroPages(k.process('init')));
  return n === -ERRNO.ENOENT ? 0 : (n as number);
}

/**
 * __mmap_and_merge_range(val, 2 MiB, prot, mode): ksm_unmerge() (echo 2 > run) and "Still pages
 * merged" if ksm_get_self_merging_pages() > 0; mmap, MADV_NOHUGEPAGE,
 * memset() every page to `val` (a zero-filled page for 0x00), mprotect(prot) (PROT_NONE for
 * test_prot_none; PROT_READ|PROT_WRITE changes nothing), then PR_SET_MEMORY_MERGE (-EINVAL: "Merging memory skipped"), MADV_MERGEABLE or nothing (the
 * process has MMF_VM_MERGE_ANY already), ksm_merge() (two full scans), and "No pages got merged"
 * when val is not 0 and ksm_get_self_merging_pages() reads 0 (a negative value passes).
 */
function mmapAndMergeRange(k: Kernel, pages: number, mode: 'prctl' | 'madvise' | 'none', val = 'cf', process = 'init', protNone = false): 'ok' | Verdict {
  // ksm_unmerge(): "Stabilize accounting by disabling KSM completely" (echo 2 > run)
  k.run(k.ksmUnmerge({}));
  if (selfMergingPages(k, process) > 0) return 'FAIL';
  k.run(k.mmap({ anon: true, length: SIZE, write: true, as: 'map', process }));
  k.run(k.madvise({ map: 'map', advice: 'nohugepage', process }));
  if (val === '') k.run(k.madvise({ map: 'map', advice: 'populate-write', process }));
  else for (let page = 0; page < pages; page++) k.run(k.write({ map: 'map', page, data: val, process }));
  if (protNone) k.run(k.mprotect({ map: 'map', write: false, read: false, process }));
  if (mode === 'prctl' && call(() => k.run(k.prctl({ memoryMerge: true, process }))) === -ERRNO.EINVAL) return 'SKIP';
  if (mode === 'madvise') k.run(k.madvise({ map: 'map', advice: 'mergeable', process }));
  k.run(k.ksmMerge({}));
  if (val !== '' && selfMergingPages(k, process) === 0) return 'FAIL';
  return 'ok';
}

/** prctl(PR_SET_MEMORY_MERGE, 1): -EINVAL is "PR_SET_MEMORY_MERGE not supported" (SKIP). */
const setMemoryMerge = (k: Kernel, on: boolean, process = 'init') => call(() => k.run(k.prctl({ memoryMerge: on, process })));
const getMemoryMerge = (k: Kernel, process = 'init') => call(() => (k.ksm.memoryMerge(k.process(process)) ? 1 : 0));

/** test_child_ksm(): 0, or -1 (PR_GET_MEMORY_MERGE != 1), -2 (merge failed), -3 (merge skipped). */
function testChildKsm(k: Kernel, pages: number, child: string): number {
  if (getMemoryMerge(k, child) !== 1) return -1;
  const merged = mmapAndMergeRange(k, pages, 'none', 'cf', child);
  return merged === 'ok' ? 0 : merged === 'SKIP' ? -3 : -2;
}

/** WEXITSTATUS(): the low 8 bits of the value the child passed to exit(). */
const exitStatus = (v: number) => v & 0xff;

const TESTS: Record<string, (k: Kernel, pages: number) => Verdict> = {
  test_unmerge: (k, pages) => {
    const merged = mmapAndMergeRange(k, pages, 'madvise');
    if (merged !== 'ok') return merged;
    // every page maps a KSM page, which holds a reference and a mapcount per PTE, up to
    // max_page_sharing (256) each: 512 pages of 4 KiB share two (pages 0-255, 256-511), fewer one
    const first = k.pfnOf({ map: 'map', page: 0 })!;
    const last = k.pfnOf({ map: 'map', page: pages - 1 })!;
    const perPage = Math.min(pages, k.ksm.maxPageSharing);
    expect([k.folios.rc(first), k.folios.mapcount(first)]).toEqual([perPage, perPage]);
    expect(k.folios.rc(last)).toBe(pages - perPage || pages);
    expect(k.ksm.isKsm(first) && k.ksm.isKsm(last)).toBe(true);
    k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
    return rangeMapsDuplicates(k, pages) ? 'FAIL' : 'pass'; // "Pages were unmerged"
  },
  test_unmerge_discarded: (k, pages) => {
    const merged = mmapAndMergeRange(k, pages, 'madvise');
    if (merged !== 'ok') return merged;
    // "Discard half of all mapped pages so we have pte_none() entries."
    k.run(k.madvise({ map: 'map', advice: 'dontneed', length: SIZE / 2 }));
    k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
    return rangeMapsDuplicates(k, pages) ? 'FAIL' : 'pass';
  },
  test_unmerge_zero_pages: (k, pages) => {
    if (selfZeroPages(k) < 0) return 'SKIP'; // open("/proc/self/ksm_stat") failed
    // write 1 to use_zero_pages (there since v4.12), then mmap_and_merge_range(0x00)
    k.ksm.useZeroPages = true;
    const merged = mmapAndMergeRange(k, pages, 'madvise', '');
    if (merged !== 'ok') return merged;
    if (selfZeroPages(k) !== pages) return 'FAIL'; // "'ksm_zero_pages' updated after merging"
    k.run(k.madvise({ map: 'map', advice: 'unmergeable', length: SIZE / 2 }));
    if (selfZeroPages(k) !== pages / 2) return 'FAIL'; // "... after unmerging"
    // "Trigger unmerging of the other half by writing to the pages": each its own offset
    for (let page = pages / 2; page < pages; page++) k.run(k.write({ map: 'map', page, data: String(page * k.mmu.basePageSize) }));
    if (selfZeroPages(k) !== 0) return 'FAIL'; // "... after write fault"
    return rangeMapsDuplicates(k, pages) ? 'FAIL' : 'pass'; // "KSM zero pages were unmerged"
  },
  test_prot_none: (k, pages) => {
    const merged = mmapAndMergeRange(k, pages, 'madvise', '11', 'init', true);
    if (merged !== 'ok') return merged;
    // "Store a unique value in each page on one half using ptrace": pwrite() to /proc/self/mem
    for (let page = 0; page < pages / 2; page++) {
      if (call(() => k.run(k.procMemWrite({ map: 'map', page, data: String(page * k.mmu.basePageSize) }))) !== undefined) return 'FAIL';
    }
    // "Trigger unsharing on the other half."
    k.run(k.madvise({ map: 'map', advice: 'unmergeable', offset: SIZE / 2 }));
    return rangeMapsDuplicates(k, pages) ? 'FAIL' : 'pass';
  },
  test_prctl: (k) => {
    const set = setMemoryMerge(k, true);
    if (set === -ERRNO.EINVAL) return 'SKIP'; // "PR_SET_MEMORY_MERGE not supported"
    if (getMemoryMerge(k) !== 1) return 'FAIL'; // "PR_SET_MEMORY_MERGE=1 not effective"
    if (setMemoryMerge(k, false) !== undefined) return 'FAIL';
    return getMemoryMerge(k) === 0 ? 'pass' : 'FAIL'; // "Setting/clearing PR_SET_MEMORY_MERGE works"
  },
  test_prctl_fork: (k, pages) => {
    if (setMemoryMerge(k, true) === -ERRNO.EINVAL) return 'SKIP';
    k.run(k.fork({ as: 'child' }));
    const status = exitStatus(testChildKsm(k, pages, 'child'));
    if (status !== 0) return status === exitStatus(-3) ? 'SKIP' : 'FAIL'; // test_child_ksm_err()
    if (setMemoryMerge(k, false) !== undefined) return 'FAIL';
    return 'pass'; // "PR_SET_MEMORY_MERGE value is inherited"
  },
  test_prctl_fork_exec: (k, pages) => {
    if (setMemoryMerge(k, true) === -ERRNO.EINVAL) return 'SKIP';
    // the child execv()s ./ksm_functional_tests, which runs test_child_ksm() and exits with it
    k.run(k.fork({ as: 'child' }));
    k.run(k.exec({ process: 'child' }));
    const status = exitStatus(testChildKsm(k, pages, 'child'));
    if (status !== 0) return status === exitStatus(-3) ? 'SKIP' : 'FAIL';
    if (setMemoryMerge(k, false) !== undefined) return 'FAIL';
    return 'pass';
  },
  test_prctl_unmerge: (k, pages) => {
    const merged = mmapAndMergeRange(k, pages, 'prctl');
    if (merged !== 'ok') return merged;
    if (setMemoryMerge(k, false) !== undefined) return 'FAIL';
    return rangeMapsDuplicates(k, pages) ? 'FAIL' : 'pass';
  },
  test_fork_ksm_merging_page_count: (k, pages) => {
    const merged = mmapAndMergeRange(k, pages, 'madvise');
    if (merged !== 'ok') return merged;
    k.run(k.fork({ as: 'child' }));
    // the child: exit(ksm_get_self_merging_pages()); the parent reads WEXITSTATUS(status)
    const status = exitStatus(selfMergingPages(k, 'child'));
    return status === 0 ? 'pass' : 'FAIL'; // "ksm_merging_page in child: %d"
  },
};

function verdict(arch: string, version: string, test: string): Verdict {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const m = new Monitor(k);
  const got = TESTS[test]!(k, SIZE / k.mmu.basePageSize);
  expect(m.violations, `${arch} ${version} ${test}`).toEqual([]);
  return got;
}

/** Per release: the verdict, or a function of the page size for a verdict that depends on it. */
type Expected = Record<string, Verdict | ((pageSize: number) => Verdict)>;
const every = (v: Verdict): Expected => Object.fromEntries(RELEASES.map((r) => [r, v]));
const from = (first: string, before: Verdict, after: Verdict): Expected =>
  Object.fromEntries(RELEASES.map((r, i) => [r, i < RELEASES.indexOf(first) ? before : after]));

const EXPECTED: Record<string, Expected> = {
  test_unmerge: every('pass'),
  test_unmerge_discarded: every('pass'),
  // ksmd merges in PROT_NONE VMAs on every release (follow_page() without FOLL_NUMA; folio_walk);
  // the /proc/self/mem writes COW out of the KSM page (FOLL_COW up to v6.1, an exclusive anon page
  // from v6.2), MADV_UNMERGEABLE copies the rest (a write fault before v6.1, unshare after)
  test_prot_none: every('pass'),
  // /proc/self/ksm_stat arrived in v6.1 (before: SKIP); v6.1 and v6.3 have it without a
  // ksm_zero_pages line, which reads 0 where 2 MiB of pages were expected (FAIL); v6.6 counts
  // KSM-placed zero pages and MADV_UNMERGEABLE unshares them
  test_unmerge_zero_pages: { 'v5.4': 'SKIP', 'v5.10': 'SKIP', 'v6.1': 'FAIL', 'v6.3': 'FAIL', 'v6.6': 'pass', 'v6.15': 'pass', latest: 'pass' },
  // PR_SET_MEMORY_MERGE arrived in v6.4: -EINVAL before it
  test_prctl: from('v6.6', 'SKIP', 'pass'),
  test_prctl_fork: from('v6.6', 'SKIP', 'pass'),
  test_prctl_unmerge: from('v6.6', 'SKIP', 'pass'),
  // MMF_VM_MERGE_ANY survives execve() from v6.7 (MMF_INIT_MASK) and the new mm is scanned from
  // v6.10 (ksm_execve): on v6.6 the exec'd child reads PR_GET_MEMORY_MERGE 0 -- status -1 (255),
  // "unexpected PR_GET_MEMORY_MERGE result in child"
  test_prctl_fork_exec: { ...from('v6.6', 'SKIP', 'pass'), 'v6.6': 'FAIL' },
  // no /proc/self/ksm_merging_pages before v5.19: the child exits with -ENOENT, status 254;
  // v5.19 to v6.17 the child inherits the parent's count, one per page of the 2 MiB, and exit()
  // keeps its low 8 bits: 512 pages of 4 KiB read 0 (a pass by truncation), 32 pages of 64 KiB
  // read 32 -- the failure of the fix's cover letter ("ksm_merging_page in child: 32", ppc64);
  // v6.18 (4d6fc29f3634) resets the child's count: 0
  test_fork_ksm_merging_page_count: {
    ...from('v6.1', 'FAIL', 'pass'),
    ...Object.fromEntries(['v6.1', 'v6.3', 'v6.6', 'v6.15'].map((r) => [r, (ps: number) => ((SIZE / ps) & 0xff ? 'FAIL' : 'pass') as Verdict])),
  },
};

describe('selftests/mm/ksm_functional_tests.c verdicts per arch and release', () => {
  for (const [test, expected] of Object.entries(EXPECTED)) {
    it(test, () => {
      const got: Record<string, Record<string, Verdict>> = {};
      const want: Record<string, Record<string, Verdict>> = {};
      for (const arch of Object.keys(ARCHES)) {
        const pageSize = ARCHES[arch]!().mmu.basePageSize;
        got[arch] = Object.fromEntries(RELEASES.map((v) => [v, verdict(arch, v, test)]));
        want[arch] = Object.fromEntries(RELEASES.map((v) => { const e = expected[v]!; return [v, typeof e === 'function' ? e(pageSize) : e]; }));
      }
      expect(got).toEqual(want);
    });
  }

  it('after MADV_UNMERGEABLE each page is a private copy mapped once, read-only from v6.2 (break_ksm unshares: 6cce3314b928), writable before (a write fault)', () => {
    const after = Object.fromEntries(RELEASES.map((v) => {
      const k = createKernel({ arch: ARCHES.x86!(), kernel: v });
      const pages = SIZE / k.mmu.basePageSize;
      expect(mmapAndMergeRange(k, pages, 'madvise'), v).toBe('ok');
      k.run(k.madvise({ map: 'map', advice: 'unmergeable' }));
      const pfns = [0, 1, pages - 1].map((page) => k.pfnOf({ map: 'map', page })!);
      expect(pfns.map((p) => [k.folios.rc(p), k.folios.mapcount(p), k.ksm.isKsm(p)]), v).toEqual([[1, 1, false], [1, 1, false], [1, 1, false]]);
      expect(k.run(k.read({ map: 'map', page: pages - 1 })), v).toBe('cf');
      return [v, k.isWritableIn({ map: 'map', page: 0 })];
    }));
    expect(after).toEqual({ 'v5.4': true, 'v5.10': true, 'v6.1': true, 'v6.3': false, 'v6.6': false, 'v6.15': false, latest: false });
  });

  it('test_fork_ksm_merging_page_count: the child\'s /proc/self/ksm_merging_pages itself, before exit() truncates it', () => {
    const child = Object.fromEntries(RELEASES.map((v) => {
      const k = createKernel({ arch: ARCHES['ppc-hash']!(), kernel: v });
      const pages = SIZE / k.mmu.basePageSize; // 32 pages of 64 KiB
      expect(mmapAndMergeRange(k, pages, 'madvise'), v).toBe('ok');
      k.run(k.fork({ as: 'child' }));
      return [v, selfMergingPages(k, 'child')];
    }));
    expect(child).toEqual({ 'v5.4': -2, 'v5.10': -2, 'v6.1': 32, 'v6.3': 32, 'v6.6': 32, 'v6.15': 32, latest: 0 });
  });
});
