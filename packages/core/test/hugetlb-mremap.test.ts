import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// mremap() of hugetlb VMAs (mm/mremap.ts). Before 550a7d60bd5e ("mm, hugepages: add mremap()
// support for hugepage backed vma", v5.16) vma_to_resize() refuses VM_HUGETLB with -EINVAL; from
// v5.16 mremap() rounds old_len and new_len up to the huge page size, wants addr and new_addr
// huge-page aligned and refuses growth (-EINVAL, before anything is unmapped);
// move_hugetlb_page_tables() moves the huge entries, so the folio keeps its refcount and mapcount;
// clear_vma_resv_huge_pages() hands a private owner's reservation map to the new VMA.
// The test arch is x86-64 with 4 KiB pages: a 2 MiB huge page is 512 base pages.

const KiB = 1024;
const MiB = 2 ** 20;
const HPAGE = 2 * MiB;
const NR = 512;

function kernel(version: string, pool = 8): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.hugetlbPool({ size: HPAGE, pages: pool }));
  return k;
}

/**
 * hugepage-mremap.c's setup at 2 huge pages: a hugetlbfs memfd mapped shared twice (h, d: the
 * same page-cache folios), populated, and a shared anonymous (shmem) destination v. The data 'h0'
 * and 'h1' is written at the start of each huge page.
 */
function shared(k: Kernel): { pfn0: number; pfn1: number } {
  k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
  k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, populate: true, as: 'h' }));
  k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, populate: true, as: 'd' }));
  k.run(k.mmap({ anon: true, length: 2 * HPAGE, shared: true, write: true, as: 'v' }));
  k.run(k.write({ map: 'v', page: 0, data: 'v0' }));
  k.run(k.write({ map: 'h', page: 0, data: 'h0' }));
  k.run(k.write({ map: 'h', page: NR, data: 'h1' }));
  return { pfn0: k.pfnOf({ map: 'h', page: 0 })!, pfn1: k.pfnOf({ map: 'h', page: NR })! };
}

/** HugePages_Total, _Free, _Rsvd of the 2 MiB pool. */
function counters(k: Kernel): { nr: number; free: number; resv: number } {
  const { nr, free, resv } = k.hugetlb.counters(HPAGE);
  return { nr, free, resv };
}

describe('mremap of a hugetlb VMA before v5.16: vma_to_resize() refuses VM_HUGETLB', () => {
  it('MREMAP_FIXED: the destination is unmapped first (mremap_to()), then -EINVAL; the hugetlb VMA stays', () => {
    const k = kernel('v5.10');
    const { pfn0 } = shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', length: 2 * HPAGE, to: 'v', as: 'moved' })))).toBe('EINVAL');
    expect(code(() => k.run(k.read({ map: 'v', page: 0 })))).toBe('SIGSEGV');
    expect([k.pfnOf({ map: 'h', page: 0 }), k.run(k.read({ map: 'h', page: 0 }))]).toEqual([pfn0, 'h0']);
  });

  it('growing is -EINVAL; a shrink only unmaps the tail ("Always allow a shrinking remap"), whole huge pages', () => {
    const k = kernel('v5.10');
    const { pfn0 } = shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', length: 2 * HPAGE, newLength: 3 * HPAGE, mayMove: true, as: 'big' })))).toBe('EINVAL');
    k.run(k.mremap({ map: 'h', length: 2 * HPAGE, newLength: HPAGE }));
    expect(k.pfnOf({ map: 'h', page: 0 })).toBe(pfn0);
    expect(code(() => k.run(k.read({ map: 'h', page: NR })))).toBe('SIGSEGV');
    // a shrink off the huge page size is do_munmap()'s -EINVAL (hugetlb_vm_op_split()), returned as old_len != new_len
    expect(code(() => k.run(k.mremap({ map: 'h', length: HPAGE, newLength: MiB })))).toBe('EINVAL');
  });

  it('MREMAP_DONTUNMAP is -EINVAL too (VM_DONTEXPAND, and before that vma_to_resize())', () => {
    const k = kernel('v5.10');
    shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', length: 2 * HPAGE, dontUnmap: true, as: 'moved' })))).toBe('EINVAL');
  });
});

describe('mremap of a hugetlb VMA from v5.16 (move_hugetlb_page_tables)', () => {
  it('MREMAP_FIXED moves the huge entries: same folios, refcount and mapcount kept, the data at the new address, the old range unmapped', () => {
    const k = kernel('latest');
    const { pfn0, pfn1 } = shared(k);
    // each page-cache folio: the cache's reference and one per mapping (h, d): 3 and 2
    expect([k.refcount(pfn0), k.mapcount(pfn0), k.refcount(pfn1), k.mapcount(pfn1)]).toEqual([3, 2, 3, 2]);
    const before = counters(k);
    k.run(k.mremap({ map: 'h', length: 2 * HPAGE, to: 'v', as: 'moved' }));
    expect([k.pfnOf({ map: 'moved', page: 0 }), k.pfnOf({ map: 'moved', page: NR })]).toEqual([pfn0, pfn1]);
    expect([k.refcount(pfn0), k.mapcount(pfn0), k.refcount(pfn1), k.mapcount(pfn1)]).toEqual([3, 2, 3, 2]);
    expect([k.run(k.read({ map: 'moved', page: 0 })), k.run(k.read({ map: 'moved', page: NR }))]).toEqual(['h0', 'h1']);
    expect(code(() => k.run(k.read({ map: 'h', page: 0 })))).toBe('SIGSEGV');
    // the shmem page that was at v is gone with its VMA; the pool is as it was (a shared mapping's
    // reservations belong to the file)
    expect(counters(k)).toEqual(before);
    // hugepage-mremap.c: munmap(addr, len), then mremap(addr, len, len, 0) looks addr up first: -EFAULT
    k.run(k.munmap({ map: 'moved' }));
    expect([k.refcount(pfn0), k.mapcount(pfn0)]).toEqual([2, 1]);
    expect(code(() => k.run(k.mremap({ map: 'moved', length: 2 * HPAGE })))).toBe('EFAULT');
  });

  it('addr and new_addr must be huge-page aligned: -EINVAL before the destination is unmapped', () => {
    const k = kernel('latest');
    const { pfn0 } = shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', offset: 4 * KiB, length: HPAGE, to: 'v', as: 'moved' })))).toBe('EINVAL');
    expect(code(() => k.run(k.mremap({ map: 'h', length: HPAGE, to: 'v', toOffset: 4 * KiB, as: 'moved' })))).toBe('EINVAL');
    expect([k.run(k.read({ map: 'v', page: 0 })), k.pfnOf({ map: 'h', page: 0 })]).toEqual(['v0', pfn0]);
  });

  it('old_len is rounded up to the huge page size: one base page moves the whole first huge page; the VMA splits at the huge page boundary', () => {
    const k = kernel('latest');
    const { pfn0, pfn1 } = shared(k);
    k.run(k.mremap({ map: 'h', length: 4 * KiB, to: 'v', toOffset: HPAGE, as: 'moved' }));
    // the last base page of the first huge page: the head's pfn + 511
    expect(k.pfnOf({ map: 'moved', page: NR - 1 })).toBe(pfn0 + NR - 1);
    expect(code(() => k.run(k.read({ map: 'h', page: 0 })))).toBe('SIGSEGV');
    expect(k.pfnOf({ map: 'h', page: NR })).toBe(pfn1);
    // and the destination range unmapped first is new_len rounded up: all of v's second huge page
    expect(k.run(k.read({ map: 'v', page: 0 }))).toBe('v0');
  });

  it('no growth, in place or by a move (-EINVAL); a new length that rounds up to the old one changes nothing; a shrink unmaps whole huge pages', () => {
    const k = kernel('latest');
    const { pfn0, pfn1 } = shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', length: 2 * HPAGE, newLength: 3 * HPAGE, mayMove: true, as: 'big' })))).toBe('EINVAL');
    expect(code(() => k.run(k.mremap({ map: 'h', length: HPAGE, newLength: HPAGE + 4 * KiB })))).toBe('EINVAL');
    // 3 MiB rounds up to 4 MiB = old_len: MREMAP_NO_RESIZE, nothing unmapped
    k.run(k.mremap({ map: 'h', length: 2 * HPAGE, newLength: 3 * MiB }));
    expect(k.pfnOf({ map: 'h', page: NR })).toBe(pfn1);
    k.run(k.mremap({ map: 'h', length: 2 * HPAGE, newLength: HPAGE }));
    expect(code(() => k.run(k.read({ map: 'h', page: NR })))).toBe('SIGSEGV');
    expect(k.pfnOf({ map: 'h', page: 0 })).toBe(pfn0);
  });

  it('MREMAP_DONTUNMAP is -EINVAL: every hugetlb VMA is VM_DONTEXPAND (hugetlbfs_file_mmap())', () => {
    const k = kernel('latest');
    shared(k);
    expect(code(() => k.run(k.mremap({ map: 'h', length: 2 * HPAGE, dontUnmap: true, as: 'moved' })))).toBe('EINVAL');
  });

  it('a private owner\'s reservations move with the VMA: unmapping the old range gives none back, unmapping the moved one does', () => {
    const k = kernel('latest', 4);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 2 * HPAGE, write: true, as: 'p' }));
    k.run(k.mmap({ anon: true, length: 2 * HPAGE, write: true, as: 'v' }));
    // hugetlb_reserve_pages(): both huge pages reserved at mmap, none faulted
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 });
    k.run(k.mremap({ map: 'p', length: 2 * HPAGE, to: 'v', as: 'moved' }));
    // clear_vma_resv_huge_pages(): the old VMA's close gives nothing back, the copy owns both
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 });
    // the first write at the new address consumes index 0's reservation
    k.run(k.write({ map: 'moved', page: 0, data: 'x' }));
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 1 });
    k.run(k.munmap({ map: 'moved' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 0 });
  });

  it('a partial move drops the reservation map of the whole old VMA: what stays behind of it leaks its reservation', () => {
    const k = kernel('latest', 4);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 2 * HPAGE, write: true, as: 'p' }));
    k.run(k.mmap({ anon: true, length: 2 * HPAGE, write: true, as: 'v' }));
    k.run(k.mremap({ map: 'p', offset: HPAGE, length: HPAGE, to: 'v', as: 'moved' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 2 });
    // the copy's close gives back the indexes it spans (index 1: hugetlb_vm_op_close())
    k.run(k.munmap({ map: 'moved' }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 1 });
    // p's first huge page lost its HPAGE_RESV_OWNER map before the split (move_vma() clears it on
    // the VMA it moved from, then do_munmap() splits): its close returns nothing, resv stays 1
    k.run(k.munmap({ map: 'p', length: HPAGE }));
    expect(counters(k)).toEqual({ nr: 4, free: 4, resv: 1 });
  });

  it('a 1 GiB page moves as one PUD entry to a 1 GiB-aligned destination', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.hugetlbPool({ size: 1024 * MiB, pages: 1 }));
    k.run(k.mmap({ anon: true, hugetlb: 1024 * MiB, length: 1024 * MiB, write: true, as: 'g' }));
    k.run(k.write({ map: 'g', page: 0, data: 'g0' }));
    const pfn = k.pfnOf({ map: 'g', page: 0 })!;
    // a 2 GiB anonymous destination, placed on a 1 GiB boundary
    k.run(k.mmap({ anon: true, length: 2048 * MiB, write: true, as: 'v' }));
    // 2 MiB into it is off the 1 GiB page size: EINVAL
    expect(code(() => k.run(k.mremap({ map: 'g', length: 1024 * MiB, to: 'v', toOffset: HPAGE, as: 'moved' })))).toBe('EINVAL');
    k.run(k.mremap({ map: 'g', length: 1024 * MiB, to: 'v', toOffset: 1024 * MiB, as: 'moved' }));
    expect([k.pfnOf({ map: 'moved', page: 0 }), k.refcount(pfn), k.mapcount(pfn), k.run(k.read({ map: 'moved', page: 0 }))]).toEqual([pfn, 1, 1, 'g0']);
  });
});

describe('a move of several VMAs (remap_move(), v6.17) with hugetlb parts', () => {
  /** Three huge pages of private MAP_HUGETLB memory with the middle one unmapped (two VMAs and a gap), and a 4-huge-page anonymous destination. */
  function split(version: string): { k: Kernel; pfn0: number; pfn2: number } {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 3 * HPAGE, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'a0' }));
    k.run(k.write({ map: 'a', page: 2 * NR, data: 'a2' }));
    k.run(k.munmap({ map: 'a', offset: HPAGE, length: HPAGE }));
    k.run(k.mmap({ anon: true, length: 4 * HPAGE, write: true, as: 'v' }));
    k.run(k.write({ map: 'v', page: NR, data: 'v1' }));
    return { k, pfn0: k.pfnOf({ map: 'a', page: 0 })!, pfn2: k.pfnOf({ map: 'a', page: 2 * NR })! };
  }

  it('latest: each hugetlb VMA moves as a part of its own (vma_multi_allowed() knows hugetlbfs), the gap and what is at its destination stay', () => {
    const { k, pfn0, pfn2 } = split('latest');
    k.run(k.mremap({ map: 'a', length: 3 * HPAGE, to: 'v', as: 'moved' }));
    expect([k.pfnOf({ map: 'moved', page: 0 }), k.pfnOf({ map: 'moved', page: 2 * NR })]).toEqual([pfn0, pfn2]);
    // the gap's destination is left alone: v's second huge page is still there
    expect(k.run(k.read({ map: 'v', page: NR }))).toBe('v1');
    // a part's destination must be aligned as its own huge page size wants (check_prep_vma() per part)
    k.run(k.mmap({ anon: true, length: 4 * HPAGE, write: true, as: 'w' }));
    expect(code(() => k.run(k.mremap({ map: 'moved', length: 3 * HPAGE, to: 'w', toOffset: 4 * KiB, as: 'again' })))).toBe('EINVAL');
  });

  it('latest: a hugetlb part is rounded up on its own, not the whole range: the VMA after the range keeps what lies past its end', () => {
    const k = kernel('latest');
    // a 4-huge-page anonymous carve-out: hugetlb h over its first huge page, anonymous x right after (4 pages), c's rest after that
    k.run(k.mmap({ anon: true, length: 4 * HPAGE, write: true, as: 'c' }));
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, fixed: { map: 'c' }, as: 'h' }));
    k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, fixed: { map: 'c', offset: HPAGE }, as: 'x' }));
    k.run(k.write({ map: 'h', page: 0, data: 'h0' }));
    k.run(k.write({ map: 'x', page: 3, data: 'x3' }));
    k.run(k.write({ map: 'c', page: NR + 4, data: 'c' }));
    k.run(k.mmap({ anon: true, length: 4 * HPAGE, write: true, as: 'v' }));
    // old_len = 2 MiB + 16 KiB over h and x: two parts, h's 2 MiB and x's 4 pages (rounding the
    // whole length to the huge page size would have taken c's next page along)
    k.run(k.mremap({ map: 'c', length: HPAGE + 16 * KiB, to: 'v', as: 'moved' }));
    expect([k.run(k.read({ map: 'moved', page: 0 })), k.run(k.read({ map: 'moved', page: NR + 3 }))]).toEqual(['h0', 'x3']);
    expect(k.run(k.read({ map: 'c', page: NR + 4 }))).toBe('c');
  });

  it('v6.15: a range across VMAs is EFAULT, as for any mapping', () => {
    const { k } = split('v6.15');
    expect(code(() => k.run(k.mremap({ map: 'a', length: 3 * HPAGE, to: 'v', as: 'moved' })))).toBe('EFAULT');
  });
});

describe('mremap looks the VMA at addr up first from v5.16 (550a7d60bd5e)', () => {
  it('MREMAP_FIXED from an unmapped address: v5.10 unmaps the destination, then -EFAULT; latest is -EFAULT with the destination intact', () => {
    for (const [version, destination] of [['v5.10', 'SIGSEGV'], ['latest', 'd0']] as const) {
      const k = createKernel({ arch: testArch(), kernel: version });
      k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'src' }));
      k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'dst' }));
      k.run(k.write({ map: 'dst', page: 0, data: 'd0' }));
      k.run(k.munmap({ map: 'src' }));
      expect(code(() => k.run(k.mremap({ map: 'src', length: 16 * KiB, to: 'dst', as: 'moved' })))).toBe('EFAULT');
      const seen = (() => {
        try {
          return k.run(k.read({ map: 'dst', page: 0 }));
        } catch {
          return 'SIGSEGV';
        }
      })();
      expect(seen).toBe(destination);
    }
  });

  it('an unchanged length without flags returns addr: -EFAULT on an unmapped address from v5.16, a "success" before (the 0-byte munmap error is ignored)', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 16 * KiB, write: true, as: 'a' }));
    const vma = k.run(k.mremap({ map: 'a', length: 16 * KiB }));
    expect(vma?.pages).toBe(4);
    k.run(k.munmap({ map: 'a' }));
    expect(code(() => k.run(k.mremap({ map: 'a', length: 16 * KiB })))).toBe('EFAULT');
    const old = createKernel({ arch: testArch(), kernel: 'v5.10' });
    old.run(old.mmap({ anon: true, length: 16 * KiB, write: true, as: 'a' }));
    old.run(old.munmap({ map: 'a' }));
    expect(old.run(old.mremap({ map: 'a', length: 16 * KiB }))).toBeNull();
  });
});

describe('mremap of a uffd-wp range registered without UFFD_FEATURE_EVENT_REMAP (mm: clear uffd-wp PTE/PMD state on mremap(), v6.13)', () => {
  /** PM_UFFD_WP of a page of a mapping (pagemap bit 57). */
  const wpBit = (k: Kernel, map: string, page: number): boolean => {
    const mm = k.processes.get('init')!;
    return k.uffd.pagemapWp(mm, mm.ranges.get(map)!.start + page);
  };

  it('a protected anonymous page and a uffd-wp marker: v6.6 moves them with their bit into the unregistered VMA, latest clears the bit and drops the marker', () => {
    for (const [version, after] of [['v6.6', [true, true]], ['latest', [false, false]]] as const) {
      const k = createKernel({ arch: testArch(), kernel: version });
      k.run(k.memfdCreate({ file: 'fd', size: 16 * KiB }));
      k.run(k.mmap({ file: 'fd', length: 8 * KiB, shared: true, write: true, as: 'm' }));
      k.run(k.mmap({ anon: true, length: 8 * KiB, write: true, as: 'v' }));
      k.run(k.write({ map: 'm', page: 0, data: 'm0' }));
      k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-hugetlbfs-shmem'] }));
      k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
      k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
      // page 0: a present shmem page with the bit; page 1: none, so a PTE_MARKER_UFFD_WP (file-backed uffd-wp always uses markers)
      expect([wpBit(k, 'm', 0), wpBit(k, 'm', 1)]).toEqual([true, true]);
      k.run(k.mremap({ map: 'm', length: 8 * KiB, to: 'v', as: 'moved' }));
      // mremap_userfaultfd_prep() unregistered the new VMA in both releases
      expect([wpBit(k, 'moved', 0), wpBit(k, 'moved', 1)]).toEqual(after);
      expect(k.run(k.read({ map: 'moved', page: 0 }))).toBe('m0');
    }
  });

  it('a hugetlb page: move_huge_pte() clears the bit as move_ptes() does (latest), keeps it on v6.6', () => {
    for (const [version, after] of [['v6.6', true], ['latest', false]] as const) {
      const k = kernel(version);
      k.run(k.memfdCreate({ file: 'fd', size: HPAGE, hugetlb: HPAGE }));
      k.run(k.mmap({ file: 'fd', length: HPAGE, shared: true, write: true, as: 'h' }));
      k.run(k.mmap({ anon: true, length: HPAGE, write: true, as: 'v' }));
      k.run(k.write({ map: 'h', page: 0, data: 'h0' }));
      k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'wp-hugetlbfs-shmem'] }));
      k.run(k.uffdRegister({ map: 'h', mode: ['wp'] }));
      k.run(k.uffdWriteprotect({ map: 'h', enable: true }));
      k.run(k.mremap({ map: 'h', length: HPAGE, to: 'v', as: 'moved' }));
      expect(wpBit(k, 'moved', 0)).toBe(after);
    }
  });

  it('with EVENT_REMAP the registration moves and the bit stays (latest)', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'm' }));
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'v' }));
    k.run(k.write({ map: 'm', page: 0, data: 'm0' }));
    k.run(k.uffdApi({ features: ['pagefault-flag-wp', 'event-remap'] }));
    k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    const op = k.mremap({ map: 'm', length: 4 * KiB, to: 'v', as: 'moved' });
    // mremap() waits for the monitor to read UFFD_EVENT_REMAP
    for (;;) {
      const r = op.next();
      if (r.done) break;
      if (r.value.kind === 'block' && !r.value.ready()) expect(k.run(k.uffdRead({ nonblock: true, map: 'm', to: 'v' }))).toMatchObject({ event: 'remap' });
    }
    expect(wpBit(k, 'moved', 0)).toBe(true);
  });
});
