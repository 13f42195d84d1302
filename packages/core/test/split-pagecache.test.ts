import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { pfnMappedAt, testArch } from '../src/testing.js';

// split_huge_pages of a large page-cache folio (mm/split.ts splitCacheFolio(); mm/huge_memory.c
// __folio_split() for a file folio): the shmem THP MADV_COLLAPSE builds (mm/collapse.ts). The test
// arch: 4 KiB pages, 2 MiB PMDs (512 pages, order 9).
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** memfd_create + mmap(MAP_SHARED) of 2 MiB, every page written, MADV_COLLAPSE: one PMD-mapped shmem THP. */
function shmemThp(k: Kernel): number {
  k.run(k.memfdCreate({ file: 'm', size: 2 * MiB }));
  k.run(k.mmap({ file: 'm', length: 2 * MiB, shared: true, write: true, as: 'mem' }));
  for (let page = 0; page < NR; page++) k.run(k.write({ map: 'mem', page, data: `p${page}` }));
  k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
  return pfnMappedAt(k, 'mem', 0);
}

const orders = (k: Kernel, head: number): number[] => {
  const out: number[] = [];
  for (let pfn = head; pfn < head + NR; pfn += 1 << k.folios.order(pfn)) out.push(k.folios.order(pfn));
  return out;
};

describe('split_huge_pages of a shmem THP', () => {
  it('the pid form unmaps it (try_to_unmap: no migration entries for a file folio) and leaves 512 order-0 folios holding the cache references', () => {
    const k = kernel();
    const head = shmemThp(k);
    // 512 cache references and the PMD's
    expect([k.folios.order(head), k.refcount(head), k.mapcount(head)]).toEqual([9, NR + 1, 1]);
    expect(k.run(k.splitHugePages({ map: 'mem' }))).toEqual({ split: 1, total: 1 });
    // check_huge_file(addr, 0): nothing PMD-mapped any more; nothing mapped at all until it refaults
    expect(k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'shmem')).toBe(0);
    expect(k.folioOrderIn({ map: 'mem', page: 0 })).toBe(-1);
    expect([k.folios.order(head + 7), k.refcount(head + 7), k.mapcount(head + 7)]).toEqual([0, 1, 0]);
    // the data stays in the cache; a read faults the page back by a PTE
    expect(k.run(k.read({ map: 'mem', page: 300 }))).toBe('p300');
    expect(k.folioOrderIn({ map: 'mem', page: 300 })).toBe(0);
    expect([k.refcount(head + 300), k.mapcount(head + 300)]).toEqual([2, 1]);
  });

  it('the path form to order 3 (v6.14+ for shmem): 64 order-3 folios of 8 cache references; v6.6 parses no order', () => {
    const k = kernel('v6.15');
    const head = shmemThp(k);
    expect(k.run(k.splitHugePages({ file: 'm', order: 3 }))).toEqual({ split: 1, total: 1 });
    expect(orders(k, head)).toEqual(new Array(64).fill(3));
    expect([k.refcount(head + 8), k.mapcount(head + 8)]).toEqual([8, 0]);
    expect(k.run(k.read({ map: 'mem', page: 9 }))).toBe('p9');

    const old = kernel('v6.6');
    const h = shmemThp(old);
    expect(old.run(old.splitHugePages({ file: 'm', order: 3 }))).toEqual({ split: 1, total: 1 });
    expect(orders(old, h)).toEqual(new Array(NR).fill(0));
  });

  it('folio_split() at page 0 to order 0 keeps order 1 for a file folio: orders 0,0,1,2..8', () => {
    const k = kernel();
    const head = shmemThp(k);
    expect(k.run(k.splitHugePages({ file: 'm', length: 4096, at: 0 }))).toEqual({ split: 1, total: 1 });
    expect(orders(k, head)).toEqual([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a pinned shmem THP is counted and left whole and mapped (a reference that is neither the cache nor a mapping)', () => {
    const k = kernel();
    const head = shmemThp(k);
    k.run(k.gup({ map: 'mem', page: 3, longterm: true, write: true, as: 'dma' }, true));
    // the pid walk counts it at each of its 512 pages
    expect(k.run(k.splitHugePages({ map: 'mem' }))).toEqual({ split: 0, total: NR });
    expect(k.run(k.splitHugePages({ file: 'm' }))).toEqual({ split: 0, total: 1 });
    expect(k.folios.order(head)).toBe(9);
    expect(k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'shmem')).toBe(1);
  });

  it('before v5.13 the path form is EINVAL too', () => {
    const k = kernel('v5.10');
    k.run(k.memfdCreate({ file: 'm', size: 2 * MiB }));
    expect(() => k.run(k.splitHugePages({ file: 'm' }))).toThrow(/EINVAL|before v5.13/);
  });
});
