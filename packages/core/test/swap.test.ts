import { describe, expect, it } from 'vitest';
import { createKernel, Monitor, PRESETS, type Kernel } from '../src/index.js';
import { PG } from '../src/mm/pages.js';
import { testArch } from '../src/testing.js';
import { written } from './vm-helpers.js';

// Swap-out by MADV_PAGEOUT, swap entries, swap-in (mm/swap.ts). The device is synchronous
// (SWP_SYNCHRONOUS_IO): a swap-in of a slot only one PTE names skips the swap cache.

const RELEASES = PRESETS.map((p) => p.name);
/** The releases with PageAnonExclusive and the swap PTE's exclusive bit (v5.19+). */
const anonExclusive = (v: string): boolean => !['v5.4', 'v5.10'].includes(v);

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** PageAnonExclusive of a page (the flag the model keeps in every era; only v5.19+ reads it). */
const anonExclusiveFlag = (k: Kernel, pfn: number): boolean => (k.folios.flags(pfn) & PG.anonExclusive) !== 0;
const pageout = (k: Kernel, map: string, more: { process?: string; offset?: number; length?: number } = {}): void => void k.run(k.madvise({ map, advice: 'pageout', ...more }));
/** The swap entry at a page of a mapping, or undefined when the PTE is present or absent. */
const entryAt = (k: Kernel, map: string, page: number, process = 'init') => k.vm.lookup(k.process(process), k.map(map, process).start + page)?.pte.swap;

describe('MADV_PAGEOUT swaps out anonymous pages this process alone maps', () => {
  it('an exclusive page: the PTE becomes a swap entry (exclusive bit from v5.19), the folio is written and freed', () => {
    for (const v of RELEASES) {
      const { k, m } = kernel(v);
      const [pfn] = written(k, 'm', 1);
      pageout(k, 'm');
      const e = entryAt(k, 'm', 0);
      // try_to_unmap_one(): swap_duplicate() -> swap count 1; __remove_mapping() dropped the swap
      // cache's reference, the last one: the folio is free, the slot holds the data
      expect([e?.exclusive, k.swap.swapCount(e!.slot), k.swap.cacheOf(e!.slot), k.ram.live.has(pfn!), k.swap.used], v).toEqual([anonExclusive(v), 1, null, false, 1]);
      expect([k.isMappedIn({ map: 'm', page: 0 }), k.isSwappedIn({ map: 'm', page: 0 }), k.pfnOf({ map: 'm', page: 0 })], v).toEqual([false, true, null]);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('a read brings it back: a fresh folio (swap count 1: no swap cache; latest: through it, freed after), exclusive from v5.19; the slot is freed', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      expect(k.run(k.read({ map: 'm', page: 0 })), v).toBe('m0');
      const pfn = k.pfnOf({ map: 'm', page: 0 })!;
      // rc 1 (the PTE's, the fault's reference), mapcount 1, swap_free() freed the only entry
      expect([k.refcount(pfn), k.mapcount(pfn), k.swap.used, k.swap.inSwapCache(pfn)], v).toEqual([1, 1, 0, false]);
      // do_swap_page(): an exclusive folio is mapped writable on a read fault from v6.11
      // (c18160dba5ff); the v5.19+ rule marks it exclusive either way
      expect(k.isWritableIn({ map: 'm', page: 0 }), v).toBe(v === 'v6.15' || v === 'latest');
      expect(anonExclusiveFlag(k, pfn), v).toBe(anonExclusive(v));
    }
  });

  it('a write swap-in maps the page writable and dirty in every release (fresh: reused, exclusive)', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      const [old] = written(k, 'm', 1);
      pageout(k, 'm');
      k.run(k.write({ map: 'm', page: 0, data: 'new' }));
      const pfn = k.pfnOf({ map: 'm', page: 0 })!;
      // the pfn freed at pageout is the first one alloc_page() hands out again
      expect([pfn, k.refcount(pfn), k.isWritableIn({ map: 'm', page: 0 }), k.run(k.read({ map: 'm', page: 0 }))], v).toEqual([old, 1, true, 'new']);
    }
  });

  it('from v5.5 skips a page shared with a fork child (mapcount 2); the zero page and an unpopulated range always', () => {
    const { k } = kernel('v6.6');
    const [pfn] = written(k, 'm', 1);
    k.run(k.fork({ as: 'child' }));
    pageout(k, 'm');
    expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn!), k.mapcount(pfn!), k.swap.used]).toEqual([pfn, 2, 2, 0]);
    k.run(k.mmap({ anon: true, length: 8192, write: true, as: 'z' }));
    k.run(k.read({ map: 'z', page: 0 }));
    pageout(k, 'z');
    expect([k.pfnOf({ map: 'z', page: 0 }), k.isSwappedIn({ map: 'z', page: 1 }), k.swap.used]).toEqual([k.zeroPfn, false, 0]);
  });

  it('v5.4 pages out a page shared with a fork child too (no mapcount test before v5.5): both PTEs become entries of one slot', () => {
    const { k, m } = kernel('v5.4');
    const [pfn] = written(k, 'm', 1);
    k.run(k.fork({ as: 'child' }));
    pageout(k, 'm');
    // try_to_unmap() walks every mapping: swap count 2, the folio freed
    const e = entryAt(k, 'm', 0)!;
    expect([entryAt(k, 'm', 0, 'child')?.slot, k.swap.swapCount(e.slot), k.ram.live.has(pfn!)]).toEqual([e.slot, 2, false]);
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('m0');
    expect(m.violations).toEqual([]);
  });

  it('a page pinned for DMA: swapped out but kept in the swap cache up to v5.10; refused from v5.11 (feb889fb40fa)', () => {
    for (const v of RELEASES) {
      const { k, m } = kernel(v);
      const [pfn] = written(k, 'm', 1);
      k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, as: 'dma' }, true));
      const pinned = k.refcount(pfn!);
      pageout(k, 'm');
      if (anonExclusive(v)) {
        // shrink_folio_list(): folio_maybe_dma_pinned() -> keep_locked, before add_to_swap()
        expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn!), k.swap.used], v).toEqual([pfn, pinned, 0]);
        continue;
      }
      // add_to_swap() +1, try_to_unmap_one() -1 (the PTE's): the pin and the swap cache remain,
      // so __remove_mapping() cannot free it; the swap-in finds the same folio in the cache
      const e = entryAt(k, 'm', 0)!;
      expect([k.refcount(pfn!), k.mapcount(pfn!), k.swap.cacheOf(e.slot), k.swap.swapCount(e.slot)], v).toEqual([pinned, 0, pfn, 1]);
      expect(k.run(k.read({ map: 'm', page: 0 })), v).toBe('m0');
      // the cache's reference and the PTE's: pinned - 1 + 1 + 1; the swap count is 0 now but the
      // folio stays in the swap cache while mapped (only a full device or VM_LOCKED frees it)
      expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn!), k.swap.swapCount(e.slot), k.swap.inSwapCache(pfn!)], v).toEqual([pfn, pinned + 1, 0, true]);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('a PMD-mapped THP is split and each subpage swapped out (512 entries, exclusive from v5.19)', () => {
    // the range covers the THP whole: the kernel swaps it out whole (THP_SWAP), with no split and
    // so no zero-page remap on latest either (the model's split stands for that swap-out)
    for (const v of ['v5.10', 'v6.6', 'latest']) {
      const { k } = kernel(v);
      k.run(k.mmap({ anon: true, length: 4 * 2 ** 20, write: true, as: 'm' }));
      k.run(k.madvise({ map: 'm', advice: 'hugepage', offset: 2 ** 21, length: 2 ** 21 }));
      k.run(k.write({ map: 'm', page: 512, data: 'head' }));
      const head = k.pfnOf({ map: 'm', page: 512 })!;
      expect(k.process('init').pmds.size, v).toBe(1);
      pageout(k, 'm', { offset: 2 ** 21, length: 2 ** 21 });
      const entries = Array.from({ length: 512 }, (_, i) => entryAt(k, 'm', 512 + i));
      expect([k.process('init').pmds.size, entries.filter((e) => e !== undefined).length, entries.every((e) => e?.exclusive === (v !== 'v5.10')), k.swap.used, k.ram.live.has(head)], v).toEqual([0, 512, true, 512, false]);
      expect(k.run(k.read({ map: 'm', page: 512 })), v).toBe('head');
      expect(k.run(k.read({ map: 'm', page: 1023 })), v).toBe('');
    }
  });

  it('a THP the range covers in part is split (split_folio()); from v6.12 that split maps its zero-filled pages to the zero page, so only written pages are swapped', () => {
    for (const [v, swapped, rssKb] of [['v6.6', 256, 256 * 4], ['latest', 1, 4]] as const) {
      const { k } = kernel(v);
      k.run(k.mmap({ anon: true, length: 4 * 2 ** 20, write: true, as: 'm' }));
      k.run(k.madvise({ map: 'm', advice: 'hugepage', offset: 2 ** 21, length: 2 ** 21 }));
      k.run(k.write({ map: 'm', page: 512, data: 'head' }));
      k.run(k.write({ map: 'm', page: 900, data: 'x' }));
      // the first half of the THP: madvise_cold_or_pageout_pte_range() sees next - addr !=
      // HPAGE_PMD_SIZE and splits the folio. v6.6: 512 order-0 pages, the 256 in range swapped,
      // the other 256 still mapped. latest: __split_huge_page() remaps with RMP_USE_SHARED_ZEROPAGE,
      // so every zero-filled page of the whole folio -- in range or not -- maps the zero page and is
      // freed; the walk skips the zero page (vm_normal_folio() NULL): only page 512 is swapped, 900 stays
      pageout(k, 'm', { offset: 2 ** 21, length: 2 ** 20 });
      const entries = Array.from({ length: 512 }, (_, i) => entryAt(k, 'm', 512 + i)).filter((e) => e !== undefined);
      expect([entries.length, k.swap.used, k.rssAnonIn({})], v).toEqual([swapped, swapped, rssKb]);
      const zero = [513, 767, 768, 1023].map((i) => k.pfnOf({ map: 'm', page: i }) === k.zeroPfn);
      expect(zero, v).toEqual(v === 'latest' ? [true, true, true, true] : [false, false, false, false]);
      expect([k.run(k.read({ map: 'm', page: 512 })), k.run(k.read({ map: 'm', page: 900 })), k.run(k.read({ map: 'm', page: 600 }))], v).toEqual(['head', 'x', '']);
    }
  });
});

describe('swap entries across fork, munmap and exit', () => {
  it('fork duplicates the entry (swap count 2) and clears the exclusive bit of both; each side swaps in from the swap cache', () => {
    for (const v of RELEASES) {
      const { k, m } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      k.run(k.fork({ as: 'child' }));
      const e = entryAt(k, 'm', 0)!;
      expect([e.exclusive, entryAt(k, 'm', 0, 'child')?.exclusive, k.swap.swapCount(e.slot)], v).toEqual([false, false, 2]);
      // the child reads: swap count 2 -> through the swap cache; rc 2 (cache + PTE), R/O, not exclusive
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' })), v).toBe('m0');
      const pfn = k.pfnOf({ map: 'm', page: 0, process: 'child' })!;
      expect([k.refcount(pfn), k.mapcount(pfn), k.swap.swapCount(e.slot), k.isWritableIn({ map: 'm', page: 0, process: 'child' }), anonExclusiveFlag(k, pfn)], v).toEqual([2, 1, 1, false, false]);
      // the parent writes: it finds the cached folio (rc 3 with the fault's), cannot reuse it
      // (v5.19+: not exclusive, rc != 1; before: reuse_swap_page() counts the child's mapping and
      // its own entry: 2), maps it and do_wp_page() copies. The swap count is 0 now; the folio
      // stays in the swap cache (cache + child's PTE: rc 2), except in the latest mainline, which
      // always tries folio_free_swap() after a swap-in from a synchronous device (rc 1)
      k.run(k.write({ map: 'm', page: 0, data: 'parent' }));
      const cached = v !== 'latest';
      expect([k.pfnOf({ map: 'm', page: 0 }) !== pfn, k.refcount(pfn), k.mapcount(pfn), k.swap.swapCount(e.slot), k.swap.inSwapCache(pfn)], v).toEqual([true, cached ? 2 : 1, 1, 0, cached]);
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' })), v).toBe('m0');
      // exit: zap; free_pages_and_swap_cache() drops the unmapped folio from the swap cache: freed
      k.run(k.exit({ process: 'child' }));
      expect([k.ram.live.has(pfn), k.swap.used], v).toEqual([false, 0]);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('a non-exclusive entry left alone by a child exit: v5.19-v6.15 swap in a fresh (exclusive) folio; latest goes through the swap cache and maps it shared', () => {
    const shape = (v: string): [boolean, boolean, number, boolean] => {
      const { k } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      k.run(k.fork({ as: 'child' }));
      k.run(k.exit({ process: 'child' }));
      // the child's entry was freed (swap count 2 -> 1); fork had cleared the parent's exclusive bit
      expect([entryAt(k, 'm', 0)?.exclusive, k.swap.swapCount(entryAt(k, 'm', 0)!.slot)], v).toEqual([false, 1]);
      k.run(k.read({ map: 'm', page: 0 }));
      const pfn = k.pfnOf({ map: 'm', page: 0 })!;
      return [anonExclusiveFlag(k, pfn), k.isWritableIn({ map: 'm', page: 0 }), k.refcount(pfn), k.swap.inSwapCache(pfn)];
    };
    // skip swapcache: folio != swapcache -> "certainly exclusive", mapped R/O by the read fault
    expect(shape('v6.6')).toEqual([true, false, 1, false]);
    // swap cache: refcount 2 at the check (cache + fault) and no exclusive bit: mapped R/O, not
    // exclusive; then the cache is freed (no entry names the slot any more): rc 1
    expect(shape('latest')).toEqual([false, false, 1, false]);
  });

  it("after the child that swapped the page in exits, the parent's write swap-in reuses that swap-cache folio in every release", () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      k.run(k.fork({ as: 'child' }));
      k.run(k.read({ map: 'm', page: 0, process: 'child' }));
      const pfn = k.pfnOf({ map: 'm', page: 0, process: 'child' })!;
      k.run(k.exit({ process: 'child' }));
      // the parent's entry still names the slot: the unmapped folio stays in the swap cache (rc 1)
      expect([k.refcount(pfn), k.swap.inSwapCache(pfn)], v).toEqual([1, true]);
      k.run(k.write({ map: 'm', page: 0, data: 'w' }));
      // v5.19+: swap_free() (count 0), should_try_to_free_swap() (write, rc 2) frees the cache, rc 1
      // -> exclusive; before: reuse_swap_page() = mapcount 0 + swap count 1 -> delete_from_swap_cache
      expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn), k.isWritableIn({ map: 'm', page: 0 }), k.swap.used], v).toEqual([pfn, 1, true, 0]);
    }
  });

  it('wp_page_copy() drops the old page from the swap cache once nothing maps it, from v5.14 (free_swap_cache)', () => {
    const after = (v: string): [number, boolean] => {
      const { k } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      k.run(k.fork({ as: 'child' }));
      // both read it in through the swap cache (swap count 2 -> 1 -> 0), then the child exits
      k.run(k.read({ map: 'm', page: 0, process: 'child' }));
      k.run(k.read({ map: 'm', page: 0 }));
      k.run(k.exit({ process: 'child' }));
      const old = k.pfnOf({ map: 'm', page: 0 })!;
      // a R/O GUP reference (vmsplice) keeps the write from reusing it: rc 3 = cache + PTE + get
      k.run(k.gup({ map: 'm', page: 0, fast: true, as: 'pipe' }, false));
      expect(k.refcount(old), v).toBe(3);
      k.run(k.write({ map: 'm', page: 0, data: 'w' }));
      expect(k.pfnOf({ map: 'm', page: 0 }), v).not.toBe(old);
      return [k.refcount(old), k.swap.inSwapCache(old)];
    };
    // v5.10: the copy leaves the old page in the swap cache (cache + get); v6.6: free_swap_cache()
    // after the rmap is gone deletes it (only the get is left)
    expect(after('v5.10')).toEqual([2, true]);
    expect(after('v6.6')).toEqual([1, false]);
  });

  it('a swap-in that loses the race to another fault on the same entry retries (pte_same) and maps the winner\'s page', () => {
    for (const v of ['v5.10', 'v6.6', 'latest']) {
      const { k, m } = kernel(v);
      written(k, 'm', 1);
      pageout(k, 'm');
      const slot = entryAt(k, 'm', 0)!.slot;
      // thread A: a read fault, stopped where do_swap_page() reads the slot without the PTE lock
      const a = k.read({ map: 'm', page: 0 });
      let y = a.next();
      while (!y.done && !(y.value.kind === 'preempt' && y.value.point === 'do_swap_page: swapin')) y = a.next();
      expect(y.done, v).toBe(false);
      // thread B: a write fault on the same entry completes first (swap count 1: the slot is freed)
      k.run(k.write({ map: 'm', page: 0, data: 'B' }));
      const pfn = k.pfnOf({ map: 'm', page: 0 })!;
      expect(k.swap.swapCount(slot), v).toBe(0);
      // A resumes: the PTE is no longer the swap entry it read, so it returns and the access
      // is retried on the present PTE -- B's page, B's data, no second swap-in
      let r = a.next();
      while (!r.done) r = a.next();
      expect([r.value, k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn), k.mapcount(pfn), k.swap.used], v).toEqual(['B', pfn, 1, 1, 0]);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('a swap-in whose entry gains the uffd-wp bit meanwhile (UFFDIO_WRITEPROTECT, mmap_read_lock) fails pte_same and faults again', () => {
    // do_swap_page() reads the slot without the PTE lock, then checks pte_same(vmf->orig_pte):
    // the swap PTE's uffd-wp bit is part of its value (pte_swp_mkuffd_wp(), v5.7), so the check
    // fails and the fault returns to be retried; the second fault reads the new entry and maps
    // the page uffd-wp and read-only. So the swap-in point is passed twice. (Comparing the entry
    // by identity only would take the changed entry for the one read and go on without a retry.)
    for (const v of ['v6.1', 'latest']) {
      const { k, m } = kernel(v);
      written(k, 'm', 1);
      k.run(k.uffdApi({ features: ['pagefault-flag-wp'] }));
      k.run(k.uffdRegister({ map: 'm', mode: ['wp'] }));
      pageout(k, 'm');
      const a = k.read({ map: 'm', page: 0 });
      let swapins = 0;
      let y = a.next();
      for (; !y.done; y = a.next()) {
        if (y.value.kind === 'preempt' && y.value.point === 'do_swap_page: swapin') {
          swapins++;
          if (swapins === 1) k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
        }
      }
      const p = k.vm.lookup(k.process('init'), k.map('m').start)!.pte;
      expect([swapins, y.value, p.swap === undefined, p.write, p.uffdWp], v).toEqual([2, 'm0', true, false, true]);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('munmap and exit free the slots of swap entries (free_swap_and_cache)', () => {
    const { k } = kernel('v6.1');
    written(k, 'a', 3);
    written(k, 'b', 2);
    pageout(k, 'a');
    pageout(k, 'b');
    expect(k.swap.used).toBe(5);
    k.run(k.munmap({ map: 'a' }));
    expect(k.swap.used).toBe(2);
    k.run(k.fork({ as: 'child' }));
    k.run(k.exit({ process: 'init' }));
    // the child's duplicates keep both slots (swap count 1 each)
    expect(k.swap.used).toBe(2);
    k.run(k.exit({ process: 'child' }));
    expect(k.swap.used).toBe(0);
  });

  it('GUP faults a swapped-out page in: a R/O longterm pin on v6.6 pins the fresh exclusive folio (no unshare)', () => {
    const { k, m } = kernel('v6.6');
    written(k, 'm', 1);
    pageout(k, 'm');
    const h = k.run(k.gup({ map: 'm', page: 0, longterm: true, fast: true, as: 'ro' }, true));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    // GUP-fast bails on the non-present entry; the slow path's read fault swaps in; rc 1 + GUP_PIN_COUNTING_BIAS
    expect([h.pfns[0], k.refcount(pfn), k.maybePinned(pfn)]).toEqual([pfn, 1025, true]);
    k.run(k.write({ map: 'm', page: 0, data: 'w' }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(pfn);
    expect(m.violations).toEqual([]);
  });

  it('mremap moves swap entries (the slot follows the page); MADV_DONTNEED of a swap entry frees its slot', () => {
    const { k, m } = kernel('v6.6');
    written(k, 'm', 2);
    pageout(k, 'm');
    const slot = entryAt(k, 'm', 1)!.slot;
    k.run(k.mmap({ anon: true, length: 8192, as: 'dst' }));
    k.run(k.mremap({ map: 'm', length: 8192, to: 'dst', as: 'moved' }));
    // move_ptes(): the swap PTE moves as is (no swap count change), soft-dirty set
    expect([entryAt(k, 'moved', 1)?.slot, k.swap.swapCount(slot), k.swap.used]).toEqual([slot, 1, 2]);
    expect(k.run(k.read({ map: 'moved', page: 1 }))).toBe('m1');
    // zap_pte_range() -> free_swap_and_cache(): the other slot is free again
    k.run(k.madvise({ map: 'moved', advice: 'dontneed', offset: 0, length: 4096 }));
    expect([k.isSwappedIn({ map: 'moved', page: 0 }), k.swap.used]).toEqual([false, 0]);
    // the zapped page reads as a new zero-filled anonymous page
    expect(k.run(k.read({ map: 'moved', page: 0 }))).toBe('');
    expect(m.violations).toEqual([]);
  });

  it('MADV_FREE discards a swapped-out page (free_swap_and_cache, entry cleared): the next read is a new zero-filled page', () => {
    for (const v of RELEASES) {
      const { k, m } = kernel(v);
      written(k, 'm', 2);
      pageout(k, 'm', { offset: 4096, length: 4096 });
      k.run(k.madvise({ map: 'm', advice: 'free' }));
      expect([k.isSwappedIn({ map: 'm', page: 1 }), k.swap.used], v).toEqual([false, 0]);
      // the present page keeps its data (no reclaim); the discarded one reads as the zero page
      expect([k.run(k.read({ map: 'm', page: 0 })), k.run(k.read({ map: 'm', page: 1 }))], v).toEqual(['m0', '']);
      expect(m.violations, v).toEqual([]);
    }
  });

  it('soft-dirty travels with the entry and clear_refs clears it there (pte_swp_soft_dirty)', () => {
    const { k } = kernel('v6.6');
    written(k, 'm', 1);
    pageout(k, 'm');
    const e = (): boolean => k.vm.lookup(k.process('init'), k.map('m').start)!.pte.softDirty;
    expect(e()).toBe(true);
    k.run(k.clearRefs({}));
    expect(e()).toBe(false);
    // read swap-in: the PTE takes the entry's soft-dirty bit (clear), not dirty
    k.run(k.read({ map: 'm', page: 0 }));
    expect([e(), k.isWritableIn({ map: 'm', page: 0 })]).toEqual([false, false]);
  });
});
