import { KernelError } from './errors.js';
import type { ArchPlugin, Kernel, Mmu, VmemmapPopulator } from './index.js';

// Published as @daxlab/core/testing: fixtures for plugin authors' tests (and daxlab's own), not part
// of the simulated kernel.

/**
 * A test arch for core's own tests (core cannot depend on the arch packages, which depend on
 * core). It has x86-64's MMU constants (arch/x86/include/asm/pgtable_64_types.h: 4 KiB pages,
 * 2 MiB PMD, 1 GiB PUD, 128 MiB sections) and a plain base-page populator: one struct page per
 * page, every struct page initialised — enough for the page-lifecycle tests, which do not look
 * at vmemmap figures (the arch packages test those).
 */
export function testArch(): ArchPlugin {
  const mmu: Mmu = {
    arch: 'x86',
    basePageSize: 4096,
    pmdSize: 2 * 1024 * 1024,
    pudSize: 1024 * 1024 * 1024,
    levels: 4,
    structPageSize: 64,
    sectionSize: 128 * 1024 * 1024,
    subsectionSize: 2 * 1024 * 1024,
    pteBits: { special: true, devmap: true, softDirty: true },
    devdaxAlignments: [4096, 2 * 1024 * 1024, 1024 * 1024 * 1024],
    hugetlbSizes: [2 * 1024 * 1024, 1024 * 1024 * 1024], // x86-64 with GBPAGES
    memfdSecretSince: [5, 14], // x86-64: memfd_secret from v5.14
    uffdWpSince: [5, 7], // x86-64: HAVE_ARCH_USERFAULTFD_WP from v5.7
    uffdMinorSince: [5, 13], // x86-64: HAVE_ARCH_USERFAULTFD_MINOR from v5.13
    collapseFlushWaitsForGupFast: true, // x86-64: the collapse's TLB flush IPI waits for GUP-fast
  };
  const populator: VmemmapPopulator = {
    vmemmapInInitMm: true,
    optsInToDaxVmemmapOptimization: () => true,
    hugetlbVmemmapOptIn: () => null, // x86-64 has HVO in every release that has it (v5.14+)
    vmemmapPmdMapped: () => true, // x86-64 maps RAM's memmap with 2 MiB PMD leaves (vmemmap_populate_hugepages)
    populate: (m, req) => {
      const pages = req.size / m.basePageSize;
      const bytes = pages * m.structPageSize;
      return { ok: true, figures: { structPages: pages, structPagesInitialized: pages, vmemmapPages: Math.ceil(bytes / m.basePageSize), vmemmapBytes: bytes, savedPages: 0, optimized: false } };
    },
  };
  return { kind: 'arch', name: 'test-arch', arch: 'x86', mmu, populator };
}

/** An arch whose vmemmap population crashes, to test that a populator oops ends the run. */
export function crashingArch(): ArchPlugin {
  const a = testArch();
  return { ...a, name: 'crashing-arch', populator: { ...a.populator, populate: () => ({ ok: false, oops: 'Unable to handle kernel paging request (test)' }) } };
}

/**
 * Record a filesystem's ordering as the tests of fs-xfs, fs-ext4 and fs-fuse assert it: the
 * `fs.step` names (the kernel functions the plugin cites) and the DAX/mm facts between them —
 * `unmap` (pte.clear), `scan`/`busy` (dax.busy), `wait` (dax.wait), `delete-entry`, and the block
 * events under the names given (a filesystem block, or a FUSE window range) — with consecutive
 * repeats folded.
 */
export function fsSequence(k: Kernel, blocks: { free: string; alloc?: string } = { free: 'free-block' }): string[] {
  const seen: string[] = [];
  k.bus.all().subscribe((e) => {
    const d = e.data as Record<string, unknown>;
    let s: string | null = null;
    if (e.type === 'fs.step') s = String(d['step']);
    if (e.type === 'pte.clear') s = 'unmap';
    if (e.type === 'dax.busy') s = d['pfn'] === null ? 'scan' : 'busy';
    if (e.type === 'dax.wait') s = 'wait';
    if (e.type === 'dax.entry' && d['op'] === 'delete') s = 'delete-entry';
    if (e.type === 'block.free') s = blocks.free;
    if (e.type === 'block.alloc' && blocks.alloc) s = blocks.alloc;
    if (s !== null && s !== seen[seen.length - 1]) seen.push(s);
  });
  return seen;
}

/**
 * The fallocate tests' file: a mounted 1 GiB device `pmem0` holding file `a` of `pages` pages
 * (blocks 0.. first fit on pmem), mapped shared as `m`, page p written with `${tag}${p}`.
 */
export function mappedWrittenFile(k: Kernel, pages: number, tag = 'A'): Kernel {
  k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: pages * k.mmu.basePageSize }));
  k.run(k.mmap({ file: 'a', length: pages * k.mmu.basePageSize, shared: true, write: true, as: 'm' }));
  for (let p = 0; p < pages; p++) k.run(k.write({ map: 'm', page: p, data: `${tag}${p}` }));
  return k;
}

/**
 * One khugepaged pass over the VMA a mapping of `init` starts with (the `khugepaged-scan` step):
 * the scan results, one per PMD range visited (mm/collapse.ts Khugepaged.scan).
 */
export function khugepagedPass(k: Kernel, map: string): string[] {
  const mm = k.processes.get('init')!;
  const vma = mm.vmas.find((v) => v.name === map)!;
  return k.run(k.thp.khugepaged.scan(mm, vma.start, vma.start + vma.pages));
}

/** The pfn a mapping of `init` maps at `page` (a subpage of a huge leaf included); -1 when nothing is mapped there. */
export function pfnMappedAt(k: Kernel, map: string, page: number): number {
  const mm = k.processes.get('init')!;
  const vma = mm.vmas.find((v) => v.name === map)!;
  const leaf = k.vm.lookup(mm, vma.start + page);
  return leaf ? k.vm.pfnAt(leaf, vma.start + page) : -1;
}

/** The errno `f` fails with (`unsupported: CODE` when refused as not modelled), or 'no error'. */
export function errnoOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e.unsupported ? `unsupported: ${e.code}` : e.code;
    throw e;
  }
  return 'no error';
}

/** The GUPs made while `f` runs (`gup.pin` events): [FOLL_PIN?, FOLL_WRITE?] each. */
export function gupsDuring(k: Kernel, f: () => void): [boolean, boolean][] {
  const seen: [boolean, boolean][] = [];
  const sub = k.bus.on('gup.pin').subscribe((e) => seen.push([e.data.pin, e.data.write]));
  try {
    f();
  } finally {
    sub.unsubscribe();
  }
  return seen;
}
