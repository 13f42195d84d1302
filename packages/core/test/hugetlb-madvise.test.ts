import { describe, expect, it } from 'vitest';
import { createKernel, KernelError, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { parseScenario } from '../src/scenario/load.js';
import { runScenario, type PluginCatalog } from '../src/scenario/run.js';
import { code, errorOf } from './vm-helpers.js';

// MADV_DONTNEED / MADV_REMOVE on hugetlb VMAs, hugetlbfs punch hole, truncate and fallocate
// (mm/madvise.ts, mm/hugetlb.ts). Counts are /sys/kernel/mm/hugepages/hugepages-2048kB/
// {nr,free,resv}_hugepages, reasoned from the kernel's rules: a page in use is not free; a page
// reserved but not allocated is still free (HugePages_Free counts it, HugePages_Rsvd too); a
// page-cache folio holds one reference for the cache and one per entry mapping it.

const KiB = 1024;
const MiB = 2 ** 20;
const HPAGE = 2 * MiB;

function kernel(version = 'latest', pool = 4): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.hugetlbPool({ size: HPAGE, pages: pool }));
  return k;
}

const counters = (k: Kernel) => k.hugetlb.counters(HPAGE);

/** write_fault_pages(): one write at the start of each huge page of a mapping. */
function writeEach(k: Kernel, map: string, hpages: number): void {
  for (let i = 0; i < hpages; i++) k.run(k.write({ map, page: (i * HPAGE) / (4 * KiB), data: `${map}${i}` }));
}

/** read_fault_pages(): one read at the start of each huge page. */
function readEach(k: Kernel, map: string, hpages: number): void {
  for (let i = 0; i < hpages; i++) k.run(k.read({ map, page: (i * HPAGE) / (4 * KiB) }));
}

function anonHugetlb(k: Kernel, as: string, hpages: number): void {
  k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: hpages * HPAGE, write: true, as }));
  writeEach(k, as, hpages);
}

describe('MADV_DONTNEED on a hugetlb VMA, per release', () => {
  it('before v5.18 can_madv_lru_vma() refuses VM_HUGETLB: a plain EINVAL, nothing freed', () => {
    for (const version of ['v5.4', 'v5.10']) {
      const k = kernel(version);
      anonHugetlb(k, 'mem', 2);
      const e = errorOf(() => k.run(k.madvise({ map: 'mem', advice: 'dontneed' })));
      expect([(e as KernelError).code, (e as KernelError).unsupported]).toEqual(['EINVAL', null]);
      expect(counters(k).free).toBe(2);
    }
  });

  it('the end goes to a huge page boundary: up as 90e7e7f5ef3f came (v5.18), down from 8ebe0a5eaaeb (v6.1)', () => {
    // madvise(addr, HPAGE + 4 KiB) over two written huge pages of a pool of four (2 free)
    // no preset lies between v5.18 and v6.0: those releases are set on a v6.1 kernel, whose
    // features this path does not read (it asks the release only)
    const expected: Record<string, number> = { 'v5.19': 4, 'v6.0': 4, 'v6.1': 3, 'v6.6': 3, latest: 3 };
    for (const [version, free] of Object.entries(expected)) {
      const k = kernel(version.startsWith('v6.0') || version.startsWith('v5.19') ? 'v6.1' : version);
      (k as { version: string }).version = version;
      anonHugetlb(k, 'mem', 2);
      k.run(k.madvise({ map: 'mem', advice: 'dontneed', length: HPAGE + 4 * KiB }));
      expect([version, counters(k).free]).toEqual([version, free]);
    }
  });

  it('an unaligned start is EINVAL; a range shorter than a huge page frees nothing (ALIGN_DOWN to the start); dontneed-locked behaves the same', () => {
    const k = kernel();
    anonHugetlb(k, 'mem', 2);
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'dontneed', offset: 4 * KiB, length: HPAGE })))).toBe('EINVAL');
    k.run(k.madvise({ map: 'mem', advice: 'dontneed', length: 4 * KiB }));
    expect(counters(k).free).toBe(2);
    k.run(k.madvise({ map: 'mem', advice: 'dontneed-locked', offset: HPAGE, length: HPAGE }));
    // the second page is free again; the first is still mapped with its data
    expect(counters(k).free).toBe(3);
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('mem0');
    // the zapped page reads as a new, cleared page (a fault allocates it from the pool again)
    expect(k.run(k.read({ map: 'mem', page: HPAGE / (4 * KiB) }))).toBe('');
    expect(counters(k).free).toBe(2);
  });

  it('the walk gives the VMA its part and reports the hole after: ENOMEM with the pages zapped (madvise_walk_vmas)', () => {
    const k = kernel();
    // two huge pages mapped, the second one unmapped again: a hole after the first
    anonHugetlb(k, 'mem', 2);
    k.run(k.munmap({ map: 'mem', offset: HPAGE, length: HPAGE }));
    expect(counters(k).free).toBe(3);
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'dontneed', length: 2 * HPAGE })))).toBe('ENOMEM');
    expect(counters(k).free).toBe(4);
  });

  it('free, cold, pageout, collapse and wipeonfork are EINVAL on hugetlb VMAs in every release that has them, keeponfork changes nothing; the others are refused as not modelled', () => {
    for (const version of ['v5.10', 'v6.6', 'latest']) {
      const k = kernel(version);
      anonHugetlb(k, 'mem', 1);
      // MADV_COLLAPSE is v6.1
      const advices = version === 'v5.10' ? (['free', 'cold', 'pageout', 'wipeonfork'] as const) : (['free', 'cold', 'pageout', 'wipeonfork', 'collapse'] as const);
      for (const advice of advices) {
        const e = errorOf(() => k.run(k.madvise({ map: 'mem', advice })));
        expect([version, advice, (e as KernelError).code, (e as KernelError).unsupported]).toEqual([version, advice, 'EINVAL', null]);
      }
      k.run(k.madvise({ map: 'mem', advice: 'keeponfork' }));
      // nothing was zapped or swapped: the page is still there with its data
      expect([counters(k).free, k.run(k.read({ map: 'mem', page: 0 }))]).toEqual([3, 'mem0']);
      // MADV_DONTFORK (VM_DONTCOPY on a hugetlb VMA) is not modelled
      const e = errorOf(() => k.run(k.madvise({ map: 'mem', advice: 'dontfork' })));
      expect([(e as KernelError).code, (e as KernelError).unsupported !== null]).toEqual(['EINVAL', true]);
    }
  });

  it('MADV_POPULATE_READ/WRITE fault the huge pages in through hugetlb_fault(): a read allocates too (no zero page), a write of a private file page copies it', () => {
    for (const version of ['v6.1', 'latest']) {
      const k = kernel(version, 4);
      k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 2 * HPAGE, write: true, as: 'mem' }));
      // from the middle of the first huge page: both huge pages are faulted in whole
      k.run(k.madvise({ map: 'mem', advice: 'populate-read', offset: 4 * KiB }));
      expect([version, counters(k), k.isMappedIn({ map: 'mem', page: 0 }), k.isMappedIn({ map: 'mem', page: 512 })]).toEqual([version, { nr: 4, free: 2, resv: 0 }, true, true]);
      // a read fault in a private mapping maps the new anon folio R/O (make_huge_pte(writable = VM_SHARED && VM_WRITE))
      const mm = k.processes.get('init')!;
      const entry = () => k.vm.lookup(mm, mm.ranges.get('mem')!.start)!.pte.write;
      expect(entry()).toBe(false);
      // populate-write: hugetlb_wp() reuses the exclusive anon folios (mapcount 1): no new page
      k.run(k.madvise({ map: 'mem', advice: 'populate-write' }));
      expect([counters(k).free, entry()]).toEqual([2, true]);
    }
  });

  it('MADV_POPULATE_WRITE where the owner lost its page to another mapping (v6.6: no reservation restored) is EFAULT (the fault\'s SIGBUS)', () => {
    const k = kernel('v6.6', 1);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    k.run(k.madvise({ map: 'mem', advice: 'dontneed' }));
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'thief' }));
    expect(code(() => k.run(k.madvise({ map: 'mem', advice: 'populate-write' })))).toBe('EFAULT');
  });
});

describe('hugetlbfs files: private COW pages, page-cache pages', () => {
  /** memfd_create(MFD_HUGETLB) with `hpages` huge pages fallocated, mapped private as `priv`. */
  function privateFile(k: Kernel, hpages: number): void {
    k.run(k.memfdCreate({ file: 'fd', size: 0, hugetlb: HPAGE }));
    k.run(k.fallocate({ file: 'fd', length: hpages * HPAGE }));
    k.run(k.mmap({ file: 'fd', length: hpages * HPAGE, write: true, as: 'priv' }));
  }

  /** The same file's first two huge pages mapped shared and writable as `shared`. */
  function sharedFile(k: Kernel): void {
    k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, as: 'shared' }));
  }

  it('MADV_DONTNEED of a private file mapping: read-mapped cache pages stay in the file, COW copies go back to the pool (and, from v6.9, their reservations to the owner)', () => {
    for (const [version, restored] of [['v6.6', 0], ['v6.15', 2]] as const) {
      const k = kernel(version, 4);
      privateFile(k, 2);
      // fallocate took 2 of 4; the private mapping reserved 2 more (still free: HugePages_Free 2)
      expect(counters(k)).toEqual({ nr: 4, free: 2, resv: 2 });
      readEach(k, 'priv', 2);
      const cached = k.pfnOf({ file: 'fd', page: 0 })!;
      expect(k.refcount(cached)).toBe(2); // the cache's and the R/O entry's
      k.run(k.madvise({ map: 'priv', advice: 'dontneed' }));
      expect([k.refcount(cached), counters(k).free]).toEqual([1, 2]);
      // writes COW each page: hugetlb_wp() copies the cache folio, consuming the VMA's reservation
      writeEach(k, 'priv', 2);
      expect(counters(k)).toEqual({ nr: 4, free: 0, resv: 0 });
      k.run(k.madvise({ map: 'priv', advice: 'dontneed' }));
      // df7a6d1f6405 (v6.9): each anon page zapped from the owner's VMA gets its reservation back
      expect([version, counters(k)]).toEqual([version, { nr: 4, free: 2, resv: restored }]);
      expect(k.refcount(cached)).toBe(1);
      // munmap: hugetlb_vm_op_close() gives back what the VMA still reserves
      k.run(k.munmap({ map: 'priv' }));
      expect(counters(k)).toEqual({ nr: 4, free: 2, resv: 0 });
    }
  });

  it('a punch hole frees the file pages and the private COW copies of every mapping (hugetlb_vmdelete_list)', () => {
    const k = kernel('latest', 4);
    privateFile(k, 2);
    sharedFile(k);
    writeEach(k, 'shared', 2);
    writeEach(k, 'priv', 2);
    expect(counters(k).free).toBe(0);
    k.run(k.punchHole({ file: 'fd', offset: 0, length: 2 * HPAGE }));
    // all four pages back; both file indexes left the inode's resv_map with their folios
    // (consumed reservations: no global change); the two COW copies zapped from priv, its owner's
    // VMA, got their reservations back (v6.9+)
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 });
    expect(k.pfnOf({ file: 'fd', page: 0 })).toBeNull();
    expect(k.isMappedIn({ map: 'priv', page: 0 })).toBe(false);
    // the shared mapping faults a new, cleared page into the file (unreserved: the index has no reservation left)
    expect(k.run(k.read({ map: 'shared', page: 0 }))).toBe('');
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 2 });
  });

  it('a punch takes whole huge pages only: the start rounds up, the end down', () => {
    const k = kernel('latest', 6);
    privateFile(k, 2);
    k.run(k.fallocate({ file: 'fd', offset: 2 * HPAGE, length: HPAGE }));
    k.run(k.punchHole({ file: 'fd', offset: 4 * KiB, length: 2 * HPAGE }));
    // [4 KiB, 4 MiB + 4 KiB) holds one whole huge page: index 1
    expect([k.pfnOf({ file: 'fd', page: 0 }) !== null, k.pfnOf({ file: 'fd', page: 512 }) !== null, k.pfnOf({ file: 'fd', page: 1024 }) !== null]).toEqual([true, false, true]);
    // 3 fallocated, 1 punched: 2 of 6 in use
    expect(counters(k).free).toBe(4);
  });

  it('the partial huge pages at a punch\'s ends are zeroed in the range from v5.19 (hugetlbfs_zero_partial_page), left as they were before', () => {
    for (const [version, zeroed] of [['v5.10', false], ['v6.1', true]] as const) {
      const k = kernel(version, 4);
      privateFile(k, 2);
      sharedFile(k);
      // data in base pages 0, 1 and 511 of huge page 0 and in page 0 of huge page 1
      for (const page of [0, 1, 511, 512]) k.run(k.write({ map: 'shared', page, data: `p${page}` }));
      // [4 KiB, 2 MiB + 4 KiB): no whole huge page, the tail of huge page 0 and the first base page of huge page 1
      k.run(k.punchHole({ file: 'fd', offset: 4 * KiB, length: HPAGE }));
      const got = [0, 1, 511, 512].map((page) => k.run(k.read({ map: 'shared', page })));
      expect([version, got]).toEqual([version, zeroed ? ['p0', '', '', ''] : ['p0', 'p1', 'p511', 'p512']]);
      // nothing left the file or the pool
      expect(counters(k).free).toBe(2);
    }
  });

  it('MADV_REMOVE of a shared mapping is the punch; of a private one EACCES, whatever the release', () => {
    const k = kernel('latest', 4);
    privateFile(k, 2);
    writeEach(k, 'priv', 2);
    expect(code(() => k.run(k.madvise({ map: 'priv', advice: 'remove' })))).toBe('EACCES');
    sharedFile(k);
    // MADV_REMOVE of the second huge page of the shared mapping: file offset 2 MiB
    k.run(k.madvise({ map: 'shared', advice: 'remove', offset: HPAGE, length: HPAGE }));
    // the file page and priv's COW copy of it: 2 more free of the 0 there were
    expect(counters(k).free).toBe(2);
    expect([k.pfnOf({ file: 'fd', page: 0 }) !== null, k.pfnOf({ file: 'fd', page: 512 })]).toEqual([true, null]);
    // private anonymous hugetlb memory has a vm_file (the anon_hugepage inode) but is not shared
    anonHugetlb(k, 'anon', 1);
    expect(code(() => k.run(k.madvise({ map: 'anon', advice: 'remove' })))).toBe('EACCES');
  });

  it('ftruncate shrinks by whole huge pages only; past the new end pages go from every mapping and unfaulted reservations come back', () => {
    const k = kernel('latest', 4);
    k.run(k.memfdCreate({ file: 'fd', size: 4 * HPAGE, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: 4 * HPAGE, shared: true, write: true, as: 'shared' }));
    // a shared mapping reserves every page of the file it spans (hugetlb_reserve_pages)
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 4 });
    writeEach(k, 'shared', 2);
    expect(counters(k)).toEqual({ nr: 4, free: 2, resv: 2 });
    expect(code(() => k.run(k.truncate({ file: 'fd', size: HPAGE + 4 * KiB })))).toBe('EINVAL');
    k.run(k.truncate({ file: 'fd', size: HPAGE }));
    // index 1 was faulted (freed = 1), indexes 1..3 leave the resv_map (chg = 3): resv -= 2
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 0 });
    expect(code(() => k.run(k.read({ map: 'shared', page: 512 })))).toBe('SIGBUS');
    expect(k.run(k.read({ map: 'shared', page: 0 }))).toBe('shared0');
    // growing (hugetlb_vmtruncate too) finds nothing past the new end: the next fault allocates a new page (no reservation left for it)
    k.run(k.truncate({ file: 'fd', size: 2 * HPAGE }));
    expect(k.run(k.read({ map: 'shared', page: 512 }))).toBe('');
    expect(counters(k)).toEqual({ nr: 4, free: 2, resv: 0 });
  });

  it('fallocate allocates the huge pages the range touches and extends i_size unless KEEP_SIZE', () => {
    const k = kernel('latest', 4);
    k.run(k.memfdCreate({ file: 'fd', size: 0, hugetlb: HPAGE }));
    k.run(k.fallocate({ file: 'fd', offset: 4 * KiB, length: HPAGE }));
    // [4 KiB, 2 MiB + 4 KiB) touches huge pages 0 and 1; i_size becomes 2 MiB + 4 KiB
    expect(counters(k).free).toBe(2);
    expect(k.pageCache.named('fd')!.pages).toBe(513);
    k.run(k.fallocate({ file: 'fd', offset: 2 * HPAGE, length: HPAGE, keepSize: true }));
    expect([counters(k).free, k.pageCache.named('fd')!.pages]).toEqual([1, 513]);
    // growing to 4 MiB is hugetlb_vmtruncate(4 MiB) too: the KEEP_SIZE page at 4 MiB (index 2) is
    // past the new end and goes back to the pool; index 1 stays
    k.run(k.truncate({ file: 'fd', size: 2 * HPAGE }));
    expect([counters(k).free, k.pfnOf({ file: 'fd', page: 1024 }), k.pfnOf({ file: 'fd', page: 512 }) !== null]).toEqual([2, null, true]);
    k.run(k.fallocate({ file: 'fd', offset: 2 * HPAGE, length: HPAGE, keepSize: true }));
    // pages 0..2 are there, page 3 takes the last free one, page 4 finds none: ENOSPC, i_size unchanged (4 MiB)
    expect(code(() => k.run(k.fallocate({ file: 'fd', length: 5 * HPAGE })))).toBe('ENOSPC');
    expect([counters(k).free, k.pageCache.named('fd')!.pages]).toEqual([0, 1024]);
  });
});

describe('MADV_REMOVE on other mappings', () => {
  it('a tmpfs memfd: shared R/O mappings are refused up to v6.6 (VM_WRITE), allowed from v6.7 (VM_MAYWRITE); private anonymous memory is EINVAL', () => {
    for (const [version, ok] of [['v6.6', false], ['latest', true]] as const) {
      const k = kernel(version, 0);
      k.run(k.memfdCreate({ file: 'm', size: 8 * KiB, fallocate: true }));
      k.run(k.mmap({ file: 'm', length: 8 * KiB, shared: true, as: 'ro' }));
      const f = () => k.run(k.madvise({ map: 'ro', advice: 'remove', length: 4 * KiB }));
      if (ok) {
        f();
        expect([k.pfnOf({ file: 'm', page: 0 }), k.pfnOf({ file: 'm', page: 1 }) !== null]).toEqual([null, true]);
      } else expect(code(f)).toBe('EACCES');
      k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
      expect(code(() => k.run(k.madvise({ map: 'a', advice: 'remove' })))).toBe('EINVAL');
    }
  });
});

describe('MADV_REMOVE of shared anonymous memory', () => {
  it('MAP_SHARED | MAP_ANONYMOUS (shmem_zero_setup) and with MAP_HUGETLB (the anon_hugepage inode): the pages leave the file, the next read finds a new zeroed page', () => {
    const k = kernel('latest', 2);
    k.run(k.mmap({ anon: true, shared: true, length: 8 * KiB, write: true, as: 'shm' }));
    k.run(k.write({ map: 'shm', page: 0, data: 'a' }));
    k.run(k.madvise({ map: 'shm', advice: 'remove', length: 4 * KiB }));
    expect([k.isMappedIn({ map: 'shm', page: 0 }), k.run(k.read({ map: 'shm', page: 0 }))]).toEqual([false, '']);
    k.run(k.mmap({ anon: true, shared: true, hugetlb: HPAGE, length: 2 * HPAGE, write: true, as: 'hshm' }));
    writeEach(k, 'hshm', 2);
    // the shared mapping reserved both pages of its file; both are in use now
    expect(counters(k)).toEqual({ nr: 2, free: 0, resv: 0 });
    k.run(k.madvise({ map: 'hshm', advice: 'remove', offset: HPAGE }));
    expect(counters(k).free).toBe(1);
    // the first page keeps its data; reading the second faults a new, cleared page into the file
    expect([k.run(k.read({ map: 'hshm', page: 0 })), k.run(k.read({ map: 'hshm', page: 512 })), counters(k).free]).toEqual(['hshm0', '', 0]);
  });
});

describe('MADV_REMOVE of a locked VMA', () => {
  it('madvise_remove() refuses VM_LOCKED with EINVAL before looking at the file', () => {
    const k = kernel('latest', 0);
    k.run(k.memfdCreate({ file: 'm', size: 4 * KiB, fallocate: true }));
    k.run(k.mmap({ file: 'm', length: 4 * KiB, shared: true, write: true, as: 'm' }));
    k.run(k.mlock({ map: 'm' }));
    expect(code(() => k.run(k.madvise({ map: 'm', advice: 'remove' })))).toBe('EINVAL');
    // the page is still in the file
    expect(k.pfnOf({ file: 'm', page: 0 })).not.toBeNull();
  });
});

describe('hugetlb_madv_vs_map.c: MADV_DONTNEED must not let another mapping steal the owner\'s page', () => {
  // one pool page, mapped private and written (its reservation consumed); MADV_DONTNEED frees the
  // page; then another MAP_HUGETLB mapping tries to reserve one page. The interleaving the test's
  // threads hit: touch, madvise, map_extra.
  function run(version: string): { madvise: string | null; extra: string | null; touch: string | null; counters: { nr: number; free: number; resv: number } } {
    const k = kernel(version, 1);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'huge' }));
    k.run(k.write({ map: 'huge', page: 0, data: '.' }));
    const madvise = code(() => k.run(k.madvise({ map: 'huge', advice: 'dontneed' })));
    const extra = code(() => k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'extra' })));
    const counters = k.hugetlb.counters(HPAGE);
    // "Touching the other page now will cause a SIGBUS" where the extra mapping got the reservation
    const touch = code(() => k.run(k.write({ map: 'huge', page: 0, data: '1' })));
    return { madvise, extra, touch, counters };
  }

  it('v5.x: MADV_DONTNEED is EINVAL on hugetlb, the page stays in use: no extra page (pass)', () => {
    expect(run('v5.10')).toEqual({ madvise: 'EINVAL', extra: 'ENOMEM', touch: null, counters: { nr: 1, free: 0, resv: 0 } });
  });

  it('v5.18 to v6.8: the freed page is unreserved, the extra mapping reserves it and the owner\'s next touch is SIGBUS (FAIL)', () => {
    expect(run('v6.6')).toEqual({ madvise: null, extra: null, touch: 'SIGBUS', counters: { nr: 1, free: 1, resv: 1 } });
  });

  it('from v6.9 (df7a6d1f6405) the zap restores the owner\'s reservation: the extra mapping is ENOMEM (pass)', () => {
    expect(run('v6.15')).toEqual({ madvise: null, extra: 'ENOMEM', touch: null, counters: { nr: 1, free: 1, resv: 1 } });
  });
});

describe('check: { hugetlbFree | hugetlbResv | hugetlbTotal: { hugetlb } } in a scenario', () => {
  const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
  // a pool of 3; a private mapping of 2 reserves both, one write consumes one reservation
  const yaml = (check: string) =>
    `name: pool\nsteps:\n  - hugetlb-pool: { size: 2MiB, pages: 3 }\n  - mmap: { anon: true, hugetlb: 2MiB, length: 4MiB, write: true, as: m }\n  - write: { map: m, page: 0, data: x }\n  - check: ${check}\n`;
  const run = (text: string) => runScenario(parseScenario(text, 'pool.yaml'), { arch: 'x86', fs: null, driver: null, version: 'latest', features: {} }, catalog);

  it('reads HugePages_Free 2, HugePages_Rsvd 1, HugePages_Total 3', () => {
    for (const check of ['{ hugetlbFree: { hugetlb: 2MiB }, equals: 2 }', '{ hugetlbResv: { hugetlb: 2MiB }, equals: 1 }', '{ hugetlbTotal: { hugetlb: 2MiB }, equals: 3 }', '{ hugetlbFree: { hugetlb: 2MiB }, min: 1, max: 2 }']) {
      expect([check, run(yaml(check)).status]).toEqual([check, 'pass']);
    }
    const r = run(yaml('{ hugetlbResv: { hugetlb: 2MiB }, equals: 2 }'));
    expect([r.status, r.failures.join('\n')]).toEqual(['fail', expect.stringContaining('hugetlbResv(hugetlb=2097152) is 1, expected 2')]);
  });

  it('refuses another target or a page at load time, naming the field and the form', () => {
    expect(() => parseScenario(yaml('{ hugetlbFree: { map: m, page: 0 }, equals: 2 }'), 'pool.yaml')).toThrow(/check\.hugetlbFree: hugetlbFree is a counter of a hugetlb pool: write \{ hugetlb: <huge page size> \} \(no page\)/);
    expect(() => parseScenario(yaml('{ hugetlbTotal: { hugetlb: 2MiB, page: 0 }, equals: 3 }'), 'pool.yaml')).toThrow(/hugetlbTotal is a counter of a hugetlb pool/);
    expect(() => parseScenario(yaml('{ hugetlbResv: { hugetlb: 2MiB }, equals: true }'), 'pool.yaml')).toThrow(/hugetlbResv compares with a number/);
  });

  it('a size the arch does not offer fails the step with EINVAL', () => {
    const r = run(yaml('{ hugetlbFree: { hugetlb: 4MiB }, equals: 0 }'));
    expect([r.status, (r.reason ?? '') + r.failures.join('')]).toEqual([expect.stringMatching(/fail|error/), expect.stringContaining('EINVAL')]);
  });
});

describe('fallocate of a tmpfs memfd (shmem_fallocate)', () => {
  it('allocates the pages the range touches into the cache (refcount 1, the cache\'s), extends i_size without KEEP_SIZE; KEEP_SIZE past the end is not modelled', () => {
    const k = kernel('latest', 0);
    k.run(k.memfdCreate({ file: 'm', size: 8 * KiB }));
    // [6 KiB, 10 KiB) touches pages 1 and 2; i_size becomes 3 pages (10 KiB rounded up)
    k.run(k.fallocate({ file: 'm', offset: 6 * KiB, length: 4 * KiB }));
    expect([k.pfnOf({ file: 'm', page: 0 }), k.refcount(k.pfnOf({ file: 'm', page: 1 })!), k.refcount(k.pfnOf({ file: 'm', page: 2 })!), k.pageCache.named('m')!.pages]).toEqual([null, 1, 1, 3]);
    // a shared mapping reads the fallocated page as zeroes (SGP_FALLOC: not uptodate until used)
    k.run(k.mmap({ file: 'm', length: 12 * KiB, shared: true, write: true, as: 'sm' }));
    expect(k.run(k.read({ map: 'sm', page: 2 }))).toBe('');
    const e = errorOf(() => k.run(k.fallocate({ file: 'm', offset: 12 * KiB, length: 4 * KiB, keepSize: true })));
    expect([(e as KernelError).code, (e as KernelError).unsupported !== null]).toEqual(['EOPNOTSUPP', true]);
    expect(code(() => k.run(k.fallocate({ file: 'm', length: 0 })))).toBe('EINVAL');
  });
});
