import { describe, expect, it } from 'vitest';
import { createKernel, type ArchPlugin } from '../src/index.js';
import { testArch } from '../src/testing.js';

/** testArch with another base page size (PMD = one page table of 8-byte entries, as on 64-bit). */
function archWithPages(pageSize: number): ArchPlugin {
  const a = testArch();
  return { ...a, mmu: { ...a.mmu, basePageSize: pageSize, pmdSize: (pageSize / 8) * pageSize, devdaxAlignments: [pageSize] } };
}

describe('RAM and device ranges do not share pfns, whatever the base page size', () => {
  for (const pageSize of [4096, 16384, 65536]) {
    it(`${pageSize / 1024} KiB pages: the zero page sits at 4 GiB and anon pages stay below the first device range`, () => {
      const k = createKernel({ arch: archWithPages(pageSize), kernel: 'latest' });
      expect(k.zeroPfn * pageSize).toBe(4 * 2 ** 30);
      expect(k.hugeZeroPfn).toBe(k.zeroPfn + k.vm.pmdPages);
      const pgmap = k.memremap.memremapPages({ device: 'dev0', type: 'generic', size: 2 ** 30, vmemmapShift: 0, altmapPfns: 0 });
      k.run(k.mmap({ anon: true, length: 8 * pageSize, write: true, as: 'm' }));
      for (let p = 0; p < 8; p++) k.run(k.write({ map: 'm', page: p, data: 'x' }));
      const anon = [...Array(8).keys()].map((p) => k.pfnOf({ map: 'm', page: p })!);
      // first allocation after the zero and huge zero pages; none inside the device's pfns
      expect(anon[0]).toBe(k.zeroPfn + 2 * k.vm.pmdPages);
      expect(anon.every((pfn) => pfn < pgmap.startPfn && k.folios.kind(pfn) === 'ram' && k.isAnon(pfn))).toBe(true);
    });
  }
});
