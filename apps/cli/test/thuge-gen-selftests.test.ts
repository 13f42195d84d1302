import { createKernel, KernelError, PRESETS, type Kernel } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { describe, expect, it } from 'vitest';
import { ARCHES } from './selftest-api.js';

// tools/testing/selftests/mm/thuge-gen.c, hugetlb-mmap.c and hugetlb-shm.c (hugepage-mmap.c and
// hugepage-shm.c before the rename) driven through the kernel API as their main() runs them, on
// every arch and release; the verdicts are docs/selftests.md's. The model keeps one datum per
// base page: where a test memsets or writes every byte, these write the first base page of each
// huge page (the fault per huge page is what moves the pool's counters) and read it back.

const MiB = 2 ** 20;
const RELEASES = PRESETS.map((p) => p.name);
const NUM_PAGES = 4;

/**
 * read_free(): free_hugepages of a size, 0 when the file does not exist (the base page size:
 * read_sysfs() returns 0); a size the model does not map (its hstate refused as not modelled) has
 * an empty pool here.
 */
function readFree(k: Kernel, size: number): number {
  if (!(k.mmu.hugetlbSizes ?? []).includes(size)) return 0;
  try {
    return k.hugetlb.counters(size).free;
  } catch (e) {
    if (e instanceof KernelError && e.unsupported !== null) return 0;
    throw e;
  }
}

/** echo N > nr_hugepages for every size the model maps (the others' pools stay empty). */
function reservePools(k: Kernel, pages: number): void {
  for (const size of k.mmu.hugetlbSizes ?? []) {
    try {
      k.run(k.hugetlbPool({ size, pages }));
    } catch (e) {
      if (!(e instanceof KernelError && e.unsupported !== null)) throw e;
    }
  }
}

/** memset of `count` huge pages of `size` from page 0 of a mapping: the first base page of each. */
function touch(k: Kernel, map: string, size: number, count: number, data = 'ff'): void {
  for (let i = 0; i < count; i++) k.run(k.write({ map, page: (i * size) / k.mmu.basePageSize, data }));
}

/** The sizes find_pagesizes() keeps: /sys/kernel/mm/hugepages/hugepages-<kB>kB in glob (byte) order, those with NUM_PAGES free. */
function findPagesizes(k: Kernel): number[] {
  const dirs = (k.mmu.hugetlbSizes ?? []).map((s) => `hugepages-${s / 1024}kB`).sort();
  return dirs.map((d) => Number(d.slice('hugepages-'.length, -'kB'.length)) * 1024).filter((s) => readFree(k, s) >= NUM_PAGES);
}

/**
 * thuge-gen.c main(): the ksft results in order ('<size>MB mmap: pass|FAIL' ...), or the reason it
 * exits. Pools of NUM_PAGES pages of every size the model maps, as the test's header asks.
 */
function thugeGen(arch: string, version: string): string[] {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  reservePools(k, NUM_PAGES);
  const sizes = findPagesizes(k);
  const largest = Math.max(...(k.mmu.hugetlbSizes ?? []));
  // "No GB pages available on x86-64": the largest hstate, free pages or not
  if (arch === 'x86' && largest !== 2 ** 30) return ['exit: No GB pages available on x86-64'];
  const results: string[] = [];
  const dflt = k.hugetlb.pageSize('default');
  const check = (what: string, size: number, before: number) => results.push(`${size / MiB}MB ${what}: ${before - readFree(k, size) === NUM_PAGES ? 'pass' : 'FAIL'}`);
  const testMmap = (size: number, hugetlb: number | 'default') => {
    const before = readFree(k, size);
    k.run(k.mmap({ anon: true, hugetlb, length: size * NUM_PAGES, write: true, as: 'map' }));
    touch(k, 'map', size, NUM_PAGES);
    check('mmap', size, before);
    k.run(k.munmap({ map: 'map' }));
  };
  const testShmget = (size: number, hugetlb: number | 'default' | undefined, n: number) => {
    const before = readFree(k, size);
    k.run(k.shmget({ as: `id${n}`, size: size * NUM_PAGES, ...(hugetlb !== undefined ? { hugetlb } : {}) }));
    k.run(k.shmat({ shm: `id${n}`, as: 'map' }));
    k.run(k.shmctl({ shm: `id${n}`, cmd: 'IPC_RMID' }));
    touch(k, 'map', size, NUM_PAGES);
    // size == getpagesize(): passes whatever the (absent) counter says
    if (hugetlb === undefined) results.push('base page shmget: pass');
    else check('shmget', size, before);
    k.run(k.shmdt({ map: 'map' }));
  };
  for (const s of sizes) testMmap(s, s);
  testMmap(dflt, 'default');
  testShmget(k.mmu.basePageSize, undefined, 0);
  sizes.forEach((s, i) => testShmget(s, s, i + 1));
  testShmget(dflt, 'default', sizes.length + 1);
  // nothing leaked: every pool whole again
  for (const s of sizes) if (readFree(k, s) !== NUM_PAGES) results.push(`${s / MiB}MB pool not whole`);
  return results;
}

describe('thuge-gen.c: MAP_HUGETLB / SHM_HUGETLB with each huge page size and the default one', () => {
  const expected: Record<string, string[]> = {
    // x86-64: hugepages-1048576kB, hugepages-2048kB; default 2 MiB
    x86: ['1024MB mmap: pass', '2MB mmap: pass', '2MB mmap: pass', 'base page shmget: pass', '1024MB shmget: pass', '2MB shmget: pass', '2MB shmget: pass'],
    // arm64 (4 KiB): 1G, 32M and 64K are not mapped by the model, their pools stay empty: skipped as the test skips a size short of 4 free pages
    arm64: ['2MB mmap: pass', '2MB mmap: pass', 'base page shmget: pass', '2MB shmget: pass', '2MB shmget: pass'],
    // s390: 1M (the default); 2G not modelled
    s390: ['1MB mmap: pass', '1MB mmap: pass', 'base page shmget: pass', '1MB shmget: pass', '1MB shmget: pass'],
    // ppc64 hash (64 KiB): 16M (the default); 16G not modelled
    'ppc-hash': ['16MB mmap: pass', '16MB mmap: pass', 'base page shmget: pass', '16MB shmget: pass', '16MB shmget: pass'],
  };
  for (const arch of Object.keys(expected)) {
    it(`${arch}: 2 * sizes + 3 results, all pass, on every release`, () => {
      const got = Object.fromEntries(RELEASES.map((v) => [v, thugeGen(arch, v)]));
      expect(got).toEqual(Object.fromEntries(RELEASES.map((v) => [v, expected[arch]])));
    });
  }

  it('find_pagesizes() takes the glob order and skips a size short of NUM_PAGES free pages', () => {
    const k = createKernel({ arch: ARCHES.x86!(), kernel: 'latest' });
    k.run(k.hugetlbPool({ size: 2 * MiB, pages: NUM_PAGES }));
    k.run(k.hugetlbPool({ size: 2 ** 30, pages: NUM_PAGES - 1 }));
    expect(findPagesizes(k)).toEqual([2 * MiB]);
    k.run(k.hugetlbPool({ size: 2 ** 30, pages: NUM_PAGES }));
    expect(findPagesizes(k)).toEqual([2 ** 30, 2 * MiB]);
  });

  it('default_huge_page_size() (HPAGE_SIZE) per arch: the PMD size, 16 MiB on ppc64 hash whatever its base page', () => {
    const size = (k: Kernel) => k.hugetlb.pageSize('default') / MiB;
    const of = (arch: Parameters<typeof createKernel>[0]['arch']) => size(createKernel({ arch, kernel: 'latest' }));
    expect([of(ARCHES.x86!()), of(ARCHES.arm64!()), of(arm64({ pageSize: '16KiB' })), of(arm64({ pageSize: '64KiB' })), of(ARCHES.s390!()), of(ppcHash()), of(ppcHash({ pageSize: '4KiB' }))]).toEqual([2, 2, 32, 512, 1, 16, 16]);
  });
});

/** hugetlb-mmap.c main() without arguments: 256 MB of the default huge page size, anon then file; the ksft results. */
function hugetlbMmap(arch: string, version: string, length = 256 * MiB): string[] {
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const hps = k.hugetlb.pageSize('default');
  const nr = Math.ceil(length / hps);
  k.run(k.hugetlbPool({ size: hps, pages: nr }));
  if (k.hugetlb.counters(hps).free < nr) return [`SKIP: Not enough ${hps / 1024} Kb pages`];
  const run = (name: string, map: () => void): string => {
    map();
    for (let i = 0; i < nr; i++) k.run(k.write({ map: 'addr', page: (i * hps) / k.mmu.basePageSize, data: `${name}${i}` }));
    let passed = true;
    for (let i = 0; i < nr; i++) if (k.run(k.read({ map: 'addr', page: (i * hps) / k.mmu.basePageSize })) !== `${name}${i}`) passed = false;
    k.run(k.munmap({ map: 'addr' }));
    return `${name}: ${passed ? 'pass' : 'FAIL'}`;
  };
  return [
    run('hugetlb anonymous mmap', () => k.run(k.mmap({ anon: true, hugetlb: 'default', length, write: true, as: 'addr' }))),
    run('hugetlb file mmap', () => {
      k.run(k.memfdCreate({ file: 'hugetlb-mmap', size: 0, hugetlb: 'default' }));
      k.run(k.mmap({ file: 'hugetlb-mmap', length, shared: true, write: true, as: 'addr' }));
    }),
  ];
}

/** hugetlb-shm.c main(): shmget(2, 256 MB, SHM_HUGETLB), shmat, write, check, shmdt, IPC_RMID; the result and HugePages_Free before / after. */
function hugetlbShm(arch: string, version: string): { result: string; free: [number, number, number] } {
  const LENGTH = 256 * MiB;
  const k = createKernel({ arch: ARCHES[arch]!(), kernel: version });
  const hps = k.hugetlb.pageSize('default');
  const nr = LENGTH / hps;
  k.run(k.hugetlbPool({ size: hps, pages: nr }));
  k.run(k.shmget({ as: 'shmid', key: 2, size: LENGTH, hugetlb: 'default' }));
  k.run(k.shmat({ shm: 'shmid', as: 'shmaddr' }));
  for (let i = 0; i < nr; i++) k.run(k.write({ map: 'shmaddr', page: (i * hps) / k.mmu.basePageSize, data: `${i}` }));
  let result = 'pass';
  for (let i = 0; i < nr; i++) if (k.run(k.read({ map: 'shmaddr', page: (i * hps) / k.mmu.basePageSize })) !== `${i}`) result = `FAIL: Data mismatch at huge page ${i}`;
  const during = k.hugetlb.counters(hps).free;
  k.run(k.shmdt({ map: 'shmaddr' }));
  const detached = k.hugetlb.counters(hps).free;
  k.run(k.shmctl({ shm: 'shmid', cmd: 'IPC_RMID' }));
  return { result, free: [during, detached, k.hugetlb.counters(hps).free] };
}

describe('hugetlb-mmap.c and hugetlb-shm.c with their default 256 MB', () => {
  for (const arch of Object.keys(ARCHES)) {
    it(`${arch}: hugetlb-mmap.c passes both tests on every release`, () => {
      const got = Object.fromEntries(RELEASES.map((v) => [v, hugetlbMmap(arch, v)]));
      expect(got).toEqual(Object.fromEntries(RELEASES.map((v) => [v, ['hugetlb anonymous mmap: pass', 'hugetlb file mmap: pass']])));
    });

    it(`${arch}: hugetlb-shm.c passes on every release; the pages stay through shmdt and return with IPC_RMID`, () => {
      const nr = (256 * MiB) / createKernel({ arch: ARCHES[arch]!(), kernel: 'latest' }).hugetlb.pageSize('default');
      const got = Object.fromEntries(RELEASES.map((v) => [v, hugetlbShm(arch, v)]));
      expect(got).toEqual(Object.fromEntries(RELEASES.map((v) => [v, { result: 'pass', free: [0, 0, nr] }])));
    });
  }
});
