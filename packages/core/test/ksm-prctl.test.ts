import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// prctl(PR_SET_MEMORY_MERGE) (MMF_VM_MERGE_ANY), the per-mm counters ksm_merging_pages and
// ksm_zero_pages, and use_zero_pages (mm/ksm.ts; mm/ksm.c, kernel/sys.c, include/linux/ksm.h).
// The test arch has 4 KiB pages; small mappings stay order-0.
const PAGE = 4096;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

function mm(k: Kernel, process = 'init') {
  return k.processes.get(process)!;
}

/** `data.length` pages of private anonymous memory as `name`, page i written with data[i]. */
function filled(k: Kernel, name: string, data: string[], extra: { shared?: boolean; process?: string } = {}): void {
  k.run(k.mmap({ anon: true, length: data.length * PAGE, write: true, as: name, ...extra }));
  data.forEach((d, page) => k.run(k.write({ map: name, page, data: d, ...(extra.process ? { process: extra.process } : {}) })));
}

/** `n` zero-filled private anonymous pages as `name` (MADV_NOHUGEPAGE, MADV_POPULATE_WRITE), MADV_MERGEABLE. */
function zeroFilledMergeable(k: Kernel, name: string, n: number): void {
  k.run(k.mmap({ anon: true, length: n * PAGE, write: true, as: name }));
  k.run(k.madvise({ map: name, advice: 'nohugepage' }));
  k.run(k.madvise({ map: name, advice: 'populate-write' }));
  k.run(k.madvise({ map: name, advice: 'mergeable' }));
}

const mergeable = (k: Kernel, name: string, process = 'init') => mm(k, process).vmas.find((v) => v.name === name)!.flags.mergeable ?? false;
const pfn = (k: Kernel, map: string, page: number, process?: string) => k.pfnOf({ map, page, ...(process ? { process } : {}) })!;
const pte = (k: Kernel, map: string, page: number, process = 'init') => k.vm.lookup(mm(k, process), mm(k, process).ranges.get(map)!.start + page)!.pte;

describe('prctl(PR_SET_MEMORY_MERGE) (ksm_enable_merge_any / ksm_disable_merge_any)', () => {
  it('is an unknown option before v6.4: set and get both fail with EINVAL', () => {
    const k = kernel('v6.3');
    expect(() => k.run(k.prctl({ memoryMerge: true }))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => k.ksm.memoryMerge(mm(k))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('marks every compatible VMA, present and future, VM_MERGEABLE; a shared mapping is left alone; ksmd then merges', () => {
    const k = kernel('v6.6');
    filled(k, 'a', ['x', 'x']);
    filled(k, 's', ['x'], { shared: true });
    expect(k.ksm.memoryMerge(mm(k))).toBe(false);
    k.run(k.prctl({ memoryMerge: true }));
    expect(k.ksm.memoryMerge(mm(k))).toBe(true);
    expect([mergeable(k, 'a'), mergeable(k, 's')]).toEqual([true, false]);
    // a later mmap: mmap_region() -> ksm_add_vma()
    filled(k, 'b', ['x']);
    expect(mergeable(k, 'b')).toBe(true);
    k.run(k.ksmMerge({}));
    // scan 2: a[0] enters the unstable tree, a[1] becomes the KSM page and a[0] maps it, b[0]
    // matches it in the stable tree; the shared (shmem) page is not anonymous and stays
    const kpage = pfn(k, 'a', 1);
    expect([pfn(k, 'a', 0), pfn(k, 'b', 0)]).toEqual([kpage, kpage]);
    expect(k.ksm.isKsm(kpage)).toBe(true);
    expect(k.folios.rc(kpage)).toBe(3);
    expect(k.ksm.mergingPages(mm(k))).toBe(3);
  });

  it('PR_SET_MEMORY_MERGE=0 unmerges every VMA and clears VM_MERGEABLE (24139c07f413): a private read-only copy per page', () => {
    const k = kernel('latest');
    filled(k, 'a', ['x', 'x', 'x']);
    k.run(k.prctl({ memoryMerge: true }));
    k.run(k.ksmMerge({}));
    const kpage = pfn(k, 'a', 0);
    expect(k.folios.rc(kpage)).toBe(3);
    k.run(k.prctl({ memoryMerge: false }));
    expect(k.ksm.memoryMerge(mm(k))).toBe(false);
    expect(mergeable(k, 'a')).toBe(false);
    const now = [0, 1, 2].map((i) => pfn(k, 'a', i));
    expect(new Set(now).size).toBe(3);
    expect(now.some((p) => k.ksm.isKsm(p))).toBe(false);
    expect(k.pages.rc[k.pages.slot(kpage)]).toBe(0);
    // break_ksm() faults FAULT_FLAG_UNSHARE (v6.1+): the copies are mapped read-only
    expect(pte(k, 'a', 0).write).toBe(false);
    // the rmap_items stay listed until ksmd passes: no VM_MERGEABLE VMA is left, so the next scan
    // frees them (the KSM page is gone: its stable node is stale) and drops the mm from its list
    expect(k.ksm.mergingPages(mm(k))).toBe(3);
    k.run(k.ksmMerge({ scans: 1 }));
    expect(k.ksm.mergingPages(mm(k))).toBe(0);
  });

  it('fork: the child inherits MMF_VM_MERGE_ANY (ksm_fork) and its new mappings are mergeable', () => {
    const k = kernel('v6.6');
    k.run(k.prctl({ memoryMerge: true }));
    k.run(k.fork({ as: 'child' }));
    expect(k.ksm.memoryMerge(mm(k, 'child'))).toBe(true);
    filled(k, 'c', ['z', 'z'], { process: 'child' });
    expect(mergeable(k, 'c', 'child')).toBe(true);
    k.run(k.ksmMerge({}));
    expect(pfn(k, 'c', 0, 'child')).toBe(pfn(k, 'c', 1, 'child'));
    expect(k.ksm.mergingPages(mm(k, 'child'))).toBe(2);
  });

  it('a full scan that finds no VM_MERGEABLE VMA drops the mm and, until v6.19, MMF_VM_MERGE_ANY with it', () => {
    for (const [v, kept] of [['v6.6', false], ['v6.15', false], ['latest', true]] as const) {
      const k = kernel(v);
      k.run(k.spawn({ as: 'p' }));
      k.run(k.prctl({ memoryMerge: true, process: 'p' })); // p has no VMA yet
      k.run(k.ksmMerge({ scans: 1 }));
      expect(k.ksm.memoryMerge(mm(k, 'p')), v).toBe(kept);
      // a later mmap is marked only where the flag survived; v6.19's ksm_vma_flags() re-enters the mm
      filled(k, 'm', ['q', 'q'], { process: 'p' });
      expect(mergeable(k, 'm', 'p'), v).toBe(kept);
      k.run(k.ksmMerge({}));
      expect(pfn(k, 'm', 0, 'p') === pfn(k, 'm', 1, 'p'), v).toBe(kept);
    }
  });
});

describe('ksm_merging_pages per mm (stable_tree_append / remove_rmap_item_from_tree) and fork', () => {
  it('counts every rmap_item in the stable tree: both pages try_to_merge_two_pages() merged and each later match', () => {
    const k = kernel('v6.1');
    filled(k, 'm', ['x', 'x', 'x', 'y']);
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({ scans: 1 }));
    expect(k.ksm.mergingPages(mm(k))).toBe(0); // the first scan only records checksums
    k.run(k.ksmMerge({ scans: 1 }));
    expect(k.ksm.mergingPages(mm(k))).toBe(3); // 'y' sits alone in the unstable tree
  });

  it('does not exist before v5.19 (7609385337a4): ENOENT', () => {
    const k = kernel('v5.10');
    expect(() => k.ksm.mergingPages(mm(k))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('fork copies the counter with the mm_struct until v6.18 (4d6fc29f3634) zeroes it; ksmd then lists the child\'s forked KSM pages', () => {
    for (const [v, atFork, afterScan] of [['v6.15', 3, 6], ['latest', 0, 3]] as const) {
      const k = kernel(v);
      filled(k, 'm', ['x', 'x', 'x']);
      k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
      k.run(k.ksmMerge({}));
      k.run(k.fork({ as: 'child' }));
      // dup_mm() memcpy: v6.15's child claims the parent's 3 though it owns no rmap_item
      expect(k.ksm.mergingPages(mm(k, 'child')), v).toBe(atFork);
      k.run(k.ksmMerge({ scans: 1 }));
      // cmp_and_merge_page() on the child's 3 PTEs of the KSM page: try_to_merge_one_page() says
      // 0 ("ksm page forked") and stable_tree_append() counts each: 3 + 3 on v6.15, 0 + 3 on latest
      expect(k.ksm.mergingPages(mm(k, 'child')), v).toBe(afterScan);
      expect(k.ksm.mergingPages(mm(k)), v).toBe(3);
    }
  });
});

describe('use_zero_pages and ksm_zero_pages', () => {
  /** `n` zero-filled pages (MADV_POPULATE_WRITE), MADV_MERGEABLE, two scans with use_zero_pages on. */
  function zeroMerged(k: Kernel, n: number): number[] {
    zeroFilledMergeable(k, 'z', n);
    const before = Array.from({ length: n }, (_, i) => pfn(k, 'z', i));
    k.run(k.ksmMerge({ useZeroPages: true }));
    return before;
  }

  it('maps each zero-filled page to the shared zero page (no reference), marked dirty and counted from v6.6', () => {
    const k = kernel('v6.6');
    const before = zeroMerged(k, 4);
    expect([0, 1, 2, 3].map((i) => pfn(k, 'z', i))).toEqual([k.zeroPfn, k.zeroPfn, k.zeroPfn, k.zeroPfn]);
    expect(pte(k, 'z', 0)).toMatchObject({ special: true, dirty: true, write: false });
    expect(k.pages.rc[k.pages.slot(before[0]!)]).toBe(0);
    expect(k.ksm.zeroPages(mm(k))).toBe(4);
    expect(k.ksm.zeroPagesTotal).toBe(4);
    // no rmap_item joins the stable tree for a zero-page merge
    expect(k.ksm.mergingPages(mm(k))).toBe(0);
  });

  it('MADV_UNMERGEABLE unshares KSM zero pages (v6.6), a write fault copies one, a zap drops one: each uncounted', () => {
    const k = kernel('latest');
    zeroMerged(k, 4);
    k.run(k.madvise({ map: 'z', advice: 'unmergeable', length: 2 * PAGE }));
    // break_ksm() sees is_ksm_zero_pte(): FAULT_FLAG_UNSHARE -> wp_page_copy(), a read-only zeroed copy
    expect([0, 1].map((i) => pfn(k, 'z', i) === k.zeroPfn)).toEqual([false, false]);
    expect(pte(k, 'z', 0).write).toBe(false);
    expect(k.ksm.zeroPages(mm(k))).toBe(2);
    // unmerge_ksm_pages() only covers the range: VM_MERGEABLE is cleared there (the VMA split)
    k.run(k.write({ map: 'z', page: 3, data: 'w' }));
    expect(k.ksm.zeroPages(mm(k))).toBe(1);
    k.run(k.madvise({ map: 'z', advice: 'dontneed', offset: 2 * PAGE, length: PAGE }));
    expect(k.ksm.zeroPages(mm(k))).toBe(0);
    expect(k.ksm.zeroPagesTotal).toBe(0);
  });

  it('before v6.6 a KSM zero page is an ordinary zero-page PTE: no counter, and MADV_UNMERGEABLE leaves it', () => {
    const k = kernel('v6.3');
    zeroMerged(k, 2);
    expect(pte(k, 'z', 0)).toMatchObject({ special: true, dirty: false });
    expect(() => k.ksm.zeroPages(mm(k))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    k.run(k.madvise({ map: 'z', advice: 'unmergeable' }));
    expect([pfn(k, 'z', 0), pfn(k, 'z', 1)]).toEqual([k.zeroPfn, k.zeroPfn]);
  });

  it('fork: the child keeps the parent\'s ksm_zero_pages (its PTEs do map them); v6.18 adds them to the global count too', () => {
    for (const [v, total, afterChildExit] of [['v6.15', 4, 0], ['latest', 8, 4]] as const) {
      const k = kernel(v);
      zeroMerged(k, 4);
      k.run(k.fork({ as: 'child' }));
      expect(k.ksm.zeroPages(mm(k, 'child')), v).toBe(4);
      expect(k.ksm.zeroPagesTotal, v).toBe(total);
      // the child's exit zaps its 4 KSM zero PTEs: ksm_might_unmap_zero_page() decrements both
      // counters, so v6.15's global count says 0 while the parent still maps 4
      k.run(k.exit({ process: 'child' }));
      expect(k.ksm.zeroPagesTotal, v).toBe(afterChildExit);
    }
  });
});

describe('cmp_and_merge_page() order per release', () => {
  it('a page first seen by ksmd merges into an existing KSM page at once up to v6.10; from v6.11 its checksum must settle first', () => {
    for (const [v, atOnce] of [['v6.6', true], ['v6.15', false], ['latest', false]] as const) {
      const k = kernel(v);
      filled(k, 'm', ['x', 'x']);
      k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
      k.run(k.ksmMerge({})); // m[1] is the KSM page
      filled(k, 'n', ['x']);
      k.run(k.madvise({ map: 'n', advice: 'mergeable' }));
      k.run(k.ksmMerge({ scans: 1 }));
      // v6.6: stable_tree_search() comes first and finds m's KSM page; v6.11 ("mm/ksm: don't
      // waste time searching stable tree for fast changing page") only records n[0]'s checksum
      expect(pfn(k, 'n', 0) === pfn(k, 'm', 1), v).toBe(atOnce);
      k.run(k.ksmMerge({ scans: 1 }));
      expect(pfn(k, 'n', 0), v).toBe(pfn(k, 'm', 1));
    }
  });
});

describe('execve() and PR_SET_MEMORY_MERGE (ksm_execve)', () => {
  it('the setting is lost on exec before v6.7, kept but never scanned on v6.7-v6.9, kept and scanned from v6.10', () => {
    for (const [v, kept] of [['v6.6', false], ['v6.15', true], ['latest', true]] as const) {
      const k = kernel(v);
      k.run(k.prctl({ memoryMerge: true }));
      filled(k, 'old', ['x']);
      k.run(k.fork({ as: 'child' }));
      k.run(k.exec({ process: 'child' }));
      // the new program has none of the old mappings (exit_mmap of the old mm)
      expect(() => k.run(k.read({ map: 'old', page: 0, process: 'child' })), v).toThrow();
      expect(k.ksm.memoryMerge(mm(k, 'child')), v).toBe(kept);
      expect(k.ksm.mergingPages(mm(k, 'child')), v).toBe(0);
      filled(k, 'm', ['q', 'q'], { process: 'child' });
      k.run(k.ksmMerge({}));
      expect(pfn(k, 'm', 0, 'child') === pfn(k, 'm', 1, 'child'), v).toBe(kept);
      // the parent is untouched
      expect(k.run(k.read({ map: 'old', page: 0 })), v).toBe('x');
    }
  });
});

describe('max_page_sharing (stable_node chains)', () => {
  it('a KSM page takes 256 rmap_items; the next identical pages start a second KSM page of the content', () => {
    const k = kernel();
    zeroFilledMergeable(k, 'm', 600);
    k.run(k.ksmMerge({}));
    // scan 2: pages 0 and 1 make KSM page A (page 1), 2..255 join it: 256. Page 256 finds A full,
    // enters the unstable tree, 257 merges with it: KSM page B (page 257), the chain's new head;
    // 258..511 join B: 256. Page 512 finds both full: 512 + 513 make C (page 513), 514..599 join: 88
    const a = pfn(k, 'm', 1);
    const b = pfn(k, 'm', 257);
    const c = pfn(k, 'm', 513);
    expect([0, 255].map((i) => pfn(k, 'm', i))).toEqual([a, a]);
    expect([256, 511].map((i) => pfn(k, 'm', i))).toEqual([b, b]);
    expect([512, 599].map((i) => pfn(k, 'm', i))).toEqual([c, c]);
    expect([k.folios.rc(a), k.folios.rc(b), k.folios.rc(c)]).toEqual([256, 256, 88]);
    expect(k.ksm.mergingPages(mm(k))).toBe(600);
  });

  it('a search takes the first candidate in chain order: a new page of the content joins the head B, not A with room again', () => {
    const k = kernel();
    zeroFilledMergeable(k, 'm', 300);
    k.run(k.ksmMerge({}));
    const a = pfn(k, 'm', 1);
    const b = pfn(k, 'm', 257);
    expect([k.folios.rc(a), k.folios.rc(b)]).toEqual([256, 44]);
    // the zap drops the PTEs; the rmap_items go when ksmd no longer finds a page there
    k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: 10 * PAGE, length: 10 * PAGE }));
    k.run(k.ksmMerge({ scans: 1 }));
    // a new zero-filled page: two scans (its checksum settles), then the chain's head B, a
    // candidate, takes it (stable_node_dup(): first candidate in chain order)
    zeroFilledMergeable(k, 'n', 1);
    k.run(k.ksmMerge({}));
    expect(pfn(k, 'n', 0)).toBe(b);
    expect([k.folios.rc(a), k.folios.rc(b)]).toEqual([246, 45]);
  });
});

describe('echo 2 > /sys/kernel/mm/ksm/run (unmerge_and_remove_all_rmap_items)', () => {
  it('unmerges every KSM page of every listed process, frees the rmap_items, keeps VM_MERGEABLE; two scans merge again', () => {
    const k = kernel();
    filled(k, 'a', ['x', 'x', 'x']);
    k.run(k.madvise({ map: 'a', advice: 'mergeable' }));
    k.run(k.spawn({ as: 'p' }));
    filled(k, 'b', ['x'], { process: 'p' });
    k.run(k.madvise({ map: 'b', advice: 'mergeable', process: 'p' }));
    k.run(k.ksmMerge({}));
    const kpage = pfn(k, 'a', 1);
    expect(k.folios.rc(kpage)).toBe(4);
    expect([k.ksm.mergingPages(mm(k)), k.ksm.mergingPages(mm(k, 'p'))]).toEqual([3, 1]);
    k.run(k.ksmUnmerge({}));
    const now = [0, 1, 2].map((i) => pfn(k, 'a', i)).concat(pfn(k, 'b', 0, 'p'));
    expect(new Set(now).size).toBe(4);
    expect(k.pages.rc[k.pages.slot(kpage)]).toBe(0);
    expect([k.ksm.mergingPages(mm(k)), k.ksm.mergingPages(mm(k, 'p'))]).toEqual([0, 0]);
    expect([mergeable(k, 'a'), mergeable(k, 'b', 'p')]).toEqual([true, true]);
    // the oldchecksums went with the rmap_items: one scan records them again, the second merges
    k.run(k.ksmMerge({ scans: 1 }));
    expect(pfn(k, 'a', 0)).not.toBe(pfn(k, 'a', 1));
    k.run(k.ksmMerge({ scans: 1 }));
    expect(pfn(k, 'a', 0)).toBe(pfn(k, 'b', 0, 'p'));
    expect(k.ksm.mergingPages(mm(k))).toBe(3);
  });
});

describe('MADV_COLLAPSE of KSM zero pages', () => {
  it('uncounts the KSM zero-page PTEs it replaces (__collapse_huge_page_copy_succeeded -> ksm_might_unmap_zero_page)', () => {
    const k = kernel();
    const n = k.vm.pmdPages;
    // a PMD-aligned range: half zero-filled pages KSM maps to the zero page, the other half written
    k.run(k.mmap({ anon: true, length: 2 * n * PAGE, write: true, as: 't' }));
    const start = mm(k).ranges.get('t')!.start;
    const off = (Math.ceil(start / n) * n - start) * PAGE;
    k.run(k.madvise({ map: 't', advice: 'nohugepage' }));
    k.run(k.madvise({ map: 't', advice: 'populate-write', offset: off, length: (n / 2) * PAGE }));
    for (let i = n / 2; i < n; i++) k.run(k.write({ map: 't', page: off / PAGE + i, data: `d${i}` }));
    k.run(k.madvise({ map: 't', advice: 'mergeable', offset: off, length: n * PAGE }));
    k.run(k.ksmMerge({ useZeroPages: true }));
    expect(k.ksm.zeroPages(mm(k))).toBe(n / 2);
    k.run(k.madvise({ map: 't', advice: 'hugepage', offset: off, length: n * PAGE }));
    k.run(k.madvise({ map: 't', advice: 'collapse', offset: off, length: n * PAGE }));
    expect(k.vm.lookup(mm(k), start + off / PAGE)!.pte.level).toBe('pmd');
    expect(k.ksm.zeroPages(mm(k))).toBe(0);
    expect(k.ksm.zeroPagesTotal).toBe(0);
  });
});

describe('smart scan (should_skip_rmap_item, v6.7)', () => {
  it('a page that keeps failing to merge is skipped: a twin written later merges a scan later than before v6.7', () => {
    // x and y never match; y turns into x after 5 scans. Up to v6.6 the next two scans merge them
    // (the first records y's new checksum). From v6.7 ksmd ages both by one per visit: visits 1-3
    // look (age < 3), visit 4 (age 3) sets one skip, visit 5 skips; visit 6 (age 5) looks -- it
    // records y's new checksum -- and sets two skips, so visits 7 and 8 skip; visit 9 (age 8) looks
    // and merges
    const merged = (v: string, changedAfter = 5): number => {
      const k = kernel(v);
      filled(k, 'm', ['x', 'y']);
      k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
      k.run(k.ksmMerge({ scans: changedAfter }));
      k.run(k.write({ map: 'm', page: 1, data: 'x' }));
      for (let scan = changedAfter + 1; scan <= 40; scan++) {
        k.run(k.ksmMerge({ scans: 1 }));
        if (pfn(k, 'm', 0) === pfn(k, 'm', 1)) return scan;
      }
      return 0;
    };
    // v6.6: scan 6 records y's checksum, scan 7 merges
    expect(merged('v6.6')).toBe(7);
    expect(merged('latest')).toBe(9);
    expect(merged('v6.15')).toBe(9);
    // changed after 13 scans: visit 9 (age 8) set four skips, 10-13 skipped; 14 (age 13) looks,
    // records the checksum and sets eight skips (skip_age > 8); 15-22 skip; 23 looks and merges
    expect(merged('latest', 13)).toBe(23);
    expect(merged('v6.6', 13)).toBe(15);
  });
});
