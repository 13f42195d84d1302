import { GiB, KiB, MiB, resolveFeatures, TiB, type VmemmapOutcome } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { populateX86, x86, X86_MMU } from '../src/index.js';

const ok = (r: VmemmapOutcome) => {
  if (!r.ok) throw new Error('oops' in r ? r.oops : r.message);
  return r.figures;
};
const fig = (size: number, shift: number, version: string, altmap = false) =>
  ok(populateX86(X86_MMU, { start: 64 * GiB, size, vmemmapShift: shift, altmap, features: resolveFeatures(version), version }, true));
/** through the plugin's own populator, with an nd_pfn-style altmap layout when given */
const plugin = (size: number, shift: number, version: string, layout?: { reserve: number; free: number }) =>
  x86().populator.populate(X86_MMU, { start: 64 * GiB, size, vmemmapShift: shift, altmap: !!layout, ...(layout ? { altmapLayout: layout } : {}), features: resolveFeatures(version), version });

describe('x86-64', () => {
  it('constants: 4 KiB pages, 2 MiB PMD, 1 GiB PUD, 64-byte struct page, 128 MiB sections, 2 MiB subsections; devdax 4K/2M/1G', () => {
    const a = x86();
    expect([a.mmu.basePageSize, a.mmu.pmdSize, a.mmu.pudSize, a.mmu.structPageSize, a.mmu.sectionSize, a.mmu.subsectionSize]).toEqual([4096, 2 * MiB, GiB, 64, 128 * MiB, 2 * MiB]);
    expect(a.mmu.devdaxAlignments).toEqual([4 * KiB, 2 * MiB, GiB]);
    expect(a.populator.vmemmapInInitMm).toBe(true);
    for (const v of ['v6.1', 'v6.6', 'latest']) expect(a.populator.optsInToDaxVmemmapOptimization(v)).toBe(true);
  });

  it('2 MiB compound devmap: 6 of the 8 vmemmap pages behind each compound page are saved; 128 struct pages initialised instead of 512', () => {
    // 4917f55b4ef9 (Joao Martins): "6 pages be saved out of the 8"; 6fd3620b3428: 128
    const f = fig(2 * MiB, 9, 'v6.6');
    expect(f.optimized).toBe(true);
    expect(f.savedPages).toBe(6);
    expect(f.vmemmapPages).toBe(2);
    expect(f.structPagesInitialized).toBe(128);
    expect(f.structPages).toBe(512);
  });

  it('1 GiB compound devmap: 4094 of 4096 vmemmap pages saved; 128 of 262144 struct pages initialised', () => {
    const f = fig(GiB, 18, 'v6.6');
    expect(f.savedPages).toBe(4094);
    expect(f.structPagesInitialized).toBe(128);
    expect(f.structPages).toBe(262144);
  });

  it('no optimisation before compound devmaps, or with an altmap: one struct page per page, all initialised', () => {
    const off = fig(GiB, 9, 'v5.10');
    expect(off).toMatchObject({ optimized: false, structPagesInitialized: 262144, savedPages: 0, vmemmapBytes: 16 * MiB });
    expect(fig(GiB, 9, 'v6.6', true)).toMatchObject({ optimized: false, structPagesInitialized: 262144, vmemmapPages: 4096 });
  });

  it('v6.1/v6.3 (unguarded) optimise on x86 as v6.6 does: same figures', () => {
    expect(fig(128 * GiB, 9, 'v6.3')).toEqual(fig(128 * GiB, 9, 'v6.6'));
  });

  it('a 4 TiB device is arithmetic, not a loop (64 GiB of struct pages at 64 bytes per 4 KiB)', () => {
    expect(fig(4 * TiB, 0, 'latest').vmemmapBytes).toBe(64 * GiB);
  });

  it('per 128 GiB and per 1 TiB (vmemmap-arch-reference §5.2; cover letter v7: 1 TiB of 2 MiB pages "lose 4G instead of 16G")', () => {
    expect(fig(128 * GiB, 9, 'v6.6')).toMatchObject({ vmemmapBytes: 512 * MiB, structPagesInitialized: 8388608 });
    expect(fig(128 * GiB, 18, 'v6.6')).toMatchObject({ vmemmapBytes: MiB, structPagesInitialized: 16384 });
    expect(fig(TiB, 9, 'v6.6')).toMatchObject({ vmemmapBytes: 4 * GiB, vmemmapPages: 1048576, structPagesInitialized: 67108864 });
    // "with 1G pages we lose 40MB": 8 MiB of struct-page memory + 32 MiB of PTE tables (one per
    // 128 MiB section, the optimised path maps with PTEs); only the 8 MiB is vmemmapBytes
    expect(fig(TiB, 18, 'v6.6')).toMatchObject({ vmemmapBytes: 8 * MiB, structPagesInitialized: 131072 });
  });

  it('PUD-sized (1 GiB) devdax on 2 GiB: 2 compounds, 4 vmemmap pages, 256 struct pages initialised', () => {
    expect(fig(2 * GiB, 18, 'latest')).toMatchObject({ optimized: true, vmemmapPages: 4, vmemmapBytes: 16 * KiB, savedPages: 8188, structPagesInitialized: 256 });
  });

  it('altmap from the nd_pfn layout: 2 GiB at 2 MiB alignment fits exactly (free 8702 = 16 PMD blocks + 510 alignment pfns), 2 pfns reserved', () => {
    // nd_pfn_init(): reserve = 8K / 4K = 2, offset = ALIGN(8K + 64 * 524286, 2M) = 34 MiB = 8704 pfns
    const r = plugin(2 * GiB, 9, 'latest', { reserve: 2, free: 8702 });
    const f = ok(r);
    expect(f).toMatchObject({ optimized: false, vmemmapPages: 8192, vmemmapBytes: 32 * MiB, structPagesInitialized: 524286, savedPages: 0 });
    expect(f.detail).toMatchObject({ ramPages: 0, altmapPages: 8192, altmapAlignPages: 510 });
    // one pfn less and the last PMD block cannot be had: vmemmap_populate_hugepages() -ENOMEM
    expect(plugin(2 * GiB, 9, 'latest', { reserve: 2, free: 8701 })).toMatchObject({ ok: false, errno: 'ENOMEM' });
  });

  it('altmap, 1 TiB at 1 GiB alignment: 16 GiB of memmap on the device, the surplus free pfns unused', () => {
    // offset = ALIGN(8K + 64 * (2^28 - 2), 1G) = 17 GiB = 4456448 pfns, free = 4456446
    const f = ok(plugin(TiB, 18, 'latest', { reserve: 2, free: 4456446 }));
    expect(f).toMatchObject({ vmemmapBytes: 16 * GiB, structPagesInitialized: 268435454 });
    expect(f.detail).toMatchObject({ ramPages: 0, altmapAlignPages: 510 });
  });

  it('a sub-section device gets base pages from RAM even with an altmap (vmemmap_populate_basepages(.., NULL))', () => {
    const f = ok(plugin(2 * MiB, 0, 'latest', { reserve: 2, free: 510 }));
    expect(f).toMatchObject({ vmemmapPages: 8, structPagesInitialized: 510 });
    expect(f.detail).toMatchObject({ ramPages: 8, altmapPages: 0, via: ['vmemmap_populate_basepages'] });
  });

  it('refuses page sizes x86-64 does not have', () => {
    expect(() => x86({ pageSize: '64KiB' })).toThrow(/4KiB pages only/);
  });
});
