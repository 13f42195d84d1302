import { GiB, KiB, MiB, resolveFeatures, TiB, type KernelDescription, type VmemmapFigures, type VmemmapRequest } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { S390_MMU, S390_PUD_SIZE, s390, s390SectionSize, s390Unsupported } from '../src/index.js';

const req = (size: number, version: string, extra: Partial<VmemmapRequest> = {}): VmemmapRequest => ({
  start: 64 * GiB,
  size,
  vmemmapShift: 0,
  altmap: false,
  features: resolveFeatures(version),
  version,
  ...extra,
});
const figures = (r: VmemmapRequest, plugin = s390()): VmemmapFigures => {
  const out = plugin.populator.populate(plugin.mmu, r);
  if (!out.ok) throw new Error('oops' in out ? out.oops : out.message);
  return out.figures;
};
const kernel = (version: string, driver: string | null, fs: string | null = null): KernelDescription => ({ arch: 's390', pageSize: 4096, fs, driver, version, features: resolveFeatures(version) });

describe('s390: constants (arch/s390/include/asm/sparsemem.h, pgtable.h, Kconfig)', () => {
  it('4 KiB pages, 1 MiB segments (PMD), 2 GiB region-third (PUD), 64-byte struct page', () => {
    expect([S390_MMU.basePageSize, S390_MMU.pmdSize, S390_PUD_SIZE, S390_MMU.structPageSize, S390_MMU.subsectionSize]).toEqual([4 * KiB, MiB, 2 * GiB, 64, 2 * MiB]);
  });

  it('SECTION_SIZE_BITS 28 until e3a6970b7daf (v6.13), 27 after', () => {
    expect(['v5.4', 'v6.1', 'v6.6'].map(s390SectionSize)).toEqual([256 * MiB, 256 * MiB, 256 * MiB]);
    expect(['v6.15', 'latest'].map(s390SectionSize)).toEqual([128 * MiB, 128 * MiB]);
  });

  it('pte_special but no devmap bit (ARCH_HAS_PTE_SPECIAL, never ARCH_HAS_PTE_DEVMAP); no PUD-sized device mappings', () => {
    expect(S390_MMU.pteBits).toEqual({ special: true, devmap: false, softDirty: true });
    expect(S390_MMU.pudSize).toBeNull();
  });

  it('refuses page sizes s390 does not have', () => {
    expect(() => s390({ pageSize: '64KiB' })).toThrow(/pageSize 64KiB is not supported; s390 has 4KiB pages only/);
    expect(s390({ pageSize: 4096 }).mmu).toBe(S390_MMU);
  });
});

describe('s390: what the kernel can build', () => {
  it('before the devmap removal no ZONE_DEVICE at all: device-dax, pmem and any other pgmap driver are refused with the Kconfig reason', () => {
    for (const v of ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15']) {
      expect(s390Unsupported(kernel(v, 'devdax'))).toMatch(/^device-dax on s390: ZONE_DEVICE cannot be enabled on s390: mm\/Kconfig makes it depend on ARCH_HAS_PTE_DEVMAP .* never selects/);
      expect(s390Unsupported(kernel(v, 'nvdimm'))).toMatch(/^pmem \(nvdimm\) on s390: ZONE_DEVICE cannot be enabled/);
      expect(s390Unsupported(kernel(v, 'hmm'))).toMatch(/^hmm on s390: ZONE_DEVICE cannot be enabled/);
    }
    expect(s390Unsupported(kernel('v6.6', 'nvdimm', 'xfs'))).toMatch(/^fs-dax \(xfs\) on s390: .*FS_DAX there was only FS_DAX_LIMITED \(dcssblk, DAX without struct pages\) until v6.15$/);
  });

  it('after it (latest): ZONE_DEVICE is configurable, device-private works, but nothing produces device-dax or pmem memory', () => {
    expect(s390Unsupported(kernel('latest', 'hmm'))).toBeNull();
    expect(s390Unsupported(kernel('latest', 'devdax'))).toMatch(/^device-dax on s390: ZONE_DEVICE is configurable since the devmap removal \(v6.17\), but no s390 platform creates device-dax or pmem memory: DEV_DAX_HMEM needs EFI_SOFT_RESERVE/);
    expect(s390Unsupported(kernel('latest', 'nvdimm', 'ext4'))).toMatch(/^fs-dax \(ext4\) on s390: ZONE_DEVICE is configurable/);
  });

  it('a kernel with neither a DAX filesystem nor a device driver (anonymous memory, GUP, fork) builds in every version', () => {
    for (const v of ['v5.4', 'v6.6', 'latest']) expect(s390().unsupported?.(kernel(v, null))).toBeNull();
  });
});

describe("s390's own vmemmap_populate (arch/s390/mm/vmem.c): 1 MiB frames, no base-page helper", () => {
  it('whole frames per 64 MiB of memory: 2 GiB costs 32 MiB, 128 GiB 2 GiB, 1 TiB 16 GiB; every struct page is written', () => {
    expect(figures(req(2 * GiB, 'latest'))).toMatchObject({ vmemmapBytes: 32 * MiB, vmemmapPages: 8192, structPages: 524288, structPagesInitialized: 524288, optimized: false });
    expect(figures(req(128 * GiB, 'latest')).vmemmapBytes).toBe(2 * GiB);
    expect(figures(req(TiB, 'latest')).vmemmapBytes).toBe(16 * GiB);
  });

  it('frames are used "even if they are only partially used": a 2 MiB device (32 KiB of memmap) takes a whole 1 MiB frame with EDAT1, 8 pages without', () => {
    expect(figures(req(2 * MiB, 'latest')).vmemmapBytes).toBe(MiB);
    expect(figures(req(2 * MiB, 'latest'), s390({ edat1: false })).vmemmapBytes).toBe(32 * KiB);
  });

  it('sections per release: a 1 GiB range is 4 sections of 256 MiB on v6.6, 8 of 128 MiB on latest, at the same cost', () => {
    const old = figures(req(GiB, 'v6.6'));
    const now = figures(req(GiB, 'latest'));
    expect([old.detail?.sections, now.detail?.sections]).toEqual([4, 8]);
    expect(old.vmemmapBytes).toBe(now.vmemmapBytes);
  });

  it('the altmap is honoured only since memmap_on_memory for s390 (v6.8): before, frames come from RAM', () => {
    const layout = { reserve: 0, free: 2048 };
    expect(figures(req(GiB, 'v6.6', { altmap: true, altmapLayout: layout })).detail).toMatchObject({ ramPages: 4096, altmapPages: 0 });
    expect(figures(req(GiB, 'latest', { altmap: true, altmapLayout: { reserve: 0, free: 4096 } })).detail).toMatchObject({ ramPages: 0, altmapPages: 4096 });
  });

  it('the generic compound path cannot build s390 tables: unguarded + a compound pgmap is an oops (hypothetical: no ZONE_DEVICE then)', () => {
    const out = s390().populator.populate(S390_MMU, req(GiB, 'v6.1', { vmemmapShift: 8 }));
    expect(out.ok).toBe(false);
    expect('oops' in out && out.oops).toMatch(/CRST tables are 16 KiB with invalid-bit empty entries/);
    expect(figures(req(GiB, 'v6.6', { vmemmapShift: 8 })).optimized).toBe(false);
  });

  it('opts in to the DAX vmemmap optimisation only in v6.4-v6.5 (the renamed HugeTLB option); no preset is in that window', () => {
    const p = s390().populator;
    expect(['v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest'].map((v) => p.optsInToDaxVmemmapOptimization(v))).toEqual([false, false, false, false, false]);
  });
});
