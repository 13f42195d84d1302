import { createKernel, KernelError, KernelOops, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';

// VMA splitting of DAX mappings (partial munmap, mremap) on x86-64: 4 KiB pages, 2 MiB PMDs.
// The refcounts follow docs/kernel-model.md's eras: up to v6.14 a devmap PMD/PTE holds no
// reference (fs-dax idle at 1, device-dax idle at 1); from v6.15 each mapping holds a reference
// and a mapcount (fs-dax idle at 0, device-dax idle at 1).

const RELEASES = PRESETS.map((p) => p.name);
const PAGE = 4096;
const PMD = 512; // pages

function fsdax(version: string): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: x86(), driver: nvdimm(), fs: xfs(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: 2 * PMD * PAGE }));
  k.run(k.mmap({ file: 'a', length: 2 * PMD * PAGE, shared: true, write: true, as: 'm' }));
  return { k, m };
}

function devdaxKernel(version: string, align: number): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  const m = new Monitor(k);
  k.run(k.probe({ driver: 'devdax', size: 8 * 1024 * 1024, align, as: 'dax0' }));
  k.run(k.mmap({ device: 'dax0', length: 4 * 1024 * 1024, shared: true, write: true, as: 'm' }));
  return { k, m };
}

function errorCode(f: () => unknown): string | null {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
  return null;
}

const level = (k: Kernel, map: string, page: number) => {
  const vma = k.map(map);
  return k.vm.lookup(vma.mm, vma.mm.ranges.get(map)!.start + page)?.pte.level ?? null;
};
const counts = (k: Kernel, map: string, page: number) => [k.refcount(k.pfnOf({ map, page })!), k.mapcount(k.pfnOf({ map, page })!)];

describe('split_vma() of a PMD-mapped fs-dax mapping (partial munmap)', () => {
  it('splits the straddled PMD: zapped, then re-faulted as PTEs on each side; no reference before v6.15, rmap and reference dropped at once from v6.15', () => {
    for (const v of ['v6.6', 'v6.15']) {
      const { k, m } = fsdax(v);
      k.run(k.write({ map: 'm', page: 0, data: 'x' }));
      k.run(k.write({ map: 'm', page: PMD, data: 'y' }));
      const pfn0 = k.pfnOf({ map: 'm', page: 0 })!;
      expect([level(k, 'm', 0), level(k, 'm', PMD)]).toEqual(['pmd', 'pmd']);
      // v6.6 legacy: the devmap PMD holds nothing (idle 1, no mapcount); v6.15: the PMD's 1 and its rmap
      expect([k.refcount(pfn0), k.mapcount(pfn0)], v).toEqual(v === 'v6.6' ? [1, 0] : [1, 1]);
      k.run(k.munmap({ map: 'm', offset: PAGE, length: PAGE }));
      // __split_vma at pages 1 and 2: split_huge_pmd_if_needed() zapped the PMD of [0, 512)
      expect(k.process('init').vmas.map((x) => [x.start - k.process('init').ranges.get(x.name)!.start, x.pages, x.pgoff])).toEqual([[0, 1, 0], [2, 2 * PMD - 2, 2]]);
      expect([level(k, 'm', 0), level(k, 'm', 2), level(k, 'm', PMD)]).toEqual([null, null, 'pmd']);
      // v6.15: folio_remove_rmap_pmd + folio_put in __split_huge_pmd_locked: 1 -> 0, idle, entry kept
      expect([k.refcount(pfn0), k.mapcount(pfn0)], v).toEqual(v === 'v6.6' ? [1, 0] : [0, 0]);
      // neither piece can hold a PMD of [0, 512) any more: PTE faults of the same folio
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('x');
      k.run(k.read({ map: 'm', page: 2 }));
      expect([level(k, 'm', 0), level(k, 'm', 2)]).toEqual(['pte', 'pte']);
      // v6.15: two PTEs of folio 0: rc 2, mapcount 2
      expect(counts(k, 'm', 2), v).toEqual(v === 'v6.6' ? [1, 0] : [2, 2]);
      expect(m.violations, v).toEqual([]);
    }
  });
});

describe('split_vma() of a device-dax mapping: dev_dax_may_split()', () => {
  it('2 MiB align: a split off the align is EINVAL and changes nothing; on the align the PMD beyond is unmapped', () => {
    for (const v of RELEASES) {
      const { k, m } = devdaxKernel(v, 2 * 1024 * 1024);
      k.run(k.write({ map: 'm', page: 0, data: 'x' }));
      k.run(k.write({ map: 'm', page: PMD, data: 'y' }));
      expect(errorCode(() => k.run(k.munmap({ map: 'm', offset: PAGE, length: PAGE }))), v).toBe('EINVAL');
      expect(k.process('init').vmas.length).toBe(1);
      expect([level(k, 'm', 0), level(k, 'm', PMD)]).toEqual(['pmd', 'pmd']);
      // device-dax idle at 1; from v6.15 the PMD adds its reference and mapcount
      const mapped = v === 'v6.15' || v === 'latest' ? [2, 1] : [1, 0];
      expect(counts(k, 'm', PMD), v).toEqual(mapped);
      const pfn = k.pfnOf({ map: 'm', page: PMD })!;
      k.run(k.munmap({ map: 'm', offset: PMD * PAGE }));
      expect(k.process('init').vmas.map((x) => x.pages)).toEqual([PMD]);
      expect([k.refcount(pfn), k.mapcount(pfn)], v).toEqual([1, 0]);
      expect(counts(k, 'm', 0), v).toEqual(mapped);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('4 KiB align: any page boundary will do', () => {
    const { k } = devdaxKernel('latest', PAGE);
    k.run(k.munmap({ map: 'm', offset: PAGE, length: PAGE }));
    expect(k.process('init').vmas.map((x) => [x.start - k.process('init').ranges.get(x.name)!.start, x.pages])).toEqual([[0, 1], [2, 1022]]);
  });
});

describe('mremap() of DAX mappings', () => {
  it('a whole, aligned PMD moves as a leaf (move_huge_pmd / move_normal_pmd), even before v5.8', () => {
    for (const v of RELEASES) {
      const { k, m } = fsdax(v);
      k.run(k.write({ map: 'm', page: PMD, data: 'y' }));
      const pfn = k.pfnOf({ map: 'm', page: PMD })!;
      const before = counts(k, 'm', PMD);
      k.run(k.mmap({ anon: true, length: PMD * PAGE, as: 'dst' }));
      k.run(k.mremap({ map: 'm', offset: PMD * PAGE, length: PMD * PAGE, to: 'dst', as: 'moved' }));
      expect([level(k, 'moved', 0), k.pfnOf({ map: 'moved', page: 0 })], v).toEqual(['pmd', pfn]);
      expect(counts(k, 'moved', 0), v).toEqual(before);
      // the file's page at pgoff 512 is what the moved VMA maps: copy_vma kept the file offset
      expect(k.map('moved').pgoff).toBe(PMD);
      expect(k.run(k.read({ map: 'moved', page: 0 }))).toBe('y');
      expect(m.violations, v).toEqual([]);
    }
  });
});

/**
 * ndctl test_dax_remap() (test/dax-pmd.c) through the kernel API: what the test reports on each
 * release, for fs-dax (2 MiB PMDs) and device-dax at 4 KiB and 2 MiB. 'pass' is the store and
 * load of 0xAA at the remapped address; 'mremap failed' and 'SIGBUS' (device-dax, align > 4 KiB)
 * are what the test accepts; 'crash' is what it skips before v5.8 ("may crash").
 */
function testDaxRemap(version: string, target: 'fsdax' | number): string {
  const k = target === 'fsdax' ? createKernel({ arch: x86(), driver: nvdimm(), fs: xfs(), kernel: version }) : createKernel({ arch: x86(), driver: devdax(), kernel: version });
  const m = new Monitor(k);
  const align = target === 'fsdax' ? PMD * PAGE : target;
  if (target === 'fsdax') {
    k.run(k.probe({ size: 1024 * 1024 * 1024, as: 'pmem0' }));
    k.run(k.mount({ device: 'pmem0' }));
    k.run(k.create({ file: 'f', size: 2 * align }));
  } else k.run(k.probe({ driver: 'devdax', size: 8 * 1024 * 1024, align, as: 'dax0' }));
  k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'anon' }));
  k.run(k.mmap({ ...(target === 'fsdax' ? { file: 'f' } : { device: 'dax0' }), length: 2 * align, shared: true, write: true, as: 'addr' }));
  for (let i = 0; i < 4; i++) k.run(k.write({ map: 'anon', page: i, data: 'a' }));
  for (let i = 0; i < (2 * align) / PAGE; i += align / PAGE) k.run(k.write({ map: 'addr', page: i, data: 'i' }));
  try {
    k.run(k.mremap({ map: 'addr', length: PAGE, to: 'anon', as: 'remap' }));
  } catch (e) {
    if (e instanceof KernelOops) return 'crash';
    if (e instanceof KernelError) return 'mremap failed';
    throw e;
  }
  try {
    k.run(k.write({ map: 'anon', page: 0, data: 'AA' }));
  } catch (e) {
    if (e instanceof KernelError && e.code === 'SIGBUS') return 'SIGBUS';
    throw e;
  }
  const val = k.run(k.read({ map: 'anon', page: 0 }));
  return val === 'AA' && m.violations.length === 0 ? 'pass' : `FAIL: read ${val}`;
}

describe('ndctl test_dax_remap() outcomes per release (v5.4 v5.10 v6.1 v6.3 v6.6 v6.15 latest)', () => {
  it('the presets are the releases these rows are written for', () => {
    expect(RELEASES).toEqual(['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']);
  });

  // the PMD is split (zapped) by move_page_tables() once it knows devmap PMDs (5bfea2d9b17f,
  // v5.8); the store faults file page 0 in through the moved 4 KiB VMA
  it('fs-dax: crash before v5.8 (the test skips), pass after', () => {
    expect(RELEASES.map((v) => testDaxRemap(v, 'fsdax'))).toEqual(['crash', 'pass', 'pass', 'pass', 'pass', 'pass', 'pass']);
  });

  // PTEs move; dev_dax_may_split() accepts any page boundary
  it('device-dax 4 KiB: pass on every release', () => {
    expect(RELEASES.map((v) => testDaxRemap(v, PAGE))).toEqual(RELEASES.map(() => 'pass'));
  });

  // v5.4: the devmap PMD walked as a table; v5.10: the move happens, do_munmap() cannot split the
  // old VMA, the store is a 2 MiB fault in a 4 KiB VMA: SIGBUS; v5.11+ (73d5e0629919) ->may_split()
  // refuses up front: EINVAL
  it('device-dax 2 MiB: crash on v5.4, SIGBUS on v5.10, mremap failed from v5.11 (both accepted by the test)', () => {
    expect(RELEASES.map((v) => testDaxRemap(v, 2 * 1024 * 1024))).toEqual(['crash', 'SIGBUS', 'mremap failed', 'mremap failed', 'mremap failed', 'mremap failed', 'mremap failed']);
  });
});

/**
 * tools/testing/selftests/mm/mremap_dontunmap.c through the kernel API, the anonymous cases
 * (mremap_dontunmap_simple_shmem: below). The test first probes
 * MREMAP_DONTUNMAP on a PROT_NONE page and SKIPs when it fails; check_region_contains_byte()
 * compares whole pages, here each page's data ('' is a zero page or a fresh fault).
 */
function mremapDontunmap(version: string): string {
  const k = createKernel({ arch: x86(), kernel: version });
  const m = new Monitor(k);
  const fill = (map: string, pages: number, data: string) => {
    for (let i = 0; i < pages; i++) k.run(k.write({ map, page: i, data }));
  };
  const contains = (map: string, from: number, pages: number, data: string) => {
    for (let i = from; i < from + pages; i++) if (k.run(k.read({ map, page: i })) !== data) throw new Error(`${map} page ${i} is not '${data}'`);
  };
  const anon = (as: string, pages: number, write = true) => k.run(k.mmap({ anon: true, length: pages * PAGE, write, as }));
  /** mmap + memset(data) */
  const filled = (as: string, pages: number, data: string) => {
    anon(as, pages);
    fill(as, pages, data);
  };
  // kernel_support_for_mremap_dontunmap(): a PROT_NONE page moved anywhere
  anon('probe', 1, false);
  k.run(k.mprotect({ map: 'probe', write: false, read: false }));
  try {
    k.run(k.mremap({ map: 'probe', length: PAGE, dontUnmap: true, as: 'probed' }));
  } catch (e) {
    if (e instanceof KernelError && e.code === 'EINVAL') return 'SKIP';
    throw e;
  }
  // mremap_dontunmap_simple: the whole mapping anywhere; the source is left with no PTEs
  filled('s1', 5, 'a');
  k.run(k.mremap({ map: 's1', length: 5 * PAGE, dontUnmap: true, as: 'd1' }));
  contains('d1', 0, 5, 'a');
  contains('s1', 0, 5, '');
  // mremap_dontunmap_simple_fixed: onto an existing mapping of X's, which is unmapped first
  filled('d2', 5, 'X');
  filled('s2', 5, 'a');
  k.run(k.mremap({ map: 's2', length: 5 * PAGE, to: 'd2', dontUnmap: true, as: 'r2' }));
  contains('d2', 0, 5, 'a');
  contains('s2', 0, 5, '');
  // mremap_dontunmap_partial_mapping: the last 5 of 10 pages; the first 5 keep their data
  filled('s3', 10, 'a');
  k.run(k.mremap({ map: 's3', offset: 5 * PAGE, length: 5 * PAGE, dontUnmap: true, as: 'd3' }));
  contains('s3', 0, 5, 'a');
  contains('s3', 5, 5, '');
  contains('d3', 0, 5, 'a');
  // mremap_dontunmap_partial_mapping_overwrite: 5 pages onto the first half of 10 X's
  filled('s4', 5, 'a');
  filled('d4', 10, 'X');
  k.run(k.mremap({ map: 's4', length: 5 * PAGE, to: 'd4', dontUnmap: true, as: 'r4' }));
  contains('s4', 0, 5, '');
  contains('d4', 0, 5, 'a');
  contains('d4', 5, 5, 'X');
  return m.violations.length === 0 ? 'pass' : `FAIL: ${m.violations.map((v) => v.invariant).join(', ')}`;
}

/**
 * mremap_dontunmap_simple_shmem: five pages of a memfd mapped MAP_SHARED and filled, moved
 * anywhere with MREMAP_DONTUNMAP. An EINVAL is "Old kernel which doesn't support MREMAP_DONTUNMAP
 * on shmem" (the test returns); else the destination has the data, and so has the source: its
 * PTEs moved, but it is backed by shmem, so reading it faults the same page-cache pages back in.
 */
function mremapDontunmapShmem(version: string): string {
  const k = createKernel({ arch: x86(), kernel: version });
  const m = new Monitor(k);
  k.run(k.memfdCreate({ file: 'memfd', size: 5 * PAGE }));
  k.run(k.mmap({ file: 'memfd', length: 5 * PAGE, shared: true, write: true, as: 'src' }));
  for (let i = 0; i < 5; i++) k.run(k.write({ map: 'src', page: i, data: 'a' }));
  try {
    k.run(k.mremap({ map: 'src', length: 5 * PAGE, dontUnmap: true, as: 'dst' }));
  } catch (e) {
    if (e instanceof KernelError && e.code === 'EINVAL') return 'EINVAL: returns';
    throw e;
  }
  for (let i = 0; i < 5; i++) expect(k.isMappedIn({ map: 'src', page: i })).toBe(false);
  for (let i = 0; i < 5; i++) expect([k.run(k.read({ map: 'dst', page: i })), k.run(k.read({ map: 'src', page: i }))]).toEqual(['a', 'a']);
  // both ranges map the memfd's own page: the cache's reference and one per PTE
  expect(k.pfnOf({ map: 'src', page: 0 })).toBe(k.pfnOf({ map: 'dst', page: 0 }));
  expect(k.refcount(k.pfnOf({ file: 'memfd', page: 0 })!)).toBe(3);
  return m.violations.length === 0 ? 'pass' : `FAIL: ${m.violations.map((v) => v.invariant).join(', ')}`;
}

describe('selftests/mm/mremap_dontunmap.c per release', () => {
  // MREMAP_DONTUNMAP is v5.7 (e346b3813067): the support probe fails on v5.4 and the test skips
  it('SKIP on v5.4, pass from v5.10', () => {
    expect(RELEASES.map(mremapDontunmap)).toEqual(['SKIP', 'pass', 'pass', 'pass', 'pass', 'pass', 'pass']);
  });

  // v5.7-v5.12 move private anonymous mappings only; a4609387859f (v5.13 [M]) any but VM_PFNMAP
  it('mremap_dontunmap_simple_shmem: EINVAL (the test returns) before v5.13, pass from v6.1', () => {
    expect(RELEASES.map(mremapDontunmapShmem)).toEqual(['EINVAL: returns', 'EINVAL: returns', 'pass', 'pass', 'pass', 'pass', 'pass']);
  });
});
