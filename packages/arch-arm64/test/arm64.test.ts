import { GiB, KiB, MiB, resolveFeatures, TiB, type FeatureOverrides, type VmemmapOutcome } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { arm64, arm64Granule, arm64SectionSize, type Arm64PageSize } from '../src/index.js';


const ok = (r: VmemmapOutcome) => {
  if (!r.ok) throw new Error('oops' in r ? r.oops : r.message);
  return r.figures;
};
/** a device of `size` at 64 GiB with devdax `align` (vmemmap_shift from it) */
const probe = (pageSize: Arm64PageSize, size: number, align: number, version = 'latest', o: { features?: FeatureOverrides; layout?: { reserve: number; free: number } } = {}) => {
  const a = arm64({ pageSize });
  const shift = align > pageSize ? Math.log2(align / pageSize) : 0;
  return a.populator.populate(a.mmu, {
    start: 64 * GiB,
    size,
    vmemmapShift: shift,
    altmap: !!o.layout,
    ...(o.layout ? { altmapLayout: o.layout } : {}),
    features: resolveFeatures(version, o.features ?? {}),
    version,
  });
};
const unguarded: FeatureOverrides = { 'vmemmap-optimize': 'unguarded' };

describe('arm64 constants per granule', () => {
  it('4K: 2 MiB PMD, 4 levels; 16K: 32 MiB PMD, 4 levels; 64K: 512 MiB PMD, 3 levels; no PUD THP', () => {
    const m = (p: Arm64PageSize) => arm64({ pageSize: p }).mmu;
    expect([m(4 * KiB).pmdSize, m(16 * KiB).pmdSize, m(64 * KiB).pmdSize]).toEqual([2 * MiB, 32 * MiB, 512 * MiB]);
    expect([m(4 * KiB).levels, m(16 * KiB).levels, m(64 * KiB).levels]).toEqual([4, 4, 3]);
    expect([m(4 * KiB).pudSize, m(16 * KiB).pudSize, m(64 * KiB).pudSize]).toEqual([null, null, null]);
    // the level above the PMD: PUD_SHIFT 30 (4K), 36 (16K); 64K's 3 levels fold it into 42-bit PGD entries
    expect([arm64Granule(4 * KiB).pudSize, arm64Granule(16 * KiB).pudSize, arm64Granule(64 * KiB).pudSize]).toEqual([GiB, 64 * GiB, 4 * TiB]);
  });
  it('devdax alignments: PAGE_SIZE and PMD_SIZE only (dax_align_valid without HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD)', () => {
    expect(arm64({ pageSize: '4KiB' }).mmu.devdaxAlignments).toEqual([4 * KiB, 2 * MiB]);
    expect(arm64({ pageSize: '16K' }).mmu.devdaxAlignments).toEqual([16 * KiB, 32 * MiB]);
    expect(arm64({ pageSize: 65536 }).mmu.devdaxAlignments).toEqual([64 * KiB, 512 * MiB]);
  });
  it('SECTION_SIZE_BITS: 27 (4K, 16K) and 29 (64K) from v5.12, 30 before; subsections 2 MiB', () => {
    expect([arm64SectionSize(4 * KiB, 'latest'), arm64SectionSize(16 * KiB, 'v6.1'), arm64SectionSize(64 * KiB, 'v6.6')]).toEqual([128 * MiB, 128 * MiB, 512 * MiB]);
    expect([arm64SectionSize(4 * KiB, 'v5.10'), arm64SectionSize(64 * KiB, 'v5.10')]).toEqual([GiB, GiB]);
    expect(arm64().mmu.subsectionSize).toBe(2 * MiB);
  });
  it('pte_special and pte_devmap exist; vmemmap is in init_mm; never opts in to the DAX vmemmap optimisation', () => {
    const a = arm64();
    expect(a.mmu.pteBits).toEqual({ special: true, devmap: true, softDirty: false });
    expect(a.populator.vmemmapInInitMm).toBe(true);
    for (const v of ['v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']) expect(a.populator.optsInToDaxVmemmapOptimization(v)).toBe(false);
  });
  it('refuses page sizes arm64 does not have', () => {
    expect(() => arm64({ pageSize: '8KiB' })).toThrow(/4KiB, 16KiB or 64KiB/);
    expect(() => arm64({ pageSize: 'big' })).toThrow(/not an arm64 granule/);
  });
  it('no ZONE_DEVICE before v5.7: a kernel with a driver is unsupported on v5.4, fine without one', () => {
    const a = arm64();
    const k = (version: string, driver: string | null) => ({ arch: 'arm64', pageSize: 4096, fs: null, driver, version, features: resolveFeatures(version) });
    expect(a.unsupported?.(k('v5.4', 'devdax'))).toMatch(/no ZONE_DEVICE in v5.4/);
    expect(a.unsupported?.(k('v5.4', null))).toBeNull();
    expect(a.unsupported?.(k('v5.10', 'devdax'))).toBeNull();
  });
});

describe('arm64 vmemmap population', () => {
  it('4K: full sections in 2 MiB PMD blocks; 2 GiB costs 32 MiB whatever the alignment (arch-opt-in: never optimised)', () => {
    for (const align of [4 * KiB, 2 * MiB]) {
      const f = ok(probe(4 * KiB, 2 * GiB, align));
      expect(f).toMatchObject({ optimized: false, vmemmapBytes: 32 * MiB, structPagesInitialized: 524288, savedPages: 0 });
      expect(f.detail?.via).toEqual(['vmemmap_populate_hugepages']);
    }
  });

  it('4K sub-section device: a whole PMD block before the v6.14 fix, base pages after', () => {
    // 2 MiB of 4K pages = 512 struct pages = 32 KiB: 8 pages; the PMD block is 512 pages
    expect(ok(probe(4 * KiB, 2 * MiB, 4 * KiB, 'v6.6')).vmemmapPages).toBe(512);
    expect(ok(probe(4 * KiB, 2 * MiB, 4 * KiB, 'v6.15')).vmemmapPages).toBe(8);
  });

  it('16K and 64K: base pages; 2 GiB costs 8 MiB (512 x 16K) and 2 MiB (32 x 64K)', () => {
    expect(ok(probe(16 * KiB, 2 * GiB, 32 * MiB))).toMatchObject({ optimized: false, vmemmapPages: 512, vmemmapBytes: 8 * MiB, structPagesInitialized: 131072 });
    expect(ok(probe(64 * KiB, 2 * GiB, 512 * MiB))).toMatchObject({ optimized: false, vmemmapPages: 32, vmemmapBytes: 2 * MiB, structPagesInitialized: 32768 });
    expect(ok(probe(64 * KiB, TiB, 64 * KiB))).toMatchObject({ vmemmapBytes: GiB, structPagesInitialized: 16777216 });
  });

  it('unguarded (v5.19-v6.3 form): the generic compound path ran on arm64 too, and worked (init_mm tables)', () => {
    // 4K, 2 MiB compounds: 2 of 8 vmemmap pages each, 128 struct pages initialised per compound
    expect(ok(probe(4 * KiB, 2 * GiB, 2 * MiB, 'v6.3'))).toMatchObject({ optimized: true, vmemmapPages: 2048, vmemmapBytes: 8 * MiB, savedPages: 6144, structPagesInitialized: 131072 });
    // 16K, 32 MiB compounds: 2048 struct pages = 128 KiB = 8 vmemmap pages, 2 kept; 2 * 16K / 64 = 512 initialised
    expect(ok(probe(16 * KiB, 2 * GiB, 32 * MiB, 'latest', { features: unguarded }))).toMatchObject({ optimized: true, vmemmapPages: 128, savedPages: 384, structPagesInitialized: 64 * 512 });
    // 64K, 512 MiB compounds: 8192 struct pages = 512 KiB = 8 vmemmap pages, 2 kept; 2048 initialised
    expect(ok(probe(64 * KiB, 2 * GiB, 512 * MiB, 'latest', { features: unguarded }))).toMatchObject({ optimized: true, vmemmapPages: 8, savedPages: 24, structPagesInitialized: 4 * 2048 });
  });

  it('the same kernels with the arch opt-in fix populate unoptimised', () => {
    expect(ok(probe(4 * KiB, 2 * GiB, 2 * MiB, 'v6.6'))).toMatchObject({ optimized: false, vmemmapPages: 8192 });
    expect(ok(probe(64 * KiB, 2 * GiB, 512 * MiB, 'v6.6'))).toMatchObject({ optimized: false, vmemmapPages: 32 });
  });

  it('altmap, 64K: nd_pfn reserve is one page (ALIGN(8K, 64K)); 2 GiB at 512 MiB: free 8191, 32 base pages from the device, 32767 initialised', () => {
    // offset = ALIGN(64K + 64 * 32767, 512M) = 512 MiB = 8192 pfns, free = 8191
    const f = ok(probe(64 * KiB, 2 * GiB, 512 * MiB, 'latest', { layout: { reserve: 1, free: 8191 } }));
    expect(f).toMatchObject({ vmemmapPages: 32, structPagesInitialized: 32767 });
    expect(f.detail).toMatchObject({ ramPages: 0, altmapPages: 32, altmapAlignPages: 0 });
  });

  it('altmap, 4K: the first PMD block pays 510 pfns of alignment; a too-small altmap fails with ENOMEM', () => {
    expect(ok(probe(4 * KiB, 2 * GiB, 2 * MiB, 'latest', { layout: { reserve: 2, free: 8702 } })).detail).toMatchObject({ altmapPages: 8192, altmapAlignPages: 510 });
    expect(probe(4 * KiB, 2 * GiB, 2 * MiB, 'latest', { layout: { reserve: 2, free: 8192 } })).toMatchObject({ ok: false, errno: 'ENOMEM' });
  });

  it('v5.10 (1 GiB sections): same memory for full sections, 8 PMD blocks per section', () => {
    const f = ok(probe(4 * KiB, 2 * GiB, 2 * MiB, 'v5.10'));
    expect(f).toMatchObject({ vmemmapBytes: 32 * MiB });
    expect(f.detail?.sections).toBe(2);
  });

  it('64 TiB of 64K pages: 1024 sections per TiB arithmetic, 64 GiB of struct pages', () => {
    expect(ok(probe(64 * KiB, 64 * TiB, 512 * MiB)).vmemmapBytes).toBe(64 * GiB);
  });
});
