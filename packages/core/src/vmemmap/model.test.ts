import { describe, expect, it } from 'vitest';
import type { Mmu, VmemmapOutcome } from '../arch.js';
import { resolveFeatures } from '../features.js';
import { GiB, KiB, MiB, TiB } from '../units.js';
import { altmapAllocBlocks, newAltmap } from './altmap.js';
import { populateDeviceMemmap, type VmemmapArchModel } from './model.js';
import { compoundNrPages, vmemmapCanOptimize } from './optimize.js';
import { sectionRuns } from './sections.js';

// An x86-64-shaped MMU (4 KiB pages, 64-byte struct page, 128 MiB sections, 2 MiB subsections)
// and a 64 KiB one (arm64 64K: 512 MiB sections); the arch plugins test their own constants.
const MMU4K: Mmu = { arch: 't4k', basePageSize: 4 * KiB, pmdSize: 2 * MiB, pudSize: GiB, levels: 4, structPageSize: 64, sectionSize: 128 * MiB, subsectionSize: 2 * MiB, pteBits: { special: true, devmap: true }, devdaxAlignments: [4 * KiB, 2 * MiB, GiB] };
const MMU64K: Mmu = { ...MMU4K, arch: 't64k', basePageSize: 64 * KiB, pmdSize: 512 * MiB, pudSize: null, levels: 3, sectionSize: 512 * MiB, devdaxAlignments: [64 * KiB, 512 * MiB] };

// x86-style backing: full sections in PMD blocks (altmap honoured, ENOMEM when it runs out),
// sub-section chunks in base pages from RAM.
const pmdArch = (optIn: boolean, inInitMm = true): VmemmapArchModel => ({
  vmemmapInInitMm: inInitMm,
  optsInToDaxVmemmapOptimization: () => optIn,
  backing: (run, { mmu }) =>
    run.full
      ? { blockSize: mmu.pmdSize, useAltmap: true, onAltmapFailure: 'enomem', via: 'vmemmap_populate_hugepages' }
      : { blockSize: mmu.basePageSize, useAltmap: false, onAltmapFailure: 'enomem', via: 'vmemmap_populate_basepages' },
});
const baseArch: VmemmapArchModel = { vmemmapInInitMm: true, optsInToDaxVmemmapOptimization: () => false, backing: (_r, { mmu }) => ({ blockSize: mmu.basePageSize, useAltmap: true, onAltmapFailure: 'enomem', via: 'vmemmap_populate_basepages' }) };

const run = (mmu: Mmu, arch: VmemmapArchModel, size: number, align: number, o: { version?: string; altmap?: boolean; start?: number; reserve?: number; free?: number; mode?: 'off' | 'unguarded' | 'arch-opt-in' } = {}): VmemmapOutcome => {
  const version = o.version ?? 'v6.6';
  const features = resolveFeatures(version, o.mode ? { 'vmemmap-optimize': o.mode } : {});
  const shift = align > mmu.basePageSize ? Math.log2(align / mmu.basePageSize) : 0;
  const layout = o.free !== undefined ? { altmapLayout: { reserve: o.reserve ?? 0, free: o.free } } : {};
  return populateDeviceMemmap(mmu, arch, { start: o.start ?? 64 * GiB, size, vmemmapShift: shift, altmap: o.altmap ?? false, features, version, ...layout });
};
const figures = (r: VmemmapOutcome) => {
  if (!r.ok) throw new Error('oops' in r ? r.oops : r.message);
  return r.figures;
};

describe('vmemmap_populate_compound_pages (published figures)', () => {
  it('2 MiB compound, 4 KiB pages: 6 of the 8 vmemmap pages saved, 128 struct pages initialised instead of 512', () => {
    // 4917f55b4ef9 "On compound devmaps with 2M align, this mechanism lets 6 pages be saved out of
    // the 8"; 6fd3620b3428: memmap_init_zone_device() initialises 128 (2 * 4096 / 64).
    const f = figures(run(MMU4K, pmdArch(true), 2 * MiB, 2 * MiB));
    expect(f).toMatchObject({ optimized: true, structPages: 512, vmemmapPages: 2, savedPages: 6, structPagesInitialized: 128 });
  });

  it('1 GiB compound: 4094 saved across its 8 sections (sections 2..8 reuse the first tail page), 128 initialised instead of 262144', () => {
    // 4917f55b4ef9 "On a 1G compound devmap it saves 4094 pages"; 6fd3620b3428 "262144 instead of 128".
    // 1 GiB = 8 x 128 MiB sections: section 1 allocates 2 pages and reuses 510 PTEs, the other 7
    // take the reuse_compound_section() path: 7 x 512 reused PTEs. 510 + 3584 = 4094.
    const f = figures(run(MMU4K, pmdArch(true), GiB, GiB));
    expect(f).toMatchObject({ optimized: true, structPages: 262144, vmemmapPages: 2, savedPages: 4094, structPagesInitialized: 128 });
    expect(f.detail?.sections).toBe(8);
  });

  it('per 1 TiB: 4 GiB of struct-page memory with 2 MiB compounds, 8 MiB with 1 GiB (cover letter: "lose 4G instead of 16G"; 40MB = 8 MiB + 32 MiB of PTE tables, not counted here)', () => {
    expect(figures(run(MMU4K, pmdArch(true), TiB, 2 * MiB)).vmemmapBytes).toBe(4 * GiB);
    expect(figures(run(MMU4K, pmdArch(true), TiB, GiB)).vmemmapBytes).toBe(8 * MiB);
    expect(figures(run(MMU4K, pmdArch(true), TiB, 4 * KiB)).vmemmapBytes).toBe(16 * GiB);
  });

  it('64 TiB is arithmetic over runs of sections: 1 GiB compounds cost 2 pages each', () => {
    const f = figures(run(MMU4K, pmdArch(true), 64 * TiB, GiB));
    expect(f.vmemmapPages).toBe(2 * 64 * 1024);
    expect(f.savedPages).toBe(4094 * 64 * 1024);
    expect(f.structPagesInitialized).toBe(128 * 64 * 1024);
  });

  it('a 1 GiB compound that starts mid-section still reuses: the range starts 64 MiB into a section', () => {
    // first chunk: 64 MiB (16384 pages) at offset 0: one piece of 1 MiB of vmemmap (256 pages):
    // 2 new + 254 reused; then 7 sections + a 64 MiB tail all at non-compound offsets: reused.
    const f = figures(run(MMU4K, pmdArch(true), GiB, GiB, { start: 64 * GiB + 64 * MiB }));
    expect(f).toMatchObject({ vmemmapPages: 2, savedPages: 4094 });
    expect(f.detail?.sections).toBe(9);
  });
});

describe('vmemmap_can_optimize() forms and compound_nr_pages()', () => {
  const q = { pageSize: 4096, structPageSize: 64, vmemmapShift: 9, altmap: false, archOptsIn: false };
  it('unguarded (v5.19-v6.3) optimises on any arch; arch-opt-in (v6.4+) only where the arch selected it; never with an altmap', () => {
    expect(vmemmapCanOptimize('unguarded', q)).toBe(true);
    expect(vmemmapCanOptimize('arch-opt-in', q)).toBe(false);
    expect(vmemmapCanOptimize('arch-opt-in', { ...q, archOptsIn: true })).toBe(true);
    expect(vmemmapCanOptimize('arch-opt-in', { ...q, archOptsIn: true, altmap: true })).toBe(false);
    expect(vmemmapCanOptimize('off', { ...q, archOptsIn: true })).toBe(false);
  });
  it('v6.6 needs more than VMEMMAP_RESERVE_NR vmemmap pages per compound: at 64 KiB only 1 GiB-class compounds qualify', () => {
    // Documentation/arch/powerpc/vmemmap_dedup.rst: "with a 64K page size, only the devdax
    // namespace with 1G alignment uses vmemmap deduplication". 2 MiB = 32 pages = 2 KiB of struct pages.
    const q64 = { ...q, pageSize: 65536, archOptsIn: true };
    expect(vmemmapCanOptimize('arch-opt-in', { ...q64, vmemmapShift: 5 })).toBe(false);
    expect(vmemmapCanOptimize('arch-opt-in', { ...q64, vmemmapShift: 14 })).toBe(true);
    expect(vmemmapCanOptimize('unguarded', { ...q64, vmemmapShift: 5 })).toBe(true);
  });
  it('compound_nr_pages: 128 at 4 KiB, 2048 at 64 KiB when optimised; the whole compound otherwise', () => {
    expect(compoundNrPages(true, q)).toBe(128);
    expect(compoundNrPages(true, { ...q, pageSize: 65536 })).toBe(2048);
    expect(compoundNrPages(false, q)).toBe(512);
  });
  it('a non-power-of-two struct page (e.g. 80 bytes) never optimises', () => {
    expect(vmemmapCanOptimize('unguarded', { ...q, structPageSize: 80 })).toBe(false);
  });
});

describe('unguarded compound path with struct pages smaller than a vmemmap page (64 KiB pages)', () => {
  it('2 MiB compounds at 64 KiB: 32 struct pages = 2 KiB per compound; nothing to reuse, every vmemmap page allocated plus one past the end', () => {
    // size = min(chunk, 2 KiB): each piece populates its page and the next; no PTE is left for
    // reuse. 1 GiB at 64K = 16384 struct pages = 16 vmemmap pages, and the piece in the last page
    // populates the page after it: 17.
    const f = figures(run(MMU64K, baseArch, GiB, 2 * MiB, { mode: 'unguarded' }));
    expect(f).toMatchObject({ optimized: true, vmemmapPages: 17, savedPages: 0, structPagesInitialized: 16384 });
  });
  it('512 MiB compounds at 64 KiB: 8 vmemmap pages per compound, 2 kept, 2048 initialised instead of 8192', () => {
    const f = figures(run(MMU64K, baseArch, GiB, 512 * MiB, { mode: 'unguarded' }));
    expect(f).toMatchObject({ optimized: true, vmemmapPages: 4, savedPages: 12, structPagesInitialized: 4096 });
  });
});

describe('unoptimised population: blocks, sections, altmap', () => {
  it('PMD blocks: one 2 MiB block per full 128 MiB section; a sub-section tail in base pages from RAM', () => {
    const f = figures(run(MMU4K, pmdArch(true), 128 * MiB + 2 * MiB, 4 * KiB));
    // 2 MiB of 4K pages = 512 struct pages = 32 KiB = 8 vmemmap pages
    expect(f).toMatchObject({ optimized: false, vmemmapPages: 512 + 8, structPagesInitialized: 33280 });
    expect(f.detail?.via).toEqual(['vmemmap_populate_hugepages', 'vmemmap_populate_basepages']);
  });

  it('check_pfn_span: a start or size that is not whole subsections is EINVAL', () => {
    const r = run(MMU4K, pmdArch(true), 3 * MiB, 4 * KiB);
    expect(r).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(run(MMU4K, pmdArch(true), 2 * MiB, 4 * KiB, { start: 64 * GiB + MiB })).toMatchObject({ ok: false, errno: 'EINVAL' });
  });

  it('nd_pfn altmap sized by the kernel fits exactly: 2 GiB, reserve 2, free 8702 = 16 blocks of 512 + 510 padding', () => {
    // pfn_devs.c nd_pfn_init(): offset = ALIGN(8K + 64 * npfns, 2M) = 34 MiB = 8704 pfns, free = 8702.
    // The first PMD block starts at base+2 and is aligned to 512 pfns: 510 padding pfns.
    const f = figures(run(MMU4K, pmdArch(false), 2 * GiB, 2 * MiB, { altmap: true, reserve: 2, free: 8702 }));
    expect(f).toMatchObject({ optimized: false, vmemmapPages: 8192, structPagesInitialized: 524288 - 2 });
    expect(f.detail).toMatchObject({ ramPages: 0, altmapPages: 8192, altmapAlignPages: 510 });
  });

  it('an altmap one pfn short fails the last PMD block: vmemmap_populate_hugepages() returns -ENOMEM, no fallback', () => {
    expect(run(MMU4K, pmdArch(false), 2 * GiB, 2 * MiB, { altmap: true, reserve: 2, free: 8701 })).toMatchObject({ ok: false, errno: 'ENOMEM' });
  });

  it('with an altmap the compound path is never taken (vmemmap_can_optimize: !altmap)', () => {
    const f = figures(run(MMU4K, pmdArch(true), GiB, GiB, { altmap: true }));
    expect(f).toMatchObject({ optimized: false, vmemmapPages: 4096, savedPages: 0, structPagesInitialized: 262144 });
  });
});

describe('arch without init_mm vmemmap tables (seed 003)', () => {
  it('oopses when the generic compound path runs (unguarded), completes unoptimised with the arch opt-in fix', () => {
    const noTables = pmdArch(false, false);
    const bad = run(MMU4K, noTables, 2 * GiB, 2 * MiB, { version: 'v6.3' });
    expect(bad.ok).toBe(false);
    expect('oops' in bad && bad.oops).toMatch(/vmemmap_populate_compound_pages/);
    expect(figures(run(MMU4K, noTables, 2 * GiB, 2 * MiB, { version: 'v6.6' }))).toMatchObject({ optimized: false, vmemmapPages: 16 * 512 });
  });
});

describe('sections and the altmap allocator', () => {
  it('a range is at most three runs: partial first section, full sections, partial last', () => {
    expect(sectionRuns(100, 1000, 256)).toEqual([
      { pfn: 100, nrPages: 156, count: 1, full: false },
      { pfn: 256, nrPages: 256, count: 3, full: true },
      { pfn: 1024, nrPages: 76, count: 1, full: false },
    ]);
    expect(sectionRuns(0, 512, 256)).toEqual([{ pfn: 0, nrPages: 256, count: 2, full: true }]);
  });
  it('altmap_alloc_block_buf: first block pays the alignment padding, the rest are contiguous; a failed block changes nothing', () => {
    const a = newAltmap(1 << 20, 1 << 20, { reserve: 2, free: 2000 });
    expect(altmapAllocBlocks(a, 512, 10)).toBe(2); // 510 + 512 + 512 = 1534; a third needs 2046 > 2000
    expect([a.alloc, a.align]).toEqual([1024, 510]);
    expect(altmapAllocBlocks(a, 512, 1)).toBe(0);
    expect([a.alloc, a.align]).toEqual([1024, 510]);
    expect(altmapAllocBlocks(a, 1, 3)).toBe(3); // base pages never need padding
  });
});

describe('altmap_cross_boundary() forms (ppc64 hash blocks: one 16 MiB block describes 16 GiB of 64K pages)', () => {
  const hash64k: Mmu = { ...MMU64K, arch: 'hash', sectionSize: 16 * MiB };
  const hashArch = (check: 'inside' | 'before-end'): VmemmapArchModel => ({
    vmemmapInInitMm: false,
    optsInToDaxVmemmapOptimization: () => false,
    backing: () => ({ blockSize: 16 * MiB, useAltmap: true, onAltmapFailure: 'ram', altmapBoundaryCheck: check, via: 'hash' }),
  });
  // 128 GiB at 64 GiB: 8 windows; nd_pfn free = ALIGN(64K + 64 * 2097151, 16M) / 64K - 1 = 2303 =
  // 255 pfns of padding + 8 x 256: exactly enough for all eight blocks
  it('v6.6 ("powerpc/mm/dax: Fix the condition when checking if altmap vmemap can cross-boundary"): the window ending at the device\'s last pfn comes from the altmap: all 8 blocks on the device', () => {
    const f = figures(run(hash64k, hashArch('inside'), 128 * GiB, 64 * KiB, { altmap: true, reserve: 1, free: 2303 }));
    expect(f.detail).toMatchObject({ altmapPages: 2048, ramPages: 0, altmapAlignPages: 255 });
  });
  it('before that fix (start_pfn + nr_pfn > end_pfn): that last window went to RAM', () => {
    const f = figures(run(hash64k, hashArch('before-end'), 128 * GiB, 64 * KiB, { altmap: true, reserve: 1, free: 2303 }));
    expect(f.detail).toMatchObject({ altmapPages: 7 * 256, ramPages: 256 });
  });
  it('a device smaller than a window gets its block from RAM either way', () => {
    expect(figures(run(hash64k, hashArch('inside'), 2 * GiB, 64 * KiB, { altmap: true, reserve: 1, free: 511 })).detail).toMatchObject({ altmapPages: 0, ramPages: 256 });
  });
});

describe('runs of sections are multiplied out only when they repeat', () => {
  // The model simulates two periods of a run of full sections and multiplies the rest; a device
  // made of k identical, independently aligned pieces must cost exactly k times one piece.
  const cases: [string, Mmu, number, number, 'unguarded' | 'arch-opt-in'][] = [
    ['4K, 1 GiB compounds (period 8 sections)', MMU4K, GiB, GiB, 'arch-opt-in'],
    ['4K, 2 MiB compounds (64 per section)', MMU4K, 128 * MiB, 2 * MiB, 'arch-opt-in'],
    ['64K, 512 MiB compounds (1 per section)', MMU64K, 512 * MiB, 512 * MiB, 'unguarded'],
    ['64K, 2 MiB compounds (sub-page struct pages)', MMU64K, 512 * MiB, 2 * MiB, 'unguarded'],
  ];
  it.each(cases)('%s: 4096 pieces cost 4096 times one (savings), initialised likewise', (_name, mmu, piece, align, mode) => {
    const arch = mmu === MMU4K ? pmdArch(true) : baseArch;
    const one = figures(run(mmu, arch, piece, align, { mode }));
    const many = figures(run(mmu, arch, 4096 * piece, align, { mode }));
    expect(many.savedPages).toBe(4096 * one.savedPages);
    expect(many.structPagesInitialized).toBe(4096 * one.structPagesInitialized);
    // sub-page compounds (64K, 2 MiB) populate one vmemmap page past the end of the range: once
    // for one piece (8 + 1 pages), once for the whole run (4096 x 8 + 1)
    const pastTheEnd = mmu === MMU64K && align === 2 * MiB ? 1 : 0;
    expect(many.vmemmapPages - pastTheEnd).toBe(4096 * (one.vmemmapPages - pastTheEnd));
  });

  it('compounds that do not start on section boundaries: after the first, no chunk starts on a compound, so every PTE reuses (as the kernel would)', () => {
    // 1 GiB compounds from 64 MiB into a section: chunk offsets are 16384 + k * 32768 pages, never
    // a multiple of 262144, so reuse_compound_section() holds for every chunk after the first and
    // only the first compound gets its 2 pages; the heads of the others would then be written into
    // the shared page. Device-dax never builds such a range (its ranges start on their alignment,
    // and `daxlab vmemmap --start` refuses one), so this documents the kernel's assumption.
    const f = figures(run(MMU4K, pmdArch(true), 1024 * GiB, GiB, { start: 64 * GiB + 64 * MiB }));
    expect(f).toMatchObject({ vmemmapPages: 2, savedPages: 1024 * 4096 - 2, structPagesInitialized: 128 * 1024 });
    expect(f.detail?.sections).toBe(8193);
  });
});
