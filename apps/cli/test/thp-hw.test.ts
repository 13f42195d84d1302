import { createKernel, PRESETS, type ArchPlugin, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

/**
 * fs-dax tries a PMD fault only where the MMU has transparent hugepages: hugepage_init() marks THP
 * unsupported when has_transparent_hugepage() is false (TRANSPARENT_HUGEPAGE_NEVER_DAX, later
 * _UNSUPPORTED / thp_disabled_by_hw()), and then no DAX VMA gets ->huge_fault. On ppc64 hash that
 * is every 4 KiB-page kernel (hash__has_transparent_hugepage() wants PMD_SHIFT 24).
 */
function firstLeaf(arch: ArchPlugin, version: string, pmdBytes: number, align = pmdBytes): { level: string; mapped: number } {
  const k: Kernel = createKernel({ arch, fs: xfs(), driver: nvdimm(), kernel: version });
  k.run(k.probe({ size: 2 ** 30, align, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: pmdBytes }));
  k.run(k.mmap({ file: 'a', length: pmdBytes, shared: true, write: true, as: 'm' }));
  k.run(k.write({ map: 'm', page: 0, data: 'A' }));
  const vma = k.map('m');
  const mm = k.process('init');
  const leaf = k.vm.lookup(mm, vma.start)!;
  let mapped = 0;
  for (let p = 0; p < vma.pages; p++) if (k.vm.lookup(mm, vma.start + p)) mapped++;
  return { level: leaf.pte.level, mapped };
}

describe('fs-dax PMD faults need hardware THP', () => {
  it('ppc64 hash, 4 KiB pages: one write maps one PTE (no PMD) on every release', () => {
    // the namespace at 4 KiB: nd_pfn_supported_alignments() offers nothing larger without THP
    for (const { name } of PRESETS) expect({ name, ...firstLeaf(ppcHash({ pageSize: '4KiB' }), name, 2 ** 21, 4096) }).toEqual({ name, level: 'pte', mapped: 1 });
  });

  it('where THP exists the same write maps the whole aligned PMD: ppc64 hash 64 KiB (16 MiB), x86 and arm64 4 KiB (2 MiB)', () => {
    for (const { name } of PRESETS) {
      // 16 MiB / 64 KiB = 256 pages; 2 MiB / 4 KiB = 512
      expect({ name, ...firstLeaf(ppcHash(), name, 2 ** 24) }).toEqual({ name, level: 'pmd', mapped: 256 });
      expect({ name, ...firstLeaf(x86(), name, 2 ** 21) }).toEqual({ name, level: 'pmd', mapped: 512 });
      // arm64 has ZONE_DEVICE from v5.7 (its plugin refuses v5.4)
      if (name !== 'v5.4') expect({ name, ...firstLeaf(arm64(), name, 2 ** 21) }).toEqual({ name, level: 'pmd', mapped: 512 });
    }
  });
});
