import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { PG } from '../src/mm/pages.js';
import { testArch } from '../src/testing.js';

// Anonymous THP (mm/thp.ts): values reasoned from mm/huge_memory.c per release. The test arch has
// 4 KiB pages and 2 MiB PMDs, so HPAGE_PMD_NR = 512 and HPAGE_PMD_ORDER = 9.
const NR = 512;

function kernel(version: string, features: Record<string, unknown> = {}): Kernel {
  return createKernel({ arch: testArch(), kernel: version, features });
}

/** cow.c do_run_with_thp(): a 4 MiB mapping, MADV_HUGEPAGE on its PMD-aligned second half, mem[0] = 1. */
function thp(k: Kernel, process?: string): number {
  k.run(k.mmap({ anon: true, length: 4 * 2 ** 20, write: true, as: 'mem', ...(process ? { process } : {}) }));
  k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * 2 ** 20, length: 2 * 2 ** 20, ...(process ? { process } : {}) }));
  k.run(k.write({ map: 'mem', page: NR, data: 'A', ...(process ? { process } : {}) }));
  return k.pfnOf({ map: 'mem', page: NR, ...(process ? { process } : {}) })!;
}

function mapVpn(k: Kernel, page: number, process: string): number {
  const mm = k.processes.get(process)!;
  return mm.ranges.get('mem')!.start + page;
}
const leafLevel = (k: Kernel, page: number, process = 'init'): string | undefined => k.vm.lookup(k.processes.get(process)!, mapVpn(k, page, process))?.pte.level;
const subExclusive = (k: Kernel, pfn: number): boolean => (k.folios.flags(pfn) & PG.anonExclusive) !== 0;

describe('anonymous THP: the fault (do_huge_pmd_anonymous_page)', () => {
  it('a write fault in a PMD-aligned VM_HUGEPAGE range maps an order-9 folio by one PMD: rc 1, mapcount 1, exclusive', () => {
    const k = kernel('latest');
    const head = thp(k);
    expect(head % NR).toBe(0); // naturally aligned
    expect(k.folios.order(head)).toBe(9);
    expect(leafLevel(k, NR)).toBe('pmd');
    // one folio reference and one (entire) mapping for the PMD, whatever the 511 other subpages
    expect(k.refcount(head)).toBe(1);
    expect(k.mapcount(head)).toBe(1);
    expect(k.anonExclusive(head)).toBe(true);
    // every subpage is populated by the one fault (cow.c's pagemap check of the last subpage)
    expect(k.pfnOf({ map: 'mem', page: 2 * NR - 1 })).toBe(head + NR - 1);
    expect(k.folios.folio(head + NR - 1)).toBe(head);
    // the unadvised first half stays on base pages
    k.run(k.write({ map: 'mem', page: 0, data: 'B' }));
    expect(leafLevel(k, 0)).toBe('pte');
    expect(k.folios.order(k.pfnOf({ map: 'mem', page: 0 })!)).toBe(0);
  });

  it('MADV_HUGEPAGE on part of a VMA splits it (madvise_update_vma); MADV_NOHUGEPAGE takes VM_HUGEPAGE away again', () => {
    const k = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4 * 2 ** 20, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * 2 ** 20, length: 2 * 2 ** 20 }));
    const mm = k.processes.get('init')!;
    expect(mm.vmas.map((v) => [v.pages, v.flags.hugepage])).toEqual([
      [NR, false],
      [NR, true],
    ]);
    k.run(k.madvise({ map: 'mem', advice: 'nohugepage', offset: 2 * 2 ** 20, length: 2 * 2 ** 20 }));
    k.run(k.write({ map: 'mem', page: NR, data: 'A' }));
    expect(leafLevel(k, NR)).toBe('pte');
  });

  it('no THP without a whole PMD-aligned range inside the VMA, or on an MMU without THP', () => {
    const k = kernel('latest');
    // a 2 MiB mapping at a PMD boundary, advised on its first 1 MiB only: transhuge_vma_suitable() fails
    k.run(k.mmap({ anon: true, length: 2 * 2 ** 20, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', length: 2 ** 20 }));
    k.run(k.write({ map: 'mem', page: 0, data: 'A' }));
    expect(leafLevel(k, 0)).toBe('pte');
    // has_transparent_hugepage() false (ppc64 hash with 4 KiB pages)
    const a = testArch();
    const n = createKernel({ arch: { ...a, mmu: { ...a.mmu, transparentHugepage: false } }, kernel: 'latest' });
    n.run(n.mmap({ anon: true, length: 2 * 2 ** 20, write: true, as: 'mem' }));
    n.run(n.madvise({ map: 'mem', advice: 'hugepage' }));
    n.run(n.write({ map: 'mem', page: 0, data: 'A' }));
    expect(n.vm.lookup(n.processes.get('init')!, n.processes.get('init')!.ranges.get('mem')!.start)?.pte.level).toBe('pte');
  });

  it('a read fault maps the huge zero page by a read-only PMD, no reference taken (use_zero_page = 1)', () => {
    const k = kernel('latest');
    k.run(k.mmap({ anon: true, length: 2 * 2 ** 20, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(k.run(k.read({ map: 'mem', page: 3 }))).toBe('');
    expect(leafLevel(k, 0)).toBe('pmd');
    expect(k.pfnOf({ map: 'mem', page: 3 })).toBe(k.hugeZeroPfn + 3);
    expect(k.isWritableIn({ map: 'mem', page: 3 })).toBe(false);
    // fork: the child maps it too (copy_huge_pmd: is_huge_zero_pmd)
    k.run(k.fork({ as: 'child' }));
    expect(k.pfnOf({ map: 'mem', page: 3, process: 'child' })).toBe(k.hugeZeroPfn + 3);
  });

  it('a write to the huge zero PMD: v5.4 maps a new zeroed THP; from v5.8 the PMD becomes 512 small-zero-page PTEs and the one page is COWed', () => {
    const write = (v: string): Kernel => {
      const k = kernel(v);
      k.run(k.mmap({ anon: true, length: 2 * 2 ** 20, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      k.run(k.read({ map: 'mem', page: 0 }));
      k.run(k.write({ map: 'mem', page: 5, data: 'W' }));
      return k;
    };
    const old = write('v5.4');
    expect(leafLevel(old, 5)).toBe('pmd');
    expect(old.folios.order(old.folios.folio(old.pfnOf({ map: 'mem', page: 5 })!))).toBe(9);
    expect(old.run(old.read({ map: 'mem', page: 6 }))).toBe('');
    for (const v of ['v5.10', 'latest']) {
      const k = write(v);
      expect(leafLevel(k, 5)).toBe('pte');
      expect(k.folios.order(k.pfnOf({ map: 'mem', page: 5 })!)).toBe(0);
      expect(k.pfnOf({ map: 'mem', page: 6 })).toBe(k.zeroPfn);
      expect(k.run(k.read({ map: 'mem', page: 5 }))).toBe('W');
    }
  });

  it('a R/O longterm pin of the huge zero page unshares first from v6.2 (gup-unshare cow-mapping): split, then an exclusive copy', () => {
    const pinned = (v: string): number => {
      const k = kernel(v);
      k.run(k.mmap({ anon: true, length: 2 * 2 ** 20, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      k.run(k.read({ map: 'mem', page: 0 }));
      return k.run(k.gup({ map: 'mem', page: 0, longterm: true, as: 'ro' }, true)).pfns[0]!;
    };
    const k = kernel('v6.3');
    expect(pinned('v6.1')).toBe(k.hugeZeroPfn);
    expect(pinned('v6.3')).not.toBe(k.hugeZeroPfn);
  });

  it('munmap of the whole THP frees all 512 pages (free of the folio, not of its head only)', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.munmap({ map: 'mem' }));
    for (const pfn of [head, head + 1, head + NR - 1]) expect(k.ram.live.has(pfn)).toBe(false);
  });
});

describe('anonymous THP and soft-dirty (soft-dirty.c test_hugepage)', () => {
  it('clear_refs write-protects the PMD and clears its soft-dirty bit; the write reuses the THP and sets it again, in every release', () => {
    for (const v of ['v5.4', 'v5.10', 'latest']) {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.clearRefs({}));
      expect([v, k.isWritableIn({ map: 'mem', page: NR }), k.isSoftDirtyIn({ map: 'mem', page: NR })]).toEqual([v, false, false]);
      k.run(k.write({ map: 'mem', page: NR + 9, data: 'S' }));
      // clear_soft_dirty_pmd(): the THP is exclusive / mapped once, so do_huge_pmd_wp_page() reuses
      // it with pmd_mkdirty(), which sets the soft-dirty bit: still one PMD on the same folio
      expect([v, leafLevel(k, NR), k.pfnOf({ map: 'mem', page: NR }), k.isSoftDirtyIn({ map: 'mem', page: NR })]).toEqual([v, 'pmd', head, true]);
    }
  });
});

describe('anonymous THP: fork (copy_huge_pmd) and the write fault (do_huge_pmd_wp_page)', () => {
  it('fork shares the THP: rc 2, entire mapcount 2, both PMDs read-only, PageAnonExclusive cleared', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.fork({ as: 'child' }));
    expect(k.refcount(head)).toBe(2);
    expect(k.mapcount(head)).toBe(2);
    expect(k.isWritableIn({ map: 'mem', page: NR })).toBe(false);
    expect(k.isWritableIn({ map: 'mem', page: NR, process: 'child' })).toBe(false);
    expect(leafLevel(k, NR, 'child')).toBe('pmd');
    expect(k.anonExclusive(head)).toBe(false);
  });

  it('v5.4 copies the whole THP on a write to the shared PMD (before 3917c80280c9)', () => {
    const k = kernel('v5.4');
    const head = thp(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'mem', page: NR + 7, data: 'P' }));
    const copy = k.pfnOf({ map: 'mem', page: NR })!;
    expect(leafLevel(k, NR)).toBe('pmd');
    expect(k.folios.order(copy)).toBe(9);
    expect(copy).not.toBe(head);
    // every subpage's contents came along: the first one still reads 'A'
    expect(k.run(k.read({ map: 'mem', page: NR }))).toBe('A');
    // the old THP is the child's alone
    expect(k.refcount(head)).toBe(1);
    expect(k.mapcount(head)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: NR + 7, process: 'child' }))).toBe('');
  });

  it.each(['v5.10', 'v6.1', 'latest'])('%s splits the shared PMD and copies only the written subpage', (v) => {
    const k = kernel(v);
    const head = thp(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'mem', page: NR + 7, data: 'P' }));
    expect(leafLevel(k, NR + 7)).toBe('pte');
    expect(k.pfnOf({ map: 'mem', page: NR + 7 })).not.toBe(head + 7);
    expect(k.folios.order(k.pfnOf({ map: 'mem', page: NR + 7 })!)).toBe(0);
    // the other subpages stay mapped from the THP, read-only
    expect(k.pfnOf({ map: 'mem', page: NR + 8 })).toBe(head + 8);
    expect(k.isWritableIn({ map: 'mem', page: NR + 8 })).toBe(false);
    // refcount: 2 (two PMDs) + 511 (__split_huge_pmd_locked page_ref_add(HPAGE_PMD_NR - 1)) - 1
    // (the COWed PTE's put) = 512; mapcount: the child's PMD + 511 parent PTEs
    expect(k.refcount(head)).toBe(512);
    expect(k.mapcount(head)).toBe(512);
    expect(k.run(k.read({ map: 'mem', page: NR + 7, process: 'child' }))).toBe('');
  });

  it('a THP mapped once is reused in place by a write to its read-only PMD in every release', () => {
    for (const v of ['v5.4', 'v5.10', 'latest']) {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.fork({ as: 'child' }));
      k.run(k.exit({ process: 'child' }));
      k.run(k.write({ map: 'mem', page: NR + 3, data: 'P' }));
      expect([v, leafLevel(k, NR), k.pfnOf({ map: 'mem', page: NR })]).toEqual([v, 'pmd', head]);
      expect(k.isWritableIn({ map: 'mem', page: NR })).toBe(true);
      expect(k.refcount(head)).toBe(1);
    }
  });

  it('v5.10 reuses a THP mapped once although GUP holds references (reuse_swap_page is a mapcount test); v6.1 splits and copies', () => {
    const outcome = (v: string): [string | undefined, boolean] => {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.fork({ as: 'child' }));
      k.run(k.gup({ map: 'mem', page: NR, pages: NR, fast: true, process: 'child', as: 'pipe' }, false));
      k.run(k.munmap({ map: 'mem', process: 'child' }));
      k.run(k.write({ map: 'mem', page: NR, data: 'P' }));
      return [leafLevel(k, NR), k.pfnOf({ map: 'mem', page: NR }) === head];
    };
    expect(outcome('v5.10')).toEqual(['pmd', true]);
    // the THP has 512 pipe references beyond its one mapping and is not PageAnonExclusive
    expect(outcome('v6.1')).toEqual(['pte', false]);
  });
});

describe('anonymous THP: GUP and pins', () => {
  it('a FOLL_PIN of every subpage: rc + 512 and _pincount 512 (no GUP_PIN_COUNTING_BIAS on a large folio); v5.4: 512 plain references', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.gup({ map: 'mem', page: NR, pages: NR, write: true, longterm: true, as: 'p' }, true));
    expect(k.refcount(head)).toBe(1 + NR);
    expect(k.pages.pincount[k.pages.slot(head)]).toBe(NR);
    expect(k.maybePinned(head)).toBe(true);
    k.run(k.unpin({ name: 'p' }));
    expect(k.refcount(head)).toBe(1);
    expect(k.maybePinned(head)).toBe(false);
    const old = kernel('v5.4');
    const h4 = thp(old);
    old.run(old.gup({ map: 'mem', page: NR, pages: NR, write: true, longterm: true, as: 'p' }, true));
    expect(old.refcount(h4)).toBe(1 + NR);
    expect(old.maybePinned(h4)).toBe(false);
  });

  it('fork of a pinned THP (v5.9+): the parent PMD is split and the child gets copies; v5.4 shares it', () => {
    for (const v of ['v5.10', 'latest']) {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.gup({ map: 'mem', page: NR, pages: NR, write: true, longterm: true, as: 'p' }, true));
      k.run(k.fork({ as: 'child' }));
      expect(leafLevel(k, NR)).toBe('pte');
      expect(k.isWritableIn({ map: 'mem', page: NR + 100 })).toBe(true);
      // 1 + 512 pins + 511 from the split; 512 PTE mappings, all in the parent
      expect(k.refcount(head)).toBe(1 + NR + NR - 1);
      expect(k.mapcount(head)).toBe(NR);
      const child = k.pfnOf({ map: 'mem', page: NR + 100, process: 'child' })!;
      expect(k.folios.folio(child)).not.toBe(head);
      expect(k.run(k.read({ map: 'mem', page: NR, process: 'child' }))).toBe('A');
    }
    const k = kernel('v5.4');
    const head = thp(k);
    k.run(k.gup({ map: 'mem', page: NR, pages: NR, write: true, longterm: true, as: 'p' }, true));
    k.run(k.fork({ as: 'child' }));
    expect([leafLevel(k, NR), k.mapcount(head)]).toEqual(['pmd', 2]);
  });

  it('a R/O pin of a shared THP unshares first (v5.19+): the parent maps exclusive R/O copies, the child keeps the THP', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.gup({ map: 'mem', page: NR, pages: 4, longterm: true, fast: true, as: 'ro' }, true));
    const copy = k.pfnOf({ map: 'mem', page: NR })!;
    expect(copy).not.toBe(head);
    expect(k.refcount(copy)).toBe(1 + 1024); // an order-0 copy: GUP_PIN_COUNTING_BIAS
    expect(k.isWritableIn({ map: 'mem', page: NR })).toBe(false);
    expect(k.anonExclusive(copy)).toBe(true);
    // the THP: child PMD (1) + the 508 parent PTEs not pinned; refs 1 + 511 + 1 - 4
    expect(k.mapcount(head)).toBe(1 + NR - 4);
    expect(k.refcount(head)).toBe(2 + NR - 1 - 4);
    // the subpages after the pinned range are still the THP's, not exclusive (fork cleared it)
    expect(k.pfnOf({ map: 'mem', page: NR + 4 })).toBe(head + 4);
    expect(subExclusive(k, head + 4)).toBe(false);
  });

  it('a R/O pin of a THP mapped once reuses it at the unshare fault (refcount 1) and marks it exclusive', () => {
    const k = kernel('v6.1');
    const head = thp(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.exit({ process: 'child' }));
    expect(k.anonExclusive(head)).toBe(false);
    k.run(k.gup({ map: 'mem', page: NR, pages: NR, longterm: true, as: 'ro' }, true));
    expect(leafLevel(k, NR)).toBe('pmd');
    expect(k.anonExclusive(head)).toBe(true);
    expect(k.refcount(head)).toBe(1 + NR);
  });
});

describe('reusing a non-exclusive subpage of a PTE-mapped THP (wp_can_reuse_anon_folio per release)', () => {
  // fork + exit of a child leaves every subpage mapped once, R/O and not PageAnonExclusive
  const shared = (v: string, single: boolean): { k: Kernel; head: number } => {
    const k = kernel(v);
    const head = thp(k);
    if (single) k.run(k.madvise({ map: 'mem', advice: 'dontneed', offset: 2 * 2 ** 20 + 4096, length: 2 * 2 ** 20 - 4096 }));
    else {
      k.run(k.mprotect({ map: 'mem', offset: 2 * 2 ** 20 + 4096, length: 4096, write: false }));
      k.run(k.mprotect({ map: 'mem', offset: 2 * 2 ** 20 + 4096, length: 4096, write: true }));
    }
    k.run(k.fork({ as: 'child' }));
    k.run(k.exit({ process: 'child' }));
    return { k, head };
  };

  it('a lone remaining PTE (refcount 1, mapcount 1): reused up to v6.9 (refcount 1), copied on v6.15+ (a large mapcount of 1 is never reused: the folio can be freed instead)', () => {
    for (const [v, reused] of [
      ['v6.1', true],
      ['v6.6', true],
      ['v6.15', false],
      ['latest', false],
    ] as const) {
      const { k, head } = shared(v, true);
      expect(k.refcount(head)).toBe(1);
      k.run(k.write({ map: 'mem', page: NR, data: 'W' }));
      expect([v, k.pfnOf({ map: 'mem', page: NR }) === head]).toEqual([v, reused]);
    }
  });

  it('a whole PTE-mapped THP of one mm (refcount 512 == mapcount 512): copied up to v6.9, reused on v6.15+ (CONFIG_MM_ID exclusive mapping)', () => {
    for (const [v, reused] of [
      ['v6.1', false],
      ['v6.15', true],
    ] as const) {
      const { k, head } = shared(v, false);
      expect([k.refcount(head), k.mapcount(head)]).toEqual([NR, NR]);
      k.run(k.write({ map: 'mem', page: NR + 7, data: 'W' }));
      expect([v, k.pfnOf({ map: 'mem', page: NR + 7 }) === head + 7]).toEqual([v, reused]);
    }
  });
});

describe('MADV_FREE of a PMD-mapped THP (madvise_free_huge_pmd)', () => {
  it('cleans the PMD when the range covers it and only this process maps it; a shared THP is skipped', () => {
    const dirty = (fork: boolean): boolean => {
      const k = kernel('latest');
      thp(k);
      if (fork) k.run(k.fork({ as: 'child' }));
      k.run(k.madvise({ map: 'mem', advice: 'free', offset: 2 * 2 ** 20, length: 2 * 2 ** 20 }));
      return k.vm.lookup(k.processes.get('init')!, mapVpn(k, NR, 'init'))!.pte.dirty;
    };
    expect(dirty(false)).toBe(false);
    // the child maps it too (entire mapcount 2): "other processes are mapping this folio"
    expect(dirty(true)).toBe(true);
  });
});

describe('GUP over a range of several VMAs (__get_user_pages looks up the next VMA past vm_end)', () => {
  it('pins across the VMAs a one-page mprotect left behind, and fails with EFAULT at a hole', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.mprotect({ map: 'mem', offset: 2 * 2 ** 20 + 4096, length: 4096, write: false }));
    // left read-only: the one-page VMA stays between its two neighbours (back to read-write,
    // vma_merge() would join the three again)
    expect(k.processes.get('init')!.vmas.length).toBe(4);
    const h = k.run(k.gup({ map: 'mem', page: NR, pages: NR, longterm: true, as: 'p' }, true));
    expect(h.pfns.length).toBe(NR);
    expect(h.pfns[NR - 1]).toBe(head + NR - 1);
    k.run(k.munmap({ map: 'mem', offset: 2 * 2 ** 20 + 8192, length: 4096 }));
    expect(() => k.run(k.gup({ map: 'mem', page: NR, pages: 4, as: 'g' }, false))).toThrow(/EFAULT/);
  });
});

describe('anonymous THP: PMD split (__split_huge_pmd)', () => {
  it('a partial munmap remaps the rest by PTEs of the same folio, one reference and mapping each, PageAnonExclusive carried (v5.19+)', () => {
    const k = kernel('latest');
    const head = thp(k);
    k.run(k.munmap({ map: 'mem', offset: 2 * 2 ** 20, length: 2 ** 20 }));
    expect(leafLevel(k, NR + 256)).toBe('pte');
    expect(k.pfnOf({ map: 'mem', page: NR + 256 })).toBe(head + 256);
    // 1 + 511 at the split, - 256 zapped PTEs
    expect(k.refcount(head)).toBe(256);
    expect(k.mapcount(head)).toBe(256);
    expect(subExclusive(k, head + 256)).toBe(true);
    expect(subExclusive(k, head + NR - 1)).toBe(true);
    expect(k.run(k.read({ map: 'mem', page: NR + 256 }))).toBe('');
  });

  it('cow.c "single PTE of a THP": MADV_DONTNEED of all but the first subpage leaves one PTE (rc 1, mapcount 1); a write reuses it', () => {
    for (const v of ['v5.4', 'v5.10', 'latest']) {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.madvise({ map: 'mem', advice: 'dontneed', offset: 2 * 2 ** 20 + 4096, length: 2 * 2 ** 20 - 4096 }));
      expect([v, leafLevel(k, NR), k.refcount(head), k.mapcount(head)]).toEqual([v, 'pte', 1, 1]);
      expect(k.isMappedIn({ map: 'mem', page: NR + 1 })).toBe(false);
      expect(k.isWritableIn({ map: 'mem', page: NR })).toBe(true);
    }
  });

  it('cow.c "PTE-mapped THP": mprotect of one subpage R/O and back splits the PMD; the write to that subpage reuses it on v5.4 (every subpage mapped once) and latest (exclusive), copies on v5.10 (page_count() 512)', () => {
    const after = (v: string): boolean => {
      const k = kernel(v);
      const head = thp(k);
      k.run(k.mprotect({ map: 'mem', offset: 2 * 2 ** 20 + 4096, length: 4096, write: false }));
      k.run(k.mprotect({ map: 'mem', offset: 2 * 2 ** 20 + 4096, length: 4096, write: true }));
      expect(leafLevel(k, NR)).toBe('pte');
      expect(k.refcount(head)).toBe(NR);
      expect(k.mapcount(head)).toBe(NR);
      k.run(k.write({ map: 'mem', page: NR + 1, data: 'P' }));
      return k.pfnOf({ map: 'mem', page: NR + 1 }) === head + 1;
    };
    expect(after('v5.4')).toBe(true);
    expect(after('v5.10')).toBe(false);
    expect(after('latest')).toBe(true);
  });
});
