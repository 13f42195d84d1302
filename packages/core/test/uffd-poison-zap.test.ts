import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';
import { pte } from './uffd-helpers.js';

// Which zaps drop a UFFDIO_POISON marker (PTE_MARKER_POISONED, v6.6) and which keep it, read in
// mm/memory.c zap_pte_range() (v6.6) / zap_nonpresent_ptes() (v6.12 on; the newest tree spells it
// softleaf_is_poison_marker()): "is_hwpoison_entry(entry) || is_poisoned_swp_entry(entry)" ->
// "if (!should_zap_cows(details)) continue", where should_zap_cows() is true for details == NULL
// (MADV_DONTNEED's zap_page_range_single() up to v6.12) and otherwise details->even_cows
// (MADV_DONTNEED from v6.13, unmap_vmas(), truncation's unmap_mapping_range(.., even_cows = 1)); hole
// punching (shmem_fallocate(), MADV_REMOVE, truncate_pagecache_range(): even_cows = 0) leaves it. A
// hugetlb VMA goes through __unmap_hugepage_range(), which clears every non-present entry but a
// uffd-wp one, whatever the caller: a poison marker never survives it. Guard and uffd-wp markers
// follow ZAP_FLAG_DROP_MARKER instead (mm/vm.ts keptMarker). Every release with UFFDIO_POISON has
// these rules: v6.6, v6.15 and latest.

const PAGE = 4096;
const HPAGE = 2 * 1024 * 1024;
const HP = HPAGE / PAGE;
const POISON_RELEASES = ['v6.6', 'v6.15', 'latest'];

/** A 4-page memfd mapped as 'm' (shared unless told), registered MISSING, page 1 poisoned, page 0 filled by UFFDIO_COPY. */
function shmem(version: string, shared = true): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.memfdCreate({ file: 'fd', size: 4 * PAGE }));
  k.run(k.mmap({ file: 'fd', length: 4 * PAGE, shared, write: true, as: 'm' }));
  k.run(k.uffdApi({ features: ['poison'] }));
  k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
  k.run(k.uffdCopy({ map: 'm', page: 0, data: 'c' }));
  k.run(k.uffdPoison({ map: 'm', page: 1 }));
  expect(pte(k, 'm', 1)?.poisoned).toBe(true);
  return k;
}

/** A 2-huge-page hugetlbfs memfd mapped shared as 'm', registered MISSING, its second huge page poisoned. */
function hugetlb(version: string): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.hugetlbPool({ size: HPAGE, pages: 2 }));
  k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
  k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, as: 'm' }));
  k.run(k.uffdApi({ features: ['poison'] }));
  k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
  k.run(k.uffdPoison({ map: 'm', page: HP, pages: HP }));
  expect([pte(k, 'm', HP)?.level, pte(k, 'm', HP)?.poisoned]).toEqual(['pmd', true]);
  return k;
}

describe('a zap and a UFFDIO_POISON marker (should_zap_cows())', () => {
  it('MADV_DONTNEED drops it on shmem, shared and private (details NULL, then even_cows): the entry is none again', () => {
    for (const v of POISON_RELEASES) {
      for (const shared of [true, false]) {
        const k = shmem(v, shared);
        k.run(k.madvise({ map: 'm', advice: 'dontneed', offset: PAGE, length: PAGE }));
        expect([v, shared, pte(k, 'm', 1)]).toEqual([v, shared, null]);
        // so the MISSING registration sees the hole again: a new UFFDIO_POISON is accepted, not EEXIST
        k.run(k.uffdPoison({ map: 'm', page: 1 }));
        expect(pte(k, 'm', 1)?.poisoned).toBe(true);
      }
    }
  });

  it('MADV_DONTNEED drops it on anonymous memory', () => {
    for (const v of POISON_RELEASES) {
      const k = createKernel({ arch: testArch(), kernel: v });
      k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'm' }));
      k.run(k.uffdApi({ features: ['poison'] }));
      k.run(k.uffdRegister({ map: 'm', mode: ['missing'] }));
      k.run(k.uffdPoison({ map: 'm', page: 0 }));
      k.run(k.madvise({ map: 'm', advice: 'dontneed' }));
      expect([v, pte(k, 'm', 0)]).toEqual([v, null]);
    }
  });

  it('hole punching keeps it (unmap_mapping_range(even_cows = 0)): the access is still SIGBUS; the COPY-filled page next to it is unmapped', () => {
    for (const v of POISON_RELEASES) {
      for (const shared of [true, false]) {
        const k = shmem(v, shared);
        k.run(k.punchHole({ file: 'fd', offset: 0, length: 2 * PAGE }));
        expect([v, shared, pte(k, 'm', 1)?.poisoned]).toEqual([v, shared, true]);
        expect(code(() => k.run(k.read({ map: 'm', page: 1 })))).toBe('SIGBUS');
        // a shared mapping's page went with the cache; a private one's COW copy of it stays
        expect(pte(k, 'm', 0) === null).toBe(shared);
      }
    }
  });

  it('MADV_REMOVE is a hole punch (vfs_fallocate(FALLOC_FL_PUNCH_HOLE)): it keeps it too', () => {
    const k = shmem('latest');
    k.run(k.madvise({ map: 'm', advice: 'remove', offset: PAGE, length: PAGE }));
    expect(pte(k, 'm', 1)?.poisoned).toBe(true);
  });

  it('truncation drops it (shmem_setattr(): unmap_mapping_range(.., even_cows = 1))', () => {
    for (const v of POISON_RELEASES) {
      const k = shmem(v);
      k.run(k.truncate({ file: 'fd', size: PAGE }));
      expect([v, pte(k, 'm', 0)?.poisoned ?? false, pte(k, 'm', 1)]).toEqual([v, false, null]);
    }
  });

  it('hugetlb: __unmap_hugepage_range() clears it under MADV_DONTNEED and under a hole punch alike', () => {
    for (const v of POISON_RELEASES) {
      const dontneed = hugetlb(v);
      dontneed.run(dontneed.madvise({ map: 'm', advice: 'dontneed', offset: HPAGE, length: HPAGE }));
      expect([v, pte(dontneed, 'm', HP)]).toEqual([v, null]);
      const punched = hugetlb(v);
      punched.run(punched.punchHole({ file: 'fd', offset: HPAGE, length: HPAGE }));
      expect([v, pte(punched, 'm', HP)]).toEqual([v, null]);
    }
  });
});

describe('hugetlbfs truncation drops uffd-wp markers (hugetlb_vmtruncate(): ZAP_FLAG_DROP_MARKER), a hole punch keeps them', () => {
  function protectedHugetlb(version: string): Kernel {
    const k = createKernel({ arch: testArch(), kernel: version });
    k.run(k.hugetlbPool({ size: HPAGE, pages: 2 }));
    k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, as: 'm' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-hugetlbfs-shmem'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    // an empty huge entry write-protected: a huge PTE_MARKER_UFFD_WP (v5.19; mm/userfaultfd.ts)
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect([pte(k, 'm', HP)?.marker, pte(k, 'm', HP)?.uffdWp]).toEqual([true, true]);
    return k;
  }

  it('truncating to the first huge page takes the second one\'s marker; punching it leaves it', () => {
    for (const v of ['v6.6', 'latest']) {
      const truncated = protectedHugetlb(v);
      truncated.run(truncated.truncate({ file: 'fd', size: HPAGE }));
      expect([v, pte(truncated, 'm', HP)]).toEqual([v, null]);
      const punched = protectedHugetlb(v);
      punched.run(punched.punchHole({ file: 'fd', offset: HPAGE, length: HPAGE }));
      expect([v, pte(punched, 'm', HP)?.uffdWp]).toEqual([v, true]);
    }
  });
});
