import { createKernel, Monitor } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

// Migration to device-private memory and the swap cache (mm/migrate_device.c, core mm/swap.ts).
// A page in the swap cache has a mapping (the swap address space), so migrate_vma_check_page()
// allows one more reference for it; migrate_vma_pages() moves to device memory only a folio that
// can leave the swap cache (folio_free_swap(): no swap entry names its slot any more).

const PAGE = 4096;

/** A swapped-out page shared with a fork child, read back by the child: it sits in the swap cache. */
function setup(version: string) {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: version });
  const mon = new Monitor(k);
  k.run(k.probe({ driver: 'hmm', kind: 'private', size: 256 * 1024 * 1024, as: 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
  k.run(k.write({ map: 'buf', page: 0, data: 'd0' }));
  k.run(k.madvise({ map: 'buf', advice: 'pageout' }));
  k.run(k.fork({ as: 'child' }));
  // swap count 2 -> the child's read goes through the swap cache (cache + PTE: rc 2)
  k.run(k.read({ map: 'buf', page: 0, process: 'child' }));
  const pfn = k.pfnOf({ map: 'buf', page: 0, process: 'child' })!;
  return { k, mon, pfn };
}

describe('migrating a swap-cache page to device-private memory', () => {
  it("stays when another swap entry names its slot (the parent's): folio_free_swap() fails", () => {
    const { k, mon, pfn } = setup('v6.6');
    expect([k.refcount(pfn), k.swap.inSwapCache(pfn)]).toEqual([2, true]);
    // collected (rc 2 + 1), unmapped (rc 2, mapcount 0) and checked: 2 - 1 (collect) - 1 (swap
    // cache) = 0 references beyond the mappings, so it passes; then migrate_vma_pages() cannot free
    // the swap cache: restored on the same page, and test_hmm finds no device page there (-ENOENT)
    expect(() => k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0', process: 'child' }))).toThrow(/ENOENT/);
    expect([k.pfnOf({ map: 'buf', page: 0, process: 'child' }), k.refcount(pfn), k.swap.inSwapCache(pfn)]).toEqual([pfn, 2, true]);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('d0');
    expect(mon.violations).toEqual([]);
  });

  it('moves once nothing else names the slot: the folio leaves the swap cache and is freed', () => {
    const { k, mon, pfn } = setup('v6.6');
    // the parent's munmap frees its entry: swap count 0, the folio only cached and mapped by the child
    k.run(k.munmap({ map: 'buf' }));
    expect([k.refcount(pfn), k.swap.inSwapCache(pfn), k.swap.used]).toEqual([2, true, 1]);
    k.run(k.migrate({ map: 'buf', page: 0, to: 'dmirror0', process: 'child' }));
    expect(k.isSwappedIn({ map: 'buf', page: 0, process: 'child' })).toBe(true); // a device-private entry reads PM_SWAP too
    expect([k.ram.live.has(pfn), k.swap.used]).toEqual([false, 0]);
    expect(k.run(k.read({ map: 'buf', page: 0, process: 'child' }))).toBe('d0');
    expect(mon.violations).toEqual([]);
  });
});
