import { describe, expect, it } from 'vitest';
import { createKernel, KernelError, Monitor, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, errorOf } from './vm-helpers.js';

// hugetlb (mm/hugetlb.ts). Counts reasoned from the kernel's rules: a hugetlb folio is one large
// folio with one reference and one (entire) mapcount per huge entry mapping it
// (hugetlb_add_new_anon_rmap / hugetlb_add_file_rmap, hugetlb_try_dup_anon_rmap at fork); a
// page-cache folio holds one more reference for the cache (hugetlb_add_to_page_cache); a FOLL_PIN
// on a large folio adds 1 to the refcount and 1 to _pincount per page pinned (try_grab_folio).

const MiB = 2 ** 20;
const HPAGE = 2 * MiB;
const NR = 512; // 4 KiB pages in a 2 MiB huge page

function kernel(version = 'latest', pool = 4): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.hugetlbPool({ size: HPAGE, pages: pool }));
  return { k, m: new Monitor(k) };
}

/** cow.c run_with_hugetlb(): mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB), memset(mem, 1). */
function hugetlbMem(k: Kernel): number {
  k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x01' }));
  k.run(k.write({ map: 'mem', page: NR - 1, data: '0x01' }));
  return k.pfnOf({ map: 'mem', page: 0 })!;
}

const counters = (k: Kernel) => k.hugetlb.counters(HPAGE);

/** pte_write() of the entry mapping a page (pagemap cannot tell; the tests look at the page table). */
function writable(k: Kernel, t: { map: string; page: number; process?: string }): boolean {
  const mm = k.processes.get(t.process ?? 'init')!;
  const vpn = mm.ranges.get(t.map)!.start + t.page;
  return k.vm.lookup(mm, vpn)!.pte.write;
}

/** The folio's _pincount. */
const pincount = (k: Kernel, pfn: number): number => k.pages.pincount[k.pages.slot(k.folios.folio(pfn))]!;

describe('hugetlb pool and reservations', () => {
  it('a booted kernel has no huge pages: MAP_HUGETLB fails with ENOMEM (cow.c: "need more free huge pages")', () => {
    const { k } = kernel('latest', 0);
    expect(code(() => k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' })))).toBe('ENOMEM');
  });

  it('a private mapping reserves at mmap, the first fault consumes the reservation, munmap frees the page', () => {
    const { k } = kernel('latest', 2);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 1 });
    // cow.c's dummy mapping: the second page can be reserved too, a third cannot
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'dummy' }));
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 2 });
    expect(code(() => k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 1, write: true, as: 'third' })))).toBe('ENOMEM');
    k.run(k.munmap({ map: 'dummy' })); // hugetlb_vm_op_close: the unused reservation goes back
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 1 });
    k.run(k.write({ map: 'mem', page: 0, data: '0x01' }));
    const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(counters(k)).toEqual({ nr: 2, free: 1, resv: 0 });
    // one anon folio of 512 pages, one PMD: rc 1, mapcount 1, PageAnonExclusive
    expect([k.refcount(pfn), k.mapcount(pfn), k.isAnon(pfn), k.folios.nr(pfn)]).toEqual([1, 1, true, NR]);
    expect(k.processes.get('init')!.pmds.size).toBe(1);
    k.run(k.munmap({ map: 'mem' }));
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 0 });
  });

  it('nr_hugepages cannot drop below the pages in use or reserved (set_max_huge_pages)', () => {
    const { k } = kernel('latest', 3);
    hugetlbMem(k);
    k.run(k.hugetlbPool({ size: HPAGE, pages: 0 }));
    expect(counters(k)).toEqual({ nr: 1, free: 0, resv: 0 });
  });

  it('sizes: MAP_HUGETLB rounds the length up to the huge page; a size the arch does not offer is EINVAL; a hugetlb VMA splits only on a huge page boundary', () => {
    const { k } = kernel();
    const vma = k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: 4096, write: true, as: 'mem' }));
    expect(vma.pages).toBe(NR);
    expect(code(() => k.run(k.mmap({ anon: true, hugetlb: 4 * MiB, length: 4 * MiB, as: 'x' })))).toBe('EINVAL');
    expect(code(() => k.run(k.munmap({ map: 'mem', offset: 4096, length: 4096 })))).toBe('EINVAL');
    expect(code(() => k.run(k.memfdCreate({ file: 'fd', size: 4096, hugetlb: HPAGE })))).toBe('EINVAL');
  });

  it('a 1 GiB page is one folio mapped by one PUD leaf', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.hugetlbPool({ size: 2 ** 30, pages: 1 }));
    k.run(k.mmap({ anon: true, hugetlb: 2 ** 30, length: 2 ** 30, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 262_143, data: 'end' }));
    const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
    const mm = k.processes.get('init')!;
    expect([mm.puds.size, mm.pmds.size, mm.ptes.size]).toEqual([1, 0, 0]);
    expect([k.refcount(pfn), k.mapcount(pfn), k.folios.nr(pfn)]).toEqual([1, 1, 262_144]);
    expect(k.run(k.read({ map: 'mem', page: 262_143 }))).toBe('end');
    // the pool hands out the folio without touching its struct pages: the head and the few pages
    // used are materialised, not 262,144 (prep_compound_page's work is implied)
    expect(k.pages.materialised).toBeLessThan(64);
  });
});

describe('hugetlb faults, COW and fork (hugetlb_no_page, hugetlb_wp, copy_hugetlb_page_range)', () => {
  it('there is no huge zero page for hugetlb: a read fault allocates the folio, mapped R/O; the write reuses it (mapcount 1, anon)', () => {
    const { k } = kernel();
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'mem' }));
    k.run(k.read({ map: 'mem', page: 3 }));
    const pfn = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(writable(k, { map: 'mem', page: 0 })).toBe(false);
    k.run(k.write({ map: 'mem', page: 3, data: 'x' }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(pfn);
    expect(writable(k, { map: 'mem', page: 0 })).toBe(true);
  });

  it('fork shares and write-protects; the parent\'s write copies the whole huge page; the child keeps the old data', () => {
    const { k } = kernel();
    const pfn = hugetlbMem(k);
    k.run(k.fork({ as: 'child' }));
    // one reference and one mapcount per process; both entries R/O; no longer exclusive
    expect([k.refcount(pfn), k.mapcount(pfn), writable(k, { map: 'mem', page: 0 }), writable(k, { map: 'mem', page: 0, process: 'child' })]).toEqual([2, 2, false, false]);
    k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
    const copy = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(copy).not.toBe(pfn);
    // the copy: rc 1, mapcount 1; the old folio only the child's now; every subpage was copied
    expect([k.refcount(copy), k.mapcount(copy), k.refcount(pfn), k.mapcount(pfn)]).toEqual([1, 1, 1, 1]);
    expect(k.run(k.read({ map: 'mem', page: NR - 1 }))).toBe('0x01');
    expect(k.run(k.read({ map: 'mem', page: 0, process: 'child' }))).toBe('0x01');
    // the child, alone now, reuses its folio on a write (mapcount 1)
    k.run(k.write({ map: 'mem', page: 0, process: 'child', data: 'c' }));
    expect(k.pfnOf({ map: 'mem', page: 0, process: 'child' })).toBe(pfn);
  });

  it('the reuse test is the mapcount in every release: a FOLL_GET reference does not stop it (the vmsplice leak cow.c marks xfail)', () => {
    for (const version of ['v5.4', 'v5.10', 'v6.1', 'latest']) {
      const { k } = kernel(version);
      const pfn = hugetlbMem(k);
      k.run(k.fork({ as: 'child' }));
      k.run(k.gup({ map: 'mem', page: 0, fast: true, process: 'child', as: 'pipe' }, false));
      k.run(k.munmap({ map: 'mem', process: 'child' }));
      // rc 2 (the parent's mapping + the pipe), mapcount 1: reused
      expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([2, 1]);
      k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
      expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(pfn);
      expect(k.run(k.dmaRead({ pin: 'pipe' }))).toBe('0xff');
    }
  });

  it('fork with a pinned hugetlb page: the child gets a copy from v5.12 (4eae4efa2c29); v5.10 shares it and the parent\'s write moves away from the pin', () => {
    const run = (version: string) => {
      const { k } = kernel(version);
      const pfn = hugetlbMem(k);
      k.run(k.gup({ map: 'mem', page: 0, pages: NR, write: true, longterm: true, as: 'fixed' }, true));
      // a large folio: +1 reference and +1 _pincount per pinned page (v5.7+); v5.4 has no FOLL_PIN accounting: +512 references
      expect(k.refcount(pfn)).toBe(1 + NR);
      k.run(k.fork({ as: 'child' }));
      const shared = k.pfnOf({ map: 'mem', page: 0, process: 'child' }) === pfn;
      k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
      return { shared, reliable: k.run(k.dmaRead({ pin: 'fixed' })) === '0xff', rc: k.refcount(pfn) };
    };
    // v6.1+: the child's copy is its own; the parent stays writable and the pin holds: rc 1 + 512
    expect(run('v6.1')).toEqual({ shared: false, reliable: true, rc: 1 + NR });
    expect(run('latest')).toEqual({ shared: false, reliable: true, rc: 1 + NR });
    // v5.10 (fork-cow-pinned for PTEs/THPs, not yet hugetlb): shared (rc 2 + 512), then the
    // parent's write copies: the old folio keeps the child's mapping and the pins
    expect(run('v5.10')).toEqual({ shared: true, reliable: false, rc: 1 + NR });
    expect(run('v5.4')).toEqual({ shared: true, reliable: false, rc: 1 + NR });
  });

  it('a R/O pin of a COW-shared hugetlb page unshares from v5.19 (c89357e27f20): a R/O exclusive copy is pinned', () => {
    const { k } = kernel('v6.1');
    const pfn = hugetlbMem(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.gup({ map: 'mem', page: 0, longterm: true, as: 'ro' }, true));
    const copy = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(copy).not.toBe(pfn);
    // the copy: its mapping and the pin (rc 2, pincount 1), mapped R/O (make_huge_pte(!unshare))
    expect([k.refcount(copy), pincount(k, copy), writable(k, { map: 'mem', page: 0 }), k.refcount(pfn)]).toEqual([2, 1, false, 1]);
    // the write then reuses it (mapcount 1, anon): the pin stays coherent
    k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(copy);
    // before v5.19 the shared page itself is pinned and the write copies away from it
    const old = kernel('v5.10').k;
    const p = hugetlbMem(old);
    old.run(old.fork({ as: 'child' }));
    old.run(old.gup({ map: 'mem', page: 0, longterm: true, as: 'ro' }, true));
    expect(old.pfnOf({ map: 'mem', page: 0 })).toBe(p);
    old.run(old.write({ map: 'mem', page: 0, data: '0xff' }));
    expect(old.pfnOf({ map: 'mem', page: 0 })).not.toBe(p);
  });

  it('GUP-fast sees a hugetlb fork in progress from v5.19 only: copy_hugetlb_page_range() took write_protect_seq from then on', () => {
    const oddDuringCopy = (version: string): boolean => {
      const { k } = kernel(version);
      hugetlbMem(k);
      const mm = k.processes.get('init')!;
      const op = k.forker.fork(mm, 'child');
      for (let r = op.next(); !r.done; r = op.next()) {
        const y = r.value as { kind: string; point?: string };
        if (y.kind === 'preempt' && y.point === 'copy_hugetlb_page_range') return mm.writeProtectSeq % 2 === 1;
      }
      throw new Error('fork never reached copy_hugetlb_page_range');
    };
    expect(['v5.10', 'v6.1', 'latest'].map(oddDuringCopy)).toEqual([false, true, true]);
  });

  it('a pool with one page cannot COW: the failure is reported as not modelled (unmap_ref_private)', () => {
    const { k } = kernel('latest', 1);
    hugetlbMem(k);
    k.run(k.fork({ as: 'child' }));
    const e = errorOf(() => k.run(k.write({ map: 'mem', page: 0, data: 'x' })));
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).unsupported).not.toBeNull();
  });
});

describe('hugetlb VMAs elsewhere in mm', () => {
  it('mprotect never upgrades a hugetlb entry and clear_refs skips it (no hugetlb_entry in the walk); madvise dontfork is refused as not modelled, MREMAP_DONTUNMAP is EINVAL (VM_DONTEXPAND)', () => {
    const { k } = kernel('latest');
    hugetlbMem(k);
    k.run(k.mprotect({ map: 'mem', write: false }));
    k.run(k.clearRefs({}));
    k.run(k.mprotect({ map: 'mem', write: true }));
    // exclusive, dirty and still soft-dirty: change_pte_range() would map a base page writable here
    const mm = k.processes.get('init')!;
    const pmd = [...mm.pmds.values()][0]!;
    expect([pmd.write, pmd.softDirty]).toEqual([false, true]);
    const e = errorOf(() => k.run(k.madvise({ map: 'mem', advice: 'dontfork' })));
    expect([e instanceof KernelError, (e as KernelError).unsupported !== null]).toEqual([true, true]);
    // mremap of hugetlb VMAs is modelled (hugetlb-mremap.test.ts): hugetlbfs_file_mmap() sets VM_DONTEXPAND
    expect(code(() => k.run(k.mremap({ map: 'mem', length: HPAGE, dontUnmap: true, as: 'moved' })))).toBe('EINVAL');
  });
});

describe('hugetlbfs memfds (MFD_HUGETLB)', () => {
  /** cow.c run_with_memfd_hugetlb(): fallocated, mapped private RW (mem) and shared R/O (smem), both read. */
  function pair(k: Kernel): number {
    k.run(k.memfdCreate({ file: 'fd', size: HPAGE, fallocate: true, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: HPAGE, write: true, as: 'mem' }));
    k.run(k.mmap({ file: 'fd', length: HPAGE, shared: true, as: 'smem' }));
    k.run(k.read({ map: 'mem', page: 0 }));
    k.run(k.read({ map: 'smem', page: 0 }));
    return k.pfnOf({ file: 'fd', page: 0 })!;
  }

  it('fallocate puts one huge folio in the page cache (rc 1); each mapping adds a reference and a mapcount; a private write copies it', () => {
    const { k } = kernel();
    const pfn = pair(k);
    expect([k.refcount(pfn), k.mapcount(pfn), k.isAnon(pfn), k.folios.nr(pfn)]).toEqual([3, 2, false, NR]);
    // one page in the cache; the private mapping reserved one for its own COW (a private
    // mapping's reservation covers its whole range, cache or not: hugetlb_reserve_pages)
    expect(counters(k)).toEqual({ nr: 4, free: 3, resv: 1 });
    // the private mapping maps the cache folio R/O (make_huge_pte: writable only if VM_SHARED)
    expect(writable(k, { map: 'mem', page: 0 })).toBe(false);
    k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
    const copy = k.pfnOf({ map: 'mem', page: 0 })!;
    expect([copy !== pfn, k.isAnon(copy), k.refcount(pfn), k.mapcount(pfn)]).toEqual([true, true, 2, 1]);
    // the COW of a page-cache folio used that reservation (outside_reserve is 0 for it)
    expect(counters(k)).toEqual({ nr: 4, free: 2, resv: 0 });
    expect(k.run(k.read({ map: 'smem', page: 0 }))).toBe(''); // "Other mapping not modified"
    expect(k.pfnOf({ file: 'fd', page: NR - 1 })).toBe(pfn + NR - 1);
  });

  it('a shared writable mapping is writable at the first fault (make_huge_pte(VM_WRITE && VM_SHARED)); a shared mapping of missing pages reserves them', () => {
    const { k } = kernel('latest', 2);
    k.run(k.memfdCreate({ file: 'fd', size: 2 * HPAGE, hugetlb: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * HPAGE, shared: true, write: true, as: 'm' }));
    expect(counters(k)).toEqual({ nr: 2, free: 2, resv: 2 });
    k.run(k.read({ map: 'm', page: NR }));
    expect(writable(k, { map: 'm', page: NR })).toBe(true);
    expect(counters(k)).toEqual({ nr: 2, free: 1, resv: 1 });
    const pfn = k.pfnOf({ file: 'fd', page: NR })!;
    // the cache's reference and the mapping's
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([2, 1]);
    // memfds stay open: unmapping leaves the folio in the cache (rc 1)
    k.run(k.munmap({ map: 'm' }));
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([1, 0]);
  });

  it('MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB: an unnamed hugetlbfs file whose folios go back to the pool with the last unmap', () => {
    const { k } = kernel('latest', 1);
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    k.run(k.fork({ as: 'child' }));
    // a shared hugetlb VMA has no anon_vma: fork does not copy it, the child refaults the cache folio
    expect(k.pfnOf({ map: 'm', page: 0, process: 'child' })).toBeNull();
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('x');
    k.run(k.exit({ process: 'child' }));
    k.run(k.munmap({ map: 'm' }));
    expect(counters(k)).toEqual({ nr: 1, free: 1, resv: 0 });
  });
});
