import { createKernel, KernelError, Monitor, PRESETS, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { ARCHES } from './selftest-api.js';

// tools/testing/selftests/mm/rmap.c (docs/selftests.md, "Coverage: rmap.c"), driven through the
// kernel API: the fixture's random process tree (propagate_children() with glibc's rand_r()),
// the worker's move_pages() and every other process's has_same_pfn(), per arch and release.
// The verdicts are what the test's root reports: pass, FAIL (ASSERT_EQ(ret, 0) after a
// FAIL_ON_CHECK) or SKIP ("Failed in worker", a missing prctl).

const RELEASES = PRESETS.map((p) => p.name);
type Verdict = 'pass' | 'FAIL' | 'SKIP';

const TOTAL_LEVEL = 5;
const MAX_CHILDREN = 3;
const FAIL_ON_CHECK = 1;
const FAIL_ON_WORK = 2;

/** glibc rand_r(): three steps of the 32-bit LCG, 11 + 10 + 10 bits of result. */
function randR(seed: { v: number }): number {
  let next = seed.v;
  const step = (): number => {
    next = (Math.imul(next, 1103515245) + 12345) >>> 0;
    return Math.floor(next / 65536);
  };
  let result = step() % 2048;
  result = ((result << 10) ^ step() % 1024) >>> 0;
  result = ((result << 10) ^ step() % 1024) >>> 0;
  seed.v = next;
  return result;
}

interface Proc {
  readonly name: string;
  readonly level: number;
  readonly worker: boolean;
}

/**
 * propagate_children(): each process below TOTAL_LEVEL forks rand_r() % MAX_CHILDREN + 1
 * children; the worker lineage picks one of its children (rand_r() % num_child) to carry on. A
 * child starts from its parent's seed after those draws plus its own index. Forks happen
 * parent-first, as the model needs the parent to exist; the order does not change the tree.
 */
function propagateChildren(k: Kernel, seed: number): Proc[] {
  const procs: Proc[] = [];
  const visit = (name: string, level: number, worker: boolean, s: { v: number }): void => {
    procs.push({ name, level, worker });
    if (level === TOTAL_LEVEL) return;
    const numChild = (randR(s) % MAX_CHILDREN) + 1;
    const workerChild = worker ? randR(s) % numChild : -1;
    for (let c = 0; c < numChild; c++) {
      const child = `${name}.${c}`;
      k.run(k.fork({ process: name, as: child }));
      visit(child, level + 1, c === workerChild, { v: (s.v + c) >>> 0 });
    }
  };
  visit('init', 1, true, { v: seed >>> 0 });
  return procs;
}

/** move_pages()'s errors other than the ones a status carries: the test's ret < 0. */
function movePages(k: Kernel, process: string, map: string, node?: number): { ret: number; status: number | string | null } {
  try {
    const r = k.run(k.movePages({ process, map, page: 0, ...(node === undefined ? {} : { node, all: true }) }));
    return { ret: r.notMigrated, status: r.status[0] ?? null };
  } catch (e) {
    if (e instanceof KernelError) return { ret: -1, status: e.code };
    throw e;
  }
}

/** try_to_move_page(): the page's node, then MPOL_MF_MOVE_ALL to another, retried while positive (100 times). */
function tryToMovePage(k: Kernel, process: string, map: string): number {
  const first = movePages(k, process, map);
  if (first.ret !== 0 || typeof first.status !== 'number') return FAIL_ON_WORK;
  const node = first.status === 0 ? 1 : 0;
  for (let failures = 0; failures < 100; failures++) {
    const { ret } = movePages(k, process, map, node);
    if (ret === 0) return 0;
    if (ret < 0) return FAIL_ON_WORK;
  }
  return FAIL_ON_WORK;
}

/** pagemap_get_pfn(): the pfn of a present page, else -1 (as vm_util.c's helper returns it). */
const pagemapPfn = (k: Kernel, process: string, map: string): number => (k.isMappedIn({ process, map, page: 0 }) ? k.pfnOf({ process, map, page: 0 })! : -1);

type Backend = 'anon' | 'shm' | 'file' | 'ksm';

/**
 * One TEST_F(migrate, ...): the region (before the tree for anon/shm/file, in every process after
 * its forks for ksm), the tree, do_prepare everywhere, the worker's do_work, every other
 * process's do_check; the root's verdict from the OR of the exit codes.
 */
function migrate(k: Kernel, backend: Backend, seed: number, workerLevel: number): Verdict {
  k.run(k.numaNodes({ nodes: 2 }));
  const region = (process: string): string => (backend === 'ksm' ? `region-${process}` : 'region');
  if (backend === 'ksm') {
    // prctl(PR_SET_MEMORY_MERGE, 1) == -EINVAL: "PR_SET_MEMORY_MERGE not supported"
    try {
      k.run(k.prctl({ memoryMerge: true }));
    } catch (e) {
      if (e instanceof KernelError && e.code === 'EINVAL') return 'SKIP';
      throw e;
    }
  } else {
    if (backend === 'shm') k.run(k.memfdCreate({ file: 'kst_rmap_shm', size: k.mmu.basePageSize }));
    if (backend === 'file') {
      k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0', dax: false }));
      k.run(k.create({ file: 'kst_rmap_file', size: k.mmu.basePageSize }));
    }
    const file = backend === 'shm' ? { file: 'kst_rmap_shm', shared: true } : backend === 'file' ? { file: 'kst_rmap_file', shared: true } : { anon: true as const };
    k.run(k.mmap({ ...file, length: k.mmu.basePageSize, write: true, as: 'region' }));
    k.run(k.write({ map: 'region', page: 0, data: '0xcf' }));
  }
  const procs = propagateChildren(k, seed);
  // do_prepare: access_region() (FORCE_READ) or prepare_local_region() (mmap + memset)
  for (const p of procs) {
    if (backend === 'ksm') {
      k.run(k.mmap({ process: p.name, anon: true, length: k.mmu.basePageSize, write: true, as: region(p.name) }));
      k.run(k.write({ process: p.name, map: region(p.name), page: 0, data: '0xcf' }));
    } else expect(k.run(k.read({ process: p.name, map: 'region', page: 0 }))).toBe('0xcf');
  }
  const worker = procs.find((p) => p.worker && p.level === workerLevel)!;
  // do_work: move_region() / merge_and_migrate() (ksm_start(): two full scans first)
  if (backend === 'ksm') k.run(k.ksmMerge({}));
  let ret = tryToMovePage(k, worker.name, region(worker.name));
  const expected = pagemapPfn(k, worker.name, region(worker.name));
  // do_check: has_same_pfn() in every other process
  for (const p of procs) if (p !== worker && pagemapPfn(k, p.name, region(p.name)) !== expected) ret |= FAIL_ON_CHECK;
  if (ret & FAIL_ON_WORK) return 'SKIP';
  return ret === 0 ? 'pass' : 'FAIL';
}

/** TEST_F(migrate, ksm_and_mremap): 2 x 16 identical pages, the second half mremap()ed over the first, merged, moved. */
function ksmAndMremap(k: Kernel): Verdict {
  k.run(k.numaNodes({ nodes: 2 }));
  const page = k.mmu.basePageSize;
  const nr = 16;
  k.run(k.mmap({ anon: true, length: 2 * nr * page, write: true, as: 'region' }));
  for (let i = 0; i < 2 * nr; i++) k.run(k.write({ map: 'region', page: i, data: '0x77' }));
  k.run(k.mremap({ map: 'region', offset: nr * page, length: nr * page, mayMove: true, to: 'region', toOffset: 0, as: 'moved' }));
  k.run(k.madvise({ map: 'moved', advice: 'mergeable' }));
  k.run(k.ksmMerge({}));
  const pfns = (): Set<number> => new Set(Array.from({ length: nr }, (_, i) => k.pfnOf({ map: 'moved', page: i })!));
  const oldPfn = k.pfnOf({ map: 'moved', page: 0 })!;
  k.run(k.ksmMerge({}));
  // range_maps_the_same_pfn() (ASSERT_TRUE)
  if (pfns().size !== 1) return 'FAIL';
  if (tryToMovePage(k, 'init', 'moved') !== 0) return 'FAIL';
  const newPfn = k.pfnOf({ map: 'moved', page: 0 })!;
  return newPfn !== oldPfn && pfns().size === 1 && pfns().has(newPfn) ? 'pass' : 'FAIL';
}

/** A kernel; with `fs`, a pmem namespace's driver and that filesystem for the file case. */
function kernel(arch: string, version: string, fs?: 'xfs' | 'ext4'): Kernel {
  const disk = fs ? { driver: nvdimm(), fs: fs === 'xfs' ? xfs() : ext4() } : {};
  return createKernel({ arch: ARCHES[arch]!(), kernel: version, ...disk });
}

// a few trees: the seeds are time(NULL) in the test; every worker level is tried on each
const SEEDS = [1764547200, 7, 0xdeadbeef];
const LEVELS = [1, 2, 3, 4, 5];

function verdicts(arch: string, backend: Backend, fs?: 'xfs' | 'ext4'): Record<string, Verdict[]> {
  const out: Record<string, Verdict[]> = {};
  for (const version of RELEASES) {
    const got = new Set<Verdict>();
    for (const seed of SEEDS) {
      for (const level of LEVELS) {
        const k = kernel(arch, version, fs);
        const m = new Monitor(k);
        got.add(migrate(k, backend, seed, level));
        expect(m.violations, `${arch} ${version} ${backend} seed ${seed} level ${level}`).toEqual([]);
      }
    }
    out[version] = [...got];
  }
  return out;
}

const every = (v: Verdict): Record<string, Verdict[]> => Object.fromEntries(RELEASES.map((r) => [r, [v]]));
// PR_SET_MEMORY_MERGE is v6.4 (d7597f59d1d3): prctl() is -EINVAL before
const fromV64 = (v: Verdict): Record<string, Verdict[]> => Object.fromEntries(RELEASES.map((r) => [r, [['v5.4', 'v5.10', 'v6.1', 'v6.3'].includes(r) ? 'SKIP' : v]]));

describe('rmap.c: migrate.* through the kernel API, random process trees (3 seeds x 5 worker levels)', () => {
  it('propagate_children() makes a tree of 5 levels, 1 to 3 children each, one worker per level', () => {
    const k = kernel('x86', 'latest');
    const procs = propagateChildren(k, SEEDS[0]!);
    for (let level = 1; level <= TOTAL_LEVEL; level++) expect(procs.filter((p) => p.worker && p.level === level)).toHaveLength(1);
    expect(Math.max(...procs.map((p) => p.level))).toBe(TOTAL_LEVEL);
    for (const p of procs.filter((q) => q.level < TOTAL_LEVEL)) {
      const children = procs.filter((q) => q.name.startsWith(`${p.name}.`) && q.level === p.level + 1).length;
      expect(children).toBeGreaterThanOrEqual(1);
      expect(children).toBeLessThanOrEqual(MAX_CHILDREN);
    }
    // glibc 2.x's rand_r() from seed 1 gives 476707713, then 1186278907 (a C program's output)
    const seed = { v: 1 };
    expect([randR(seed), randR(seed)]).toEqual([476707713, 1186278907]);
  });

  // the anon folio's anon_vma is the root's; every descendant VMA is chained to it at fork
  // (anon_vma_fork()), so the walk from any worker finds every PTE: every release passes
  for (const arch of Object.keys(ARCHES)) {
    it(`anon on ${arch}: pass on every release`, () => expect(verdicts(arch, 'anon')).toEqual(every('pass')));
    it(`shm on ${arch}: pass on every release`, () => expect(verdicts(arch, 'shm')).toEqual(every('pass')));
    it(`ksm on ${arch}: SKIP before v6.4, pass after`, () => expect(verdicts(arch, 'ksm')).toEqual(fromV64('pass')));
  }
  // the file case needs a disk filesystem: the model's only disk is a pmem namespace without DAX
  it('file on x86 (XFS and ext4) and ppc64: pass on every release', () => {
    expect(verdicts('x86', 'file', 'xfs')).toEqual(every('pass'));
    expect(verdicts('x86', 'file', 'ext4')).toEqual(every('pass'));
    expect(verdicts('ppc-hash', 'file', 'xfs')).toEqual(every('pass'));
  });

  it('ksm_and_mremap: pass on every arch and release (the walk covers the moved VMA whatever its vm_pgoff)', () => {
    for (const arch of Object.keys(ARCHES)) {
      for (const version of RELEASES) {
        const k = kernel(arch, version);
        const m = new Monitor(k);
        expect(ksmAndMremap(k), `${arch} ${version}`).toBe('pass');
        expect(m.violations).toEqual([]);
      }
    }
  });
});
