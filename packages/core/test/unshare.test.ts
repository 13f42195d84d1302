import { describe, expect, it } from 'vitest';
import { createKernel, Monitor, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// gup_must_unshare() and FAULT_FLAG_UNSHARE (feature gup-unshare): what a R/O FOLL_PIN does to
// the page table before it pins, per era. Values follow mm/gup.c follow_page_pte()/faultin_page()
// and mm/memory.c do_wp_page()/wp_page_copy() (a7f226604170, v5.19; 84209e87c696, v6.2).

function kernel(version: string, features: Record<string, unknown> = {}): { k: Kernel; m: Monitor; cows: string[] } {
  const k = createKernel({ arch: testArch(), kernel: version, features });
  const cows: string[] = [];
  k.bus.on('cow').subscribe((e) => cows.push(e.data.why));
  return { k, m: new Monitor(k), cows };
}

/** A written private anon page, COW-shared with a child (fork write-protects both PTEs). */
function sharedPage(k: Kernel): number {
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
  k.run(k.write({ map: 'm', page: 0, data: 'A' }));
  k.run(k.fork({ as: 'child' }));
  return k.pfnOf({ map: 'm', page: 0 })!;
}

const pte = (k: Kernel, process?: string) => k.vm.lookup(k.process(process), k.map('m', process).start)!.pte;

describe('R/O FOLL_PIN of a COW-shared anonymous page', () => {
  it('v5.19+ (anon): the parent gets an exclusive copy, mapped read-only, and pins that', () => {
    const { k, m, cows } = kernel('v6.1');
    const old = sharedPage(k);
    expect([k.refcount(old), k.mapcount(old), k.anonExclusive(old)]).toEqual([2, 2, false]);
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    const copy = k.pfnOf({ map: 'm', page: 0 })!;
    expect(copy).not.toBe(old);
    expect(cows).toEqual(['do_wp_page: unshare']);
    // wp_page_copy() with FAULT_FLAG_UNSHARE: no maybe_mkwrite, the PTE stays read-only
    expect([pte(k).write, pte(k).dirty]).toEqual([false, false]);
    expect([k.refcount(copy), k.mapcount(copy), k.anonExclusive(copy), k.maybePinned(copy)]).toEqual([1 + 1024, 1, true, true]);
    // the old page is now the child's alone
    expect([k.refcount(old), k.mapcount(old), k.pfnOf({ map: 'm', page: 0, process: 'child' })]).toEqual([1, 1, old]);
    // the write fault after the pin reuses the exclusive, pinned page
    k.run(k.write({ map: 'm', page: 0, data: 'B' }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(copy);
    expect(k.run(k.dmaRead({ pin: 'ro' }))).toBe('B');
    expect(m.violations).toEqual([]);
  });

  it('GUP-fast bails on the R/O PTE of a non-exclusive page and the slow path unshares the same way', () => {
    const { k, cows } = kernel('latest');
    const old = sharedPage(k);
    k.run(k.gup({ map: 'm', page: 0, longterm: true, fast: true, as: 'ro' }, true));
    expect(k.pfnOf({ map: 'm', page: 0 })).not.toBe(old);
    expect(cows).toEqual(['do_wp_page: unshare']);
    expect(k.refcount(old)).toBe(1); // no reference left behind by the abandoned fast attempt
  });

  it('a page that is mapped once but not exclusive is reused: marked exclusive, no copy, still read-only', () => {
    const { k, cows } = kernel('v6.6');
    const page = sharedPage(k);
    k.run(k.exit({ process: 'child' }));
    expect([k.refcount(page), k.anonExclusive(page), pte(k).write]).toEqual([1, false, false]);
    k.run(k.gup({ map: 'm', page: 0, as: 'ro' }, true)); // short-term R/O pins unshare anon pages too
    expect(cows).toEqual([]);
    expect([k.pfnOf({ map: 'm', page: 0 }), k.anonExclusive(page), pte(k).write, k.refcount(page)]).toEqual([page, true, false, 1 + 1024]);
  });

  it('before v5.19 (off) the shared page itself is pinned and the next write moves the parent away from it', () => {
    const { k, m } = kernel('v5.10');
    const old = sharedPage(k);
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(old);
    expect(k.refcount(old)).toBe(2 + 1024);
    k.run(k.write({ map: 'm', page: 0, data: 'B' }));
    expect(k.pfnOf({ map: 'm', page: 0 })).not.toBe(old);
    expect(k.run(k.dmaRead({ pin: 'ro' }))).toBe('A');
    expect(m.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
  });

  it('only R/O FOLL_PIN unshares: FOLL_GET and R/W pins do not (a R/W pin write-faults, which copies)', () => {
    const { k, cows } = kernel('latest');
    const old = sharedPage(k);
    k.run(k.gup({ map: 'm', page: 0, as: 'get' }, false));
    expect([k.pfnOf({ map: 'm', page: 0 }), cows]).toEqual([old, []]);
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'rw' }, true));
    expect(cows).toEqual(['do_wp_page']);
    expect(pte(k).write).toBe(true);
  });
});

describe('R/O FOLL_LONGTERM pin of the shared zero page in a private mapping', () => {
  const zero = (k: Kernel): void => {
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.read({ map: 'm', page: 0 }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.zeroPfn);
  };

  it('v6.2+ (cow-mapping): unshared into a zeroed exclusive anon page, mapped read-only', () => {
    const { k, cows } = kernel('v6.6');
    zero(k);
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    const page = k.pfnOf({ map: 'm', page: 0 })!;
    expect(page).not.toBe(k.zeroPfn);
    expect(cows).toEqual(['do_wp_page: unshare']);
    expect([k.isAnon(page), k.anonExclusive(page), pte(k).write, k.refcount(page), k.run(k.dmaRead({ pin: 'ro' }))]).toEqual([true, true, false, 1 + 1024, '']);
  });

  it('a short-term R/O pin of the zero page is not unshared, even on v6.2+', () => {
    const { k, cows } = kernel('latest');
    zero(k);
    k.run(k.gup({ map: 'm', page: 0, as: 'ro' }, true));
    expect([k.pfnOf({ map: 'm', page: 0 }), cows]).toEqual([k.zeroPfn, []]);
  });

  it('v5.19-v6.1 (anon): the zero page is pinned as mapped', () => {
    const { k, cows } = kernel('v6.1');
    zero(k);
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    expect([k.pfnOf({ map: 'm', page: 0 }), cows]).toEqual([k.zeroPfn, []]);
  });

  it('the mapping of a read-only private anon VMA is a COW mapping too (VM_MAYWRITE)', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, length: 4096, as: 'm' }));
    k.run(k.read({ map: 'm', page: 0 }));
    k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    expect(k.pfnOf({ map: 'm', page: 0 })).not.toBe(k.zeroPfn);
    expect(pte(k).write).toBe(false);
  });
});

describe('shared anonymous memory', () => {
  it('is shmem (shmem_zero_setup): a R/O longterm pin of its page-cache page is never unshared (not anon, not a COW mapping)', () => {
    const { k } = kernel('latest');
    k.run(k.mmap({ anon: true, shared: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.mprotect({ map: 'm', write: false }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(k.isAnon(pfn)).toBe(false);
    const h = k.run(k.gup({ map: 'm', page: 0, longterm: true, as: 'ro' }, true));
    expect(h.pfns).toEqual([pfn]);
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
  });
});
