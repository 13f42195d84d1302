import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// A truncation, hole punch or MADV_REMOVE landing inside a large shmem folio (mm/pagecache.ts
// undoPartial() / partialFolio(): shmem_undo_range() -> truncate_inode_partial_folio()), and
// fallocate() under a huge policy (shmem_fallocate() -> shmem_get_folio(SGP_FALLOC) with the
// write's order choice). The test arch: 4 KiB pages, 2 MiB PMDs (512 pages, order 9).
const NR = 512;
const PS = 4096;
const MiB = 2 ** 20;

function kernel(version: string): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** A tmpfs huge=always file `f` of 2 MiB written from a buffer whose pages hold `b<page>`: one order-9 folio. */
function hugeFile(k: Kernel): void {
  k.run(k.mmap({ anon: true, length: NR * PS, write: true, as: 'buf' }));
  for (let page = 0; page < NR; page++) k.run(k.write({ map: 'buf', page, data: `b${page}` }));
  k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 0 }));
  expect(k.run(k.pwrite({ file: 'f', offset: 0, length: 2 * MiB, map: 'buf' }))).toBe(2 * MiB);
  expect(k.folioOrderIn({ file: 'f', page: 0 })).toBe(9);
}

/** The cached folios of `file` as [first index, order], in index order (holes skipped). */
function layout(k: Kernel, file: string): [number, number][] {
  const cache = k.pageCache.named(file)!.cache;
  const out: [number, number][] = [];
  for (const index of [...cache.keys()].sort((a, b) => a - b)) {
    const pfn = cache.get(index)!;
    const head = k.folios.folio(pfn);
    if (pfn === head) out.push([index, k.folios.order(head)]);
  }
  return out;
}

function dataAt(k: Kernel, page: number): string | undefined {
  const pfn = k.pageCache.named('f')!.cache.get(page);
  return pfn === undefined ? undefined : k.pages.data.get(pfn);
}

describe('ftruncate() inside a large shmem folio', () => {
  it('v6.15+: try_folio_split() at the new end page leaves buddy pieces below it and frees the rest', () => {
    for (const version of ['v6.15', 'latest']) {
      const k = kernel(version);
      hugeFile(k);
      k.run(k.truncate({ file: 'f', size: 300 * PS }));
      // folio_split() at page 300 halves [0,512) keeping the halves without page 300: [0,256) o8,
      // [384,512) o7, [320,384) o6, [256,288) o5, [304,320) o4, [288,296) o3, [296,300) o2,
      // [302,304) o1, then pages 300 and 301; every piece from 300 on lies past the new end and goes
      expect(layout(k, 'f')).toEqual([[0, 8], [256, 5], [288, 3], [296, 2]]);
      const head = k.pageCache.named('f')!.cache.get(0)!;
      // an unmapped page-cache folio: one cache reference per page (256), no caller's left
      expect([k.refcount(head), k.mapcount(head)]).toEqual([256, 0]);
      expect([dataAt(k, 0), dataAt(k, 299), dataAt(k, 300)]).toEqual(['b0', 'b299', undefined]);
    }
  });

  it('v5.10 and v6.6: split_huge_page() / split_folio() to order 0, the 212 pages past the end freed', () => {
    for (const version of ['v5.10', 'v6.6']) {
      const k = kernel(version);
      hugeFile(k);
      k.run(k.truncate({ file: 'f', size: 300 * PS }));
      const l = layout(k, 'f');
      expect([l.length, l.every(([, order]) => order === 0), k.pageCache.named('f')!.cache.size]).toEqual([300, true, 300]);
      expect(k.refcount(k.pageCache.named('f')!.cache.get(299)!)).toBe(1);
      expect([dataAt(k, 299), dataAt(k, 300)]).toEqual(['b299', undefined]);
    }
  });

  it('v5.4 (before shmem_punch_compound(), v5.7): the THP stays whole, its pages past the end zeroed', () => {
    const k = kernel('v5.4');
    hugeFile(k);
    k.run(k.truncate({ file: 'f', size: 300 * PS }));
    expect(layout(k, 'f')).toEqual([[0, 9]]);
    const head = k.pageCache.named('f')!.cache.get(0)!;
    // all 512 cache references stay: clear_highpage() only
    expect(k.refcount(head)).toBe(NR);
    expect([dataAt(k, 299), dataAt(k, 300), dataAt(k, 511)]).toEqual(['b299', undefined, undefined]);
  });
});

describe('FALLOC_FL_PUNCH_HOLE / MADV_REMOVE inside a large shmem folio', () => {
  it('latest: split at the hole\'s first page, then the piece holding the page after it: only the hole\'s 50 pages go', () => {
    const k = kernel('latest');
    hugeFile(k);
    k.run(k.punchHole({ file: 'f', offset: 100 * PS, length: 50 * PS }));
    // split at 100: [0,64) o6, [64,96) o5, [96,100) o2, 100, 101, [102,104) o1, [104,112) o3,
    // [112,128) o4, [128,256) o7, [256,512) o8; then [128,256) at 150: [128,144) o4, [144,148) o2,
    // [148,150) o1, 150, 151, [152,160) o3, [160,192) o5, [192,256) o6. [100,150) is dropped.
    expect(layout(k, 'f')).toEqual([[0, 6], [64, 5], [96, 2], [150, 0], [151, 0], [152, 3], [160, 5], [192, 6], [256, 8]]);
    expect(k.pageCache.named('f')!.cache.size).toBe(NR - 50);
    expect([dataAt(k, 99), dataAt(k, 100), dataAt(k, 149), dataAt(k, 150)]).toEqual(['b99', undefined, undefined, 'b150']);
  });

  it('v6.6: a uniform split to order 0, the same 50 pages go; MADV_REMOVE of a shared mapping does the same', () => {
    const k = kernel('v6.6');
    hugeFile(k);
    k.run(k.punchHole({ file: 'f', offset: 100 * PS, length: 50 * PS }));
    expect([layout(k, 'f').length, k.pageCache.named('f')!.cache.size, dataAt(k, 150)]).toEqual([NR - 50, NR - 50, 'b150']);
    const m = kernel('v6.6');
    hugeFile(m);
    m.run(m.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'map' }));
    // a read fault maps the folio by a PMD (shared file VMA, PMD-aligned): one mapping, one more reference
    expect(m.run(m.read({ map: 'map', page: 120 }))).toBe('b120');
    m.run(m.madvise({ map: 'map', advice: 'remove', offset: 100 * PS, length: 50 * PS }));
    expect([layout(m, 'f').length, m.pageCache.named('f')!.cache.size]).toEqual([NR - 50, NR - 50]);
    // the split unmapped the whole folio (file pages are left to refault); page 10 refaults as order 0
    expect([m.refcount(m.pageCache.named('f')!.cache.get(10)!), m.run(m.read({ map: 'map', page: 10 }))]).toEqual([1, 'b10']);
  });

  it('a hole inside one page still splits the folio around that page on latest (nothing dropped)', () => {
    const k = kernel('latest');
    hugeFile(k);
    k.run(k.punchHole({ file: 'f', offset: 10 * PS + 5, length: 100 }));
    // split_at = page 10: [0,8) o3, [8,10) o1, 10, 11, [12,16) o2, ..., [256,512) o8; split_at2 is
    // page 10 again, already order 0
    expect(layout(k, 'f')).toEqual([[0, 3], [8, 1], [10, 0], [11, 0], [12, 2], [16, 4], [32, 5], [64, 6], [128, 7], [256, 8]]);
    expect(k.pageCache.named('f')!.cache.size).toBe(NR);
  });

  it('a pinned folio cannot be split (-EAGAIN): it stays whole and cached, zeroed in the hole; unpinned, the next punch splits it', () => {
    for (const version of ['v6.6', 'latest']) {
      const k = kernel(version);
      hugeFile(k);
      k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'map' }));
      k.run(k.gup({ map: 'map', page: 5, write: true, longterm: true, as: 'dma' }, true));
      k.run(k.munmap({ map: 'map' }));
      const head = k.pageCache.named('f')!.cache.get(0)!;
      const rc = k.refcount(head);
      k.run(k.punchHole({ file: 'f', offset: 100 * PS, length: 50 * PS }));
      // folio_expected_ref_count() + the lookup's != refcount: the pin is extra, so no split and
      // (the folio was marked dirty) no drop: the 50 pages stay cached, their contents zeroed
      expect([layout(k, 'f'), k.pageCache.named('f')!.cache.size, k.refcount(head)]).toEqual([[[0, 9]], NR, rc]);
      expect([dataAt(k, 99), dataAt(k, 100), dataAt(k, 149), dataAt(k, 150)]).toEqual(['b99', undefined, undefined, 'b150']);
      k.run(k.unpin({ name: 'dma' }));
      k.run(k.punchHole({ file: 'f', offset: 100 * PS, length: 50 * PS }));
      expect(k.pageCache.named('f')!.cache.size).toBe(NR - 50);
    }
  });
});

describe('a PMD-mapped large shmem folio that cannot be split', () => {
  it('loses its PMD to the punch, stays whole, and a later fault maps it by a PMD again with zeroes in the hole; a truncate keeps it past i_size', () => {
    const k = kernel('latest');
    hugeFile(k);
    k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'map' }));
    k.run(k.gup({ map: 'map', page: 5, write: true, longterm: true, as: 'dma' }, true));
    const head = k.pageCache.named('f')!.cache.get(0)!;
    // 512 cache references + the PMD's + the pin's (a large folio's FOLL_PIN adds one reference)
    expect([k.refcount(head), k.mapcount(head), k.folioOrderIn({ map: 'map', page: 5 })]).toEqual([NR + 2, 1, 9]);
    k.run(k.punchHole({ file: 'f', offset: 100 * PS, length: 50 * PS }));
    // unmap_mapping_range() over part of the PMD: __split_huge_pmd() of a file PMD clears it whole;
    // the split then fails on the pin, so only the PMD's reference went
    expect([k.refcount(head), k.mapcount(head), k.folioOrderIn({ map: 'map', page: 5 })]).toEqual([NR + 1, 0, -1]);
    expect([k.run(k.read({ map: 'map', page: 120 })), k.run(k.read({ map: 'map', page: 10 }))]).toEqual(['', 'b10']);
    expect([k.refcount(head), k.mapcount(head), k.folioOrderIn({ map: 'map', page: 120 })]).toEqual([NR + 2, 1, 9]);
    k.run(k.truncate({ file: 'f', size: 300 * PS }));
    // unmapped past the new end (the PMD goes whole again), not split: all 512 indices stay cached
    expect([k.refcount(head), k.mapcount(head), k.pageCache.named('f')!.cache.size]).toEqual([NR + 1, 0, NR]);
  });
});

describe('fallocate() of shmem under a huge policy', () => {
  it('allocates the folio a write of the same range would (huge=always), not uptodate as a whole', () => {
    // v6.6: shmem_is_huge() -> the PMD order even for 64 KiB; v6.15 (v6.14-v6.17): the size hints
    // at order 4 (64 KiB = 16 pages); latest: the PMD order first whatever the size
    for (const [version, order] of [['v6.6', 9], ['v6.15', 4], ['latest', 9]] as const) {
      const k = kernel(version);
      k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 0 }));
      k.run(k.fallocate({ file: 'f', offset: 0, length: 64 * 1024 }));
      expect(layout(k, 'f')).toEqual([[0, order]]);
      const file = k.pageCache.named('f')!;
      const head = file.cache.get(0)!;
      // shmem_add_to_page_cache(): one reference per page; shmem_fallocate()'s own was put
      expect([k.refcount(head), file.notUptodate.size]).toEqual([1 << order, 1 << order]);
    }
  });

  it('a memfd under shmem_enabled=always gets one order-9 folio per 2 MiB; never keeps order 0', () => {
    const k = kernel('latest');
    k.run(k.shmemEnabled({ mode: 'always' }));
    k.run(k.memfdCreate({ file: 'm', size: 4 * MiB, fallocate: true }));
    expect(layout(k, 'm')).toEqual([[0, 9], [NR, 9]]);
    const n = kernel('latest');
    n.run(n.memfdCreate({ file: 'm', size: 4 * PS, fallocate: true }));
    expect(layout(n, 'm')).toEqual([[0, 0], [1, 0], [2, 0], [3, 0]]);
  });

  it('a read fault zeroes and marks uptodate the whole fallocated folio (SGP_CACHE), then maps it by a PMD', () => {
    const k = kernel('v6.6');
    k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 2 * MiB }));
    k.run(k.fallocate({ file: 'f', offset: 0, length: 2 * MiB }));
    k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, as: 'map' }));
    expect(k.run(k.read({ map: 'map', page: 3 }))).toBe('');
    expect([k.pageCache.named('f')!.notUptodate.size, k.folioOrderIn({ map: 'map', page: 3 })]).toEqual([0, 9]);
  });
});
