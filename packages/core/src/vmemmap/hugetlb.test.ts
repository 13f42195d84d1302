import { describe, expect, it } from 'vitest';
import type { Mmu } from '../arch.js';
import { GiB, KiB, MiB } from '../units.js';
import { hugetlbVmemmapFigures, hugetlbVmemmapReservePages, type HugetlbVmemmapOptIn } from './hugetlb.js';

// HVO figures (mm/hugetlb_vmemmap.c, Documentation/mm/vmemmap_dedup.rst) on MMU shapes like the
// arch plugins' (which test their own opt-in per release): x86-64 4K, and arm64's 16K and 64K
// granules. The arch opt-in is a parameter here: `yes` selects HVO in every release.
const MMU4K: Mmu = { arch: 't4k', basePageSize: 4 * KiB, pmdSize: 2 * MiB, pudSize: GiB, levels: 4, structPageSize: 64, sectionSize: 128 * MiB, subsectionSize: 2 * MiB, pteBits: { special: true, devmap: true }, devdaxAlignments: [4 * KiB, 2 * MiB, GiB] };
const MMU16K: Mmu = { ...MMU4K, arch: 't16k', basePageSize: 16 * KiB, pmdSize: 32 * MiB, pudSize: 64 * GiB };
const MMU64K: Mmu = { ...MMU4K, arch: 't64k', basePageSize: 64 * KiB, pmdSize: 512 * MiB, pudSize: null, levels: 3, sectionSize: 512 * MiB };
const yes: HugetlbVmemmapOptIn = () => null;
const on = (mmu: Mmu, size: number, version = 'latest', optIn: HugetlbVmemmapOptIn | undefined = yes) => hugetlbVmemmapFigures(mmu, optIn, { hugetlbSize: size, version, enabled: true });

describe('vmemmap_dedup.rst: struct pages and vmemmap pages per HugeTLB page', () => {
  it('x86-64: a 2 MiB page has 8 vmemmap pages (PMD level: sizeof(struct page) / sizeof(pte_t) = 64 / 8), a 1 GiB page 4096 (PUD level: PAGE_SIZE pages)', () => {
    // "E.g.: A 2MB HugeTLB page on x86_64 consists in 8 page frames while 1GB HugeTLB page consists in 4096."
    expect(on(MMU4K, 2 * MiB)).toMatchObject({ structPages: 512, vmemmapPages: 8, vmemmapBytes: 32 * KiB });
    expect(on(MMU4K, GiB)).toMatchObject({ structPages: 262144, vmemmapPages: 4096, vmemmapBytes: 16 * MiB });
  });

  it('v5.18+: "remap pages 1 to 7 to page 0 ... free the remaining 7 pages"; the PUD-level page frees PAGE_SIZE - 1 = 4095', () => {
    expect(on(MMU4K, 2 * MiB)).toMatchObject({ reservePages: 1, freeablePages: 7, freedPages: 7, keptPages: 1, optimized: true });
    expect(on(MMU4K, GiB)).toMatchObject({ reservePages: 1, freeablePages: 4095, freedPages: 4095, keptPages: 1 });
  });

  it('v5.14-v5.17 kept the head page and the first tail page (RESERVE_VMEMMAP_NR 2): 6 of 8 and 4094 of 4096 freed, the cover letter\'s figures', () => {
    // cover letter "Free some vmemmap pages of HugeTLB page": "for the 1GB HugeTLB page, we can save 4094 pages"
    expect(hugetlbVmemmapReservePages('v5.17')).toBe(2);
    expect(hugetlbVmemmapReservePages('v5.18')).toBe(1);
    expect(on(MMU4K, 2 * MiB, 'v5.14')).toMatchObject({ reservePages: 2, freedPages: 6, keptPages: 2 });
    expect(on(MMU4K, GiB, 'v5.17')).toMatchObject({ reservePages: 2, freedPages: 4094, keptPages: 2 });
  });

  it('the cover letter\'s 1024 GB of hugetlb: "~16GB (1G hugepage)/~12GB (2MB hugepage)" saved in v5.14; 16380 MiB and 14 GiB once the second page is freed too', () => {
    const saved = (size: number, version: string) => (1024 * GiB / size) * on(MMU4K, size, version).freedPages * 4 * KiB;
    expect(saved(GiB, 'v5.14')).toBe(16376 * MiB); // 1024 x 4094 pages: 15.99 GiB
    expect(saved(2 * MiB, 'v5.14')).toBe(12 * GiB); // 524288 x 6 pages
    expect(saved(GiB, 'latest')).toBe(16380 * MiB);
    expect(saved(2 * MiB, 'latest')).toBe(14 * GiB);
  });

  it('arm64 granules (vmemmap_dedup.rst\'s table): PMD-level pages have 8 vmemmap pages whatever the granule; contiguous-bit sizes only when their struct pages exceed the reserve', () => {
    // 16K: 2 MiB (cont-PTE, 128 pages = 8 KiB of struct pages, half a page), 32 MiB (PMD: 8 pages), 1 GiB (cont-PMD: 256 pages)
    expect(on(MMU16K, 2 * MiB)).toMatchObject({ vmemmapBytes: 8 * KiB, optimizable: false, freedPages: 0 });
    expect(on(MMU16K, 2 * MiB).refusal).toContain('nothing to free');
    expect(on(MMU16K, 32 * MiB)).toMatchObject({ vmemmapPages: 8, freedPages: 7 });
    expect(on(MMU16K, GiB)).toMatchObject({ vmemmapPages: 256, freedPages: 255 });
    // 64K: 2 MiB (cont-PTE, 2 KiB of struct pages), 512 MiB (PMD: 8 pages), 16 GiB (cont-PMD: 256 pages)
    expect(on(MMU64K, 2 * MiB)).toMatchObject({ vmemmapBytes: 2 * KiB, vmemmapPages: 1 / 32, optimizable: false });
    expect(on(MMU64K, 512 * MiB)).toMatchObject({ vmemmapPages: 8, freedPages: 7 });
    expect(on(MMU64K, 16 * GiB)).toMatchObject({ vmemmapPages: 256, freedPages: 255 });
    // 4K: 64 KiB (cont-PTE: 1 KiB) never; 32 MiB (cont-PMD: 128 pages) frees 127
    expect(on(MMU4K, 64 * KiB).optimizable).toBe(false);
    expect(on(MMU4K, 32 * MiB)).toMatchObject({ vmemmapPages: 128, freedPages: 127 });
  });

  it('"greater than 1 page" from v5.18, "greater than 2 pages" before: a size with exactly 2 vmemmap pages is optimisable only from v5.18', () => {
    // 512 KiB of 4K pages (arithmetic only: no arch offers that size): 128 struct pages = 8 KiB = exactly 2 vmemmap pages
    expect(on(MMU4K, 512 * KiB, 'v5.17')).toMatchObject({ vmemmapPages: 2, optimizable: false, freedPages: 0 });
    expect(on(MMU4K, 512 * KiB, 'v5.18')).toMatchObject({ vmemmapPages: 2, optimizable: true, freedPages: 1 });
  });
});

describe('what refuses HVO, in the kernel\'s order', () => {
  it('no HVO before v5.14, whatever the arch says', () => {
    const f = on(MMU4K, 2 * MiB, 'v5.10');
    expect(f).toMatchObject({ optimizable: false, optimized: false, freedPages: 0, keptPages: 8 });
    expect(f.refusal).toContain('v5.14');
  });

  it('an arch that does not select it: its reason; an arch plugin without the hook has no HVO', () => {
    const f = on(MMU4K, 2 * MiB, 'latest', () => 'not selected here');
    expect(f).toMatchObject({ optimizable: false, refusal: 'not selected here', freedPages: 0 });
    expect(hugetlbVmemmapFigures(MMU4K, undefined, { hugetlbSize: 2 * MiB, version: 'latest', enabled: true }).refusal).toContain('ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP');
  });

  it('a struct page that is not a power of two (e.g. 80 bytes with debug options) is never optimised', () => {
    const f = on({ ...MMU4K, structPageSize: 80 }, 2 * MiB);
    expect(f).toMatchObject({ optimizable: false, freedPages: 0 });
    expect(f.refusal).toContain('power of two');
  });

  it('switched off (the default: HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON is n): optimisable, nothing freed', () => {
    const f = hugetlbVmemmapFigures(MMU4K, yes, { hugetlbSize: 2 * MiB, version: 'latest', enabled: false });
    expect(f).toMatchObject({ optimizable: true, freeablePages: 7, enabled: false, optimized: false, freedPages: 0, keptPages: 8 });
  });

  it('memmap_on_memory: from v6.0 a page whose vmemmap is self-hosted is refused; before, HVO took precedence and nothing was self-hosted', () => {
    const q = { hugetlbSize: 2 * MiB, enabled: true, memmapOnMemory: true };
    expect(hugetlbVmemmapFigures(MMU4K, yes, { ...q, version: 'v6.1' })).toMatchObject({ optimizable: true, optimized: false, freedPages: 0 });
    expect(hugetlbVmemmapFigures(MMU4K, yes, { ...q, version: 'v6.1' }).folioRefusal).toContain('PageVmemmapSelfHosted');
    expect(hugetlbVmemmapFigures(MMU4K, yes, { ...q, version: 'v5.19' })).toMatchObject({ optimized: true, freedPages: 7, folioRefusal: null });
  });

  it('a size that is not a multiple of PAGE_SIZE is a programming error, not a figure', () => {
    expect(() => on(MMU4K, 6 * KiB)).toThrow(RangeError);
  });
});
