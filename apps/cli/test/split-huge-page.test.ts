import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { fails } from './selftest-api.js';

// tools/testing/selftests/mm/split_huge_page_test.c through the kernel API on x86 (2 MiB PMDs of
// 4 KiB pages: pmd_order 9), per preset, against the verdicts docs/selftests.md ("Coverage:
// tools/testing/selftests/mm/split_huge_page_test.c") wrote down first. Each case is the
// selftest's sequence with every page written; a failed check or a failed write is 'fail'.

const NR = 512;
const PAGE = 4096;
type Verdict = 'pass' | 'fail';

function kernel(version: string): Kernel {
  return createKernel({ arch: x86(), kernel: version });
}

/** memalign(pmd_pagesize, 4 * pmd_pagesize), MADV_HUGEPAGE, every page written (value(i) for page i). */
function fourThps(k: Kernel, value: (page: number) => string): void {
  k.run(k.mmap({ anon: true, length: 4 * NR * PAGE, write: true, as: 'mem' }));
  k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
  for (let page = 0; page < 4 * NR; page++) k.run(k.write({ map: 'mem', page, data: value(page) }));
}

const huge = (k: Kernel, nr: number): boolean => k.anonHugePagesIn({ map: 'mem', page: 0 }) === nr;
const dataKept = (k: Kernel, map: string, pages: number, value: (page: number) => string): boolean => {
  for (let page = 0; page < pages; page++) if (k.run(k.read({ map, page })) !== value(page)) return false;
  return true;
};

/**
 * gather_folio_orders() over the range: the number of folios of each order whose pages the range
 * maps (the newest selftest's check_after_split_folio_orders()).
 */
function folioOrders(k: Kernel, map: string, pages: number): number[] {
  const counts = new Array<number>(10).fill(0);
  for (let page = 0; page < pages; ) {
    const order = k.folioOrderIn({ map, page });
    counts[order]!++;
    page += 1 << order;
  }
  return counts;
}

/** split_pmd_thp_to_order(order) (split_pmd_thp to order 0 before v6.12); `newest`: with the folio-order check. */
function splitPmdThpToOrder(version: string, order: number, newest: boolean): Verdict {
  const k = kernel(version);
  const value = (p: number) => `v${p}`;
  fourThps(k, value);
  if (!huge(k, 4)) return 'fail'; // "No THP is allocated"
  if (fails(() => k.run(k.splitHugePages({ map: 'mem', order })))) return 'fail'; // "Write failed"
  if (!dataKept(k, 'mem', 4 * NR, value)) return 'fail';
  if (newest) {
    const expected = new Array<number>(10).fill(0);
    expected[order] = 4 << (9 - order);
    if (JSON.stringify(folioOrders(k, 'mem', 4 * NR)) !== JSON.stringify(expected)) return 'fail'; // "Unexpected THP split"
  }
  return huge(k, 0) ? 'pass' : 'fail'; // "Still AnonHugePages not split"
}

/** split_pmd_zero_pages: zero-filled THPs, split; RssAnon must drop. */
function splitPmdZeroPages(version: string): Verdict {
  const k = kernel(version);
  fourThps(k, () => '');
  if (!huge(k, 4)) return 'fail';
  const before = k.rssAnonIn({});
  if (before === 0) return 'fail';
  if (fails(() => k.run(k.splitHugePages({ map: 'mem' })))) return 'fail';
  if (!dataKept(k, 'mem', 4 * NR, () => '')) return 'fail';
  if (!huge(k, 0)) return 'fail';
  return k.rssAnonIn({}) < before ? 'pass' : 'fail'; // "Incorrect RssAnon value"
}

/** split_pte_mapped_thp: page i of THP i mremap()ed into page_area, split through page_area. */
function splitPteMappedThp(version: string): Verdict {
  const k = kernel(version);
  const value = (p: number) => `v${p}`;
  fourThps(k, value);
  if (!huge(k, 4)) return 'fail'; // SKIP "Not all THPs allocated" in the newest form
  k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'area' }));
  for (let i = 0; i < 4; i++) k.run(k.mremap({ map: 'mem', offset: (i * NR + i) * PAGE, length: PAGE, to: 'area', toOffset: i * PAGE, as: `moved${i}` }));
  for (let i = 0; i < 4; i++) if (k.folioOrderIn({ map: 'area', page: i }) !== 9) return 'fail'; // "THP %zu missing after mremap"
  if (fails(() => k.run(k.splitHugePages({ map: 'area' })))) return 'fail';
  if (!dataKept(k, 'area', 4, (i) => value(i * NR + i))) return 'fail';
  for (let i = 0; i < 4; i++) if (k.folioOrderIn({ map: 'area', page: i }) !== 0) return 'fail'; // "THP %zu not split"
  return 'pass';
}

/**
 * split_thp_in_pagecache_to_order_at(fd_size, order, -1)'s steps on a shmem THP pair MADV_COLLAPSE
 * builds (the model's large page-cache folios; the selftest's come from faults on XFS), with the
 * newest form's folio-order check after the data is read back.
 */
function splitShmemThpToOrder(version: string, order: number): Verdict {
  const k = kernel(version);
  const value = (p: number) => `f${p}`;
  k.run(k.memfdCreate({ file: 'test', size: 2 * NR * PAGE }));
  k.run(k.mmap({ file: 'test', length: 2 * NR * PAGE, shared: true, write: true, as: 'mem' }));
  for (let page = 0; page < 2 * NR; page++) k.run(k.write({ map: 'mem', page, data: value(page) }));
  if (fails(() => k.run(k.madvise({ map: 'mem', advice: 'collapse' })))) return 'fail';
  if (k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'shmem') !== 2) return 'fail'; // "No large pagecache folio generated": SKIP
  // one write per PMD range over its first page, as the selftest does
  for (let i = 0; i < 2; i++) if (fails(() => k.run(k.splitHugePages({ map: 'mem', offset: i * NR * PAGE, length: PAGE, order })))) return 'fail';
  if (!dataKept(k, 'mem', 2 * NR, value)) return 'fail';
  const expected = new Array<number>(10).fill(0);
  expected[order] = (2 * NR) >> order;
  if (JSON.stringify(folioOrders(k, 'mem', 2 * NR)) !== JSON.stringify(expected)) return 'fail'; // "Unexpected THP split"
  return k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'shmem') === 0 ? 'pass' : 'fail'; // "Still FilePmdMapped not split"
}

/**
 * split_file_backed_thp(order): a tmpfs mounted huge=always, write(fd, file_buf1, pmd_pagesize),
 * write_debugfs(PATH_FMT, testfile, 0, 1024, order), read(2) back into file_buf2 and compared. The
 * selftest checks nothing else ("Please check dmesg"); a failed mount, write, debugfs write or
 * read, or changed data is 'fail'. `orders` gets the folio orders the split left, for the caller.
 */
function splitFileBackedThp(version: string, order: number, orders?: number[]): Verdict {
  const k = kernel(version);
  const value = (p: number) => `c${p}`;
  k.run(k.mmap({ anon: true, length: 2 * NR * PAGE, write: true, as: 'buf' }));
  for (let page = 0; page < NR; page++) k.run(k.write({ map: 'buf', page, data: value(page) }));
  if (fails(() => k.run(k.tmpfile({ file: 'thp_file', fs: 'tmpfs', huge: 'always', size: 0 })))) return 'fail';
  if (k.run(k.pwrite({ file: 'thp_file', length: NR * PAGE, map: 'buf' })) !== NR * PAGE) return 'fail';
  const splitFailed = fails(() => k.run(k.splitHugePages({ file: 'thp_file', offset: 0, length: 1024 * PAGE, order })));
  for (let index = 0; orders && index < NR; index += 1 << Math.max(0, k.folioOrderIn({ file: 'thp_file', page: index }))) orders.push(k.folioOrderIn({ file: 'thp_file', page: index }));
  if (splitFailed) return 'fail'; // "Failed to write to debugfs file"
  if (k.run(k.pread({ file: 'thp_file', length: NR * PAGE, map: 'buf', page: NR })) !== NR * PAGE) return 'fail';
  for (let page = 0; page < NR; page++) if (k.run(k.read({ map: 'buf', page: NR + page })) !== value(page)) return 'fail';
  return 'pass';
}

/**
 * split_thp_in_pagecache_to_order_at() with its fs_loc on a tmpfs mounted huge=always (the
 * selftest's /tmp when it is one): create_pagecache_thp_and_fd() writes 2 * pmd_pagesize in 1 KiB
 * write(2)s -- here one page per write, the same size hint (filemap_get_order() of 1 KiB and of
 * 4 KiB are both 0) --, drop_caches (shmem folios are not dropped), mmap(MAP_SHARED), MADV_HUGEPAGE,
 * reads every page, then check_huge_file(addr, 2, pmd_pagesize) reads FilePmdMapped: a tmpfs
 * mapping's PMDs are ShmemPmdMapped, so it SKIPs ("Pagecache folio split skipped") whatever the
 * folios are. Returns the verdict and ShmemPmdMapped at that point.
 */
function splitThpInPagecacheOnTmpfs(version: string): { verdict: 'skip' | 'go on'; shmemPmdMapped: number } {
  const k = kernel(version);
  k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
  k.run(k.write({ map: 'buf', page: 0, data: 'chunk' }));
  k.run(k.tmpfile({ file: 'test', fs: 'tmpfs', huge: 'always', size: 0 }));
  for (let page = 0; page < 2 * NR; page++) k.run(k.pwrite({ file: 'test', offset: page * PAGE, length: PAGE, map: 'buf' }));
  k.run(k.mmap({ file: 'test', length: 2 * NR * PAGE, shared: true, write: true, as: 'mem' }));
  k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
  for (let page = 0; page < 2 * NR; page++) k.run(k.read({ map: 'mem', page }));
  const verdict = k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'file') === 2 ? 'go on' : 'skip';
  return { verdict, shmemPmdMapped: k.pmdMappedCacheThpsIn({ map: 'mem', page: 0 }, 'shmem') };
}

const OLD = ['v5.4', 'v5.10'];
const MID = ['v6.1', 'v6.3', 'v6.6'];
const NEW = ['v6.15', 'latest'];

describe('split_huge_page_test.c verdicts per preset (x86), as docs/selftests.md wrote them', () => {
  it('covers every preset', () => {
    expect([...OLD, ...MID, ...NEW].sort()).toEqual(PRESETS.map((p) => p.name).sort());
  });

  for (const v of [...OLD, ...MID, ...NEW]) {
    const old = OLD.includes(v);
    const isNew = NEW.includes(v);
    it(`${v}: split_pmd_thp / split_pmd_thp_to_order(0)`, () => {
      expect(splitPmdThpToOrder(v, 0, false)).toBe(old ? 'fail' : 'pass');
      expect(splitPmdThpToOrder(v, 0, true)).toBe(old ? 'fail' : 'pass');
    });
    it(`${v}: split_pmd_thp_to_order(2..8): the v6.12 form passes wherever the write works, the newest form needs new_order (v6.10)`, () => {
      for (const order of [2, 5, 8]) {
        expect(splitPmdThpToOrder(v, order, false)).toBe(old ? 'fail' : 'pass');
        expect(splitPmdThpToOrder(v, order, true)).toBe(isNew ? 'pass' : 'fail');
      }
    });
    it(`${v}: split_pmd_zero_pages needs the zero-page remap (v6.12)`, () => {
      expect(splitPmdZeroPages(v)).toBe(isNew ? 'pass' : 'fail');
    });
    it(`${v}: split_thp_in_pagecache_to_order's steps on a shmem THP: orders 0 and 4`, () => {
      expect(splitShmemThpToOrder(v, 0)).toBe(old ? 'fail' : 'pass');
      expect(splitShmemThpToOrder(v, 4)).toBe(isNew ? 'pass' : 'fail');
    });
    it(`${v}: split_pte_mapped_thp`, () => {
      expect(splitPteMappedThp(v)).toBe(old ? 'fail' : 'pass');
    });
    it(`${v}: split_file_backed_thp(0, 1, 5, 8): the path form (v5.13) splits the PMD folio write(2) made, to the order written from v6.15 (shmem: v6.14), to 0 before`, () => {
      for (const order of [0, 1, 5, 8]) {
        const orders: number[] = [];
        expect(splitFileBackedThp(v, order, orders)).toBe(old ? 'fail' : 'pass');
        // the write made one order-9 folio; old kernels leave it, v6.1-v6.6 parse no new_order
        const made = old ? 9 : isNew ? order : 0;
        expect(orders).toEqual(new Array(NR >> made).fill(made));
      }
    });
    it(`${v}: split_thp_in_pagecache_to_order on a huge=always tmpfs SKIPs (FilePmdMapped 0); its folios are PMD-mapped except on v6.15 (1 KiB writes: order 0)`, () => {
      expect(splitThpInPagecacheOnTmpfs(v)).toEqual({ verdict: 'skip', shmemPmdMapped: v === 'v6.15' ? 0 : 2 });
    });
  }
});

describe('split_huge_pages over DAX PMDs (cases the selftest does not have)', () => {
  it('fs-dax: the VMA is passed over (vma_is_dax) and the file holds DAX entries, not folios: the PMD and the data stay', () => {
    for (const v of [...MID, ...NEW]) {
      const k = createKernel({ arch: x86(), fs: xfs(), driver: nvdimm(), kernel: v });
      k.run(k.probe({ size: 2 ** 30, align: 2 * 2 ** 20, as: 'pmem0' }));
      k.run(k.mount({ device: 'pmem0' }));
      k.run(k.create({ file: 'a', size: 4 * 2 ** 20 }));
      k.run(k.mmap({ file: 'a', length: 4 * 2 ** 20, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: 'D' }));
      const mm = k.processes.get('init')!;
      const vpn = mm.ranges.get('m')!.start;
      const before = k.vm.lookup(mm, vpn)!;
      expect(before.pte.level).toBe('pmd');
      const rc = k.refcount(before.pte.pfn);
      expect(k.run(k.splitHugePages({ map: 'm' }))).toEqual({ split: 0, total: 0 });
      expect(k.run(k.splitHugePages({ file: 'a' }))).toEqual({ split: 0, total: 0 });
      const after = k.vm.lookup(mm, vpn)!;
      expect([after.pte.level, after.pte.pfn, k.refcount(after.pte.pfn)]).toEqual(['pmd', before.pte.pfn, rc]);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('D');
    }
  });

  it('device-dax: the same for a 2 MiB-aligned device mapped by PMDs of compound (order-9) pages', () => {
    for (const v of ['v6.6', 'latest']) {
      const k = createKernel({ arch: x86(), driver: devdax(), kernel: v });
      k.run(k.probe({ size: 2 ** 30, align: 2 * 2 ** 20, as: 'dax0' }));
      k.run(k.mmap({ device: 'dax0', length: 4 * 2 ** 20, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: 'D' }));
      const mm = k.processes.get('init')!;
      const vpn = mm.ranges.get('m')!.start;
      expect(k.vm.lookup(mm, vpn)!.pte.level).toBe('pmd');
      expect(k.folioOrderIn({ map: 'm', page: 0 })).toBe(9);
      expect(k.run(k.splitHugePages({ map: 'm' }))).toEqual({ split: 0, total: 0 });
      expect(k.vm.lookup(mm, vpn)!.pte.level).toBe('pmd');
      expect(k.folioOrderIn({ map: 'm', page: 0 })).toBe(9);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('D');
    }
  });
});
