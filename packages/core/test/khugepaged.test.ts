import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// khugepaged (mm/collapse.ts Khugepaged, mm/khugepaged.c khugepaged_scan_mm_slot() /
// hpage_collapse_scan_pmd() / collapse_huge_page()) and the limits MADV_COLLAPSE does not have.
// The test arch: 4 KiB pages, 2 MiB PMDs, so HPAGE_PMD_NR = 512 and the defaults are
// max_ptes_none 511, max_ptes_swap 64 (512 / 8), max_ptes_shared 256 (512 / 2).
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** A 2 MiB private anonymous mapping with the given pages written (each a base page of its own). */
function range(k: Kernel, pages: Iterable<number>, process?: string): void {
  const p = process ? { process } : {};
  k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem', ...p }));
  for (const page of pages) k.run(k.write({ map: 'mem', page, data: `p${page}`, ...p }));
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** wait_for_scan(): MADV_HUGEPAGE, one khugepaged pass, MADV_NOHUGEPAGE; the scan results. */
function khugepaged(k: Kernel, process?: string): string[] {
  const p = process ? { process } : {};
  k.run(k.madvise({ map: 'mem', advice: 'hugepage', ...p }));
  const mm = k.processes.get(process ?? 'init')!;
  const vma = mm.vmas.find((v) => v.kind === 'anon')!;
  const results = k.run(k.thp.khugepaged.scan(mm, vma.start, vma.start + vma.pages));
  k.run(k.madvise({ map: 'mem', advice: 'nohugepage', ...p }));
  return results;
}

const thps = (k: Kernel, process?: string): number => k.anonHugePagesIn({ map: 'mem', page: 0, ...(process ? { process } : {}) });

describe('khugepaged limits (sysfs khugepaged/max_ptes_*)', () => {
  it('default to HPAGE_PMD_NR - 1, / 8 and / 2; above HPAGE_PMD_NR - 1 is EINVAL; max_ptes_shared is ENOENT before v5.8', () => {
    const k = kernel();
    expect(k.thp.khugepaged.limits).toEqual({ maxPtesNone: 511, maxPtesSwap: 64, maxPtesShared: 256 });
    expect(code(() => k.run(k.khugepagedLimits({ maxPtesNone: NR })))).toBe('EINVAL');
    k.run(k.khugepagedLimits({ maxPtesNone: 511, maxPtesShared: 0 }));
    expect(k.thp.khugepaged.limits).toEqual({ maxPtesNone: 511, maxPtesSwap: 64, maxPtesShared: 0 });
    const old = kernel('v5.4');
    expect(code(() => old.run(old.khugepagedLimits({ maxPtesShared: 1 })))).toBe('ENOENT');
  });
});

describe('one khugepaged pass', () => {
  it('passes over a VMA without VM_HUGEPAGE (enabled=madvise: TVA_ENFORCE_SYSFS) and collapses one with it', () => {
    const k = kernel();
    range(k, upTo(NR));
    const mm = k.processes.get('init')!;
    const vma = mm.vmas[0]!;
    // no MADV_HUGEPAGE: hugepage_vma_check() with sysfs enforced refuses, nothing scanned
    expect(k.run(k.thp.khugepaged.scan(mm, vma.start, vma.start + vma.pages))).toEqual([]);
    expect(thps(k)).toBe(0);
    expect(khugepaged(k)).toEqual(['succeed']);
    expect(thps(k)).toBe(1);
    // the data of every page went into the THP; the old 512 pages are gone: one folio, rc 1
    expect(k.run(k.read({ map: 'mem', page: 300 }))).toBe('p300');
    expect(k.folios.rc(k.folios.folio(k.pfnOf({ map: 'mem', page: 0 })!))).toBe(1);
  });

  it('max_ptes_none: 257 none PTEs over a limit of 256 is SCAN_EXCEED_NONE_PTE, 256 collapse; MADV_COLLAPSE ignores the limit', () => {
    const k = kernel();
    k.run(k.khugepagedLimits({ maxPtesNone: NR / 2 }));
    range(k, upTo(NR / 2 - 1)); // 255 pages written: 257 none
    expect(khugepaged(k)).toEqual(['exceed-none-pte']);
    k.run(k.write({ map: 'mem', page: NR / 2 - 1, data: 'x' })); // 256 none: not above
    expect(khugepaged(k)).toEqual(['succeed']);
    const m = kernel();
    m.run(m.khugepagedLimits({ maxPtesNone: 0 }));
    range(m, [0]);
    m.run(m.madvise({ map: 'mem', advice: 'collapse' }));
    expect(thps(m)).toBe(1);
  });

  it('zero-page PTEs count as none: 512 of them exceed max_ptes_none 511 (SCAN_EXCEED_NONE_PTE); MADV_COLLAPSE has no anon_vma to work with (EINVAL)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    for (const page of upTo(NR)) k.run(k.read({ map: 'mem', page }));
    expect(khugepaged(k)).toEqual(['exceed-none-pte']);
    // a read fault of the zero page prepares no anon_vma: EINVAL before any scan
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    expect(thps(k)).toBe(0);
  });

  it('no writable PTE in the range is SCAN_PAGE_RO: right after fork() the parent\'s COW-shared pages are all write-protected', () => {
    const k = kernel();
    range(k, upTo(4));
    k.run(k.fork({ as: 'child' }));
    // 4 shared pages (<= 256), rc 2 == mapcount 2 for each, but pte_write() on none of them
    expect(khugepaged(k)).toEqual(['page-ro']);
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    // one write makes one PTE writable (a COW copy): collapsed
    k.run(k.write({ map: 'mem', page: 0, data: 'w' }));
    expect(khugepaged(k)).toEqual(['succeed']);
    expect(k.run(k.read({ map: 'mem', page: 0, process: 'child' }))).toBe('p0');
  });
});

describe('swap entries in the range (__collapse_huge_page_swapin)', () => {
  const pageout = (k: Kernel, pages: number): void => void k.run(k.madvise({ map: 'mem', advice: 'pageout', length: pages * 4096 }));

  it('one swapped-out page is read back and copied into the THP; its slot and swap cache are freed', () => {
    const k = kernel();
    range(k, upTo(NR));
    pageout(k, 1);
    expect(k.isSwappedIn({ map: 'mem', page: 0 })).toBe(true);
    expect(khugepaged(k)).toEqual(['succeed']);
    expect(k.isSwappedIn({ map: 'mem', page: 0 })).toBe(false);
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('p0');
    // nothing in swap any more: the THP is the only folio (rc 1, mapcount 1)
    const head = k.folios.folio(k.pfnOf({ map: 'mem', page: 0 })!);
    expect([k.folios.rc(head), k.folios.mapcount(head), k.swap.inSwapCache(head)]).toEqual([1, 1, false]);
  });

  it('max_ptes_swap: 65 swap PTEs over 64 is SCAN_EXCEED_SWAP_PTE for khugepaged; MADV_COLLAPSE swaps all 65 in', () => {
    const k = kernel();
    range(k, upTo(NR));
    pageout(k, NR / 8 + 1);
    expect(khugepaged(k)).toEqual(['exceed-swap-pte']);
    expect(k.isSwappedIn({ map: 'mem', page: NR / 8 })).toBe(true);
    // __madvise_collapse(): MADV_HUGEPAGE clears the VM_NOHUGEPAGE wait_for_scan() left
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(thps(k)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: NR / 8 }))).toBe(`p${NR / 8}`);
  });

  it('swap entries with fewer than HPAGE_PMD_NR / 2 young pages: SCAN_LACK_REFERENCED_PAGE (khugepaged only)', () => {
    const k = kernel();
    k.run(k.khugepagedLimits({ maxPtesSwap: 300 }));
    range(k, upTo(NR));
    // 300 swapped out, 212 present (young) < 256
    pageout(k, 300);
    expect(khugepaged(k)).toEqual(['lack-referenced-page']);
    // 256 swapped out, 256 present: enough
    const j = kernel();
    j.run(j.khugepagedLimits({ maxPtesSwap: 300 }));
    range(j, upTo(NR));
    pageout(j, 256);
    expect(khugepaged(j)).toEqual(['succeed']);
  });
});

describe('pages shared with another process (max_ptes_shared)', () => {
  /** A THP shared over fork; the child writes its first `cow` pages (each write COWs one subpage). */
  function sharedThp(k: Kernel, cow: number): void {
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'p0' }));
    k.run(k.fork({ as: 'child' }));
    for (let page = 0; page < cow; page++) k.run(k.write({ map: 'mem', page, data: `c${page}`, process: 'child' }));
  }

  it('257 subpages still shared with the parent\'s PMD exceed 256; 256 do not; the parent keeps its THP', () => {
    const k = kernel();
    sharedThp(k, NR / 2 - 1);
    expect(khugepaged(k, 'child')).toEqual(['exceed-shared-pte']);
    k.run(k.write({ map: 'mem', page: NR / 2 - 1, data: 'c', process: 'child' }));
    expect(khugepaged(k, 'child')).toEqual(['succeed']);
    expect(thps(k, 'child')).toBe(1);
    expect(thps(k)).toBe(1);
    // the child's copy holds its own writes and the parent's untouched data where it wrote none
    expect(k.run(k.read({ map: 'mem', page: 0, process: 'child' }))).toBe('c0');
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('p0');
    // the parent's THP lost the child's 256 PTE mappings: rc 1 (its PMD), mapcount 1
    const head = k.folios.folio(k.pfnOf({ map: 'mem', page: 0 })!);
    expect([k.folios.rc(head), k.folios.mapcount(head)]).toEqual([1, 1]);
  });

  it('v5.4 (before v5.8\'s "allow to collapse a page shared across fork"): a page shared with the parent is SCAN_PAGE_COUNT', () => {
    const k = kernel('v5.4');
    range(k, [0]);
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'mem', page: 1, data: 'c1', process: 'child' }));
    expect(khugepaged(k, 'child')).toEqual(['page-count']);
    const n = kernel('v5.10');
    range(n, [0]);
    n.run(n.fork({ as: 'child' }));
    n.run(n.write({ map: 'mem', page: 1, data: 'c1', process: 'child' }));
    expect(khugepaged(n, 'child')).toEqual(['succeed']);
  });

  it('v5.4: a PTE-mapped THP is SCAN_PAGE_COMPOUND; from v5.8 it is copied into a new THP', () => {
    for (const [v, want] of [['v5.4', 'page-compound'], ['v5.10', 'succeed']] as const) {
      const k = kernel(v);
      k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'p0' }));
      // MADV_DONTNEED of all but the first page: the PMD is split, one PTE maps the THP
      k.run(k.madvise({ map: 'mem', advice: 'dontneed', offset: 4096, length: 2 * MiB - 4096 }));
      expect(thps(k)).toBe(0);
      expect(khugepaged(k)).toEqual([want]);
    }
  });
});

describe('a GUP reference in the range', () => {
  it('is SCAN_PAGE_COUNT (is_refcount_suitable): khugepaged leaves the range, MADV_COLLAPSE is EAGAIN from v6.2, EINVAL in v6.1', () => {
    for (const [v, errno] of [['v6.1', 'EINVAL'], ['latest', 'EAGAIN']] as const) {
      const k = kernel(v);
      range(k, upTo(8));
      k.run(k.gup({ map: 'mem', page: 3, as: 'g' }, false));
      expect(khugepaged(k)).toEqual(['page-count']);
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe(errno);
    }
  });
});

describe('userfaultfd in the range', () => {
  it('a none PTE in a userfaultfd-armed VMA is SCAN_EXCEED_NONE_PTE for MADV_COLLAPSE too (no limit would let it fill the hole)', () => {
    const k = kernel();
    range(k, upTo(NR - 1)); // one hole: page 511
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'mem', mode: ['missing'] }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    // unregistered, the same range collapses (the hole becomes a zeroed subpage)
    k.run(k.uffdUnregister({ map: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(thps(k)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: NR - 2 }))).toBe(`p${NR - 2}`);
  });

  it('a uffd-wp PTE is SCAN_PTE_UFFD_WP: nothing collapses while it is write-protected', () => {
    const k = kernel();
    range(k, upTo(NR));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'mem', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'mem', enable: true, length: 4096 }));
    expect(khugepaged(k)).toEqual(['pte-uffd-wp']);
    k.run(k.uffdWriteprotect({ map: 'mem', enable: false, length: 4096 }));
    expect(khugepaged(k)).toEqual(['succeed']);
  });
});

describe('a range the huge zero page maps', () => {
  it('is SCAN_PMD_MAPPED (pmd_trans_huge): MADV_COLLAPSE succeeds without a change, khugepaged leaves it; no AnonHugePages', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.read({ map: 'mem', page: 0 })); // do_huge_pmd_anonymous_page(): the huge zero PMD
    k.run(k.write({ map: 'mem', page: 0, data: 'x' })); // anon_vma for MADV_COLLAPSE: the write ...
    k.run(k.madvise({ map: 'mem', advice: 'dontneed' })); // ... and the range emptied again
    k.run(k.read({ map: 'mem', page: 0 }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(k.hugeZeroPfn);
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(k.hugeZeroPfn);
    expect(khugepaged(k)).toEqual(['pmd-mapped']);
    expect(thps(k)).toBe(0);
  });
});
