import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// KSM (mm/ksm.ts, mm/ksm.c): MADV_MERGEABLE, ksmd's two full scans, write faults and unmerging.
// The test arch has 4 KiB pages; small mappings stay order-0 (THP mode `madvise`).
const PAGE = 4096;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** `pages` pages of private anonymous memory as `name`, page i written with data[i]. */
function filled(k: Kernel, name: string, data: string[], process?: string): void {
  k.run(k.mmap({ anon: true, length: data.length * PAGE, write: true, as: name, ...(process ? { process } : {}) }));
  data.forEach((d, page) => k.run(k.write({ map: name, page, data: d, ...(process ? { process } : {}) })));
}

function pfn(k: Kernel, map: string, page: number, process?: string): number {
  return k.pfnOf({ map, page, ...(process ? { process } : {}) })!;
}

function pte(k: Kernel, map: string, page: number, process = 'init') {
  const mm = k.processes.get(process)!;
  const origin = mm.ranges.get(map)!;
  return k.vm.lookup(mm, origin.start + page)!.pte;
}

/** filled() as 'm', MADV_MERGEABLE, then ksmd's two full scans. */
function merged(k: Kernel, data: string[]): void {
  filled(k, 'm', data);
  k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
  k.run(k.ksmMerge({}));
}

const counts = (k: Kernel, p: number) => [k.folios.rc(p), k.folios.mapcount(p)];

describe('ksmd merging (cmp_and_merge_page)', () => {
  it('merges identical pages of a MADV_MERGEABLE range into one read-only KSM page; the others are freed', () => {
    const k = kernel();
    filled(k, 'm', ['x', 'x', 'x', 'y']);
    const before = [0, 1, 2, 3].map((i) => pfn(k, 'm', i));
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    // scan 2 finds page 0 in the unstable tree when it reaches page 1: page 1 becomes the KSM
    // page (try_to_merge_two_pages) and page 0 maps it; page 2 then matches it in the stable tree
    const kpage = before[1]!;
    expect([0, 1, 2].map((i) => pfn(k, 'm', i))).toEqual([kpage, kpage, kpage]);
    expect(k.ksm.isKsm(kpage)).toBe(true);
    // one reference and one mapcount per PTE (replace_page: get_page + page_add_anon_rmap); the
    // stable node holds none (get_ksm_page's "keyhole reference")
    expect(counts(k, kpage)).toEqual([3, 3]);
    expect([0, 1, 2].map((i) => pte(k, 'm', i).write)).toEqual([false, false, false]);
    expect([0, 1, 2].map((i) => pte(k, 'm', i).dirty)).toEqual([false, false, false]);
    // pages 0 and 2 lost their only mapping and reference: freed
    expect(k.pages.rc[k.pages.slot(before[0]!)]).toBe(0);
    // the unique page is untouched: still exclusive, writable
    expect(pfn(k, 'm', 3)).toBe(before[3]);
    expect(pte(k, 'm', 3).write).toBe(true);
    expect(k.ksm.isKsm(before[3]!)).toBe(false);
  });

  it('one full scan only records checksums: nothing merges before the second (oldchecksum)', () => {
    const k = kernel();
    filled(k, 'm', ['x', 'x']);
    const before = [pfn(k, 'm', 0), pfn(k, 'm', 1)];
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({ scans: 1 }));
    expect([pfn(k, 'm', 0), pfn(k, 'm', 1)]).toEqual(before);
    k.run(k.ksmMerge({ scans: 1 }));
    expect(pfn(k, 'm', 0)).toBe(pfn(k, 'm', 1));
  });

  it('a page zapped between the scans loses its rmap_item and oldchecksum: refaulted with the same data it needs two scans again', () => {
    const k = kernel();
    filled(k, 'm', ['x', 'x']);
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({ scans: 1 }));
    k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: PAGE, length: PAGE }));
    k.run(k.ksmMerge({ scans: 1 })); // page 1 absent: its record is dropped
    k.run(k.write({ map: 'm', page: 1, data: 'x' }));
    k.run(k.ksmMerge({ scans: 1 })); // page 0 enters the unstable tree; page 1 only records its checksum
    expect(pfn(k, 'm', 0)).not.toBe(pfn(k, 'm', 1));
    k.run(k.ksmMerge({ scans: 1 }));
    expect(pfn(k, 'm', 0)).toBe(pfn(k, 'm', 1));
  });

  it('leaves pages without MADV_MERGEABLE, and a MADV_MERGEABLE of a shared mapping is ignored (ksm_madvise returns 0)', () => {
    const k = kernel();
    filled(k, 'm', ['x', 'x']);
    k.run(k.mmap({ anon: true, shared: true, length: PAGE, write: true, as: 's' }));
    k.run(k.madvise({ map: 's', advice: 'mergeable' }));
    expect(k.processes.get('init')!.vmas.find((v) => v.name === 's')!.flags.mergeable ?? false).toBe(false);
    k.run(k.ksmMerge({}));
    expect(pfn(k, 'm', 0)).not.toBe(pfn(k, 'm', 1));
  });

  it('skips a GUP-pinned page: write_protect_page() wants rc == mapcount (+ swap cache)', () => {
    const k = kernel();
    filled(k, 'm', ['x', 'x', 'x']);
    const before = [0, 1, 2].map((i) => pfn(k, 'm', i));
    k.run(k.gup({ map: 'm', page: 1, write: true, longterm: true, as: 'dma' }, true));
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    // page 1 (rc 1 + 1024, mapcount 1) is refused; 0 and 2 merge: page 2 is scanned later, so it
    // becomes the KSM page and page 0 maps it
    expect(pfn(k, 'm', 1)).toBe(before[1]);
    expect(pte(k, 'm', 1).write).toBe(true);
    expect(pfn(k, 'm', 0)).toBe(before[2]);
    expect(counts(k, before[2]!)).toEqual([2, 2]);
  });

  it('merges across processes: both registered mms are scanned in MADV_MERGEABLE order', () => {
    const k = kernel();
    k.run(k.spawn({ as: 'p2' }));
    filled(k, 'a', ['z']);
    filled(k, 'b', ['z'], 'p2');
    const b = pfn(k, 'b', 0, 'p2');
    k.run(k.madvise({ map: 'a', advice: 'mergeable' }));
    k.run(k.madvise({ map: 'b', advice: 'mergeable', process: 'p2' }));
    k.run(k.ksmMerge({}));
    // p2's page is scanned second: it becomes the KSM page
    expect(pfn(k, 'a', 0)).toBe(b);
    expect(counts(k, b)).toEqual([2, 2]);
  });
});

describe('ksmd and THPs (try_to_merge_one_page splits a large folio first)', () => {
  /** One PMD-mapped THP, subpage 0 written, 1..511 zero-filled, MADV_MERGEABLE, ksmd's two scans. */
  function zeroFilledThp(version: string): { k: Kernel; thp: number; start: number } {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, length: 512 * PAGE, write: true, as: 't' }));
    k.run(k.madvise({ map: 't', advice: 'hugepage' }));
    k.run(k.write({ map: 't', page: 0, data: 'head' }));
    const mm = k.processes.get('init')!;
    const start = mm.ranges.get('t')!.start;
    expect(k.vm.lookup(mm, start)!.pte.level).toBe('pmd');
    const thp = pfn(k, 't', 0);
    k.run(k.madvise({ map: 't', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    return { k, thp, start };
  }

  it('v6.6: the split of a THP whose two subpages matched comes after the failed merge; the later pages merge (max_page_sharing 256, a chain dup)', () => {
    const { k, thp, start } = zeroFilledThp('v6.6');
    const mm = k.processes.get('init')!;
    // scan 2: subpage 1 enters the unstable tree. Subpage 2 matches it, but both are in the THP:
    // get_mergeable_page() holds a reference on the tree page, a second one on the folio, so
    // try_to_merge_one_page()'s split_huge_page() fails and nothing merges; cmp_and_merge_page()
    // then drops that reference and splits the THP (its `split` case): 512 order-0 folios, no
    // merge for subpage 2 this scan. Subpage 3 matches subpage 1 (order 0 now) and becomes the
    // KSM page, 1 maps it; 4..257 join it in the stable tree: 256 rmap_items, max_page_sharing.
    // 258 finds it full and enters the unstable tree, 259 merges with it into a second KSM page of
    // the content (a chain dup), which 260..511 join: 254. Before v6.12 the split maps nothing to
    // the zero page (no RMP_USE_SHARED_ZEROPAGE).
    expect(k.vm.lookup(mm, start)!.pte.level).toBe('pte');
    const kpage = thp + 3;
    const dup = thp + 259;
    expect([1, 3, 257, 258, 259, 511].map((i) => pfn(k, 't', i))).toEqual([kpage, kpage, kpage, dup, dup, dup]);
    expect(counts(k, kpage)).toEqual([256, 256]);
    expect(counts(k, dup)).toEqual([254, 254]);
    expect([k.ksm.isKsm(kpage), k.ksm.isKsm(dup), k.ksm.isKsm(thp + 2)]).toEqual([true, true, false]);
    // subpage 2 stays apart, an order-0 folio of its own, until a later scan
    expect([pfn(k, 't', 2), k.folios.order(thp + 2), ...counts(k, thp + 2)]).toEqual([thp + 2, 0, 1, 1]);
    expect(k.ksm.mergingPages(mm)).toBe(510);
    expect(pfn(k, 't', 0)).toBe(thp);
    expect(counts(k, thp)).toEqual([1, 1]);
    expect(k.run(k.read({ map: 't', page: 0 }))).toBe('head');
  });

  it('latest (v6.12+): that split maps the zero-filled subpages to the shared zero page, so KSM has nothing left to merge', () => {
    const { k, thp, start } = zeroFilledThp('latest');
    const mm = k.processes.get('init')!;
    // the same failed merge and split at subpage 2, but __split_huge_page() remaps with
    // RMP_USE_SHARED_ZEROPAGE (b1f202060afe, v6.12): subpages 1..511 are zero-filled, so each
    // maps the shared zero page and is freed; the scan finds no anonymous page at 3..511
    // (folio_walk_start() without FW_ZEROPAGE) and the unstable tree's subpage 1 is gone
    expect(k.vm.lookup(mm, start)!.pte.level).toBe('pte');
    expect([1, 2, 3, 511].map((i) => pfn(k, 't', i))).toEqual([k.zeroPfn, k.zeroPfn, k.zeroPfn, k.zeroPfn]);
    expect([1, 2, 511].map((i) => k.ram.live.has(thp + i))).toEqual([false, false, false]);
    expect(k.ksm.mergingPages(mm)).toBe(0);
    expect(k.rssAnonIn({})).toBe(4); // kB: subpage 0 alone
    expect([pfn(k, 't', 0), ...counts(k, thp)]).toEqual([thp, 1, 1]);
    expect(k.run(k.read({ map: 't', page: 0 }))).toBe('head');
  });

  it('leaves a pinned THP whole: split_huge_page() refuses it (can_split_folio)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 512 * PAGE, write: true, as: 't' }));
    k.run(k.madvise({ map: 't', advice: 'hugepage' }));
    k.run(k.write({ map: 't', page: 0, data: 'head' }));
    k.run(k.gup({ map: 't', page: 0, write: true, longterm: true, as: 'dma' }, true));
    const thp = pfn(k, 't', 0);
    k.run(k.madvise({ map: 't', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    const mm = k.processes.get('init')!;
    expect(k.vm.lookup(mm, mm.ranges.get('t')!.start)!.pte.level).toBe('pmd');
    expect(pfn(k, 't', 5)).toBe(thp + 5);
  });
});

describe('faults on a KSM page (do_wp_page)', () => {
  it('a write copies the KSM page, also when this PTE is its last mapping (latest)', () => {
    const k = kernel();
    merged(k, ['x', 'x']);
    const kpage = pfn(k, 'm', 0);
    k.run(k.write({ map: 'm', page: 0, data: 'w' }));
    expect(pfn(k, 'm', 0)).not.toBe(kpage);
    expect(counts(k, kpage)).toEqual([1, 1]);
    // now mapped once with rc 1: wp_can_reuse_anon_folio() still refuses folio_test_ksm()
    k.run(k.write({ map: 'm', page: 1, data: 'v' }));
    expect(pfn(k, 'm', 1)).not.toBe(kpage);
    expect(k.pages.rc[k.pages.slot(kpage)]).toBe(0);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('v');
  });

  it('v5.4 reuses a KSM page mapped by this PTE alone (reuse_ksm_page), copying while it is shared', () => {
    const k = kernel('v5.4');
    merged(k, ['x', 'x']);
    const kpage = pfn(k, 'm', 0);
    k.run(k.write({ map: 'm', page: 0, data: 'w' })); // rc 2: copied
    expect(pfn(k, 'm', 0)).not.toBe(kpage);
    k.run(k.write({ map: 'm', page: 1, data: 'v' })); // rc 1, not swap cache: reused, no longer KSM
    expect(pfn(k, 'm', 1)).toBe(kpage);
    expect(k.ksm.isKsm(kpage)).toBe(false);
    expect(counts(k, kpage)).toEqual([1, 1]);
  });

  it('v5.10 copies even the last mapping of a KSM page (09854ba94c6a: PageKsm || page_count != 1)', () => {
    const k = kernel('v5.10');
    merged(k, ['x', 'x']);
    const kpage = pfn(k, 'm', 0);
    k.run(k.write({ map: 'm', page: 0, data: 'w' }));
    k.run(k.write({ map: 'm', page: 1, data: 'v' }));
    expect(pfn(k, 'm', 1)).not.toBe(kpage);
  });

  it('fork shares the KSM page: each PTE of both processes holds a reference', () => {
    const k = kernel();
    merged(k, ['x', 'x']);
    const kpage = pfn(k, 'm', 0);
    k.run(k.fork({ as: 'child' }));
    expect(pfn(k, 'm', 0, 'child')).toBe(kpage);
    expect(counts(k, kpage)).toEqual([4, 4]);
    // the child inherited VM_MERGEABLE and was entered into ksmd's list (ksm_fork)
    expect(k.processes.get('child')!.vmas.find((v) => v.name === 'm')!.flags.mergeable).toBe(true);
  });

  it('a R/O longterm pin unshares a KSM page from v5.19 (gup_must_unshare: not PageAnonExclusive); v5.10 pins the KSM page itself', () => {
    for (const [v, unshared] of [['latest', true], ['v6.1', true], ['v5.10', false]] as const) {
      const k = kernel(v);
      merged(k, ['x', 'x']);
      const kpage = pfn(k, 'm', 0);
      k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
      expect(pfn(k, 'm', 0) !== kpage, v).toBe(unshared);
      // unshared: the KSM page keeps page 1's mapping only; else it carries the pin bias too
      expect(k.folios.rc(kpage), v).toBe(unshared ? 1 : 2 + 1024);
    }
  });
});

describe('MADV_UNMERGEABLE (unmerge_ksm_pages -> break_ksm)', () => {
  it('copies every KSM page of the range back to a private page; read-only from v6.2 (FAULT_FLAG_UNSHARE, 6cce3314b928), writable before', () => {
    for (const [v, writable] of [['latest', false], ['v6.3', false], ['v6.1', true], ['v5.10', true]] as const) {
      const k = kernel(v);
      merged(k, ['x', 'x', 'x']);
      const kpage = pfn(k, 'm', 0);
      k.run(k.madvise({ map: 'm', advice: 'unmergeable' }));
      const now = [0, 1, 2].map((i) => pfn(k, 'm', i));
      expect(new Set(now).size, v).toBe(3);
      expect(now.some((p) => k.ksm.isKsm(p)), v).toBe(false);
      expect(k.pages.rc[k.pages.slot(kpage)], v).toBe(0);
      expect(pte(k, 'm', 0).write, v).toBe(writable);
      expect(k.run(k.read({ map: 'm', page: 2 })), v).toBe('x');
      expect(k.processes.get('init')!.vmas[0]!.flags.mergeable, v).toBe(false);
    }
  });
});
