import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { InputError } from '../src/errors.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';

// write(2) to a file on a tmpfs mounted with huge= (mm/pagecache.ts writeBegin(): shmem_write_begin
// -> shmem_get_folio(SGP_WRITE) -> shmem_alloc_and_add_folio()) and the split of what it makes
// through the path form of /sys/kernel/debug/split_huge_pages (split_huge_page_test.c
// split_file_backed_thp()). The test arch: 4 KiB pages, 2 MiB PMDs (512 pages, order 9).
const NR = 512;
const KiB = 1024;
const MiB = 2 ** 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** A 2-PMD anonymous buffer whose pages hold `b<page>` (the selftest's file_buf1 filled with (char)i). */
function buffer(k: Kernel, pages = 2 * NR): void {
  k.run(k.mmap({ anon: true, length: pages * 4 * KiB, write: true, as: 'buf' }));
  for (let page = 0; page < pages; page++) k.run(k.write({ map: 'buf', page, data: `b${page}` }));
}

/** open(O_CREAT) of `file` on a tmpfs mounted huge=<huge>, then pwrite(fd, buf, length, offset). */
function tmpfsWrite(k: Kernel, file: string, huge: 'always' | 'within_size' | 'advise', length: number, offset = 0): void {
  k.run(k.tmpfile({ file, fs: 'tmpfs', huge, size: 0 }));
  expect(k.run(k.pwrite({ file, offset, length, map: 'buf' }))).toBe(length);
}

/** The orders of the folios caching [0, pages) of the file, in index order. */
function cachedOrders(k: Kernel, file: string, pages: number): number[] {
  const out: number[] = [];
  for (let index = 0; index < pages; ) {
    const order = k.folioOrderIn({ file, page: index });
    out.push(order);
    index += order > 0 ? 1 << order : 1;
  }
  return out;
}

describe('write(2) to a tmpfs mounted huge=always', () => {
  it('a PMD-sized write at offset 0 makes one order-9 folio holding 512 cache references (every release with huge tmpfs)', () => {
    for (const version of ['v5.4', 'v6.6', 'v6.15', 'latest']) {
      const k = kernel(version);
      buffer(k, NR);
      k.run(k.tmpfile({ file: 'thp_file', fs: 'tmpfs', huge: 'always', size: 0 }));
      expect(k.run(k.pwrite({ file: 'thp_file', offset: 0, length: 2 * MiB, map: 'buf' }))).toBe(2 * MiB);
      // up to v6.13 shmem_is_huge() allows the PMD order; v6.14-v6.17 the write's size hints at
      // order 9 (2 MiB from index 0); latest tries the PMD order first
      expect(cachedOrders(k, 'thp_file', NR)).toEqual([9]);
      const head = k.pageCache.named('thp_file')!.cache.get(0)!;
      // one reference per index (shmem_add_to_page_cache: folio_ref_add(nr)); the write's own were put
      expect([k.refcount(head), k.mapcount(head)]).toEqual([NR, 0]);
      expect(k.pageCache.named('thp_file')!.cache.get(300)).toBe(head + 300);
    }
  });

  it('huge=never (the default) and a memfd under shmem_enabled=never make order-0 folios; shmem_enabled=always does for a memfd what huge=always does', () => {
    const k = kernel('v6.6');
    buffer(k, NR);
    k.run(k.tmpfile({ file: 'plain', fs: 'tmpfs', size: 0 }));
    k.run(k.pwrite({ file: 'plain', length: 2 * MiB, map: 'buf' }));
    expect(cachedOrders(k, 'plain', 3)).toEqual([0, 0, 0]);
    k.run(k.memfdCreate({ file: 'm', size: 0 }));
    k.run(k.pwrite({ file: 'm', length: 2 * MiB, map: 'buf' }));
    expect(cachedOrders(k, 'm', 3)).toEqual([0, 0, 0]);
    // shmem_enabled_store() copies always to shm_mnt's sb->huge: a memfd's writes go huge
    k.run(k.shmemEnabled({ mode: 'always' }));
    k.run(k.memfdCreate({ file: 'm2', size: 0 }));
    k.run(k.pwrite({ file: 'm2', length: 2 * MiB, map: 'buf' }));
    expect(cachedOrders(k, 'm2', NR)).toEqual([9]);
    // deny overrides every mount's huge= (shmem_huge == SHMEM_HUGE_DENY)
    k.run(k.shmemEnabled({ mode: 'deny' }));
    tmpfsWrite(k, 'denied', 'always', 2 * MiB);
    expect(cachedOrders(k, 'denied', 2)).toEqual([0, 0]);
  });

  it('a page already cached in the PMD range keeps the range small (xa_find() conflict: -E2BIG, order 0)', () => {
    const k = kernel('v6.6');
    buffer(k, NR);
    k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 0 }));
    // up to v6.13 the order is the PMD one or nothing: a page at index 5 first
    k.run(k.pwrite({ file: 'f', offset: 5 * 4 * KiB, length: 4 * KiB, map: 'buf' }));
    // the first write allocates a PMD folio over indexes 0..511 (index 5 rounded down)
    expect(k.folioOrderIn({ file: 'f', page: 5 })).toBe(9);
    // a file whose index 0 holds an order-0 page from huge=never days cannot get a PMD folio there
    k.run(k.tmpfile({ file: 'g', fs: 'tmpfs', huge: 'always', size: 2 * MiB }));
    k.run(k.shmemEnabled({ mode: 'deny' }));
    k.run(k.pwrite({ file: 'g', offset: 0, length: 4 * KiB, map: 'buf' }));
    k.run(k.shmemEnabled({ mode: 'never' }));
    k.run(k.pwrite({ file: 'g', offset: 4 * KiB, length: 2 * MiB - 4 * KiB, map: 'buf', page: 1 }));
    expect(cachedOrders(k, 'g', 4)).toEqual([0, 0, 0, 0]);
  });

  it('v6.14-v6.17 take the order from the write size (shmem_mapping_size_orders); v6.18+ and up to v6.13 try the PMD order', () => {
    // a 64 KiB write at index 16: size order 4, index 16 aligned to 16 -> one order-4 folio
    const mid = kernel('v6.15');
    buffer(mid, 16);
    tmpfsWrite(mid, 'f', 'always', 64 * KiB, 64 * KiB);
    expect(mid.folioOrderIn({ file: 'f', page: 16 })).toBe(4);
    expect(mid.folioOrderIn({ file: 'f', page: 0 })).toBe(-1);
    // a 64 KiB write at index 8: size order 4, but index 8 is only 8-aligned (__ffs(8) = 3): two order-3 folios
    tmpfsWrite(mid, 'g', 'always', 64 * KiB, 32 * KiB);
    expect([mid.folioOrderIn({ file: 'g', page: 8 }), mid.folioOrderIn({ file: 'g', page: 16 })]).toEqual([3, 3]);
    // a page-sized write: filemap_get_order(4096) = 0, no large order at all
    tmpfsWrite(mid, 'h', 'always', 4 * KiB);
    expect(mid.folioOrderIn({ file: 'h', page: 0 })).toBe(0);
    // the same page-sized write on v6.6 and latest: a PMD folio (no size hint; PMD first)
    for (const version of ['v6.6', 'latest']) {
      const k = kernel(version);
      buffer(k, 1);
      tmpfsWrite(k, 'h', 'always', 4 * KiB);
      expect(k.folioOrderIn({ file: 'h', page: 0 })).toBe(9);
    }
  });

  it('latest falls back to the largest order whose aligned range is free when the PMD range holds a page', () => {
    const k = kernel('latest');
    buffer(k, 4);
    // index 0 of a file on a huge=always tmpfs cached as order 0 (written under shmem_enabled=deny)
    k.run(k.shmemEnabled({ mode: 'deny' }));
    tmpfsWrite(k, 'g', 'always', 4 * KiB);
    k.run(k.shmemEnabled({ mode: 'never' }));
    // index 1: orders 9..2 all hold index 0 in their range; order 1 at index 0 too; so order 0.
    // index 4: orders 9..3 hold index 0; order 2 covers 4..7, free: one order-2 folio
    k.run(k.pwrite({ file: 'g', offset: 16 * KiB, length: 4 * KiB, map: 'buf' }));
    expect(k.folioOrderIn({ file: 'g', page: 4 })).toBe(2);
    k.run(k.pwrite({ file: 'g', offset: 4 * KiB, length: 4 * KiB, map: 'buf' }));
    expect(k.folioOrderIn({ file: 'g', page: 1 })).toBe(0);
    // index 2: order 1 covers 2..3, free
    k.run(k.pwrite({ file: 'g', offset: 8 * KiB, length: 4 * KiB, map: 'buf' }));
    expect(k.folioOrderIn({ file: 'g', page: 2 })).toBe(1);
  });

  it('within_size: a huge folio only where it ends inside i_size (up to v6.13 against i_size before the write)', () => {
    const k = kernel('v6.6');
    buffer(k, NR);
    k.run(k.tmpfile({ file: 'w', fs: 'tmpfs', huge: 'within_size', size: 4 * MiB }));
    k.run(k.pwrite({ file: 'w', offset: 0, length: 4 * KiB, map: 'buf' }));
    expect(k.folioOrderIn({ file: 'w', page: 0 })).toBe(9);
    // an empty file: i_size 0 before the write, the PMD range would end past it
    tmpfsWrite(k, 'e', 'within_size', 2 * MiB);
    expect(k.folioOrderIn({ file: 'e', page: 0 })).toBe(0);
    // v6.15: max(write_end, i_size) -- the 2 MiB write itself makes the PMD range fit
    const mid = kernel('v6.15');
    buffer(mid, NR);
    tmpfsWrite(mid, 'e', 'within_size', 2 * MiB);
    expect(mid.folioOrderIn({ file: 'e', page: 0 })).toBe(9);
  });

  it('huge=advise allocates nothing large for a write (no VMA, no VM_HUGEPAGE)', () => {
    const k = kernel('latest');
    buffer(k, 4);
    tmpfsWrite(k, 'a', 'advise', 16 * KiB);
    expect(cachedOrders(k, 'a', 4)).toEqual([0, 0, 0, 0]);
  });
});

describe('faults on a huge tmpfs file (shmem_fault -> shmem_get_folio_gfp(SGP_CACHE) over a hole)', () => {
  it('huge=always: a read fault allocates the PMD-order folio and maps it by a PMD; within_size only when the PMD range ends inside i_size', () => {
    const k = kernel('latest');
    k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 2 * MiB }));
    k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 7 }))).toBe('');
    expect([k.folioOrderIn({ file: 'f', page: 7 }), k.folioOrderIn({ map: 'm', page: 7 }), k.pmdMappedCacheThpsIn({ map: 'm', page: 0 }, 'shmem')]).toEqual([9, 9, 1]);
    // i_size 1 MiB (256 pages): index 3's PMD range ends at 512, past it; MADV_HUGEPAGE does not
    // matter to within_size's own test but lets it fall through to advise's (VM_HUGEPAGE)
    k.run(k.tmpfile({ file: 'w', fs: 'tmpfs', huge: 'within_size', size: MiB }));
    k.run(k.mmap({ file: 'w', length: 2 * MiB, shared: true, as: 'mw' }));
    k.run(k.read({ map: 'mw', page: 3 }));
    expect(k.folioOrderIn({ file: 'w', page: 3 })).toBe(0);
    k.run(k.tmpfile({ file: 'w2', fs: 'tmpfs', huge: 'within_size', size: MiB }));
    k.run(k.mmap({ file: 'w2', length: 2 * MiB, shared: true, as: 'mw2' }));
    k.run(k.madvise({ map: 'mw2', advice: 'hugepage' }));
    k.run(k.read({ map: 'mw2', page: 3 }));
    expect(k.folioOrderIn({ file: 'w2', page: 3 })).toBe(9);
  });

  it('a private write fault (do_cow_fault) allocates the huge page-cache folio too, and maps an anonymous copy of its page', () => {
    const k = kernel('latest');
    k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 2 * MiB }));
    k.run(k.mmap({ file: 'f', length: 2 * MiB, write: true, as: 'p' }));
    k.run(k.write({ map: 'p', page: 9, data: 'mine' }));
    const head = k.pageCache.named('f')!.cache.get(0)!;
    // the cache's 512 references only: do_cow_fault() put the fault's after copying
    expect([k.folioOrderIn({ file: 'f', page: 9 }), k.folioOrderIn({ map: 'p', page: 9 }), k.refcount(head), k.mapcount(head)]).toEqual([9, 0, NR, 0]);
    k.run(k.pread({ file: 'f', offset: 9 * 4 * KiB, length: 4 * KiB, map: 'p', page: 10 }));
    expect(k.run(k.read({ map: 'p', page: 10 }))).toBe('');
  });
});

describe('64 KiB pages with 512 MiB PMDs (arm64 64K: HPAGE_PMD_ORDER 13 > MAX_PAGECACHE_ORDER 11)', () => {
  // arm64's 64 KiB granule constants on the test arch: a PMD maps 8192 pages
  const arch64k = () => {
    const a = testArch();
    return { ...a, mmu: { ...a.mmu, basePageSize: 64 * KiB, pmdSize: 512 * MiB } };
  };
  const orderOfWrite = (version: string): number => {
    const k = createKernel({ arch: arch64k(), kernel: version });
    k.run(k.mmap({ anon: true, length: 64 * KiB, write: true, as: 'buf' }));
    k.run(k.tmpfile({ file: 'f', fs: 'tmpfs', huge: 'always', size: 0 }));
    k.run(k.pwrite({ file: 'f', length: 64 * KiB, map: 'buf' }));
    return k.folioOrderIn({ file: 'f', page: 0 });
  };

  it('before v6.10 the order-13 PMD folio is allocated (v5.10, v6.6); from v6.10 no order passes MAX_PAGECACHE_ORDER 11', () => {
    expect(orderOfWrite('v5.10')).toBe(13);
    expect(orderOfWrite('v6.6')).toBe(13);
    // v6.15: a one-page write hints at order 0; latest: every order up to MAX_PAGECACHE_ORDER, highest first
    expect(orderOfWrite('v6.15')).toBe(0);
    expect(orderOfWrite('latest')).toBe(11);
  });
});

describe('split_file_backed_thp(): the path form splits what the write made', () => {
  it('to order 0: 1 of 1 split, 512 order-0 folios of one cache reference each, the data read back unchanged', () => {
    const k = kernel('v6.6');
    buffer(k);
    tmpfsWrite(k, 'thp_file', 'always', 2 * MiB);
    const head = k.pageCache.named('thp_file')!.cache.get(0)!;
    // pgoff_start 0, pgoff_end 1024: past i_size (512 pages) the cache is empty
    expect(k.run(k.splitHugePages({ file: 'thp_file', offset: 0, length: 4 * MiB }))).toEqual({ split: 1, total: 1 });
    expect(cachedOrders(k, 'thp_file', NR)).toEqual(new Array(NR).fill(0));
    expect([k.refcount(head + 100), k.mapcount(head + 100)]).toEqual([1, 0]);
    // read(fd, file_buf2, 2 MiB) into the buffer's second PMD, compared page by page
    expect(k.run(k.pread({ file: 'thp_file', length: 2 * MiB, map: 'buf', page: NR }))).toBe(2 * MiB);
    for (const page of [0, 1, 255, 511]) expect(k.run(k.read({ map: 'buf', page: NR + page }))).toBe(`b${page}`);
  });

  it('to order 1 and order 8 (v6.15+: shmem folios split to any order; order 1 is fine for a file folio); v6.6 parses no new_order', () => {
    for (const [order, count] of [[1, 256], [8, 2]] as const) {
      const k = kernel('v6.15');
      buffer(k);
      tmpfsWrite(k, 'thp_file', 'always', 2 * MiB);
      expect(k.run(k.splitHugePages({ file: 'thp_file', length: 4 * MiB, order }))).toEqual({ split: 1, total: 1 });
      expect(cachedOrders(k, 'thp_file', NR)).toEqual(new Array(count).fill(order));
      k.run(k.pread({ file: 'thp_file', length: 2 * MiB, map: 'buf', page: NR }));
      expect(k.run(k.read({ map: 'buf', page: NR + 300 }))).toBe('b300');
    }
    const old = kernel('v6.6');
    buffer(old);
    tmpfsWrite(old, 'thp_file', 'always', 2 * MiB);
    expect(old.run(old.splitHugePages({ file: 'thp_file', length: 4 * MiB, order: 1 }))).toEqual({ split: 1, total: 1 });
    expect(cachedOrders(old, 'thp_file', 4)).toEqual([0, 0, 0, 0]);
  });

  it('before v5.13 the debugfs file takes only "1": EINVAL, the order-9 folio stays', () => {
    const k = kernel('v5.10');
    buffer(k);
    tmpfsWrite(k, 'thp_file', 'always', 2 * MiB);
    expect(() => k.run(k.splitHugePages({ file: 'thp_file', length: 4 * MiB }))).toThrow(/EINVAL|only "1"/);
    expect(k.folioOrderIn({ file: 'thp_file', page: 0 })).toBe(9);
  });
});

describe('bad input names the field and the fix', () => {
  const errorOf = (step: string): string => {
    try {
      parseScenario(`name: t\nsteps:\n  - ${step}\n`, 's.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message;
    }
    throw new Error(`expected an InputError for ${step}`);
  };

  it('huge on a disk tmpfile, a shmem_enabled-only mode as a mount option, folioOrder of a device', () => {
    expect(errorOf('tmpfile: { file: f, fs: xfs, size: 4KiB, huge: always }')).toMatch(/steps\[0\]\.tmpfile\.huge: huge is a tmpfs mount option: give fs: tmpfs, or leave huge out/);
    expect(errorOf('tmpfile: { file: f, fs: tmpfs, size: 0, huge: deny }')).toMatch(/huge is one of always, within_size, advise, never \(deny and force are shmem-enabled modes, not mount options\)/);
    expect(errorOf('check: { folioOrder: { device: d }, equals: 0 }')).toMatch(/folioOrder looks at the folio mapped at a page of a mapping, cached at a page of a file, or holding a data page of a device: write \{ map, page \}, \{ file, page \} or \{ device, page \}/);
  });

  it('folioOrder of a name that is no page-cache file is an InputError naming the file, not a crash', () => {
    const k = kernel();
    expect(() => k.folioOrderIn({ file: 'nope', page: 0 })).toThrow(InputError);
    expect(() => k.folioOrderIn({ file: 'nope', page: 0 })).toThrow(/'nope' is not a page-cache file/);
  });
});
