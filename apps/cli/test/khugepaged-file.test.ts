import { createKernel, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { khugepagedPass, pfnMappedAt } from '@daxlab/core/testing';

// khugepaged and MADV_COLLAPSE on a read-only regular file of a non-DAX filesystem
// (CONFIG_READ_ONLY_THP_FOR_FS: core mm/collapse.ts fileVmaAllowsCollapse, collapseFile;
// mm/khugepaged.c hpage_collapse_scan_file(), collapse_file(), retract_page_tables(),
// collapse_pte_mapped_thp(); mm/huge_memory.c file_thp_enabled()), on x86: 4 KiB pages,
// 2 MiB PMDs, HPAGE_PMD_NR = 512. The shmem side is in packages/core/test/khugepaged-file.test.ts.
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest', readOnlyThp = false): Kernel {
  return createKernel({ arch: x86(), driver: nvdimm(), fs: xfs(), kernel: version, ...(readOnlyThp ? { features: { 'read-only-thp-for-fs': true } } : {}) });
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function code(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? null;
  }
}

/**
 * khugepaged.c's file_setup_area() on a non-DAX filesystem: the file written through a shared
 * mapping (the selftest uses write(2): the same page-cache contents), unmapped, the page cache
 * dropped (drop_caches: eviction writes it back to the blocks), then mapped MAP_PRIVATE
 * PROT_READ|PROT_EXEC from a read-only open, and `cached` pages read back in.
 */
function roFile(k: Kernel, cached: Iterable<number>, exec = true): void {
  k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax: 'never' }));
  k.run(k.create({ file: 'f', size: 2 * MiB }));
  k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w' }));
  for (const page of upTo(NR)) k.run(k.write({ map: 'w', page, data: `f${page}` }));
  k.run(k.munmap({ map: 'w' }));
  k.run(k.dropCaches({}));
  k.run(k.mmap({ file: 'f', length: 2 * MiB, exec, as: 'mem' }));
  for (const page of cached) k.run(k.read({ map: 'mem', page }));
}

const at = (page: number) => ({ map: 'mem', page });
const fileThps = (k: Kernel): number => k.pmdMappedCacheThpsIn(at(0), 'file');

describe('a read-only regular file (CONFIG_READ_ONLY_THP_FOR_FS)', () => {
  it('MADV_COLLAPSE needs the config; it reads the uncached pages in and maps the folio by a PMD', () => {
    const off = kernel('latest');
    roFile(off, upTo(NR));
    expect(code(() => off.run(off.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    const k = kernel('latest', true);
    // only pages 0..9 cached: MADV_COLLAPSE has no max_ptes_none, collapse_file() reads the rest in (readahead)
    roFile(k, upTo(10));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(fileThps(k)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('f0');
    expect(k.run(k.read({ map: 'mem', page: 400 }))).toBe('f400');
    // a private read-only file mapping: the PMD is read-only (vm_page_prot)
    expect(k.isWritableIn(at(0))).toBe(false);
  });

  it('khugepaged: fewer than HPAGE_PMD_NR - max_ptes_none cached pages is SCAN_EXCEED_NONE_PTE; a VMA without VM_HUGEPAGE is passed over', () => {
    const k = kernel('v6.6', true);
    roFile(k, upTo(255));
    expect(khugepagedPass(k, 'mem')).toEqual([]);
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    // khugepaged.c collapse_max_ptes_none: max_ptes_none = 256, 255 pages cached < 512 - 256
    k.run(k.khugepagedLimits({ maxPtesNone: 256 }));
    expect(khugepagedPass(k, 'mem')).toEqual(['exceed-none-pte']);
    k.run(k.read({ map: 'mem', page: 255 }));
    // a read fault reads only its own page (read_ahead_kb = 0; fault-around maps cached pages only): 256 cached
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    expect(fileThps(k)).toBe(0);
    k.run(k.read({ map: 'mem', page: 0 }));
    expect(fileThps(k)).toBe(1);
  });

  it('is refused while the file is open for write, with a dirty page (SCAN_FAIL), without VM_EXEC before v6.9, and before v5.12 (VM_DENYWRITE)', () => {
    const writer = kernel('latest', true);
    roFile(writer, upTo(NR));
    writer.run(writer.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w2' }));
    expect(code(() => writer.run(writer.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    // written through a shared mapping and unmapped, not written back: the folio stays PG_dirty
    const dirty = kernel('latest', true);
    roFile(dirty, []);
    dirty.run(dirty.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w2' }));
    dirty.run(dirty.write({ map: 'w2', page: 3, data: 'new' }));
    dirty.run(dirty.munmap({ map: 'w2' }));
    expect(code(() => dirty.run(dirty.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    expect(fileThps(dirty)).toBe(0);

    const noExec = kernel('v6.6', true);
    roFile(noExec, upTo(NR), false);
    expect(code(() => noExec.run(noExec.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    const noExecLatest = kernel('latest', true);
    roFile(noExecLatest, upTo(NR), false);
    noExecLatest.run(noExecLatest.madvise({ map: 'mem', advice: 'collapse' }));
    expect(fileThps(noExecLatest)).toBe(1);

    const old = kernel('v5.10', true);
    roFile(old, upTo(NR));
    old.run(old.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(khugepagedPass(old, 'mem')).toEqual([]);
  });

  it('retract_page_tables() keeps the table of a private mapping with an anon_vma: its COW page stays, the rest refault by PTEs', () => {
    const k = kernel('v6.6', true);
    roFile(k, upTo(NR));
    k.run(k.mprotect({ map: 'mem', write: true }));
    k.run(k.write({ map: 'mem', page: 9, data: 'cow' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    expect(k.run(k.read({ map: 'mem', page: 9 }))).toBe('cow');
    expect(k.run(k.read({ map: 'mem', page: 10 }))).toBe('f10');
    expect(fileThps(k)).toBe(0);
    expect(k.folios.nr(k.folios.folio(pfnMappedAt(k, 'mem', 10)))).toBe(NR);
  });
});
