import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// MADV_COLLAPSE (mm/collapse.ts, mm/khugepaged.c madvise_collapse(), v6.1) and the VMA merging
// it relies on (Vm.mergeAround, vma_merge()). The test arch: 4 KiB pages, 2 MiB PMDs (512 pages).
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** A 2 MiB anonymous mapping (PMD-aligned by placement) with a few base pages written in it. */
function basePages(k: Kernel, pages: number[]): void {
  k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
  for (const page of pages) k.run(k.write({ map: 'mem', page, data: `p${page}` }));
}

describe('vma_merge() after mprotect() and madvise() flag changes', () => {
  it('a one-page mprotect(PROT_READ) splits the VMA in three; back to PROT_READ|PROT_WRITE the three are one again', () => {
    const k = kernel();
    basePages(k, [0]);
    const mm = k.processes.get('init')!;
    k.run(k.mprotect({ map: 'mem', offset: 4096, length: 4096, write: false }));
    expect(mm.vmas.map((v) => v.pages)).toEqual([1, 1, NR - 2]);
    k.run(k.mprotect({ map: 'mem', offset: 4096, length: 4096, write: true }));
    // one VMA again, its vm_pgoff the mapping's address (do_mmap() of private anonymous memory)
    expect(mm.vmas.map((v) => [v.pages, v.pgoff, v.flags.write])).toEqual([[NR, mm.ranges.get('mem')!.start, true]]);
    // the anon_vma the first piece had is the merged VMA's
    expect(mm.vmas[0]!.anonVma).not.toBe(0);
  });

  it('pieces whose flags still differ stay apart: MADV_DONTFORK of the middle, then MADV_DOFORK of its lower half only', () => {
    const k = kernel();
    basePages(k, []);
    const mm = k.processes.get('init')!;
    k.run(k.madvise({ map: 'mem', advice: 'dontfork', offset: 8 * 4096, length: 8 * 4096 }));
    k.run(k.madvise({ map: 'mem', advice: 'dofork', offset: 8 * 4096, length: 4 * 4096 }));
    expect(mm.vmas.map((v) => [v.pages, v.flags.dontcopy])).toEqual([
      [12, false],
      [4, true],
      [NR - 16, false],
    ]);
  });
});

describe('MADV_COLLAPSE of anonymous memory', () => {
  it('is EINVAL before v6.1 (madvise_behavior_valid)', () => {
    for (const v of ['v5.4', 'v5.10']) {
      const k = kernel(v);
      basePages(k, [0]);
      expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    }
  });

  it('collapses base pages, holes and zero-page PTEs into one THP: the data copied, holes zero-filled, the old pages freed', () => {
    const k = kernel();
    basePages(k, [0, 5, 511]);
    k.run(k.read({ map: 'mem', page: 9 })); // the zero page
    const old = k.pfnOf({ map: 'mem', page: 5 })!;
    const live = k.ram.live.size;
    // MADV_COLLAPSE ignores the sysfs mode (no MADV_HUGEPAGE here) and has no max_ptes_none limit
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(head % NR).toBe(0);
    expect(k.folios.order(head)).toBe(9);
    expect([k.refcount(head), k.mapcount(head), k.anonExclusive(head)]).toEqual([1, 1, true]);
    expect([0, 5, 9, 100, 511].map((page) => k.run(k.read({ map: 'mem', page })))).toEqual(['p0', 'p5', '', '', 'p511']);
    expect(k.processes.get('init')!.ptes.size).toBe(0);
    // three order-0 pages went, one 512-page folio came
    expect(k.ram.live.size).toBe(live - 3 + NR);
    expect(k.ram.live.has(old)).toBe(false);
  });

  it('a PMD-mapped THP is already collapsed (SCAN_PMD_MAPPED: success); an empty range or one too small for an aligned PMD is EINVAL; VM_NOHUGEPAGE is EINVAL', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    const head = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBeNull();
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(head);
    // no page table there (SCAN_PMD_NULL), and no anon_vma yet either
    const k2 = kernel();
    k2.run(k2.mmap({ anon: true, length: 2 * MiB, write: true, as: 'mem' }));
    expect(code(() => k2.run(k2.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    // a VMA of 1 MiB cannot hold an aligned 2 MiB range (hugepage_vma_check)
    const k3 = kernel();
    k3.run(k3.mmap({ anon: true, length: MiB, write: true, as: 'mem' }));
    k3.run(k3.write({ map: 'mem', page: 0, data: 'x' }));
    expect(code(() => k3.run(k3.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    const k4 = kernel();
    basePages(k4, [0]);
    k4.run(k4.madvise({ map: 'mem', advice: 'nohugepage' }));
    expect(code(() => k4.run(k4.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    // a range inside the VMA that holds no whole aligned PMD range collapses nothing, successfully
    const k5 = kernel();
    basePages(k5, [0]);
    expect(code(() => k5.run(k5.madvise({ map: 'mem', advice: 'collapse', offset: 0, length: 64 * 1024 })))).toBeNull();
    expect(k5.folios.order(k5.pfnOf({ map: 'mem', page: 0 })!)).toBe(0);
  });
});
