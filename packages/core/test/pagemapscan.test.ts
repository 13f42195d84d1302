import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';
import { pte } from './uffd-helpers.js';

// ioctl(PAGEMAP_SCAN) (mm/pagemapscan.ts) and UFFD_FEATURE_WP_ASYNC. The test arch is x86-64 (a
// uffd-wp PTE bit from v5.7); page counts are in 4 KiB pages. Each expected value is reasoned in a
// comment from fs/proc/task_mmu.c.

const PAGE = 4096;
type Scan = Parameters<Kernel['pagemapScan']>[0];

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** An anonymous mapping 'm' of `pages` pages, registered WP-only with a WP_ASYNC | WP_UNPOPULATED userfaultfd and write-protected. */
function tracked(k: Kernel, pages: number): void {
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: true, as: 'm' }));
  k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-unpopulated', 'wp-async'] }));
  k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
  k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
}

function scan(k: Kernel, a: Omit<Scan, 'map'> & { map?: string }) {
  return k.run(k.pagemapScan({ map: 'm', ...a }));
}

/** The regions as "page+pages[categories]" strings. */
function runs(k: Kernel, a: Omit<Scan, 'map'> & { map?: string }): string[] {
  return scan(k, a).regions.map((r) => `${r.page}+${r.pages}[${r.categories.join(',')}]`);
}

const W = ['written'] as const;

describe('PAGEMAP_SCAN arguments (pagemap_scan_get_args)', () => {
  it('is ENOTTY before v6.7: /proc/PID/pagemap has no ioctl', () => {
    const k = kernel('v6.6');
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    expect(code(() => scan(k, {}))).toBe('ENOTTY');
  });

  it('size, flags, category bits, alignment, end below start and vec_len without vec', () => {
    const k = kernel();
    tracked(k, 4);
    expect(code(() => scan(k, { size: 88 }))).toBe('EINVAL'); // sizeof(struct pm_scan_arg) is 96
    expect(code(() => scan(k, { flags: 4 }))).toBe('EINVAL'); // only bits 0 and 1 are flags
    expect(code(() => scan(k, { returnMask: 1 << 9 }))).toBe('EINVAL'); // GUARD (bit 8) is the last category
    expect(code(() => scan(k, { offset: 100 }))).toBe('EINVAL'); // start not page aligned
    expect(code(() => scan(k, { vec: false, vecLen: 1 }))).toBe('EINVAL');
    // an unaligned length is rounded up: 1 byte covers page 0
    expect(runs(k, { length: 1, returnMask: [...W] })).toEqual(['0+1[]']);
  });

  it('SOFT_DIRTY is a category from v6.8 and GUARD from v6.15: EINVAL in a mask before', () => {
    // no preset between v6.7 and v6.15: both exist in v6.15, neither before v6.7 (ENOTTY first)
    const k = kernel('v6.15');
    tracked(k, 1);
    expect(code(() => scan(k, { returnMask: ['soft-dirty', 'guard'] }))).toBe(null);
    expect(code(() => scan(k, { returnMask: 1 << 9 }))).toBe('EINVAL');
  });
});

describe('categories and runs', () => {
  it('markers are SWAPPED and not written; an async-resolved write is PRESENT and WRITTEN; runs merge by categories', () => {
    const k = kernel();
    tracked(k, 6);
    k.run(k.write({ map: 'm', page: 1, data: 'a' }));
    k.run(k.write({ map: 'm', page: 2, data: 'b' }));
    // no handler ran: do_wp_page() cleared the bit of the new page's PTE (WP_ASYNC)
    expect(pte(k, 'm', 1)?.uffdWp).toBeUndefined();
    // pages 0, 3-5 hold PTE_MARKER_UFFD_WP (WP_UNPOPULATED): is_swap_pte(), pte_swp_uffd_wp_any()
    expect(runs(k, { returnMask: ['wpallowed', 'written', 'present', 'swapped'] })).toEqual([
      '0+1[wpallowed,swapped]', '1+2[wpallowed,written,present]', '3+3[wpallowed,swapped]',
    ]);
  });

  it('max_pages cuts a run and sets walk_end; a full vec stops at the next run', () => {
    const k = kernel();
    tracked(k, 8);
    for (const p of [0, 1, 2, 5, 6]) k.run(k.write({ map: 'm', page: p, data: 'x' }));
    // 3 pages: the run 0-2 fills max_pages exactly; the next written page (5) is cut to nothing
    const r = scan(k, { maxPages: 3, categoryMask: [...W], returnMask: [...W] });
    expect([r.regions.length, r.walkEnd]).toEqual([1, 5]);
    // vec of one run: the second run (5-6) has no room, walk_end is where it would start
    const v = scan(k, { vecLen: 1, categoryMask: [...W], returnMask: [...W] });
    expect([v.regions.map((x) => x.pages), v.walkEnd]).toEqual([[3], 5]);
    // nothing stopped the walk: walk_end is the end (8)
    expect(scan(k, { categoryMask: [...W], returnMask: [...W] }).walkEnd).toBe(8);
  });

  it('PM_SCAN_WP_MATCHING protects exactly what it reported', () => {
    const k = kernel();
    tracked(k, 4);
    for (const p of [0, 1, 2, 3]) k.run(k.write({ map: 'm', page: p, data: 'y' }));
    // max_pages 2: pages 0-1 reported and re-armed, 2-3 stay written
    expect(runs(k, { flags: ['wp-matching', 'check-wpasync'], maxPages: 2, categoryMask: [...W], returnMask: [...W] })).toEqual(['0+2[written]']);
    expect([0, 1, 2, 3].map((p) => pte(k, 'm', p)?.uffdWp === true)).toEqual([true, true, false, false]);
    expect(pte(k, 'm', 0)?.write).toBe(false); // pte_mkuffd_wp() write-protects on x86
  });
});

describe('VMAs without async write-protection (pagemap_scan_test_walk)', () => {
  it('CHECK_WPASYNC is EPERM, WP_MATCHING alone skips the VMA, a plain scan reports it', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'z' }));
    expect(code(() => scan(k, { flags: ['check-wpasync'] }))).toBe('EPERM');
    expect(runs(k, { flags: ['wp-matching'], categoryMask: [...W], returnMask: [...W] })).toEqual([]);
    expect(pte(k, 'm', 0)?.uffdWp).toBeUndefined();
    // page 0 present and written; page 1: no entry in the PTE table page 0 made, pte_none ->
    // WRITTEN in latest (07b4377bdbe7), so one run of two written pages
    expect(runs(k, { returnMask: ['written', 'present'] })).toEqual(['0+1[written,present]', '1+1[written]']);
  });

  it('v6.15: a pte_none is nothing to the generic path but written to the PAGE_IS_WRITTEN fast path', () => {
    const k = kernel('v6.15');
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'z' }));
    expect(runs(k, { returnMask: ['written', 'present'] })).toEqual(['0+1[written,present]', '1+1[]']);
    // the fast path (category_mask == return_mask == WRITTEN) counts what is not uffd-wp
    expect(runs(k, { categoryMask: [...W], returnMask: [...W] })).toEqual(['0+2[written]']);
    // the same query through anyof takes the generic path: page 1 drops out
    expect(runs(k, { anyofMask: [...W], returnMask: [...W] })).toEqual(['0+1[written]']);
  });

  it('a PMD span with no PTE table is a hole: the VMA categories only, written in a uffd-wp VMA from 40de8160ca7f (latest)', () => {
    for (const [version, want] of [['v6.15', []], ['latest', ['0+512[written]']]] as const) {
      const k = kernel(version);
      // 512 pages = one PMD span; registered, never written or protected: no table anywhere
      k.run(k.mmap({ anon: true, length: 512 * PAGE, write: true, as: 'm' }));
      k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-async'] }));
      k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
      expect({ version, r: runs(k, { categoryMask: [...W], returnMask: [...W] }) }).toEqual({ version, r: want });
    }
  });
});

describe('UFFD_FEATURE_WP_ASYNC', () => {
  it('exists from v6.7 (EINVAL in v6.6); a WP-only registration with it succeeds', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    expect(code(() => kernel('v6.6').run(kernel('v6.6').uffdApi({ features: ['wp-async'] })))).toBe('EINVAL');
    k.run(k.uffdApi({ features: ['wp-async'] }));
    expect(code(() => k.run(k.uffdRegister({ map: 'm', mode: ['wp'] })))).toBe(null);
  });

  it('a write to a uffd-wp page neither blocks nor queues a message: the bit is cleared and the write lands', () => {
    const k = kernel();
    tracked(k, 1);
    k.run(k.write({ map: 'm', page: 0, data: 'q' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('q');
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
  });
});

describe('huge entries', () => {
  /** 'm': 1024 pages (two PMD spans), MADV_HUGEPAGE, both THPs faulted in by a write, then tracked. */
  function thps(k: Kernel): void {
    k.run(k.mmap({ anon: true, length: 1024 * PAGE, write: true, as: 'm' }));
    k.run(k.madvise({ map: 'm', advice: 'hugepage' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.write({ map: 'm', page: 512, data: 'b' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-unpopulated', 'wp-async'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
  }

  it('a written THP matched in part under WP_MATCHING is split and only the reported half is armed (pagemap_scan_thp_entry)', () => {
    const k = kernel();
    thps(k);
    // registered, never protected: both PMDs written; max_pages 256 cuts the first PMD in half
    expect(runs(k, { flags: ['wp-matching', 'check-wpasync'], maxPages: 256, categoryMask: [...W], returnMask: [...W, 'huge'] })).toEqual(['0+256[written]']);
    // "Report as if there was no THP": the split PMD's PTEs are walked, so the run is not HUGE
    expect(pte(k, 'm', 0)?.level).toBe('pte');
    expect([0, 255, 256, 511].map((p) => pte(k, 'm', p)?.uffdWp === true)).toEqual([true, true, false, false]);
    // the second PMD was not reached: still one huge, written entry
    expect(pte(k, 'm', 512)?.level).toBe('pmd');
    expect(runs(k, { categoryMask: [...W], returnMask: [...W, 'huge'] })).toEqual(['256+256[written]', '512+512[written,huge]']);
  });

  it('a whole written THP is armed in place (make_uffd_wp_pmd) and stays one huge, clean run', () => {
    const k = kernel();
    thps(k);
    expect(runs(k, { flags: ['wp-matching', 'check-wpasync'], categoryMask: [...W], returnMask: [...W] })).toEqual(['0+1024[written]']);
    expect([pte(k, 'm', 0)?.level, pte(k, 'm', 0)?.uffdWp, pte(k, 'm', 0)?.write]).toEqual(['pmd', true, false]);
    expect(runs(k, { returnMask: ['written', 'present', 'huge'] })).toEqual(['0+1024[present,huge]']);
  });
});

describe('soft-dirty (v6.8)', () => {
  it('VM_SOFTDIRTY makes every page of a new VMA soft-dirty, holes too; after clear_refs only the written page is', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 1, data: 's' }));
    // a new VMA has VM_SOFTDIRTY (pagemap_scan_test_walk() adds the category to each page)
    expect(runs(k, { anyofMask: ['soft-dirty'], returnMask: ['soft-dirty'] })).toEqual(['0+4[soft-dirty]']);
    k.run(k.clearRefs({}));
    k.run(k.write({ map: 'm', page: 2, data: 't' }));
    // clear_refs dropped VM_SOFTDIRTY and page 1's bit; page 2's write fault set pte_soft_dirty (x86)
    expect(runs(k, { anyofMask: ['soft-dirty'], returnMask: ['soft-dirty', 'present'] })).toEqual(['2+1[present,soft-dirty]']);
  });
});
