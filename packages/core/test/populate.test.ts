import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// mmap(MAP_POPULATE) (mm/populate.ts): mm_populate() -> __mm_populate(ignore_errors = 1) ->
// populate_vma_page_range(). FOLL_WRITE only where (vm_flags & (VM_WRITE | VM_SHARED)) ==
// VM_WRITE, so a private writable mapping is write-faulted (anonymous pages, COW copies of file
// pages) and everything else read-faulted; the first page that cannot be faulted in ends that VMA's
// population and mmap still succeeds.

const PAGE = 4096;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** map_populate.c: a shared writable mapping written 'deadbabe', then fork. */
function parentWithSharedFile(k: Kernel): number {
  k.run(k.memfdCreate({ file: 'tmp', size: PAGE }));
  k.run(k.mmap({ file: 'tmp', length: PAGE, shared: true, write: true, as: 'smap' }));
  k.run(k.write({ map: 'smap', page: 0, data: 'deadbabe' }));
  k.run(k.fork({ as: 'child' }));
  return k.pfnOf({ file: 'tmp', page: 0 })!;
}

describe('mmap(MAP_POPULATE)', () => {
  it('map_populate.c in every release: the child\'s MAP_PRIVATE|MAP_POPULATE page is its own copy before the parent writes again', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const cache = parentWithSharedFile(k);
      k.run(k.mmap({ process: 'child', file: 'tmp', length: PAGE, write: true, populate: true, as: 'cmap' }));
      const copy = k.pfnOf({ map: 'cmap', page: 0, process: 'child' })!;
      // populated by a write fault: a new anonymous page, mapped writable, not the cache folio
      expect({ version, copy: copy !== cache, anon: k.isAnon(copy), writable: k.isWritableIn({ map: 'cmap', page: 0, process: 'child' }) }).toEqual({ version, copy: true, anon: true, writable: true });
      k.run(k.write({ map: 'smap', page: 0, data: '22222bad' }));
      expect(k.run(k.read({ map: 'cmap', page: 0, process: 'child' }))).toBe('deadbabe');
    }
  });

  it('without MAP_POPULATE the same child maps the cache folio at its first read and sees the parent\'s later write (what the test guards against)', () => {
    const k = kernel();
    const cache = parentWithSharedFile(k);
    k.run(k.mmap({ process: 'child', file: 'tmp', length: PAGE, write: true, as: 'cmap' }));
    expect(k.isMappedIn({ map: 'cmap', page: 0, process: 'child' })).toBe(false);
    expect(k.run(k.read({ map: 'cmap', page: 0, process: 'child' }))).toBe('deadbabe');
    expect(k.pfnOf({ map: 'cmap', page: 0, process: 'child' })).toBe(cache);
    k.run(k.write({ map: 'smap', page: 0, data: '22222bad' }));
    expect(k.run(k.read({ map: 'cmap', page: 0, process: 'child' }))).toBe('22222bad');
  });

  it('a shared or read-only mapping is read-faulted: the cache folio itself, no copy', () => {
    for (const shared of [true, false]) {
      const k = kernel();
      k.run(k.memfdCreate({ file: 'tmp', size: 2 * PAGE }));
      k.run(k.mmap({ file: 'tmp', length: 2 * PAGE, shared, write: shared, populate: true, as: 'm' }));
      for (const page of [0, 1]) {
        const pfn = k.pfnOf({ map: 'm', page })!;
        expect({ shared, page, cache: pfn === k.pfnOf({ file: 'tmp', page }), anon: k.isAnon(pfn) }).toEqual({ shared, page, cache: true, anon: false });
      }
      // the page cache's reference and the PTE's (shmem_fault on SGP_CACHE)
      expect(k.refcount(k.pfnOf({ file: 'tmp', page: 0 })!)).toBe(2);
    }
  });

  it('anonymous memory: a writable private mapping gets a page of its own per page; a read-only one maps the shared zero page', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, populate: true, as: 'rw' }));
    const pfns = [0, 1, 2].map((page) => k.pfnOf({ map: 'rw', page })!);
    expect(new Set(pfns).size).toBe(3);
    for (const pfn of pfns) expect({ anon: k.isAnon(pfn), rc: k.refcount(pfn), zero: k.isZeroPfn(pfn) }).toEqual({ anon: true, rc: 1, zero: false });
    k.run(k.mmap({ anon: true, length: 2 * PAGE, populate: true, as: 'ro' }));
    for (const page of [0, 1]) expect(k.pfnOf({ map: 'ro', page })).toBe(k.zeroPfn);
  });

  it('errors are ignored: past the end of a file the fault is SIGBUS, mmap still succeeds and the pages before it are populated', () => {
    const k = kernel();
    k.run(k.memfdCreate({ file: 'tmp', size: PAGE }));
    // two pages mapped over a one-page file: page 1 lies past i_size (shmem_fault: VM_FAULT_SIGBUS)
    k.run(k.mmap({ file: 'tmp', length: 2 * PAGE, shared: true, write: true, populate: true, as: 'm' }));
    expect([k.isMappedIn({ map: 'm', page: 0 }), k.isMappedIn({ map: 'm', page: 1 })]).toEqual([true, false]);
  });
});
