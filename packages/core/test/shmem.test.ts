import { describe, expect, it } from 'vitest';
import { createKernel, GUP_PIN_COUNTING_BIAS, InputError, Monitor, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, errorOf } from './vm-helpers.js';

// shmem (mm/pagecache.ts): memfds and shared anonymous memory. Every count below is reasoned from the
// kernel's rules: the page cache holds 1 reference on an order-0 folio (shmem_add_to_page_cache:
// folio_ref_add(nr)); each PTE mapping it holds 1 more, the one shmem_get_folio_gfp() handed the
// fault (finish_fault keeps it), and 1 mapcount (folio_add_file_rmap_pte).

const PAGE = 4096;

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** cow.c run_with_memfd(): a fallocated 1-page memfd, a private RW and a shared R/O mapping, both read. */
function memfdPair(k: Kernel): number {
  k.run(k.memfdCreate({ file: 'fd', size: PAGE, fallocate: true }));
  k.run(k.mmap({ file: 'fd', length: PAGE, write: true, as: 'mem' }));
  k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, as: 'smem' }));
  k.run(k.read({ map: 'mem', page: 0 }));
  k.run(k.read({ map: 'smem', page: 0 }));
  return k.pfnOf({ file: 'fd', page: 0 })!;
}

describe('shmem page cache', () => {
  it('fallocate puts a page in the cache at refcount 1 (the cache), unmapped, not anon', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE, fallocate: true }));
    const pfn = k.pfnOf({ file: 'fd', page: 1 })!;
    expect(pfn).not.toBeNull();
    expect(k.refcount(pfn)).toBe(1);
    expect(k.mapcount(pfn)).toBe(0);
    expect(k.isAnon(pfn)).toBe(false);
  });

  it('without fallocate the cache is empty until a fault; a read fault adds the page (shmem_fault allocates on SGP_CACHE)', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    expect(k.pfnOf({ file: 'fd', page: 0 })).toBeNull();
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
    // cache 1 + the PTE 1
    expect(k.refcount(pfn)).toBe(2);
    expect(k.mapcount(pfn)).toBe(1);
    // a shared writable mapping without write notification maps even a read fault writable
    // (vm_page_prot is PAGE_SHARED: shmem has no ->page_mkwrite, VM_SOFTDIRTY is set on new VMAs)
    expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(true);
    expect(k.anonExclusive(pfn)).toBe(false);
  });

  it("cow.c's memfd pair: both mappings map the cache page (rc 1 + 2, mapcount 2); the private one read-only", () => {
    const { k } = kernel();
    const pfn = memfdPair(k);
    expect(k.pfnOf({ map: 'mem', page: 0 })).toBe(pfn);
    expect(k.pfnOf({ map: 'smem', page: 0 })).toBe(pfn);
    expect(k.refcount(pfn)).toBe(3);
    expect(k.mapcount(pfn)).toBe(2);
    expect(k.isWritableIn({ map: 'mem', page: 0 })).toBe(false); // COW mapping
    expect(k.isWritableIn({ map: 'smem', page: 0 })).toBe(false); // PROT_READ
  });

  it('a write to the private mapping COWs into an anon page (wp_page_copy); the cache keeps its copy (Basic COW)', () => {
    const { k, m } = kernel();
    const cache = memfdPair(k);
    k.run(k.write({ map: 'mem', page: 0, data: 'ff' }));
    const anon = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(anon).not.toBe(cache);
    expect(k.isAnon(anon)).toBe(true);
    expect(k.anonExclusive(anon)).toBe(true);
    expect(k.refcount(anon)).toBe(1);
    expect(k.mapcount(anon)).toBe(1);
    // the private PTE's reference and mapcount went: cache 1 + smem 1
    expect(k.refcount(cache)).toBe(2);
    expect(k.mapcount(cache)).toBe(1);
    expect(k.run(k.read({ map: 'smem', page: 0 }))).toBe('');
    expect(m.violations).toEqual([]);
  });

  it('a private write fault on a hole is do_cow_fault: the cache gains the page (rc 1, unmapped) and the mapping an anon copy', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, write: true, as: 'mem' }));
    k.run(k.write({ map: 'mem', page: 0, data: 'x' }));
    const cache = k.pfnOf({ file: 'fd', page: 0 })!;
    // __do_fault's reference was put after the copy: only the cache's is left
    expect(k.refcount(cache)).toBe(1);
    expect(k.mapcount(cache)).toBe(0);
    const anon = k.pfnOf({ map: 'mem', page: 0 })!;
    expect(k.isAnon(anon)).toBe(true);
    expect(k.pages.data.get(cache) ?? '').toBe('');
  });

  it('writes through a shared mapping land in the cache page and are seen by every mapping', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'a' }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'b' }));
    k.run(k.write({ map: 'a', page: 0, data: 'A' }));
    expect(k.run(k.read({ map: 'b', page: 0 }))).toBe('A');
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    expect(k.refcount(pfn)).toBe(3);
    expect(k.mapcount(pfn)).toBe(2);
  });

  it('a fault past i_size is SIGBUS (shmem_get_folio_gfp: -EINVAL)', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    expect(code(() => k.run(k.read({ map: 'm', page: 1 })))).toBe('SIGBUS');
  });

  it('GUP of a page past i_size is EFAULT, not a signal (faultin_page: vm_fault_to_errno of VM_FAULT_SIGBUS)', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    expect(code(() => k.run(k.gup({ map: 'm', page: 1, write: true, as: 'p' }, true)))).toBe('EFAULT');
    expect(k.pins.has('p')).toBe(false);
  });

  it('munmap drops the mapping reference; the memfd cache keeps its page', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    k.run(k.munmap({ map: 'm' }));
    expect(k.refcount(pfn)).toBe(1);
    expect(k.mapcount(pfn)).toBe(0);
    expect(k.ram.live.has(pfn)).toBe(true);
    // mapped again, the data is still there
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, as: 'n' }));
    expect(k.run(k.read({ map: 'n', page: 0 }))).toBe('A');
  });

  it('ftruncate to 0 unmaps the page everywhere and frees it; growing again gives a zeroed page', () => {
    const { k, m } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    k.run(k.truncate({ file: 'fd', size: 0 }));
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
    expect(k.ram.live.has(pfn)).toBe(false);
    expect(code(() => k.run(k.read({ map: 'm', page: 0 })))).toBe('SIGBUS');
    k.run(k.truncate({ file: 'fd', size: PAGE }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    expect(m.violations).toEqual([]);
  });

  it('punch hole (shmem_fallocate): the whole pages leave every shared mapping and the cache; a private COW copy stays (even_cows = 0)', () => {
    const { k, m } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 3 * PAGE, fallocate: true }));
    k.run(k.mmap({ file: 'fd', length: 3 * PAGE, shared: true, write: true, as: 's' }));
    k.run(k.mmap({ file: 'fd', length: 3 * PAGE, write: true, as: 'p' }));
    for (let page = 0; page < 3; page++) k.run(k.write({ map: 's', page, data: `s${page}` }));
    k.run(k.read({ map: 'p', page: 1 })); // the cache page, mapped R/O
    k.run(k.write({ map: 'p', page: 2, data: 'cow' })); // an anon copy
    const cache = [0, 1, 2].map((page) => k.pfnOf({ file: 'fd', page })!);
    // half of page 0 and all of pages 1 and 2: only pages 1 and 2 are wholly inside
    k.run(k.punchHole({ file: 'fd', offset: PAGE / 2, length: 2.5 * PAGE }));
    expect([0, 1, 2].map((page) => k.pfnOf({ file: 'fd', page }))).toEqual([cache[0], null, null]);
    expect([0, 1, 2].map((page) => k.isMappedIn({ map: 's', page }))).toEqual([true, false, false]);
    expect(k.isMappedIn({ map: 'p', page: 1 })).toBe(false);
    // "hole-punching leaves COWed pages"
    expect(k.run(k.read({ map: 'p', page: 2 }))).toBe('cow');
    expect(k.ram.live.has(cache[1]!)).toBe(false);
    // a later read of the hole faults a new zeroed page into the cache
    expect(k.run(k.read({ map: 's', page: 1 }))).toBe('');
    expect(k.pfnOf({ file: 'fd', page: 1 })).not.toBeNull();
    expect(m.violations).toEqual([]);
  });

  it('a memfd name in a DAX-file operation is an input error naming the field', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    const e = errorOf(() => k.run(k.reflink({ from: 'fd', to: 'copy' })));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).field).toBe('file');
    expect(code(() => k.run(k.memfdCreate({ file: 'fd', size: PAGE })))).toBe('EEXIST');
    expect(code(() => k.run(k.create({ file: 'fd', size: PAGE })))).toBe('EEXIST');
  });
});

describe('fault-around (do_fault_around -> filemap_map_pages)', () => {
  // 2 MiB mappings are placed PMD-aligned, so page N of one sits at PTE index N: the 64 KiB
  // fault-around window of a read fault at page N is pages N & ~15 .. (N & ~15) + 15 (4 KiB pages)
  const MIB2 = 2 * 1024 * 1024;

  it('a read fault also maps the cached, uptodate pages of its 16-page window, each with a reference and a file rmap', () => {
    const { k, m } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: MIB2 }));
    k.run(k.mmap({ file: 'fd', length: MIB2, shared: true, write: true, as: 'a' }));
    for (let page = 0; page < 20; page++) k.run(k.write({ map: 'a', page, data: `d${page}` })); // write faults: no fault-around
    expect(k.isMappedIn({ map: 'a', page: 20 })).toBe(false);
    k.run(k.mmap({ file: 'fd', length: MIB2, shared: true, as: 'b' }));
    expect(k.run(k.read({ map: 'b', page: 5 }))).toBe('d5');
    // pages 0..15 mapped in b; 16..19 are cached but outside the window
    expect(Array.from({ length: 20 }, (_, page) => k.isMappedIn({ map: 'b', page }))).toEqual([...Array<boolean>(16).fill(true), ...Array<boolean>(4).fill(false)]);
    // page 9: the cache, a's PTE, b's PTE
    const pfn = k.pfnOf({ file: 'fd', page: 9 })!;
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([3, 2]);
    // b is PROT_READ: read-only entries; clean (no soft-dirty from the PTE, only VM_SOFTDIRTY)
    expect(k.isWritableIn({ map: 'b', page: 9 })).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('pages fallocate left not uptodate are not mapped around; the faulting page goes through ->fault (which zeroes it)', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: MIB2, fallocate: true }));
    k.run(k.mmap({ file: 'fd', length: MIB2, shared: true, write: true, as: 'm' }));
    k.run(k.read({ map: 'm', page: 3 }));
    k.run(k.read({ map: 'm', page: 8 }));
    expect(Array.from({ length: 16 }, (_, page) => k.isMappedIn({ map: 'm', page })).flatMap((mapped, page) => (mapped ? [page] : []))).toEqual([3, 8]);
  });

  it('in a private mapping the neighbours are mapped read-only (COW); a write then copies only the page written', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: MIB2 }));
    k.run(k.mmap({ file: 'fd', length: MIB2, shared: true, write: true, as: 's' }));
    for (let page = 0; page < 4; page++) k.run(k.write({ map: 's', page, data: `s${page}` }));
    k.run(k.mmap({ file: 'fd', length: MIB2, write: true, as: 'p' }));
    k.run(k.read({ map: 'p', page: 0 }));
    expect([0, 1, 2, 3].map((page) => [k.isMappedIn({ map: 'p', page }), k.isWritableIn({ map: 'p', page })])).toEqual([[true, false], [true, false], [true, false], [true, false]]);
    k.run(k.write({ map: 'p', page: 2, data: 'x' }));
    expect([0, 1, 2, 3].map((page) => k.isAnon(k.pfnOf({ map: 'p', page })!))).toEqual([false, false, true, false]);
    expect(k.run(k.read({ map: 's', page: 2 }))).toBe('s2');
  });

  it('the window stops at the VMA and at i_size', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 6 * PAGE }));
    k.run(k.mmap({ file: 'fd', length: 6 * PAGE, shared: true, write: true, as: 'a' }));
    for (let page = 0; page < 6; page++) k.run(k.write({ map: 'a', page, data: `d${page}` }));
    // a 4-page mapping of file pages 1..4, placed wherever mmap puts it: nothing is mapped outside
    // it, and what is mapped lies in the aligned 16-page window of the fault
    const b = k.run(k.mmap({ file: 'fd', length: 4 * PAGE, offset: PAGE, shared: true, as: 'b' }));
    k.run(k.read({ map: 'b', page: 1 }));
    expect([b.start - 1, b.start + 4].map((vpn) => k.vm.lookup(b.mm, vpn))).toEqual([null, null]);
    const window = Math.floor((b.start + 1) / 16);
    const mapped = [0, 1, 2, 3].filter((page) => k.isMappedIn({ map: 'b', page }));
    expect(mapped).toContain(1);
    expect(mapped.every((page) => Math.floor((b.start + page) / 16) === window)).toBe(true);
    expect(k.pfnOf({ map: 'b', page: 1 })).toBe(k.pfnOf({ file: 'fd', page: 2 }));
    // a 2 MiB (PMD-aligned) mapping of the 6-page file: the window would be pages 0..15, i_size
    // stops it at 6 (and a fault past it is SIGBUS)
    k.run(k.mmap({ file: 'fd', length: 2 * 1024 * 1024, shared: true, as: 'c' }));
    k.run(k.read({ map: 'c', page: 0 }));
    expect(Array.from({ length: 16 }, (_, page) => k.isMappedIn({ map: 'c', page })).filter(Boolean).length).toBe(6);
  });
});

describe('fork of a private memfd mapping', () => {
  it('a VMA with an anon_vma is copied (vma_needs_copy): the child shares the cache page read-only and the anon copy COW-style', () => {
    const { k, m } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: 2 * PAGE, fallocate: true }));
    k.run(k.mmap({ file: 'fd', length: 2 * PAGE, write: true, as: 'mem' }));
    k.run(k.read({ map: 'mem', page: 0 })); // the cache page, R/O
    k.run(k.write({ map: 'mem', page: 1, data: 'P' })); // do_cow_fault: an anon page, and an anon_vma
    const cache = k.pfnOf({ file: 'fd', page: 0 })!;
    const anon = k.pfnOf({ map: 'mem', page: 1 })!;
    k.run(k.fork({ as: 'child' }));
    // copy_present_pte(): a file page gets a reference and a file rmap: cache 1 + 2 PTEs
    expect(k.pfnOf({ map: 'mem', page: 0, process: 'child' })).toBe(cache);
    expect([k.refcount(cache), k.mapcount(cache)]).toEqual([3, 2]);
    // the anon page is shared and loses PageAnonExclusive; both PTEs write-protected
    expect(k.pfnOf({ map: 'mem', page: 1, process: 'child' })).toBe(anon);
    expect([k.refcount(anon), k.mapcount(anon), k.anonExclusive(anon)]).toEqual([2, 2, false]);
    expect(k.isWritableIn({ map: 'mem', page: 1 })).toBe(false);
    // the child's write COWs both: the cache page (never reused: not anon) and the shared anon page
    k.run(k.write({ map: 'mem', page: 0, data: 'C', process: 'child' }));
    k.run(k.write({ map: 'mem', page: 1, data: 'C', process: 'child' }));
    expect(k.run(k.read({ map: 'mem', page: 1 }))).toBe('P');
    expect([k.refcount(cache), k.mapcount(cache)]).toEqual([2, 1]);
    expect([k.refcount(anon), k.mapcount(anon)]).toEqual([1, 1]);
    expect(m.violations).toEqual([]);
  });
});

describe('shared anonymous memory (shmem_zero_setup)', () => {
  it('is a file VMA: a write fault maps a page-cache page (rc 2, mapcount 1), not anon', () => {
    const { k } = kernel();
    const vma = k.run(k.mmap({ anon: true, shared: true, write: true, length: 2 * PAGE, as: 'm' }));
    expect(vma.kind).toBe('pagecache');
    k.run(k.write({ map: 'm', page: 1, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 1 })!;
    expect(k.refcount(pfn)).toBe(2);
    expect(k.mapcount(pfn)).toBe(1);
    expect(k.isAnon(pfn)).toBe(false);
    expect(k.anonExclusive(pfn)).toBe(false);
    expect(vma.anonVma).toBe(0);
  });

  it('fork copies no page tables (vma_needs_copy: no anon_vma); the child faults the same page in and its writes are shared', () => {
    const { k } = kernel();
    k.run(k.mmap({ anon: true, shared: true, write: true, length: PAGE, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.fork({ as: 'child' }));
    expect(k.isMappedIn({ map: 'm', page: 0, process: 'child' })).toBe(false);
    expect(k.refcount(pfn)).toBe(2);
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('A');
    // cache 1 + parent PTE 1 + child PTE 1
    expect(k.refcount(pfn)).toBe(3);
    expect(k.mapcount(pfn)).toBe(2);
    k.run(k.write({ map: 'm', page: 0, data: '-A', process: 'child' }));
    expect(k.pfnOf({ map: 'm', page: 0, process: 'child' })).toBe(pfn);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('-A');
  });

  it('the file lives while a VMA maps it: the last unmap (here the exit of the child) frees its pages', () => {
    const { k, m } = kernel();
    k.run(k.mmap({ anon: true, shared: true, write: true, length: PAGE, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.fork({ as: 'child' }));
    k.run(k.munmap({ map: 'm' }));
    // the child's VMA still holds the file: the cache's reference stays
    expect(k.refcount(pfn)).toBe(1);
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('A');
    k.run(k.exit({ process: 'child' }));
    expect(k.ram.live.has(pfn)).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('a pin outlives the eviction: the page leaves the cache but is freed only at unpin', () => {
    const { k, m } = kernel();
    k.run(k.mmap({ anon: true, shared: true, write: true, length: PAGE, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, as: 'p' }, true));
    k.run(k.munmap({ map: 'm' }));
    expect(k.refcount(pfn)).toBe(GUP_PIN_COUNTING_BIAS);
    expect(k.ram.live.has(pfn)).toBe(true);
    k.run(k.unpin({ name: 'p' }));
    expect(k.ram.live.has(pfn)).toBe(false);
    expect(m.violations).toEqual([]);
  });
});

describe('GUP on shmem', () => {
  for (const fast of [false, true]) {
    it(`a R/W FOLL_LONGTERM pin${fast ? ' (GUP-fast)' : ''} of a shared memfd mapping works (no dirty tracking for shmem) and pins the cache page`, () => {
      const { k } = kernel();
      k.run(k.memfdCreate({ file: 'fd', size: PAGE, fallocate: true }));
      k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
      k.run(k.write({ map: 'm', page: 0, data: '0' }));
      const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
      const h = k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, fast, as: 'p' }, true));
      expect(h.pfns).toEqual([pfn]);
      expect(k.refcount(pfn)).toBe(2 + GUP_PIN_COUNTING_BIAS);
      expect(k.maybePinned(pfn)).toBe(true);
    });
  }

  it('a R/O longterm pin of a shared mapping needs no unshare (not a COW mapping): the cache page is pinned', () => {
    const { k } = kernel();
    k.run(k.memfdCreate({ file: 'fd', size: PAGE, fallocate: true }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: '0' }));
    k.run(k.mprotect({ map: 'm', write: false }));
    const pfn = k.pfnOf({ file: 'fd', page: 0 })!;
    // GUP-fast has no VMA and bails on a non-anon page under FOLL_LONGTERM; the slow path pins it
    const h = k.run(k.gup({ map: 'm', page: 0, longterm: true, fast: true, as: 'p' }, true));
    expect(h.pfns).toEqual([pfn]);
  });

  // cow.c "R/O longterm GUP pin ... with memfd": gup_must_unshare() unshares a non-anon page in a COW
  // mapping under FOLL_LONGTERM from v6.2 (84209e87c696); before, the cache page itself is pinned
  // and the later write COWs the mapping away from it.
  for (const [version, reliable] of [['v6.1', false], ['v6.3', true], ['latest', true]] as const) {
    for (const fast of [false, true]) {
      it(`${version}: R/O longterm${fast ? ' fast' : ''} pin on the private memfd mapping is ${reliable ? 'reliable' : 'not reliable'} after the write`, () => {
        const { k, m } = kernel(version);
        const cache = memfdPair(k);
        const h = k.run(k.gup({ map: 'mem', page: 0, longterm: true, fast, as: 'p' }, true));
        expect(h.pfns[0] === cache).toBe(!reliable);
        k.run(k.write({ map: 'mem', page: 0, data: 'ff' }));
        expect(k.run(k.dmaRead({ pin: 'p' })) === 'ff').toBe(reliable);
        expect(m.violations.map((v) => v.invariant)).toEqual(reliable ? [] : ['pinned-page-diverged']);
      });
    }
  }
});
