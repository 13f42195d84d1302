import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { PG } from '../src/mm/pages.js';
import { code } from './vm-helpers.js';

// Soft offline of RAM and hugetlb pages (mm/softoffline.ts; mm/memory-failure.c
// soft_offline_page(), soft_offline_in_use_page(), page_handle_poison()). The values are reasoned
// from the kernel's rules: madvise(MADV_SOFT_OFFLINE) takes a GUP reference (MF_COUNT_INCREASED),
// isolation takes another and drops the GUP one, migrate_pages(MR_MEMORY_FAILURE) moves the page
// and leaves the old one with the isolation reference, which page_handle_poison() puts (the page
// is freed, and a PG_hwpoison page never reaches the free lists) before page_ref_inc(): the old
// page ends at refcount 1, PG_hwpoison, never allocated again.

const KiB = 1024;
const MiB = 2 ** 20;
const HPAGE = 2 * MiB;
const HP = HPAGE / (4 * KiB); // base pages per huge page (testArch: 4 KiB pages)

const boot = (version = 'latest'): Kernel => createKernel({ arch: testArch(), kernel: version });
const poisoned = (k: Kernel, pfn: number): boolean => k.pages.has(pfn) && (k.folios.flags(pfn) & PG.hwpoison) !== 0;

describe('soft offline of an anonymous page', () => {
  it('moves the page with its data; the old pfn ends PG_hwpoison at refcount 1 and is never handed out again', () => {
    const k = boot();
    k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 1, data: 'x' }));
    const old = k.pfnOf({ map: 'a', page: 1 })!;
    k.run(k.softOffline({ map: 'a', page: 1 }));
    const now = k.pfnOf({ map: 'a', page: 1 })!;
    expect(now).not.toBe(old);
    expect(k.run(k.read({ map: 'a', page: 1 }))).toBe('x');
    // the new page: one mapping, one reference (remove_migration_ptes()), the allocation's dropped
    expect([k.refcount(now), k.mapcount(now)]).toEqual([1, 1]);
    expect([k.refcount(old), poisoned(k, old), k.memoryFailures.poisonedPages]).toEqual([1, true, 1]);
    // munmap frees the new page; the next allocations reuse it, never the old one
    k.run(k.munmap({ map: 'a' }));
    k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'b' }));
    for (let i = 0; i < 4; i++) k.run(k.write({ map: 'b', page: i, data: 'y' }));
    const got = [0, 1, 2, 3].map((i) => k.pfnOf({ map: 'b', page: i }));
    expect(got).toContain(now);
    expect(got).not.toContain(old);
  });

  it('a FOLL_LONGTERM pin keeps the page where it is: EBUSY from v5.11, EIO before (3f4b815a439a); nothing poisoned, the references as they were', () => {
    for (const [version, errno] of [['v5.10', 'EIO'], ['v6.1', 'EBUSY'], ['latest', 'EBUSY']] as const) {
      const k = boot(version);
      k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
      k.run(k.write({ map: 'a', page: 0, data: 'x' }));
      k.run(k.gup({ map: 'a', page: 0, longterm: true, as: 'p' }, true));
      const pfn = k.pfnOf({ map: 'a', page: 0 })!;
      const rc = k.refcount(pfn);
      expect(code(() => k.run(k.softOffline({ map: 'a', page: 0 }))), version).toBe(errno);
      // every round of migrate_pages() found one reference more than folio_migrate_mapping() wants
      // (or, v5.19+, try_to_migrate_one() would not unmap a maybe-pinned exclusive page)
      expect([k.pfnOf({ map: 'a', page: 0 }), k.refcount(pfn), poisoned(k, pfn)], version).toEqual([pfn, rc, false]);
    }
  });

  it('the shared zero page (a read-faulted anonymous page) is no LRU page: EIO, the GUP reference back', () => {
    const k = boot();
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
    k.run(k.read({ map: 'a', page: 0 }));
    const zero = k.pfnOf({ map: 'a', page: 0 })!;
    expect(k.isZeroPfn(zero)).toBe(true);
    const rc = k.refcount(zero);
    expect(code(() => k.run(k.softOffline({ map: 'a', page: 0 })))).toBe('EIO');
    expect(k.refcount(zero)).toBe(rc);
  });

  it('a page of a PMD-mapped THP: the THP is split, that one page moves, its neighbours stay', () => {
    const k = boot();
    k.run(k.mmap({ anon: true, length: HPAGE, write: true, as: 't' }));
    k.run(k.madvise({ map: 't', advice: 'hugepage' }));
    k.run(k.write({ map: 't', page: 0, data: 'h0' }));
    k.run(k.write({ map: 't', page: 3, data: 'h3' }));
    const head = k.pfnOf({ map: 't', page: 0 })!;
    expect(k.folios.nr(head)).toBe(HP);
    k.run(k.softOffline({ map: 't', page: 3 }));
    // split_huge_page(): every page its own folio; page 3 migrated, page 0 where it was
    expect(k.pfnOf({ map: 't', page: 0 })).toBe(head);
    expect(k.pfnOf({ map: 't', page: 3 })).not.toBe(head + 3);
    expect([poisoned(k, head + 3), k.refcount(head + 3), poisoned(k, head)]).toEqual([true, 1, false]);
    expect(k.run(k.read({ map: 't', page: 3 }))).toBe('h3');
  });

  it('enable_soft_offline: ENOENT before v6.11; 0 makes it EOPNOTSUPP with the page untouched, 1 again allows it', () => {
    const k6 = boot('v6.6');
    expect(code(() => k6.run(k6.sysctl({ name: 'vm.enable_soft_offline', value: 0 })))).toBe('ENOENT');
    const k = boot('latest');
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'x' }));
    const pfn = k.pfnOf({ map: 'a', page: 0 })!;
    k.run(k.sysctl({ name: 'vm.enable_soft_offline', value: 0 }));
    expect(code(() => k.run(k.softOffline({ map: 'a', page: 0 })))).toBe('EOPNOTSUPP');
    // put_ref_page(): the GUP reference given back: the mapping's alone
    expect([k.pfnOf({ map: 'a', page: 0 }), k.refcount(pfn), poisoned(k, pfn)]).toEqual([pfn, 1, false]);
    k.run(k.sysctl({ name: 'vm.enable_soft_offline', value: 1 }));
    k.run(k.softOffline({ map: 'a', page: 0 }));
    expect(poisoned(k, pfn)).toBe(true);
  });
});

describe('soft offline of page-cache pages', () => {
  it('a mapped shmem (memfd) page: the page cache and the mapping move to the new page', () => {
    const k = boot();
    k.run(k.memfdCreate({ file: 'f', size: 8 * KiB }));
    k.run(k.mmap({ file: 'f', length: 8 * KiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 1, data: 's' }));
    const old = k.pfnOf({ file: 'f', page: 1 })!;
    k.run(k.softOffline({ map: 'm', page: 1 }));
    const now = k.pfnOf({ file: 'f', page: 1 })!;
    expect(now).not.toBe(old);
    expect(k.pfnOf({ map: 'm', page: 1 })).toBe(now);
    // the cache's reference and the mapping's (folio_migrate_mapping() moved the cache's)
    expect([k.refcount(now), k.refcount(old), poisoned(k, old)]).toEqual([2, 1, true]);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('s');
  });

  it('a clean page of a disk file nobody maps, named by pfn (the sysfs write): invalidated, not migrated (mapping_evict_folio())', () => {
    const k = boot();
    k.run(k.tmpfile({ file: 'd', fs: 'ext4', size: 8 * KiB }));
    k.run(k.mmap({ file: 'd', length: 8 * KiB, as: 'm' }));
    k.run(k.read({ map: 'm', page: 0 }));
    k.run(k.munmap({ map: 'm' }));
    const pfn = k.pfnOf({ file: 'd', page: 0 })!;
    // the page cache's reference alone
    expect(k.refcount(pfn)).toBe(1);
    k.run(k.softOffliner.offline(pfn, { vma: null, vpn: 0 }, false));
    expect(k.pageCache.files.get('d')!.cache.has(0)).toBe(false);
    expect([poisoned(k, pfn), k.refcount(pfn)]).toEqual([true, 1]);
  });
});

describe('soft offline of a free RAM page, by pfn', () => {
  it('take_page_off_buddy(): the page leaves the allocator, PG_hwpoison; a second request is 0 from v5.9 ("page already poisoned"), EBUSY before', () => {
    for (const [version, again] of [['v5.4', 'EBUSY'], ['latest', null]] as const) {
      const k = boot(version);
      k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'a' }));
      k.run(k.write({ map: 'a', page: 0, data: 'x' }));
      const pfn = k.pfnOf({ map: 'a', page: 0 })!;
      k.run(k.munmap({ map: 'a' }));
      k.run(k.softOffliner.offline(pfn, { vma: null, vpn: 0 }, false));
      // page_handle_poison()'s page_ref_inc() came with the 2020 rework (v5.9): v5.4 leaves the
      // poisoned page free at refcount 0 (set_hwpoison_free_buddy_page())
      expect([poisoned(k, pfn), k.refcount(pfn)], version).toEqual([true, version === 'v5.4' ? 0 : 1]);
      expect(code(() => k.run(k.softOffliner.offline(pfn, { vma: null, vpn: 0 }, false))), version).toBe(again);
      // the freed pfn would have been the next page handed out (the free list is LIFO)
      k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'b' }));
      k.run(k.write({ map: 'b', page: 0, data: 'y' }));
      expect(k.pfnOf({ map: 'b', page: 0 }), version).not.toBe(pfn);
    }
  });
});

describe('soft offline of hugetlb pages (hugetlb-soft-offline.c)', () => {
  function sharedHugetlb(k: Kernel, pool: number): void {
    k.run(k.hugetlbPool({ size: HPAGE, pages: pool }));
    k.run(k.memfdCreate({ file: 'h', size: 0, hugetlb: HPAGE }));
    k.run(k.truncate({ file: 'h', size: 2 * HPAGE }));
    k.run(k.mmap({ file: 'h', length: 2 * HPAGE, shared: true, write: true, populate: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'p0' }));
    k.run(k.write({ map: 'm', page: HP, data: 'p1' }));
    k.run(k.write({ map: 'm', page: HP + 7, data: 'p1+7' }));
  }

  it('a free pool page takes the data; the old huge page is dissolved (nr 8 -> 7) and only its offlined base page kept back', () => {
    const k = boot();
    sharedHugetlb(k, 8);
    const old = k.pfnOf({ map: 'm', page: HP })!;
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 8, free: 6, resv: 0 });
    k.run(k.softOffline({ map: 'm', page: HP }));
    const now = k.pfnOf({ map: 'm', page: HP })!;
    expect(now).not.toBe(old);
    // the target came off the free list (6 -> 5); the old folio freed to it (-> 6) and dissolved (nr 7, free 5)
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 7, free: 5, resv: 0 });
    // the page cache and the PMD name the new folio: cache + mapping
    expect([k.pfnOf({ file: 'h', page: HP }), k.refcount(now)]).toEqual([now, 2]);
    expect(k.run(k.read({ map: 'm', page: HP + 7 }))).toBe('p1+7');
    // the base page madvise named (the old folio's head) is poisoned, its neighbour is not
    expect([poisoned(k, old), k.refcount(old), poisoned(k, old + 7)]).toEqual([true, 1, false]);
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'h', size: 0 }));
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 7, free: 7, resv: 0 });
  });

  it('with no free page the target is a temporary fresh huge page (alloc_migrate_hugetlb_folio): the pool keeps its count', () => {
    const k = boot();
    sharedHugetlb(k, 2);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 2, free: 0, resv: 0 });
    k.run(k.softOffline({ map: 'm', page: HP }));
    expect(k.run(k.read({ map: 'm', page: HP + 7 }))).toBe('p1+7');
    // move_hugetlb_state(): the new page is the pool's, the old one temporary, freed to the buddy allocator
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 2, free: 0, resv: 0 });
    k.run(k.munmap({ map: 'm' }));
    k.run(k.truncate({ file: 'h', size: 0 }));
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 2, free: 2, resv: 0 });
  });

  it('a private (anonymous) hugetlb page migrates too, its entry writable and the page exclusive as before', () => {
    const k = boot();
    k.run(k.hugetlbPool({ size: HPAGE, pages: 3 }));
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 5, data: 'q' }));
    const old = k.pfnOf({ map: 'a', page: 5 })!;
    k.run(k.softOffline({ map: 'a', page: 5 }));
    const now = k.pfnOf({ map: 'a', page: 5 })!;
    expect(now).not.toBe(old);
    expect([k.isWritableIn({ map: 'a', page: 5 }), k.refcount(k.folios.folio(now))]).toEqual([true, 1]);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 2, free: 1, resv: 0 });
    expect(poisoned(k, old)).toBe(true);
  });
});

describe('soft offline of a KSM page', () => {
  it('the merged page moves with its stable node: every mapping of it follows, still one KSM page, still read-only', () => {
    const k = boot();
    k.run(k.mmap({ anon: true, length: 12 * KiB, write: true, as: 'm' }));
    for (let i = 0; i < 3; i++) k.run(k.write({ map: 'm', page: i, data: 'same' }));
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    const kpage = k.pfnOf({ map: 'm', page: 0 })!;
    expect([k.ksm.isKsm(kpage), k.pfnOf({ map: 'm', page: 2 })]).toEqual([true, kpage]);
    k.run(k.softOffline({ map: 'm', page: 1 }));
    const now = k.pfnOf({ map: 'm', page: 0 })!;
    // folio_migrate_ksm(): the stable node names the new page; remove_migration_ptes() mapped it three times
    expect([now !== kpage, k.ksm.isKsm(now), k.pfnOf({ map: 'm', page: 1 }), k.pfnOf({ map: 'm', page: 2 })]).toEqual([true, true, now, now]);
    expect([k.mapcount(now), k.refcount(now), k.isWritableIn({ map: 'm', page: 1 })]).toEqual([3, 3, false]);
    expect([poisoned(k, kpage), k.refcount(kpage)]).toEqual([true, 1]);
    expect(k.run(k.read({ map: 'm', page: 2 }))).toBe('same');
  });
});
