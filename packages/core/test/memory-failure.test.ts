import { describe, expect, it } from 'vitest';
import { createKernel, KernelError, type Kernel } from '../src/index.js';
import { errnoOf, testArch } from '../src/testing.js';
import { PG } from '../src/mm/pages.js';

// memory_failure() of RAM pages through madvise(MADV_HWPOISON) (mm/memfailure.ts). The values are
// reasoned from mm/memory-failure.c: the GUP reference (MF_COUNT_INCREASED) stays on the poisoned
// page, try_to_unmap(TTU_HWPOISON) leaves hwpoison entries, kill_procs() reaches the caller only
// with MF_ACTION_REQUIRED (v6.11), and hugetlbfs keeps the poisoned folio cached from v6.1.

const KiB = 1024;
const HPAGE = 2 * 2 ** 20;
const HP = HPAGE / (4 * KiB);

const boot = (version = 'latest'): Kernel => createKernel({ arch: testArch(), kernel: version });
const poisoned = (k: Kernel, pfn: number): boolean => k.pages.has(pfn) && (k.folios.flags(pfn) & PG.hwpoison) !== 0;

describe('MADV_HWPOISON of an anonymous page', () => {
  for (const [version, atMadvise] of [['v6.6', 'no error'], ['v6.15', 'SIGBUS']] as const) {
    it(`${version}: the PTE becomes a hwpoison entry, the page keeps the GUP reference; SIGBUS ${atMadvise === 'SIGBUS' ? 'at madvise (MF_ACTION_REQUIRED)' : 'only at the next access'}`, () => {
      const k = boot(version);
      k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'a' }));
      k.run(k.write({ map: 'a', page: 1, data: 'x' }));
      const pfn = k.pfnOf({ map: 'a', page: 1 })!;
      expect(errnoOf(() => k.run(k.memoryFailure({ map: 'a', page: 1 })))).toBe(atMadvise);
      expect([poisoned(k, pfn), k.refcount(pfn), k.mapcount(pfn), k.memoryFailures.hardwareCorruptedKb()]).toEqual([true, 1, 0, 4]);
      expect([k.isSwappedIn({ map: 'a', page: 1 }), k.pfnOf({ map: 'a', page: 1 })]).toEqual([true, null]);
      // do_swap_page(): is_hwpoison_entry() -> VM_FAULT_HWPOISON
      expect(errnoOf(() => k.run(k.read({ map: 'a', page: 1 })))).toBe('SIGBUS');
      // the neighbours are untouched; munmap drops the entry and never frees the poisoned page
      expect(errnoOf(() => k.run(k.read({ map: 'a', page: 0 })))).toBe('no error');
      k.run(k.munmap({ map: 'a' }));
      expect([poisoned(k, pfn), k.refcount(pfn)]).toEqual([true, 1]);
    });
  }

  it('a pinned page is unmapped all the same, then MF_FAILED: EBUSY (v6.6: no kill)', () => {
    const k = boot('v6.6');
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'x' }));
    k.run(k.gup({ map: 'a', page: 0, longterm: true, as: 'p' }, true));
    expect(errnoOf(() => k.run(k.memoryFailure({ map: 'a', page: 0 })))).toBe('EBUSY');
    expect(k.isSwappedIn({ map: 'a', page: 0 })).toBe(true);
  });
});

/** a hugetlbfs memfd of one huge page, mapped shared and populated, each base page written with its index */
function poisonedHugePage(version: string, poison = HP / 2 + 1): { k: Kernel; head: number } {
  const k = boot(version);
  k.run(k.hugetlbPool({ size: HPAGE, pages: 2 }));
  k.run(k.memfdCreate({ file: 'f', size: 0, hugetlb: HPAGE }));
  k.run(k.truncate({ file: 'f', size: HPAGE }));
  k.run(k.mmap({ file: 'f', length: HPAGE, shared: true, write: true, populate: true, as: 'm' }));
  for (let i = 0; i < HP; i++) k.run(k.write({ map: 'm', page: i, data: String(i) }));
  k.run(k.mmap({ anon: true, length: HPAGE, write: true, as: 'buf' }));
  const head = k.pfnOf({ map: 'm', page: 0 })!;
  try {
    k.run(k.memoryFailure({ map: 'm', page: poison }));
  } catch (e) {
    if (!(e instanceof KernelError && e.code === 'SIGBUS')) throw e;
  }
  return { k, head };
}

const pread = (k: Kernel, page: number, pages: number): number | string => {
  try {
    return k.run(k.pread({ file: 'f', offset: page * 4 * KiB, length: pages * 4 * KiB, map: 'buf' }));
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
};

describe('MADV_HWPOISON of a page of a hugetlbfs file, then read(2)', () => {
  it('every release: the PMD becomes a hwpoison entry (SIGBUS on access), the folio keeps the GUP reference, HardwareCorrupted + 4 kB', () => {
    for (const v of ['v5.4', 'v6.1', 'v6.6', 'latest']) {
      const { k, head } = poisonedHugePage(v);
      expect([v, poisoned(k, head), k.isSwappedIn({ map: 'm', page: 0 }), k.memoryFailures.hardwareCorruptedKb()]).toEqual([v, true, true, 4]);
      expect([v, errnoOf(() => k.run(k.read({ map: 'm', page: 3 })))]).toEqual([v, 'SIGBUS']);
    }
  });

  it('before v6.1 the folio leaves the page cache: the file reads a hole (zeroes) there, and a new fault maps a new page', () => {
    const { k, head } = poisonedHugePage('v5.10');
    expect(k.pfnOf({ file: 'f', page: 0 })).toBe(null);
    expect(pread(k, 0, 4)).toBe(4 * 4 * KiB);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('');
    // the cache's reference went with it, the GUP one stays: the huge page never returns to the pool
    expect([k.refcount(head), k.hugetlb.counters(HPAGE).free]).toEqual([1, 1]);
  });

  it('v6.1 to v6.4: the folio stays cached and any read of it is EIO; a new mapping faults SIGBUS', () => {
    const { k, head } = poisonedHugePage('v6.3');
    expect(k.pfnOf({ file: 'f', page: 0 })).toBe(head);
    expect([pread(k, 0, 4), pread(k, HP / 2 + 2, 4)]).toEqual(['EIO', 'EIO']);
    k.run(k.mmap({ file: 'f', length: HPAGE, shared: true, write: true, as: 'm2' }));
    expect(errnoOf(() => k.run(k.read({ map: 'm2', page: 0 })))).toBe('SIGBUS');
  });

  it('from v6.5 a read stops before the raw poisoned page, one starting on it is EIO, one past it reads on (hugetlb-read-hwpoison.c)', () => {
    const { k } = poisonedHugePage('v6.6');
    // from 0: up to len / 2 + pagesize, in 4-page chunks the last one short
    expect([pread(k, HP / 2 - 3, 4), pread(k, HP / 2 + 1, 4), pread(k, HP / 2 + 2, 4), pread(k, HP - 4, 4)]).toEqual([4 * 4 * KiB, 'EIO', 4 * 4 * KiB, 4 * 4 * KiB]);
    expect(pread(k, HP / 2 - 1, 4)).toBe(2 * 4 * KiB);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe(String(HP / 2));
  });

  it('ftruncate(0) takes the poisoned folio out of the cache but the pool does not get it back', () => {
    const { k, head } = poisonedHugePage('v6.6');
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'f', size: 0 }));
    expect([k.refcount(head), k.hugetlb.counters(HPAGE).free, k.hugetlb.counters(HPAGE).nr]).toEqual([1, 1, 2]);
  });
});
