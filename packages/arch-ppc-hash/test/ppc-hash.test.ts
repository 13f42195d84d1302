import { GiB, KiB, MiB, resolveFeatures, TiB, type VmemmapFigures, type VmemmapRequest } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { H_PUD_SIZE_4K, H_PUD_SIZE_64K, PPC_HASH_4K_MMU, PPC_HASH_64K_MMU, ppcHash } from '../src/index.js';

const req = (size: number, shift: number, version: string, extra: Partial<VmemmapRequest> = {}): VmemmapRequest => ({
  start: 64 * GiB,
  size,
  vmemmapShift: shift,
  altmap: false,
  features: resolveFeatures(version),
  version,
  ...extra,
});
const figures = (r: VmemmapRequest, plugin = ppcHash()): VmemmapFigures => {
  const out = plugin.populator.populate(plugin.mmu, r);
  if (!out.ok) throw new Error('oops' in out ? out.oops : out.message);
  return out.figures;
};
const oopsOf = (r: VmemmapRequest, plugin = ppcHash()): string => {
  const out = plugin.populator.populate(plugin.mmu, r);
  if (out.ok || !('oops' in out)) throw new Error(`expected an oops, got ${JSON.stringify(out)}`);
  return out.oops;
};
/** 16 MiB device-dax alignment on 64K pages: pgmap->vmemmap_shift = order_base_2(16M >> 16) = 8 */
const SHIFT_16M = 8;

describe('ppc64 hash: constants (arch/powerpc/include/asm/book3s/64/hash-64k.h, hash-4k.h, sparsemem.h)', () => {
  it('64K pages: PMD 2^(16+8) = 16 MiB, PUD 2^(24+10) = 16 GiB, sections of 2^24 = 256 pages, subsections of 32 pages', () => {
    const m = PPC_HASH_64K_MMU;
    expect([m.basePageSize, m.pmdSize, H_PUD_SIZE_64K, m.sectionSize, m.subsectionSize, m.structPageSize]).toEqual([64 * KiB, 16 * MiB, 16 * GiB, 16 * MiB, 2 * MiB, 64]);
    expect(m.sectionSize / m.basePageSize).toBe(256);
    expect(m.subsectionSize / m.basePageSize).toBe(32);
    expect(m.memremapCompatAlign).toBe(16 * MiB);
  });

  it('64K pages: device-dax offers PAGE_SIZE and PMD_SIZE (hash THP), no PUD (has_transparent_pud_hugepage() is radix-only)', () => {
    expect(PPC_HASH_64K_MMU.devdaxAlignments).toEqual([64 * KiB, 16 * MiB]);
    expect(PPC_HASH_64K_MMU.pudSize).toBeNull();
    expect(PPC_HASH_64K_MMU.pteBits).toEqual({ special: true, devmap: true, softDirty: true });
  });

  it('4K pages: PMD 2^(12+9) = 2 MiB, PUD 2^(21+7) = 256 MiB, and no THP on hash (PMD_SHIFT is not 24): device-dax at PAGE_SIZE only', () => {
    const m = PPC_HASH_4K_MMU;
    expect([m.basePageSize, m.pmdSize, H_PUD_SIZE_4K, m.sectionSize]).toEqual([4 * KiB, 2 * MiB, 256 * MiB, 16 * MiB]);
    expect(m.devdaxAlignments).toEqual([4 * KiB]);
    expect(ppcHash({ pageSize: '4KiB' }).mmu).toBe(PPC_HASH_4K_MMU);
  });

  it('refuses page sizes book3s64 does not have, and vmemmap page sizes the hash MMU does not use', () => {
    expect(() => ppcHash({ pageSize: '16KiB' })).toThrow(/pageSize 16KiB is not a powerpc64 book3s page size; use 64KiB .* or 4KiB/);
    expect(() => ppcHash({ vmemmapPageSize: '2MiB' })).toThrow(/vmemmapPageSize 2MiB is not an mmu_vmemmap_psize for 64KiB pages; use 16MiB or 64KiB/);
    expect(() => ppcHash({ vmemmapPageSize: '4KiB' })).toThrow(/use 16MiB or 64KiB/);
  });

  it('every preset builds (ZONE_DEVICE and the devmap bit are there for PPC_BOOK3S_64)', () => {
    const a = ppcHash();
    for (const v of ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']) {
      expect(a.unsupported?.({ arch: 'ppc-hash', pageSize: 65536, fs: 'xfs', driver: 'devdax', version: v, features: resolveFeatures(v) })).toBeNull();
    }
  });
});

describe('seed 003: the devdax probe oops (87a7ae75d738)', () => {
  it('v6.1 and v6.3 (vmemmap-optimize=unguarded): a 16 MiB-aligned devdax takes vmemmap_populate_compound_pages() and faults on its first struct page', () => {
    for (const v of ['v6.1', 'v6.3']) {
      const msg = oopsOf(req(GiB, SHIFT_16M, v));
      // device at 64 GiB: pfn 0x100000; struct page at H_VMEMMAP_START + 0x100000 * 64; the first
      // store of mm_zero_struct_page() is the last word, offset 0x38
      expect(msg).toContain('Unable to handle kernel data access on write at 0xc00c000004000038');
      expect(msg).toContain('LE PAGE_SIZE=64K MMU=Hash');
      expect(msg).toMatch(/__init_single_page <- __init_zone_device_page <- memmap_init_zone_device <- memremap_pages <- devm_memremap_pages <- dev_dax_probe/);
    }
  });

  it("reproduces the seed's own fault address: 0xc00c000100400038 is the first struct page of a device at 4 TiB + 4 GiB", () => {
    expect(oopsOf(req(GiB, SHIFT_16M, 'v6.3', { start: 4 * TiB + 4 * GiB }))).toContain('at 0xc00c000100400038;');
  });

  it('v6.6+ (arch-opt-in): hash never opts in, so the same probe completes without the optimisation', () => {
    for (const v of ['v6.6', 'v6.15', 'latest']) {
      const f = figures(req(GiB, SHIFT_16M, v));
      expect(f).toMatchObject({ optimized: false, savedPages: 0, structPages: 16384, structPagesInitialized: 16384 });
      // 1 GiB of 64K pages needs 1 MiB of struct pages, but hash bolts whole 16 MiB vmemmap pages
      expect(f.vmemmapBytes).toBe(16 * MiB);
    }
    expect(ppcHash().populator.optsInToDaxVmemmapOptimization('latest')).toBe(false);
    expect(ppcHash().populator.vmemmapInInitMm).toBe(false);
  });

  it('no compound pages, no compound path: order-0 devdax (64K align) and an altmap never oops, even unguarded', () => {
    expect(figures(req(GiB, 0, 'v6.1')).optimized).toBe(false);
    expect(figures(req(GiB, SHIFT_16M, 'v6.1', { altmap: true, altmapLayout: { reserve: 1, free: 16384 } })).optimized).toBe(false);
  });
});

describe('hash vmemmap population: bolted mmu_vmemmap_psize blocks (arch/powerpc/mm/init_64.c)', () => {
  it('one 16 MiB block holds the struct pages of 16 GiB: 2 GiB costs 16 MiB, 128 GiB 128 MiB, 1 TiB 1 GiB', () => {
    expect(figures(req(2 * GiB, 0, 'latest'))).toMatchObject({ vmemmapBytes: 16 * MiB, vmemmapPages: 256, structPages: 32768, structPagesInitialized: 32768 });
    expect(figures(req(128 * GiB, 0, 'latest'))).toMatchObject({ vmemmapBytes: 128 * MiB, structPages: 2097152 });
    expect(figures(req(TiB, 0, 'latest'))).toMatchObject({ vmemmapBytes: GiB, structPages: 16777216 });
  });

  it('with 64 KiB vmemmap pages (no 16M pages, or < 1 GiB RAM at boot) the cost is the struct pages rounded to 64 KiB', () => {
    // 1 GiB: 16384 struct pages * 64 B = 1 MiB = 16 blocks; a 16 MiB section's 16 KiB of memmap shares a block with 3 others
    const f = figures(req(GiB, 0, 'latest'), ppcHash({ vmemmapPageSize: '64KiB' }));
    expect([f.vmemmapBytes, f.vmemmapPages]).toEqual([MiB, 16]);
  });

  it('a device in the same 16 GiB window as a live one allocates nothing: vmemmap_populated() finds its block already bolted', () => {
    // devices are 1 GiB apart: the second (65 GiB) shares the first's block (64-80 GiB)
    const second = figures(req(GiB, 0, 'latest', { start: 65 * GiB, present: [{ start: 64 * GiB, size: GiB }] }));
    expect([second.vmemmapBytes, second.structPagesInitialized]).toEqual([0, 16384]);
    // a neighbour in another window changes nothing (79 GiB is in the 64-80 GiB window) ...
    expect(figures(req(32 * GiB, 0, 'latest', { start: 80 * GiB, present: [{ start: 79 * GiB, size: GiB }] })).vmemmapBytes).toBe(32 * MiB);
    // ... one in the window where the range starts saves that block: 81-112 GiB needs 80-96 (shared) and 96-112
    expect(figures(req(31 * GiB, 0, 'latest', { start: 81 * GiB, present: [{ start: 80 * GiB, size: GiB }] })).vmemmapBytes).toBe(16 * MiB);
  });

  it('a 64 TiB device is arithmetic: 4096 blocks, 64 GiB of vmemmap for 2^30 struct pages', () => {
    expect(figures(req(64 * TiB, 0, 'latest'))).toMatchObject({ vmemmapBytes: 64 * GiB, structPages: 2 ** 30 });
  });

  it('altmap: blocks whose 16 GiB window lies inside the device come from it; before v6.5 altmap_cross_boundary() also sent the window ending at end_pfn to RAM', () => {
    // 128 GiB at 64 GiB: 8 windows. nd_pfn reserve on 64K pages: ALIGN(8K, PAGE_SIZE) = 1 pfn.
    // First altmap block: next pfn base+1, aligned to 256 (the block's pfn count) -> 255 pfns of padding.
    const layout = { reserve: 1, free: 4096 };
    const fixed = figures(req(128 * GiB, 0, 'latest', { altmap: true, altmapLayout: layout }));
    expect(fixed.detail).toMatchObject({ altmapPages: 8 * 256, altmapAlignPages: 255, ramPages: 0 });
    const old = figures(req(128 * GiB, 0, 'v6.3', { altmap: true, altmapLayout: layout }));
    expect(old.detail).toMatchObject({ altmapPages: 7 * 256, altmapAlignPages: 255, ramPages: 256 });
    expect([fixed.vmemmapBytes, old.vmemmapBytes]).toEqual([128 * MiB, 128 * MiB]);
  });

  it('altmap: a device smaller than one window (2 GiB) gets its only block from RAM', () => {
    const f = figures(req(2 * GiB, 0, 'latest', { altmap: true, altmapLayout: { reserve: 1, free: 1024 } }));
    expect(f.detail).toMatchObject({ altmapPages: 0, ramPages: 256 });
  });
});
