import { resolveFeatures } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { populateX86, x86, X86_MMU } from '../src/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const fig = (size: number, shift: number, version: string, altmap = false) => {
  const r = populateX86(X86_MMU, { start: 64 * GiB, size, vmemmapShift: shift, altmap, features: resolveFeatures(version), version }, true);
  if (!r.ok) throw new Error(r.oops);
  return r.figures;
};

describe('x86-64', () => {
  it('constants: 4 KiB pages, 2 MiB PMD, 1 GiB PUD, 64-byte struct page, 128 MiB sections', () => {
    const a = x86();
    expect([a.mmu.basePageSize, a.mmu.pmdSize, a.mmu.pudSize, a.mmu.structPageSize, a.mmu.sectionSize]).toEqual([4096, 2 * MiB, GiB, 64, 128 * MiB]);
  });

  it('2 MiB compound devmap: 6 of the 8 vmemmap pages behind each compound page are saved; 128 struct pages initialised instead of 512', () => {
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

  it('a 4 TiB device is arithmetic, not a loop (64 GiB of struct pages at 64 bytes per 4 KiB)', () => {
    expect(fig(4 * 1024 * GiB, 0, 'latest').vmemmapBytes).toBe(64 * GiB);
  });

  it('refuses page sizes x86-64 does not have', () => {
    expect(() => x86({ pageSize: '64KiB' })).toThrow(/4KiB pages only/);
  });
});
