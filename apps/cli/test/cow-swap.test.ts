import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { BASE_PAGE, CASES, column, swapOut, SWAPPED_OUT, type Mem } from './cow-cases.js';

// cow.c's 14 anonymous cases on a base page (run_with_base_page) and on a swapped-out base page
// (run_with_base_page_swap), driven through the kernel API on every preset; the verdict tables
// are docs/selftests.md's (written before the run). The swapped-out THP contexts are in
// cow-thp.test.ts. x86, 4 KiB pages; the swap device is synchronous (mm/swap.ts).

/** do_run_with_base_page(): mmap one page, MADV_NOHUGEPAGE, memset(mem, 1), and with swapout MADV_PAGEOUT. */
function setup(k: Kernel, swapout: boolean): Mem {
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'mem' }));
  k.run(k.madvise({ map: 'mem', advice: 'nohugepage' }));
  k.run(k.write({ map: 'mem', page: 0, data: '0x01' }));
  const m: Mem = { first: 0, pages: 1 };
  if (swapout) swapOut(k, m);
  return m;
}

describe('cow.c on a base page and on a swapped-out base page, per release (x86)', () => {
  for (const swapout of [false, true]) {
    for (const { name: version } of PRESETS) {
      it(`${swapout ? 'swapped-out ' : ''}base page on ${version}`, () => {
        const got = Object.fromEntries(
          CASES.map(([name, run]) => {
            const k = createKernel({ arch: x86(), kernel: version });
            return [name, run(k, setup(k, swapout))];
          }),
        );
        const table = swapout ? SWAPPED_OUT : BASE_PAGE;
        expect(got).toEqual(Object.fromEntries(Object.entries(table).map(([name, v]) => [name, v[column(version)]])));
      });
    }
  }

  it('the leak of v5.10 is the write swap-in: the parent maps the folio the pipe holds, writable (refcount 2: pipe + PTE)', () => {
    const k = createKernel({ arch: x86(), kernel: 'v5.10' });
    setup(k, true);
    k.run(k.fork({ as: 'child' }));
    // the child's read swaps in through the swap cache (swap count 2): rc 2 (cache + PTE)
    k.run(k.read({ map: 'mem', page: 0, process: 'child' }));
    const pfn = k.pfnOf({ map: 'mem', page: 0, process: 'child' })!;
    expect(k.refcount(pfn)).toBe(2);
    k.run(k.gup({ map: 'mem', page: 0, fast: true, process: 'child', as: 'pipe' }, false));
    k.run(k.munmap({ map: 'mem', process: 'child' }));
    // cache + pipe; mapcount 0; the parent's entry is the slot's only swap reference
    expect([k.refcount(pfn), k.mapcount(pfn)]).toEqual([2, 0]);
    k.run(k.write({ map: 'mem', page: 0, data: '0xff' }));
    // reuse_swap_page(): mapcount 0 + swap count 1 = 1 -> delete_from_swap_cache (-1), mapped (+1)
    // writable: the same folio, rc 2 (pipe + PTE), and the pipe reads the parent's write
    expect([k.pfnOf({ map: 'mem', page: 0 }), k.refcount(pfn), k.isWritableIn({ map: 'mem', page: 0 }), k.pages.data.get(pfn), k.swap.used]).toEqual([pfn, 2, true, '0xff', 0]);
  });
});
