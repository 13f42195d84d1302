import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { khugepagedPass, pfnMappedAt, testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// khugepaged and MADV_COLLAPSE on shmem (a read-only disk file: apps/cli/test/khugepaged-file.test.ts) (mm/collapse.ts
// collapsibleCache .. collapseFileRange; mm/khugepaged.c hpage_collapse_scan_file(),
// collapse_file(), retract_page_tables(), collapse_pte_mapped_thp(); mm/memory.c do_set_pmd()).
// The test arch: 4 KiB pages, 2 MiB PMDs: HPAGE_PMD_NR = 512, max_ptes_none 511 by default.
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** memfd_create + ftruncate(2 MiB) + mmap(MAP_SHARED, PROT_READ|PROT_WRITE), the given pages written. */
function shmem(k: Kernel, pages: Iterable<number>): void {
  k.run(k.memfdCreate({ file: 'm', size: 2 * MiB }));
  k.run(k.mmap({ file: 'm', length: 2 * MiB, shared: true, write: true, as: 'mem' }));
  for (const page of pages) k.run(k.write({ map: 'mem', page, data: `p${page}` }));
}

const at = (page: number) => ({ map: 'mem', page });
const shmemThps = (k: Kernel): number => k.pmdMappedCacheThpsIn(at(0), 'shmem');

describe('khugepaged on shmem (shmem_enabled, collapse_file, retract_page_tables)', () => {
  it('passes over a memfd under shmem_enabled=never; with advise and VM_HUGEPAGE builds the huge folio and frees the PTE table', () => {
    const k = kernel('v6.6');
    shmem(k, upTo(NR));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    // shmem_huge_enabled() without shmem_huge_force: the default never refuses the VMA
    expect(khugepagedPass(k, 'mem')).toEqual([]);
    k.run(k.shmemEnabled({ mode: 'advise' }));
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    // collapse_file() unmapped the 512 small folios and retract_page_tables() freed the table:
    // nothing maps the range; the new folio holds the cache's 512 references (folio_ref_add(HPAGE_PMD_NR - 1) + 1)
    const mm = k.processes.get('init')!;
    const vma = mm.vmas[0]!;
    expect(k.vm.lookup(mm, vma.start)).toBeNull();
    expect(k.vm.pteTableAt(mm, vma.start)).toBe(false);
    const head = k.pageCache.named('m')!.cache.get(0)!;
    expect(k.folios.nr(head)).toBe(NR);
    expect(k.refcount(head)).toBe(NR);
    expect(shmemThps(k)).toBe(0);
    // the next fault (a read) maps it whole: do_set_pmd() over pmd_none; the fault's reference is the PMD's
    expect(k.run(k.read({ map: 'mem', page: 300 }))).toBe('p300');
    expect(shmemThps(k)).toBe(1);
    expect(k.refcount(head)).toBe(NR + 1);
    // vm_page_prot of a shared writable shmem mapping is writable: mk_huge_pmd() gives a writable PMD
    expect(k.isWritableIn(at(0))).toBe(true);
    expect(k.run(k.read({ map: 'mem', page: 511 }))).toBe('p511');
  });

  it('from v6.12 (do_set_pmd: vma_thp_disabled) the fault after MADV_NOHUGEPAGE maps the huge folio by PTEs', () => {
    for (const [version, pmd] of [['v6.6', 1], ['v6.15', 0]] as const) {
      const k = kernel(version);
      shmem(k, upTo(NR));
      k.run(k.shmemEnabled({ mode: 'advise' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
      expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
      // khugepaged.c wait_for_scan() ends with MADV_NOHUGEPAGE, then khugepaged_collapse() refaults
      k.run(k.madvise({ map: 'mem', advice: 'nohugepage' }));
      k.run(k.write({ map: 'mem', page: 0, data: 'again' }));
      expect(shmemThps(k)).toBe(pmd);
      // either way page 0 is the first subpage of the 512-page folio
      const head = k.pageCache.named('m')!.cache.get(0)!;
      expect(pfnMappedAt(k, 'mem', 0)).toBe(head);
      expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('again');
    }
  });

  it('a single written page: 511 holes <= max_ptes_none 511 collapse into zeroed subpages; 510 refuses (SCAN_EXCEED_NONE_PTE)', () => {
    const k = kernel('v6.6');
    shmem(k, [5]);
    k.run(k.shmemEnabled({ mode: 'advise' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    // present 1 < HPAGE_PMD_NR - max_ptes_none = 512 - 510 = 2
    k.run(k.khugepagedLimits({ maxPtesNone: 510 }));
    expect(khugepagedPass(k, 'mem')).toEqual(['exceed-none-pte']);
    k.run(k.khugepagedLimits({ maxPtesNone: 511 }));
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    expect(k.run(k.read({ map: 'mem', page: 5 }))).toBe('p5');
    expect(k.run(k.read({ map: 'mem', page: 6 }))).toBe('');
    expect(k.pageCache.named('m')!.cache.size).toBe(NR);
  });
});

describe('MADV_COLLAPSE on shmem', () => {
  it('ignores shmem_enabled=never (shmem_huge_force) and maps the new folio by a PMD (collapse_pte_mapped_thp, install_pmd)', () => {
    const k = kernel('v6.1');
    shmem(k, upTo(NR));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(shmemThps(k)).toBe(1);
    const head = pfnMappedAt(k, 'mem', 0);
    // 512 cache references and set_huge_pmd()'s get_page() for the PMD
    expect(k.refcount(head)).toBe(NR + 1);
    expect(k.mapcount(head)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: 257 }))).toBe('p257');
    // again: the range is PMD-mapped already (SCAN_PTE_MAPPED_HUGEPAGE, then SCAN_PMD_MAPPED): success, nothing changes
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(k.refcount(head)).toBe(NR + 1);
  });

  it('is EINVAL before v6.1; an empty memfd range is SCAN_TRUNCATED (EINVAL); a pinned page SCAN_PAGE_COUNT (EAGAIN from v6.2)', () => {
    const old = kernel('v5.10');
    shmem(old, upTo(NR));
    expect(code(() => old.run(old.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    const empty = kernel();
    shmem(empty, []);
    expect(code(() => empty.run(empty.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    for (const [version, errno] of [['v6.1', 'EINVAL'], ['v6.3', 'EAGAIN']] as const) {
      const k = kernel(version);
      shmem(k, upTo(NR));
      k.run(k.gup({ map: 'mem', page: 7, as: 'pin' }, true));
      // hpage_collapse_scan_file(): folio_ref_count() != 1 + folio_mapcount(): refused before anything is unmapped
      expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).toBe(errno);
      expect(shmemThps(k)).toBe(0);
      expect(k.folios.nr(k.folios.folio(pfnMappedAt(k, 'mem', 7)))).toBe(1);
    }
  });

  it('truncating the memfd drops the huge folio with its 512 cache references', () => {
    const k = kernel();
    shmem(k, upTo(NR));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    const head = pfnMappedAt(k, 'mem', 0);
    // truncate_inode_partial_folio(): latest's folio_split() at page 256 keeps [0,256) as one order-8
    // folio and frees [256,512) (mm/pagecache.ts partialFolio(); test/shmem-partial-truncate.test.ts)
    k.run(k.truncate({ file: 'm', size: MiB }));
    expect([k.folioOrderIn({ file: 'm', page: 0 }), k.folioOrderIn({ file: 'm', page: 256 })]).toEqual([8, -1]);
    k.run(k.munmap({ map: 'mem' }));
    k.run(k.truncate({ file: 'm', size: 0 }));
    expect(k.ram.live.has(head)).toBe(false);
  });
});

describe('shmem_enabled policies and what collapse_file() refuses', () => {
  it('deny refuses khugepaged even with VM_HUGEPAGE, force allows without it; within_size needs the PMD range inside i_size', () => {
    const k = kernel('v6.6');
    shmem(k, upTo(NR));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    k.run(k.shmemEnabled({ mode: 'deny' }));
    expect(khugepagedPass(k, 'mem')).toEqual([]);
    // MADV_COLLAPSE's shmem_huge_force comes before the deny check (shmem_is_huge())
    k.run(k.madvise({ map: 'mem', advice: 'nohugepage' }));
    k.run(k.shmemEnabled({ mode: 'force' }));
    // ... but VM_NOHUGEPAGE is checked first: nothing
    expect(khugepagedPass(k, 'mem')).toEqual([]);

    const forced = kernel('v6.6');
    shmem(forced, upTo(NR));
    forced.run(forced.shmemEnabled({ mode: 'force' }));
    expect(khugepagedPass(forced, 'mem')).toEqual(['succeed']);

    // within_size: index 0's PMD range ends at page 512 <= i_size (512 pages); grown memfds alike
    const within = kernel('v6.6');
    shmem(within, upTo(NR));
    within.run(within.shmemEnabled({ mode: 'within_size' }));
    expect(khugepagedPass(within, 'mem')).toEqual(['succeed']);
  });

  it('a shmem fault over a hole allocates a PMD-order folio where the policy allows one and maps it by a PMD (shmem_get_folio_gfp: maybe_pmd_order)', () => {
    const k = kernel();
    k.run(k.shmemEnabled({ mode: 'advise' }));
    k.run(k.memfdCreate({ file: 'm', size: 2 * MiB }));
    k.run(k.mmap({ file: 'm', length: 2 * MiB, shared: true, write: true, as: 'mem' }));
    // advise without VM_HUGEPAGE: order 0
    k.run(k.write({ map: 'mem', page: 5, data: 'y' }));
    expect(k.folioOrderIn({ file: 'm', page: 5 })).toBe(0);
    k.run(k.memfdCreate({ file: 'm2', size: 2 * MiB }));
    k.run(k.mmap({ file: 'm2', length: 2 * MiB, shared: true, write: true, as: 'mem2' }));
    k.run(k.madvise({ map: 'mem2', advice: 'hugepage' }));
    k.run(k.write({ map: 'mem2', page: 0, data: 'x' }));
    // one folio of 512 pages: a cache reference per page plus the PMD's; the rest reads zero
    const head = pfnMappedAt(k, 'mem2', 0);
    expect([k.folioOrderIn({ file: 'm2', page: 0 }), k.pmdMappedCacheThpsIn({ map: 'mem2', page: 0 }, 'shmem'), k.refcount(head), k.mapcount(head)]).toEqual([9, 1, NR + 1, 1]);
    expect([k.run(k.read({ map: 'mem2', page: 0 })), k.run(k.read({ map: 'mem2', page: 300 }))]).toEqual(['x', '']);
  });

  it('a VMA that does not hold the whole PMD range: v6.6 still allocates the PMD folio (mapped by a PTE); latest checks the range (acd7ccb284b8, v6.14) and allocates order 0', () => {
    const run = (version: string): [number, number] => {
      const k = kernel(version);
      k.run(k.shmemEnabled({ mode: 'always' }));
      k.run(k.memfdCreate({ file: 'm', size: 2 * MiB }));
      k.run(k.mmap({ file: 'm', length: MiB, shared: true, write: true, as: 'mem' }));
      k.run(k.write({ map: 'mem', page: 3, data: 'x' }));
      return [k.folioOrderIn({ file: 'm', page: 3 }), k.pmdMappedCacheThpsIn(at(0), 'shmem')];
    };
    expect(run('v6.6')).toEqual([9, 0]);
    expect(run('latest')).toEqual([0, 0]);
  });

  it('holes in a range some VMA of the file registered for MISSING faults roll back (SCAN_EXCEED_NONE_PTE); filled ones collapse', () => {
    const k = kernel();
    shmem(k, [0, 1]);
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'mem', mode: ['missing'] }));
    // refused before anything changes (the errno: EINVAL in the model; the tree read returns EBUSY for SCAN_EXCEED_NONE_PTE, a change not dated: docs/selftests.md doubts)
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))).not.toBeNull();
    expect(shmemThps(k)).toBe(0);
    expect(k.folios.nr(k.folios.folio(pfnMappedAt(k, 'mem', 0)))).toBe(1);
  });
});
